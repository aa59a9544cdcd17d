r"""Closed forms of a non-spiking readout.

A non-spiking CUBA LI readout's membrane is linear in its input spikes,
:math:`V_c(t) = v_{leak} + \sum_k a_k W_{c,j_k} r g(t - t_k)`; its adjoint is a sum of such
kernels, so the readout's exact functionals (maximum over time, exponentially weighted
integral) are computed in closed form and differentiated by autograd, which yields
:math:`G` for the hidden spikes exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from spikeloop.backends.event import _native
from spikeloop.backends.event.cuba import _F, _advance, _extremum, _Neuron, membrane_slope
from spikeloop.dynamics.neurons import current_gain


@dataclass(frozen=True)
class _Peak:
    """Where a readout's membrane is largest ``[B, N]``: the time, the input-table event it
    follows (``-1``: it is not a state after an event) and, from the native engine, the value
    and the synaptic current just before that event (``None`` from the torch engine)."""

    t: Tensor
    e: Tensor
    v: Tensor | None = None
    i: Tensor | None = None


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

    def maximum(self, peak: _Peak, t_max: float,
                table: tuple[Tensor, Tensor, Tensor, Tensor] | None = None) -> Tensor:
        """Exact ``max_t V`` ``[B, N]`` (differentiable) at the peak found by :func:`_peak` or
        the native engine: :meth:`membrane` at that time, where a maximum at an input event
        moves with that event's time (autograd follows it); with the native engine's value
        the gradient of the same expression comes from :class:`_PeakFunction` (``table``: the
        input table the engine ran on, reused there; ``None``: built again)."""
        t_star, at_event, e_idx = self._at_event(peak)
        lib = _native.engine(self.times, self.weight) if peak.v is not None else None
        if lib is None:
            if at_event is not None:
                t_star = torch.where(at_event, self.times.to(_F).gather(1, e_idx), t_star)
            return self.membrane(t_star)
        return _PeakFunction.apply(self.times, self.weight, self, peak, t_max, lib, table)

    def _at_event(self, peak: _Peak) -> tuple[Tensor, Tensor | None, Tensor]:
        """The peak time, whether it is the time of the input event it follows (then it moves
        with it) and that event's index."""
        t_star = peak.t.detach()
        if not self.times.shape[1]:
            return t_star, None, torch.zeros_like(peak.e)
        e_idx = peak.e.clamp(min=0, max=self.times.shape[1] - 1)
        t_event = self.times.detach().to(_F).gather(1, e_idx)
        at_event = (peak.e >= 0) & torch.isfinite(t_event) & (t_event == t_star)
        return t_star, at_event, e_idx


class _PeakFunction(torch.autograd.Function):
    r"""A readout's maximum from the native engine: the value is the engine's, the gradient
    that of :meth:`_Readout.membrane` at the peak time :math:`t^*` — by the co-state
    recursion (:func:`~spikeloop.backends.event._native.peak_grad`) for the weights and the
    event times before :math:`t^*`, plus :math:`\dot V(t^{*-}) = (v_{leak} - V + r I(t^{*-}))
    /τ_{mem}` for the event that :math:`t^*` moves with (:func:`membrane_slope`)."""

    @staticmethod
    def forward(ctx, times, weight, readout, peak, t_max, lib, table):
        ctx.readout, ctx.peak, ctx.t_max, ctx.lib, ctx.table = readout, peak, t_max, lib, table
        ctx.dtypes = (times.dtype, weight.dtype)
        return peak.v.clone()

    @staticmethod
    def backward(ctx, g_v):
        from spikeloop.backends.event.forward import _input_table  # forward imports this module

        ro, peak = ctx.readout, ctx.peak
        times = ro.times.detach().to(_F)
        t_in, s_in, a_in, order = (ctx.table if ctx.table is not None
                                   else _input_table(times, ro.src, ro.amp, ctx.t_max))
        g_v = g_v.to(_F)
        g_sorted, g_w = _native.peak_grad(ctx.lib, g_v, peak.t, t_in, s_in, a_in,
                                          ro.weight.detach().to(_F), ro.c, ctx.t_max)
        g_t = torch.zeros_like(g_sorted).scatter(1, order, g_sorted)[:, : times.shape[1]]
        _, at_event, e_idx = ro._at_event(peak)
        if at_event is not None:
            slope = membrane_slope(peak.v, peak.i, ro.c)
            g_t = g_t.scatter_add(1, e_idx, torch.where(at_event, g_v * slope,
                                                        torch.zeros_like(slope)))
        dt_t, dt_w = ctx.dtypes
        return g_t.to(dt_t), g_w.to(dt_w), None, None, None, None, None


def _peak(snap: tuple[Tensor, ...], t_max: float, c: _Neuron) -> _Peak:
    """Where the readout's membrane is largest, from the snapshots ``[S, B, N]`` of
    :func:`~spikeloop.backends.event.forward._simulate`: the largest of the membrane at the
    events and at the interior stationary points between them (the first in that order among
    equals). Returns its time ``[B, N]`` and the input-table event it follows (``-1``: it is
    not a state after an event)."""
    st, sv, si, _ = snap  # [S, B, N]; snapshot j ≥ 1 follows input event j − 1
    t_next = torch.cat([st[1:], torch.full_like(st[:1], t_max)])
    length = (t_next - st).clamp(min=0.0)
    s_star, interior = _extremum(sv, si, length, c)
    s_star = torch.where(interior, s_star, torch.zeros_like(s_star))
    v_star = torch.where(interior, _advance(sv, si, s_star, c)[0], sv)
    v_end = _advance(sv[-1], si[-1], length[-1], c)[0]
    cand = torch.cat([sv, v_star, v_end[None]])  # [2S + 1, B, N]
    t_cand = torch.cat([st, st + s_star, torch.full_like(st[:1], t_max)])
    best = cand.argmax(0)  # [B, N]
    t_star = t_cand.gather(0, best[None])[0]
    at_state = (best >= 1) & (best < st.shape[0])
    return _Peak(t_star, torch.where(at_state, best - 1, torch.full_like(best, -1)))
