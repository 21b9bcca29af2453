"""Batched preconditioned conjugate gradients in the tracked-parameter space.

Vectors are dicts module -> [Q, d_out, d_in (+1 bias)] (the layout of ``modules.py``); every query q
is its own CG run (per-query step sizes α_q, β_q), all advanced together so one operator product
serves every query. The operator and the preconditioner are plain callables (the refinement's are
in :mod:`.products` and :mod:`.refine`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch

from .errors import RefinementError

Vectors = dict[str, torch.Tensor]  # module -> [Q, O, I]


def _dot(x: Vectors, y: Vectors) -> torch.Tensor:
    """Per-query ⟨x_q, y_q⟩ over all modules, accumulated in float64 across modules (a batched
    dot product in the vectors' dtype: no float64 copies of [Q, O, I] tensors)."""
    return sum(
        torch.linalg.vecdot(x[m].flatten(1), y[m].to(x[m].dtype).flatten(1)).double() for m in x
    )


def _per_query(coef: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-query coefficient [Q] shaped to broadcast over ``like`` [Q, ...] in its dtype."""
    return coef.to(like).view(-1, *[1] * (like.dim() - 1))


def _safe_ratio(num: torch.Tensor, den: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """num / den where ``active``, 0 elsewhere (no division by an inactive query's zero)."""
    return torch.where(active, num / torch.where(active, den, torch.ones_like(den)), 0.0)


@dataclass
class PCGResult:
    x: Vectors
    residuals: torch.Tensor  # [steps + 1, Q]: ‖r_k‖ / ‖b‖ (recurrence residual; step 0 = 1)
    # [steps + 1, Q]: the same in the preconditioner's norm, sqrt(r_kᵀM⁻¹r_k / bᵀM⁻¹b)
    preconditioned: torch.Tensor
    seconds: list[float] = field(default_factory=list)  # wall time of each step
    iterates: dict[int, Vectors] = field(default_factory=dict)  # step -> x_k (kept steps, the last)


def _check_curvature(pap: torch.Tensor, active: torch.Tensor, step: int) -> None:
    bad = active & ~(torch.isfinite(pap) & (pap > 0))
    if bool(bad.any()):
        q = int(bad.nonzero()[0])
        raise RefinementError(
            f"conjugate gradients broke down at step {step} for query {q}: pᵀ(G+λ)p = "
            f"{float(pap[q]):.3g} (the operator is not positive definite; check the damping)"
        )


def pcg(
    operator: Callable[[Vectors], Vectors],
    precondition: Callable[[Vectors], Vectors],
    b: Vectors,
    steps: int,
    keep: Iterable[int] = (),
) -> PCGResult:
    """k steps of preconditioned CG for all queries at once (per-query α, β), from x₀ = 0.
    ``keep``: earlier steps whose iterates x_k are returned too (``PCGResult.iterates``; the last
    step's always is), so one run serves several k.

    Raises :class:`RefinementError` naming the query and step when pᵀ A p ≤ 0 or is non-finite
    (the operator is not positive definite there). A query whose residual is exactly zero (e.g. a zero
    gradient) stays where it is."""
    x = {m: torch.zeros_like(v) for m, v in b.items()}
    r = {m: v.clone() for m, v in b.items()}
    z = precondition(r)
    p = {m: v.clone() for m, v in z.items()}
    rz = _dot(r, z)
    bnorm = _dot(b, b).sqrt()
    safe = torch.where(bnorm > 0, bnorm, torch.ones_like(bnorm))
    res = [_dot(r, r).sqrt() / safe]
    rz0 = torch.where(rz > 0, rz, torch.ones_like(rz))
    pres = [torch.ones_like(rz)]
    secs, keep, iterates = [], set(keep), {}
    for k in range(1, steps + 1):
        t = time.perf_counter()
        ap = operator(p)
        pap = _dot(p, ap)
        active = rz > 0
        _check_curvature(pap, active, k)
        alpha = _safe_ratio(rz, pap, active)
        for m in x:
            x[m] = x[m] + _per_query(alpha, x[m]) * p[m]
            r[m] = r[m] - _per_query(alpha, r[m]) * ap[m].to(r[m])
        res.append(_dot(r, r).sqrt() / safe)
        if k in keep:
            iterates[k] = {m: v.clone() for m, v in x.items()}
        z = precondition(r)
        rz_new = _dot(r, z)
        pres.append((rz_new.clamp_min(0) / rz0).sqrt())
        if k < steps:
            beta = _safe_ratio(rz_new, rz, active)
            for m in p:
                p[m] = z[m] + _per_query(beta, z[m]) * p[m]
        rz = rz_new
        secs.append(time.perf_counter() - t)
    iterates[steps] = x
    return PCGResult(x, torch.stack(res), torch.stack(pres), secs, iterates)
