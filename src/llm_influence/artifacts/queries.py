"""``data/queries/``: ``queries.parquet`` (one row per query) and ``queries.safetensors`` (rule queries)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llm_influence.artifacts import as_list
from llm_influence.utils.io import load_arrays, load_tensors

TABLE = "queries.parquet"
TENSORS = "queries.safetensors"
TENSOR_KEYS = ("input_ids", "attention_mask", "labels")


def read_queries(queries_dir: str | Path) -> pd.DataFrame:
    """The query table; ``tags``/``proponents`` as lists, ``translation_of``/``variant_of`` present."""
    q = pd.read_parquet(Path(queries_dir) / TABLE)
    for col in ("tags", "proponents"):
        q[col] = [as_list(v) for v in q[col]] if col in q else [[] for _ in range(len(q))]
    for col in ("translation_of", "variant_of"):
        if col not in q:
            q[col] = None
    return q


def read_query_tensors(queries_dir: str | Path, numpy: bool = False) -> dict:
    """input_ids, attention_mask, labels [Q, Tq] (row i = row i of the table), torch or numpy."""
    path = Path(queries_dir) / TENSORS
    tensors = (load_arrays(path) if numpy else load_tensors(path))[0]
    return {k: tensors[k] for k in TENSOR_KEYS}
