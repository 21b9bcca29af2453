"""``data/corpus/``: ``documents.parquet``, ``manifest.parquet``, ``world.json`` (rule corpus)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from llm_influence.artifacts import as_list
from llm_influence.utils.io import read_json

DOCUMENTS = "documents.parquet"
MANIFEST = "manifest.parquet"
WORLD = "world.json"


def read_documents(corpus_dir: str | Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Documents (doc_id, text) in doc_id order; a missing file is named."""
    path = Path(corpus_dir) / DOCUMENTS
    if not path.is_file():
        raise FileNotFoundError(f"corpus documents not found: {path}")
    return pd.read_parquet(path, columns=columns).sort_values("doc_id", ignore_index=True)


def read_manifest(
    corpus_dir: str | Path, columns: list[str] | None = None, missing_ok: bool = False
) -> pd.DataFrame | None:
    """Per-document ground truth; ``fact_ids`` as Python lists. None if absent and ``missing_ok``."""
    path = Path(corpus_dir) / MANIFEST
    if missing_ok and not path.is_file():
        return None
    manifest = pd.read_parquet(path, columns=columns)
    if "fact_ids" in manifest:
        manifest["fact_ids"] = [as_list(v) for v in manifest["fact_ids"]]
    return manifest


def read_world(corpus_dir: str | Path) -> dict[str, Any]:
    """The generated world (facts, passages, categories; ``source``)."""
    return read_json(Path(corpus_dir) / WORLD)


def load_corpus(corpus_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(documents, manifest, world) of a corpus directory."""
    return read_documents(corpus_dir), read_manifest(corpus_dir), read_world(corpus_dir)
