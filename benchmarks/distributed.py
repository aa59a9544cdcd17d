"""Throughput of data-parallel training: one process with several threads against several
processes (``torchrun``) with one thread each, on the same global batches.

Times :meth:`~spikeloop.training.Trainer.train_epoch` over ``--batches`` global batches after
a warm-up of two (nothing is written: no run folder), and, under ``torchrun``, the gloo
all-reduce of one step's gradients (as many float32 values as the network has trainable
parameters). Rank 0 prints one JSON record.

Usage (docs/distributed.md quotes these)::

    PYTHONPATH=src .venv/bin/python benchmarks/distributed.py configs/yinyang.yaml run.threads=2
    PYTHONPATH=src .venv/bin/torchrun --nproc-per-node 2 benchmarks/distributed.py \\
        configs/yinyang.yaml run.threads=1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch
import torch.distributed as dist

from spikeloop.training import Trainer, load_config
from spikeloop.training.distributed import grads_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args()
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
