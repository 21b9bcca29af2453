"""Tokenizer training, tokenisation, pretraining and model loading (see docs/models.md)."""

from llm_influence.models.loading import load_model, load_tokenizer
from llm_influence.models.spec import ModelSpec, TokenizerSpec, TrainSpec

__all__ = ["ModelSpec", "TokenizerSpec", "TrainSpec", "load_model", "load_tokenizer"]
