"""Tokens (paper Fig. 4–5): token-wise influence of the top sequences, as HTML and PNG.

Input: ``tokens.parquet`` (query, doc_id, rank, position, token_id, token, score) of a score
table. Per-token score at position t = contribution of input token t (the token *before* the
predicted one). Colours are normalised per query by the largest |score| among its shown tokens:
red = positive (raises the completion's log-probability), blue = negative. Statistic: the share
of a sequence's total |token influence| held by its top 10 % of tokens (averaged).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llm_influence.studies.figures import save_figure, signed_heatmap, styled
from llm_influence.utils.io import write_parquet, write_text

if TYPE_CHECKING:  # matplotlib loads inside the figure functions
    from matplotlib.figure import Figure

    from llm_influence.studies.inputs import StudyInputs


def select_sequences(tokens: pd.DataFrame, max_sequences: int, max_tokens: int) -> pd.DataFrame:
    t = tokens[
        tokens["rank"] <= tokens.groupby("query")["rank"].transform("min") + max_sequences - 1
    ]
    t = (
        t.sort_values(["model", "query", "rank", "position"])
        if "model" in t
        else t.sort_values(["query", "rank", "position"])
    )
    return t.groupby([c for c in ("model", "query", "rank") if c in t], sort=False).head(max_tokens)


def token_concentration(tokens: pd.DataFrame, fraction: float = 0.1) -> pd.DataFrame:
    """(…, query, rank, top_share): share of Σ|score| held by the top ``fraction`` of tokens."""
    keys = [c for c in ("model", "query", "rank") if c in tokens]

    def share(g: pd.Series) -> float:
        a = np.sort(np.abs(g.to_numpy()))[::-1]
        k = max(1, int(np.ceil(fraction * a.size)))
        return float(a[:k].sum() / a.sum()) if a.sum() > 0 else float("nan")

    return tokens.groupby(keys, sort=False)["score"].apply(share).rename("top_share").reset_index()


def _colour(v: float, scale: float) -> str:
    a = min(1.0, abs(v) / scale) if scale > 0 else 0.0
    rgb = (
        (255, int(255 * (1 - a)), int(255 * (1 - a)))
        if v >= 0
        else (int(255 * (1 - a)), int(255 * (1 - a)), 255)
    )
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def render_tokens_html(tokens: pd.DataFrame, title: str) -> str:
    """Self-contained static HTML page: one block per (model, query, rank), coloured token spans."""
    parts = [
        "<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        ".seq{font-family:monospace;white-space:pre-wrap;line-height:1.7;border:1px solid #ddd;"
        "padding:.5em;margin:.3em 0}.seq span{border-radius:2px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Red: the token raises the query completion's log-probability; blue: lowers it. "
        "Intensity relative to the largest |score| of the query's shown tokens. Hover a token "
        "for its score.</p>",
    ]  # fmt: skip
    keys = [c for c in ("model", "query") if c in tokens]
    for key, grp in tokens.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        parts.append(f"<h2>{html.escape(' · '.join(map(str, key)))}</h2>")
        scale = float(np.abs(grp["score"]).max()) if len(grp) else 0.0
        for (rank, doc), seq in grp.groupby(["rank", "doc_id"], sort=True):
            total = float(seq["score"].sum())
            parts.append(
                f"<h3>rank {int(rank)} · document {int(doc)} · Σ token scores {total:.4g}</h3>"
            )
            spans = "".join(
                f"<span style='background:{_colour(s, scale)}' title='{s:.4g}'>{html.escape(str(tok))}</span>"
                for tok, s in zip(seq["token"], seq["score"])
            )
            parts.append(f"<div class='seq'>{spans}</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def plot_tokens(tokens: pd.DataFrame, title: str, queries: Sequence[str] | None = None) -> Figure:
    """Heatmap rows = query · rank (top sequences), columns = token position; per-query scale."""
    from matplotlib.figure import Figure

    t = tokens if queries is None else tokens[tokens["query"].isin(list(queries))]
    t = t.copy()
    t["norm"] = t["score"] / t.groupby("query")["score"].transform(lambda s: np.abs(s).max() or 1.0)
    t["row"] = t["query"].astype(str) + " #" + t["rank"].astype(int).astype(str)
    rows = list(dict.fromkeys(t.sort_values(["query", "rank"])["row"]))
    wide = t.pivot_table(index="row", columns="position", values="norm").reindex(rows)
    with styled():
        fig = Figure(figsize=(min(14.0, max(8.0, 4.0 + 0.12 * max(wide.shape[1], 1))), 1.4 + 0.28 * max(len(wide), 1)),
                     layout="constrained")  # fmt: skip
        ax = fig.add_subplot()
        signed_heatmap(ax, wide, 1.0, "token influence / max |token influence| of the query", title,
                       "token position in the training sequence", "query #rank of the sequence")  # fmt: skip
    return fig


# ------------------------------------------------------------------------------ the study


def run(inputs: StudyInputs, cfg: dict[str, Any]) -> dict[str, Any]:
    """Inputs: scores (``tokens.parquet`` of each table). Outputs ``tokens_{model}.html``/``.png``."""
    out = inputs.out
    per_model = {}
    for m, tok in inputs.tokens().items():
        tok.insert(0, "model", m)
        qs = list(dict.fromkeys(tok["query"]))[: int(cfg["max_queries"])]
        shown = select_sequences(tok[tok["query"].isin(qs)], int(cfg["max_sequences"]),
                                 int(cfg["max_tokens"]))  # fmt: skip
        write_text(
            out / f"tokens_{m}.html", render_tokens_html(shown, f"Token-wise influence, model {m}")
        )
        save_figure(plot_tokens(shown, f"Token-wise influence of the top sequences, model {m}"),
                    out / f"tokens_{m}.png")  # fmt: skip
        conc = token_concentration(tok)
        write_parquet(out / f"concentration_{m}.parquet", conc)
        per_model[m] = {"figure": f"tokens_{m}.png", "html": f"tokens_{m}.html",
                        "top10pct_token_share_mean": float(conc["top_share"].mean())}  # fmt: skip
    return {"per_model": per_model}


CLAIMS: list = []  # token attributions are shown, not judged (docs/studies.md)
