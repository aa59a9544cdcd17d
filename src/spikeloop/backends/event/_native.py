"""The event backend's native engine (``event_native.c`` in this folder) through :mod:`ctypes`.

Built by :func:`spikeloop.kernels.native.load` (same compiler, flags, per-user cache and shared
header) as ``spikeloop_event_<hash>.so``. :func:`engine` is the one place that decides whether a
run takes it: the library is loaded (not ``SPIKELOOP_NATIVE=0``, a C compiler exists), every
tensor is on the CPU, no spike times are forced (a chip in the loop keeps the torch engine) and
the neurons are not adaptive (the AHP current is the torch engine's only).
It computes the torch engine's algorithm (forward.py ``_simulate``, adjoint.py ``_adjoint``) in
float64, one sample per OpenMP thread; tests/test_event_native.py holds the two together.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch
from torch import Tensor

from spikeloop.backends.event.cuba import _F, _Neuron
from spikeloop.kernels import native

_SOURCE = Path(__file__).with_name("event_native.c")
_I64 = torch.int64


class _Dims(ctypes.Structure):
    """Mirror of the C ``EvDims`` struct."""

    _fields_ = [("B", ctypes.c_int64), ("N", ctypes.c_int64), ("C", ctypes.c_int64),
                ("E", ctypes.c_int64), ("steps", ctypes.c_int64),
                ("max_spikes", ctypes.c_int64), ("sync", ctypes.c_int64),
                ("spiking", ctypes.c_int64), ("t_max", ctypes.c_double),
                ("t_refrac", ctypes.c_double), ("dt", ctypes.c_double)]


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, f64 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_double
    lib.sl_event_forward.argtypes = [ctypes.POINTER(_Dims)] + [p] * 18
    lib.sl_event_forward.restype = p
    lib.sl_event_collect.argtypes = [p, i64, i64, p, p, p, p, p]
    lib.sl_event_collect.restype = None
    lib.sl_event_free.argtypes = [p]
    lib.sl_event_free.restype = None
    lib.sl_event_adjoint.argtypes = ([ctypes.POINTER(_Dims)] + [p] * 6 + [f64] + [p] * 11
                                     + [i64] + [p] * 4 + [i64])
    lib.sl_event_adjoint.restype = None
    lib.sl_event_peak_grad.argtypes = [ctypes.POINTER(_Dims)] + [p] * 16 + [i64]
    lib.sl_event_peak_grad.restype = None


_LIBRARY = native.LazyLibrary("event", [_SOURCE], _declare, "using the torch event engine")


def engine(*tensors: Tensor | None, forced: Tensor | None = None,
           neuron: _Neuron | None = None) -> ctypes.CDLL | None:
    """The native engine if it covers this run, else ``None`` (the caller runs torch): the
    library is loaded, every tensor is a CPU tensor, no spike times are forced and the neurons
    (``neuron``, where given) are not adaptive (the AHP current is the torch engine's only)."""
    if (forced is not None or (neuron is not None and neuron.adaptive)
            or any(t is not None and t.device.type != "cpu" for t in tensors)):
        return None
    lib = _LIBRARY.get()
    if lib is not None:
        native.set_threads(lib)
    return lib


def unavailable_reason() -> str | None:
    """Why the library is not loaded (``None`` if it is, or was not tried)."""
    return _LIBRARY.unavailable_reason()


def _consts(c: _Neuron) -> list[Tensor]:
    return [x.to(_F).contiguous() for x in (c.tau_mem, c.tau_syn, c.v_leak, c.r, c.v_threshold,
                                            c.v_reset)]


def _dims(batch: int, n: int, chans: int, e: int, steps: int, max_spikes: int, sync: bool,
          c: _Neuron, t_max: float, dt: float) -> _Dims:
    return _Dims(batch, n, chans, e, steps, max_spikes, int(sync), int(c.spiking), t_max,
                 c.t_refrac, dt)


def simulate(
    lib: ctypes.CDLL, t_in: Tensor, s_in: Tensor, a_in: Tensor, weight: Tensor,
    w_rec: Tensor | None, c: _Neuron, t_max: float, max_spikes: int,
    grid: tuple[float, int] | None, peak: bool,
) -> tuple | None:
    """Run the population on the input table ``(t_in, s_in, a_in)`` ``[B, E]``
    (forward.py ``_input_table``). Returns ``(times, i_spike, i_release)`` ``[B, N, K]``, the
    membrane ``[steps, B, N]`` at ``(k+1)·dt`` if ``grid = (dt, steps)``, and with ``peak``
    (a readout) each neuron's maximum: its time, the table event it follows (``-1``: none), its
    value and the synaptic current just before that event; then the spike count of each
    neuron ``[B, N]`` and each sample's spikes in time order ``[B, E]`` as indices into its
    ``[N·K]`` spike times (forward.py ``_next_input``); ``None`` if a neuron fired more than
    ``max_spikes`` times (the torch engine then re-runs and raises its own error)."""
    batch, e = t_in.shape
    n, chans = weight.shape
    sync = w_rec is not None and c.spiking
    dt, steps = grid if grid is not None else (1.0, 0)
    dims = _dims(batch, n, chans, e, steps, max_spikes, sync, c, t_max, dt)
    t_in, a_in = t_in.to(_F).contiguous(), a_in.to(_F).contiguous()
    s_in = s_in.to(_I64).contiguous()
    w_t = weight.to(_F).t().contiguous()
    wr_t = w_rec.to(_F).t().contiguous() if sync else None
    v_grid = torch.empty(steps, batch, n, dtype=_F) if grid is not None else None
    peak_t, peak_v, peak_i = (torch.empty(batch, n, dtype=_F) if peak else None
                              for _ in range(3))
    peak_e = torch.empty(batch, n, dtype=_I64) if peak else None
    consts = _consts(c)
    most, total = ctypes.c_int64(0), ctypes.c_int64(0)
    ptr = native.ptr
    handle = lib.sl_event_forward(ctypes.byref(dims), *map(ptr, consts), ptr(t_in), ptr(s_in),
                                  ptr(a_in), ptr(w_t), ptr(wr_t), ptr(v_grid), ptr(peak_t),
                                  ptr(peak_e), ptr(peak_v), ptr(peak_i), ctypes.addressof(most),
                                  ctypes.addressof(total))
    if most.value == -1:
        return None
    if most.value < 0 or not handle:
        raise MemoryError("event backend: the native engine ran out of memory")
    k, e = max(most.value, 1), max(total.value, 1)
    times = torch.empty(batch, n, k, dtype=_F)
    i_spike, i_release = torch.empty_like(times), torch.empty_like(times)
    count = torch.empty(batch, n, dtype=_I64)
    order = torch.empty(batch, e, dtype=_I64)
    lib.sl_event_collect(handle, k, e, ptr(times), ptr(i_spike), ptr(i_release), ptr(count),
                         ptr(order))
    where = (peak_t, peak_e, peak_v, peak_i) if peak else None
    return times, i_spike, i_release, v_grid, where, count, order


def adjoint(
    lib: ctypes.CDLL, grad_times: Tensor, times: Tensor, i_spike: Tensor, i_release: Tensor,
    t_in: Tensor, s_in: Tensor, a_in: Tensor, weight: Tensor, w_rec: Tensor | None,
    c: _Neuron, t_max: float, vdm_min: float, count: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """EventProp on the input table: ``(dL/dt`` per table event ``[B, E]``, ``dL/dW [N, C]``,
    ``dL/dW_rec [N, N]`` or ``None)`` — adjoint.py ``_adjoint`` without its ``[B, E, N]``
    buffers (the weight gradients are accumulated per thread; ``grad_times`` is read at the
    spikes only)."""
    batch, e = t_in.shape
    n, chans = weight.shape
    sync = w_rec is not None
    k = times.shape[2]
    dims = _dims(batch, n, chans, e, 0, 0, sync, c, t_max, 1.0)
    t_in, a_in = t_in.to(_F).contiguous(), a_in.to(_F).contiguous()
    s_in = s_in.to(_I64).contiguous()
    n_valid = (torch.isfinite(t_in) & (t_in < t_max)).sum(1).to(_I64).contiguous()
    if count is None:  # spikes per neuron (the engine's forward pass gives them)
        count = torch.isfinite(times).sum(2)
    count = count.to(_I64).contiguous()
    w_t = weight.to(_F).t().contiguous()
    wr_t = w_rec.to(_F).t().contiguous() if sync else None
    threads = max(1, min(torch.get_num_threads(), batch))
    scratch = torch.empty(threads * (chans * n + (n * n if sync else 0)), dtype=_F)
    g_t = torch.empty(batch, e, dtype=_F)
    g_w_t = torch.empty(chans, n, dtype=_F)
    g_rec_t = torch.empty(n, n, dtype=_F) if sync else None
    ptr = native.ptr
    parts = [x.to(_F).contiguous() for x in (times, i_spike, i_release, grad_times)]
    consts = _consts(c)  # every tensor handed to C is held by a name for the call
    lib.sl_event_adjoint(ctypes.byref(dims), *map(ptr, consts), vdm_min, ptr(t_in),
                         ptr(s_in), ptr(a_in), ptr(n_valid), ptr(w_t), ptr(wr_t),
                         *map(ptr, parts), ptr(count), k, ptr(g_t), ptr(g_w_t), ptr(g_rec_t),
                         ptr(scratch), threads)
    return g_t, g_w_t.t(), g_rec_t.t() if sync else None



def peak_grad(
    lib: ctypes.CDLL, g_v: Tensor, t_star: Tensor, t_in: Tensor, s_in: Tensor, a_in: Tensor,
    weight: Tensor, c: _Neuron, t_max: float,
) -> tuple[Tensor, Tensor]:
    """Gradient of a readout's maximum ``V_n(t*_n)`` (``t*`` held fixed) with respect to the
    table's event times ``[B, E]`` and the weight ``[N, C]``, given ``g_v = dL/dV`` ``[B, N]``
    (the co-state recursion of ``sl_event_peak_grad``)."""
    batch, e = t_in.shape
    n, chans = weight.shape
    dims = _dims(batch, n, chans, e, 0, 0, False, c, t_max, 1.0)
    t_in, a_in = t_in.to(_F).contiguous(), a_in.to(_F).contiguous()
    s_in = s_in.to(_I64).contiguous()
    n_valid = (torch.isfinite(t_in) & (t_in < t_max)).sum(1).to(_I64).contiguous()
    w_t = weight.to(_F).t().contiguous()
    threads = max(1, min(torch.get_num_threads(), batch))
    scratch = torch.empty(threads * chans * n, dtype=_F)
    g_t = torch.empty(batch, e, dtype=_F)
    g_w_t = torch.empty(chans, n, dtype=_F)
    ptr = native.ptr
    consts = _consts(c)  # every tensor handed to C is held by a name for the call
    t_star, g_v = t_star.to(_F).contiguous(), g_v.to(_F).contiguous()
    lib.sl_event_peak_grad(ctypes.byref(dims), *map(ptr, consts), ptr(t_in), ptr(s_in),
                           ptr(a_in), ptr(n_valid), ptr(w_t), ptr(t_star), ptr(g_v), ptr(g_t),
                           ptr(g_w_t), ptr(scratch), threads)
    return g_t, g_w_t.t()
