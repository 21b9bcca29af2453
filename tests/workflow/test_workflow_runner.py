"""run_rule with a Snakemake-like job object: logging, provenance, code hash, failures."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from snakemake.iocontainers import Namedlist

from llm_influence.workflow.provenance import code_hash
from llm_influence.workflow.runner import run_rule


def job(tmp_path: Path, entry: str, **params) -> SimpleNamespace:
    code = tmp_path / "code.py"
    code.write_text("x = 1\n")
    return SimpleNamespace(
        rule="source",
        input=Namedlist(fromdict={"code": [str(code)]}),
        output=Namedlist(fromdict={"source": str(tmp_path / "data" / "source")}),
        log=Namedlist(fromdict={"log": str(tmp_path / "logs" / "source.log")}),
        params=Namedlist(
            fromdict={"entry": entry, "config": {"seed": 5, "source": {"n": 2}}, **params}
        ),
        wildcards=Namedlist(fromdict={}),
        threads=1,
        config={"seed": 5, "device": "auto", "source": {"n": 2}},
    )


def test_run_rule_writes_outputs_log_and_provenance(tmp_path: Path) -> None:
    smk = job(tmp_path, "toy_stages:make_source")
    run_rule(smk)
    out = tmp_path / "data" / "source"
    assert sorted(p.name for p in out.iterdir()) == [
        "metrics.json",
        "part000.txt",
        "part001.txt",
        "provenance.json",
    ]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["seed"] == 5
    assert prov["config"] == {"seed": 5, "source": {"n": 2}}
    assert prov["code"]["hash"] == code_hash([tmp_path / "code.py"])
    assert prov["metrics"] == {"n": 2}
    assert "running toy_stages:make_source" in (tmp_path / "logs" / "source.log").read_text()


def test_run_rule_failure_is_logged_and_leaves_nothing(tmp_path: Path) -> None:
    smk = job(tmp_path, "toy_stages:fail")
    smk.output = Namedlist(fromdict={"digest": str(tmp_path / "results" / "digest")})
    with pytest.raises(RuntimeError, match="on purpose"):
        run_rule(smk)
    assert list((tmp_path / "results").iterdir()) == []
    assert "stage failed on purpose" in (tmp_path / "logs" / "source.log").read_text()


def test_file_outputs_are_not_directories(tmp_path: Path) -> None:
    smk = job(tmp_path, "toy_stages:write_file", files=["summary"])
    smk.output = Namedlist(fromdict={"summary": str(tmp_path / "results" / "summary.md")})
    run_rule(smk)
    assert (tmp_path / "results" / "summary.md").read_text() == "# summary\n"
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["summary.md"]


def test_summary_md_is_a_file_without_declaration(tmp_path: Path) -> None:
    smk = job(tmp_path, "toy_stages:write_file")
    smk.output = Namedlist(fromdict={"summary": str(tmp_path / "results" / "summary.md")})
    run_rule(smk)
    assert (tmp_path / "results" / "summary.md").is_file()


def test_dotted_model_name_is_a_directory(tmp_path: Path) -> None:
    smk = job(tmp_path, "toy_stages:make_source")
    smk.output = Namedlist(fromdict={"source": str(tmp_path / "data" / "pythia-1.4b")})
    run_rule(smk)
    assert (tmp_path / "data" / "pythia-1.4b" / "provenance.json").is_file()


def test_late_torch_import_is_warned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import toy_stages

    from llm_influence.utils import seeding

    monkeypatch.setattr(toy_stages, "TORCH_SEEN", False)
    monkeypatch.setattr(seeding, "torch_loaded", lambda: toy_stages.TORCH_SEEN)
    run_rule(job(tmp_path, "toy_stages:import_torch_late"))
    log = (tmp_path / "logs" / "source.log").read_text()
    assert "toy_stages:import_torch_late imported torch inside the stage" in log


def test_stage_without_torch_never_touches_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llm_influence.utils import seeding

    def no_torch(seed: int) -> None:
        raise AssertionError("torch seeded for a stage that does not use it")

    monkeypatch.setattr(seeding, "torch_loaded", lambda: False)
    monkeypatch.setattr(seeding, "seed_everything", no_torch)
    run_rule(job(tmp_path, "toy_stages:make_source"))
    prov = json.loads((tmp_path / "data" / "source" / "provenance.json").read_text())
    assert prov["device"] == {"requested": "auto", "resolved": "cpu", "torch": False}


def test_stage_with_torch_is_seeded(tmp_path: Path) -> None:
    run_rule(job(tmp_path, "toy_stages:make_source"))  # torch is loaded in this process
    log = (tmp_path / "logs" / "source.log").read_text()
    assert "imported torch inside the stage" not in log
    prov = json.loads((tmp_path / "data" / "source" / "provenance.json").read_text())
    assert "torch" not in prov["device"]
