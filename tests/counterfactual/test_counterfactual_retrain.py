"""The retraining jobs: same code path as pretraining, the mask really removes documents from what
the trainer consumes, deterministic, and the measurement equals an independent computation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from attribution_fixtures import run

import llm_influence.models.train as train_mod
from llm_influence.artifacts.scores import write_score_table
from llm_influence.counterfactual.measure import completion_logprobs
from llm_influence.counterfactual.subsets import subset_documents
from llm_influence.models.loading import load_model, load_tokenizer
from llm_influence.models.spec import TrainSpec
from llm_influence.models.train import train_from_scratch
from llm_influence.utils.io import load_tensors

SUBSET = "llm_influence.counterfactual.stage:retrain_subset"
LEAVEOUT = "llm_influence.counterfactual.stage:retrain_leaveout"


def _inputs(a: dict) -> dict:
    return {k: a[k] for k in ("tokenized", "tokenizer", "queries")}


def _record_batches(monkeypatch) -> list[torch.Tensor]:
    """Every batch of input ids the training loop feeds to the loss (the data it consumed)."""
    seen: list[torch.Tensor] = []
    original = train_mod.lm_loss

    def recording(model, input_ids, attention_mask, reduction="mean"):
        if torch.is_grad_enabled():  # training steps, not the held-out evaluation
            seen.append(input_ids.clone())
        return original(model, input_ids, attention_mask, reduction)

    monkeypatch.setattr(train_mod, "lm_loss", recording)
    return seen


def _rows_of(batches: list[torch.Tensor], width: int) -> set[bytes]:
    rows = set()
    for b in batches:
        padded = torch.nn.functional.pad(b, (0, width - b.shape[1]), value=1)
        rows.update(r.numpy().tobytes() for r in padded)
    return rows


def test_full_mask_reproduces_the_pretrained_model(cf_artifacts) -> None:
    a, config = cf_artifacts, cf_artifacts["config"]
    recipe = TrainSpec.from_config(config["pretrain"])
    train, _ = load_tensors(a["tokenized"] / "train.safetensors")
    heldout, _ = load_tensors(a["tokenized"] / "heldout.safetensors")
    model, _, _ = train_from_scratch(recipe.model("tiny"), recipe, load_tokenizer(a["tokenizer"]),
                                     train, heldout, config["seed"])  # fmt: skip
    pretrained = load_model(a["model"])
    for (name, p), q in zip(model.state_dict().items(), pretrained.state_dict().values()):
        assert torch.equal(p, q), name


def test_subset_retraining_is_deterministic_and_consumes_only_kept_documents(
    cf_artifacts, tmp_path, monkeypatch
) -> None:
    a, config = cf_artifacts, cf_artifacts["config"]
    seen = _record_batches(monkeypatch)
    outs = [tmp_path / "run0", tmp_path / "run1"]
    for out in outs:
        run(SUBSET, config, _inputs(a), {"retrain": out}, {"model": "tiny", "subset": "1"})
    first = pd.read_parquet(outs[0] / "measurements.parquet")
    pd.testing.assert_frame_equal(first, pd.read_parquet(outs[1] / "measurements.parquet"))
    assert (outs[0] / "metrics.json").read_text() == (outs[1] / "metrics.json").read_text()
    assert not list(outs[0].glob("model*"))  # no weights unless keep_models

    train, _ = load_tensors(a["tokenized"] / "train.safetensors")
    kept = pd.read_parquet(outs[0] / "documents.parquet")["doc_id"].to_numpy()
    np.testing.assert_array_equal(kept, subset_documents(train["doc_id"].numpy(), 0.5, 0, 1))
    width = train["input_ids"].shape[1]
    consumed = _rows_of(seen[: len(seen) // 2], width)  # the first of the two runs
    is_kept = np.isin(train["doc_id"].numpy(), kept)
    kept_rows = {r.numpy().tobytes() for r in train["input_ids"][is_kept]}
    dropped_rows = {r.numpy().tobytes() for r in train["input_ids"][~is_kept]} - kept_rows
    assert consumed <= kept_rows and not consumed & dropped_rows
    metrics = json.loads((outs[0] / "metrics.json").read_text())
    assert metrics["n_kept_documents"] == len(kept) == round(0.5 * metrics["n_documents"])


def test_leaveout_drops_every_document_of_a_fact(cf_artifacts, tmp_path, monkeypatch) -> None:
    """A score table that ranks one fact's documents first for every fact query: the retraining
    never sees them (checked on the batches the trainer consumed), and log p is compared with the
    pretrained model's."""
    a, config = cf_artifacts, dict(cf_artifacts["config"])
    train, _ = load_tensors(a["tokenized"] / "train.safetensors")
    manifest = pd.read_parquet(a["corpus"] / "manifest.parquet")
    queries = pd.read_parquet(a["queries"] / "queries.parquet")
    fact = queries.loc[queries["fact_id"].notna(), "fact_id"].iloc[0]
    fact_docs = manifest.loc[[fact in list(f) for f in manifest["fact_ids"]], "doc_id"].to_numpy()
    fact_docs = fact_docs[np.isin(fact_docs, train["doc_id"].numpy())]
    n_fact_queries = sum("factual" in list(t) for t in queries["tags"])
    k = -(
        -len(fact_docs) // n_fact_queries
    )  # the removal (k per query) covers the fact's documents
    config["counterfactual"] = {**config["counterfactual"], "remove_k": k}
    is_fact = np.isin(train["doc_id"].numpy(), fact_docs)
    total = np.tile(np.where(is_fact, 1.0, 0.0), (len(queries), 1)).astype(np.float32)
    table = tmp_path / "table"
    write_score_table(table, {"total": torch.from_numpy(total), "graddot": torch.from_numpy(-total),
                              "layers": torch.from_numpy(total[..., None].copy()), "doc_id": train["doc_id"]},
                      queries=list(queries["name"]), modules=["m"],
                      estimators=[("total", "ekfac"), ("graddot", "graddot")])  # fmt: skip

    seen = _record_batches(monkeypatch)
    out = tmp_path / "leaveout"
    run(LEAVEOUT, config, {**_inputs(a), "model": a["model"], "scores": table}, {"retrain": out},
        {"model": "tiny", "method": "ekfac"})  # fmt: skip
    removed = pd.read_parquet(out / "documents.parquet")["doc_id"].to_numpy()
    assert np.isin(fact_docs, removed).all() and len(removed) == k * n_fact_queries
    consumed = _rows_of(seen, train["input_ids"].shape[1])
    fact_rows = {r.numpy().tobytes() for r in train["input_ids"][is_fact]}
    assert consumed and not consumed & fact_rows
    frame = pd.read_parquet(out / "measurements.parquet")
    full = completion_logprobs(
        load_model(a["model"]), load_tensors(a["queries"] / "queries.safetensors")[0]
    )
    np.testing.assert_allclose(frame["logp_full"], full.numpy())
    np.testing.assert_allclose(frame["delta"], frame["logp"] - frame["logp_full"])


def test_completion_logprob_equals_the_hf_loss(cf_artifacts) -> None:
    model = load_model(cf_artifacts["model"])
    q, _ = load_tensors(cf_artifacts["queries"] / "queries.safetensors")
    ours = completion_logprobs(model, q)
    for i in range(3):
        n = int((q["labels"][i, 1:] != -100).sum())
        with torch.no_grad():
            loss = model(input_ids=q["input_ids"][i : i + 1], attention_mask=q["attention_mask"][i : i + 1],
                         labels=q["labels"][i : i + 1]).loss  # fmt: skip
        assert float(ours[i]) == pytest.approx(-float(loss) * n, rel=1e-5)
