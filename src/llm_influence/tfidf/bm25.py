r"""Modified Okapi BM25 over tokenizer ids with binary term presence (the paper's TF-IDF filter).

For a corpus of C documents, a query q given as its sequence of token ids (q_1, ..., q_n) -- every
position counts, so a token repeated in the query contributes once per occurrence -- and a
document d with token *set* T(d) and length |d| (non-padding tokens):

.. math::

    \mathrm{IDF}(t) = \log\Big(\frac{C - \mathrm{df}(t) + 0.5}{\mathrm{df}(t) + 0.5} + 1\Big)

    \mathrm{score}(q, d) = \sum_{i=1}^{n} \mathrm{IDF}(q_i)\,
        \frac{\mathbb{1}[q_i \in T(d)]\,(k_1 + 1)}
             {\mathbb{1}[q_i \in T(d)] + k_1 (1 - b + b\,|d| / \mathrm{avgdl})}

i.e. Okapi BM25 with the term frequency replaced by binary presence (tf = 1 if the token occurs
in the document, else 0), ``df(t)`` the number of documents containing t, and ``avgdl`` the mean
document length. With ``b = 0`` there is no length normalisation and each matched query position
contributes ``IDF(t)`` exactly (the (k1+1)/(1+k1) factor is 1). The paper fixes k1 = 1.5; it does
not state b, we default to the usual 0.75 (config ``tfidf.b``).

Because tf is binary the score factorises: with ``Q`` the [Q, V] matrix of query token counts,
``D`` the [C, V] binary document-term matrix and ``w_d = (k1+1) / (1 + k1 (1 - b + b |d|/avgdl))``,

    score = ((Q * IDF) @ D^T) * w

which is computed for all queries at once with scipy sparse matrices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass(frozen=True)
class BM25Params:
    k1: float = 1.5  # the paper's value
    b: float = 0.75  # length normalisation (not stated by the paper); 0 disables it

    def __post_init__(self) -> None:
        if self.k1 < 0:
            raise ValueError(f"tfidf.k1 must be >= 0, got {self.k1}")
        if not 0.0 <= self.b <= 1.0:
            raise ValueError(f"tfidf.b must be in [0, 1], got {self.b}")


def document_term_matrix(
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    vocab_size: int,
    groups: np.ndarray | None = None,
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Binary [C, V] presence matrix and document lengths from padded token rows.

    ``groups`` (optional, [N] ints in 0..C-1) maps each row to a document, for documents split over
    several rows: presence is the union and the length the sum over the document's rows.
    Padding (``attention_mask == 0``) is ignored.
    """
    input_ids = np.asarray(input_ids, dtype=np.int64)
    mask = np.asarray(attention_mask).astype(bool)
    n_rows = input_ids.shape[0]
    if groups is None:
        groups = np.arange(n_rows)
    groups = np.asarray(groups, dtype=np.int64)
    n_docs = int(groups.max()) + 1 if n_rows else 0
    rows = np.broadcast_to(groups[:, None], input_ids.shape)[mask]
    cols = input_ids[mask]
    if cols.size and (cols.min() < 0 or cols.max() >= vocab_size):
        raise ValueError(f"token ids outside [0, {vocab_size}) in the corpus")
    data = np.ones(rows.shape[0], dtype=np.float64)
    mat = sp.csr_matrix((data, (rows, cols)), shape=(n_docs, vocab_size))
    mat.sum_duplicates()
    mat.data[:] = 1.0  # binary presence
    lengths = np.bincount(groups, weights=mask.sum(axis=1), minlength=n_docs).astype(np.float64)
    return mat, lengths


def query_token_matrix(input_ids: np.ndarray, keep: np.ndarray, vocab_size: int) -> sp.csr_matrix:
    """[Q, V] counts of each token over the kept query positions (repeats count each time)."""
    input_ids = np.asarray(input_ids, dtype=np.int64)
    keep = np.asarray(keep).astype(bool)
    rows = np.broadcast_to(np.arange(input_ids.shape[0])[:, None], input_ids.shape)[keep]
    cols = input_ids[keep]
    if cols.size and (cols.min() < 0 or cols.max() >= vocab_size):
        raise ValueError(f"token ids outside [0, {vocab_size}) in the queries")
    data = np.ones(rows.shape[0], dtype=np.float64)
    mat = sp.csr_matrix((data, (rows, cols)), shape=(input_ids.shape[0], vocab_size))
    mat.sum_duplicates()
    return mat


def idf(doc_term: sp.csr_matrix) -> np.ndarray:
    """IDF(t) = log((C - df + 0.5)/(df + 0.5) + 1) for every vocabulary entry (always > 0)."""
    n_docs = doc_term.shape[0]
    df = np.asarray((doc_term > 0).sum(axis=0)).ravel().astype(np.float64)
    return np.log((n_docs - df + 0.5) / (df + 0.5) + 1.0)


def bm25_scores(
    query_counts: sp.csr_matrix,
    doc_term: sp.csr_matrix,
    doc_lengths: np.ndarray,
    params: BM25Params = BM25Params(),
) -> np.ndarray:
    """Dense float64 [Q, C] scores (formula in the module docstring)."""
    lengths = np.asarray(doc_lengths, dtype=np.float64)
    avgdl = float(lengths.mean()) if lengths.size and lengths.mean() > 0 else 1.0
    weight = (params.k1 + 1.0) / (1.0 + params.k1 * (1.0 - params.b + params.b * lengths / avgdl))
    weighted_q = sp.csr_matrix(query_counts.multiply(idf(doc_term)[None, :]))
    raw = (weighted_q @ doc_term.T).toarray()
    return raw * weight[None, :]


def top_k_candidates(
    scores: np.ndarray, doc_ids: np.ndarray, query_names: list[str], k: int
) -> pd.DataFrame:
    """Top-k documents per query: columns query, doc_id, rank (1 = best), tfidf.

    Ties are broken by ascending doc_id, so the table is deterministic. k is capped at the number
    of documents; documents with score 0 are kept when fewer than k documents overlap the query.
    """
    scores = np.asarray(scores, dtype=np.float64)
    doc_ids = np.asarray(doc_ids, dtype=np.int64)
    n_q, n_docs = scores.shape
    k = min(int(k), n_docs)
    frames = []
    for qi in range(n_q):
        order = np.lexsort((doc_ids, -scores[qi]))[:k]
        frames.append(
            pd.DataFrame(
                {
                    "query": query_names[qi],
                    "doc_id": doc_ids[order],
                    "rank": np.arange(1, k + 1, dtype=np.int64),
                    "tfidf": scores[qi, order],
                }
            )
        )
    if not frames:
        return pd.DataFrame({"query": [], "doc_id": [], "rank": [], "tfidf": []}).astype(
            {"query": str, "doc_id": np.int64, "rank": np.int64, "tfidf": np.float64}
        )
    return pd.concat(frames, ignore_index=True)
