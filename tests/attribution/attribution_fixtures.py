"""Smoke artifacts (corpus -> tokenizer -> tokenized -> tiny model -> queries -> tfidf) built once
per session by calling the real stage entry points in-process, the way the rules call them."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from llm_influence.workflow.runner import run_stage

REPO = Path(__file__).resolve().parents[2]


def smoke_config() -> dict:
    config = yaml.safe_load((REPO / "config" / "smoke.yaml").read_text())
    config["device"] = "cpu"
    config["queries"]["file"] = str(REPO / config["queries"]["file"])
    return config


def run(
    entry: str, config: dict, inputs: dict, outputs: dict, wildcards: dict | None = None
) -> None:
    run_stage(
        entry,
        rule=entry.rsplit(":", 1)[1],
        config=config,
        inputs=inputs,
        outputs={k: str(v) for k, v in outputs.items()},
        wildcards=wildcards or {},
        threads=2,
    )


def build_artifacts(root: Path) -> dict:
    """Paths of the upstream artifacts of the smallest smoke model."""
    config = smoke_config()
    model_name = config["models"][0]
    paths = {
        "corpus": root / "corpus",
        "tokenizer": root / "tokenizer",
        "tokenized": root / "tokenized",
        "model": root / "models" / model_name,
        "queries": root / "queries",
        "tfidf": root / "tfidf",
    }
    run("llm_influence.corpus.stage:build_corpus", config, {}, {"corpus": paths["corpus"]})
    run(
        "llm_influence.models.stage:train_tokenizer",
        config,
        {"corpus": paths["corpus"]},
        {"tokenizer": paths["tokenizer"]},
    )
    run(
        "llm_influence.models.stage:tokenize_corpus",
        config,
        {"corpus": paths["corpus"], "tokenizer": paths["tokenizer"]},
        {"tokenized": paths["tokenized"]},
    )
    run(
        "llm_influence.models.stage:pretrain_model",
        config,
        {"tokenized": paths["tokenized"], "tokenizer": paths["tokenizer"]},
        {"model": paths["model"]},
        {"model": model_name},
    )
    run(
        "llm_influence.queries.stage:build_queries",
        config,
        {"corpus": paths["corpus"], "tokenizer": paths["tokenizer"]},
        {"queries": paths["queries"]},
    )
    run(
        "llm_influence.tfidf.stage:build_candidates",
        config,
        {"corpus": paths["corpus"], "tokenized": paths["tokenized"], "queries": paths["queries"]},
        {"tfidf": paths["tfidf"]},
    )
    return {"root": root, "config": config, "model_name": model_name, **paths}


def with_shards(config: dict, fit_shards: int, score_shards: int) -> dict:
    config = copy.deepcopy(config)
    config["factors"]["shards"] = fit_shards
    config["scores"]["shards"] = score_shards
    return config


STAGE = "llm_influence.attribution.stage"


def fit_factors(artifacts: dict, root: Path, config: dict) -> Path:
    """The factors.smk chain for one model, run in-process; returns the factors directory."""
    shards = config["factors"]["shards"]
    base = {"model": artifacts["model"], "tokenized": artifacts["tokenized"]}
    cov = [root / "covariance" / str(s) for s in range(shards)]
    for s, out in enumerate(cov):
        run(f"{STAGE}:fit_covariance_shard", config, base, {"covariance": out}, {"shard": str(s)})
    run(f"{STAGE}:fit_eigenbasis", config, {"covariance": cov}, {"eigen": root / "eigen"})
    corr = [root / "correction" / str(s) for s in range(shards)]
    for s, out in enumerate(corr):
        run(
            f"{STAGE}:fit_correction_shard",
            config,
            base | {"eigen": root / "eigen"},
            {"correction": out},
            {"shard": str(s)},
        )
    run(
        f"{STAGE}:assemble_factors",
        config,
        {"model": artifacts["model"], "eigen": root / "eigen", "correction": corr},
        {"factors": root / "ekfac"},
    )
    return root / "ekfac"


def score_table(artifacts: dict, root: Path, config: dict, factors: Path) -> Path:
    """The scores.smk chain (score shards, gather); returns the table directory."""
    base = {
        "model": artifacts["model"],
        "tokenized": artifacts["tokenized"],
        "factors": factors,
        "queries": artifacts["queries"],
        "tfidf": artifacts["tfidf"],
    }
    shards = [root / "shards" / str(s) for s in range(config["scores"]["shards"])]
    for s, out in enumerate(shards):
        run(f"{STAGE}:score_shard", config, base, {"shard": out}, {"shard": str(s)})
    run(
        f"{STAGE}:gather_scores",
        config,
        {
            "model": artifacts["model"],
            "shards": shards,
            "queries": artifacts["queries"],
            "tfidf": artifacts["tfidf"],
        },
        {"table": root / "table"},
    )
    return root / "table"


def fit_and_score(artifacts: dict, root: Path, fit_shards: int, score_shards: int) -> Path:
    """The factors.smk + scores.smk chain for one model, run in-process."""
    config = with_shards(artifacts["config"], fit_shards, score_shards)
    score_table(artifacts, root, config, fit_factors(artifacts, root, config))
    return root
