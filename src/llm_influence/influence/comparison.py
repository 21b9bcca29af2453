"""Every estimator's influence scores on one tiny task, and their agreement with the exact ones
(the validation study; dense references in :mod:`.reference`).

Estimators (all return scores [Q, N] = q^T M r with the same sign convention as the engine):
  exact     (G + D)^-1 with G the exact GNH (expected over the model's predictive distribution)
            = (1/N) Σ_n J_n^T H_n J_n over the fit sequences, D = per-module λ; solved by Woodbury
  block     the same, G restricted to per-module diagonal blocks
  lissa     LiSSA recursion with exact per-sequence GNH-vector products
  gradient_dot  identity
  kfac, ekfac   the engine (factors fitted with ``label_samples`` label draws per fit sequence)
  ekfac_pcg{k}_{gnh|sampled}  EK-FAC refined by k PCG steps (the engine's refinement)
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from .arguments import FitConfig, ScoreConfig
from .fitting import build_factors, compute_eigenbasis, fit_covariance, fit_eigen_correction
from .reference import (
    block_grams,
    gnh_row_blocks,
    lissa,
    module_slices,
    per_example_gradients,
    woodbury_solve,
)
from .refine import RefineConfig, refine_queries
from .scoring import precondition_queries, score_training
from .tasks import Task
from .tracked import find_tracked_modules


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
    model: nn.Module, modules: list[str], fit_batches, strategy: str, label_samples: int, task
):
    """The engine's KFAC/EK-FAC factors with ``label_samples`` label draws per fit sequence (merged)."""
    dtype = "float64" if next(model.parameters()).dtype == torch.float64 else "float32"
    cfg = FitConfig(strategy=strategy, dtype=dtype, factor_dtype="float64", device="cpu",
                    module_patterns=[f"^{m}$".replace(".", r"\.") for m in modules], progress=False)  # fmt: skip
    cov = corr = None
    for s in range(label_samples):  # several label draws per fit sequence, merged exactly
        cs = fit_covariance(model, fit_batches, replace(cfg, seed=s), task=task)
        cov = cs if cov is None else cov.merge(cs)
    eig = compute_eigenbasis(cov)
    if strategy == "ekfac":
        for s in range(label_samples):
            cr = fit_eigen_correction(model, fit_batches, eig, replace(cfg, seed=s), task=task)
            corr = cr if corr is None else corr.merge(cr)
    return build_factors(eig, corr, cfg)


def _damping(R: torch.Tensor, n: int, modules: list[str], slices: list[slice], scale: float):
    """Per-module damping λ_m = scale × trace(G_m)/P_m of the exact GNH, as a [P] vector and by
    module."""
    damp = torch.empty(R.shape[1], dtype=torch.float64)
    by_module = {}
    for m, sl in zip(modules, slices):
        lam = float((R[:, sl] ** 2).sum() / n / (sl.stop - sl.start)) * scale
        damp[sl] = lam
        by_module[m] = lam
    return damp, by_module


class _EngineRows:
    """The engine's rows (kfac, ekfac, ekfac_pcg{k}_{products}): factors fitted once per kind
    with the exact GNH's damping; one PCG run per product kind serves every k."""

    def __init__(self, model, modules, batches, estimators, damping, label_samples,
                 refine_label_samples, residuals, task):  # fmt: skip
        self.model, self.modules, self.estimators, self.task = model, modules, estimators, task
        self.train, self.query, self.fit = batches
        self.damping, self.label_samples = damping, label_samples
        self.refine_draws = label_samples if refine_label_samples is None else refine_label_samples
        self.residuals = residuals
        self.fitted, self.fit_secs, self.runs = {}, {}, {}
        dtype = "float64" if next(model.parameters()).dtype == torch.float64 else "float32"
        self.dtype = dtype
        self.sc = ScoreConfig(rank=None, dtype=dtype, device="cpu", progress=False, per_token=False)

    def _factors(self, kind: str) -> bool:
        """Fit ``kind``'s factors unless done; whether this call fitted them."""
        if kind in self.fitted:
            return False
        t_fit = time.perf_counter()
        fac = _engine_factors(
            self.model, self.modules, self.fit, kind, self.label_samples, self.task
        )
        fac.damping = dict(self.damping)
        self.fitted[kind] = fac
        self.fit_secs[kind] = time.perf_counter() - t_fit
        return True

    def _refined(self, est: str, steps: int, products: str):
        """EK-FAC refined by ``steps`` PCG steps, and the seconds of its refinement share."""
        if products not in self.runs:
            ks = [parse_refined(e)[0] for e in self.estimators
                  if (parse_refined(e) or (0, ""))[1] == products]  # fmt: skip
            rc = RefineConfig(steps=max(ks), products=products, label_samples=self.refine_draws,
                              batch_size=16, dtype=self.dtype, device="cpu", progress=False)  # fmt: skip
            self.runs[products] = refine_queries(
                self.model, self.fitted["ekfac"], self.query, self.fit, rc, self.sc, also_steps=ks,
                task=self.task,
            )  # fmt: skip
        ref = self.runs[products]
        m = ref.metrics()
        self.residuals[est] = {**m, "steps": steps, "residual_mean": m["residual_mean"][: steps + 1],
                               "residual_max": m["residual_max"][: steps + 1],
                               "preconditioned_residual_mean": m["preconditioned_residual_mean"][: steps + 1],
                               "step_seconds": m["step_seconds"][:steps]}  # fmt: skip
        return ref.at[steps], ref.setup_seconds + sum(ref.seconds[:steps])

    def scores(self, est: str) -> tuple[torch.Tensor, float]:
        """Scores [Q, N] of ``est`` and its seconds (every row counts its factors' fit time)."""
        t = time.perf_counter()
        refined = parse_refined(est)
        kind = "ekfac" if refined else est
        extra = 0.0 if self._factors(kind) else self.fit_secs[kind]
        fac = self.fitted[kind]
        if refined is None:
            q = precondition_queries(self.model, fac, self.query, self.sc, task=self.task)
        else:
            q, refine_secs = self._refined(est, *refined)
            t = time.perf_counter()  # scoring only; the refinement's share is added
            extra = self.fit_secs[kind] + refine_secs
        out = score_training(self.model, fac, q, self.train, self.sc, task=self.task).total
        out = out.double()
        return out, time.perf_counter() - t + extra


