"""Long sequences: peak memory and time of a train step, with and without recompute.

    python benchmarks/long_sequences.py [--T 1000 2000 5000 10000] [--batch 16] [--quick]

The speed workload's feed-forward network (``benchmarks/speed/workload.py``) at growing ``T``,
each configuration in its own process (peak resident memory is a per-process high-water mark):

* ``default``: ``SimBackend()`` — the fused kernels keep each population's recorded membrane
  and spikes for the backward pass, so memory grows as ``T · B · N``;
* ``checkpoint``: ``SimBackend(checkpoint=K, record=("output",))`` — windows of ``K`` steps are
  recomputed in the backward pass and only the readout is returned, so what is held across the
  sequence is the input, the readout and one window.

Writes ``benchmarks/results/long_sequences.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PREFIX = "LONGSEQ "


def child(mode: str, steps: int, batch: int, window: int, repeat: int, threads: int) -> None:
    import torch
    from benchmarks.speed.libs import spikeloop_lib
    from benchmarks.speed.workload import Workload, loss_fn

    from spikeloop.backends import SimBackend

    torch.set_num_threads(threads)
    wl = Workload(T=steps, batch=batch)
    model = spikeloop_lib.build(wl)
    net = model.modules[0]
    if mode == "checkpoint":
        net.backend = SimBackend(checkpoint=window, record=("output",))
    x, y = wl.data()
    opt = torch.optim.SGD(model.params, lr=wl.lr)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = net(x)
        loss = loss_fn(out.output.v.amax(0), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        del out, loss
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(PREFIX + json.dumps({"mode": mode, "T": steps, "batch": batch, "window": window,
                               "median_s": statistics.median(times), "peak_mb": peak,
                               "before_mb": base, "input_mb": x.numel() * 4 / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, nargs="+", default=[1000, 2000, 5000, 10000])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/long_sequences")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.batch, args.window, args.repeat,
              args.threads)
        return
    from tqdm import tqdm

    lengths = [50, 100] if args.quick else args.T
    window = 10 if args.quick else args.window
    repeat = 1 if args.quick else args.repeat
    batch = 2 if args.quick else args.batch
    rows = []
    for steps, mode in tqdm([(t, m) for t in lengths for m in ("default", "checkpoint")],
                            desc="runs"):
        cmd = [sys.executable, __file__, "--child", mode, str(steps), "--batch", str(batch),
               "--window", str(window), "--repeat", str(repeat), "--threads", str(args.threads)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        line = next((s for s in done.stdout.splitlines() if s.startswith(PREFIX)), None)
        if line is None:
            raise RuntimeError(f"{mode} T={steps} failed:\n{done.stderr[-3000:]}")
        rows.append(json.loads(line[len(PREFIX):]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, "quick": args.quick},
                                                   indent=2) + "\n")
    lines = [f"Train step of the feed-forward speed workload, batch {batch}, checkpoint window "
             f"{window} steps, peak resident memory of the process (torch alone ≈ 250 MB).", "",
             "| T | input | default: peak | default: step | checkpoint: peak | "
             "checkpoint: step | memory saved |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for steps in lengths:
        d = next(r for r in rows if r["T"] == steps and r["mode"] == "default")
        c = next(r for r in rows if r["T"] == steps and r["mode"] == "checkpoint")
        lines.append(f"| {steps} | {d['input_mb']:.0f} MB | {d['peak_mb']:.0f} MB | "
                     f"{d['median_s']:.2f} s | {c['peak_mb']:.0f} MB | {c['median_s']:.2f} s | "
                     f"{(d['peak_mb'] - c['peak_mb']) / d['peak_mb'] * 100:.0f} % |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
