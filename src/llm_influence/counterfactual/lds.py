"""Linear datamodeling score (TRAK, Park et al. 2023) and leave-out statistics, numpy only.

For query q, subsets S_1..S_M of the training documents and attribution scores τ(q, i):
predicted g_q(S_j) = Σ_{i ∈ S_j} τ(q, i); actual f_q(θ_{S_j}) = log p(completion | prompt) of the
model retrained on S_j. LDS_q = Spearman correlation over j of (g_q, f_q); the reported figure is
the mean over queries, with a bootstrap interval that resamples queries and subsets together.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.stats import rankdata


def predicted_sums(scores: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """g[q, j] = Σ_i scores[q, i] · masks[j, i]; scores [Q, N], masks [M, N] (0/1) -> [Q, M]."""
    scores, masks = np.asarray(scores, dtype=np.float64), np.asarray(masks, dtype=np.float64)
    if scores.shape[1] != masks.shape[1]:
        raise ValueError(f"scores cover {scores.shape[1]} documents but the masks {masks.shape[1]}")
    return scores @ masks.T


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=-1) / denom
    return np.where(denom > 0, r, np.nan)


def spearman_rows(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row pair (average ranks for ties); NaN for a constant row."""
    predicted, actual = np.asarray(predicted, float), np.asarray(actual, float)
    if predicted.shape != actual.shape:
        raise ValueError(f"predicted {predicted.shape} and actual {actual.shape} differ in shape")
    if predicted.shape[-1] < 2:
        raise ValueError("the LDS needs at least 2 subsets")
    return _row_pearson(rankdata(predicted, axis=-1), rankdata(actual, axis=-1))


def lds_per_query(scores: np.ndarray, masks: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """LDS_q for every query: scores [Q, N], masks [M, N], actual [Q, M] -> [Q]."""
    return spearman_rows(predicted_sums(scores, masks), actual)


def bootstrap_lds(
    predicted: Mapping[str, np.ndarray],
    actual: np.ndarray,
    n_bootstrap: int,
    seed: int,
    level: float = 0.95,
) -> dict[str, dict[str, float]]:
    """Mean LDS per method with a percentile interval; queries and subsets resampled together.

    ``predicted``: method -> [Q, M]; ``actual`` [Q, M]. Every method sees the same resamples, so
    ``diff:<a>-<b>`` entries (for every ordered pair) are paired differences. Queries whose
    actual (or predicted) values are constant over the subsets give NaN and are left out of means.
    """
    actual = np.asarray(actual, float)
    n_q, n_s = actual.shape
    rng = np.random.default_rng(seed)
    methods = list(predicted)
    point = {m: spearman_rows(predicted[m], actual) for m in methods}
    draws = {m: np.empty(n_bootstrap) for m in methods}
    for b in range(n_bootstrap):
        qi = rng.integers(0, n_q, n_q)
        sj = rng.integers(0, n_s, n_s)
        a = actual[np.ix_(qi, sj)]
        for m in methods:
            draws[m][b] = _nanmean(spearman_rows(predicted[m][np.ix_(qi, sj)], a))
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    out: dict[str, dict[str, float]] = {}
    for m in methods:
        out[m] = _interval(_nanmean(point[m]), draws[m], lo, hi)
        out[m]["n_queries"] = int(np.isfinite(point[m]).sum())
    for a_ in methods:
        for b_ in methods:
            if a_ != b_:
                out[f"diff:{a_}-{b_}"] = _interval(
                    _nanmean(point[a_]) - _nanmean(point[b_]), draws[a_] - draws[b_], lo, hi
                )
    return out


def _nanmean(values: np.ndarray) -> float:
    """Mean of the finite entries; NaN (no warning) when a resample left none (constant ranks)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def _interval(mean: float, draws: np.ndarray, lo: float, hi: float) -> dict[str, float]:
    finite = draws[np.isfinite(draws)]
    if len(finite) == 0:
        return {"mean": float(mean), "low": float("nan"), "high": float("nan")}
    return {
        "mean": float(mean),
        "low": float(np.quantile(finite, lo)),
        "high": float(np.quantile(finite, hi)),
    }


def bootstrap_mean(values: np.ndarray, n_bootstrap: int, seed: int, level: float = 0.95) -> dict:
    """Mean of ``values`` (NaN left out) with a percentile bootstrap interval over its entries."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    draws = v[rng.integers(0, len(v), (n_bootstrap, len(v)))].mean(axis=1)
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    return {**_interval(v.mean(), draws, lo, hi), "n": int(len(v))}
