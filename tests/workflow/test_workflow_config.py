"""Command-line overrides are read as the schema's types; `models` must name defined models.

Snakemake parses a nested ``--config "tfidf={'top_k': 5}"`` with YAML's base loader, so the values
inside arrive as strings; the tests build the overrides with Snakemake's own parser.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from snakemake.cli import parse_config
from snakemake.utils import update_config
from workflow_helpers import BIN, REPO, run

from llm_influence.workflow.config import (
    ConfigError,
    coerce_config,
    config_errors,
    load_schema,
    validate_config,
)

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _with_overrides(*entries: str) -> dict:
    config = copy.deepcopy(DEFAULT)
    update_config(config, parse_config(list(entries)))
    return config


def test_nested_overrides_arrive_as_strings_and_are_coerced() -> None:
    config = _with_overrides(
        "tfidf={'top_k': 5, 'k1': 1.2, 'query_tokens': completion}",
        "factors={'damping': 0.001, 'sample_labels': false, 'fit_sequences': null}",
        "scores={'rank': 8}",
    )
    assert config["tfidf"]["top_k"] == "5"  # what Snakemake hands the Snakefile
    assert config_errors(config, load_schema(SCHEMA))  # and why validation used to fail
    coerce_config(config, SCHEMA)
    assert config["tfidf"] == {
        **DEFAULT["tfidf"],
        "top_k": 5,
        "k1": 1.2,
        "query_tokens": "completion",
    }
    assert type(config["tfidf"]["top_k"]) is int and type(config["tfidf"]["k1"]) is float
    assert config["factors"]["damping"] == 0.001  # oneOf [auto, number]: the number branch
    assert config["factors"]["sample_labels"] is False
    assert config["factors"]["fit_sequences"] is None
    assert config["scores"]["rank"] == 8
    assert config_errors(config, load_schema(SCHEMA)) == []


def test_coercion_keeps_strings_the_schema_wants_and_reports_the_rest() -> None:
    config = _with_overrides("factors={'damping': auto}", "tfidf={'top_k': five}")
    coerce_config(config, SCHEMA)
    assert config["factors"]["damping"] == "auto"
    assert config["tfidf"]["top_k"] == "five"
    assert config_errors(config, load_schema(SCHEMA)) == [
        "tfidf.top_k: 'five' is not of type 'integer'"
    ]
    config = _with_overrides("tfidf={'top_k': 2.5}")  # not an integer: not rounded
    coerce_config(config, SCHEMA)
    assert config_errors(config, load_schema(SCHEMA)) == [
        "tfidf.top_k: '2.5' is not of type 'integer'"
    ]


def test_coercion_reaches_mappings_of_models() -> None:
    name = DEFAULT["models"][0]
    config = _with_overrides(f"pretrain={{'models': {{'{name}': {{'num_layers': 3}}}}}}")
    coerce_config(config, SCHEMA)
    assert config["pretrain"]["models"][name]["num_layers"] == 3
    assert config_errors(config, load_schema(SCHEMA)) == []


def test_undefined_model_is_named() -> None:
    config = copy.deepcopy(DEFAULT)
    config["models"] = [DEFAULT["models"][0], "huge"]
    defined = ", ".join(sorted(DEFAULT["pretrain"]["models"]))
    expected = f"models[1]: 'huge' is not defined in pretrain.models (defined: {defined})"
    assert config_errors(config, load_schema(SCHEMA)) == [expected]
    with pytest.raises(ConfigError, match=r"models\[1\]: 'huge' is not defined"):
        validate_config(config, SCHEMA)


def test_snakemake_accepts_a_nested_override(tmp_path) -> None:
    """The command from the README, as a dry run: it plans jobs instead of failing validation."""
    proc = run(
        [
            str(BIN / "snakemake"),
            "-n",
            "--nolock",
            "--cores",
            "1",
            "--configfile",
            "config/smoke.yaml",
            "--config",
            "tfidf={'top_k': 5}",
            "--",
            "results/tfidf",
        ],
        REPO,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "is not of type" not in output
