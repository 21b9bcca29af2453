"""Refined inverse-Hessian-vector products: a few steps of EK-FAC-preconditioned conjugate gradients.

EK-FAC approximates each module's damped Gauss-Newton block in a Kronecker eigenbasis; on small
transformers that basis is the main loss against the exact damped GNH. Conjugate gradients on the real
operator (G + λ) of the fit set, with the EK-FAC (or KFAC) inverse as preconditioner M⁻¹, solves
(G + λ) x_q = ∇f_q for every query at once (per-query step sizes) and converges fast because M already
captures most of the spectrum. The refined x_q replace P_q = M⁻¹∇f_q before low-rank compression and
scoring, so every score (total, layer, token, top-k) uses them.

This module is the query-facing entry point (:func:`refine_queries`); the operator products G v
(``gnh`` exact, ``sampled`` from sampled-label gradients) are in :mod:`.products`, the batched PCG
in :mod:`.pcg`.

PCG starts from x₀ = 0, so one step gives the EK-FAC solution rescaled per query by the optimal
(energy-norm) step: the same per-query correlations as EK-FAC; every further step adds one Krylov
direction. k steps cost k operator products.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .arguments import DTYPES, RefineConfig, ScoreConfig
from .factors import Factors
from .pcg import Vectors, pcg
from .preconditioned import query_gradients  # the one pass over the queries (re-exported)
from .products import damped_operator, fit_examples
from .scoring import PreconditionedQueries, low_rank
from .tasks import Task

__all__ = ["RefineConfig", "RefinedQueries", "query_gradients", "refine_queries"]


@dataclass
class RefinedQueries:
    queries: PreconditionedQueries  # after cfg.steps steps
    residuals: torch.Tensor  # [steps + 1, Q]
    preconditioned: torch.Tensor  # [steps + 1, Q]
    seconds: list[float]  # per step
    products: str
    n_sequences: int
    at: dict[int, PreconditionedQueries] = field(default_factory=dict)  # step -> queries
    setup_seconds: float = 0.0  # query gradients and set-up before the first step

    def metrics(self) -> dict[str, Any]:
        """Per-step relative residuals ‖(G+λ)x_k − ∇f‖/‖∇f‖ (mean and max over queries) for the stage.

        CG minimises the error in the (G+λ)-norm, not this Euclidean residual: it may rise for a
        step (large-eigenvalue directions) while the solution improves; the preconditioned residual
        sqrt(rᵀM⁻¹r / bᵀM⁻¹b) is the quantity PCG keeps small."""
        res = self.residuals
        return {
            "steps": int(res.shape[0] - 1),
            "products": self.products,
            "fit_sequences": self.n_sequences,
            "residual_mean": [round(float(v), 6) for v in res.mean(1)],
            "residual_max": [round(float(v), 6) for v in res.max(1).values],
            "preconditioned_residual_mean": [
                round(float(v), 6) for v in self.preconditioned.mean(1)
            ],
            "step_seconds": [round(s, 4) for s in self.seconds],
            "setup_seconds": round(self.setup_seconds, 4),
        }


def refine_queries(
    model: nn.Module,
    factors: Factors,
    query_batches: Iterable,
    fit_batches: Iterable,
    cfg: RefineConfig | None = None,
    score_cfg: ScoreConfig | None = None,
    also_steps: Iterable[int] = (),
    *,
    task: Task | None = None,
    gradients: Mapping[str, torch.Tensor] | None = None,
) -> RefinedQueries:
    """Query gradients refined by ``cfg.steps`` PCG steps on G + λ (M⁻¹ = ``factors``), then, as
    :func:`precondition_queries`, rank-``score_cfg.rank`` compressed. The result scores with
    ``iter_scores``/``score_training`` and the same ``factors``. ``fit_batches`` must be re-iterable
    (one pass per step). ``also_steps``: earlier steps whose queries are kept too (``.at[k]``).
    ``task``: the measurement and training losses (:mod:`.tasks`; default the causal LM).
    ``gradients``: the raw query gradients when the caller has them already (no query pass)."""
    t_start = time.perf_counter()
    cfg = cfg or RefineConfig()
    score_cfg = score_cfg or ScoreConfig()
    if factors.strategy == "identity":
        raise ValueError("refining needs a curvature preconditioner (ekfac or kfac), not identity")
    if cfg.steps > 0 and iter(fit_batches) is fit_batches:
        raise ValueError("refine_queries needs re-iterable fit_batches (a list): one pass per step")
    model_dtype = DTYPES[cfg.dtype]
    if gradients is None:
        gradients = query_gradients(model, factors, query_batches, score_cfg, task)
    b = {m: v.to(model_dtype) for m, v in gradients.items()}
    dev = next(model.parameters()).device
    fac = factors.to(dev, model_dtype)
    n_fit = fit_examples(fit_batches, task)
    if n_fit == 0:
        raise ValueError("refine_queries got no fit sequences")

    def precondition(v: Vectors) -> Vectors:
        return {m: fac.ihvp(m, v[m].to(dev, model_dtype)) for m in fac.modules}

    b = {m: v.to(dev) for m, v in b.items()}
    t0 = time.perf_counter() - t_start
    keep = [k for k in also_steps if 0 < k < cfg.steps]
    if any(k > cfg.steps or k < 1 for k in also_steps):
        raise ValueError(f"also_steps {list(also_steps)} must lie in 1..steps={cfg.steps}")
    op = damped_operator(model, factors, fit_batches, cfg, task=task)
    result = pcg(op, precondition, b, cfg.steps, keep=keep)
    iterates = result.iterates if cfg.steps > 0 else {0: precondition(b)}
    at = {k: _compress(factors, x, k, score_cfg) for k, x in iterates.items()}
    return RefinedQueries(at[cfg.steps], result.residuals.cpu(), result.preconditioned.cpu(),
                          result.seconds, cfg.products, n_fit, at, t0)  # fmt: skip


def _compress(
    factors: Factors, x: Vectors, steps: int, score_cfg: ScoreConfig
) -> PreconditionedQueries:
    """As :func:`precondition_queries` ends: rank-r SVD per module (and dense for re-ranking)."""
    nq = next(iter(x.values())).shape[0]
    out = PreconditionedQueries(factors.modules, factors.infos, nq, score_cfg.rank,
                                fingerprint=factors.fingerprint, strategy=f"{factors.strategy}_pcg{steps}")  # fmt: skip
    sdt = DTYPES[score_cfg.dtype] if score_cfg.dtype != "bfloat16" else torch.float32
    for m in factors.modules:
        p = x[m].to(sdt).cpu()
        if score_cfg.rank is None:
            out.dense[m] = p
            continue
        out.u[m], out.v[m] = low_rank(p, score_cfg.rank)
        if score_cfg.rerank_topk is not None or score_cfg.rerank_full:
            out.dense[m] = p
    return out
