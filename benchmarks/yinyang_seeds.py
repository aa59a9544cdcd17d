"""Yin-Yang accuracy over several seeds: the README's accuracy claim comes from this script.

    python benchmarks/yinyang_seeds.py [--seeds 0 1 2] [--config configs/yinyang.yaml] [overrides]

Trains one run per seed (``runs/yinyang-seed<N>/``) and writes
``benchmarks/results/yinyang_sim.{json,md}`` with per-seed test accuracy, mean ± std and wall time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from spikeloop.training import Trainer, load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/yinyang.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="benchmarks/results/yinyang_sim")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=5")
    args = parser.parse_args()

    rows = []
    start = time.perf_counter()
    for seed in args.seeds:
        cfg = load_config(args.config, [*args.overrides, f"run.seed={seed}",
                                        f"run.name=yinyang-seed{seed}"])
        summary = Trainer(cfg).fit()
        rows.append(summary)
        print(f"seed {seed}: test accuracy {summary['test_acc']:.4f} "
              f"({summary['wall_seconds']:.0f} s)", flush=True)
    accs = [r["test_acc"] for r in rows]
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "seeds": args.seeds,
        "test_acc": accs,
        "mean": statistics.mean(accs),
        "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
        "wall_seconds_total": time.perf_counter() - start,
        "wall_seconds_per_run": [r["wall_seconds"] for r in rows],
        "seconds_per_epoch": [r["seconds_per_epoch"] for r in rows],
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                   f"torch {torch.__version__}",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "| seed | test accuracy | wall time (s) |",
        "|---:|---:|---:|",
        *[f"| {s} | {a * 100:.1f} % | {w:.0f} |"
          for s, a, w in zip(args.seeds, accs, result["wall_seconds_per_run"], strict=True)],
        f"| **mean ± std** | **{result['mean'] * 100:.1f} ± {result['std'] * 100:.1f} %** | "
        f"{result['wall_seconds_total']:.0f} total |",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
