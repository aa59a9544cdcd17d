"""Generate the synthesised spoken-digits data set (SHD layout): ``make spoken-digits``.

    python scripts/make_spoken_digits.py [--out DIR] [--encoder cochlea|spectrogram]
                                         [--per-class N] [--seed S] [--jobs J]

Writes ``spoken_digits_{train,test}.h5`` (``--encoder spectrogram``:
``spoken_digits_spectrogram_{train,test}.h5``) into ``--out`` (default
``$SPIKELOOP_DATA/spoken_digits``, else ``data/spoken_digits``). Needs the
Debian package espeak-ng. See docs/spoken-digits.md.
"""

from __future__ import annotations

import argparse
import sys
import time

from spikeloop.data.spoken_digits import ENCODER_NAMES, default_dir, make_spoken_digits
from spikeloop.errors import SpikeloopError


def main(argv: list[str] | None = None) -> int:
    """Parse the options, generate the splits, print where they went."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None,
                        help=f"output folder (default: {default_dir()})")
    parser.add_argument("--encoder", choices=ENCODER_NAMES, default="cochlea",
                        help="spike encoder: the inner-ear model or the spectrogram baseline")
    parser.add_argument("--per-class", type=int, default=120,
                        help="training utterances per class (test: a quarter); default 120")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        paths = make_spoken_digits(args.out, per_class=args.per_class, seed=args.seed,
                                   encoder=args.encoder, jobs=args.jobs,
                                   progress=not args.quiet)
    except SpikeloopError as err:
        print(f"make_spoken_digits: {err}", file=sys.stderr)
        return 2
    for split, path in paths.items():
        print(f"{split}: {path}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
