"""Corpus from a ``datasets`` dataset: a hub name or local files/directories.

``path`` may be
* a local file: ``.jsonl``/``.json`` (builder ``json``), ``.parquet``, ``.txt`` (builder ``text``,
  field ``text``), ``.csv``;
* a local directory written by ``Dataset.save_to_disk``/``DatasetDict.save_to_disk`` (loaded with
  ``datasets.load_from_disk``), or any other directory of data files (``load_dataset(dir)``);
* otherwise a hub dataset id, loaded with ``datasets.load_dataset(path, name, split=...)`` (the
  same call as for local directories; ``trust_remote_code`` is never passed).

Documents are taken in dataset order: stripped, those shorter than ``min_chars`` dropped, exact
duplicates dropped when ``dedup``, until ``max_documents`` are collected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm_influence.corpus.config import from_block

_BUILDERS = {
    ".jsonl": "json",
    ".json": "json",
    ".parquet": "parquet",
    ".txt": "text",
    ".csv": "csv",
}


class CorpusSourceError(ValueError):
    """A missing file, split or field of the ``hf`` corpus source."""


@dataclass
class HFConfig:
    """Settings of the ``hf`` source (config block ``corpus.hf``)."""

    path: str | None = None  # hub dataset id, local file or local directory
    name: str | None = None  # dataset configuration name (hub datasets with several)
    split: str = "train"
    text_field: str = "text"
    max_documents: int | None = 10000  # None = all
    dedup: bool = True  # drop exact duplicates (after stripping whitespace)
    min_chars: int = 1  # drop documents shorter than this (after stripping)
    language: str = "en"  # recorded in the manifest

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any] | None) -> HFConfig:
        out = from_block(cls, cfg, "corpus.hf")
        if not out.path:
            raise ValueError(
                "corpus.hf.path must name a dataset (hub id, local file or directory) when corpus.source is hf"
            )
        if out.max_documents is not None and out.max_documents < 1:
            raise ValueError("corpus.hf.max_documents must be >= 1 or null")
        if out.min_chars < 0:
            raise ValueError("corpus.hf.min_chars must be >= 0")
        return out


def _looks_local(path: str) -> bool:
    return (
        Path(path).exists()
        or path.startswith(("/", "./", "../", "~"))
        or Path(path).suffix.lower() in _BUILDERS
    )


def load_dataset_split(cfg: HFConfig):
    """The configured split as a ``datasets.Dataset`` (raises :class:`CorpusSourceError`)."""
    import datasets

    path = cfg.path
    assert path is not None
    if _looks_local(path):
        local = Path(path).expanduser()
        if not local.exists():
            raise CorpusSourceError(f"corpus.hf.path: file or directory not found: {local}")
        if local.is_file():
            builder = _BUILDERS.get(local.suffix.lower())
            if builder is None:
                raise CorpusSourceError(
                    f"corpus.hf.path: unsupported file type {local.suffix!r} for {local} "
                    f"(supported: {', '.join(sorted(_BUILDERS))})"
                )
            ds = datasets.load_dataset(builder, data_files={cfg.split: str(local)}, split=cfg.split)
        elif (local / "dataset_info.json").exists() or (local / "dataset_dict.json").exists():
            ds = datasets.load_from_disk(str(local))
            if isinstance(ds, datasets.DatasetDict):
                if cfg.split not in ds:
                    raise CorpusSourceError(
                        f"corpus.hf.split: split {cfg.split!r} not found in {local} (available: {sorted(ds)})"
                    )
                ds = ds[cfg.split]
        else:
            ds = _load_named(str(local), cfg)
    else:
        ds = _load_named(path, cfg)
    return ds


def _load_named(path: str, cfg: HFConfig):
    import datasets

    try:
        return datasets.load_dataset(path, cfg.name, split=cfg.split)
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise CorpusSourceError(
                f"corpus.hf.split: split {cfg.split!r} not available in {path}: {exc}"
            ) from exc
        raise


def load_hf_texts(cfg: HFConfig) -> list[str]:
    """Documents of the configured dataset after filtering, dedup and the size limit."""
    ds = load_dataset_split(cfg)
    if cfg.text_field not in ds.column_names:
        raise CorpusSourceError(
            f"corpus.hf.text_field: field {cfg.text_field!r} not found in {cfg.path} "
            f"(split {cfg.split!r}); available fields: {ds.column_names}"
        )
    column = ds.select_columns([cfg.text_field])
    texts: list[str] = []
    seen: set[str] = set()
    for row in column:
        value = row[cfg.text_field]
        if value is None:
            continue
        if not isinstance(value, str):
            raise CorpusSourceError(
                f"corpus.hf.text_field: field {cfg.text_field!r} of {cfg.path} holds "
                f"{type(value).__name__}, not text"
            )
        text = value.strip()
        if len(text) < max(cfg.min_chars, 1):
            continue
        if cfg.dedup:
            if text in seen:
                continue
            seen.add(text)
        texts.append(text)
        if cfg.max_documents is not None and len(texts) >= cfg.max_documents:
            break
    if not texts:
        raise CorpusSourceError(
            f"corpus.hf: no documents left from {cfg.path} after filtering (min_chars={cfg.min_chars})"
        )
    return texts
