"""Keyword spotting from audio to the integer chip: the audio front end, three networks, float →
quantised → QAT → chip in the loop → the integer chip in streaming mode on continuous audio.

Data: the synthesised keyword files (``make keywords``; :mod:`spikeloop.data.keywords`):
1 s clips of four keywords and an "other" class, and continuous streams with labelled word
events. The integer audio front end (:mod:`spikeloop.data.afe`) turns the 16 kHz audio into
spike counts per 10 ms bin (13 bands below 0.45·fs); every network runs at ``dt`` = 10 ms.

For each network (``configs/kws_{synnet,wavesense,lif}.yaml``: the model and training
sections) and seed:

1. **float**: trained on the clips with the simulator (Adam, the config's loss, epochs, lr
   and batch size); evaluated in float on the clips and on the streams;
2. **quantised**: the float weights quantised to the chip (no retraining);
3. **QAT**: fine-tuned from the float weights through the chip's integer model
   (``xylo`` backend, ``mode: qat``);
4. **chip in the loop**: fine-tuned from the float weights with the forward pass on the
   chip; the float model is re-run on the chip's spikes and its values replaced by the chip's,
   so its gradients are evaluated where the chip was (``xylo`` backend, ``replay: float``;
   ``replay: chip`` would replay the chip's own integer model, whose gradients are QAT's).

Stages 2–4 run on the integer simulator in streaming mode (the streams in chunks of
``--chunk`` steps, state carried across). Reported per stage: clip accuracy (test split,
largest peak membrane), and on the test streams the keyword hit rate, the median detection
latency from the keyword's onset and false alarms per hour of non-keyword audio
(:mod:`spikeloop.training.detection`; thresholds calibrated on the *training* streams: per
keyword the ``q``-quantile of its readout peak on training clips without it, ``q`` the
grid value with the most hits among those with at most ``--fa-target`` (100) false alarms
per hour on the training streams, or with the fewest false alarms if none has so few; the
result file also holds the test streams' hit rate and false alarms at every grid value).
Energy per inference (one 1 s clip on the chip, mean over the test clips):
:mod:`spikeloop.chips.xylo.energy`.

    python benchmarks/kws.py                    # 3 seeds × 3 networks (make kws-bench)
    python benchmarks/kws.py --models synnet lif --out /tmp/a.json   # in two processes …
    python benchmarks/kws.py --models wavesense --out /tmp/b.json
    python benchmarks/kws.py --combine /tmp/a.json /tmp/b.json      # … one result file
    python benchmarks/kws.py --quick            # smoke test: 1 epoch per stage, 8 clips per
                                                # class, one 20 s stream; no result files
"""

from __future__ import annotations

import argparse
import functools
import json
import operator
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from spikeloop.backends import get_backend
from spikeloop.chips.xylo import XyloStream, map_graph, quantize
from spikeloop.chips.xylo.energy import LOIHI_PROXY, count_ops, estimate
from spikeloop.data import afe_counts, find
from spikeloop.data.keywords import file_name, read_keywords
from spikeloop.training.config import load_config
from spikeloop.training.detection import calibrate_threshold, detect, score
from spikeloop.training.experiment import build_network, load_data
from spikeloop.training.losses import make_loss

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("synnet", "wavesense", "lif")
STAGES = {"float": "float (simulator)", "quantised": "quantised → chip",
          "qat": "QAT → chip", "in_the_loop": "chip in the loop → chip"}
KEYWORDS = 4
QUANTILES = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.993, 0.996, 0.998, 0.999, 1.0)
PUBLISHED = ("Xylo Audio 2, Aloha keyword spotting: 95 % accuracy after quantisation, 291 µW "
             "dynamic power, 6.6 µJ per inference (Bos & Muir 2024, arXiv:2406.15112)")


def stream_counts(audio: np.ndarray, fs: int) -> tuple[torch.Tensor, int]:
    """The integer front end's counts ``[T, S, C]`` of the streams ``audio [S, n]`` and how
    many counts it capped at the chip's 15."""
    res = afe_counts(audio, fs, integer=True, on_clip="error")
    return torch.from_numpy(res.counts).to(torch.float32), res.n_capped


