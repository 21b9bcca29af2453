"""Role-play (paper Fig. 28–29): manifest categories of the top-k sequences of role-play queries.

Statistic: per model size, the share of each manifest category among the top-k sequences of the
queries tagged ``role-play`` (averaged over queries), and the share classified *related*.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from llm_influence.studies.scale import plot_stacked_shares


def category_shares(top: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """(model, category, share): categories of the top sequences, averaged over queries."""
    per_q = (
        top.groupby(["model", "query"])["category"]
        .value_counts(normalize=True)
        .rename("share")
        .reset_index()
    )
    n_q = top.groupby("model")["query"].nunique()
    out = per_q.groupby(["model", "category"])["share"].sum().reset_index()
    out["share"] = out["share"] / out["model"].map(n_q)
    out["model"] = pd.Categorical(out["model"], categories=list(models))
    return out.sort_values(["model", "category"]).reset_index(drop=True)


def plot_categories(shares: pd.DataFrame, title: str, ax: Axes | None = None) -> Figure:
    order = sorted(shares["category"].astype(str).unique())
    import seaborn as sns

    palette = dict(zip(order, sns.color_palette("tab20", len(order)).as_hex()))
    return plot_stacked_shares(
        shares, column="category", order=order, title=title, colors=palette, ax=ax
    )
