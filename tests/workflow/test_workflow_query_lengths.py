"""A query longer than the context fails at start-up, naming the query, when a tokenizer exists."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llm_influence.models.spec import TokenizerSpec
from llm_influence.models.tokenizer import train_bpe
from llm_influence.workflow.config import ConfigError, validate_query_files

QUERIES = """queries:
  - name: short_fact
    prompt: "The capital of Astrobia is"
    completion: " Velmora"
    language: en
    tags: [factual]
  - name: rambling
    prompt: "Tell me"
    completion: "{long}"
    language: en
    tags: [factual]
"""


def _setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_tokenizer: bool) -> dict:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "q.yaml").write_text(QUERIES.format(long=" and then" * 60))
    if with_tokenizer:
        texts = ["The capital of Astrobia is Velmora.", "Tell me and then more."] * 20
        train_bpe(texts, TokenizerSpec(vocab_size=300)).save_pretrained(
            tmp_path / "data" / "tokenizer"
        )
    return {"queries": {"file": "q.yaml", "max_length": 64}, "tokenizer": {"seq_len": 64}}


def test_too_long_query_named_before_any_job(tmp_path, monkeypatch):
    config = _setup(tmp_path, monkeypatch, with_tokenizer=True)
    with pytest.raises(ConfigError, match=r"query 'rambling'.*exceed the context of 64 tokens"):
        validate_query_files(config)


def test_without_a_tokenizer_the_queries_stage_checks(tmp_path, monkeypatch):
    config = _setup(tmp_path, monkeypatch, with_tokenizer=False)
    validate_query_files(config)  # deferred: the queries stage checks once the tokenizer is trained


def test_short_queries_pass(tmp_path, monkeypatch):
    config = _setup(tmp_path, monkeypatch, with_tokenizer=True)
    doc = yaml.safe_load((tmp_path / "q.yaml").read_text())
    doc["queries"] = doc["queries"][:1]
    (tmp_path / "q.yaml").write_text(yaml.safe_dump(doc))
    validate_query_files(config)
