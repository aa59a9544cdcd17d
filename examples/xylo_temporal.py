"""Temporal classification on the Xylo-like integer chip: float → naive quantised → QAT →
integer simulator in streaming mode (and optionally chip-in-the-loop training).

Data (generated here, deterministic per seed): six classes of 16-channel event rasters — an
up-chirp, a down-chirp, two alternating tones, a high→low and a low→high tone switch and an
up-down sweep. Every sample draws its own frequency span (the classes overlap in frequency:
low tones 0–6, high tones 9–15), onset and duration (35–80 % of the window), amplitude, tuning
width and background rate, and its frequency track jitters by ±0.8 channels per step; the
Poisson event counts per channel and step mimic a 16-channel audio front end. Up-chirp vs
low→high and down-chirp vs high→low differ only in how the frequency moves, so the task is
not separable at 100 %.

A multi-time-scale network (τ_syn = 2, 4, 8, 16 ms) is trained in float, quantised to the chip
(naive), and fine-tuned from the same float weights with QAT (and, with ``--in-the-loop``,
with the chip in the loop, its gradients from the chip's own integer model replayed at the
chip's states — the QAT gradients — or, for comparison, from the float model replayed on the
chip's spikes); every quantised model is evaluated on the integer simulator in
streaming mode (chunks of 7 steps). Accuracies are mean ± std over the seeds.

    OMP_NUM_THREADS=1 python examples/xylo_temporal.py --in-the-loop   # ~3.5 min, 3 seeds
                                  # (README numbers; other thread counts train the float model
                                  # to slightly different weights: float summation order)
    OMP_NUM_THREADS=1 python examples/xylo_temporal.py --quick         # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

from spikeloop.backends import get_backend
from spikeloop.chips.xylo import XyloStream, map_graph, qat_run, quantize
from spikeloop.network.blocks import synnet

CLASSES = ("up-chirp", "down-chirp", "alternating", "high→low", "low→high", "up-down")
CHUNK = 7
ROWS = {
    "float": "float (simulator)",
    "naive": "naive quantised → integer sim",
    "qat": "QAT → integer sim (streaming)",
    "in_the_loop": "in-the-loop, chip replay → integer sim (streaming)",
    "in_the_loop_float": "in-the-loop, float replay → integer sim (streaming)",
}


def make_data(n: int, steps: int, seed: int, noise: float = 0.15) -> tuple[torch.Tensor,
                                                                           torch.Tensor]:
    """``n`` rasters ``[steps, n, 16]`` of integer event counts and their labels.

    Sample ``b`` of class ``c`` follows a frequency track ``f(t)`` (channel units) that is active
    from ``t₀`` for ``L`` steps (``u = (t − t₀)/L``; up-chirp ``lo + (hi − lo)u``, down-chirp,
    alternating ``lo/hi`` with a random period, switches at a random ``u``, up-down
    ``lo + (hi − lo)(1 − |2u − 1|)``) plus Gaussian jitter; the counts are
    ``Poisson(a·exp(−(ch − f(t))²/(2w²))·active(t) + noise·ν)`` with per-sample ``a, w, ν``.
    """
    g = torch.Generator().manual_seed(seed)

    def ri(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    def rf(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand(1, generator=g))

    labels = torch.randperm(n, generator=g) % len(CLASSES)
    x = torch.zeros(steps, n, 16)
    t = torch.arange(steps).float()
    ch = torch.arange(16).float()
    for b in range(n):
        length = ri(int(0.35 * steps), int(0.8 * steps))
        start = ri(0, steps - length)
        u = ((t - start) / length).clamp(0, 1)
        active = (t >= start) & (t < start + length)
        lo, hi = rf(0, 6), rf(9, 15)
        c = int(labels[b])
        if c == 0:
            track = lo + (hi - lo) * u
        elif c == 1:
            track = hi - (hi - lo) * u
        elif c == 2:
            period = ri(4, 10)
            track = torch.where(((t - start) // period) % 2 == 0, lo, hi)
        elif c in (3, 4):
            first, second = (hi, lo) if c == 3 else (lo, hi)
            track = torch.where(u < rf(0.3, 0.7), first, second)
        else:
            track = lo + (hi - lo) * (1 - (2 * u - 1).abs())
        track = track + 0.8 * torch.randn(steps, generator=g)
        amp, width = rf(0.8, 2.0), rf(0.7, 1.5)
        rate = amp * torch.exp(-0.5 * ((ch[None] - track[:, None]) / width) ** 2)
        rate = rate * active[:, None] + noise * rf(0.5, 1.5)
        x[:, b] = torch.poisson(rate, generator=g)
    return x, labels


def accuracy(v: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction classified correctly by the largest readout membrane over time."""
    return float((v.amax(0).argmax(-1) == labels).float().mean())


