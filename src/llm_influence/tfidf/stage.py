"""Stage entry point of the ``tfidf`` rule: BM25 candidates for every query at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm_influence.artifacts.queries import TABLE, TENSORS, read_queries, read_query_tensors
from llm_influence.artifacts.tfidf import CANDIDATES, METRICS
from llm_influence.artifacts.tokenized import read_split
from llm_influence.studies.retrieval import retrieval_metrics, summarise_retrieval
from llm_influence.tfidf.bm25 import (
    BM25Params,
    bm25_scores,
    document_term_matrix,
    query_token_matrix,
    top_k_candidates,
)
from llm_influence.utils.io import write_json, write_parquet
from llm_influence.workflow.context import StageContext

QUERY_TOKEN_MODES = ("prompt_completion", "completion")


def query_positions(queries: dict[str, np.ndarray], mode: str) -> np.ndarray:
    """Boolean [Q, Tq] mask of the query positions whose tokens are summed over."""
    if mode == "prompt_completion":
        return queries["attention_mask"].astype(bool)
    if mode == "completion":
        return (queries["labels"] != -100) & queries["attention_mask"].astype(bool)
    raise ValueError(f"tfidf.query_tokens must be one of {QUERY_TOKEN_MODES}, got {mode!r}")


def compute_candidates(
    train: dict[str, np.ndarray],
    queries: dict[str, np.ndarray],
    query_names: list[str],
    *,
    top_k: int,
    params: BM25Params,
    query_tokens: str = "prompt_completion",
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Candidates table, the full [Q, C] score matrix and its column doc ids.

    Rows of the tokenised corpus that share a ``doc_id`` form one document (union of tokens,
    summed length); each distinct doc_id is one column.
    """
    doc_ids, groups = np.unique(train["doc_id"].astype(np.int64), return_inverse=True)
    keep = query_positions(queries, query_tokens)
    vocab = int(max(train["input_ids"].max(initial=0), queries["input_ids"].max(initial=0))) + 1
    doc_term, lengths = document_term_matrix(
        train["input_ids"], train["attention_mask"], vocab, groups=groups
    )
    q_counts = query_token_matrix(queries["input_ids"], keep, vocab)
    scores = bm25_scores(q_counts, doc_term, lengths, params)
    table = top_k_candidates(scores, doc_ids, query_names, top_k)
    return table, scores, doc_ids


def build_candidates(ctx: StageContext) -> dict[str, Any]:
    """Inputs: ``tokenized`` dir (train.safetensors), ``queries`` dir (queries.parquet + .safetensors).

    Output ``tfidf`` dir: ``candidates.parquet`` (query, doc_id, rank 1 = best, tfidf) and
    ``metrics.json`` (settings, sizes, TF-IDF recall@10 / MRR of the ground-truth proponents).
    """
    cfg = ctx.section("tfidf")
    params = BM25Params(k1=float(cfg["k1"]), b=float(cfg["b"]))
    top_k = int(cfg["top_k"])
    mode = str(cfg["query_tokens"])
    train = read_split(ctx.input["tokenized"], "train", numpy=True)
    qtab = read_queries(ctx.input["queries"])
    queries = read_query_tensors(ctx.input["queries"], numpy=True)
    if queries["input_ids"].shape[0] != len(qtab):
        raise ValueError(f"{TENSORS} has {queries['input_ids'].shape[0]} rows, {TABLE} {len(qtab)}")
    names = [str(n) for n in qtab["name"]]
    table, scores, doc_ids = compute_candidates(
        train, queries, names, top_k=top_k, params=params, query_tokens=mode
    )
    out = Path(ctx.output["tfidf"])
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(out / CANDIDATES, table)
    props = list(qtab["proponents"])
    per_query = retrieval_metrics(scores, doc_ids, props, names, k=10)
    metrics = {
        "k1": params.k1,
        "b": params.b,
        "query_tokens": mode,
        "top_k": int(min(top_k, len(doc_ids))),
        "n_docs": int(len(doc_ids)),
        "n_queries": len(names),
        "mean_overlapping_docs": float((scores > 0).sum(axis=1).mean()) if len(names) else 0.0,
        "retrieval": summarise_retrieval(per_query),
    }
    write_json(out / METRICS, metrics)
    ctx.logger.info("tfidf: %d queries x %d docs, top_k=%d", len(names), len(doc_ids), top_k)
    return metrics
