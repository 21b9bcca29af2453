"""The lock file (requirements/py311-cpu.txt) agrees with pyproject.toml and environment.yml.

Cheap, offline checks; `tools/lock --check` (CI) re-resolves it against the package index.
"""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from workflow_helpers import REPO

LOCK = REPO / "requirements" / "py311-cpu.txt"
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)")


def _entries() -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of every pin in the lock."""
    entries: dict[str, tuple[str, list[str]]] = {}
    name = None
    for line in LOCK.read_text().splitlines():
        match = PIN.match(line)
        if match:
            name = canonicalize_name(match.group(1))
            entries[name] = (match.group(2), [])
        elif name and line.strip().startswith("--hash=sha256:"):
            entries[name][1].append(line.strip().split(":", 1)[1].rstrip(" \\"))
    return entries


def test_every_pin_is_exact_and_hashed() -> None:
    entries = _entries()
    assert len(entries) > 50
    text = LOCK.read_text()
    assert "tools/lock" in text.splitlines()[1]  # the command that made it
    for name, (version, hashes) in entries.items():
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), name
        Version(version)
    assert entries["torch"][0] == "2.13.0+cpu"
    assert not any(name.startswith("nvidia-") or name == "torchvision" for name in entries)


def test_lock_satisfies_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    entries = _entries()
    wanted = [*project["dependencies"]]
    for extra in ("dev", "slurm", "lock"):
        wanted += project["optional-dependencies"][extra]
    for spec in map(Requirement, wanted):
        name = canonicalize_name(spec.name)
        assert name in entries, f"{spec} is not in {LOCK.name}: run tools/lock"
        version = entries[name][0]
        assert spec.specifier.contains(version, prereleases=True), (
            f"{LOCK.name} pins {name}=={version}, pyproject.toml wants {spec}: run tools/lock"
        )


def test_environment_yml_pins_the_lock() -> None:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    pins = {}
    for item in pip:
        if item.startswith("--"):
            continue
        name, version = item.split("==")
        pins[canonicalize_name(name)] = version
    assert pins == {name: version for name, (version, _) in _entries().items()}