class _DenseRows:
    """The dense rows (exact, block, lissa, gradient_dot) from the exact GNH's rows ``R``; every
    row but the dot product counts the seconds of those rows (and of the Gram blocks)."""

    NAMES = ("exact", "block", "lissa", "gradient_dot")

    def __init__(self, R, n, damp, slices, Gq, Gt, t_rows, lissa_rows, lissa_depth, lissa_batch,
                 seed):  # fmt: skip
        self.R, self.n, self.damp, self.slices, self.Gq, self.Gt = R, n, damp, slices, Gq, Gt
        self.t_rows, self.grams = t_rows, None
        self.lissa_rows, self.lissa_depth, self.lissa_batch = lissa_rows, lissa_depth, lissa_batch
        self.seed = seed

    def _preconditioned(self, est: str) -> torch.Tensor:
        R, n, damp, Gq = self.R, self.n, self.damp, self.Gq
        if est == "exact":
            return woodbury_solve(R, sum(self.grams), n, damp, Gq.T).T
        if est == "block":
            pre = torch.zeros_like(Gq)
            for sl, gr in zip(self.slices, self.grams):
                pre[:, sl] = woodbury_solve(R[:, sl], gr, n, damp[sl], Gq[:, sl].T).T
            return pre
        if est == "lissa":
            return lissa(R, self.lissa_rows, n, damp, Gq.T, depth=self.lissa_depth,
                         batch=self.lissa_batch, seed=self.seed).T  # fmt: skip
        return Gq  # gradient_dot

    def scores(self, est: str) -> tuple[torch.Tensor, float]:
        t = time.perf_counter()
        if est in ("exact", "block") and self.grams is None:
            self.grams = block_grams(self.R, self.damp, self.slices)
            self.t_rows += time.perf_counter() - t
            t = time.perf_counter()
        out = self._preconditioned(est) @ self.Gt.T
        return out, time.perf_counter() - t + (self.t_rows if est != "gradient_dot" else 0.0)


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
    task: Task | None = None,
    lissa_seed: int = 0,
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Scores [Q, N] of each estimator, all with the same per-module damping
    λ_m = damping_scale × trace(G_m)/P_m of the exact GNH (= the mean of the exact Λ).

    ``ekfac_pcg{k}_{gnh|sampled}``: EK-FAC refined by k PCG steps on the fit set (``refine.py``;
    sampled products use ``refine_label_samples`` draws, None = the EK-FAC fit's ``label_samples``,
    seeds from 0 so the first draws are the fit's own); their per-step
    residuals go into ``diagnostics[name]`` when a dict is given. ``task``: the losses
    (:mod:`.tasks`; default the causal LM); ``lissa_seed``: LiSSA's power-iteration start."""
    fit_batches = train_batches if fit_batches is None else fit_batches
    modules = find_tracked_modules(model) if modules is None else modules
    slices = module_slices(model, modules)
    t0 = time.perf_counter()
    blocks = gnh_row_blocks(model, modules, fit_batches, task)
    R, n = torch.cat(blocks), len(blocks)
    t_rows = time.perf_counter() - t0
    damp, damp_by_module = _damping(R, n, modules, slices, damping_scale)
    Gq = per_example_gradients(model, modules, query_batches, "measurement", task)  # [Q, P]
    Gt = per_example_gradients(model, modules, train_batches, task=task)  # [N, P]
    residuals = {} if diagnostics is None else diagnostics  # refined rows: RefinedQueries.metrics()
    engine = _EngineRows(model, modules, (train_batches, query_batches, fit_batches), estimators,
                         damp_by_module, label_samples, refine_label_samples, residuals, task)  # fmt: skip
    dense = _DenseRows(R, n, damp, slices, Gq, Gt, t_rows, [len(b) for b in blocks], lissa_depth,
                       lissa_batch, lissa_seed)  # fmt: skip
    out: dict[str, torch.Tensor] = {}
    secs: dict[str, float] = {}
    for est in estimators:
        if est in _DenseRows.NAMES:
            out[est], secs[est] = dense.scores(est)
        elif est in ("ekfac", "kfac") or parse_refined(est) is not None:
            out[est], secs[est] = engine.scores(est)
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
