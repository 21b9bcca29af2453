"""Which training documents each counterfactual retraining keeps.

The unit is the document (``doc_id`` of the tokenised training rows): a row is kept when its
document is. Subset j keeps a seeded random α-fraction of the documents; a leave-out run drops a
method's top documents for the chosen queries (or an equally large random set).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from llm_influence.counterfactual.spec import RANDOM_CONTROL

if TYPE_CHECKING:
    import torch

__all__ = ["RANDOM_CONTROL"]


def subset_documents(doc_ids: np.ndarray, alpha: float, seed: int, subset: int) -> np.ndarray:
    """Sorted doc ids of subset ``subset``: round(α·D) of the D distinct documents, drawn without
    replacement from a generator seeded by (seed, subset) (independent of every other subset)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"counterfactual.alpha must be in (0, 1), got {alpha}")
    if subset < 0:
        raise ValueError(f"subset index must be >= 0, got {subset}")
    docs = np.unique(np.asarray(doc_ids, dtype=np.int64))
    n_keep = int(round(alpha * len(docs)))
    if not 0 < n_keep < len(docs):
        raise ValueError(
            f"counterfactual.alpha={alpha} keeps {n_keep} of {len(docs)} documents; "
            "a subset must keep at least one and drop at least one"
        )
    rng = np.random.default_rng([int(seed), int(subset)])
    return np.sort(rng.choice(docs, size=n_keep, replace=False))


def subset_masks(row_doc_ids: np.ndarray, kept: list[np.ndarray]) -> np.ndarray:
    """[M, N] 0/1 matrix: row i of the training set (document ``row_doc_ids[i]``) is in subset j."""
    row_doc_ids = np.asarray(row_doc_ids, dtype=np.int64)
    return np.stack([np.isin(row_doc_ids, k) for k in kept]).astype(np.float64)


def keep_rows(train: dict[str, torch.Tensor], kept_doc_ids: np.ndarray) -> dict[str, torch.Tensor]:
    """The training tensors restricted to the rows of the kept documents (order preserved)."""
    import torch

    doc = train["doc_id"].numpy()
    rows = torch.from_numpy(np.flatnonzero(np.isin(doc, np.asarray(kept_doc_ids, np.int64))))
    if len(rows) == 0:
        raise ValueError("the subset keeps no training row")
    return {k: v[rows] for k, v in train.items()}


def top_documents(
    scores: np.ndarray, row_doc_ids: np.ndarray, queries: list[int], k: int, size: int
) -> np.ndarray:
    """Exactly ``size`` documents: every listed query's top documents (by ``scores`` [Q, N], high
    first, ties by doc id), taken rank by rank round-robin over the queries until ``size`` distinct
    documents are collected. With ``size = k · len(queries)`` this is the union of each query's
    top-k, topped up with the next ranks where the queries share documents, so that every method
    (and the random control) removes the same number of documents."""
    row_doc_ids = np.asarray(row_doc_ids, dtype=np.int64)
    n_docs = len(np.unique(row_doc_ids))
    if k < 1:
        raise ValueError(f"counterfactual.remove_k must be >= 1, got {k}")
    if size >= n_docs:
        raise ValueError(
            f"counterfactual.remove_k={k}: removing {size} documents leaves none of the "
            f"{n_docs} training documents"
        )
    orders = [np.lexsort((row_doc_ids, -np.asarray(scores[q], float))) for q in queries]
    chosen: dict[int, None] = {}
    for rank in range(len(row_doc_ids)):
        for order in orders:
            if len(chosen) >= size:
                return np.sort(np.fromiter(chosen, dtype=np.int64))
            chosen.setdefault(int(row_doc_ids[order[rank]]), None)
    return np.sort(np.fromiter(chosen, dtype=np.int64))


def random_documents(row_doc_ids: np.ndarray, size: int, seed: int) -> np.ndarray:
    """The random control: ``size`` distinct documents drawn with a generator seeded by ``seed``."""
    docs = np.unique(np.asarray(row_doc_ids, dtype=np.int64))
    if size >= len(docs):
        raise ValueError(f"cannot remove {size} of {len(docs)} documents")
    rng = np.random.default_rng([int(seed), 0x5EED])
    return np.sort(rng.choice(docs, size=size, replace=False))
