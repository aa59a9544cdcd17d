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
from collections.abc import Callable, Collection

import torch
from torch import Tensor

from spikeloop.chips.xylo import _native, dynamics
from spikeloop.chips.xylo.dynamics import TALLIES, StepRecord, Tally, XyloParams, XyloState
from spikeloop.errors import ParameterError, ShapeError, StateError

RECORDS: tuple[str, ...] = StepRecord._fields
"""The records a run can keep (the fields of :class:`~spikeloop.chips.xylo.dynamics.StepRecord`:
``z``, ``v``, ``i``, ``z_out``, ``v_out``, ``i_out``)."""
CHUNK_VALUES = 1 << 18
"""Input values per chunk (the chunk's ``T`` is this over ``B · Nin``)."""


def native_available() -> bool:
    """True if the native kernel is built and loaded (``SPIKELOOP_NATIVE=0`` turns it off)."""
    return _native.library() is not None


def _check(x: Tensor, state: XyloState, p: XyloParams) -> None:
    """What the kernel needs (it indexes memory with these): shapes that agree, thresholds
    ≥ 1, decay shifts 0..31, alias targets −1..N−1, and a state a chip can hold (integers in
    the 16-bit range, counts 0..cap). :meth:`XyloConfig.validate
    <spikeloop.chips.xylo.config.XyloConfig.validate>` checks the chip's own, narrower limits."""
    per_net = p.weights_in.dim() == 3
    n_in, n, o = p.weights_in.shape[-2], p.threshold.shape[-1], p.threshold_out.shape[-1]
    syn = p.dash_syn.shape[-1]
    batch = x.shape[1] if x.dim() == 3 else 0
    if x.dim() != 3 or x.shape[2] != n_in or (per_net and p.weights_in.shape[0] != batch):
        raise ShapeError(f"the Xylo engine's input must be [T, B, {n_in}]"
                         + (f" with B = {p.weights_in.shape[0]} networks" if per_net else "")
                         + f", got {tuple(x.shape)}")
    lead = tuple(p.weights_in.shape[:1]) if per_net else ()
    wanted = {"weights_in": (n_in, n * syn), "weights_rec": (n, n * syn), "weights_out": (n, o),
              "threshold": (n,), "threshold_out": (o,), "bias": (n,), "bias_out": (o,),
              "dash_mem": (n,), "dash_mem_out": (o,), "dash_syn": (n, syn), "dash_syn_out": (o,),
              "aliases": (n,)}
    for name, shape in wanted.items():
        if tuple(getattr(p, name).shape) != lead + shape:
            raise ShapeError(f"the Xylo parameters' {name} has shape "
                             f"{tuple(getattr(p, name).shape)}, expected {lead + shape}")
    shapes = {"v": (batch, n), "i": (batch, n, syn), "z": (batch, n), "v_out": (batch, o),
              "i_out": (batch, o)}
    for name, value in state._asdict().items():
        if tuple(value.shape) != shapes[name]:
            raise StateError(f"the Xylo state's {name!r} has shape {tuple(value.shape)}, the run "
                             f"needs {shapes[name]}")
        v = value.detach()
        low, top = (0, p.hidden_cap) if name == "z" else (int(dynamics.LO), int(dynamics.HI))
        if not (bool((v == v.round()).all()) and float(v.min()) >= low
                and float(v.max()) <= top):
            raise StateError(f"the Xylo state's {name!r} must hold integers in {low}..{top}, "
                             f"got values in {float(v.min())}..{float(v.max())}")
    for name, low, top in (("threshold", 1, None), ("threshold_out", 1, None),
                           ("dash_mem", 0, 31), ("dash_mem_out", 0, 31), ("dash_syn", 0, 31),
                           ("dash_syn_out", 0, 31), ("aliases", -1, n - 1)):
        v = getattr(p, name).detach()
        if float(v.min()) < low or (top is not None and float(v.max()) > top):
            raise ParameterError(f"the Xylo parameters' {name} hold values in "
                                 f"{float(v.min()):g}..{float(v.max()):g}, outside "
                                 f"{low}..{'' if top is None else top} (validate the config)")


Sink = Callable[[int, dict[str, Tensor]], None]
"""Takes the records of one chunk of steps: ``sink(t0, {name: int32 [steps, B, …]})`` for the
steps from ``t0``; the tensors are reused for the next chunk (copy what you keep)."""


