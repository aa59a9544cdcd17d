"""Sparse surrogate backprop (Perez-Nieves & Goodman 2021): speed-up and accuracy effect.

    python benchmarks/sparse_backprop.py [--bands 1.0 0.5 0.3 0.1] [--band 0.5]
                                         [--variants ff rec shd_scale] [--seeds 0 1 2]
                                         [--parts speed yinyang spoken_digits] [--quick]

``SimBackend(grad_band=b)`` zeroes the surrogate derivative where ``|v − ϑ| ≥ b``; the fused
backward then skips the recurrent spike gradients of neurons outside the band (N. Perez-Nieves,
D. F. M. Goodman, "Sparse spiking gradient descent", NeurIPS 2021, arXiv:2105.08810).

1. ``speed``: train steps (forward + backward + SGD) of the speed workloads
   (``benchmarks/speed/workload.py``: ``ff``, the standard workload; ``rec``; ``shd_scale``,
   700 → 512 recurrent → 20 at T = 250 on the spoken digits), median of ``--repeat``, for each
   band, in this process. Each step is timed in three phases with ``time.perf_counter``
   between them: forward (network + loss), backward (``zero_grad`` + ``loss.backward()``) and
   the SGD step; on the CPU every torch op has finished when it returns, so the phases are
   measured directly, not as differences. Reported: median step and median backward, the
   speed-up of each against the full surrogate, the fraction of hidden (step, sample, neuron)
   entries inside the band and the cosine similarity of the input-weight gradient to the
   full-band gradient (on the initial weights).
2. ``yinyang``: Yin-Yang (``configs/yinyang.yaml``, simulator) test accuracy with the full
   surrogate and with ``grad_band = --band``, per seed.
3. ``spoken_digits``: the same on the spoken digits (``configs/spoken_digits.yaml``: 700 → 256
   recurrent → 20, 30 epochs; ``make spoken-digits``), the same budget for both. The band is
   set through the config, ``train.backend={"name": "sim", "grad_band": 0.5}``.

Writes ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/sparse_backprop``).
``--parts`` runs only some parts; the others are kept from an existing ``<out>.json``, so a
part measured on another machine or at another time is replaced alone (each part records its
own date, threads and torch version under ``parts_meta``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.speed.libs import spikeloop_lib
from benchmarks.speed.workload import VARIANTS, Workload, at_variant, loss_fn
from benchmarks.stats import mean_sd, show_mean_sd

from spikeloop.backends import SimBackend
from spikeloop.training import Trainer, load_config

PARTS = ("speed", "yinyang", "spoken_digits")
TASKS = {"yinyang": ("configs/yinyang.yaml", "Yin-Yang (sim)"),
         "spoken_digits": ("configs/spoken_digits.yaml", "spoken digits (sim)")}
QUICK_PARTS = ("speed", "yinyang")
QUICK_VARIANTS = ("ff", "rec")


def step_times(wl: Workload, band: float | None, repeat: int) -> dict[str, Any]:
    """Median/min/max train-step time and its phases, fraction in band, input-weight gradient."""
    model = spikeloop_lib.build(wl)
    net = model.modules[0]
    net.backend = SimBackend(grad_band=band)
    x, y = wl.data()
    opt = torch.optim.SGD(model.params, lr=wl.lr)
    w0 = {n: p.detach().clone() for n, p in net.named_parameters()}

    def step() -> tuple[float, float, float]:
        t0 = time.perf_counter()
        logits, _ = model.forward(x)
        loss = loss_fn(logits, y)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        return t1 - t0, t2 - t1, t3 - t0

    for _ in range(3):
        step()
    forward, backward, total = zip(*(step() for _ in range(repeat)), strict=True)
    with torch.no_grad():  # gradient and band occupancy at the initial weights
        for n, p in net.named_parameters():
            p.copy_(w0[n])
    opt.zero_grad(set_to_none=True)
    out = net(x)
    loss_fn(out.output.v.amax(0), y).backward()
    v = out["hidden"].v.detach()
    inside = float(((v - wl.v_threshold).abs() < band).float().mean()) if band else 1.0
    return {"median_ms": statistics.median(total) * 1e3, "min_ms": min(total) * 1e3,
            "max_ms": max(total) * 1e3, "forward_ms": statistics.median(forward) * 1e3,
            "backward_ms": statistics.median(backward) * 1e3,
            "backward_min_ms": min(backward) * 1e3, "backward_max_ms": max(backward) * 1e3,
            "T": wl.T, "hidden": wl.hidden, "in_band": inside,
            "grad": net.layers["fc1"].weight.grad.detach().clone()}


def measure_speed(variants: list[str], bands: list[float], repeat: int,
                  wl_kwargs: dict[str, int]) -> list[dict[str, Any]]:
    """One row per (variant, band), the full surrogate (``band None``) first."""
    speed: list[dict[str, Any]] = []
    full_grad: dict[str, torch.Tensor] = {}
    runs = [(v, b) for v in variants for b in [None, *bands]]
    for variant, band in tqdm(runs, desc="train steps"):
        wl = at_variant(Workload(**wl_kwargs), variant)
        r = step_times(wl, band, repeat)
        grad = r.pop("grad")
        if band is None:
            full_grad[variant] = grad
        r["grad_cosine"] = float(torch.nn.functional.cosine_similarity(
            grad.flatten(), full_grad[variant].flatten(), dim=0))
        speed.append({"variant": variant, "band": band, **r})
    return speed


def measure_accuracy(task: str, seeds: list[int], band: float, threads: int, run_dir: str,
                     quick: bool) -> list[dict[str, Any]]:
    """Test accuracy of ``task``'s config with the full surrogate and with ``band``, per seed
    (the same config, epochs and seed for both)."""
    config = TASKS[task][0]
    budget = ["train.epochs=1", "train.max_batches=2"] if quick else []
    rows = []
    for seed, b in tqdm([(s, b) for s in seeds for b in (None, band)], desc=task):
        backend = json.dumps({"name": "sim", "grad_band": b})
        cfg = load_config(config, [
            *budget, f"run.seed={seed}", f"train.backend={backend}", "train.progress=false",
            f"run.out_dir={run_dir}", f"run.threads={threads}",
            f"run.name=sparse-bp-{task}-seed{seed}-band{b}"])
        result = Trainer(cfg).fit()
        rows.append({"seed": seed, "band": b, "test_acc": result["test_acc"],
                     "seconds_per_epoch": result["seconds_per_epoch"],
                     "epochs": cfg.train.epochs})
    return rows


def _band(band: float | None) -> str:
    return "off" if band is None else f"{band:g}"


def _ms(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:.1f} ms" if key in row else "–"


def markdown(result: dict[str, Any]) -> str:
    """The tables of a result (parts missing from it are left out)."""
    lines: list[str] = []
    speed = result.get("speed", [])
    if speed:
        lines += ["| variant | grad_band | train step (median, min–max) | speed-up | forward | "
                  "backward | backward speed-up | in band | cos(∇W₁, full) |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        base = {r["variant"]: r for r in speed if r["band"] is None}
        for r in speed:
            b = base[r["variant"]]
            back = (f"{b['backward_ms'] / r['backward_ms']:.2f}×"
                    if "backward_ms" in r and "backward_ms" in b else "–")
            lines.append(
                f"| {r['variant']} | {_band(r['band'])} | {r['median_ms']:.1f} ms "
                f"({r['min_ms']:.1f}–{r['max_ms']:.1f}) | {b['median_ms'] / r['median_ms']:.2f}× "
                f"| {_ms(r, 'forward_ms')} | {_ms(r, 'backward_ms')} | {back} | "
                f"{r['in_band'] * 100:.1f} % | {r['grad_cosine']:.3f} |")
        lines.append("")
    for task, (_, label) in TASKS.items():
        rows = result.get(task, [])
        if not rows:
            continue
        seeds = sorted({a["seed"] for a in rows})
        bands = list(dict.fromkeys(a["band"] for a in rows))
        epochs = sorted({a["epochs"] for a in rows if "epochs" in a})
        if epochs:
            label += f", {'/'.join(map(str, epochs))} epochs"
        lines += [f"| {label} | " + " | ".join(f"seed {s}" for s in seeds)
                  + " | mean ± std | s/epoch |", "|---|" + "---:|" * (len(seeds) + 2)]
        for band in bands:
            accs = [a["test_acc"] for a in rows if a["band"] == band]
            secs = [a["seconds_per_epoch"] for a in rows if a["band"] == band]
            mean, sd = mean_sd([100 * a for a in accs])
            name = f"grad_band {band:g}" if band is not None else "full surrogate"
            lines.append(f"| {name} | " + " | ".join(f"{a * 100:.1f} %" for a in accs)
                         + f" | {show_mean_sd(mean, sd, digits=1)} | "
                         f"{statistics.median(secs):.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=None,
                        help=f"default: all ({' '.join(QUICK_PARTS)} with --quick)")
    parser.add_argument("--bands", type=float, nargs="+", default=[1.0, 0.5, 0.3, 0.1],
                        help="bands of the speed part")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=None,
                        help="speed-part workloads (default: ff rec shd_scale; ff rec with "
                             "--quick)")
    parser.add_argument("--band", "--yinyang-band", dest="band", type=float, default=0.5,
                        help="the band of the accuracy parts")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test setting")
    parser.add_argument("--out", default="benchmarks/results/sparse_backprop")
    parser.add_argument("--run-dir", default="runs", help="where the training runs go")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    parts = args.parts or list(QUICK_PARTS if args.quick else PARTS)
    variants = args.variants or list(QUICK_VARIANTS if args.quick else ("ff", "rec", "shd_scale"))
    wl_kwargs = {"T": 20, "batch": 4} if args.quick else {}
    seeds = args.seeds[:1] if args.quick else args.seeds

    out = Path(args.out)
    json_path = out.with_suffix(".json")
    result: dict[str, Any] = {}
    if json_path.is_file() and set(parts) != set(PARTS):  # keep the parts not re-measured
        result = json.loads(json_path.read_text())
    meta = {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "threads": args.threads, "torch": torch.__version__, "quick": args.quick}
    for part in parts:
        if part == "speed":
            repeat = 2 if args.quick else args.repeat
            result["speed"] = measure_speed(variants, args.bands, repeat, wl_kwargs)
        else:
            result[part] = measure_accuracy(part, seeds, args.band, args.threads, args.run_dir,
                                            args.quick)
        result.setdefault("parts_meta", {})[part] = meta
    if "speed" in parts:  # the top-level settings are those of the speed part
        result.update(threads=args.threads, torch=torch.__version__, quick=args.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
