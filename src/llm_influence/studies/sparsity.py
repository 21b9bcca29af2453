"""Sparsity (paper Fig. 8–9): heavy-tailed influence, power-law fit of the positive tail, top-1 % share.

Per (model, query): the Clauset–Shalizi–Newman fit of the positive influences (α, x_min, KS
distance, bootstrap goodness-of-fit p, likelihood-ratio tests vs exponential and log-normal, see
:mod:`llm_influence.studies.powerlaw`), the share of the total positive influence held by the top
1 % of all sequences, and the share of sequences with influence > 0.1. The figure draws each
query's log–log CCDF with the fitted power law, the TF-IDF-filtered documents' tail overlaid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullLocator

from llm_influence.studies.figures import styled
from llm_influence.studies.powerlaw import analyse_tail, ccdf, top_fraction_share


def sparsity_stats(
    scores: pd.DataFrame,
    *,
    top_fraction: float = 0.01,
    threshold: float = 0.1,
    min_tail: int = 50,
    max_candidates: int = 100,
    n_bootstrap: int = 100,
    seed: int = 0,
    xmin: float | None = None,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """One row per (model, query) of a long score table (model, query, doc_id, influence).

    Query i's bootstrap uses seed ``seed + i``, so the result does not depend on ``n_jobs``
    (threads; numpy releases the GIL in the array work).
    """
    groups = list(scores.groupby(["model", "query"], sort=False))

    def one(i: int) -> dict:
        (model, query), grp = groups[i]
        v = grp["influence"].to_numpy(dtype=np.float64)
        row = {"model": model, "query": query, "n_docs": int(v.size)}
        row["n_positive"] = int((v > 0).sum())
        row["top_share"] = top_fraction_share(v, top_fraction)
        row["frac_above_threshold"] = float((v > threshold).mean())
        row["max_influence"] = float(v.max()) if v.size else float("nan")
        row.update(
            analyse_tail(
                v,
                min_tail=min_tail,
                max_candidates=max_candidates,
                n_bootstrap=n_bootstrap,
                seed=seed + i,
                xmin=xmin,
            )
        )
        return row

    if n_jobs > 1 and len(groups) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            rows = list(pool.map(one, range(len(groups))))
    else:
        rows = [one(i) for i in range(len(groups))]
    return pd.DataFrame(rows)


def _thin(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    if x.size <= max_points:
        return x, y
    idx = np.unique(np.geomspace(1, x.size, max_points).astype(int) - 1)
    idx = np.unique(np.concatenate([idx, x.size - 1 - idx]))
    return x[idx], y[idx]


def ccdf_frame(
    scores: pd.DataFrame, candidates: pd.DataFrame | None = None, max_points: int = 400
) -> pd.DataFrame:
    """Tidy CCDF points (model, query, subset ∈ {all, tfidf}, influence, ccdf), thinned for plotting.

    ``tfidf``: the same influences restricted to each query's TF-IDF candidates; its CCDF is
    scaled by (#candidates / #docs) so both curves share the y axis (fraction of all sequences).
    """
    frames = []
    for (model, query), grp in scores.groupby(["model", "query"], sort=False):
        subsets = [("all", grp)]
        if candidates is not None:
            cand = candidates.loc[candidates["query"] == query, "doc_id"]
            subsets.append(("tfidf", grp[grp["doc_id"].isin(cand)]))
        n_all = len(grp)
        for name, sub in subsets:
            x, y = ccdf(sub["influence"].to_numpy())
            y = y * (int((sub["influence"] > 0).sum()) / max(n_all, 1))
            x, y = _thin(x, y, max_points)
            frames.append(
                pd.DataFrame(
                    {"model": model, "query": query, "subset": name, "influence": x, "ccdf": y}
                )
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_sparsity(
    curves: pd.DataFrame,
    fits: pd.DataFrame,
    *,
    title: str = "Influence tails",
    queries: Sequence[str] | None = None,
    ncols: int = 4,
) -> Figure:
    """Log–log CCDF per query (one panel each): all sequences, TF-IDF candidates, power-law fit."""
    queries = list(queries) if queries is not None else list(dict.fromkeys(curves["query"]))
    n = max(len(queries), 1)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    with styled():
        fig = Figure(figsize=(3.0 * ncols, 2.6 * nrows + 0.4), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False)
        for ax in axes.ravel()[n:]:
            ax.set_visible(False)
        colors = {"all": "#1f77b4", "tfidf": "#ff7f0e"}
        labels = {"all": "all sequences", "tfidf": "TF-IDF candidates"}
        for ax, q in zip(axes.ravel(), queries):
            sub = curves[curves["query"] == q]
            for subset, grp in sub.groupby("subset", sort=False):
                ax.loglog(
                    grp["influence"], grp["ccdf"], ".", ms=2.5, color=colors.get(subset, "k"),
                    label=labels.get(subset, subset), alpha=0.8,
                )  # fmt: skip
            fit = fits[fits["query"] == q]
            if len(fit) and np.isfinite(fit["alpha"].iloc[0]):
                f = fit.iloc[0]
                all_pts = sub[sub["subset"] == "all"]
                xs = np.geomspace(f["xmin"], max(all_pts["influence"].max(), f["xmin"] * 1.01), 50)
                frac = f["n_tail"] / max(f["n_docs"], 1)
                ax.loglog(xs, frac * (xs / f["xmin"]) ** (1 - f["alpha"]), "-", color="#d62728",
                          lw=1.2, label=f"power law α={f['alpha']:.2f}")  # fmt: skip
                p = f["p_gof"]
                ax.text(0.97, 0.96, f"p(KS)={p:.2f}" if np.isfinite(p) else "p(KS) n/a",
                        transform=ax.transAxes, fontsize=7, ha="right", va="top")  # fmt: skip
            pts = sub["influence"].to_numpy()
            if pts.size:
                hi_x = float(pts.max())
                ax.set_xlim(max(float(pts.min()), hi_x * 1e-6) / 1.5, hi_x * 1.5)
                ax.set_ylim(max(float(sub["ccdf"].min()) / 2, 1e-9), 1.5)
            # few ticks: automatic minor ticks on many decades make drawing very slow
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_locator(LogLocator(numticks=5))
                axis.set_minor_locator(NullLocator())
            ax.set_title(str(q))
            ax.set_xlabel("influence (Δ log p per copy)")
            ax.set_ylabel("P(influence ≥ x)")
            ax.legend(loc="lower left", fontsize=6, frameon=False)
        fig.suptitle(title)
    return fig
