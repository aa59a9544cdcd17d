r"""The event backend: exact event-driven simulation of current-based LIF networks and exact
gradients by EventProp (Wunderlich & Pehle 2021).

Model (the continuous-time CUBA LIF of :mod:`spikeloop.dynamics.neurons`, per neuron)

.. math::
    τ_{syn} \dot I = -I, \qquad τ_{mem} \dot V = (v_{leak} - V) + r I,

with jumps :math:`I_n \leftarrow I_n + a_e W_{n,c}` at each input event ``e`` (time
:math:`t_e`, channel ``c``, amplitude :math:`a_e`), and a spike at every time :math:`t_k` at
which :math:`V` crosses :math:`ϑ` from below: then :math:`V \leftarrow v_{reset}` (``reset=
"value"`` and ``"subtract"`` coincide for an exact crossing), recurrent partners receive
:math:`I_m \leftarrow I_m + W^{rec}_{m,n}`, and with ``t_refrac > 0`` the membrane stays at
:math:`v_{reset}` until :math:`t_k + t_{refrac}` while :math:`I` keeps evolving.

Between events the state has the closed form of the dense model's exact step over an arbitrary
interval ``s`` — the same :func:`~spikeloop.dynamics.neurons.decay` and
:func:`~spikeloop.dynamics.neurons.current_gain` (no second copy of the equation):

.. math::
    V(t+s) = v_{leak} + β_s (V - v_{leak}) + r g_s I,\quad I(t+s) = α_s I,\quad
    β_s = e^{-s/τ_{mem}},\ α_s = e^{-s/τ_{syn}},\
    g_s = \tfrac{τ_{syn}}{τ_{syn}-τ_{mem}}(α_s - β_s)

(with the limit :math:`g_s = (s/τ) e^{-s/τ}` for :math:`τ_{syn} = τ_{mem}`). ``V`` has at most
one extremum per interval (closed form), so the first threshold crossing is bracketed on a
monotone piece and found by safeguarded Newton iteration to float64 precision: spike times are
not on a grid, and a neuron may spike any number of times.

Time convention (matches the dense simulator): an input spike at step ``k`` of a dense tensor
``[T, B, C]`` is an event at :math:`t = k·dt`; a spike at time ``t`` appears on the grid at step
:math:`\lceil t/dt \rceil - 1` (step ``k`` ends at ``(k+1)·dt``); the window is
:math:`[0, T·dt)`. The dense simulator converges to this model as ``dt → 0`` (tested).

EventProp backward (reverse time, between events)

.. math::
    τ_{mem} λ_V' = -λ_V - \frac{∂l_V}{∂V}, \qquad τ_{syn} λ_I' = -λ_I + λ_V ,

solved in closed form. The implementation carries the co-state
:math:`p = ∂L/∂(V, I)` (sensitivity of the loss to the state at a fixed time), which relates as
:math:`λ_V = -r\,p_V/τ_{mem}`, :math:`λ_I = -p_I/τ_{syn}`; backward over an interval ``s``:
:math:`p_V \leftarrow β_s p_V`, :math:`p_I \leftarrow α_s p_I + r g_s p_V`. At a spike of neuron
``n`` at :math:`t_k` (:math:`\dot V^\pm` the membrane slopes before/after, :math:`G_k = ∂L/∂t_k`
from the loss and from downstream layers):

.. math::
    p_{V,n}^- = -\frac{1}{\dot V^-_n}\Big[G_k - \dot V_n^+ p_{V,n}^+
      + \sum_{m≠n} W^{rec}_{mn}\big(-\tfrac{r}{τ_{mem}} p_{V,m}^+\big)
      + \sum_m W^{rec}_{mn} \tfrac{1}{τ_{syn}} p_{I,m}^+ \Big]

(the :math:`\dot V^+` term is the reset; with a refractory period :math:`\dot V^+ = 0` and the
reset term is taken at the release time instead: :math:`-\dot V_{rel} p_V(t_k+t_{refrac})`,
:math:`p_V = 0` while clamped). Weight gradients, in the notation of the issue
(:math:`λ_I = -p_I/τ_{syn}`):

.. math::
    \frac{dL}{dW_{ji}} = -τ_{syn} \sum_{\text{spikes } k \text{ of } i} λ_{I,j}(t_k)
                     = \sum_k a_k\, p_{I,j}(t_k),

and the input spike times receive :math:`dL/dt_e = a_e \sum_n W_{n,c}(-\tfrac{r}{τ_{mem}}
p_{V,n} + \tfrac{1}{τ_{syn}} p_{I,n})`, which is the :math:`G` of the layer below. The backward
pass needs only the spike times, the synaptic current at each spike and release, and the
input events: memory grows with the number of spikes, not with the length of the window.

Readouts: a non-spiking CUBA LI readout's membrane is linear in its input spikes,
:math:`V_c(t) = v_{leak} + \sum_k a_k W_{c,j_k} r g(t - t_k)`; its adjoint is a sum of such
kernels, so the readout's exact functionals (maximum over time, exponentially weighted
integral) are computed in closed form and differentiated by autograd, which yields
:math:`G` for the hidden spikes exactly.

Simultaneous spikes of recurrently connected neurons (a measure-zero event) are processed
together without their mutual timing derivatives.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from spikeloop.backends.base import BACKENDS
from spikeloop.checks import check_sequence
from spikeloop.dynamics.neurons import current_gain, decay
from spikeloop.errors import DTypeError, NonFiniteError, ParameterError, ShapeError
from spikeloop.ir import Graph, Node
from spikeloop.nn.populations import CubaLI, CubaLIF
from spikeloop.observables import ExecutionReport, NetworkOutput, Observables

__all__ = ["EventBackend", "EventObservables", "SpikeEvents"]

_F = torch.float64  # internal precision of the event simulation
_INF = math.inf
_NEWTON_ITERATIONS = 100


# ----------------------------------------------------------------------------- public records
@dataclass(frozen=True)
class SpikeEvents:
    """Input spikes as an explicit event list (e.g. a latency code with exact times).

    Attributes:
        times: ``[B, E]`` event times (s), sorted ascending within each row; padding entries
            (``channels == -1``) must come last (their times are ignored).
        channels: ``[B, E]`` integer input channel of each event, ``-1`` for padding.
        duration: window length (s); every event must lie in ``[0, duration)``.
        values: optional ``[B, E]`` amplitudes (default 1): the jump is ``value · W``.
    """

    times: Tensor
    channels: Tensor
    duration: float
    values: Tensor | None = None

    def __post_init__(self) -> None:
        t, c = self.times, self.channels
        if not isinstance(t, Tensor) or not isinstance(c, Tensor):
            raise ShapeError("SpikeEvents: times and channels must be torch tensors")
        if t.dim() != 2 or tuple(c.shape) != tuple(t.shape):
            raise ShapeError(f"SpikeEvents: times and channels must both be [B, E], got "
                             f"{tuple(t.shape)} and {tuple(c.shape)}")
        if not t.is_floating_point():
            raise DTypeError(f"SpikeEvents: times must be floating point, got {t.dtype}")
        if c.is_floating_point() or c.dtype == torch.bool:
            raise DTypeError(f"SpikeEvents: channels must be integers, got {c.dtype}")
        if self.values is not None and tuple(self.values.shape) != tuple(t.shape):
            raise ShapeError(f"SpikeEvents: values must be [B, E] = {tuple(t.shape)}, got "
                             f"{tuple(self.values.shape)}")
        d = self.duration
        if not (isinstance(d, int | float) and math.isfinite(d) and d > 0):
            raise ParameterError(f"SpikeEvents: duration must be a finite number > 0 s, got {d!r}")
        valid = c >= 0
        if bool((c < -1).any()):
            raise ParameterError("SpikeEvents: channels must be ≥ 0 (or -1 for padding), got "
                                 f"{int(c.min())}")
        vt = t.detach()[valid]
        if not bool(torch.isfinite(vt).all()):
            bad = int((~torch.isfinite(vt)).sum())
            raise NonFiniteError(f"SpikeEvents: {bad} event time(s) are NaN or infinite; all "
                                 "event times must be finite")
        if vt.numel() and (float(vt.min()) < 0 or float(vt.max()) >= d):
            raise ParameterError(f"SpikeEvents: event times must lie in [0, duration = {d} s), "
                                 f"got [{float(vt.min()):g}, {float(vt.max()):g}]")
        if self.values is not None and not bool(torch.isfinite(self.values[valid]).all()):
            raise NonFiniteError("SpikeEvents: values hold NaN or infinite entries")
        padded = torch.where(valid, t.detach(), torch.full_like(t, _INF))
        if t.shape[1] > 1:
            bad = padded[:, 1:] < padded[:, :-1]
            if bool(bad.any()):
                b, e = (int(i) for i in bad.nonzero()[0])
                raise ParameterError(
                    f"SpikeEvents: events must be sorted by time within each sample (padding "
                    f"last); sample {b}: event {e + 1} at t = {float(padded[b, e + 1]):g} s comes "
                    f"after t = {float(padded[b, e]):g} s")

    @property
    def batch(self) -> int:
        """Number of samples ``B``."""
        return int(self.times.shape[0])

    @staticmethod
    def from_dense(x: Tensor, dt: float) -> SpikeEvents:
        """Events of a dense ``[T, B, C]`` tensor: a non-zero ``x[k, b, c]`` is an event at
        ``t = k·dt`` on channel ``c`` with amplitude ``x[k, b, c]``."""
        times, src, amp = _dense_events(x, dt)
        channels = torch.where(torch.isfinite(times), src, torch.full_like(src, -1))
        return SpikeEvents(torch.where(torch.isfinite(times), times, torch.zeros_like(times)),
                           channels, x.shape[0] * dt, amp)

    def to_dense(self, dt: float, channels: int) -> Tensor:
        """``[T, B, channels]`` raster, event at ``t`` on step ``round(t/dt)`` (as the encoders),
        ``T = round(duration/dt)``; amplitudes add up."""
        steps = round(self.duration / dt)
        out = torch.zeros(steps, self.batch, channels, dtype=torch.get_default_dtype())
        valid = self.channels >= 0
        b = torch.arange(self.batch)[:, None].expand_as(self.channels)[valid]
        k = torch.round(self.times.detach()[valid].double() / dt).long().clamp(max=steps - 1)
        v = (self.values[valid] if self.values is not None
             else torch.ones(int(valid.sum()))).to(out.dtype)
        out.index_put_((k, b, self.channels[valid]), v, accumulate=True)
        return out


@dataclass
class EventObservables(Observables):
    """:class:`~spikeloop.nn.Observables` plus the event backend's exact quantities.

    Attributes:
        times: ``[B, N, K]`` exact spike times (s) of each neuron, ascending, ``+inf``
            padding; differentiable (EventProp). ``None`` for non-spiking readouts.
        v_max: ``[B, N]`` exact maximum of the membrane over ``[0, duration]``
            (readouts); differentiable.
        duration: the window length ``T·dt`` (s).
        readout: closed-form functionals of a non-spiking readout (see
            :meth:`exp_integral`).

    ``spikes`` (on the grid, step ``⌈t/dt⌉ − 1``) and ``v`` (the exact membrane sampled at the
    ends of the steps, ``(k+1)·dt``) carry no gradient: losses read ``times``/``v_max``.
    """

    times: Tensor | None = None
    v_max: Tensor | None = None
    duration: float = 0.0
    readout: _Readout | None = None

    def exp_integral(self, tau: float) -> Tensor:
        r""":math:`\int_0^{T} e^{-t/τ} V(t)\,dt` per sample and neuron ``[B, N]``, exact and
        differentiable (readouts only)."""
        if self.readout is None:
            raise ParameterError("exp_integral needs a non-spiking readout population")
        return self.readout.exp_integral(tau, self.duration)


# ----------------------------------------------------------------------------- neuron constants
@dataclass(frozen=True)
class _Neuron:
    """Per-neuron float64 constants ``[N]`` of one population."""

    tau_mem: Tensor
    tau_syn: Tensor
    v_leak: Tensor
    r: Tensor
    v_threshold: Tensor
    v_reset: Tensor
    t_refrac: float
    spiking: bool

    def take(self, idx: Tensor) -> _Neuron:
        """Constants of the neurons ``idx`` (any shape)."""
        return _Neuron(*(getattr(self, k)[idx] for k in
                         ("tau_mem", "tau_syn", "v_leak", "r", "v_threshold", "v_reset")),
                       self.t_refrac, self.spiking)


def _neuron(node: Node) -> _Neuron:
    module = node.module
    p = module.parameter_record()
    n = module.size

    def vec(name: str, default: float = 0.0) -> Tensor:
        value = getattr(p, name, default)
        return torch.as_tensor(value).detach().to(_F).expand(n).clone()

    spiking = isinstance(module, CubaLIF)
    nrn = _Neuron(vec("tau_mem"), vec("tau_syn"), vec("v_leak"), vec("r"),
                  vec("v_threshold", _INF), vec("v_reset"),
                  float(getattr(p, "t_refrac", 0.0)), spiking)
    if bool((nrn.tau_mem <= 0).any()) or bool((nrn.tau_syn <= 0).any()):
        raise ParameterError(f"event backend: population {node.name!r} needs tau_mem > 0 and "
                             "tau_syn > 0")
    if spiking:
        if bool((nrn.v_reset >= nrn.v_threshold).any()):
            raise ParameterError(f"event backend: population {node.name!r} needs v_reset < "
                                 "v_threshold (a neuron reset above threshold would fire "
                                 "infinitely often)")
        if not (math.isfinite(nrn.t_refrac) and nrn.t_refrac >= 0):
            raise ParameterError(f"event backend: t_refrac must be finite and ≥ 0 s, got "
                                 f"{nrn.t_refrac}")
    return nrn


def _advance(v: Tensor, i: Tensor, s: Tensor, c: _Neuron) -> tuple[Tensor, Tensor]:
    """Free evolution over ``s ≥ 0``: the dense model's exact step with ``dt = s``."""
    beta = decay(c.tau_mem, s, "exact")
    gain = current_gain(c.tau_syn, c.tau_mem, s, "exact")
    return c.v_leak + beta * (v - c.v_leak) + c.r * gain * i, decay(c.tau_syn, s, "exact") * i


