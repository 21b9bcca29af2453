"""``results/tfidf/``: ``candidates.parquet`` (query, doc_id, rank, tfidf) and ``metrics.json``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

CANDIDATES = "candidates.parquet"
METRICS = "metrics.json"


def read_candidates(tfidf_dir: str | Path) -> pd.DataFrame:
    return pd.read_parquet(Path(tfidf_dir) / CANDIDATES)
