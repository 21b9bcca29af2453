"""File names and readers of the workflow's artifacts, one module per artifact family.

``corpus`` (data/corpus), ``tokenized`` (data/tokenizer, data/tokenized, data/models),
``queries`` (data/queries), ``tfidf`` (results/tfidf), ``factors`` (data/factors),
``scores`` (results/scores), ``counterfactual`` (results/counterfactual: the retrainings) and
``studies`` (results/studies). The stage that writes an artifact
takes its file names from here and every reader lives here, so a format is described in one place
(docs/design.md "Artifacts"). Imports stay light (pandas, numpy; torch only inside the readers
that return tensors), because torch-free stages read artifacts too.
"""

from __future__ import annotations

from typing import Any


def as_list(value: Any) -> list:
    """A parquet list cell (array, list, None/NaN, or a bare string) as a Python list."""
    if value is None:
        return []
    if isinstance(value, float) and value != value:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)
