"""Results on real data: train a config (or take a finished run) and record its test accuracy,
wall time per epoch and the command that reproduces it.

    python benchmarks/real_data.py train configs/fashion_mnist_fc.yaml [overrides ...]
    python benchmarks/real_data.py record runs/fashion_mnist_fc        # a finished run folder
    python benchmarks/real_data.py table                                # rewrite the .md only

``train`` trains CONFIG with the overrides in this process, as ``spikeloop train`` does (run
folder under the config's ``run.out_dir``), and records it; ``record`` takes a run folder that
``spikeloop train`` finished. Each entry is keyed by the run's name; a new entry replaces the
old one of that name. Writes ``benchmarks/results/real_data.{json,md}`` (docs/real-data.md
shows the table).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from spikeloop._runtime import usable_cores

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

REFERENCES = {
    "fashion_mnist": {
        "fc": "desire backpropagation, 3-layer fully connected SNN: 87.56 % (Gerlinghoff, Luo, "
              "Goh & Wong, arXiv:2211.05412)",
        "conv": "proxy learning, deep convolutional SNN: 94.56 % (Kheradpisheh, Mirsadeghi & "
                "Masquelier, IEEE Access 2022, arXiv:2109.13208)",
    },
}


METHODS = {"ann_proxy": "; trained by ANN proxy",
           "desire_bp": "; trained by desire backpropagation",
           "vdsp": "; learned by VDSP (unsupervised; the first layer is the input neurons, the "
                    "readout unused), labels assigned",
           "ssnn_bp": "; trained by stochastic spike-coded backprop"}
"""How the network description names a run's ``train.method`` (backprop: nothing)."""


def method_name(method: str | dict[str, Any]) -> str:
    """The name of a ``train.method`` value (a name or ``{name: ..., options}``)."""
    return method["name"] if isinstance(method, dict) else method


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _model(cfg: dict[str, Any]) -> str:
    """A one-line description of the config's network."""
    m = cfg["model"]
    parts = []
    neuron = m.get("neuron", "cuba_lif")
    for stage in m.get("conv") or []:
        pool = stage.get("pool", 1)
        pooling = [f"pool {pool}"] if pool > 1 else []
        cells = ["bn", neuron] if stage.get("norm") else [neuron]
        order = [*cells, *pooling] if stage.get("pool_spikes") else [*pooling, *cells]
        parts.append(" → ".join([f"conv{stage.get('kernel', 3)}×{stage.get('kernel', 3)} "
                                 f"{stage['channels']}", *order]))
    rec = " recurrent" if m.get("recurrent") else ""
    bn = " (batch-normalised currents)" if m.get("norm") else ""
    parts += [f"{h}{rec} {neuron}{bn}" for h in m.get("hidden", [])]
    parts.append(f"{m.get('readout', 'cuba_li')}")
    steps = round(cfg["data"]["duration"] / cfg["data"]["dt"])
    method = cfg["train"].get("method", "backprop")
    how = METHODS.get(method_name(method), "")
    options = method if isinstance(method, dict) else {}
    if options.get("steps"):  # a method that draws its own spike trains (ssnn_bp)
        steps = f"{options['steps']} (the method's own spike trains)"
    if options.get("stochastic") is False:
        how = "; trained as an ANN (ssnn_bp with stochastic: false: probabilities, not spikes)"
    aug = cfg["data"].get("augment") or {}
    moves = [f"shift ±{aug['shift']}" if aug.get("shift") else "",
             "left–right flip" if aug.get("flip") else ""]
    moves = ", ".join(m for m in moves if m)
    return (" → ".join(parts) + f"; T = {steps}" + how
            + (f"; training images augmented ({moves})" if moves else ""))


