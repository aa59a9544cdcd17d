"""Store-and-recall memory task: recurrent LIF networks against adaptive LIF networks of the
same size, same readout, optimiser, data and number of steps (issue 17, item 4).

    python benchmarks/memory_task.py                 # the full run: 6 models × 3 seeds
    python benchmarks/memory_task.py --tiny --out /tmp/memory_task   # seconds (the test's)
    python benchmarks/memory_task.py --plot-only     # table and figure from the JSON
    python benchmarks/memory_task.py --distractors 2  # 2 distractor values in every gap

Task (:func:`spikeloop.data.store_recall`): a value (one of two) shown with a STORE cue, a
gap of 0.2–1.0 s of background noise, then a RECALL cue; the answer is read in the 50 ms of the
recall cue. ``dt = 5 ms`` keeps a trial at 230 steps (the longest gap is 200 steps): the gaps
are 10–50 membrane time constants (``τ_mem = 20 ms``), so a plain LIF neuron forgets the value
long before recall unless the recurrent network learns to hold it; an adaptive neuron keeps a
trace in its adaptation variable (``τ_adapt = 600 ms``, of the order of the gap).

Network: ``Input(40) → Linear → recurrent hidden (60 neurons) → Linear → LI(2)``; the hidden
population is ``LIF`` (also with ``τ_mem = 200 ms``), ``CubaLIF``, ``AdLIF`` (``b`` and
``tau_adapt`` learned; a second variant learns the subthreshold coupling ``a`` too) or
``AdaptiveLIF`` (``adapt_increment`` and ``tau_adapt`` learned). For AdLIF the record counts
the neurons whose learned ``a < −(1 − ρ)``, ``ρ = e^{−dt/τ_adapt}``: there the subthreshold
``(v, w)`` recursion has an eigenvalue above 1 (the determinant of its matrix is ``βρ``, and
``1 − trace + det = (1 − β)(1 − ρ + a)``), so ``w`` grows instead of decaying.
Loss: :class:`~spikeloop.training.MaxMembraneCE` on the readout membrane of the recall
window only (the steps of the generator's ``mask``), Adam, fresh trials every step. Accuracy:
recall answers of 512 held-out trials (``argmax`` of the readout's maximum in the window).

Writes ``OUT.json`` (per model and seed: accuracy overall, for gaps under and over 0.6 s and
in 4 bins of the gap, final loss, hidden rate, CPU seconds; one example trial per model),
``OUT.md`` (the table the docs include) and ``OUT.png`` (the figure), ``OUT`` =
``benchmarks/results/memory_task``.

``--distractors N`` (``N > 0``) puts ``N`` distractor values in every gap (a value group
active for a cue length without the STORE cue, at random times at least one cue clear of both
cues; :func:`~spikeloop.data.store_recall`), the network must ignore them; the shortest gap is
raised to ``(N + 2)`` cue lengths where it is shorter (with ``N ≤ 2`` the full run's gaps stay
0.2–1.0 s; ``--tiny`` gets 0.2 s), and ``OUT`` defaults to
``benchmarks/results/memory_task_distractors``. ``N`` is recorded in the JSON's settings and in
the table's text. The default ``N = 0`` is the run above, unchanged.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import shlex
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.stats import mean_sd, show_mean_sd  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "memory_task"
OUT_DISTRACTORS = ROOT / "benchmarks" / "results" / "memory_task_distractors"
"""The default output with ``--distractors N``, ``N > 0`` (``OUT`` keeps the run without)."""
DT = 5e-3
CUE = 50e-3  # the generator's default store and recall cue (and distractor) duration
TAU_MEM = 20e-3
TAU_SYN = 10e-3
TAU_ADAPT = 600e-3
N_VALUES = 2  # values to store: chance 50 %
LONG_GAP = 0.6  # s: the "long gaps" column
GAP_BINS = 4  # accuracy against the gap: this many equal bins of the gap range
MODELS: dict[str, str] = {
    "lif": "LIF (voltage), τ_mem 20 ms",
    "lif_tau200": "LIF (voltage), τ_mem 200 ms (a longer memory without adaptation)",
    "cuba_lif": "CubaLIF, τ_mem 20 ms, τ_syn 10 ms",
    "adlif": "AdLIF, τ_adapt 600 ms (learned), a = 0, b = 1 (learned)",
    "adlif_learn_a": "AdLIF as `adlif`, with the subthreshold coupling a learned too",
    "adaptive_lif": "AdaptiveLIF (AHP), τ_adapt 600 ms (learned), increment 0.5 (learned)",
}
"""Hidden population of each model (the table's descriptions)."""
ADAPTATION = {"adlif": "w", "adlif_learn_a": "w", "adaptive_lif": "a"}
"""The adaptation variable of the adaptive models' state."""
FULL = {"steps": 300, "batch": 64, "hidden": 60, "test_size": 512, "lr": 5e-3,
        "gap": (0.2, 1.0)}
TINY = {"steps": 3, "batch": 8, "hidden": 8, "test_size": 16, "lr": 5e-3, "gap": (0.05, 0.1)}


def build(model: str, n_in: int, hidden: int, n_out: int, seed: int) -> Any:
    """The network of ``model`` with the weights of ``seed``."""
    from spikeloop.network import Network
    from spikeloop.nn import LI, LIF, AdaptiveLIF, AdLIF, CubaLIF, Input, Linear
    from spikeloop.training import init_weights

    common = {"dt": DT, "tau_mem": TAU_MEM, "v_threshold": 1.0, "recurrent": True}
    pops = {
        "lif": lambda: LIF(hidden, **common),
        "lif_tau200": lambda: LIF(hidden, **(common | {"tau_mem": 10 * TAU_MEM})),
        "cuba_lif": lambda: CubaLIF(hidden, tau_syn=TAU_SYN, **common),
        "adlif": lambda: AdLIF(hidden, tau_adapt=TAU_ADAPT, a=0.0, b=1.0,
                               learn=("b", "tau_adapt"), **common),
        "adlif_learn_a": lambda: AdLIF(hidden, tau_adapt=TAU_ADAPT, a=0.0, b=1.0,
                                       learn=("a", "b", "tau_adapt"), **common),
        "adaptive_lif": lambda: AdaptiveLIF(hidden, tau_syn=TAU_SYN, tau_adapt=TAU_ADAPT,
                                            adapt_increment=0.5,
                                            learn=("adapt_increment", "tau_adapt"), **common),
    }
    torch.manual_seed(seed)
    net = Network({"input": Input(n_in), "fc1": Linear(n_in, hidden), "hidden": pops[model](),
                   "fc2": Linear(hidden, n_out), "output": LI(n_out, dt=DT, tau_mem=TAU_MEM)})
    return init_weights(net, {"input_mean": 0.3, "input_std": 0.5, "recurrent_std": 0.1},
                        torch.Generator().manual_seed(seed))


def recall_window(out: Any, mask: torch.Tensor) -> Any:
    """``out`` with the readout's membrane cut to the recall steps of ``mask [T, B]`` (the same
    steps in every trial: the generator puts the recall cue at the end), for the loss."""
    from spikeloop.observables import Observables

    steps = mask.all(1)
    if not torch.equal(steps, mask.any(1)):
        raise ValueError("the recall steps differ between trials")
    v = out.output.v[steps]
    return replace(out, populations={**out.populations, out.output_name: Observables(v=v)})


def trials(size: int, seed: int, gap: tuple[float, float], distractors: int = 0) -> Any:
    from spikeloop.data import store_recall

    return store_recall(size, seed=seed, dt=DT, gap=gap, n_values=N_VALUES, cue=CUE,
                        distractors=distractors)


def gap_for(gap: tuple[float, float], distractors: int) -> tuple[float, float]:
    """``gap`` with its shortest gap raised to hold ``distractors`` (``(N + 2)`` cue lengths,
    the generator's limit) where it is shorter; the longest is raised to the shortest if need
    be. Unchanged without distractors."""
    if not distractors:
        return gap
    shortest = max(gap[0], (distractors + 2) * round(CUE / DT) * DT)
    return (round(shortest, 6), round(max(gap[1], shortest), 6))


def example(net: Any, data: Any, model: str) -> dict[str, Any]:
    """Trial 0 of ``data`` run one step at a time (the state holds the adaptation variable):
    input spikes as ``(step, channel)`` events, readout membrane, adaptation of 5 neurons."""
    x = data.spikes[:, :1]
    state, v, adapt = None, [], []
    with torch.no_grad():
        for k in range(x.shape[0]):
            out = net(x[k:k + 1], state)
            state = out.state
            v.append(out.output.v[0, 0].tolist())
            if model in ADAPTATION:
                adapt.append(getattr(state["hidden"].neuron, ADAPTATION[model])[0].tolist())
    rec = {"label": int(data.labels[0]), "store_start": int(data.store_start[0]),
           "gap_steps": int(data.gap_steps[0]), "recall_steps": int(data.mask[:, 0].sum()),
           "distractor_start": data.distractor_start[0].tolist(),
           "distractor_values": data.distractor_values[0].tolist(),
           "events": x[:, 0].nonzero().tolist(), "channels": x.shape[2], "readout_v": v}
    if adapt:  # [T, N]: the 5 neurons whose adaptation varies most before the recall cue
        a = torch.tensor(adapt)
        before = a[:len(v) - int(data.mask[:, 0].sum())]
        keep = before.std(0).argsort(descending=True)[:5].sort().values
        rec["adaptation"] = {"variable": ADAPTATION[model], "neurons": keep.tolist(),
                             "values": a[:, keep].tolist()}
    return rec


def gap_groups(gap_steps: torch.Tensor, gap: tuple[float, float]) -> tuple[
        torch.Tensor, list[tuple[tuple[float, float], torch.Tensor]]]:
    """The trials with a long gap (``≥ LONG_GAP``) and, for each of ``GAP_BINS`` equal bins
    of ``gap`` (s), its edges and its trials (the last bin includes its upper edge)."""
    # float64: in float32, 120 · 0.005 < 0.6 and 40 · 0.005 < 0.2, below the 1e-9 tolerance
    gap_s = gap_steps.double() * DT
    edges = torch.linspace(gap[0], gap[1], GAP_BINS + 1, dtype=torch.float64).tolist()
    bins = [((lo, hi), (gap_s >= lo - 1e-9) & ((gap_s < hi - 1e-9) | (k == GAP_BINS - 1)))
            for k, (lo, hi) in enumerate(itertools.pairwise(edges))]
    return gap_s >= LONG_GAP - 1e-9, bins


def train_one(model: str, seed: int, cfg: dict[str, Any], test: Any,
              progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train ``model`` with ``seed`` and evaluate it on ``test``: the row and the example."""
    from tqdm import tqdm

    from spikeloop.training import MaxMembraneCE

    net = build(model, test.spikes.shape[2], cfg["hidden"], N_VALUES, seed)
    loss_fn = MaxMembraneCE()
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    cpu = time.process_time()
    for k in tqdm(range(cfg["steps"]), desc=f"{model} seed {seed}", disable=not progress,
                  leave=False):
        batch = trials(cfg["batch"], 1 + 100_000 * seed + k, cfg["gap"],
                       cfg.get("distractors", 0))
        loss = loss_fn(recall_window(net(batch.spikes), batch.mask), batch.labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        net.constrain_()
    cpu = time.process_time() - cpu
    with torch.no_grad():
        out = net(test.spikes)
        right = (loss_fn.predict(recall_window(out, test.mask)) == test.labels).float()
    long, bins = gap_groups(test.gap_steps, cfg["gap"])
    by_gap = [{"gap_s": [round(lo, 4), round(hi, 4)], "trials": int(inside.sum()),
               "accuracy": right[inside].mean().item() if inside.any() else None}
              for (lo, hi), inside in bins]
    hidden = net.layers["hidden"]
    learned = {n: [round(float(p.detach().min()), 4), round(float(p.detach().max()), 4)]
               for n, p in hidden.named_parameters(recurse=False)}
    if "a" in learned:  # AdLIF: below -(1 - ρ) the subthreshold (v, w) dynamics grows
        with torch.no_grad():  # ρ as the model computes it (its discretisation method)
            rho = hidden.description.coefficients(hidden.parameter_record(), hidden.dt,
                                                  hidden.method).adapt_decay
        learned["unstable_neurons"] = int((hidden.a.detach() < -(1 - rho)).sum())
    row = {"model": model, "seed": seed, "accuracy": right.mean().item(),
           "accuracy_long_gap": right[long].mean().item() if long.any() else None,
           "accuracy_short_gap": right[~long].mean().item() if (~long).any() else None,
           "accuracy_by_gap": by_gap,
           "final_loss": loss.item(), "hidden_rate_hz": out["hidden"].spikes.mean().item() / DT,
           "cpu_s": cpu, "learned_range": learned}
    return row, example(net, test, model)


def table(result: dict[str, Any]) -> str:
    """The markdown table of ``result`` (what the docs page includes)."""
    seeds = sorted({r["seed"] for r in result["rows"]})
    lines = ["| model | hidden population | " + " | ".join(f"seed {s}" for s in seeds)
             + f" | mean ± sd | gaps < {LONG_GAP:g} s | gaps ≥ {LONG_GAP:g} s |",
             "|---|---|" + "---:|" * (len(seeds) + 3)]
    for model in result["models"]:
        rows = {r["seed"]: r for r in result["rows"] if r["model"] == model}
        if not rows:
            continue
        acc = [100 * rows[s]["accuracy"] for s in seeds if s in rows]
        mean, sd = mean_sd(acc)
        cells = [f"{100 * rows[s]['accuracy']:.1f} %" if s in rows else "–" for s in seeds]
        for key in ("accuracy_short_gap", "accuracy_long_gap"):
            part = [100 * r[key] for r in rows.values() if r[key] is not None]
            cells.append(f"{statistics.mean(part):.1f} %" if part else "–")
        cells.insert(len(seeds), show_mean_sd(mean, sd, digits=1))
        lines.append(f"| `{model}` | {result['models'][model]} | " + " | ".join(cells) + " |")
    s = result["settings"]
    for model in result["models"]:
        counts = [(r["seed"], r["learned_range"]["unstable_neurons"]) for r in result["rows"]
                  if r["model"] == model and "unstable_neurons" in r["learned_range"]]
        if counts:
            lines += ["", f"`{model}`: hidden neurons whose learned `a < −(1 − ρ)` (their "
                      "subthreshold `(v, w)` recursion grows instead of decaying): " + ", ".join(
                          f"{n} of {s['hidden']} (seed {seed})" for seed, n in counts) + "."]
    lines += [
        "",
        f"Recall accuracy on {s['test_size']} held-out trials (chance "
        f"{100 * result['chance']:.0f} %; the last two columns: mean over seeds of the trials "
        f"with shorter and longer gaps); {s['hidden']} recurrent hidden neurons, "
        f"{s['steps']} Adam steps (lr {s['lr']:g}) of {s['batch']} fresh trials, gaps "
        f"{s['gap'][0]:g}–{s['gap'][1]:g} s"
        + (f", {s['distractors']} distractor value{'s' * (s['distractors'] > 1)} in every gap "
           "(a value group active for one cue length without the STORE cue)"
           if s.get("distractors") else "")
        + f", dt {1e3 * result['dt']:g} ms, {result['machine']['threads']} CPU thread.",
        "",
        f"Command: `{result['command']}` ({result['machine']['torch']}, "
        f"{result['machine']['cpu']}, {result['date']}).",
    ]
    return "\n".join(lines) + "\n"


def figure(result: dict[str, Any], path: Path) -> None:
    """Accuracy per model and seed (chance marked) and one example trial of each model."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = [m for m in result["models"] if any(r["model"] == m for r in result["rows"])]
    fig = Figure(figsize=(11, 8), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(3, 2, width_ratios=(1, 2))
    ax = fig.add_subplot(grid[:2, 0])
    for k, m in enumerate(models):
        acc = [100 * r["accuracy"] for r in result["rows"] if r["model"] == m]
        jitter = 0.08 * (np.arange(len(acc)) - (len(acc) - 1) / 2)
        ax.scatter(k + jitter, acc, color=f"C{k}", zorder=3)
        ax.hlines(np.mean(acc), k - 0.3, k + 0.3, color=f"C{k}")
    ax.axhline(100 * result["chance"], color="grey", ls="--", label="chance")
    ax.set_xticks(range(len(models)), models, rotation=30)
    ax.set_ylim(0, 105)
    ax.set_ylabel("recall accuracy (%), held-out trials")
    ax.set_title(f"accuracy at recall\n(dots: seeds, bars: means; {len(result['rows'])} runs)")
    ax.legend(loc="lower right")
    ax = fig.add_subplot(grid[2, 0])
    for k, m in enumerate(models):
        bins = [r["accuracy_by_gap"] for r in result["rows"] if r["model"] == m]
        mid = [1e3 * sum(b["gap_s"]) / 2 for b in bins[0]]
        acc = [np.mean([100 * run[j]["accuracy"] for run in bins
                        if run[j]["accuracy"] is not None] or [np.nan])
               for j in range(len(mid))]
        ax.plot(mid, acc, "o-", color=f"C{k}", ms=3, label=m)
    ax.axhline(100 * result["chance"], color="grey", ls="--")
    ax.set_ylim(0, 105)
    ax.set_xlabel("gap between store and recall cue (ms, bin centres)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy against the gap (mean of seeds)")
    ex = result["examples"]
    adaptive = next((m for m in ("adaptive_lif", *models) if m in models
                     and "adaptation" in ex.get(m, {})), None)
    shown = adaptive or models[-1]
    trial = ex[shown]
    t_ms = 1e3 * result["dt"] * (np.arange(len(trial["readout_v"])) + 1)
    steps = len(t_ms)
    recall = (1e3 * result["dt"] * (steps - trial["recall_steps"]), t_ms[-1])
    store = 1e3 * result["dt"] * np.array([trial["store_start"], trial["store_start"]
                                           + trial["recall_steps"]])
    ev = np.array(trial["events"]).reshape(-1, 2)
    ax = fig.add_subplot(grid[0, 1])
    ax.scatter(1e3 * result["dt"] * (ev[:, 0] + 1), ev[:, 1], s=2, color="k")
    ax.axvspan(*store, color="C2", alpha=0.2, label="store cue")
    ax.axvspan(*recall, color="C3", alpha=0.2, label="recall cue")
    for k, start in enumerate(trial.get("distractor_start", [])):
        ax.axvspan(1e3 * result["dt"] * start, 1e3 * result["dt"] * (start + trial["recall_steps"]),
                   color="C1", alpha=0.2, label="distractor" if k == 0 else None)
    group = trial["channels"] // (N_VALUES + 2)
    ax.set_yticks([group * (k + 0.5) for k in range(N_VALUES + 2)],
                  [*(f"value {k}" for k in range(N_VALUES)), "STORE", "RECALL"])
    ax.set_ylabel("input channel group")
    gap_ms = trial["gap_steps"] * 1e3 * result["dt"]
    ax.set_title(f"example held-out trial: stored value {trial['label']}, gap {gap_ms:.0f} ms")
    ax.legend(loc="upper left", fontsize=8)
    ax = fig.add_subplot(grid[1, 1], sharex=ax)
    if adaptive:
        a = trial["adaptation"]
        vals = np.array(a["values"])
        for j, n in enumerate(a["neurons"]):
            ax.plot(t_ms, vals[:, j], lw=1, label=f"neuron {n}")
        ax.set_ylabel(f"{a['variable']} (model units)")
        ax.set_title(f"{adaptive} (seed {result['rows'][0]['seed']}): adaptation {a['variable']} "
                     "of the 5 hidden neurons that vary most")
        ax.legend(loc="upper left", fontsize=7, ncol=5)
    ax.axvspan(*store, color="C2", alpha=0.2)
    ax.axvspan(*recall, color="C3", alpha=0.2)
    ax = fig.add_subplot(grid[2, 1], sharex=ax)
    for k, m in enumerate(models):
        v = np.array(ex[m]["readout_v"])
        ax.plot(t_ms, v[:, trial["label"]] - np.delete(v, trial["label"], 1).max(1),
                color=f"C{k}", lw=1, label=m)
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvspan(*store, color="C2", alpha=0.2)
    ax.axvspan(*recall, color="C3", alpha=0.2)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("readout: v(stored) − v(other)")
    ax.set_title(f"readout margin, each model (seed {result['rows'][0]['seed']}): "
                 "> 0 during the recall cue = right answer")
    ax.legend(loc="upper left", fontsize=8, ncol=len(models))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def write(result: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table(result))
    figure(result, out.with_suffix(".png"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, help="training steps (default 300; --tiny 3)")
    parser.add_argument("--tiny", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--distractors", type=int, default=0, metavar="N",
                        help="distractor values in every gap (default 0: the task without)")
    parser.add_argument("--out", type=Path, help="OUT.{json,md,png} (default "
                        "benchmarks/results/memory_task, memory_task_distractors with N > 0)")
    parser.add_argument("--plot-only", action="store_true",
                        help="rewrite OUT.md and OUT.png from OUT.json")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction,
                        default=sys.stderr.isatty(), help="tqdm bars (default: on a terminal)")
    args = parser.parse_args(argv)
    if args.distractors < 0:
        parser.error(f"--distractors must be ≥ 0, got {args.distractors}")
    out = args.out or (OUT_DISTRACTORS if args.distractors else OUT)
    out = out.with_suffix("") if out.suffix == ".json" else out
    if args.plot_only:
        write(json.loads(out.with_suffix(".json").read_text()), out)
        return 0
    torch.set_num_threads(1)
    cfg = dict(TINY if args.tiny else FULL)
    if args.steps is not None:
        cfg["steps"] = args.steps
    cfg["gap"] = gap_for(cfg["gap"], args.distractors)
    cfg["distractors"] = args.distractors
    test = trials(cfg["test_size"], 10**6, cfg["gap"], args.distractors)
    rows, examples = [], {}
    for model in args.models:
        for seed in args.seeds:
            row, ex = train_one(model, seed, cfg, test, args.progress)
            rows.append(row)
            if seed == args.seeds[0]:
                examples[model] = ex
            long = row["accuracy_long_gap"]
            long = "–" if long is None else f"{100 * long:.1f} %"
            print(f"{model:13s} seed {seed}: recall accuracy {100 * row['accuracy']:.1f} % "
                  f"(gaps ≥ {LONG_GAP:g} s: {long}), {row['cpu_s']:.0f} s CPU", flush=True)
    argv = sys.argv[1:] if argv is None else argv
    result = {
        "task": "store_recall", "dt": DT, "chance": 1 / N_VALUES,
        "settings": {**cfg, "gap": list(cfg["gap"]), "tau_mem": TAU_MEM, "tau_syn": TAU_SYN,
                     "tau_adapt": TAU_ADAPT, "test_seed": 10**6},
        "models": {m: MODELS[m] for m in args.models}, "rows": rows, "examples": examples,
        "command": shlex.join(["python", "benchmarks/memory_task.py", *map(str, argv)]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "threads": 1},
    }
    out.with_suffix(".json").parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    write(result, out)
    print(f"wrote {out}.json, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