def _advance_clamped(
    v: Tensor, i: Tensor, t0: Tensor, t1: Tensor, rel: Tensor, c: _Neuron
) -> tuple[Tensor, Tensor, Tensor]:
    """Evolve from ``t0`` to ``t1`` with the membrane clamped until the release time ``rel``
    (``v`` is ``v_reset`` while refractory). Returns ``(v, i, i_at_release)``."""
    s_ref = (rel - t0).clamp(min=0.0)
    s_ref = torch.minimum(s_ref, t1 - t0)
    i_mid = decay(c.tau_syn, s_ref, "exact") * i
    v1, i1 = _advance(v, i_mid, (t1 - t0) - s_ref, c)
    return v1, i1, i_mid


def _extremum(v0: Tensor, i0: Tensor, length: Tensor, c: _Neuron) -> tuple[Tensor, Tensor]:
    """The membrane's one stationary point ``s*`` after ``(v0, i0)``: ``V̇ = 0`` ⇔
    ``e^{κs} = 1 + κ y``, ``κ = 1/τ_mem − 1/τ_syn``, ``y = τ_syn (1 − (v0 − v_leak)/(r i0))``,
    so ``s* = y log(1 + κy)/(κy)`` (series near ``κy = 0``, which covers ``τ_mem = τ_syn``).
    Returns ``s*`` and where it exists inside ``(0, length)``."""
    q = c.r * i0
    kappa = 1.0 / c.tau_mem - 1.0 / c.tau_syn
    y = c.tau_syn * (1.0 - (v0 - c.v_leak) / torch.where(q == 0, torch.ones_like(q), q))
    z = kappa * y
    z_safe = torch.where(z.abs() < 1e-8, torch.ones_like(z), z)
    ratio = torch.where(z.abs() < 1e-8, 1.0 - z / 2 + z * z / 3,
                        torch.log1p(z_safe.clamp(min=-1 + 1e-300)) / z_safe)
    s_star = y * ratio
    return s_star, (q != 0) & (y > 0) & (1.0 + z > 0) & (s_star < length)


