"""The ``spikeloop`` command line.

    spikeloop train CONFIG.yaml [key.sub=value ...]    train (overrides as YAML values)
    spikeloop resume RUN_FOLDER [key.sub=value ...]    continue an interrupted or stopped run
    spikeloop summary CONFIG.yaml [key.sub=value ...]  print the network graph of a config
    spikeloop config [CONFIG.yaml] [key.sub=value ...] print the resolved config
    spikeloop data [--json] [--root DIR]               list the known data sets and where they are
    spikeloop sweep CONFIG.yaml [key=value ...] --grid key=V1,V2 [--seeds 0 1 2] [--parallel P]
                                                       train every setting × seed, tabulate

Launched by ``torchrun`` (``torchrun --nproc-per-node 2 -m spikeloop train CONFIG.yaml``),
``train`` and ``resume`` run data-parallel (:mod:`spikeloop.training.distributed`).

Every mistake in the command line, the config or the run folder ends in one line
``spikeloop: error: …`` on stderr and exit status 2; Ctrl-C during training saves a checkpoint
and ends with the resume command and exit status 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import yaml

from spikeloop import __version__
from spikeloop.errors import SpikeloopError, TrainingInterrupted

USAGE_ERROR = 2
INTERRUPTED = 130  # 128 + SIGINT, what shells report for a Ctrl-C'd program


class UsageError(SpikeloopError):
    """A command line spikeloop cannot act on."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports mistakes as a :class:`UsageError` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spikeloop",
        description="Train and run spiking neural networks on simulators and emulated chips.",
        epilog="Overrides set config keys with YAML values: train.epochs=5 run.seed=1 "
               "'model.hidden=[64, 32]'. `spikeloop config` lists every key.",
    )
    parser.add_argument("--version", action="version", version=f"spikeloop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    train = sub.add_parser(
        "train", help="train a network from a YAML config",
        description="Train a network from a YAML config into a fresh run folder "
                    "(run.out_dir/run.name; a name already used gets -2, -3 …).")
    train.add_argument("config", nargs="?", metavar="CONFIG.yaml",
                       help="YAML config file, e.g. configs/yinyang.yaml")
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="config overrides like train.epochs=5 run.seed=1 (optional)")
    train.add_argument("--backend", help="where the forward pass runs: sim, event (exact, "
                       "EventProp), chip (analog, in the loop), xylo (integer chip); same as the "
                       "override train.backend=NAME")
    resume = sub.add_parser(
        "resume", help="continue an interrupted or stopped run from its checkpoint",
        description="Continue the run in RUN_FOLDER from its checkpoint.pt, bit-identically to "
                    "an uninterrupted run. The folder may have been renamed, copied or moved.")
    resume.add_argument("run_dir", nargs="?", metavar="RUN_FOLDER",
                        help="a run folder, e.g. runs/demo")
    resume.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="only run.threads, train.progress, run.tensorboard and "
                        "run.dist_timeout may change (optional)")
    summary = sub.add_parser("summary", help="print the traced network graph of a config",
                             description="Build the network of a config and print its graph: "
                                         "populations, projections, neurons, synapses, "
                                         "parameters. Trains nothing, writes nothing.")
    summary.add_argument("config", nargs="?", metavar="CONFIG.yaml",
                         help="YAML config file, e.g. configs/yinyang.yaml")
    summary.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                         help="config overrides like model.hidden=[64] (optional)")
    summary.add_argument("--backend", help="same as the override train.backend=NAME")
    show = sub.add_parser("config", help="print the resolved config (defaults + file + overrides)",
                          description="Print the config a command would use, as YAML: the "
                                      "defaults, then the file, then the overrides.")
    show.add_argument("config", nargs="?", metavar="CONFIG.yaml",
                      help="YAML config file (the defaults without one)")
    show.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                      help="config overrides like train.epochs=5 (optional)")
    data = sub.add_parser(
        "data", help="list the known data sets, where each was found and how to get a missing one",
        description="List the known data sets, the folder where each was found (or `missing`) "
                    "and how to get a missing one. Searched: --root DIR (and DIR/NAME), "
                    "$SPIKELOOP_DATA/NAME and $SPIKELOOP_DATA (default: data/NAME and data), "
                    "then the Debian package's folder. Downloads nothing.")
    data.add_argument("--json", action="store_true",
                      help="print a JSON list of records (name, title, found, how, files, "
                           "searched)")
    data.add_argument("--root", metavar="DIR", help="a folder to search first (a config's "
                      "data.root)")
    sweep = sub.add_parser(
        "sweep", help="train a grid (or random draws) of overrides × seeds and tabulate them",
        description="Train every setting of the grid (or --random N of them) once per seed, "
                    "each trial a `spikeloop train` process with its own run folder under "
                    "--out, P at a time; then write sweep.json (every trial), sweep.md (mean ± "
                    "sd over the seeds per setting, sorted by validation accuracy) and "
                    "sweep.png. A failed trial is recorded and the others go on (exit status "
                    "1 if any failed).")
    sweep.add_argument("config", nargs="?", metavar="CONFIG.yaml",
                       help="YAML config file, e.g. configs/yinyang.yaml")
    sweep.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                       help="overrides for every trial, like train.epochs=5 (optional)")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                       help="a key and its values (YAML, comma-separated: "
                            "'model.hidden=[64],[128]'); repeat for more keys; the trials are "
                            "the product. None: the config itself, once per seed")
    sweep.add_argument("--random", type=int, metavar="N",
                       help="train N settings drawn from the grid (without repetition) "
                            "instead of all")
    sweep.add_argument("--seed", type=int, default=0, metavar="S",
                       help="seed of the --random draw (default 0)")
    sweep.add_argument("--seeds", nargs="+", metavar="SEED",
                       help="run.seed values; every setting is trained once per seed "
                            "(default: the config's run.seed)")
    sweep.add_argument("--parallel", type=int, default=1, metavar="P",
                       help="trials at a time (default 1); each gets run.threads = cores // P "
                            "unless the overrides set run.threads")
    sweep.add_argument("--out", metavar="DIR", help="the sweep folder, new or empty "
                       "(default: RUN.OUT_DIR/sweep-RUN.NAME)")
    sweep.add_argument("--backend", help="same as the override train.backend=NAME")
    return parser


