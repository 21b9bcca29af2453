"""The exact damped Gauss-Newton influence of the regression task, computed independently of the
engine (the reference the engine's estimators are checked against; every estimator itself runs
through the engine with ``RegressionTask``, see :mod:`.compare`).

For L = 0.5 (f(x) - y)^2 (Gaussian likelihood, unit variance) on the engine's parameter layout (per
tracked nn.Linear: DW [d_out, d_in + 1], bias last, row-major), from forward hooks and one backward
pass of the summed output (no engine code):

  J_n = ∂f(x_n)/∂θ (one row per example; the output is scalar), G = J^T J / N (the exact GNH, which is
  also the true Fisher);
  gradients ∇L_n = (f_n - y_n) J_n for training and query examples;
  per-module damping λ_m = damping_scale × trace(G_m) / P_m (the rule of every estimator);
  scores ∇L_qᵀ (G + λ)⁻¹ ∇L_n by a dense damped solve (Woodbury when N < P).
"""

from __future__ import annotations

import time

import torch
from torch import nn


def damped_solve(R: torch.Tensor, n: int, damp: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """(Rᵀ R / n + diag(damp))⁻¹ X for X [P, Q]; Woodbury when R has fewer rows than columns."""
    K, P = R.shape
    if K >= P:
        return torch.linalg.solve(R.T @ R / n + torch.diag(damp), X)
    DX = X / damp[:, None]
    inner = n * torch.eye(K, dtype=R.dtype) + (R / damp) @ R.T
    return DX - (R.T @ torch.linalg.solve(inner, R @ DX)) / damp[:, None]


def per_example_factors(
    model: nn.Module, modules: list[str], x: torch.Tensor
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """(f [N], ā per module [N, d_in+1], s per module [N, d_out]) for a model with scalar output."""
    named = dict(model.named_modules())
    acts, outs, handles = {}, {}, []
    for m in modules:

        def hook(mod, args, out, m=m):
            acts[m] = args[0].detach()
            out.retain_grad()
            outs[m] = out

        handles.append(named[m].register_forward_hook(hook))
    try:
        with torch.enable_grad():
            f = model(x).squeeze(-1)
            f.sum().backward()  # examples are independent: row n of each output grad is ∂f_n/∂s_n
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
    a_list, s_list = [], []
    for m in modules:
        a = acts[m]
        if named[m].bias is not None:
            a = torch.cat([a, torch.ones_like(a[:, :1])], dim=-1)
        a_list.append(a.double())
        s_list.append(outs[m].grad.detach().double())
    return f.detach().double(), a_list, s_list


def jacobian_rows(a_list: list[torch.Tensor], s_list: list[torch.Tensor]) -> torch.Tensor:
    """J [N, P] in the engine's layout (s āᵀ flattened row-major, modules concatenated)."""
    return torch.cat(
        [(s[:, :, None] * a[:, None, :]).reshape(len(a), -1) for a, s in zip(a_list, s_list)], dim=1
    )


def _damping(R: torch.Tensor, n: int, sizes: list[int], damping_scale: float) -> torch.Tensor:
    """[P] damping: per module damping_scale × mean of the exact GNH block's diagonal."""
    damp, start = torch.empty(R.shape[1], dtype=torch.float64), 0
    for p in sizes:
        sl = slice(start, start + p)
        damp[sl] = float((R[:, sl] ** 2).sum() / n / p) * damping_scale
        start += p
    return damp


def exact_scores(
    model: nn.Module,
    modules: list[str],
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_query: torch.Tensor,
    y_query: torch.Tensor,
    damping_scale: float = 0.1,
) -> tuple[torch.Tensor, float]:
    """Scores [Q, N] ∇L_qᵀ (G + λ)⁻¹ ∇L_n of the exact damped GNH (sign convention of the
    engine), and their wall time (s)."""
    model.eval()
    t0 = time.perf_counter()
    f_t, a_t, s_t = per_example_factors(model, modules, x_train)
    R = jacobian_rows(a_t, s_t)  # G = Rᵀ R / N
    f_q, a_q, s_q = per_example_factors(model, modules, x_query)
    Gt = (f_t - y_train.double())[:, None] * R
    Gq = (f_q - y_query.double())[:, None] * jacobian_rows(a_q, s_q)
    damp = _damping(
        R, R.shape[0], [a.shape[1] * s.shape[1] for a, s in zip(a_t, s_t)], damping_scale
    )
    scores = damped_solve(R, R.shape[0], damp, Gq.T).T @ Gt.T
    return scores, time.perf_counter() - t0
