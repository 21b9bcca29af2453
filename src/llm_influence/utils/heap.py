"""Keep a shard job's resident memory flat in the number of batches it scores.

glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB), so after
the first batch every per-batch tensor of a few hundred KiB to a few MiB comes from the heap. Freed
heap chunks under a live small allocation cannot go back to the system, and a job that scores 16k
sequences ends up holding ~10 % more than one that scores 1k (docs/benchmarks.md, memory rows).
Fixing the threshold turns those tensors back into their own mappings, returned on free.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
DEFAULT_THRESHOLD = 64 * 1024  # bytes: what the memory rows were measured with


def fix_mmap_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Set glibc's mmap threshold for this process; True when it was set, False where there is no
    glibc (macOS, musl): there the call changes nothing."""
    if threshold <= 0:
        raise ValueError(f"mmap threshold must be a positive number of bytes, got {threshold}")
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, int(threshold)))
