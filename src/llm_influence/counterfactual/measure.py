"""The measurement the scores attribute: log p(completion | prompt) of each query."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def completion_logprobs(
    model: nn.Module, queries: dict[str, torch.Tensor], batch_size: int = 64, device="cpu"
) -> torch.Tensor:
    """[Q] float64: Σ over completion tokens (labels ≠ -100) of log p(token | preceding tokens).

    ``queries`` holds ``input_ids``, ``attention_mask`` and ``labels`` as written by the queries
    stage (labels -100 on prompt and padding), the same tensors the query gradients come from.
    """
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(queries["input_ids"]), batch_size):
        ids = queries["input_ids"][start : start + batch_size].to(device)
        mask = queries["attention_mask"][start : start + batch_size].to(device)
        labels = queries["labels"][start : start + batch_size].to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].double()
        targets = labels[:, 1:]
        counted = targets != -100
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1))
        out.append((logp.squeeze(-1) * counted).sum(dim=1).cpu())
    model.train(was_training)
    return torch.cat(out)
