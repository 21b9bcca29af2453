"""``results/studies/{study}/``: figures, tidy tables and ``metrics.json`` (the summary reads these)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_influence.utils.io import read_json

METRICS = "metrics.json"


def read_metrics(study_dir: str | Path) -> dict[str, Any] | None:
    """A study's metrics.json; None when the study wrote none."""
    path = Path(study_dir) / METRICS
    return read_json(path) if path.is_file() else None
