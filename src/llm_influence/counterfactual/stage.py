"""Entry points of the counterfactual retrainings (one Snakemake job per subset / leave-out set).

    retrain_subset(ctx)    tokenized, tokenizer, queries             -> results/counterfactual/{model}/subsets/{subset}/
    retrain_leaveout(ctx)  + model, scores table, tfidf (per method) -> results/counterfactual/{model}/leaveout/{method}/

Each retrains ``pretrain.models.{model}`` with the pretraining recipe and seed
(``models.train.train_from_scratch``, the pretrain rule's own code path) on the kept rows only, and
writes every query's log p(completion | prompt) and the held-out loss; weights only with
``counterfactual.keep_models``. Settings: ``config['pretrain']`` and ``config['counterfactual']``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from llm_influence.artifacts.counterfactual import DOCUMENTS, MEASUREMENTS, METRICS
from llm_influence.counterfactual.measure import completion_logprobs
from llm_influence.counterfactual.spec import (
    LEAVEOUT_KEYS,
    SUBSET_KEYS,
    TFIDF,
    job_settings,
    norm_tag,
)
from llm_influence.counterfactual.subsets import (
    RANDOM_CONTROL,
    keep_rows,
    random_documents,
    subset_documents,
    top_documents,
)
from llm_influence.models.loading import load_model, load_tokenizer
from llm_influence.models.spec import TrainSpec
from llm_influence.models.train import train_from_scratch
from llm_influence.utils.io import load_tensors, write_json, write_parquet
from llm_influence.utils.seeding import resolve_device
from llm_influence.workflow.context import StageContext


def _setup(ctx: StageContext, keys: tuple[str, ...]):
    name = ctx.wildcards["model"]
    spec_cf = job_settings(dict(ctx.section("counterfactual")), keys)
    recipe = TrainSpec.from_config(ctx.section("pretrain"))
    spec = recipe.model(name)
    if spec.pretrained:
        raise ValueError(
            f"counterfactual.models: {name!r} is pretrained ({spec.pretrained}); nothing to retrain"
        )
    device = resolve_device(ctx.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, int(ctx.threads)))
    tokenized = Path(ctx.input["tokenized"])
    train, _ = load_tensors(tokenized / "train.safetensors")
    heldout, _ = load_tensors(tokenized / "heldout.safetensors")
    queries_dir = Path(ctx.input["queries"])
    queries, _ = load_tensors(queries_dir / "queries.safetensors")
    table = pd.read_parquet(queries_dir / "queries.parquet", columns=["name", "tags"])
    return name, spec_cf, recipe, spec, device, train, heldout, queries, table


def _retrain(ctx, spec, recipe, tokenizer, train, heldout, queries, seed, device, desc):
    model, train_log, eval_log = train_from_scratch(
        spec, recipe, tokenizer, train, heldout, seed, device, desc=desc
    )
    logp = completion_logprobs(model, queries, device=device).numpy()
    run = {
        "seed": seed,
        "heldout_loss": round(float(eval_log["heldout_loss"].iloc[-1]), 6),
        "steps": len(train_log),
        "train_seconds": round(train_log.attrs["seconds"], 2),
    }
    return model, logp, run


def retrain_subset(ctx: StageContext) -> dict[str, Any]:
    """Subset ``subset`` (a seeded α-fraction of the documents), retrained ``seeds`` times."""
    name, cf, recipe, spec, device, train, heldout, queries, table = _setup(ctx, SUBSET_KEYS)
    subset = int(ctx.wildcards["subset"])
    kept = subset_documents(train["doc_id"].numpy(), cf["alpha"], ctx.seed, subset)
    rows = keep_rows(train, kept)
    tokenizer = load_tokenizer(ctx.input["tokenizer"])
    out = Path(ctx.output["retrain"])
    frames, runs = [], []
    for s in range(cf["seeds"]):
        seed = ctx.seed + s
        model, logp, run = _retrain(ctx, spec, recipe, tokenizer, rows, heldout, queries, seed,
                                    device, f"retrain {name} subset {subset} seed {seed}")  # fmt: skip
        frames.append(pd.DataFrame({"query": table["name"], "seed": seed, "logp": logp}))
        runs.append(run)
        if cf["keep_models"]:
            model.save_pretrained(str(out / f"model_seed{seed}"))
    write_parquet(out / MEASUREMENTS, pd.concat(frames, ignore_index=True))
    write_parquet(out / DOCUMENTS, pd.DataFrame({"doc_id": kept}))
    metrics = {
        "model": name,
        "subset": subset,
        "alpha": cf["alpha"],
        "n_documents": int(len(np.unique(train["doc_id"].numpy()))),
        "n_kept_documents": int(len(kept)),
        "n_kept_rows": int(len(rows["doc_id"])),
        "seeds": [r["seed"] for r in runs],
        "heldout_loss": [r["heldout_loss"] for r in runs],
        "steps": [r["steps"] for r in runs],
    }
    write_json(out / METRICS, metrics)
    ctx.logger.info("retrain %s subset %d: %s", name, subset, metrics)
    return {**metrics, "train_seconds": [r["train_seconds"] for r in runs]}


def removal_set(ctx: StageContext, method: str, cf: dict[str, Any], doc_id: np.ndarray,
                names: list[str], fact_rows: list[int]) -> np.ndarray:  # fmt: skip
    """The documents the ``method`` run removes: k·Q_fact of them (see ``top_documents``)."""
    size = cf["remove_k"] * len(fact_rows)
    if method == RANDOM_CONTROL:
        return random_documents(doc_id, size, ctx.seed)
    if method == TFIDF:  # BM25 from results/tfidf on the training rows' grid (no score table)
        from llm_influence.counterfactual.estimators import tfidf_scores

        if "tfidf" not in ctx.input:
            raise ValueError("leave-out method 'tfidf' needs the input 'tfidf' (results/tfidf)")
        scores = tfidf_scores(ctx.input["tfidf"], list(names), doc_id)
        return top_documents(scores, doc_id, fact_rows, cf["remove_k"], size)
    from llm_influence.counterfactual.estimators import load_estimators

    if "scores" not in ctx.input:
        raise ValueError(f"leave-out method {method!r} needs the input 'scores' (a score table)")

    est = load_estimators(ctx.input["scores"])
    if method not in est.scores:
        raise ValueError(
            f"leave-out method {method!r}: the score table {ctx.input['scores']} has "
            f"{sorted(est.scores)}"
        )
    if est.queries != list(names) or not np.array_equal(est.doc_id, doc_id):
        raise ValueError(
            f"score table {ctx.input['scores']} does not match the queries/training set"
        )
    return top_documents(est.scores[method], doc_id, fact_rows, cf["remove_k"], size)


def retrain_leaveout(ctx: StageContext) -> dict[str, Any]:
    """Remove ``method``'s top documents of the fact queries (or a random set), retrain once with
    the pretraining seed, and compare each query's log p with the pretrained model's."""
    name, cf, recipe, spec, device, train, heldout, queries, table = _setup(ctx, LEAVEOUT_KEYS)
    method = ctx.wildcards["method"]
    names = [str(n) for n in table["name"]]
    fact_rows = [i for i, tags in enumerate(table["tags"])
                 if norm_tag(cf["leaveout_tag"]) in {norm_tag(t) for t in tags}]  # fmt: skip
    if not fact_rows:
        raise ValueError(f"counterfactual.leaveout_tag: no query is tagged {cf['leaveout_tag']!r}")
    doc_id = train["doc_id"].numpy()
    removed = removal_set(ctx, method, cf, doc_id, names, fact_rows)
    kept = np.setdiff1d(np.unique(doc_id), removed)
    rows = keep_rows(train, kept)
    tokenizer = load_tokenizer(ctx.input["tokenizer"])
    full = completion_logprobs(
        load_model(ctx.input["model"], device=device), queries, device=device
    )
    model, logp, run = _retrain(ctx, spec, recipe, tokenizer, rows, heldout, queries, ctx.seed,
                                device, f"retrain {name} without {method} top-{cf['remove_k']}")  # fmt: skip
    out = Path(ctx.output["retrain"])
    frame = pd.DataFrame({"query": names, "leaveout": [i in fact_rows for i in range(len(names))],
                          "logp_full": full.numpy(), "logp": logp})  # fmt: skip
    frame["delta"] = frame["logp"] - frame["logp_full"]
    write_parquet(out / MEASUREMENTS, frame)
    write_parquet(out / DOCUMENTS, pd.DataFrame({"doc_id": removed}))
    if cf["keep_models"]:
        model.save_pretrained(str(out / "model"))
    metrics = {
        "model": name,
        "method": method,
        "remove_k": cf["remove_k"],
        "n_leaveout_queries": len(fact_rows),
        "n_removed_documents": int(len(removed)),
        "n_kept_rows": int(len(rows["doc_id"])),
        "heldout_loss": run["heldout_loss"],
        "steps": run["steps"],
        "mean_delta_logp": round(float(frame.loc[frame["leaveout"], "delta"].mean()), 6),
    }
    write_json(out / METRICS, metrics)
    ctx.logger.info("leave-out %s %s: %s", name, method, metrics)
    return {**metrics, "train_seconds": run["train_seconds"]}
