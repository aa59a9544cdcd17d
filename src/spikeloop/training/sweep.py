"""Sweeps: a grid or random search of config overrides, each setting repeated over seeds.

Every trial is an independent process that runs ``spikeloop train`` (the command's own code)
with its own run folder ``<out>/<trial name>/`` and log ``<out>/logs/<trial name>.log``;
``parallel`` of them run at a time, each with ``run.threads`` = usable cores // ``parallel``
(at least 1) unless the overrides set ``run.threads``. A failed trial is recorded with its
error line and the others go on. At the end the sweep folder holds

- ``sweep.json``: every trial's setting, overrides, seed, status, error, test and validation
  accuracy, best epoch and wall time (read from its run folder's ``summary.json`` and
  ``metrics.json``);
- ``sweep.md``: one row per setting, mean ± sd over its seeds, sorted by validation accuracy,
  the best marked — generated from ``sweep.json`` (:func:`write_table`);
- ``sweep.png``: accuracy per setting, every seed as a point and the mean ± sd
  (:func:`plot_sweep`).

    >>> grid = parse_grid(["train.lr=0.01,0.02", "model.hidden=[8],[16, 16]"])
    >>> grid
    {'train.lr': [0.01, 0.02], 'model.hidden': [[8], [16, 16]]}
    >>> names = [t.name for t in make_trials(grid, seeds=[0])]
    >>> len(names), names[0], names[1]
    (4, 'lr=0.01_hidden=8_seed=0', 'lr=0.01_hidden=16-16_seed=0')
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait as multiprocessing_wait
from pathlib import Path
from typing import Any

import yaml
from tqdm.auto import tqdm

from spikeloop._files import atomic_write
from spikeloop.errors import ConfigError
from spikeloop.training.config import load_config
from spikeloop.training.stats import mean_sd, show_mean_sd

__all__ = [
    "Trial",
    "load_results",
    "make_trials",
    "parse_grid",
    "plot_sweep",
    "run_sweep",
    "settings",
    "write_table",
]

RESERVED = ("run.seed", "run.name", "run.out_dir", "train.resume")
"""Keys a sweep sets itself: ``--seeds`` gives the seeds, the sweep names the trials and their
folder; they cannot be swept with ``--grid``."""


@dataclass(frozen=True)
class Trial:
    """One training run of a sweep: a setting (the swept keys' values) and a seed."""

    name: str
    """Run name: the swept keys' last parts with their values, and the seed."""
    setting: dict[str, Any]
    """The swept keys and their values (the whole dotted key)."""
    seed: int
    """``run.seed`` of this trial."""

    @property
    def overrides(self) -> list[str]:
        """The setting as ``key=value`` overrides (values as JSON, which YAML reads back)."""
        return [f"{k}={json.dumps(v)}" for k, v in self.setting.items()]


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["key=V1,V2", ...]`` → ``{key: [V1, V2]}``; values are parsed as YAML (a YAML flow
    list: ``model.hidden=[8],[16, 16]`` gives two lists). Raises :class:`ConfigError` for an
    item without ``=``, an empty key or value list, a value that is not YAML, a key given twice,
    a value listed twice, or a key the sweep sets itself (:data:`RESERVED`)."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grid {item!r} must look like key.sub=V1,V2 (e.g. "
                              f"train.lr=0.01,0.02)")
        if not raw.strip():
            raise ConfigError(f"--grid {item!r} lists no values; give at least one, e.g. "
                              f"{key}=V1,V2")
        try:
            values = yaml.safe_load(f"[{raw}]")
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"--grid {item!r}: the values are not valid YAML ({problem}); "
                              f"separate them with commas, e.g. {key}=[8],[16, 16]") from None
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice; list all its values in one --grid")
        if key in RESERVED:
            hint = "use --seeds" if key == "run.seed" else "the sweep sets it"
            raise ConfigError(f"--grid cannot sweep {key} ({hint})")
        for k, v in enumerate(values):
            if v in values[:k]:
                raise ConfigError(f"--grid {key} lists {json.dumps(v)} twice")
        grid[key] = values
    return grid


def _short(value: Any) -> str:
    """A value as a piece of a folder name: only letters, digits and ``.+-``."""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-") or "x"