def load(split: str, cfg, quick: bool) -> dict[str, Any]:
    """One split's clips (as the configs' data section encodes them: ``load_data``) and its
    streams through the same integer front end, with the streams' word events."""
    clips = load_data(cfg.data)["train" if split == "train" else "test"]
    f = read_keywords(find("keywords", root=cfg.data.root) / file_name(split))
    x, y, streams = clips.spikes.to(torch.float32), clips.labels, f.streams
    ev = f.events
    if quick:  # 8 clips per class; the first stream up to the end of its last word before 20 s
        keep = torch.cat([torch.nonzero(y == c)[:8, 0] for c in range(len(f.keys))])
        ends = ev["offset_s"][(ev["stream"] == 0) & (ev["offset_s"] <= 20.0)]
        cut = int(np.ceil((ends.max() if len(ends) else 20.0) * f.fs))
        x, y, streams = x[:, keep], y[keep], streams[:1, :cut]
    duration = streams.shape[1] / f.fs
    events = []
    for s in range(len(streams)):
        mine = ev["stream"] == s
        label = ev["label"][mine].astype(np.int64)
        e = np.stack([ev["onset_s"][mine], ev["offset_s"][mine],
                      np.where(label < KEYWORDS, label, -1)], axis=1)
        events.append(e[e[:, 1] <= duration])
    counts, capped = stream_counts(streams, f.fs)
    return {"x": x, "y": y, "streams": counts, "events": events, "duration": duration,
            "keys": f.keys, "streams_capped": capped}


def train(net, x, y, backend, epochs: int, lr: float, batch: int, loss_fn, seed: int,
          desc: str, progress: bool) -> None:
    """Adam on ``loss_fn`` over shuffled minibatches."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        order = torch.randperm(len(y), generator=g)
        for idx in order.split(batch):
            out = net(x[:, idx], backend=backend)
            loss = loss_fn(out, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            net.constrain_()


def float_readout(net, x: torch.Tensor) -> torch.Tensor:
    """The float model's readout membrane ``[T, B, O]``."""
    with torch.no_grad():
        return net(x).output.v


def chip_readout(config, report, x: torch.Tensor, chunk: int) -> tuple[torch.Tensor, Any]:
    """The integer chip in streaming mode: readout membranes in model units ``[T, B, O]``
    and the run of the whole input (for counting operations)."""
    stream = XyloStream(config)
    parts = [stream(c) for c in x.split(chunk)]
    v = torch.cat([p.v_out for p in parts]).double() / report.scale_out.double()
    return v, parts


def quantile_thresholds(peaks: torch.Tensor, labels: torch.Tensor, q: float) -> np.ndarray:
    """``θ_k``: the ``q``-quantile of keyword ``k``'s readout peak ``[N, O]`` over the clips
    that are not ``k``."""
    return np.stack([calibrate_threshold(peaks[labels != k, k, None].numpy(), q)[0]
                     for k in range(KEYWORDS)])


def thresholds(peaks_clips: torch.Tensor, labels: torch.Tensor, stream_v: torch.Tensor,
               events: list[np.ndarray], duration: float, dt: float,
               fa_target: float) -> tuple[np.ndarray, float]:
    """Per-keyword thresholds (module docstring): the quantile ``q`` of the grid chosen on the
    training streams."""
    best = None
    for q in QUANTILES:
        theta = quantile_thresholds(peaks_clips, labels, q)
        s = stream_score(stream_v, events, duration, dt, theta)
        meets = s.false_alarms_per_hour <= fa_target  # else: the fewest false alarms
        key = (meets, s.hits if meets else -s.false_alarms, -s.false_alarms)
        if best is None or key > best[0]:
            best = (key, theta, q)
    return best[1], best[2]


def stream_score(v: torch.Tensor, events: list[np.ndarray], duration: float, dt: float,
                 theta: np.ndarray):
    total = None
    for s in range(v.shape[1]):
        sc = score(detect(v[:, s].numpy(), dt, theta, keywords=KEYWORDS), events[s], duration)
        total = sc if total is None else total + sc
    return total


