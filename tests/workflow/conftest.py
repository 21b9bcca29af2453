"""The toy workflow: the project's plumbing with throwaway stages, in a fresh git + DVC repo."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from workflow_helpers import HERE, REPO, cli, dvc, git_init, run

TOY_ENV = {"PYTHONPATH": str(HERE)}


@pytest.fixture
def toy_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "toy"
    shutil.copytree(HERE / "toy", repo)
    (repo / "workflow" / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "workflow" / "scripts" / "stage.py", repo / "workflow" / "scripts")
    shutil.copy2(REPO / ".dvcignore", repo / ".dvcignore")
    (repo / ".gitignore").write_text(".snakemake/\nlogs/\n")
    git_init(repo)
    dvc(repo, "init", "-q")
    dvc(repo, "remote", "add", "-d", "tmp", str(tmp_path / "remote"))
    cli(repo, "dvc-sync", **TOY_ENV)
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "dvc"], repo)
    return repo
