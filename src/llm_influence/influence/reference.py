"""Reference estimators for validation (tiny models only: everything here is dense over the tracked
parameters). Independent of the engine's hooks: gradients come from autograd on the parameters.

Layout: the tracked parameter vector is the concatenation over modules of DW [d_out, d_in(+1)]
flattened row-major (bias = last column; GPT-2 Conv1D weights transposed to [out, in]).

Estimators (all return scores [Q, N] = q^T M r with the same sign convention as the engine):
  exact     (G + D)^-1 with G the exact GNH (expected over the model's predictive distribution)
            = (1/N) Σ_n J_n^T H_n J_n over the fit sequences, D = per-module λ; solved by Woodbury
  block     the same, G restricted to per-module diagonal blocks
  lissa     LiSSA recursion with exact per-sequence GNH-vector products
  gradient_dot  identity
  kfac, ekfac   the engine (factors fitted with ``label_samples`` label draws per fit sequence)
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace

import torch
from torch import nn

from .arguments import FitConfig, ScoreConfig
from .factors import build_factors, compute_eigenbasis, fit_covariance, fit_eigen_correction
from .modules import find_tracked_modules, is_conv1d, module_info
from .refine import RefineConfig, refine_queries
from .scoring import precondition_queries, score_training


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


def _logits(model, ids, mask):
    out = model(input_ids=ids, attention_mask=mask)
    return out.logits if hasattr(out, "logits") else out[0]


def per_example_gradients(
    model: nn.Module, modules: list[str], batches: Iterable, targets: str | int = "labels"
) -> torch.Tensor:
    """[N, P] explicit per-sequence gradients of the summed CE (``targets="labels"``) or of the
    sampled-label loss (``targets=seed``, same sampling as the engine)."""
    from .modules import sample_targets, summed_loss

    layout = _param_layout(model, modules)
    params = _params(layout)
    rows = []
    was = model.training
    model.eval()
    for batch in batches:
        for i in range(batch["input_ids"].shape[0]):
            b = {k: v[i : i + 1] for k, v in batch.items()}
            logits = _logits(model, b["input_ids"], b["attention_mask"])
            tgt = (
                b["labels"][:, 1:]
                if targets == "labels"
                else sample_targets(logits, b, int(targets))
            )
            loss = summed_loss(logits, tgt)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]
            rows.append(_flat_grad(layout, *_split(layout, grads)).detach().double())
    model.train(was)
    return torch.stack(rows)


def gnh_rows(model: nn.Module, modules: list[str], batches: Iterable) -> tuple[torch.Tensor, int]:
    """R [K, P] with the exact GNH G = R^T R / N (N = number of sequences); rows are
    √p_v (e_v − p_t)^T J_t for every counted position t and vocabulary entry v."""
    layout = _param_layout(model, modules)
    params = _params(layout)
    rows, n = [], 0
    model.eval()
    for batch in batches:
        for i in range(batch["input_ids"].shape[0]):
            n += 1
            ids, mask, lab = (
                batch[k][i : i + 1] for k in ("input_ids", "attention_mask", "labels")
            )
            logits = _logits(model, ids, mask)[0, :-1]  # [T-1, V]
            pos = (lab[0, 1:] != -100).nonzero().flatten()
            if len(pos) == 0:
                continue
            p = torch.softmax(logits.detach().double(), -1)[pos]  # [t, V]
            V = p.shape[-1]
            eye = torch.eye(V, dtype=p.dtype)
            cot = p.sqrt().unsqueeze(-1) * (eye.unsqueeze(0) - p.unsqueeze(1))  # [t, V(v), V]
            full = torch.zeros(len(pos), V, logits.shape[0], V, dtype=logits.dtype)
            full[torch.arange(len(pos)), :, pos, :] = cot.to(logits.dtype)
            full = full.reshape(-1, logits.shape[0], V)
            grads = torch.autograd.grad(
                logits, params, grad_outputs=full, is_grads_batched=True, allow_unused=True
            )
            grads = [
                torch.zeros(full.shape[0], *p_.shape, dtype=logits.dtype) if g is None else g
                for p_, g in zip(params, grads)
            ]
            rows.append(_flat_grad(layout, *_split(layout, grads)).detach().double())
    return torch.cat(rows), n


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
    iteration, truncated at ``depth``); s = 1.1 × λ_max(G + D) × N / batch bounds every minibatch."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(R.shape[1], dtype=R.dtype, generator=gen)
    for _ in range(30):
        v = R.T @ (R @ v) / n + damp * v
        top = v.norm()
        v = v / top
    nseq = len(n_rows_per_seq)
    b = nseq if batch is None else min(batch, nseq)
    s = 1.1 * float(top) * nseq / b
    starts = [0, *torch.tensor(n_rows_per_seq).cumsum(0).tolist()]
    out = torch.zeros_like(X)
    for _ in range(repeats if batch is not None else 1):
        x = X.clone()
        for _ in range(depth):
            if batch is None:
                Rb, m = R, n
            else:
                pick = torch.randperm(nseq, generator=gen)[:b].tolist()
                Rb, m = torch.cat([R[starts[i] : starts[i + 1]] for i in pick]), b
            x = X + x - (Rb.T @ (Rb @ x) / m + damp[:, None] * x) / s
        out += x / s
    return out / (repeats if batch is not None else 1)


def _rows_per_seq(model, modules, batches) -> list[int]:
    out = []
    V = None
    for b in batches:
        for i in range(b["input_ids"].shape[0]):
            if V is None:
                V = _logits(model, b["input_ids"][:1], b["attention_mask"][:1]).shape[-1]
            out.append(int((b["labels"][i, 1:] != -100).sum()) * V)
    return out


def _corr(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean over queries of the Pearson / Spearman correlation across training sequences."""
    from scipy.stats import pearsonr, spearmanr

    ps, ss = [], []
    for x, y in zip(a.double().numpy(), b.double().numpy()):
        ps.append(pearsonr(x, y)[0])
        ss.append(spearmanr(x, y)[0])
    return float(sum(ps) / len(ps)), float(sum(ss) / len(ss))


