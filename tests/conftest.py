"""Shared fixtures: offline environment, and ONE smoke run of the real workflow per session.

``smoke_run`` runs ``snakemake --cores 2 --configfile config/smoke.yaml`` once, in a copy of the
working tree (tracked + untracked files, as a fresh git repo) whose dvc.yaml tracks the smoke
config and whose DVC remote is a temporary directory; the checkout itself is never written to.
Tests using it are marked ``slow``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "workflow"))

from workflow_helpers import BIN, cli, copy_worktree, dvc, run, snakemake  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["DVC_NO_ANALYTICS"] = "1"

SMOKE_CONFIG = "config/smoke.yaml"


@pytest.fixture(scope="session")
def smoke_remote(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smoke-remote")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, smoke_remote: Path) -> Path:
    """Repository copy after one successful smoke run (outputs committed to dvc.lock)."""
    repo = copy_worktree(tmp_path_factory.mktemp("smoke") / "repo")
    cli(repo, "dvc-sync", "--configfile", SMOKE_CONFIG)
    dvc(repo, "remote", "add", "-f", "-d", "tmp", str(smoke_remote))
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "track the smoke config"], repo)
    proc = snakemake(repo, "--configfile", SMOKE_CONFIG)
    (repo / "smoke-run.log").write_text(proc.stdout + proc.stderr)
    return repo


__all__ = ["BIN", "smoke_run", "smoke_remote"]
