"""Speed beside another busy process: how much slower spikeloop gets when it loses a core.

    .venv/bin/python benchmarks/contention.py                      # threads: auto (the default)
    .venv/bin/python benchmarks/contention.py --threads auto 2     # and torch's old default
    .venv/bin/python benchmarks/contention.py --quick --out /tmp/c # CI smoke test

Every user's machine has another busy process. A torch operator (and each of spikeloop's OpenMP
kernels) splits its work over its threads and waits for the last one, so when a competitor takes
one core, a thread on that core is descheduled for whole time slices and every operator waits.
This script times three workloads, each in a fresh process, under three conditions:

* workloads — ``demo``: ``spikeloop train configs/yinyang.yaml`` (the analog chip in the loop),
  median seconds per epoch over ``--epochs`` epochs (start-up excluded); ``eventprop``: the
  event backend's Yin-Yang epoch (``configs/yinyang_eventprop.yaml``), likewise; ``speed``: the
  speed benchmark's spikeloop rows (``benchmarks/speed/run_one.py --lib spikeloop``, ff and rec,
  train and forward), median milliseconds per step;
* competitors — ``idle`` (none), ``yes`` (``yes > /dev/null``: one core busy), ``training``
  (a second ``spikeloop train configs/yinyang.yaml train.backend=sim`` with the same thread
  setting), started a few seconds before the measurement and stopped after it;
* thread settings — ``--threads``: ``auto`` (spikeloop's default, ``run.threads=auto``: half
  the usable cores) and/or fixed counts (2 = torch's default on a 2-core machine).

Writes ``<out>.json`` (every measurement) and ``<out>.md`` (slow-down beside each competitor
against the idle time of the same setting). The goal of issue 14: at most 2× beside either
competitor. Before each idle measurement the script waits (up to 60 s) for idle CPUs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.speed_bench import PREFIX, cpu_busy, wait_idle  # noqa: E402

from spikeloop._runtime import auto_threads, usable_cores  # noqa: E402

COMPETITORS = ("idle", "yes", "training")
WORKLOADS = ("demo", "eventprop", "speed")
GOAL = 2.0


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT),
                                                       env.get("PYTHONPATH")]))
    env.setdefault("PYTHONWARNINGS", "ignore")
    return env


def _resolve(threads: str) -> int:
    return auto_threads()[0] if threads == "auto" else int(threads)


def start_competitor(kind: str, threads: str, scratch: Path) -> subprocess.Popen | None:
    """Start the competing process (``None`` for ``idle``); it runs until stopped."""
    if kind == "idle":
        return None
    if kind == "yes":
        cmd = ["yes"]
    else:
        cmd = [sys.executable, "-m", "spikeloop.cli", "train", str(ROOT / "configs/yinyang.yaml"),
               "train.backend=sim", "train.epochs=10000", "train.progress=false",
               f"run.threads={threads}", f"run.out_dir={scratch}", "run.name=competitor"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env(), start_new_session=True)
    if kind == "training":  # let it get past start-up into its training loop
        deadline = time.monotonic() + 60
        while not (scratch / "competitor" / "status.json").exists() and \
                time.monotonic() < deadline:
            time.sleep(0.2)
    time.sleep(2.0)
    return proc


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None:
        return
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def time_training(config: str, threads: str, epochs: int, extra: list[str], scratch: Path,
                  name: str, timeout: float) -> dict[str, Any]:
    """Train ``config`` for ``epochs`` in a fresh process; per-epoch seconds from metrics.json."""
    cmd = [sys.executable, "-m", "spikeloop.cli", "train", str(ROOT / config),
           f"train.epochs={epochs}", "train.progress=false", f"run.threads={threads}",
           f"run.out_dir={scratch}", f"run.name={name}", *extra]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else
                f"exit status {proc.returncode}"}
    summary = json.loads((scratch / name / "summary.json").read_text())
    epochs_s = [m["seconds"] for m in json.loads((scratch / name / "metrics.json").read_text())]
    return {"value": statistics.median(epochs_s), "unit": "s/epoch", "epochs_s": epochs_s,
            "wall_s": wall, "torch_threads": summary["torch_threads"]}


def time_speed_rows(threads: str, repeat: int, quick: bool, timeout: float
                    ) -> dict[str, dict[str, Any]]:
    """The speed benchmark's spikeloop rows (ff/rec × train/forward), median ms per step."""
    n = _resolve(threads)
    cmd = [sys.executable, "-m", "benchmarks.speed.run_one", "--lib", "spikeloop",
           "--variant", "ff,rec", "--mode", "train,forward", "--threads", str(n),
           "--repeat", str(repeat), "--warmup", "2"]
    if quick:
        cmd += ["--T", "10", "--batch", "4"]
    env = _env() | {v: str(n) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                              cwd=ROOT, check=False)
    except subprocess.TimeoutExpired:
        return {"speed": {"error": f"timed out after {timeout:.0f} s"}}
    out = {}
    for line in proc.stdout.splitlines():
        if line.startswith(PREFIX):
            r = json.loads(line[len(PREFIX):])
            key = f"speed {r['variant']} {r['mode']}"
            out[key] = ({"value": r["median_ms"], "unit": "ms/step", "times_ms": r["times_ms"],
                         "torch_threads": r["threads"]} if "median_ms" in r
                        else {"error": r.get("error", "no result")})
    return out or {"speed": {"error": proc.stderr.strip()[-500:] or "no result printed"}}


