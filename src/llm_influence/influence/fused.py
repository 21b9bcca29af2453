"""One pass over the training sequences scores every query group (see :mod:`.query_groups`) at once:
total and per-module scores for every (query, sequence), and each query's running top-k with the
per-token scores of the pairs in it (optionally re-scored at full rank).

Per module, all groups' query rows are contracted together with the sequence's gradient, by the
cheaper of (``_plan``)
  dense_seq    ⟨X_q, DW⟩ for all rows in one matmul, DW = Σ_t g_t a_tᵀ formed once per sequence:
               T·O·I + R·O·I per sequence (R = rows of all groups); X_q = U_q V_qᵀ when compressed
  lowrank_seq  Σ_t (U_qᵀg_t)·(V_qᵀa_t): T·Σ_g(Q_g r_g)·(O + I)
so the gradient-dot baseline (or a refined estimator) costs one more block of rows, not one more
forward+backward pass. Per-token scores are computed only for pairs entering a top-k
(:mod:`.topk`), P·T·r·(O + I) for P pairs.

Memory: model + factors + the groups' query matrices + one batch + the [Q, N] and [Q, N, M] tables
(+ Q·k·T for the top-k); nothing of size N·T·Q.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .arguments import ScoreConfig
from .errors import FactorMismatchError
from .factors import Factors
from .modules import ModuleInfo, context_length, iterate
from .scoring import PreconditionedQueries, prepare_pass
from .tasks import Task
from .topk import StreamingTopK, TopK

DENSE_BUDGET = 1 << 30  # bytes of dense query rows (all modules) the dense_seq contraction may hold
PAIR_ELEMENTS = 1 << 24  # elements of the gathered per-pair tensors at a time (token scores)


@dataclass
class GroupScores:
    """One group's scores: ``total`` [Q, N], ``layers`` [Q, N, M] (None when not asked), ``top`` the
    running top-k with per-token scores (None for groups without tokens)."""

    total: torch.Tensor
    layers: torch.Tensor | None
    top: TopK | None
    modules: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


def _plan(info: ModuleInfo, groups: Sequence[PreconditionedQueries], T: int = 64) -> str:
    O, I = info.d_out, info.d_in_h
    rows = sum(q.n_queries for q in groups)
    cost = {"dense_seq": T * O * I + rows * O * I}
    if all(q.low_rank for q in groups):
        qr = sum(q.n_queries * q.u[info.name].shape[-1] for q in groups)
        cost["lowrank_seq"] = T * qr * (O + I)
    return min(cost, key=cost.get)


def _plans(
    infos: list[ModuleInfo], groups: Sequence[PreconditionedQueries], contraction: str, elem: int
) -> dict[str, str]:
    if contraction != "auto":
        if contraction not in ("dense_seq", "lowrank_seq"):
            raise ValueError(
                f"contraction must be auto, dense_seq or lowrank_seq, got {contraction!r}"
            )
        if contraction == "lowrank_seq" and not all(q.low_rank for q in groups):
            raise ValueError("lowrank_seq needs every group compressed (rank is None)")
        return {i.name: contraction for i in infos}
    modes = {i.name: _plan(i, groups) for i in infos}
    rows = sum(q.n_queries for q in groups)
    # the dense rows of all modules must fit the budget: the largest modules go low rank first
    dense = sorted(
        (i for i in infos if modes[i.name] == "dense_seq"),
        key=lambda i: i.d_out * i.d_in_h,
        reverse=True,
    )
    held = sum(rows * i.d_out * i.d_in_h * elem for i in dense)
    for i in dense:
        if held <= DENSE_BUDGET or not all(q.low_rank for q in groups):
            break
        modes[i.name] = "lowrank_seq"
        held -= rows * i.d_out * i.d_in_h * elem
    return modes


def _pass_mats(
    groups: Sequence[PreconditionedQueries], modes: dict[str, str], dev, cdt
) -> dict[str, Any]:
    """Per module the stacked rows of all groups: dense [R, O·I] or (U [O, ΣQr], V [I, ΣQr])."""
    mats = {}
    for m, mode in modes.items():
        if mode == "dense_seq":
            rows = [q.matrix(m).to(dev, cdt) for q in groups]
            mats[m] = torch.cat([p.reshape(p.shape[0], -1) for p in rows])
        else:
            us = [q.u[m].to(dev, cdt) for q in groups]
            vs = [q.v[m].to(dev, cdt) for q in groups]
            mats[m] = (
                torch.cat([u.permute(1, 0, 2).reshape(u.shape[1], -1) for u in us], dim=1),
                torch.cat([v.permute(1, 0, 2).reshape(v.shape[1], -1) for v in vs], dim=1),
                [(u.shape[0], u.shape[-1]) for u in us],  # (queries, rank) per group
            )
    return mats


def _module_rows(mode: str, a: torch.Tensor, g: torch.Tensor, mat: Any) -> torch.Tensor:
    """Scores [B, R] of one module for all rows of all groups."""
    B = a.shape[0]
    if mode == "dense_seq":
        dw = g.transpose(1, 2) @ a  # [B, O, I]
        return dw.reshape(B, -1) @ mat.T
    u, v, splits = mat
    x = ((g @ u) * (a @ v)).sum(1)  # [B, ΣQr]
    out, col = [], 0
    for nq, r in splits:
        out.append(x[:, col : col + nq * r].reshape(B, nq, r).sum(-1))
        col += nq * r
    return torch.cat(out, dim=1)


def _token_mats(q: PreconditionedQueries, full: bool, dev, cdt) -> dict[str, Any]:
    """Per module what the per-token scores of one group use: (U, V) [Q, O|I, r] or dense P [Q, O, I]."""
    if full or not q.low_rank:
        return {m: q.dense[m].to(dev, cdt) for m in q.modules}
    return {m: (q.u[m].to(dev, cdt), q.v[m].to(dev, cdt)) for m in q.modules}


def _pair_tokens(
    a: torch.Tensor, g: torch.Tensor, mat: Any, qs: torch.Tensor, bs: torch.Tensor
) -> torch.Tensor:
    """Per-token scores [P, T] of one module for the pairs (query qs[p], batch row bs[p])."""
    T, I = a.shape[1], a.shape[2]
    O = g.shape[2]
    low = isinstance(mat, tuple)
    width = mat[0].shape[-1] if low else O * I
    chunk = max(1, PAIR_ELEMENTS // max(1, T * max(O, I), width))
    out = []
    for s in range(0, len(qs), chunk):
        qc, bc = qs[s : s + chunk], bs[s : s + chunk]
        if low:
            u, v = mat
            out.append(((g[bc] @ u[qc]) * (a[bc] @ v[qc])).sum(-1))  # [p,T,r] -> [p,T]
        else:
            out.append(((a[bc] @ mat[qc].transpose(1, 2)) * g[bc]).sum(-1))  # [p,T,O] -> [p,T]
    return torch.cat(out) if out else a.new_zeros(0, T)


class _Tables:
    """Each group's [Q, N] totals and [Q, N, M] module scores: preallocated when N is known,
    else collected per batch and concatenated once."""

    def __init__(self, names: list[str], n_queries: list[int], M: int, n: int | None):
        self.n = n
        if n is None:
            self.parts: dict[str, list] = {g: [] for g in names}
        else:
            self.total = {g: torch.zeros(q, n) for g, q in zip(names, n_queries)}
            self.layers = {g: torch.zeros(q, n, M) for g, q in zip(names, n_queries)}
        self.shape = dict(zip(names, n_queries)), M

    def add(self, name: str, offset: int, total: torch.Tensor, layers: torch.Tensor) -> None:
        if self.n is None:
            self.parts[name].append((total, layers))
            return
        B = total.shape[1]
        if offset + B > self.n:
            raise ValueError(f"the batches hold more than n_sequences={self.n} sequences")
        self.total[name][:, offset : offset + B] = total
        self.layers[name][:, offset : offset + B] = layers

    def result(self, name: str, seen: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n is not None:
            if seen != self.n:
                raise ValueError(f"the batches held {seen} sequences, n_sequences={self.n}")
            return self.total[name], self.layers[name]
        parts = self.parts.pop(name)
        if not parts:
            q, M = self.shape[0][name], self.shape[1]
            return torch.zeros(q, 0), torch.zeros(q, 0, M)
        return torch.cat([t for t, _ in parts], dim=1), torch.cat([lay for _, lay in parts], dim=1)


def _check_inputs(
    factors: Factors,
    groups: Mapping[str, PreconditionedQueries],
    cfg: ScoreConfig,
    token_groups: Sequence[str] | None,
    candidates: torch.Tensor | None,
) -> list[str]:
    """Refuse groups of other factors, unknown token groups, missing full-rank matrices and a
    candidate mask of the wrong shape, before any gradient work; -> the token groups."""
    if not groups:
        raise ValueError("no query groups given")
    names = list(groups)
    for n, q in groups.items():
        if q.fingerprint != factors.fingerprint or q.modules != factors.modules:
            raise FactorMismatchError(
                f"query group {n!r} was built with other factors (fingerprint/modules differ)"
            )
    token_groups = list(names[:1] if token_groups is None else token_groups)
    if not cfg.per_token:
        token_groups = []
    for n in token_groups:
        if n not in groups:
            raise ValueError(f"token group {n!r} is not one of the query groups {names}")
        if cfg.rerank_full and groups[n].low_rank and not groups[n].dense:
            raise ValueError(
                f"rerank_full needs the full-rank matrices of group {n!r}: "
                "build_query_groups with rerank_full=True"
            )
    nq = groups[names[0]].n_queries
    if candidates is not None and (candidates.dim() != 2 or candidates.shape[0] != nq):
        raise ValueError(
            f"candidates must be a [Q={nq}, N] bool mask, got {tuple(candidates.shape)}"
        )
    return token_groups


class _Pass:
    """The per-batch work of :func:`score_groups`: all groups' rows per module, the tables, and each
    token group's streaming top-k with the per-token scores of the pairs entering it."""

    def __init__(self, groups, factors, cfg, token_groups, candidates, modes, mats, dev, cdt, n):
        self.names, self.modes, self.mats = list(groups), modes, mats
        self.candidates, self.dev = candidates, dev
        qlist = [groups[g] for g in self.names]
        self.bounds, row = {}, 0
        for name, q in zip(self.names, qlist):
            self.bounds[name] = (row, row + q.n_queries)
            row += q.n_queries
        M = len(factors.modules)
        self.tops = {g: StreamingTopK(groups[g].n_queries, cfg.topk, M) for g in token_groups}
        self.tmats = {g: _token_mats(groups[g], cfg.rerank_full, dev, cdt) for g in token_groups}
        self.tables = _Tables(self.names, [q.n_queries for q in qlist], M, n)

    def batch(self, infos: list[ModuleInfo], pairs, offset: int, tracker, bi: int) -> None:
        per_module = [
            _module_rows(self.modes[i.name], a, g, self.mats[i.name])
            for i, (a, g) in zip(infos, pairs)
        ]
        tracker.check(per_module, "train", bi)
        lay = torch.stack(per_module, dim=-1).permute(1, 0, 2)  # [R,B,M]
        tot = lay.sum(-1).float().cpu()  # summed in the compute dtype
        lay = lay.float().cpu()
        for n, (lo, hi) in self.bounds.items():
            self.tables.add(n, offset, tot[lo:hi], lay[lo:hi])
        for n in self.tops:
            lo, hi = self.bounds[n]
            self._top(n, tot[lo:hi], infos, pairs, offset)

    def _top(self, n: str, tot: torch.Tensor, infos, pairs, offset: int) -> None:
        keys = tot.clone()
        B = tot.shape[1]
        if self.candidates is not None:
            allowed = self.candidates[:, offset : offset + B]
            if allowed.shape[1] != B:
                raise ValueError(
                    f"candidates cover {self.candidates.shape[1]} sequences, the batches more"
                )
            keys = keys.masked_fill(~allowed, -torch.inf)
        qs, slots, bs = self.tops[n].update(keys, offset)
        if len(qs) == 0:
            return
        qd, bd = qs.to(self.dev), bs.to(self.dev)
        per = [_pair_tokens(a, g, self.tmats[n][i.name], qd, bd) for i, (a, g) in zip(infos, pairs)]
        tokens = torch.stack(per).sum(0)
        pair_layers = torch.stack([p.sum(-1) for p in per], dim=-1)
        self.tops[n].fill(qs, slots, pair_layers.float().cpu(), tokens.float().cpu(),
                          pair_layers.sum(-1).float().cpu())  # fmt: skip