def record(run_dir: Path, commit: str | None = None, note: str = "") -> dict[str, Any]:
    """The entry of a finished run folder (``summary.json``, ``status.json``, ``config.yaml``);
    ``note`` says how it was made where the command alone does not."""
    status = json.loads((run_dir / "status.json").read_text())
    failed = ""
    if status.get("state") != "finished":
        if not (run_dir / "summary.json").exists():
            raise SystemExit(f"real_data: {run_dir} is not a finished run (state "
                             f"{status.get('state')!r}) and has no summary.json")
        # every epoch and the test ran (summary.json is written before the plots)
        failed = f"the run failed after its summary: {status.get('error', '?')}"
    summary = json.loads((run_dir / "summary.json").read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    data = cfg["data"]
    kind = "conv" if cfg["model"].get("conv") else "fc"
    return {
        "name": cfg["run"]["name"],
        "dataset": data["dataset"] + (f" ({data['params']['file']})"
                                      if data.get("params", {}).get("file") else ""),
        "model": _model(cfg),
        "test_acc": summary["test_acc"],
        "test_size": data["test_size"],
        "val_acc": summary["val_acc"],
        "best_epoch": summary["best_epoch"],
        "epochs": summary["epochs"],
        "seconds_per_epoch": summary["seconds_per_epoch"],
        "wall_seconds": summary["wall_seconds"],
        "torch_threads": summary["torch_threads"],
        "command": status["command"],
        "started": status["started"],
        "reference": REFERENCES.get(data["dataset"], {}).get(kind, ""),
        "machine": f"{platform.processor() or platform.machine()}, "
                   f"{usable_cores()} cores",
        "commit": commit or _git("rev-parse", "--short", "HEAD"),
        "note": "; ".join(n for n in (failed, note) if n),
    }


def markdown(entries: dict[str, dict[str, Any]]) -> str:
    """The results table: one row per run, with the command that reproduces it."""
    lines = ["# Results on real data", "",
             "Test accuracy on the whole test split of each data set; training wall time per "
             "epoch (training batches only) with the torch threads of the run, on the machine "
             "named. Each row's command reproduces it from a fresh clone (`make <target>` runs "
             "the same command).", "",
             "| run | data set | network | test accuracy | test samples | epochs (best) | "
             "s / epoch | threads | reference |",
             "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for e in sorted(entries.values(), key=lambda e: e["name"]):
        lines.append(f"| {e['name']} | {e['dataset']} | {e['model']} | "
                     f"{100 * e['test_acc']:.2f} % | {e['test_size']} | {e['epochs']} "
                     f"({e['best_epoch']}) | {_seconds(e['seconds_per_epoch'])} | "
                     f"{e['torch_threads']} | {e['reference']} |")
    lines += ["", "Commands and machines:", ""]
    for e in sorted(entries.values(), key=lambda e: e["name"]):
        note = f" ({e['note']})" if e.get("note") else ""
        lines.append(f"- {e['name']}: `{e['command']}` — {e['started'][:10]}, {e['machine']}, "
                     f"commit {e['commit']}{note}")
    return "\n".join(lines) + "\n"


def _seconds(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def results_cli(argv: list[str] | None, stem: str, description: str,
                record_run: Callable[[Path, str | None, str], dict[str, Any]],
                table: Callable[[dict[str, dict[str, Any]]], str]) -> int:
    """The command line of a results table ``benchmarks/results/<stem>.{json,md}``: ``train``
    a config and record it, ``record`` a finished run folder (``--commit``, ``--note``), or
    rewrite the ``table``. Entries are keyed by run name; a new one replaces the old."""
    parser = argparse.ArgumentParser(description=description)
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("train", help="train a config and record it")
    t.add_argument("config")
    t.add_argument("overrides", nargs="*")
    r = sub.add_parser("record", help="record a finished run folder")
    r.add_argument("run_dir", type=Path)
    r.add_argument("--commit", help="the commit the run was made at (default: HEAD)")
    r.add_argument("--note", default="", help="how the run was made, where the command alone "
                                              "does not say")
    sub.add_parser("table", help=f"rewrite {stem}.md from {stem}.json")
    args = parser.parse_args(argv)
    path = RESULTS / f"{stem}.json"
    entries = json.loads(path.read_text()) if path.exists() else {}
    if args.what == "train":
        from spikeloop.errors import SpikeloopError
        from spikeloop.training import Trainer, load_config

        try:
            trainer = Trainer(load_config(args.config, args.overrides))
            trainer.fit()
        except SpikeloopError as err:  # a config or data mistake: one line, as the CLI says it
            print(f"{stem}: error: {err}", file=sys.stderr)
            return 2
        args.run_dir = trainer.dir
    if args.what in ("train", "record"):
        entry = record_run(args.run_dir, getattr(args, "commit", None),
                           getattr(args, "note", ""))
        entries[entry["name"]] = entry
        print(f"recorded {entry['name']}: test accuracy {100 * entry['test_acc']:.2f} %")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=1) + "\n")
    (RESULTS / f"{stem}.md").write_text(table(entries))
    return 0


def main(argv: list[str] | None = None) -> int:
    return results_cli(argv, "real_data", __doc__.splitlines()[0], record, markdown)


if __name__ == "__main__":
    sys.exit(main())
