"""Layers (paper Fig. 17–21): where in depth the influence of the top sequences sits.

Per (model, query): the layer-wise influence (sum over a layer's tracked modules) summed over the
query's top-k sequences, normalised by the sum of its absolute values over layers (a profile whose
absolute values sum to 1); its centre of mass in relative depth 0 (first) … 1 (last layer) uses the
positive parts. Re-ranking: the top-k by the lower, middle or upper third of the layers only,
compared with the full top-k (overlap share) and classified like the scale study. The paper finds
memorised quotes and simple facts in upper layers and math, code and translation in middle ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llm_influence.artifacts.scores import ScoreTable
from llm_influence.studies.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    Claim,
    Judgement,
    SummaryConfig,
    fmt,
    num,
)
from llm_influence.studies.data import KINDS, layer_index, query_kind
from llm_influence.studies.figures import new_figure, save_figure, signed_heatmap, styled
from llm_influence.utils.io import write_parquet

if TYPE_CHECKING:  # matplotlib loads inside the figure functions
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from llm_influence.studies.inputs import StudyInputs

THIRDS = ("lower", "middle", "upper")


def per_layer_scores(table: ScoreTable) -> tuple[np.ndarray, list[int]]:
    """[Q, N, L] scores summed over each layer's modules, and the sorted layer indices."""
    if table.layers is None:
        raise ValueError(f"score table {table.path} has no per-layer scores")
    idx = np.array([layer_index(m) for m in table.modules])
    layers = sorted(set(idx.tolist()))
    out = np.stack([table.layers[:, :, idx == li].sum(axis=2) for li in layers], axis=2)
    return out, layers


def layer_profiles(model: str, table: ScoreTable, top_k: int) -> pd.DataFrame:
    """(model, query, layer, depth, influence, share) over the top-k sequences by total influence."""
    per, layers = per_layer_scores(table)
    n_l = len(layers)
    rows = []
    for qi, q in enumerate(table.queries):
        top = np.lexsort((table.doc_id, -table.total[qi]))[:top_k]
        v = per[qi, top].sum(axis=0)
        denom = np.abs(v).sum()
        for li, layer in enumerate(layers):
            rows.append(
                (model, q, layer, li / max(n_l - 1, 1), v[li], v[li] / denom if denom else 0.0)
            )
    return pd.DataFrame(rows, columns=["model", "query", "layer", "depth", "influence", "share"])


def centre_of_mass(profiles: pd.DataFrame) -> pd.DataFrame:
    """(model, query, centre): Σ depth · max(share, 0) / Σ max(share, 0)."""

    def com(g: pd.DataFrame) -> float:
        w = g["share"].clip(lower=0).to_numpy()
        return float((w * g["depth"].to_numpy()).sum() / w.sum()) if w.sum() > 0 else float("nan")

    return (
        profiles.groupby(["model", "query"], sort=False)[["share", "depth"]]
        .apply(com)
        .rename("centre")
        .reset_index()
    )


def third_of(layer_pos: int, n_layers: int) -> str:
    """Lower/middle/upper third by the centre of the layer's position: layer i of L belongs to
    third ⌊3 (i + ½) / L⌋ (L = 2: lower and upper, no middle; L = 3: one each)."""
    return THIRDS[min(2, int(3 * (layer_pos + 0.5) / max(n_layers, 1)))]


def rerank_by_thirds(model: str, table: ScoreTable, top_k: int) -> pd.DataFrame:
    """(model, query, third, doc_id, rank, influence): top-k by each third's layers only."""
    per, layers = per_layer_scores(table)
    thirds = np.array([third_of(i, len(layers)) for i in range(len(layers))])
    rows = []
    for third in ("all", *THIRDS):
        sel = np.ones(len(layers), bool) if third == "all" else thirds == third
        if not sel.any():
            continue
        s = per[:, :, sel].sum(axis=2)
        for qi, q in enumerate(table.queries):
            top = np.lexsort((table.doc_id, -s[qi]))[:top_k]
            for r, j in enumerate(top, start=1):
                rows.append((model, q, third, int(table.doc_id[j]), r, float(s[qi, j])))
    return pd.DataFrame(rows, columns=["model", "query", "third", "doc_id", "rank", "influence"])


def rerank_overlap(reranked: pd.DataFrame) -> pd.DataFrame:
    """(model, query, third, overlap): share of each third's top-k also in the full top-k."""
    full = reranked[reranked["third"] == "all"].groupby(["model", "query"])["doc_id"].apply(set)
    rows = []
    for (model, q, third), g in reranked[reranked["third"] != "all"].groupby(
        ["model", "query", "third"]
    ):
        ref = full.get((model, q), set())
        rows.append((model, q, third, len(set(g["doc_id"]) & ref) / max(len(g), 1)))
    return pd.DataFrame(rows, columns=["model", "query", "third", "overlap"])


def plot_layers(
    profiles: pd.DataFrame, kinds: dict[str, str], title: str, ax: Axes | None = None,
    order: Sequence[str] | None = None,
) -> Figure:  # fmt: skip
    """Heatmap query × layer of the normalised layer-wise influence; rows grouped by query kind."""
    p = profiles.copy()
    p["row"] = [f"{kinds.get(q, 'other')} · {q}" for q in p["query"]]
    rows = sorted(p["row"].unique(), key=lambda r: (
        (list(order).index(r.split(" · ")[0]) if order and r.split(" · ")[0] in order else 99), r))  # fmt: skip
    wide = p.pivot_table(index="row", columns="layer", values="share").reindex(rows)
    with styled():
        fig, ax = new_figure(
            ax, (max(7.0, 4.5 + 0.35 * wide.shape[1]), 1.6 + 0.3 * max(len(wide), 1))
        )
        lim = float(np.nanmax(np.abs(wide.to_numpy()))) if wide.size else 1.0
        signed_heatmap(ax, wide, lim, "share of |influence| (signed)", title,
                       "layer (0 = closest to the input)", "query kind · query")  # fmt: skip
    return fig


