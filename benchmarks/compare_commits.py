"""Same-run speed comparison of two source trees (e.g. before and after a refactoring).

Each measurement runs in its own process with ``PYTHONPATH`` pointing at one tree's ``src``;
the two trees alternate round by round, so a noisy machine slows both alike. Reported: the
median over rounds of each process's median step time, and new / old.

Workloads (spikeloop's public API only):

- ``ff`` / ``rec``: the speed benchmark's standard workload (700 → 256 CUBA-LIF → 20 CUBA-LI,
  T = 100, B = 64, 5 % input; ``rec``: 256 × 256 recurrent), recording what the peers return;
  ``forward`` under ``torch.no_grad()`` and ``train`` (forward, backward, SGD step);
- ``yinyang``: the demo's network (configs/yinyang.yaml), batch 100: one simulator training step
  and one step with the analog chip in the loop (chip forward, replay, backward, Adam).

Usage (the tree before the change checked out with ``git worktree add /tmp/old <commit>``)::

    .venv/bin/python benchmarks/compare_commits.py /tmp/old/src src --rounds 6
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("ff", "rec", "yinyang")


def _median_ms(fn, steps: int = 40, warmup: int = 5) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def _network_class():
    try:
        from spikeloop.network import Network
    except ImportError:  # trees from before spikeloop.network existed
        from spikeloop.nn import Network
    return Network


def child(workload: str) -> dict[str, float]:
    """Time one workload with the spikeloop on ``sys.path``; returns medians in ms."""
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(0)
    network = _network_class()
    if workload in ("ff", "rec"):
        from spikeloop.backends import SimBackend
        from spikeloop.nn import CubaLI, CubaLIF, Input, Linear

        net = network({"input": Input(700), "fc1": Linear(700, 256),
                       "hidden": CubaLIF(256, recurrent=workload == "rec"),
                       "fc2": Linear(256, 20), "output": CubaLI(20)},
                      backend=SimBackend(record={"hidden": ["spikes"], "output": ["v"]}))
        with torch.no_grad():
            net.layers.fc1.weight.normal_(0.0, 0.12)
            net.layers.fc2.weight.normal_(0.0, 0.3)
        x = (torch.rand(100, 64, 700) < 0.05).float()
        y = torch.randint(0, 20, (64,))
        opt = torch.optim.SGD(net.parameters(), lr=1e-3)

        def forward() -> None:
            with torch.no_grad():
                net(x)

        def train() -> None:
            out = net(x)
            loss = torch.nn.functional.cross_entropy(out.output.v.max(0).values, y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        return {"forward": _median_ms(forward), "train": _median_ms(train)}
    from spikeloop.backends import get_backend
    from spikeloop.training.config import load_config
    from spikeloop.training.experiment import build_network

    cfg = load_config(ROOT / "configs" / "yinyang.yaml")
    net = build_network(cfg.model, 5, 3, cfg.data.dt, torch.Generator().manual_seed(0))
    x = (torch.rand(round(cfg.data.duration / cfg.data.dt), 100, 5) < 0.03).float()
    y = torch.randint(0, 3, (100,))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    out = {}
    for name, spec in (("sim_train", "sim"), ("chip_in_the_loop_train", {"name": "chip"})):
        backend = get_backend(spec)

        def step(backend=backend) -> None:
            o = net(x, backend=backend)
            loss = torch.nn.functional.cross_entropy(o.output.v.max(0).values, y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        out[name] = _median_ms(step, steps=30)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("old", help="the old tree's src folder")
    parser.add_argument("new", help="the new tree's src folder")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    from tqdm import tqdm

    trees = {"old": str(Path(args.old).resolve()), "new": str(Path(args.new).resolve())}
    samples: dict[tuple[str, str, str], list[float]] = {}
    runs = [(r, w, k) for r in range(args.rounds) for w in args.workloads for k in trees]
    for _, workload, which in tqdm(runs, desc="processes", disable=not sys.stderr.isatty()):
        env = os.environ | {"PYTHONPATH": trees[which]}
        done = subprocess.run([sys.executable, __file__, args.old, args.new, "--child", workload],
                              env=env, capture_output=True, text=True, check=True, cwd=ROOT)
        for metric, ms in json.loads(done.stdout.splitlines()[-1]).items():
            samples.setdefault((workload, metric, which), []).append(ms)
    rows = []
    print(f"| workload | step | old ms | new ms | new / old |  ({args.rounds} rounds)")
    print("|---|---|---:|---:|---:|")
    for workload in args.workloads:
        metrics = [m for (w, m, k) in samples if w == workload and k == "old"]
        for metric in metrics:
            old = statistics.median(samples[(workload, metric, "old")])
            new = statistics.median(samples[(workload, metric, "new")])
            rows.append({"workload": workload, "step": metric, "old_ms": old, "new_ms": new,
                         "ratio": new / old,
                         "old_all": samples[(workload, metric, "old")],
                         "new_all": samples[(workload, metric, "new")]})
            print(f"| {workload} | {metric} | {old:.2f} | {new:.2f} | {new / old:.3f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"trees": trees, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
