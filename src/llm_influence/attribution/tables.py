"""Per-shard partial score tables and their gather into one table per model.

Per-token scores are only kept for each query's top-k documents: a shard keeps its own top-k, and
the global top-k is always a subset of the union of the shards' top-k, so the gather loses nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from llm_influence.artifacts.scores import CANDIDATE_SCORES, SHARD, TOKENS, write_score_table
from llm_influence.attribution.shard_scoring import ShardRows, ShardScores
from llm_influence.utils.io import load_tensors, save_tensors, write_parquet


def write_shard(
    out_dir: Path,
    scores: ShardScores,
    *,
    rows: ShardRows,
    data: dict[str, torch.Tensor],
    modules: list[str],
) -> None:
    """Every estimator's totals and the table estimator's per-module scores for every sequence of
    the shard; its top-k with per-token scores (from the pass's streaming top-k)."""
    main = scores.groups["total"]
    top = main.top
    local = top.index.clamp(min=0)  # -1 = empty slot (fewer eligible sequences than k)
    seq = rows.rows[local]  # [Q, k] training-set positions
    width = data["input_ids"].shape[1]
    tokens = top.tokens[..., :width]
    tensors = {
        **{name: g.total.float() for name, g in scores.groups.items()},
        "layers": main.layers.float(),
        "doc_id": data["doc_id"][rows.rows].long(),
        "top_local": top.index.long(),
        "top_tokens": torch.nn.functional.pad(tokens, (0, width - tokens.shape[-1])).float(),
        "top_input_ids": data["input_ids"][seq].long(),  # (Q, k, T)
        "top_mask": data["attention_mask"][seq].long() * (top.index >= 0)[..., None].long(),
    }
    if rows.candidates is not None:
        tensors["candidate"] = rows.candidates.to(torch.uint8)
    save_tensors(
        out_dir / SHARD,
        tensors,
        metadata={
            "modules": modules,
            "estimators": list(scores.methods.items()),  # [tensor, method] pairs, in order
            "n_train": rows.n_train,
            "candidates": "all" if rows.candidates is None else "tfidf",
        },
    )


def gather_shards(
    shard_dirs: list[Path],
    out_dir: Path,
    *,
    query_names: list[str],
    candidates: pd.DataFrame,
    tokenizer: Any,
    topk_tokens: int,
    normalise: str = "per_copy",
) -> dict[str, Any]:
    """``normalise="per_copy"`` divides by the number of training sequences N (the whole training
    set, also when only TF-IDF candidates were scored): the engine's G is the mean per-sequence
    Gauss-Newton matrix, so score/N is the change of log p(completion) caused by one extra copy of
    the sequence (the paper's scale, on which "influence > 0.1 is rare" is read)."""
    if normalise not in ("per_copy", "none"):
        raise ValueError(f"scores.normalise must be 'per_copy' or 'none', got {normalise!r}")
    parts = [load_tensors(d / SHARD) for d in shard_dirs]
    meta0 = parts[0][1]
    for path, (_, meta) in zip(shard_dirs, parts):
        for key in ("modules", "estimators", "n_train", "candidates"):
            if meta[key] != meta0[key]:
                raise ValueError(f"shard {path} differs from {shard_dirs[0]} in {key}")
    factor = 1.0 / meta0["n_train"] if normalise == "per_copy" else 1.0
    estimators = [key for key, _ in meta0["estimators"]]
    for p, _ in parts:
        for key in [*estimators, "layers", "top_tokens"]:
            p[key] = p[key] * factor
    cat = {key: torch.cat([p[key] for p, _ in parts], dim=1) for key in [*estimators, "layers"]}
    total = cat["total"]
    if total.shape[0] != len(query_names):
        raise ValueError(
            f"shards hold {total.shape[0]} queries but queries.parquet has {len(query_names)}"
        )
    doc_id = torch.cat([p["doc_id"] for p, _ in parts])
    if meta0["candidates"] == "tfidf":
        cat["candidate"] = torch.cat([p["candidate"] for p, _ in parts], dim=1)
    write_score_table(
        out_dir,
        {**cat, "doc_id": doc_id},
        queries=query_names,
        modules=meta0["modules"],
        estimators=[tuple(e) for e in meta0["estimators"]],
        candidates=meta0["candidates"],
        n_train=meta0["n_train"],
        normalise=normalise,
    )
    write_parquet(out_dir / TOKENS, _token_rows(parts, query_names, tokenizer, topk_tokens))
    write_parquet(
        out_dir / CANDIDATE_SCORES,
        _candidate_rows(candidates, total, doc_id, query_names),
    )
    return {
        "queries": len(query_names),
        "documents": int(total.shape[1]),
        "modules": len(meta0["modules"]),
        "candidates": meta0["candidates"],
        "estimators": meta0["estimators"],
    }


def _token_rows(parts: list, query_names: list[str], tokenizer: Any, topk: int) -> pd.DataFrame:
    rows = []
    for q, name in enumerate(query_names):
        # candidates = union of shard top-k for this query, ranked globally by total score
        cands = []
        for p, _ in parts:
            for j, local in enumerate(p["top_local"][q].tolist()):
                if local < 0:  # empty slot: the shard had fewer eligible sequences than k
                    continue
                cands.append(
                    (
                        float(p["total"][q, local]),
                        int(p["doc_id"][local]),
                        p["top_tokens"][q, j],
                        p["top_input_ids"][q, j],
                        int(p["top_mask"][q, j].sum()),
                    )
                )
        cands.sort(key=lambda c: (-c[0], c[1]))
        for rank, (_, doc, scores, ids, length) in enumerate(cands[:topk], start=1):
            for pos in range(length):
                tid = int(ids[pos])
                rows.append(
                    (name, doc, rank, pos, tid, tokenizer.decode([tid]), float(scores[pos]))
                )
    return pd.DataFrame(
        rows, columns=["query", "doc_id", "rank", "position", "token_id", "token", "score"]
    )


def _candidate_rows(
    candidates: pd.DataFrame, total: torch.Tensor, doc_id: torch.Tensor, query_names: list[str]
) -> pd.DataFrame:
    column = {int(d): i for i, d in enumerate(doc_id.tolist())}
    qindex = {name: i for i, name in enumerate(query_names)}
    frame = candidates.rename(columns={"rank": "tfidf_rank"}).copy()
    frame["influence"] = [
        float(total[qindex[q], column[int(d)]]) for q, d in zip(frame["query"], frame["doc_id"])
    ]
    return frame[["query", "doc_id", "tfidf_rank", "tfidf", "influence"]]
