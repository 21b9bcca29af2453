"""TF-IDF (modified Okapi BM25) candidate filter over tokenizer ids, as in Grosse et al. (2023).

Public names: :func:`bm25_scores`, :func:`top_k_candidates`, :func:`query_token_matrix`,
:func:`document_term_matrix`, :class:`BM25Params`. The stage entry point is
``llm_influence.tfidf.stage:build_candidates``.
"""

from llm_influence.tfidf.bm25 import (
    BM25Params,
    bm25_scores,
    document_term_matrix,
    idf,
    query_token_matrix,
    top_k_candidates,
)

__all__ = [
    "BM25Params",
    "bm25_scores",
    "document_term_matrix",
    "idf",
    "query_token_matrix",
    "top_k_candidates",
]
