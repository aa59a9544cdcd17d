r"""What the memory accesses of per-synapse delays cost on this machine, and the floor they set
for a training step with per-synapse delays (issue 17: at most 1.5× the step without delays).

    .venv/bin/python benchmarks/delay_scatter.py            # after make delays-bench
    .venv/bin/python benchmarks/delay_scatter.py --variant ff --T 20 --batch 4   # small

With per-synapse delays every input event touches, for each of its ``H`` synapses, the two
adjacent time slots of that synapse's own delay (``lo`` and ``lo + 1``, the interpolated
delay): one scattered update in the forward pass (the weight pair added into the output
buffer) and one scattered read in the backward pass (the output gradient there, added into the
synapse's sums), ``E_in · H`` of each per step. No formulation has fewer: a synapse's delay is
its own, so no two synapses of an event share a target, and the dense alternative (a
convolution with ``D + 1`` taps) does ``(D + 1) · N · H`` multiply-adds per step and row where
the events do ``2 · ρ · N · H`` accesses (ρ the input density).

This script times those accesses alone (``benchmarks/native/delay_scatter.c``: no weights
multiplied, no gradients formed, no output written out and no gradient copied in; the buffers
are only zeroed per batch row) in several formulations, on the
speed bench's workload (the ``shd`` variant's real input events, the per-synapse delays of the
``spikeloop_delay_synapse`` row: uniform in ``[0, 25]`` steps from the workload's seed + 17), on
one thread as ``make delays-bench``; then spikeloop's per-synapse kernels and the plain input
projection on the same input. The floor of the per-synapse step is

.. math:: S_{syn} \ge S - P_{plain} + E_{in} H\,(t_{update} + t_{read})

with ``S`` the plain step (``spikeloop`` row of ``--speed``, the delays bench's JSON),
``P_plain`` the plain projection's forward and weight gradient (measured here and subtracted
whole, although the per-synapse step too must find the input's events: the floor errs low) and
``t`` the fastest formulation of each access. Writes
``<out>.json`` and ``<out>.md`` (default ``benchmarks/results/delay_scatter``).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from benchmarks.speed.libs.spikeloop_delay_lib import MAX_STEPS  # noqa: E402
from benchmarks.speed.workload import Workload, at_variant  # noqa: E402
from benchmarks.speed_bench import machine_info  # noqa: E402

SOURCE = ROOT / "benchmarks" / "native" / "delay_scatter.c"
UPDATES = {0: "8-byte scalar read-modify-write, output-major buffer [H, T + 2D + 2]",
           1: "AVX-512 gather + scatter of eight 8-byte pairs, output-major buffer",
           2: "two 4-byte read-modify-writes, time-major ring [D + 2, H] (in L1)"}
READS = {0: "8-byte scalar loads, events in time order, sums per synapse in memory",
         1: "AVX-512 gathers of eight 8-byte pairs, events in time order",
         2: "AVX-512 gathers, events by input (a counting sort), sums in registers"}


def _declare(lib: ctypes.CDLL) -> None:
    i64, p = ctypes.c_int64, ctypes.c_void_p
    lib.ds_has_avx512.argtypes, lib.ds_has_avx512.restype = [], ctypes.c_int
    lib.ds_update.argtypes = [ctypes.c_int] + [i64] * 5 + [p] * 7
    lib.ds_update.restype = ctypes.c_int
    lib.ds_read.argtypes = [ctypes.c_int] + [i64] * 3 + [p] * 6
    lib.ds_read.restype = ctypes.c_int


def library() -> ctypes.CDLL:
    """The microbenchmark's kernels, built like spikeloop's own (``native.load``)."""
    from spikeloop.kernels import native

    return native.load("delay_scatter", [SOURCE], _declare)


def row_events(x: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The events of ``x [T, B, N]`` per batch row in time order (then by input): ``ptr
    [B + 1]`` (int64) and per event the delay-line step ``u = t + steps`` and the input (int32)."""
    t, b, i = torch.nonzero(x, as_tuple=True)
    order = torch.argsort(b * (x.shape[0] * x.shape[2]) + t * x.shape[2] + i)
    b, t, i = b[order], t[order], i[order]
    counts = torch.bincount(b, minlength=x.shape[1])
    ptr = torch.zeros(x.shape[1] + 1, dtype=torch.int64)
    ptr[1:] = torch.cumsum(counts, 0)
    return ptr, (t + steps).to(torch.int32), i.to(torch.int32)