def _labels(keys: Sequence[str]) -> dict[str, str]:
    """Each key's last part, or the whole key (dots kept) where last parts collide."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def make_trials(grid: Mapping[str, Sequence[Any]], seeds: Sequence[int] = (0,),
                random_draws: int | None = None, draw_seed: int = 0) -> list[Trial]:
    """The trials of a sweep: every setting of ``grid`` (its product, in order) or, with
    ``random_draws=N``, N settings drawn from it without repetition (``random.Random(draw_seed)``),
    each repeated for every seed. An empty grid is one setting: the config itself.

    Raises :class:`ConfigError` for N < 1 or more draws than the grid has settings, and for no
    seeds, a negative or a repeated seed."""
    if not seeds:
        raise ConfigError("--seeds: give at least one seed")
    for k, s in enumerate(seeds):
        if s < 0:
            raise ConfigError(f"--seeds: seeds must be ≥ 0, got {s}")
        if s in seeds[:k]:
            raise ConfigError(f"--seeds lists {s} twice")
    keys = list(grid)
    settings = [dict(zip(keys, values, strict=True))
                for values in itertools.product(*(grid[k] for k in keys))]
    if random_draws is not None:
        if random_draws < 1:
            raise ConfigError(f"--random must be ≥ 1, got {random_draws}")
        if random_draws > len(settings):
            raise ConfigError(f"--random {random_draws} exceeds the grid's {len(settings)} "
                              f"settings; draw at most {len(settings)} (or leave out --random "
                              f"for all of them)")
        settings = random.Random(draw_seed).sample(settings, random_draws)
    labels = _labels(keys)
    trials, used = [], set()
    for setting in settings:
        stem = "_".join(f"{labels[k]}={_short(v)}" for k, v in setting.items())
        for seed in seeds:
            name = f"{stem}_seed={seed}" if stem else f"seed={seed}"
            base, n = name, 2
            while name in used:  # two values that look alike as folder names
                name, n = f"{base}-{n}", n + 1
            used.add(name)
            trials.append(Trial(name, setting, seed))
    return trials


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _error_line(log: str) -> str:
    """The line of a failed trial's output that says why: its ``spikeloop: error:`` line, else
    the last line of a traceback, else the last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("spikeloop:"):
            return line
    return lines[-1] if lines else "no output"


def _read_run(folder: Path) -> dict[str, Any]:
    """Accuracy, best epoch and wall time of a finished run folder (its ``summary.json`` and
    ``metrics.json``). ``val_acc`` is that of the tested epoch; ``best_epoch`` the epoch of the
    highest validation accuracy."""
    summary = json.loads((folder / "summary.json").read_text())
    history = json.loads((folder / "metrics.json").read_text())
    tested = summary.get("tested_epoch")
    val = next((h["val_acc"] for h in history if h["epoch"] == tested), summary["val_acc"])
    best = max(history, key=lambda h: h["val_acc"]) if history else None
    return {"test_acc": summary["test_acc"], "val_acc": val,
            "best_epoch": best["epoch"] if best else None,
            "best_val_acc": best["val_acc"] if best else None,
            "tested_epoch": tested, "train_seconds": summary["wall_seconds"]}


INTERRUPTED = 130
"""Exit status of a trial stopped by Ctrl-C (it saved a checkpoint; ``spikeloop resume``
continues it)."""

PRELOAD = ("spikeloop.training", "spikeloop.backends", "spikeloop.viz",
           "matplotlib.backends.backend_agg")
"""Modules the trials' parent process (a ``forkserver``) imports once, so that a trial, forked
from it, starts training at once instead of spending seconds on imports."""


def _context() -> Any:
    """The multiprocessing context of the trials: ``forkserver`` (preloaded with
    :data:`PRELOAD`) where the platform has it, else ``spawn``. Each trial is a fresh process
    either way; the forkserver itself never runs torch, so no thread pool is forked."""
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(list(PRELOAD))
        return ctx
    return multiprocessing.get_context("spawn")


def _train_process(command: Callable[[list[str]], int], argv: list[str], log: str) -> None:
    """A trial's process: ``command(["train", *argv])`` (the ``spikeloop`` entry point), its
    stdout and stderr into ``log``; exits with the command's status."""
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)
    with open(log, "w") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            code = command(["train", *argv])
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
    sys.exit(code)


