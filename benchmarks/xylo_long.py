"""Long inputs on the Xylo-like chip: time and memory of ``net(x, backend="xylo")`` against the
sim backend for growing ``T`` (issue 15: within 10× of sim, memory independent of ``T`` beyond
the recorded outputs).

    python benchmarks/xylo_long.py [--steps 10000 100000 1000000] [--repeats 3] [--threads 1]

The network is the issue's: 4 inputs → 10 CUBA-LIF → 3 CUBA-LI (``spikeloop.network.Network``),
batch 1, input ``torch.zeros(T, 1, 4)`` (``--rate`` > 0: Poisson-like event counts instead),
inference (``torch.no_grad()``). For each ``T``:

* time: sim and xylo alternately in one process, median of ``--repeats`` calls each after one
  warm-up call, and their ratio; once under ``torch.no_grad()`` and once as the issue wrote it,
  with gradients enabled (the network's parameters require them: the xylo backend returns
  in-the-loop observables whose replay runs only if a backward pass asks for it);
* memory: each backend in a fresh process (peak resident memory is a per-process high-water
  mark): the increase of the peak over its value before the first call, next to the bytes of
  the returned observables (the recorded outputs, ``[T, B, N]`` spikes and membranes) — the
  difference is what the run costs beyond its outputs (a constant: the chunk buffers);
* the xylo engine's torch fallback (``SPIKELOOP_NATIVE=0``: the step function per step) for
  ``T ≤ --fallback-max-steps`` only (about half a millisecond per step).

Writes ``benchmarks/results/xylo_long.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PREFIX = "XYLOLONG "


def _net_and_input(steps: int, rate: float) -> tuple[Any, Any]:
    """The issue's network and its input ``[T, 1, 4]`` (torch is imported in the child only)."""
    import torch

    from spikeloop.network import Network
    from spikeloop.nn import CubaLI, CubaLIF, Input, Linear

    torch.manual_seed(0)
    net = Network({"input": Input(4), "fc1": Linear(4, 10),
                   "hidden": CubaLIF(10, tau_mem=16e-3, tau_syn=4e-3),
                   "fc2": Linear(10, 3), "output": CubaLI(3, tau_mem=32e-3, tau_syn=4e-3)})
    with torch.no_grad():
        net.layers.fc1.weight.mul_(4)
    if rate > 0:
        g = torch.Generator().manual_seed(1)
        x = torch.poisson(torch.full((steps, 1, 4), rate), generator=g)
    else:
        x = torch.zeros(steps, 1, 4)
    return net, x


def _output_bytes(out: Any) -> int:
    """Bytes of the observables a run returned, the input population's (the input) aside."""
    total = 0
    for name, obs in out.populations.items():
        if name == "input":
            continue
        for t in (obs.spikes, obs.v):
            if t is not None:
                total += t.numel() * t.element_size()
    return total


def child(task: str, steps: int, repeats: int, threads: int, rate: float) -> None:
    """One measurement in this process: ``task`` is ``time`` (both backends alternately) or
    ``memory:<backend>`` (peak RSS of one call)."""
    import torch

    from spikeloop.chips.xylo import engine

    torch.set_num_threads(threads)
    net, x = _net_and_input(steps, rate)
    result: dict = {"task": task, "steps": steps, "native": engine.native_available()}
    grad = task.endswith("+grad")
    with torch.enable_grad() if grad else torch.no_grad():
        if task.startswith("memory:"):
            backend = task.split(":", 1)[1]
            net(x[:10], backend=backend)  # imports, kernel load: not what T costs
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            t0 = time.perf_counter()
            out = net(x, backend=backend)
            seconds = time.perf_counter() - t0
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            result |= {"backend": backend, "seconds_first": seconds,
                       "peak_increase_mb": peak - before,
                       "outputs_mb": _output_bytes(out) / 2**20,
                       "input_mb": x.numel() * x.element_size() / 2**20,
                       "warnings": [w for w in out.report.warnings if w.startswith("xylo ")]}
        else:
            times: dict[str, list[float]] = {"sim": [], "xylo": []}
            for backend in times:
                net(x, backend=backend)  # warm-up
            for _ in range(repeats):
                for backend, got in times.items():
                    t0 = time.perf_counter()
                    net(x, backend=backend)
                    got.append(time.perf_counter() - t0)
            result |= {f"{b}_s": statistics.median(t) for b, t in times.items()}
            result["grad"] = grad
    print(PREFIX + json.dumps(result), flush=True)


