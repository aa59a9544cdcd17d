r"""EventProp (Wunderlich & Pehle 2021): exact gradients of the event simulation.

The adjoint, in reverse time between events

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
p_{V,n} + \tfrac{1}{τ_{syn}} p_{I,n})`, which is the :math:`G` of the layer below.
Through a per-axon delay the inputs are the arrivals :math:`t^{arr}_e = t_e + d_{c_e}`
(:func:`~spikeloop.backends.event.forward._arrivals`), so the same term is the arrival-time
gradient (Mészáros, Knight & Nowotny 2025) and

.. math::
    \frac{dL}{dd_c} = \sum_{e:\,c_e = c} \frac{dL}{dt^{arr}_e}, \qquad
    \frac{dL}{dt_e} = \frac{dL}{dt^{arr}_e},

summed by autograd through the shift (exact: it is the derivative of the event simulation
wherever no spike appears or vanishes and no arrival crosses the window end). The backward
pass needs only the spike times, the synaptic current at each spike and release, and the
input events: memory grows with the number of spikes, not with the length of the window.

Adaptive (AHP) neurons carry a third state, :math:`τ_{adapt}\dot A = -A` with
:math:`A \leftarrow A + b` at each spike and :math:`-r A` in the membrane equation, and the
co-state gains :math:`p_A = ∂L/∂A`. Backward over a free interval ``s`` (transpose of the
forward map :math:`V \leftarrow \dots - r g^a_s A`, :math:`A \leftarrow ρ_s A`):
:math:`p_A \leftarrow ρ_s p_A - r g^a_s p_V` (:math:`ρ_s = e^{-s/τ_{adapt}}`, :math:`g^a_s`
the membrane's gain for :math:`τ_{adapt}`); while clamped only :math:`p_A \leftarrow ρ_s p_A`.
At a spike, moving :math:`t_k` by :math:`δ` moves the state just after it by
:math:`(J\dot x^- - \dot x^+)\,δ` (``J`` the jump's Jacobian), EventProp's general jump
condition. For the AHP jump (:math:`J = 1`) with :math:`\dot A^- = -A^-/τ_{adapt}` and
:math:`\dot A^+ = -(A^- + b)/τ_{adapt}` this is :math:`(b/τ_{adapt})\,δ`, so the bracket of
:math:`p_{V,n}^-` gains :math:`+\tfrac{b}{τ_{adapt}} p_{A,n}^+`; the membrane's own term keeps
its form with the slopes
:math:`\dot V^- = (v_{leak} - ϑ + r I^- - r A^-)/τ_{mem}` and
:math:`\dot V^+ = (v_{leak} - v_{reset} + r I^+ - r (A^- + b))/τ_{mem}` (at the release,
:math:`A = ρ_{t_{refrac}}(A^- + b)`); :math:`p_I` and :math:`p_A` are continuous through the
spike (the jumps add constants). The weight and input-time formulas are unchanged (inputs jump
``I`` only). With ``b = 0`` the extra term vanishes and the gradients are the CUBA ones.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor

from spikeloop.backends.event import _native
from spikeloop.backends.event.cuba import _F, _INF, _adapt, _Neuron, membrane_slope
from spikeloop.backends.event.forward import _input_table, _population, _Run
from spikeloop.dynamics.neurons import current_gain, decay


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
    pa = torch.zeros(batch, n, dtype=_F) if c.adaptive else None  # p_A (AHP current)
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
        if pa is not None:
            gain_a = current_gain(c.tau_adapt, c.tau_mem, s_free, "exact")
            pa = decay(c.tau_adapt, s_free, "exact") * pa - c.r * gain_a * pv
        pv = beta * pv
        crossed = (rel > target) & (rel <= t) & (sp >= 0)
        if bool(crossed.any()):
            i_rel = run.i_release.gather(2, sp.clamp(min=0)[..., None])[..., 0]
            a_rel = None
            if pa is not None:  # the AHP current at the release: A⁻ + b, decayed
                a_k = run.a_spike.gather(2, sp.clamp(min=0)[..., None])[..., 0]
                a_rel = _adapt(a_k + c.b, c.t_refrac, c)
            v_dot_rel = membrane_slope(c.v_reset, i_rel, c, a_rel)
            reset_term = torch.where(crossed, reset_term - v_dot_rel * pv, reset_term)
        pv = torch.where(s_ref > 0, torch.zeros_like(pv), pv)
        pi = decay(c.tau_syn, s_ref, "exact") * pi
        if pa is not None:
            pa = decay(c.tau_adapt, s_ref, "exact") * pa
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
            a_minus = (run.a_spike.gather(2, sp.clamp(min=0)[..., None])[..., 0]
                       if pa is not None else None)
            v_dot_minus = membrane_slope(c.v_threshold, i_minus, c, a_minus)
            v_dot_minus = v_dot_minus.clamp(min=_slope_floor(c))
            g = grad_times.gather(2, sp.clamp(min=0)[..., None])[..., 0]
            bracket = g + reset_term
            if pa is not None:  # the AHP jump moves with the spike: (b/τ_adapt) p_A⁺
                bracket = bracket + c.b / c.tau_adapt * pa
            if c.t_refrac == 0:
                a_plus = a_minus + c.b if a_minus is not None else None
                v_dot_plus = membrane_slope(c.v_reset, i_minus + w_self, c, a_plus)
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


def _slope_floor(c: _Neuron) -> float:
    """The floor of the membrane slope before a spike in the co-state jump (a crossing at a
    vanishing slope would divide by zero)."""
    return 1e-12 * float(c.v_threshold.abs().max() + 1) / float(c.tau_mem.min())


def _adjoint_any(
    grad_times: Tensor, run: _Run, times: Tensor, src: Tensor, amp: Tensor, weight: Tensor,
    w_rec: Tensor | None, c: _Neuron, t_max: float, count: Tensor | None = None,
    table: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """:func:`_adjoint` on the native engine where it covers the run (CPU, library built;
    :func:`~spikeloop.backends.event._native.engine`), else on the torch engine
    (``grad_times`` is read at the spikes only; ``count``: spikes per neuron, and ``table``:
    the forward pass's input table, if known)."""
    lib = _native.engine(times, weight, w_rec, neuron=c)
    if lib is None:  # (the native engine takes a non-finite gradient at a spike as 0 itself)
        grad = torch.nan_to_num(grad_times, nan=0.0, posinf=0.0, neginf=0.0)
        grad = torch.where(torch.isfinite(run.times), grad, torch.zeros_like(grad))
        return _adjoint(grad, run, times, src, amp, weight, w_rec, c, t_max)
    t_in, s_in, a_in, order = table if table is not None else _input_table(times, src, amp,
                                                                           t_max)
    g_sorted, g_w, g_rec = _native.adjoint(lib, grad_times, run.times, run.i_spike,
                                           run.i_release, t_in, s_in, a_in, weight, w_rec, c,
                                           t_max, _slope_floor(c), count)
    g_t = torch.zeros_like(g_sorted).scatter(1, order, g_sorted)[:, : times.shape[1]]
    return g_t, g_w, g_rec


def _on(device: torch.device) -> AbstractContextManager:
    """Make torch's factory functions create tensors on ``device``. On the CPU (their default)
    nothing is entered: the ``torch.device`` context intercepts every torch call made inside it,
    which costs the event loop's many small operations about 60 %."""
    return nullcontext() if device.type == "cpu" else torch.device(device)


class _PopulationFunction(torch.autograd.Function):
    """One spiking population: forward = event simulation, backward = EventProp adjoint."""

    @staticmethod
    def forward(ctx, in_times, weight, w_rec, src, amp, c, t_max, grid, max_spikes, forced):
        w64 = weight.detach().to(_F)
        r64 = w_rec.detach().to(_F) if w_rec is not None else None
        t64 = in_times.detach().to(_F)
        out = _population(t64, src, amp, w64, r64, c, t_max, max_spikes, forced, grid)
        run = out.run
        ctx.save_for_backward(t64, src, amp, w64, r64, run.times, run.i_spike, run.i_release,
                              run.a_spike)
        ctx.c, ctx.t_max, ctx.count, ctx.table = c, t_max, out.count, out.table
        ctx.dtypes = (in_times.dtype, weight.dtype, w_rec.dtype if w_rec is not None else None)
        empty = torch.empty(0, dtype=torch.long)
        extra = (out.v_grid if out.v_grid is not None else torch.empty(0, dtype=_F),
                 out.count if out.count is not None else empty,
                 out.order if out.order is not None else empty)
        ctx.mark_non_differentiable(*extra)
        return (run.times, *extra)

    @staticmethod
    def backward(ctx, grad_times, *_):
        with _on(ctx.saved_tensors[0].device):  # the adjoint's buffers: same device
            return _PopulationFunction._backward(ctx, grad_times)

    @staticmethod
    def _backward(ctx, grad_times):
        t64, src, amp, w64, r64, times, i_spike, i_release, a_spike = ctx.saved_tensors
        if grad_times is None:
            grad_times = torch.zeros_like(times)
        grad = grad_times.to(_F)  # non-finite entries count as 0 (_adjoint_any)
        run = _Run(times, i_spike, i_release, None, a_spike)
        g_t, g_w, g_rec = _adjoint_any(grad, run, t64, src, amp, w64, r64, ctx.c, ctx.t_max,
                                       ctx.count, ctx.table)
        dt_in, dt_w, dt_rec = ctx.dtypes
        return (g_t.to(dt_in), g_w.to(dt_w), g_rec.to(dt_rec) if g_rec is not None else None,
                None, None, None, None, None, None, None)
