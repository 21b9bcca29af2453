"""The loss hook: what the engine needs to know about a model's outputs and losses, as one object.

Influence needs two losses (Grosse et al. 2023, §2): the *measurement* f whose gradient is the query
gradient ∇f_q, and the *training* loss whose gradient covariance (with targets drawn from the model:
the true Fisher, = the Gauss-Newton Hessian for these losses) is fitted by KFAC/EK-FAC and whose
per-example gradient is scored against the queries. A :class:`Task` supplies both, the forward pass,
the batch format and, for the exact references and the refinement's ``gnh`` products, the output
Hessian H of the training loss (H u, and rows c_k with Σ_k c_k c_kᵀ = H). Every engine entry point
takes ``task=`` (default :data:`CAUSAL_LM`, the paper's summed token cross-entropy, exactly as
before the hook existed).

  CausalLMTask        batches {input_ids, attention_mask, labels} [B, T]; logits [B, T, V];
                      loss Σ_t CE(logits_t, label_{t+1}); sampled labels from softmax(logits_t)
  RegressionTask      batches {inputs [B, ...], targets [B] or [B, k]}; outputs f [B, k];
                      loss Σ ½‖f − y‖² (Gaussian, unit variance); sampled y ~ N(f, I); H = I
  ClassificationTask  batches {inputs [B, ...], labels [B]}; logits [B, C]; loss Σ CE;
                      sampled labels from softmax(logits); H = diag(p) − ppᵀ

The example tasks (regression, classification) have no token axis: a tracked layer sees one
"token" per example (activations [B, d]), A is normalised by the number of examples. Label draws
are deterministic per example from (seed, its ``ids`` entry when the batch has one, else the bytes
of its inputs), so they depend neither on batching nor on sharding (as the causal-LM draws).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .labels import example_seeds, inverse_cdf, sample_targets, summed_loss

Batch = dict[str, torch.Tensor]


class Task:
    """Base of the loss hook; subclasses define the batch format and the losses (module docstring).

    ``keys``: the batch's tensors (the first one's length is the number of examples); ``optional``:
    tensors passed along when present."""

    name = "task"
    keys: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    # -- batches --------------------------------------------------------------------------------
    def prepare_batch(
        self, batch: Mapping[str, torch.Tensor], device, ctx: int | None, what: str, index: int
    ) -> Batch:
        """Check the keys and move the batch to ``device`` (``ctx``: the model's context, if any)."""
        missing = [k for k in self.keys if k not in batch]
        if missing:
            raise ValueError(
                f"{what} batch {index} has no {missing[0]!r} ({self.name} batches hold {self.keys})"
            )
        out = {k: batch[k].to(device) for k in (*self.keys, *self.optional) if k in batch}
        n = {k: v.shape[0] for k, v in out.items()}
        if len(set(n.values())) != 1:
            raise ValueError(f"{what} batch {index}: tensors hold different numbers of rows {n}")
        return out

    def n_examples(self, batch: Mapping[str, torch.Tensor]) -> int:
        return int(batch[self.keys[0]].shape[0])

    def n_tokens(self, batch: Mapping[str, torch.Tensor]) -> int:
        """Positions whose activations count (the normaliser of A)."""
        return self.n_examples(batch)

    def n_label_tokens(self, batch: Mapping[str, torch.Tensor]) -> int:
        return self.n_examples(batch)

    def token_mask(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """[B, T] mask of the positions that count (None: all do)."""
        return None

    def check_measurable(
        self, batch: Mapping[str, torch.Tensor], what: str, index: int, offset: int
    ) -> None:
        """Raise for a query whose measurement is empty (nothing to differentiate)."""

    def repeat(self, batch: Mapping[str, torch.Tensor], c: int) -> Batch:
        """The batch's rows repeated ``c`` times, copy-major (the ``gnh`` products' query chunks)."""
        return {k: v.repeat(c, *[1] * (v.dim() - 1)) for k, v in batch.items()}

    def rows(self, batch: Mapping[str, torch.Tensor], rows) -> Batch:
        """The sub-batch of the given rows (index tensor or slice)."""
        return {k: v[rows] for k, v in batch.items()}

    # -- model and losses ------------------------------------------------------------------------
    def forward(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def training_loss(
        self, outputs: torch.Tensor, batch: Mapping[str, torch.Tensor], sample_seed: int | None
    ) -> torch.Tensor:
        """Summed training loss; ``sample_seed`` None = the batch's own targets, else targets
        drawn from the model's predictive distribution (deterministic per example)."""
        raise NotImplementedError

    def measurement(self, outputs: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Summed measurement f over the batch's queries (default: the training loss on the
        batch's own targets)."""
        return self.training_loss(outputs, batch, None)

    def hessian_product(
        self, outputs: torch.Tensor, u: torch.Tensor, batch: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """H u per example/position (H = the training loss's Hessian in the outputs), float64."""
        raise NotImplementedError

    def hessian_rows(
        self, outputs: torch.Tensor, batch: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        """Rows c [K, *outputs.shape] with Σ_k c_k c_kᵀ = H for a one-example batch (K may be 0)."""
        raise NotImplementedError


class CausalLMTask(Task):
    """Summed next-token cross-entropy of a causal LM (the paper's loss; the engine's default)."""

    name = "causal_lm"
    keys = ("input_ids", "attention_mask", "labels")

    def prepare_batch(self, batch, device, ctx, what, index) -> Batch:
        from .modules import prepare_batch

        return prepare_batch(batch, device, ctx, what, index)

    def n_tokens(self, batch) -> int:
        return int(batch["attention_mask"].sum())

    def n_label_tokens(self, batch) -> int:
        return int((batch["labels"][:, 1:] != -100).sum())

    def token_mask(self, batch) -> torch.Tensor:
        return batch["attention_mask"]

    def check_measurable(self, batch, what, index, offset) -> None:
        from .modules import check_nonempty

        check_nonempty(batch, what, index, offset)

    def repeat(self, batch, c) -> Batch:
        return {k: batch[k].repeat(c, 1) for k in self.keys}

    def rows(self, batch, rows) -> Batch:
        return {k: batch[k][rows] for k in self.keys}

    def forward(self, model, batch) -> torch.Tensor:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return out.logits if hasattr(out, "logits") else out[0]

    def training_loss(self, outputs, batch, sample_seed) -> torch.Tensor:
        if sample_seed is None:
            return summed_loss(outputs, batch["labels"][:, 1:])
        return summed_loss(outputs, sample_targets(outputs, batch, sample_seed))

    def hessian_product(self, outputs, u, batch) -> torch.Tensor:
        """H u with H = diag(p) − ppᵀ at positions t whose next label counts (0 elsewhere)."""
        lg, ut = outputs[:, :-1].double(), u[:, :-1].double()
        p = torch.softmax(lg, -1)
        hu = p * (ut - (p * ut).sum(-1, keepdim=True))
        hu = hu * (batch["labels"][:, 1:] != -100).unsqueeze(-1)
        return F.pad(hu, (0, 0, 0, 1))

    def hessian_rows(self, outputs, batch) -> torch.Tensor:
        """√p_v (e_v − p_t) at every counted position t (the logits predicting label t+1)."""
        T, V = outputs.shape[1:]
        pos = (batch["labels"][0, 1:] != -100).nonzero().flatten()
        p = torch.softmax(outputs[0, :-1].detach().double(), -1)[pos]  # [t, V]
        cot = p.sqrt().unsqueeze(-1) * (torch.eye(V, dtype=p.dtype) - p.unsqueeze(1))  # [t, V, V]
        full = torch.zeros(len(pos), V, 1, T, V, dtype=outputs.dtype)
        full[torch.arange(len(pos)), :, 0, pos, :] = cot.to(outputs.dtype)
        return full.reshape(-1, 1, T, V)


class _ExampleTask(Task):
    """One example per row, no token axis: ``inputs`` [B, ...] -> outputs [B, k] = model(inputs)."""

    optional = ("ids",)

    def forward(self, model, batch) -> torch.Tensor:
        out = model(batch["inputs"])
        return out.logits if hasattr(out, "logits") else out

    def _generators(self, batch, seed: int) -> list[torch.Generator]:
        keys = batch["ids"] if "ids" in batch else batch["inputs"]
        return [torch.Generator().manual_seed(s) for s in example_seeds(keys, seed)]


class RegressionTask(_ExampleTask):
    """Σ ½‖f(x) − y‖² (Gaussian output, unit variance): Fisher = GNH = JᵀJ; sampled y ~ N(f, I)."""

    name = "regression"
    keys = ("inputs", "targets")

    def _targets(self, outputs, batch) -> torch.Tensor:
        return batch["targets"].reshape(outputs.shape).to(outputs.dtype)

    def training_loss(self, outputs, batch, sample_seed) -> torch.Tensor:
        if sample_seed is None:
            y = self._targets(outputs, batch)
        else:
            k = outputs[0].numel()
            eps = torch.stack(
                [torch.randn(k, generator=g, dtype=torch.float64)
                 for g in self._generators(batch, sample_seed)]
            )  # fmt: skip
            y = outputs.detach() + eps.view(outputs.shape).to(outputs)
        return 0.5 * (outputs - y).square().sum()

    def hessian_product(self, outputs, u, batch) -> torch.Tensor:
        return u.double()

    def hessian_rows(self, outputs, batch) -> torch.Tensor:
        k = outputs.numel()
        return torch.eye(k, dtype=outputs.dtype).view(k, *outputs.shape)


class ClassificationTask(_ExampleTask):
    """Σ CE(logits, label): Fisher = GNH with H = diag(p) − ppᵀ; sampled labels ~ softmax(logits)."""

    name = "classification"
    keys = ("inputs", "labels")

    def training_loss(self, outputs, batch, sample_seed) -> torch.Tensor:
        if sample_seed is None:
            labels = batch["labels"].long()
        else:
            u = torch.stack(
                [torch.rand(1, generator=g, dtype=torch.float64)[0]
                 for g in self._generators(batch, sample_seed)]
            )  # fmt: skip
            labels = inverse_cdf(outputs.detach(), u.to(outputs.device))
        lg = outputs if outputs.dtype == torch.float64 else outputs.float()
        return F.cross_entropy(lg, labels, reduction="sum")

    def hessian_product(self, outputs, u, batch) -> torch.Tensor:
        p = torch.softmax(outputs.double(), -1)
        ud = u.double()
        return p * (ud - (p * ud).sum(-1, keepdim=True))

    def hessian_rows(self, outputs, batch) -> torch.Tensor:
        p = torch.softmax(outputs.detach().double(), -1)[0]  # [C]
        C = p.shape[0]
        cot = p.sqrt().unsqueeze(-1) * (torch.eye(C, dtype=p.dtype) - p.unsqueeze(0))  # [C, C]
        return cot.to(outputs.dtype).view(C, 1, C)


CAUSAL_LM = CausalLMTask()
TASKS: dict[str, Task] = {
    "causal_lm": CAUSAL_LM,
    "regression": RegressionTask(),
    "classification": ClassificationTask(),
}


def resolve_task(task: Task | None) -> Task:
    """``None`` -> the causal-LM task (the default of every entry point)."""
    return CAUSAL_LM if task is None else task