def train(net, x, y, backend, epochs: int, lr: float, desc: str, progress: bool = True) -> None:
    """Adam on the cross-entropy of the readout's peak membrane, minibatches of 32."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    batches = x.split(32, dim=1)
    labels = y.split(32)
    for _ in tqdm(range(epochs), desc=desc, disable=not progress):
        for xb, yb in zip(batches, labels, strict=True):
            out = net(xb, backend=backend)
            loss = torch.nn.functional.cross_entropy(out.output.v.amax(0), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            net.constrain_()


def evaluate_streaming(net, x, y, chunk: int = CHUNK) -> tuple[float, torch.Tensor, str]:
    """Quantise ``net``, run the integer simulator chunk by chunk (state carried over);
    the accuracy, the integer output membranes and the quantisation report."""
    config, report = quantize(net.graph)
    stream = XyloStream(config)
    parts = [stream(c) for c in x.split(chunk)]
    v_int = torch.cat([p.v_out for p in parts])
    return accuracy(v_int.double() / report.scale_out.double(), y), v_int, report.summary()


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    """Train and evaluate every method for one seed (data and initialisation)."""
    torch.manual_seed(seed)
    steps = 60
    n_train, n_test = (64, 32) if args.quick else (768, 384)
    epochs, tune_epochs = (1, 1) if args.quick else (60, 10)
    x_train, y_train = make_data(n_train, steps, 1000 * seed)
    x_test, y_test = make_data(n_test, steps, 1000 * seed + 1)
    net = synnet(16, (32,), len(CLASSES), dt=1e-3, scales=4, tau_mem=4e-3)
    progress = not args.no_progress
    row: dict = {"seed": seed}
    t0 = time.perf_counter()
    train(net, x_train, y_train, "sim", epochs, 1e-2, f"seed {seed} float", progress)
    with torch.no_grad():
        row["float"] = accuracy(net(x_test).output.v, y_test)
        row["naive"], _, _ = evaluate_streaming(net, x_test, y_test)
    float_state = {k: v.clone() for k, v in net.state_dict().items()}
    row["wall_float_s"] = time.perf_counter() - t0
    loop_state = None
    if args.in_the_loop:
        for key, replay in (("in_the_loop", "chip"), ("in_the_loop_float", "float")):
            t0 = time.perf_counter()
            train(net, x_train, y_train, get_backend({"name": "xylo", "replay": replay}),
                  tune_epochs, 3e-3, f"seed {seed} in-the-loop ({replay} replay)", progress)
            with torch.no_grad():
                row[key], _, _ = evaluate_streaming(net, x_test, y_test)
            row[f"wall_{key}_s"] = time.perf_counter() - t0
            if replay == "chip":
                loop_state = {k: v.clone() for k, v in net.state_dict().items()}
            net.load_state_dict(float_state)
    t0 = time.perf_counter()
    qat = get_backend({"name": "xylo", "mode": "qat"})
    train(net, x_train, y_train, qat, tune_epochs, 3e-3, f"seed {seed} QAT", progress)
    with torch.no_grad():
        row["qat_model"] = accuracy(net(x_test, backend=qat).output.v, y_test)
        row["qat"], v_chip, row["quantisation"] = evaluate_streaming(net, x_test, y_test)
        rec, _, _ = qat_run(map_graph(net.graph), x_test)
    # the QAT forward is the chip's integer forward: identical membranes, not just accuracy
    row["qat_model_equals_integer_sim"] = bool(torch.equal(rec.v_out.long(), v_chip))
    row["wall_qat_s"] = time.perf_counter() - t0
    if loop_state is not None:  # exact replay: the QAT gradients at the chip's (equal) states
        row["in_the_loop_vs_qat_max_weight_diff"] = max(
            float((v - loop_state[k]).abs().max()) for k, v in net.state_dict().items()
            if v.is_floating_point())
    return row


def summarise(rows: list[dict]) -> dict[str, tuple[float, float]]:
    """Mean and (sample) standard deviation of each method's accuracy over the seeds."""
    out = {}
    for key in ROWS:
        values = [r[key] for r in rows if key in r]
        if values:
            out[key] = (statistics.fmean(values),
                        statistics.stdev(values) if len(values) > 1 else 0.0)
    return out


