"""Ground-truth retrieval metrics: how high the documents that state a query's fact rank.

Used for EK-FAC, gradient dot product and TF-IDF rankings alike (issue 4 "Done when"): each takes a
[Q, N] score matrix (higher = more influential / more similar), the [N] doc ids of its columns and,
per query, the list of ground-truth proponent doc ids (``queries.parquet`` column ``proponents``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def rank_documents(scores: np.ndarray, doc_ids: np.ndarray) -> np.ndarray:
    """[Q, N] doc ids sorted best first (ties broken by ascending doc id)."""
    scores = np.asarray(scores, dtype=np.float64)
    doc_ids = np.asarray(doc_ids, dtype=np.int64)
    return (
        np.stack([doc_ids[np.lexsort((doc_ids, -row))] for row in scores])
        if len(scores)
        else (np.zeros((0, doc_ids.size), dtype=np.int64))
    )


def retrieval_metrics(
    scores: np.ndarray,
    doc_ids: np.ndarray,
    proponents: Sequence[Sequence[int] | None],
    query_names: Sequence[str] | None = None,
    k: int = 10,
) -> pd.DataFrame:
    """Per-query recall@k and reciprocal rank of the ground-truth proponents.

    recall@k = |top-k ∩ P| / |P|; reciprocal rank = 1 / (1-based rank of the best-ranked proponent),
    0 if no proponent is among the scored documents. Queries without proponents get NaN (they are
    left out of the means by :func:`summarise_retrieval`).
    """
    ranked = rank_documents(scores, doc_ids)
    names = list(query_names) if query_names is not None else [str(i) for i in range(len(ranked))]
    rows = []
    for qi, order in enumerate(ranked):
        props = set(int(p) for p in (proponents[qi] if proponents[qi] is not None else []))
        if not props:
            rows.append((names[qi], 0, np.nan, np.nan, np.nan))
            continue
        hits = np.isin(order, list(props))
        first = np.flatnonzero(hits)
        rr = 1.0 / (first[0] + 1) if first.size else 0.0
        best = int(first[0] + 1) if first.size else -1
        rows.append((names[qi], len(props), hits[:k].sum() / len(props), rr, best))
    return pd.DataFrame(rows, columns=["query", "n_proponents", f"recall@{k}", "rr", "best_rank"])


def summarise_retrieval(per_query: pd.DataFrame) -> dict[str, float]:
    """Mean recall@k and MRR over the queries that have proponents."""
    have = per_query[per_query["n_proponents"] > 0]
    rec_col = [c for c in per_query.columns if c.startswith("recall@")][0]
    return {
        "n_queries_with_proponents": int(len(have)),
        rec_col: float(have[rec_col].mean()) if len(have) else float("nan"),
        "mrr": float(have["rr"].mean()) if len(have) else float("nan"),
    }


METHOD_ORDER = ("ekfac", "kfac", "identity", "graddot", "tfidf")


def simple_fact_queries(queries: pd.DataFrame) -> pd.Series:
    """English fact queries asked in the order the fact is mostly stated (the paper's `water` kind):
    tag ``factual``, not a translation, not an order-flip probe."""
    tags = queries["tags"].apply(set)
    forward = (
        queries["order"].fillna("forward") == "forward"
        if "order" in queries
        else pd.Series(True, index=queries.index)
    )
    return (
        tags.apply(lambda t: "factual" in t and "translation" not in t)
        & (queries["language"] == "en")
        & forward
    )


def plot_retrieval(table: pd.DataFrame, k: int = 10):
    """Bars of recall@k and MRR per model and method (table: model, method, recall@k, mrr)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    order = [m for m in METHOD_ORDER if m in set(table["method"])]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, metric, label in zip(
        axes, [f"recall@{k}", "mrr"], [f"recall@{k} (share of proponents)", "MRR"]
    ):
        sns.barplot(data=table, x="model", y=metric, hue="method", hue_order=order, ax=ax)
        ax.set_ylim(0, 1)
        ax.set_xlabel("model (smallest to largest)")
        ax.set_ylabel(label)
        ax.set_title(f"{label} of fact-stating documents")
    fig.suptitle("Ground truth: simple fact queries (higher is better)")
    return fig
