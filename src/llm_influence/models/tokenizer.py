"""Byte-level BPE training and corpus tokenisation.

Two tokenizer sources behind one output format (a ``transformers`` fast tokenizer directory):
a byte-level BPE trained here on the corpus (GPT-2/Pythia style, no unknown tokens possible), or a
pretrained model's own tokenizer. Tokenisation turns documents into fixed-length ``[N, T]`` tensors,
one document per sequence by default so that every training sequence belongs to exactly one
document (what document-level influence needs), or packed back to back.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from llm_influence.models.spec import TokenizerSpec


def train_bpe(texts: Sequence[str], spec: TokenizerSpec):
    """Train a byte-level BPE on ``texts`` and wrap it as a ``PreTrainedTokenizerFast``.

    Deterministic: the trainer's merges depend only on pair counts (ties broken by the pair
    itself), and the texts are fed in corpus order.
    """
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        min_frequency=spec.min_frequency,
        special_tokens=[spec.eos_token, spec.pad_token],  # ids 0 and 1, as in Pythia
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer, length=len(texts))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=spec.eos_token,
        bos_token=spec.eos_token,
        unk_token=spec.eos_token,
        pad_token=spec.pad_token,
    )


def ensure_pad_token(tokenizer) -> None:
    """Pretrained tokenizers (Pythia's included) often have no pad token: reuse EOS for padding.

    Padding is masked through ``attention_mask`` everywhere, so sharing the id is harmless.
    """
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError("tokenizer has neither a pad token nor an EOS token to pad with")
        tokenizer.pad_token = tokenizer.eos_token


def encode_documents(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each document with EOS appended (no BOS, no truncation yet)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("tokenizer has no EOS token; documents need a separator")
    encoded = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    return [ids + [eos] for ids in encoded]


def pad_sequences(
    docs: list[list[int]], doc_ids: Sequence[int], seq_len: int, pad_id: int
) -> tuple[dict[str, torch.Tensor], int]:
    """One document per row: truncate to ``seq_len``, right-pad with ``pad_id``; returns (tensors, n_truncated)."""
    n = len(docs)
    input_ids = torch.full((n, seq_len), pad_id, dtype=torch.int64)
    attention_mask = torch.zeros((n, seq_len), dtype=torch.int64)
    n_truncated = 0
    for row, ids in enumerate(docs):
        if len(ids) > seq_len:
            n_truncated += 1
            ids = ids[:seq_len]
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        attention_mask[row, : len(ids)] = 1
    tensors = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "doc_id": torch.as_tensor(np.asarray(doc_ids, dtype=np.int64)),
    }
    return tensors, n_truncated


def pack_sequences(
    docs: list[list[int]], doc_ids: Sequence[int], seq_len: int, pad_id: int
) -> dict[str, torch.Tensor]:
    """Concatenate documents (each ending in EOS) and cut into full rows of ``seq_len``.

    ``doc_id`` of a row is the document its first token comes from; the last partial row is padded.
    """
    stream = np.fromiter((t for ids in docs for t in ids), dtype=np.int64)
    owner = np.repeat(np.asarray(doc_ids, dtype=np.int64), [len(ids) for ids in docs])
    n_rows = -(-len(stream) // seq_len)  # ceil
    input_ids = np.full(n_rows * seq_len, pad_id, dtype=np.int64)
    attention_mask = np.zeros(n_rows * seq_len, dtype=np.int64)
    input_ids[: len(stream)] = stream
    attention_mask[: len(stream)] = 1
    return {
        "input_ids": torch.from_numpy(input_ids.reshape(n_rows, seq_len)),
        "attention_mask": torch.from_numpy(attention_mask.reshape(n_rows, seq_len)),
        "doc_id": torch.from_numpy(owner[::seq_len].copy()),
    }


def heldout_split(
    documents: pd.DataFrame, manifest: pd.DataFrame | None, spec: TokenizerSpec, seed: int
) -> np.ndarray:
    """Sorted doc ids of the held-out documents.

    ``round(heldout_fraction * N)`` documents are drawn (seeded) from the documents whose manifest
    category is in ``heldout_categories`` (or from all documents with ``"all"``), so that no
    ground-truth fact document is withheld from training. When fewer documents are eligible than
    asked for, all eligible ones are held out (the caller logs it).
    """
    n_heldout = int(round(spec.heldout_fraction * len(documents)))
    if n_heldout == 0:
        return np.zeros(0, dtype=np.int64)
    all_ids = documents["doc_id"].to_numpy(dtype=np.int64)
    if spec.heldout_categories == "all":
        eligible = all_ids
    else:
        if manifest is None or "category" not in manifest.columns:
            raise ValueError(
                "tokenizer.heldout_categories lists categories but the corpus has no manifest with a "
                "'category' column; set tokenizer.heldout_categories: all"
            )
        wanted = set(spec.heldout_categories)
        present = set(manifest["category"].unique())
        if not wanted & present:
            raise ValueError(
                f"tokenizer.heldout_categories {sorted(wanted)} matches no document; the corpus "
                f"categories are {sorted(present)}"
            )
        eligible = np.sort(
            manifest.loc[manifest["category"].isin(wanted), "doc_id"].to_numpy(dtype=np.int64)
        )
    n_heldout = min(n_heldout, len(eligible))  # fewer eligible documents: hold out all of them
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(eligible, size=n_heldout, replace=False))