def _record(trial: Trial, code: int | None, seconds: float, log: Path,
            folder: Path) -> dict[str, Any]:
    """The record of a finished trial: its status and, when it finished, its results."""
    rec: dict[str, Any] = {"name": trial.name, "setting": trial.setting,
                           "overrides": trial.overrides, "seed": trial.seed,
                           "status": {0: "ok", INTERRUPTED: "interrupted"}.get(code, "failed"),
                           "exit_status": code,
                           "error": None, "wall_seconds": seconds, "run_dir": str(folder),
                           "log": str(log)}
    if code == 0:
        try:
            rec |= _read_run(folder)
        except (OSError, KeyError, ValueError) as err:
            rec |= {"status": "failed", "error": f"finished, but its results are "
                                                 f"unreadable: {err}"}
    else:
        text = log.read_text(errors="replace") if log.exists() else ""
        rec["error"] = _error_line(text) if text.strip() else (
            f"the process ended with status {code} and wrote nothing")
    return rec


def run_sweep(command: Callable[[list[str]], int], config: str | Path, overrides: Sequence[str],
              grid: Mapping[str, Sequence[Any]], out: str | Path, seeds: Sequence[int] = (0,),
              parallel: int = 1, random_draws: int | None = None, draw_seed: int = 0,
              progress: bool | None = None) -> dict[str, Any]:
    """Run a sweep into the new folder ``out`` and return what ``sweep.json`` holds.

    ``command`` is the ``spikeloop`` entry point, :func:`spikeloop.cli.main`: each trial's
    process calls ``command(["train", CONFIG, *overrides])`` and its return value is the
    trial's exit status (it is passed in because this layer does not import the CLI).

    ``overrides`` apply to every trial; ``grid`` (:func:`parse_grid`) and the seeds make the
    trials (:func:`make_trials`). Before any trial starts, every trial's config is loaded
    (:func:`~spikeloop.training.load_config`), so an unknown key or a wrong type ends the
    sweep at once with :class:`ConfigError` naming the trial. Raises :class:`ConfigError`
    for ``parallel`` < 1 and for an ``out`` that exists and is not an empty folder (a sweep
    never writes over another's results). ``progress``: a bar over the trials (``None``: on
    a terminal), else one line per finished trial on stderr.

    Ctrl-C stops the running trials (each saves a checkpoint, status ``interrupted``; ``spikeloop
    resume`` continues it), marks the others ``not started``, writes the three files with
    what has finished and raises ``KeyboardInterrupt``.

    The trials are forked from a ``forkserver`` that has imported :data:`PRELOAD` once; it is
    started at the first sweep of the process and keeps the environment of that moment.
    """
    if parallel < 1:
        raise ConfigError(f"--parallel must be ≥ 1, got {parallel}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a folder that is not empty" if out.is_dir() else "a file"
        raise ConfigError(f"sweep folder {str(out)!r} is {what}; give a new one with --out "
                          f"(a sweep never writes over earlier results)")
    for key in overrides:
        if key.split("=", 1)[0].strip() in {*grid, *RESERVED} - {"run.seed"}:
            raise ConfigError(f"override {key!r}: {key.split('=', 1)[0]} is set by the sweep "
                              f"(--grid or the trial's folder); leave it out")
    trials = make_trials(grid, seeds, random_draws, draw_seed)
    threads = max(1, usable_cores() // parallel)
    given_threads = any(o.split("=", 1)[0].strip() == "run.threads" for o in overrides)
    fixed = [o for o in overrides if o.split("=", 1)[0].strip() != "run.seed"]
    fixed += [] if given_threads else [f"run.threads={threads}"]
    fixed += ["train.progress=false"]
    for trial in trials:  # every trial's config loads: unknown keys surface now
        try:
            load_config(config, [*fixed, *trial.overrides, f"run.seed={trial.seed}"])
        except ConfigError as err:
            raise ConfigError(f"trial {trial.name}: {err}") from None
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir()
    head = {"config": str(config), "overrides": list(overrides),
            "grid": {k: list(v) for k, v in grid.items()}, "seeds": list(seeds),
            "random": random_draws, "random_seed": draw_seed if random_draws else None,
            "parallel": parallel,
            "threads_per_trial": "from the overrides" if given_threads else threads}
    records: dict[str, dict[str, Any]] = {}
    ctx = _context()
    waiting = list(trials)
    running: dict[int, tuple[Any, Trial, float]] = {}
    bar = tqdm(total=len(trials), desc=f"sweep {out.name}", unit="trial",
               disable=not (sys.stderr.isatty() if progress is None else progress))
    try:
        while waiting or running:
            while waiting and len(running) < parallel:
                trial = waiting.pop(0)
                argv = [str(Path(config).resolve()), *fixed, *trial.overrides,
                        f"run.seed={trial.seed}", f"run.out_dir={json.dumps(str(out.resolve()))}",
                        f"run.name={json.dumps(trial.name)}"]
                proc = ctx.Process(target=_train_process, name=trial.name,
                                   args=(command, argv, str(out / "logs" / f"{trial.name}.log")))
                proc.start()
                running[proc.sentinel] = (proc, trial, time.perf_counter())
            for sentinel in multiprocessing_wait(list(running)):
                proc, trial, start = running.pop(sentinel)
                proc.join()
                rec = _record(trial, proc.exitcode, time.perf_counter() - start,
                              out / "logs" / f"{trial.name}.log", out / trial.name)
                records[trial.name] = rec
                done = (f"test {rec['test_acc']:.4f}, val {rec['val_acc']:.4f}"
                        if rec["status"] == "ok" else f"FAILED: {rec['error']}")
                line = f"{trial.name}: {done} ({rec['wall_seconds']:.0f} s)"
                bar.update()
                if bar.disable:
                    print(f"[{len(records)}/{len(trials)}] {line}", file=sys.stderr, flush=True)
                elif rec["status"] != "ok":
                    bar.write(line, file=sys.stderr)
    except KeyboardInterrupt:  # the trials got the SIGINT too: they save and stop
        for proc, trial, start in running.values():
            proc.join()
            records[trial.name] = _record(trial, proc.exitcode, time.perf_counter() - start,
                                          out / "logs" / f"{trial.name}.log", out / trial.name)
        for trial in waiting:
            records[trial.name] = {"name": trial.name, "setting": trial.setting,
                                   "overrides": trial.overrides, "seed": trial.seed,
                                   "status": "not started", "exit_status": None,
                                   "error": "the sweep was interrupted before it started",
                                   "wall_seconds": 0.0, "run_dir": None, "log": None}
        interrupted = True
    else:
        interrupted = False
    bar.close()
    result = {**head, "interrupted": interrupted,
              "trials": [records[t.name] for t in trials]}
    atomic_write(out / "sweep.json", lambda p: p.write_text(json.dumps(result, indent=2) + "\n"))
    write_table(result, out / "sweep.md")
    plot_sweep(result, out / "sweep.png")
    if interrupted:
        raise KeyboardInterrupt
    return result


def load_results(path: str | Path) -> dict[str, Any]:
    """A ``sweep.json`` (or the sweep folder holding it)."""
    path = Path(path)
    return json.loads((path / "sweep.json" if path.is_dir() else path).read_text())


def _label(setting: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in setting.items()) or "(the config)"


def settings(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One record per setting: its trials, and mean and sd over its successful seeds of the
    test and validation accuracy (fractions); sorted by mean validation accuracy, best first,
    settings without a successful trial last."""
    groups: dict[str, dict[str, Any]] = {}
    for t in result["trials"]:
        g = groups.setdefault(_label(t["setting"]),
                              {"label": _label(t["setting"]), "setting": t["setting"],
                               "trials": []})
        g["trials"].append(t)
    for g in groups.values():
        ok = [t for t in g["trials"] if t["status"] == "ok"]
        g["ok"] = ok
        for key in ("test_acc", "val_acc", "wall_seconds"):
            g[key] = mean_sd([t[key] for t in ok]) if ok else None
    return sorted(groups.values(), key=lambda g: -g["val_acc"][0] if g["val_acc"] else 1.0)


def write_table(result: Mapping[str, Any], path: str | Path | None = None) -> str:
    """The Markdown table of a sweep (from its ``sweep.json`` records): one row per setting,
    validation and test accuracy as mean ± sd over the seeds in percent, sorted by validation
    accuracy, the best in bold and marked ``best``; failed trials counted and their errors
    listed below. Written to ``path`` when given."""
    rows = settings(result)
    n = len(result["trials"])
    failed = [t for t in result["trials"] if t["status"] != "ok"]
    lines = [f"# Sweep of {result['config']}", "",
             f"{n} trials: {len(rows)} settings × seeds {result['seeds']}"
             + (f" ({result['random']} drawn at random from the grid, seed "
                f"{result['random_seed']})" if result.get("random") else "")
             + (f"; overrides {' '.join(result['overrides'])}" if result["overrides"] else "")
             + ("; interrupted with Ctrl-C" if result.get("interrupted") else "")
             + ". Accuracy in percent, mean ± sd over the seeds that finished; validation "
               "accuracy of the tested epoch. Sorted by validation accuracy.", "",
             "| | setting | seeds ok | val accuracy | test accuracy | wall time per trial |",
             "|---|---|---|---|---|---|"]

    def cell(ms: tuple[float, float | None] | None, scale: float = 100.0, unit: str = " %",
             digits: int = 2) -> str:
        if ms is None:
            return "—"
        mean, sd = ms
        return show_mean_sd(scale * mean, None if sd is None else scale * sd, digits, unit)

    for k, g in enumerate(rows):
        best = k == 0 and g["val_acc"] is not None
        label = f"`{g['label']}`"
        cells = [label, f"{len(g['ok'])}/{len(g['trials'])}", cell(g["val_acc"]),
                 cell(g["test_acc"]), cell(g["wall_seconds"], 1.0, " s", 1)]
        if best:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(["best" if best else "", *cells]) + " |")
    if failed:
        lines += ["", f"Trials that did not finish ({len(failed)}; their logs are in logs/):",
                  ""]
        lines += [f"- `{t['name']}` ({t['status']}"
                  + (f", exit status {t['exit_status']}" if t["exit_status"] is not None else "")
                  + f"): {t['error']}" for t in failed]
    text = "\n".join(lines) + "\n"
    if path is not None:
        atomic_write(Path(path), lambda p: p.write_text(text))
    return text


def plot_sweep(result: Mapping[str, Any], path: str | Path | None = None) -> Any:
    """Accuracy per setting (sorted as in the table): each seed's validation and test accuracy
    as a point, the mean as a bar with the sd as its error bar. Returns the matplotlib figure
    and saves it to ``path`` when given."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = settings(result)
    fig = Figure(figsize=(max(6.0, 1.4 * len(rows) + 4.0), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.38
    for offset, key, color, name in ((-width / 2, "val_acc", "tab:blue", "validation"),
                                     (width / 2, "test_acc", "tab:orange", "test")):
        for x, g in enumerate(rows):
            values = [100 * t[key] for t in g["ok"]]
            if not values:
                continue
            mean, sd = mean_sd(values)
            ax.bar(x + offset, mean, width, color=color, alpha=0.35,
                   label=f"{name}: mean ± sd over seeds" if x == 0 else None)
            if sd is not None:
                ax.errorbar(x + offset, mean, yerr=sd, color=color, capsize=4)
            ax.scatter([x + offset] * len(values), values, color=color, s=14, zorder=3,
                       label=f"{name}: one seed" if x == 0 else None)
    for x, g in enumerate(rows):
        if not g["ok"]:
            ax.text(x, 2, f"all {len(g['trials'])} trials\nfailed", ha="center", va="bottom",
                    fontsize=8, color="tab:red")
    ax.set_xticks(range(len(rows)),
                  [("★ " if k == 0 and g["ok"] else "") + g["label"].replace(", ", "\n")
                   for k, g in enumerate(rows)], fontsize=8)
    ax.set_xlabel("setting (sorted by mean validation accuracy; ★ best)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Sweep of {Path(result['config']).name}: accuracy per setting, "
                 f"seeds {result['seeds']}")
    ax.set_ylim(0, 100)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    if any(g["ok"] for g in rows):
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if path is not None:
        atomic_write(Path(path), lambda p: fig.savefig(p, format="png", dpi=120))
    return fig

