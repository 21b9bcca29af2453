"""What the losses are computed on: batches with their labels, labels sampled from the model
(the true Fisher of the paper), and the summed token loss.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import torch
import torch.nn.functional as F


def make_batches(
    tensors: Mapping[str, torch.Tensor], batch_size: int
) -> list[dict[str, torch.Tensor]]:
    """Split ``{input_ids, attention_mask[, labels]}`` [N,T] into a list of batch dicts (views).

    Missing ``attention_mask`` = all ones; missing ``labels`` = input_ids with padding set to -100
    (the training-sequence convention of docs/design.md).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ids = tensors["input_ids"]
    mask = tensors.get("attention_mask")
    mask = torch.ones_like(ids) if mask is None else mask
    labels = tensors.get("labels")
    labels = ids.masked_fill(mask == 0, -100) if labels is None else labels
    return [
        {
            "input_ids": ids[i : i + batch_size],
            "attention_mask": mask[i : i + batch_size],
            "labels": labels[i : i + batch_size],
        }
        for i in range(0, ids.shape[0], batch_size)
    ]


def _seed(seed: int, data: bytes) -> int:
    return (seed * 1_000_003 + zlib.crc32(data)) % (2**62)


def sequence_seeds(input_ids: torch.Tensor, attention_mask: torch.Tensor, seed: int) -> list[int]:
    """One seed per sequence from (seed, its tokens): sampled labels do not depend on batching or sharding."""
    return [
        _seed(seed, ids[m.bool()].numpy().tobytes())
        for ids, m in zip(input_ids.cpu(), attention_mask.cpu())
    ]


def example_seeds(keys: torch.Tensor, seed: int) -> list[int]:
    """One seed per row of ``keys`` [B, ...] from (seed, the row's bytes): for the example tasks
    (an id per example, or its inputs), as :func:`sequence_seeds` for sequences."""
    rows = keys.detach().cpu().contiguous()
    return [_seed(seed, r.numpy().tobytes()) for r in rows]


def sequence_uniforms(batch: Mapping[str, torch.Tensor], seed: int) -> torch.Tensor:
    """Uniforms [B, T] in [0, 1), float64, on CPU: sequence b's real (attention_mask = 1) positions get, in
    order, the draws of one CPU generator seeded by (seed, its real tokens) (see :func:`sequence_seeds`);
    padded positions get 0. So the draws depend neither on batching, sharding, padding length or side, nor
    on the device."""
    ids, mask = batch["input_ids"].cpu(), batch["attention_mask"].cpu().bool()
    out = torch.zeros(ids.shape, dtype=torch.float64)
    gen = torch.Generator()
    for b, s in enumerate(sequence_seeds(ids, mask, seed)):
        gen.manual_seed(s)
        m = mask[b]
        out[b, m] = torch.rand(int(m.sum()), generator=gen, dtype=torch.float64)
    return out


def sample_targets(
    logits: torch.Tensor, batch: Mapping[str, torch.Tensor], seed: int
) -> torch.Tensor:
    """Targets for positions 0..T-2 drawn from the model's predictive distribution; -100 where the
    real label does not count. Deterministic per sequence (see :func:`sequence_uniforms`).

    Inverse-CDF sampling, vectorised over the batch: target = the first token whose cumulative
    probability exceeds u (float64 cumulative sums, in chunks of rows to bound memory)."""
    valid = batch["labels"][:, 1:] != -100
    B, T1 = valid.shape
    u = sequence_uniforms(batch, seed)[:, :-1].to(logits.device)
    lg = logits[:, :-1].detach()
    out = torch.empty((B, T1), dtype=torch.long, device=logits.device)
    rows = max(1, (1 << 24) // max(1, T1 * lg.shape[-1]))  # ≤ 16M float64 elements at a time
    for s in range(0, B, rows):
        out[s : s + rows] = inverse_cdf(lg[s : s + rows], u[s : s + rows])
    return out.masked_fill_(~valid, -100)


def inverse_cdf(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Per row of ``logits`` [..., V] the first class whose cumulative softmax probability exceeds
    the uniform ``u`` [...] (float64 cumulative sums): a draw from softmax(logits)."""
    w = logits.double()
    w = (w - w.amax(-1, keepdim=True)).exp_().cumsum_(-1)  # unnormalised CDF
    x = (u * w[..., -1]).unsqueeze(-1)
    return torch.searchsorted(w, x, right=True).squeeze(-1).clamp_(max=logits.shape[-1] - 1)


def summed_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum of token cross-entropies; ``targets`` [B,T-1] already shifted (position t predicts t+1)."""
    lg = logits[:, :-1].float()
    return F.cross_entropy(
        lg.reshape(-1, lg.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
    )
