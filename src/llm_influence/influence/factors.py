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

from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Self

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
# saving and merging, shared by the records
# ----------------------------------------------------------------------------------------------
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


class _Record:
    """Save/load of a record dataclass whose fields are ``modules``, ``infos``, the per-module
    tensor groups named in ``GROUPS`` and scalar fields (saved as metadata, in field order)."""

    KIND: ClassVar[str]
    GROUPS: ClassVar[tuple[str, ...]]

    def _scalars(self) -> list[str]:
        skip = {"modules", "infos", *self.GROUPS}
        return [f.name for f in fields(self) if f.name not in skip]

    def _groups_to_save(self) -> dict[str, dict[str, torch.Tensor]]:
        return {g: getattr(self, g) for g in self.GROUPS}

    def save(self, path) -> None:
        values = {k: getattr(self, k) for k in self._scalars()}
        _save_groups(path, self.KIND, self.modules, self.infos, self._groups_to_save(), **values)

    @classmethod
    def load(cls, path) -> Self:
        return cls._from_file(path)

    @classmethod
    def _from_file(cls, path) -> Self:
        meta, infos, g = _load_groups(path, cls.KIND, cls.GROUPS)
        skip = {"modules", "infos", *cls.GROUPS}
        values = {f.name: meta[f.name] for f in fields(cls) if f.name not in skip | {"meta"}}
        return cls(
            modules=meta["modules"], infos=infos, **{k: g.get(k, {}) for k in cls.GROUPS},
            **values, meta=meta.get("meta", {}),
        )  # fmt: skip


class _Sums(_Record):
    """A record of sums with counts (``COUNTS``): shards fitted apart merge exactly."""

    COUNTS: ClassVar[tuple[str, ...]]
    WHAT: ClassVar[str]

    def merge(self, other):
        """The record of both shards: sums and counts added (same modules and weights only)."""
        _check_same(self, other, self.WHAT)
        summed = {
            g: {m: getattr(self, g)[m] + getattr(other, g)[m] for m in self.modules}
            for g in self.GROUPS
        }
        counts = {k: getattr(self, k) + getattr(other, k) for k in self.COUNTS}
        return replace(self, **summed, **counts, meta=dict(self.meta))


# ----------------------------------------------------------------------------------------------
# statistics containers
# ----------------------------------------------------------------------------------------------
@dataclass
class CovarianceStats(_Sums):
    """Sums of a a^T and g g^T per module (float64) with token/sequence counts."""

    WHAT: ClassVar[str] = "covariance statistics"
    KIND: ClassVar[str] = "covariance"
    GROUPS: ClassVar[tuple[str, ...]] = ("a_sum", "s_sum")
    COUNTS: ClassVar[tuple[str, ...]] = ("n_tokens", "n_label_tokens", "n_sequences")

    modules: list[str]
    infos: list[ModuleInfo]
    a_sum: dict[str, torch.Tensor]
    s_sum: dict[str, torch.Tensor]
    n_tokens: int = 0
    n_label_tokens: int = 0
    n_sequences: int = 0
    fingerprint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def covariances(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, S) of one module with the normalisation of the module docstring."""
        if self.n_tokens == 0 or self.n_sequences == 0:
            raise ValueError("covariance statistics are empty (no tokens seen)")
        return self.a_sum[name] / self.n_tokens, self.s_sum[name] / self.n_sequences


@dataclass
class Eigenbasis(_Record):
    """Eigenvectors/values of A and S per module (float64)."""

    KIND: ClassVar[str] = "eigen"
    GROUPS: ClassVar[tuple[str, ...]] = ("q_a", "e_a", "q_s", "e_s")

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


@dataclass
class CorrectionStats(_Sums):
    """Sums of squared rotated per-sequence gradients (Λ numerators) per module, with counts."""

    WHAT: ClassVar[str] = "eigenvalue-correction statistics"
    KIND: ClassVar[str] = "correction"
    GROUPS: ClassVar[tuple[str, ...]] = ("lam_sum",)
    COUNTS: ClassVar[tuple[str, ...]] = ("n_sequences", "n_tokens")

    modules: list[str]
    infos: list[ModuleInfo]
    lam_sum: dict[str, torch.Tensor]
    n_sequences: int = 0
    n_tokens: int = 0
    fingerprint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Factors(_Record):
    """The preconditioner: per module Q_A, Q_S, Λ and damping λ;  (G+λ)^-1 V = Q_S[(Q_S^T V Q_A) ⊘ (Λ+λ)]Q_A^T.

    ``strategy == "identity"`` has no tensors (gradient dot product)."""

    KIND: ClassVar[str] = "factors"
    GROUPS: ClassVar[tuple[str, ...]] = ("q_a", "q_s", "lam")

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
        return replace(self, q_a=conv(self.q_a), q_s=conv(self.q_s), lam=conv(self.lam),
                       damping=dict(self.damping))  # fmt: skip

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

    def _groups_to_save(self) -> dict[str, dict[str, torch.Tensor]]:
        # identity: no tensors (the gradient dot product)
        return {} if self.strategy == "identity" else super()._groups_to_save()

    @classmethod
    def load(cls, path, model: nn.Module | None = None) -> Factors:
        """Load; with ``model`` given, refuse factors fitted on other weights."""
        f = cls._from_file(path)
        f.damping = {k: float(v) for k, v in f.damping.items()}
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
