"""Training and query sequences as engine batches, and the shard arithmetic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from llm_influence.artifacts.queries import read_query_tensors
from llm_influence.artifacts.tokenized import read_split

IGNORE_INDEX = -100


def shard_bounds(n: int, num_shards: int, shard: int) -> tuple[int, int]:
    """Contiguous, near-equal ranges; every index belongs to exactly one shard."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, {num_shards}), got {shard}")
    base, extra = divmod(n, num_shards)
    start = shard * base + min(shard, extra)
    return start, start + base + (1 if shard < extra else 0)


def load_training_set(tokenized_dir: str | Path) -> dict[str, torch.Tensor]:
    """The training sequences the models saw, with labels masked on padding."""
    tensors = read_split(tokenized_dir, "train")
    ids, mask = tensors["input_ids"].long(), tensors["attention_mask"].long()
    labels = ids.masked_fill(mask == 0, IGNORE_INDEX)
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": labels,
        "doc_id": tensors["doc_id"].long(),
    }


def load_query_batch_data(queries_dir: str | Path) -> dict[str, torch.Tensor]:
    """The query tensors (prompt and padding masked in ``labels``) as int64 engine inputs."""
    return {k: v.long() for k, v in read_query_tensors(queries_dir).items()}


def fit_indices(n_train: int, fit_sequences: int | None, seed: int) -> torch.Tensor:
    """A seeded subset of the training set used to fit the curvature (all of it when None)."""
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))
    return order if fit_sequences is None else order[: min(fit_sequences, n_train)].sort().values


def iter_batches(
    data: dict[str, torch.Tensor], indices: torch.Tensor, batch_size: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Engine batches (input_ids, attention_mask, labels) over ``indices``, trimmed to the longest row."""
    for start in range(0, len(indices), batch_size):
        idx = indices[start : start + batch_size]
        mask = data["attention_mask"][idx]
        width = max(int(mask.sum(dim=1).max()), 1)
        yield {key: data[key][idx, :width] for key in ("input_ids", "attention_mask", "labels")}


class Batches:
    """Re-iterable batch view (the engine may pass over the data more than once)."""

    def __init__(self, data: dict[str, torch.Tensor], indices: torch.Tensor, batch_size: int):
        self.data, self.indices, self.batch_size = data, indices, batch_size

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return iter_batches(self.data, self.indices, self.batch_size)

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)
