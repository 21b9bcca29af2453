"""``dvc.yaml`` generated from the Snakefile, and ``dvc commit`` after a Snakemake run.

Snakemake executes, DVC records. The rule graph comes from Snakemake itself: the workflow is loaded
through Snakemake's Python API and the DAG of *every* job (``forceall``) is built for one config
file. Each concrete job becomes one DVC stage:

- name: the rule, then its wildcard values joined by ``-`` (``corpus``, ``pretrain-small``);
- ``cmd``: ``snakemake --cores all --allowed-rules <rule> --forcerun <rule> -- <its outputs>``
  (never the script itself, so Snakemake's own metadata stays current);
- ``deps``: the job's inputs except code, the library packages in its ``code`` input (one
  directory per subpackage, single files for the package root and ``workflow/``), and
  ``workflow/scripts/stage.py``;
- ``params``: the keys of the job's ``params.config`` (``config/config.yaml: [seed, corpus]``);
- ``outs``: its outputs; top-level ``metrics``/``plots``: ``params.metrics`` / ``params.plots``
  (file names inside each directory output; top level because they lie inside tracked outputs).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIGFILE = "config/config.yaml"
STAGE_SCRIPT = "workflow/scripts/stage.py"
PACKAGE_DIR = "src/llm_influence"
HEADER = (
    "# Generated from the Snakefile by `llm-influence dvc-sync` -- do not edit by hand.\n"
    "# Snakemake executes, DVC records: each stage runs snakemake for one job's outputs.\n"
    "# configfile: {configfile}\n"
)
_CONFIGFILE_RE = re.compile(r"^# configfile: (\S+)$", re.MULTILINE)
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")


@dataclass
class Job:
    """What dvc.yaml needs to know about one Snakemake job."""

    rule: str
    wildcards: dict[str, str]
    inputs: list[str]
    code: list[str]
    outputs: list[str]
    config_keys: list[str]
    metrics: list[str] = field(default_factory=list)
    plots: dict[str, Any] = field(default_factory=dict)
    entry: str | None = None  # params.entry, "module:function" (None for a rule without one)

    @property
    def stage_name(self) -> str:
        parts = [self.rule, *(str(v) for v in self.wildcards.values())]
        return _BAD_NAME_CHARS.sub("_", "-".join(parts))


def workflow_jobs(
    root: str | os.PathLike[str] = ".", configfile: str = DEFAULT_CONFIGFILE
) -> list[Job]:
    """Every job of the workflow (``forceall`` DAG of the default target) for ``configfile``."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        DAGSettings,
        OutputSettings,
        ResourceSettings,
        StorageSettings,
        WorkflowSettings,
    )

    root = Path(root).resolve()
    cwd = Path.cwd()
    os.chdir(root)
    try:
        sink = io.StringIO()
        with (
            contextlib.redirect_stdout(sink),
            SnakemakeApi(OutputSettings(quiet={"all"})) as api,
        ):
            wapi = api.workflow(
                resource_settings=ResourceSettings(cores=1),
                config_settings=ConfigSettings(
                    configfiles=[] if configfile == DEFAULT_CONFIGFILE else [root / configfile]
                ),
                storage_settings=StorageSettings(),
                workflow_settings=WorkflowSettings(),
                snakefile=root / "Snakefile",
                workdir=root,
            )
            wapi.dag(DAGSettings(forceall=True))
            workflow = wapi._workflow  # the DAG API has no public "list jobs"
            workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
            workflow._build_dag()
            jobs = [_job(job, workflow.config) for job in workflow.dag.jobs if job.output]
    finally:
        os.chdir(cwd)
    rule_order = {name: i for i, name in enumerate(_rule_order(jobs))}
    return sorted(jobs, key=lambda j: (rule_order[j.rule], j.stage_name))