def _option_hint(option: str, value: str | None) -> str:
    """For an unknown ``--name`` option: the override it probably meant."""
    import typing

    from spikeloop.training.config import Config

    key = option.lstrip("-").split("=", 1)[0].replace("-", "_")
    given = option.split("=", 1)[1] if "=" in option else value
    if given is not None and given.startswith("-"):
        given = None
    for name, section in typing.get_type_hints(Config).items():
        if key in {f.name for f in dataclasses.fields(section)}:
            return f"; config keys are set as overrides: {name}.{key}={given or 'VALUE'}"
    return "; config keys are set as overrides like train.epochs=5 (`spikeloop config` lists them)"


def _split(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; overrides may come before or after options."""
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        raise UsageError("give a command: train, resume, summary or config, or data to list the "
                         "data sets (see `spikeloop --help`)")
    if args.command == "data":
        if extra:
            raise UsageError(f"unexpected argument {extra[0]!r}; spikeloop data takes only "
                             f"--json and --root DIR")
        args.config, args.overrides = None, []
        return args
    for k, item in enumerate(extra):
        if item.startswith("-"):
            following = extra[k + 1] if k + 1 < len(extra) else None
            name = item.split("=", 1)[0]
            raise UsageError(f"unknown option {name}{_option_hint(item, following)}")
        if "=" not in item:
            raise UsageError(f"unexpected argument {item!r}; overrides look like key.sub=value")
    args.overrides = [*getattr(args, "overrides", []), *extra]
    slot = "run_dir" if args.command == "resume" else "config"
    first = getattr(args, slot)
    if (first is not None and "=" in first and not first.endswith((".yaml", ".yml"))
            and not Path(first).exists()):
        # a key=value in the first position: the config file / run folder is missing
        args.overrides.insert(0, first)
        setattr(args, slot, None)
    if args.command in ("train", "summary", "sweep") and args.config is None:
        raise UsageError(f"spikeloop {args.command} needs a config file: spikeloop "
                         f"{args.command} CONFIG.yaml [key=value ...], e.g. configs/yinyang.yaml")
    if args.command == "resume" and args.run_dir is None:
        raise UsageError("spikeloop resume needs a run folder: spikeloop resume RUN_FOLDER, "
                         "e.g. runs/demo")
    seen: dict[str, str] = {}
    for item in args.overrides:
        if "=" not in item:
            raise UsageError(f"unexpected argument {item!r}; overrides look like key.sub=value "
                             f"(one config file per command)")
        key, value = item.split("=", 1)
        key = key.strip()
        if key in seen and seen[key] != value:
            raise UsageError(f"{key} is given twice ({seen[key]!r} and {value!r}); give it once")
        seen[key] = value
    backend = getattr(args, "backend", None)
    if backend:
        if "train.backend" in seen and seen["train.backend"] != backend:
            raise UsageError(f"--backend {backend} and train.backend={seen['train.backend']} "
                             f"disagree; give one of them")
        args.overrides.append(f"train.backend={backend}")
    return args


def _data(as_json: bool, root: str | None) -> None:
    """``spikeloop data``: one line per known data set (its folder, or ``missing`` and how to
    get it), or the records as JSON."""
    from spikeloop.data.catalog import ENV_VAR, data_dir, status

    records = status(root)
    if as_json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return
    width = max(len(r.name) for r in records)
    source = f"from ${ENV_VAR}" if os.environ.get(ENV_VAR) else f"default; set {ENV_VAR} to change"
    print(f"data directory: {data_dir()} ({source})")
    for r in records:
        where = str(r.path) if r.path is not None else f"missing; to get it, {r.how}"
        print(f"{r.name:<{width}}  {where}")


def _sweep(args: argparse.Namespace) -> int:
    """``spikeloop sweep``: run the trials, print the table; 1 if a trial failed."""
    from spikeloop.training import load_config
    from spikeloop.training.sweep import parse_grid, run_sweep

    seeds = []
    for item in args.seeds or []:  # overrides after --seeds 0 1 land here
        if "=" in item:
            args.overrides.append(item)
            continue
        try:
            seeds.append(int(item))
        except ValueError:
            raise UsageError(f"--seeds: {item!r} is not an integer seed") from None
    if args.seeds and not seeds:
        raise UsageError("--seeds: give at least one seed, e.g. --seeds 0 1 2")
    cfg = load_config(args.config, args.overrides)
    if seeds and any(o.split("=", 1)[0].strip() == "run.seed" for o in args.overrides):
        raise UsageError("give the seeds with --seeds or run.seed=…, not both")
    if args.seed != 0 and args.random is None:
        raise UsageError("--seed seeds the --random draw; give --random N with it")
    out = args.out or str(Path(cfg.run.out_dir) / f"sweep-{cfg.run.name}")
    try:
        result = run_sweep(main, args.config, args.overrides, parse_grid(args.grid), out,
                           seeds=seeds or [cfg.run.seed], parallel=args.parallel,
                           random_draws=args.random, draw_seed=args.seed)
    except KeyboardInterrupt:
        print(f"spikeloop: sweep interrupted; what finished is in {out}/sweep.md, and "
              f"`spikeloop resume {out}/NAME` continues an interrupted trial", file=sys.stderr)
        return INTERRUPTED
    print((Path(out) / "sweep.md").read_text(), end="")
    failed = sum(t["status"] != "ok" for t in result["trials"])
    print(f"{len(result['trials']) - failed}/{len(result['trials'])} trials finished; results "
          f"in {out}/ (sweep.json, sweep.md, sweep.png)")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spikeloop`` console script; returns the exit status."""
    try:
        args = _split(_parser(), argv)
        if args.command == "data":
            _data(args.json, args.root)
            return 0
        from spikeloop.training import Trainer, load_config
        from spikeloop.training.config import load_run_config

        if args.command == "config":
            cfg = load_config(args.config, args.overrides)
            print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
            return 0
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "resume":
            cfg = load_run_config(args.run_dir, args.overrides)
        else:
            cfg = load_config(args.config, args.overrides)
        if args.command == "summary":
            print(Trainer(cfg).network.summary())
            return 0
        trainer = Trainer(cfg)  # under torchrun: one rank of data-parallel training
        try:
            if trainer.world is None or trainer.world.main:
                print(trainer.network.summary())
            summary = trainer.fit()
        finally:
            trainer.close()
        if trainer.world is None or trainer.world.main:
            print(json.dumps(summary, indent=2))
            print(f"test accuracy: {summary['test_acc']:.4f}  "
                  f"({summary['wall_seconds']:.0f} s, results in {trainer.dir}/)")
    except SpikeloopError as err:
        print(f"spikeloop: error: {err}", file=sys.stderr)
        return USAGE_ERROR
    except TrainingInterrupted as stop:
        print(f"spikeloop: {stop}", file=sys.stderr)
        return INTERRUPTED
    except KeyboardInterrupt:
        print("spikeloop: interrupted before training started", file=sys.stderr)
        return INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
