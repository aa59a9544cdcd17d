"""Time ONE library on one workload in this process and print the result as one JSON line.

    python -m benchmarks.speed.run_one --lib spikeloop --variant ff --mode train

``--mode train``: one step = ``zero_grad`` + forward + loss + backward + ``SGD.step``;
``--mode forward``: the forward pass under ``torch.no_grad()`` (inference). After ``--warmup``
untimed steps, ``--repeat`` steps are timed one by one with ``time.perf_counter``. Peak memory is
this process's peak resident set size (``getrusage(RUSAGE_SELF).ru_maxrss``, MB, includes the
``import torch`` baseline); ``rss_setup_mb`` is the resident size after imports, model and data
set-up, before the first step, and ``peak_delta_mb`` the difference (what the steps needed).
The hidden firing rate (spikes per neuron and step) and the loss are from one forward pass on
the initial weights, so anyone can check that the libraries simulate comparable activity; in
train mode ``grad_norm_init`` is the gradient norm on the initial weights (after the timing, on
a fresh model): spikeloop and ``torch_loop`` share weights, dynamics and surrogate, so theirs
must agree (the peers' differ by their weight scaling and surrogates).

A library that is not installed gives ``"skipped": reason``; one that fails gives ``"error"``.
Every line starts with ``SPEEDJSON `` so the caller finds it among the libraries' own prints.
``--sweep NAME=V1,V2,...`` (scaling curves) runs one fresh model per value of a workload field
(``T``, ``hidden``, ``rate``, ``batch``, ``n_in``) and prints one line per point; ``--variant``
and ``--mode`` also take comma-separated lists (the harness's ``--quick`` smoke test). A variant
with its own sizes (``shd_scale``) takes them where ``--T``/``--hidden`` are left at their
defaults (:func:`~benchmarks.speed.workload.at_variant`). When one
process runs several measurements, its peak memory is a running maximum (``shared_process``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from typing import Any

import torch
from benchmarks.speed.libs import load
from benchmarks.speed.workload import MODES, VARIANTS, Workload, at_variant, loss_fn

PREFIX = "SPEEDJSON "
_SWEEPABLE = {"T": int, "hidden": int, "batch": int, "n_in": int, "rate": float}


def _rss_mb() -> float:
    """Current resident set size of this process (MB)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MB; ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(lib: str, wl: Workload, mode: str, repeat: int, warmup: int) -> dict[str, Any]:
    """Build ``lib``'s network for ``wl`` and time ``repeat`` steps of ``mode``."""
    module = load(lib)
    record: dict[str, Any] = {"lib": lib, "mode": mode, **wl.as_dict()}
    try:
        record["version"] = module.version()
    except ImportError as exc:
        record["skipped"] = f"not installed: {exc}"
        return record
    torch.manual_seed(wl.seed)
    x, y = wl.data()
    model = module.build(wl)
    xp = model.prepare(x)
    record["notes"] = model.notes
    record["n_params"] = sum(p.numel() for p in model.parameters())

    with torch.no_grad():  # activity check on the initial weights
        logits, spikes = model.forward(xp)
        record["hidden_rate"] = float(spikes.float().mean())
        record["loss_init"] = float(loss_fn(logits, y))
        del logits, spikes

    if mode == "train":
        opt = torch.optim.SGD(model.parameters(), lr=wl.lr)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            logits, _ = model.forward(xp)
            loss_fn(logits, y).backward()
            opt.step()
    else:

        def step() -> None:
            with torch.no_grad():
                model.forward(xp)

    gc.collect()
    record["rss_setup_mb"] = _rss_mb()
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    record["warmup_s"] = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    record.update(
        median_ms=statistics.median(times), min_ms=min(times), max_ms=max(times),
        mean_ms=statistics.fmean(times), times_ms=[round(t, 3) for t in times],
        peak_rss_mb=_peak_rss_mb(), loadavg_1min=[load0, os.getloadavg()[0]],
    )
    record["peak_delta_mb"] = record["peak_rss_mb"] - record["rss_setup_mb"]
    if mode == "train":  # gradient fingerprint on the initial weights (after the peak was read)
        fresh = module.build(wl)
        logits, _ = fresh.forward(fresh.prepare(x))
        loss_fn(logits, y).backward()
        record["grad_norm_init"] = float(torch.sqrt(sum(
            (p.grad.double() ** 2).sum() for p in fresh.parameters() if p.grad is not None)))
    return record


def _emit(record: dict[str, Any]) -> None:
    print(PREFIX + json.dumps(record), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lib", required=True)
    parser.add_argument("--variant", default="ff",
                        help=f"one of {', '.join(VARIANTS)}, or a comma-separated list")
    parser.add_argument("--mode", default="train",
                        help=f"one of {', '.join(MODES)}, or a comma-separated list")
    parser.add_argument("--T", type=int, default=Workload.T)
    parser.add_argument("--batch", type=int, default=Workload.batch)
    parser.add_argument("--hidden", type=int, default=Workload.hidden)
    parser.add_argument("--n-in", type=int, default=Workload.n_in)
    parser.add_argument("--rate", type=float, default=Workload.rate)
    parser.add_argument("--seed", type=int, default=Workload.seed)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sweep", default=None, help="NAME=V1,V2,... (one fresh model each)")
    args = parser.parse_args(argv)

    variants, modes = args.variant.split(","), args.mode.split(",")
    for chosen, known in ((variants, VARIANTS), (modes, MODES)):
        if set(chosen) - set(known):
            parser.error(f"unknown {sorted(set(chosen) - set(known))}; known: {known}")
    torch.set_num_threads(args.threads)
    base = Workload(T=args.T, batch=args.batch, hidden=args.hidden, n_in=args.n_in,
                    rate=args.rate, seed=args.seed)
    points = [base]
    if args.sweep:
        name, _, values = args.sweep.partition("=")
        if name not in _SWEEPABLE or not values:
            parser.error(f"--sweep must be NAME=V1,V2,... with NAME in {sorted(_SWEEPABLE)}")
        points = [base.with_(**{name: _SWEEPABLE[name](v)}) for v in values.split(",")]
    shared = len(points) * len(variants) * len(modes) > 1
    env = {"threads": torch.get_num_threads(), "torch": torch.__version__,
           "python": platform.python_version(), "pid": os.getpid(), "shared_process": shared}
    for point in points:
        for variant in variants:
            for mode in modes:
                wl = at_variant(point, variant)
                try:
                    record = measure(args.lib, wl, mode, args.repeat, args.warmup)
                except Exception as exc:  # report, do not crash the harness
                    record = {"lib": args.lib, "mode": mode, **wl.as_dict(),
                              "error": f"{type(exc).__name__}: {exc}",
                              "traceback": traceback.format_exc(limit=-4)}
                record.update(env)
                _emit(record)
                gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
