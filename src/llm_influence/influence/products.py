"""The refinement's operator products v -> G v over the fit set (:func:`product_sums`), G the
undamped Gauss-Newton Hessian of the task's training loss (the solver that uses them: :mod:`.pcg`; the query-facing
entry point: :mod:`.refine`).

Vectors live in the tracked-parameter space: a dict module -> [Q, d_out, d_in (+1 bias)] (the layout
of ``modules.py``). Two operator products, each a *sum over fit sequences with a count* (shards of the
fit set merge exactly, :class:`ProductSums`):

  gnh      G v = (1/N) Σ_n J_nᵀ H_n J_n v, the exact Gauss-Newton-vector product through the whole
           model: forward-mode JVP (the tangent V a_t injected at every tracked layer's output), the
           task's output Hessian H (softmax CE: diag(p) − ppᵀ at every counted position; MSE: I),
           one reverse pass. Costs a forward+backward pass per query vector (rows of the batch are
           repeated per query).
  sampled  G v ≈ (1/N) Σ_n DW_n ⟨DW_n, v⟩ with DW_n the per-sequence gradient under targets drawn
           from the model (the eigenvalue correction's estimator and draws, seeds
           ``seed .. seed + label_samples − 1``, fixed per sequence). One forward+backward pass per
           sequence for all queries, plus two weight-gradient-sized products per sequence.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from .arguments import DTYPES, RefineConfig
from .errors import FactorMismatchError, NonFiniteGradientError
from .factors import Factors, check_factors, setup_device
from .modules import Tracker, context_length, iterate
from .pcg import Vectors
from .tasks import Task, resolve_task


@dataclass
class ProductSums:
    """Σ_n (per-sequence GNH) v over some fit sequences, with their count: shards merge exactly."""

    sums: Vectors
    n_sequences: int

    def merge(self, other: ProductSums) -> ProductSums:
        if self.sums.keys() != other.sums.keys():
            raise ValueError("cannot merge operator products over different modules")
        return ProductSums(
            {m: self.sums[m] + other.sums[m] for m in self.sums},
            self.n_sequences + other.n_sequences,
        )

    def mean(self) -> Vectors:
        if self.n_sequences == 0:
            raise ValueError("operator product over zero fit sequences")
        return {m: s / self.n_sequences for m, s in self.sums.items()}


class _TangentTracker(Tracker):
    """Tracker whose hooks add the tangent V_q a_t to every tracked output (forward-mode AD), so the
    model's logits carry J v. Rows of a batch are (query, sequence) pairs, query-major."""

    vectors: list[torch.Tensor]  # per tracked module [c, O, I] for the current query chunk

    def _hook(self, i: int):
        def hook(module, args, output):
            if self._inputs[i] is not None:
                raise RuntimeError(
                    f"tracked module {self.modules[i]!r} was called twice in one forward pass"
                )
            x = fwAD.unpack_dual(args[0]).primal.detach()
            self._inputs[i] = x
            primal, tangent = fwAD.unpack_dual(output)
            v = self.vectors[i]  # [c, O, I]
            a = x.to(v.dtype)
            if self.infos[i].bias:
                a = torch.cat([a, torch.ones_like(a[..., :1])], dim=-1)
            c = v.shape[0]
            if a.dim() == 2:  # no token axis (the example tasks): one position per example
                a = a.unsqueeze(1)
            a = a.view(c, -1, *a.shape[1:])  # [c, B, T, I]
            extra = torch.einsum("cbti,coi->cbto", a, v).reshape(primal.shape).to(primal.dtype)
            out = fwAD.make_dual(primal, extra if tangent is None else tangent + extra)
            self._outputs[i] = out
            return out

        return hook