def evaluate(readout, data: dict, train_data: dict, dt: float, fa_target: float) -> dict:
    """Clip accuracy and stream detection of one model (``readout(x) -> v [T, B, O]``)."""
    v_clips = readout(data["x"])
    acc = float((v_clips.amax(0).argmax(-1) == data["y"]).double().mean())
    v_train = readout(train_data["x"])
    peaks = v_train.amax(0)
    theta, q = thresholds(peaks, train_data["y"], readout(train_data["streams"]),
                          train_data["events"], train_data["duration"], dt, fa_target)
    v_test = readout(data["streams"])
    s = stream_score(v_test, data["events"], data["duration"], dt, theta)
    curve = []  # the trade-off on the test streams at every quantile of the grid
    for qq in QUANTILES:
        sc = stream_score(v_test, data["events"], data["duration"], dt,
                          quantile_thresholds(peaks, train_data["y"], qq))
        curve.append({"quantile": qq, "hit_rate": sc.hit_rate,
                      "false_alarms_per_hour": sc.false_alarms_per_hour})
    return {"accuracy": acc, "hit_rate": s.hit_rate, "latency_ms": s.median_latency_ms,
            "false_alarms_per_hour": s.false_alarms_per_hour, "false_alarms": s.false_alarms,
            "keywords": s.keywords, "non_keyword_h": s.non_keyword_s / 3600, "quantile": q,
            "thresholds": theta.tolist(), "test_curve": curve}


def chip_stage(net, data: dict, train_data: dict, dt: float, args) -> dict:
    """Quantise ``net`` and evaluate it on the integer chip in streaming mode, with the
    energy per 1 s clip."""
    config, report = quantize(map_graph(net.graph))
    runs: list = []

    limits: dict[str, int] = {}

    def readout(x: torch.Tensor) -> torch.Tensor:
        v, parts = chip_readout(config, report, x, args.chunk)
        if not runs:  # the first call runs the test clips: keep it for the counts
            runs.append((x, parts))
        for p in parts:  # chip limits hit on any input (clips and streams)
            for name, n in p.clipped.items():
                limits[name] = limits.get(name, 0) + int(n)
        return v

    row = evaluate(readout, data, train_data, dt, args.fa_target)
    x, parts = runs[0]  # the test clips
    chunks = [count_ops(config, x[t0:t0 + args.chunk], p)
              for t0, p in zip(range(0, x.shape[0], args.chunk), parts, strict=True)]
    ops = functools.reduce(operator.add, chunks)
    e = estimate(ops, dt, LOIHI_PROXY)
    row.update(energy_dynamic_uj=1e6 * e.dynamic_j, energy_total_uj=1e6 * e.total_j,
               sops_per_inference=e.sops, limits_hit=limits,
               quantisation_saturated={k: list(v) for k, v in report.saturated.items()},
               hidden_neurons=config.num_hidden)
    return row


def run(model: str, seed: int, train_data: dict, test_data: dict, args) -> dict:
    """Every stage of one network and seed."""
    cfg = load_config(ROOT / "configs" / f"kws_{model}.yaml", args.overrides)
    if cfg.data != args.data_cfg.data:
        raise SystemExit(f"configs/kws_{model}.yaml: its data section differs from "
                         "configs/kws_synnet.yaml's; the networks must see the same data")
    dt = cfg.data.dt
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    n_in = train_data["x"].shape[-1]
    net = build_network(cfg.model, n_in, len(train_data["keys"]), dt, generator=g)
    loss_fn = make_loss(dict(cfg.train.loss), dt)
    epochs, tune = (1, 1) if args.quick else (cfg.train.epochs, args.tune_epochs)
    batch, lr = cfg.train.batch_size, cfg.train.lr
    x, y = train_data["x"], train_data["y"]
    row: dict[str, Any] = {"model": model, "seed": seed,
                           "parameters": sum(p.numel() for p in net.parameters())}
    t0 = time.perf_counter()
    train(net, x, y, "sim", epochs, lr, batch, loss_fn, seed, f"{model} {seed} float",
          args.progress)
    row["float"] = evaluate(lambda a: float_readout(net, a), test_data, train_data, dt,
                            args.fa_target)
    row["quantised"] = chip_stage(net, test_data, train_data, dt, args)
    row["hidden"] = row["quantised"]["hidden_neurons"]
    row["wall_float_s"] = time.perf_counter() - t0
    float_state = {k: v.clone() for k, v in net.state_dict().items()}
    for stage, backend in (("qat", {"name": "xylo", "mode": "qat"}),
                           ("in_the_loop", {"name": "xylo", "replay": "float"})):
        t0 = time.perf_counter()
        net.load_state_dict(float_state)
        train(net, x, y, get_backend(backend), tune, args.tune_lr, batch, loss_fn, seed + 1,
              f"{model} {seed} {stage}", args.progress)
        row[stage] = chip_stage(net, test_data, train_data, dt, args)
        row[f"wall_{stage}_s"] = time.perf_counter() - t0
    return row


