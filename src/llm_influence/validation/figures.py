"""Figures of the validation study (matplotlib Figure objects; saved byte-stable by ``save_figure``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from llm_influence.studies.figures import new_figure, styled

ORDER = ["ekfac", "kfac", "lissa", "block", "gradient_dot"]
LABELS = {
    "ekfac": "EK-FAC",
    "kfac": "KFAC",
    "lissa": "LiSSA",
    "block": "exact per-module block",
    "gradient_dot": "gradient dot",
}


def estimator_bars(table: pd.DataFrame) -> Figure:
    """Pearson correlation with the exact damped GNH influence, per estimator and task."""
    d = table[table["estimator"].isin(ORDER)].copy()
    d["estimator"] = pd.Categorical(
        d["estimator"].map(LABELS), [LABELS[e] for e in ORDER if e in set(d["estimator"])]
    )
    with styled():
        fig, ax = new_figure(figsize=(8.0, 3.8))
        sns.barplot(
            data=d,
            x="task",
            y="pearson",
            hue="estimator",
            ax=ax,
            palette="colorblind",
            errorbar=None,
        )
        ax.axhline(0, color="black", lw=0.8)
        ax.set_ylim(min(-0.1, float(d["pearson"].min()) - 0.05), 1.05)
        ax.set_title("Agreement with the exact damped Gauss-Newton influence")
        ax.set_xlabel("task (model)")
        ax.set_ylabel("Pearson r with exact (mean over queries, unitless)")
        ax.legend(
            title="estimator",
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            fontsize=7,
            title_fontsize=7,
        )
    return fig


def ekfac_scatter(exact: np.ndarray, ekfac: np.ndarray, pearson: float, task: str = "lm") -> Figure:
    """EK-FAC vs exact influence of every (query, training sequence) pair, one colour per query."""
    with styled():
        fig, ax = new_figure(figsize=(4.8, 4.4))
        for q in range(exact.shape[0]):
            ax.scatter(exact[q], ekfac[q], s=8, alpha=0.7, lw=0)
        lo = float(min(exact.min(), ekfac.min()))
        hi = float(max(exact.max(), ekfac.max()))
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--", label="y = x")
        ax.set_title(f"EK-FAC vs exact influence ({task} task; mean Pearson r = {pearson:.3f})")
        ax.set_xlabel("exact damped GNH influence (Δ log-likelihood units)")
        ax.set_ylabel("EK-FAC influence (Δ log-likelihood units)")
        ax.legend(loc="upper left")
    return fig


def rank_curve(rank_table: pd.DataFrame, full_rank: int) -> Figure:
    """Correlation of rank-r query scores with full-rank scores against r (log-2 axis)."""
    with styled():
        fig, ax = new_figure(figsize=(5.2, 3.6))
        ax.plot(rank_table["rank"], rank_table["pearson"], marker="o", label="Pearson r")
        ax.plot(rank_table["rank"], rank_table["spearman"], marker="s", ls="--", label="Spearman ρ")
        ax.set_xscale("log", base=2)
        ax.axvline(full_rank, color="grey", lw=0.8, ls=":", label=f"full rank ({full_rank})")
        ax.set_title("Query batching: rank-r vs full-rank query scores")
        ax.set_xlabel("rank r of each module's preconditioned query gradient (log₂ scale)")
        ax.set_ylabel("correlation with full rank (unitless)")
        ax.legend(loc="lower right")
    return fig


def refine_curve(table: pd.DataFrame) -> Figure:
    """Pearson with exact against the number of PCG steps (0 = EK-FAC), per task and product kind;
    the exact per-module block as a dotted reference line."""
    from llm_influence.influence.comparison import parse_refined

    rows = []
    for r in table.itertuples():
        parsed = parse_refined(r.estimator)
        if parsed is not None:
            rows.append(
                {"task": r.task, "products": parsed[1], "steps": parsed[0], "pearson": r.pearson}
            )
    d = pd.DataFrame(rows)
    tasks = list(dict.fromkeys(d["task"]))
    with styled():
        fig = Figure(figsize=(2.6 * len(tasks), 3.4), layout="constrained")
        axes = np.atleast_1d(fig.subplots(1, len(tasks), sharey=True))
        for ax, task in zip(axes, tasks):
            ek = float(
                table.loc[
                    (table["task"] == task) & (table["estimator"] == "ekfac"), "pearson"
                ].iloc[0]
            )
            for products, marker in (("gnh", "o"), ("sampled", "s")):
                sub = d[(d["task"] == task) & (d["products"] == products)].sort_values("steps")
                if len(sub):
                    ax.plot(
                        [0, *sub["steps"]],
                        [ek, *sub["pearson"]],
                        marker=marker,
                        label=f"{products} products",
                    )
            block = table.loc[(table["task"] == task) & (table["estimator"] == "block"), "pearson"]
            if len(block):
                ax.axhline(
                    float(block.iloc[0]), color="grey", ls=":", lw=1, label="exact per-module block"
                )
            ax.set_title(task, fontsize=8)
            ax.set_xlabel("PCG steps (0 = EK-FAC)")
        axes[0].set_ylabel("Pearson r with exact (unitless)")
        axes[-1].legend(loc="lower right", fontsize=6)
        fig.suptitle(
            "EK-FAC refined by preconditioned CG vs the exact damped GNH influence", fontsize=9
        )
    return fig
