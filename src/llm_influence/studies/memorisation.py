"""Memorisation (paper Fig. 22): do the top sequences of a memorised-passage query contain it?

For each query tagged ``memorisation`` and each model size, a top-k sequence *contains the
passage* when its text contains the query's completion (whitespace- and case-normalised), or it is
one of the query's ground-truth proponents (the manifest's memorised-passage documents).
Statistics: the share of queries with at least one containing sequence in the top k, and the
share of top-k sequences that contain it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llm_influence.studies.claims import (
    Claim,
    Judgement,
    SummaryConfig,
    num,
    per_size,
    share_verdict,
)
from llm_influence.studies.figures import new_figure, save_figure, styled
from llm_influence.studies.results import skip
from llm_influence.utils.io import write_parquet

if TYPE_CHECKING:  # matplotlib loads inside the figure functions
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from llm_influence.studies.inputs import StudyInputs


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", str(text).lower()).strip()


def memorisation_table(
    top: pd.DataFrame, queries: pd.DataFrame, documents: pd.DataFrame
) -> pd.DataFrame:
    """Top table + ``contains`` (bool) for the queries present in ``queries``."""
    text = dict(zip(documents["doc_id"].astype(int), documents["text"].map(_norm)))
    passage = {str(r["name"]): _norm(r["completion"]) for _, r in queries.iterrows()}
    props = {str(n): {int(d) for d in p} for n, p in zip(queries["name"], queries["proponents"])}
    sub = top[top["query"].isin(list(passage))].copy()
    sub["contains"] = [
        bool(passage[q]) and (passage[q] in text.get(int(d), "") or int(d) in props[q])
        for q, d in zip(sub["query"], sub["doc_id"])
    ]
    return sub


def memorisation_shares(table: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """(model, query_share, sequence_share)."""
    per_q = table.groupby(["model", "query"])["contains"].agg(["any", "mean"]).reset_index()
    out = per_q.groupby("model").agg(query_share=("any", "mean"), sequence_share=("mean", "mean"))
    out = out.reindex([m for m in models if m in out.index]).reset_index()
    return out


def plot_memorisation(shares: pd.DataFrame, title: str, ax: Axes | None = None) -> Figure:
    long = shares.melt(id_vars="model", value_vars=["query_share", "sequence_share"],
                       var_name="statistic", value_name="share")  # fmt: skip
    long["statistic"] = long["statistic"].map(
        {
            "query_share": "queries with the passage in the top k",
            "sequence_share": "top-k sequences containing it",
        }
    )
    import seaborn as sns

    with styled():
        fig, ax = new_figure(ax, (6.0, 3.6))
        sns.barplot(data=long, x="model", y="share", hue="statistic", ax=ax,
                    order=list(dict.fromkeys(shares["model"])))  # fmt: skip
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.set_xlabel("model size")
        ax.set_ylabel("share")
    return fig


# ------------------------------------------------------------------------------ the study


def run(inputs: StudyInputs, cfg: dict[str, Any]) -> dict[str, Any]:
    """Inputs: scores, queries, corpus. Figure ``memorisation.png``; ``top.parquet``."""
    out, models = inputs.out, inputs.models
    queries, top, metrics = inputs.tagged_top(cfg)
    if top is None:
        return skip(out, "memorisation", metrics, "no memorisation queries", ["memorisation.png"])
    k = metrics["top_k"]
    table = memorisation_table(top, queries, inputs.documents)
    shares = memorisation_shares(table, models)
    write_parquet(out / "top.parquet", table)
    save_figure(plot_memorisation(shares, f"Memorised passages among the top-{k} sequences"),
                out / "memorisation.png")  # fmt: skip
    s = shares.set_index("model")
    metrics.update(
        figure="memorisation.png",
        query_share=[float(s["query_share"].get(m, np.nan)) for m in models],
        sequence_share=[float(s["sequence_share"].get(m, np.nan)) for m in models],
    )
    return metrics


# ------------------------------------------------------------------------------ its claims


def _passage_found(me: dict[str, Any], cfg: SummaryConfig) -> Judgement:
    qs = [num(x) for x in me.get("query_share") or []]
    last = qs[-1] if qs else float("nan")
    verdict = share_verdict(last, cfg.report["hit_min"], cfg.report["hit_fail"])
    ours = f"share of passage queries with the passage in the top-{me.get('top_k')}: {per_size(cfg.models, qs)}"
    return Judgement(ours, verdict, me.get("figure"))


CLAIMS = [
    Claim("memorisation", "Famous passages' top sequences contain the passage", "yes (Fig. 22)",
          lambda c: f"largest model: holds if ≥ {c['hit_min']}, does not hold if < {c['hit_fail']}",
          _passage_found),
]  # fmt: skip
