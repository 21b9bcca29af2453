"""Stage entry points of the rule group ``tokenizer`` (rules tokenizer, tokenize) and of ``pretrain``.

    train_tokenizer(ctx)  corpus dir            -> data/tokenizer/
    tokenize_corpus(ctx)  corpus + tokenizer    -> data/tokenized/
    pretrain_model(ctx)   tokenized + tokenizer -> data/models/{model}/   (corpus optional: fact recall)

Settings: ``config['tokenizer']`` (both tokenizer rules) and ``config['pretrain']``; see
``models/spec.py`` and docs/models.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from llm_influence.artifacts import tokenized as A
from llm_influence.artifacts.corpus import WORLD, read_documents, read_manifest, read_world
from llm_influence.models import tokenizer as tok
from llm_influence.models.loading import load_model, load_tokenizer
from llm_influence.models.spec import TokenizerSpec, TrainSpec
from llm_influence.models.train import (
    count_params,
    fact_recall,
    heldout_loss,
    plot_loss_curve,
    train_from_scratch,
)
from llm_influence.utils.io import save_tensors, write_json, write_text
from llm_influence.utils.seeding import resolve_device, seed_everything
from llm_influence.workflow.context import StageContext


def train_tokenizer(ctx: StageContext) -> dict[str, Any]:
    spec = TokenizerSpec.from_config(ctx.section("tokenizer"))
    out = Path(ctx.output["tokenizer"])
    if spec.pretrained:
        tokenizer = load_tokenizer(spec.pretrained)
        n_docs = 0
        ctx.logger.info("tokenizer: using the tokenizer of %s", spec.pretrained)
    else:
        documents = read_documents(ctx.input["corpus"], columns=["doc_id", "text"])
        seed_everything(ctx.seed)
        tokenizer = tok.train_bpe(documents["text"].tolist(), spec)
        n_docs = len(documents)
        ctx.logger.info(
            "tokenizer: trained byte-level BPE (%d tokens) on %d documents", len(tokenizer), n_docs
        )
    tokenizer.save_pretrained(str(out))
    meta = {
        "source": "pretrained" if spec.pretrained else "bpe",
        "pretrained": spec.pretrained,
        "vocab_size": len(tokenizer),
        "eos_token": tokenizer.eos_token,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token": tokenizer.pad_token,
        "pad_token_id": tokenizer.pad_token_id,
        "min_frequency": None if spec.pretrained else spec.min_frequency,
        "n_documents": n_docs,
    }
    write_json(out / A.TOKENIZER_META, meta)
    return {"vocab_size": meta["vocab_size"], "source": meta["source"]}


def tokenize_corpus(ctx: StageContext) -> dict[str, Any]:
    spec = TokenizerSpec.from_config(ctx.section("tokenizer"))
    out = Path(ctx.output["tokenized"])
    documents = read_documents(ctx.input["corpus"], columns=["doc_id", "text"])
    manifest = read_manifest(ctx.input["corpus"], missing_ok=True)
    tokenizer = load_tokenizer(ctx.input["tokenizer"])

    heldout_ids = tok.heldout_split(documents, manifest, spec, ctx.seed)
    asked = int(round(spec.heldout_fraction * len(documents)))
    if len(heldout_ids) < asked:
        ctx.logger.warning(
            "only %d documents eligible for held-out (asked %d)", len(heldout_ids), asked
        )
    is_heldout = documents["doc_id"].isin(heldout_ids).to_numpy()

    encoded = tok.encode_documents(tokenizer, documents["text"].tolist())
    pad_id = tokenizer.pad_token_id
    splits, n_truncated = {}, 0
    for name, rows in (("train", ~is_heldout), ("heldout", is_heldout)):
        docs = [ids for ids, keep in zip(encoded, rows) if keep]
        doc_ids = documents["doc_id"].to_numpy()[rows]
        if spec.packing:
            splits[name] = tok.pack_sequences(docs, doc_ids, spec.seq_len, pad_id)
        else:
            splits[name], truncated = tok.pad_sequences(docs, doc_ids, spec.seq_len, pad_id)
            n_truncated += truncated
        save_tensors(
            out / A.SPLITS[name],
            splits[name],
            {"seq_len": spec.seq_len, "packing": spec.packing},
        )

    lengths = [len(ids) for ids in encoded]
    meta = {
        "seq_len": spec.seq_len,
        "pad_token_id": pad_id,
        "eos_token_id": tokenizer.eos_token_id,
        "n_train": len(splits["train"]["input_ids"]),
        "n_heldout": len(splits["heldout"]["input_ids"]),
        "n_documents": len(documents),
        "n_heldout_documents": int(is_heldout.sum()),
        "n_truncated": n_truncated,
        "packing": spec.packing,
        "heldout_categories": spec.heldout_categories,
        "doc_tokens_mean": round(sum(lengths) / max(1, len(lengths)), 3),
        "doc_tokens_max": max(lengths, default=0),
        "train_tokens": int(splits["train"]["attention_mask"].sum()),
    }
    write_json(out / A.TOKENIZED_META, meta)
    if n_truncated:
        ctx.logger.warning(
            "%d of %d documents truncated to seq_len=%d", n_truncated, len(documents), spec.seq_len
        )
    return {k: meta[k] for k in ("n_train", "n_heldout", "n_truncated", "train_tokens")}


def _use_pretrained(name, spec, recipe, tokenizer, train, heldout, device):
    """A pretrained model, not trained further: (model, train_log, eval_log, initial loss,
    final train loss on 256 training sequences, seconds)."""
    model = load_model(
        spec.pretrained, device, recipe.dtype, trust_remote_code=spec.trust_remote_code
    )
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(
            f"pretrain.models.{name}: tokenizer has {len(tokenizer)} tokens but {spec.pretrained} only "
            f"{model.config.vocab_size} embeddings; set tokenizer.pretrained to the same model"
        )
    initial = heldout_loss(model, heldout, recipe.eval_batch_size, device)
    subset = {k: v[:256] for k, v in train.items()}
    train_log = pd.DataFrame(columns=["step", "tokens", "loss", "lr"])
    eval_log = pd.DataFrame([(0, 0, initial)], columns=["step", "tokens", "heldout_loss"])
    final_train = heldout_loss(model, subset, recipe.eval_batch_size, device)
    return model, train_log, eval_log, initial, final_train, 0.0


def _train(name, spec, recipe, tokenizer, train, heldout, meta, seed, device):
    """A model trained from scratch: the same tuple as :func:`_use_pretrained` (final train loss
    = mean over the last 5 % of steps)."""
    if meta["seq_len"] > spec.max_position:
        raise ValueError(
            f"pretrain.models.{name}.max_position={spec.max_position} is shorter than tokenizer.seq_len={meta['seq_len']}"
        )
    model, train_log, eval_log = train_from_scratch(
        spec, recipe, tokenizer, train, heldout, seed, device, desc=f"pretrain {name}"
    )
    initial = float(eval_log["heldout_loss"].iloc[0])
    final_train = float(train_log["loss"].tail(max(1, len(train_log) // 20)).mean())
    return model, train_log, eval_log, initial, final_train, train_log.attrs["seconds"]


def _write_model(out: Path, model, tokenizer, train_log, eval_log, metrics, title: str) -> None:
    """The model dir: weights + tokenizer, the loss logs, metrics.json and the loss curve."""
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    write_text(
        out / A.TRAIN_LOG,
        train_log.to_csv(index=False, float_format="%.8g", lineterminator="\n"),
    )
    write_text(
        out / A.EVAL_LOG, eval_log.to_csv(index=False, float_format="%.8g", lineterminator="\n")
    )
    write_json(out / A.MODEL_METRICS, metrics)
    fig = plot_loss_curve(train_log, eval_log, title)
    fig.savefig(out / A.LOSS_CURVE, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)


def pretrain_model(ctx: StageContext) -> dict[str, Any]:
    name = ctx.wildcards["model"]
    recipe = TrainSpec.from_config(ctx.section("pretrain"))
    spec = recipe.model(name)
    out = Path(ctx.output["model"])
    device = resolve_device(ctx.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(ctx.threads)))

    tokenized = Path(ctx.input["tokenized"])
    train = A.read_split(tokenized, "train")
    heldout = A.read_split(tokenized, "heldout")
    meta = A.read_tokenized_meta(tokenized)
    tokenizer = load_tokenizer(ctx.input["tokenizer"])

    seed_everything(ctx.seed)
    if spec.pretrained:
        run = _use_pretrained(name, spec, recipe, tokenizer, train, heldout, device)
    else:
        run = _train(name, spec, recipe, tokenizer, train, heldout, meta, ctx.seed, device)
    model, train_log, eval_log, initial, final_train, seconds = run

    final_heldout = heldout_loss(model, heldout, recipe.eval_batch_size, device)
    n_params, n_tracked = count_params(model)
    metrics = {
        "heldout_loss": round(final_heldout, 6),
        "heldout_ppl": round(float(torch.tensor(final_heldout).exp()), 4),
        "final_train_loss": round(final_train, 6),
        "initial_loss": round(initial, 6),
        "n_params": n_params,
        "n_tracked_params": n_tracked,
        "steps": len(train_log),
        "train_tokens": int(train_log["tokens"].iloc[-1]) if len(train_log) else 0,
        "source": "pretrained" if spec.pretrained else "scratch",
    }
    corpus = ctx.input.get("corpus")
    if corpus and (Path(corpus) / WORLD).is_file():
        facts = read_world(corpus).get("facts", [])
        metrics.update(fact_recall(model, tokenizer, facts, device))

    title = f"Pretraining loss: {name} ({_describe(spec)})"
    _write_model(out, model, tokenizer, train_log, eval_log, metrics, title)
    ctx.logger.info("pretrain %s: %s", name, json.dumps(metrics, sort_keys=True))
    steps = max(1, len(train_log))
    return {
        **metrics,
        "train_seconds": round(seconds, 2),
        "seconds_per_step": round(seconds / steps, 4),
    }


def _describe(spec) -> str:
    if spec.pretrained:
        return spec.pretrained
    return f"{spec.arch}, d={spec.hidden_size}, L={spec.num_layers}"
