"""Temporal audio: recurrent LIF, LIF with learned delays and recurrent adaptive LIF on the
synthesised spoken digits (SHD layout, held-out voices), same network size, same epochs and
optimiser, several seeds; and (``--models shaped eventprop``) the recurrent LIF with loss shaping
trained by surrogate gradients and by EventProp on the grid.

    python benchmarks/temporal_audio.py run [overrides ...] [--seeds 0 1 2]
                                  [--models lif delays adlif] [--out-dir runs/temporal_audio]
    python benchmarks/temporal_audio.py table       # rewrite the .md from the .json only

``run`` trains each model's config (``MODELS``) once per seed, in this process, as
``spikeloop train CONFIG run.seed=S`` does, records each finished run with
:func:`benchmarks.real_data.record` (test accuracy on the whole test file — voices the training
file does not hold —, validation accuracy on the held-out training voice, the kept epoch, the
wall time per epoch, the command) and writes ``benchmarks/results/temporal_audio.{json,md}``
(docs/temporal-audio.md shows the table; ``--results`` writes elsewhere). Extra ``overrides``
(before the options: ``--seeds`` and ``--models`` take lists) go to every run (a smoke test runs
tiny sizes that way; they are written into the file). The data come from ``make
spoken-digits``; the same models run on real SHD files with the overrides
``data.dataset=shd data.train_size=7000 data.val_size=700 data.test_size=2264``
(configs/shd.yaml's split sizes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.real_data import record  # noqa: E402
from benchmarks.stats import mean_sd, show_mean_sd  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
OUT = RESULTS / "temporal_audio"

MODELS: dict[str, tuple[str, str]] = {
    "lif": ("configs/spoken_digits.yaml", "recurrent CUBA LIF"),
    "delays": ("configs/spoken_digits_delays.yaml",
               "recurrent CUBA LIF + learned delays per axon (0–250 ms)"),
    "adlif": ("configs/spoken_digits_adlif.yaml", "recurrent adLIF (τ_mem, τ_adapt, a, b learned)"),
    "shaped": ("configs/spoken_digits_shaped.yaml",
               "recurrent CUBA LIF, loss shaping (exp_membrane_ce), surrogate gradients"),
    "eventprop": ("configs/spoken_digits_eventprop.yaml",
                  "recurrent CUBA LIF, loss shaping (exp_membrane_ce), EventProp on the grid"),
}
"""Model key → (config, description). The configs differ only where the description says."""
ISSUE_17 = ("lif", "delays", "adlif")
"""The models ``run`` trains by default (issue 17: delays and adaptation)."""


def train(key: str, seed: int, out_dir: Path, overrides: list[str]) -> dict[str, Any]:
    """Train one model with one seed; its recorded entry (see :func:`benchmarks.real_data.
    record`) plus ``model_key``, ``seed`` and the extra ``overrides``."""
    from spikeloop.training import Trainer, load_config

    config, _ = MODELS[key]
    name = f"{Path(config).stem}_seed{seed}"
    cfg = load_config(ROOT / config, [f"run.seed={seed}", f"run.name={name}",
                                      f"run.out_dir={out_dir}", *overrides])
    trainer = Trainer(cfg)
    trainer.fit()
    entry = record(trainer.dir)
    return {**entry, "command": command(key, seed, overrides), "model_key": key, "seed": seed,
            "overrides": overrides}


def command(key: str, seed: int, overrides: list[str]) -> str:
    """The command that reproduces one run."""
    return " ".join(["python benchmarks/temporal_audio.py run", *overrides, "--models", key,
                     "--seeds", str(seed)])


def summarize(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model: the seeds, test accuracies, their mean and sample standard deviation."""
    out: dict[str, dict[str, Any]] = {}
    for key in MODELS:
        mine = sorted((r for r in runs.values() if r["model_key"] == key),
                      key=lambda r: r["seed"])
        if not mine:
            continue
        test = [r["test_acc"] for r in mine]
        mean, std = mean_sd(test)
        out[key] = {"seeds": [r["seed"] for r in mine], "test_acc": test, "mean": mean,
                    "std": std, "val_mean": statistics.fmean(r["val_acc"] for r in mine),
                    "seconds_per_epoch": statistics.fmean(r["seconds_per_epoch"]
                                                          for r in mine),
                    "epochs": mine[0]["epochs"], "test_size": mine[0]["test_size"]}
    return out


