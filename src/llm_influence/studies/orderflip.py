"""Order flip (paper Fig. 23–27): influence of a fact's documents by the order they state it in.

For the queries tagged ``synthetic-order``, each training document is put in one condition
relative to *the query's* order:

* ``query_order``: states the query's fact with the prompt's phrase before the completion's
  (``queries.parquet`` ``proponents``; for a forward query the manifest's ``forward`` documents,
  for an answer-first probe (``order: flipped``) the ``flipped`` ones);
* ``flipped``: the opposite order, relation words kept (``proponents_flipped``);
* ``flipped_norelation``: answer first without the relation words (``proponents_flipped_norelation``);
* ``unrelated``: states none of the query's facts.

Documents that mention the fact otherwise are left out. Without the ``proponents_flipped*``
columns the conditions come from the manifest ``order`` column and the query's ``order``.
Statistic per model: the mean over queries of the per-query mean influence of each condition,
and ratio = flipped / query_order (paper: near zero; translation pairs drop ≥ 10×).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llm_influence.artifacts import as_list
from llm_influence.studies.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    Claim,
    Judgement,
    SummaryConfig,
    num,
    per_size,
    verdict_of,
)
from llm_influence.studies.data import query_facts
from llm_influence.studies.figures import new_figure, save_figure, styled
from llm_influence.studies.results import skip
from llm_influence.utils.io import write_parquet

if TYPE_CHECKING:  # matplotlib loads inside the figure functions
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from llm_influence.studies.inputs import StudyInputs

CONDITIONS = ("query_order", "flipped", "flipped_norelation", "unrelated")
CONDITION_LABELS = {
    "query_order": "in query order",
    "flipped": "flipped",
    "flipped_norelation": "flipped, no relation",
    "unrelated": "not at all",
}


def order_conditions(queries: pd.DataFrame, manifest: pd.DataFrame) -> dict[str, pd.Series]:
    """Per query (with known facts): Series doc_id -> condition (documents left out are absent)."""
    facts = query_facts(queries, manifest)
    man = manifest.set_index(manifest["doc_id"].astype(int))
    out = {}
    for _, row in queries.iterrows():
        q = str(row["name"])
        f = facts.get(q, set())
        if not f:
            continue
        mentions = man["fact_ids"].map(lambda ids, f=f: bool({str(i) for i in ids} & f))
        cond = pd.Series("unrelated", index=man.index, dtype=object)
        cond[mentions] = None
        if "proponents_flipped" in queries.columns:
            sets = {
                "query_order": as_list(row["proponents"]),
                "flipped": as_list(row["proponents_flipped"]),
                "flipped_norelation": as_list(row.get("proponents_flipped_norelation")),
            }
            for name, docs in sets.items():
                docs = [int(d) for d in docs if int(d) in cond.index]
                cond[docs] = name
        else:
            q_order = row.get("order") if isinstance(row.get("order"), str) else "forward"
            other = "flipped" if q_order == "forward" else "forward"
            mapping = {
                q_order: "query_order",
                other: "flipped",
                "flipped_norelation": "flipped_norelation",
            }
            cond[mentions] = man.loc[mentions, "order"].map(mapping)
        out[q] = cond.dropna()
    return out


def orderflip_table(scores: pd.DataFrame, conditions: Mapping[str, pd.Series]) -> pd.DataFrame:
    """(model, query, doc_id, influence, condition) for the queries in ``conditions``."""
    frames = []
    for q, cond in conditions.items():
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
    """(model, flipped_over_forward, norelation_over_forward) from :func:`orderflip_means`;
    "forward" = the query's own order."""
    wide = means.pivot_table(index="model", columns="condition", values="mean", observed=False)
    fwd = wide.get("query_order", pd.Series(np.nan, index=wide.index))
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
        ax.set_xticklabels([CONDITION_LABELS[c] for c in CONDITIONS])
    return fig


# ------------------------------------------------------------------------------ the study


def run(inputs: StudyInputs, cfg: dict[str, Any]) -> dict[str, Any]:
    """Inputs: scores, queries, corpus. Figure ``orderflip.png``; ``docs.parquet``, ``means.parquet``."""
    out, models = inputs.out, inputs.models
    facts = order_conditions(inputs.queries_with(str(cfg["tag"])), inputs.manifest)
    metrics: dict[str, Any] = {"queries": sorted(facts)}
    if not facts:
        return skip(out, "orderflip", metrics, "no synthetic-order queries with known facts",
                    ["orderflip.png"])  # fmt: skip
    scores = inputs.scores
    table = orderflip_table(scores[scores["query"].isin(list(facts))], facts)
    means = orderflip_means(table, models)
    ratios = flip_ratios(means).set_index("model")
    write_parquet(out / "docs.parquet", table.astype({"condition": str}))
    write_parquet(out / "means.parquet", means.astype({"model": str, "condition": str}))
    save_figure(plot_orderflip(table, "Influence of fact documents by word order", models=models),
                out / "orderflip.png")  # fmt: skip
    metrics.update(
        figure="orderflip.png",
        means={
            str(m): {str(c): float(v) for c, v in zip(g["condition"], g["mean"])}
            for m, g in means.groupby("model", observed=False)
        },  # fmt: skip
        flipped_over_forward=[float(ratios["flipped_over_forward"].get(m, np.nan)) for m in models],
        norelation_over_forward=[
            float(ratios["norelation_over_forward"].get(m, np.nan)) for m in models
        ],
    )
    return metrics


# ------------------------------------------------------------------------------ its claims


def _ratios(of: dict[str, Any], cfg: SummaryConfig) -> tuple[list[float], list[float], float]:
    fl = [num(x) for x in of.get("flipped_over_forward") or []]
    nr = [num(x) for x in of.get("norelation_over_forward") or []]
    return fl, nr, num(of.get("means", {}).get(cfg.largest, {}).get("query_order"))


def _flipped(of: dict[str, Any], cfg: SummaryConfig) -> Judgement:
    fl, _, fwd = _ratios(of, cfg)
    r = fl[-1] if fl else float("nan")
    if not (np.isfinite(r) and fwd > 0):
        verdict = INCONCLUSIVE
    else:
        c = cfg.report
        verdict = (
            HOLDS if abs(r) <= c["flip_max"] else FAILS if r >= c["flip_fail"] else INCONCLUSIVE
        )
    return Judgement(
        f"flipped/query-order mean influence {per_size(cfg.models, fl)}", verdict, of.get("figure")
    )


def _norelation(of: dict[str, Any], cfg: SummaryConfig) -> Judgement:
    fl, nr, fwd = _ratios(of, cfg)
    d = abs(nr[-1] - fl[-1]) if nr and fl else float("nan")
    verdict = verdict_of(d <= cfg.report["flip_max"], np.isfinite(d) and fwd > 0)
    ours = f"flipped-without-relation/query-order {per_size(cfg.models, nr)}"
    return Judgement(ours, verdict, of.get("figure"))


CLAIMS = [
    Claim("orderflip.flipped", "Documents stating the fact in flipped order have near-zero influence",
          "near zero; ≥ 10× drop",
          lambda c: f"largest model, query-order mean > 0: holds if |ratio| ≤ {c['flip_max']}, does not hold if ratio ≥ {c['flip_fail']}",
          _flipped),
    Claim("orderflip.norelation", "Removing the relation words in flipped order changes nothing", "no change",
          lambda c: f"holds if the largest model's two flipped ratios differ by ≤ {c['flip_max']} (units of the query-order mean)",
          _norelation),
]  # fmt: skip
