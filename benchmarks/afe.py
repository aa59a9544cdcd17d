"""Speed of the audio front end (spikeloop.data.afe): real-time factor of the float and the
integer model on a batch of one-second clips, one process, one call each.

Real-time factor = seconds of audio processed (batch × clip length) / wall-clock seconds; the
median over ``--rounds`` calls is printed.

Usage::

    .venv/bin/python benchmarks/afe.py --batch 64 --fs 16000 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from spikeloop.data import afe_counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--fs", type=int, default=16000)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = round(args.fs * args.seconds)
    audio = np.clip(np.random.default_rng(0).standard_normal((args.batch, n)) * 0.05,
                    -0.999, 0.999)
    for integer in (False, True):
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            afe_counts(audio, args.fs, integer=integer)
            times.append(time.perf_counter() - t0)
        wall = statistics.median(times)
        print(f"{'integer' if integer else 'float':7s} model: {args.batch} x {args.seconds:g} s "
              f"at {args.fs} Hz in {wall:.3f} s = {args.batch * args.seconds / wall:.0f}x "
              "real time")


if __name__ == "__main__":
    main()
