"""``results/scores/{model}/``: per-shard partial tables and the gathered table (rules score_shard,
scores). Read as numpy (the studies never import torch)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llm_influence.utils.io import load_arrays, read_json, save_tensors, write_json

SHARD = "shard.safetensors"
TABLE = "scores.safetensors"
INDEX = "index.json"
TOKENS = "tokens.parquet"
CANDIDATE_SCORES = "candidates_scores.parquet"


@dataclass
class ScoreTable:
    """``results/scores/{model}/table``: total [Q,N], layers [Q,N,M] (optional), doc_id [N]."""

    total: np.ndarray
    doc_id: np.ndarray
    queries: list[str]
    modules: list[str]
    method: str = "ekfac"
    layers: np.ndarray | None = None
    path: Path | None = None
    graddot: np.ndarray | None = None  # gradient dot-product baseline [Q,N], when the table has it
    candidates: str = "all"  # all: every training sequence scored | tfidf: only the TF-IDF union
    candidate: np.ndarray | None = None  # [Q,N] bool, tfidf tables: the pair is a query's candidate
    n_train: int | None = None  # sequences of the whole training set (N when candidates = all)

    @property
    def candidates_only(self) -> bool:
        return self.candidates == "tfidf"

    def query_index(self, name: str) -> int:
        return self.queries.index(name)


def write_score_table(
    table_dir: str | Path,
    tensors: dict,
    *,
    queries: Sequence[str],
    modules: Sequence[str],
    estimators: Sequence[tuple[str, str]],
    candidates: str = "all",
    n_train: int | None = None,
    normalise: str = "per_copy",
) -> None:
    """The one writer of a gathered table: ``tensors`` (torch) holds ``doc_id`` [N], ``layers``
    [Q,N,M], one [Q,N] tensor per ``estimators`` entry ([tensor name, method name] pairs, the
    table's own estimator ``total`` first) and, for ``candidates="tfidf"``, the ``candidate``
    mask [Q,N]."""
    table_dir = Path(table_dir)
    n_docs = int(tensors["doc_id"].shape[0])
    index = {
        "queries": list(queries),
        "modules": list(modules),
        "method": dict(estimators)["total"],
        "estimators": [list(e) for e in estimators],
        "candidates": candidates,
        "n_train": n_docs if n_train is None else int(n_train),
        "n_docs": n_docs,
    }
    save_tensors(table_dir / TABLE, tensors, metadata=index | {"normalise": normalise})
    write_json(table_dir / INDEX, index)


def load_score_table(path: str | Path, with_layers: bool = True) -> ScoreTable:
    path = Path(path)
    tensors, _ = load_arrays(path / TABLE)
    index = read_json(path / INDEX)
    layers = tensors.get("layers") if with_layers else None
    return ScoreTable(
        total=tensors["total"].astype(np.float64),
        doc_id=tensors["doc_id"].astype(np.int64),
        queries=[str(q) for q in index["queries"]],
        modules=[str(m) for m in index.get("modules", [])],
        method=str(index.get("method", "ekfac")),
        layers=layers.astype(np.float64) if layers is not None else None,
        path=path,
        graddot=tensors["graddot"].astype(np.float64) if "graddot" in tensors else None,
        candidates=str(index["candidates"]),
        candidate=tensors["candidate"].astype(bool) if "candidate" in tensors else None,
        n_train=int(index["n_train"]),
    )


def table_dirs(dirs: str | Path | Sequence[str | Path]) -> list[Path]:
    """One table directory or a list of them, as a list (rule input ``scores``)."""
    return [Path(dirs)] if isinstance(dirs, (str, Path)) else [Path(d) for d in dirs]


def load_tables(
    models: Sequence[str], dirs: str | Path | Sequence[str | Path], with_layers: bool = False
) -> dict[str, ScoreTable]:
    dirs = table_dirs(dirs)
    if len(dirs) != len(models):
        raise ValueError(f"{len(dirs)} score tables for {len(models)} models {list(models)}")
    return {m: load_score_table(d, with_layers) for m, d in zip(models, dirs)}


def read_tokens(table_dir: str | Path) -> pd.DataFrame:
    """Per-token scores of each query's top-k documents."""
    return pd.read_parquet(Path(table_dir) / TOKENS)
