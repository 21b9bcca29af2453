"""Refined inverse-Hessian-vector products: a few steps of EK-FAC-preconditioned conjugate gradients.

EK-FAC approximates each module's damped Gauss-Newton block in a Kronecker eigenbasis; on small
transformers that basis is the main loss against the exact damped GNH. Conjugate gradients on the real
operator (G + λ) of the fit set, with the EK-FAC (or KFAC) inverse as preconditioner M⁻¹, solves
(G + λ) x_q = ∇f_q for every query at once (per-query step sizes) and converges fast because M already
captures most of the spectrum. The refined x_q replace P_q = M⁻¹∇f_q before low-rank compression and
scoring, so every score (total, layer, token, top-k) uses them.

Vectors live in the tracked-parameter space: a dict module -> [Q, d_out, d_in (+1 bias)] (the layout
of ``modules.py``). Two operator products, each a *sum over fit sequences with a count* (shards of the
fit set merge exactly, :class:`ProductSums`):

  gnh      G v = (1/N) Σ_n J_nᵀ H_n J_n v, the exact Gauss-Newton-vector product through the whole
           model: forward-mode JVP (the tangent V a_t injected at every tracked layer's output), the
           softmax-CE Hessian H = diag(p) − ppᵀ at every counted position, one reverse pass. Costs a
           forward+backward pass per query vector (rows of the batch are repeated per query).
  sampled  G v ≈ (1/N) Σ_n DW_n ⟨DW_n, v⟩ with DW_n the per-sequence gradient under labels drawn from
           the model (the eigenvalue correction's estimator and draws: ``sample_targets`` with seeds
           ``seed .. seed + label_samples − 1``, fixed per sequence). One forward+backward pass per
           sequence for all queries, plus two weight-gradient-sized products per sequence.

PCG starts from x₀ = 0, so one step gives the EK-FAC solution rescaled per query by the optimal
(energy-norm) step: the same per-query correlations as EK-FAC; every further step adds one Krylov
direction. k steps cost k operator products.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from .arguments import DEVICES, DTYPES, ScoreConfig
from .errors import FactorMismatchError, NonFiniteGradientError, RefinementError
from .factors import Factors, check_factors, setup_device
from .modules import Tracker, context_length, iterate, prepare_batch
from .scoring import PreconditionedQueries, low_rank, precondition_queries

PRODUCTS = ("gnh", "sampled")
Vectors = dict[str, torch.Tensor]  # module -> [Q, O, I]


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
        if self.products not in PRODUCTS:
            raise ValueError(f"refine products must be one of {PRODUCTS}, got {self.products!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"refine dtype must be float32 or float64, got {self.dtype!r}")
        if not (self.device in DEVICES or str(self.device).startswith("cuda:")):
            raise ValueError(
                f"refine device must be one of {DEVICES} (or cuda:N), got {self.device!r}"
            )


# ----------------------------------------------------------------------------------------------
# operator products
# ----------------------------------------------------------------------------------------------
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


def _repeat(batch: Mapping[str, torch.Tensor], c: int) -> dict[str, torch.Tensor]:
    return {k: batch[k].repeat(c, 1) for k in ("input_ids", "attention_mask", "labels")}


def _softmax_hessian(logits: torch.Tensor, u: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """H u with H = diag(p) − ppᵀ at positions t whose next label counts (0 elsewhere); [R, T, V]."""
    lg, ut = logits[:, :-1].double(), u[:, :-1].double()
    p = torch.softmax(lg, -1)
    hu = p * (ut - (p * ut).sum(-1, keepdim=True))
    hu = hu * (labels[:, 1:] != -100).unsqueeze(-1)
    return torch.nn.functional.pad(hu, (0, 0, 0, 1))


def _setup(model: nn.Module, factors: Factors, cfg: RefineConfig):
    check_factors(model, factors)
    dev, cdt, _ = setup_device(model, cfg.device, cfg.dtype)
    return dev, cdt, context_length(model)


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


def gnh_product_sums(
    model: nn.Module, factors: Factors, fit_batches: Iterable, vectors: Vectors, cfg: RefineConfig
) -> ProductSums:
    """Σ_n J_nᵀ H_n J_n v_q for every query vector (exact GNH, softmax CE at counted positions)."""
    dev, cdt, ctx = _setup(model, factors, cfg)
    nq = _check_vectors(factors, vectors)
    vec = {m: v.to(dev, cdt) for m, v in vectors.items()}
    tracker = _TangentTracker(model, factors.modules, None)
    sums = {m: torch.zeros_like(v) for m, v in vec.items()}
    n = 0
    with tracker:
        for bi, raw in enumerate(iterate(fit_batches, cfg.progress, "GNH products")):
            batch = prepare_batch(raw, dev, ctx, "fit", bi)
            B = batch["input_ids"].shape[0]
            for q0 in range(0, nq, cfg.query_chunk):
                q1 = min(nq, q0 + cfg.query_chunk)
                rows = _repeat(batch, q1 - q0)
                tracker.vectors = [vec[m][q0:q1] for m in factors.modules]
                with torch.enable_grad():
                    with _math_attention(), fwAD.dual_level():
                        logits = tracker.forward(rows)
                        primal, jv = fwAD.unpack_dual(logits)
                        jv = torch.zeros_like(primal) if jv is None else jv.detach().clone()
                    hjv = _softmax_hessian(primal.detach(), jv, rows["labels"])
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


def sampled_product_sums(
    model: nn.Module, factors: Factors, fit_batches: Iterable, vectors: Vectors, cfg: RefineConfig
) -> ProductSums:
    """Σ_{n, draws} DW_n ⟨DW_n, v_q⟩ with DW_n the sampled-label per-sequence gradient over all
    tracked modules (⟨·,·⟩ sums over modules: the cross-module blocks of G are kept); the count is
    N × label_samples (each draw counts as a sequence, as when merging several factor fits)."""
    dev, cdt, _ = _setup(model, factors, cfg)
    _check_vectors(factors, vectors)
    vec = {m: v.to(dev, cdt) for m, v in vectors.items()}
    total = ProductSums({m: torch.zeros_like(v) for m, v in vec.items()}, 0)
    for bi, grads, n in _sampled_batch_gradients(model, factors, fit_batches, cfg, "products"):
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
    model: nn.Module, factors: Factors, fit_batches: Iterable, cfg: RefineConfig
) -> SampledGradients:
    """One pass per label draw collecting DW_n (the same draws as :func:`sampled_product_sums`)."""
    chunks: dict[str, list[torch.Tensor]] = {m: [] for m in factors.modules}
    n = 0
    for _, grads, b in _sampled_batch_gradients(model, factors, fit_batches, cfg, "gradients"):
        for m, g in grads.items():
            chunks[m].append(g)
        n += b
    return SampledGradients({m: torch.cat(c) for m, c in chunks.items()}, n)


def _sampled_batch_gradients(
    model: nn.Module, factors: Factors, fit_batches: Iterable, cfg: RefineConfig, what: str
) -> Iterator[tuple[int, dict[str, torch.Tensor], int]]:
    """(fit batch, per-sequence sampled-label gradients {module: [B, O·I]}, B) for every label
    draw (seeds ``cfg.seed`` ..) and batch: the one pass both sampled products are built from."""
    dev, cdt, ctx = _setup(model, factors, cfg)
    tracker = Tracker(model, factors.modules, None)
    with tracker:
        for draw in range(cfg.label_samples):
            for bi, raw in enumerate(iterate(fit_batches, cfg.progress, f"sampled {what}")):
                batch = prepare_batch(raw, dev, ctx, "fit", bi)
                pairs = tracker.run(batch, cdt, sample_seed=cfg.seed + draw, what="fit", index=bi)
                with torch.no_grad():
                    grads = {i.name: (g.transpose(1, 2) @ a).flatten(1)
                             for i, (a, g) in zip(tracker.infos, pairs)}  # fmt: skip
                yield bi, grads, int(batch["input_ids"].shape[0])


def _sampled_cache_fits(factors: Factors, fit_batches: Iterable, cfg: RefineConfig) -> bool:
    n = sum(int(b["input_ids"].shape[0]) for b in fit_batches) * cfg.label_samples
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
    model: nn.Module, factors: Factors, fit_batches: Iterable, cfg: RefineConfig
) -> Callable[[Vectors], Vectors]:
    """v -> (G + λ) v: the mean product over ``fit_batches`` plus each module's damping λ_m."""
    products = gnh_product_sums if cfg.products == "gnh" else sampled_product_sums
    cache: list[SampledGradients] = []
    cached = cfg.products == "sampled" and _sampled_cache_fits(factors, fit_batches, cfg)

    def apply(v: Vectors) -> Vectors:
        if cached:
            if not cache:
                cache.append(sampled_gradients(model, factors, fit_batches, cfg))
            dev, cdt = (
                cache[0].grads[factors.modules[0]].device,
                cache[0].grads[factors.modules[0]].dtype,
            )
            g = cache[0].product_sums({m: x.to(dev, cdt) for m, x in v.items()}).mean()
        else:
            g = products(model, factors, fit_batches, v, cfg).mean()
        return {m: g[m] + factors.damping[m] * v[m].to(g[m]) for m in factors.modules}

    return apply


