"""One training step (forward, loss, backward) of a config on the dense simulator and on the
event backend, on the same batch: what the event backend costs on a given data set.

    .venv/bin/python benchmarks/event_step.py configs/spoken_digits.yaml --batch 1 --steps 2

Prints one JSON line per backend (seconds per step, input events per sample) and the ratio.
The event backend's memory grows with the events of the whole batch (its event list and
snapshots are float64 ``[B, events, neurons]``): on the spoken digits, batch 64 needs more
than 16 GB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from spikeloop.training import Trainer, load_config


def step_seconds(config: str, backend: str, batch: int, steps: int, overrides: list[str],
                 out_dir: str) -> dict:
    """Median seconds of ``steps`` training steps on the first ``batch`` training samples."""
    cfg = load_config(config, [*overrides, f"train.backend={backend}", "run.threads=1",
                               f"run.out_dir={out_dir}", f"train.batch_size={batch}"])
    trainer = Trainer(cfg)
    x, y = trainer.data["train"].batch(slice(0, batch))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        trainer.optimizer.zero_grad()
        trainer._objective(trainer._train_forward(x), y).backward()
        times.append(time.perf_counter() - start)
    return {"backend": backend, "batch": batch, "s_per_step": statistics.median(times),
            "times_s": times, "input_events_per_sample": float(x.sum()) / batch}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", help="config overrides (key=value)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args(argv)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="spikeloop-event-step-") as tmp:
        for backend in ("sim", "event"):
            rows[backend] = step_seconds(args.config, backend, args.batch, args.steps,
                                         args.overrides, tmp)
            print(json.dumps(rows[backend]), flush=True)
    print(f"event / sim: {rows['event']['s_per_step'] / rows['sim']['s_per_step']:.1f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
