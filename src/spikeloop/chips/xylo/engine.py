"""The integer simulator's engine: runs the chip's steps over a long input without one Python
object per step, with memory independent of ``T`` beyond the records asked for.

The input is read in chunks of time steps; each chunk runs in the native kernel (``native.c``
in this folder: the time loop in C, int32 arithmetic, the records written straight into
preallocated ``[T, B, …]`` int32 tensors) or, without a C compiler or with
``SPIKELOOP_NATIVE=0``, in a loop over :func:`~spikeloop.chips.xylo.dynamics.step` writing into
the same tensors. ``step`` is the one statement of the equations: the kernel is tested against
it bit for bit (and both against ``xylosim``). Both count what hit the chip's limits
(:class:`~spikeloop.chips.xylo.dynamics.Tally`).
"""

from __future__ import annotations

import ctypes
from collections.abc import Collection

import torch
from torch import Tensor

from spikeloop.chips.xylo import _native, dynamics
from spikeloop.chips.xylo.dynamics import TALLIES, StepRecord, Tally, XyloParams, XyloState
from spikeloop.errors import ParameterError, StateError

RECORDS: tuple[str, ...] = StepRecord._fields
"""The records a run can keep (the fields of :class:`~spikeloop.chips.xylo.dynamics.StepRecord`:
``z``, ``v``, ``i``, ``z_out``, ``v_out``, ``i_out``)."""
CHUNK_VALUES = 1 << 18
"""Input values per chunk (the chunk's ``T`` is this over ``B · Nin``)."""


def native_available() -> bool:
    """True if the native kernel is built and loaded (``SPIKELOOP_NATIVE=0`` turns it off)."""
    return _native.library() is not None


def _check_state(state: XyloState, p: XyloParams) -> None:
    """The state holds what a chip can hold: integers in the 16-bit range, counts ≥ 0."""
    lo, hi = dynamics.LO, dynamics.HI
    for name, value in state._asdict().items():
        v = value.detach()
        top = p.hidden_cap if name == "z" else hi
        low = 0 if name == "z" else lo
        if v.numel() and not (bool((v == v.round()).all()) and float(v.min()) >= low
                              and float(v.max()) <= top):
            raise StateError(f"the Xylo state's {name!r} must hold integers in {int(low)}.."
                             f"{int(top)}, got values in {float(v.min())}..{float(v.max())}")


def run(
    x: Tensor, state: XyloState, p: XyloParams, record: Collection[str] = RECORDS, *,
    native: bool | None = None,
) -> tuple[dict[str, Tensor], XyloState, dict[str, int]]:
    """Run the steps of ``x [T, B, Nin]`` (validated non-negative integer counts, any real
    dtype) from ``state`` with parameters ``p`` (no gradients).

    Returns the records named in ``record`` (:data:`RECORDS`) as int32 ``[T, B, …]`` tensors,
    the final state (float64, as :func:`~spikeloop.chips.xylo.dynamics.run` returns it) and the
    counts of what hit a limit (:data:`~spikeloop.chips.xylo.dynamics.TALLIES`). ``native``:
    ``None`` uses the C kernel where it is available, ``False`` the torch step loop, ``True``
    requires the kernel.
    """
    unknown = sorted(set(record) - set(RECORDS))
    if unknown:
        raise ParameterError(f"unknown Xylo records {unknown}; known: {', '.join(RECORDS)}")
    use_native = native_available() if native is None else native
    if use_native and not native_available():
        raise ParameterError(f"the native Xylo kernel is unavailable: "
                             f"{_native.unavailable_reason()}")
    _check_state(state, p)
    steps, batch = x.shape[0], x.shape[1]
    n, o = state.v.shape[1], state.v_out.shape[1]
    shapes = {"z": (n,), "v": (n,), "i": tuple(state.i.shape[1:]), "z_out": (o,), "v_out": (o,),
              "i_out": (o,)}
    out = {name: torch.empty(steps, batch, *shapes[name], dtype=torch.int32)
           for name in RECORDS if name in record}
    chunk = max(1, CHUNK_VALUES // max(1, batch * x.shape[2]))
    go = _run_native if use_native else _run_torch
    return go(x, state, p, out, chunk)


def _run_torch(x: Tensor, state: XyloState, p: XyloParams, out: dict[str, Tensor], chunk: int
               ) -> tuple[dict[str, Tensor], XyloState, dict[str, int]]:
    """The step function per time step, each record written into ``out`` (nothing kept)."""
    tally = Tally()
    s = XyloState(*(t.detach().to(torch.float64) for t in state))
    with torch.no_grad():
        for t0 in range(0, x.shape[0], chunk):
            xc = x[t0:t0 + chunk].to(torch.float64)
            for k, x_t in enumerate(xc.unbind(0)):
                rec, s = dynamics.step(x_t, s, p, tally=tally)
                for name, value in out.items():
                    value[t0 + k].copy_(getattr(rec, name))
    return out, s, tally.counts()


def _run_native(x: Tensor, state: XyloState, p: XyloParams, out: dict[str, Tensor], chunk: int
                ) -> tuple[dict[str, Tensor], XyloState, dict[str, int]]:
    """The C kernel over chunks of time steps, the state kept in int32 between chunks."""
    lib = _native.library()
    assert lib is not None
    _native.set_threads()
    steps, batch, n_in = x.shape
    n, o = state.v.shape[1], state.v_out.shape[1]

    def i32(t: Tensor) -> Tensor:
        return t.detach().to(torch.int32).contiguous()

    weights = [i32(p.weights_in), i32(p.weights_rec), i32(p.weights_out)]
    regs = [i32(getattr(p, name)) for name in (
        "threshold", "threshold_out", "bias", "bias_out", "dash_mem", "dash_mem_out", "dash_syn",
        "dash_syn_out")]
    aliases = p.aliases.detach().to(torch.int64).contiguous()
    per_net = int(weights[0].dim() == 3)
    st = [i32(t) for t in state]  # v, i, z, v_out, i_out
    tally = torch.zeros(batch, len(TALLIES), dtype=torch.int64)
    ptr = _native.ptr
    for t0 in range(0, steps, chunk):
        xc = x[t0:t0 + chunk].to(torch.float64).contiguous()
        shape = _native.XyloShape(xc.shape[0], batch, n_in, n, o, per_net, p.input_cap,
                                  p.hidden_cap, p.output_cap)
        recs = [ptr(out[name][t0:t0 + chunk]) if name in out else None for name in RECORDS]
        lib.xylo_run(ctypes.byref(shape), ptr(xc), *map(ptr, weights), *map(ptr, regs),
                     ptr(aliases), *map(ptr, st), *recs, ptr(tally))
        if bool((tally < 0).any()):
            raise MemoryError("the native Xylo kernel could not allocate its scratch memory")
    final = XyloState(*(t.to(torch.float64) for t in st))
    return out, final, dict(zip(TALLIES, (int(c) for c in tally.sum(0)), strict=True))