# ----------------------------------------------------------------------------------------------
# batched preconditioned CG
# ----------------------------------------------------------------------------------------------
def _dot(x: Vectors, y: Vectors) -> torch.Tensor:
    """Per-query ⟨x_q, y_q⟩ over all modules, accumulated in float64 across modules (a batched
    dot product in the vectors' dtype: no float64 copies of [Q, O, I] tensors)."""
    return sum(
        torch.linalg.vecdot(x[m].flatten(1), y[m].to(x[m].dtype).flatten(1)).double() for m in x
    )


@dataclass
class PCGResult:
    x: Vectors
    residuals: torch.Tensor  # [steps + 1, Q]: ‖r_k‖ / ‖b‖ (recurrence residual; step 0 = 1)
    # [steps + 1, Q]: the same in the preconditioner's norm, sqrt(r_kᵀM⁻¹r_k / bᵀM⁻¹b)
    preconditioned: torch.Tensor
    seconds: list[float] = field(default_factory=list)  # wall time of each step
    iterates: dict[int, Vectors] = field(default_factory=dict)  # step -> x_k (kept steps, the last)


def pcg(
    operator: Callable[[Vectors], Vectors],
    precondition: Callable[[Vectors], Vectors],
    b: Vectors,
    steps: int,
    keep: Iterable[int] = (),
) -> PCGResult:
    """k steps of preconditioned CG for all queries at once (per-query α, β), from x₀ = 0.
    ``keep``: earlier steps whose iterates x_k are returned too (``PCGResult.iterates``; the last
    step's always is), so one run serves several k.

    Raises :class:`RefinementError` naming the query and step when pᵀ A p ≤ 0 or is non-finite
    (the operator is not positive definite there). A query whose residual is exactly zero (e.g. a zero
    gradient) stays where it is."""
    x = {m: torch.zeros_like(v) for m, v in b.items()}
    r = {m: v.clone() for m, v in b.items()}
    z = precondition(r)
    p = {m: v.clone() for m, v in z.items()}
    rz = _dot(r, z)
    bnorm = _dot(b, b).sqrt()
    safe = torch.where(bnorm > 0, bnorm, torch.ones_like(bnorm))
    res = [_dot(r, r).sqrt() / safe]
    rz0 = torch.where(rz > 0, rz, torch.ones_like(rz))
    pres = [torch.ones_like(rz)]
    secs = []
    keep = set(keep)
    iterates: dict[int, Vectors] = {}
    for k in range(1, steps + 1):
        t = time.perf_counter()
        ap = operator(p)
        pap = _dot(p, ap)
        active = rz > 0
        bad = active & ~(torch.isfinite(pap) & (pap > 0))
        if bool(bad.any()):
            q = int(bad.nonzero()[0])
            raise RefinementError(
                f"conjugate gradients broke down at step {k} for query {q}: pᵀ(G+λ)p = "
                f"{float(pap[q]):.3g} (the operator is not positive definite; check the damping)"
            )
        alpha = torch.where(active, rz / torch.where(active, pap, torch.ones_like(pap)), 0.0)
        for m in x:
            a = alpha.to(x[m]).view(-1, *[1] * (x[m].dim() - 1))
            x[m] = x[m] + a * p[m]
            r[m] = r[m] - a * ap[m].to(r[m])
        res.append(_dot(r, r).sqrt() / safe)
        if k in keep:
            iterates[k] = {m: v.clone() for m, v in x.items()}
        z = precondition(r)
        rz_new = _dot(r, z)
        pres.append((rz_new.clamp_min(0) / rz0).sqrt())
        if k < steps:
            beta = torch.where(active, rz_new / torch.where(active, rz, torch.ones_like(rz)), 0.0)
            for m in p:
                p[m] = z[m] + beta.to(z[m]).view(-1, *[1] * (z[m].dim() - 1)) * p[m]
        rz = rz_new
        secs.append(time.perf_counter() - t)
    iterates[steps] = x
    return PCGResult(x, torch.stack(res), torch.stack(pres), secs, iterates)


