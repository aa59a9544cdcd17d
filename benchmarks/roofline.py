r"""A roofline for the speed benchmark's workloads: the least work any implementation must do,
this machine's measured rate for each kind of work, and the floor in ms they give.

    .venv/bin/python benchmarks/roofline.py                     # ff + rec, 2 threads
    .venv/bin/python benchmarks/roofline.py --variants ff --hidden-density 0.05 --quick

Writes ``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/roofline``); the speed
benchmark (``benchmarks/speed_bench.py``) runs the same code in its own process and prints every
library's median as a multiple of the floor (``× floor``).

**Work** (one forward pass and one training step of :class:`~benchmarks.speed.workload.Workload`;
``T`` steps, batch ``B``, ``N = n_in`` inputs, ``H = hidden``, ``O = n_out``). Measured
activity: :math:`E_{in}` = non-zero entries of the workload's real input tensor ``[T, B, N]``;
:math:`E_h` = hidden spikes (all steps, from a spikeloop forward pass on the initial weights or
given as a density ``ρ_h``: :math:`E_h = ρ_h T B H`), :math:`E_h^- ` = hidden spikes of steps
``0 … T−2`` (those that reach a next step through the recurrent weights). A term that can be
computed event-driven or dense has both alternatives; the floor takes the faster one.

Forward (inference and the training step's forward):

* ``input projection``: :math:`E_{in} H` accumulates (gather-add of weight rows of length
  ``H``), or dense :math:`2 T B N H` flop (GEMM ``TB × N × H``).
* ``recurrent`` (``rec``, ``shd``, ``shd_scale``): :math:`E_h^- H` accumulates, or dense
  :math:`2 (T-1) B H^2` flop (``T − 1`` GEMMs ``B × H × H``, one per step: a recursion).
* ``readout``: :math:`E_h O` accumulates (rows of length ``O``), or dense :math:`2 T B H O`.
* ``neurons``: :math:`7\,TBH + 6\,TBO` element operations — CUBA-LIF per neuron and step
  ``I' = I + x`` (1), ``v = βv + gI'`` (3), ``z = v ≥ ϑ`` (1), reset ``v(1 − z)`` (1),
  ``I = αI'`` (1); the leaky-integrator readout the same without threshold and reset (5) plus
  the running maximum over time (1). The states of one step (``2 B (H + O)`` floats, 130 KB)
  stay in cache, so their reads and writes are counted here, not as memory traffic.
* ``memory``: the bytes that must stream: reading the dense input once (:math:`4 T B N`; it
  is handed over as a dense float32 tensor, and every implementation must look at it to find
  the events) and writing the hidden spikes the benchmark returns (:math:`4 T B H`).

Training step, in addition:

* ``memory`` (train): the forward pass stores for the backward pass one float per hidden
  neuron and step (the membrane before reset: it gives both the surrogate derivative and the
  spike, :math:`4 TBH` written, read back) and the input events' indices (:math:`4 E_{in}`
  written, read back); the optimiser reads weight and gradient and writes the weight, and the
  backward pass writes the gradient: :math:`16 P` bytes for ``P`` parameters.
* ``readout adjoint → hidden``: :math:`2 T B O H` flop (GEMM ``TB × O × H``: the readout
  adjoint is dense over time up to each sample's maximum).
* ``dW2``: :math:`E_h O` accumulates (for each hidden spike, the readout adjoint row of length
  ``O``), or dense :math:`2 T B H O`.
* ``recurrent adjoint`` (recurrent variants): :math:`2 (T-1) B H^2` flop (``T − 1`` GEMMs
  ``B × H × H``: :math:`W_{rec}^\top \bar x_{k+1}` is dense, every neuron has a non-zero
  surrogate).
* ``dW_rec`` (recurrent variants): :math:`E_h^- H` accumulates (for each spike of step ``k``,
  the adjoint row of step ``k+1``), or dense :math:`2 (T-1) B H^2`.
* ``dW1``: :math:`E_{in} H` accumulates (for each input event, the surrogate-gated hidden
  adjoint row :math:`\bar x_k`), or dense :math:`2 T B N H`.
* ``adjoint neurons``: :math:`(13 + [\text{rec}])\,TBH + 4\,TBO` element operations — the
  SuperSpike derivative :math:`1/(1 + β_s|v − ϑ|)^2` (6), ``v̄ = z̄σ' + v̄(1 − z)`` (3),
  ``v̄⁻ = βū`` (1), ``ī = gū + αī`` (3), plus adding the recurrent adjoint (1, recurrent
  variants); the readout adjoint ``v̄ = g + βv̄``, ``ī = gv̄ + αī`` (4).

**Rates** (torch, the best of 1 and ``--threads`` threads — an implementation may run a small
GEMM on one thread, and on a shared machine two threads of a small GEMM can be far slower than
one — each the shortest of repeated runs): ``gemm`` GFLOP/s at each term's own shape
(``torch.mm`` into a preallocated output); ``event`` accumulates/s: the faster of
``F.embedding_bag(mode="sum")`` (fused gather-add) and ``index_select`` + ``index_add_``, on a
random pattern with the term's table size, row length, number of output rows and number of
events (a weight-gradient term is the same gather-add with the adjoint as the table and the
events grouped by input; torch has no fast scatter-add in the other order, which a native
kernel could use to keep the gradient in cache, so the ``dW`` terms' rates are torch's, not
necessarily the machine's); ``stream`` bytes/s: ``copy_`` between two ``--stream-mb`` tensors
(bytes read + written; 32 MB each by default, about the bytes the standard workload's training
step streams); ``elementwise`` element operations/s: the faster of in-place ``mul_``/``add_``
and ``addcmul_`` (2 operations) on a 256 KB (L2-resident) tensor — one operation per pass over
the data, so a fused neuron loop doing several operations per load may beat it.

**Floor** = :math:`Σ_k \min_{alt} \text{work}_{k,alt} / \text{rate}_{k,alt}` — the terms run one
after another at each kind's best measured rate, no overlap and no overhead: a time no
implementation on this machine can beat by more than the overlap of its terms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from benchmarks.speed.workload import MODES, RECURRENT, Workload, at_variant  # noqa: E402

LIF_FWD_OPS = 7  # element operations per hidden neuron and step, forward
LI_FWD_OPS = 6  # readout, forward (with the running max over time)
LIF_BWD_OPS = 13  # hidden adjoint per neuron and step (+1 with a recurrent projection)
LI_BWD_OPS = 4  # readout adjoint
F32 = 4  # bytes
QUICK_WORKLOAD = {"T": 10, "batch": 4}


# --------------------------------------------------------------------------- work
@dataclass(frozen=True)
class Activity:
    """Measured activity of one workload: input events and hidden spikes."""

    input_events: int  # E_in: non-zero entries of the input [T, B, n_in]
    hidden_spikes: int  # E_h: all hidden spikes
    hidden_spikes_prop: int  # E_h^-: hidden spikes of steps 0 … T−2
    source: str  # where the hidden spikes came from

    def densities(self, wl: Workload) -> dict[str, float]:
        return {"input": self.input_events / (wl.T * wl.batch * wl.n_in),
                "hidden": self.hidden_spikes / (wl.T * wl.batch * wl.hidden)}


@dataclass(frozen=True)
class Alt:
    """One way to do a term: ``work`` units of ``kind`` at the rate named ``rate``."""

    kind: str  # gemm (flop) | event (accumulates) | stream (bytes) | elementwise (operations)
    work: float
    rate: str  # key into the rates table
    shape: dict[str, int] = field(default_factory=dict)  # what the rate is measured on


@dataclass(frozen=True)
class Term:
    name: str
    formula: str
    alts: tuple[Alt, ...]


def activity(wl: Workload, hidden_density: float | None = None) -> Activity:
    """Count the input events of the workload's real input; hidden spikes from a spikeloop
    forward pass on the initial weights (``hidden_density=None``) or from the given density."""
    x, _ = wl.data()
    e_in = int(torch.count_nonzero(x))
    if hidden_density is not None:
        if not 0.0 <= hidden_density <= 1.0:
            raise ValueError(f"hidden_density must lie in [0, 1], got {hidden_density}")
        per_step = hidden_density * wl.batch * wl.hidden
        return Activity(e_in, round(per_step * wl.T), round(per_step * (wl.T - 1)),
                        f"given density {hidden_density:g}")
    from benchmarks.speed.libs import load

    model = load("spikeloop").build(wl)
    with torch.no_grad():
        _, spikes = model.forward(model.prepare(x))
    if spikes.shape != (wl.T, wl.batch, wl.hidden):
        raise ValueError(f"spikeloop returned hidden spikes of shape {tuple(spikes.shape)}, "
                         f"expected {(wl.T, wl.batch, wl.hidden)}")
    return Activity(e_in, int(torch.count_nonzero(spikes)),
                    int(torch.count_nonzero(spikes[:-1])), "spikeloop forward, initial weights")


def _event(n_events: int, row: int, table: int, bags: int) -> Alt:
    return Alt("event", float(n_events * row), f"event:{table}x{row}:{bags}",
               {"table": table, "row": row, "bags": bags, "events": n_events})


def _gemm(m: int, k: int, n: int, calls: int = 1) -> Alt:
    return Alt("gemm", 2.0 * m * k * n * calls, f"gemm:{m}x{k}x{n}",
               {"m": m, "k": k, "n": n, "calls": calls})


def work(wl: Workload, act: Activity) -> dict[str, list[Term]]:
    """The terms of the forward pass and the training step (see the module docstring)."""
    T, B, N, H, O = wl.T, wl.batch, wl.n_in, wl.hidden, wl.n_out  # noqa: E741 (as in the text)
    e_in, e_h, e_hp = act.input_events, act.hidden_spikes, act.hidden_spikes_prop
    n_params = N * H + H * O + (H * H if wl.recurrent else 0)
    fwd = [
        Term("input projection", "E_in·H acc or 2·T·B·N·H flop",
             (_event(e_in, H, N, T * B), _gemm(T * B, N, H))),
    ]
    if wl.recurrent:
        fwd.append(Term("recurrent", "E_h⁻·H acc or 2·(T−1)·B·H² flop",
                        (_event(e_hp, H, H, (T - 1) * B), _gemm(B, H, H, T - 1))))
    fwd += [
        Term("readout", "E_h·O acc or 2·T·B·H·O flop",
             (_event(e_h, O, H, T * B), _gemm(T * B, H, O))),
        Term("neurons", f"{LIF_FWD_OPS}·T·B·H + {LI_FWD_OPS}·T·B·O ops",
             (Alt("elementwise", float(LIF_FWD_OPS * T * B * H + LI_FWD_OPS * T * B * O),
                  "elementwise"),)),
        Term("memory", "4·T·B·N (input) + 4·T·B·H (spikes) B",
             (Alt("stream", float(F32 * (T * B * N + T * B * H)), "stream"),)),
    ]
    train = [t for t in fwd if t.name != "memory"]
    rec = 1 if wl.recurrent else 0
    train += [
        Term("memory", "4·T·B·N + 4·T·B·H + 2·(4·T·B·H + 4·E_in) + 16·P B",
             (Alt("stream", float(F32 * (T * B * N + T * B * H)
                                  + 2 * F32 * (T * B * H + e_in) + 4 * F32 * n_params),
                  "stream"),)),
        Term("readout adjoint → hidden", "2·T·B·O·H flop", (_gemm(T * B, O, H),)),
        Term("dW2", "E_h·O acc or 2·T·B·H·O flop",
             (_event(e_h, O, T * B, H), _gemm(O, T * B, H))),
    ]
    if wl.recurrent:
        train += [
            Term("recurrent adjoint", "2·(T−1)·B·H² flop", (_gemm(B, H, H, T - 1),)),
            Term("dW_rec", "E_h⁻·H acc or 2·(T−1)·B·H² flop",
                 (_event(e_hp, H, (T - 1) * B, H), _gemm(H, (T - 1) * B, H))),
        ]
    train += [
        Term("dW1", "E_in·H acc or 2·T·B·N·H flop",
             (_event(e_in, H, T * B, N), _gemm(H, T * B, N))),
        Term("adjoint neurons", f"({LIF_BWD_OPS}+rec)·T·B·H + {LI_BWD_OPS}·T·B·O ops",
             (Alt("elementwise",
                  float((LIF_BWD_OPS + rec) * T * B * H + LI_BWD_OPS * T * B * O),
                  "elementwise"),)),
    ]
    return {"forward": fwd, "train": train}


# --------------------------------------------------------------------------- rates
def _best(fn: Callable[[], Any], budget: float, min_runs: int = 3) -> float:
    """Shortest time (s) of ``fn`` over at least ``min_runs`` runs and ``budget`` seconds."""
    fn()
    best, start, runs = math.inf, time.perf_counter(), 0
    while runs < min_runs or time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        runs += 1
    return best


def gemm_rate(m: int, k: int, n: int, budget: float) -> float:
    """flop/s of ``torch.mm`` ``[m, k] × [k, n]`` into a preallocated output (enough calls
    per timing for ≥ ~20 Mflop)."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(m, k, generator=g), torch.randn(k, n, generator=g)
    out = torch.empty(m, n)
    calls = max(1, math.ceil(2e7 / (2 * m * k * n)))

    def run() -> None:
        for _ in range(calls):
            torch.mm(a, b, out=out)

    return 2.0 * m * k * n * calls / _best(run, budget)


