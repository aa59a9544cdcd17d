"""Sparse surrogate backprop (Perez-Nieves & Goodman 2021): speed-up and accuracy effect.

    python benchmarks/sparse_backprop.py [--bands 1.0 0.5 0.3 0.1] [--yinyang-band 0.5]
                                         [--seeds 0 1 2] [--quick]

``SimBackend(grad_band=b)`` zeroes the surrogate derivative where ``|v − ϑ| ≥ b``; the fused
backward then skips the recurrent spike gradients of neurons outside the band.

1. Train step (forward + backward + SGD) of the speed workload (``benchmarks/speed/workload.py``,
   ff and rec variants), median of 15, for each band, in this process; with the fraction of
   hidden (step, sample, neuron) entries inside the band and the cosine similarity of the input
   weight gradient to the full-band gradient.
2. Yin-Yang (configs/yinyang.yaml, simulator) test accuracy with and without the band, per seed.

Writes ``benchmarks/results/sparse_backprop.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.speed.libs import spikeloop_lib
from benchmarks.speed.workload import Workload, loss_fn
from benchmarks.stats import mean_sd, show_mean_sd

from spikeloop.backends import SimBackend
from spikeloop.training import Trainer, load_config


def step_times(wl: Workload, band: float | None, repeat: int) -> dict:
    """Median/min/max train-step time, fraction in band, input-weight gradient."""
    model = spikeloop_lib.build(wl)
    net = model.modules[0]
    net.backend = SimBackend(grad_band=band)
    x, y = wl.data()
    opt = torch.optim.SGD(model.params, lr=wl.lr)
    w0 = {n: p.detach().clone() for n, p in net.named_parameters()}

    def step() -> None:
        logits, _ = model.forward(x)
        opt.zero_grad(set_to_none=True)
        loss_fn(logits, y).backward()
        opt.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    with torch.no_grad():  # gradient and band occupancy at the initial weights
        for n, p in net.named_parameters():
            p.copy_(w0[n])
    out = net(x)
    loss_fn(out.output.v.amax(0), y).backward()
    v = out["hidden"].v.detach()
    inside = float(((v - wl.v_threshold).abs() < band).float().mean()) if band else 1.0
    return {"median_ms": statistics.median(times) * 1e3, "min_ms": min(times) * 1e3,
            "max_ms": max(times) * 1e3, "in_band": inside,
            "grad": net.layers["fc1"].weight.grad.detach().clone()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bands", type=float, nargs="+", default=[1.0, 0.5, 0.3, 0.1])
    parser.add_argument("--yinyang-band", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test setting")
    parser.add_argument("--out", default="benchmarks/results/sparse_backprop")
    parser.add_argument("--run-dir", default="runs", help="where the Yin-Yang runs go")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wl_kwargs = {"T": 20, "batch": 4} if args.quick else {}
    repeat = 2 if args.quick else args.repeat

    speed = []
    runs = [(v, b) for v in ("ff", "rec") for b in [None, *args.bands]]
    full_grad = {}
    for variant, band in tqdm(runs, desc="train steps"):
        r = step_times(Workload(variant=variant, **wl_kwargs), band, repeat)
        grad = r.pop("grad")
        if band is None:
            full_grad[variant] = grad
        r["grad_cosine"] = float(torch.nn.functional.cosine_similarity(
            grad.flatten(), full_grad[variant].flatten(), dim=0))
        speed.append({"variant": variant, "band": band, **r})

    accuracy = []
    epochs = ["train.epochs=1", "train.max_batches=2"] if args.quick else []
    seeds = args.seeds[:1] if args.quick else args.seeds
    yy = [(s, b) for s in seeds for b in (None, args.yinyang_band)]
    for seed, band in tqdm(yy, desc="yin-yang"):
        backend = json.dumps({"name": "sim", "grad_band": band})
        cfg = load_config("configs/yinyang.yaml", [
            *epochs, f"run.seed={seed}", f"train.backend={backend}", "train.progress=false",
            f"run.out_dir={args.run_dir}", f"run.threads={args.threads}",
            f"run.name=sparse-bp-seed{seed}-band{band}"])
        result = Trainer(cfg).fit()
        accuracy.append({"seed": seed, "band": band, "test_acc": result["test_acc"],
                         "seconds_per_epoch": result["seconds_per_epoch"]})

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        {"speed": speed, "yinyang": accuracy, "threads": args.threads,
         "torch": torch.__version__, "quick": args.quick}, indent=2) + "\n")
    lines = ["| variant | grad_band | train step (median, min–max) | speed-up | in band | "
             "cos(∇W₁, full) |", "|---|---:|---:|---:|---:|---:|"]
    base = {r["variant"]: r["median_ms"] for r in speed if r["band"] is None}
    for r in speed:
        lines.append(
            f"| {r['variant']} | {r['band'] if r['band'] is not None else 'off'} | "
            f"{r['median_ms']:.1f} ms ({r['min_ms']:.1f}–{r['max_ms']:.1f}) | "
            f"{base[r['variant']] / r['median_ms']:.2f}× | {r['in_band'] * 100:.1f} % | "
            f"{r['grad_cosine']:.3f} |")
    lines += ["", "| Yin-Yang (sim) | " + " | ".join(f"seed {s}" for s in seeds)
              + " | mean ± std | s/epoch |", "|---|" + "---:|" * (len(seeds) + 2)]
    for band in (None, args.yinyang_band):
        accs = [a["test_acc"] for a in accuracy if a["band"] == band]
        secs = [a["seconds_per_epoch"] for a in accuracy if a["band"] == band]
        mean, sd = mean_sd([100 * a for a in accs])
        label = f"grad_band {band}" if band is not None else "full surrogate"
        lines.append(f"| {label} | " + " | ".join(f"{a * 100:.1f} %" for a in accs)
                     + f" | {show_mean_sd(mean, sd, digits=1)} | "
                     f"{statistics.median(secs):.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