# ----------------------------------------------------------------------------------------------
# queries
# ----------------------------------------------------------------------------------------------
def query_gradients(
    model: nn.Module, factors: Factors, query_batches: Iterable, cfg: ScoreConfig
) -> Vectors:
    """Raw query gradients ∇f_q per module [Q, O, I] (the identity preconditioner's queries)."""
    ident = Factors(
        "identity",
        factors.modules,
        factors.infos,
        {},
        {},
        {},
        dict.fromkeys(factors.modules, 0.0),
        factors.fingerprint,
    )
    raw = ScoreConfig(**{**cfg.to_dict(), "rank": None, "rerank_topk": None})
    return precondition_queries(model, ident, query_batches, raw).dense


@dataclass
class RefinedQueries:
    queries: PreconditionedQueries  # after cfg.steps steps
    residuals: torch.Tensor  # [steps + 1, Q]
    preconditioned: torch.Tensor  # [steps + 1, Q]
    seconds: list[float]  # per step
    products: str
    n_sequences: int
    at: dict[int, PreconditionedQueries] = field(default_factory=dict)  # step -> queries
    setup_seconds: float = 0.0  # query gradients and set-up before the first step

    def metrics(self) -> dict[str, Any]:
        """Per-step relative residuals ‖(G+λ)x_k − ∇f‖/‖∇f‖ (mean and max over queries) for the stage.

        CG minimises the error in the (G+λ)-norm, not this Euclidean residual: it may rise for a
        step (large-eigenvalue directions) while the solution improves; the preconditioned residual
        sqrt(rᵀM⁻¹r / bᵀM⁻¹b) is the quantity PCG keeps small."""
        res = self.residuals
        return {
            "steps": int(res.shape[0] - 1),
            "products": self.products,
            "fit_sequences": self.n_sequences,
            "residual_mean": [round(float(v), 6) for v in res.mean(1)],
            "residual_max": [round(float(v), 6) for v in res.max(1).values],
            "preconditioned_residual_mean": [
                round(float(v), 6) for v in self.preconditioned.mean(1)
            ],
            "step_seconds": [round(s, 4) for s in self.seconds],
            "setup_seconds": round(self.setup_seconds, 4),
        }


