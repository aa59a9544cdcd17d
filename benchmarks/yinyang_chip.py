"""Yin-Yang in the simulator and on the emulated analog chip: the results table of README.md.

    python benchmarks/yinyang_chip.py [--seeds 0 1 2] [--hil-epochs 20] [overrides ...]

For each seed (network initialisation *and* chip instance):
  (a) train in the simulator (``train.backend=sim``) and test there;
  (b) deploy the same weights to chip ``seed`` unchanged (map, calibrate, run) and test there;
  (c) train further with the chip in the loop from (a)'s weights and test on the chip.
It also times one simulator epoch against one in-the-loop epoch in the same process.
Writes ``benchmarks/results/yinyang_chip.{json,md}``; runs go to ``runs/chip-table-*``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.stats import mean_sd, show_mean_sd

from spikeloop.training import Trainer, load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/yinyang.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hil-epochs", type=int, default=30)
    parser.add_argument("--hil-lr", type=float, default=5e-3)
    parser.add_argument("--out", default="benchmarks/results/yinyang_chip")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=5")
    args = parser.parse_args()

    rows = []
    start = time.perf_counter()
    for seed in args.seeds:
        chip = json.dumps({"name": "chip", "seed": seed})
        base = [*args.overrides, f"run.seed={seed}"]
        sim = Trainer(load_config(args.config, [*base, "train.backend=sim",
                                                f"run.name=chip-table-seed{seed}-sim"]))
        a = sim.fit()
        checkpoint = sim.dir / ("best.pt" if (sim.dir / "best.pt").exists() else "checkpoint.pt")
        deployed = Trainer(load_config(args.config, [
            *base, f"train.backend={chip}", f"train.init_from={checkpoint}",
            f"run.name=chip-table-seed{seed}-deployed"]))
        _, b_acc, _ = deployed.evaluate(deployed.data["test"])
        hil = Trainer(load_config(args.config, [
            *base, f"train.backend={chip}", f"train.init_from={checkpoint}",
            f"train.epochs={args.hil_epochs}", f"train.lr={args.hil_lr}",
            f"run.name=chip-table-seed{seed}-hil"]))
        c = hil.fit()
        row = {"seed": seed, "sim": a["test_acc"], "deployed": b_acc, "in_the_loop": c["test_acc"],
               "sim_seconds_per_epoch": a["seconds_per_epoch"],
               "hil_seconds_per_epoch": c["seconds_per_epoch"]}
        rows.append(row)
        print(json.dumps(row), flush=True)

    cols = ("sim", "deployed", "in_the_loop")
    stats = {k: mean_sd([r[k] for r in rows]) for k in cols}
    sim_epoch = statistics.median(r["sim_seconds_per_epoch"] for r in rows)
    hil_epoch = statistics.median(r["hil_seconds_per_epoch"] for r in rows)
    result = {
        "config": args.config, "overrides": args.overrides, "seeds": args.seeds,
        "hil_epochs": args.hil_epochs, "hil_lr": args.hil_lr, "rows": rows,
        "mean_std": {k: list(v) for k, v in stats.items()},
        "sim_seconds_per_epoch": sim_epoch, "hil_seconds_per_epoch": hil_epoch,
        "hil_over_sim_epoch": hil_epoch / sim_epoch,
        "wall_seconds_total": time.perf_counter() - start,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                   f"torch {torch.__version__}",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")

    def pct(v: float) -> str:
        return f"{v * 100:.1f} %"

    lines = [
        "| seed (net + chip) | (a) simulator | (b) deployed to chip | (c) chip in the loop |",
        "|---:|---:|---:|---:|",
        *[f"| {r['seed']} | {pct(r['sim'])} | {pct(r['deployed'])} | {pct(r['in_the_loop'])} |"
          for r in rows],
        "| **mean ± std** | " + " | ".join(
            "**" + show_mean_sd(100 * stats[k][0], None if stats[k][1] is None
                                else 100 * stats[k][1], digits=1) + "**" for k in cols) + " |",
        "",
        f"Epoch time (train + validation, median over seeds): simulator {sim_epoch:.2f} s, "
        f"chip in the loop {hil_epoch:.2f} s ({hil_epoch / sim_epoch:.2f}×). "
        f"Total wall time {result['wall_seconds_total']:.0f} s.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