METRICS = (("accuracy", "clip accuracy", 100, "{:.1f} %"),
           ("hit_rate", "keywords detected", 100, "{:.1f} %"),
           ("latency_ms", "latency (ms)", 1, "{:.0f}"),
           ("false_alarms_per_hour", "false alarms / h", 1, "{:.0f}"),
           ("energy_dynamic_uj", "dynamic energy / inference (µJ)", 1, "{:.2f}"),
           ("energy_total_uj", "with idle power (µJ)", 1, "{:.0f}"))


def _cell(values: list[float], scale: float, fmt: str) -> str:
    values = [scale * v for v in values if v == v]
    if not values:
        return "–"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.fmean(values))} ± {fmt.format(statistics.stdev(values))}"


def markdown(result: dict) -> str:
    rows = result["rows"]
    seeds = sorted({r["seed"] for r in rows})
    lines = [f"Keyword spotting (4 keywords + other), test split: mean ± std over seeds "
             f"{', '.join(map(str, seeds))}. Clips 1 s; streams "
             f"{result['test_streams_h'] * 60:.0f} min of continuous audio with "
             f"{result['test_keywords']} keywords and "
             f"{result['test_non_keyword_h'] * 60:.1f} min outside them.", "",
             "| network | stage | " + " | ".join(m[1] for m in METRICS) + " |",
             "|---|---|" + "---:|" * len(METRICS)]
    for model in MODELS:
        mine = [r for r in rows if r["model"] == model]
        if not mine:
            continue
        for stage, label in STAGES.items():
            cells = [_cell([r[stage].get(key, float("nan")) for r in mine], scale, fmt)
                     for key, _, scale, fmt in METRICS]
            lines.append(f"| {model} ({mine[0]['hidden']} hidden) | {label} | "
                         + " | ".join(cells) + " |")
    lines += ["", f"Published: {PUBLISHED}. Energy here: {LOIHI_PROXY.source}; one inference "
              "= one 1 s clip, idle power included in the total (see "
              "`spikeloop.chips.xylo.energy`).", ""]
    commands = result["command"] if isinstance(result["command"], list) else [result["command"]]
    commits = result["commit"] if isinstance(result["commit"], list) else [result["commit"]]
    lines += [f"Made by `{'` and `'.join(commands)}` (then `--combine`d)"
              if len(commands) > 1 else f"Made by `{commands[0]}`",
              f"at commit {', '.join(commits)} on {result['machine']}, "
              f"{result['wall_s'] / 60:.0f} min of compute in all.", ""]
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    """The hit-rate / false-alarm trade-off on the test streams (one curve per seed; the
    grid of threshold quantiles), float and chip in the loop, one panel per network."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = [m for m in MODELS if any(r["model"] == m for r in result["rows"])]
    fig = Figure(figsize=(4.2 * len(models), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    for ax, model in zip(axes, models, strict=True):
        for stage, colour in (("float", "tab:blue"), ("in_the_loop", "tab:red")):
            for k, row in enumerate(r for r in result["rows"] if r["model"] == model):
                curve = row[stage]["test_curve"]
                ax.plot([c["false_alarms_per_hour"] for c in curve],
                        [100 * c["hit_rate"] for c in curve], "o-", ms=3, color=colour,
                        alpha=0.8, label=STAGES[stage] if k == 0 else None)
        ax.set_xscale("symlog", linthresh=10)
        ax.set_xlabel("false alarms per hour of non-keyword audio")
        ax.set_ylabel("keywords detected (%)")
        seeds = ", ".join(str(r["seed"]) for r in result["rows"] if r["model"] == model)
        ax.set_title(f"{model}: test streams, seeds {seeds}", fontsize=9)
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle("Keyword spotting on continuous audio: detection vs false alarms "
                 "(thresholds at quantiles 0.5 … 1 of the readout peaks)", fontsize=10)
    fig.savefig(path, dpi=110)


def write(result: dict, out: Path) -> None:
    """The result file, its table (.md) and its plot (.png)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    out.with_suffix(".md").write_text(markdown(result))
    plot(result, out.with_suffix(".png"))


