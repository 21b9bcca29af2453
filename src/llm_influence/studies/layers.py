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

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from llm_influence.artifacts.scores import ScoreTable
from llm_influence.studies.data import layer_index
from llm_influence.studies.figures import new_figure, styled

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
    import seaborn as sns

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
        sns.heatmap(wide, ax=ax, cmap="RdBu_r", center=0.0, vmin=-lim, vmax=lim,
                    cbar_kws={"label": "share of |influence| (signed)"})  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("layer (0 = closest to the input)")
        ax.set_ylabel("query kind · query")
    return fig
