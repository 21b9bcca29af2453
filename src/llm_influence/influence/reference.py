"""Dense references for validation (tiny models only: everything here is dense over the tracked
parameters). Independent of the engine's hooks: gradients come from autograd on the parameters.
Per-example gradients and the exact GNH's rows of any task's loss (:mod:`.tasks`), Woodbury and
LiSSA solves, the engine's factors as a dense matrix, textbook PCG. Every estimator's scores on one task: :mod:`.comparison`.

Layout: the tracked parameter vector is the concatenation over modules of DW [d_out, d_in(+1)]
flattened row-major (bias = last column; GPT-2 Conv1D weights transposed to [out, in]).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .tasks import Task, resolve_task
from .tracked import is_conv1d, module_info


def _param_layout(model: nn.Module, modules: list[str]):
    named = dict(model.named_modules())
    out = []
    for m in modules:
        mod = named[m]
        info = module_info(m, mod)
        out.append((m, mod, info, is_conv1d(mod)))
    return out


def _flat_grad(layout, grads_w, grads_b) -> torch.Tensor:
    parts = []
    for (_, _, info, conv), gw, gb in zip(layout, grads_w, grads_b):
        w = gw.transpose(-1, -2) if conv else gw  # [..., O, I]
        if info.bias:
            w = torch.cat([w, gb.unsqueeze(-1)], dim=-1)
        parts.append(w.reshape(*w.shape[:-2], -1) if w.dim() > 2 else w.reshape(-1))
    return torch.cat(parts, dim=-1)


def module_slices(model: nn.Module, modules: list[str]) -> list[slice]:
    out, s = [], 0
    for _, _, info, _ in _param_layout(model, modules):
        n = info.d_out * info.d_in_h
        out.append(slice(s, s + n))
        s += n
    return out


def _params(layout):
    ps = []
    for _, mod, info, _ in layout:
        ps.append(mod.weight)
        if info.bias:
            ps.append(mod.bias)
    return ps


def _split(layout, grads):
    gw, gb, i = [], [], 0
    for _, _, info, _ in layout:
        gw.append(grads[i])
        i += 1
        if info.bias:
            gb.append(grads[i])
            i += 1
        else:
            gb.append(None)
    return gw, gb


def per_example_gradients(
    model: nn.Module,
    modules: list[str],
    batches: Iterable,
    targets: str | int = "labels",
    task: Task | None = None,
) -> torch.Tensor:
    """[N, P] explicit per-example gradients of the task's training loss on the batch's own
    targets (``targets="labels"``), of its measurement (``"measurement"``) or of the training loss
    on targets drawn from the model (``targets=seed``, same sampling as the engine)."""
    task = resolve_task(task)
    layout = _param_layout(model, modules)
    params = _params(layout)
    rows = []
    was = model.training
    model.eval()
    for batch in batches:
        for i in range(task.n_examples(batch)):
            b = task.rows(batch, slice(i, i + 1))
            out = task.forward(model, b)
            if targets == "measurement":
                loss = task.measurement(out, b)
            else:
                loss = task.training_loss(out, b, None if targets == "labels" else int(targets))
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
            rows.append(_flat_grad(layout, *_split(layout, grads)).detach().double())
    model.train(was)
    return torch.stack(rows)


def gnh_row_blocks(
    model: nn.Module, modules: list[str], batches: Iterable, task: Task | None = None
) -> list[torch.Tensor]:
    """Per example the rows R_n [K_n, P] with its exact GNH J_nᵀ H_n J_n = R_nᵀ R_n: the
    Jacobian-vector products c_kᵀ J_n of the task's Hessian rows (causal LM: √p_v (e_v − p_t)ᵀ J_t
    for every counted position t and vocabulary entry v; MSE: the rows of J_n)."""
    task = resolve_task(task)
    layout = _param_layout(model, modules)
    params = _params(layout)
    width = sum(info.d_out * info.d_in_h for _, _, info, _ in layout)
    blocks = []
    model.eval()
    for batch in batches:
        for i in range(task.n_examples(batch)):
            b = task.rows(batch, slice(i, i + 1))
            out = task.forward(model, b)
            cot = task.hessian_rows(out, b)
            if cot.shape[0] == 0:
                blocks.append(torch.zeros(0, width, dtype=torch.float64))
                continue
            grads = torch.autograd.grad(
                out, params, grad_outputs=cot, is_grads_batched=True, allow_unused=True
            )
            grads = [
                torch.zeros(cot.shape[0], *p_.shape, dtype=out.dtype) if g is None else g
                for p_, g in zip(params, grads)
            ]
            blocks.append(_flat_grad(layout, *_split(layout, grads)).detach().double())
    return blocks


def gnh_rows(
    model: nn.Module, modules: list[str], batches: Iterable, task: Task | None = None
) -> tuple[torch.Tensor, int]:
    """R [K, P] with the exact GNH G = R^T R / N (N = number of examples/sequences), the rows of
    :func:`gnh_row_blocks` stacked."""
    blocks = gnh_row_blocks(model, modules, batches, task)
    return torch.cat(blocks), len(blocks)


def block_grams(R: torch.Tensor, damp: torch.Tensor, slices: list[slice]) -> list[torch.Tensor]:
    """R_m D_m^-1 R_m^T per module block (their sum is the full R D^-1 R^T)."""
    return [(R[:, sl] / damp[sl]) @ R[:, sl].T for sl in slices]


def woodbury_solve(
    R: torch.Tensor, gram: torch.Tensor, n: int, damp: torch.Tensor, X: torch.Tensor
) -> torch.Tensor:
    """(R^T R / n + diag(damp))^-1 X for X [P, Q] given gram = R D^-1 R^T [K, K] (Woodbury)."""
    DX = X / damp[:, None]
    inner = n * torch.eye(R.shape[0], dtype=R.dtype) + gram
    return DX - (R.T @ torch.linalg.solve(inner, R @ DX)) / damp[:, None]


def _top_eigenvalue(gv, damp: torch.Tensor, P: int, dtype, gen: torch.Generator) -> float:
    """λ_max(G + D) by 30 power iterations from a seeded random start."""
    v = torch.randn(P, dtype=dtype, generator=gen)
    top = torch.tensor(1.0, dtype=dtype)
    for _ in range(30):
        v = gv(v) + damp * v
        top = v.norm()
        v = v / top
    return float(top)


def lissa(
    R: torch.Tensor,
    n_rows_per_seq: list[int],
    n: int,
    damp: torch.Tensor,
    X: torch.Tensor,
    depth: int = 300,
    batch: int | None = None,
    repeats: int = 1,
    seed: int = 0,
) -> torch.Tensor:
    """LiSSA: x <- X + (I - (G_b + D)/s) x, result x / s (averaged over ``repeats``).

    G_b is the exact GNH of ``batch`` random fit sequences (None = all: deterministic Richardson
    iteration, truncated at ``depth``); s = 1.1 × λ_max(G + D) × N / batch bounds every minibatch.
    Full batch, G = Rᵀ R / n is formed once when that is cheaper than two passes over R per step
    (K >= P/2: R·x with only Q columns is memory bound, 7x slower on our CPU)."""
    gen = torch.Generator().manual_seed(seed)
    K, P = R.shape
    G = R.T @ R / n if batch is None and 2 * K >= P else None
    gv = (lambda x: G @ x) if G is not None else (lambda x: R.T @ (R @ x) / n)  # noqa: E731
    top = _top_eigenvalue(gv, damp, P, R.dtype, gen)
    if batch is None:
        s = 1.1 * top
        x = X.clone()
        for _ in range(depth):
            x = X + x - (gv(x) + damp[:, None] * x) / s
        return x / s
    nseq = len(n_rows_per_seq)
    b = min(batch, nseq)
    s = 1.1 * top * nseq / b
    starts = [0, *torch.tensor(n_rows_per_seq).cumsum(0).tolist()]
    out = torch.zeros_like(X)
    for _ in range(repeats):
        x = X.clone()
        for _ in range(depth):
            pick = torch.randperm(nseq, generator=gen)[:b].tolist()
            Rb = torch.cat([R[starts[i] : starts[i + 1]] for i in pick])
            x = X + x - (Rb.T @ (Rb @ x) / b + damp[:, None] * x) / s
        out += x / s
    return out / repeats


def dense_preconditioner(factors, modules: list[str]) -> torch.Tensor:
    """[P, P] block-diagonal matrix of the factors' damped inverse Q_S[(Q_Sᵀ V Q_A) ⊘ (Λ+λ)]Q_Aᵀ,
    built as (Q_S ⊗ Q_A) diag(1/(Λ+λ)) (Q_S ⊗ Q_A)ᵀ in the row-major DW layout."""
    blocks = []
    for m in modules:
        qs, qa = factors.q_s[m].double(), factors.q_a[m].double()
        basis = torch.kron(qs, qa)  # vec_row(Q_S X Q_Aᵀ) = (Q_S ⊗ Q_A) vec_row(X)
        inv = 1.0 / (factors.lam[m].double().flatten() + factors.damping[m])
        blocks.append(basis @ torch.diag(inv) @ basis.T)
    return torch.block_diag(*blocks)


def dense_pcg(A: torch.Tensor, Minv: torch.Tensor, B: torch.Tensor, steps: int) -> torch.Tensor:
    """Textbook preconditioned CG from x₀ = 0, one right-hand side (column of B [P, Q]) at a time."""
    out = torch.zeros_like(B)
    for q in range(B.shape[1]):
        b = B[:, q]
        x = torch.zeros_like(b)
        r = b.clone()
        z = Minv @ r
        p = z.clone()
        for _ in range(steps):
            ap = A @ p
            alpha = (r @ z) / (p @ ap)
            x = x + alpha * p
            r_new = r - alpha * ap
            z_new = Minv @ r_new
            p = z_new + ((r_new @ z_new) / (r @ z)) * p
            r, z = r_new, z_new
        out[:, q] = x
    return out
