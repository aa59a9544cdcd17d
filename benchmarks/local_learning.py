"""Learning without backpropagation through time: each method's result next to its paper's.

    python benchmarks/local_learning.py train configs/fashion_mnist_desire.yaml [overrides ...]
    python benchmarks/local_learning.py record runs/fashion_mnist_desire    # a finished run
    python benchmarks/local_learning.py table                                # rewrite the .md

``train`` trains CONFIG with the overrides in this process (as ``spikeloop train`` does) and
records it; ``record`` takes a run folder that ``spikeloop train`` finished. An entry is keyed
by the run's name and describes it as :mod:`benchmarks.real_data` does (network, test accuracy
on the whole test split, epochs, wall time, threads, command, commit), plus its method, the
paper's figure and the issue's target. A stochastic spike-coded backprop run is compared with
the run of the same network trained as an ANN (``train.method.stochastic: false``), found by
its config. Writes ``benchmarks/results/local_learning.{json,md}`` (docs/local-learning.md shows
the table).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.real_data import method_name, results_cli  # noqa: E402
from benchmarks.real_data import record as describe  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"

PAPERS: dict[str, dict[str, str]] = {
    "desire_bp": {
        "figure": "MNIST 98.41 %, Fashion-MNIST 87.56 % (3-layer fully connected)",
        "source": "Gerlinghoff, Luo, Goh, Zhou & Wong, Neurocomputing 2023, arXiv:2211.05412"},
    "vdsp": {
        "figure": "MNIST 85.01 ± 0.76 / 89.93 ± 0.41 / 90.56 ± 0.27 % with 100 / 400 / 500 "
                  "output neurons (unsupervised, label assignment)",
        "source": "Garg et al., Front. Neurosci. 2022, arXiv:2203.11022"},
    "ann_proxy": {
        "figure": "Fashion-MNIST 94.56 %, CIFAR-10 93.11 % (deep convolutional)",
        "source": "Kheradpisheh, Mirsadeghi & Masquelier, IEEE Access 2022, arXiv:2109.13208"},
    "ssnn_bp": {
        "figure": "about the accuracy of the same network as an ANN on MNIST, Fashion-MNIST "
                  "and EMNIST",
        "source": "Biswas, Saraswat & Ganguly, Neuromorph. Comput. Eng. 2023, arXiv:2207.09755"},
}
"""Each method's paper: what it reports and where."""

TARGETS: dict[str, str] = {
    "desire_bp": "≥ 87 % on Fashion-MNIST",
    "ann_proxy": "≥ 92 % on Fashion-MNIST (convolutional)",
    "vdsp": "reported with 400 output neurons and label assignment",
    "ssnn_bp": "within 3 points of the same network trained as an ANN",
}
"""What issue 20 asks of each method."""


def _options(cfg: dict[str, Any]) -> dict[str, Any]:
    method = cfg["train"].get("method", "backprop")
    return {k: v for k, v in method.items() if k != "name"} if isinstance(method, dict) else {}


def record(run_dir: Path, commit: str | None = None, note: str = "") -> dict[str, Any]:
    """The entry of a finished run folder; ``note`` says how it was made where the command
    alone does not (e.g. a folder renamed after the run)."""
    entry = describe(run_dir, commit, note)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    method = method_name(cfg["train"].get("method", "backprop"))
    if method not in PAPERS:
        raise SystemExit(f"local_learning: {run_dir} was trained by {method!r}; this table "
                         f"holds {', '.join(PAPERS)}")
    entry.update(method=method, options=_options(cfg), dataset_key=cfg["data"]["dataset"],
                 network=cfg["model"])
    return entry


def _ann_partner(entry: dict[str, Any], entries: dict[str, dict[str, Any]]
                 ) -> dict[str, Any] | None:
    """The ANN run of an SSNN-BP entry: the same data set and ``model`` section, trained with
    ``stochastic: false``."""
    for other in entries.values():
        if (other["method"] == "ssnn_bp" and other["options"].get("stochastic") is False
                and other["dataset_key"] == entry["dataset_key"]
                and other["network"] == entry["network"]):
            return other
    return None


def verdict(entry: dict[str, Any], entries: dict[str, dict[str, Any]]) -> str:
    """Whether the entry meets its target (the issue's), in words."""
    acc = 100 * entry["test_acc"]
    method, data = entry["method"], entry["dataset_key"]
    if method == "desire_bp" and data == "fashion_mnist":
        return f"{'met' if acc >= 87 else 'not met'} ({acc:.2f} % vs 87 %)"
    if method == "ann_proxy" and data == "fashion_mnist":
        return f"{'met' if acc >= 92 else 'not met'} ({acc:.2f} % vs 92 %)"
    if method == "ssnn_bp":
        if entry["options"].get("stochastic") is False:
            return "the ANN reference"
        ann = _ann_partner(entry, entries)
        if ann is None:
            return "no ANN run of the same network recorded"
        gap = 100 * ann["test_acc"] - acc
        return (f"{'met' if gap <= 3 else 'not met'}: {gap:+.2f} points below the ANN "
                f"({100 * ann['test_acc']:.2f} %, {ann['name']})")
    if method == "vdsp" and data == "fashion_mnist":
        return "reported"
    return "no target on this data set"


def _target(entry: dict[str, Any], entries: dict[str, dict[str, Any]]) -> str:
    said = verdict(entry, entries)
    return said if said.startswith("no target") else f"{TARGETS[entry['method']]}: {said}"


def _hours(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def markdown(entries: dict[str, dict[str, Any]]) -> str:
    """The table: one row per run, its paper's figure and its target next to it."""
    order = list(PAPERS)
    rows = sorted(entries.values(), key=lambda e: (order.index(e["method"]), e["name"]))
    lines = ["# Learning without backpropagation through time", "",
             "Test accuracy on the whole test split; the paper's figure is what the paper "
             "reports (its data set and network, usually trained far longer). Wall time is the "
             "whole run (training, validation and test) with the torch threads named, on the "
             "machine named below.", "",
             "| method | paper | run | data set | network | test accuracy | target | epochs | "
             "wall time | threads |",
             "|---|---|---|---|---|---:|---|---:|---:|---:|"]
    for e in rows:
        lines.append(f"| {e['method']} | {PAPERS[e['method']]['figure']} | {e['name']} | "
                     f"{e['dataset']} | {e['model']} | {100 * e['test_acc']:.2f} % | "
                     f"{_target(e, entries)} | {e['epochs']} | "
                     f"{_hours(e['wall_seconds'])} | {e['torch_threads']} |")
    lines += ["", "Papers:", ""]
    lines += [f"- {m}: {p['source']}" for m, p in PAPERS.items()]
    lines += ["", "Commands and machines:", ""]
    for e in rows:
        note = f" ({e['note']})" if e.get("note") else ""
        lines.append(f"- {e['name']}: `{e['command']}` — {e['started'][:10]}, {e['machine']}, "
                     f"commit {e['commit']}{note}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    return results_cli(argv, "local_learning", __doc__.splitlines()[0], record, markdown)


if __name__ == "__main__":
    sys.exit(main())
