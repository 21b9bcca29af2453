"""Small config dataclasses for the tokenizer, tokenisation and pretraining stages (nanoGPT style).

Each dataclass mirrors one block of ``config/config.yaml``; ``from_config`` builds it from that
block and ``__post_init__`` checks ranges, so a bad value fails with the key name whether it comes
through the Snakemake schema or from a notebook.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

ARCHS = ("gpt_neox", "llama")  # gpt_neox = Pythia's architecture


def _from_mapping(cls, block: dict[str, Any], where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(block) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    return cls(**block)


def _check(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"{where}: {msg}")


@dataclass
class TokenizerSpec:
    """``config['tokenizer']``: the tokenizer rule and the tokenize rule (they share one group)."""

    pretrained: str | None = (
        None  # hub id or local dir: take that model's own tokenizer instead of training one
    )
    vocab_size: int = 2000  # BPE vocabulary size including the 256 byte symbols and special tokens
    min_frequency: int = 2  # a pair must occur this often to be merged
    eos_token: str = "<|endoftext|>"  # appended to every document (Pythia's name)
    pad_token: str = "<|padding|>"  # fills sequences to seq_len; never counted in the loss
    seq_len: int = 64  # tokens per training sequence
    packing: bool = False  # False: one document per sequence (padded/truncated); True: documents packed back to back
    heldout_fraction: float = 0.05  # fraction of all documents withheld for the held-out loss
    heldout_categories: list[str] | str = field(
        default_factory=lambda: ["filler"]
    )  # manifest categories eligible for held-out, or "all"

    @classmethod
    def from_config(cls, block: dict[str, Any]) -> TokenizerSpec:
        return _from_mapping(cls, dict(block), "tokenizer")

    def __post_init__(self) -> None:
        _check(
            self.vocab_size >= 300,
            "tokenizer.vocab_size",
            f"must be >= 300 (256 bytes + merges), got {self.vocab_size}",
        )
        _check(
            self.min_frequency >= 1,
            "tokenizer.min_frequency",
            f"must be >= 1, got {self.min_frequency}",
        )
        _check(self.seq_len >= 2, "tokenizer.seq_len", f"must be >= 2, got {self.seq_len}")
        _check(
            0.0 <= self.heldout_fraction < 1.0,
            "tokenizer.heldout_fraction",
            f"must be in [0, 1), got {self.heldout_fraction}",
        )
        _check(
            self.eos_token != self.pad_token, "tokenizer.pad_token", "must differ from eos_token"
        )
        if isinstance(self.heldout_categories, str):
            _check(
                self.heldout_categories == "all",
                "tokenizer.heldout_categories",
                "must be a list of categories or 'all'",
            )


@dataclass
class ModelSpec:
    """``config['pretrain']['models'][name]``: a model trained here, or ``pretrained`` to load one."""

    arch: str = "gpt_neox"  # gpt_neox (Pythia) | llama
    hidden_size: int = 64  # width of the residual stream
    num_layers: int = 2  # transformer blocks
    num_heads: int = 4  # attention heads (hidden_size must be divisible by it)
    intermediate_size: int = 256  # MLP width (4 x hidden, as in Pythia)
    max_position: int = 128  # longest sequence the position encoding supports
    pretrained: str | None = None  # hub id or local dir: load this model instead of training
    trust_remote_code: bool = (
        False  # only for `pretrained`; never set unless you trust the repo's code
    )

    @classmethod
    def from_config(cls, block: dict[str, Any], name: str = "?") -> ModelSpec:
        try:
            return _from_mapping(cls, dict(block), f"pretrain.models.{name}")
        except ValueError as err:
            msg = str(err)
            prefix = f"pretrain.models.{name}"
            raise ValueError(msg if msg.startswith(prefix) else f"{prefix}.{msg}") from None

    def __post_init__(self) -> None:
        if self.pretrained is not None:
            _check(
                bool(str(self.pretrained).strip()),
                "pretrained",
                "must be a non-empty hub id or directory",
            )
            return
        _check(
            self.arch in ARCHS,
            "arch",
            f"unknown architecture {self.arch!r}; choose one of {list(ARCHS)}",
        )
        for key in ("hidden_size", "num_layers", "num_heads", "intermediate_size", "max_position"):
            value = getattr(self, key)
            _check(
                isinstance(value, int) and value >= 1,
                key,
                f"must be a positive integer, got {value!r}",
            )
        _check(
            self.hidden_size % self.num_heads == 0,
            "hidden_size",
            f"{self.hidden_size} is not divisible by num_heads={self.num_heads}",
        )


@dataclass
class TrainSpec:
    """``config['pretrain']`` minus ``models``: one optimiser recipe shared by every size."""

    epochs: float = 10.0  # passes over the training sequences (used when max_steps == 0)
    max_steps: int = 0  # > 0 overrides epochs
    batch_size: int = 32  # sequences per optimiser step
    lr: float = 3e-3  # peak learning rate (AdamW)
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 50  # linear warm-up from 0
    weight_decay: float = 0.1  # AdamW decoupled weight decay (matrices only, not norms/biases)
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    eval_every: int = (
        100  # held-out loss every this many steps (and at the end); 0 = only at the end
    )
    eval_batch_size: int = 64
    dtype: str = "float32"  # float32 | bfloat16 (weights and training precision)
    models: dict[str, Any] = field(default_factory=dict)  # name -> ModelSpec block

    @classmethod
    def from_config(cls, block: dict[str, Any]) -> TrainSpec:
        return _from_mapping(cls, dict(block), "pretrain")

    def __post_init__(self) -> None:
        _check(
            self.epochs > 0 or self.max_steps > 0,
            "pretrain.epochs",
            "epochs or max_steps must be > 0",
        )
        _check(self.max_steps >= 0, "pretrain.max_steps", f"must be >= 0, got {self.max_steps}")
        _check(self.batch_size >= 1, "pretrain.batch_size", f"must be >= 1, got {self.batch_size}")
        _check(self.lr > 0, "pretrain.lr", f"must be > 0, got {self.lr}")
        _check(0.0 <= self.min_lr_ratio <= 1.0, "pretrain.min_lr_ratio", "must be in [0, 1]")
        _check(self.warmup_steps >= 0, "pretrain.warmup_steps", "must be >= 0")
        _check(self.weight_decay >= 0, "pretrain.weight_decay", "must be >= 0")
        _check(self.grad_clip >= 0, "pretrain.grad_clip", "must be >= 0")
        _check(self.eval_every >= 0, "pretrain.eval_every", "must be >= 0")
        _check(self.eval_batch_size >= 1, "pretrain.eval_batch_size", "must be >= 1")
        _check(
            self.dtype in ("float32", "bfloat16"),
            "pretrain.dtype",
            f"float32 | bfloat16, got {self.dtype!r}",
        )

    def model(self, name: str) -> ModelSpec:
        if name not in self.models:
            raise KeyError(f"pretrain.models has no model {name!r}; defined: {sorted(self.models)}")
        return ModelSpec.from_config(self.models[name] or {}, name)
