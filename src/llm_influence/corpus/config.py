"""Config blocks of the corpus sources (``corpus.synthetic``, ``corpus.hf``) read into dataclasses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

C = TypeVar("C")


def from_block(cls: type[C], block: Mapping[str, Any] | None, name: str) -> C:
    """``cls(**block)``; a key that is not a field of ``cls`` is an error naming the block ``name``."""
    block = dict(block or {})
    unknown = set(block) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{name}: unknown keys {sorted(unknown)}")
    return cls(**block)
