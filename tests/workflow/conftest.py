"""The toy workflow: the project's plumbing with throwaway stages, in a fresh git + DVC repo.

``toy/dvc.expected.yaml`` is what ``llm-influence dvc-sync`` writes for it (checked by a test),
copied rather than regenerated per test to save a Snakemake start-up. (Not named dvc.yaml: DVC
would take it for a pipeline of the repository itself.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from workflow_helpers import HERE, REPO, git_init


@pytest.fixture
def toy_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "toy"
    shutil.copytree(HERE / "toy", repo)
    (repo / "dvc.expected.yaml").rename(repo / "dvc.yaml")
    (repo / "workflow" / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "workflow" / "scripts" / "stage.py", repo / "workflow" / "scripts")
    shutil.copy2(REPO / ".dvcignore", repo / ".dvcignore")
    (repo / ".gitignore").write_text(".snakemake/\nlogs/\n")
    # what `dvc init` + `dvc remote add -d` write, without two DVC start-ups
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    (repo / ".dvc" / "config").write_text(
        f"[core]\n    remote = tmp\n    analytics = false\n"
        f"['remote \"tmp\"']\n    url = {tmp_path / 'remote'}\n"
    )
    git_init(repo)
    return repo
