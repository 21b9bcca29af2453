"""Snakemake executes, DVC records: commit after a run, audit, repro, push/pull + realign, kill.

On the toy workflow (tests/workflow/toy: the real runner and DVC plumbing, throwaway stages), with
as few snakemake start-ups as possible (each costs seconds).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from workflow_helpers import BIN, TOY_ENV, cli, data_files, dvc, run, tool_env

from llm_influence import cli as cli_module
from llm_influence.workflow import audit as audit_module
from llm_influence.workflow.dvc_sync import commit_after_run

CLEAN = "Data and pipelines are up to date."
NOTHING = "Nothing to be done"


def snakemake(repo: Path, *args: str, check: bool = True, **env: str):
    return run([str(BIN / "snakemake"), "--cores", "2", *args], repo, check=check, **TOY_ENV, **env)


def audit(repo: Path) -> tuple[int, dict[str, str]]:
    proc = cli(repo, "audit", "--json", check=False, **TOY_ENV)
    return proc.returncode, {a["path"]: a["status"] for a in json.loads(proc.stdout)}


def _check_version_drift(repo: Path, monkeypatch, capsys) -> None:
    """Another installed numpy than the one that made the artifacts: `drift`, an error only with
    --strict; the table names the package and both versions."""
    recorded = json.loads((repo / "data" / "source" / "provenance.json").read_text())["packages"]
    assert recorded["numpy"] and recorded["torch"]
    real = audit_module.package_versions
    monkeypatch.setattr(
        audit_module, "package_versions", lambda names: {**real(names), "numpy": "0.0.1"}
    )
    artifacts = audit_module.audit(repo)
    assert {a.path: a.status for a in artifacts} == {
        "data/source": "drift",
        "results/digest": "drift",
    }
    assert artifacts[0].drift == {"numpy": {"recorded": recorded["numpy"], "installed": "0.0.1"}}
    monkeypatch.setenv("COLUMNS", "400")  # one line per row
    assert cli_module.main(["--root", str(repo), "audit"]) == 0
    table = capsys.readouterr().out
    assert f"numpy {recorded['numpy']} -> 0.0.1" in table and "--strict" in table
    assert cli_module.main(["--root", str(repo), "audit", "--strict"]) == 1
    capsys.readouterr()
    monkeypatch.setattr(audit_module, "package_versions", real)
    assert cli_module.main(["--root", str(repo), "audit", "--strict"]) == 0
    assert "as installed" in capsys.readouterr().out


def test_dvc_lifecycle(toy_repo: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """run -> dvc.lock + clean status -> audit -> push -> fresh clone, pull, realign -> tamper."""
    uncommitted = "not yet committed"
    assert audit(toy_repo) == (1, {"data/source": uncommitted, "results/digest": uncommitted})

    proc = snakemake(toy_repo)
    assert "recording 2 stage(s)" in proc.stderr
    assert CLEAN in dvc(toy_repo, "status").stdout
    lock = yaml.safe_load((toy_repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"source", "digest"}
    assert lock["stages"]["source"]["params"]["config/config.yaml"] == {
        "seed": 0,
        "source": {"n": 3},
    }
    report = json.loads(cli(toy_repo, "audit", "--json", **TOY_ENV).stdout)
    assert {a["path"]: a["status"] for a in report} == {"data/source": "ok", "results/digest": "ok"}
    assert report[0]["provenance"]["rule"] == "source"
    assert report[0]["provenance"]["metrics"] == {"n": 3}
    assert report[0]["params"] == {"seed": 0, "source": {"n": 3}}
    assert report[0]["drift"] == {}
    _check_version_drift(toy_repo, monkeypatch, capsys)

    # push, then a fresh clone: realign refuses until the data is back, pull restores identical
    # files, realign makes Snakemake agree without recomputing
    dvc(toy_repo, "push")
    run(["git", "add", "-A"], toy_repo)
    run(["git", "commit", "-q", "-m", "run"], toy_repo)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(toy_repo), str(clone)], tmp_path)
    refused = cli(clone, "realign", check=False, **TOY_ENV)
    assert refused.returncode == 1 and "dvc status is not clean" in refused.stderr
    dvc(clone, "pull")
    assert data_files(clone) == data_files(toy_repo)
    for out in ("data/source", "results/digest"):
        prov = f"{out}/provenance.json"
        assert (clone / prov).read_bytes() == (toy_repo / prov).read_bytes()
    cli(clone, "realign", **TOY_ENV)
    dry = snakemake(clone, "-n")
    assert NOTHING in dry.stdout
    assert "missing metadata" not in dry.stdout + dry.stderr
    assert not list(clone.glob(".snakemake/scripts/*"))  # nothing ran

    # tampering: a flipped bit and a deleted file, then a deleted artifact
    part = toy_repo / "data" / "source" / "part001.txt"
    data = bytearray(part.read_bytes())
    data[3] ^= 0x01
    os.chmod(part, 0o644)
    part.unlink()  # do not write through a hard link into the DVC cache
    part.write_bytes(bytes(data))
    (toy_repo / "results" / "digest" / "digest.txt").unlink()
    assert audit(toy_repo) == (1, {"data/source": "modified", "results/digest": "modified"})
    shutil.rmtree(toy_repo / "results" / "digest")
    table = cli(toy_repo, "audit", check=False, **TOY_ENV)
    assert table.returncode == 1 and "missing" in table.stdout
    assert audit(toy_repo) == (1, {"data/source": "modified", "results/digest": "missing"})
    dvc(toy_repo, "checkout", "--force")
    assert audit(toy_repo)[0] == 0


@pytest.mark.slow  # a DVC experiment: three snakemake runs
def test_headline_metrics_and_an_experiment(toy_repo: Path) -> None:
    """Only the flat headline.json is a DVC metric; `dvc exp run -S <params file>:key=value` (the
    config is the params file, not DVC's default params.yaml), then `dvc exp show` and
    `dvc metrics diff` compare it between the baseline and the experiment."""
    snakemake(toy_repo)
    source = toy_repo / "data" / "source"
    assert json.loads((source / "headline.json").read_text()) == {"parts": 3}
    assert (source / "metrics.json").is_file()  # the detailed dump stays, as a plain file
    shown = dvc(toy_repo, "metrics", "show").stdout
    assert "data/source/headline.json" in shown and "metrics.json" not in shown
    assert max(map(len, shown.splitlines())) <= 100
    run(["git", "add", "-A"], toy_repo)
    run(["git", "commit", "-q", "-m", "baseline"], toy_repo)

    run(
        [str(BIN / "dvc"), "exp", "run", "-S", "config/config.yaml:source.n=4"], toy_repo, **TOY_ENV
    )
    diff = json.loads(dvc(toy_repo, "metrics", "diff", "--json").stdout)
    assert diff == {"data/source/headline.json": {"parts": {"old": 3, "new": 4, "diff": 1}}}
    table = dvc(toy_repo, "exp", "show", "--no-pager", "--csv").stdout.splitlines()
    header = table[0].split(",")
    rows = [dict(zip(header, line.split(","))) for line in table[1:]]
    assert {(r["parts"], r["source.n"]) for r in rows} >= {("3", "3"), ("4", "4")}


def test_dvc_repro_runs_snakemake_for_each_stage(toy_repo: Path) -> None:
    run([str(BIN / "dvc"), "repro"], toy_repo, **TOY_ENV)  # DVC_STAGE set: no nested commit
    assert CLEAN in dvc(toy_repo, "status").stdout
    assert NOTHING in snakemake(toy_repo, "-n").stdout  # Snakemake's metadata is current


def test_toy_dvc_yaml_is_generated(toy_repo: Path) -> None:
    committed = (toy_repo / "dvc.yaml").read_text()
    (toy_repo / "dvc.yaml").unlink()
    cli(toy_repo, "dvc-sync", **TOY_ENV)
    assert (toy_repo / "dvc.yaml").read_text() == committed


def test_commit_skipped_for_other_config_or_when_dvc_launched(
    toy_repo: Path, capsys, monkeypatch
) -> None:
    (toy_repo / "data" / "source").mkdir(parents=True)
    (toy_repo / "data" / "source" / "provenance.json").write_text('{"end_timestamp": 1e12}')
    config = yaml.safe_load((toy_repo / "config" / "config.yaml").read_text())
    assert commit_after_run({**config, "seed": 1}, since=0, root=toy_repo) == []
    assert "dvc commit skipped" in capsys.readouterr().err
    assert commit_after_run({**config, "dvc_commit": False}, since=0, root=toy_repo) == []
    monkeypatch.setenv("DVC_STAGE", "source")
    assert commit_after_run(config, since=0, root=toy_repo) == []
    assert not (toy_repo / "dvc.lock").exists()


def test_killed_job_leaves_no_output_and_rerun_is_identical(toy_repo: Path) -> None:
    """The README's "After a crash": SIGKILL the whole run in the middle of a job; the rerun stops
    at Snakemake's stale lock, `snakemake --unlock` then the same command finishes, and the outputs
    equal those of an uninterrupted run."""
    cfg = toy_repo / "config" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("n: 3", "n: 6"))
    args = ["--config", "dvc_commit=false"]  # the whole pipeline: source, then digest
    proc = subprocess.Popen(
        [str(BIN / "snakemake"), "--cores", "2", *args],
        cwd=toy_repo,
        env=tool_env(TOY_SLEEP="1", **TOY_ENV),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            temps = list((toy_repo / "data").glob(".source.tmp-*"))
            if temps and len(list(temps[0].glob("part*"))) >= 2:
                break
            assert proc.poll() is None, "the slow job ended before it could be killed"
            time.sleep(0.2)
        else:
            raise AssertionError("the slow job never started writing")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole run, as a power loss would
        proc.wait()
    assert not (toy_repo / "data" / "source").exists()
    assert not (toy_repo / "results").exists()
    assert list((toy_repo / "data").glob(".source.tmp-*"))  # hidden, not mistakable for output

    locked = snakemake(toy_repo, *args, check=False)
    assert locked.returncode != 0 and "Directory cannot be locked" in locked.stderr
    snakemake(toy_repo, "--unlock")
    snakemake(toy_repo, *args)
    assert not list((toy_repo / "data").glob(".source.tmp-*"))
    after_crash = data_files(toy_repo)
    assert len(after_crash) == 9  # 6 parts + metrics.json + headline.json, digest.txt

    shutil.rmtree(toy_repo / "data")
    shutil.rmtree(toy_repo / "results")
    snakemake(toy_repo, *args)  # uninterrupted
    assert data_files(toy_repo) == after_crash
