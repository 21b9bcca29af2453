"""Query-row groups: several estimators' query matrices scored side by side in one training pass.

A *group* is one estimator's per-module query matrices X_q [Q, O, I] (e.g. the EK-FAC-preconditioned
gradients (G+λ)⁻¹∇f_q, or the raw gradients ∇f_q for the gradient dot product), each compressed to
rank r as configured. :func:`build_query_groups` computes the query gradients *once* and hands them to
every group's builder; :func:`llm_influence.influence.fused.score_groups` then contracts all groups'
rows with each training sequence's gradient in the same pass.

Adding an estimator is one entry of a ``{name: builder}`` mapping, a builder being any function
``QueryInputs -> {module: [Q, O, I] tensor}``::

    groups = {**DEFAULT_GROUPS, "ekfac_pcg4": lambda x: refine(x, steps=4)}
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .arguments import ScoreConfig
from .factors import Factors, setup_device
from .modules import context_length, iterate
from .scoring import PreconditionedQueries, low_rank, prepare_pass
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


GroupBuilder = Callable[[QueryInputs], dict[str, torch.Tensor]]


def preconditioned(x: QueryInputs) -> dict[str, torch.Tensor]:
    """(G+λ)⁻¹∇f_q with the loaded factors (EK-FAC, or KFAC/identity if fitted so)."""
    return {m: x.factors.ihvp(m, g) for m, g in x.gradients.items()}


def raw(x: QueryInputs) -> dict[str, torch.Tensor]:
    """∇f_q itself: the gradient dot product baseline."""
    return dict(x.gradients)


# name -> builder. The stage glue scores these two; a new estimator is one more entry here or in the
# mapping passed to build_query_groups.
DEFAULT_GROUPS: dict[str, GroupBuilder] = {"ekfac": preconditioned, "graddot": raw}


def query_gradients(
    model: nn.Module,
    factors: Factors,
    query_batches: Iterable,
    cfg: ScoreConfig,
    task: Task | None = None,
) -> dict[str, torch.Tensor]:
    """Per-module query gradients DQ [Q, O, I] (compute dtype, scoring device), all queries."""
    dev, cdt, acdt, _, tracker = prepare_pass(model, factors, cfg, task)
    chunks: dict[str, list[torch.Tensor]] = {m: [] for m in factors.modules}
    nq, ctx = 0, context_length(model)
    with tracker:
        for bi, rawb in enumerate(iterate(query_batches, cfg.progress, "queries")):
            batch = tracker.task.prepare_batch(rawb, dev, ctx, "query", bi)
            tracker.task.check_measurable(batch, "queries", bi, nq)
            pairs = tracker.run(batch, cdt, sample_seed=None, what="query", index=bi, measure=True)
            with torch.no_grad():
                dqs = [g.transpose(1, 2) @ a for a, g in pairs]  # [B, O, I]
                tracker.check(dqs, "query", bi)
            for info, dq in zip(tracker.infos, dqs):
                chunks[info.name].append(dq)
            nq += tracker.task.n_examples(batch)
    if nq == 0:
        raise ValueError("no query sequences given")
    return {m: torch.cat(c) for m, c in chunks.items()}


def build_query_groups(
    model: nn.Module,
    factors: Factors,
    query_batches: Iterable,
    cfg: ScoreConfig | None = None,
    groups: Mapping[str, GroupBuilder] | None = None,
    task: Task | None = None,
) -> dict[str, PreconditionedQueries]:
    """One pass over the queries, then every group's matrices, each compressed to ``cfg.rank``
    (truncated SVD per module; full rank when None). With ``cfg.rerank_full`` the uncompressed
    matrices are kept too, for the full-rank re-score of the top-k."""
    cfg = cfg or ScoreConfig()
    groups = DEFAULT_GROUPS if groups is None else groups
    if not groups:
        raise ValueError("no query groups given")
    grads = query_gradients(model, factors, query_batches, cfg, task)
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
            if cfg.rank is None:
                q.dense[m] = p
                continue
            q.u[m], q.v[m] = low_rank(p, cfg.rank)
            if cfg.rerank_full:
                q.dense[m] = p
        out[name] = q
    return out
