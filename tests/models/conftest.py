"""Session fixtures for the models tests: corpus, tokenizer and tokenised data built once, offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from models_fixtures import ctx_for, make_config, make_documents


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("corpus")
    docs, manifest = make_documents()
    docs.to_parquet(path / "documents.parquet", index=False)
    manifest.to_parquet(path / "manifest.parquet", index=False)
    return path


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, corpus_dir) -> Path:
    from llm_influence.models.stage import train_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(ctx_for("tokenizer", make_config(), {"corpus": corpus_dir}, {"tokenizer": out}))
    return out


@pytest.fixture(scope="session")
def tokenized_dir(tmp_path_factory, corpus_dir, tokenizer_dir) -> Path:
    from llm_influence.models.stage import tokenize_corpus

    out = tmp_path_factory.mktemp("tokenized")
    tokenize_corpus(
        ctx_for(
            "tokenize",
            make_config(),
            {"corpus": corpus_dir, "tokenizer": tokenizer_dir},
            {"tokenized": out},
        )
    )
    return out