def event_rate(table: int, row: int, bags: int, events: int, budget: float) -> float:
    """Accumulates/s (rows × row length) adding ``events`` rows of a ``[table, row]`` float32
    table into ``bags`` output rows; the faster of ``F.embedding_bag(mode="sum")`` and
    ``index_select`` + ``index_add_``; uniform random events, sorted by output row."""
    if events == 0:
        return math.inf
    g = torch.Generator().manual_seed(0)
    w = torch.randn(table, row, generator=g)
    dest = torch.sort(torch.randint(0, bags, (events,), generator=g)).values
    src = torch.randint(0, table, (events,), generator=g)
    offsets = torch.searchsorted(dest, torch.arange(bags))
    out = torch.zeros(bags, row)

    def bag() -> None:
        F.embedding_bag(src, w, offsets, mode="sum")

    def index_add() -> None:
        out.zero_()
        out.index_add_(0, dest, w.index_select(0, src))

    return events * row / min(_best(bag, budget), _best(index_add, budget))


def stream_rate(megabytes: float, budget: float) -> float:
    """Bytes/s (read + written) of ``dst.copy_(src)`` between two tensors of ``megabytes``."""
    n = int(megabytes * 2**20 / F32)
    src, dst = torch.ones(n), torch.empty(n)
    return 2.0 * F32 * n / _best(lambda: dst.copy_(src), budget, min_runs=8)


