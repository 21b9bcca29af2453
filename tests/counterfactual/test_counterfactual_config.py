"""Bad counterfactual settings fail before any job runs, naming the key and the value; the shipped
configs are valid and config/lds.yaml is the default but for its counterfactual block."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llm_influence.counterfactual.spec import counterfactual_errors, validate_counterfactual
from llm_influence.workflow.config import ConfigError, config_errors, load_schema

REPO = Path(__file__).resolve().parents[2]
SCHEMA = load_schema(REPO / "workflow/schemas/config.schema.yaml")


def _config(name: str = "config.yaml") -> dict:
    config = yaml.safe_load((REPO / "config" / name).read_text())
    config["queries"]["file"] = str(REPO / config["queries"]["file"])
    return config


def _lds_tool():
    spec = importlib.util.spec_from_file_location("lds_config", REPO / "tools/lds_config.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("alpha", [0, 1, 1.5, -0.2])
def test_alpha_outside_the_open_unit_interval_is_rejected(alpha) -> None:
    config = _config()
    config["counterfactual"]["alpha"] = alpha
    assert any(e.startswith("counterfactual.alpha:") for e in config_errors(config, SCHEMA))


def test_pretrained_and_unknown_models_are_rejected() -> None:
    config = _config()
    config["pretrain"]["models"]["small"] = {"pretrained": "EleutherAI/pythia-70m"}
    config["counterfactual"]["models"] = ["small", "huge"]
    errors = counterfactual_errors(config, 5700)
    assert any("'small' is pretrained (EleutherAI/pythia-70m)" in e for e in errors)
    assert any("'huge' is not defined in pretrain.models" in e for e in errors)


def test_removing_more_documents_than_exist_is_rejected() -> None:
    config = _config()
    n_fact = sum("factual" in q.get("tags", []) for q in
                 yaml.safe_load(Path(config["queries"]["file"]).read_text())["queries"])  # fmt: skip
    config["counterfactual"]["remove_k"] = 500
    (error,) = counterfactual_errors(config, 5700)
    assert f"counterfactual.remove_k=500: the leave-out removes {500 * n_fact} documents" in error
    assert "only 5700" in error
    assert counterfactual_errors(_config(), 5700) == []


def test_counterfactual_needs_every_document_scored() -> None:
    config = _config()
    config["scores"]["candidates"] = "tfidf"
    (error,) = counterfactual_errors(config, 5700)
    assert "scores.candidates='tfidf'" in error
    config["counterfactual"]["models"] = []
    assert counterfactual_errors(config, 5700) == []


def test_snakemake_stops_before_any_job(tmp_path) -> None:
    """The Snakefile checks the section before building the DAG: no job is planned or run."""
    config = _config("smoke.yaml")
    config["pretrain"]["models"]["tiny"] = {"pretrained": str(tmp_path)}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile",
                           str(path)], cwd=REPO, capture_output=True, text=True)  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "counterfactual.models: 'tiny' is pretrained" in out
    assert "Job stats" not in out and "rule " not in out
    with pytest.raises(ConfigError, match="is pretrained"):
        validate_counterfactual(config)


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml", "pythia.yaml", "lds.yaml"])
def test_shipped_configs_are_valid(name) -> None:
    config = _config(name)
    assert config_errors(config, SCHEMA) == []
    assert counterfactual_errors(config, None) == []


def test_lds_config_is_generated_from_the_default() -> None:
    tool = _lds_tool()
    assert (REPO / "config/lds.yaml").read_text() == tool.render(
        (REPO / "config/config.yaml").read_text()
    ), "config/lds.yaml is stale: run python tools/lds_config.py"
    default, lds = _config(), _config("lds.yaml")
    assert lds["counterfactual"]["subsets"] >= 64
    assert lds["counterfactual"]["models"] == default["models"]
    strip = lambda c: {k: v for k, v in c.items() if k != "counterfactual"}  # noqa: E731
    assert strip(lds) == strip(default)


def test_retrainings_track_only_their_part_of_the_section() -> None:
    """Adding subsets or changing the bootstrap must not rerun a retraining (Snakemake params and
    DVC params alike): dvc.yaml lists the keys each job reads."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    params = {name: s["params"][0]["config/config.yaml"] for name, s in stages.items()}
    subset = next(p for n, p in params.items() if n.startswith("retrain_subset-"))
    leaveout = next(p for n, p in params.items() if n.startswith("retrain_leaveout-"))
    study = params["counterfactual"]
    assert {"counterfactual.alpha", "counterfactual.seeds", "pretrain"} <= set(subset)
    assert "counterfactual" not in subset and "counterfactual.subsets" not in subset
    assert {"counterfactual.remove_k", "counterfactual.leaveout_tag"} <= set(leaveout)
    assert "counterfactual.alpha" not in leaveout
    assert "counterfactual" in study
