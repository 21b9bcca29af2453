"""The shard job's heap setting: per-batch tensors freed after the batch go back to the system."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from llm_influence.utils.heap import fix_mmap_threshold

CHILD = textwrap.dedent(
    """
    import sys, torch
    from llm_influence.utils.heap import fix_mmap_threshold
    if sys.argv[1] == "fixed":
        assert fix_mmap_threshold()
    def rss():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) * 1024
    # one large block freed: glibc's dynamic threshold rises above the per-batch sizes below
    x = torch.ones(8 << 18)
    del x
    start = rss()
    batch, keep = [], []
    for _ in range(64):
        batch.append(torch.ones(1 << 18))  # 1 MiB, freed after the "batch"
        keep.append(torch.ones(16))        # a small survivor between them (a running top-k)
    del batch
    print(rss() - start)
    """
)


def _held_after_batch(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True
    )
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_fixed_threshold_returns_freed_batch_tensors_to_the_system():
    default, fixed = _held_after_batch("default"), _held_after_batch("fixed")
    assert default > 48 << 20, f"default glibc should keep the 64 MiB batch resident: {default}"
    assert fixed < 16 << 20, f"with the fixed threshold the freed batch stays resident: {fixed}"


def test_threshold_must_be_positive():
    with pytest.raises(ValueError, match="positive number of bytes, got 0"):
        fix_mmap_threshold(0)
