"""Generate the synthesised keyword-spotting data set (``make keywords``) or, with
``--ambient``, the ambient scenes (``make ambient``).

    python scripts/make_keywords.py [--out DIR] [--per-class N] [--test-per-class N]
                                    [--streams S] [--train-streams S] [--stream-s SEC]
                                    [--seed S] [--jobs J] [--quiet]
    python scripts/make_keywords.py --ambient [--out DIR] [--per-class N]
                                    [--test-per-class N] [--seed S] [--jobs J] [--quiet]

Writes ``keywords_{train,test}.h5`` (clips and streams, layout in
``spikeloop.data.keywords``) into ``--out`` (default ``$SPIKELOOP_DATA/keywords``, else
``data/keywords``), or ``ambient_{train,test}.h5`` (``spikeloop.data.ambient``; default
``$SPIKELOOP_DATA/ambient``). Needs the Debian package espeak-ng. See docs/keywords.md.
"""

from __future__ import annotations

import argparse
import sys
import time

from spikeloop.data import ambient
from spikeloop.data.keywords import default_dir, make_keywords, read_keywords
from spikeloop.errors import SpikeloopError


def main(argv: list[str] | None = None) -> int:
    """Parse the options, generate the splits, print where they went and what they hold."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help=f"output folder (default: {default_dir()})")
    parser.add_argument("--ambient", action="store_true",
                        help="write the ambient scenes instead (6 classes, no streams)")
    parser.add_argument("--per-class", type=int, default=None,
                        help="training clips per class; default 800 (ambient: 200)")
    parser.add_argument("--test-per-class", type=int, default=None,
                        help="test clips per class; default 100 (ambient: 50)")
    parser.add_argument("--streams", type=int, default=12, help="test streams; default 12")
    parser.add_argument("--train-streams", type=int, default=12,
                        help="training streams; default 12")
    parser.add_argument("--stream-s", type=float, default=60.0,
                        help="length of a stream in seconds; default 60")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.ambient:
        return _ambient(args, start)
    try:
        paths = make_keywords(args.out, per_class=args.per_class or 800,
                              test_per_class=args.test_per_class or 100, n_streams=args.streams,
                              train_streams=args.train_streams, stream_s=args.stream_s,
                              seed=args.seed, jobs=args.jobs, progress=not args.quiet)
    except SpikeloopError as err:
        print(f"make_keywords: {err}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - start
    for split, path in paths.items():
        d = read_keywords(path)
        n_kw = int((d.events["label"] < len(d.keys) - 1).sum())
        print(f"{split}: {path}: {len(d.labels)} clips, {len(d.streams)} streams of "
              f"{d.stream_s:g} s with {len(d.events['label'])} words ({n_kw} keywords), "
              f"{d.non_keyword_s:.1f} s of non-keyword audio")
    print(f"done in {seconds:.1f} s")
    return 0


def _ambient(args: argparse.Namespace, start: float) -> int:
    try:
        paths = ambient.make_ambient(args.out, per_class=args.per_class or 200,
                                     test_per_class=args.test_per_class or 50, seed=args.seed,
                                     jobs=args.jobs, progress=not args.quiet)
    except SpikeloopError as err:
        print(f"make_ambient: {err}", file=sys.stderr)
        return 2
    for split, path in paths.items():
        print(f"{split}: {path}: {len(ambient.read_ambient(path).labels)} clips")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
