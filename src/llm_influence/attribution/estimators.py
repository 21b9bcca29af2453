"""Which estimators a gathered score table holds, read as numpy (no torch: the Snakefile and the
studies import this at start-up).

``estimator_tables(table_dir)`` is the one reader every estimator comparison goes through (the
counterfactual study, leave-out rules). A stage that writes a new estimator into the table
(``scores.safetensors``) registers its tensor name in :data:`ESTIMATOR_GROUPS`, and every reader
sees it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from llm_influence.artifacts.scores import TABLE as TABLE_FILE
from llm_influence.utils.io import load_arrays

# tensor name in the table -> method name; None = the table's own method (``factors.strategy``)
ESTIMATOR_GROUPS: dict[str, str | None] = {"total": None, "graddot": "graddot"}


def estimator_names(strategy: str) -> list[str]:
    """The method names :func:`estimator_tables` returns for a run with ``factors.strategy``,
    known before any table exists (rules with one job per estimator expand over them)."""
    return [strategy if method is None else method for method in ESTIMATOR_GROUPS.values()]


def estimator_tables(table_dir: str | Path) -> dict[str, np.ndarray]:
    """Method name -> [Q, N] float64: each query's scores over all training sequences (columns in
    the table's ``doc_id`` order), e.g. ``{"ekfac": ..., "graddot": ...}``."""
    tensors, meta = load_arrays(Path(table_dir) / TABLE_FILE)
    return {
        (meta["method"] if method is None else method): tensors[key].astype(np.float64)
        for key, method in ESTIMATOR_GROUPS.items()
        if key in tensors
    }
