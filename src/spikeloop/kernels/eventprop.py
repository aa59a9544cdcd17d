r"""EventProp's backward pass on the time grid, for a fused CUBA-LIF loop.

Time-driven EventProp, as mlGeNN runs it (Nowotny et al. 2025, EventProp on SHD in mlGeNN: the
network is simulated in steps of ``dt``, spikes fall on the grid, and the backward pass carries
EventProp's adjoint backwards step by step with its jumps at the recorded spikes). A fused loop
(:func:`~spikeloop.kernels.neuron_loop`) whose :class:`~spikeloop.kernels.LoopConfig` carries a
:class:`GridEventProp` runs its forward pass unchanged and this backward pass instead of the
surrogate's; the event backend's ``engine="grid"`` is built on it
(:mod:`spikeloop.backends.event.grid`).

Notation (per neuron; :mod:`spikeloop.dynamics.neurons`): step ``k`` integrates the current
:math:`J_k = I_{k-1} + x_k + W^{rec} z_{k-1}` into
:math:`u_k = β v_{k-1} + (1-β) v_{leak} + r g J_k` (the recorded membrane ``v``), spikes
:math:`z_k = [u_k ≥ ϑ]`, resets :math:`v_k = v_{reset}` (``reset="value"``) or
:math:`u_k - (ϑ - v_{reset})` (``"subtract"``), and keeps :math:`I_k = α J_k` (the recorded
current ``i``). The co-state :math:`p = ∂L/∂(v_k, I_k)` goes backwards through the linear
step,

.. math::
    ∂L/∂J_k = r g\,δ_k + α\,(p_{I,k} + ∂l/∂I_k), \qquad
    p_{V,k-1} = β\,δ_k, \qquad p_{I,k-1} = ∂L/∂J_k,

with :math:`δ_k = ∂L/∂u_k = p_{V,k} + ∂l/∂u_k` where the neuron did not spike. At a spike,
EventProp's jump (Wunderlich & Pehle 2021; the exact engine's form in
:mod:`spikeloop.backends.event.adjoint`): the spike happened when ``V`` crossed ``ϑ`` with slope
:math:`\dot V^- = (v_{leak} - ϑ + r I)/τ_{mem}`, so a change of the membrane moves it by
:math:`-1/\dot V^-`; the slope taken is at least the membrane's mean slope over the step of the
crossing (a grazing crossing cannot claim a sensitivity finer than the grid resolves), and at
least the exact engine's floor. Then

.. math::
    δ_k = \Big[p_{V,k}\Big]_{subtract} - \frac{1}{\dot V^-}\Big(\frac{∂L}{∂t_k}
          - p_{V,k}\,\dot V^+ + \Big[p_{V,k}\,\dot V^-\Big]_{subtract}\Big) + ∂l/∂u_k,
    \qquad \dot V^+ = (v_{leak} - v_{reset} + r I)/τ_{mem},

where :math:`-p_V \dot V^+` is the reset's own term (``subtract`` moves the state by
:math:`(\dot V^- - \dot V^+)δ` instead) and :math:`∂L/∂t_k` what moving the spike later is
worth to the rest of the network: through later layers, whose gradient :math:`G_k = ∂L/∂z_k`
arrives at the spikes, the loss's change per unit time of moving the spike one step later,
:math:`(G_{k+1} - G_k)/dt`; through the recurrent projection, whose spikes arrive at the start of
step ``k + 1``, EventProp's arrival term

.. math::
    R_k = \sum_m W^{rec}_{m n}\Big(\frac{p_{I,m}}{τ_{syn}} - \frac{r\,p_{V,m}}{τ_{mem}}\Big),
    \qquad p_{I,m} = ∂L/∂J_{m,k+1},\ p_{V,m} = p_{V,m,k}

(the exact engine's :math:`dL/dt` of an arrival). It is formed only for the neurons that spiked
(EventProp couples the neurons at spikes only), where the surrogate's backward pass forms
:math:`(W^{rec})^T ∂L/∂J` everywhere. The slopes are read at the crossing: the membrane's
linear interpolation between the state before the step and :math:`u_k` places it at the
fraction ``f`` of the step, where the current is the same interpolation between
:math:`J_k = I_k/α` and :math:`I_k`. A neuron that did not spike passes nothing through its
spikes (EventProp's blind spot: a silent neuron stays silent), and neither does a spike of a
neuron that a subtract reset left above threshold (it crossed nothing). The weights' gradients are
those of the currents, as for the surrogate: :math:`∂L/∂W^{rec} = \sum_k ∂L/∂J_{k+1} ⊗ z_k`
(the loop) and :math:`∂L/∂W = \sum_k ∂L/∂x_k ⊗ s_k` (the projection).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from spikeloop.dynamics.neurons import membrane_slope
from spikeloop.kernels import native


@dataclass(frozen=True)
class GridEventProp:
    """What EventProp's jump needs beyond a loop's coefficients: per-neuron ``v_leak``, ``r``,
    ``tau_mem``, ``tau_syn`` (``[N]`` tensors of the loop's dtype and device), the step ``dt``
    (s) and the floor of the membrane slope :math:`\\dot V^-` (a crossing at a vanishing slope
    would divide by zero)."""

    v_leak: Tensor
    r: Tensor
    tau_mem: Tensor
    tau_syn: Tensor
    dt: float
    floor: float


def grid_adjoint(
    out_z: Tensor, out_v: Tensor, out_i: Tensor, gz: Tensor | None, gv: Tensor | None,
    gi: Tensor | None, wrec: Tensor | None, beta: Tensor, alpha: Tensor, gain: Tensor,
    thr: Tensor, vreset: Tensor, subtract: bool, ep: GridEventProp,
) -> Tensor:
    """``∂L/∂x [T, B, N]`` (the input current of each step) by EventProp on the grid (see the
    module) from a loop's recorded spikes, membrane and current ``[T, B, N]``, the gradients
    arriving at them (``None``: zero), the recurrent weight ``[N, N]`` (or ``None``) and the
    loop's coefficients ``[N]``. Native for float32 CPU tensors (``sl_grid_adjoint``), else
    torch; the two are tested against each other."""
    if native.usable(out_z, out_v, out_i, gz, gv, gi, wrec, beta, ep.v_leak):
        dx = torch.empty_like(out_z)
        parts = [t if t is None else t.contiguous()
                 for t in (out_v, out_z, out_i, gz, gv, gi)]
        w_t = wrec.t().contiguous() if wrec is not None else None
        consts = [t.contiguous() for t in (beta, alpha, gain, thr, vreset, ep.v_leak, ep.r,
                                           ep.tau_mem, ep.tau_syn)]
        native.set_threads()
        native.library().sl_grid_adjoint(
            *out_z.shape, *map(native.ptr, parts), native.ptr(w_t),
            *map(native.ptr, consts), ep.dt, ep.floor, int(subtract), native.ptr(dx))
        return dx
    return _adjoint_torch(out_z, out_v, out_i, gz, gv, gi, wrec, beta, alpha, gain, thr,
                          vreset, subtract, ep)


def jump_factors(
    z: Tensor, u: Tensor, i: Tensor, alpha: Tensor, thr: Tensor, vreset: Tensor,
    subtract: bool, ep: GridEventProp,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""``(a, b, c)`` ``[T, B, N]`` with
    :math:`δ_k = a\,p_{V,k} + b\,(G_{k+1} - G_k) + c\,R_k` (see the module): the jump's
    factors from the slopes at the crossing where the membrane crossed the threshold from below
    in the step, else ``(1, 0, 0)`` (no spike, or a spike of a neuron that a subtract reset
    left above threshold: no crossing time to move). ``c = −1/V̇⁻`` is also what the gradient
    of a loss with respect to the spike's time is worth at ``u_k`` (a later crossing is a lower
    membrane)."""
    at = (z > 0).nonzero(as_tuple=True)
    n = at[2]
    step = at[0]
    earlier = ((step - 1).clamp(min=0), at[1], n)
    before = torch.where(step > 0, u[earlier], ep.v_leak[n])
    fired = torch.where(step > 0, z[earlier], 0.0) > 0
    reset = before - (thr[n] - vreset[n]) if subtract else vreset[n]
    before = torch.where(fired, reset, before)
    crossed = before < thr[n]  # (else a subtract reset left it above: no crossing to move)
    at = tuple(k[crossed] for k in at)
    n, before = at[2], before[crossed]
    rise = u[at] - before
    frac = torch.where(rise > 0, (thr[n] - before) / rise, 1.0).clamp(0.0, 1.0)
    current = i[at] / alpha[n] * (1.0 - frac * (1.0 - alpha[n]))
    minus = membrane_slope(thr[n], current, ep.v_leak[n], ep.r[n], ep.tau_mem[n])
    plus = membrane_slope(vreset[n], current, ep.v_leak[n], ep.r[n], ep.tau_mem[n])
    floored = torch.maximum(minus, rise / ep.dt).clamp(min=ep.floor)
    a = torch.ones_like(u)
    b = torch.zeros_like(u)
    c = torch.zeros_like(u)
    a[at] = 1.0 - (minus - plus) / floored if subtract else plus / floored
    b[at] = -1.0 / (ep.dt * floored)
    c[at] = -1.0 / floored
    return a, b, c


def _adjoint_torch(
    z: Tensor, u: Tensor, i: Tensor, gz: Tensor | None, gv: Tensor | None, gi: Tensor | None,
    wrec: Tensor | None, beta: Tensor, alpha: Tensor, gain: Tensor, thr: Tensor,
    vreset: Tensor, subtract: bool, ep: GridEventProp,
) -> Tensor:
    """:func:`grid_adjoint`'s recursion in torch (any device and dtype)."""
    steps = z.shape[0]
    a, b, c = jump_factors(z, u, i, alpha, thr, vreset, subtract, ep)
    dx = torch.empty_like(z)
    p_v = torch.zeros_like(z[0])
    p_i = torch.zeros_like(z[0])
    g_next = torch.zeros_like(z[0])  # G_{k+1}: a spike moved past the window's end is lost
    for t in range(steps - 1, -1, -1):
        g = gz[t] if gz is not None else torch.zeros_like(p_v)
        delta = torch.addcmul(a[t] * p_v, b[t], g_next - g)
        if wrec is not None and t < steps - 1:  # R_t: the arrivals at the start of step t + 1
            h = dx[t + 1] / ep.tau_syn - ep.r * p_v / ep.tau_mem
            delta = torch.addcmul(delta, c[t], h @ wrec)
        if gv is not None:
            delta = delta + gv[t]
        if gi is not None:
            p_i = p_i + gi[t]
        torch.addcmul(gain * delta, alpha, p_i, out=dx[t])
        p_v = beta * delta
        p_i = dx[t]
        g_next = g
    return dx
