"""Console script ``llm-influence``: dvc.yaml sync, artifact audit, Snakemake/DVC realignment."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def _dvc_sync(args: argparse.Namespace) -> int:
    from llm_influence.workflow.dvc_sync import sync

    up_to_date = sync(args.root, args.configfile, check=args.check)
    if args.check:
        if not up_to_date:
            print(
                "dvc.yaml is out of date with the Snakefile: run `llm-influence dvc-sync`",
                file=sys.stderr,
            )
            return 1
        print("dvc.yaml is up to date")
        return 0
    print("dvc.yaml is up to date" if up_to_date else "dvc.yaml written")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from llm_influence.workflow.audit import audit, print_table, to_json

    artifacts = audit(args.root)
    if args.json:
        print(to_json(artifacts))
    else:
        print_table(artifacts, strict=args.strict)
    return 0 if artifacts and not any(a.failed(args.strict) for a in artifacts) else 1


def _realign(args: argparse.Namespace) -> int:
    """After dvc pull/checkout: check DVC is clean, then touch outputs so Snakemake agrees."""
    from llm_influence.workflow.dvc_sync import DEFAULT_CONFIGFILE, dvc_env, tracked_configfile

    status = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--json"],
        cwd=args.root,
        env=dvc_env(),
        capture_output=True,
        text=True,
    )
    if status.returncode != 0:
        print(status.stderr, file=sys.stderr)
        return status.returncode
    changed = json.loads(status.stdout or "{}")
    if changed:
        print(
            "dvc status is not clean; run `dvc pull` (or `dvc checkout`) first:\n"
            + json.dumps(changed, indent=2),
            file=sys.stderr,
        )
        return 1
    configfile = tracked_configfile(args.root) or DEFAULT_CONFIGFILE
    cmd = ["snakemake", "--touch", "--forceall", "--cores", "1"]
    if configfile != DEFAULT_CONFIGFILE:
        cmd += ["--configfile", configfile]
    cmd += list(args.snakemake_args)
    snakemake = Path(sys.executable).with_name("snakemake")
    if snakemake.exists():
        cmd[0] = str(snakemake)
    print("dvc status is clean; " + " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, cwd=args.root, env=dvc_env()).returncode


# The subcommands: name, help, handler and its arguments (name or flag, add_argument keywords).
Arguments = tuple[tuple[str, dict[str, Any]], ...]
COMMANDS: tuple[tuple[str, str, Callable[[argparse.Namespace], int], Arguments], ...] = (
    ("dvc-sync", "write dvc.yaml from the Snakefile (or --check it)", _dvc_sync, (
        ("--check", {"action": "store_true", "help": "only check; exit 1 when it drifted"}),
        ("--configfile", {"default": "config/config.yaml",
                          "help": "config whose DAG and params dvc.yaml tracks (default: config/config.yaml)"}),
    )),
    ("audit", "hash on disk vs dvc.lock and provenance of every artifact", _audit, (
        ("--json", {"action": "store_true", "help": "machine-readable output"}),
        ("--strict", {"action": "store_true",
                      "help": "also fail on drift: artifacts made with other package versions than installed"}),
    )),
    ("realign", "after dvc pull/checkout: check `dvc status` is clean, then `snakemake --touch`", _realign, (
        ("snakemake_args", {"nargs": argparse.REMAINDER, "help": "extra arguments for snakemake"}),
    )),
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-influence", description=__doc__)
    parser.add_argument("--root", default=".", help="repository root (default: .)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text, handler, arguments in COMMANDS:
        p = sub.add_parser(name, help=help_text)
        for argument, keywords in arguments:
            p.add_argument(argument, **keywords)
        p.set_defaults(func=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
