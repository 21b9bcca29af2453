"""Atomic writers: a killed job must never leave a file that looks complete.

Every writer goes through a temporary sibling and ``os.replace`` so readers see either the old
artifact or the whole new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where tensors are saved or loaded: jobs that never touch
    import numpy as np  # a tensor (corpus, summary, studies) skip its 1-2 s import
    import torch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp makes 0600; give the usual permissions
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory; replace ``path`` with it only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Sorted keys and a trailing newline so identical content gives identical bytes (stable DVC hashes)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_parquet(path: str | os.PathLike[str], frame: Any) -> None:
    """Write a pandas DataFrame as parquet, atomically and without the index."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def save_tensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """safetensors with JSON-encoded metadata values (safetensors metadata must be str -> str)."""
    from safetensors.torch import save_file

    meta = {
        k: json.dumps(v, sort_keys=True, default=_json_default) for k, v in (metadata or {}).items()
    }
    data = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(data, str(tmp), metadata=meta)
        canonical_header(tmp)


def canonical_header(path: str | os.PathLike[str]) -> None:
    """Rewrite a safetensors header in place with sorted keys, so that equal tensors and metadata
    give equal bytes (and equal DVC hashes) in every process.

    safetensors writes its JSON header from a hash map, in an order that changes from process to
    process (huggingface/safetensors#584). The header is followed by the data and its entries give
    offsets into the data, so re-ordering its keys changes nothing else; the canonical form has the
    same length (same compact JSON, space padding to the original size)."""
    with open(path, "r+b") as fh:
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
        text = json.dumps(
            header, sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
        if len(text) > n:  # cannot happen for a header safetensors wrote itself
            raise ValueError(f"{path}: canonical safetensors header longer than the original")
        fh.seek(8)
        fh.write(text + b" " * (n - len(text)))


def load_tensors(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load tensors and decoded metadata written by :func:`save_tensors` (no pickle involved)."""
    return _read_safetensors(path, framework="pt", device=str(device))


def load_arrays(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Like :func:`load_tensors` but as numpy arrays, for readers that need no torch."""
    return _read_safetensors(path, framework="np")


def _read_safetensors(path: str | os.PathLike[str], **open_kw: str) -> tuple[dict, dict[str, Any]]:
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"tensor file not found: {path}")
    with safe_open(str(path), **open_kw) as fh:
        raw_meta = fh.metadata() or {}
        data = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118 (not iterable)
    return data, {k: json.loads(v) for k, v in raw_meta.items()}


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
