"""The factor records: covariance sums, eigenbasis, eigenvalue-correction sums, Factors (saved,
loaded, merged, checked against a model). The passes that fit them: :mod:`.fitting`.

Every statistic is a *sum* with its *count*, so shards fitted apart merge exactly (``merge``).

Normalisation (our choice, the paper leaves it open; see docs/influence.md):
  A = sum_tokens a a^T / n_tokens           (tokens with attention_mask = 1)
  S = sum_tokens g g^T / n_sequences        (g = gradient of the *summed* sampled-label loss)
  Λ = sum_seq (Q_S^T DW Q_A)^2 / n_sequences,  DW = sum_t g_t a_t^T
so G ≈ E_seq[vec(DW) vec(DW)^T] (the Fisher/GNH of one sequence's summed loss, averaged over
sequences) and KFAC's A ⊗ S is on the same scale as EK-FAC's Λ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from llm_influence.utils.io import load_tensors, save_tensors
from llm_influence.utils.seeding import resolve_device

from .errors import FactorMismatchError
from .modules import model_fingerprint
from .tracked import ModuleInfo

FORMAT_VERSION = 1


def _infos_to_json(infos: list[ModuleInfo]) -> list[dict[str, Any]]:
    return [{"name": i.name, "d_out": i.d_out, "d_in": i.d_in, "bias": i.bias} for i in infos]


def _infos_from_json(items: list[dict[str, Any]]) -> list[ModuleInfo]:
    return [ModuleInfo(d["name"], int(d["d_out"]), int(d["d_in"]), bool(d["bias"])) for d in items]


def setup_device(
    model: nn.Module, device: str, dtype: str
) -> tuple[torch.device, torch.dtype, torch.dtype | None]:
    """Resolve the device (moving the model there), the compute dtype and the autocast dtype."""
    dev = resolve_device(device)
    p = next(model.parameters())
    if p.device != dev and not (
        dev.type == "cuda" and p.device.type == "cuda" and dev.index is None
    ):
        model.to(dev)
        p = next(model.parameters())
    dev = p.device
    if dtype == "bfloat16":
        return dev, torch.float32, torch.bfloat16
    if dtype == "float64":
        return dev, torch.float64, None
    return dev, torch.float32, None


def _check_same(a: Any, b: Any, what: str) -> None:
    if a.modules != b.modules or a.infos != b.infos:
        raise FactorMismatchError(
            f"cannot merge {what}: tracked modules differ ({a.modules} vs {b.modules})"
        )
    if a.fingerprint != b.fingerprint:
        raise FactorMismatchError(
            f"cannot merge {what}: fitted on different weights (fingerprint {a.fingerprint} vs {b.fingerprint})"
        )


# ----------------------------------------------------------------------------------------------
# statistics containers
# ----------------------------------------------------------------------------------------------
@dataclass
class CovarianceStats:
    """Sums of a a^T and g g^T per module (float64) with token/sequence counts."""

    modules: list[str]
    infos: list[ModuleInfo]
    a_sum: dict[str, torch.Tensor]
    s_sum: dict[str, torch.Tensor]
    n_tokens: int = 0
    n_label_tokens: int = 0
    n_sequences: int = 0
    fingerprint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: CovarianceStats) -> CovarianceStats:
        _check_same(self, other, "covariance statistics")
        return CovarianceStats(
            self.modules,
            self.infos,
            {m: self.a_sum[m] + other.a_sum[m] for m in self.modules},
            {m: self.s_sum[m] + other.s_sum[m] for m in self.modules},
            self.n_tokens + other.n_tokens,
            self.n_label_tokens + other.n_label_tokens,
            self.n_sequences + other.n_sequences,
            self.fingerprint,
            dict(self.meta),
        )

    def covariances(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, S) of one module with the normalisation of the module docstring."""
        if self.n_tokens == 0 or self.n_sequences == 0:
            raise ValueError("covariance statistics are empty (no tokens seen)")
        return self.a_sum[name] / self.n_tokens, self.s_sum[name] / self.n_sequences

    def save(self, path) -> None:
        _save_groups(
            path,
            "covariance",
            self.modules,
            self.infos,
            {"a_sum": self.a_sum, "s_sum": self.s_sum},
            n_tokens=self.n_tokens,
            n_label_tokens=self.n_label_tokens,
            n_sequences=self.n_sequences,
            fingerprint=self.fingerprint,
            meta=self.meta,
        )

    @classmethod
    def load(cls, path) -> CovarianceStats:
        meta, infos, g = _load_groups(path, "covariance", ("a_sum", "s_sum"))
        return cls(
            meta["modules"],
            infos,
            g["a_sum"],
            g["s_sum"],
            meta["n_tokens"],
            meta["n_label_tokens"],
            meta["n_sequences"],
            meta["fingerprint"],
            meta.get("meta", {}),
        )