def elementwise_rate(budget: float, n: int = 2**16) -> float:
    """Element operations/s on an ``n``-float (256 KB, L2-resident) tensor: the faster of
    in-place ``mul_``/``add_`` (one operation each) and ``addcmul_`` (a multiply-add: two)."""
    a, b, c = torch.full((n,), 0.999), torch.full((n,), 1e-3), torch.full((n,), 0.5)
    reps = max(1, 2**19 // n)

    def mul_add() -> None:
        for _ in range(4 * reps):
            a.mul_(b)
            a.add_(b)

    def fma() -> None:
        for _ in range(4 * reps):
            a.addcmul_(b, c)

    return 8.0 * n * reps / min(_best(mul_add, budget), _best(fma, budget))


def _measure(alt: Alt, budget: float, stream_mb: float) -> float:
    s = alt.shape
    if alt.kind == "gemm":
        return gemm_rate(s["m"], s["k"], s["n"], budget)
    if alt.kind == "event":
        return event_rate(s["table"], s["row"], s["bags"], s["events"], budget)
    if alt.kind == "stream":
        return stream_rate(stream_mb, budget)
    if alt.kind == "elementwise":
        return elementwise_rate(budget)
    raise ValueError(f"unknown kind of work {alt.kind!r}")


def measure_rates(terms: list[Term], budget: float = 0.3, stream_mb: float = 32.0,
                  threads: int = 2, chosen: dict[str, int] | None = None) -> dict[str, float]:
    """Every rate the ``terms`` name, measured once each (units: flop, accumulate, byte or
    operation per second), the best over 1 and ``threads`` torch threads (an implementation
    may run a small GEMM on one thread; on a shared machine two threads of a small GEMM can
    also be far slower than one). ``chosen`` receives the thread count of each best rate."""
    rates: dict[str, float] = {}
    previous = torch.get_num_threads()
    try:
        for term in terms:
            for alt in term.alts:
                if alt.rate in rates:
                    continue
                for n in sorted({1, threads}):
                    torch.set_num_threads(n)
                    rate = _measure(alt, budget, stream_mb)
                    if rate > rates.get(alt.rate, -1.0):
                        rates[alt.rate] = rate
                        if chosen is not None:
                            chosen[alt.rate] = n
    finally:
        torch.set_num_threads(previous)
    return rates


# --------------------------------------------------------------------------- floor
def floor(terms: list[Term], rates: dict[str, float]) -> dict[str, Any]:
    """Per term the fastest alternative (work / rate) and the total in ms."""
    rows = []
    for term in terms:
        times = [(alt.work / rates[alt.rate], alt) for alt in term.alts]
        seconds, alt = min(times, key=lambda t: t[0])
        rows.append({"term": term.name, "formula": term.formula, "kind": alt.kind,
                     "work": alt.work, "rate": rates[alt.rate], "rate_key": alt.rate,
                     "ms": 1e3 * seconds,
                     "alternatives": [{"kind": a.kind, "work": a.work, "rate_key": a.rate,
                                       "ms": 1e3 * s} for s, a in times]})
    total = sum(r["ms"] for r in rows)
    dominant = max(rows, key=lambda r: r["ms"])["term"] if rows else None
    return {"terms": rows, "floor_ms": total, "dominant": dominant}


def roofline(wl: Workload, hidden_density: float | None = None, budget: float = 0.3,
             stream_mb: float = 32.0, rates: dict[str, float] | None = None, threads: int = 2,
             rate_threads: dict[str, int] | None = None) -> dict[str, Any]:
    """Activity, work, rates and floor of one workload (``rates``: reuse measured ones and
    measure only the missing; ``rate_threads`` receives the thread count of each rate)."""
    act = activity(wl, hidden_density)
    terms = work(wl, act)
    rates = dict(rates or {})
    needed = [t for mode in MODES for t in terms[mode]]
    missing = [Term(t.name, t.formula, tuple(a for a in t.alts if a.rate not in rates))
               for t in needed]
    rates.update(measure_rates(missing, budget, stream_mb, threads, rate_threads))
    return {"workload": wl.as_dict(), "activity": {**asdict(act), **act.densities(wl)},
            **{mode: floor(terms[mode], rates) for mode in MODES}, "rates": rates}


def run(variants: list[str], wl: Workload, threads: int = 2,
        hidden_density: dict[str, float] | float | None = None, quick: bool = False,
        stream_mb: float | None = None) -> dict[str, Any]:
    """Roofline of every variant in this process (rates: best of 1 and ``threads`` torch
    threads); ``hidden_density``: one value, one per variant, or ``None`` (measure with
    spikeloop, on ``threads`` threads)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    budget = 0.02 if quick else 0.3
    stream_mb = stream_mb or (8.0 if quick else 32.0)
    try:
        out: dict[str, Any] = {
            "meta": {"date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                     "threads": threads, "torch": torch.__version__, "quick": quick,
                     "stream_mb": stream_mb, "loadavg_start": list(os.getloadavg())},
            "variants": {}}
        rates: dict[str, float] = {}
        rate_threads: dict[str, int] = {}
        out["rate_threads"] = rate_threads
        for variant in variants:
            density = (hidden_density.get(variant) if isinstance(hidden_density, dict)
                       else hidden_density)
            result = roofline(at_variant(wl, variant), density, budget, stream_mb, rates,
                              threads, rate_threads)
            rates = result["rates"]
            out["variants"][variant] = result
        out["meta"]["loadavg_end"] = list(os.getloadavg())
        return out
    finally:
        torch.set_num_threads(previous)


_UNITS = {"gemm": ("flop", "GFLOP/s", 1e9), "event": ("acc", "G acc/s", 1e9),
          "stream": ("B", "GB/s", 1e9), "elementwise": ("ops", "G ops/s", 1e9)}


def _si(x: float) -> str:
    for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g} "


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = ["# Roofline of the speed benchmark's workloads", "",
             f"{meta['date']} · rates: best of 1 and {meta['threads']} torch threads · "
             f"torch {meta['torch']} · "
             f"load average {meta['loadavg_start'][0]:.2f} → {meta['loadavg_end'][0]:.2f}"
             + (" · quick (short timings)" if meta["quick"] else ""), "",
             "Floor = Σ work / rate, each term at its faster alternative (event-driven or "
             "dense) and this machine's best measured torch rate for that kind of work "
             "(formulas in `benchmarks/roofline.py`). On a busy machine the rates are low and "
             "the floor is high: provisional.", ""]
    for variant, r in result["variants"].items():
        wl, a = r["workload"], r["activity"]
        lines += [f"## {variant}: T = {wl['T']}, batch {wl['batch']}, {wl['n_in']} → "
                  f"{wl['hidden']} → {wl['n_out']}"
                  + (", recurrent" if variant in RECURRENT else ""), "",
                  f"Input events E_in = {a['input_events']} ({100 * a['input']:.2f} %), hidden "
                  f"spikes E_h = {a['hidden_spikes']} ({100 * a['hidden']:.2f} %; "
                  f"{a['source']}).", ""]
        for mode in MODES:
            f = r[mode]
            lines += [f"### {mode}: floor **{f['floor_ms']:.3f} ms** (dominant: {f['dominant']})",
                      "", "| term | formula | kind | work | rate (threads) | ms |",
                      "|---|---|---|---:|---:|---:|"]
            for t in f["terms"]:
                unit, rate_unit, div = _UNITS[t["kind"]]
                lines.append(f"| {t['term']} | {t['formula']} | {t['kind']} | "
                             f"{_si(t['work'])}{unit} | {t['rate'] / div:.2f} {rate_unit} "
                             f"({result.get('rate_threads', {}).get(t['rate_key'], '?')}) | "
                             f"{t['ms']:.3f} |")
            lines += [f"| **total** | | | | | **{f['floor_ms']:.3f}** |", ""]
    return "\n".join(lines)


def write(result: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    base = str(out).removesuffix(".json").removesuffix(".md")
    json_path, md_path = Path(base + ".json"), Path(base + ".md")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1) + "\n")
    md_path.write_text(markdown(result))
    return json_path, md_path


def floors(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{variant: {mode: floor_ms}}`` of a :func:`run` result."""
    return {v: {m: r[m]["floor_ms"] for m in MODES} for v, r in result["variants"].items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["ff", "rec"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--T", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--hidden-density", type=float, default=None,
                        help="hidden spikes per neuron and step (default: measured with a "
                             "spikeloop forward pass)")
    parser.add_argument("--stream-mb", type=float, default=None)
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test: {QUICK_WORKLOAD}, short timings")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "roofline"))
    args = parser.parse_args(argv)
    quick = QUICK_WORKLOAD if args.quick else {}
    wl = Workload(T=args.T or quick.get("T", Workload.T),
                  batch=args.batch or quick.get("batch", Workload.batch))
    result = run(args.variants, wl, args.threads, args.hidden_density, args.quick,
                 args.stream_mb)
    json_path, md_path = write(result, args.out)
    print(markdown(result))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