def markdown(result: dict[str, Any]) -> str:
    """The results table (one row per model) and what the delays gained over the seeds' spread."""
    summary = result["summary"]
    lines = ["# Temporal audio: delays and adaptation on the spoken digits", "",
             "Test accuracy on the whole test file (voices the training file does not hold), "
             "per seed and mean ± sample standard deviation over the seeds; the same network "
             "size (700 → 256 recurrent → 20), epochs, batch, optimiser and schedule for "
             "every model. s / epoch: training batches only, one torch thread, on a machine "
             "that other jobs may have shared (indicative; the step-time ratio of delays is "
             "measured by the speed bench, `make delays-bench`).", "",
             "| model | config | test accuracy (mean ± sd) | per seed | validation (mean) | "
             "s / epoch |", "|---|---|---:|---|---:|---:|"]
    for key, s in summary.items():
        config, description = MODELS[key]
        seeds = ", ".join(f"{100 * a:.2f}" for a in s["test_acc"])
        sd = None if s["std"] is None else 100 * s["std"]
        lines.append(f"| {description} | `{config}` | {show_mean_sd(100 * s['mean'], sd)} | "
                     f"{seeds} | {100 * s['val_mean']:.2f} % | "
                     f"{s['seconds_per_epoch']:.1f} |")
    for new, old, what in (("delays", "lif", "Learned delays minus no delays"),
                           ("eventprop", "shaped", "EventProp on the grid minus surrogate "
                                                   "gradients (the same loss and budget)")):
        if new in summary and old in summary:
            lines += ["", f"{what}: {_versus(summary[new], summary[old])}."]
    lines += ["", "Commands (each from a fresh clone after `make spoken-digits`):", ""]
    for run in sorted(result["runs"].values(), key=lambda r: (r["model_key"], r["seed"])):
        extra = f"; overrides {' '.join(run['overrides'])}" if run["overrides"] else ""
        lines.append(f"- {run['name']}: `{run['command']}` — {run['started'][:10]}, "
                     f"{run['machine']}, commit {run['commit']}{extra}")
    return "\n".join(lines) + "\n"


def _versus(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Model ``a``'s mean minus model ``b``'s, in points, against the seeds' spread."""
    diff = a["mean"] - b["mean"]
    if a["std"] is None or b["std"] is None:
        verdict = "the seeds' spread is not measured (one run of a model)"
    else:
        spread = max(a["std"], b["std"])
        verdict = (f"{'more' if abs(diff) > spread else 'not more'} than the seeds' spread "
                   f"(the larger standard deviation of the two, {100 * spread:.2f} points)")
    return f"{100 * diff:+.2f} points, {verdict}"


def _load(out: Path) -> dict[str, Any]:
    path = out.with_suffix(".json")
    return json.loads(path.read_text()) if path.exists() else {"runs": {}}


def _save(result: dict[str, Any], out: Path) -> None:
    for run in result["runs"].values():
        run["command"] = command(run["model_key"], run["seed"], run["overrides"])
    result["summary"] = summarize(result["runs"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run", help="train the models with the seeds and record them")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--models", nargs="+", default=list(ISSUE_17), choices=list(MODELS))
    r.add_argument("--out-dir", type=Path, default=ROOT / "runs" / "temporal_audio")
    r.add_argument("overrides", nargs="*", help="config overrides for every run")
    t = sub.add_parser("table", help="rewrite temporal_audio.md from temporal_audio.json")
    for p in (r, t):
        p.add_argument("--results", type=Path, default=OUT,
                       help="result files, without extension (default %(default)s)")
    args = parser.parse_args(argv)
    out = Path(str(args.results).removesuffix(".json").removesuffix(".md"))
    result = _load(out)
    if args.what == "run":
        from spikeloop.errors import SpikeloopError

        for key in args.models:
            for seed in args.seeds:
                try:
                    entry = train(key, seed, args.out_dir, list(args.overrides))
                except SpikeloopError as err:  # a config or data mistake: one line
                    print(f"temporal_audio: error: {err}", file=sys.stderr)
                    return 2
                result["runs"][entry["name"]] = entry
                _save(result, out)  # after every run: a long sweep keeps what it finished
                print(f"recorded {entry['name']}: test accuracy "
                      f"{100 * entry['test_acc']:.2f} %")
    _save(result, out)
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
