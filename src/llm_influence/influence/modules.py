"""Everything that touches the model: which layers are tracked, the hooks that read their
activations and output gradients, label sampling, batch checks and the weight fingerprint.

Conventions (docs/design.md): a tracked layer computes s = W a (+ b) per token; its weight gradient
for one sequence is DW = sum_t g_t a_t^T with g_t = dL/ds_t, stored as [d_out, d_in (+1 for bias)]
("homogeneous coordinates": the bias is the last column, a_t gets a trailing 1). GPT-2's Conv1D stores
W transposed, which only matters when mapping DW back onto parameters (see reference.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sys
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import (
    EmptyCompletionError,
    ModuleMatchError,
    NonFiniteGradientError,
    SequenceTooLongError,
)


def conv1d_type() -> type | None:
    """transformers' GPT-2 ``Conv1D`` (weight stored as [in, out]), if transformers is loaded.

    A model holding a Conv1D has imported it, so looking it up in ``sys.modules`` is exact and
    spares the jobs that never build a model (eigenbasis, merge, gather) the transformers import.
    """
    return getattr(sys.modules.get("transformers.pytorch_utils"), "Conv1D", None)


def is_conv1d(module: nn.Module) -> bool:
    conv1d = conv1d_type()
    return conv1d is not None and isinstance(module, conv1d)


def trackable_types() -> tuple[type, ...]:
    conv1d = conv1d_type()
    return (nn.Linear,) if conv1d is None else (nn.Linear, conv1d)


# Default module patterns per architecture (regexes, re.search on the full module name): the MLP
# linears only, as in the paper.
DEFAULT_PATTERNS: dict[str, list[str]] = {
    "gpt_neox": [r"\.mlp\.dense_h_to_4h$", r"\.mlp\.dense_4h_to_h$"],
    "llama": [r"\.mlp\.gate_proj$", r"\.mlp\.up_proj$", r"\.mlp\.down_proj$"],
    "gpt2": [r"\.mlp\.c_fc$", r"\.mlp\.c_proj$"],
}
for _alias in ("qwen2", "qwen3", "mistral", "gemma", "gemma2", "olmo", "olmo2", "phi3"):
    DEFAULT_PATTERNS[_alias] = DEFAULT_PATTERNS["llama"]
GENERIC_PATTERNS = [r"(^|\.)mlp\."]


@dataclass(frozen=True)
class ModuleInfo:
    """Shape of one tracked layer in homogeneous coordinates."""

    name: str
    d_out: int
    d_in: int  # without the bias column
    bias: bool

    @property
    def d_in_h(self) -> int:
        return self.d_in + int(self.bias)


def module_info(name: str, module: nn.Module) -> ModuleInfo:
    if isinstance(module, nn.Linear):
        return ModuleInfo(name, module.out_features, module.in_features, module.bias is not None)
    if is_conv1d(module):
        d_in, d_out = module.weight.shape
        return ModuleInfo(name, d_out, d_in, module.bias is not None)
    raise ModuleMatchError(
        f"module {name!r} is a {type(module).__name__}; only nn.Linear and Conv1D are trackable"
    )


def default_patterns(model: nn.Module) -> list[str]:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return list(DEFAULT_PATTERNS.get(model_type, GENERIC_PATTERNS))


def find_tracked_modules(model: nn.Module, patterns: list[str] | None = None) -> list[str]:
    """Names (model order) of the trackable layers matching any pattern (regex, ``re.search``).

    ``None`` = the MLP linears of the architecture. Raises :class:`ModuleMatchError` for a pattern
    that matches no trackable layer, or when nothing at all matches.
    """
    explicit = patterns is not None
    pats = list(patterns) if explicit else default_patterns(model)
    compiled = []
    for p in pats:
        try:
            compiled.append(re.compile(p))
        except re.error as exc:
            raise ModuleMatchError(
                f"module pattern {p!r} is not a valid regular expression: {exc}"
            ) from exc
    types = trackable_types()
    trackable = [n for n, m in model.named_modules() if isinstance(m, types)]
    chosen = [n for n in trackable if any(c.search(n) for c in compiled)]
    if explicit:
        for p, c in zip(pats, compiled):
            if not any(c.search(n) for n in trackable):
                raise ModuleMatchError(
                    f"module pattern {p!r} matches no nn.Linear/Conv1D layer of {type(model).__name__}; "
                    f"trackable layers are e.g. {trackable[:6]}"
                )
    if not chosen:
        raise ModuleMatchError(
            f"no trackable (nn.Linear/Conv1D) layer of {type(model).__name__} matches {pats}; "
            f"pass module_patterns explicitly (trackable layers: {trackable[:6]}...)"
        )
    return chosen


def model_fingerprint(model: nn.Module, modules: list[str] | None = None) -> str:
    """sha256 over names, shapes, dtypes and bytes of the tracked layers' parameters."""
    modules = find_tracked_modules(model) if modules is None else modules
    named = dict(model.named_modules())
    h = hashlib.sha256()
    for name in modules:
        if name not in named:
            h.update(f"missing:{name}".encode())
            continue
        for pname, p in sorted(named[name].named_parameters(recurse=False)):
            t = p.detach().to("cpu").contiguous()
            h.update(f"{name}.{pname}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(
                t.view(torch.uint8).numpy().tobytes()
                if t.dtype == torch.bfloat16
                else t.numpy().tobytes()
            )
    return h.hexdigest()[:32]


