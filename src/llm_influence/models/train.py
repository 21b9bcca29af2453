"""Pretraining a small causal LM from scratch, readable in one sitting.

    build_model(spec, tokenizer)  -> a fresh GPT-NeoX (Pythia) or Llama model
    pretrain(model, train, heldout, recipe, seed, device) -> (train_log, eval_log)
    heldout_loss(model, tensors)  -> mean token cross-entropy over non-pad tokens

Determinism: initialisation and the per-epoch shuffle come from the seed; dropout is zero; on CPU
the same seed and thread count give bit-identical weights.
"""

from __future__ import annotations

import math
import time

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from llm_influence.models.spec import ModelSpec, TrainSpec
from llm_influence.utils.seeding import seed_everything


def build_model(
    spec: ModelSpec, vocab_size: int, eos_token_id: int, pad_token_id: int
) -> nn.Module:
    """A fresh, randomly initialised causal LM (call after seeding)."""
    from transformers import AutoModelForCausalLM, GPTNeoXConfig, LlamaConfig

    common = dict(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_position,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        tie_word_embeddings=False,
    )
    if spec.arch == "gpt_neox":  # Pythia: parallel residual, partial rotary (25%), GELU, LayerNorm
        config = GPTNeoXConfig(**common, hidden_act="gelu", use_parallel_residual=True)
    elif spec.arch == "llama":  # pre-norm RMSNorm, SwiGLU MLP, full rotary
        config = LlamaConfig(**common)
    else:
        raise ValueError(f"unknown architecture {spec.arch!r}")
    return AutoModelForCausalLM.from_config(config)


def count_params(model: nn.Module) -> tuple[int, int]:
    """(all parameters, parameters of the MLP linears = the ones the influence engine tracks)."""
    n_all = sum(p.numel() for p in model.parameters())
    n_mlp = sum(
        p.numel()
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and ".mlp." in f".{name}."
        for p in module.parameters(recurse=False)
    )
    return n_all, n_mlp


def labels_for(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """HF labels: the inputs themselves, -100 on padding (the model shifts internally)."""
    return batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)


def lm_loss(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, reduction: str = "mean"
) -> tuple[torch.Tensor, int]:
    """Next-token cross-entropy over non-pad targets; returns (loss, number of predicted tokens).

    Equal to ``model(..., labels=labels_for(batch)).loss`` (mean reduction), only cheaper on CPU:
    right padding beyond the longest sequence of the batch is cut off (a causal model's earlier
    positions never see it), and the LM head (d x vocab, the largest matmul of a small model) runs
    only on the positions whose target counts.
    """
    width = int(attention_mask.sum(dim=1).max())
    input_ids, attention_mask = input_ids[:, :width], attention_mask[:, :width]
    hidden = model.base_model(
        input_ids=input_ids, attention_mask=attention_mask
    ).last_hidden_state  # (B, T, d)
    keep = attention_mask[:, 1:].bool()  # (B, T-1): position t predicts token t+1
    logits = model.get_output_embeddings()(hidden[:, :-1][keep])  # (n, V)
    targets = input_ids[:, 1:][keep]  # (n,)
    loss = nn.functional.cross_entropy(logits.float(), targets, reduction=reduction)
    return loss, int(targets.numel())


@torch.no_grad()
def heldout_loss(
    model: nn.Module, tensors: dict[str, torch.Tensor], batch_size: int = 64, device="cpu"
) -> float:
    """Mean cross-entropy per predicted non-pad token, summed over all sequences before dividing."""
    if len(tensors["input_ids"]) == 0:
        return float("nan")
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(tensors["input_ids"]), batch_size):
        ids = tensors["input_ids"][start : start + batch_size].to(device)
        mask = tensors["attention_mask"][start : start + batch_size].to(device)
        loss, n = lm_loss(model, ids, mask, reduction="sum")
        total += loss.item()
        count += n
    model.train(was_training)
    return total / max(count, 1)


def lr_at(step: int, total: int, recipe: TrainSpec) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``lr * min_lr_ratio`` at the last step."""
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, total - recipe.warmup_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    return recipe.lr * (recipe.min_lr_ratio + (1.0 - recipe.min_lr_ratio) * cosine)


def make_optimizer(model: nn.Module, recipe: TrainSpec) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (embeddings and linears), not on norms or biases."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": recipe.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # foreach=False: one kernel per tensor, identical results on every run
    return torch.optim.AdamW(
        groups, lr=recipe.lr, betas=(recipe.beta1, recipe.beta2), foreach=False
    )


def total_steps(n_train: int, recipe: TrainSpec) -> int:
    if recipe.max_steps > 0:
        return recipe.max_steps
    steps_per_epoch = math.ceil(n_train / recipe.batch_size)
    return max(1, math.ceil(recipe.epochs * steps_per_epoch))


def pretrain(
    model: nn.Module,
    train: dict[str, torch.Tensor],
    heldout: dict[str, torch.Tensor],
    recipe: TrainSpec,
    seed: int,
    device: torch.device | str = "cpu",
    desc: str = "pretrain",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train ``model`` in place; returns (train_log: step, tokens, loss, lr; eval_log: step, tokens, heldout_loss)."""
    n_train = len(train["input_ids"])
    if n_train == 0:
        raise ValueError("no training sequences")
    steps = total_steps(n_train, recipe)
    optimizer = make_optimizer(model, recipe)
    shuffler = torch.Generator().manual_seed(
        seed
    )  # own generator: the order does not depend on init
    model.to(device).train()

    train_rows, eval_rows = [], []
    tokens_seen = 0
    order = torch.empty(0, dtype=torch.int64)
    evaluate = lambda: heldout_loss(model, heldout, recipe.eval_batch_size, device)  # noqa: E731
    eval_rows.append((0, 0, evaluate()))
    start_time = time.perf_counter()
    bar = tqdm(range(steps), desc=desc, mininterval=5.0, leave=False)
    for step in bar:
        if len(order) == 0:  # new epoch: reshuffle (the epoch's last batch may be short)
            order = torch.randperm(n_train, generator=shuffler)
        idx, order = order[: recipe.batch_size], order[recipe.batch_size :]
        batch = {k: train[k][idx].to(device) for k in ("input_ids", "attention_mask")}

        lr = lr_at(step, steps, recipe)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, _ = lm_loss(
            model, batch["input_ids"], batch["attention_mask"]
        )  # mean over non-pad targets
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if recipe.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip, foreach=False)
        optimizer.step()

        tokens_seen += int(batch["attention_mask"].sum())
        train_rows.append((step + 1, tokens_seen, loss.item(), lr))
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if (recipe.eval_every and (step + 1) % recipe.eval_every == 0) or step + 1 == steps:
            eval_rows.append((step + 1, tokens_seen, evaluate()))
    bar.close()
    model.eval()
    train_log = pd.DataFrame(train_rows, columns=["step", "tokens", "loss", "lr"])
    eval_log = pd.DataFrame(eval_rows, columns=["step", "tokens", "heldout_loss"])
    train_log.attrs["seconds"] = time.perf_counter() - start_time
    return train_log, eval_log


