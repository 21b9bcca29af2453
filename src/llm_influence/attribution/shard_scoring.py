"""What one ``score_shard`` job computes, Snakemake-free (the benchmarks call it too).

One fused pass over the shard's training sequences (:func:`llm_influence.influence.score_groups`)
scores every estimator at once: the table's own estimator (total, per-module, and the per-token
scores of each query's running top-k), the gradient-dot baseline, and, when refinement is on, the
other of plain/refined EK-FAC — each one more block of query rows, not one more pass.

Which sequences a shard holds (:func:`shard_rows`): ``candidates="all"`` = a contiguous range of the
training set; ``"tfidf"`` = its part of the union of every query's TF-IDF candidates (the paper's
setting), with a ``[Q, rows]`` mask of the (query, sequence) pairs that are the query's candidates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from llm_influence.attribution.data import shard_bounds
from llm_influence.influence import (
    Factors,
    RefineConfig,
    ScoreConfig,
    build_query_groups,
    query_gradients,
    refine_queries,
    score_groups,
)
from llm_influence.influence.fused import GroupScores

CANDIDATE_MODES = ("all", "tfidf")


@dataclass
class ShardRows:
    """``rows``: training-set positions this shard scores (ascending); ``candidates`` [Q, rows] bool
    (None = every pair is scored as a candidate); ``n_train``: size of the whole training set."""

    rows: torch.Tensor
    candidates: torch.Tensor | None
    n_train: int


def shard_rows(
    doc_id: torch.Tensor,
    num_shards: int,
    shard: int,
    mode: str,
    query_names: Sequence[str],
    candidates: pd.DataFrame | None = None,
) -> ShardRows:
    """The sequences of shard ``shard`` of ``num_shards`` under ``scores.candidates = mode``."""
    n = len(doc_id)
    if mode not in CANDIDATE_MODES:
        raise ValueError(f"scores.candidates must be one of {CANDIDATE_MODES}, got {mode!r}")
    if mode == "all":
        start, stop = shard_bounds(n, num_shards, shard)
        return ShardRows(torch.arange(start, stop), None, n)
    if candidates is None:
        raise ValueError(
            "scores.candidates: tfidf needs the TF-IDF output (results/tfidf/candidates.parquet)"
        )
    docs = doc_id.numpy()
    unknown = sorted(set(candidates["doc_id"].astype(np.int64)) - set(docs.tolist()))
    if unknown:
        raise ValueError(
            f"scores.candidates: tfidf: candidate doc_id {unknown[:5]} not in the tokenised "
            f"training set ({len(unknown)} unknown; was the TF-IDF stage run on another corpus?)"
        )
    missing = [q for q in query_names if q not in set(candidates["query"])]
    if missing:
        raise ValueError(f"scores.candidates: tfidf: no TF-IDF candidates for queries {missing}")
    union = np.flatnonzero(np.isin(docs, candidates["doc_id"].to_numpy()))
    start, stop = shard_bounds(len(union), num_shards, shard)
    rows = union[start:stop]
    mask = np.zeros((len(query_names), len(rows)), dtype=bool)
    by_query = candidates.groupby("query")["doc_id"]
    for q, name in enumerate(query_names):
        mask[q] = np.isin(docs[rows], by_query.get_group(name).to_numpy())
    return ShardRows(torch.from_numpy(rows).long(), torch.from_numpy(mask), n)


def check_topk(topk: int, n_rows: int, shard: int) -> None:
    """A top-k larger than the shard cannot be filled: say so before any gradient work."""
    if topk > n_rows:
        raise ValueError(
            f"scores.topk_tokens = {topk} is larger than score shard {shard} "
            f"({n_rows} sequences): lower it or use fewer scores.shards"
        )


@dataclass
class ShardScores:
    """Per table tensor name (``total`` = the table's estimator, ``graddot``, ``plain``/``refined``)
    the group's scores; ``methods`` maps those names to method names; ``metrics`` for the stage."""

    groups: dict[str, GroupScores]
    methods: dict[str, str]
    metrics: dict[str, Any] = field(default_factory=dict)


def refined_name(strategy: str, steps: int) -> str:
    return f"{strategy}_pcg{steps}"


def score_shard_sequences(
    model: nn.Module,
    factors: Factors,
    query_batches: Iterable,
    train_batches: Iterable,
    cfg: ScoreConfig,
    *,
    candidates: torch.Tensor | None = None,
    refine: RefineConfig | None = None,
    refine_batches: Iterable | None = None,
    refine_replaces: bool = True,
    n_sequences: int | None = None,
) -> ShardScores:
    """Every estimator of one shard in one pass. With ``refine.steps > 0`` the PCG-refined IHVPs
    (:func:`refine_queries`, products over ``refine_batches``) are the table's estimator when
    ``refine_replaces`` (plain EK-FAC kept as ``plain``), else scored beside it as ``refined``."""
    grads = query_gradients(model, factors, query_batches, cfg)  # once, for every estimator
    built = build_query_groups(model, factors, query_batches, cfg, gradients=grads)
    groups = {"total": built["ekfac"], "graddot": built["graddot"]}
    methods = {"total": factors.strategy, "graddot": "graddot"}
    metrics: dict[str, Any] = {}
    if refine is not None and refine.steps > 0:
        if refine_batches is None:
            raise ValueError("refinement needs the fit batches for its operator products")
        refined = refine_queries(
            model, factors, query_batches, refine_batches, refine, cfg, gradients=grads
        )
        metrics["refine"] = refined.metrics()
        name = refined_name(factors.strategy, refine.steps)
        if refine_replaces:
            groups = {
                "total": refined.queries,
                "plain": built["ekfac"],
                "graddot": built["graddot"],
            }
            methods = {"total": name, "plain": factors.strategy, "graddot": "graddot"}
        else:
            groups["refined"] = refined.queries
            methods["refined"] = name
    out = score_groups(
        model, factors, groups, train_batches, cfg, token_groups=["total"], candidates=candidates,
        n_sequences=n_sequences,
    )  # fmt: skip
    metrics["topk_entered"] = int(out["total"].meta.get("topk_entered", 0))
    metrics["contraction"] = sorted(set(out["total"].meta["contraction"].values()))
    return ShardScores(out, methods, metrics)
