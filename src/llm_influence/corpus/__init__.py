"""Corpus stage: the synthetic world generator with ground truth, and the hf/local loader.

Entry point: :func:`llm_influence.corpus.stage.build_corpus`. See docs/corpus.md.
"""

from llm_influence.corpus.synthetic import CATEGORIES, HF_CATEGORY, SyntheticConfig, generate
from llm_influence.corpus.world import KEY_FACTS, LANGUAGES, ORDERS, Fact, check_order

__all__ = [
    "CATEGORIES",
    "HF_CATEGORY",
    "KEY_FACTS",
    "LANGUAGES",
    "ORDERS",
    "Fact",
    "SyntheticConfig",
    "check_order",
    "generate",
    "load_corpus",
]


def load_corpus(path):
    """(documents, manifest, world) of a corpus directory as (DataFrame, DataFrame, dict)."""
    from pathlib import Path

    import pandas as pd

    from llm_influence.utils.io import read_json

    path = Path(path)
    return (
        pd.read_parquet(path / "documents.parquet"),
        pd.read_parquet(path / "manifest.parquet"),
        read_json(path / "world.json"),
    )
