"""Is data loading ever the bottleneck? Samples per second of the loader (``torch.utils.data``
with 0 and 2 worker processes) against samples per second of a training step, for SHD-format
and Fashion-MNIST data.

    python benchmarks/data_loading.py [--quick] [--shd-file PATH] [--threads 1]

* **SHD-format**: :class:`spikeloop.data.SHD` over the spoken digits' training file (``make
  spoken-digits``; ``--shd-file`` another SHD-layout file) with the SHD augmentations
  (``TimeShift(50 ms)``, ``ChannelShift(5)``, seeded per sample and epoch), binned at 10 ms
  over 1 s (``T = 100``), batches of 64 collated time-major (``time_major_collate``);
  against the training step of ``configs/spoken_digits.yaml``'s network (700 → 256 recurrent
  CUBA-LIF → 20, forward + backward + Adam step) on such a batch.
* **Fashion-MNIST**: a ``Dataset`` of the IDX images (``load_mnist_family``), batches of 128,
  each batch scaled to ``[0, 1]`` and encoded by the config's encoder (``direct``) in the main
  process; against the training steps of ``configs/fashion_mnist_fc.yaml`` and
  ``configs/fashion_mnist_conv.yaml``.

The loader is timed alone (iterating ``--batches`` batches after the workers started and one
batch went through), the step alone (median of ``--steps`` steps after one warm-up), in one
process with ``--threads`` torch threads. ratio = loader samples/s ÷ step samples/s: above 1,
the loader keeps up. Writes ``benchmarks/results/data_loading.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from spikeloop._runtime import usable_cores

ROOT = Path(__file__).resolve().parents[1]


class Images(Dataset):
    """IDX images as ``(uint8 [1, 28, 28], label)`` (scaled and encoded per batch)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = torch.from_numpy(images).unsqueeze(1)
        self.labels = torch.from_numpy(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


def loader_rate(loader: DataLoader, batches: int, encode: Any = None) -> float:
    """Samples per second of ``batches`` batches (after the first, which starts the workers)."""
    it = iter(loader)
    x, _ = next(it)
    n, t0 = 0, time.perf_counter()
    for _ in range(batches):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        if encode is not None:
            x = encode(x)
        n += len(y)
    return n / (time.perf_counter() - t0)


def step_rate(config: str, x: torch.Tensor, y: torch.Tensor, n_out: int, steps: int) -> float:
    """Samples per second of the config's training step on the batch ``(x, y)``."""
    from spikeloop.training import load_config, make_loss
    from spikeloop.training.experiment import build_network

    cfg = load_config(ROOT / "configs" / config)
    net = build_network(cfg.model, tuple(x.shape[2:]), n_out, cfg.data.dt,
                        torch.Generator().manual_seed(0))
    loss = make_loss(cfg.train.loss, dt=cfg.data.dt)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.train.lr)
    times = []
    for k in range(steps + 1):
        t0 = time.perf_counter()
        out = net(x)
        value = loss(out, y)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        if k:
            times.append(time.perf_counter() - t0)
    return len(y) / statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few batches and steps (smoke)")
    parser.add_argument("--shd-file", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" /
                        "data_loading")
    args = parser.parse_args(argv)
    from spikeloop.data import (
        SHD,
        ChannelShift,
        TimeShift,
        find,
        load_mnist_family,
        make_encoder,
        time_major_collate,
    )
    from spikeloop.errors import SpikeloopError

    torch.set_num_threads(args.threads)
    batches, steps = (3, 2) if args.quick else (30, 10)
    try:
        shd_path = args.shd_file or find("spoken_digits") / "spoken_digits_train.h5"
        fm = load_mnist_family("fashion_mnist", "train")
    except SpikeloopError as err:
        print(f"data_loading: error: {err}", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    shd = SHD(shd_path, "train", dt=10e-3, duration=1.0,
              augment=[TimeShift(0.05), ChannelShift(5, 700)])
    for workers in args.workers:
        loader = DataLoader(shd, batch_size=64, shuffle=True, num_workers=workers,
                            collate_fn=time_major_collate,
                            generator=torch.Generator().manual_seed(0))
        rows.append({"data": "SHD-format (spoken digits, T = 100, 10 ms bins, augmented)",
                     "workers": workers, "batch": 64,
                     "loader": loader_rate(loader, batches)})
        x, y = next(iter(loader))
    shd_step = step_rate("spoken_digits.yaml", x.float(), y, 20, steps)
    for row in rows:
        row |= {"step": shd_step, "model": "spoken_digits.yaml: 700 → 256 rec → 20"}
    images = Images(*fm)
    for config, duration in (("fashion_mnist_fc.yaml", 8e-3), ("fashion_mnist_conv.yaml", 4e-3)):
        encoder = make_encoder("direct", dt=1e-3, duration=duration)
        flat = "fc" in config

        def encode(x: torch.Tensor, encoder: Any = encoder, flat: bool = flat) -> torch.Tensor:
            x = x.float().div_(255.0)
            return encoder(x.flatten(1) if flat else x)

        first = len(rows)
        for workers in args.workers:
            loader = DataLoader(images, batch_size=128, shuffle=True, num_workers=workers,
                                generator=torch.Generator().manual_seed(0))
            rows.append({"data": f"Fashion-MNIST (direct, T = {round(duration / 1e-3)})",
                         "workers": workers, "batch": 128,
                         "loader": loader_rate(loader, batches, encode)})
        xb, yb = next(iter(DataLoader(images, batch_size=128)))
        step = step_rate(config, encode(xb), yb, 10, steps)
        for row in rows[first:]:
            row |= {"step": step, "model": config.removesuffix(".yaml")}
    for row in rows:
        row["ratio"] = row["loader"] / row["step"]
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {usable_cores()} "
                       "cores", "torch": torch.__version__, "threads": args.threads,
            "quick": args.quick, "shd_file": str(shd_path),
            "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                     capture_output=True, text=True).stdout.strip()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["# Data loading against training steps", "",
             f"{meta['date']} · {meta['machine']} · torch {meta['torch']} · {args.threads} torch "
             f"thread(s) in the main process · commit {meta['commit']}"
             + (" · quick (smoke) run" if args.quick else ""), "",
             "| data | model | loader workers | loader samples/s | train step samples/s | "
             "loader ÷ step |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['data']} | {r['model']} | {r['workers']} | {r['loader']:.0f} | "
                     f"{r['step']:.0f} | {r['ratio']:.1f} |")
    lines += ["", "`python benchmarks/data_loading.py` (`make data-bench`) reproduces it; "
              "ratio > 1: the loader delivers samples faster than the training step uses "
              "them."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