SMALL_LAPACK = 1024  # eigh/SVD of matrices up to this size run on one CPU thread (see small_lapack)


@contextlib.contextmanager
def small_lapack(n: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """One CPU thread for LAPACK calls (eigh, SVD) on matrices of size <= SMALL_LAPACK.

    These factorisations are sequences of many small, synchronising steps: on 2 threads they gained
    little on a quiet machine but became 3-60x slower (seconds for one 512x512 eigh) when other processes
    shared the cores, because every OpenMP barrier waits for a descheduled thread. Large matrices keep the
    thread pool."""
    if torch.device(device).type != "cpu" or n > SMALL_LAPACK or torch.get_num_threads() == 1:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


# ----------------------------------------------------------------------------------------------
# batches
# ----------------------------------------------------------------------------------------------
def make_batches(
    tensors: Mapping[str, torch.Tensor], batch_size: int
) -> list[dict[str, torch.Tensor]]:
    """Split ``{input_ids, attention_mask[, labels]}`` [N,T] into a list of batch dicts (views).

    Missing ``attention_mask`` = all ones; missing ``labels`` = input_ids with padding set to -100
    (the training-sequence convention of docs/design.md).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ids = tensors["input_ids"]
    mask = tensors.get("attention_mask")
    mask = torch.ones_like(ids) if mask is None else mask
    labels = tensors.get("labels")
    labels = ids.masked_fill(mask == 0, -100) if labels is None else labels
    return [
        {
            "input_ids": ids[i : i + batch_size],
            "attention_mask": mask[i : i + batch_size],
            "labels": labels[i : i + batch_size],
        }
        for i in range(0, ids.shape[0], batch_size)
    ]


def context_length(model: nn.Module) -> int | None:
    cfg = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len"):
        v = getattr(cfg, key, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def prepare_batch(
    batch: Mapping[str, torch.Tensor], device: torch.device, ctx: int | None, what: str, index: int
) -> dict[str, torch.Tensor]:
    for key in ("input_ids", "attention_mask", "labels"):
        if key not in batch:
            raise ValueError(
                f"{what} batch {index} has no {key!r} (expected input_ids, attention_mask, labels)"
            )
    ids = batch["input_ids"]
    if ids.dim() != 2:
        raise ValueError(
            f"{what} batch {index}: input_ids must be [B,T], got shape {tuple(ids.shape)}"
        )
    if ctx is not None and ids.shape[1] > ctx:
        raise SequenceTooLongError(
            f"{what} batch {index} has sequences of length {ids.shape[1]} > the model's context {ctx}"
        )
    out = {
        k: batch[k].to(device=device, dtype=torch.long)
        for k in ("input_ids", "attention_mask", "labels")
    }
    if out["labels"].shape != ids.shape or out["attention_mask"].shape != ids.shape:
        raise ValueError(
            f"{what} batch {index}: input_ids, attention_mask and labels must have the same shape"
        )
    return out


def check_nonempty(batch: Mapping[str, torch.Tensor], what: str, index: int, offset: int) -> None:
    """Every sequence must have at least one label that counts (labels[:, 1:] != -100)."""
    counts = (batch["labels"][:, 1:] != -100).sum(dim=1)
    empty = (counts == 0).nonzero().flatten().tolist()
    if empty:
        rows = [offset + e for e in empty]
        raise EmptyCompletionError(
            f"{what} {rows} (batch {index}) have no token that counts: all labels after position 0 are -100 "
            "(empty completion?)"
        )


def sequence_seeds(input_ids: torch.Tensor, attention_mask: torch.Tensor, seed: int) -> list[int]:
    """One seed per sequence from (seed, its tokens): sampled labels do not depend on batching or sharding."""
    out = []
    for ids, m in zip(input_ids.cpu(), attention_mask.cpu()):
        crc = zlib.crc32(ids[m.bool()].numpy().tobytes())
        out.append((seed * 1_000_003 + crc) % (2**62))
    return out


def sequence_uniforms(batch: Mapping[str, torch.Tensor], seed: int) -> torch.Tensor:
    """Uniforms [B, T] in [0, 1), float64, on CPU: sequence b's real (attention_mask = 1) positions get, in
    order, the draws of one CPU generator seeded by (seed, its real tokens) (see :func:`sequence_seeds`);
    padded positions get 0. So the draws depend neither on batching, sharding, padding length or side, nor
    on the device."""
    ids, mask = batch["input_ids"].cpu(), batch["attention_mask"].cpu().bool()
    out = torch.zeros(ids.shape, dtype=torch.float64)
    gen = torch.Generator()
    for b, s in enumerate(sequence_seeds(ids, mask, seed)):
        gen.manual_seed(s)
        m = mask[b]
        out[b, m] = torch.rand(int(m.sum()), generator=gen, dtype=torch.float64)
    return out


def sample_targets(
    logits: torch.Tensor, batch: Mapping[str, torch.Tensor], seed: int
) -> torch.Tensor:
    """Targets for positions 0..T-2 drawn from the model's predictive distribution; -100 where the
    real label does not count. Deterministic per sequence (see :func:`sequence_uniforms`).

    Inverse-CDF sampling, vectorised over the batch: target = the first token whose cumulative
    probability exceeds u (float64 cumulative sums, in chunks of rows to bound memory)."""
    valid = batch["labels"][:, 1:] != -100
    B, T1 = valid.shape
    u = sequence_uniforms(batch, seed)[:, :-1].to(logits.device)
    lg = logits[:, :-1].detach()
    out = torch.empty((B, T1), dtype=torch.long, device=logits.device)
    V = lg.shape[-1]
    rows = max(1, (1 << 24) // max(1, T1 * V))  # ≤ 16M float64 elements at a time
    for s in range(0, B, rows):
        w = lg[s : s + rows].double()
        w = (w - w.amax(-1, keepdim=True)).exp_().cumsum_(-1)  # unnormalised CDF
        x = (u[s : s + rows] * w[..., -1]).unsqueeze(-1)
        out[s : s + rows] = torch.searchsorted(w, x, right=True).squeeze(-1).clamp_(max=V - 1)
    return out.masked_fill_(~valid, -100)


def summed_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum of token cross-entropies; ``targets`` [B,T-1] already shifted (position t predicts t+1)."""
    lg = logits[:, :-1].float()
    return F.cross_entropy(
        lg.reshape(-1, lg.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
    )


# ----------------------------------------------------------------------------------------------
# the tracker: activations a_t and output gradients g_t of every tracked layer, one batch at a time
# ----------------------------------------------------------------------------------------------
class Tracker:
    """Context manager: hooks on the tracked layers, parameters frozen (no weight gradients are ever
    computed), model in eval mode. ``run(batch, targets)`` returns per layer (a [B,T,d_in_h],
    g [B,T,d_out]) in ``compute_dtype``; masked (attention_mask=0) positions are zero in both."""

    def __init__(
        self, model: nn.Module, modules: list[str], autocast_dtype: torch.dtype | None = None
    ):
        self.model = model
        named = dict(model.named_modules())
        missing = [m for m in modules if m not in named]
        if missing:
            raise ModuleMatchError(f"model has no module named {missing}")
        self.modules = list(modules)
        self.layers = [named[m] for m in modules]
        self.infos = [module_info(n, named[n]) for n in modules]
        self.autocast_dtype = autocast_dtype
        self._inputs: list[torch.Tensor | None] = []
        self._outputs: list[torch.Tensor | None] = []
        self._handles: list = []
        self._last: tuple | None = None

    def __enter__(self) -> Tracker:
        self._was_training = self.model.training
        self._req = [(p, p.requires_grad) for p in self.model.parameters()]
        for p, _ in self._req:
            p.requires_grad_(False)
        self.model.eval()
        for i, layer in enumerate(self.layers):
            self._handles.append(layer.register_forward_pre_hook(self._pre_hook(i)))
            self._handles.append(layer.register_forward_hook(self._hook(i)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._last = None
        for p, r in self._req:
            p.requires_grad_(r)
        self.model.train(self._was_training)

    def _pre_hook(self, i: int):
        def hook(module, args):
            x = args[0]
            if (
                not x.requires_grad
            ):  # lowest tracked layer: start the graph here (nothing below needs grads)
                x = x.detach().requires_grad_(True)
                return (x,) + tuple(args[1:])
            return None

        return hook

    def _hook(self, i: int):
        def hook(module, args, output):
            if self._inputs[i] is not None:
                raise RuntimeError(
                    f"tracked module {self.modules[i]!r} was called twice in one forward pass"
                )
            self._inputs[i] = args[0].detach()
            self._outputs[i] = output

        return hook

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self._inputs = [None] * len(self.layers)
        self._outputs = [None] * len(self.layers)
        dev = batch["input_ids"].device
        use_ac = self.autocast_dtype is not None
        with torch.autocast(
            device_type=dev.type, dtype=self.autocast_dtype or torch.float32, enabled=use_ac
        ):
            out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        logits = out.logits if hasattr(out, "logits") else out[0]
        missing = [self.modules[i] for i, o in enumerate(self._outputs) if o is None]
        if missing:
            raise RuntimeError(f"tracked modules {missing} were not called in the forward pass")
        return logits

    def backward(
        self,
        loss: torch.Tensor,
        batch: Mapping[str, torch.Tensor],
        compute_dtype: torch.dtype,
        what: str,
        index: int,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        grads = torch.autograd.grad(loss, self._outputs, allow_unused=True)
        mask = batch["attention_mask"]
        # all-ones masks (no padding) need no masking multiply: one check per batch instead of 2 copies per layer
        mask = None if bool(mask.all()) else mask.unsqueeze(-1).to(compute_dtype)
        result = []
        for i, (x, g, info) in enumerate(zip(self._inputs, grads, self.infos)):
            a = x.to(compute_dtype)
            g = (
                torch.zeros_like(self._outputs[i], dtype=compute_dtype)
                if g is None
                else g.to(compute_dtype)
            )
            if info.bias:
                a = torch.cat([a, torch.ones_like(a[..., :1])], dim=-1)
            if mask is not None:
                a = a * mask
                g = g * mask
            result.append((a, g))
        self._last = ([o.detach() for o in self._outputs], result)
        self._inputs = []
        self._outputs = []
        return result

    def run(
        self,
        batch: Mapping[str, torch.Tensor],
        compute_dtype: torch.dtype,
        *,
        sample_seed: int | None,
        what: str,
        index: int,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Forward, loss (summed CE on real or sampled labels), backward to the tracked outputs.

        Finiteness is checked lazily: here only the loss (one scalar); the callers check their small
        per-batch results with :meth:`check`, which on a failure names the first layer whose output,
        input or output gradient is non-finite (:meth:`diagnose`)."""
        self._last = None
        with torch.enable_grad():
            logits = self.forward(batch)
            if sample_seed is None:
                targets = batch["labels"][:, 1:]
            else:
                targets = sample_targets(logits, batch, sample_seed)
            loss = summed_loss(logits, targets)
            if not bool(torch.isfinite(loss)):
                self._last = ([o.detach() for o in self._outputs], None)
                self.diagnose(what, index)
                raise NonFiniteGradientError(
                    f"{what} batch {index}: loss is {loss.item()} (non-finite)"
                )
            pairs = self.backward(loss, batch, compute_dtype, what, index)
            return pairs

    def check(self, values: list[torch.Tensor], what: str, index: int) -> None:
        """One host sync for the per-module results ``values`` (in tracked-module order) of the last batch;
        raise :class:`NonFiniteGradientError` naming the layer if any is non-finite."""
        if not values:
            return
        probe = torch.stack([v.detach().sum().double() for v in values])
        if bool(torch.isfinite(probe).all()):
            return
        self.diagnose(what, index, values)

    def diagnose(self, what: str, index: int, values: list[torch.Tensor] | None = None) -> None:
        """Raise for the first tracked layer (forward order) whose output, then input/gradient, then
        per-module result is non-finite; return if all are finite (a sum that merely overflowed)."""
        outputs, pairs = self._last if self._last is not None else ([], None)
        for name, out in zip(self.modules, outputs):
            check_finite(out, name, what, index)
        if pairs is not None:
            for name, (a, g) in zip(self.modules, pairs):
                check_finite(a, name, what, index)
                check_finite(g, name, what, index)
        for name, v in zip(self.modules, values or []):
            check_finite(v, name, what, index)


def check_finite(value: torch.Tensor, module: str, what: str, index: int) -> None:
    if not bool(torch.isfinite(value).all()):
        raise NonFiniteGradientError(
            f"NaN/Inf in the gradients or activations of layer {module!r} in {what} batch {index}"
        )


def iterate(batches: Iterable, progress: bool, desc: str, total: int | None = None) -> Iterator:
    if total is None and hasattr(batches, "__len__"):
        total = len(batches)  # type: ignore[arg-type]
    if not progress:
        return iter(batches)
    from tqdm.auto import tqdm

    return iter(tqdm(batches, desc=desc, total=total, leave=False))
