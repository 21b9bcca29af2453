"""Estimators against the exact damped GNH influence, and rank-r query batching against full rank."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from llm_influence.influence import (
    FitConfig,
    ScoreConfig,
    fit_factors,
    precondition_queries,
    score_training,
)
from llm_influence.influence.comparison import estimator_scores
from llm_influence.influence.tracked import module_info

from .config import ESTIMATORS, ValidationConfig
from .mse import exact_scores
from .tasks import Task


def mean_correlations(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean over queries (rows) of the Pearson / Spearman correlation across training examples
    (the definition of ``reference.compare_estimators``); queries where either row is constant are
    skipped (NaN if all are)."""
    from scipy.stats import pearsonr, spearmanr

    ps, ss = [], []
    for x, y in zip(a.double().numpy(), b.double().numpy()):
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        ps.append(pearsonr(x, y)[0])
        ss.append(spearmanr(x, y)[0])
    if not ps:
        return math.nan, math.nan
    return float(np.mean(ps)), float(np.mean(ss))


def _stacked(batches: Sequence, key: str) -> torch.Tensor:
    return torch.cat([b[key] for b in batches])


def task_scores(
    task: Task, cfg: ValidationConfig, seed: int = 0, diagnostics: dict | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Scores [Q, N] of the exact damped GNH and of every estimator, with their wall times (s).

    Every estimator runs through the engine with the task's loss hook
    (``influence.comparison.estimator_scores(task=task.engine_task)``: ekfac, kfac, the refined
    ``ekfac_pcg{k}_{products}`` rows, whose per-step residuals go into ``diagnostics``, and the
    dense block, lissa and gradient_dot rows on the same exact GNH rows). ``exact`` is
    ``estimator_scores``' own for the cross-entropy tasks; for the regression task it is computed
    independently of the engine (:func:`mse.exact_scores`)."""
    ests = ("exact", *cfg.estimators())
    if tracked_params(task.model, task.modules) > cfg.lissa_max_params:
        ests = tuple(e for e in ests if e != "lissa")  # 300 R·x steps: minutes at 8k parameters
    independent = task.loss == "mse"
    engine = tuple(e for e in ests if not (independent and e == "exact"))
    scores, secs = estimator_scores(task.model, task.train_batches, task.query_batches, estimators=engine,
                                    modules=task.modules, damping_scale=cfg.damping_scale,
                                    label_samples=cfg.label_samples, lissa_depth=cfg.lissa_depth,
                                    diagnostics=diagnostics, refine_label_samples=cfg.refine_label_samples,
                                    task=task.engine_task, lissa_seed=seed)  # fmt: skip
    if independent:
        tr, qu = task.train_batches, task.query_batches
        scores["exact"], secs["exact"] = exact_scores(
            task.model, task.modules, _stacked(tr, "inputs"), _stacked(tr, "targets"),
            _stacked(qu, "inputs"), _stacked(qu, "targets"), cfg.damping_scale,
        )  # fmt: skip
    return scores, secs


def correlation_table(
    task_name: str, scores: dict[str, torch.Tensor], secs: dict[str, float]
) -> pd.DataFrame:
    rows = []
    for est in [*ESTIMATORS, *sorted(e for e in scores if e.startswith("ekfac_pcg"))]:
        if est not in scores:  # LiSSA is skipped on the larger tasks (lissa_max_params)
            continue
        p, s = mean_correlations(scores[est], scores["exact"])
        rows.append(
            {"task": task_name, "estimator": est, "pearson": p, "spearman": s, "seconds": secs[est]}
        )
    rows.append(
        {
            "task": task_name,
            "estimator": "exact",
            "pearson": 1.0,
            "spearman": 1.0,
            "seconds": secs["exact"],
        }
    )
    return pd.DataFrame(rows)


def tracked_params(model: nn.Module, modules: Sequence[str]) -> int:
    named = dict(model.named_modules())
    return sum(i.d_out * i.d_in_h for i in (module_info(m, named[m]) for m in modules))


def max_rank(model: nn.Module, modules: Sequence[str]) -> int:
    """The rank at which every module's preconditioned query gradient is kept whole."""
    named = dict(model.named_modules())
    return max(min(i.d_out, i.d_in_h) for i in (module_info(m, named[m]) for m in modules))


def rank_study(model: nn.Module, modules: list[str], train_batches: Sequence, query_batches: Sequence,
               ranks: Sequence[int], damping_scale: float = 0.1, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Correlation of rank-r query scores with full-rank scores (same EK-FAC factors), per rank.

    Ranks above a module's min(d_out, d_in + 1) keep that module whole (``effective_rank``)."""
    dtype = "float64" if next(model.parameters()).dtype == torch.float64 else "float32"
    pats = ["^" + m.replace(".", r"\.") + "$" for m in modules]
    fcfg = FitConfig(strategy="ekfac", damping_scale=damping_scale, seed=seed, dtype=dtype, factor_dtype="float64",
                     device="cpu", module_patterns=pats, progress=False)  # fmt: skip
    fac = fit_factors(model, train_batches, fcfg)

    def score(rank):
        sc = ScoreConfig(
            rank=rank, dtype=dtype, device="cpu", progress=False, per_token=False, per_layer=False
        )
        t = time.perf_counter()
        q = precondition_queries(model, fac, query_batches, sc)
        total = score_training(model, fac, q, train_batches, sc).total.double()
        return total, time.perf_counter() - t

    full, t_full = score(None)
    top = max_rank(model, modules)
    rows = []
    for r in sorted(set(ranks)):
        tot, t = score(r)
        p, s = mean_correlations(tot, full)
        rows.append({"rank": r, "effective_rank": min(r, top), "full_rank": r >= top, "pearson": p, "spearman": s,
                     "seconds": t, "seconds_full": t_full})  # fmt: skip
    return pd.DataFrame(rows)
