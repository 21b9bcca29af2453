"""Query tokenisation: ``input_ids``, ``attention_mask`` and ``labels`` (-100 on prompt and padding).

The text is ``prompt + completion`` tokenised in one piece without special tokens (as the training
documents are, see ``llm_influence.models.tokenizer.encode_documents``), so the tokens match what
the model saw in training. A token belongs to the completion when its character span ends after the
prompt (offset mapping of the fast tokenizer); those tokens are the only labels. Rows are
right-padded to the longest query.
"""

from __future__ import annotations

import torch

from llm_influence.queries.loading import Query, QuerySetError


def pad_id_of(tokenizer) -> int:
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return int(tid)
    return 0


def tokenize_queries(
    queries: list[Query], tokenizer, max_length: int
) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Tensors ``[Q, T]`` and per-query token counts (``n_prompt_tokens``, ``n_completion_tokens``, ``n_tokens``).

    Raises :class:`QuerySetError` naming the query when it exceeds ``max_length`` tokens or when no
    completion token can be scored (the completion merged into the first token).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("query tokenisation needs a fast tokenizer (offset mapping)")
    rows: list[list[int]] = []
    counts: list[dict] = []
    errors = []
    for q in queries:
        enc = tokenizer(q.text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        boundary = len(q.prompt)
        is_completion = [end > boundary for _, end in offsets]
        n_completion = sum(is_completion)
        if len(ids) > max_length:
            errors.append(
                f"query {q.name!r}: fields 'prompt' + 'completion': {len(ids)} tokens exceed the context of {max_length} tokens"
            )
        elif n_completion == 0 or is_completion[0]:
            errors.append(
                f"query {q.name!r}: field 'completion': no completion token can be scored (tokens: {len(ids)})"
            )
        rows.append(ids)
        counts.append(
            {
                "n_tokens": len(ids),
                "n_prompt_tokens": len(ids) - n_completion,
                "n_completion_tokens": n_completion,
            }
        )
    if errors:
        raise QuerySetError("\n".join(errors))
    width = max(len(r) for r in rows)
    pad = pad_id_of(tokenizer)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.int64)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.int64)
    labels = torch.full((len(rows), width), -100, dtype=torch.int64)
    for i, (ids, c) in enumerate(zip(rows, counts)):
        t = torch.tensor(ids, dtype=torch.int64)
        input_ids[i, : len(ids)] = t
        attention_mask[i, : len(ids)] = 1
        start = c["n_prompt_tokens"]
        labels[i, start : len(ids)] = t[start:]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}, counts