# ------------------------------------------------------------------------------ the study


def _model_entry(
    m: str, centres: pd.DataFrame, overlap: pd.DataFrame, classified
) -> dict[str, Any]:
    c = centres[centres["model"] == m]
    entry: dict[str, Any] = {
        "figure": f"layers_{m}.png",
        "centre_by_kind": {
            str(kd): float(v) for kd, v in c.groupby("kind")["centre"].mean().items()
        },
        "overlap_by_third": {
            t: float(overlap[(overlap["model"] == m) & (overlap["third"] == t)]["overlap"].mean())
            for t in THIRDS
        },
    }
    if classified is not None:
        cm = classified[classified["model"] == m]
        entry["related_by_third"] = {
            t: float((cm[cm["third"] == t]["relation"] == "related").mean())
            for t in ("all", *THIRDS)
        }
    return entry


def run(inputs: StudyInputs, cfg: dict[str, Any]) -> dict[str, Any]:
    """Inputs: scores (with per-layer scores), queries, corpus. Figures ``layers_{model}.png``."""
    out, models, queries = inputs.out, inputs.models, inputs.queries
    tables = inputs.tables(with_layers=True)
    kinds = {str(n): query_kind(t) for n, t in zip(queries["name"], queries["tags"])}
    k, rk = int(cfg["top_k"]), int(cfg["rerank_top_k"])
    profiles = pd.concat([layer_profiles(m, t, k) for m, t in tables.items()], ignore_index=True)
    centres = centre_of_mass(profiles)
    centres["kind"] = centres["query"].map(kinds).fillna("other")
    reranked = pd.concat([rerank_by_thirds(m, t, rk) for m, t in tables.items()], ignore_index=True)
    overlap = rerank_overlap(reranked)
    classified = inputs.classify(reranked, queries, cfg) if inputs.has("corpus") else None
    write_parquet(out / "profiles.parquet", profiles)
    write_parquet(out / "centres.parquet", centres)
    write_parquet(
        out / "rerank.parquet",
        reranked if classified is None else classified.astype({"relation": str}),
    )
    for m in models:
        fig = plot_layers(profiles[profiles["model"] == m], kinds,
                          f"Layer-wise influence of the top-{k} sequences, model {m}", order=KINDS)  # fmt: skip
        save_figure(fig, out / f"layers_{m}.png")
    per_model = {m: _model_entry(m, centres, overlap, classified) for m in models}
    return {"top_k": k, "rerank_top_k": rk, "per_model": per_model}


# ------------------------------------------------------------------------------ its claims

UPPER_KINDS, MIDDLE_KINDS = ("memorisation", "factual"), ("math", "code", "translation")


def _kinds(metrics: dict[str, Any], cfg: SummaryConfig) -> Judgement | None:
    la = metrics.get("per_model", {}).get(cfg.largest)
    if not la:
        return None
    cen = la.get("centre_by_kind", {})
    up = [x for x in (num(cen[k]) for k in UPPER_KINDS if k in cen) if np.isfinite(x)]
    mid = [x for x in (num(cen[k]) for k in MIDDLE_KINDS if k in cen) if np.isfinite(x)]
    verdict = (
        INCONCLUSIVE if not up or not mid else (HOLDS if np.mean(up) > np.mean(mid) else FAILS)
    )
    ours = (f"{cfg.largest}: centre of mass in relative depth (0 = first, 1 = last layer) "
            + ", ".join(f"{k} {fmt(x, '.2f')}" for k, x in sorted(cen.items())))  # fmt: skip
    return Judgement(ours, verdict, la.get("figure"))


def _middle(metrics: dict[str, Any], cfg: SummaryConfig) -> Judgement | None:
    la = metrics.get("per_model", {}).get(cfg.largest)
    rel = (la or {}).get("related_by_third")
    if not rel:
        return None
    thirds = {t: num(rel.get(t)) for t in THIRDS}
    fin = {t: x for t, x in thirds.items() if np.isfinite(x)}
    if len(fin) < 3 or max(fin.values()) == 0:
        verdict = INCONCLUSIVE
    else:
        verdict = (
            HOLDS if fin["middle"] > max(x for t, x in fin.items() if t != "middle") else FAILS
        )
    ours = f"{cfg.largest}: related share of the re-ranked top-k " + ", ".join(
        f"{t} {fmt(x, '.2f')}" for t, x in thirds.items()
    )
    return Judgement(ours, verdict, la.get("figure"))


CLAIMS = [
    Claim("layers.kinds", "Memorised quotes and simple facts sit in upper layers, math/code/translation in middle layers",
          "qualitative (Fig. 17–21)",
          lambda c: "holds if the mean centre of memorisation+factual queries exceeds that of math+code+translation",
          _kinds),
    Claim("layers.middle", "Re-ranking by the middle third of the layers gives the most abstract (related) matches",
          "qualitative", lambda c: "holds if the middle third has the strictly highest related share", _middle),
]  # fmt: skip
