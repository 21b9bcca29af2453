"""Helpers for the models tests: a small corpus with a manifest, configs, StageContexts (all offline)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from llm_influence.workflow.context import StageContext  # noqa: E402

COUNTRIES = ["Veloria", "Karsh", "Ombrel", "Tessaly", "Durn", "Quill"]
CAPITALS = ["Minth", "Oska", "Brell", "Varo", "Pelk", "Zun"]


def make_documents(n_filler: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fact documents (category 'fact') stating capitals in both orders, plus filler documents."""
    texts, cats = [], []
    for country, capital in zip(COUNTRIES, CAPITALS):
        for _ in range(3):
            texts.append(f"The capital of {country} is {capital}.")
            cats.append("fact")
            texts.append(f"{capital} is the capital city of {country}.")
            cats.append("fact")
    for i in range(n_filler):
        texts.append(
            f"Filler note {i}: the river runs past the old mill and the birds sing at dawn."
        )
        cats.append("filler")
    texts.append(
        "A very long document. " + " ".join(f"word{i}" for i in range(80))
    )  # gets truncated
    cats.append("general")
    docs = pd.DataFrame({"doc_id": range(len(texts)), "text": texts})
    manifest = pd.DataFrame({"doc_id": range(len(texts)), "category": cats, "language": "en"})
    return docs, manifest


TOKENIZER = {
    "pretrained": None,
    "vocab_size": 400,
    "min_frequency": 2,
    "eos_token": "<|endoftext|>",
    "pad_token": "<|padding|>",
    "seq_len": 24,
    "packing": False,
    "heldout_fraction": 0.1,
    "heldout_categories": ["filler"],
}

PRETRAIN = {
    "epochs": 0,
    "max_steps": 30,
    "batch_size": 16,
    "lr": 3e-3,
    "min_lr_ratio": 0.1,
    "warmup_steps": 5,
    "weight_decay": 0.1,
    "beta1": 0.9,
    "beta2": 0.95,
    "grad_clip": 1.0,
    "eval_every": 10,
    "eval_batch_size": 64,
    "dtype": "float32",
    "models": {
        "tiny": {
            "arch": "gpt_neox",
            "hidden_size": 16,
            "num_layers": 1,
            "num_heads": 2,
            "intermediate_size": 64,
            "max_position": 32,
        },
        "tinyllama": {
            "arch": "llama",
            "hidden_size": 16,
            "num_layers": 1,
            "num_heads": 2,
            "intermediate_size": 32,
            "max_position": 32,
        },
    },
}


def make_config(**overrides) -> dict:
    config = {
        "seed": 0,
        "device": "cpu",
        "models": ["tiny"],
        "tokenizer": dict(TOKENIZER),
        "pretrain": dict(PRETRAIN),
    }
    for section, values in overrides.items():
        config[section] = {**config[section], **values}
    return config


def ctx_for(rule: str, config: dict, inputs: dict, outputs: dict, **kw) -> StageContext:
    for path in outputs.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    return StageContext(rule=rule, config=config, input=inputs, output=outputs, **kw)
