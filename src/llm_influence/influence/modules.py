"""Everything that touches the model: the hooks that read the tracked layers' activations and
output gradients, batch checks and the weight fingerprint (which layers are tracked:
:mod:`.tracked`; the labels and the loss: :mod:`.labels`).

Conventions (docs/design.md): a tracked layer computes s = W a (+ b) per token; its weight gradient
for one sequence is DW = sum_t g_t a_t^T with g_t = dL/ds_t, stored as [d_out, d_in (+1 for bias)]
("homogeneous coordinates": the bias is the last column, a_t gets a trailing 1). GPT-2's Conv1D stores
W transposed, which only matters when mapping DW back onto parameters (see reference.py).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn

from .errors import (
    EmptyCompletionError,
    ModuleMatchError,
    NonFiniteGradientError,
    SequenceTooLongError,
)
from .tracked import ModuleInfo, find_tracked_modules, module_info


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
# batch checks
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# the tracker: activations a_t and output gradients g_t of every tracked layer, one batch at a time
# ----------------------------------------------------------------------------------------------
class Tracker:
    """Context manager: hooks on the tracked layers, parameters frozen (no weight gradients are ever
    computed), model in eval mode. ``run(batch, ...)`` returns per layer (a [B,T,d_in_h],
    g [B,T,d_out]) in ``compute_dtype``; masked (the task's token mask = 0) positions are zero in
    both. Layers without a token axis (the example tasks: [B, d]) count as T = 1. The forward
    pass and the losses are the ``task``'s (:mod:`.tasks`; default the causal LM)."""

    def __init__(
        self,
        model: nn.Module,
        modules: list[str],
        autocast_dtype: torch.dtype | None = None,
        task=None,
    ):
        from .tasks import resolve_task

        self.task = resolve_task(task)
        self.model = model
        named = dict(model.named_modules())
        missing = [m for m in modules if m not in named]
        if missing:
            raise ModuleMatchError(f"model has no module named {missing}")
        self.modules = list(modules)
        self.layers = [named[m] for m in modules]
        self.infos: list[ModuleInfo] = [module_info(n, named[n]) for n in modules]
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
        dev = next(iter(batch.values())).device
        use_ac = self.autocast_dtype is not None
        with torch.autocast(
            device_type=dev.type, dtype=self.autocast_dtype or torch.float32, enabled=use_ac
        ):
            logits = self.task.forward(self.model, batch)
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
        mask = self.task.token_mask(batch)
        # all-ones masks (no padding) need no masking multiply: one check per batch instead of 2 copies per layer
        if mask is not None:
            mask = None if bool(mask.all()) else mask.unsqueeze(-1).to(compute_dtype)
        result = []
        for x, g, info in zip(self._inputs, grads, self.infos):
            if x.dim() == 2:  # no token axis (the example tasks): one position per example
                x = x.unsqueeze(1)
                g = None if g is None else g.unsqueeze(1)
            a = x.to(compute_dtype)
            g = (
                torch.zeros(*a.shape[:-1], info.d_out, dtype=compute_dtype, device=a.device)
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
        measure: bool = False,
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Forward, loss, backward to the tracked outputs. The loss is the task's measurement
        (``measure``: query gradients) or its training loss on the batch's targets
        (``sample_seed`` None) or on targets drawn from the model with that seed.

        Finiteness is checked lazily: here only the loss (one scalar); the callers check their small
        per-batch results with :meth:`check`, which on a failure names the first layer whose output,
        input or output gradient is non-finite (:meth:`diagnose`)."""
        self._last = None
        with torch.enable_grad():
            outputs = self.forward(batch)
            if measure:
                loss = self.task.measurement(outputs, batch)
            else:
                loss = self.task.training_loss(outputs, batch, sample_seed)
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
