"""Compare a run's results with a reference run: ``results/summary.md`` text and every number of
``results/studies/*/metrics.json`` and ``results/tfidf/metrics.json``.

    python tools/compare_results.py REFERENCE_RESULTS_DIR [RESULTS_DIR] [--rtol 0]

Keys that measure the machine, not the result (``seconds``, ``*_seconds``) are ignored. Exit
status 1 and one line per difference when the runs disagree. Used to check that a refactor
changes no output (issue 9): run the smoke config before and after, compare.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

IGNORED = ("seconds",)


def _ignored(key: str) -> bool:
    return any(key == s or key.endswith("_" + s) for s in IGNORED)


def diff_values(a: Any, b: Any, where: str, rtol: float) -> list[str]:
    """Differences between two JSON values (numbers within ``rtol`` are equal; NaN == NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if _ignored(key):
                continue
            if key not in a or key not in b:
                out.append(f"{where}.{key}: only in {'reference' if key in a else 'run'}")
            else:
                out += diff_values(a[key], b[key], f"{where}.{key}", rtol)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} != {len(b)}"]
        return [
            d
            for i, (x, y) in enumerate(zip(a, b))
            for d in diff_values(x, y, f"{where}[{i}]", rtol)
        ]
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool):
        if math.isclose(a, b, rel_tol=rtol, abs_tol=0.0) or (a != a and b != b):
            return []
        return [f"{where}: {a!r} != {b!r}"]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def metrics_files(results: Path) -> dict[str, Path]:
    files = {f"studies/{p.parent.name}": p for p in sorted(results.glob("studies/*/metrics.json"))}
    if (results / "tfidf" / "metrics.json").is_file():
        files["tfidf"] = results / "tfidf" / "metrics.json"
    return files


def compare(reference: Path, results: Path, rtol: float = 0.0) -> list[str]:
    out = []
    ref_md, run_md = reference / "summary.md", results / "summary.md"
    if ref_md.read_text(encoding="utf-8") != run_md.read_text(encoding="utf-8"):
        out.append("summary.md: text differs")
    ref, run = metrics_files(reference), metrics_files(results)
    for name in sorted(set(ref) | set(run)):
        if name not in ref or name not in run:
            out.append(f"{name}/metrics.json: only in {'reference' if name in ref else 'run'}")
            continue
        a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (ref[name], run[name]))
        out += diff_values(a, b, name, rtol)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path)
    parser.add_argument("results", type=Path, nargs="?", default=Path("results"))
    parser.add_argument("--rtol", type=float, default=0.0)
    args = parser.parse_args(argv)
    differences = compare(args.reference, args.results, args.rtol)
    for line in differences:
        print(line)
    print(f"{len(differences)} difference(s)" if differences else "identical")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
