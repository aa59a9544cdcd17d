"""Scaling curves: step time against sequence length, hidden size and input spike rate.

    make bench-scaling                              # = .venv/bin/python benchmarks/speed_scaling.py
    .venv/bin/python benchmarks/speed_scaling.py --peer norse --variant rec
    .venv/bin/python benchmarks/speed_scaling.py --quick --out /tmp/scaling   # smoke test

For spikeloop, the plain torch loop and (``--peer auto``, the default) the fastest peer of the
last ``benchmarks/results/speed.json`` run (``--peer none`` to leave it out, or name one), it
times the train step and the forward pass of the standard workload while one parameter varies:
``T`` (50 … 1000 steps), ``hidden`` (64 … 1024 neurons) and ``rate`` (input spike probability
per step, 1 % … 50 %); the others stay at T = 100, hidden 256, rate 5 %, batch 64. The input
weights are scaled with the number of active inputs (see ``benchmarks/speed/workload.py``), so
the hidden layer fires at a similar rate (≈ 10 %) along the ``rate`` axis: that curve isolates
the cost of input sparsity.

One process per (library, parameter, mode), one freshly built model and data set per point
(``run_one --sweep``); median of ``--repeat`` steps after ``--warmup``. Writes
``<out>.json`` and ``<out>.png`` (three panels, log–log); default
``--out benchmarks/results/speed_scaling``. The default run takes about 6 minutes on the
2-core machine when it is otherwise idle (half of it Norse's train step at T = 1000: Norse
indexes ``x[t]`` inside autograd, so its backward grows quadratically with T).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.speed.libs import LIBS, PEERS  # noqa: E402
from benchmarks.speed.workload import FROM_FILE, MODES, VARIANTS, Workload  # noqa: E402
from benchmarks.speed_bench import machine_info, run_child, wait_idle  # noqa: E402
from tqdm import tqdm  # noqa: E402

AXES: dict[str, list[float]] = {
    "T": [50, 100, 200, 500, 1000],
    "hidden": [64, 128, 256, 512, 1024],
    "rate": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
}
QUICK_AXES: dict[str, list[float]] = {"T": [10, 20], "hidden": [32, 64], "rate": [0.05, 0.2]}
LABELS = {"T": "time steps T", "hidden": "hidden neurons", "rate": "input spike rate per step"}


def fastest_peer(path: Path, variant: str) -> str | None:
    """The peer with the lowest median train step for ``variant`` in a speed_bench result."""
    try:
        summary = json.loads(path.read_text())["summary"]
        return summary[variant]["train"].get("fastest_peer")
    except (OSError, KeyError, ValueError):
        return None


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    axes_names = list(result["axes"])
    fig, axs = plt.subplots(1, len(axes_names), figsize=(5.2 * len(axes_names), 4.4),
                            squeeze=False)
    colors = {lib: f"C{i}" for i, lib in enumerate(result["libs"])}
    for ax, name in zip(axs[0], axes_names, strict=True):
        for lib in result["libs"]:
            for mode, style in (("train", "-o"), ("forward", "--s")):
                pts = sorted((r[name], r["median_ms"]) for r in result["records"]
                             if r.get("axis") == name and r.get("lib") == lib
                             and r.get("mode") == mode and "median_ms" in r)
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    ax.plot(xs, ys, style, color=colors[lib], label=f"{lib} {mode}",
                            markersize=4, linewidth=1.4)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(LABELS.get(name, name))
        ax.set_ylabel("ms per step (median)")
        ax.set_xticks(result["axes"][name])
        ax.set_xticklabels([f"{v:g}" if name != "rate" else f"{100 * v:g} %"
                            for v in result["axes"][name]])
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(True, which="major", alpha=0.3)
        fixed = {k: v for k, v in result["base"].items() if k in ("T", "hidden", "rate", "batch")
                 and k != name}
        ax.set_title(f"vs {name} ({', '.join(f'{k}={v:g}' for k, v in fixed.items())})",
                     fontsize=10)
    handles, labels = axs[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, len(labels) // 2),
               fontsize=9, frameon=False)
    meta = result["meta"]
    fig.suptitle(f"spikeloop speed scaling, {result['variant']} workload — {meta['cores']} cores, "
                 f"{meta['threads']} threads, torch {meta['torch']} (train: solid, forward: "
                 "dashed)", fontsize=11)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--libs", nargs="+", default=["spikeloop", "torch_loop"])
    parser.add_argument("--peer", default="auto",
                        help="a peer to add, 'auto' (fastest in benchmarks/results/speed.json) "
                             "or 'none'")
    parser.add_argument("--axes", nargs="+", default=list(AXES), choices=list(AXES))
    # shd and shd_scale are fixed to their file's shape (700 inputs, batch 64): nothing to scale
    parser.add_argument("--variant", default="ff",
                        choices=[v for v in VARIANTS if v not in FROM_FILE])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=None, help="timed steps (default 5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps (default 1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per process")
    parser.add_argument("--wait-idle", type=float, default=None, metavar="S",
                        help="before each sweep, wait up to S seconds for idle CPUs "
                             "(default 30, 0 with --quick)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke test (seconds)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speed_scaling"),
                        help="output path without extension (writes .json and .png)")
    args = parser.parse_args(argv)

    libs = [lib for item in args.libs for lib in item.split(",") if lib]
    unknown = [lib for lib in libs if lib not in LIBS]
    if unknown:
        parser.error(f"unknown libraries {unknown}; known: {', '.join(LIBS)}")
    peer = None
    if args.peer == "auto" and not args.quick:
        peer = fastest_peer(ROOT / "benchmarks" / "results" / "speed.json", args.variant)
    elif args.peer not in ("auto", "none"):
        if args.peer not in PEERS:
            parser.error(f"unknown peer {args.peer!r}; known: {', '.join(PEERS)}")
        peer = args.peer
    if peer and peer not in libs:
        libs.append(peer)
    axes = {name: (QUICK_AXES if args.quick else AXES)[name] for name in args.axes}
    batch = args.batch or (4 if args.quick else Workload.batch)
    repeat = args.repeat or (2 if args.quick else 5)
    warmup = args.warmup if args.warmup is not None else 1
    base = Workload(variant=args.variant, batch=batch, T=10 if args.quick else Workload.T,
                    hidden=64 if args.quick else Workload.hidden)

    modes = [",".join(args.modes)] if args.quick else args.modes  # quick: one process per sweep
    jobs = [(lib, name, mode) for name in axes for mode in modes for lib in libs]
    max_wait = args.wait_idle if args.wait_idle is not None else (0.0 if args.quick else 30.0)
    meta = machine_info(args.threads)
    records: list[dict[str, Any]] = []
    for lib, name, mode in tqdm(jobs, desc="speed scaling", unit="sweep", dynamic_ncols=True):
        values = ",".join(f"{v:g}" for v in axes[name])
        child = ["--lib", lib, "--variant", args.variant, "--mode", mode,
                 "--T", str(base.T), "--hidden", str(base.hidden), "--batch", str(batch),
                 "--rate", str(base.rate), "--repeat", str(repeat), "--warmup", str(warmup),
                 "--sweep", f"{name}={values}"]
        busy = wait_idle(max_wait)
        for r in run_child(child, args.threads, args.timeout):
            r = {"lib": lib, "mode": mode, "axis": name, **r, "cpu_busy_before": busy}
            records.append(r)
            if "median_ms" in r:
                tqdm.write(f"{lib:>13} {r['mode']:>7} {name}={r[name]:g}: {r['median_ms']:.1f} ms "
                           f"(hidden rate {100 * r['hidden_rate']:.1f} %)")
            else:
                tqdm.write(f"{lib:>13} {mode:>7} {name}: "
                           f"{r.get('skipped') or r.get('error')}")
    meta["loadavg_end"] = list(os.getloadavg())
    result = {"meta": meta, "variant": args.variant, "libs": libs, "peer": peer,
              "axes": axes, "base": base.as_dict(), "repeat": repeat, "warmup": warmup,
              "quick": args.quick, "records": records}
    out = str(args.out).removesuffix(".json").removesuffix(".png")
    json_path, png_path = Path(out + ".json"), Path(out + ".png")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    plot(result, png_path)
    print(f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
