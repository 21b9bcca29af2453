"""Stage entry points: covariance shard -> eigenbasis -> correction shard -> factors -> score shard -> gather.

Every statistic is a sum with a count, so the merge of shards equals a single pass (tested), and no
job ever holds more than one shard of the corpus.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from llm_influence.artifacts.factors import CORRECTION, COVARIANCE, EIGEN, FACTORS
from llm_influence.artifacts.queries import read_queries
from llm_influence.artifacts.tfidf import read_candidates
from llm_influence.attribution.data import (
    Batches,
    fit_indices,
    load_query_batch_data,
    load_training_set,
    shard_bounds,
)
from llm_influence.attribution.tables import gather_shards, write_shard
from llm_influence.influence import (
    CorrectionStats,
    CovarianceStats,
    Eigenbasis,
    Factors,
    FitConfig,
    ScoreConfig,
    build_factors,
    compute_eigenbasis,
    fit_covariance,
    fit_eigen_correction,
    iter_scores,
    precondition_queries,
)
from llm_influence.models.loading import load_model, load_tokenizer
from llm_influence.workflow.context import StageContext


def _fit_config(ctx: StageContext, strategy: str | None = None) -> FitConfig:
    cfg = ctx.section("factors")
    return FitConfig(
        strategy=strategy or cfg["strategy"],
        damping=cfg["damping"],
        damping_scale=float(cfg["damping_scale"]),
        sample_labels=bool(cfg["sample_labels"]),
        seed=ctx.seed,
        batch_size=int(cfg["batch_size"]),
        dtype=cfg["dtype"],
        device=ctx.device,
        module_patterns=cfg.get("module_patterns"),
    )


def _score_config(ctx: StageContext) -> ScoreConfig:
    cfg = ctx.section("scores")
    return ScoreConfig(
        rank=cfg["rank"],
        per_layer=True,
        per_token=True,
        batch_size=int(cfg["batch_size"]),
        dtype=cfg["dtype"],
        device=ctx.device,
    )


def _fit_shard_batches(ctx: StageContext) -> tuple[Batches, int]:
    cfg = ctx.section("factors")
    data = load_training_set(ctx.input["tokenized"])
    indices = fit_indices(len(data["input_ids"]), cfg["fit_sequences"], ctx.seed)
    start, stop = shard_bounds(len(indices), int(cfg["shards"]), int(ctx.wildcards["shard"]))
    return Batches(data, indices[start:stop], int(cfg["batch_size"])), stop - start


def fit_covariance_shard(ctx: StageContext) -> dict[str, Any]:
    """Activation and pre-activation-gradient covariance sums over one shard of the fit set."""
    model = load_model(ctx.input["model"], device=ctx.device)
    batches, n = _fit_shard_batches(ctx)
    stats = fit_covariance(model, batches, _fit_config(ctx))
    stats.save(Path(ctx.output["covariance"]) / COVARIANCE)
    return {"sequences": n}


def fit_eigenbasis(ctx: StageContext) -> dict[str, Any]:
    """Merge the covariance shards and eigendecompose each factor in float64."""
    stats = _merge([CovarianceStats.load(Path(d) / COVARIANCE) for d in ctx.input["covariance"]])
    eigen = compute_eigenbasis(stats)
    eigen.save(Path(ctx.output["eigen"]) / EIGEN)
    return {"shards": len(ctx.input["covariance"])}


def fit_correction_shard(ctx: StageContext) -> dict[str, Any]:
    """Eigenvalue-correction sums E[((Q_A ⊗ Q_S)ᵀ Dθ)²] over one shard of the fit set."""
    model = load_model(ctx.input["model"], device=ctx.device)
    eigen = Eigenbasis.load(Path(ctx.input["eigen"]) / EIGEN)
    batches, n = _fit_shard_batches(ctx)
    stats = fit_eigen_correction(model, batches, eigen, _fit_config(ctx))
    stats.save(Path(ctx.output["correction"]) / CORRECTION)
    return {"sequences": n}


def assemble_factors(ctx: StageContext) -> dict[str, Any]:
    """Merge correction shards and build the damped EK-FAC (or KFAC/identity) preconditioner."""
    cfg = ctx.section("factors")
    model = load_model(ctx.input["model"], device="cpu")
    eigen = Eigenbasis.load(Path(ctx.input["eigen"]) / EIGEN)
    correction = None
    if cfg["strategy"] == "ekfac":
        correction = _merge(
            [CorrectionStats.load(Path(d) / CORRECTION) for d in ctx.input["correction"]]
        )
    factors = build_factors(eigen, correction, _fit_config(ctx), model=model)
    factors.save(Path(ctx.output["factors"]) / FACTORS)
    return {"modules": len(factors.modules), "strategy": cfg["strategy"]}


def score_shard(ctx: StageContext) -> dict[str, Any]:
    """Scores of one shard of the training set for every query: EK-FAC (total, layer, token) and
    the gradient-dot-product baseline (total)."""
    cfg = ctx.section("scores")
    model = load_model(ctx.input["model"], device=ctx.device)
    factors = Factors.load(Path(ctx.input["factors"]) / FACTORS)
    data = load_training_set(ctx.input["tokenized"])
    n = len(data["input_ids"])
    start, stop = shard_bounds(n, int(cfg["shards"]), int(ctx.wildcards["shard"]))
    indices = torch.arange(start, stop)
    query_batches = Batches(
        load_query_batch_data(ctx.input["queries"]), torch.arange(_n_queries(ctx)), 64
    )
    score_cfg = _score_config(ctx)

    queries = precondition_queries(model, factors, query_batches, score_cfg)
    totals, layers, tokens = [], [], []
    for batch in iter_scores(
        model, factors, queries, Batches(data, indices, score_cfg.batch_size), score_cfg
    ):
        totals.append(batch.total)
        layers.append(batch.layers)
        tokens.append(_pad_tokens(batch.tokens, data["input_ids"].shape[1]))
    result = {
        "total": torch.cat(totals, dim=1),
        "layers": torch.cat(layers, dim=1),
        "tokens": torch.cat(tokens, dim=1),
    }

    baseline_cfg = ScoreConfig(
        rank=score_cfg.rank,
        per_layer=False,
        per_token=False,
        batch_size=score_cfg.batch_size,
        dtype=score_cfg.dtype,
        device=score_cfg.device,
    )
    identity = build_factors(None, None, _fit_config(ctx, strategy="identity"), model=model)
    id_queries = precondition_queries(model, identity, query_batches, baseline_cfg)
    result["graddot"] = torch.cat(
        [
            b.total
            for b in iter_scores(
                model,
                identity,
                id_queries,
                Batches(data, indices, score_cfg.batch_size),
                baseline_cfg,
            )
        ],
        dim=1,
    )
    write_shard(
        Path(ctx.output["shard"]),
        result,
        doc_id=data["doc_id"][start:stop],
        input_ids=data["input_ids"][start:stop],
        attention_mask=data["attention_mask"][start:stop],
        modules=list(factors.modules),
        topk_tokens=int(cfg["topk_tokens"]),
    )
    return {"sequences": stop - start}


def gather_scores(ctx: StageContext) -> dict[str, Any]:
    """Concatenate the shards into the per-model tables of docs/design.md."""
    cfg = ctx.section("scores")
    queries = read_queries(ctx.input["queries"])
    candidates = read_candidates(ctx.input["tfidf"])
    tokenizer = load_tokenizer(ctx.input["model"])
    return gather_shards(
        [Path(d) for d in ctx.input["shards"]],
        Path(ctx.output["table"]),
        query_names=list(queries["name"]),
        candidates=candidates,
        tokenizer=tokenizer,
        topk_tokens=int(cfg["topk_tokens"]),
        method=ctx.section("factors")["strategy"],
        normalise=cfg["normalise"],
    )


def _n_queries(ctx: StageContext) -> int:
    return len(read_queries(ctx.input["queries"]))


def _pad_tokens(tokens: torch.Tensor, width: int) -> torch.Tensor:
    return torch.nn.functional.pad(tokens, (0, width - tokens.shape[-1]))


def _merge(parts: list) -> Any:
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    return merged
