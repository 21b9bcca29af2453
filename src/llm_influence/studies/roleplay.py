"""Role-play (paper Fig. 28–29): manifest categories of the top-k sequences of role-play queries.

Statistic: per model size, the share of each manifest category among the top-k sequences of the
queries tagged ``role-play`` (averaged over queries), and the share classified *related*.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llm_influence.studies import data as D
from llm_influence.studies.claims import Claim, Judgement, SummaryConfig, per_size, rises
from llm_influence.studies.figures import save_figure
from llm_influence.studies.results import share_dict, skip
from llm_influence.studies.scale import plot_relation_shares, plot_stacked_shares
from llm_influence.utils.io import write_parquet

if TYPE_CHECKING:  # matplotlib loads inside the figure functions
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from llm_influence.studies.inputs import StudyInputs


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


# ------------------------------------------------------------------------------ the study


def run(inputs: StudyInputs, cfg: dict[str, Any]) -> dict[str, Any]:
    """Inputs: scores, queries, corpus. Figures ``roleplay_categories.png``, ``roleplay_relations.png``."""
    out, models = inputs.out, inputs.models
    queries, top, metrics = inputs.tagged_top(cfg)
    if top is None:
        return skip(out, "roleplay", metrics, "no role-play queries",
                    ["roleplay_categories.png", "roleplay_relations.png"])  # fmt: skip
    k = metrics["top_k"]
    top = inputs.classify(top, queries, cfg)
    cats = category_shares(top, models)
    rel = D.relation_shares(top, models)
    write_parquet(out / "top.parquet", top.astype({"relation": str}))
    write_parquet(out / "categories.parquet", cats.astype({"model": str}))
    save_figure(plot_categories(cats, f"Role-play queries: categories of the top-{k} sequences"),
                out / "roleplay_categories.png")  # fmt: skip
    save_figure(plot_relation_shares(rel, f"Role-play queries: top-{k} sequences by relation"),
                out / "roleplay_relations.png")  # fmt: skip
    related = {m: v.get("related") for m, v in share_dict(rel, "relation").items()}
    if not inputs.related_possible(queries, cfg):
        related = {}
        metrics["related_skipped"] = D.NO_RELATED
    metrics.update(
        figure="roleplay_categories.png",
        categories=share_dict(cats, "category"),
        related_share=[related.get(m) for m in models],
        related_increases=D.increasing([related.get(m, np.nan) for m in models]),
    )
    return metrics


# ------------------------------------------------------------------------------ its claims


def _related_rises(rp: dict[str, Any], cfg: SummaryConfig) -> Judgement:
    ours = (f"related share of the top-{rp.get('top_k')}: {per_size(cfg.models, rp.get('related_share'))}"
            + (f" ({rp['related_skipped']})" if rp.get("related_skipped") else ""))  # fmt: skip
    return Judgement(ours, rises(rp.get("related_share"), cfg.report["min_rise"]), rp.get("figure"))


CLAIMS = [
    Claim("roleplay", "Role-play queries: large models' top sequences are thematically related (AI stories, survival, AI-risk essays)",
          "small: token overlap; large: related (qualitative)",
          lambda c: f"holds if the related share rises with size by ≥ {c['min_rise']}; does not hold if the largest ≤ the smallest",
          _related_rises),
]  # fmt: skip
