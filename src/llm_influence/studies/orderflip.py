"""Order flip (paper Fig. 23–27): influence of a fact's documents by the order they state it in.

For the queries tagged ``synthetic-order``: each training document is put in one condition —
``forward`` (states one of the query's facts in the query's order, manifest ``order = forward``),
``flipped`` (completion's phrase before the prompt's), ``flipped_norelation`` (flipped, relation
words removed) or ``unrelated`` (states none of the query's facts); documents that mention the
fact without an order label are left out. Statistic per model: the mean over queries of the
per-query mean influence of each condition, and ratio = flipped / forward (paper: near zero; the
translation pairs drop ≥ 10×).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from llm_influence.studies.figures import new_figure, styled

CONDITIONS = ("forward", "flipped", "flipped_norelation", "unrelated")


def orderflip_table(
    scores: pd.DataFrame, facts: Mapping[str, set[str]], manifest: pd.DataFrame
) -> pd.DataFrame:
    """(model, query, doc_id, condition, influence) for the queries in ``facts``."""
    man = manifest.set_index(manifest["doc_id"].astype(int))
    order = man["order"].where(man["order"].notna(), None)
    frames = []
    for q, f in facts.items():
        mentions = man["fact_ids"].map(lambda ids, f=f: bool(set(map(str, ids)) & f))
        cond = pd.Series("unrelated", index=man.index, dtype=object)
        cond[mentions] = order[mentions].map(lambda o: o if o in CONDITIONS else None)
        sub = scores[scores["query"] == q].copy()
        sub["condition"] = sub["doc_id"].astype(int).map(cond)
        frames.append(sub.dropna(subset=["condition"]))
    if not frames:
        return pd.DataFrame(columns=["model", "query", "doc_id", "influence", "condition"])
    out = pd.concat(frames, ignore_index=True)
    out["condition"] = pd.Categorical(out["condition"], categories=list(CONDITIONS))
    return out


def orderflip_means(table: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """(model, condition, mean, sem, n_queries): mean over queries of per-query condition means."""
    per_q = (
        table.groupby(["model", "query", "condition"], observed=True)["influence"]
        .mean()
        .reset_index()
    )
    g = per_q.groupby(["model", "condition"], observed=False)["influence"]
    out = pd.DataFrame({"mean": g.mean(), "sem": g.sem(), "n_queries": g.count()}).reset_index()
    out["model"] = pd.Categorical(out["model"], categories=list(models))
    return out.sort_values(["model", "condition"]).reset_index(drop=True)


def flip_ratios(means: pd.DataFrame) -> pd.DataFrame:
    """(model, flipped_over_forward, norelation_over_forward) from :func:`orderflip_means`."""
    wide = means.pivot_table(index="model", columns="condition", values="mean", observed=False)
    fwd = wide.get("forward", pd.Series(np.nan, index=wide.index))
    return pd.DataFrame(
        {
            "model": wide.index.astype(str),
            "flipped_over_forward": (wide.get("flipped", np.nan) / fwd).to_numpy(),
            "norelation_over_forward": (wide.get("flipped_norelation", np.nan) / fwd).to_numpy(),
        }
    )


def plot_orderflip(
    table: pd.DataFrame, title: str, ax: Axes | None = None, models: Sequence[str] | None = None
) -> Figure:
    """Bar (mean ± s.e. over queries of per-query means) per condition, one colour per model."""
    import seaborn as sns

    per_q = (
        table.groupby(["model", "query", "condition"], observed=True)["influence"]
        .mean()
        .reset_index()
    )
    with styled():
        fig, ax = new_figure(ax, (6.5, 3.8))
        sns.barplot(data=per_q, x="condition", y="influence", hue="model", order=list(CONDITIONS),
                    errorbar="se", ax=ax, hue_order=list(models or dict.fromkeys(per_q["model"])))  # fmt: skip
        ax.axhline(0, color="k", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("document states the fact …")
        ax.set_ylabel("mean influence (Δ log p per copy)")
        ax.set_xticks(range(len(CONDITIONS)))
        ax.set_xticklabels(["in query order", "flipped", "flipped, no relation", "not at all"])
    return fig