def markdown(summary: dict[str, tuple[float, float]], rows: list[dict], wall: float) -> str:
    """The results as a markdown table."""
    seeds = ", ".join(str(r["seed"]) for r in rows)
    lines = [f"Xylo temporal task ({len(CLASSES)} classes, 16 channels, 60 steps), test "
             f"accuracy, mean ± std over seeds {seeds}:", "",
             "| model → evaluated on | accuracy | per seed |", "|---|---|---|"]
    for key, (mean, std) in summary.items():
        per = " / ".join(f"{100 * r[key]:.1f}" for r in rows)
        lines.append(f"| {ROWS[key]} | {100 * mean:.1f} ± {100 * std:.1f} % | {per} |")
    same = all(r["qat_model_equals_integer_sim"] for r in rows)
    lines += ["", f"QAT model forward identical to the integer simulator (membranes, every "
              f"seed): {same}. Streaming in chunks of {CHUNK} steps. Total wall time "
              f"{wall:.0f} s."]
    diffs = [r["in_the_loop_vs_qat_max_weight_diff"] for r in rows
             if "in_the_loop_vs_qat_max_weight_diff" in r]
    if diffs:
        lines += ["", "In the loop with the chip replay (the chip's integer step function at "
                  "the chip's states) the gradients are the QAT gradients: largest weight "
                  f"difference after training, in-the-loop vs QAT: {max(diffs):.3g}. The float "
                  "replay re-runs the float populations on the chip's spikes (no hop delay, "
                  "exponential decays): approximate gradients."]
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test run, no files")
    parser.add_argument("--in-the-loop", action="store_true", help="also train chip-in-the-loop")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds (default 0 1 2; --quick: 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--out", default="benchmarks/results/xylo_temporal.json",
                        help="JSON results; the markdown table goes next to it (.md)")
    args = parser.parse_args()
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    t0 = time.perf_counter()
    rows = [run_seed(s, args) for s in seeds]
    wall = time.perf_counter() - t0
    summary = summarise(rows)
    for key, (mean, std) in summary.items():
        print(f"{ROWS[key]:52s} {100 * mean:5.1f} ± {100 * std:4.1f} %")
    print(f"{'QAT model (QAT forward)':52s} "
          f"{100 * statistics.fmean(r['qat_model'] for r in rows):5.1f} %")
    print(f"QAT forward identical to the integer simulator: "
          f"{all(r['qat_model_equals_integer_sim'] for r in rows)}")
    if args.in_the_loop:
        print("in-the-loop (chip replay) vs QAT, largest weight difference: "
              f"{max(r['in_the_loop_vs_qat_max_weight_diff'] for r in rows):.3g}")
    print(f"wall {wall:.1f} s")
    print(rows[0]["quantisation"])
    if not args.quick:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        result = {"task": {"classes": list(CLASSES), "channels": 16, "steps": 60,
                           "train": 768, "test": 384, "chunk": CHUNK},
                  "summary": {ROWS[k]: {"mean": m, "std": s} for k, (m, s) in summary.items()},
                  "rows": rows, "wall_s": wall}
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
        out.with_suffix(".md").write_text(markdown(summary, rows, wall))


if __name__ == "__main__":
    main()
