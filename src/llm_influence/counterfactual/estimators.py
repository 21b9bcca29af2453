"""The attribution scores the counterfactual checks: every estimator of a model's gathered score
table plus the TF-IDF (BM25) baseline, on one [Q, N] grid (queries × training sequences)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llm_influence.counterfactual.spec import TFIDF
from llm_influence.utils.io import load_arrays, read_json


@dataclass
class Estimators:
    queries: list[str]  # row order of every matrix
    doc_id: np.ndarray  # [N] document of each column (training sequence)
    scores: dict[str, np.ndarray]  # method -> [Q, N]


def tfidf_scores(tfidf_dir: str | Path, queries: list[str], doc_id: np.ndarray) -> np.ndarray:
    """BM25 score of each (query, sequence) from ``candidates.parquet``; a document outside a
    query's candidate list scores 0 (BM25 is never negative, so it ranks last)."""
    cand = pd.read_parquet(
        Path(tfidf_dir) / "candidates.parquet", columns=["query", "doc_id", "tfidf"]
    )
    columns = pd.DataFrame({"doc_id": np.asarray(doc_id, np.int64), "col": np.arange(len(doc_id))})
    cand = cand[cand["query"].isin(queries)].astype({"doc_id": np.int64})
    cells = cand.merge(columns, on="doc_id")  # every row (sequence) of each candidate document
    out = np.zeros((len(queries), len(doc_id)))
    rows = cells["query"].map({q: i for i, q in enumerate(queries)}).to_numpy()
    out[rows, cells["col"].to_numpy()] = cells["tfidf"].to_numpy(np.float64)
    return out


def load_estimators(table_dir: str | Path, tfidf_dir: str | Path | None = None) -> Estimators:
    """Estimators of ``table_dir`` (``estimator_tables``) plus ``tfidf`` when ``tfidf_dir`` is given."""
    from llm_influence.attribution.estimators import TABLE_FILE, estimator_tables

    tensors, _ = load_arrays(Path(table_dir) / TABLE_FILE)
    doc_id = tensors["doc_id"].astype(np.int64)
    queries = [str(q) for q in read_json(Path(table_dir) / "index.json")["queries"]]
    scores = estimator_tables(table_dir)
    if tfidf_dir is not None:
        scores[TFIDF] = tfidf_scores(tfidf_dir, queries, doc_id)
    return Estimators(queries=queries, doc_id=doc_id, scores=scores)
