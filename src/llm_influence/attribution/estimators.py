"""Which estimators a gathered score table holds, read as numpy (no torch: the Snakefile and the
studies import this at start-up).

``estimator_tables(table_dir)`` is the one reader every estimator comparison goes through (the
counterfactual study, leave-out rules). The table records its estimators itself (``estimators`` in
its metadata: [tensor name, method name] pairs, written by the scoring stage), so a new estimator added to
the fused pass is seen by every reader; :func:`estimator_names` says from the config alone which
method names a run will have (rules with one job per estimator expand over them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from llm_influence.artifacts.scores import TABLE as TABLE_FILE
from llm_influence.utils.io import load_arrays

# tensor name in the table -> role: the table's own estimator, the gradient-dot baseline, and the
# other of plain/refined EK-FAC when ``scores.refine_steps`` > 0 (``refine_replaces`` true/false)
ESTIMATOR_GROUPS: dict[str, str] = {
    "total": "the table's estimator (factors.strategy, or its PCG refinement)",
    "graddot": "gradient dot product",
    "plain": "unrefined factors.strategy (when the refinement replaces it)",
    "refined": "PCG-refined factors.strategy (when scored beside it)",
}


def refined_name(strategy: str, steps: int) -> str:
    return f"{strategy}_pcg{steps}"


def estimator_names(strategy: str, scores: Mapping[str, Any] | None = None) -> list[str]:
    """The method names :func:`estimator_tables` returns for a run with ``factors.strategy`` and
    the ``scores`` config section, known before any table exists."""
    steps = int(scores["refine_steps"]) if scores else 0
    if steps == 0:
        return [strategy, "graddot"]
    refined = refined_name(strategy, steps)
    if scores["refine_replaces"]:
        return [refined, strategy, "graddot"]
    return [strategy, "graddot", refined]


def estimator_tables(table_dir: str | Path) -> dict[str, np.ndarray]:
    """Method name -> [Q, N] float64: each query's scores over the table's training sequences
    (columns in its ``doc_id`` order), e.g. ``{"ekfac": ..., "graddot": ...}``."""
    tensors, meta = load_arrays(Path(table_dir) / TABLE_FILE)
    if "estimators" not in meta:
        raise ValueError(
            f"{table_dir}: score table without an estimator list (made before the fused scoring "
            "stage): rerun the scores rule"
        )
    return {method: tensors[key].astype(np.float64) for key, method in meta["estimators"]}
