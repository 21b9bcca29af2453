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
]
