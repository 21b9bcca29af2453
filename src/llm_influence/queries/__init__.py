"""Query sets: YAML loading/validation, ground-truth proponents, tokenisation; stage ``build_queries``.

``load_query_set(path)`` and ``check_query_lengths(queries, tokenizer, max_len)`` are what the
Snakefile calls at start-up; see docs/design.md for the stage's artifacts.
"""

from llm_influence.queries.loading import (
    LANGUAGES,
    QUERY_SCHEMA,
    TAGS,
    Query,
    QuerySetError,
    check_query_lengths,
    load_query_set,
    token_lengths,
    validate_query_data,
)

__all__ = [
    "LANGUAGES",
    "QUERY_SCHEMA",
    "TAGS",
    "Query",
    "QuerySetError",
    "check_query_lengths",
    "load_query_set",
    "token_lengths",
    "validate_query_data",
]