def synapse_lo(wl: Workload, steps: int = MAX_STEPS) -> torch.Tensor:
    """The whole-step taps ``lo [H, N]`` of the ``spikeloop_delay_synapse`` row's delays."""
    from spikeloop.kernels import ops

    g = torch.Generator().manual_seed(wl.seed + 17)
    delay = torch.rand((wl.hidden, wl.n_in), generator=g, dtype=torch.float64) * steps * wl.dt
    lo, _ = ops.delay_taps(delay.float(), wl.dt, steps)
    return lo


def _best(fn: Callable[[], Any], rounds: int) -> float:
    """Shortest of ``rounds`` timed calls after one untimed (s)."""
    fn()
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _kernels(x: torch.Tensor, lo: torch.Tensor, steps: int, rounds: int) -> dict[str, float]:
    """spikeloop's per-synapse forward and backward and the plain event projection's forward
    (with gradient: compression and product) and weight gradient, on ``x`` (s each)."""
    from spikeloop.kernels.fused import event_delay_synapse, event_linear

    g = torch.Generator().manual_seed(1)
    hidden, n_in = lo.shape
    w = (torch.randn(hidden, n_in, generator=g) * 0.05).requires_grad_()
    frac = torch.rand(hidden, n_in, generator=g).requires_grad_()
    dy = torch.randn(x.shape[0], x.shape[1], hidden, generator=g)
    out: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], torch.Tensor]) -> None:
        forward, backward = float("inf"), float("inf")
        for _ in range(rounds + 1):
            w.grad = frac.grad = None
            t0 = time.perf_counter()
            y = fn()
            t1 = time.perf_counter()
            y.backward(dy)
            t2 = time.perf_counter()
            forward, backward = min(forward, t1 - t0), min(backward, t2 - t1)
        out[f"{name}_forward"], out[f"{name}_backward"] = forward, backward

    if event_delay_synapse(x, None, w.detach(), lo, frac.detach(), None, steps) is None:
        raise RuntimeError("the per-synapse event kernels do not apply to this input "
                           "(native kernels unavailable, or the input too dense)")
    timed("synapse", lambda: event_delay_synapse(x, None, w, lo, frac, None, steps))
    timed("plain", lambda: event_linear(x, w))
    return out


