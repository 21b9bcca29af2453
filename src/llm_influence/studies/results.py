"""Writing a study's results: JSON-safe metrics, placeholder figures, share tables as dicts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm_influence.studies import figures


def clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def skip(out: Path, study: str, metrics: dict[str, Any], reason: str, names: list[str]) -> dict:
    """Metrics with the reason, and placeholder figures under the usual names."""
    metrics["skipped"] = reason
    for name in names:
        figures.save_figure(
            figures.placeholder_figure(f"{study}: nothing to show", reason), out / name
        )
    return metrics


def share_dict(shares: pd.DataFrame, column: str) -> dict[str, dict[str, float]]:
    """{model: {value of ``column``: share}} of a (model, column, share) table."""
    return {
        str(m): {str(c): float(s) for c, s in zip(g[column], g["share"])}
        for m, g in shares.groupby("model", observed=False)
    }