def _first_crossing(v0: Tensor, i0: Tensor, length: Tensor, c: _Neuron) -> Tensor:
    """First ``s ∈ (0, length]`` with ``V(s) = ϑ`` from ``(v0 < ϑ, i0)``, else ``+inf``.

    ``V(s) − ϑ`` has at most one extremum ``s*`` (``V̇ = 0`` ⇔ ``e^{κs} = 1 + κ y``,
    ``κ = 1/τ_mem − 1/τ_syn``, ``y = τ_syn (1 − (v0 − v_leak)/(r i0))``), so ``(0, s₁]`` and
    ``[s₁, length]`` with ``s₁ = min(s*, length)`` are monotone; the crossing lies in the first
    one whose right end is above threshold and is found by bracketed Newton iteration.
    """
    out = torch.full_like(v0, _INF)
    if v0.numel() == 0:
        return out
    s_star, interior = _extremum(v0, i0, length, c)
    s1 = torch.where(interior, s_star, length)
    f1 = _advance(v0, i0, s1, c)[0] - c.v_threshold
    f_end = _advance(v0, i0, length, c)[0] - c.v_threshold
    first = f1 >= 0
    found = first | (f_end >= 0)
    if not bool(found.any()):
        return out
    idx = found.nonzero().squeeze(1)
    cc = c.take(idx) if c.tau_mem.dim() and c.tau_mem.shape == v0.shape else c
    lo = torch.where(first[idx], torch.zeros_like(s1[idx]), s1[idx])
    hi = torch.where(first[idx], s1[idx], length[idx])
    v, i = v0[idx], i0[idx]
    f_lo = torch.where(first[idx], v - cc.v_threshold, f1[idx])
    f_hi = torch.where(first[idx], f1[idx], f_end[idx])
    x = lo + (hi - lo) * (-f_lo / (f_hi - f_lo).clamp(min=1e-300))  # secant start
    scale = hi.abs().clamp(min=1e-12)
    for _ in range(_NEWTON_ITERATIONS):
        vx, ix = _advance(v, i, x, cc)
        f = vx - cc.v_threshold
        lo = torch.where(f < 0, x, lo)
        hi = torch.where(f >= 0, x, hi)
        slope = (cc.v_leak - vx + cc.r * ix) / cc.tau_mem
        step = f / torch.where(slope > 0, slope, torch.ones_like(slope))
        newton = x - step
        ok = (slope > 0) & (newton >= lo) & (newton <= hi)
        x_new = torch.where(ok, newton, 0.5 * (lo + hi))
        x_new = torch.where(f == 0, x, x_new)
        done = ((f.abs() <= 1e-13 * (cc.v_threshold.abs() + 1))
                | ((x_new - x).abs() <= 1e-13 * scale + 1e-16) | (hi - lo <= 1e-13 * scale))
        x = x_new
        if bool(done.all()):
            break
    out[idx] = x
    return out


# ----------------------------------------------------------------------------- the simulation
@dataclass
class _Run:
    """What the forward pass of one population keeps (all O(#spikes + #inputs))."""

    times: Tensor  # [B, N, K] spike times, +inf padded
    i_spike: Tensor  # [B, N, K] synaptic current just before each spike
    i_release: Tensor  # [B, N, K] synaptic current at the end of each refractory period
    snapshots: tuple[Tensor, ...] | None  # [S, B, N] t, v, i, rel after each iteration


