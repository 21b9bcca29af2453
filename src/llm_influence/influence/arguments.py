"""Arguments of the factor fit, of scoring and of the PCG refinement, as dataclasses checked on
construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

STRATEGIES = ("ekfac", "kfac", "identity")
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
DEVICES = ("auto", "cpu", "cuda")
REFINE_PRODUCTS = ("gnh", "sampled")


def _check_common(obj: Any) -> None:
    if obj.batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {obj.batch_size}")
    if obj.dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {obj.dtype!r}")
    if not (obj.device in DEVICES or str(obj.device).startswith("cuda:")):
        raise ValueError(f"device must be one of {DEVICES} (or cuda:N), got {obj.device!r}")


@dataclass
class FitConfig:
    """How the curvature factors are fitted (Grosse et al. 2023, §2.2–2.3)."""

    strategy: str = field(
        default="ekfac", metadata={"help": "ekfac | kfac | identity (gradient dot product)"}
    )
    damping: float | str = field(
        default="auto",
        metadata={"help": "'auto' = damping_scale * mean(Λ) per module, or an absolute float"},
    )
    damping_scale: float = field(
        default=0.1, metadata={"help": "factor on mean(Λ) when damping='auto' (paper: 0.1)"}
    )
    sample_labels: bool = field(
        default=True,
        metadata={
            "help": "labels drawn from the model (true Fisher = GNH); False = empirical Fisher"
        },
    )
    seed: int = field(
        default=0, metadata={"help": "label sampling seed (per sequence: hash(seed, tokens))"}
    )
    batch_size: int = field(default=8, metadata={"help": "sequences per forward/backward"})
    dtype: str = field(
        default="float32",
        metadata={"help": "float32 | float64 | bfloat16 (autocast on GPU; sums kept in float64)"},
    )
    factor_dtype: str = field(
        default="float32",
        metadata={"help": "dtype of the stored Factors (eigenbasis is always fitted in float64)"},
    )
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    module_patterns: list[str] | None = field(
        default=None,
        metadata={"help": "regexes on module names; None = MLP linears of the architecture"},
    )
    progress: bool = field(default=True, metadata={"help": "tqdm progress bars"})

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if isinstance(self.damping, str):
            if self.damping != "auto":
                raise ValueError(f"damping must be 'auto' or a float >= 0, got {self.damping!r}")
        elif not float(self.damping) >= 0:
            raise ValueError(f"damping must be 'auto' or a float >= 0, got {self.damping!r}")
        if not self.damping_scale > 0:
            raise ValueError(f"damping_scale must be > 0, got {self.damping_scale}")
        if self.factor_dtype not in ("float32", "float64"):
            raise ValueError(f"factor_dtype must be float32 or float64, got {self.factor_dtype!r}")
        if self.module_patterns is not None and (
            isinstance(self.module_patterns, str)
            or not all(isinstance(p, str) for p in self.module_patterns)
        ):
            raise ValueError("module_patterns must be a list of strings or None")
        _check_common(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ScoreConfig:
    """How queries are preconditioned and training sequences scored (Grosse et al. 2023, §2.3, §3.2)."""

    rank: int | None = field(
        default=32,
        metadata={
            "help": "SVD rank of each module's preconditioned query gradient; None = full rank"
        },
    )
    per_layer: bool = field(default=True, metadata={"help": "return per-module scores [Q,N,M]"})
    per_token: bool = field(default=True, metadata={"help": "return per-token scores [Q,N,T]"})
    rerank_topk: int | None = field(
        default=None,
        metadata={
            "help": "re-score each query's top-k with full-rank query gradients (needs re-iterable batches)"
        },
    )
    topk: int = field(
        default=10,
        metadata={
            "help": "score_groups: each query's running top-k (by total) whose per-token scores are kept"
        },
    )
    rerank_full: bool = field(
        default=False,
        metadata={
            "help": "score_groups: re-score each query's top-k with the full-rank query matrices"
        },
    )
    batch_size: int = field(default=8, metadata={"help": "training sequences per forward/backward"})
    dtype: str = field(
        default="float32",
        metadata={
            "help": "float32 | float64 | bfloat16 (autocast on GPU; contractions in float32)"
        },
    )
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda"})
    check_fingerprint: bool = field(
        default=True, metadata={"help": "refuse factors fitted on other weights"}
    )
    query_chunk: int = field(
        default=64,
        metadata={"help": "queries per chunk in the dense per-token contraction (memory bound)"},
    )
    progress: bool = field(default=True, metadata={"help": "tqdm progress bars"})

    def __post_init__(self) -> None:
        if self.rank is not None and self.rank < 1:
            raise ValueError(f"rank must be >= 1 or None (full rank), got {self.rank}")
        if self.rerank_topk is not None and self.rerank_topk < 1:
            raise ValueError(f"rerank_topk must be >= 1 or None, got {self.rerank_topk}")
        if self.topk < 1:
            raise ValueError(f"topk must be >= 1, got {self.topk}")
        if self.query_chunk < 1:
            raise ValueError(f"query_chunk must be >= 1, got {self.query_chunk}")
        _check_common(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class RefineConfig:
    """How the query IHVPs are refined (k steps of preconditioned CG on G + λ)."""

    steps: int = 4  # PCG steps = operator products (0 = plain EK-FAC, nothing refined)
    products: str = "sampled"  # gnh (exact GN-vector products) | sampled (sampled-label gradients)
    label_samples: int = 1  # label draws per fit sequence for `sampled` (seeds seed..seed+n-1)
    seed: int = 0  # first label-draw seed (the factor fit's seed: the same draws as the correction)
    batch_size: int = 8  # fit sequences per forward/backward
    query_chunk: int = 16  # `gnh`: query vectors per pass (the batch is repeated this often)
    dtype: str = "float32"  # float32 | float64 (products and CG arithmetic)
    # `sampled`: keep the per-sequence gradients DW_n of the first step (they do not depend on v)
    # when they fit in this many bytes, so later steps cost two matmuls instead of a pass
    cache_bytes: int = 1 << 30
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        for key in ("steps", "label_samples", "batch_size", "query_chunk", "seed", "cache_bytes"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"refine {key} must be an integer, got {v!r}")
        if self.steps < 0:
            raise ValueError(f"refine steps must be >= 0, got {self.steps}")
        for key in ("label_samples", "batch_size", "query_chunk"):
            if getattr(self, key) < 1:
                raise ValueError(f"refine {key} must be >= 1, got {getattr(self, key)}")
        if self.products not in REFINE_PRODUCTS:
            raise ValueError(
                f"refine products must be one of {REFINE_PRODUCTS}, got {self.products!r}"
            )
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"refine dtype must be float32 or float64, got {self.dtype!r}")
        if not (self.device in DEVICES or str(self.device).startswith("cuda:")):
            raise ValueError(
                f"refine device must be one of {DEVICES} (or cuda:N), got {self.device!r}"
            )