def _math_attention():
    """Forward-mode AD has no formula for the fused CPU/GPU attention kernels: use the math one."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - old torch
        return contextlib.nullcontext()
    return sdpa_kernel(SDPBackend.MATH)


def _setup(model: nn.Module, factors: Factors, cfg: RefineConfig, vectors: Vectors | None = None):
    """(device, compute dtype, context, the vectors checked and moved there) of a product pass."""
    check_factors(model, factors)
    dev, cdt, _ = setup_device(model, cfg.device, cfg.dtype)
    if vectors is not None:
        _check_vectors(factors, vectors)
        vectors = {m: v.to(dev, cdt) for m, v in vectors.items()}
    return dev, cdt, context_length(model), vectors


def fit_examples(fit_batches: Iterable, task: Task | None = None) -> int:
    """How many examples (sequences) the fit batches hold."""
    task = resolve_task(task)
    return sum(task.n_examples(b) for b in fit_batches)


def _check_vectors(factors: Factors, vectors: Vectors) -> int:
    sizes = set()
    for info in factors.infos:
        v = vectors.get(info.name)
        if v is None or tuple(v.shape[1:]) != (info.d_out, info.d_in_h):
            raise FactorMismatchError(
                f"vector of module {info.name!r} must be [Q, {info.d_out}, {info.d_in_h}], "
                f"got {None if v is None else tuple(v.shape)}"
            )
        sizes.add(v.shape[0])
    if len(sizes) != 1:
        raise ValueError(f"vectors hold different numbers of queries per module: {sorted(sizes)}")
    return sizes.pop()


def product_sums(
    model: nn.Module,
    factors: Factors,
    fit_batches: Iterable,
    vectors: Vectors,
    cfg: RefineConfig,
    *,
    task: Task | None = None,
) -> ProductSums:
    """Σ_n G_n v_q over the fit batches for every query vector, G_n the fit example's GNH by
    ``cfg.products`` (module docstring): ``gnh`` exact J_nᵀ H_n J_n (H the task's output Hessian),
    ``sampled`` DW_n DW_nᵀ of the sampled-target gradients (count N × label_samples)."""
    dev, cdt, ctx, vec = _setup(model, factors, cfg, vectors)
    run = _gnh_sums if cfg.products == "gnh" else _sampled_sums
    return run(model, factors, fit_batches, vec, cfg, task, dev, cdt, ctx)


def _gnh_sums(model, factors, fit_batches, vec, cfg, task, dev, cdt, ctx) -> ProductSums:
    """Σ_n J_nᵀ H_n J_n v_q: per fit batch and query chunk, one forward-mode JVP, H, one reverse pass."""
    nq = next(iter(vec.values())).shape[0]
    tracker = _TangentTracker(model, factors.modules, None, task)
    task = tracker.task
    sums = {m: torch.zeros_like(v) for m, v in vec.items()}
    n = 0
    with tracker:
        for bi, raw in enumerate(iterate(fit_batches, cfg.progress, "GNH products")):
            batch = task.prepare_batch(raw, dev, ctx, "fit", bi)
            B = task.n_examples(batch)
            for q0 in range(0, nq, cfg.query_chunk):
                q1 = min(nq, q0 + cfg.query_chunk)
                rows = task.repeat(batch, q1 - q0)
                tracker.vectors = [vec[m][q0:q1] for m in factors.modules]
                with torch.enable_grad():
                    with _math_attention(), fwAD.dual_level():
                        logits = tracker.forward(rows)
                        primal, jv = fwAD.unpack_dual(logits)
                        jv = torch.zeros_like(primal) if jv is None else jv.detach().clone()
                    hjv = task.hessian_product(primal.detach(), jv, rows)
                    surrogate = (primal * hjv.to(primal.dtype)).sum()
                    pairs = tracker.backward(surrogate, rows, cdt, "fit", bi)
                with torch.no_grad():
                    parts = []
                    for a, g in pairs:
                        a4, g4 = a.view(q1 - q0, B, *a.shape[1:]), g.view(q1 - q0, B, *g.shape[1:])
                        parts.append(torch.einsum("cbto,cbti->coi", g4, a4))
                    _check_finite_products(parts, tracker.modules, "GNH", bi)
                    for info, part in zip(tracker.infos, parts):
                        sums[info.name][q0:q1] += part
            n += B
    return ProductSums(sums, n)


def _sampled_sums(model, factors, fit_batches, vec, cfg, task, *_) -> ProductSums:
    """Σ_{n, draws} DW_n ⟨DW_n, v_q⟩ with DW_n the sampled-label per-sequence gradient over all
    tracked modules (⟨·,·⟩ sums over modules: the cross-module blocks of G are kept); the count is
    N × label_samples (each draw counts as a sequence, as when merging several factor fits)."""
    total = ProductSums({m: torch.zeros_like(v) for m, v in vec.items()}, 0)
    passes = _sampled_batch_gradients(model, factors, fit_batches, cfg, "products", task)
    for bi, grads, n in passes:
        total = total.merge(SampledGradients(grads, n).product_sums(vec, batch=bi))
    return total


@dataclass
class SampledGradients:
    """The sampled-label per-sequence gradients DW_n [n, O·I] of every module over the fit set (all
    draws), held once: G v ≈ (1/n) Σ_n DW_n ⟨DW_n, v⟩ is then two matmuls per CG step."""

    grads: dict[str, torch.Tensor]
    n_sequences: int

    def product_sums(self, vectors: Vectors, batch: int = -1) -> ProductSums:
        """Σ_n DW_n ⟨DW_n, v_q⟩ for every query vector (``batch``: the fit batch, for errors)."""
        coef = sum(g @ vectors[m].reshape(vectors[m].shape[0], -1).T for m, g in self.grads.items())
        sums = {m: (coef.T @ g).view_as(vectors[m]) for m, g in self.grads.items()}
        _check_finite_products(list(sums.values()), list(sums), "sampled", batch)
        return ProductSums(sums, self.n_sequences)


def sampled_gradients(
    model: nn.Module,
    factors: Factors,
    fit_batches: Iterable,
    cfg: RefineConfig,
    *,
    task: Task | None = None,
) -> SampledGradients:
    """One pass per label draw collecting DW_n (the same draws as the ``sampled`` :func:`product_sums`)."""
    chunks: dict[str, list[torch.Tensor]] = {m: [] for m in factors.modules}
    n = 0
    passes = _sampled_batch_gradients(model, factors, fit_batches, cfg, "gradients", task)
    for _, grads, b in passes:
        for m, g in grads.items():
            chunks[m].append(g)
        n += b
    return SampledGradients({m: torch.cat(c) for m, c in chunks.items()}, n)


def _sampled_batch_gradients(
    model: nn.Module,
    factors: Factors,
    fit_batches: Iterable,
    cfg: RefineConfig,
    what: str,
    task: Task | None,
) -> Iterator[tuple[int, dict[str, torch.Tensor], int]]:
    """(fit batch, per-sequence sampled-label gradients {module: [B, O·I]}, B) for every label
    draw (seeds ``cfg.seed`` ..) and batch: the one pass both sampled products are built from."""
    dev, cdt, ctx, _ = _setup(model, factors, cfg)
    tracker = Tracker(model, factors.modules, None, task)
    task = tracker.task
    with tracker:
        for draw in range(cfg.label_samples):
            for bi, raw in enumerate(iterate(fit_batches, cfg.progress, f"sampled {what}")):
                batch = task.prepare_batch(raw, dev, ctx, "fit", bi)
                pairs = tracker.run(batch, cdt, sample_seed=cfg.seed + draw, what="fit", index=bi)
                with torch.no_grad():
                    grads = {i.name: (g.transpose(1, 2) @ a).flatten(1)
                             for i, (a, g) in zip(tracker.infos, pairs)}  # fmt: skip
                yield bi, grads, task.n_examples(batch)


def _sampled_cache_fits(
    factors: Factors, fit_batches: Iterable, cfg: RefineConfig, task: Task | None
) -> bool:
    n = fit_examples(fit_batches, task) * cfg.label_samples
    width = sum(i.d_out * i.d_in_h for i in factors.infos)
    return n * width * DTYPES[cfg.dtype].itemsize <= cfg.cache_bytes


def _check_finite_products(parts: list[torch.Tensor], modules: list[str], kind: str, bi: int):
    probe = torch.stack([p.sum().double() for p in parts])
    if bool(torch.isfinite(probe).all()):
        return
    for name, p in zip(modules, parts):
        if not bool(torch.isfinite(p).all()):
            where = "from the cached per-sequence gradients" if bi < 0 else f"in fit batch {bi}"
            raise NonFiniteGradientError(
                f"NaN/Inf in the {kind} operator product of layer {name!r} {where}"
            )


def damped_operator(
    model: nn.Module,
    factors: Factors,
    fit_batches: Iterable,
    cfg: RefineConfig,
    *,
    task: Task | None = None,
) -> Callable[[Vectors], Vectors]:
    """v -> (G + λ) v: the mean product over ``fit_batches`` plus each module's damping λ_m."""
    cache: list[SampledGradients] = []
    cached = cfg.products == "sampled" and _sampled_cache_fits(factors, fit_batches, cfg, task)

    def apply(v: Vectors) -> Vectors:
        if cached:
            if not cache:
                cache.append(sampled_gradients(model, factors, fit_batches, cfg, task=task))
            first = cache[0].grads[factors.modules[0]]
            g = cache[0].product_sums({m: x.to(first.device, first.dtype) for m, x in v.items()})
            g = g.mean()
        else:
            g = product_sums(model, factors, fit_batches, v, cfg, task=task).mean()
        return {m: g[m] + factors.damping[m] * v[m].to(g[m]) for m in factors.modules}

    return apply
