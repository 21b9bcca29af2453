"""Throwaway stage entry points for the plumbing tests (no torch work, deterministic)."""

from __future__ import annotations

import hashlib
import os
import time

from llm_influence.workflow.context import StageContext


def make_source(ctx: StageContext) -> dict:
    out = ctx.output["source"]
    n = int(ctx.section("source")["n"])
    for i in range(n):
        (out / f"part{i:03d}.txt").write_text(f"seed {ctx.seed} part {i}\n" * (i + 1))
        slow = float(os.environ.get("TOY_SLEEP", "0"))
        if slow:
            time.sleep(slow)
    (out / "metrics.json").write_text(f'{{"n": {n}}}\n')
    return {"n": n}


def digest(ctx: StageContext) -> dict:
    src = ctx.input["source"]
    out = ctx.output["digest"]
    h = hashlib.sha256()
    for path in sorted(src.glob("part*.txt")):
        h.update(path.read_bytes())
    (out / "digest.txt").write_text(h.hexdigest() + "\n")
    return {"digest": h.hexdigest()}


def fail(ctx: StageContext) -> None:
    (ctx.output["digest"] / "half.txt").write_text("half written")
    raise RuntimeError("stage failed on purpose")


def write_file(ctx: StageContext) -> None:
    ctx.output["summary"].write_text("# summary\n")


TORCH_SEEN = False  # what a monkeypatched ``torch_loaded`` reports (the test process has torch)


def import_torch_late(ctx: StageContext) -> dict:
    """Stands for a stage that imports torch inside its body, after the runner chose not to seed it."""
    global TORCH_SEEN
    TORCH_SEEN = True
    (ctx.output["source"] / "done.txt").write_text("ok\n")
    return {}