def measure(wl: Workload, steps: int = MAX_STEPS, rounds: int = 5) -> dict[str, Any]:
    """Times of every formulation (one thread) and of spikeloop's kernels on ``wl``'s input."""
    from spikeloop.kernels.fused import synapse_tap_offsets

    lib = library()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    lib.sl_set_threads(1)
    try:
        x, _ = wl.data()
        t, batch, n_in = x.shape
        hidden = wl.hidden
        ptr, u, inp = row_events(x, steps)
        lo = synapse_lo(wl, steps)
        off, slots = synapse_tap_offsets(lo, t + steps, steps)  # spikeloop's kernels' layout
        lo_t = lo.t().to(torch.int32).contiguous()  # [N, H]: the ring's taps
        g = torch.Generator().manual_seed(2)
        w2 = torch.rand(n_in, hidden, 2, generator=g)
        events = int(ptr[-1])
        pairs = events * hidden
        ring = (steps + 2) * hidden
        args = (batch, n_in, hidden, slots, steps, ptr.data_ptr(), u.data_ptr(),
                inp.data_ptr(), off.data_ptr(), lo_t.data_ptr(), w2.data_ptr())
        updates: dict[int, dict[str, Any]] = {}
        buffers: dict[int, torch.Tensor] = {}
        for variant, what in UPDATES.items():
            buf = torch.empty(max(hidden * slots, ring))
            if lib.ds_update(variant, *args, buf.data_ptr()) != 0:
                continue  # (this build lacks it)
            s = _best(lambda v=variant, b=buf: lib.ds_update(v, *args, b.data_ptr()), rounds)
            updates[variant] = {"what": what, "ms": 1e3 * s, "ns_per_access": 1e9 * s / pairs}
            buffers[variant] = buf
        if 0 in buffers and 1 in buffers and not torch.equal(buffers[0], buffers[1]):
            raise RuntimeError("the scalar and AVX-512 updates disagree")
        source = torch.randn(hidden * slots, generator=g)
        reads: dict[int, dict[str, Any]] = {}
        sums: dict[int, torch.Tensor] = {}
        for variant, what in READS.items():
            acc = torch.empty(2 * n_in * hidden)
            call = (variant, batch, n_in, hidden, ptr.data_ptr(), u.data_ptr(), inp.data_ptr(),
                    off.data_ptr(), source.data_ptr())
            if lib.ds_read(*call, acc.data_ptr()) != 0:
                continue
            s = _best(lambda c=call, a=acc: lib.ds_read(*c, a.data_ptr()), rounds)
            reads[variant] = {"what": what, "ms": 1e3 * s, "ns_per_access": 1e9 * s / pairs}
            sums[variant] = acc
        for variant in sums:
            if not torch.allclose(sums[variant], sums[0], rtol=1e-4, atol=1e-3):
                raise RuntimeError(f"read variant {variant} disagrees with variant 0")
        kernels = {k: 1e3 * v for k, v in _kernels(x, lo, steps, rounds).items()}
    finally:
        torch.set_num_threads(previous)
    return {"events": events, "synapse_events": pairs, "hidden": hidden, "n_in": n_in,
            "steps": steps, "T": t, "batch": batch,
            "updates": {str(k): v for k, v in updates.items()},
            "reads": {str(k): v for k, v in reads.items()}, "kernels_ms": kernels}


def plain_step_ms(speed_json: Path, wl: Workload) -> float | None:
    """The median training step (ms) of the ``spikeloop`` row on ``wl``'s variant, steps and
    batch in a speed-bench JSON, if it has one."""
    try:
        data = json.loads(speed_json.read_text())
    except (OSError, ValueError):
        return None
    want = ("spikeloop", "train", wl.variant, wl.T, wl.batch)
    for rec in data.get("records", []):
        if tuple(rec.get(k) for k in ("lib", "mode", "variant", "T", "batch")) == want:
            return float(rec["median_ms"])
    return None


def floor(result: dict[str, Any], step_ms: float | None, goal: float = 1.5) -> dict[str, Any]:
    """The per-synapse step's floor from the plain step and the fastest accesses (see the
    module docstring), and the time per access the goal leaves."""
    k = result["kernels_ms"]
    update = min(v["ns_per_access"] for v in result["updates"].values())
    read = min(v["ns_per_access"] for v in result["reads"].values())
    plain_projection = k["plain_forward"] + k["plain_backward"]
    accesses_ms = result["synapse_events"] * (update + read) * 1e-6
    out: dict[str, Any] = {"fastest_update_ns": update, "fastest_read_ns": read,
                           "plain_projection_ms": plain_projection, "accesses_ms": accesses_ms,
                           "goal": goal, "plain_step_ms": step_ms}
    if step_ms is not None:
        low = step_ms - plain_projection + accesses_ms
        allowed = (goal - 1.0) * step_ms + plain_projection  # for both accesses together
        out.update({"floor_ms": low, "floor_ratio": low / step_ms,
                    "allowed_ns_per_access": allowed / (2 * result["synapse_events"]) * 1e6})
    return out