def _expect_kind(meta: dict[str, Any], kind: str, path) -> None:
    if meta.get("kind") != kind:
        raise ValueError(f"{path} holds {meta.get('kind')!r} statistics, expected {kind!r}")


def _save_groups(
    path,
    kind: str,
    modules: list[str],
    infos: list[ModuleInfo],
    groups: dict[str, dict[str, torch.Tensor]],
    **fields: Any,
) -> None:
    """One safetensors file per statistic: tensors named ``{group}/{module}``, counts as metadata."""
    tensors = {f"{g}/{m}": per_module[m] for g, per_module in groups.items() for m in modules}
    meta = {"kind": kind, "format_version": FORMAT_VERSION, "modules": modules}
    meta.update(infos=_infos_to_json(infos), **fields)
    save_tensors(path, tensors or {"empty": torch.zeros(1)}, meta)


def _load_groups(
    path, kind: str, groups: tuple[str, ...]
) -> tuple[dict[str, Any], list[ModuleInfo], dict[str, dict[str, torch.Tensor]]]:
    """Inverse of :func:`_save_groups`: (metadata, module infos, {group: {module: tensor}}).

    A file saved without tensors (identity factors) yields no groups."""
    t, meta = load_tensors(path)
    _expect_kind(meta, kind, path)
    mods = meta["modules"]
    if "empty" in t:
        groups = ()
    missing = [f"{g}/{m}" for g in groups for m in mods if f"{g}/{m}" not in t]
    if missing:
        raise ValueError(f"{path}: {kind} file lacks tensors {missing[:4]}")
    return (
        meta,
        _infos_from_json(meta["infos"]),
        {g: {m: t[f"{g}/{m}"] for m in mods} for g in groups},
    )


@dataclass
class Eigenbasis:
    """Eigenvectors/values of A and S per module (float64)."""

    modules: list[str]
    infos: list[ModuleInfo]
    q_a: dict[str, torch.Tensor]
    e_a: dict[str, torch.Tensor]
    q_s: dict[str, torch.Tensor]
    e_s: dict[str, torch.Tensor]
    n_tokens: int
    n_sequences: int
    fingerprint: str
    meta: dict[str, Any] = field(default_factory=dict)

    def save(self, path) -> None:
        _save_groups(
            path,
            "eigen",
            self.modules,
            self.infos,
            {"q_a": self.q_a, "e_a": self.e_a, "q_s": self.q_s, "e_s": self.e_s},
            n_tokens=self.n_tokens,
            n_sequences=self.n_sequences,
            fingerprint=self.fingerprint,
            meta=self.meta,
        )

    @classmethod
    def load(cls, path) -> Eigenbasis:
        meta, infos, g = _load_groups(path, "eigen", ("q_a", "e_a", "q_s", "e_s"))
        return cls(
            meta["modules"],
            infos,
            g["q_a"],
            g["e_a"],
            g["q_s"],
            g["e_s"],
            meta["n_tokens"],
            meta["n_sequences"],
            meta["fingerprint"],
            meta.get("meta", {}),
        )


