"""Temporal classification on the Xylo-like integer chip: float → naive quantised → QAT →
integer simulator in streaming mode (and optionally chip-in-the-loop training).

Data (generated here): four classes of 16-channel event rasters — an up-chirp, a down-chirp,
two alternating tones and a tone that switches once — with jittered timing and background
noise, encoded as integer event counts per channel and step (like a 16-channel audio front
end). A multi-time-scale network (τ_syn = 2, 4, 8, 16 ms) is trained in float, quantised to the
chip, fine-tuned with QAT, and run on the integer simulator chunk by chunk.

    OMP_NUM_THREADS=1 python examples/xylo_temporal.py            # ~2 min on one core
    OMP_NUM_THREADS=1 python examples/xylo_temporal.py --quick    # smoke test
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from spikeloop.backends import get_backend
from spikeloop.chips.xylo import XyloStream, quantize
from spikeloop.chips.xylo.multiscale import synnet

CLASSES = ("up-chirp", "down-chirp", "alternating", "switch")


def make_data(n: int, steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` rasters ``[steps, n, 16]`` of event counts and their labels."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(CLASSES)
    x = torch.zeros(steps, n, 16)
    t = torch.arange(steps).float()
    for b in range(n):
        start = int(torch.randint(0, steps // 5, (1,), generator=g))
        length = steps - start - int(torch.randint(0, steps // 5, (1,), generator=g))
        u = ((t - start) / length).clamp(0, 1)
        active = (t >= start) & (t < start + length)
        c = int(labels[b])
        lo, hi = 1 + int(torch.randint(0, 3, (1,), generator=g)), 12 + int(
            torch.randint(0, 3, (1,), generator=g))
        if c == 0:
            chan = lo + (hi - lo) * u
        elif c == 1:
            chan = hi - (hi - lo) * u
        elif c == 2:
            period = 6 + int(torch.randint(0, 4, (1,), generator=g))
            chan = torch.where(((t - start) // period) % 2 == 0, float(lo + 2), float(hi - 2))
        else:
            chan = torch.where(u < 0.5, float(hi - 2), float(lo + 2))
        rate = 2.0 * torch.exp(-0.5 * (torch.arange(16).float()[None] - chan[:, None]) ** 2)
        rate = rate * active[:, None] + 0.05
        x[:, b] = torch.poisson(rate, generator=g)
    return x, labels


def accuracy(v: torch.Tensor, labels: torch.Tensor) -> float:
    return float((v.amax(0).argmax(-1) == labels).float().mean())


def train(net, x, y, backend, epochs: int, lr: float, desc: str) -> None:
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    batches = x.split(32, dim=1)
    labels = y.split(32)
    for _ in tqdm(range(epochs), desc=desc):
        for xb, yb in zip(batches, labels, strict=True):
            out = net(xb, backend=backend)
            loss = torch.nn.functional.cross_entropy(out.output.v.amax(0), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            net.constrain_()


def evaluate_streaming(net, x, y, chunk: int) -> tuple[float, dict]:
    config, report = quantize(net.graph)
    stream = XyloStream(config)
    parts = [stream(c) for c in x.split(chunk)]
    v_out = torch.cat([p.v_out for p in parts]).double() / report.scale_out.double()
    return accuracy(v_out, y), {"report": report.summary(), "config_bytes": len(config.to_json())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--in-the-loop", action="store_true", help="also train chip-in-the-loop")
    parser.add_argument("--out", default="benchmarks/results/xylo_temporal.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    steps = 60
    n_train, n_test = (64, 32) if args.quick else (512, 256)
    epochs, qat_epochs = (1, 1) if args.quick else (30, 6)
    x_train, y_train = make_data(n_train, steps, 0)
    x_test, y_test = make_data(n_test, steps, 1)
    net = synnet(16, (32,), len(CLASSES), dt=1e-3, scales=4, tau_mem=4e-3)
    t0 = time.perf_counter()
    train(net, x_train, y_train, "sim", epochs, 1e-2, "float (sim)")
    results = {}
    with torch.no_grad():
        results["float (sim)"] = accuracy(net(x_test).output.v, y_test)
        results["naive quantised (integer sim)"] = accuracy(
            net(x_test, backend="xylo").output.v, y_test)
    float_state = {k: v.clone() for k, v in net.state_dict().items()}
    if args.in_the_loop:
        train(net, x_train, y_train, get_backend("xylo"), qat_epochs, 3e-3, "in-the-loop")
        with torch.no_grad():
            results["in-the-loop (integer sim)"] = accuracy(
                net(x_test, backend="xylo").output.v, y_test)
        net.load_state_dict(float_state)
    train(net, x_train, y_train, get_backend({"name": "xylo", "mode": "qat"}), qat_epochs, 3e-3,
          "QAT")
    with torch.no_grad():
        results["QAT (QAT model)"] = accuracy(
            net(x_test, backend={"name": "xylo", "mode": "qat"}).output.v, y_test)
    results["QAT → integer sim, streaming (chunks of 7 steps)"], extra = evaluate_streaming(
        net, x_test, y_test, chunk=7)
    results["wall_s"] = time.perf_counter() - t0
    for k, v in results.items():
        print(f"{k:55s} {v:.3f}")
    print(extra["report"])
    if not args.quick:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results | {"quantisation": extra["report"]},
                                             indent=2))


if __name__ == "__main__":
    main()