def measure(workloads: list[str], threads: str, args: argparse.Namespace, scratch: Path,
            tag: str) -> dict[str, dict[str, Any]]:
    quick = ["data.train_size=200", "data.val_size=100", "data.test_size=100",
             "model.hidden=[16]"] if args.quick else []
    results: dict[str, dict[str, Any]] = {}
    if "demo" in workloads:
        results["demo"] = time_training("configs/yinyang.yaml", threads, args.epochs, quick,
                                        scratch, f"demo-{tag}", args.timeout)
    if "eventprop" in workloads:
        results["eventprop"] = time_training("configs/yinyang_eventprop.yaml", threads,
                                             args.epochs, quick, scratch, f"ep-{tag}",
                                             args.timeout)
    if "speed" in workloads:
        results |= time_speed_rows(threads, args.repeat, args.quick, args.timeout)
    return results


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Speed beside another busy process",
        "",
        f"{result['machine']} · {result['date']} · commit {result['commit']} · command: "
        f"`{result['command']}`",
        "",
        "Slow-down = time beside the competitor / idle time with the same thread setting "
        f"(goal ≤ {GOAL:g}×). `yes`: `yes > /dev/null` takes one core; `training`: a second "
        "`spikeloop train configs/yinyang.yaml train.backend=sim` with the same thread setting. "
        "Demo and EventProp: median seconds per epoch; speed rows: median ms per step.",
        "",
    ]
    for threads, rows in result["runs"].items():
        n = rows["idle"].get("demo", next(iter(rows["idle"].values()))).get("torch_threads", "?")
        lines += [f"## run.threads={threads} ({n} torch thread{'s' * (n != 1)})", "",
                  "| workload | idle | beside `yes` | beside a training | worst slow-down |",
                  "|---|---:|---:|---:|---:|"]
        for work, idle in rows["idle"].items():
            cells, ratios = [], []
            for comp in COMPETITORS:
                r = rows.get(comp, {}).get(work, {})
                if "value" not in r:
                    cells.append(r.get("error", "—")[:40])
                    continue
                text = f"{r['value']:.3g} {r['unit']}"
                if comp != "idle" and "value" in idle:
                    ratio = r["value"] / idle["value"]
                    ratios.append(ratio)
                    text += f" ({ratio:.2f}×)"
                cells.append(text)
            worst = f"{max(ratios):.2f}×" + (" ✗" if max(ratios) > GOAL else "") if ratios else "—"
            lines.append(f"| {work} | " + " | ".join(cells) + f" | {worst} |")
        lines.append("")
    settings = list(result["runs"])
    if len(settings) > 1:  # what each setting costs or gains on the idle machine
        first = settings[0]
        lines += [f"## Idle machine: each setting against run.threads={first}", "",
                  "| workload | " + " | ".join(f"threads={t}" for t in settings) + " |",
                  "|---|" + "---:|" * len(settings)]
        for work, ref in result["runs"][first]["idle"].items():
            cells = []
            for t in settings:
                r = result["runs"][t]["idle"].get(work, {})
                cells.append(f"{r['value']:.3g} {r['unit']} ({r['value'] / ref['value']:.2f}×)"
                             if "value" in r and "value" in ref else "—")
            lines.append(f"| {work} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=False).stdout.strip()
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", nargs="+", default=["auto"],
                        help="thread settings to measure: auto and/or counts (default: auto)")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--competitors", nargs="+", default=list(COMPETITORS),
                        choices=COMPETITORS)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per training (default 3)")
    parser.add_argument("--repeat", type=int, default=15, help="timed speed steps (default 15)")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds per process")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny data and steps")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "contention"))
    parser.add_argument("--render", metavar="JSON", help="only rewrite the markdown of a result")
    args = parser.parse_args(argv)
    if args.render:
        result = json.loads(Path(args.render).read_text())
        Path(args.render).with_suffix(".md").write_text(markdown(result))
        return 0
    if "idle" not in args.competitors:
        parser.error("the competitors must include idle (the reference)")
    for t in args.threads:
        if t != "auto" and not (t.isdigit() and int(t) > 0):
            parser.error(f"--threads takes 'auto' or positive integers, got {t!r}")
    if args.quick:
        args.epochs, args.repeat = 1, 2

    runs: dict[str, dict[str, dict[str, Any]]] = {}
    busy_before: dict[str, float] = {}  # CPU busy fraction just before each idle measurement
    with tempfile.TemporaryDirectory(prefix="spikeloop-contention-") as tmp:
        scratch = Path(tmp)
        for threads in args.threads:
            runs[threads] = {}
            for comp in args.competitors:
                if comp == "idle" and not args.quick:
                    wait_idle(60.0)
                busy = cpu_busy(0.5) if comp == "idle" else None
                proc = start_competitor(comp, threads, scratch / f"{comp}-{threads}")
                try:
                    tag = f"{threads}-{comp}"
                    print(f"threads={threads} beside {comp} …", file=sys.stderr, flush=True)
                    runs[threads][comp] = measure(args.workloads, threads, args, scratch, tag)
                finally:
                    stop(proc)
                if busy is not None:
                    busy_before[threads] = busy
    result = {
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "command": " ".join(["python", "benchmarks/contention.py", *(argv or sys.argv[1:])]),
        "machine": f"{platform.machine()}, {usable_cores()} usable cores, "
                   f"{platform.python_version()}",
        "quick": args.quick, "epochs": args.epochs, "repeat": args.repeat, "goal": GOAL,
        "cpu_busy_before_idle": busy_before, "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
