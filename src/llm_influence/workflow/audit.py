"""``llm-influence audit``: every DVC-tracked artifact, its hash on disk against ``dvc.lock``, and
what made it (stage, config values, code version, provenance record).

Status of an artifact:

- ``ok``: on disk and identical to what ``dvc.lock`` records;
- ``modified``: on disk but its hash differs from ``dvc.lock``;
- ``missing``: ``dvc.lock`` records it, the workspace does not have it (``dvc pull``/``checkout``);
- ``not yet committed``: declared in ``dvc.yaml`` but not in ``dvc.lock``.

Hashes are DVC's own (``md5``; for a directory the md5 of its ``.dir`` listing, honouring
``.dvcignore``), computed with DVC's library, so they compare directly with ``dvc.lock``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_influence.workflow.provenance import PROVENANCE_FILE, code_hash

OK, MODIFIED, MISSING, UNCOMMITTED = "ok", "modified", "missing", "not yet committed"


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
                    )
                )
    finally:
        hasher.close()
    return artifacts


def to_json(artifacts: list[Artifact]) -> str:
    return json.dumps([asdict(a) for a in artifacts], indent=2, sort_keys=True, default=str)


def print_table(artifacts: list[Artifact]) -> None:
    from rich.console import Console
    from rich.table import Table

    colours = {OK: "green", MODIFIED: "red", MISSING: "red", UNCOMMITTED: "yellow"}
    table = Table(title="DVC-tracked artifacts", show_lines=False)
    for column in ("artifact", "stage", "status", "hash (disk / dvc.lock)", "code", "made by"):
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
        table.add_row(a.path, a.stage, f"[{colours[a.status]}]{a.status}[/]", hashes, code, made)
    console = Console()
    console.print(table)
    bad = [a for a in artifacts if a.status != OK]
    if bad:
        console.print(f"[red]{len(bad)} artifact(s) do not match dvc.lock[/]")
    else:
        console.print(f"[green]all {len(artifacts)} artifact(s) match dvc.lock[/]")
