"""Queries stage end to end on a small synthetic corpus and a locally trained tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from llm_influence.artifacts.corpus import load_corpus
from llm_influence.corpus import check_order
from llm_influence.corpus.stage import build_corpus
from llm_influence.queries import QuerySetError, load_query_set
from llm_influence.queries.stage import build_queries
from llm_influence.utils.io import load_tensors
from llm_influence.workflow.context import StageContext

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[2]
DEFAULT = "config/queries/default.yaml"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("q")
    with open(REPO / "config" / "smoke.yaml", encoding="utf-8") as fh:
        smoke = yaml.safe_load(fh)
    (root / "corpus").mkdir()
    build_corpus(
        StageContext(
            "corpus", {"seed": 0, "corpus": smoke["corpus"]}, {}, {"corpus": root / "corpus"}
        )
    )
    docs, manifest, world = load_corpus(root / "corpus")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=["<|endoftext|>", "<|padding|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(docs["text"].tolist(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|padding|>"
    )
    fast.save_pretrained(str(root / "tokenizer"))
    (root / "queries").mkdir()
    ctx = StageContext(
        "queries",
        {
            "seed": 0,
            "queries": {"file": str(REPO / DEFAULT), "max_length": 64},
            "tokenizer": smoke["tokenizer"],
        },
        {"corpus": root / "corpus", "tokenizer": root / "tokenizer"},
        {"queries": root / "queries"},
    )
    metrics = build_queries(ctx)
    table = pd.read_parquet(root / "queries" / "queries.parquet")
    tensors, meta = load_tensors(root / "queries" / "queries.safetensors")
    return dict(
        root=root,
        docs=docs,
        manifest=manifest,
        world=world,
        fast=fast,
        table=table,
        tensors=tensors,
        meta=meta,
        metrics=metrics,
    )


def test_table_matches_query_file(built):
    queries = load_query_set(REPO / DEFAULT)
    table = built["table"]
    assert table["name"].tolist() == [q.name for q in queries]
    assert built["meta"]["names"] == [q.name for q in queries]
    for col in (
        "prompt",
        "completion",
        "language",
        "tags",
        "translation_of",
        "variant_of",
        "proponents",
    ):
        assert col in table.columns
    assert built["metrics"]["n_queries"] == len(queries)


def test_labels_cover_exactly_the_completion(built):
    t, fast, table = built["tensors"], built["fast"], built["table"]
    q, width = t["input_ids"].shape
    assert t["labels"].shape == t["attention_mask"].shape == (q, width)
    for i, row in enumerate(table.itertuples()):
        mask = t["attention_mask"][i].bool()
        labels = t["labels"][i]
        assert (labels[~mask] == -100).all()
        assert fast.decode(t["input_ids"][i][mask]) == row.prompt + row.completion
        scored = labels != -100
        assert int(scored.sum()) == row.n_completion_tokens > 0
        assert not scored[0]
        # labelled positions form one block at the end of the real tokens, equal to input_ids
        assert (labels[scored] == t["input_ids"][i][scored]).all()
        assert fast.decode(t["input_ids"][i][scored]).strip() == row.completion.strip()
        assert int(mask.sum()) == row.n_tokens


def test_proponents_state_the_fact_in_query_order(built):
    docs = built["docs"].set_index("doc_id")["text"]
    manifest = built["manifest"].set_index("doc_id")
    facts = {f["id"]: f for f in built["world"]["facts"]}
    passages = {p["id"]: p for p in built["world"]["passages"]}
    table = built["table"]
    for row in table.itertuples():
        if pd.isna(row.fact_id):
            assert len(row.proponents) == 0
            continue
        assert len(row.proponents) > 0, row.name
        if row.fact_id in passages:
            assert all(passages[row.fact_id]["text"] in docs[d] for d in row.proponents)
            continue
        for col, order in (
            ("proponents", row.order),
            ("proponents_flipped", "flipped" if row.order == "forward" else "forward"),
            ("proponents_flipped_norelation", "flipped_norelation"),
        ):
            ids = getattr(row, col)
            assert len(ids) > 0, (row.name, col)
            for d in ids:
                lang = manifest.loc[d, "language"]
                assert check_order(docs[d], facts[row.fact_id]["phrases"][lang], order)
    # English-only facts: the translated query's proponents are all English documents
    fp_es = table.set_index("name").loc["first_president_es"]
    assert set(manifest.loc[list(fp_es.proponents), "language"]) == {"en"}
    # flipped probe: its proponents are the forward query's flipped documents
    t = table.set_index("name")
    assert list(t.loc["first_president_flipped"].proponents) == list(
        t.loc["first_president"].proponents_flipped
    )


def test_too_long_query_fails_naming_it(built, tmp_path):
    qfile = tmp_path / "long.yaml"
    qfile.write_text(
        yaml.safe_dump(
            {
                "queries": [
                    {
                        "name": "rambling",
                        "prompt": "word " * 80,
                        "completion": " end",
                        "language": "en",
                        "tags": ["factual"],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    out.mkdir()
    ctx = StageContext(
        "queries",
        {
            "seed": 0,
            "queries": {"file": str(qfile), "max_length": 64},
            "tokenizer": {"seq_len": 64},
        },
        {"corpus": built["root"] / "corpus", "tokenizer": built["root"] / "tokenizer"},
        {"queries": out},
    )
    with pytest.raises(QuerySetError, match="query 'rambling'.*exceed the context of 64"):
        build_queries(ctx)
