"""Helpers for tests that run snakemake/dvc/llm-influence in scratch repositories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
# the toy workflow imports tests/workflow/toy_stages.py (and keeps a PYTHONPATH=src of a worktree)
TOY_ENV = {"PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: this venv first on PATH, offline, no DVC analytics."""
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **extra,
    }
    env.pop("DVC_STAGE", None)
    return env


def run(cmd: list[str], cwd: Path, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    """Run a command, capture its output, and fail showing that output when ``check``."""
    proc = subprocess.run(cmd, cwd=cwd, env=tool_env(**env), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}"
            f"\n--- stderr\n{proc.stderr[-8000:]}"
        )
    return proc


def git_init(path: Path) -> None:
    run(["git", "init", "-q", "-b", "main"], path)
    run(["git", "config", "user.email", "tests@llm-influence.local"], path)
    run(["git", "config", "user.name", "tests"], path)
    run(["git", "add", "-A"], path)
    run(["git", "commit", "-q", "-m", "copy"], path)


def copy_worktree(dest: Path) -> Path:
    """Tracked and untracked-but-not-ignored files of the checkout, as a fresh git repo."""
    listing = run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], REPO
    ).stdout
    for rel in filter(None, listing.split("\0")):
        src = REPO / rel
        if not src.is_file() or rel == "dvc.lock":
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)
    git_init(dest)
    return dest


def snakemake(repo: Path, *args: str, check: bool = True, **env: str):
    return run([str(BIN / "snakemake"), "--cores", "2", *args], repo, check=check, **env)


def dvc(repo: Path, *args: str, check: bool = True):
    return run([str(BIN / "dvc"), *args], repo, check=check)


def cli(repo: Path, *args: str, check: bool = True, **env: str):
    return run([str(BIN / "llm-influence"), *args], repo, check=check, **env)


def data_files(root: Path) -> dict[str, bytes]:
    """Artifact files under data/ and results/, without per-run records and markers."""
    skip = {"provenance.json", ".snakemake_timestamp", ".gitignore"}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for sub in ("data", "results")
        if (root / sub).is_dir()
        for p in sorted((root / sub).rglob("*"))
        if p.is_file() and p.name not in skip
    }
