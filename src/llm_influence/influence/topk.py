"""Each query's running top-k over a stream of training sequences, in a bounded structure.

The per-token scores of a (query, sequence) pair are computed by the caller at the moment the pair
enters the query's top-k, from the activations and gradients already in hand for that batch, so no
[Q, N, T] tensor and no second pass over the training data is needed. For sequences in random order a
query's top-k changes about k·(1 + ln(N/k)) times over N sequences; in the worst case (scores rising
along the stream) every pair enters once, which costs at most what per-token scores of every pair did.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TopK:
    """A query's best k sequences, best first (by the pass's total score). ``index`` = position in the
    pass (-1 = empty slot: fewer than k eligible sequences); ``total`` [Q, k] and ``layers`` [Q, k, M]
    are the slot's scores (full rank when re-scored); ``tokens`` [Q, k, T] per-token scores (input
    position t), which sum over t and modules to ``total``."""

    index: torch.Tensor
    total: torch.Tensor
    layers: torch.Tensor
    tokens: torch.Tensor
    key: torch.Tensor  # [Q, k] the score the ranking used (the pass's, low rank when compressed)


class StreamingTopK:
    """Running top-k of every query. ``update`` merges one batch's scores and returns the pairs that
    entered; ``fill`` stores their scores."""

    def __init__(self, n_queries: int, k: int, n_modules: int):
        self.k = k
        self.key = torch.full((n_queries, k), -torch.inf)
        self.index = torch.full((n_queries, k), -1, dtype=torch.long)
        self.total = torch.zeros(n_queries, k)
        self.layers = torch.zeros(n_queries, k, n_modules)
        self.tokens = torch.zeros(n_queries, k, 0)
        self.entered = 0  # pairs that entered (the per-token work done)

    def update(
        self, keys: torch.Tensor, offset: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``keys`` [Q, B] (CPU; -inf = not eligible) of the batch at pass positions offset.. ->
        (query, slot, batch row) of each pair that entered. Slots are re-ordered best first; the
        entered slots hold stale scores until :meth:`fill`."""
        k = self.k
        # a stable sort keeps ties in stream order (the held slots, then the batch's rows): the
        # top-k is the k best by (score desc, pass position asc), whatever the batch size
        vals, sel = torch.cat([self.key, keys], dim=1).sort(dim=1, descending=True, stable=True)
        vals, sel = vals[:, :k], sel[:, :k]
        old = sel.clamp(max=k - 1)
        new = (sel >= k) & torch.isfinite(vals)
        self.key = vals
        self.index = torch.where(
            sel >= k, torch.where(new, sel - k + offset, -1), self.index.gather(1, old)
        )
        self.total = self.total.gather(1, old)
        self.layers = self.layers.gather(1, old[..., None].expand(-1, -1, self.layers.shape[-1]))
        self.tokens = self.tokens.gather(1, old[..., None].expand(-1, -1, self.tokens.shape[-1]))
        qs, slots = new.nonzero(as_tuple=True)
        self.entered += len(qs)
        return qs, slots, sel[qs, slots] - k

    def fill(
        self,
        qs: torch.Tensor,
        slots: torch.Tensor,
        layers: torch.Tensor,
        tokens: torch.Tensor,
        total: torch.Tensor | None = None,
    ) -> None:
        """Scores of the entered pairs: ``layers`` [P, M], ``tokens`` [P, T], ``total`` [P] (default:
        the layers' sum; pass it summed in the compute dtype to avoid float32 cancellation)."""
        width = max(self.tokens.shape[-1], tokens.shape[-1])
        if width > self.tokens.shape[-1]:
            self.tokens = torch.nn.functional.pad(self.tokens, (0, width - self.tokens.shape[-1]))
        self.tokens[qs, slots] = 0.0
        self.tokens[qs, slots, : tokens.shape[-1]] = tokens
        self.layers[qs, slots] = layers
        self.total[qs, slots] = layers.sum(-1) if total is None else total

    def result(self) -> TopK:
        empty = self.index < 0
        return TopK(
            index=self.index,
            total=self.total.masked_fill(empty, float("nan")),
            layers=self.layers.masked_fill(empty[..., None], 0.0),
            tokens=self.tokens.masked_fill(empty[..., None], 0.0),
            key=self.key,
        )
