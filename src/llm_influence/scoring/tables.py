"""Per-shard partial score tables and their gather into one table per model.

Per-token scores are only kept for each query's top-k documents: a shard keeps its own top-k, and
the global top-k is always a subset of the union of the shards' top-k, so the gather loses nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from llm_influence.scoring.estimators import TABLE_FILE
from llm_influence.utils.io import load_tensors, save_tensors, write_json, write_parquet

SHARD_FILE = "shard.safetensors"


def write_shard(
    out_dir: Path,
    result: dict[str, torch.Tensor],
    *,
    doc_id: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    modules: list[str],
    topk_tokens: int,
) -> None:
    """Totals/layers/baseline for every sequence of the shard, token scores for its top-k."""
    total = result["total"].float()
    k = min(topk_tokens, total.shape[1])
    top = torch.topk(total, k, dim=1).indices  # (Q, k) local indices
    tensors = {
        "total": total,
        "layers": result["layers"].float(),
        "graddot": result["graddot"].float(),
        "doc_id": doc_id.long(),
        "top_local": top.long(),
        "top_tokens": torch.stack(
            [result["tokens"][q, top[q]] for q in range(total.shape[0])]
        ).float(),
        "top_input_ids": input_ids[top].long(),  # (Q, k, T)
        "top_mask": attention_mask[top].long(),
    }
    save_tensors(out_dir / SHARD_FILE, tensors, metadata={"modules": modules})


def gather_shards(
    shard_dirs: list[Path],
    out_dir: Path,
    *,
    query_names: list[str],
    candidates: pd.DataFrame,
    tokenizer: Any,
    topk_tokens: int,
    method: str,
    normalise: str = "per_copy",
) -> dict[str, Any]:
    """``normalise="per_copy"`` divides by the number of training sequences N: the engine's G is the
    mean per-sequence Gauss-Newton matrix, so score/N is the change of log p(completion) caused by
    one extra copy of the sequence (the paper's scale, on which "influence > 0.1 is rare" is read)."""
    if normalise not in ("per_copy", "none"):
        raise ValueError(f"scores.normalise must be 'per_copy' or 'none', got {normalise!r}")
    parts = [load_tensors(d / SHARD_FILE) for d in shard_dirs]
    n_docs = sum(int(p["total"].shape[1]) for p, _ in parts)
    factor = 1.0 / n_docs if normalise == "per_copy" else 1.0
    for p, _ in parts:
        for key in ("total", "layers", "graddot", "top_tokens"):
            p[key] = p[key] * factor
    modules = parts[0][1]["modules"]
    for path, (_, meta) in zip(shard_dirs, parts):
        if meta["modules"] != modules:
            raise ValueError(f"shard {path} was scored with other modules than {shard_dirs[0]}")
    total = torch.cat([p["total"] for p, _ in parts], dim=1)
    if total.shape[0] != len(query_names):
        raise ValueError(
            f"shards hold {total.shape[0]} queries but queries.parquet has {len(query_names)}"
        )
    layers = torch.cat([p["layers"] for p, _ in parts], dim=1)
    graddot = torch.cat([p["graddot"] for p, _ in parts], dim=1)
    doc_id = torch.cat([p["doc_id"] for p, _ in parts])
    save_tensors(
        out_dir / TABLE_FILE,
        {"total": total, "layers": layers, "graddot": graddot, "doc_id": doc_id},
        metadata={
            "queries": query_names,
            "modules": modules,
            "method": method,
            "normalise": normalise,
        },
    )
    write_json(
        out_dir / "index.json",
        {
            "queries": query_names,
            "modules": modules,
            "method": method,
            "n_docs": int(total.shape[1]),
        },
    )
    write_parquet(
        out_dir / "tokens.parquet", _token_rows(parts, query_names, tokenizer, topk_tokens)
    )
    write_parquet(
        out_dir / "candidates_scores.parquet",
        _candidate_rows(candidates, total, doc_id, query_names),
    )
    return {"queries": len(query_names), "documents": int(total.shape[1]), "modules": len(modules)}


def _token_rows(parts: list, query_names: list[str], tokenizer: Any, topk: int) -> pd.DataFrame:
    rows = []
    for q, name in enumerate(query_names):
        # candidates = union of shard top-k for this query, ranked globally by total score
        cands = []
        for p, _ in parts:
            for j, local in enumerate(p["top_local"][q].tolist()):
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