def run(
    x: Tensor, state: XyloState, p: XyloParams, record: Collection[str] = RECORDS, *,
    native: bool | None = None, sink: Sink | None = None,
) -> tuple[dict[str, Tensor], XyloState, dict[str, int]]:
    """Run the steps of ``x [T, B, Nin]`` (validated non-negative integer counts, any real
    dtype) from ``state`` with parameters ``p`` (no gradients).

    Returns the records named in ``record`` (:data:`RECORDS`) as int32 ``[T, B, …]`` tensors,
    the final state (float64, as :func:`~spikeloop.chips.xylo.dynamics.run` returns it) and the
    counts of what hit a limit (:data:`~spikeloop.chips.xylo.dynamics.TALLIES`). ``native``:
    ``None`` uses the C kernel where it is available, ``False`` the torch step loop, ``True``
    requires the kernel. ``sink``: the records go to it chunk by chunk (:data:`Sink`) instead
    of being returned (the returned dict is then empty): the engine itself then holds one
    chunk's records, whatever ``T``.
    """
    unknown = sorted(set(record) - set(RECORDS))
    if unknown:
        raise ParameterError(f"unknown Xylo records {unknown}; known: {', '.join(RECORDS)}")
    _check(x, state, p)
    two = p.dash_syn.shape[-1] == 2  # the kernel's hidden neurons have two synaptic currents
    use_native = native_available() and two if native is None else native
    if use_native and not native_available():
        raise ParameterError(f"the native Xylo kernel is unavailable: "
                             f"{_native.unavailable_reason()}")
    if use_native and not two:
        raise ParameterError(f"the native Xylo kernel runs hidden neurons with 2 synaptic "
                             f"currents, these have {p.dash_syn.shape[-1]}")
    steps, batch = x.shape[0], x.shape[1]
    n, o = state.v.shape[1], state.v_out.shape[1]
    shapes = {"z": (n,), "v": (n,), "i": tuple(state.i.shape[1:]), "z_out": (o,), "v_out": (o,),
              "i_out": (o,)}
    chunk = max(1, CHUNK_VALUES // max(1, batch * x.shape[2]))
    rows = steps if sink is None else min(chunk, steps)
    out = {name: torch.empty(rows, batch, *shapes[name], dtype=torch.int32)
           for name in RECORDS if name in record}
    go = _run_native if use_native else _run_torch
    records, final, tally = go(x, state, p, out, chunk, sink)
    return ({} if sink is not None else records), final, tally


def _window(out: dict[str, Tensor], t0: int, steps: int, sink: Sink | None
            ) -> dict[str, Tensor]:
    """Where the records of steps ``t0 … t0 + steps`` go: their rows of ``out``, or (with a
    sink) the first rows of the chunk buffers."""
    at = 0 if sink is not None else t0
    return {name: value[at:at + steps] for name, value in out.items()}


def _run_torch(x: Tensor, state: XyloState, p: XyloParams, out: dict[str, Tensor], chunk: int,
               sink: Sink | None) -> tuple[dict[str, Tensor], XyloState, dict[str, int]]:
    """The step function per time step, each record written into ``out`` (nothing kept)."""
    tally = Tally()
    s = XyloState(*(t.detach().to(torch.float64) for t in state))
    with torch.no_grad():
        for t0 in range(0, x.shape[0], chunk):
            xc = x[t0:t0 + chunk].to(torch.float64)
            window = _window(out, t0, xc.shape[0], sink)
            for k, x_t in enumerate(xc.unbind(0)):
                rec, s = dynamics.step(x_t, s, p, tally=tally)
                for name, value in window.items():
                    value[k].copy_(getattr(rec, name))
            if sink is not None:
                sink(t0, window)
    return out, s, tally.counts()


def _run_native(x: Tensor, state: XyloState, p: XyloParams, out: dict[str, Tensor], chunk: int,
                sink: Sink | None) -> tuple[dict[str, Tensor], XyloState, dict[str, int]]:
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
        window = _window(out, t0, xc.shape[0], sink)
        recs = [ptr(window[name]) if name in window else None for name in RECORDS]
        lib.xylo_run(ctypes.byref(shape), ptr(xc), *map(ptr, weights), *map(ptr, regs),
                     ptr(aliases), *map(ptr, st), *recs, ptr(tally))
        if bool((tally < 0).any()):
            raise MemoryError("the native Xylo kernel could not allocate its scratch memory")
        if sink is not None:
            sink(t0, window)
    final = XyloState(*(t.to(torch.float64) for t in st))
    return out, final, dict(zip(TALLIES, (int(c) for c in tally.sum(0)), strict=True))
