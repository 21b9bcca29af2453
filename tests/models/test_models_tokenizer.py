"""Tokenizer training and corpus tokenisation: round trip, determinism, shapes, masks, held-out split."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from models_fixtures import ctx_for, make_config, make_documents

from llm_influence.models.loading import load_tokenizer
from llm_influence.models.spec import TokenizerSpec
from llm_influence.models.stage import tokenize_corpus, train_tokenizer
from llm_influence.models.tokenizer import heldout_split
from llm_influence.utils.io import load_tensors, read_json


def _digest(directory) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


def test_round_trip_and_special_tokens(tokenizer_dir):
    tokenizer = load_tokenizer(tokenizer_dir)
    for text in ["The capital of Veloria is Minth.", "  odd spacing\tand ünïcödé ✓ 123", ""]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text  # byte-level: every string survives
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.eos_token_id == 0
    assert tokenizer.pad_token == "<|padding|>" and tokenizer.pad_token_id == 1
    assert 256 < len(tokenizer) <= 400  # the tiny corpus runs out of pairs seen twice before 400
    meta = read_json(tokenizer_dir / "tokenizer_meta.json")
    assert (
        meta["source"] == "bpe"
        and meta["vocab_size"] == len(tokenizer)
        and meta["pad_token_id"] == 1
    )


def test_tokenizer_is_deterministic(tmp_path, corpus_dir, tokenizer_dir):
    out = tmp_path / "again"
    train_tokenizer(ctx_for("tokenizer", make_config(), {"corpus": corpus_dir}, {"tokenizer": out}))
    assert _digest(out) == _digest(tokenizer_dir)


def test_tokenized_shapes_and_masks(tokenized_dir, tokenizer_dir, corpus_dir):
    meta = read_json(tokenized_dir / "meta.json")
    train, _ = load_tensors(tokenized_dir / "train.safetensors")
    held, _ = load_tensors(tokenized_dir / "heldout.safetensors")
    n_docs = len(pd.read_parquet(corpus_dir / "documents.parquet"))
    assert meta["n_train"] + meta["n_heldout"] == n_docs  # one document per sequence
    assert meta["n_heldout"] == round(0.1 * n_docs)
    assert meta["n_truncated"] == 1 and meta["packing"] is False and meta["pad_token_id"] == 1
    for t, n in ((train, meta["n_train"]), (held, meta["n_heldout"])):
        assert t["input_ids"].shape == t["attention_mask"].shape == (n, 24)
        assert t["doc_id"].shape == (n,)
        assert all(v.dtype.is_floating_point is False and v.dtype.itemsize == 8 for v in t.values())
        mask = t["attention_mask"]
        assert (mask[:, 0] == 1).all()
        assert (mask[:, 1:] <= mask[:, :-1]).all()  # right padding: ones then zeros
        assert (t["input_ids"][mask == 0] == 1).all()  # pad id
    # every untruncated document ends with EOS, and decodes back to its text
    tokenizer = load_tokenizer(tokenizer_dir)
    docs = pd.read_parquet(corpus_dir / "documents.parquet").set_index("doc_id")["text"]
    for row in range(5):
        length = int(train["attention_mask"][row].sum())
        ids = train["input_ids"][row, :length].tolist()
        assert ids[-1] == 0
        assert tokenizer.decode(ids[:-1]) == docs[int(train["doc_id"][row])]
    assert sorted(train["doc_id"].tolist() + held["doc_id"].tolist()) == list(range(n_docs))


def test_heldout_respects_categories_and_seed():
    docs, manifest = make_documents()
    spec = TokenizerSpec(heldout_fraction=0.2, heldout_categories=["filler"])
    a = heldout_split(docs, manifest, spec, seed=0)
    assert len(a) == round(0.2 * len(docs))
    assert set(manifest.set_index("doc_id").loc[a, "category"]) == {
        "filler"
    }  # no fact document withheld
    assert np.array_equal(a, heldout_split(docs, manifest, spec, seed=0))
    assert not np.array_equal(a, heldout_split(docs, manifest, spec, seed=1))
    every = heldout_split(
        docs, manifest, TokenizerSpec(heldout_fraction=0.2, heldout_categories="all"), seed=0
    )
    assert len(every) == len(a)
    with pytest.raises(ValueError, match="matches no document"):
        heldout_split(docs, manifest, TokenizerSpec(heldout_categories=["nope"]), seed=0)
    with pytest.raises(ValueError, match="no manifest"):
        heldout_split(docs, None, spec, seed=0)


def test_packing(tmp_path, corpus_dir, tokenizer_dir):
    out = tmp_path / "packed"
    config = make_config(tokenizer={"packing": True})
    tokenize_corpus(
        ctx_for(
            "tokenize",
            config,
            {"corpus": corpus_dir, "tokenizer": tokenizer_dir},
            {"tokenized": out},
        )
    )
    meta = read_json(out / "meta.json")
    train, _ = load_tensors(out / "train.safetensors")
    assert meta["packing"] is True and meta["n_truncated"] == 0
    assert (train["attention_mask"][:-1] == 1).all()  # only the last row may be padded
    assert int(train["attention_mask"].sum()) == meta["train_tokens"]
    assert (train["doc_id"][1:] >= train["doc_id"][:-1]).all()
    assert (train["input_ids"] == 0).sum() >= meta["n_documents"] - meta[
        "n_heldout_documents"
    ]  # an EOS per document


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"vocab_size": -5}, "vocab_size"),
        ({"seq_len": 0}, "seq_len"),
        ({"heldout_fraction": 1.5}, "heldout_fraction"),
        ({"heldout_categories": "some"}, "heldout_categories"),
        ({"typo": 1}, "unknown key"),
    ],
)
def test_tokenizer_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        TokenizerSpec.from_config(bad)
