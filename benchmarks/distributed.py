"""Throughput of data-parallel training: one process with several threads against several
processes (``torchrun``) with one thread each, on the same global batches.

Times :meth:`~spikeloop.training.Trainer.train_epoch` over ``--batches`` global batches after
a warm-up of two (nothing is written: no run folder), and, under ``torchrun``, the gloo
all-reduce of one step's gradients (as many float32 values as the network has trainable
parameters). Rank 0 prints one JSON record.

Usage: one setting (a plain process, or under torchrun)::

    PYTHONPATH=src .venv/bin/python benchmarks/distributed.py configs/yinyang.yaml run.threads=2
    PYTHONPATH=src .venv/bin/torchrun --nproc-per-node 2 benchmarks/distributed.py \\
        configs/yinyang.yaml run.threads=1

or every setting of docs/distributed.md's table (1 × 1, 1 × 2 and 2 × 1 processes × threads,
for the config's own backend and the simulator; ``make bench-distributed``), written to
``benchmarks/results/distributed.{json,md}``::

    .venv/bin/python benchmarks/distributed.py configs/yinyang.yaml --matrix --batches 40
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from spikeloop.training import Trainer, load_config
from spikeloop.training.distributed import grads_of

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ((1, 1), (1, 2), (2, 1))
"""(processes, threads per process) of the matrix."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one(config: str, overrides: list[str], processes: int, threads: int,
         batches: int) -> dict:
    """One setting in fresh processes: its JSON record (rank 0's)."""
    me = [str(Path(__file__).resolve()), config, *overrides, f"run.threads={threads}",
          "--batches", str(batches)]
    if processes == 1:
        cmd = [sys.executable, *me]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
               str(processes), "--master-addr", "127.0.0.1", "--master-port",
               str(_free_port()), *me]
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False,
                          timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def matrix(config: str, overrides: list[str], batches: int, out: Path) -> dict:
    """Every setting of :data:`SETTINGS` for the config's own backend and (if that is another)
    the simulator."""
    rows = []
    own = load_config(config, overrides).train.backend
    for extra in ([], ["train.backend=sim"]) if own != "sim" else ([],):
        for processes, threads in SETTINGS:
            load = _load_average()
            row = _one(config, [*overrides, *extra], processes, threads, batches)
            row["load_average_before"] = load
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "torch": torch.__version__, "batches": batches,
        "command": " ".join(["benchmarks/distributed.py", config, *overrides, "--matrix",
                             "--batches", str(batches)]),
        "rows": rows,
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    return result


def markdown(result: dict) -> str:
    """The table of docs/distributed.md, from a :func:`matrix` result."""
    lines = [
        f"{result['machine']} · {result['date']} · torch {result['torch']} · "
        f"`{result['command']}` · {result['batches']} steps after two warm-up steps",
        "",
        "| backend | processes × threads | ms per step | samples/s | speed-up over 1 × 1 | "
        "gloo all-reduce | load average before |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    base: dict[str, float] = {}
    for r in result["rows"]:
        ms = r["seconds_per_step"] * 1e3
        if r["processes"] == 1 and r["threads_per_process"] == 1:
            base[r["backend"]] = ms
        speedup = base[r["backend"]] / ms if r["backend"] in base else float("nan")
        reduce = (f"{r['allreduce_ms']:.2f} ms ({r['gradient_bytes'] / 1e3:.1f} kB)"
                  if "allreduce_ms" in r else "–")
        load = r.get("load_average_before")
        lines.append(f"| {r['backend']} | {r['processes']} × {r['threads_per_process']} | "
                     f"{ms:.1f} | {r['samples_per_second']:.0f} | {speedup:.2f}× | {reduce} | "
                     f"{'–' if load is None else f'{load:.2f}'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--matrix", action="store_true",
                        help="run every setting in fresh processes and write the results")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "distributed"))
    args = parser.parse_args()
    if args.matrix:
        matrix(args.config, args.overrides, args.batches, Path(args.out))
        return
    cfg = load_config(args.config, [*args.overrides, "train.progress=false"])
    trainer = Trainer(cfg)

    def epoch(batches: int) -> float:
        trainer.config = dataclasses.replace(
            cfg, train=dataclasses.replace(cfg.train, max_batches=batches))
        t0 = time.perf_counter()
        trainer.train_epoch()
        return time.perf_counter() - t0

    epoch(2)
    seconds = epoch(args.batches)
    params = grads_of(trainer.network.parameters())
    n = sum(p.numel() for p in params)
    record = {
        "config": args.config, "overrides": args.overrides,
        "backend": trainer.backend.name,
        "processes": 1 if trainer.world is None else trainer.world.size,
        "threads_per_process": torch.get_num_threads(),
        "global_batch": cfg.train.batch_size,
        "seconds_per_step": seconds / args.batches,
        "samples_per_second": cfg.train.batch_size * args.batches / seconds,
        "trainable_parameters": n, "gradient_bytes": 4 * n,
    }
    if trainer.world is not None:
        buffer = torch.zeros(n)
        dist.all_reduce(buffer)
        t0 = time.perf_counter()
        for _ in range(50):
            dist.all_reduce(buffer)
        record["allreduce_ms"] = (time.perf_counter() - t0) / 50 * 1e3
    if trainer.world is None or trainer.world.main:
        print(json.dumps(record))
    trainer.close()


if __name__ == "__main__":
    main()