def _input_table(times: Tensor, src: Tensor, amp: Tensor, t_max: float):
    """Append the end of the window as a zero-amplitude event; events ≥ t_max are dropped."""
    b = times.shape[0]
    t = torch.where(times < t_max, times, torch.full_like(times, _INF))
    t = torch.cat([t, torch.full((b, 1), t_max, dtype=_F)], dim=1)
    a = torch.cat([torch.where(times < t_max, amp, torch.zeros_like(amp)),
                   torch.zeros(b, 1, dtype=_F)], dim=1)
    s = torch.cat([src, torch.zeros(b, 1, dtype=torch.long)], dim=1)
    order = torch.sort(t, dim=1, stable=True).indices
    return t.gather(1, order), s.gather(1, order), a.gather(1, order), order


def _simulate(
    times: Tensor, src: Tensor, amp: Tensor, weight: Tensor, w_rec: Tensor | None,
    c: _Neuron, t_max: float, snapshots: bool, max_spikes: int,
    forced: Tensor | None = None,
) -> _Run:
    """Event-driven simulation of one population (float64, no autograd).

    Without recurrence every neuron has its own clock and advances to its own next event
    (its next threshold crossing or the next input); with recurrence all neurons of a sample
    advance together to the sample's earliest event. ``forced`` ``[B, N, K]``: spike times
    observed elsewhere (a chip) replace the threshold crossings.
    """
    t_in, s_in, a_in, _ = _input_table(times, src, amp, t_max)
    batch, n = times.shape[0], weight.shape[0]
    sync = w_rec is not None
    w_t = weight.t().contiguous()  # [C, N]
    t = torch.zeros(batch, n, dtype=_F)
    v = c.v_leak.expand(batch, n).clone()
    i = torch.zeros(batch, n, dtype=_F)
    rel = torch.full((batch, n), -_INF, dtype=_F)
    ptr = torch.zeros(batch, n, dtype=torch.long)
    done = torch.zeros(batch, n, dtype=torch.bool)
    count = torch.zeros(batch, n, dtype=torch.long)
    cap = 4
    out_t = torch.full((batch, n, cap), _INF, dtype=_F)
    out_i = torch.zeros(batch, n, cap, dtype=_F)
    out_rel = torch.zeros(batch, n, cap, dtype=_F)
    snaps: list[tuple[Tensor, ...]] = []
    if snapshots:
        snaps.append((t.clone(), v.clone(), i.clone(), rel.clone()))
    rows = torch.arange(batch)[:, None].expand(batch, n)
    cols = torch.arange(n)[None, :].expand(batch, n)
    while not bool(done.all()):
        nxt = t_in.gather(1, ptr)  # next input (or the end of the window) per neuron
        if c.spiking:
            start = torch.maximum(t, rel).clamp(max=t_max)
            free = (start < nxt) & ~done
            if forced is None:
                i_start = decay(c.tau_syn, start - t, "exact") * i
                cross = torch.full_like(t, _INF)
                if bool(free.any()):
                    m = free.nonzero(as_tuple=True)
                    s = _first_crossing(v[m], i_start[m], (nxt - start)[m], c.take(m[1]))
                    cross[m] = start[m] + s
            else:
                k = count.clamp(max=forced.shape[2] - 1).unsqueeze(2)
                cross = forced.gather(2, k).squeeze(2)
                # the device decides when its neurons spike (refractoriness included)
                cross = torch.where((count < forced.shape[2]) & ~done & (cross >= t), cross,
                                    torch.full_like(cross, _INF))
            spike = cross <= nxt
            if sync:  # the sample's earliest spike(s) go first
                first = cross.min(dim=1, keepdim=True).values
                spike = spike & (cross == first)
                any_spike = spike.any(dim=1, keepdim=True)
                target = torch.where(any_spike, first, nxt)
            else:
                any_spike = spike
                target = torch.where(spike, cross, nxt)
        else:
            spike = torch.zeros_like(done)
            any_spike = spike
            target = nxt
        target = torch.where(done, t, target)
        v_new, i_new, i_rel = _advance_clamped(v, i, t, target, rel, c)
        released = (rel > t) & (rel <= target) & (count > 0)
        if bool(released.any()):
            kk = (count - 1).clamp(min=0)
            out_rel[rows[released], cols[released], kk[released]] = i_rel[released]
        # spikes: record, reset, refractory, recurrent fan-out
        if bool(spike.any()):
            if int(count.max()) >= cap:
                if cap >= max_spikes:
                    raise ParameterError(
                        f"event backend: a neuron fired more than max_spikes = {max_spikes} "
                        "times in one window (runaway activity?); raise max_spikes or check "
                        "the weights")
                grow = min(cap, max_spikes - cap)
                out_t = torch.cat([out_t, torch.full((batch, n, grow), _INF, dtype=_F)], 2)
                out_i = torch.cat([out_i, torch.zeros(batch, n, grow, dtype=_F)], 2)
                out_rel = torch.cat([out_rel, torch.zeros(batch, n, grow, dtype=_F)], 2)
                cap += grow
            b_idx, n_idx = spike.nonzero(as_tuple=True)
            k_idx = count[b_idx, n_idx]
            out_t[b_idx, n_idx, k_idx] = target[b_idx, n_idx]
            out_i[b_idx, n_idx, k_idx] = i_new[b_idx, n_idx]
            count = count + spike.long()
            v_new = torch.where(spike, c.v_reset.expand_as(v_new), v_new)
            if c.t_refrac > 0:
                rel = torch.where(spike, target + c.t_refrac, rel)
            if sync:
                i_new = i_new + spike.to(_F) @ w_rec.t()
        # inputs: neurons that reached their next input absorb it
        take = ~any_spike & ~done
        if bool(take.any()):
            src_at = s_in.gather(1, ptr)
            jump = a_in.gather(1, ptr) * w_t.gather(0, src_at)
            i_new = torch.where(take, i_new + jump, i_new)
            finished = take & (nxt >= t_max)
            ptr = torch.where(take & ~finished, ptr + 1, ptr)
            done = done | finished
        t, v, i = target, v_new, i_new
        if snapshots:
            snaps.append((t.clone(), v.clone(), i.clone(), rel.clone()))
    k = max(int(count.max()), 1) if count.numel() else 1
    snap = tuple(torch.stack(s) for s in zip(*snaps, strict=True)) if snapshots else None
    return _Run(out_t[:, :, :k], out_i[:, :, :k], out_rel[:, :, :k], snap)


