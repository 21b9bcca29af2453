"""Query-row groups: several estimators' query matrices scored side by side in one training pass.

A *group* is one estimator's per-module query matrices X_q [Q, O, I] (e.g. the EK-FAC-preconditioned
gradients (G+λ)⁻¹∇f_q, or the raw gradients ∇f_q for the gradient dot product), each compressed to
rank r as configured. :func:`build_query_groups` computes the query gradients *once* and hands them to
every group's builder; :func:`llm_influence.influence.fused.score_groups` then contracts all groups'
rows with each training sequence's gradient in the same pass.

Adding an estimator is one entry of a ``{name: builder}`` mapping, a builder being any function
``QueryInputs -> {module: [Q, O, I] tensor}`` (or an :class:`~.low_rank.Eigenbasis`, which is
compressed without forming the dense matrix)::

    groups = {**DEFAULT_GROUPS, "ekfac_pcg4": lambda x: refine(x, steps=4)}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .arguments import ScoreConfig
from .factors import Factors, setup_device
from .low_rank import QueryMatrix
from .preconditioned import PreconditionedQueries, fill, solve
from .preconditioned import query_gradients as query_gradients  # re-exported
from .tasks import Task


@dataclass
class QueryInputs:
    """What a group builder may use: the model and factors (on the scoring device), the raw
    per-module query gradients [Q, O, I] (summed CE over completion tokens), the query batches
    and the scoring config."""

    model: nn.Module
    factors: Factors
    gradients: dict[str, torch.Tensor]
    query_batches: Iterable
    cfg: ScoreConfig


GroupBuilder = Callable[[QueryInputs], Mapping[str, QueryMatrix]]


def preconditioned(x: QueryInputs) -> dict[str, QueryMatrix]:
    """(G+λ)⁻¹∇f_q with the loaded factors (EK-FAC, or KFAC/identity if fitted so), kept in the
    factors' eigenbasis so that only its rank-r factors are rotated back (:mod:`.low_rank`)."""
    return solve(x.factors, x.gradients)


def raw(x: QueryInputs) -> dict[str, torch.Tensor]:
    """∇f_q itself: the gradient dot product baseline."""
    return dict(x.gradients)


# name -> builder. The stage glue scores these two; a new estimator is one more entry here or in the
# mapping passed to build_query_groups.
DEFAULT_GROUPS: dict[str, GroupBuilder] = {"ekfac": preconditioned, "graddot": raw}


def build_query_groups(
    model: nn.Module,
    factors: Factors,
    query_batches: Iterable,
    cfg: ScoreConfig | None = None,
    groups: Mapping[str, GroupBuilder] | None = None,
    task: Task | None = None,
    *,
    gradients: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, PreconditionedQueries]:
    """One pass over the queries, then every group's matrices, each compressed to ``cfg.rank``
    (truncated SVD per module; full rank when None). With ``cfg.rerank_full`` the uncompressed
    matrices are kept too, for the full-rank re-score of the top-k. ``gradients``: the queries'
    :func:`query_gradients`, when the caller already has them (the pass is then skipped)."""
    cfg = cfg or ScoreConfig()
    groups = DEFAULT_GROUPS if groups is None else groups
    if not groups:
        raise ValueError("no query groups given")
    if gradients is None:
        gradients = query_gradients(model, factors, query_batches, cfg, task)
    grads = dict(gradients)
    if list(grads) != list(factors.modules):
        raise ValueError(f"query gradients of modules {list(grads)}, expected {factors.modules}")
    dev, cdt, _ = setup_device(model, cfg.device, cfg.dtype)
    inputs = QueryInputs(model, factors.to(dev, cdt), grads, query_batches, cfg)
    out = {}
    for name, build in groups.items():
        mats = build(inputs)
        if list(mats) != list(factors.modules):
            raise ValueError(
                f"query group {name!r} returned modules {list(mats)}, expected {factors.modules}"
            )
        q = PreconditionedQueries(
            list(factors.modules),
            list(factors.infos),
            int(grads[factors.modules[0]].shape[0]),
            cfg.rank,
            fingerprint=factors.fingerprint,
            strategy=name,
        )
        for m, p in mats.items():
            if tuple(p.shape) != tuple(grads[m].shape):
                raise ValueError(
                    f"query group {name!r}, module {m!r}: shape {tuple(p.shape)}, "
                    f"expected {tuple(grads[m].shape)}"
                )
        out[name] = fill(q, mats, cfg.rank, cfg.rerank_full)
    return out
