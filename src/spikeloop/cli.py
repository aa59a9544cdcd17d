"""The ``spikeloop`` command line.

    spikeloop train CONFIG.yaml [key.sub=value ...]   train (overrides as YAML values)
    spikeloop summary CONFIG.yaml [key.sub=value ...] print the network graph of a config
    spikeloop config [CONFIG.yaml] [key.sub=value ...] print the resolved config
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import yaml

from spikeloop import __version__
from spikeloop.errors import SpikeloopError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spikeloop",
        description="Train and run spiking neural networks on simulators and emulated chips.",
    )
    parser.add_argument("--version", action="version", version=f"spikeloop {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a network from a YAML config")
    train.add_argument("config", help="YAML config file (see configs/yinyang.yaml)")
    train.add_argument("overrides", nargs="*", help="overrides like train.epochs=5 run.seed=1")
    train.add_argument("--backend", help="where the forward pass runs: sim, event (exact, "
                       "EventProp), chip (analog, in the loop), xylo (integer chip); same as the "
                       "override train.backend=NAME")
    summary = sub.add_parser("summary", help="print the traced network graph of a config")
    summary.add_argument("config")
    summary.add_argument("overrides", nargs="*")
    show = sub.add_parser("config", help="print the resolved config (defaults + file + overrides)")
    show.add_argument("config", nargs="?")
    show.add_argument("overrides", nargs="*")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spikeloop`` console script."""
    parser = _parser()
    # overrides may come before or after options: collect the leftover key=value items
    args, extra = parser.parse_known_args(argv)
    unknown = [e for e in extra if e.startswith("-") or "=" not in e]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides = [*getattr(args, "overrides", []), *extra]
    from spikeloop.training import Trainer, load_config

    try:
        overrides = list(args.overrides)
        if getattr(args, "backend", None):
            overrides.append(f"train.backend={args.backend}")
        cfg = load_config(args.config, overrides)
        if args.command == "config":
            print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        elif args.command == "summary":
            print(Trainer(cfg).network.summary())
        else:
            trainer = Trainer(cfg)
            print(trainer.network.summary())
            summary = trainer.fit()
            print(json.dumps(summary, indent=2))
            print(f"test accuracy: {summary['test_acc']:.4f}  "
                  f"({summary['wall_seconds']:.0f} s, results in {trainer.dir}/)")
    except SpikeloopError as err:
        print(f"spikeloop: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