def tracked_keys(given: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The config keys DVC tracks for a job given ``params.config``: a whole section by name, or
    ``section.key`` for each key when the job is given only part of a section (so that, say, a
    retraining does not rerun when a setting it never sees changes)."""
    keys: list[str] = []
    for name, value in given.items():
        full = config[name]
        if isinstance(value, dict) and isinstance(full, dict) and set(value) < set(full):
            keys += [f"{name}.{k}" for k in value]
        else:
            keys.append(name)
    return keys


def _job(job: Any, config: dict[str, Any]) -> Job:
    """The :class:`Job` of one Snakemake DAG job."""
    params = dict(job.params.items())
    code = [str(p) for p in dict(job.input.items()).get("code", [])]
    inputs = [str(p) for p in job.input if str(p) not in set(code)]
    return Job(
        rule=job.rule.name,
        wildcards={k: str(v) for k, v in job.wildcards.items()},
        inputs=sorted(set(inputs)),
        code=sorted(set(code)),
        outputs=[str(p) for p in job.output],
        config_keys=tracked_keys(params.get("config") or {}, config),
        metrics=list(params.get("metrics") or []),
        plots=dict(params.get("plots") or {}),
        entry=params.get("entry"),
    )


def _rule_order(jobs: Sequence[Job]) -> list[str]:
    """Rules in topological order (producers first), ties by name: a stable dvc.yaml."""
    producer = {out: job.rule for job in jobs for out in job.outputs}
    upstream: dict[str, set[str]] = {job.rule: set() for job in jobs}
    for job in jobs:
        upstream[job.rule] |= {producer[p] for p in job.inputs if p in producer} - {job.rule}
    order: list[str] = []
    while len(order) < len(upstream):
        ready = sorted(r for r, ups in upstream.items() if r not in order and ups <= set(order))
        if not ready:
            raise RuntimeError("cycle in the rule graph")
        order.append(ready[0])
    return order


def package_files(directory: Path) -> set[str]:
    """Files of a library directory as ``code_files`` in rules/common.smk lists them."""
    return {
        str(p)
        for p in directory.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def code_deps(files: Sequence[str], root: str | os.PathLike[str] = ".") -> list[str]:
    """Library files -> DVC deps: a whole subpackage becomes its directory.

    A subpackage the rule uses only in part, the package root and ``workflow/`` (whose
    dvc_sync/audit code changes no artifact) stay single files.
    """
    by_package: dict[str, set[str]] = {}
    deps: set[str] = set()
    for f in files:
        path = Path(f)
        parts = path.relative_to(PACKAGE_DIR).parts if path.is_relative_to(PACKAGE_DIR) else ()
        if len(parts) > 1 and parts[0] != "workflow":
            by_package.setdefault(f"{PACKAGE_DIR}/{parts[0]}", set()).add(f)
        else:
            deps.add(f)
    cwd = Path.cwd()
    os.chdir(root)
    try:
        for package, used in by_package.items():
            deps |= {package} if used == package_files(Path(package)) else used
    finally:
        os.chdir(cwd)
    return sorted(deps)


def snakemake_cmd(job: Job, configfile: str) -> str:
    parts = ["snakemake", "--cores", "all"]
    if configfile != DEFAULT_CONFIGFILE:
        parts += ["--configfile", configfile]
    parts += ["--allowed-rules", job.rule, "--forcerun", job.rule, "--", *job.outputs]
    return " ".join(parts)


def build_dvc_yaml(
    jobs: Sequence[Job],
    configfile: str = DEFAULT_CONFIGFILE,
    root: str | os.PathLike[str] = ".",
) -> dict[str, Any]:
    stages: dict[str, Any] = {}
    metrics: list[str] = []
    plots: list[dict[str, Any]] = []
    for job in jobs:
        stage: dict[str, Any] = {"cmd": snakemake_cmd(job, configfile)}
        stage["deps"] = [*job.inputs, *code_deps(job.code, root), STAGE_SCRIPT]
        if job.config_keys:
            stage["params"] = [{configfile: list(job.config_keys)}]
        stage["outs"] = list(job.outputs)
        if job.stage_name in stages:
            raise ValueError(f"two jobs map to the DVC stage name {job.stage_name!r}")
        stages[job.stage_name] = stage
        for out in job.outputs:
            metrics += [f"{out}/{m}" for m in job.metrics]
            plots += [{f"{out}/{p}": dict(spec or {})} for p, spec in job.plots.items()]
    doc: dict[str, Any] = {"stages": stages}
    if metrics:
        doc["metrics"] = metrics
    if plots:
        doc["plots"] = plots
    return doc


def render(root: str | os.PathLike[str] = ".", configfile: str = DEFAULT_CONFIGFILE) -> str:
    """The text of dvc.yaml for the workflow in ``root`` and ``configfile``."""
    doc = build_dvc_yaml(workflow_jobs(root, configfile), configfile, root)
    body = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, width=1000)
    return HEADER.format(configfile=configfile) + body


def sync(
    root: str | os.PathLike[str] = ".", configfile: str = DEFAULT_CONFIGFILE, check: bool = False
) -> bool:
    """Write dvc.yaml (or, with ``check``, only compare). Returns True when it was up to date."""
    path = Path(root) / "dvc.yaml"
    text = render(root, configfile)
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if check or current == text:
        return current == text
    from llm_influence.utils.io import write_text

    write_text(path, text)
    return False


# ---------------------------------------------------------------------------------------------
# dvc commit after a successful Snakemake run (called from the Snakefile's onsuccess handler)


def tracked_configfile(root: str | os.PathLike[str] = ".") -> str | None:
    path = Path(root) / "dvc.yaml"
    if not path.exists():
        return None
    match = _CONFIGFILE_RE.search(path.read_text(encoding="utf-8"))
    return match.group(1) if match else DEFAULT_CONFIGFILE


def expected_config(root: Path, configfile: str) -> dict[str, Any]:
    """The config Snakemake builds for ``--configfile configfile`` (merged over the default)."""
    from snakemake.utils import update_config

    def load(name: str) -> dict[str, Any]:
        with open(root / name, encoding="utf-8") as fh:
            return yaml.safe_load(fh) or {}

    merged = load(DEFAULT_CONFIGFILE)
    if configfile != DEFAULT_CONFIGFILE:
        update_config(merged, load(configfile))
    return merged


def _produced_since(outputs: Sequence[str], root: Path, since: float) -> bool:
    """All outputs exist and were written by a job that finished after ``since``."""
    for out in outputs:
        path = root / out
        if not path.exists():
            return False
        prov = path / "provenance.json"
        if path.is_dir():
            if not prov.exists():
                return False
            end = float(json.loads(prov.read_text(encoding="utf-8")).get("end_timestamp", 0))
        else:
            end = path.stat().st_mtime
        if end < since:
            return False
    return True


def dvc_env() -> dict[str, str]:
    return {**os.environ, "DVC_NO_ANALYTICS": "1"}


def commit_after_run(
    config: Mapping[str, Any], since: float, root: str | os.PathLike[str] = "."
) -> list[str]:
    """``dvc commit -f`` the stages whose outputs this run produced; returns their names.

    Skipped when DVC launched Snakemake (``DVC_STAGE`` set: DVC records the stage itself and holds
    its lock), outside a DVC repo, with ``dvc_commit: false`` in the config, and when the run's
    config is not the one dvc.yaml tracks (dvc.lock would record values that did not make the
    outputs; regenerate dvc.yaml with ``llm-influence dvc-sync --configfile`` to track another).
    """
    root = Path(root)

    def note(msg: str) -> None:
        print(f"[dvc] {msg}", file=sys.stderr)

    if os.environ.get("DVC_STAGE"):
        return []
    if not config["dvc_commit"]:
        note("dvc commit skipped (dvc_commit: false)")
        return []
    if not (root / ".dvc").is_dir() or not (root / "dvc.yaml").exists():
        return []
    configfile = tracked_configfile(root) or DEFAULT_CONFIGFILE
    if dict(config) != expected_config(root, configfile):
        note(
            f"dvc commit skipped: this run's config is not {configfile}, which dvc.yaml tracks "
            f"(see `llm-influence dvc-sync --configfile`)"
        )
        return []
    with open(root / "dvc.yaml", encoding="utf-8") as fh:
        stages = (yaml.safe_load(fh) or {}).get("stages", {})
    ran = [
        name
        for name, stage in stages.items()
        if _produced_since([str(o) for o in stage.get("outs", [])], root, since)
    ]
    if not ran:
        return []
    note(f"recording {len(ran)} stage(s) in dvc.lock and the cache: {' '.join(ran)}")
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "commit", "--force", "--quiet", *ran],
        cwd=root,
        env=dvc_env(),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        note(f"dvc commit failed (outputs are fine; run `dvc commit -f` by hand):\n{proc.stderr}")
        return []
    return ran
