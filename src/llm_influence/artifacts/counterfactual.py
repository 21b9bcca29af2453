"""``results/counterfactual/{model}/{subsets|leaveout}/{id}/``: one retraining each (rules
retrain_subset, retrain_leaveout).

* ``measurements.parquet``: subsets (query, seed, logp), one row per query and retrain seed;
  leave-out (query, leaveout, logp_full, logp, delta) with ``leaveout`` marking the fact queries
  whose top documents were removed and ``delta`` = retrained − full log p(completion | prompt);
* ``documents.parquet`` (doc_id): the documents a subset kept / a leave-out run removed;
* ``metrics.json``: settings, sizes, held-out loss of each retraining.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm_influence.utils.io import read_json

MEASUREMENTS = "measurements.parquet"
DOCUMENTS = "documents.parquet"
METRICS = "metrics.json"
SUBSETS, LEAVEOUT = "subsets", "leaveout"


def read_measurements(run_dir: str | Path) -> pd.DataFrame:
    return pd.read_parquet(Path(run_dir) / MEASUREMENTS)


def read_run_documents(run_dir: str | Path) -> np.ndarray:
    """doc ids kept (subset) or removed (leave-out), sorted."""
    return pd.read_parquet(Path(run_dir) / DOCUMENTS)["doc_id"].to_numpy(np.int64)


def read_run_metrics(run_dir: str | Path) -> dict[str, Any]:
    return read_json(Path(run_dir) / METRICS)


@dataclass
class RetrainDirs:
    """The retraining directories of one model: subsets in index order, leave-out by method."""

    subsets: list[Path] = field(default_factory=list)
    leaveout: dict[str, Path] = field(default_factory=dict)


def group_runs(dirs: Sequence[str | Path]) -> dict[str, RetrainDirs]:
    """``{model: RetrainDirs}`` of ``results/counterfactual/{model}/{kind}/{id}`` paths."""
    out: dict[str, RetrainDirs] = {}
    for d in map(Path, dirs):
        model, kind, name = d.parts[-3], d.parts[-2], d.parts[-1]
        runs = out.setdefault(model, RetrainDirs())
        if kind == SUBSETS:
            runs.subsets.append(d)
        elif kind == LEAVEOUT:
            runs.leaveout[name] = d
        else:
            raise ValueError(
                f"{d}: not a results/counterfactual/<model>/{{subsets,leaveout}}/<id> dir"
            )
    for runs in out.values():
        runs.subsets.sort(key=lambda p: int(p.name))
    return out
