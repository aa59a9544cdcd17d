"""Process-level tuning: glibc's allocator (applied when spikeloop first runs a time loop on the
CPU) and the intra-op thread count (:func:`set_threads`, which the trainer calls).

glibc's ``malloc`` serves large blocks (above a threshold that adapts up to 32 MiB) with
``mmap`` and returns freed memory at the top of the heap to the OS. A time loop allocates the
same few [T, B, N] tensors (megabytes each) every step, so every step pays for fresh pages: on
the 2-core benchmark machine a fused loop over 100 × 100 × 240 neurons took 10.6 ms, 7 ms of
which were ~4 700 page faults, against 3.6 ms with the memory kept. :func:`tune_allocator` raises
both thresholds (``mmap`` at 256 MiB, trim at 1 GiB) so freed blocks are reused. It runs when
spikeloop first runs a population's time loop on the CPU
(:func:`~spikeloop.kernels.loop.run_population`, native or torch engine) or the event backend
first runs on the CPU (its step on the spoken digits allocated ~160 MB of fresh pages, 40 k page
faults, 9 % of its time), not at import:
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

from spikeloop.errors import ConfigError

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



# ---------------------------------------------------------------------------------- threads
THREADS_ENV = "SPIKELOOP_THREADS"
"""Environment variable that sets :func:`auto_threads`' answer (a positive integer)."""


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask, capped by a cgroup v2 CPU quota
    (``/sys/fs/cgroup/cpu.max``; cgroup v1 quotas are not read)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]  # noqa: SIM115
        if quota != "max":
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def auto_threads() -> tuple[int, str]:
    """The default intra-op thread count and why: half the usable cores, at least one.

    A torch operator (and each of spikeloop's OpenMP kernels) splits its work over all its
    threads and waits for the last one. When another busy process takes a core, one thread is
    descheduled for a whole time slice and every operator waits for it: with torch's default
    (one thread per core) on the 2-core CI machine a demo epoch took 14× and an EventProp epoch
    21× longer beside one other busy process (``benchmarks/results/contention.md``, ``make
    bench-contention``). Half the cores leaves room for
    one competitor of the same size. ``SPIKELOOP_THREADS=N`` overrides it.
    """
    env = os.environ.get(THREADS_ENV)
    if env is not None:
        if not env.isdigit() or int(env) < 1:
            raise ConfigError(f"{THREADS_ENV} must be a positive integer, got {env!r}")
        return int(env), f"{THREADS_ENV}={env}"
    cores = usable_cores()
    n = max(1, cores // 2)
    return n, f"auto: half of the {cores} usable cores, leaving room for other busy processes"


def set_threads(threads: int | str | None = "auto") -> tuple[int, str]:
    """Set torch's intra-op threads (which spikeloop's native kernels follow) for this process.

    ``threads``: a positive integer, or ``"auto"``/``None`` for :func:`auto_threads`. Returns the
    count and a sentence saying how it was chosen (the trainer puts it into the run summary).
    """
    import torch

    if threads is None or threads == "auto":
        n, why = auto_threads()
    elif isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1:
        n, why = threads, "run.threads"
    else:
        raise ConfigError(f"threads must be a positive integer or 'auto', got {threads!r}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n, why
