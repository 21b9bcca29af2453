"""Provenance records: what made an artifact (code, config, packages, machine, time).

Every stage writes one ``provenance.json`` into each of its output directories; ``llm-influence
audit`` shows it next to the DVC hashes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import os
import platform
import socket
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Recorded in every provenance.json; `llm-influence audit` reports an artifact whose record differs
# from the installed versions as `drift`. The libraries whose results or files the stages depend on.
PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "datasets",
    "safetensors",
    "numpy",
    "scipy",
    "scikit-learn",
    "pandas",
    "pyarrow",
    "matplotlib",
    "seaborn",
    "llm_influence",
)

PROVENANCE_FILE = "provenance.json"


def code_hash(files: Iterable[str | os.PathLike[str]]) -> str:
    """sha256 over the (path, bytes) of ``files`` in sorted order: the code version of a stage."""
    digest = hashlib.sha256()
    for path in sorted({str(f) for f in files}):
        digest.update(path.encode())
        digest.update(b"\0")
        digest.update(Path(path).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def git_state(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Commit of HEAD and whether tracked files differ from it (untracked data files do not count)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def device_info(device: str) -> dict[str, Any]:
    from llm_influence.utils.seeding import resolve_device, torch_loaded

    if not torch_loaded():  # the stage never used torch: it ran on the CPU
        return {"requested": device, "resolved": "cpu", "torch": False}
    import torch

    resolved = resolve_device(device)
    info: dict[str, Any] = {"requested": device, "resolved": str(resolved)}
    if resolved.type == "cuda":
        info["name"] = torch.cuda.get_device_name(resolved)
    return info


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).isoformat()


def build_record(
    *,
    rule: str,
    wildcards: Mapping[str, str],
    config: Mapping[str, Any],
    code_files: Iterable[str | os.PathLike[str]],
    seed: int,
    device: str,
    threads: int,
    start: float,
    end: float,
    cpu_seconds: float | None = None,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance record of one stage run (JSON-serialisable)."""
    files = sorted({str(f) for f in code_files})
    return {
        "rule": rule,
        "wildcards": dict(wildcards),
        "config": dict(config),
        "seed": seed,
        "device": device_info(device),
        "threads": threads,
        "code": {"hash": code_hash(files), "files": files},
        "git": git_state(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "hostname": socket.gethostname(),
        "start_time": _iso(start),
        "end_time": _iso(end),
        "end_timestamp": end,
        "wall_seconds": round(end - start, 3),
        "cpu_seconds": None if cpu_seconds is None else round(cpu_seconds, 3),
        "metrics": dict(metrics or {}),
    }