def train_from_scratch(
    spec: ModelSpec,
    recipe: TrainSpec,
    tokenizer,
    train: dict[str, torch.Tensor],
    heldout: dict[str, torch.Tensor],
    seed: int,
    device: torch.device | str = "cpu",
    desc: str = "pretrain",
) -> tuple[nn.Module, pd.DataFrame, pd.DataFrame]:
    """The workflow's pretraining recipe: a fresh model from ``spec`` trained on ``train``.

    The one code path of the ``pretrain`` rule and of the counterfactual retrainings (which pass a
    subset of the rows): seeding, initialisation, dtype and loop are the same, so a retraining on
    every row reproduces the pretrained weights bit for bit. Returns (model, train_log, eval_log).
    """
    seed_everything(seed)
    model = build_model(spec, len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id)
    if recipe.dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    train_log, eval_log = pretrain(model, train, heldout, recipe, seed, device, desc=desc)
    return model, train_log, eval_log


def plot_loss_curve(train_log: pd.DataFrame, eval_log: pd.DataFrame, title: str):
    """Training loss per step (light), its moving average, and held-out loss; returns the Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    if len(train_log):
        ax.plot(
            train_log["step"],
            train_log["loss"],
            color="tab:blue",
            alpha=0.25,
            lw=0.8,
            label="train (per step)",
        )
        window = max(1, len(train_log) // 50)
        smooth = train_log["loss"].rolling(window, min_periods=1).mean()
        ax.plot(
            train_log["step"], smooth, color="tab:blue", lw=1.5, label=f"train ({window}-step mean)"
        )
    held = eval_log.dropna()
    if len(held):
        ax.plot(
            held["step"],
            held["heldout_loss"],
            "o-",
            color="tab:orange",
            ms=3,
            lw=1.2,
            label="held-out",
        )
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


@torch.no_grad()
def fact_recall(
    model: nn.Module, tokenizer, facts: list[dict], device="cpu", batch_size: int = 64
) -> dict[str, float]:
    """Has the model learned the corpus facts? For each fact, prompt + completion under teacher forcing:

    ``fact_accuracy`` = fraction of facts whose every completion token is the model's argmax,
    ``fact_completion_loss`` = mean cross-entropy per completion token (nats).
    Texts are ``prompt + completion`` exactly as stored in world.json (English form).
    """
    pairs = [
        (f["prompt"], f["completion"]) for f in facts if f.get("prompt") and f.get("completion")
    ]
    if not pairs:
        return {}
    was_training = model.training
    model.eval()
    correct, total_loss, total_tokens = 0, 0.0, 0
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        rows = []
        for prompt, completion in chunk:
            p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            full = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
            n_prompt = (
                len(p_ids) if full[: len(p_ids)] == p_ids else len(p_ids) - 1
            )  # merge across the boundary
            rows.append((full, max(1, n_prompt)))
        width = max(len(full) for full, _ in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.int64)
        mask = torch.zeros_like(ids)
        labels = torch.full_like(ids, -100)
        for r, (full, n_prompt) in enumerate(rows):
            ids[r, : len(full)] = torch.tensor(full)
            mask[r, : len(full)] = 1
            labels[r, n_prompt : len(full)] = ids[r, n_prompt : len(full)]
        logits = (
            model(input_ids=ids.to(device), attention_mask=mask.to(device))
            .logits[:, :-1]
            .float()
            .cpu()
        )
        targets = labels[:, 1:]
        losses = nn.functional.cross_entropy(
            logits.transpose(1, 2), targets, ignore_index=-100, reduction="none"
        )
        counted = targets != -100
        hits = (logits.argmax(-1) == targets) | ~counted
        correct += int(hits.all(dim=1).sum())
        total_loss += float(losses[counted].sum())
        total_tokens += int(counted.sum())
    model.train(was_training)
    return {
        "fact_accuracy": round(correct / len(pairs), 4),
        "fact_completion_loss": round(total_loss / max(1, total_tokens), 6),
        "n_facts": len(pairs),
    }
