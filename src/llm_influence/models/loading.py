"""Loading models and tokenizers for every later stage: local directories and hub ids, one code path.

Security: weights are read from safetensors only (no pickle), and ``trust_remote_code`` is False
unless a caller passes it explicitly (config key ``pretrain.models.<name>.trust_remote_code``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from llm_influence.utils.seeding import resolve_device

DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
}


def _resolve_source(path_or_id: str | os.PathLike[str]) -> str:
    """A local directory as an absolute path; a hub id ("org/name" or "name") unchanged.

    Anything that looks like a path (absolute, ./ or ../, ~, more than one '/') but does not exist
    is an error here rather than a confusing hub lookup.
    """
    text = str(path_or_id).strip()
    if not text:
        raise ValueError("empty model path or hub id")
    local = Path(text).expanduser()
    if local.exists():
        if not local.is_dir():
            raise NotADirectoryError(f"pretrained model path is not a directory: {local}")
        return str(local.resolve())
    looks_like_path = (
        text.startswith(("/", "./", "../", "~"))
        or text.count("/") > 1
        or os.sep != "/"
        and os.sep in text
    )
    if looks_like_path:
        raise FileNotFoundError(f"pretrained model directory not found: {text}")
    return text


def load_model(
    path_or_id: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
    trust_remote_code: bool = False,
) -> nn.Module:
    """A causal LM in eval mode on ``device`` (``auto`` = CUDA when present)."""
    from transformers import AutoModelForCausalLM

    source = _resolve_source(path_or_id)
    torch_dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except OSError as err:
        raise OSError(
            f"could not load model {source!r} (safetensors weights required; offline runs need a "
            f"local directory or a cached hub id): {err}"
        ) from err
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    return model.to(dev).eval()


def load_tokenizer(path_or_id: str | os.PathLike[str], trust_remote_code: bool = False):
    """A fast tokenizer with a pad token (EOS reused when the tokenizer has none)."""
    from transformers import AutoTokenizer

    from llm_influence.models.tokenizer import ensure_pad_token

    source = _resolve_source(path_or_id)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise OSError(f"could not load tokenizer {source!r}: {err}") from err
    ensure_pad_token(tokenizer)
    return tokenizer
