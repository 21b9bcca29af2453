"""Scoring: precondition the queries once, then one pass over the training sequences returns, for
all queries at once, total, per-module and per-token scores (Grosse et al. 2023, Eq. 30-31).

score(q, m) = Σ_modules <P_q, DW_m>,  P_q = (G+λ)^-1 DQ_q,  DW_m = Σ_t g_t a_t^T
token score (q, m, t) = Σ_modules g_t^T P_q a_t   (position t = the *input* token t)

Contractions, chosen per module by cost (``_plan``):
  lowrank_token  Σ_k (U_k·g_t)(V_k·a_t)          cost T·Q·r·(O+I) per sequence, never forms DW
  dense_token    g_t^T (P_q a_t)                  cost T·Q·O·I
  dense_seq      <P_q, DW>, DW formed once        cost T·O·I + Q·O·I   (no per-token scores)
  lowrank_seq    = lowrank_token summed over t
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from llm_influence.utils.io import load_tensors, save_tensors

from .arguments import ScoreConfig
from .errors import FactorMismatchError
from .factors import Factors
from .low_rank import low_rank as low_rank  # re-exported: refine.py imports it from here
from .modules import ModuleInfo, iterate
from .preconditioned import PreconditionedQueries, prepare_pass
from .preconditioned import precondition_queries as precondition_queries  # re-exported
from .tasks import Task, resolve_task


@dataclass
class ScoreBatch:
    total: torch.Tensor  # [Q, B]
    layers: torch.Tensor  # [Q, B, M]
    tokens: torch.Tensor | None  # [Q, B, T]


@dataclass
class Scores:
    total: torch.Tensor  # [Q, N]
    layers: torch.Tensor | None  # [Q, N, M]
    tokens: torch.Tensor | None  # [Q, N, T]
    modules: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path) -> None:
        t = {"total": self.total}
        if self.layers is not None:
            t["layers"] = self.layers
        if self.tokens is not None:
            t["tokens"] = self.tokens
        save_tensors(path, t, {"kind": "scores", "modules": self.modules, "meta": self.meta})

    @classmethod
    def load(cls, path) -> Scores:
        t, meta = load_tensors(path)
        return cls(
            t["total"], t.get("layers"), t.get("tokens"), meta["modules"], meta.get("meta", {})
        )


def _plan(info: ModuleInfo, q: PreconditionedQueries, per_token: bool, contraction: str) -> str:
    O, I, Q = info.d_out, info.d_in_h, q.n_queries
    r = q.u[info.name].shape[-1] if q.low_rank else None
    if contraction != "auto":
        if contraction.startswith("lowrank") and r is None:
            raise ValueError(
                "low-rank contraction requested but the queries are full rank (rank=None)"
            )
        return contraction
    T = 64  # representative length; only the ratios matter
    costs = {"dense_token": T * Q * O * I} if per_token else {"dense_seq": T * O * I + Q * O * I}
    if r is not None:
        costs["lowrank_token" if per_token else "lowrank_seq"] = T * Q * r * (O + I)
    return min(costs, key=costs.get)


def _module_scores(
    mode: str,
    a: torch.Tensor,
    g: torch.Tensor,
    name: str,
    q: PreconditionedQueries,
    mats: dict,
    chunk: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """-> (layer scores [B, Q], token scores [B, T, Q] or None)."""
    B, T, I = a.shape
    O = g.shape[-1]
    if mode in ("lowrank_token", "lowrank_seq"):
        u, v = mats[name]  # [O, Q*r], [I, Q*r]
        Q = q.n_queries
        tok = ((g @ u) * (a @ v)).view(B, T, Q, -1).sum(-1)  # [B,T,Q]
        return tok.sum(1), tok
    if mode == "dense_seq":
        dw = g.transpose(1, 2) @ a  # [B,O,I]
        return dw.reshape(B, O * I) @ mats[name].T, None  # mats: [Q, O*I]
    # dense_token
    p = mats[name]  # [Q, O, I]
    toks = []
    for s in range(0, p.shape[0], chunk):
        pc = p[s : s + chunk]
        x = a @ pc.reshape(-1, I).T  # [B,T,Qc*O]
        toks.append((x.view(B, T, pc.shape[0], O) * g.unsqueeze(2)).sum(-1))
    tok = torch.cat(toks, dim=-1)
    return tok.sum(1), tok


def _prepare_mats(
    q: PreconditionedQueries, modes: dict[str, str], dev, cdt, force_dense: bool = False
) -> dict:
    mats = {}
    for m in q.modules:
        mode = modes[m]
        if mode.startswith("lowrank"):
            u = q.u[m].to(dev, cdt)
            v = q.v[m].to(dev, cdt)
            Q, O, r = u.shape
            mats[m] = (
                u.permute(1, 0, 2).reshape(O, Q * r),
                v.permute(1, 0, 2).reshape(v.shape[1], Q * r),
            )
        else:
            p = (q.dense[m] if (force_dense or not q.low_rank) else q.matrix(m)).to(dev, cdt)
            mats[m] = p.reshape(p.shape[0], -1) if mode == "dense_seq" else p
    return mats


def iter_scores(
    model: nn.Module,
    factors: Factors,
    queries: PreconditionedQueries,
    train_batches: Iterable,
    cfg: ScoreConfig | None = None,
    *,
    contraction: str = "auto",
    task: Task | None = None,
    _force_dense: bool = False,
) -> Iterator[ScoreBatch]:
    """One pass over ``train_batches``; yields a :class:`ScoreBatch` per batch (on CPU, float32).

    ``contraction``: auto | lowrank_token | dense_token | dense_seq | lowrank_seq (tests force one)."""
    cfg = cfg or ScoreConfig()
    if queries.fingerprint != factors.fingerprint or queries.modules != factors.modules:
        raise FactorMismatchError(
            "queries were preconditioned with other factors (fingerprint/modules differ)"
        )
    dev, cdt, acdt, ctx, tracker = prepare_pass(model, factors, cfg, task)
    per_token = cfg.per_token
    if _force_dense:
        modes = {i.name: ("dense_token" if per_token else "dense_seq") for i in tracker.infos}
    else:
        modes = {i.name: _plan(i, queries, per_token, contraction) for i in tracker.infos}
    mats = _prepare_mats(queries, modes, dev, cdt, force_dense=_force_dense)
    with tracker:
        for bi, raw in enumerate(iterate(train_batches, cfg.progress, "scores")):
            batch = tracker.task.prepare_batch(raw, dev, ctx, "train", bi)
            pairs = tracker.run(batch, cdt, sample_seed=None, what="train", index=bi)
            layers, tokens = [], None
            with torch.no_grad():
                for info, (a, g) in zip(tracker.infos, pairs):
                    lay, tok = _module_scores(
                        modes[info.name], a, g, info.name, queries, mats, cfg.query_chunk
                    )
                    layers.append(lay)
                    if per_token:
                        tokens = tok if tokens is None else tokens + tok
                tracker.check(layers, "train", bi)
            lay = torch.stack(layers, dim=-1).permute(1, 0, 2)  # [Q,B,M]
            yield ScoreBatch(
                total=lay.sum(-1).float().cpu(),
                layers=lay.float().cpu(),
                tokens=tokens.permute(2, 0, 1).float().cpu() if per_token else None,
            )


def _pad_cat(parts: list[torch.Tensor]) -> torch.Tensor:
    T = max(p.shape[-1] for p in parts)
    return torch.cat([torch.nn.functional.pad(p, (0, T - p.shape[-1])) for p in parts], dim=1)


def score_training(
    model: nn.Module,
    factors: Factors,
    queries: PreconditionedQueries,
    train_batches: Iterable,
    cfg: ScoreConfig | None = None,
    **kw: Any,
) -> Scores:
    """All batches of :func:`iter_scores` concatenated; optional full-rank re-ranking of each query's top-k."""
    cfg = cfg or ScoreConfig()
    if cfg.rerank_topk is not None and iter(train_batches) is train_batches:
        raise ValueError(
            "rerank_topk needs re-iterable train_batches (a list, not a generator): two passes"
        )
    totals, layers, tokens = [], [], []
    for sb in iter_scores(model, factors, queries, train_batches, cfg, **kw):
        totals.append(sb.total)
        layers.append(sb.layers)
        if sb.tokens is not None:
            tokens.append(sb.tokens)
    total = torch.cat(totals, dim=1)
    lay = torch.cat(layers, dim=1)
    tok = _pad_cat(tokens) if tokens else None
    meta = {
        "strategy": factors.strategy,
        "rank": queries.rank,
        "fingerprint": factors.fingerprint,
        "reranked_topk": None,
    }
    if cfg.rerank_topk is not None and queries.low_rank:
        if not queries.dense:
            raise ValueError(
                "rerank_topk needs full-rank query gradients: precondition_queries with the same rerank_topk"
            )
        meta["reranked_topk"] = _rerank_topk(
            model,
            factors,
            queries,
            train_batches,
            cfg,
            resolve_task(kw.get("task")),
            total,
            lay,
            tok,
        )
    return Scores(total, lay if cfg.per_layer else None, tok, list(factors.modules), meta)


