"""Preconditioned query gradients: the per-module query matrices a scoring pass contracts with each
training sequence's gradient, dense or rank-r compressed (:mod:`.low_rank`).

:func:`query_gradients` is the one pass over the query sequences; :func:`precondition_queries`
(the two-pass API) and :func:`llm_influence.influence.build_query_groups` (the fused stage) both
start from it and compress with :func:`fill`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from llm_influence.utils.io import load_tensors, save_tensors

from .arguments import ScoreConfig
from .errors import FactorMismatchError
from .factors import Factors, check_factors, setup_device
from .low_rank import QueryMatrix, compress, dense, solve_in_eigenbasis
from .modules import ModuleInfo, Tracker, context_length, iterate
from .tasks import Task


@dataclass
class PreconditionedQueries:
    """Per module: dense P [Q, O, I] and/or low-rank factors U [Q, O, r], V [Q, I, r] with P ≈ U V^T
    (the truncated SVD; the singular values are folded into the factor on the larger side, see
    :func:`low_rank`)."""

    modules: list[str]
    infos: list[ModuleInfo]
    n_queries: int
    rank: int | None
    dense: dict[str, torch.Tensor] = field(default_factory=dict)
    u: dict[str, torch.Tensor] = field(default_factory=dict)
    v: dict[str, torch.Tensor] = field(default_factory=dict)
    fingerprint: str = ""
    strategy: str = ""

    @property
    def low_rank(self) -> bool:
        return bool(self.u)

    def matrix(self, name: str) -> torch.Tensor:
        """The (possibly rank-r) preconditioned query gradient as a dense [Q, O, I] tensor."""
        if self.low_rank:
            return self.u[name] @ self.v[name].transpose(1, 2)
        return self.dense[name]

    def save(self, path) -> None:
        t = {f"dense/{m}": x for m, x in self.dense.items()}
        t.update({f"u/{m}": x for m, x in self.u.items()})
        t.update({f"v/{m}": x for m, x in self.v.items()})
        save_tensors(
            path,
            t,
            {
                "kind": "queries",
                "modules": self.modules,
                "infos": [vars(i) for i in self.infos],
                "n_queries": self.n_queries,
                "rank": self.rank,
                "fingerprint": self.fingerprint,
                "strategy": self.strategy,
            },
        )

    @classmethod
    def load(cls, path) -> PreconditionedQueries:
        t, meta = load_tensors(path)
        pick = lambda pre: {k.split("/", 1)[1]: v for k, v in t.items() if k.startswith(pre + "/")}  # noqa: E731
        infos = [ModuleInfo(**d) for d in meta["infos"]]
        return cls(
            meta["modules"],
            infos,
            meta["n_queries"],
            meta["rank"],
            pick("dense"),
            pick("u"),
            pick("v"),
            meta["fingerprint"],
            meta["strategy"],
        )


def prepare_pass(model: nn.Module, factors: Factors, cfg: ScoreConfig, task: Task | None = None):
    """Shared set-up of the scoring passes: fingerprint check, device/dtypes, context, hooks (with
    ``task``'s forward pass and losses, default the causal LM)."""
    if cfg.check_fingerprint:
        check_factors(model, factors)
    dev, cdt, acdt = setup_device(model, cfg.device, cfg.dtype)
    tracker = Tracker(model, factors.modules, acdt, task)
    if tracker.infos != factors.infos:
        raise FactorMismatchError(
            f"factors' module shapes {factors.infos} differ from the model's {tracker.infos}"
        )
    return dev, cdt, acdt, context_length(model), tracker


def query_gradients(
    model: nn.Module,
    factors: Factors,
    query_batches: Iterable,
    cfg: ScoreConfig,
    task: Task | None = None,
) -> dict[str, torch.Tensor]:
    """Per-module query gradients DQ [Q, O, I] of the task's measurement (for the causal LM the
    summed CE over completion tokens; compute dtype, scoring device), all queries."""
    dev, cdt, acdt, ctx, tracker = prepare_pass(model, factors, cfg, task)
    chunks: dict[str, list[torch.Tensor]] = {m: [] for m in factors.modules}
    nq = 0
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
    return {m: c[0] if len(c) == 1 else torch.cat(c) for m, c in chunks.items()}


def solve(factors: Factors, gradients: Mapping[str, torch.Tensor]) -> dict[str, QueryMatrix]:
    """(G+λ)⁻¹∇f_q per module; kept in the eigenbasis (:class:`~.low_rank.Eigenbasis`) unless the
    factors are the identity."""
    if factors.strategy == "identity":
        return dict(gradients)
    return {m: solve_in_eigenbasis(factors, m, g) for m, g in gradients.items()}


def fill(
    out: PreconditionedQueries,
    mats: Mapping[str, QueryMatrix],
    rank: int | None,
    keep_dense: bool,
) -> PreconditionedQueries:
    """Store each module's matrix in ``out``: dense when ``rank`` is None, else its rank-r factors
    (and the dense matrix too when ``keep_dense``, for a full-rank re-score)."""
    for m, p in mats.items():
        if rank is None:
            out.dense[m] = dense(p)
            continue
        out.u[m], out.v[m] = compress(p, rank)
        if keep_dense:
            out.dense[m] = dense(p)
    return out


def precondition_queries(
    model: nn.Module,
    factors: Factors,
    query_batches: Iterable,
    cfg: ScoreConfig | None = None,
    *,
    task: Task | None = None,
) -> PreconditionedQueries:
    """Query gradients (of the task's measurement: for the causal LM the summed CE over completion
    tokens), preconditioned, optionally rank-r per module."""
    cfg = cfg or ScoreConfig()
    grads = query_gradients(model, factors, query_batches, cfg, task)
    dev, cdt, _ = setup_device(model, cfg.device, cfg.dtype)
    mats = solve(factors.to(dev, cdt), grads)
    out = PreconditionedQueries(
        factors.modules,
        factors.infos,
        int(grads[factors.modules[0]].shape[0]),
        cfg.rank,
        fingerprint=factors.fingerprint,
        strategy=factors.strategy,
    )
    return fill(out, mats, cfg.rank, cfg.rerank_topk is not None)
