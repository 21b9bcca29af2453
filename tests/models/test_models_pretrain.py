"""Pretraining and loading: loss goes down, held-out loss reported, determinism, pretrained path, errors."""

from __future__ import annotations

import hashlib

import pytest
import torch
from models_fixtures import CAPITALS, COUNTRIES, ctx_for, make_config

from llm_influence.models.loading import load_model, load_tokenizer
from llm_influence.models.spec import ModelSpec, TrainSpec
from llm_influence.models.stage import pretrain_model, tokenize_corpus, train_tokenizer
from llm_influence.models.train import build_model, count_params, lr_at
from llm_influence.utils.io import read_json, write_json


def _pretrain(tmp_path, tokenized_dir, tokenizer_dir, model="tiny", corpus=None, **pretrain):
    out = tmp_path / model
    inputs = {"tokenized": tokenized_dir, "tokenizer": tokenizer_dir}
    if corpus is not None:
        inputs["corpus"] = corpus
    ctx = ctx_for(
        "pretrain",
        make_config(pretrain=pretrain),
        inputs,
        {"model": out},
        wildcards={"model": model},
    )
    return out, pretrain_model(ctx)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tokenized_dir, tokenizer_dir, corpus_dir):
    return _pretrain(
        tmp_path_factory.mktemp("pretrain"), tokenized_dir, tokenizer_dir, corpus=corpus_dir
    )


def test_loss_goes_down_and_outputs(trained):
    out, result = trained
    metrics = read_json(out / "metrics.json")
    assert metrics["final_train_loss"] < metrics["initial_loss"] - 0.5
    assert metrics["heldout_loss"] < metrics["initial_loss"] - 0.5
    assert metrics["heldout_ppl"] == pytest.approx(
        torch.tensor(metrics["heldout_loss"]).exp().item(), rel=1e-3
    )
    assert metrics["steps"] == 30 and result["seconds_per_step"] > 0
    log = (out / "train_log.csv").read_text().splitlines()
    assert log[0] == "step,tokens,loss,lr" and len(log) == 31
    assert (out / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()
    model = load_model(out)
    n_params, n_tracked = count_params(model)
    assert (metrics["n_params"], metrics["n_tracked_params"]) == (n_params, n_tracked)
    # the MLP linears of one GPT-NeoX layer: 16 -> 64 -> 16 with biases
    assert n_tracked == (16 * 64 + 64) + (64 * 16 + 16)
    assert 0.0 <= metrics["fact_accuracy"] <= 1.0 and metrics["n_facts"] == len(COUNTRIES)


def test_same_seed_gives_identical_weights(tmp_path, trained, tokenized_dir, tokenizer_dir):
    out, _ = trained
    again, _ = _pretrain(tmp_path, tokenized_dir, tokenizer_dir, corpus=None)
    for name in ("model.safetensors", "train_log.csv", "loss_curve.png"):
        assert (
            hashlib.sha256((out / name).read_bytes()).digest()
            == hashlib.sha256((again / name).read_bytes()).digest()
        ), name


def test_llama_arch_trains(tmp_path, tokenized_dir, tokenizer_dir):
    out, _ = _pretrain(tmp_path, tokenized_dir, tokenizer_dir, model="tinyllama", max_steps=10)
    metrics = read_json(out / "metrics.json")
    assert metrics["heldout_loss"] < metrics["initial_loss"]
    assert load_model(out).config.model_type == "llama"
    assert metrics["n_tracked_params"] == 3 * 16 * 32  # gate, up, down; no biases


def test_pretrained_path_through_same_code(tmp_path, tokenized_dir, tokenizer_dir, corpus_dir):
    """A tiny GPT-NeoX saved locally stands in for a hub model (e.g. EleutherAI/pythia-70m)."""
    tokenizer = load_tokenizer(tokenizer_dir)
    torch.manual_seed(1)
    spec = ModelSpec(
        hidden_size=16, num_layers=1, num_heads=2, intermediate_size=64, max_position=32
    )
    local = tmp_path / "hub" / "tiny-pythia"
    build_model(
        spec, len(tokenizer), tokenizer.eos_token_id, tokenizer.pad_token_id
    ).save_pretrained(local)
    tokenizer.save_pretrained(local)

    # tokenizer stage with `tokenizer.pretrained` takes the model's own tokenizer
    config = make_config(
        tokenizer={"pretrained": str(local)},
        pretrain={"models": {"pythia": {"pretrained": str(local)}}},
    )
    tok_out, tokd_out, model_out = tmp_path / "tok", tmp_path / "tokd", tmp_path / "model"
    train_tokenizer(ctx_for("tokenizer", config, {"corpus": corpus_dir}, {"tokenizer": tok_out}))
    assert read_json(tok_out / "tokenizer_meta.json")["source"] == "pretrained"
    tokenize_corpus(
        ctx_for(
            "tokenize",
            config,
            {"corpus": corpus_dir, "tokenizer": tok_out},
            {"tokenized": tokd_out},
        )
    )
    result = pretrain_model(
        ctx_for(
            "pretrain",
            config,
            {"tokenized": tokd_out, "tokenizer": tok_out},
            {"model": model_out},
            wildcards={"model": "pythia"},
        )
    )
    assert result["source"] == "pretrained" and result["steps"] == 0
    metrics = read_json(model_out / "metrics.json")
    assert metrics["heldout_loss"] == metrics["initial_loss"] > 0
    reloaded, original = load_model(model_out), load_model(local)
    for (name, a), (_, b) in zip(reloaded.state_dict().items(), original.state_dict().items()):
        assert torch.equal(a, b), name
    assert (model_out / "loss_curve.png").is_file()


def test_missing_pretrained_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "does" / "not" / "exist")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model("./no-such-model")