def _adjoint(
    grad_times: Tensor, run: _Run, times: Tensor, src: Tensor, amp: Tensor, weight: Tensor,
    w_rec: Tensor | None, c: _Neuron, t_max: float,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """EventProp: integrate the co-state backwards from ``t_max`` with jumps at spikes.

    Returns ``(dL/d input times [B, E], dL/dW [N, C], dL/dW_rec [N, N] or None)``.
    """
    t_in, s_in, a_in, order = _input_table(times, src, amp, t_max)
    batch, n = grad_times.shape[0], weight.shape[0]
    n_in = t_in.shape[1]
    sync = w_rec is not None
    w_t = weight.t().contiguous()
    valid = torch.isfinite(t_in) & (t_in < t_max)
    ip = (valid.sum(1, keepdim=True) - 1).expand(batch, n).clone()  # last real input
    count = torch.isfinite(run.times).sum(2)
    sp = count - 1
    t = torch.full((batch, n), t_max, dtype=_F)
    pv = torch.zeros(batch, n, dtype=_F)
    pi = torch.zeros(batch, n, dtype=_F)
    reset_term = torch.zeros(batch, n, dtype=_F)
    buf_i = torch.zeros(batch, n_in, n, dtype=_F)  # p_I at each input event
    buf_c = torch.zeros(batch, n_in, n, dtype=_F)  # −r p_V/τ_mem + p_I/τ_syn at each input
    g_rec = torch.zeros(n, n, dtype=_F) if sync else None
    w_self = torch.diagonal(w_rec) if sync else torch.zeros(n, dtype=_F)
    neg = torch.full((batch, n), -_INF, dtype=_F)
    while True:
        t_sp = torch.where(sp >= 0, run.times.gather(2, sp.clamp(min=0)[..., None])[..., 0], neg)
        t_ip = torch.where(ip >= 0, t_in.gather(1, ip.clamp(min=0)), neg)
        t_evt = torch.maximum(t_sp, t_ip)
        if sync:
            t_evt = t_evt.amax(dim=1, keepdim=True).expand(batch, n)
        if not bool(torch.isfinite(t_evt).any()):
            break
        active = torch.isfinite(t_evt)
        target = torch.where(active, t_evt, t)
        # backward evolution from t to target; clamped (p_V = 0) before the release time
        rel = torch.where(sp >= 0, t_sp + c.t_refrac, neg) if c.t_refrac > 0 else neg
        s_free = (t - torch.maximum(rel, target)).clamp(min=0.0)
        s_ref = (t - target) - s_free
        beta = decay(c.tau_mem, s_free, "exact")
        gain = current_gain(c.tau_syn, c.tau_mem, s_free, "exact")
        pi = decay(c.tau_syn, s_free, "exact") * pi + c.r * gain * pv
        pv = beta * pv
        crossed = (rel > target) & (rel <= t) & (sp >= 0)
        if bool(crossed.any()):
            i_rel = run.i_release.gather(2, sp.clamp(min=0)[..., None])[..., 0]
            v_dot_rel = (c.v_leak - c.v_reset + c.r * i_rel) / c.tau_mem
            reset_term = torch.where(crossed, reset_term - v_dot_rel * pv, reset_term)
        pv = torch.where(s_ref > 0, torch.zeros_like(pv), pv)
        pi = decay(c.tau_syn, s_ref, "exact") * pi
        t = target
        # events at target: inputs first (the forward pass handled spikes first at ties)
        is_input = active & (t_ip == t_evt)
        if sync:
            is_input = is_input.any(dim=1, keepdim=True).expand(batch, n) & active
        is_spike = active & (t_sp == t_evt) & (t_sp > t_ip)
        if sync:
            is_spike = is_spike & ~is_input
        if bool(is_input.any()):
            b_idx, n_idx = is_input.nonzero(as_tuple=True)
            e_idx = ip[b_idx, n_idx]
            coupling = -c.r * pv / c.tau_mem + pi / c.tau_syn
            buf_i[b_idx, e_idx, n_idx] = pi[b_idx, n_idx]
            buf_c[b_idx, e_idx, n_idx] = coupling[b_idx, n_idx]
            ip = torch.where(is_input, ip - 1, ip)
        if bool(is_spike.any()):
            i_minus = run.i_spike.gather(2, sp.clamp(min=0)[..., None])[..., 0]
            v_dot_minus = (c.v_leak - c.v_threshold + c.r * i_minus) / c.tau_mem
            v_dot_minus = v_dot_minus.clamp(min=1e-12 * float(c.v_threshold.abs().max() + 1)
                                            / float(c.tau_mem.min()))
            g = grad_times.gather(2, sp.clamp(min=0)[..., None])[..., 0]
            bracket = g + reset_term
            if c.t_refrac == 0:
                v_dot_plus = (c.v_leak - c.v_reset + c.r * (i_minus + w_self)) / c.tau_mem
                bracket = bracket - v_dot_plus * pv
            if sync:
                coupling_v = -c.r * pv / c.tau_mem
                coupling_i = pi / c.tau_syn
                bracket = bracket + (coupling_v + coupling_i) @ w_rec - w_self * coupling_v
                g_rec += pi.t() @ is_spike.to(_F)
            pv = torch.where(is_spike, -bracket / v_dot_minus, pv)
            reset_term = torch.where(is_spike, torch.zeros_like(reset_term), reset_term)
            sp = torch.where(is_spike, sp - 1, sp)
    # weight gradient: dL/dW[n, c] = Σ_events a_e p_I,n(t_e); input times: a_e Σ_n W[n,c] (…)
    g_w_t = torch.zeros_like(w_t)
    g_w_t.index_add_(0, s_in.reshape(-1), (a_in[..., None] * buf_i).reshape(-1, n))
    w_at = w_t[s_in]  # [B, E, N]
    g_t_sorted = a_in * (w_at * buf_c).sum(2)
    g_t = torch.zeros_like(g_t_sorted).scatter(1, order, g_t_sorted)[:, : times.shape[1]]
    return g_t, g_w_t.t(), g_rec


def _on(device: torch.device) -> AbstractContextManager:
    """Make torch's factory functions create tensors on ``device``. On the CPU (their default)
    nothing is entered: the ``torch.device`` context intercepts every torch call made inside it,
    which costs the event loop's many small operations about 60 %."""
    return nullcontext() if device.type == "cpu" else torch.device(device)


class _PopulationFunction(torch.autograd.Function):
    """One spiking population: forward = event simulation, backward = EventProp adjoint."""

    @staticmethod
    def forward(ctx, in_times, weight, w_rec, src, amp, c, t_max, snapshots, max_spikes,
                forced):
        w64 = weight.detach().to(_F)
        r64 = w_rec.detach().to(_F) if w_rec is not None else None
        t64 = in_times.detach().to(_F)
        run = _simulate(t64, src, amp, w64, r64, c, t_max, snapshots, max_spikes, forced)
        ctx.save_for_backward(t64, src, amp, w64, r64, run.times, run.i_spike, run.i_release)
        ctx.c, ctx.t_max = c, t_max
        ctx.dtypes = (in_times.dtype, weight.dtype, w_rec.dtype if w_rec is not None else None)
        snap = run.snapshots or tuple(torch.empty(0, dtype=_F) for _ in range(4))
        ctx.mark_non_differentiable(*snap)
        return (run.times, *snap)

    @staticmethod
    def backward(ctx, grad_times, *_):
        with _on(ctx.saved_tensors[0].device):  # the adjoint's buffers: same device
            return _PopulationFunction._backward(ctx, grad_times)

    @staticmethod
    def _backward(ctx, grad_times):
        t64, src, amp, w64, r64, times, i_spike, i_release = ctx.saved_tensors
        if grad_times is None:
            grad_times = torch.zeros_like(times)
        grad = torch.nan_to_num(grad_times.to(_F), nan=0.0, posinf=0.0, neginf=0.0)
        grad = torch.where(torch.isfinite(times), grad, torch.zeros_like(grad))
        run = _Run(times, i_spike, i_release, None)
        g_t, g_w, g_rec = _adjoint(grad, run, t64, src, amp, w64, r64, ctx.c, ctx.t_max)
        dt_in, dt_w, dt_rec = ctx.dtypes
        return (g_t.to(dt_in), g_w.to(dt_w), g_rec.to(dt_rec) if g_rec is not None else None,
                None, None, None, None, None, None, None)


# ----------------------------------------------------------------------------- readouts
@dataclass
class _Readout:
    """A non-spiking CUBA LI readout as a closed-form function of its input events."""

    times: Tensor  # [B, E] (differentiable)
    src: Tensor
    amp: Tensor
    weight: Tensor  # [N, C] (differentiable)
    c: _Neuron

    def _jumps(self) -> tuple[Tensor, Tensor]:
        """Amplitudes ``a_e W[n, c_e]`` ``[B, N, E]`` and event times ``[B, 1, E]``."""
        w = self.weight.to(_F)[:, self.src].permute(1, 0, 2)  # [B, N, E]
        finite = torch.isfinite(self.times)
        t = torch.where(finite, self.times.to(_F), torch.zeros_like(self.times, dtype=_F))
        return w * torch.where(finite, self.amp, torch.zeros_like(self.amp))[:, None, :], t[:, None]

    def membrane(self, t_query: Tensor) -> Tensor:
        r""":math:`V_n(t) = v_{leak} + \sum_{t_e < t} a_e W_{n,c_e}\, r\, g(t - t_e)` at
        ``t_query [B, N]``."""
        jump, t = self._jumps()
        u = t_query[..., None] - t
        inside = u > 0
        u_safe = torch.where(inside, u, torch.zeros_like(u))
        cc = self.c
        gain = current_gain(cc.tau_syn[:, None], cc.tau_mem[:, None], u_safe, "exact")
        return cc.v_leak + (torch.where(inside, jump, torch.zeros_like(jump))
                            * cc.r[:, None] * gain).sum(-1)

    def exp_integral(self, tau: float, duration: float) -> Tensor:
        r"""Closed form of :math:`\int_0^T e^{-t/τ_w} V(t) dt` ``[B, N]``:
        :math:`v_{leak} τ_w (1 - e^{-T/τ_w}) + \sum_e a_e W r e^{-t_e/τ_w}
        \frac{τ_s}{τ_s - τ_m}[F(b) - F(a)]` with :math:`F(x) = (1 - e^{-xD})/x`,
        :math:`D = T - t_e`, :math:`a = 1/τ_w + 1/τ_m`, :math:`b = 1/τ_w + 1/τ_s`."""
        jump, t = self._jumps()
        cc = self.c
        d = (duration - t).clamp(min=0.0)
        a = 1.0 / tau + 1.0 / cc.tau_mem[:, None]
        b = 1.0 / tau + 1.0 / cc.tau_syn[:, None]

        def f(x: Tensor) -> Tensor:
            return -torch.expm1(-x * d) / x

        close = (b - a).abs() < 1e-7 * a
        mid = 0.5 * (a + b)
        diff_quot = torch.where(close, (d * mid * torch.exp(-mid * d) + torch.expm1(-mid * d))
                                / mid**2, (f(b) - f(a)) / torch.where(close, 1.0, b - a))
        kernel = -diff_quot / cc.tau_mem[:, None]  # τ_s/(τ_s−τ_m)(F(b) − F(a))
        total = (jump * cc.r[:, None] * torch.exp(-t / tau) * kernel).sum(-1)
        return cc.v_leak * tau * -math.expm1(-duration / tau) + total

    def maximum(self, snap: tuple[Tensor, ...], t_max: float) -> Tensor:
        """Exact ``max_t V`` ``[B, N]`` (differentiable): the largest of the membrane at the
        events and at the interior stationary points between them."""
        st, sv, si, _ = snap  # [S, B, N]; snapshot j ≥ 1 follows input event j − 1
        t_next = torch.cat([st[1:], torch.full_like(st[:1], t_max)])
        length = (t_next - st).clamp(min=0.0)
        cc = self.c
        s_star, interior = _extremum(sv, si, length, cc)
        s_star = torch.where(interior, s_star, torch.zeros_like(s_star))
        v_star = torch.where(interior, _advance(sv, si, s_star, cc)[0], sv)
        v_end = _advance(sv[-1], si[-1], length[-1], cc)[0]
        cand = torch.cat([sv, v_star, v_end[None]])  # [2S + 1, B, N]
        t_cand = torch.cat([st, st + s_star, torch.full_like(st[:1], t_max)])
        best = cand.argmax(0)  # [B, N]
        t_star = t_cand.gather(0, best[None])[0].detach()
        # a maximum at an input event moves with that event's time (autograd follows it)
        if self.times.shape[1]:
            e_idx = (best - 1).clamp(min=0, max=self.times.shape[1] - 1)
            t_event = self.times.to(_F).gather(1, e_idx)
            at_event = ((best >= 1) & (best < st.shape[0]) & torch.isfinite(t_event.detach())
                        & (t_event.detach() == t_star))
            t_star = torch.where(at_event, t_event, t_star)
        return self.membrane(t_star)


# ----------------------------------------------------------------------------- helpers
def _dense_events(x: Tensor, dt: float) -> tuple[Tensor, Tensor, Tensor]:
    """``[T, B, C]`` → sorted ``(times [B, E], channels [B, E], amplitudes [B, E])``."""
    batch = x.shape[1]
    nz = x.detach().permute(1, 0, 2).reshape(batch, -1) != 0  # [B, T·C], time-major order
    per = nz.sum(1)
    e = max(int(per.max()) if batch else 0, 1)
    order = torch.sort((~nz).to(torch.int8), dim=1, stable=True).indices[:, :e]
    flat = x.detach().permute(1, 0, 2).reshape(batch, -1)
    chan = x.shape[2]
    keep = torch.arange(e)[None, :] < per[:, None]
    times = torch.where(keep, (order // chan).to(_F) * dt, torch.full((batch, e), _INF,
                                                                      dtype=_F))
    src = torch.where(keep, order % chan, torch.zeros_like(order))
    amp = torch.where(keep, flat.gather(1, order).to(_F), torch.zeros(batch, e, dtype=_F))
    return times, src, amp


def _next_input(times: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Spike times ``[B, N, K]`` → sorted events ``(times, source neuron, amplitude 1)``."""
    batch, n, k = times.shape
    flat = times.reshape(batch, n * k)
    order = torch.sort(flat.detach(), dim=1, stable=True).indices
    e = max(int(torch.isfinite(flat).sum(1).max()) if batch else 0, 1)
    order = order[:, :e]
    t = flat.gather(1, order)
    amp = torch.isfinite(t).to(_F)
    return t, order // k, amp


def _raster(times: Tensor, dt: float, steps: int, dtype: torch.dtype) -> Tensor:
    """Spike times ``[B, N, K]`` → counts on the grid ``[T, B, N]`` (step ``⌈t/dt⌉ − 1``)."""
    batch, n, _ = times.shape
    out = torch.zeros(steps, batch, n, dtype=dtype)
    t = times.detach()
    ok = torch.isfinite(t)
    b, m, _ = ok.nonzero(as_tuple=True)
    k = (torch.ceil(t[ok] / dt * (1 - 1e-12)) - 1).long().clamp(0, steps - 1)
    out.index_put_((k, b, m), torch.ones(len(k), dtype=dtype), accumulate=True)
    return out


def _grid_membrane(snap: tuple[Tensor, ...], dt: float, steps: int, c: _Neuron,
                   dtype: torch.dtype) -> Tensor:
    """Exact membrane at the ends of the steps ``(k+1)·dt`` from the snapshots ``[T, B, N]``."""
    st, sv, si, sr = (s.permute(1, 2, 0).contiguous() for s in snap)  # [B, N, S]
    batch, n, _ = st.shape
    grid = (torch.arange(1, steps + 1, dtype=_F) * dt).expand(batch, n, steps).contiguous()
    idx = (torch.searchsorted(st, grid, right=True) - 1).clamp(min=0)
    t0, v0, i0, r0 = (s.gather(2, idx) for s in (st, sv, si, sr))
    cc = _Neuron(*(getattr(c, k)[None, :, None] for k in
                   ("tau_mem", "tau_syn", "v_leak", "r", "v_threshold", "v_reset")),
                 c.t_refrac, c.spiking)
    v, _, _ = _advance_clamped(v0, i0, t0, grid, r0, cc)
    return v.permute(2, 0, 1).to(dtype)


@dataclass(frozen=True)
class _Layer:
    proj: Node
    pop: Node
    rec: Node | None


def _layers(graph: Graph) -> list[_Layer]:
    """The chain ``Input → (Linear → CubaLIF [+ recurrent])* → Linear → CubaLI | CubaLIF``."""
    supported = "CubaLIF (spiking, optionally recurrent) and CubaLI (readout)"
    nodes = list(graph.nodes)[1:]
    layers, proj = [], None
    k = 0
    while k < len(nodes):
        node = nodes[k]
        if node.kind == "projection" and not node.recurrent:
            if node.op != "Linear":
                raise ParameterError(f"event backend: layer {node.name!r} is a {node.op}; the "
                                     "event backend supports Linear projections only")
            if node.module.bias is not None:
                raise ParameterError(f"event backend: Linear {node.name!r} has a bias (a "
                                     "constant current), which the event backend does not model")
            if proj is not None:
                raise ParameterError(f"event backend: two projections in a row at {node.name!r}")
            proj = node
        elif node.kind == "population":
            module = node.module
            if type(module) not in (CubaLIF, CubaLI):
                raise ParameterError(
                    f"event backend: population {node.name!r} is a {node.op}; supported neuron "
                    f"models: {supported}")
            if proj is None:
                raise ParameterError(f"event backend: population {node.name!r} needs a Linear "
                                     "projection in front of it")
            if not module.spiking and node is not graph.output:
                raise ParameterError(f"event backend: the non-spiking {node.op} "
                                     f"{node.name!r} must be the last layer (readout)")
            rec = None
            if k + 1 < len(nodes) and nodes[k + 1].recurrent:
                rec = nodes[k + 1]
                if rec.module.bias is not None:
                    raise ParameterError(f"event backend: recurrent {rec.name!r} has a bias")
                k += 1
            for name, p in module.named_parameters(recurse=False):
                if p.requires_grad and torch.is_grad_enabled():
                    raise ParameterError(
                        f"event backend: {node.name}.{name} is learned, but EventProp here "
                        "gives gradients for weights only; learn weights (model.learn: [])")
            layers.append(_Layer(proj, node, rec))
            proj = None
        else:
            raise ParameterError(f"event backend: layer {node.name!r} ({node.op}) is not "
                                 f"supported; networks are Input → Linear → {supported}")
        k += 1
    if not layers:
        raise ParameterError("event backend: the network has no population")
    return layers


# ----------------------------------------------------------------------------- the backend
@BACKENDS.register("event")
@dataclass(frozen=True)
class EventBackend:
    """Exact event-driven simulation with EventProp gradients (see the module docstring).

    ``net(x, backend="event")`` with ``x`` a dense ``[T, B, C]`` tensor (event at ``k·dt``) or
    :class:`SpikeEvents`. Every population's observables are :class:`EventObservables`:
    differentiable exact ``times`` (spiking) and ``v_max`` (readouts), plus grid ``spikes``/``v``.

    Args:
        grid: also return ``spikes`` and ``v`` on the ``dt`` grid (``False``: only the exact
            quantities; memory then does not grow with ``T``).
        membrane: include the grid membrane of spiking populations (needs ``grid``).
        max_spikes: limit on spikes per neuron and window (more raises ParameterError).
        observe: a backend spec (e.g. ``{"name": "chip", "seed": 0}``) whose spike times
            replace the model's (chip in the loop): the forward values (spike times,
            readout maximum) are the device's, EventProp's adjoint is evaluated at them.
    """

    grid: bool = True
    membrane: bool = True
    max_spikes: int = 10_000
    observe: Any = None
    name: str = "event"
    differentiable: bool = True

    def __post_init__(self) -> None:
        if not (isinstance(self.max_spikes, int) and self.max_spikes >= 1):
            raise ParameterError(f"max_spikes must be a whole number ≥ 1, got {self.max_spikes!r}")

    def run(
        self, graph: Graph, x: Tensor | SpikeEvents, state: Mapping[str, Any] | None = None
    ) -> NetworkOutput:
        """Simulate ``graph`` exactly on ``x`` (dense ``[T, B, C]`` or :class:`SpikeEvents`)
        on the input's device."""
        with _on(x.times.device if isinstance(x, SpikeEvents) else x.device):
            return self._run(graph, x, state)

    def _run(
        self, graph: Graph, x: Tensor | SpikeEvents, state: Mapping[str, Any] | None
    ) -> NetworkOutput:
        start = time.perf_counter()
        if state:
            raise ParameterError("event backend: runs start from rest; continuing from a "
                                 "state (streaming) is not supported")
        layers = _layers(graph)
        dts = {float(layer.pop.module.dt) for layer in layers}
        if len(dts) != 1:
            raise ParameterError(f"event backend: all populations need the same dt (the grid "
                                 f"of the observables), got {sorted(dts)}")
        dt = dts.pop()
        n_in = graph.input.module.size
        if isinstance(x, SpikeEvents):
            if x.channels.numel() and int(x.channels.max()) >= n_in:
                raise ShapeError(f"SpikeEvents: channel {int(x.channels.max())} does not exist; "
                                 f"the input has {n_in} channels (0..{n_in - 1})")
            valid = x.channels >= 0
            times = torch.where(valid, x.times.to(_F), torch.full_like(x.times, _INF, dtype=_F))
            src = torch.where(valid, x.channels, torch.zeros_like(x.channels)).long()
            amp = (x.values.to(_F) if x.values is not None
                   else torch.ones_like(times)) * valid
            t_max = float(x.duration)
            steps = max(round(t_max / dt), 1)
            dtype = layers[0].proj.module.weight.dtype
            dense = x.to_dense(dt, n_in).to(dtype) if self.grid else None
        else:
            check_sequence(x, graph.input.module.shape, "event backend input")
            if len(graph.input.module.shape) != 1:
                raise ShapeError("event backend: the input must be 1-d channels [T, B, C]")
            times, src, amp = _dense_events(x, dt)
            steps, t_max, dense, dtype = x.shape[0], x.shape[0] * dt, x, x.dtype
        observed = self._observe(graph, x, dense) if self.observe is not None else None
        populations: dict[str, Observables] = {
            graph.input.name: Observables(spikes=dense)}
        total_spikes = 0
        for layer in layers:
            c = _neuron(layer.pop)
            weight = layer.proj.module.weight
            w_rec = layer.rec.module.weight if layer.rec is not None else None
            record = self.grid and (self.membrane or not c.spiking)
            name = layer.pop.name
            if c.spiking:
                forced = None
                if observed is not None:
                    forced = _times_from_raster(observed[name].spikes, dt)
                out = _PopulationFunction.apply(times, weight, w_rec, src, amp.detach(), c,
                                                t_max, record, self.max_spikes, forced)
                spike_times = out[0]
                total_spikes += int(torch.isfinite(spike_times).sum())
                obs = EventObservables(
                    spikes=_raster(spike_times, dt, steps, dtype) if self.grid else None,
                    v=_grid_membrane(out[1:], dt, steps, c, dtype) if record else None,
                    times=spike_times, duration=t_max)
                times, src, amp = _next_input(spike_times)
            else:
                with torch.no_grad():
                    run = _simulate(times.detach().to(_F), src, amp.detach(),
                                    weight.detach().to(_F), None, c, t_max, True, 1)
                readout = _Readout(times, src, amp.detach(), weight, c)
                v_max = readout.maximum(run.snapshots, t_max)
                v_grid = _grid_membrane(run.snapshots, dt, steps, c, dtype) if self.grid else None
                if observed is not None and observed[name].v is not None:
                    seen = observed[name].v.max(0).values.to(v_max.dtype)
                    v_max = v_max + (seen - v_max).detach()
                    v_grid = observed[name].v if self.grid else None
                obs = EventObservables(v=v_grid, v_max=v_max, duration=t_max, readout=readout)
            populations[name] = obs
        report = ExecutionReport("event", wall={"run": time.perf_counter() - start},
                                 resources={"spikes": total_spikes, "window_s": t_max})
        return NetworkOutput(populations, graph.output.name, {}, report)

    def _observe(self, graph: Graph, x: Any, dense: Tensor | None) -> NetworkOutput:
        """Run the observing backend (a chip) on the same input, without gradients."""
        from spikeloop.backends.base import get_backend

        if dense is None:
            raise ParameterError("event backend: observe needs grid=True (the device's input "
                                 "is the dense raster)")
        device = self.observe
        if not hasattr(device, "run"):
            device = get_backend(device)
            object.__setattr__(self, "observe", device)  # keep one instance (noise, caches)
        with torch.no_grad():
            return device.run(graph, dense.detach())


def _times_from_raster(spikes: Tensor, dt: float) -> Tensor:
    """Observed grid spikes ``[T, B, N]`` → spike times ``[B, N, K]`` at ``(k+1)·dt``."""
    z = spikes.detach() > 0
    per = z.sum(0)
    k = max(int(per.max()) if per.numel() else 0, 1)
    order = torch.sort((~z).to(torch.int8), dim=0, stable=True).indices[:k]  # [K, B, N]
    keep = torch.arange(k)[:, None, None] < per[None]
    t = torch.where(keep, (order + 1).to(_F) * dt, torch.full(order.shape, _INF, dtype=_F))
    return t.permute(1, 2, 0).contiguous()