def markdown(result: dict[str, Any]) -> str:
    m, f, k = result["meta"], result["floor"], result["kernels_ms"]
    lines = [
        "# Per-synapse delays: the accesses they cannot avoid", "",
        f"{m['date']} · {m['cpu']} · one thread · torch {m['torch']} · spikeloop "
        f"{m['spikeloop_commit']} · load average at start {m['loadavg_start'][0]:.2f}", "",
        f"Workload `{m['variant']}`: T = {result['T']}, batch {result['batch']}, "
        f"{result['n_in']} inputs → {result['hidden']} outputs, D = {result['steps']} steps; "
        f"{result['events']:,} input events, so E_in·H = {result['synapse_events'] / 1e6:.1f} M "
        "synapse events, each one scattered update forward and one scattered read backward. "
        f"Best of {m['rounds']} runs each.", "",
        "| pass | formulation | ms per step | ns per synapse event |",
        "|---|---|---:|---:|",
    ]
    for name, rows in (("forward: update", result["updates"]), ("backward: read",
                                                                 result["reads"])):
        for row in rows.values():
            lines.append(f"| {name} | {row['what']} | {row['ms']:.1f} | "
                         f"{row['ns_per_access']:.3f} |")
    per = 1e6 / result["synapse_events"]
    lines += [
        f"| spikeloop | per-synapse forward (`event_delay_synapse`) | "
        f"{k['synapse_forward']:.1f} | {k['synapse_forward'] * per:.3f} |",
        f"| spikeloop | per-synapse backward (weight and delay gradients) | "
        f"{k['synapse_backward']:.1f} | {k['synapse_backward'] * per:.3f} |",
        f"| spikeloop | plain input projection: forward + weight gradient | "
        f"{k['plain_forward']:.1f} + {k['plain_backward']:.1f} | – |", "",
    ]
    if f.get("plain_step_ms") is None:
        lines.append(f"- No plain step (`{m['speed']}` has no `spikeloop` training row of this "
                     "workload): no floor.")
    else:
        verdict = "out of reach" if f["floor_ratio"] > f["goal"] else "within reach"
        lines += [
            f"- **Floor of the per-synapse step**: the plain step {f['plain_step_ms']:.1f} ms "
            f"(`spikeloop` row of `{m['speed']}`) − its input projection "
            f"{f['plain_projection_ms']:.1f} ms + the fastest update and read "
            f"({f['fastest_update_ns']:.3f} + {f['fastest_read_ns']:.3f} ns) × "
            f"{result['synapse_events'] / 1e6:.1f} M = {f['accesses_ms']:.1f} ms → "
            f"**{f['floor_ms']:.1f} ms = {f['floor_ratio']:.2f}× the plain step** "
            f"(goal ≤ {f['goal']:g}×: {verdict} with these accesses).",
            f"- The goal leaves {f['allowed_ns_per_access']:.3f} ns per access (half the plain "
            "step plus its input projection, over the 2 · E_in·H accesses).",
        ]
    lines += ["", "Formulations: `benchmarks/native/delay_scatter.c`; the floor's formula and "
              "what it leaves out: `benchmarks/delay_scatter.py`."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", default="shd", help="speed-bench workload (default shd)")
    ap.add_argument("--T", type=int, default=None, help="steps (default: the variant's)")
    ap.add_argument("--batch", type=int, default=None, help="batch (default: the variant's)")
    ap.add_argument("--rounds", type=int, default=5, help="timed runs of each (best counts)")
    ap.add_argument("--speed", type=Path, default=ROOT / "benchmarks/results/delays_speed.json",
                    help="speed-bench JSON with the plain step (spikeloop row, train)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/delay_scatter")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    changes = {k: v for k, v in (("T", args.T), ("batch", args.batch)) if v is not None}
    wl = at_variant(Workload(**changes), args.variant)
    meta = machine_info(threads=1)
    result = measure(wl, rounds=args.rounds)
    speed = args.speed.resolve()
    result["meta"] = {**meta, "rounds": args.rounds, "variant": args.variant,
                      "speed": os.path.relpath(speed, ROOT)}
    result["floor"] = floor(result, plain_step_ms(speed, wl))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