def self_influence(
    model: nn.Module,
    factors: Factors,
    batches: Iterable,
    cfg: ScoreConfig | None = None,
    *,
    task: Task | None = None,
) -> torch.Tensor:
    """score(m, m) = Σ_modules DW_m^T (G+λ)^-1 DW_m for every sequence -> [N]."""
    cfg = cfg or ScoreConfig()
    dev, cdt, acdt, ctx, tracker = prepare_pass(model, factors, cfg, task)
    fac = factors.to(dev, cdt)
    out = []
    with tracker:
        for bi, raw in enumerate(iterate(batches, cfg.progress, "self-influence")):
            batch = tracker.task.prepare_batch(raw, dev, ctx, "train", bi)
            pairs = tracker.run(batch, cdt, sample_seed=None, what="train", index=bi)
            s = torch.zeros(tracker.task.n_examples(batch), dtype=cdt, device=dev)
            with torch.no_grad():
                vs = [
                    fac.inverse_quadratic(info.name, g.transpose(1, 2) @ a)
                    for info, (a, g) in zip(tracker.infos, pairs)
                ]
                tracker.check(vs, "train", bi)
                for v in vs:
                    s += v
            out.append(s.float().cpu())
    return torch.cat(out)


def _rerank_topk(
    model: nn.Module,
    factors: Factors,
    queries: PreconditionedQueries,
    train_batches: Iterable,
    cfg: ScoreConfig,
    task: Task,
    total: torch.Tensor,
    lay: torch.Tensor,
    tok: torch.Tensor | None,
) -> int:
    """Re-score each query's top-``cfg.rerank_topk`` at full rank, in place; -> the k used."""
    k = min(cfg.rerank_topk, total.shape[1])
    top = total.topk(k, dim=1).indices  # [Q,k]
    want = torch.zeros(total.shape[1], dtype=torch.bool)
    want[top.flatten()] = True
    offset, sel_batches = 0, []
    for raw in train_batches:
        n = task.n_examples(raw)
        rows = want[offset : offset + n].nonzero().flatten()
        if len(rows):
            sel_batches.append(task.rows(raw, rows))
        offset += n
    idx = want.nonzero().flatten()
    full_t, full_l, full_k = [], [], []
    for sb in iter_scores(model, factors, queries, sel_batches, cfg, task=task, _force_dense=True):
        full_t.append(sb.total)
        full_l.append(sb.layers)
        if sb.tokens is not None:
            full_k.append(sb.tokens)
    ft, fl = torch.cat(full_t, 1), torch.cat(full_l, 1)
    pos = torch.full((total.shape[1],), -1, dtype=torch.long)
    pos[idx] = torch.arange(len(idx))
    for qi in range(total.shape[0]):
        cols = top[qi]
        total[qi, cols] = ft[qi, pos[cols]]
        lay[qi, cols] = fl[qi, pos[cols]]
        if tok is not None:
            fk = _pad_cat(full_k)
            tok[qi, cols, : fk.shape[-1]] = fk[qi, pos[cols]]
    return k