def refine_queries(
    model: nn.Module,
    factors: Factors,
    query_batches: Iterable,
    fit_batches: Iterable,
    cfg: RefineConfig | None = None,
    score_cfg: ScoreConfig | None = None,
    also_steps: Iterable[int] = (),
) -> RefinedQueries:
    """Query gradients refined by ``cfg.steps`` PCG steps on G + λ (M⁻¹ = ``factors``), then, as
    :func:`precondition_queries`, rank-``score_cfg.rank`` compressed. The result scores with
    ``iter_scores``/``score_training`` and the same ``factors``. ``fit_batches`` must be re-iterable
    (one pass per step). ``also_steps``: earlier steps whose queries are kept too (``.at[k]``)."""
    t_start = time.perf_counter()
    cfg = cfg or RefineConfig()
    score_cfg = score_cfg or ScoreConfig()
    if factors.strategy == "identity":
        raise ValueError("refining needs a curvature preconditioner (ekfac or kfac), not identity")
    if cfg.steps > 0 and iter(fit_batches) is fit_batches:
        raise ValueError("refine_queries needs re-iterable fit_batches (a list): one pass per step")
    model_dtype = DTYPES[cfg.dtype]
    b = {
        m: v.to(model_dtype)
        for m, v in query_gradients(model, factors, query_batches, score_cfg).items()
    }
    dev = next(model.parameters()).device
    fac = factors.to(dev, model_dtype)
    n_fit = sum(int(x["input_ids"].shape[0]) for x in fit_batches)
    if n_fit == 0:
        raise ValueError("refine_queries got no fit sequences")

    def precondition(v: Vectors) -> Vectors:
        return {m: fac.ihvp(m, v[m].to(dev, model_dtype)) for m in fac.modules}

    b = {m: v.to(dev) for m, v in b.items()}
    t0 = time.perf_counter() - t_start
    keep = [k for k in also_steps if 0 < k < cfg.steps]
    if any(k > cfg.steps or k < 1 for k in also_steps):
        raise ValueError(f"also_steps {list(also_steps)} must lie in 1..steps={cfg.steps}")
    op = damped_operator(model, factors, fit_batches, cfg)
    result = pcg(op, precondition, b, cfg.steps, keep=keep)
    iterates = result.iterates if cfg.steps > 0 else {0: precondition(b)}
    at = {k: _compress(factors, x, k, score_cfg) for k, x in iterates.items()}
    return RefinedQueries(at[cfg.steps], result.residuals.cpu(), result.preconditioned.cpu(),
                          result.seconds, cfg.products, n_fit, at, t0)  # fmt: skip


def _compress(
    factors: Factors, x: Vectors, steps: int, score_cfg: ScoreConfig
) -> PreconditionedQueries:
    """As :func:`precondition_queries` ends: rank-r SVD per module (and dense for re-ranking)."""
    nq = next(iter(x.values())).shape[0]
    out = PreconditionedQueries(factors.modules, factors.infos, nq, score_cfg.rank,
                                fingerprint=factors.fingerprint, strategy=f"{factors.strategy}_pcg{steps}")  # fmt: skip
    sdt = DTYPES[score_cfg.dtype] if score_cfg.dtype != "bfloat16" else torch.float32
    for m in factors.modules:
        p = x[m].to(sdt).cpu()
        if score_cfg.rank is None:
            out.dense[m] = p
            continue
        out.u[m], out.v[m] = low_rank(p, score_cfg.rank)
        if score_cfg.rerank_topk is not None or score_cfg.rerank_full:
            out.dense[m] = p
    return out
