"""Corpus stage: ``build_corpus(ctx)`` writes ``documents.parquet``, ``manifest.parquet``, ``world.json``.

Layout (docs/design.md, docs/corpus.md):
* ``documents.parquet``: ``doc_id`` int64 (0..N-1), ``text`` str;
* ``manifest.parquet``: ``doc_id``, ``category``, ``language`` (en|es|tr), ``fact_ids``
  list<str>, ``order`` (forward|flipped|flipped_norelation or null), ``template``, ``parallel_id``
  int64 (-1 if none), ``n_words`` int64;
* ``world.json``: source, seed, facts, passages, categories, languages, orders, counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from llm_influence.artifacts.corpus import DOCUMENTS, MANIFEST, WORLD
from llm_influence.corpus import texts as T
from llm_influence.corpus.hf import HFConfig, load_hf_texts
from llm_influence.corpus.synthetic import (
    CATEGORIES,
    HF_CATEGORY,
    Document,
    SyntheticConfig,
    generate,
)
from llm_influence.corpus.world import LANGUAGES, ORDERS, Fact
from llm_influence.utils.io import atomic_path, write_json

DOCUMENTS_SCHEMA = pa.schema([("doc_id", pa.int64()), ("text", pa.string())])
MANIFEST_SCHEMA = pa.schema(
    [
        ("doc_id", pa.int64()),
        ("category", pa.string()),
        ("language", pa.string()),
        ("fact_ids", pa.list_(pa.string())),
        ("order", pa.string()),
        ("template", pa.string()),
        ("parallel_id", pa.int64()),
        ("n_words", pa.int64()),
    ]
)


def _write_table(path: Path, columns: dict[str, list[Any]], schema: pa.Schema) -> None:
    table = pa.Table.from_pydict(columns, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_corpus(out_dir: str | Path, docs: Sequence[Document], world: dict[str, Any]) -> None:
    """Write the three corpus files; ``doc_id`` is the position in ``docs``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ids = list(range(len(docs)))
    _write_table(out / DOCUMENTS, {"doc_id": ids, "text": [d.text for d in docs]}, DOCUMENTS_SCHEMA)
    _write_table(
        out / MANIFEST,
        {
            "doc_id": ids,
            "category": [d.category for d in docs],
            "language": [d.language for d in docs],
            "fact_ids": [list(d.fact_ids) for d in docs],
            "order": [d.order for d in docs],
            "template": [d.template for d in docs],
            "parallel_id": [int(d.parallel_id) for d in docs],
            "n_words": [len(d.text.split()) for d in docs],
        },
        MANIFEST_SCHEMA,
    )
    write_json(out / WORLD, world)


def synthetic_world_json(
    facts: Sequence[Fact], seed: int, counts: dict[str, int]
) -> dict[str, Any]:
    return {
        "source": "synthetic",
        "seed": seed,
        "facts": [f.to_json() for f in facts],
        "passages": [dict(p) for p in T.PASSAGES],
        "categories": list(CATEGORIES),
        "languages": list(LANGUAGES),
        "orders": list(ORDERS),
        "counts": counts,
    }


def build_synthetic(section: dict[str, Any], seed: int) -> tuple[list[Document], dict[str, Any]]:
    cfg = SyntheticConfig.from_mapping(section["synthetic"])
    docs, facts, counts = generate(cfg, seed)
    return docs, synthetic_world_json(facts, seed, counts)


def build_hf(section: dict[str, Any]) -> tuple[list[Document], dict[str, Any]]:
    cfg = HFConfig.from_mapping(section["hf"])
    texts = load_hf_texts(cfg)
    docs = [
        Document(text=t, category=HF_CATEGORY, language=cfg.language, template="hf") for t in texts
    ]
    world = {
        "source": "hf",
        "dataset": {
            "path": cfg.path,
            "name": cfg.name,
            "split": cfg.split,
            "text_field": cfg.text_field,
        },
        "facts": [],
        "passages": [],
        "categories": [HF_CATEGORY],
        "languages": [cfg.language],
        "orders": list(ORDERS),
        "counts": {HF_CATEGORY: len(docs)},
    }
    return docs, world


def build_corpus(ctx) -> dict[str, Any]:
    """Stage entry point (rule ``corpus``): writes the corpus into ``ctx.output['corpus']``."""
    section = ctx.section("corpus")
    source = section["source"]
    if source == "synthetic":
        docs, world = build_synthetic(section, ctx.seed)
    elif source == "hf":
        docs, world = build_hf(section)
    else:
        raise ValueError(f"corpus.source: unknown source {source!r} (allowed: synthetic, hf)")
    write_corpus(ctx.output["corpus"], docs, world)
    n_words = [len(d.text.split()) for d in docs]
    metrics = {
        "source": source,
        "n_documents": len(docs),
        "n_facts": len(world["facts"]),
        "categories": world["counts"],
        "mean_words": sum(n_words) / len(n_words),
        "max_words": max(n_words),
    }
    ctx.logger.info("corpus: %d documents (%s)", len(docs), source)
    return metrics
