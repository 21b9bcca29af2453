"""The tokenizer/pretrain blocks of the shipped configs, their schema and the dataclasses agree."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import jsonschema
import pytest
import yaml

from llm_influence.models.spec import ModelSpec, TokenizerSpec, TrainSpec

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())["properties"]


@pytest.mark.parametrize("name", ["config", "smoke"])
def test_shipped_blocks_validate(name):
    config = yaml.safe_load((ROOT / f"config/{name}.yaml").read_text())
    for section in ("tokenizer", "pretrain"):
        jsonschema.Draft202012Validator(SCHEMA[section]).validate(config[section])
    assert set(config["tokenizer"]) == {
        f.name for f in fields(TokenizerSpec)
    }  # every default written out
    assert set(config["pretrain"]) == {f.name for f in fields(TrainSpec)}
    TokenizerSpec.from_config(config["tokenizer"])
    recipe = TrainSpec.from_config(config["pretrain"])
    for model in config["models"]:
        spec = recipe.model(model)
        assert spec.max_position >= config["tokenizer"]["seq_len"]


@pytest.mark.parametrize(
    "section, patch",
    [
        ("tokenizer", {"vocab_size": -1}),
        ("tokenizer", {"heldout_categories": "some"}),
        ("tokenizer", {"extra": 1}),
        ("pretrain", {"batch_size": 0}),
        ("pretrain", {"dtype": "float8"}),
        (
            "pretrain",
            {
                "models": {
                    "x": {
                        "arch": "gpt2",
                        "hidden_size": 8,
                        "num_layers": 1,
                        "num_heads": 2,
                        "intermediate_size": 8,
                        "max_position": 64,
                    }
                }
            },
        ),
        (
            "pretrain",
            {
                "models": {
                    "x": {
                        "arch": "gpt_neox",
                        "hidden_size": -8,
                        "num_layers": 1,
                        "num_heads": 2,
                        "intermediate_size": 8,
                        "max_position": 64,
                    }
                }
            },
        ),
        ("pretrain", {"models": {"x": {"arch": "gpt_neox"}}}),
        ("pretrain", {"models": {"x": {"pretrained": "EleutherAI/pythia-70m", "typo": 1}}}),
    ],
)
def test_schema_rejects_bad_values(section, patch):
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(SCHEMA[section]).validate({**config[section], **patch})


def test_schema_accepts_pretrained_model():
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    block = {
        **config["pretrain"],
        "models": {"pythia-70m": {"pretrained": "EleutherAI/pythia-70m"}},
    }
    jsonschema.Draft202012Validator(SCHEMA["pretrain"]).validate(block)
    assert (
        ModelSpec.from_config(block["models"]["pythia-70m"]).pretrained == "EleutherAI/pythia-70m"
    )