def _spawn(task: str, steps: int, args: argparse.Namespace, native: bool = True) -> dict:
    env = dict(os.environ)
    if not native:
        env["SPIKELOOP_NATIVE"] = "0"
    cmd = [sys.executable, __file__, "--child", task, "--steps", str(steps), "--repeats",
           str(args.repeats), "--threads", str(args.threads), "--rate", str(args.rate)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{task} T={steps} failed:\n{done.stderr[-3000:]}")
    line = next(ln for ln in done.stdout.splitlines() if ln.startswith(PREFIX))
    return json.loads(line[len(PREFIX):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10_000, 100_000],
                        help="time steps T to measure (the issue's case: 1000000)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="mean input events per channel and step (0: the issue's zeros)")
    parser.add_argument("--fallback-max-steps", type=int, default=10_000,
                        help="largest T for the torch fallback (SPIKELOOP_NATIVE=0)")
    parser.add_argument("--out", default="benchmarks/results/xylo_long")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.steps[0], args.repeats, args.threads, args.rate)
        return

    rows = []
    for steps in args.steps:
        timing = _spawn("time", steps, args)
        grad = _spawn("time+grad", steps, args)
        mem = {b: _spawn(f"memory:{b}", steps, args) for b in ("sim", "xylo")}
        row = {"steps": steps, "native": timing["native"], "sim_s": timing["sim_s"],
               "xylo_s": timing["xylo_s"], "ratio": timing["xylo_s"] / timing["sim_s"],
               "grad_sim_s": grad["sim_s"], "grad_xylo_s": grad["xylo_s"],
               "grad_ratio": grad["xylo_s"] / grad["sim_s"], "memory": mem}
        if steps <= args.fallback_max_steps:
            fb = _spawn("memory:xylo", steps, args, native=False)
            row["fallback_s"] = fb["seconds_first"]
            row["fallback_peak_increase_mb"] = fb["peak_increase_mb"]
        rows.append(row)
        x = mem["xylo"]
        print(f"T={steps:>8d}  sim {row['sim_s']:.3f} s  xylo {row['xylo_s']:.3f} s "
              f"({row['ratio']:.1f}×); gradients on: sim {row['grad_sim_s']:.3f} s  xylo "
              f"{row['grad_xylo_s']:.3f} s ({row['grad_ratio']:.1f}×)  xylo peak "
              f"+{x['peak_increase_mb']:.0f} MB for "
              f"{x['outputs_mb']:.0f} MB of outputs  sim peak "
              f"+{mem['sim']['peak_increase_mb']:.0f} MB", flush=True)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "python": platform.python_version(),
               "threads": args.threads, "load_average": os.getloadavg()[0]}
    result = {"rows": rows, "rate": args.rate, "repeats": args.repeats, "machine": machine}
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "`net(x, backend=...)` under `torch.no_grad()` (and, in the columns 'gradients on', as "
        "a plain call with autograd enabled) for the 4 → 10 CUBA-LIF → 3 CUBA-LI "
        f"network, batch 1, input {'zeros' if args.rate == 0 else f'rate {args.rate:g}'}, "
        f"{args.threads} thread(s); time: median of {args.repeats} calls, both backends "
        "alternately in one process; memory: increase of the peak resident memory during the "
        "first call, each backend in a fresh process, next to the bytes of the returned "
        "observables (outputs).", "",
        "| T | sim | xylo | xylo / sim | gradients on: sim | gradients on: xylo | gradients on: "
        "xylo / sim | xylo: peak + | xylo: outputs | xylo: beyond outputs | sim: peak "
        "+ | sim: outputs | xylo torch fallback |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        x, s = r["memory"]["xylo"], r["memory"]["sim"]
        beyond = x["peak_increase_mb"] - x["outputs_mb"]
        fb = f"{r['fallback_s']:.2f} s" if "fallback_s" in r else "–"
        lines.append(
            f"| {r['steps']:,} | {r['sim_s']:.3f} s | {r['xylo_s']:.3f} s | {r['ratio']:.1f}× | "
            f"{r['grad_sim_s']:.3f} s | {r['grad_xylo_s']:.3f} s | {r['grad_ratio']:.1f}× | "
            f"{x['peak_increase_mb']:.0f} MB | {x['outputs_mb']:.0f} MB | {beyond:.0f} MB | "
            f"{s['peak_increase_mb']:.0f} MB | {s['outputs_mb']:.0f} MB | {fb} |")
    kernel = "native (chips/xylo/native.c)" if rows and rows[0]["native"] else "torch step loop"
    lines += ["", f"Xylo kernel: {kernel}. Machine: {machine['cpu']}, {machine['cores']} cores, "
              f"load average {machine['load_average']:.1f} at the end."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
