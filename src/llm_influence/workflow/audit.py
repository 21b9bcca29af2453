"""``llm-influence audit``: every DVC-tracked artifact, its hash on disk against ``dvc.lock``, and
what made it (stage, config values, code version, provenance record).

Status of an artifact:

- ``ok``: on disk and identical to what ``dvc.lock`` records;
- ``modified``: on disk but its hash differs from ``dvc.lock``;
- ``missing``: ``dvc.lock`` records it, the workspace does not have it (``dvc pull``/``checkout``);
- ``not yet committed``: declared in ``dvc.yaml`` but not in ``dvc.lock``;
- ``drift``: identical to ``dvc.lock``, but its provenance record names package (or Python)
  versions other than the installed ones, so a rerun here may not reproduce it. ``drift`` lists
  them (``{package: {"recorded": ..., "installed": ...}}``) whatever the status;
  ``llm-influence audit --strict`` fails on drift, plain ``audit`` only reports it.

Hashes are DVC's own (``md5``; for a directory the md5 of its ``.dir`` listing, honouring
``.dvcignore``), computed with DVC's library, so they compare directly with ``dvc.lock``.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_influence.workflow.provenance import PROVENANCE_FILE, code_hash, package_versions

OK, MODIFIED, MISSING, UNCOMMITTED, DRIFT = (
    "ok",
    "modified",
    "missing",
    "not yet committed",
    "drift",
)


@dataclass
class Artifact:
    path: str
    stage: str
    rule: str | None
    status: str
    hash_lock: str | None
    hash_disk: str | None
    params: dict[str, Any] = field(default_factory=dict)  # as recorded in dvc.lock
    code_hash: str | None = None  # from provenance.json
    code_current: bool | None = None  # the code files still hash to code_hash
    provenance: dict[str, Any] | None = None
    drift: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def failed(self, strict: bool = False) -> bool:
        """Whether this artifact makes ``audit`` exit non-zero (drift only with ``strict``)."""
        return self.status not in (OK, DRIFT) or (strict and bool(self.drift))


def version_drift(prov: dict[str, Any] | None) -> dict[str, dict[str, str | None]]:
    """Packages (and Python) whose version in ``prov`` differs from the installed one."""
    if not prov:
        return {}
    recorded = dict(prov.get("packages") or {})
    installed = package_versions(recorded)
    drift = {
        name: {"recorded": recorded[name], "installed": installed[name]}
        for name in sorted(recorded)
        if recorded[name] != installed[name]
    }
    if prov.get("python") and prov["python"] != platform.python_version():
        drift["python"] = {"recorded": prov["python"], "installed": platform.python_version()}
    return drift


def _load_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


class _Hasher:
    """DVC's md5 of a file or directory, through dvc-data with the repo's .dvcignore."""

    def __init__(self, root: Path):
        from dvc.repo import Repo

        self.repo = Repo(str(root))

    def __call__(self, path: Path) -> str:
        from dvc_data.hashfile.build import build

        _, _, obj = build(
            self.repo.cache.local,
            str(path.resolve()),
            self.repo.fs,
            "md5",
            dry_run=True,
            ignore=self.repo.dvcignore,
        )
        return obj.hash_info.value

    def close(self) -> None:
        self.repo.close()


def _provenance(path: Path) -> dict[str, Any] | None:
    prov = path / PROVENANCE_FILE if path.is_dir() else None
    if prov is None or not prov.exists():
        return None
    try:
        return json.loads(prov.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def audit(root: str | os.PathLike[str] = ".") -> list[Artifact]:
    """One :class:`Artifact` per output declared in ``dvc.yaml``."""
    root = Path(root)
    stages = _load_yaml(root / "dvc.yaml").get("stages", {})
    locked = _load_yaml(root / "dvc.lock").get("stages", {})
    hasher = _Hasher(root)
    artifacts = []
    try:
        for name, stage in stages.items():
            lock = locked.get(name, {})
            lock_outs = {o["path"]: o for o in lock.get("outs", [])}
            params = {
                k: v for per_file in lock.get("params", {}).values() for k, v in per_file.items()
            }
            for out in stage.get("outs", []):
                out = next(iter(out)) if isinstance(out, dict) else str(out)
                path = root / out
                hash_lock = lock_outs.get(out, {}).get("md5")
                hash_disk = hasher(path) if path.exists() else None
                if hash_lock is None:
                    status = UNCOMMITTED
                elif hash_disk is None:
                    status = MISSING
                elif hash_disk != hash_lock:
                    status = MODIFIED
                else:
                    status = OK
                prov = _provenance(path) if path.exists() else None
                drift = version_drift(prov)
                if status == OK and drift:
                    status = DRIFT
                code = (prov or {}).get("code", {})
                current = None
                if code.get("files") and all((root / f).exists() for f in code["files"]):
                    cwd = Path.cwd()
                    os.chdir(root)
                    try:
                        current = code_hash(code["files"]) == code.get("hash")
                    finally:
                        os.chdir(cwd)
                artifacts.append(
                    Artifact(
                        path=out,
                        stage=name,
                        rule=(prov or {}).get("rule"),
                        status=status,
                        hash_lock=hash_lock,
                        hash_disk=hash_disk,
                        params=params,
                        code_hash=code.get("hash"),
                        code_current=current,
                        provenance=prov,
                        drift=drift,
                    )
                )
    finally:
        hasher.close()
    return artifacts


def to_json(artifacts: list[Artifact]) -> str:
    return json.dumps([asdict(a) for a in artifacts], indent=2, sort_keys=True, default=str)


def _drift_text(drift: dict[str, dict[str, str | None]]) -> str:
    return ", ".join(
        f"{n} {d['recorded']} -> {d['installed'] or 'not installed'}" for n, d in drift.items()
    )


def print_table(artifacts: list[Artifact], strict: bool = False) -> None:
    from rich.console import Console
    from rich.table import Table

    colours = {
        OK: "green",
        MODIFIED: "red",
        MISSING: "red",
        UNCOMMITTED: "yellow",
        DRIFT: "red" if strict else "yellow",
    }
    table = Table(title="DVC-tracked artifacts", show_lines=False)
    columns = (
        "artifact",
        "stage",
        "status",
        "hash (disk / dvc.lock)",
        "code",
        "versions",
        "made by",
    )
    for column in columns:
        table.add_column(column, overflow="fold")
    for a in artifacts:
        hashes = (a.hash_disk or "-")[:12]
        if a.hash_lock != a.hash_disk:
            hashes += f" / {(a.hash_lock or '-')[:12]}"
        code = "-" if a.code_hash is None else a.code_hash[:12]
        if a.code_current is False:
            code += " (code changed since)"
        prov = a.provenance or {}
        git = prov.get("git", {})
        made = "-"
        if prov:
            made = (
                f"{prov.get('end_time', '?')[:19]} on {prov.get('hostname', '?')} "
                f"({prov.get('device', {}).get('resolved', '?')}, {prov.get('wall_seconds', '?')} s), "
                f"git {str(git.get('commit'))[:8]}{'+dirty' if git.get('dirty') else ''}, "
                f"seed {prov.get('seed')}, torch {prov.get('packages', {}).get('torch')}"
            )
        versions = "-" if a.provenance is None else (_drift_text(a.drift) or "as installed")
        table.add_row(
            a.path, a.stage, f"[{colours[a.status]}]{a.status}[/]", hashes, code, versions, made
        )
    console = Console()
    console.print(table)
    bad = [a for a in artifacts if a.status not in (OK, DRIFT)]
    if bad:
        console.print(f"[red]{len(bad)} artifact(s) do not match dvc.lock[/]")
    else:
        console.print(f"[green]all {len(artifacts)} artifact(s) match dvc.lock[/]")
    drifted = [a for a in artifacts if a.drift]
    if drifted:
        packages = sorted({name for a in drifted for name in a.drift})
        console.print(
            f"[{colours[DRIFT]}]{len(drifted)} artifact(s) were made with other versions than "
            f"the installed ones ({', '.join(packages)})"
            + ("" if strict else "; `--strict` makes this an error")
            + "[/]"
        )
