"""Determinism: one seed drives python, numpy and torch; CPU runs are bit-reproducible."""

from __future__ import annotations

import random
import sys
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def seed_everything(seed: int) -> torch.Generator:
    import torch

    seed_python_numpy(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed)


def seed_python_numpy(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)


def torch_loaded() -> bool:
    """Whether torch is imported; stages that never import it skip its 1-2 s start-up cost."""
    return "torch" in sys.modules


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; an explicit ``cuda`` without a GPU is an error, not a fallback."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available on this machine")
    return torch.device(device)