def combine(parts: list[Path], out: Path) -> int:
    """One result file from several runs' files: their rows (a network and seed may appear
    once), the test streams' description of the first (all must agree), the commands."""
    results = [json.loads(p.read_text()) for p in parts]
    first = results[0]
    for p, r in zip(parts, results, strict=True):
        for key in ("test_streams_h", "test_keywords", "test_non_keyword_h"):
            if r[key] != first[key]:
                raise SystemExit(f"{p}: {key} = {r[key]} differs from {parts[0]}'s {first[key]}")
    rows = [row for r in results for row in r["rows"]]
    seen = [(row["model"], row["seed"]) for row in rows]
    if len(set(seen)) != len(seen):
        raise SystemExit(f"a network and seed appear twice in {', '.join(map(str, parts))}")
    order = {m: k for k, m in enumerate(MODELS)}
    rows.sort(key=lambda row: (order[row["model"]], row["seed"]))
    result = {**first, "rows": rows, "wall_s": sum(r["wall_s"] for r in results),
              "command": [r["command"] for r in results],
              "commit": sorted({r["commit"] for r in results})}
    write(result, out)
    print(markdown(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: one seed, 1 epoch per stage, 8 clips per class, one "
                             "20 s stream; result files only with --out")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides applied to every network's config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--data", type=Path, default=None,
                        help="the keyword files' folder (default: where spikeloop data finds it)")
    parser.add_argument("--chunk", type=int, default=10, help="streaming chunk, steps")
    parser.add_argument("--tune-epochs", type=int, default=5)
    parser.add_argument("--tune-lr", type=float, default=1e-3)
    parser.add_argument("--fa-target", type=float, default=100.0,
                        help="false alarms per hour allowed on the training streams")
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--combine", nargs="+", type=Path, metavar="JSON",
                        help="write one result file (--out) from the rows of these result "
                             "files (each network and seed once) and exit")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results, the table next to it (.md); default "
                             "benchmarks/results/kws.json (none with --quick)")
    args = parser.parse_args(argv)
    if args.combine:
        return combine(args.combine, args.out or ROOT / "benchmarks/results/kws.json")
    args.overrides = [*([f"data.root={args.data}"] if args.data else []), *args.set]
    data_cfg = args.data_cfg = load_config(ROOT / "configs" / "kws_synnet.yaml", args.overrides)
    t0 = time.perf_counter()
    train_data, test_data = (load(s, data_cfg, args.quick) for s in ("train", "test"))
    rows = []
    for model in args.models:
        for seed in ([0] if args.quick else args.seeds):
            row = run(model, seed, train_data, test_data, args)
            rows.append(row)
            print(model, seed, {k: round(row[k]["accuracy"], 3) for k in STAGES}, flush=True)
    result = {"rows": rows, "wall_s": time.perf_counter() - t0,
              "front_end_capped": {"train_streams": train_data["streams_capped"],
                                   "test_streams": test_data["streams_capped"]},
              "test_streams_h": test_data["streams"].shape[0] * test_data["streams"].shape[1]
              * data_cfg.data.dt / 3600,
              "test_keywords": rows[0]["float"]["keywords"],
              "test_non_keyword_h": rows[0]["float"]["non_keyword_h"],
              "command": "python " + " ".join(["benchmarks/kws.py", *(argv or sys.argv[1:])]),
              "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                       capture_output=True, text=True).stdout.strip()}
    print(markdown(result))
    out = args.out or (None if args.quick else ROOT / "benchmarks/results/kws.json")
    if out is not None:
        write(result, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
