"""Sparsity (paper Fig. 8–9): heavy-tailed influence, power-law fit of the positive tail, top-1 % share.

Per (model, query): the Clauset–Shalizi–Newman fit of the positive influences (α, x_min, KS
distance, bootstrap goodness-of-fit p, likelihood-ratio tests vs exponential and log-normal, see
:mod:`llm_influence.studies.powerlaw`), the share of the total positive influence held by the top
1 % of all sequences, and the share of sequences with influence > 0.1. The figure draws each
query's log–log CCDF with the fitted power law, the TF-IDF-filtered documents' tail overlaid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llm_influence.studies.claims import Claim, Judgement, SummaryConfig, fmt, num, verdict_of
from llm_influence.studies.figures import save_figure, styled
from llm_influence.studies.powerlaw import analyse_tail, ccdf, top_fraction_share
from llm_influence.utils.io import write_parquet

if TYPE_CHECKING:  # matplotlib loads inside the figure functions
    from matplotlib.figure import Figure

    from llm_influence.studies.inputs import StudyInputs


def sparsity_stats(
    scores: pd.DataFrame,
    *,
    top_fraction: float = 0.01,
    threshold: float = 0.1,
    seed: int = 0,
    n_jobs: int = 1,
    **tail: Any,
) -> pd.DataFrame:
    """One row per (model, query) of a long score table (model, query, doc_id, influence).

    ``tail``: the fit's settings, keywords of :func:`~llm_influence.studies.powerlaw.analyse_tail`
    (``min_tail``, ``max_candidates``, ``n_bootstrap``, ``xmin``). Query i's bootstrap uses seed
    ``seed + i``, so the result does not depend on ``n_jobs`` (threads; numpy releases the GIL in
    the array work).
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
        row.update(analyse_tail(v, seed=seed + i, **tail))
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
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogLocator, NullLocator

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


# ------------------------------------------------------------------------------ the study


def _model_metrics(model: str, st: pd.DataFrame, p_gof: float) -> dict[str, Any]:
    fitted = st[st["alpha"].notna()]

    def count(statistic: str, sign: int) -> int:
        better = fitted[f"lr_{statistic}_R"] * sign > 0
        return int((better & (fitted[f"lr_{statistic}_p"] < p_gof)).sum())

    return {
        "figure": f"sparsity_{model}.png",
        "n_queries": int(len(st)),
        "n_fitted": int(len(fitted)),
        "alpha_median": float(fitted["alpha"].median()) if len(fitted) else None,
        "alpha_min": float(fitted["alpha"].min()) if len(fitted) else None,
        "alpha_max": float(fitted["alpha"].max()) if len(fitted) else None,
        "n_gof_tested": int(fitted["p_gof"].notna().sum()),
        "n_rejected": int((fitted["p_gof"] < p_gof).sum()),
        "n_pl_over_exp": count("exp", 1),
        "n_exp_over_pl": count("exp", -1),
        "n_pl_over_lognormal": count("lognormal", 1),
        "n_lognormal_over_pl": count("lognormal", -1),
        "top_share_median": float(st["top_share"].median()),
        "top_share_min": float(st["top_share"].min()),
        "top_share_max": float(st["top_share"].max()),
        "frac_above_threshold_mean": float(st["frac_above_threshold"].mean()),
    }


def run(inputs: StudyInputs, cfg: dict[str, Any]) -> dict[str, Any]:
    """Inputs: scores, tfidf (optional). Figures ``sparsity_{model}.png``; ``stats.parquet``."""
    scores = inputs.scores
    xmin = cfg["xmin"]
    stats = sparsity_stats(
        scores,
        top_fraction=float(cfg["top_fraction"]),
        threshold=float(cfg["threshold"]),
        min_tail=int(cfg["min_tail"]),
        max_candidates=int(cfg["max_xmin_candidates"]),
        n_bootstrap=int(cfg["n_bootstrap"]),
        seed=inputs.seed,
        xmin=None if xmin is None else float(xmin),
        n_jobs=inputs.threads,
    )
    write_parquet(inputs.out / "stats.parquet", stats)
    p_gof = float(cfg["gof_threshold"])
    per_model = {}
    for model in inputs.models:
        st = stats[stats["model"] == model]
        curves = ccdf_frame(scores[scores["model"] == model], inputs.candidates)
        fig = plot_sparsity(
            curves, st, title=f"Influence tails, model {model} (log–log CCDF)",
            queries=list(st["query"])[: int(cfg["max_panels"])],
        )  # fmt: skip
        save_figure(fig, inputs.out / f"sparsity_{model}.png")
        per_model[model] = _model_metrics(model, st, p_gof)
    return {
        "per_model": per_model,
        "gof_threshold": p_gof,
        "top_fraction": float(cfg["top_fraction"]),
    }


