"""Robustness to device non-idealities: ideal-trained against noise-aware-trained networks on
memristive crossbars, analog neurons and an integer chip hit by bit flips (issue 21).

    python benchmarks/robustness.py                      # the full run (about an hour, 1 core)
    python benchmarks/robustness.py --tiny --out /tmp/r  # seconds (the test's)
    python benchmarks/robustness.py --plot-only          # table and figure from the JSON

Tasks: Yin-Yang (``configs/yinyang.yaml`` on the simulator, 30 epochs) and Fashion-MNIST
(``configs/fashion_mnist_fc.yaml``, 784 → 400 → 400 → 10, ``FMNIST_EPOCHS`` epochs instead of
20, to keep the many trainings affordable).

For each task two networks are trained with the same config and seed:

- *ideal*: on ideal devices, then deployed on the non-ideal ones;
- *aware*: through the reference crossbar ``REFERENCE`` (``devices.train: true``, a new
  programming instance at every step: the devices' stochastic forward, the model's backward),
  and, for the neuron sweep, through voltage-domain analog neurons (``NEURON_AWARE``).

Every point of every sweep is the test accuracy averaged over ``--instances`` programming
instances (mean ± sd). Sweeps, one non-ideality at a time from ideal devices:

- crossbar programming variation ``program_std``; conductance drift after ``t`` seconds (PCM-like
  drift exponent ``DRIFT``, with and without global drift compensation); the fraction of stuck
  devices (half stuck on, half off);
- the number of time steps ``T`` (Fashion-MNIST, direct coding, a network trained per ``T``) on
  the reference crossbar with read noise drawn at every step and first-order IR drop
  (``T_CROSSBAR``): the finding of Bhattacharjee, Kim, Moitra & Panda (arXiv:2206.09599,
  2022) that errors accumulate over time steps and fewer steps hold up better;
- analog neurons: voltage-domain gain compression ``α`` against the time-domain neuron;
- bit flips (Yin-Yang, 64 hidden neurons, trained quantisation-aware for the integer chip and run
  on it): the flip rate per bit, per inference and per step, in each memory on its own (the
  weight memories of ``fc1`` and ``fc2``, the membranes and synaptic currents), which says
  which memories matter most. Its aware network is the quantisation-aware one trained further
  ``FLIP_EPOCHS`` epochs with the chip in the loop through ``FLIPS_AWARE``; its control, the same
  further training without flips.

Writes ``OUT.json``, ``OUT.md`` (the tables docs/devices.md includes) and ``OUT.png``, with
``OUT = benchmarks/results/robustness``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.stats import mean_sd, show_mean_sd  # noqa: E402

from spikeloop.backends import get_backend  # noqa: E402
from spikeloop.devices import Devices  # noqa: E402
from spikeloop.training import Trainer, load_config  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "robustness"

REFERENCE: dict[str, Any] = {"name": "crossbar", "levels": 16, "program_std": 0.1,
                             "read_std": 0.02}
"""The crossbar the aware networks train through and the T sweep starts from."""
T_CROSSBAR: dict[str, Any] = REFERENCE | {"read": "step", "ir_drop": 2.5e-6}
"""The T sweep's crossbar: read noise at every step and line resistance (0.1 Ω per wire
segment at g_max = 25 µS: up to about 10 % attenuation at the far corner of a 784 × 400 array)."""
DRIFT: dict[str, Any] = {"name": "crossbar", "nu": 0.052, "nu_std": 0.012}
"""PCM-like drift (ν of aihwkit's PCM model, see docs/devices.md)."""
NEURON_AWARE: dict[str, Any] = {"name": "analog_neuron", "domain": "voltage", "compression": 1.0}
"""The analog neurons the aware networks of the neuron sweep train through."""
FLIPS_AWARE: dict[str, Any] = {"name": "bit_flips", "rate": 1e-2, "per": "inference"}
"""The flips (in the weight memories of fc1 and fc2) the aware chip network trains through."""
FLIP_EPOCHS = 5
FMNIST_EPOCHS = 8
FMNIST_T = 8

SWEEPS: dict[str, list[float]] = {
    "program_std": [0.0, 0.02, 0.05, 0.1, 0.2, 0.3],
    "drift_t": [0.0, 3600.0, 86400.0, 2.6e6, 3.15e7],
    "stuck": [0.0, 0.01, 0.02, 0.05, 0.1],
    "compression": [0.0, 0.25, 0.5, 1.0, 2.0, 4.0],
    "T": [4, 8, 16],
    "flip_rate": [0.0, 1e-4, 1e-3, 1e-2, 3e-2],
}
TINY_SWEEPS: dict[str, list[float]] = {
    "program_std": [0.0, 0.2], "drift_t": [0.0, 3.15e7], "stuck": [0.0, 0.1],
    "compression": [0.0, 2.0], "T": [4, 8], "flip_rate": [0.0, 1e-2],
}
TINY = ["data.train_size=60", "data.val_size=20", "data.test_size=40", "train.epochs=1",
        "train.batch_size=20"]


# ----------------------------------------------------------------------------- training
def trainer(config: str, overrides: list[str], out: Path) -> Trainer:
    """A trained :class:`Trainer` of ``config`` (its run folder under ``out``)."""
    cfg = load_config(ROOT / config, [*overrides, f"run.out_dir={out}", "train.progress=false",
                                      "run.threads=1"])
    tr = Trainer(cfg)
    tr.fit()
    return tr


def devices_override(models: dict[str, Any], train: bool) -> str:
    return "devices=" + json.dumps({"models": models, "train": train})


def hidden_of(tr: Trainer) -> list[str]:
    """The spiking populations before the readout (where analog neurons go)."""
    graph = tr.network.graph
    return [n.name for n in graph.populations() if n.spiking and n.name != graph.output.name]


def accuracy(tr: Trainer, models: dict[str, Any], instances: int, t: float = 0.0,
             backend: Any = None) -> dict[str, Any]:
    """Test accuracy on ``models`` (node → device model spec) over programming instances."""
    if backend is not None:
        tr.backend = get_backend(backend)
        tr.network.backend = tr.backend
    accs = []
    for k in range(instances if models else 1):  # (evaluate puts tr.devices on the network)
        tr.devices = Devices(models, instance=k, t=t, seed=k)
        accs.append(tr.evaluate(tr.data["test"])[1])
    tr.devices = Devices()
    mean, sd = mean_sd(accs)
    return {"mean": mean, "sd": sd, "runs": accs}


# ----------------------------------------------------------------------------- the parts
def crossbar_part(task: str, config: str, base: list[str], out: Path, sweeps: dict,
                  instances: int) -> dict[str, Any]:
    """Ideal and aware networks of one task, swept over the crossbar's non-idealities."""
    nets = {"ideal": trainer(config, [*base, f"run.name={task}-ideal"], out),
            "aware": trainer(config, [*base, f"run.name={task}-aware",
                                      devices_override({"*": REFERENCE}, True)], out)}
    part: dict[str, Any] = {"clean": {}, "reference": {}, "sweeps": {}}
    for kind, tr in nets.items():
        part["clean"][kind] = accuracy(tr, {}, 1)["mean"]
        part["reference"][kind] = accuracy(tr, {"*": REFERENCE}, instances)
        sweep: dict[str, list[Any]] = {"program_std": [], "drift_t": [], "drift_t_comp": [],
                                       "stuck": []}
        for s in sweeps["program_std"]:
            sweep["program_std"].append(accuracy(tr, {"*": {"name": "crossbar",
                                                            "program_std": s}}, instances))
        for t in sweeps["drift_t"]:
            sweep["drift_t"].append(accuracy(tr, {"*": DRIFT}, instances, t=t))
            sweep["drift_t_comp"].append(accuracy(
                tr, {"*": DRIFT | {"drift_compensation": True}}, instances, t=t))
        for f in sweeps["stuck"]:
            sweep["stuck"].append(accuracy(tr, {"*": {"name": "crossbar", "stuck_on": f / 2,
                                                      "stuck_off": f / 2}}, instances))
        part["sweeps"][kind] = sweep
    ideal, aware = part["reference"]["ideal"]["mean"], part["reference"]["aware"]["mean"]
    lost = part["clean"]["ideal"] - ideal
    part["recovered"] = (aware - ideal) / lost if lost > 0 else None
    return part


def neuron_part(task: str, config: str, base: list[str], out: Path, sweeps: dict,
                instances: int) -> dict[str, Any]:
    """Ideal and aware (through voltage-domain neurons) networks against analog neurons."""
    probe = load_config(ROOT / config, base)
    ideal = trainer(config, [*base, f"run.name={task}-neuron-ideal"], out)
    hidden = hidden_of(ideal)
    aware = trainer(config, [*base, f"run.name={task}-neuron-aware",
                             devices_override({h: NEURON_AWARE for h in hidden}, True)], out)
    part: dict[str, Any] = {"hidden": hidden, "config_T": round(probe.data.duration
                                                               / probe.data.dt)}
    for kind, tr in (("ideal", ideal), ("aware", aware)):
        rows = [accuracy(tr, {h: {"name": "analog_neuron", "domain": "voltage",
                                  "compression": a} for h in hidden}, 1)
                for a in sweeps["compression"]]
        time_domain = accuracy(tr, {h: {"name": "analog_neuron", "domain": "time"}
                                    for h in hidden}, 1)
        part[kind] = {"clean": accuracy(tr, {}, 1)["mean"], "voltage": rows,
                      "time": time_domain}
    return part


def steps_part(config: str, base: list[str], out: Path, sweeps: dict,
               instances: int) -> list[dict[str, Any]]:
    """Fashion-MNIST trained at each number of steps T, deployed on ``T_CROSSBAR``."""
    rows = []
    dt = load_config(ROOT / config, base).data.dt
    for steps in sweeps["T"]:
        over = [*base, f"data.duration={steps * dt!r}"]
        row: dict[str, Any] = {"T": steps}
        for kind, extra in (("ideal", []), ("aware", [devices_override({"*": REFERENCE}, True)])):
            tr = trainer(config, [*over, *extra, f"run.name=fmnist-T{steps}-{kind}"], out)
            row[kind] = {"clean": accuracy(tr, {}, 1)["mean"],
                         "crossbar": accuracy(tr, {"*": T_CROSSBAR}, instances)}
        rows.append(row)
    return rows


def flips_part(base: list[str], out: Path, sweeps: dict, instances: int) -> dict[str, Any]:
    """A Yin-Yang network trained for the integer chip, its memories hit by bit flips."""
    tr = trainer("configs/yinyang.yaml", [
        *base, "model.hidden=[64]", "model.method=euler", "train.backend={name: xylo, mode: qat}",
        "train.loss={name: max_membrane_ce, scale: 0.2}", "run.name=yinyang-xylo-qat"], out)
    chip = {"name": "xylo"}
    memories = {"fc1 weights": ("fc1", {}), "fc2 weights": ("fc2", {}),
                "hidden membranes": ("hidden1", {"state": ["v"]}),
                "hidden currents": ("hidden1", {"state": ["i"]}),
                "output membranes": ("output", {"state": ["v"]})}
    part: dict[str, Any] = {"clean": accuracy(tr, {}, 1, backend=chip)["mean"], "memories": {}}
    for label, (node, extra) in memories.items():
        for per in ("inference", "step"):
            part["memories"][f"{label}, per {per}"] = [
                accuracy(tr, {node: {"name": "bit_flips", "rate": r, "per": per, **extra}},
                         instances, backend=chip) for r in sweeps["flip_rate"]]
    # further training with the chip in the loop, through flips (aware) and without (control)
    start = tr.dir / ("best.pt" if (tr.dir / "best.pt").exists() else "checkpoint.pt")
    loop = [*base, "model.hidden=[64]", "model.method=euler", "train.backend=xylo",
            f"train.init_from={start}", "train.loss={name: max_membrane_ce, scale: 0.2}",
            "train.lr=2e-3"] + ([] if "train.epochs=1" in base else [f"train.epochs={FLIP_EPOCHS}"])
    weights = {"fc1": FLIPS_AWARE, "fc2": FLIPS_AWARE}
    nets = {"control": trainer("configs/yinyang.yaml", [*loop, "run.name=yinyang-xylo-loop"], out),
            "aware": trainer("configs/yinyang.yaml", [*loop, "run.name=yinyang-xylo-aware",
                                                      devices_override(weights, True)], out)}
    for kind, net in nets.items():
        part[kind] = {"clean": accuracy(net, {}, 1, backend=chip)["mean"], "weights": [
            accuracy(net, {n: FLIPS_AWARE | {"rate": r} for n in weights}, instances,
                     backend=chip) for r in sweeps["flip_rate"]]}
    return part


# ----------------------------------------------------------------------------- outputs
def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _cell(point: dict[str, Any]) -> str:
    if point["sd"] is None:
        return f"{100 * point['mean']:.1f} %"
    return show_mean_sd(100 * point["mean"], 100 * point["sd"], digits=1)


def table(result: dict[str, Any]) -> str:
    """The markdown tables of ``result`` (what docs/devices.md includes)."""
    lines = ["| task | clean, ideal-trained | reference crossbar: ideal-trained | aware-trained "
             "| share of the loss recovered |", "|---|---:|---:|---:|---:|"]
    for task, part in result["crossbar"].items():
        lines.append(f"| {task} | {_pct(part['clean']['ideal'])} | "
                     f"{_cell(part['reference']['ideal'])} | {_cell(part['reference']['aware'])} "
                     f"| {_pct(part['recovered'])} |")
    sw = result["sweeps"]
    for task, part in result["crossbar"].items():
        lines += ["", f"**{task}**, one non-ideality at a time (test accuracy, ideal-trained / "
                  "aware-trained):", "", "| sweep | value | ideal-trained | aware-trained |",
                  "|---|---:|---:|---:|"]
        for key, label, unit in (("program_std", "programming variation σ", ""),
                                 ("drift_t", "drift time", " s"),
                                 ("drift_t_comp", "drift time, compensated", " s"),
                                 ("stuck", "stuck devices", "")):
            values = sw["drift_t"] if key.startswith("drift") else sw[key]
            for k, v in enumerate(values):
                lines.append(f"| {label} | {v:g}{unit} | {_cell(part['sweeps']['ideal'][key][k])}"
                             f" | {_cell(part['sweeps']['aware'][key][k])} |")
    if result.get("steps"):
        lines += ["", "Time steps on the T-sweep crossbar (Fashion-MNIST):", "",
                  "| T | clean, ideal | crossbar, ideal | drop | clean, aware | crossbar, aware |",
                  "|---:|---:|---:|---:|---:|---:|"]
        for row in result["steps"]:
            i, a = row["ideal"], row["aware"]
            lines.append(f"| {row['T']} | {_pct(i['clean'])} | {_cell(i['crossbar'])} | "
                         f"{100 * (i['clean'] - i['crossbar']['mean']):.1f} | {_pct(a['clean'])}"
                         f" | {_cell(a['crossbar'])} |")
    for task, part in result.get("neurons", {}).items():
        lines += ["", f"Analog neurons ({task}, hidden populations {', '.join(part['hidden'])}):",
                  "", "| neuron | ideal-trained | aware-trained |", "|---|---:|---:|",
                  f"| ideal | {_pct(part['ideal']['clean'])} | {_pct(part['aware']['clean'])} |",
                  f"| time domain | {_cell(part['ideal']['time'])} | "
                  f"{_cell(part['aware']['time'])} |"]
        for k, a in enumerate(sw["compression"]):
            lines.append(f"| voltage domain, α = {a:g} | {_cell(part['ideal']['voltage'][k])} | "
                         f"{_cell(part['aware']['voltage'][k])} |")
    if result.get("flips"):
        f = result["flips"]
        rates = sw["flip_rate"]
        lines += ["", f"Bit flips on the integer chip (Yin-Yang, clean {_pct(f['clean'])}):", "",
                  "| memory | " + " | ".join(f"rate {r:g}" for r in rates) + " |",
                  "|---|" + "---:|" * len(rates)]
        for label, points in f["memories"].items():
            lines.append(f"| {label} | " + " | ".join(_cell(p) for p in points) + " |")
        lines += ["", f"Trained further {result['flip_epochs']} epochs with the chip in the loop, "
                  "evaluated with flips in the weight memories of fc1 and fc2 (per inference):",
                  "", "| network | " + " | ".join(f"rate {r:g}" for r in rates) + " |",
                  "|---|" + "---:|" * len(rates)]
        for kind, label in (("control", "without flips (control)"),
                            ("aware", f"through flips at rate {FLIPS_AWARE['rate']:g}")):
            lines.append(f"| {label} | " + " | ".join(_cell(p) for p in f[kind]["weights"])
                         + " |")
    lines += ["", f"Command: `{result['command']}` ({result['machine']['torch']}, "
              f"{result['machine']['cpu']}, {result['date']}; {result['wall_s'] / 60:.0f} min); "
              f"{result['instances']} programming instances per point."]
    return "\n".join(lines) + "\n"


def figure(result: dict[str, Any], path: Path) -> None:
    """One panel per sweep: accuracy against the non-ideality, ideal- and aware-trained."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sw = result["sweeps"]
    fig = Figure(figsize=(16, 9), layout="constrained")
    axes = fig.subplots(2, 3).ravel()

    def curve(ax: Any, xs: list[float], points: list[dict], label: str, style: str) -> None:
        ax.errorbar(xs, [100 * p["mean"] for p in points], [100 * (p["sd"] or 0) for p in points],
                    fmt=style, capsize=3, label=label)

    panels = [("program_std", "crossbar programming variation σ (of the conductance range)"),
              ("drift_t", "time since programming (s; 0 drawn at 1 s)"),
              ("stuck", "fraction of stuck devices (half on, half off)")]
    for ax, (key, xlabel) in zip(axes, panels, strict=False):
        xs = sw["drift_t"] if key == "drift_t" else sw[key]
        if key == "drift_t":
            xs = [max(x, 1.0) for x in xs]
            ax.set_xscale("log")
        for task, part in result["crossbar"].items():
            for kind, style in (("ideal", "o-"), ("aware", "s--")):
                curve(ax, xs, part["sweeps"][kind][key], f"{task}, {kind}-trained", style)
            if key == "drift_t":
                curve(ax, xs, part["sweeps"]["ideal"]["drift_t_comp"],
                      f"{task}, ideal-trained, drift compensated", "^:")
        ax.set(xlabel=xlabel, ylabel="test accuracy (%)",
               title=f"accuracy vs {xlabel.split(' (')[0]}")
        ax.legend(fontsize=7)
    ax = axes[3]
    if result.get("steps"):
        ts = [r["T"] for r in result["steps"]]
        for kind, style in (("ideal", "o-"), ("aware", "s--")):
            ax.plot(ts, [100 * r[kind]["clean"] for r in result["steps"]], style, alpha=0.5,
                    label=f"{kind}-trained, ideal devices")
            curve(ax, ts, [r[kind]["crossbar"] for r in result["steps"]],
                  f"{kind}-trained, non-ideal crossbar", style)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ts, [str(t) for t in ts])
        ax.set(xlabel="time steps T", ylabel="test accuracy (%)",
               title="Fashion-MNIST: accuracy vs time steps on a crossbar")
        ax.legend(fontsize=7)
    ax = axes[4]
    colours = iter(f"C{k}" for k in range(10))
    for task, part in result.get("neurons", {}).items():
        for kind, style in (("ideal", "o-"), ("aware", "s--")):
            colour = next(colours)
            curve(ax, sw["compression"], part[kind]["voltage"],
                  f"{task}, {kind}-trained, voltage domain", style)
            ax.lines[-1].set_color(colour)
            ax.axhline(100 * part[kind]["time"]["mean"], ls=":", lw=1, color=colour,
                       label=f"{task}, {kind}-trained, time domain (dotted)")
    ax.set(xlabel="voltage-domain gain compression α", ylabel="test accuracy (%)",
           title="analog neurons: voltage vs time domain")
    ax.legend(fontsize=7)
    ax = axes[5]
    if result.get("flips"):
        rates = [max(r, 1e-5) for r in sw["flip_rate"]]
        for label, points in result["flips"]["memories"].items():
            curve(ax, rates, points, label, "o-" if "inference" in label else "s--")
        for kind, style in (("control", "k-"), ("aware", "k:")):
            curve(ax, rates, result["flips"][kind]["weights"],
                  f"fc1 + fc2 weights per inference, {kind} (in-the-loop trained)", style)
        ax.set(xscale="log", xlabel="bit-flip probability per bit (0 drawn at 1e-5)",
               ylabel="test accuracy (%)", title="integer chip: bit flips by memory (Yin-Yang)")
        ax.legend(fontsize=5)
    fig.suptitle("Device non-idealities: ideal-trained vs noise-aware-trained networks "
                 f"(mean ± sd over {result['instances']} device instances)")
    FigureCanvasAgg(fig).print_png(str(path))


def write(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    out.with_suffix(".md").write_text(table(result))
    figure(result, out.with_suffix(".png"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--instances", type=int, default=3, help="device instances per point")
    parser.add_argument("--parts", nargs="+", default=["crossbar", "steps", "neurons", "flips"],
                        choices=["crossbar", "steps", "neurons", "flips"])
    parser.add_argument("--out", type=Path, default=OUT, help="OUT.{json,md,png}")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "robustness",
                        help="where the trainings' run folders go")
    parser.add_argument("--plot-only", action="store_true", help="table and figure from OUT.json")
    args = parser.parse_args(argv)
    if args.plot_only:
        write(json.loads(args.out.with_suffix(".json").read_text()), args.out)
        return 0
    torch.set_num_threads(1)
    sweeps = TINY_SWEEPS if args.tiny else SWEEPS
    instances = 1 if args.tiny else args.instances
    tiny = TINY if args.tiny else []
    yy = [*tiny, "train.backend=sim"] + ([] if args.tiny else ["train.epochs=30"])
    fm = [*tiny, f"data.duration={FMNIST_T * 1e-3!r}"] + (
        [] if args.tiny else [f"train.epochs={FMNIST_EPOCHS}"])
    fm_config = "configs/fashion_mnist_fc.yaml"
    start = time.perf_counter()
    result: dict[str, Any] = {
        "command": "python benchmarks/robustness.py " + shlex.join(argv or sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"), "instances": instances, "sweeps": sweeps,
        "reference": REFERENCE, "t_crossbar": T_CROSSBAR, "drift": DRIFT,
        "neuron_aware": NEURON_AWARE,
        "fashion_mnist": {"epochs": FMNIST_EPOCHS, "T": FMNIST_T},
        "flip_epochs": 1 if args.tiny else FLIP_EPOCHS,
        "flips_aware": FLIPS_AWARE,
        "machine": {"torch": torch.__version__, "cpu": platform.machine(), "threads": 1},
        "crossbar": {}, "neurons": {}, "steps": [], "flips": None}
    if "crossbar" in args.parts:
        result["crossbar"]["Yin-Yang"] = crossbar_part("yinyang", "configs/yinyang.yaml", yy,
                                                       args.runs, sweeps, instances)
        result["crossbar"]["Fashion-MNIST"] = crossbar_part("fmnist", fm_config, fm, args.runs,
                                                            sweeps, instances)
    if "steps" in args.parts:
        result["steps"] = steps_part(fm_config, fm, args.runs, sweeps, instances)
    if "neurons" in args.parts:
        result["neurons"]["Yin-Yang"] = neuron_part("yinyang", "configs/yinyang.yaml", yy,
                                                    args.runs, sweeps, instances)
        result["neurons"]["Fashion-MNIST"] = neuron_part("fmnist", fm_config, fm, args.runs,
                                                         sweeps, instances)
    if "flips" in args.parts:
        result["flips"] = flips_part([*tiny] + ([] if args.tiny else ["train.epochs=20"]),
                                     args.runs, sweeps, instances)
    result["wall_s"] = time.perf_counter() - start
    write(result, args.out)
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
