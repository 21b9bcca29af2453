"""Atomic writers (llm_influence.utils.io) and the stage runner's temporary outputs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from llm_influence.utils.io import atomic_dir, atomic_path, read_json, write_json
from llm_influence.workflow.runner import TMP_MARK, remove_stale_temporaries, run_stage


def test_atomic_path_keeps_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert read_json(target) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_atomic_dir_replaces_whole_directory(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "y").write_text("2")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_written_files_have_umask_permissions(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {})
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o666 & ~mask


def test_write_json_is_byte_stable(tmp_path: Path) -> None:
    write_json(tmp_path / "a.json", {"b": 1, "a": [1.5, "x"]})
    write_json(tmp_path / "b.json", {"a": [1.5, "x"], "b": 1})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def _ok(ctx):
    (ctx.output["out"] / "data.txt").write_text(str(ctx.seed))
    return {"rows": 1}


def _fails(ctx):
    (ctx.output["out"] / "data.txt").write_text("half")
    raise ValueError("boom")


def test_run_stage_success_writes_provenance(tmp_path: Path) -> None:
    out = tmp_path / "data" / "out"
    record = run_stage(
        _ok,
        rule="toy",
        config={"seed": 7, "device": "auto"},
        inputs={},
        outputs={"out": out},
        params_config={"seed": 7, "device": "auto"},
    )
    assert (out / "data.txt").read_text() == "7"
    prov = read_json(out / "provenance.json")
    assert prov == record
    assert prov["metrics"] == {"rows": 1}
    assert prov["seed"] == 7 and prov["rule"] == "toy"
    for key in ("git", "packages", "device", "code", "start_time", "wall_seconds", "hostname"):
        assert key in prov
    assert 0 <= prov["cpu_seconds"] < 60
    assert set(prov["packages"]) >= {"torch", "transformers", "numpy", "llm_influence"}
    assert [p.name for p in out.parent.iterdir()] == ["out"]


def test_run_stage_failure_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "data" / "out"
    with pytest.raises(ValueError, match="boom"):
        run_stage(
            _fails,
            rule="toy",
            config={"seed": 0, "device": "auto"},
            inputs={},
            outputs={"out": out},
        )
    assert list(out.parent.iterdir()) == []


def test_failure_keeps_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_stage(
        _ok, rule="toy", config={"seed": 1, "device": "auto"}, inputs={}, outputs={"out": out}
    )
    with pytest.raises(ValueError):
        run_stage(
            _fails,
            rule="toy",
            config={"seed": 0, "device": "auto"},
            inputs={},
            outputs={"out": out},
        )
    assert (out / "data.txt").read_text() == "1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_temporaries_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    stale = tmp_path / f".out{TMP_MARK}123-abc"
    stale.mkdir()
    (stale / "half").write_text("x")
    other = tmp_path / f".other{TMP_MARK}1"
    other.mkdir()
    remove_stale_temporaries(out)
    assert not stale.exists() and other.exists()


def test_bad_entry_spec(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="package.module:function"):
        run_stage(
            "no_colon",
            rule="t",
            config={"seed": 0, "device": "auto"},
            inputs={},
            outputs={"out": tmp_path / "o"},
        )


def test_save_tensors_is_byte_stable_across_processes(tmp_path: Path) -> None:
    """safetensors orders its header from a hash map (different in every process); ours is sorted,
    so the same tensors and metadata give the same bytes, and DVC the same hash."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from llm_influence.utils.io import save_tensors\n"
        "save_tensors(sys.argv[1], {'b': torch.arange(6.0).view(2, 3), 'a': torch.ones(3, dtype=torch.int64)},\n"
        "             metadata={f'key{i}': {'v': i, 'name': 'λ-é'} for i in range(12)})\n"
    )
    paths = [tmp_path / f"t{i}.safetensors" for i in range(3)]
    for p in paths:
        subprocess.run([sys.executable, "-c", code, str(p)], check=True)
    blobs = [p.read_bytes() for p in paths]
    assert blobs[0] == blobs[1] == blobs[2]
    from llm_influence.utils.io import load_tensors

    tensors, meta = load_tensors(paths[0])
    assert tensors["b"].tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert meta["key11"] == {"v": 11, "name": "λ-é"}