ESTIMATORS = ("exact", "block", "ekfac", "kfac", "lissa", "gradient_dot")
_REFINED = re.compile(r"^ekfac_pcg(\d+)_(gnh|sampled)$")


def parse_refined(name: str) -> tuple[int, str] | None:
    """``ekfac_pcg{k}_{products}`` -> (k, products); None for any other estimator name."""
    m = _REFINED.match(name)
    return (int(m.group(1)), m.group(2)) if m else None


def _engine_factors(
    model: nn.Module, modules: list[str], fit_batches, strategy: str, label_samples: int
):
    """The engine's KFAC/EK-FAC factors with ``label_samples`` label draws per fit sequence (merged)."""
    dtype = "float64" if next(model.parameters()).dtype == torch.float64 else "float32"
    cfg = FitConfig(strategy=strategy, dtype=dtype, factor_dtype="float64", device="cpu",
                    module_patterns=[f"^{m}$".replace(".", r"\.") for m in modules], progress=False)  # fmt: skip
    cov = corr = None
    for s in range(label_samples):  # several label draws per fit sequence, merged exactly
        cs = fit_covariance(model, fit_batches, replace(cfg, seed=s))
        cov = cs if cov is None else cov.merge(cs)
    eig = compute_eigenbasis(cov)
    if strategy == "ekfac":
        for s in range(label_samples):
            cr = fit_eigen_correction(model, fit_batches, eig, replace(cfg, seed=s))
            corr = cr if corr is None else corr.merge(cr)
    return build_factors(eig, corr, cfg)


