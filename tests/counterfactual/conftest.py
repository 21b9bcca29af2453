"""Session fixture: the smoke corpus, tokenizer, tokenised set, queries and a tiny model trained for
a few steps, built with the real stage entry points (tests/attribution/attribution_fixtures.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "attribution"))

from attribution_fixtures import run, smoke_config  # noqa: E402

STEPS = 12  # enough to move the weights; every test compares runs of the same recipe


def tiny_config() -> dict:
    config = smoke_config()
    config["pretrain"]["max_steps"] = STEPS
    # smaller than config/smoke.yaml's section: two subsets, two documents per fact query
    config["counterfactual"] = {"models": ["tiny"], "subsets": 2, "alpha": 0.5, "seeds": 1,
                                "remove_k": 2, "leaveout_tag": "factual", "n_bootstrap": 50,
                                "keep_models": False}  # fmt: skip
    return config


@pytest.fixture(scope="session")
def cf_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("counterfactual")
    config = tiny_config()
    p = {k: root / k for k in ("corpus", "tokenizer", "tokenized", "queries")}
    p["model"] = root / "models" / "tiny"
    run("llm_influence.corpus.stage:build_corpus", config, {}, {"corpus": p["corpus"]})
    run("llm_influence.models.stage:train_tokenizer", config, {"corpus": p["corpus"]},
        {"tokenizer": p["tokenizer"]})  # fmt: skip
    run("llm_influence.models.stage:tokenize_corpus", config,
        {"corpus": p["corpus"], "tokenizer": p["tokenizer"]}, {"tokenized": p["tokenized"]})  # fmt: skip
    run("llm_influence.models.stage:pretrain_model", config,
        {"tokenized": p["tokenized"], "tokenizer": p["tokenizer"]}, {"model": p["model"]},
        {"model": "tiny"})  # fmt: skip
    run("llm_influence.queries.stage:build_queries", config,
        {"corpus": p["corpus"], "tokenizer": p["tokenizer"]}, {"queries": p["queries"]})  # fmt: skip
    return {"root": root, "config": config, **p}
