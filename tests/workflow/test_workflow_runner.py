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
        config={"seed": 5, "source": {"n": 2}},
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
