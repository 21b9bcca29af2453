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
from llm_influence.attribution.shard_scoring import check_topk, score_shard_sequences, shard_rows
from llm_influence.attribution.tables import gather_shards, write_shard
from llm_influence.influence import (
    CorrectionStats,
    CovarianceStats,
    Eigenbasis,
    Factors,
    FitConfig,
    RefineConfig,
    ScoreConfig,
    build_factors,
    compute_eigenbasis,
    fit_covariance,
    fit_eigen_correction,
)
from llm_influence.models.loading import load_model, load_tokenizer
from llm_influence.utils.heap import fix_mmap_threshold
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
        topk=int(cfg["topk_tokens"]),
        rerank_full=bool(cfg["rerank_full"]),
        batch_size=int(cfg["batch_size"]),
        dtype=cfg["dtype"],
        device=ctx.device,
    )


def _refine_config(ctx: StageContext) -> RefineConfig:
    cfg = ctx.section("scores")
    return RefineConfig(
        steps=cfg["refine_steps"],
        products=cfg["refine_products"],
        seed=ctx.seed,
        batch_size=int(cfg["batch_size"]),
        dtype="float32" if cfg["dtype"] == "bfloat16" else cfg["dtype"],
        device=ctx.device,
    )


def _refine_batches(ctx: StageContext, data: dict[str, torch.Tensor]) -> Batches:
    """The fit set's sequences (``factors.fit_sequences``), or a seeded ``scores.refine_sequences``
    of them, for the operator products."""
    indices = fit_indices(len(data["input_ids"]), ctx.section("factors")["fit_sequences"], ctx.seed)
    wanted = ctx.section("scores")["refine_sequences"]
    if wanted is not None:
        if wanted > len(indices):
            raise ValueError(
                f"scores.refine_sequences = {wanted} is larger than the fit set "
                f"({len(indices)} sequences, factors.fit_sequences)"
            )
        pick = torch.randperm(len(indices), generator=torch.Generator().manual_seed(ctx.seed + 1))
        indices = indices[pick[:wanted]].sort().values
    return Batches(data, indices, int(ctx.section("scores")["batch_size"]))


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
    """One fused pass over one shard of the training set scores every query: the table's
    estimator (total, layer, token scores of each query's top-k), the gradient-dot baseline and,
    with ``scores.refine_steps``, plain and PCG-refined EK-FAC side by side. The glibc mmap
    threshold is fixed first so the job's memory stays flat in the shard's size."""
    fix_mmap_threshold()
    cfg = ctx.section("scores")
    data = load_training_set(ctx.input["tokenized"])
    queries = read_queries(ctx.input["queries"])
    shard = int(ctx.wildcards["shard"])
    tfidf_dir = ctx.input.get("tfidf") or None  # the rule gives it only with candidates: tfidf
    tfidf = read_candidates(tfidf_dir) if cfg["candidates"] == "tfidf" and tfidf_dir else None
    rows = shard_rows(
        data["doc_id"], int(cfg["shards"]), shard, cfg["candidates"], list(queries["name"]), tfidf
    )
    check_topk(int(cfg["topk_tokens"]), len(rows.rows), shard)
    refine = _refine_config(ctx)
    model = load_model(ctx.input["model"], device=ctx.device)
    factors = Factors.load(Path(ctx.input["factors"]) / FACTORS)
    score_cfg = _score_config(ctx)
    scores = score_shard_sequences(
        model,
        factors,
        Batches(load_query_batch_data(ctx.input["queries"]), torch.arange(len(queries)), 64),
        Batches(data, rows.rows, score_cfg.batch_size),
        score_cfg,
        candidates=rows.candidates,
        refine=refine,
        refine_batches=_refine_batches(ctx, data) if refine.steps > 0 else None,
        refine_replaces=bool(cfg["refine_replaces"]),
        n_sequences=len(rows.rows),
    )
    write_shard(
        Path(ctx.output["shard"]), scores, rows=rows, data=data, modules=list(factors.modules)
    )
    return {"sequences": len(rows.rows), "candidates": cfg["candidates"], **scores.metrics}


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
        normalise=cfg["normalise"],
    )


def _merge(parts: list) -> Any:
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    return merged
