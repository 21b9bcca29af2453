"""``data/tokenizer/``, ``data/tokenized/`` (rules tokenizer, tokenize) and ``data/models/{model}/``
(rule pretrain): the file names, and the readers of the tokenised splits and the model metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_influence.utils.io import load_arrays, load_tensors, read_json

TOKENIZER_META = "tokenizer_meta.json"
TRAIN = "train.safetensors"
HELDOUT = "heldout.safetensors"
TOKENIZED_META = "meta.json"
SPLITS = {"train": TRAIN, "heldout": HELDOUT}
MODEL_METRICS = "metrics.json"
TRAIN_LOG = "train_log.csv"
EVAL_LOG = "eval_log.csv"
LOSS_CURVE = "loss_curve.png"


def read_split(tokenized_dir: str | Path, split: str = "train", numpy: bool = False) -> dict:
    """input_ids, attention_mask, doc_id of one split, as torch tensors (or numpy arrays)."""
    path = Path(tokenized_dir) / SPLITS[split]
    return (load_arrays(path) if numpy else load_tensors(path))[0]


def read_tokenized_meta(tokenized_dir: str | Path) -> dict[str, Any]:
    return read_json(Path(tokenized_dir) / TOKENIZED_META)


def read_model_metrics(model_dir: str | Path) -> dict[str, Any] | None:
    """A pretrained model's metrics.json (n_params, losses); None when the directory has none."""
    path = Path(model_dir) / MODEL_METRICS
    return read_json(path) if path.is_file() else None
