"""The validation tasks: small models trained in-process, deterministic from a seed, in seconds on CPU.

Every task runs through the engine with its loss hook (``engine_task``, :mod:`llm_influence.influence.tasks`):

* ``regression``: MLP (8 features -> h -> h -> 1, tanh) on synthetic tabular data, MSE loss
  (``RegressionTask``: batches {inputs, targets, ids}; sampled targets y ~ N(f, 1)). Its exact
  damped GNH (JᵀJ) is computed independently of the engine in :mod:`llm_influence.validation.mse`.
* ``classifier``: MLP (8 -> h -> h -> C, tanh) on synthetic multi-class data, cross-entropy
  (``ClassificationTask``: batches {inputs, labels, ids}; sampled labels from the softmax).
  ``ids`` is the example's row: the label draws are seeded by it, so they are the draws of the
  earlier two-position-"LM" wrapping of this MLP, whose one real token was that row.
* ``lm``: a tiny GPT-NeoX trained on sequences of a sparse random Markov chain; queries are held-out
  sequences whose first half is the prompt (labels -100) and second half the completion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from llm_influence.influence.tasks import (
    CAUSAL_LM,
    ClassificationTask,
    RegressionTask,
)
from llm_influence.influence.tasks import Task as LossTask

from .config import ValidationConfig


@dataclass
class Task:
    name: str
    loss: str  # "mse" | "ce"
    model: nn.Module
    modules: list[str]
    train_batches: list[dict[str, torch.Tensor]] = field(default_factory=list)
    query_batches: list[dict[str, torch.Tensor]] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    engine_task: LossTask = CAUSAL_LM  # the engine's loss hook for this model


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_in, hidden),
        nn.Tanh(),
        nn.Linear(hidden, hidden),
        nn.Tanh(),
        nn.Linear(hidden, d_out),
    )


def _train_full_batch(model: nn.Module, loss_fn, steps: int, lr: float = 1e-2) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
    return float(loss.detach())


def _example_batches(
    key: str, x: torch.Tensor, y: torch.Tensor, ids: torch.Tensor, batch_size: int = 64
) -> list[dict[str, torch.Tensor]]:
    """Batches {inputs, <key>: y, ids} of the example tasks (``ids``: the rows, seeding label draws)."""
    return [{"inputs": x[i : i + batch_size], key: y[i : i + batch_size], "ids": ids[i : i + batch_size]}
            for i in range(0, len(x), batch_size)]  # fmt: skip


def make_regression(cfg: ValidationConfig, seed: int) -> Task:
    g = torch.Generator().manual_seed(seed * 7919 + 1)
    n, q, d = cfg.n_train, cfg.n_queries, 8
    x = torch.randn(n + q, d, generator=g, dtype=torch.float64)
    w1, w2 = (
        torch.randn(d, generator=g, dtype=torch.float64),
        torch.randn(d, generator=g, dtype=torch.float64),
    )
    y = (
        torch.sin(x @ w1 / d**0.5)
        + 0.3 * (x @ w2 / d**0.5) ** 2
        + 0.1 * torch.randn(n + q, generator=g, dtype=torch.float64)
    )
    y = (y - y[:n].mean()) / y[:n].std()
    torch.manual_seed(seed)
    model = _mlp(d, cfg.mlp_hidden, 1).double()
    xt, yt = x[:n], y[:n]
    final = _train_full_batch(
        model, lambda: 0.5 * ((model(xt).squeeze(-1) - yt) ** 2).mean(), cfg.mlp_steps
    )
    model.eval()
    with torch.no_grad():
        test = float(0.5 * ((model(x[n:]).squeeze(-1) - y[n:]) ** 2).mean())
    modules = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    rows = torch.arange(n + q)
    return Task("regression", "mse", model, modules, _example_batches("targets", xt, yt, rows[:n]),
                _example_batches("targets", x[n:], y[n:], rows[n:]),
                info={"train_loss": final, "query_loss": test, "n_train": n, "n_queries": q},
                engine_task=RegressionTask())  # fmt: skip


def make_classifier(cfg: ValidationConfig, seed: int, n_classes: int = 4) -> Task:
    g = torch.Generator().manual_seed(seed * 7919 + 2)
    n, q, d = cfg.n_train, cfg.n_queries, 8
    centers = torch.randn(n_classes, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, n_classes, (n + q,), generator=g)
    x = torch.tanh(
        centers[y] + torch.randn(n + q, d, generator=g, dtype=torch.float64)
    )  # overlapping, warped
    flip = (
        torch.rand(n + q, generator=g) < 0.1
    )  # 10% label noise: the fit stays away from zero loss
    y = torch.where(flip, torch.randint(0, n_classes, (n + q,), generator=g), y)
    torch.manual_seed(seed)
    model = _mlp(d, cfg.mlp_hidden, n_classes).double()
    xt, yt = x[:n], y[:n]
    final = _train_full_batch(
        model, lambda: nn.functional.cross_entropy(model(xt), yt), cfg.mlp_steps
    )
    model.eval()
    with torch.no_grad():
        acc = float((model(x[n:]).argmax(-1) == y[n:]).double().mean())
    modules = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    rows = torch.arange(n + q)
    return Task("classifier", "ce", model, modules, _example_batches("labels", xt, yt, rows[:n]),
                _example_batches("labels", x[n:], y[n:], rows[n:]),
                info={"train_loss": final, "query_accuracy": acc, "n_train": n, "n_queries": q, "n_classes": n_classes},
                engine_task=ClassificationTask())  # fmt: skip


def markov_sequences(
    n: int, seq_len: int, vocab: int, seed: int, branching: int = 3
) -> torch.Tensor:
    """[n, seq_len] int64 from a sparse random Markov chain (``branching`` likely successors per token)."""
    g = torch.Generator().manual_seed(seed * 7919 + 3)
    trans = torch.full((vocab, vocab), 0.02)
    for v in range(vocab):
        succ = torch.randperm(vocab, generator=g)[:branching]
        trans[v, succ] += torch.rand(branching, generator=g) + 0.5
    trans = trans / trans.sum(-1, keepdim=True)
    seqs = torch.empty(n, seq_len, dtype=torch.long)
    seqs[:, 0] = torch.randint(0, vocab, (n,), generator=g)
    for t in range(1, seq_len):
        seqs[:, t] = torch.multinomial(trans[seqs[:, t - 1]], 1, generator=g).squeeze(-1)
    return seqs


def tiny_neox(cfg: ValidationConfig, seed: int, hidden: int | None = None,
              intermediate: int | None = None, layers: int | None = None) -> nn.Module:  # fmt: skip
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    conf = GPTNeoXConfig(vocab_size=cfg.lm_vocab, hidden_size=hidden or cfg.lm_hidden, intermediate_size=intermediate or cfg.lm_intermediate,
                         num_hidden_layers=layers or cfg.lm_layers, num_attention_heads=4, max_position_embeddings=max(16, cfg.lm_seq_len),
                         hidden_act="gelu", use_parallel_residual=True, tie_word_embeddings=False,
                         attn_implementation="eager", bos_token_id=0, eos_token_id=0, pad_token_id=0)  # fmt: skip
    return GPTNeoXForCausalLM(conf)


def tiny_llama(
    cfg: ValidationConfig, seed: int, hidden: int, intermediate: int, layers: int
) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    conf = LlamaConfig(vocab_size=cfg.lm_vocab, hidden_size=hidden, intermediate_size=intermediate,
                       num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                       max_position_embeddings=max(16, cfg.lm_seq_len), tie_word_embeddings=False,
                       attn_implementation="eager", bos_token_id=0, eos_token_id=0, pad_token_id=0)  # fmt: skip
    return LlamaForCausalLM(conf)


WIDE_LAYERS = (
    2  # the wide tasks: 2-layer GPT-NeoX and Llama, hidden wide_hidden, MLP wide_intermediate
)


def _lm_task(
    name: str, model: nn.Module, modules: list[str], cfg: ValidationConfig, seed: int
) -> Task:
    """Train ``model`` on the Markov language (Adam, batch 32), score its first lm_score_sequences."""
    n, q, T = cfg.lm_pretrain_sequences, cfg.n_queries, cfg.lm_seq_len
    seqs = markov_sequences(n + q, T, cfg.lm_vocab, seed)
    train, queries = seqs[:n], seqs[n:]
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    loss = torch.tensor(0.0)
    for _ in range(cfg.lm_steps):
        idx = torch.randint(0, n, (32,), generator=g)
        opt.zero_grad()
        loss = model(input_ids=train[idx], labels=train[idx]).loss
        loss.backward()
        opt.step()
    model = model.double().eval()
    with torch.no_grad():
        held = float(model(input_ids=queries, labels=queries).loss)
    k = cfg.lm_score_sequences
    scored = train[:k]
    ones = torch.ones_like(scored)
    train_b = [
        {
            "input_ids": scored[i : i + 16],
            "attention_mask": ones[i : i + 16],
            "labels": scored[i : i + 16].clone(),
        }
        for i in range(0, k, 16)
    ]
    qlab = queries.clone()
    qlab[:, : T // 2] = -100  # prompt = first half
    query_b = [{"input_ids": queries, "attention_mask": torch.ones_like(queries), "labels": qlab}]
    return Task(name, "ce", model, modules, train_b, query_b,
                info={"train_loss": float(loss.detach()), "query_loss": held, "n_train": k, "n_queries": q,
                      "vocab": cfg.lm_vocab, "seq_len": T})  # fmt: skip


def _neox_modules(layers: int) -> list[str]:
    return [
        f"gpt_neox.layers.{i}.mlp.{m}"
        for i in range(layers)
        for m in ("dense_h_to_4h", "dense_4h_to_h")
    ]


def make_lm(cfg: ValidationConfig, seed: int) -> Task:
    return _lm_task("lm", tiny_neox(cfg, seed), _neox_modules(cfg.lm_layers), cfg, seed)


def make_neox_wide(cfg: ValidationConfig, seed: int) -> Task:
    model = tiny_neox(cfg, seed, cfg.wide_hidden, cfg.wide_intermediate, WIDE_LAYERS)
    return _lm_task("neox_wide", model, _neox_modules(WIDE_LAYERS), cfg, seed)


def make_llama_wide(cfg: ValidationConfig, seed: int) -> Task:
    model = tiny_llama(cfg, seed, cfg.wide_hidden, cfg.wide_intermediate, WIDE_LAYERS)
    modules = [
        f"model.layers.{i}.mlp.{m}"
        for i in range(WIDE_LAYERS)
        for m in ("gate_proj", "up_proj", "down_proj")
    ]
    return _lm_task("llama_wide", model, modules, cfg, seed)


BUILDERS = {"regression": make_regression, "classifier": make_classifier, "lm": make_lm,
            "neox_wide": make_neox_wide, "llama_wide": make_llama_wide}  # fmt: skip


def build_task(name: str, cfg: ValidationConfig, seed: int) -> Task:
    return BUILDERS[name](cfg, seed)
