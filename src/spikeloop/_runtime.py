"""Process-level tuning applied when spikeloop first runs a time loop on the CPU.

glibc's ``malloc`` serves large blocks (above a threshold that adapts up to 32 MiB) with
``mmap`` and returns freed memory at the top of the heap to the OS. A time loop allocates the
same few [T, B, N] tensors (megabytes each) every step, so every step pays for fresh pages: on
the 2-core benchmark machine a fused loop over 100 × 100 × 240 neurons took 10.6 ms, 7 ms of
which were ~4 700 page faults, against 3.6 ms with the memory kept. :func:`tune_allocator` raises
both thresholds (``mmap`` at 256 MiB, trim at 1 GiB) so freed blocks are reused. It runs when
spikeloop first runs a population's time loop on the CPU
(:func:`~spikeloop.kernels.loop.run_population`, native or torch engine), not at import:
memory a program allocates and frees before spikeloop runs anything (e.g. while generating its
data) is returned to the OS as glibc would, and a program that imports spikeloop only to convert
or inspect networks keeps glibc's defaults.

The price is memory: the process keeps up to 1 GiB of freed memory for reuse, and blocks of
different sizes fragment the heap. For the speed benchmark's workload the peak is the same
either way (374 vs 379 MB); for long sequences (T = 5000 / 10000, batch 16; measured when the
tuning still ran at import) a train step is 38 / 34 % faster and its peak 27 / 13 % higher
(1391 vs 1092 MB, 2099 vs 1858 MB). Where memory is what limits, use recompute
(``checkpoint=K``) or ``SPIKELOOP_MALLOC=0``.

Set ``SPIKELOOP_MALLOC=0`` before importing spikeloop to keep glibc's defaults. Other C libraries
(musl, macOS, Windows) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 1 << 30

_applied: bool | None = None


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds once per process; ``True`` if they are set."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("SPIKELOOP_MALLOC", "1") == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    except (OSError, AttributeError):
        return False
    _applied = ok
    return ok

