"""Memory and time of exact EventProp (event backend) against the dense surrogate-gradient
simulator for a growing number of time steps ``T`` at a fixed window (finer resolution).

    python benchmarks/event_memory.py [--steps 100 300 1000 3000 10000] [--batch 20]

The Yin-Yang network (5 latency-coded inputs → 240 CUBA-LIF → 3 CUBA-LI, 50 ms window,
max-membrane cross-entropy) runs one forward + backward pass per setting, each in a fresh
subprocess. Measured: bytes autograd saves for the backward pass
(``torch.autograd.graph.saved_tensors_hooks``), the increase of the process's peak resident
memory over its value before the pass (``ru_maxrss``), wall time (median of ``--repeats``),
and the number of spikes. The dense simulator uses ``dt = 50 ms / T``; the event backend sees
the same input raster (event at ``k·dt``) and runs with ``grid=False`` (no grid observables).
Writes ``benchmarks/results/event_memory.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch


def _one(backend: str, steps: int, batch: int, repeats: int, gain: float = 1.0) -> dict:
    """One setting, in this process: build, warm up, measure (``gain`` scales the input
    weights: more hidden spikes)."""
    from spikeloop.data import make_encoder, yin_yang
    from spikeloop.training import build_network, load_config, make_loss

    torch.set_num_threads(1)
    duration = 50e-3
    dt = duration / steps
    cfg = load_config("configs/yinyang_eventprop.yaml")
    x, y = yin_yang(batch, 40)
    enc = make_encoder("latency", dt=dt, duration=duration, t_early=2e-3, t_late=30e-3,
                       bias_time=2e-3)
    spikes = enc(torch.tensor(x, dtype=torch.float32))
    labels = torch.as_tensor(y)
    net = build_network(cfg.model, 5, 3, dt, torch.Generator().manual_seed(1))
    with torch.no_grad():
        net.layers["fc1"].weight.mul_(gain)
    loss_fn = make_loss({"name": "max_membrane_ce", "scale": 0.2})
    spec = {"name": "event", "grid": False} if backend == "event" else {"name": "sim"}

    def step() -> tuple[int, int]:
        saved = 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal saved
            saved += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = net(spikes, backend=spec)
            loss = loss_fn(out, labels)
        net.zero_grad(set_to_none=True)
        loss.backward()
        if backend == "event":
            n_spikes = int(out.report.resources["spikes"])
        else:
            n_spikes = int(out["hidden1"].spikes.sum())
        return saved, n_spikes

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    saved, n_spikes = step()  # the first pass sets the peak
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return {"backend": backend, "steps": steps, "dt": dt, "batch": batch, "gain": gain,
            "saved_mb": saved / 2**20, "peak_rss_increase_mb": (rss1 - rss0) / 1024,
            "seconds": statistics.median(times), "hidden_spikes": n_spikes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 300, 1000, 3000, 10000])
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/event_memory")
    parser.add_argument("--gains", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0],
                        help="input-weight scales of the spike sweep (event backend, T = 1000)")
    parser.add_argument("--one", nargs=3, metavar=("BACKEND", "STEPS", "GAIN"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_one(args.one[0], int(args.one[1]), args.batch, args.repeats,
                              float(args.one[2]))))
        return

    def measure(backend: str, steps: int, gain: float = 1.0) -> dict:
        cmd = [sys.executable, __file__, "--one", backend, str(steps), str(gain),
               "--batch", str(args.batch), "--repeats", str(args.repeats)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])

    rows = []
    for steps in args.steps:
        for backend in ("sim", "event"):
            row = measure(backend, steps)
            rows.append(row)
            print(f"{backend:5s} T={steps:6d}  saved {row['saved_mb']:9.2f} MB  peak RSS "
                  f"+{row['peak_rss_increase_mb']:8.1f} MB  {row['seconds']:.3f} s  "
                  f"spikes {row['hidden_spikes']}", flush=True)
    sweep = [measure("event", 1000, gain) for gain in args.gains]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"rows": rows, "spike_sweep": sweep, "batch": args.batch, "window_s": 50e-3,
              "machine": {"cpu": platform.processor() or platform.machine(),
                          "torch": torch.__version__, "threads": 1}}
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| T (steps) | dt | dense: saved for backward | dense: peak RSS + | dense: time | "
             "event: saved for backward | event: peak RSS + | event: time | hidden spikes |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for steps in args.steps:
        s = next(r for r in rows if r["steps"] == steps and r["backend"] == "sim")
        e = next(r for r in rows if r["steps"] == steps and r["backend"] == "event")
        lines.append(
            f"| {steps} | {s['dt'] * 1e6:.0f} µs | {s['saved_mb']:.1f} MB | "
            f"{s['peak_rss_increase_mb']:.0f} MB | {s['seconds']:.3f} s | {e['saved_mb']:.2f} MB "
            f"| {e['peak_rss_increase_mb']:.0f} MB | {e['seconds']:.3f} s | {e['hidden_spikes']} |")
    lines += ["", f"Batch {args.batch}, 50 ms window, one forward + backward pass, 1 CPU thread, "
              "each setting in a fresh process (peak RSS: increase of the process's peak "
              "resident memory during the first pass).", "",
              "Spike sweep (event backend, T = 1000, input weights scaled by the gain):", "",
              "| gain | hidden spikes | saved for backward | peak RSS + | time |",
              "|---:|---:|---:|---:|---:|"]
    for r in sweep:
        lines.append(f"| {r['gain']:g} | {r['hidden_spikes']} | {r['saved_mb']:.2f} MB | "
                     f"{r['peak_rss_increase_mb']:.0f} MB | {r['seconds']:.3f} s |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for backend, label, marker in (("sim", "dense surrogate (sim)", "o"),
                                   ("event", "exact EventProp (event)", "s")):
        rs = [r for r in rows if r["backend"] == backend]
        axes[0].loglog([r["steps"] for r in rs], [max(r["saved_mb"], 1e-3) for r in rs],
                       marker=marker, label=label)
        axes[1].loglog([r["steps"] for r in rs], [r["seconds"] for r in rs], marker=marker,
                       label=label)
    axes[0].set(xlabel="time steps T (50 ms window)", ylabel="memory saved for backward (MB)",
                title="backward-pass memory")
    axes[1].set(xlabel="time steps T (50 ms window)", ylabel="forward + backward (s)",
                title=f"time, batch {args.batch}")
    axes[2].plot([r["hidden_spikes"] for r in sweep], [r["saved_mb"] for r in sweep],
                 marker="s", color="C1", label="exact EventProp (event), T = 1000")
    axes[2].set(xlabel="hidden spikes in the batch", ylabel="memory saved for backward (MB)",
                title="event backend: memory grows with spikes")
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)


if __name__ == "__main__":
    main()
