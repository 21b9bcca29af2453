"""The cluster path: the smoke config through ``profiles/slurm`` on a private single-node SLURM
(``tools/slurm_single_node.py``), compared with the local smoke run.

Runs only where that script can start SLURM (root, Debian ``slurm-wlm`` + ``munge``; set
``LLM_INFLUENCE_SLURM_INSTALL=1`` to let it apt-install them), otherwise skips. Slow (minutes:
every job is an sbatch job starting its own Snakemake), so marked ``cluster``: CI leaves it out,
run it with ``pytest -m cluster``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from workflow_helpers import BIN, REPO, copy_worktree, data_files, run

SMOKE = "config/smoke.yaml"
SCRIPT = REPO / "tools" / "slurm_single_node.py"
PARTITIONS = ("cpu", "gpu")  # the names profiles/slurm uses, so its set-resources are tested
INSTALL = os.environ.get("LLM_INFLUENCE_SLURM_INSTALL") == "1"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _why_not_here() -> str | None:
    """Why this machine cannot start SLURM (None: it can), decided before the local smoke run."""
    tool = _load(SCRIPT)
    try:
        tool.check(install=False)
    except tool.Unsupported as err:
        if INSTALL and os.geteuid() == 0 and shutil.which("apt-get"):
            return None  # the fixture installs the packages
        return f"no single-node SLURM here: {err}"
    return None


WHY_NOT = _why_not_here()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.cluster,
    pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""),
]


def _script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory):
    """A running single-node SLURM (its directory); stopped afterwards, and nothing left over."""
    checked = _script("check", *(["--install"] if INSTALL else []))
    if checked.returncode == 3:
        pytest.skip(checked.stderr.strip())
    assert checked.returncode == 0, checked.stderr
    root = tmp_path_factory.mktemp("slurm")
    parts = [arg for name in PARTITIONS for arg in ("--partition", name)]
    started = _script("start", "--dir", str(root), *parts)
    try:
        assert started.returncode == 0, started.stderr
        assert _script("status", "--dir", str(root)).returncode == 0
        yield root
    finally:
        stopped = _script("stop", "--dir", str(root))
        assert stopped.returncode == 0, stopped.stderr
        assert _load(SCRIPT).processes(root) == [], "daemons left running"
        assert _script("status", "--dir", str(root)).returncode == 1


def _test_profile(repo: Path) -> str:
    """profiles/slurm with what this cluster needs: no account (it has no accounting: the plugin
    then submits without -A), CPU jobs (no GPUs), squeue for job status, quick status checks,
    one CPU per job (two side by side, as the local `--cores 2` run), logs kept to map job ids to
    rules. Everything else -- partitions per rule, memory, retries -- is the profile's."""
    profile = yaml.safe_load((repo / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"].pop("slurm_account")
    profile["default-resources"]["cpus_per_task"] = 1
    profile["config"] = {**profile["config"], "device": "cpu", "dvc_commit": False}
    profile.update(
        {
            "slurm-status-command": "squeue",
            "slurm-init-seconds-before-status-checks": 2,
            "seconds-between-status-checks": 2,
            "slurm-keep-successful-logs": True,
        }
    )
    out = repo / "profiles" / "slurm-test"
    out.mkdir()
    (out / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return str(out.relative_to(repo))


def _job_stats(log: str) -> dict[str, int]:
    """Snakemake's "Job stats" table (rule -> number of jobs), without the total."""
    table = log.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


def _jobcomp(root: Path) -> dict[str, dict[str, str]]:
    """slurmctld's record of every finished job (jobcomp/filetxt), by SLURM job id."""
    records = {}
    for line in (root / "jobcomp.txt").read_text().splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        records[fields["JobId"]] = fields
    return records


def _tensors(path: Path) -> tuple[dict, dict[str, tuple[str, tuple, bytes]]]:
    """(metadata, name -> (dtype, shape, raw bytes)) of a safetensors file. Compared as values,
    not as file bytes: safetensors writes the metadata keys in a per-process random order."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        arrays = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        meta = f.metadata() or {}
    return meta, {k: (str(a.dtype), a.shape, a.tobytes()) for k, a in arrays.items()}


def check_all_jobs_went_through_sbatch(log: str, repo: Path, slurm_root: Path) -> None:
    """Every job but the target rule `all` was submitted once with sbatch, into the partition the
    profile names for its rule, and slurmctld recorded it as COMPLETED."""
    planned = _job_stats(log)
    planned.pop("all", None)
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log)
    assert len(submitted) == sum(planned.values()) > 20  # each once: no retries, nothing left out
    assert (
        len({job for job, _ in submitted}) == len({sid for _, sid in submitted}) == len(submitted)
    )
    assert not re.search(r"^localrule (?!all:)", log, re.M), "a job ran outside SLURM"
    slurm_logs = repo / ".snakemake" / "slurm_logs"  # rule_<name>/[<wildcards>/]<jobid>.log
    logs = {p.stem: p.relative_to(slurm_logs).parts[0] for p in slurm_logs.rglob("*.log")}
    rules = {jobid: logs[jobid].removeprefix("rule_") for _, jobid in submitted}
    assert Counter(rules.values()) == planned  # per rule
    profile = yaml.safe_load((repo / "profiles" / "slurm" / "config.yaml").read_text())
    gpu_rules = {
        rule
        for rule, res in profile["set-resources"].items()
        if res.get("slurm_partition") == "gpu"
    }
    assert set(rules.values()) & gpu_rules
    records = _jobcomp(slurm_root)
    for jobid, rule in rules.items():
        assert records[jobid]["JobState"] == "COMPLETED", records[jobid]
        expected = "gpu" if rule in gpu_rules else "cpu"
        assert records[jobid]["Partition"] == expected, (rule, records[jobid])


def check_same_results(reference: Path, repo: Path) -> None:
    """summary.md and every metric (tools/compare_results.py), the same artifact files, and every
    tensor of every safetensors file (models, factors, scores) bit for bit."""
    compare = _load(REPO / "tools" / "compare_results.py").compare
    assert compare(reference / "results", repo / "results") == []
    local, cluster = data_files(reference), data_files(repo)
    assert set(local) == set(cluster)
    tensors = sorted(p for p in local if p.endswith(".safetensors"))
    assert any(p.startswith("data/models/") for p in tensors)
    different = [p for p in tensors if _tensors(reference / p) != _tensors(repo / p)]
    assert not different


def test_smoke_config_through_slurm_equals_local_run(
    slurm: Path, smoke_run: Path, tmp_path: Path
) -> None:
    repo = copy_worktree(tmp_path / "repo")
    profile = _test_profile(repo)
    proc = run(
        [str(BIN / "snakemake"), "--workflow-profile", profile, "--configfile", SMOKE],
        repo,
        SLURM_CONF=str(slurm / "slurm.conf"),
    )
    log = proc.stdout + proc.stderr
    (tmp_path / "snakemake.log").write_text(log)
    check_all_jobs_went_through_sbatch(log, repo, slurm)
    check_same_results(smoke_run, repo)
