"""Queries stage: ``build_queries(ctx)`` writes ``queries.parquet`` and ``queries.safetensors``.

Inputs: ``ctx.input['corpus']`` (corpus directory), ``ctx.input['tokenizer']`` (a
``save_pretrained`` tokenizer directory). Config: ``queries.file`` (query YAML, relative to the
repository root / working directory) and ``queries.max_length`` (tokens; also capped by
``tokenizer.seq_len`` when that key exists).

``queries.parquet`` (row i = row i of the tensors): name, prompt, completion, language,
tags list<str>, translation_of, variant_of, fact_id, order, proponents list<int64>,
proponents_flipped list<int64>, proponents_flipped_norelation list<int64>, n_tokens,
n_prompt_tokens, n_completion_tokens.
``queries.safetensors``: input_ids, attention_mask, labels int64 [Q, T]; metadata ``names``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from llm_influence.artifacts.corpus import read_manifest, read_world
from llm_influence.artifacts.queries import TABLE, TENSORS
from llm_influence.queries.ground_truth import resolve_proponents
from llm_influence.queries.loading import load_query_set
from llm_influence.queries.tokenize import tokenize_queries
from llm_influence.utils.io import atomic_path, save_tensors

QUERIES_SCHEMA = pa.schema(
    [
        ("name", pa.string()),
        ("prompt", pa.string()),
        ("completion", pa.string()),
        ("language", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("translation_of", pa.string()),
        ("variant_of", pa.string()),
        ("fact_id", pa.string()),
        ("order", pa.string()),
        ("proponents", pa.list_(pa.int64())),
        ("proponents_flipped", pa.list_(pa.int64())),
        ("proponents_flipped_norelation", pa.list_(pa.int64())),
        ("n_tokens", pa.int64()),
        ("n_prompt_tokens", pa.int64()),
        ("n_completion_tokens", pa.int64()),
    ]
)


def max_length_of(config: dict[str, Any]) -> int:
    limit = int(config["queries"]["max_length"])
    seq_len = config["tokenizer"]["seq_len"]
    return min(limit, int(seq_len)) if isinstance(seq_len, int) else limit


def _columns(queries, truth, counts) -> dict[str, list]:
    """The columns of ``queries.parquet``: each query's fields, ground truth and token counts."""
    return {
        "name": [q.name for q in queries],
        "prompt": [q.prompt for q in queries],
        "completion": [q.completion for q in queries],
        "language": [q.language for q in queries],
        "tags": [list(q.tags) for q in queries],
        "translation_of": [q.translation_of for q in queries],
        "variant_of": [q.variant_of for q in queries],
        "fact_id": [q.fact_id for q in queries],
        "order": [q.order for q in queries],
        "proponents": truth["proponents"].tolist(),
        "proponents_flipped": truth["proponents_flipped"].tolist(),
        "proponents_flipped_norelation": truth["proponents_flipped_norelation"].tolist(),
        "n_tokens": [c["n_tokens"] for c in counts],
        "n_prompt_tokens": [c["n_prompt_tokens"] for c in counts],
        "n_completion_tokens": [c["n_completion_tokens"] for c in counts],
    }


def build_queries(ctx) -> dict[str, Any]:
    """Stage entry point (rule ``queries``)."""
    from transformers import AutoTokenizer

    section = ctx.section("queries")
    if "file" not in section:
        raise ValueError(
            "queries.file: missing (path of the query YAML, e.g. config/queries/default.yaml)"
        )
    corpus = Path(ctx.input["corpus"])
    world = read_world(corpus)
    manifest = read_manifest(corpus, columns=["doc_id", "fact_ids", "order"])
    world_ids = {f["id"] for f in world.get("facts", [])} | {
        p["id"] for p in world.get("passages", [])
    }
    if world.get("source") != "synthetic":
        world_ids = None  # hf corpora have no world; only the fixed ids are checked
    queries = load_query_set(section["file"], world_ids=world_ids)

    tokenizer = AutoTokenizer.from_pretrained(str(ctx.input["tokenizer"]))
    max_length = max_length_of(ctx.config)
    tensors, counts = tokenize_queries(queries, tokenizer, max_length)
    truth = resolve_proponents(queries, manifest, world)

    out = Path(ctx.output["queries"])
    out.mkdir(parents=True, exist_ok=True)
    columns = _columns(queries, truth, counts)
    table = pa.Table.from_pydict(columns, schema=QUERIES_SCHEMA)
    with atomic_path(out / TABLE) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    save_tensors(
        out / TENSORS,
        tensors,
        metadata={
            "names": [q.name for q in queries],
            "max_length": max_length,
            "file": str(section["file"]),
        },
    )
    missing = [q.name for q, p in zip(queries, columns["proponents"]) if q.fact_id and not p]
    if missing:
        ctx.logger.warning("queries with a fact_id but no proponent document: %s", missing)
    return {
        "n_queries": len(queries),
        "max_tokens": max(c["n_tokens"] for c in counts),
        "n_with_proponents": sum(1 for p in columns["proponents"] if p),
        "queries_without_proponents": missing,
    }
