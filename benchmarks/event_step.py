"""One training step (forward, loss, backward) of a config on the dense simulator and on the
event backend's two engines (``exact``: event-driven; ``grid``: EventProp on the grid of ``dt``),
on the same batch: what the event backend costs on a given data set.

    .venv/bin/python benchmarks/event_step.py configs/spoken_digits.yaml --batch 1 --steps 2
    .venv/bin/python benchmarks/event_step.py configs/spoken_digits.yaml --batch 1 64 \\
        --steps 5 --epoch --rounds 3 --out benchmarks/results/event_speed

Prints one JSON line per backend and batch (median wall and CPU seconds per step, input events
per sample) and the ratios. ``--engine torch`` runs the torch code instead of the native one
(``SPIKELOOP_NATIVE=0``, every backend). ``--epoch`` also times one training epoch of each
backend (``train.epochs=1``, the trainer's own epoch time: training pass and validation),
and both the steps and the epochs run ``--rounds`` times over, the backends taking turns
(medians over all rounds reported).
``--out PATH`` writes ``PATH.json`` and ``PATH.md`` (commit, machine, load, every time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from spikeloop.training import Trainer, load_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.speed_bench import machine_info  # the speed bench's machine record

BACKENDS = {"sim": "sim", "event": "event", "event_grid": "{name: event, engine: grid}"}
"""What each measured backend is called here, and its ``train.backend`` setting."""
NAMES = {"sim": "dense (sim)", "event": "event, exact", "event_grid": "event, grid"}


def _overrides(backend: str, batch: int, out_dir: str, extra: list[str]) -> list[str]:
    return [*extra, f"train.backend={BACKENDS[backend]}", "run.threads=1",
            f"run.out_dir={out_dir}", f"train.batch_size={batch}"]


class StepTimer:
    """One backend's training step on the first ``batch`` training samples, timed in rounds
    (:meth:`run`) so that the backends can take turns; the first step (native library, caches,
    allocations) is not timed."""

    def __init__(self, config: str, backend: str, batch: int, overrides: list[str],
                 out_dir: str) -> None:
        cfg = load_config(config, _overrides(backend, batch, out_dir, overrides))
        self.backend, self.batch = backend, batch
        self.trainer = Trainer(cfg)
        self.x, self.y = self.trainer.data["train"].batch(slice(0, batch))
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.out = self._step()

    def _step(self) -> Any:
        self.trainer.optimizer.zero_grad()
        out = self.trainer._train_forward(self.x)
        self.trainer._objective(out, self.y).backward()
        return out

    def run(self, steps: int) -> None:
        """Time ``steps`` more steps."""
        for _ in range(steps):
            start, start_cpu = time.perf_counter(), time.process_time()
            self.out = self._step()
            self.wall.append(time.perf_counter() - start)
            self.cpu.append(time.process_time() - start_cpu)

    def result(self) -> dict:
        """Median wall and CPU seconds per step over every round, the times, input events and
        spikes per sample (of the last step's forward pass)."""
        inputs = {self.trainer.network.graph.input.name}
        spikes = sum(float(o.spikes.detach().sum()) for name, o in self.out.populations.items()
                     if name not in inputs and o.spikes is not None)
        return {"backend": self.backend, "batch": self.batch,
                "s_per_step": statistics.median(self.wall),
                "cpu_s_per_step": statistics.median(self.cpu), "times_s": self.wall,
                "cpu_times_s": self.cpu,
                "input_events_per_sample": float(self.x.sum()) / self.batch,
                "spikes_per_sample": spikes / self.batch}


def epoch_seconds(config: str, backend: str, overrides: list[str], out_dir: str,
                  name: str) -> dict:
    """One epoch of training at the config's batch size (the trainer's epoch time)."""
    cfg = load_config(config, [*overrides, f"train.backend={BACKENDS[backend]}",
                               "run.threads=1", f"run.out_dir={out_dir}", "train.epochs=1",
                               f"run.name={name}"])
    trainer = Trainer(cfg)
    start = time.perf_counter()
    trainer.fit()
    return {"backend": backend, "epoch_s": trainer.history[0].seconds,
            "fit_wall_s": time.perf_counter() - start,
            "val_acc": trainer.history[0].val_acc, "batch": cfg.train.batch_size,
            "train_samples": len(trainer.data["train"])}


def markdown(result: dict) -> str:
    """The result file's tables: seconds per step (wall, CPU) of the dense simulator and the
    event backend's two engines with the ratios, and the epochs."""
    m = result["machine"]
    lines = [
        "# Event backend (exact and grid engines) against the dense simulator: time per "
        "training step and epoch",
        "",
        f"{m['date']} · {m['cpu']} · {m['cores']} cores, 1 torch thread · torch {m['torch']} · "
        f"Python {m['python']} · spikeloop {m['spikeloop_commit']}"
        + (" (modified)" if m["spikeloop_src_modified"] else "")
        + f" · load average {m['loadavg_start'][0]:.2f} at the start, "
          f"{m['loadavg_end'][0]:.2f} at the end",
        "",
        f"`{result['command']}`: config `{result['config']}`, the first `batch` training "
        f"samples, median of {result.get('rounds', 1)} rounds of {result['steps']} steps "
        "(the backends taking turns) after one warm-up step; a step is "
        "forward, loss and backward. Event engine: "
        f"{result['engine']}. CPU = the process's CPU time (robust to other load on the "
        "machine), wall = elapsed time. Spikes = the spikes of every population but the "
        "input, per sample, in the last step's forward pass (on the grid for the dense "
        "simulator, whose spikes the grid engine shares: at most one per neuron and step; "
        "exact for the exact engine).",
        "",
        "| batch | input events / sample | spikes / sample dense, exact | dense wall s | "
        "dense CPU s | exact wall s | grid wall s | exact / dense (wall, CPU) | "
        "grid / dense (wall, CPU) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["steps_table"]:
        s, e, g = row["sim"], row["event"], row["event_grid"]
        lines.append(
            f"| {s['batch']} | {s['input_events_per_sample']:.0f} | "
            f"{s['spikes_per_sample']:.0f}, {e['spikes_per_sample']:.0f} | {s['s_per_step']:.4f} | "
            f"{s['cpu_s_per_step']:.4f} | {e['s_per_step']:.4f} | {g['s_per_step']:.4f} | "
            f"{e['s_per_step'] / s['s_per_step']:.2f}×, "
            f"{e['cpu_s_per_step'] / s['cpu_s_per_step']:.2f}× | "
            f"{g['s_per_step'] / s['s_per_step']:.2f}×, "
            f"{g['cpu_s_per_step'] / s['cpu_s_per_step']:.2f}× |")
    if result.get("epoch"):
        epoch = result["epoch"]
        s = epoch["sim"]
        lines += [
            "",
            f"One epoch (`train.epochs=1 run.threads=1`, batch {s['batch']}, "
            f"{s['train_samples']} training samples, the trainer's epoch time: training pass "
            f"and validation), {len(s['epoch_s_all'])} rounds, the backends taking turns "
            "(median; every round in the JSON):",
            "",
            "| backend | epoch s (median) | all rounds s | validation accuracy |",
            "|---|---:|---|---:|",
        ]
        for key, r in epoch.items():
            rounds = ", ".join(f"{t:.2f}" for t in r["epoch_s_all"])
            lines.append(f"| {NAMES[key]} | {r['epoch_s']:.2f} | {rounds} | {r['val_acc']:.3f} |")
        lines.append("")
        for key in ("event", "event_grid"):
            ratio = epoch[key]["epoch_s"] / s["epoch_s"]
            lines.append(f"- {NAMES[key]} epoch / dense epoch: **{ratio:.2f}×** (goal ≤ 1×: "
                         f"{'met' if ratio <= 1 else 'not met'}).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="config overrides (key=value)")
    parser.add_argument("--batch", type=int, nargs="+", default=[1])
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--engine", choices=("native", "torch"), default="native")
    parser.add_argument("--epoch", action="store_true", help="also time one epoch of each")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of steps and epochs, the backends taking turns")
    parser.add_argument("--out", help="write OUT.json and OUT.md")
    args = parser.parse_args(argv)
    if args.engine == "torch":
        os.environ["SPIKELOOP_NATIVE"] = "0"
    machine = machine_info(1)
    table, epoch = [], {}
    with tempfile.TemporaryDirectory(prefix="spikeloop-event-step-") as tmp:
        for batch in args.batch:
            timers = [StepTimer(args.config, backend, batch, args.overrides, tmp)
                      for backend in BACKENDS]
            for _ in range(args.rounds):  # the backends take turns
                for timer in timers:
                    timer.run(args.steps)
            rows = {}
            for timer in timers:
                rows[timer.backend] = timer.result()
                print(json.dumps(rows[timer.backend]), flush=True)
            print(f"batch {batch}: " + ", ".join(
                f"{k} / sim: {rows[k]['s_per_step'] / rows['sim']['s_per_step']:.2f}× wall"
                for k in ("event", "event_grid")), flush=True)
            table.append(rows)
        if args.epoch:
            runs: dict[str, list[dict]] = {k: [] for k in BACKENDS}
            for k in range(args.rounds):
                for backend in BACKENDS:
                    runs[backend].append(epoch_seconds(args.config, backend, args.overrides,
                                                       tmp, f"event-speed-{backend}-{k}"))
                    print(json.dumps(runs[backend][-1]), flush=True)
            for backend, rs in runs.items():
                times = [r["epoch_s"] for r in rs]
                epoch[backend] = {**rs[0], "epoch_s": statistics.median(times),
                                  "epoch_s_all": times}
    machine["loadavg_end"] = list(os.getloadavg())
    if args.out:
        from spikeloop.backends.event import _native

        engine = ("native (C)" if args.engine == "native" and _native.engine() is not None
                  else "torch")
        result = {"machine": machine, "config": args.config, "overrides": args.overrides,
                  "steps": args.steps, "rounds": args.rounds, "engine": engine,
                  "steps_table": table,
                  "epoch": epoch or None,
                  "command": "benchmarks/event_step.py " + " ".join(argv or [])}
        out = Path(args.out)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        out.with_suffix(".md").write_text(markdown(result))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
