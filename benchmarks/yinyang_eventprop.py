"""Yin-Yang trained with exact EventProp gradients on the event backend (docs/event-backend.md).

    python benchmarks/yinyang_eventprop.py [--seeds 0 1 2] [overrides ...]
    python benchmarks/yinyang_eventprop.py --report-only      # table from finished runs

Each seed trains ``configs/yinyang_eventprop.yaml`` (runs go to ``runs/eventprop-seed<k>``;
a finished run is reused) and is tested on the standard Yin-Yang test split with the epoch of
best validation accuracy. Writes ``benchmarks/results/yinyang_eventprop.{json,md}`` from the
summaries of all requested seeds that have finished.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch

from spikeloop.training import Trainer, load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="configs/yinyang_eventprop.yaml")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--report-only", action="store_true",
                        help="do not train; write the table from finished runs")
    parser.add_argument("--out", default="benchmarks/results/yinyang_eventprop")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. train.epochs=5")
    args = parser.parse_args()

    for seed in args.seeds:
        name = f"eventprop-seed{seed}"
        if args.report_only or (Path(args.runs) / name / "summary.json").exists():
            continue
        cfg = load_config(args.config, [*args.overrides, f"run.seed={seed}",
                                        f"run.name={name}", f"run.out_dir={args.runs}"])
        Trainer(cfg).fit()

    rows = []
    for seed in args.seeds:
        path = Path(args.runs) / f"eventprop-seed{seed}" / "summary.json"
        if path.exists():
            rows.append(json.loads(path.read_text()))
    if not rows:
        raise SystemExit("no finished runs to report")
    accs = [r["test_acc"] for r in rows]
    mean = statistics.mean(accs)
    std = statistics.stdev(accs) if len(accs) > 1 else 0.0
    cfg = load_config(args.config, args.overrides)
    result = {
        "config": args.config,
        "overrides": args.overrides,
        "seeds": [r["seed"] for r in rows],
        "test_acc": accs,
        "test_acc_mean": mean,
        "test_acc_std": std,
        "epochs": [r["epochs"] for r in rows],
        "best_epoch": [r["best_epoch"] for r in rows],
        "seconds_per_epoch": [r["seconds_per_epoch"] for r in rows],
        "wall_seconds": [r["wall_seconds"] for r in rows],
        "hidden_rate_hz": [r["rates_hz"].get("hidden1") for r in rows],
        "model": {"hidden": cfg.model.hidden, "tau_mem": cfg.model.tau_mem,
                  "tau_syn": cfg.model.tau_syn},
        "loss": cfg.train.loss,
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "threads": rows[0].get("torch_threads")},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| seed | test accuracy | best epoch | s / epoch | hidden rate (Hz) |",
             "|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {100 * r['test_acc']:.1f} % | {r['best_epoch']} | "
                     f"{r['seconds_per_epoch']:.1f} | {r['rates_hz'].get('hidden1', 0):.1f} |")
    lines.append(f"| **mean ± std** | **{100 * mean:.1f} ± {100 * std:.1f} %** | | | |")
    lines.append("")
    lines.append(f"EventProp (exact gradients, `event` backend), {args.config}, "
                 f"{rows[0]['epochs']} epochs, {rows[0].get('torch_threads')} CPU thread(s); "
                 "test with the epoch of best validation accuracy.")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
