"""Tiny models and data built in-process (no hub access)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

torch.set_num_threads(1)


def tiny_model(
    arch: str,
    hidden: int = 16,
    ff: int = 32,
    layers: int = 2,
    vocab: int = 48,
    ctx: int = 32,
    seed: int = 0,
    dtype=torch.float64,
):
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        GPTNeoXConfig,
        GPTNeoXForCausalLM,
        LlamaConfig,
        LlamaForCausalLM,
    )

    torch.manual_seed(seed)
    if arch == "gpt_neox":
        cfg = GPTNeoXConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=ff,
            num_hidden_layers=layers,
            num_attention_heads=2,
            max_position_embeddings=ctx,
            rotary_pct=0.5,
            attn_implementation="eager",
        )
        model = GPTNeoXForCausalLM(cfg)
    elif arch == "llama":
        cfg = LlamaConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=ff,
            num_hidden_layers=layers,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=ctx,
            attn_implementation="eager",
        )
        model = LlamaForCausalLM(cfg)
    elif arch == "gpt2":
        cfg = GPT2Config(
            vocab_size=vocab,
            n_embd=hidden,
            n_inner=ff,
            n_layer=layers,
            n_head=2,
            n_positions=ctx,
            attn_implementation="eager",
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
        model = GPT2LMHeadModel(cfg)
    else:
        raise ValueError(arch)
    # larger weights than the default init so that curvature is not trivially isotropic
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    return model.to(dtype).eval()


def lm_data(
    n: int, T: int, vocab: int, seed: int = 1, pad_last: bool = True
) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (n, T), generator=g)
    mask = torch.ones_like(ids)
    if pad_last:  # right padding of varying length
        for i in range(n):
            k = int(torch.randint(0, T // 3, (1,), generator=g))
            if k:
                mask[i, T - k :] = 0
                ids[i, T - k :] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


def query_data(
    n: int, T: int, vocab: int, seed: int = 7, prompt: int = 4
) -> dict[str, torch.Tensor]:
    d = lm_data(n, T, vocab, seed, pad_last=True)
    d["labels"][:, :prompt] = -100
    return d


@pytest.fixture
def fit_cfg():
    from llm_influence.influence import FitConfig

    return FitConfig(
        dtype="float64", factor_dtype="float64", device="cpu", batch_size=4, progress=False
    )


@pytest.fixture
def score_cfg():
    from llm_influence.influence import ScoreConfig

    return ScoreConfig(dtype="float64", device="cpu", batch_size=4, progress=False, rank=None)