def estimator_scores(
    model: nn.Module,
    train_batches: Sequence,
    query_batches: Sequence,
    fit_batches: Sequence | None = None,
    estimators: Sequence[str] = ESTIMATORS,
    modules: list[str] | None = None,
    damping_scale: float = 0.1,
    label_samples: int = 4,
    lissa_depth: int = 300,
    lissa_batch: int | None = None,
    diagnostics: dict | None = None,
    refine_label_samples: int | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Scores [Q, N] of each estimator, all with the same per-module damping
    λ_m = damping_scale × trace(G_m)/P_m of the exact GNH (= the mean of the exact Λ).

    ``ekfac_pcg{k}_{gnh|sampled}``: EK-FAC refined by k PCG steps on the fit set (``refine.py``;
    sampled products use ``refine_label_samples`` draws, None = the EK-FAC fit's ``label_samples``,
    seeds from 0 so the first draws are the fit's own); their per-step
    residuals go into ``diagnostics[name]`` when a dict is given."""
    fit_batches = train_batches if fit_batches is None else fit_batches
    modules = find_tracked_modules(model) if modules is None else modules
    slices = module_slices(model, modules)
    t0 = time.perf_counter()
    R, n = gnh_rows(model, modules, fit_batches)
    t_rows = time.perf_counter() - t0
    damp = torch.empty(R.shape[1], dtype=torch.float64)
    damp_by_module = {}
    for m, sl in zip(modules, slices):
        lam = float((R[:, sl] ** 2).sum() / n / (sl.stop - sl.start)) * damping_scale
        damp[sl] = lam
        damp_by_module[m] = lam
    Gq = per_example_gradients(model, modules, query_batches)  # [Q, P]
    Gt = per_example_gradients(model, modules, train_batches)  # [N, P]
    out: dict[str, torch.Tensor] = {}
    secs: dict[str, float] = {}
    grams = None
    fitted, fit_secs, runs = {}, {}, {}
    residuals = {} if diagnostics is None else diagnostics  # refined rows: RefinedQueries.metrics()
    for est in estimators:
        t = time.perf_counter()
        if est in ("exact", "block") and grams is None:
            grams = block_grams(R, damp, slices)
            t_rows += time.perf_counter() - t
            t = time.perf_counter()
        if est == "exact":
            out[est] = woodbury_solve(R, sum(grams), n, damp, Gq.T).T @ Gt.T
            secs[est] = time.perf_counter() - t + t_rows
        elif est == "block":
            pre = torch.zeros_like(Gq)
            for sl, gr in zip(slices, grams):
                pre[:, sl] = woodbury_solve(R[:, sl], gr, n, damp[sl], Gq[:, sl].T).T
            out[est] = pre @ Gt.T
            secs[est] = time.perf_counter() - t + t_rows
        elif est == "lissa":
            pre = lissa(
                R,
                _rows_per_seq(model, modules, fit_batches),
                n,
                damp,
                Gq.T,
                depth=lissa_depth,
                batch=lissa_batch,
            ).T
            out[est] = pre @ Gt.T
            secs[est] = time.perf_counter() - t + t_rows
        elif est == "gradient_dot":
            out[est] = Gq @ Gt.T
            secs[est] = time.perf_counter() - t
        elif est in ("ekfac", "kfac") or parse_refined(est) is not None:
            refined = parse_refined(est)
            kind = "ekfac" if refined else est
            fit_now = kind not in fitted
            if fit_now:  # refined rows reuse EK-FAC's factors (every row counts the fit time)
                t_fit = time.perf_counter()
                fitted[kind] = _engine_factors(model, modules, fit_batches, kind, label_samples)
                fitted[kind].damping = dict(damp_by_module)
                fit_secs[kind] = time.perf_counter() - t_fit
            fac = fitted[kind]
            dtype = "float64" if next(model.parameters()).dtype == torch.float64 else "float32"
            sc = ScoreConfig(rank=None, dtype=dtype, device="cpu", progress=False, per_token=False)
            extra = 0.0 if fit_now else fit_secs[kind]
            if refined is None:
                q = precondition_queries(model, fac, query_batches, sc)
            else:  # one PCG run per product kind serves every k (row time: its first k steps)
                steps, products = refined
                if products not in runs:
                    ks = [
                        parse_refined(e)[0]
                        for e in estimators
                        if (parse_refined(e) or (0, ""))[1] == products
                    ]
                    draws = label_samples if refine_label_samples is None else refine_label_samples
                    rc = RefineConfig(steps=max(ks), products=products, label_samples=draws,
                                      batch_size=16, dtype=dtype, device="cpu", progress=False)  # fmt: skip
                    runs[products] = refine_queries(
                        model, fac, query_batches, fit_batches, rc, sc, also_steps=ks
                    )
                ref = runs[products]
                q = ref.at[steps]
                m = ref.metrics()
                residuals[est] = {**m, "steps": steps, "residual_mean": m["residual_mean"][: steps + 1],
                                  "residual_max": m["residual_max"][: steps + 1],
                                  "preconditioned_residual_mean": m["preconditioned_residual_mean"][: steps + 1],
                                  "step_seconds": m["step_seconds"][:steps]}  # fmt: skip
                t = time.perf_counter()  # scoring only; the refinement's share is added below
                extra = fit_secs[kind] + ref.setup_seconds + sum(ref.seconds[:steps])
            out[est] = score_training(model, fac, q, train_batches, sc).total.double()
            secs[est] = time.perf_counter() - t + extra
        else:
            raise ValueError(
                f"unknown estimator {est!r}; choose from {ESTIMATORS} or ekfac_pcg<k>_<gnh|sampled>"
            )
    return out, secs


def compare_estimators(
    model: nn.Module,
    train_batches: Sequence,
    query_batches: Sequence,
    estimators: Sequence[str] = ESTIMATORS,
    reference: str = "exact",
    **kw,
):
    """DataFrame(estimator, pearson, spearman, seconds) against the ``reference`` estimator
    (mean over queries of the correlation across training sequences)."""
    import pandas as pd

    ests = list(dict.fromkeys([reference, *estimators]))
    scores, secs = estimator_scores(model, train_batches, query_batches, estimators=ests, **kw)
    rows = []
    for e in estimators:
        p, s = _corr(scores[e], scores[reference])
        rows.append({"estimator": e, "pearson": p, "spearman": s, "seconds": secs[e]})
    return pd.DataFrame(rows)


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
