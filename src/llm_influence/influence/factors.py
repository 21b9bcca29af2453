"""Factor fitting: covariance -> eigendecomposition -> eigenvalue correction -> Factors.

Every statistic is a *sum* with its *count*, so shards fitted apart merge exactly (``merge``).

Normalisation (our choice, the paper leaves it open; see docs/influence.md):
  A = sum_tokens a a^T / n_tokens           (tokens with attention_mask = 1)
  S = sum_tokens g g^T / n_sequences        (g = gradient of the *summed* sampled-label loss)
  Λ = sum_seq (Q_S^T DW Q_A)^2 / n_sequences,  DW = sum_t g_t a_t^T
so G ≈ E_seq[vec(DW) vec(DW)^T] (the Fisher/GNH of one sequence's summed loss, averaged over
sequences) and KFAC's A ⊗ S is on the same scale as EK-FAC's Λ.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from llm_influence.utils.io import load_tensors, save_tensors
from llm_influence.utils.seeding import resolve_device

from .arguments import DTYPES, FitConfig
from .errors import FactorMismatchError
from .modules import (
    ModuleInfo,
    Tracker,
    context_length,
    find_tracked_modules,
    iterate,
    model_fingerprint,
    prepare_batch,
    small_lapack,
)

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


# ----------------------------------------------------------------------------------------------
# fitting passes
# ----------------------------------------------------------------------------------------------
GRAM_BLOCK = 128  # block size of the upper-triangle Gram products (matrices >= 2 blocks)


def _gram_blocks(d: int) -> list[tuple[int, int]]:
    return (
        [(r, min(d, r + GRAM_BLOCK)) for r in range(0, d, GRAM_BLOCK)]
        if d >= 2 * GRAM_BLOCK
        else [(0, d)]
    )


def _gram_upper(x: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """Block rows of the upper part of xᵀx (x [N, d]): block row i = x_iᵀ x[:, i:] (torch has no
    symmetric rank-k update; this does about (k+1)/2k of the full product's work for k blocks). The
    strictly-lower blocks are filled by :func:`_symmetrize_upper` once the sums are complete."""
    return [(r0, x[:, r0:r1].T @ x[:, r0:]) for r0, r1 in _gram_blocks(x.shape[1])]


def _add_upper(acc: torch.Tensor, parts: list[tuple[int, torch.Tensor]]) -> torch.Tensor:
    """acc[block row] += part for every part; returns the sum of the parts (finiteness probe)."""
    total = acc.new_zeros(())
    for r0, part in parts:
        acc[r0 : r0 + part.shape[0], r0:] += part
        total += part.sum()
    return total


def _symmetrize_upper(acc: torch.Tensor) -> torch.Tensor:
    """Complete a block-upper accumulator: lower blocks = transposes of the upper off-diagonal blocks."""
    blocks = _gram_blocks(acc.shape[0])
    if len(blocks) == 1:
        return acc
    off = acc.clone()
    for r0, r1 in blocks:
        off[r0:r1, r0:r1] = 0
    return acc + off.T


def fit_covariance(
    model: nn.Module, batches: Iterable, cfg: FitConfig | None = None
) -> CovarianceStats:
    """Pass 1: sums of a a^T (attention-masked tokens) and g g^T with labels sampled from the model."""
    cfg = cfg or FitConfig()
    modules = find_tracked_modules(model, cfg.module_patterns)
    dev, cdt, acdt = setup_device(model, cfg.device, cfg.dtype)
    ctx = context_length(model)
    tracker = Tracker(model, modules, acdt)
    a_sum = {
        i.name: torch.zeros(i.d_in_h, i.d_in_h, dtype=torch.float64, device=dev)
        for i in tracker.infos
    }
    s_sum = {
        i.name: torch.zeros(i.d_out, i.d_out, dtype=torch.float64, device=dev)
        for i in tracker.infos
    }
    n_tok = n_lab = n_seq = 0
    with tracker:
        for bi, raw in enumerate(iterate(batches, cfg.progress, "covariance")):
            batch = prepare_batch(raw, dev, ctx, "fit", bi)
            pairs = tracker.run(
                batch,
                cdt,
                sample_seed=cfg.seed if cfg.sample_labels else None,
                what="fit",
                index=bi,
            )
            with torch.no_grad():
                sums, seen = [], {}
                for info, (a, g) in zip(tracker.infos, pairs):
                    key = (a.data_ptr(), a.shape, a.stride(), a.dtype)
                    if (
                        key not in seen
                    ):  # layers reading the same input (Llama's gate_proj/up_proj) share A
                        seen[key] = _gram_upper(a.flatten(0, 1))
                    sa = _add_upper(a_sum[info.name], seen[key])
                    sg = _add_upper(s_sum[info.name], _gram_upper(g.flatten(0, 1)))
                    sums.append(torch.stack((sa, sg)))
                tracker.check(sums, "fit", bi)
            n_tok += int(batch["attention_mask"].sum())
            n_lab += int((batch["labels"][:, 1:] != -100).sum())
            n_seq += batch["input_ids"].shape[0]
    return CovarianceStats(
        modules,
        tracker.infos,
        {k: _symmetrize_upper(v).cpu() for k, v in a_sum.items()},
        {k: _symmetrize_upper(v).cpu() for k, v in s_sum.items()},
        n_tok,
        n_lab,
        n_seq,
        model_fingerprint(model, modules),
        {"seed": cfg.seed, "sample_labels": cfg.sample_labels, "dtype": cfg.dtype},
    )


def compute_eigenbasis(cov: CovarianceStats) -> Eigenbasis:
    """float64 eigendecomposition of A and S per module."""
    q_a, e_a, q_s, e_s = {}, {}, {}, {}
    for m in cov.modules:
        A, S = cov.covariances(m)
        with small_lapack(A.shape[0], A.device):
            ea, qa = torch.linalg.eigh(A.double())
        with small_lapack(S.shape[0], S.device):
            es, qs = torch.linalg.eigh(S.double())
        q_a[m], e_a[m], q_s[m], e_s[m] = qa, ea, qs, es
    return Eigenbasis(
        cov.modules,
        cov.infos,
        q_a,
        e_a,
        q_s,
        e_s,
        cov.n_tokens,
        cov.n_sequences,
        cov.fingerprint,
        dict(cov.meta),
    )


def fit_eigen_correction(
    model: nn.Module,
    batches: Iterable,
    eigenbasis: Eigenbasis,
    cfg: FitConfig | None = None,
    *,
    _fingerprint: str | None = None,
) -> CorrectionStats:
    """Pass 2: Λ sums = Σ_seq (Q_S^T DW Q_A)^2 with DW the per-sequence (sampled-label) gradient.

    (``_fingerprint``: internal, the model's fingerprint when the caller just computed it.)"""
    cfg = cfg or FitConfig()
    modules = eigenbasis.modules
    fp = _fingerprint or model_fingerprint(model, modules)
    if fp != eigenbasis.fingerprint:
        raise FactorMismatchError(
            f"eigenbasis was fitted on other weights (fingerprint {eigenbasis.fingerprint} != model {fp})"
        )
    dev, cdt, acdt = setup_device(model, cfg.device, cfg.dtype)
    ctx = context_length(model)
    tracker = Tracker(model, modules, acdt)
    qa = {m: eigenbasis.q_a[m].to(dev, cdt) for m in modules}
    qs = {m: eigenbasis.q_s[m].to(dev, cdt) for m in modules}
    lam = {
        i.name: torch.zeros(i.d_out, i.d_in_h, dtype=torch.float64, device=dev)
        for i in tracker.infos
    }
    n_seq = n_tok = 0
    with tracker:
        for bi, raw in enumerate(iterate(batches, cfg.progress, "eigen correction")):
            batch = prepare_batch(raw, dev, ctx, "fit", bi)
            pairs = tracker.run(
                batch,
                cdt,
                sample_seed=cfg.seed if cfg.sample_labels else None,
                what="fit",
                index=bi,
            )
            accs = []
            with torch.no_grad():
                for info, (a, g) in zip(tracker.infos, pairs):
                    ar = a @ qa[info.name]  # [B,T,I] in the eigenbasis of A
                    gr = g @ qs[info.name]  # [B,T,O]
                    acc = None
                    step = max(1, (1 << 26) // max(1, info.d_out * info.d_in_h))
                    for s in range(0, ar.shape[0], step):
                        rot = torch.bmm(
                            gr[s : s + step].transpose(1, 2), ar[s : s + step]
                        )  # [b,O,I] = Q_S^T DW Q_A
                        sq = rot.square_().sum(0)
                        acc = sq if acc is None else acc.add_(sq)
                    accs.append(acc)
                tracker.check(accs, "fit", bi)
                for info, acc in zip(tracker.infos, accs):
                    lam[info.name] += acc
            n_seq += batch["input_ids"].shape[0]
            n_tok += int(batch["attention_mask"].sum())
    return CorrectionStats(
        modules,
        tracker.infos,
        {k: v.cpu() for k, v in lam.items()},
        n_seq,
        n_tok,
        fp,
        {"seed": cfg.seed},
    )


def build_factors(
    eigenbasis: Eigenbasis | None,
    correction: CorrectionStats | None,
    cfg: FitConfig | None = None,
    model: nn.Module | None = None,
) -> Factors:
    """Assemble the preconditioner for ``cfg.strategy`` and fix the damping per module."""
    cfg = cfg or FitConfig()
    fdt = DTYPES[cfg.factor_dtype]
    if cfg.strategy == "identity":
        if eigenbasis is None and model is None:
            raise ValueError(
                "identity factors need an eigenbasis or a model (for modules and fingerprint)"
            )
        if eigenbasis is not None:
            modules, infos, fp = eigenbasis.modules, eigenbasis.infos, eigenbasis.fingerprint
        else:
            from .modules import module_info

            modules = find_tracked_modules(model, cfg.module_patterns)
            named = dict(model.named_modules())
            infos = [module_info(m, named[m]) for m in modules]
            fp = model_fingerprint(model, modules)
        return Factors(
            "identity",
            modules,
            infos,
            {},
            {},
            {},
            dict.fromkeys(modules, 0.0),
            fp,
            {"strategy": "identity"},
        )
    if eigenbasis is None:
        raise ValueError(f"strategy {cfg.strategy!r} needs an eigenbasis")
    if model is not None and model_fingerprint(model, eigenbasis.modules) != eigenbasis.fingerprint:
        raise FactorMismatchError("eigenbasis was fitted on other weights than the given model")
    lam: dict[str, torch.Tensor] = {}
    if cfg.strategy == "ekfac":
        if correction is None:
            raise ValueError(
                "strategy 'ekfac' needs eigenvalue-correction statistics (fit_eigen_correction)"
            )
        if (
            correction.modules != eigenbasis.modules
            or correction.fingerprint != eigenbasis.fingerprint
        ):
            raise FactorMismatchError(
                "correction statistics and eigenbasis come from different models/modules"
            )
        if correction.n_sequences == 0:
            raise ValueError("eigenvalue-correction statistics are empty")
        for m in eigenbasis.modules:
            lam[m] = correction.lam_sum[m].double() / correction.n_sequences
    else:  # kfac: Λ[i, j] = e_S[i] e_A[j]
        for m in eigenbasis.modules:
            lam[m] = torch.outer(eigenbasis.e_s[m].clamp_min(0), eigenbasis.e_a[m].clamp_min(0))
    damping = {
        m: float(cfg.damping_scale * lam[m].mean()) if cfg.damping == "auto" else float(cfg.damping)
        for m in eigenbasis.modules
    }
    for m, d in damping.items():
        if not d > 0:
            raise ValueError(
                f"damping of module {m!r} is {d}: Λ is all zero (no gradient reached it?)"
            )
    meta = {
        "strategy": cfg.strategy,
        "damping_rule": cfg.damping if cfg.damping != "auto" else f"{cfg.damping_scale} * mean(Λ)",
        "factor_dtype": cfg.factor_dtype,
        "fit_dtype": cfg.dtype,
        "n_tokens_covariance": eigenbasis.n_tokens,
        "n_sequences_covariance": eigenbasis.n_sequences,
        "n_sequences_correction": correction.n_sequences if correction is not None else None,
        "n_tokens_correction": correction.n_tokens if correction is not None else None,
        "sample_labels": cfg.sample_labels,
        "seed": cfg.seed,
    }
    return Factors(
        cfg.strategy,
        eigenbasis.modules,
        eigenbasis.infos,
        {m: eigenbasis.q_a[m].to(fdt) for m in eigenbasis.modules},
        {m: eigenbasis.q_s[m].to(fdt) for m in eigenbasis.modules},
        {m: lam[m].to(fdt) for m in eigenbasis.modules},
        damping,
        eigenbasis.fingerprint,
        meta,
    )


def fit_factors(model: nn.Module, batches: Iterable, cfg: FitConfig | None = None) -> Factors:
    """Whole fit in one call (``batches`` must be re-iterable for EK-FAC: two passes)."""
    cfg = cfg or FitConfig()
    if cfg.strategy == "identity":
        return build_factors(None, None, cfg, model)
    if cfg.strategy == "ekfac" and iter(batches) is batches:
        raise ValueError(
            "fit_factors with strategy 'ekfac' needs re-iterable batches (a list, not a generator): two passes"
        )
    cov = fit_covariance(model, batches, cfg)
    eig = compute_eigenbasis(cov)
    corr = (
        fit_eigen_correction(model, batches, eig, cfg, _fingerprint=cov.fingerprint)
        if cfg.strategy == "ekfac"
        else None
    )
    return build_factors(eig, corr, cfg)
