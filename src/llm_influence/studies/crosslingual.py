"""Cross-lingual (paper Fig. 15–16): do the English query's top sequences also raise its translations?

For each English query with translations (``translation_of`` links) and each model size: the top-k
(default 10) English training sequences by influence on the English query, scored against each
translated query. Statistic: ratio = mean influence on the translation / mean influence on the
English query over those k sequences (per pair); the model's scalar is the mean over pairs. The
paper finds it near zero for the smallest model and rising with size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llm_influence.studies import data as D
from llm_influence.studies.claims import (
    HOLDS,
    INCONCLUSIVE,
    Claim,
    Judgement,
    SummaryConfig,
    num,
    per_size,
    rises,
)
from llm_influence.studies.figures import new_figure, save_figure, signed_heatmap, styled
from llm_influence.studies.results import skip
from llm_influence.utils.io import write_parquet

if TYPE_CHECKING:  # matplotlib loads inside the figure functions
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from llm_influence.studies.inputs import StudyInputs


def crosslingual_table(
    scores: pd.DataFrame,
    queries: pd.DataFrame,
    manifest: pd.DataFrame | None = None,
    *,
    k: int = 10,
    source_language: str = "en",
) -> pd.DataFrame:
    """(model, query, translation, language, rank, doc_id, influence_source, influence_translation)."""
    pairs = [
        (str(r["translation_of"]), str(r["name"]), str(r["language"]))
        for _, r in queries.iterrows()
        if isinstance(r["translation_of"], str) and r["translation_of"]
    ]
    if manifest is not None and "language" in manifest:
        eng = set(manifest.loc[manifest["language"] == source_language, "doc_id"].astype(int))
        pool = scores[scores["doc_id"].isin(eng)]
    else:
        pool = scores
    rows = []
    for model, grp in pool.groupby("model", sort=False):
        by_q = {q: g.set_index("doc_id")["influence"] for q, g in grp.groupby("query")}
        for src, tr, lang in pairs:
            if src not in by_q or tr not in by_q:
                continue
            s = by_q[src]
            top = (
                s.reset_index()
                .sort_values(["influence", "doc_id"], ascending=[False, True])
                .head(k)
            )
            for rank, (d, v) in enumerate(zip(top["doc_id"], top["influence"]), start=1):
                rows.append(
                    (model, src, tr, lang, rank, int(d), float(v), float(by_q[tr].get(d, np.nan)))
                )
    cols = ["model", "query", "translation", "language", "rank", "doc_id", "influence_source",
            "influence_translation"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def crosslingual_ratios(table: pd.DataFrame) -> pd.DataFrame:
    """(model, query, translation, language, ratio) with ratio = mean(translation) / mean(source)."""
    g = table.groupby(["model", "query", "translation", "language"], sort=False)
    out = g[["influence_source", "influence_translation"]].mean().reset_index()
    out["ratio"] = out["influence_translation"] / out["influence_source"]
    return out


def plot_crosslingual(table: pd.DataFrame, title: str, ax: Axes | None = None) -> Figure:
    """Heatmap: rows = model · query → translation, columns = rank of the English sequence,
    colour = influence on the translation / influence on the English query of that sequence."""
    t = table.copy()
    t["pair"] = t["model"].astype(str) + " · " + t["query"] + " → " + t["language"]
    t["rel"] = t["influence_translation"] / t["influence_source"]
    wide = t.pivot_table(index="pair", columns="rank", values="rel", sort=False)
    with styled():
        fig, ax = new_figure(ax, (8.0, 2.0 + 0.35 * max(len(wide), 1)))
        signed_heatmap(ax, wide, 1.0, "translated / English influence", title,
                       "rank of the sequence for the English query", "model · query → language")  # fmt: skip
    return fig


# ------------------------------------------------------------------------------ the study


def run(inputs: StudyInputs, cfg: dict[str, Any]) -> dict[str, Any]:
    """Inputs: scores, queries, corpus. Figure ``crosslingual.png``; ``pairs.parquet``, ``ratios.parquet``."""
    out, models = inputs.out, inputs.models
    manifest = inputs.manifest if inputs.has("corpus") else None
    k = int(cfg["top_k"])
    table = crosslingual_table(inputs.scores, inputs.queries, manifest, k=k,
                               source_language=str(cfg["source_language"]))  # fmt: skip
    metrics: dict[str, Any] = {"top_k": k}
    if table.empty:
        return skip(out, "crosslingual", metrics,
                    "no translated queries (translation_of) in the score tables", ["crosslingual.png"])  # fmt: skip
    ratios = crosslingual_ratios(table)
    write_parquet(out / "pairs.parquet", table)
    write_parquet(out / "ratios.parquet", ratios)
    save_figure(plot_crosslingual(table, f"Top-{k} English sequences scored on translated queries"),
                out / "crosslingual.png")  # fmt: skip
    per_model = ratios.groupby("model")["ratio"].mean()
    metrics.update(
        figure="crosslingual.png",
        ratio=[float(per_model.get(m, np.nan)) for m in models],
        ratio_by_language={
            str(m): {
                str(lang): float(r) for lang, r in g.groupby("language")["ratio"].mean().items()
            }
            for m, g in ratios.groupby("model")
        },
        ratio_increases=D.increasing([per_model.get(m, np.nan) for m in models]),
        n_pairs=int(ratios[["query", "translation"]].drop_duplicates().shape[0]),
    )
    return metrics


# ------------------------------------------------------------------------------ its claims


def _rises_from_near_zero(cl: dict[str, Any], cfg: SummaryConfig) -> Judgement:
    ratio = [num(x) for x in cl.get("ratio") or []]
    verdict = rises(ratio, cfg.report["min_rise"])
    if verdict == HOLDS and not (
        np.isfinite(ratio[0]) and abs(ratio[0]) <= cfg.report["near_zero"]
    ):
        verdict = INCONCLUSIVE
    ours = (f"mean translated/English influence of the English top-{cl.get('top_k')}: "
            f"{per_size(cfg.models, ratio)} ({cl.get('n_pairs')} pairs)")  # fmt: skip
    return Judgement(ours, verdict, cl.get("figure"))


CLAIMS = [
    Claim("crosslingual", "English top sequences also influence translated queries, more so for larger models",
          "near zero at 810M, rising with size",
          lambda c: f"holds if the ratio rises with size by ≥ {c['min_rise']} and |ratio| ≤ {c['near_zero']} at the smallest; "
                    "does not hold if the largest ≤ the smallest",
          _rises_from_near_zero),
]  # fmt: skip