# ------------------------------------------------------------------------------ its claims


def _of_largest(
    judge: Callable[[dict[str, Any], dict[str, Any], SummaryConfig], tuple[str, str]],
) -> Callable[[dict[str, Any], SummaryConfig], Judgement | None]:
    """A claim judged on the largest model's numbers (``per_model``), shown with its figure;
    None (the summary's "not run") when that model has none."""

    def evaluate(metrics: dict[str, Any], cfg: SummaryConfig) -> Judgement | None:
        sp = metrics.get("per_model", {}).get(cfg.largest)
        if not sp:
            return None
        ours, verdict = judge(sp, metrics, cfg)
        return Judgement(ours, verdict, sp.get("figure"))

    return evaluate


@_of_largest
def _alpha(sp: dict[str, Any], metrics: dict[str, Any], cfg: SummaryConfig) -> tuple[str, str]:
    lo, hi = cfg.report["alpha_range"]
    n_fit = int(sp.get("n_fitted") or 0)
    a = num(sp.get("alpha_median"))
    verdict = verdict_of(lo <= a <= hi, n_fit >= cfg.report["min_queries"] and np.isfinite(a))
    ours = (f"{cfg.largest}: median α = {fmt(a)} (range {fmt(sp.get('alpha_min'))}–"
            f"{fmt(sp.get('alpha_max'))}, {n_fit} queries fitted)")  # fmt: skip
    return ours, verdict


@_of_largest
def _gof(sp: dict[str, Any], metrics: dict[str, Any], cfg: SummaryConfig) -> tuple[str, str]:
    n_t, n_r = int(sp.get("n_gof_tested") or 0), int(sp.get("n_rejected") or 0)
    share = n_r / n_t if n_t else float("nan")
    verdict = verdict_of(
        share <= cfg.report["max_rejected_share"], n_t >= cfg.report["min_queries"]
    )
    ours = (f"{cfg.largest}: power law rejected (bootstrap KS p < {fmt(metrics.get('gof_threshold'))}) for {n_r} of {n_t}; "
            f"LR favours power law over exponential for {sp.get('n_pl_over_exp')}, exponential for {sp.get('n_exp_over_pl')}; "
            f"over log-normal {sp.get('n_pl_over_lognormal')}, log-normal {sp.get('n_lognormal_over_pl')}")  # fmt: skip
    return ours, verdict


@_of_largest
def _top1(sp: dict[str, Any], metrics: dict[str, Any], cfg: SummaryConfig) -> tuple[str, str]:
    lo, hi = cfg.report["top_share_range"]
    t = num(sp.get("top_share_median"))
    ours = f"{cfg.largest}: median {fmt(t)} (range {fmt(sp.get('top_share_min'))}–{fmt(sp.get('top_share_max'))})"
    return ours, verdict_of(lo <= t <= hi, np.isfinite(t))


@_of_largest
def _rare(sp: dict[str, Any], metrics: dict[str, Any], cfg: SummaryConfig) -> tuple[str, str]:
    r = num(sp.get("frac_above_threshold_mean"))
    ours = f"{cfg.largest}: {fmt(r)} of sequences per query on average"
    return ours, verdict_of(r <= cfg.report["rare_max"], np.isfinite(r))


CLAIMS = [
    Claim("sparsity.alpha", "Influence has a power-law tail; exponent α per query",
          "α ≈ 2.0–4.3 over 8 queries",
          lambda c: f"holds if the median α of the largest model lies in [{c['alpha_range'][0]}, {c['alpha_range'][1]}]; "
                    f"inconclusive with fewer than {c['min_queries']} fitted queries",
          _alpha),
    Claim("sparsity.gof", "The power law is a plausible fit (Clauset–Shalizi–Newman KS test)",
          "rejected for 2 of 8 queries",
          lambda c: f"holds if the power law is rejected for at most {c['max_rejected_share']:.0%} of the tested queries",
          _gof),
    Claim("sparsity.top1", "The top 1 % of sequences carry a large share of the positive influence", "12–52 %",
          lambda c: f"holds if the median share of the largest model lies in [{c['top_share_range'][0]}, {c['top_share_range'][1]}]",
          _top1),
    Claim("sparsity.rare", "Influences above 0.1 are rare", "rare (qualitative)",
          lambda c: f"holds if at most {c['rare_max']:.0%} of sequences exceed 0.1", _rare),
]  # fmt: skip