@dataclass
class CorrectionStats:
    """Sums of squared rotated per-sequence gradients (Λ numerators) per module, with counts."""

    modules: list[str]
    infos: list[ModuleInfo]
    lam_sum: dict[str, torch.Tensor]
    n_sequences: int = 0
    n_tokens: int = 0
    fingerprint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: CorrectionStats) -> CorrectionStats:
        _check_same(self, other, "eigenvalue-correction statistics")
        return CorrectionStats(
            self.modules,
            self.infos,
            {m: self.lam_sum[m] + other.lam_sum[m] for m in self.modules},
            self.n_sequences + other.n_sequences,
            self.n_tokens + other.n_tokens,
            self.fingerprint,
            dict(self.meta),
        )

    def save(self, path) -> None:
        _save_groups(
            path,
            "correction",
            self.modules,
            self.infos,
            {"lam_sum": self.lam_sum},
            n_sequences=self.n_sequences,
            n_tokens=self.n_tokens,
            fingerprint=self.fingerprint,
            meta=self.meta,
        )

    @classmethod
    def load(cls, path) -> CorrectionStats:
        meta, infos, g = _load_groups(path, "correction", ("lam_sum",))
        return cls(
            meta["modules"],
            infos,
            g["lam_sum"],
            meta["n_sequences"],
            meta["n_tokens"],
            meta["fingerprint"],
            meta.get("meta", {}),
        )


@dataclass
class Factors:
    """The preconditioner: per module Q_A, Q_S, Λ and damping λ;  (G+λ)^-1 V = Q_S[(Q_S^T V Q_A) ⊘ (Λ+λ)]Q_A^T.

    ``strategy == "identity"`` has no tensors (gradient dot product)."""

    strategy: str
    modules: list[str]
    infos: list[ModuleInfo]
    q_a: dict[str, torch.Tensor]
    q_s: dict[str, torch.Tensor]
    lam: dict[str, torch.Tensor]
    damping: dict[str, float]
    fingerprint: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Factors:
        conv = lambda d: {k: v.to(device=device, dtype=dtype) for k, v in d.items()}  # noqa: E731
        return Factors(
            self.strategy,
            self.modules,
            self.infos,
            conv(self.q_a),
            conv(self.q_s),
            conv(self.lam),
            dict(self.damping),
            self.fingerprint,
            self.meta,
        )

    def ihvp(self, name: str, v: torch.Tensor) -> torch.Tensor:
        """(G_m + λ_m)^-1 applied to v [..., d_out, d_in_h] (batched)."""
        if self.strategy == "identity":
            return v
        qa, qs = self.q_a[name], self.q_s[name]
        rot = qs.transpose(0, 1) @ v @ qa
        rot = rot / (self.lam[name] + self.damping[name])
        return qs @ rot @ qa.transpose(0, 1)

    def inverse_quadratic(self, name: str, v: torch.Tensor) -> torch.Tensor:
        """v^T (G_m + λ_m)^-1 v for a batch v [B, d_out, d_in_h] -> [B]."""
        if self.strategy == "identity":
            return (v * v).flatten(1).sum(1)
        rot = self.q_s[name].transpose(0, 1) @ v @ self.q_a[name]
        return (rot * rot / (self.lam[name] + self.damping[name])).flatten(1).sum(1)

    def save(self, path) -> None:
        ident = self.strategy == "identity"  # no tensors: the gradient dot product
        _save_groups(
            path,
            "factors",
            self.modules,
            self.infos,
            {} if ident else {"q_a": self.q_a, "q_s": self.q_s, "lam": self.lam},
            strategy=self.strategy,
            damping=self.damping,
            fingerprint=self.fingerprint,
            meta=self.meta,
        )

    @classmethod
    def load(cls, path, model: nn.Module | None = None) -> Factors:
        """Load; with ``model`` given, refuse factors fitted on other weights."""
        meta, infos, g = _load_groups(path, "factors", ("q_a", "q_s", "lam"))
        f = cls(
            meta["strategy"],
            meta["modules"],
            infos,
            g.get("q_a", {}),
            g.get("q_s", {}),
            g.get("lam", {}),
            {k: float(v) for k, v in meta["damping"].items()},
            meta["fingerprint"],
            meta.get("meta", {}),
        )
        if model is not None:
            check_factors(model, f)
        return f


def check_factors(model: nn.Module, factors: Factors) -> None:
    named = dict(model.named_modules())
    missing = [m for m in factors.modules if m not in named]
    if missing:
        raise FactorMismatchError(f"factors track modules the model does not have: {missing}")
    fp = model_fingerprint(model, factors.modules)
    if fp != factors.fingerprint:
        raise FactorMismatchError(
            f"factors were fitted on other weights: model fingerprint {fp} != factors' {factors.fingerprint} "
            f"(modules {factors.modules[:3]}...)"
        )
