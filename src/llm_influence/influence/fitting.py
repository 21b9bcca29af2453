"""Factor fitting: covariance -> eigendecomposition -> eigenvalue correction -> Factors.

The passes over the fit batches; the records they fill (sums with counts, mergeable across
shards) are in :mod:`llm_influence.influence.factors`, the normalisation is stated there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import nn

from .arguments import DTYPES, FitConfig
from .errors import FactorMismatchError
from .factors import CorrectionStats, CovarianceStats, Eigenbasis, Factors, setup_device
from .modules import Tracker, context_length, iterate, model_fingerprint, small_lapack
from .tasks import Task, resolve_task
from .tracked import find_tracked_modules

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


class _FitPass:
    """The forward+backward passes of a fit over ``batches``: device, dtypes and hooks set up once,
    then per batch (index, batch, per-layer (a, g)) with the training loss on labels drawn from the
    model (``sample_seed``; None = the batch's own targets: the empirical Fisher)."""

    def __init__(self, model, modules, cfg: FitConfig, task, sample_seed: int | None, desc: str):
        self.model, self.cfg, self.desc, self.sample_seed = model, cfg, desc, sample_seed
        self.task = resolve_task(task)
        self.dev, self.cdt, acdt = setup_device(model, cfg.device, cfg.dtype)
        self.tracker = Tracker(model, modules, acdt, self.task)
        self.infos = self.tracker.infos

    def __call__(self, batches: Iterable) -> Iterator[tuple[int, dict, list]]:
        ctx = context_length(self.model)
        with self.tracker:
            for bi, raw in enumerate(iterate(batches, self.cfg.progress, self.desc)):
                batch = self.task.prepare_batch(raw, self.dev, ctx, "fit", bi)
                pairs = self.tracker.run(
                    batch, self.cdt, sample_seed=self.sample_seed, what="fit", index=bi
                )
                yield bi, batch, pairs


def _fit_seed(cfg: FitConfig) -> int | None:
    return cfg.seed if cfg.sample_labels else None


def _zeros(infos, rows, cols, dev) -> dict[str, torch.Tensor]:
    """float64 accumulators per module of shape [rows(info), cols(info)]."""
    return {i.name: torch.zeros(rows(i), cols(i), dtype=torch.float64, device=dev) for i in infos}


def fit_covariance(
    model: nn.Module, batches: Iterable, cfg: FitConfig | None = None, *, task: Task | None = None
) -> CovarianceStats:
    """Pass 1: sums of a a^T (the task's counted positions) and g g^T with labels sampled from the
    model (the training loss of ``task``, default the causal LM)."""
    cfg = cfg or FitConfig()
    modules = find_tracked_modules(model, cfg.module_patterns)
    fit = _FitPass(model, modules, cfg, task, _fit_seed(cfg), "covariance")
    a_sum = _zeros(fit.infos, lambda i: i.d_in_h, lambda i: i.d_in_h, fit.dev)
    s_sum = _zeros(fit.infos, lambda i: i.d_out, lambda i: i.d_out, fit.dev)
    n_tok = n_lab = n_seq = 0
    for bi, batch, pairs in fit(batches):
        with torch.no_grad():
            sums, seen = [], {}
            for info, (a, g) in zip(fit.infos, pairs):
                key = (a.data_ptr(), a.shape, a.stride(), a.dtype)
                if (
                    key not in seen
                ):  # layers reading the same input (Llama's gate_proj/up_proj) share A
                    seen[key] = _gram_upper(a.flatten(0, 1))
                sa = _add_upper(a_sum[info.name], seen[key])
                sg = _add_upper(s_sum[info.name], _gram_upper(g.flatten(0, 1)))
                sums.append(torch.stack((sa, sg)))
            fit.tracker.check(sums, "fit", bi)
        n_tok += fit.task.n_tokens(batch)
        n_lab += fit.task.n_label_tokens(batch)
        n_seq += fit.task.n_examples(batch)
    return CovarianceStats(
        modules,
        fit.infos,
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


def _rotated_squares(ar: torch.Tensor, gr: torch.Tensor, info) -> torch.Tensor:
    """Σ over the batch of (Q_S^T DW Q_A)^2 from the rotated activations ``ar`` [B,T,I] and output
    gradients ``gr`` [B,T,O], a few sequences at a time (bounded memory)."""
    acc = None
    step = max(1, (1 << 26) // max(1, info.d_out * info.d_in_h))
    for s in range(0, ar.shape[0], step):
        rot = torch.bmm(gr[s : s + step].transpose(1, 2), ar[s : s + step])  # [b,O,I]
        sq = rot.square_().sum(0)
        acc = sq if acc is None else acc.add_(sq)
    return acc


def fit_eigen_correction(
    model: nn.Module,
    batches: Iterable,
    eigenbasis: Eigenbasis,
    cfg: FitConfig | None = None,
    *,
    task: Task | None = None,
    _fingerprint: str | None = None,
) -> CorrectionStats:
    """Pass 2: Λ sums = Σ_seq (Q_S^T DW Q_A)^2 with DW the per-sequence (sampled-label) gradient
    of ``task``'s training loss.

    (``_fingerprint``: internal, the model's fingerprint when the caller just computed it.)"""
    cfg = cfg or FitConfig()
    modules = eigenbasis.modules
    fp = _fingerprint or model_fingerprint(model, modules)
    if fp != eigenbasis.fingerprint:
        raise FactorMismatchError(
            f"eigenbasis was fitted on other weights (fingerprint {eigenbasis.fingerprint} != model {fp})"
        )
    fit = _FitPass(model, modules, cfg, task, _fit_seed(cfg), "eigen correction")
    qa = {m: eigenbasis.q_a[m].to(fit.dev, fit.cdt) for m in modules}
    qs = {m: eigenbasis.q_s[m].to(fit.dev, fit.cdt) for m in modules}
    lam = _zeros(fit.infos, lambda i: i.d_out, lambda i: i.d_in_h, fit.dev)
    n_seq = n_tok = 0
    for bi, batch, pairs in fit(batches):
        with torch.no_grad():
            accs = [
                _rotated_squares(a @ qa[info.name], g @ qs[info.name], info)
                for info, (a, g) in zip(fit.infos, pairs)
            ]
            fit.tracker.check(accs, "fit", bi)
            for info, acc in zip(fit.infos, accs):
                lam[info.name] += acc
        n_seq += fit.task.n_examples(batch)
        n_tok += fit.task.n_tokens(batch)
    return CorrectionStats(
        modules, fit.infos, {k: v.cpu() for k, v in lam.items()}, n_seq, n_tok, fp,
        {"seed": cfg.seed},
    )  # fmt: skip


def _identity_factors(eigenbasis: Eigenbasis | None, cfg: FitConfig, model) -> Factors:
    """No preconditioning (the gradient dot product): modules and fingerprint from the
    eigenbasis, or else from the model."""
    if eigenbasis is None and model is None:
        raise ValueError(
            "identity factors need an eigenbasis or a model (for modules and fingerprint)"
        )
    if eigenbasis is not None:
        modules, infos, fp = eigenbasis.modules, eigenbasis.infos, eigenbasis.fingerprint
    else:
        from .tracked import module_info

        modules = find_tracked_modules(model, cfg.module_patterns)
        named = dict(model.named_modules())
        infos = [module_info(m, named[m]) for m in modules]
        fp = model_fingerprint(model, modules)
    return Factors(
        "identity", modules, infos, {}, {}, {}, dict.fromkeys(modules, 0.0), fp,
        {"strategy": "identity"},
    )  # fmt: skip


def _eigenvalues(
    eigenbasis: Eigenbasis, correction: CorrectionStats | None, strategy: str
) -> dict[str, torch.Tensor]:
    """Λ per module: EK-FAC's corrected eigenvalues (mean over the correction's sequences) or
    KFAC's products of the factors' eigenvalues, Λ[i, j] = e_S[i] e_A[j]."""
    lam: dict[str, torch.Tensor] = {}
    if strategy == "ekfac":
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
    else:
        for m in eigenbasis.modules:
            lam[m] = torch.outer(eigenbasis.e_s[m].clamp_min(0), eigenbasis.e_a[m].clamp_min(0))
    return lam


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
        return _identity_factors(eigenbasis, cfg, model)
    if eigenbasis is None:
        raise ValueError(f"strategy {cfg.strategy!r} needs an eigenbasis")
    if model is not None and model_fingerprint(model, eigenbasis.modules) != eigenbasis.fingerprint:
        raise FactorMismatchError("eigenbasis was fitted on other weights than the given model")
    lam = _eigenvalues(eigenbasis, correction, cfg.strategy)
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


def fit_factors(
    model: nn.Module, batches: Iterable, cfg: FitConfig | None = None, *, task: Task | None = None
) -> Factors:
    """Whole fit in one call (``batches`` must be re-iterable for EK-FAC: two passes)."""
    cfg = cfg or FitConfig()
    if cfg.strategy == "identity":
        return build_factors(None, None, cfg, model)
    if cfg.strategy == "ekfac" and iter(batches) is batches:
        raise ValueError(
            "fit_factors with strategy 'ekfac' needs re-iterable batches (a list, not a generator): two passes"
        )
    cov = fit_covariance(model, batches, cfg, task=task)
    eig = compute_eigenbasis(cov)
    corr = (
        fit_eigen_correction(model, batches, eig, cfg, task=task, _fingerprint=cov.fingerprint)
        if cfg.strategy == "ekfac"
        else None
    )
    return build_factors(eig, corr, cfg)
