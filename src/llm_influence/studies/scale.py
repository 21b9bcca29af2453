"""Scale (paper Fig. 1, 10–14): are the top sequences token-overlapping or thematically related?

For each model size, the top-k sequences of every query are classified (see
:func:`llm_influence.studies.data.classify_relations`) as *related* (same fact / proponent /
thematically related manifest category), *token_overlap* (only shares content words with the
query) or *unrelated*. The statistic is the share of each class, averaged over queries; the paper
finds it moves from token overlap to related as models grow. Also: for fact queries, whether a
ground-truth proponent is in the top 100 at every size, and recall@10 / MRR of the proponents.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from llm_influence.studies.data import RELATIONS
from llm_influence.studies.figures import new_figure, styled

RELATION_COLORS = {"related": "#2ca02c", "token_overlap": "#ff7f0e", "unrelated": "#c7c7c7"}
RELATION_LABELS = {
    "related": "thematically related",
    "token_overlap": "token overlap only",
    "unrelated": "neither",
}


def proponent_in_top(
    top: pd.DataFrame, queries: pd.DataFrame, models: Sequence[str], k: int = 100
) -> pd.DataFrame:
    """Per (model, query with proponents): whether any proponent is among the top k (rank ≤ k)."""
    props = {
        str(n): {int(d) for d in p}
        for n, p in zip(queries["name"], queries["proponents"])
        if len(p)
    }
    rows = []
    for model in models:
        sub = top[(top["model"] == model) & (top["rank"] <= k)]
        for q, p in props.items():
            docs = set(sub.loc[sub["query"] == q, "doc_id"].astype(int))
            rows.append({"model": model, "query": q, "hit": bool(docs & p)})
    return pd.DataFrame(rows, columns=["model", "query", "hit"])


def plot_stacked_shares(
    shares: pd.DataFrame,
    *,
    column: str,
    order: Sequence[str],
    title: str,
    colors: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    xlabel: str = "model size",
    ylabel: str = "share of top sequences",
    ax: Axes | None = None,
) -> Figure:
    """Stacked bars: x = model (categorical order kept), stacks = values of ``column``."""
    with styled():
        fig, ax = new_figure(ax, (max(6.5, 1.2 * shares["model"].nunique() + 4.0), 3.8))
        wide = shares.pivot_table(index="model", columns=column, values="share", observed=False,
                                  aggfunc="sum").fillna(0.0)  # fmt: skip
        wide = wide.reindex(columns=[c for c in order if c in wide.columns])
        bottom = None
        for c in wide.columns:
            vals = wide[c].to_numpy()
            ax.bar(
                [str(m) for m in wide.index], vals, bottom=bottom, width=0.6,
                color=(colors or {}).get(c), label=(labels or {}).get(c, str(c)),
            )  # fmt: skip
            bottom = vals if bottom is None else bottom + vals
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def plot_relation_shares(shares: pd.DataFrame, title: str, ax: Axes | None = None) -> Figure:
    return plot_stacked_shares(
        shares, column="relation", order=RELATIONS, title=title,
        colors=RELATION_COLORS, labels=RELATION_LABELS, ax=ax,
    )  # fmt: skip