def test_unsafe_pickle_weights_are_refused(tmp_path, tokenizer_dir):
    """Only safetensors are loaded: a checkpoint saved as pytorch_model.bin is an error, not a pickle load."""
    tokenizer = load_tokenizer(tokenizer_dir)
    spec = ModelSpec(
        hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_position=32
    )
    model = build_model(spec, len(tokenizer), 0, 1)
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(OSError):
        load_model(tmp_path)


@pytest.mark.parametrize(
    "block, match",
    [
        (
            {
                "arch": "gpt2",
                "hidden_size": 16,
                "num_layers": 1,
                "num_heads": 2,
                "intermediate_size": 64,
                "max_position": 32,
            },
            "unknown architecture",
        ),
        (
            {
                "arch": "gpt_neox",
                "hidden_size": -16,
                "num_layers": 1,
                "num_heads": 2,
                "intermediate_size": 64,
                "max_position": 32,
            },
            "hidden_size",
        ),
        (
            {
                "arch": "gpt_neox",
                "hidden_size": 16,
                "num_layers": 0,
                "num_heads": 2,
                "intermediate_size": 64,
                "max_position": 32,
            },
            "num_layers",
        ),
        (
            {
                "arch": "gpt_neox",
                "hidden_size": 18,
                "num_layers": 1,
                "num_heads": 4,
                "intermediate_size": 64,
                "max_position": 32,
            },
            "divisible",
        ),
        ({"pretrained": ""}, "pretrained"),
        ({"arch": "gpt_neox", "width": 3}, "unknown key"),
    ],
)
def test_model_spec_errors(block, match):
    with pytest.raises(ValueError, match=match) as err:
        ModelSpec.from_config(block, "bad")
    assert "pretrain.models.bad" in str(err.value)


def test_train_spec_errors_and_unknown_model():
    with pytest.raises(ValueError, match="batch_size"):
        TrainSpec(batch_size=-1)
    with pytest.raises(ValueError, match="lr"):
        TrainSpec(lr=0)
    with pytest.raises(KeyError, match="no model 'huge'"):
        TrainSpec(models={"tiny": {}}).model("huge")


def test_seq_len_longer_than_positions(tmp_path, tokenized_dir, tokenizer_dir):
    models = {
        "short": {
            "arch": "gpt_neox",
            "hidden_size": 16,
            "num_layers": 1,
            "num_heads": 2,
            "intermediate_size": 64,
            "max_position": 8,
        }
    }
    with pytest.raises(ValueError, match="max_position"):
        _pretrain(tmp_path, tokenized_dir, tokenizer_dir, model="short", models=models)


def test_lr_schedule():
    recipe = TrainSpec(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_at(0, 100, recipe) == pytest.approx(0.1)
    assert lr_at(9, 100, recipe) == pytest.approx(1.0)
    assert lr_at(10, 100, recipe) == pytest.approx(1.0)
    assert lr_at(100, 100, recipe) == pytest.approx(0.1)
    assert all(lr_at(s, 100, recipe) >= lr_at(s + 1, 100, recipe) for s in range(10, 99))


def test_facts_learned_with_enough_steps(tmp_path, tokenized_dir, tokenizer_dir, corpus_dir):
    """Sanity for the influence studies: a small model memorises the repeated capital facts."""
    out, _ = _pretrain(
        tmp_path,
        tokenized_dir,
        tokenizer_dir,
        corpus=corpus_dir,
        max_steps=300,
        lr=1e-2,
        eval_every=0,
    )
    metrics = read_json(out / "metrics.json")
    assert metrics["fact_accuracy"] >= 0.5, metrics


@pytest.fixture(scope="session", autouse=True)
def _world(corpus_dir):
    """world.json with the fixture's facts (prompt -> completion) for the fact-recall metric."""
    facts = [
        {"id": f"capital_{c}", "prompt": f"The capital of {c} is", "completion": f" {cap}"}
        for c, cap in zip(COUNTRIES, CAPITALS)
    ]
    write_json(
        corpus_dir / "world.json", {"facts": facts, "categories": ["fact", "filler", "general"]}
    )


@pytest.mark.parametrize("arch", ["tiny", "tinyllama"])
def test_lm_loss_equals_hf_loss(tokenized_dir, arch):
    """The trimmed, head-on-kept-positions loss is the HF loss with labels -100 on padding."""
    from llm_influence.models.train import labels_for, lm_loss
    from llm_influence.utils.io import load_tensors

    train, _ = load_tensors(tokenized_dir / "train.safetensors")
    batch = {k: train[k][:8] for k in ("input_ids", "attention_mask")}
    torch.manual_seed(0)
    model = build_model(
        TrainSpec(models=make_config()["pretrain"]["models"]).model(arch), 400, 0, 1
    )
    ours, n = lm_loss(model, batch["input_ids"], batch["attention_mask"])
    reference = model(**batch, labels=labels_for(batch)).loss
    assert n == int(batch["attention_mask"][:, 1:].sum())
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)