def _results(
    run: _Pass, groups, factors: Factors, cfg: ScoreConfig, modes, seen: int
) -> dict[str, GroupScores]:
    """Each group's tables (with the top-k slots re-scored at full rank under ``rerank_full``)."""
    out = {}
    for n, q in groups.items():
        total, lay = run.tables.result(n, seen)
        top = run.tops[n].result() if n in run.tops else None
        meta = {
            "rank": q.rank,
            "fingerprint": factors.fingerprint,
            "contraction": modes,
            "rerank_full": bool(cfg.rerank_full and top is not None),
        }
        if top is not None:
            meta["topk_entered"] = run.tops[n].entered
            if cfg.rerank_full:
                qi, slot = (top.index >= 0).nonzero(as_tuple=True)
                cols = top.index[qi, slot]
                total[qi, cols] = top.total[qi, slot]
                lay[qi, cols] = top.layers[qi, slot]
        out[n] = GroupScores(
            total, lay if cfg.per_layer else None, top, list(factors.modules), meta
        )
    return out


def score_groups(
    model: nn.Module,
    factors: Factors,
    groups: Mapping[str, PreconditionedQueries],
    train_batches: Iterable,
    cfg: ScoreConfig | None = None,
    *,
    token_groups: Sequence[str] | None = None,
    candidates: torch.Tensor | None = None,
    contraction: str = "auto",
    n_sequences: int | None = None,
    task: Task | None = None,
) -> dict[str, GroupScores]:
    """One forward+backward per training batch for every group at once.

    ``token_groups``: groups whose running top-``cfg.topk`` (with per-token scores) is kept; default
    the first group; none when ``cfg.per_token`` is False. ``candidates`` [Q, N] bool (pass order):
    the top-k of query q only among its candidates (e.g. its TF-IDF top-k); totals are computed for
    every pair regardless. ``cfg.rerank_full``: the top-k slots are re-scored with the groups' full-
    rank matrices (needs them kept: ``build_query_groups`` with the same cfg), and those entries of
    ``total``/``layers`` replaced, as in Grosse et al. 2023 §3.2. ``n_sequences``: how many
    sequences the batches hold, when known: the [Q, N] and [Q, N, M] tables are then allocated
    once and filled in place (flat memory: no per-batch pieces and no second copy at the end).
    ``task``: the training loss (:mod:`.tasks`; default the causal LM)."""
    cfg = cfg or ScoreConfig()
    token_groups = _check_inputs(factors, groups, cfg, token_groups, candidates)
    qlist = list(groups.values())
    dev, cdt, acdt, _, tracker = prepare_pass(model, factors, cfg, task)
    modes = _plans(tracker.infos, qlist, contraction, torch.finfo(cdt).bits // 8)
    mats = _pass_mats(qlist, modes, dev, cdt)
    run = _Pass(groups, factors, cfg, token_groups, candidates, modes, mats, dev, cdt, n_sequences)
    offset, ctx = 0, context_length(model)
    with tracker:
        for bi, raw in enumerate(iterate(train_batches, cfg.progress, "scores")):
            batch = tracker.task.prepare_batch(raw, dev, ctx, "train", bi)
            pairs = tracker.run(batch, cdt, sample_seed=None, what="train", index=bi)
            with torch.no_grad():
                run.batch(tracker.infos, pairs, offset, tracker, bi)
            offset += tracker.task.n_examples(batch)
    if candidates is not None and candidates.shape[1] != offset:
        raise ValueError(f"candidates cover {candidates.shape[1]} sequences, the batches {offset}")
    return _results(run, groups, factors, cfg, modes, offset)
