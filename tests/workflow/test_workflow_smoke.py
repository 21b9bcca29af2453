"""End-to-end: the real workflow on config/smoke.yaml, run once per session (``smoke_run``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from workflow_helpers import cli, data_files, dvc, run, snakemake

pytestmark = pytest.mark.slow

SMOKE = "config/smoke.yaml"


def _outs(repo: Path) -> list[str]:
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    return [str(o) for stage in stages.values() for o in stage["outs"]]


def test_every_output_has_provenance(smoke_run: Path) -> None:
    """Directory outputs carry provenance.json (the one file output, results/summary.md, cannot)."""
    for out in _outs(smoke_run):
        if (smoke_run / out).is_file():
            continue
        prov = json.loads((smoke_run / out / "provenance.json").read_text())
        assert prov["git"]["commit"] and prov["code"]["hash"], out
        assert prov["packages"]["torch"], out


def test_dvc_status_clean_and_nothing_to_do(smoke_run: Path) -> None:
    assert "Data and pipelines are up to date." in dvc(smoke_run, "status").stdout
    assert "Nothing to be done" in snakemake(smoke_run, "-n", "--configfile", SMOKE).stdout
    report = json.loads(cli(smoke_run, "audit", "--json").stdout)
    assert {a["status"] for a in report} == {"ok"}
    # code provenance is recorded for directory outputs; a file output has none (None, not False)
    assert all(a["code_current"] for a in report if (smoke_run / a["path"]).is_dir())
    assert not any(a["code_current"] is False for a in report)


def test_push_pull_fresh_clone_realign(smoke_run: Path, tmp_path: Path) -> None:
    dvc(smoke_run, "push")
    run(["git", "add", "-A"], smoke_run)
    run(["git", "commit", "-q", "--allow-empty", "-m", "smoke results"], smoke_run)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(smoke_run), str(clone)], tmp_path)
    dvc(clone, "pull")
    assert data_files(clone) == data_files(smoke_run)
    cli(clone, "realign")
    dry = snakemake(clone, "-n", "--configfile", SMOKE)
    assert "Nothing to be done" in dry.stdout


def test_headline_metrics_are_flat_and_complete(smoke_run: Path) -> None:
    """Every declared DVC metric is a headline.json holding every number its spec names (so a
    renamed key in a stage's metrics.json is caught here), and `dvc metrics show` stays narrow."""
    from llm_influence.studies.registry import SHARED_RULE, study
    from llm_influence.workflow.headline import HEADLINES

    declared = yaml.safe_load((smoke_run / "dvc.yaml").read_text())["metrics"]
    assert declared and all(m.endswith("/headline.json") for m in declared)
    seen = set()
    for path in declared:
        values = json.loads((smoke_run / path).read_text())
        assert all(isinstance(v, int | float | bool) or v is None for v in values.values()), path
        parts = path.split("/")
        key = {"models": "pretrain", "studies": f"study:{parts[2]}"}.get(parts[1], parts[1])
        if parts[1] == "studies" and study(parts[2]).rule != SHARED_RULE:
            key = study(parts[2]).rule  # a study with its own rule (validation, counterfactual)
        seen.add(key)
        missing = [
            name
            for name in HEADLINES[key]
            if not any(k == name or k.startswith(f"{name}.") for k in values)
        ]
        assert not missing, f"{path}: no value for {missing}"
    assert seen == set(HEADLINES)
    shown = dvc(smoke_run, "metrics", "show", declared[0]).stdout
    assert max(map(len, shown.splitlines())) <= 120, shown
