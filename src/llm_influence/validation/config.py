"""Settings of the validation study: the ``studies.validation`` config block (every key written out
in ``config/config.yaml``; the defaults here serve direct, programmatic use)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

TASKS = ("regression", "classifier", "lm", "neox_wide", "llama_wide")
LM_TASKS = ("lm", "neox_wide", "llama_wide")
ESTIMATORS = ("ekfac", "kfac", "lissa", "gradient_dot", "block")
REFINE_PRODUCTS = ("gnh", "sampled")


def refined_name(steps: int, products: str) -> str:
    """Estimator name of EK-FAC refined by ``steps`` PCG steps with ``products`` operator products."""
    return f"ekfac_pcg{steps}_{products}"


@dataclass
class ValidationConfig:
    tasks: list[str] = field(
        default_factory=lambda: list(TASKS)
    )  # subset of regression, classifier, lm
    n_train: int = 200  # training examples of the regression/classifier MLPs (all are scored)
    n_queries: int = 10  # held-out query examples / sequences per task
    mlp_hidden: int = 16  # width of both hidden layers of the MLPs
    mlp_steps: int = 100  # full-batch Adam steps for the MLPs
    lm_vocab: int = 16  # tiny LM: vocabulary of the synthetic Markov language
    lm_seq_len: int = 8  # tokens per sequence
    lm_hidden: int = 16  # tiny GPT-NeoX hidden size
    lm_intermediate: int = 32  # tiny GPT-NeoX MLP width
    lm_layers: int = 2
    lm_pretrain_sequences: int = 400  # sequences the tiny LM is trained on
    lm_steps: int = 100  # Adam steps (batch 32) for the tiny LM
    lm_score_sequences: int = (
        16  # of those, the ones scored and used for the exact GNH (tractability)
    )
    wide_hidden: int = 32  # neox_wide / llama_wide tasks: hidden size (2 layers, lm_* data)
    wide_intermediate: int = 64  # their MLP width
    refine_steps: list[int] = field(default_factory=lambda: [1, 2, 4])  # EK-FAC + k PCG steps rows
    refine_products: list[str] = field(default_factory=lambda: ["gnh", "sampled"])
    refine_label_samples: int = 8  # label draws per fit sequence for the sampled operator products
    lissa_max_params: int = (
        5000  # LiSSA only on tasks with at most this many tracked parameters (cost)
    )
    ranks: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64, 128])
    damping_scale: float = 0.1  # λ_m = damping_scale × mean eigenvalue of the exact per-module GNH
    label_samples: int = 4  # label draws per fit sequence for the engine's KFAC/EK-FAC fit
    lissa_depth: int = 300  # LiSSA recursion depth
    rank_sequences: int = 64  # workflow-model rank study: training sequences scored
    use_workflow_model: bool = True  # rank study on ctx.input['model'] when given

    def __post_init__(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise ValueError(
                f"studies.validation.tasks must be a non-empty subset of {list(TASKS)}, got {self.tasks}"
            )
        for key in ("n_train", "n_queries", "mlp_hidden", "mlp_steps", "lm_vocab", "lm_seq_len", "lm_hidden",
                    "lm_intermediate", "lm_layers", "lm_pretrain_sequences", "lm_steps", "lm_score_sequences",
                    "wide_hidden", "wide_intermediate", "label_samples", "refine_label_samples", "lissa_max_params", "lissa_depth", "rank_sequences"):  # fmt: skip
            v = getattr(self, key)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"studies.validation.{key} must be a positive integer, got {v!r}")
        if not self.ranks or any((not isinstance(r, int)) or r < 1 for r in self.ranks):
            raise ValueError(
                f"studies.validation.ranks must be positive integers, got {self.ranks}"
            )
        if any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.refine_steps):
            raise ValueError(
                f"studies.validation.refine_steps must be positive integers, got {self.refine_steps}"
            )
        bad = [p for p in self.refine_products if p not in REFINE_PRODUCTS]
        if bad:
            raise ValueError(
                f"studies.validation.refine_products must be a subset of {list(REFINE_PRODUCTS)}, got {bad}"
            )
        if not self.damping_scale > 0:
            raise ValueError(
                f"studies.validation.damping_scale must be > 0, got {self.damping_scale}"
            )
        if self.lm_seq_len < 4:
            raise ValueError("studies.validation.lm_seq_len must be >= 4")
        if self.lm_score_sequences > self.lm_pretrain_sequences:
            raise ValueError(
                "studies.validation.lm_score_sequences must be <= lm_pretrain_sequences"
            )

    def estimators(self) -> tuple[str, ...]:
        """Every estimator compared with exact: the base ones, then EK-FAC + k PCG steps."""
        refined = [
            refined_name(k, p) for p in self.refine_products for k in sorted(set(self.refine_steps))
        ]
        return (*ESTIMATORS, *refined)

    @classmethod
    def from_config(cls, block: dict[str, Any]) -> ValidationConfig:
        block = dict(block)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(block) - names)
        if unknown:
            raise ValueError(f"unknown studies.validation keys {unknown}; known: {sorted(names)}")
        return cls(**block)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
