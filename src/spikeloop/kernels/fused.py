r"""Fused time loops with a hand-written backward pass, and event-driven projections.

:func:`neuron_loop` runs a whole population over ``T`` steps in one autograd node. Its forward
pass is the step function of :mod:`spikeloop.dynamics.neurons` (the torch engine calls it; the
native engine, ``native.c``, implements the same operations in the same rounding order). Its
backward pass is the adjoint of that recursion, written out (reset with detached spikes):

.. math::
    \bar v_k &= g^v_k + (g^z_k + W_{rec}^\top \bar x_{k+1})\,σ'(\tilde v_k - ϑ)
              + \bar v_{k+1} \cdot (1 - z_k \text{ [value reset] or } 1 \text{ [subtract]}) \\
    \bar u_k &= m_k \bar v_k \quad (m_k = 0 \text{ while refractory}),\qquad
    \bar v_{k}^{-} = β \bar u_k \\
    \bar x_k &= \bar i'_k = g\,\bar u_k + α (\bar i_{k+1} + g^i_k)

with per-neuron coefficient gradients
:math:`\bar β = Σ \bar u_k v_k`, :math:`\overline{rest} = Σ \bar u_k`,
:math:`\bar g = Σ \bar u_k i'_k`, :math:`\bar α = Σ (\bar i_{k+1} + g^i_k) i'_k`,
:math:`\bar ϑ = -Σ (g^z_k + W_{rec}^\top \bar x_{k+1}) σ'_k - [\text{subtract}]Σ \bar v_{k+1} z_k`,
:math:`\bar v_{reset} = Σ \bar v_{k+1} z_k + Σ_{\text{refractory}} \bar v_k`, which autograd
chains on to the time constants. Only the forward outputs are kept for it (and ``i'`` when a
time constant is learned), not the ~10 intermediate tensors per step that autograd would keep.

Adaptation (``LoopConfig(adaptive=True)``: :func:`~spikeloop.dynamics.adaptive_lif_step` with
``a_c = 0``, ``b = adapt_increment``, ``κ = r g_adapt``; :func:`~spikeloop.dynamics.adlif_step`
with ``κ = 1 − β``, ``a_c = a``, ``b = b``). The forward pass adds a state ``w``:

.. math::
    u_k = β v_k + rest + g\,i'_k - κ w_k,\qquad
    w_{k+1} = ρ w_k + a_c (\tilde v_k - v_{leak}) + b\, z_k

(``ṽ_k`` the membrane compared with the threshold, ``z_k`` the spikes *with* their
surrogate gradient: only the reset detaches them). Its adjoint ``\bar w`` enters the spike and
membrane adjoints above and runs backward next to them:

.. math::
    \bar z_k &= g^z_k + W_{rec}^\top \bar x_{k+1} + b\,\bar w_{k+1},\qquad
    \bar v_k \mathrel{+}= a_c \bar w_{k+1} \text{ (with } \bar z_k σ'_k
    \text{ in place of the spike term)} \\
    \bar w_k &= ρ \bar w_{k+1} - κ \bar u_k

with :math:`\bar ρ = Σ \bar w_{k+1} w_k`, :math:`\bar κ = -Σ \bar u_k w_k`,
:math:`\bar a_c = Σ \bar w_{k+1} (\tilde v_k - v_{leak})`, :math:`\bar b = Σ \bar w_{k+1} z_k`,
:math:`\bar v_{leak} = -a_c Σ \bar w_{k+1}` (``w_k`` is kept only when ρ or κ is learned).
Both engines run it (``native.c`` in the same operation order as the step functions).

Sparse surrogate backprop (Perez-Nieves & Goodman 2021): with a
:class:`~spikeloop.dynamics.BandLimited` surrogate (the sim backend's ``grad_band = b``) the
surrogate derivative is zero where :math:`|\tilde v - ϑ| ≥ b`; the backward pass is then the
exact gradient of that band-limited surrogate, and recurrent spike gradients are computed only for
neurons inside the band (the event-driven part that saves time).

:func:`event_linear` computes ``y = x Wᵀ (+ b)`` from the non-zero entries of ``x`` only, and
its weight gradient ``xᵀ ȳ`` the same way: ``O(nnz · out)`` instead of ``O(rows · in · out)``.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.autograd import Function

from spikeloop.checks import require_finite
from spikeloop.dynamics import neurons as dyn
from spikeloop.dynamics.adlif import AdLIFParameters, AdLIFState, adlif_step
from spikeloop.dynamics.surrogate import NativeForm, Surrogate
from spikeloop.errors import ParameterError, ShapeError
from spikeloop.kernels import native
from spikeloop.kernels.eventprop import GridEventProp, grid_adjoint

RESET_MODES = {"value": 0, "subtract": 1}


@dataclass(frozen=True)
class LoopConfig:
    """Static settings of a fused loop.

    ``spiking``: threshold and reset (else a leaky-integrator readout); ``reset``: ``"value"`` or
    ``"subtract"``; ``refrac_steps``; ``surrogate`` (a ``BandLimited`` one for sparse
    backprop); ``engine``: ``"native"``, ``"torch"`` or ``"auto"`` (native for float32 CPU tensors
    when the C kernels are available); ``adaptive``: the adaptation state ``w`` (spiking loops
    only; module docstring); ``eventprop``: the backward pass is EventProp's on the grid
    (:mod:`spikeloop.kernels.eventprop`: spiking loops without refractoriness, adaptation or
    observations; gradients for the input and the recurrent weight only, so learned
    coefficients or a learned initial state are refused) instead of the surrogate's.
    """

    spiking: bool
    reset: str = "value"
    refrac_steps: int = 0
    surrogate: Surrogate | None = None
    engine: str = "auto"
    adaptive: bool = False
    eventprop: GridEventProp | None = None


class LoopResult(tuple):
    """``(v, z, i, v_T, i_T, r_T, z_T, w_T)`` of :func:`neuron_loop` (``z``/``z_T`` empty for
    readouts, ``w_T`` empty without adaptation)."""


ADAPTATION_NAMES = ("rho", "kappa", "a", "b", "vleak")
"""Coefficients of an adaptive loop: ``ρ``, ``κ``, coupling ``a_c``, jump ``b``, ``v_leak``."""


def _engine(cfg: LoopConfig, *tensors: Tensor | None) -> str:
    if cfg.engine == "torch":
        return "torch"
    if native.usable(*tensors):
        return "native"
    if cfg.engine == "native":
        reason = native.unavailable_reason() or "tensors are not float32 on the CPU"
        raise RuntimeError(f"native kernels requested but not usable: {reason}")
    return "torch"


def _shape(t: int, b: int, n: int, cfg: LoopConfig) -> native.Shape:
    return native.Shape(t, b, n, int(cfg.spiking), RESET_MODES[cfg.reset], cfg.refrac_steps)


def _native_form(cfg: LoopConfig, v: Tensor, thr: Tensor) -> NativeForm | None:
    """The surrogate's :class:`~spikeloop.dynamics.NativeForm` where the native kernels can
    evaluate ``σ'(v − ϑ)`` (``v`` non-empty, float32 on the CPU, ``thr`` per neuron ``[N]``),
    else ``None``."""
    form = cfg.surrogate.native_form()
    if form is not None and v.numel() and native.usable(v, thr) and thr.shape == v.shape[-1:]:
        return form
    return None


def _surrogate_grad(cfg: LoopConfig, v: Tensor, thr: Tensor) -> Tensor:
    """``σ'(ṽ − ϑ)`` from the surrogate object (the one definition), in place on a temporary;
    in one native pass where the surrogate has a :meth:`~spikeloop.dynamics.Surrogate.
    native_form` (the same operations, the same bits: tested) and ``v`` suits the native
    kernels (``thr`` per neuron ``[N]``)."""
    form = _native_form(cfg, v, thr)
    if form is not None:
        v = v.contiguous()
        out = torch.empty_like(v)
        native.set_threads()
        native.library().sl_surrogate_grad(v.numel() // v.shape[-1], v.shape[-1], v.data_ptr(),
                                           thr.contiguous().data_ptr(), form.kind, form.a,
                                           form.c, form.band, out.data_ptr())
        return out
    return cfg.surrogate.derivative_(v - thr).contiguous()


# ----------------------------------------------------------------------------- torch engine
def _torch_forward(cfg, x, beta, rest, alpha, gain, thr, vreset, v0, i0, r0, z0, wrec, want_ip,
                   obs_v=None, obs_z=None, adapt=None, want_w=False):
    """Forward with the reference step functions (no autograd graph).

    ``adapt``: ``(ρ, κ, a_c, b, v_leak, w0)`` of an adaptive loop. Its step is
    :func:`~spikeloop.dynamics.adlif_step` fed the current ``i' = i + x`` with ``x_gain = g``
    (``u = β v + rest + g i' − κ w``: the operations, in order, of
    :func:`~spikeloop.dynamics.adaptive_lif_step` too, whose ``a_c = 0`` adds an exact zero;
    ``tests/test_fused_adaptive.py`` checks both models against their own step functions, bit
    for bit), then ``i ← α i'``. ``want_w``: also return ``w_k`` before every step.
    """
    p = dyn.ThresholdParameters(v_threshold=thr, v_reset=vreset, reset=cfg.reset)
    c = dyn.Coefficients(beta=beta, rest=rest, alpha=alpha, syn_gain=gain,
                         refrac_steps=cfg.refrac_steps)
    w = None
    if adapt is not None:
        rho, kappa, coupling, jump, vleak, w = adapt
        pa = AdLIFParameters(v_threshold=thr, v_reset=vreset, reset=cfg.reset, a=coupling,
                             b=jump, v_leak=vleak)
        ca = dyn.Coefficients(beta=beta, rest=rest, x_gain=gain, adapt_decay=rho,
                              adapt_gain=kappa, refrac_steps=cfg.refrac_steps)
    v, i, r, z = v0, i0, r0, z0
    vs, zs, cur, ips, masks, ws = [], [], [], [], [], []
    steps = x.shape[0]
    seen_v = obs_v.unbind(0) if obs_v is not None else [None] * steps
    seen_z = obs_z.unbind(0) if obs_z is not None and cfg.spiking else [None] * steps
    for x_t, ov, oz in zip(x.unbind(0), seen_v, seen_z, strict=True):
        seen = dyn.Observation(ov, oz) if ov is not None or oz is not None else None
        if wrec is not None:
            x_t = x_t + z @ wrec.t()
        if want_ip:
            ips.append(i + x_t)
        if cfg.spiking:
            if cfg.refrac_steps:
                masks.append(r <= 0)
            if w is not None:
                if want_w:
                    ws.append(w)
                ip_t = i + x_t
                z, v_obs, (v, w, r) = adlif_step(ip_t, AdLIFState(v, w, r), pa, ca,
                                                 cfg.surrogate, seen)
                i = alpha * ip_t
            else:
                z, v_obs, (v, i, r) = dyn.cuba_lif_step(x_t, dyn.CubaLIFState(v, i, r), p, c,
                                                       cfg.surrogate, seen)
            zs.append(z)
        else:
            v_obs, (v, i) = dyn.cuba_li_step(x_t, dyn.CubaLIState(v, i), c, seen)
        vs.append(v_obs)
        cur.append(i)
    return (torch.stack(vs), torch.stack(zs) if zs else x.new_empty(0), torch.stack(cur), v, i, r,
            z if cfg.spiking else x.new_empty(0), torch.stack(ips) if want_ip else None,
            torch.stack(masks) if masks else None,
            w if w is not None else x.new_empty(0), torch.stack(ws) if ws else None)


def _torch_backward(cfg, out_v, out_z, sg, v0, ip, mask, beta, alpha, gain, thr, vreset,
                    wrec, gv, gz, gi, gvT, giT, gzT, adapt=None, ws=None, gwT=None):
    """The adjoint recursion of the module docstring, vectorised over ``[B, N]``.

    ``adapt``: ``(ρ, κ, a_c, b, v_leak)`` of an adaptive loop, ``ws`` the ``w_k`` before each
    step (``None`` when ρ and κ need no gradient), ``gwT`` the gradient of the final ``w``.
    Returns ``dx, dv0, di0, dz0, coefficient gradients`` and, adaptive, ``dw0`` and the
    gradients of ``ρ, κ, a_c, b, v_leak`` (else ``None, None``).
    """
    steps = out_v.shape[0]
    zeros = torch.zeros_like(out_v[0])
    lv = gvT if gvT is not None else zeros
    li = giT if giT is not None else zeros
    rdz = gzT if gzT is not None else zeros
    subtract = cfg.reset == "subtract"
    dx = torch.empty_like(out_v)
    d_beta, d_rest, d_alpha, d_gain, d_thr, d_vr = (torch.zeros_like(zeros) for _ in range(6))
    if adapt is not None:
        rho, kappa, coupling, jump, vleak = adapt
        lw = gwT if gwT is not None else zeros
        d_rho, d_kappa, d_a, d_b, d_lw = (torch.zeros_like(zeros) for _ in range(5))
    for t in range(steps - 1, -1, -1):
        dvt = gv[t] if gv is not None else zeros
        if cfg.spiking:
            z = out_z[t]
            dz = (gz[t] if gz is not None else zeros) + rdz
            if adapt is not None:
                dz = dz + jump * lw  # w_{k+1} = … + b z_k (z with its surrogate gradient)
                dvt = dvt + coupling * lw  # … + a_c (ṽ_k − v_leak)
                d_a = d_a + lw * (out_v[t] - vleak)
                d_b = d_b + lw * z
                d_lw = d_lw + lw
            gs = dz * sg[t]
            d_thr = d_thr - gs
            if subtract:
                dvt = dvt + gs + lv
                d_thr = d_thr - lv * z
            else:
                dvt = dvt + gs + lv * (1 - z)
            d_vr = d_vr + lv * z
            if mask is not None:
                d_vr = d_vr + torch.where(mask[t], zeros, dvt)
                du = torch.where(mask[t], dvt, zeros)
            else:
                du = dvt
        else:
            du = dvt + lv
        git = li + (gi[t] if gi is not None else zeros)
        dip = gain * du + alpha * git
        d_rest = d_rest + du
        if adapt is not None:
            if ws is not None:
                d_rho = d_rho + lw * ws[t]
                d_kappa = d_kappa - du * ws[t]
            lw = rho * lw - kappa * du
        if ip is not None:
            if t == 0:
                vk = v0
            elif cfg.spiking:
                vp, zp = out_v[t - 1], out_z[t - 1]
                vk = vp - zp * (thr - vreset) if subtract else vp - zp * (vp - vreset)
            else:
                vk = out_v[t - 1]
            d_beta = d_beta + du * vk
            d_gain = d_gain + du * ip[t]
            d_alpha = d_alpha + git * ip[t]
        lv, li = beta * du, dip
        dx[t] = dip
        if wrec is not None:
            rdz = dip @ wrec
            if t > 0:
                rdz = torch.where(sg[t - 1] != 0, rdz, zeros)
        else:
            rdz = zeros
    grads = [g.sum(0) for g in (d_beta, d_rest, d_alpha, d_gain, d_thr, d_vr)]
    if adapt is None:
        return dx, lv, li, rdz, grads, None, None
    adapt_grads = [g.sum(0) for g in (d_rho, d_kappa, d_a, d_b, -coupling * d_lw)]
    return dx, lv, li, rdz, grads, lw, adapt_grads


# ----------------------------------------------------------------------------- autograd node
class _NeuronLoop(Function):
    @staticmethod
    def forward(ctx, cfg, x, beta, rest, alpha, gain, thr, vreset, v0, i0, r0, z0, wrec,
                obs_v, obs_z, record_current, record_v, rho, kappa, coupling, jump, vleak, w0,
                grad):
        steps, batch, n = x.shape
        want_ip = any(ctx.needs_input_grad[i] for i in (2, 4, 5))  # beta, alpha, gain
        want_w = cfg.adaptive and any(ctx.needs_input_grad[i] for i in (17, 18))  # rho, kappa
        engine = _engine(cfg, x, wrec, obs_v, obs_z)
        w_t, ws = x.new_empty(0), None
        ctx.wrec_t = None
        listed = None  # the spikes' event list, where the native loop made it
        if engine == "native":
            lib = native.library()
            native.set_threads()
            v, i, r = v0.clone(), i0.clone(), r0.clone()
            z = z0.clone() if wrec is not None else None
            out_v = torch.empty_like(x) if record_v else x.new_empty(0)
            out_z = torch.empty_like(x) if cfg.spiking else x.new_empty(0)
            out_i = torch.empty_like(x) if record_current else x.new_empty(0)
            ip = torch.empty_like(x) if want_ip else None
            mask = (torch.empty(x.shape, dtype=torch.uint8) if cfg.spiking and cfg.refrac_steps
                    else None)
            wrec_t = transposed(wrec) if wrec is not None else None
            ctx.wrec_t = wrec_t
            if cfg.adaptive:
                w_t = w0.clone()
                ws = torch.empty_like(x) if want_w else None
            p = native.ptr
            # with a gradient (grad: autograd records this run), a recurrent loop lists its
            # spikes (the recurrent product finds each row's spikes anyway): its weight
            # gradient reads the list, and so does a projection reading them (without one,
            # that projection's single pass is quicker)
            row_ptr = (torch.empty(steps * batch + 1, dtype=torch.int64)
                       if cfg.spiking and wrec is not None and grad else None)
            handle = ctypes.c_void_p()
            lib.sl_neuron_forward(
                _shape(steps, batch, n, cfg), p(x), p(beta), p(rest), p(alpha), p(gain), p(thr),
                p(vreset), p(v), p(i), p(r), p(z), p(wrec_t), p(obs_v),
                p(obs_z) if cfg.spiking else None, p(out_v) if record_v else None,
                p(out_z) if cfg.spiking else None,
                p(out_i) if record_current else None, p(ip), p(mask), p(rho), p(kappa),
                p(coupling), p(jump), p(vleak), p(w_t) if cfg.adaptive else None, p(ws),
                p(row_ptr), ctypes.byref(handle) if row_ptr is not None else None)
            if handle.value:
                listed = Compressed.from_handle(n, row_ptr, handle.value)
                listed.version = out_z._version
            # the last spikes (a copy: outputs of one node must not alias)
            last = out_z[-1].clone() if cfg.spiking else x.new_empty(0)
            z_t = z if wrec is not None else last
        else:
            adapt = (rho, kappa, coupling, jump, vleak, w0) if cfg.adaptive else None
            with torch.no_grad():
                out_v, out_z, out_i, v, i, r, z_t, ip, mask, w_t, ws = _torch_forward(
                    cfg, x, beta, rest, alpha, gain, thr, vreset, v0, i0, r0,
                    z0 if wrec is not None else None, wrec, want_ip, obs_v, obs_z, adapt, want_w)
            if not record_current:
                out_i = x.new_empty(0)
            if not record_v:
                out_v = x.new_empty(0)
            if mask is not None:
                mask = mask.to(torch.uint8)
        ctx.cfg, ctx.engine, ctx.record_current = cfg, engine, record_current
        # the spikes' event list, for a projection that reads them (event_linear) and a
        # recurrent loop's native weight gradient; where the loop did not list them, a
        # projection that does leaves its list in this slot (_spike_slot)
        ctx.spike_slot = None
        if listed is not None or (wrec is not None and cfg.spiking and engine == "native"):
            ctx.spike_slot = [listed] if listed is not None else []
            setattr(out_z, _SPIKE_SLOT, ctx.spike_slot)
        ctx.save_for_backward(out_v, out_z, v0, ip, mask, beta, alpha, gain, thr, vreset, wrec,
                              z0, ws, rho, kappa, coupling, jump, vleak,
                              out_i if cfg.eventprop is not None else None)
        ctx.mark_non_differentiable(r)
        ctx.set_materialize_grads(False)
        return out_v, out_z, out_i, v, i, r, z_t, w_t

    @staticmethod
    def backward(ctx, gv, gz, gi, gvT, giT, _gr, gzT, gwT):
        cfg = ctx.cfg
        (out_v, out_z, v0, ip, mask, beta, alpha, gain, thr, vreset, wrec, z0, ws,
         *adapt, out_i) = ctx.saved_tensors
        gwT = gwT.contiguous() if gwT is not None and cfg.adaptive else None
        steps, batch, n = out_v.shape
        # σ'(v − ϑ): in the native backward pass itself, row by row, where the surrogate has a
        # native form (the same bits as _surrogate_grad's pass: tested); else computed here
        surrogate = cfg.spiking and cfg.eventprop is None
        form = _native_form(cfg, out_v, thr) if surrogate and ctx.engine == "native" else None
        sg = _surrogate_grad(cfg, out_v, thr) if surrogate and form is None else None
        gs = [g.contiguous() if g is not None else None for g in (gv, gz, gi, gvT, giT, gzT)]
        gv, gz, gi, gvT, giT, gzT = gs
        if not cfg.spiking:
            gz = gzT = None
        if not ctx.record_current:  # the recorded current was an empty placeholder
            gi = None
        if cfg.eventprop is not None:
            dx = grid_adjoint(out_z, out_v, out_i, gz, gv, gi, wrec, beta, alpha, gain, thr,
                              vreset, cfg.reset == "subtract", cfg.eventprop)
            dv0 = di0 = dz0 = dw0 = d_adapt = None
            coef = [None] * 6
        elif ctx.engine == "native":
            lib = native.library()
            native.set_threads()
            dx = torch.empty_like(out_v)
            dv0, di0, dz0 = (torch.empty_like(v0) for _ in range(3))
            coef = [torch.empty_like(beta) for _ in range(6)]
            wrec_t = ctx.wrec_t  # (the forward pass's: W_rec cannot change before this)
            wrec_c = wrec.contiguous() if wrec is not None else None  # W itself, row-major
            p = native.ptr
            dw0 = torch.empty_like(v0) if cfg.adaptive else None
            d_adapt = [torch.empty_like(beta) for _ in range(5)] if cfg.adaptive else [None] * 5
            lib.sl_neuron_backward(
                _shape(steps, batch, n, cfg), p(out_v), p(out_z) if cfg.spiking else None,
                p(sg), p(v0), p(ip), p(mask), p(beta), p(alpha), p(gain), p(thr), p(vreset),
                p(wrec_t), p(gv), p(gz), p(gi), p(gvT), p(giT), p(gzT), p(dx), p(dv0), p(di0),
                p(dz0), *(p(c) for c in coef), *(p(c) for c in adapt), p(ws), p(gwT), p(dw0),
                *(p(d) for d in d_adapt), *((form.kind, form.a, form.c, form.band)
                                            if form is not None else (0, 0.0, 0.0, 0.0)),
                p(wrec_c))
            if cfg.adaptive:  # the C kernel returns Σ w̄ for v_leak: v̄_leak = −a_c Σ w̄
                d_adapt[4] = -adapt[2] * d_adapt[4]
            else:
                d_adapt = None
        else:
            m = mask.bool() if mask is not None else None
            dx, dv0, di0, dz0, coef, dw0, d_adapt = _torch_backward(
                cfg, out_v, out_z, sg, v0, ip, m, beta, alpha, gain, thr, vreset, wrec,
                gv, gz, gi, gvT, giT, gzT, adapt if cfg.adaptive else None, ws, gwT)
        d_beta, d_rest, d_alpha, d_gain, d_thr, d_vr = coef
        d_w = None
        if wrec is not None and ctx.needs_input_grad[12]:
            # dW = Σ_k dx_k^T z_{k-1}: the first step sees the initial spikes z0
            d_w = event_weight_grad(z0, dx[0])  # [from, to]
            if steps > 1:
                listed = ctx.spike_slot[0] if ctx.spike_slot else None
                earlier = None  # the spikes of steps 0 … T−2: the first (T−1)·B rows listed
                if listed is not None and (listed.rows, listed.cols) == (steps * batch, n):
                    earlier = Compressed.from_csr(n, listed.row_ptr[:(steps - 1) * batch + 1],
                                                  listed.col, listed.val)
                d_w += event_weight_grad(out_z[:-1].reshape(-1, n), dx[1:].reshape(-1, n),
                                         events=earlier)
            d_w = transposed(d_w)  # in W_rec's own layout
        need = ctx.needs_input_grad
        return (None, dx if need[1] else None,
                d_beta if need[2] else None, d_rest if need[3] else None,
                d_alpha if need[4] else None, d_gain if need[5] else None,
                d_thr if need[6] else None, d_vr if need[7] else None,
                dv0 if need[8] else None, di0 if need[9] else None, None,
                dz0 if need[11] and wrec is not None else None, d_w, None, None, None, None,
                *(d_adapt[k] if d_adapt is not None and need[17 + k] else None
                  for k in range(5)),
                dw0 if need[22] else None, None)


def per_neuron(value: Any, n: int, like: Tensor) -> Tensor:
    """``value`` (a number, a 0-d or ``[N]``-shaped tensor) as a contiguous ``[n]`` tensor of
    ``like``'s dtype and device: the form the loops read a coefficient in (a tensor already in
    that form is returned itself)."""
    if (isinstance(value, Tensor) and value.shape == (n,) and value.dtype == like.dtype
            and value.device == like.device and value.is_contiguous()):
        return value
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return t.expand(n).contiguous() if t.dim() == 0 else t.reshape(n).contiguous()


def neuron_loop(
    cfg: LoopConfig,
    x: Tensor,
    coefficients: dict[str, Any],
    state: tuple[Tensor | None, ...],
    wrec: Tensor | None = None,
    observed: tuple[Tensor | None, Tensor | None] = (None, None),
    record_current: bool = True,
    record_v: bool = True,
) -> LoopResult:
    """Run ``T`` steps of a (current-based or voltage) neuron population in one fused node.

    Args:
        cfg: static settings (:class:`LoopConfig`).
        x: input current ``[T, B, N]``.
        coefficients: ``beta, rest, alpha, gain, thr, vreset`` — scalars or ``[N]`` tensors
            (may require grad). A voltage model passes ``alpha = 0`` and ``gain = x_gain``.
            An adaptive loop (``cfg.adaptive``) also takes ``rho, kappa, a, b, vleak``
            (:data:`ADAPTATION_NAMES`, module docstring).
        state: initial ``(v, i, refrac, z_prev)`` ``[B, N]`` (``z_prev`` only if recurrent),
            and for an adaptive loop a fifth entry, the adaptation ``w``.
        wrec: recurrent weight ``[N, N]`` (``x_eff,k = x_k + W z_{k-1}``) or ``None``.
        observed: in-the-loop replay — membrane and spikes ``[T, B, N]`` a device observed
            (either may be ``None``). They replace the model's membrane and spikes (reset and
            refractoriness follow them) while the backward pass is the model's evaluated there,
            as :func:`~spikeloop.dynamics.fire` does with an observation.
        record_current: record ``i`` at every step (``False``: ``i`` is empty, which saves
            writing a ``[T, B, N]`` tensor when nobody reads it).
        record_v: record the membrane (``False``: ``v`` is empty when no gradient is needed —
            inference of a spiking population whose membrane nobody reads; the backward pass
            needs the membrane, so with a gradient it is recorded regardless). Non-spiking
            populations always record it: it is their output.

    Returns:
        ``(v, z, i, v_T, i_T, r_T, z_T, w_T)``: recorded membrane (compared with the
        threshold), spikes, synaptic current after each step, and the final state (``w_T``
        empty without adaptation).
    """
    if x.dim() != 3 or x.shape[0] == 0:
        raise ShapeError(f"neuron_loop: x must be [T ≥ 1, B, N], got {tuple(x.shape)}")
    _, batch, n = x.shape
    if cfg.spiking and cfg.eventprop is None and not isinstance(cfg.surrogate, Surrogate):
        raise ParameterError("neuron_loop: a spiking loop needs cfg.surrogate (a Surrogate)")
    if wrec is not None and not cfg.spiking:
        raise ParameterError("neuron_loop: only spiking populations can be recurrent")
    if wrec is not None and tuple(wrec.shape) != (n, n):
        raise ShapeError(f"neuron_loop: wrec must be [{n}, {n}], got {tuple(wrec.shape)}")
    if cfg.adaptive and not cfg.spiking:
        raise ParameterError("neuron_loop: only spiking populations can be adaptive")
    names = ("beta", "rest", "alpha", "gain", "thr", "vreset")
    coefs = [per_neuron(coefficients[k], n, x) for k in names]
    if len(state) != 4 + cfg.adaptive:
        raise ShapeError(f"neuron_loop: state must be (v, i, refrac, z_prev"
                         f"{', w' if cfg.adaptive else ''}), got {len(state)} entries")
    v0, i0, r0, z0 = state[:4]
    if z0 is None:
        z0 = torch.zeros_like(v0)
    named = [("v", v0), ("i", i0), ("refrac", r0), ("z_prev", z0)]
    adapt: list[Tensor | None] = [None] * 6
    if cfg.adaptive:
        missing = [k for k in ADAPTATION_NAMES if k not in coefficients]
        if missing:
            raise ParameterError(f"neuron_loop: an adaptive loop needs the coefficients "
                                 f"{missing}")
        if state[4] is None:
            raise ShapeError("neuron_loop: an adaptive loop needs the initial adaptation w")
        named.append(("w", state[4]))
        adapt = [per_neuron(coefficients[k], n, x).contiguous() for k in ADAPTATION_NAMES]
        adapt.append(state[4].to(dtype=x.dtype, device=x.device).contiguous())
    for name, t in named:
        if tuple(t.shape) != (batch, n):
            raise ShapeError(f"neuron_loop: state {name} must be [{batch}, {n}] like the input, "
                             f"got {tuple(t.shape)}")
    # the kernels read the state as x's dtype on x's device
    state_t = [t.to(dtype=x.dtype, device=x.device) for t in (v0, i0, r0, z0)]
    tensors = [t.contiguous() for t in (x, *coefs, *state_t)]
    for name, o in zip(("v", "spikes"), observed, strict=True):
        if o is not None and tuple(o.shape) != tuple(x.shape):
            raise ShapeError(f"neuron_loop: observed {name} must be {tuple(x.shape)}, "
                             f"got {tuple(o.shape)}")
    seen = [o.detach().to(dtype=x.dtype, device=x.device).contiguous() if o is not None
            else None for o in observed]
    if wrec is not None:
        wrec = wrec.to(dtype=x.dtype, device=x.device)
    if cfg.eventprop is not None:
        if not cfg.spiking or cfg.refrac_steps or cfg.adaptive:
            raise ParameterError("neuron_loop: EventProp on the grid (cfg.eventprop) runs "
                                 "spiking loops without refractoriness or adaptation")
        if any(o is not None for o in observed):
            raise ParameterError("neuron_loop: EventProp on the grid (cfg.eventprop) does not "
                                 "replay observations (in-the-loop training)")
        learned = [name for name, t in (*zip(names, coefs, strict=True),
                                        *zip(("v", "i", "refrac", "z_prev"), state_t,
                                             strict=True))
                   if t is not None and t.requires_grad]
        if learned and torch.is_grad_enabled():
            raise ParameterError(f"neuron_loop: EventProp on the grid (cfg.eventprop) gives "
                                 f"gradients for the input and the recurrent weight only; "
                                 f"{', '.join(learned)} need(s) one")
        record_current = True  # its backward pass reads the current at each spike
    grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (*tensors, wrec, *adapt))
    record_v = record_v or grad or not cfg.spiking
    return LoopResult(_NeuronLoop.apply(cfg, *tensors,
                                        wrec.contiguous() if wrec is not None else None, *seen,
                                        record_current, record_v, *adapt, grad))


# ----------------------------------------------------------------------------- projections
def transposed(w: Tensor) -> Tensor:
    """``w.t().contiguous()`` for a 2-d ``w``: a float32 CPU matrix that autograd need not track
    is copied by the native kernel in 16 × 16 register tiles (about five times faster than
    torch's copy for a 256 × 700 weight), any other by torch."""
    if (w.dim() == 2 and w.is_contiguous() and native.usable(w)
            and not (w.requires_grad and torch.is_grad_enabled())):
        out = torch.empty(w.shape[1], w.shape[0], dtype=torch.float32)
        native.library().sl_transpose(w.shape[0], w.shape[1], w.data_ptr(), out.data_ptr())
        return out
    return w.t().contiguous()


class Compressed:
    """Non-zero entries of a ``[R, K]`` float32 CPU matrix, row by row (CSR; needs the native
    kernels: check :func:`spikeloop.kernels.native.usable` first)."""

    product: Tensor | None = None
    """``x @ w_t`` where the compression summed it (``__init__`` with ``w_t``), else ``None``."""
    version: int | None = None
    """The listed tensor's ``_version`` when the list was made, where it can be changed in
    place afterwards (a loop's spikes): the list stands for it only while that holds."""

    def __init__(self, x: Tensor, w_t: Tensor | None = None, max_density: float = 1.0) -> None:
        """Compress ``x`` in one pass. With ``w_t [K, M]`` the same pass also sums each row's
        events into ``self.product`` ``= x @ w_t`` (the floats of :meth:`matmul`) while the row
        is in cache, unless the rows turn out far denser than ``max_density`` (more than twice
        as dense, after a margin): then ``self.product`` is ``None``."""
        lib = native.library()
        rows, cols = x.shape
        self.rows, self.cols = rows, cols
        self.row_ptr = torch.empty(rows + 1, dtype=torch.int64)
        nnz = ctypes.c_int64(0)
        if w_t is None:
            handle = lib.sl_compress_begin(rows, cols, x.data_ptr(), self.row_ptr.data_ptr(),
                                           ctypes.byref(nnz))  # one pass over x
        else:
            y = torch.empty(rows, w_t.shape[1], dtype=torch.float32)
            done = ctypes.c_int(0)
            handle = lib.sl_compress_product_begin(
                rows, cols, x.data_ptr(), self.row_ptr.data_ptr(), ctypes.byref(nnz),
                w_t.shape[1], w_t.data_ptr(), y.data_ptr(), max_density, ctypes.byref(done))
            self.product = y if done.value else None
        if handle is None:
            raise MemoryError(f"Compressed: no memory for the events of a {rows} x {cols} input")
        self.nnz = nnz.value
        self._take(handle)

    def _take(self, handle: int) -> None:
        """``col`` and ``val`` (``self.nnz`` entries) copied from the per-thread buffers of a
        native listing (``handle``), which are freed."""
        lib = native.library()
        try:
            self.col = torch.empty(self.nnz, dtype=torch.int32)
            self.val = torch.empty(self.nnz, dtype=torch.float32)
        except BaseException:
            lib.sl_compress_end(handle, None, None)  # frees the buffers
            raise
        lib.sl_compress_end(handle, self.col.data_ptr(), self.val.data_ptr())

    @classmethod
    def from_handle(cls, cols: int, row_ptr: Tensor, handle: int) -> Compressed:
        """The events a native kernel listed into per-thread buffers (``handle``, freed here)
        with their CSR offsets in ``row_ptr [R+1]``."""
        self = cls.__new__(cls)
        self.rows, self.cols = row_ptr.numel() - 1, cols
        self.row_ptr, self.nnz = row_ptr, int(row_ptr[-1])
        self._take(handle)
        return self

    @classmethod
    def from_csr(cls, cols: int, row_ptr: Tensor, col: Tensor, val: Tensor) -> Compressed:
        """The events given as CSR arrays (``row_ptr`` int64 ``[R+1]``, ``col`` int32 and
        ``val`` float32) of a matrix with ``cols`` columns; ``row_ptr`` may be a slice of a
        larger matrix's (its offsets index ``col`` and ``val`` as they are)."""
        self = cls.__new__(cls)
        self.rows, self.cols = row_ptr.numel() - 1, cols
        self.row_ptr, self.col, self.val = row_ptr, col, val
        self.nnz = int(row_ptr[-1] - row_ptr[0])
        return self

    def active_rows(self) -> Tensor:
        """Indices of the rows that hold at least one non-zero entry."""
        return (self.row_ptr[1:] > self.row_ptr[:-1]).nonzero().squeeze(-1)

    def matmul(self, w_t: Tensor) -> Tensor:
        """``x @ w_t`` for ``w_t [K, M]``."""
        y = torch.empty(self.rows, w_t.shape[1], dtype=torch.float32)
        native.library().sl_event_matmul(self.rows, w_t.shape[1], self.row_ptr.data_ptr(),
                                         self.col.data_ptr(), self.val.data_ptr(),
                                         w_t.data_ptr(), y.data_ptr())
        return y

    def weight_grad(self, dy: Tensor) -> Tensor:
        """``xᵀ @ dy`` (``[K, M]``) for ``dy [R, M]``: the rows of ``dy`` stream by once, in
        blocks that stay in cache; within a block each input's events sum their ``dy`` rows in
        registers, added into the result once per block (a small result takes each event's row
        directly). Threads take ranges of rows into copies added in thread order
        (deterministic)."""
        out = torch.empty(self.cols, dy.shape[1], dtype=torch.float32)
        if native.library().sl_event_weight_grad_rows(
                self.rows, self.cols, dy.shape[1], self.row_ptr.data_ptr(),
                self.col.data_ptr(), self.val.data_ptr(), dy.data_ptr(), out.data_ptr()):
            raise MemoryError(f"weight gradient: no memory to sort the events of a {self.rows} x "
                              f"{self.cols} input by input")
        return out


_SPIKE_SLOT = "_spikeloop_spike_slot"


def _spike_slot(x: Tensor) -> list[Compressed] | None:
    """The slot a fused recurrent loop attached to its spikes for their event list, where ``x``
    is all of those spikes (the loop's output itself or a reshape of it), else ``None``."""
    base = x if x._base is None else x._base
    slot = getattr(base, _SPIKE_SLOT, None)
    if (slot is None or x.data_ptr() != base.data_ptr() or x.numel() != base.numel()
            or not x.is_contiguous()):
        return None
    return slot


def event_weight_grad(x: Tensor, dy: Tensor, events: Compressed | None = None) -> Tensor:
    """``xᵀ @ dy`` using only the non-zero entries of ``x [R, K]`` (dense fallback);
    ``events``: ``x``'s event list where it was made already (then ``x`` is not read)."""
    if native.usable(x, dy):
        native.set_threads()
        listed = events if events is not None else Compressed(x.contiguous())
        return listed.weight_grad(dy.contiguous())
    return x.t() @ dy


class _EventLinear(Function):
    @staticmethod
    def forward(ctx, x2, weight, bias, compressed, w_t, product):
        native.set_threads()
        y = product if product is not None else compressed.matmul(w_t)
        if bias is not None:
            y += bias
        ctx.compressed = compressed
        ctx.save_for_backward(weight)
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, dy):
        (weight,) = ctx.saved_tensors
        dy = dy.contiguous()
        need = ctx.needs_input_grad
        dx = dy @ weight if need[0] else None
        dw = None
        if need[1]:
            native.set_threads()
            dw = transposed(ctx.compressed.weight_grad(dy))  # in the weight's own layout
        db = dy.sum(0) if ctx.has_bias and need[2] else None
        return dx, dw, db, None, None, None


def _axon_tap_events(events: Compressed, lo: Tensor, frac: Tensor,
                     steps: tuple[int, int, int, int]) -> tuple[Compressed, tuple]:
    """From the delay line's events: the projection's events of the output rows ``[T, B]``
    (input ``k``'s event ``v`` at line step ``u`` lands at step ``u − D + lo_k`` with value
    ``(1 − f_k) v`` and one step later with ``f_k v``, both in column ``k``; targets outside
    ``[0, T)`` left out), and the ``lo`` taps alone in rows ``t = −s … T − 1`` (``s = 1``; 0
    where ``D = 0`` and the two taps coincide) as ``(row_ptr, col, val, s)``, from which the
    weight gradient takes both taps' sums."""
    length, batch, t, d = steps
    s = 1 if d >= 1 else 0
    lo_ptr = torch.empty((t + s) * batch + 1, dtype=torch.int64)
    lo_col = torch.empty(events.nnz, dtype=torch.int32)
    lo_val = torch.empty(events.nnz, dtype=torch.float32)
    row_ptr = torch.empty(t * batch + 1, dtype=torch.int64)
    col = torch.empty(2 * events.nnz, dtype=torch.int32)
    val = torch.empty(2 * events.nnz, dtype=torch.float32)
    if native.library().sl_delay_axon_events(
            length, batch, t, d, events.cols, events.row_ptr.data_ptr(), events.col.data_ptr(),
            events.val.data_ptr(), lo.data_ptr(), frac.data_ptr(), s, lo_ptr.data_ptr(),
            lo_col.data_ptr(), lo_val.data_ptr(), row_ptr.data_ptr(), col.data_ptr(),
            val.data_ptr()) < 0:
        raise MemoryError(f"per-axon delays: no memory to place the events of {t * batch} rows")
    return (Compressed.from_csr(events.cols, row_ptr, col, val), (lo_ptr, lo_col, lo_val, s))


def _delay_line_events(x: Tensor, state: Tensor | None, steps: int, weight: Tensor,
                       bias: Tensor | None, frac: Tensor, max_density: float,
                       check_finite: str | None) -> Compressed | None:
    """The events of the delay line ``[state; x]`` (rows ``L·B``, ``L = D + T``; ``state
    [D, B, K]`` or ``None``: zeros), compressed from ``state`` and ``x`` without writing the
    line out, where the event-driven delay kernels apply (float32 CPU tensors with the native
    kernels, inputs that need no gradient, at most ``max_density`` of the line non-zero), else
    ``None``. ``check_finite``: raise :class:`~spikeloop.errors.NonFiniteError` if an entry of
    the line is NaN or infinite (they are events, so the events show it)."""
    if (not native.usable(x, state, weight, bias, frac) or x.requires_grad or x.dim() != 3
            or (state is not None and (state.requires_grad or state.shape != (steps,
                                                                               *x.shape[1:])))):
        return None
    t, batch, k = x.shape
    native.set_threads()
    now = Compressed(x.detach().reshape(t * batch, k).contiguous())
    if state is None:
        row_ptr = torch.cat([now.row_ptr.new_zeros(steps * batch), now.row_ptr])
        events = Compressed.from_csr(k, row_ptr, now.col, now.val)
    else:
        before = Compressed(state.detach().reshape(steps * batch, k).contiguous())
        events = Compressed.from_csr(
            k, torch.cat([before.row_ptr, now.row_ptr[1:] + before.nnz]),
            torch.cat([before.col, now.col]), torch.cat([before.val, now.val]))
    _check_finite(events.val, check_finite)
    return None if events.nnz > max_density * (steps + t) * batch * k else events


def event_delay_axon(
    x: Tensor, state: Tensor | None, weight: Tensor, lo: Tensor, frac: Tensor,
    bias: Tensor | None, max_steps: int, max_density: float = 0.15,
    check_finite: str | None = None,
) -> Tensor | None:
    r"""The per-axon delayed projection of :func:`spikeloop.kernels.ops.delayed_linear` from
    the events of its delay line, or ``None`` where this path does not apply.

    The delay line is ``state [D, B, K]`` (the last ``D = max_steps`` inputs of the previous
    call; ``None``: zeros) followed by ``x [T, B, K]``, its events taken from the two without
    writing it out; input ``k`` reaches the output ``lo[k]`` steps later with weight
    ``1 − frac[k]`` and ``hi_k = lo[k] + 1`` steps later (``lo[k]`` where ``D = 0``) with
    ``frac[k]``:

    .. math:: y_t = \sum_k \big((1 − f_k)\, x_{t − lo_k}[k] + f_k\, x_{t − hi_k}[k]\big)
              W[:, k] \;(+\, b)

    Every input event becomes (at most) two output events, ``(1 − f_k) v`` at its ``lo`` tap and
    ``f_k v`` one step later, projected with ``W`` itself by the event product
    (:class:`Compressed`). The ``lo`` taps are placed once; the ``hi`` taps of a step are the
    ``lo`` taps of the step before, so the backward pass runs the event weight gradient twice
    over those rows (reading ``dy`` only where the taps land), giving both taps' sums
    ``A_m[k] = Σ_events v\, dy_{t+m_k}``, and one native pass forms
    ``∂L/∂W[:, k] = (1 − f_k) A_{lo} + f_k A_{hi}`` and ``∂L/∂f_k = (A_{hi} − A_{lo}) · W[:, k]``,
    without the dense ``dy W`` that the gradient of the delayed input would need. It applies
    to float32 CPU tensors with the native kernels, inputs that need no gradient (input data;
    a delay line fed by a hidden layer takes the dense path, which also gives ``∂L/∂x``) and
    at most ``max_density`` non-zero entries in the line. ``check_finite``: as for
    :func:`event_linear`, on the line's events. ``y [T, B, out]``.
    """
    events = _delay_line_events(x, state, max_steps, weight, bias, frac, max_density,
                                check_finite)
    if events is None:
        return None
    t, batch, _ = x.shape
    f = frac.detach().contiguous()
    taps, lo_taps = _axon_tap_events(events, lo.contiguous(), f,
                                     (t + max_steps, batch, t, max_steps))
    y = _EventDelayAxon.apply(weight, frac, bias, taps, lo_taps)
    return y.view(t, batch, weight.shape[0])


class _EventDelayAxon(Function):
    """``y = Σ_events v' W[:, k] (+ b)`` over the per-axon tap events (values ``(1 − f_k) v``
    and ``f_k v``; see :func:`event_delay_axon`); gradients for ``weight``, ``frac`` and
    ``bias`` from the ``lo`` taps' rows."""

    @staticmethod
    def forward(ctx, weight, frac, bias, taps, lo_taps):
        native.set_threads()
        y = taps.matmul(transposed(weight.detach()))
        if bias is not None:
            y += bias
        ctx.lo_taps, ctx.has_bias = lo_taps, bias is not None
        ctx.save_for_backward(weight.detach().contiguous(), frac.detach().contiguous())
        return y

    @staticmethod
    def backward(ctx, dy):
        w, f = ctx.saved_tensors
        need = ctx.needs_input_grad
        dw = df = None
        if need[0] or need[1]:
            native.set_threads()
            dy = dy.contiguous()
            n_out, n_in = w.shape
            lo_ptr, lo_col, lo_val, s = ctx.lo_taps
            rows = dy.shape[0]  # T B; the lo rows t = −s … T − 1 lie s B rows ahead
            shift = (lo_ptr.numel() - 1) - rows
            a_lo = Compressed.from_csr(n_in, lo_ptr[shift:], lo_col, lo_val).weight_grad(dy)
            a_hi = (Compressed.from_csr(n_in, lo_ptr[:rows + 1], lo_col, lo_val).weight_grad(dy)
                    if s else a_lo)
            dw, df = torch.empty_like(w), torch.empty_like(f)
            tmp = torch.empty(2 * w.numel(), dtype=torch.float32)
            native.library().sl_delay_axon_grads(n_out, n_in, a_lo.data_ptr(), a_hi.data_ptr(),
                                                 w.data_ptr(), f.data_ptr(), dw.data_ptr(),
                                                 df.data_ptr(), tmp.data_ptr())
        db = dy.sum(0) if ctx.has_bias and need[2] else None
        return (dw if need[0] else None, df if need[1] else None, db, None, None)


def synapse_tap_offsets(lo: Tensor, length: int, steps: int) -> tuple[Tensor, int]:
    """Where the native per-synapse kernels find synapse ``(j, i)``'s first tap: ``off_t [in,
    out]`` (int32) ``= j P + lo[j, i]`` in their output-major buffer of ``P = length + steps + 2``
    time slots per output (``length`` steps of the delay line, ``steps = D``), and ``P``."""
    slots = length + steps + 2
    return (lo.t() + torch.arange(lo.shape[0]) * slots).to(torch.int32).contiguous(), slots


class _EventDelaySynapse(Function):
    """``y_t[j] = Σ_i W[j, i] ((1 − f_ji) x_{t−lo_ji}[i] + f_ji x_{t−lo_ji−1}[i]) (+ b_j)``
    from the events of the delay line (see :func:`event_delay_synapse`); gradients for
    ``weight``, ``frac`` and ``bias``."""

    @staticmethod
    def forward(ctx, weight, frac, bias, events, lo, steps):
        lib = native.library()
        native.set_threads()
        length, batch, t, d = steps
        n_out, n_in = weight.shape
        w_t = transposed(weight.detach())  # [in, out]: the inner loops run over outputs
        f_t = transposed(frac.detach())
        off_t, _ = synapse_tap_offsets(lo, length, d)
        w2_t = torch.stack([(1 - f_t) * w_t, f_t * w_t], -1).contiguous()  # (w_lo, w_hi)
        if d == 0:  # the tap lo + 1 = 1 lies beyond D = 0: dropped
            w2_t[..., 1] = 0
        y = torch.empty(t * batch, n_out, dtype=torch.float32)
        lib.sl_delay_synapse_forward(length, batch, t, d, n_in, n_out,
                                     events.row_ptr.data_ptr(), events.col.data_ptr(),
                                     events.val.data_ptr(), off_t.data_ptr(), w2_t.data_ptr(),
                                     y.data_ptr())
        if bias is not None:
            y += bias
        ctx.events, ctx.steps, ctx.has_bias = events, steps, bias is not None
        ctx.save_for_backward(w_t, f_t, off_t)
        return y

    @staticmethod
    def backward(ctx, dy):
        w_t, f_t, off_t = ctx.saved_tensors
        length, batch, t, d = ctx.steps
        need = ctx.needs_input_grad
        dw_t = torch.empty_like(w_t)
        g_t = torch.empty_like(w_t)
        events = ctx.events
        if need[0] or need[1]:
            dy = dy.contiguous()
            native.set_threads()
            if native.library().sl_delay_synapse_backward(
                    length, batch, t, d, w_t.shape[0], w_t.shape[1], events.row_ptr.data_ptr(),
                    events.col.data_ptr(), events.val.data_ptr(), off_t.data_ptr(),
                    f_t.data_ptr(), w_t.data_ptr(), dy.data_ptr(), dw_t.data_ptr(),
                    g_t.data_ptr()):
                raise MemoryError(f"per-synapse delays: no memory to sort the events of a "
                                  f"batch row of {length} steps by input")
        db = dy.sum(0) if ctx.has_bias and need[2] else None
        return (transposed(dw_t) if need[0] else None, transposed(g_t) if need[1] else None,
                db, None, None, None)


def event_delay_synapse(
    x: Tensor, state: Tensor | None, weight: Tensor, lo: Tensor, frac: Tensor,
    bias: Tensor | None, max_steps: int, max_density: float = 0.15,
    check_finite: str | None = None,
) -> Tensor | None:
    r"""The per-synapse delayed projection of :func:`spikeloop.kernels.ops.delayed_linear` from
    the events of its delay line, or ``None`` where this path does not apply.

    The delay line is ``state [D, B, K]`` (the last ``D = max_steps`` inputs of the previous
    call; ``None``: zeros) followed by ``x [T, B, K]``; the synapse from input ``i`` to output
    ``j`` carries ``W[j, i]``
    ``lo[j, i]`` steps late with weight ``1 − frac[j, i]`` and ``lo[j, i] + 1`` steps late with
    ``frac[j, i]`` (as :func:`~spikeloop.kernels.ops.delay_taps` gives them: ``lo ≤ D − 1``
    for ``D ≥ 1``; for ``D = 0`` only the tap ``lo = 0`` exists):

    .. math:: y_t[j] = \sum_i W_{ji} \big((1 − f_{ji})\, x_{t − lo_{ji}}[i]
              + f_{ji}\, x_{t − lo_{ji} − 1}[i]\big) \;(+\, b_j)

    Every input event ``(u, b, i, v)`` of the delay line adds ``v (1 − f_{ji}) W_{ji}`` to
    ``y[u − D + lo_{ji}, b, j]`` and ``v f_{ji} W_{ji}`` to ``y[u − D + lo_{ji} + 1, b, j]``
    for every output ``j`` (targets outside ``[0, T)`` dropped). The backward pass reads ``dy``
    only where the events land: with ``A_lo = Σ_e v\, dy[u − D + lo_{ji}, b, j]`` and
    ``A_hi`` likewise at ``lo + 1``,

    .. math:: ∂L/∂W_{ji} = (1 − f_{ji}) A_{lo} + f_{ji} A_{hi}, \quad
              ∂L/∂f_{ji} = (A_{hi} − A_{lo})\, W_{ji}, \quad ∂L/∂b_j = \sum dy[:, :, j]

    (no dense kernel ``[out, in, D + 1]`` and no convolution). It applies where
    :func:`event_delay_axon` does: float32 CPU tensors with the native kernels, inputs that
    need no gradient and at most ``max_density`` non-zero entries in the line.
    ``check_finite``: as for :func:`event_linear`, on the line's events. ``y [T, B, out]``.
    """
    if x.dim() == 3 and weight.shape[0] * (x.shape[0] + 2 * max_steps + 2) >= 2**31:
        return None  # the native kernel's int32 offsets into its [out, time] buffer
    events = _delay_line_events(x, state, max_steps, weight, bias, frac, max_density,
                                check_finite)
    if events is None:
        return None
    t, batch, _ = x.shape
    length = t + max_steps
    y = _EventDelaySynapse.apply(weight, frac, bias, events, lo,
                                 (length, batch, t, max_steps))
    return y.view(t, batch, weight.shape[0])


def _check_finite(values: Tensor, who: str | None) -> None:
    """:func:`~spikeloop.checks.require_finite` when ``who`` is given."""

    if who is not None:
        require_finite(values, who, finite=native.all_finite(values))


def event_linear(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, max_density: float = 0.15,
    check_finite: str | None = None,
) -> Tensor:
    """``x @ weightᵀ + bias`` over the last dimension, event-driven where ``x`` is sparse.

    Uses the native kernels when ``x`` is a float32 CPU tensor with at most ``max_density``
    non-zero entries; otherwise the dense ``torch.nn.functional.linear``. Gradients: ``dW`` from
    the non-zero inputs only, ``dx = dy W`` (dense) when ``x`` requires grad.
    ``check_finite``: raise :class:`~spikeloop.errors.NonFiniteError` ("<check_finite>: input
    holds NaN or infinite values") if ``x`` does. On the event path only the non-zero entries
    are read for it (NaN and ±inf compare unequal to 0, so they are among them), not all of
    ``x``: the simulator lets an input layer read by event-driven projections skip its own
    pass over the input. Without gradient (``torch.no_grad()``) the native path is one pass
    over ``x`` that sums each row's events as it finds them, with no event list (the same
    floats); rows far denser than ``max_density`` (twice) hand the decision to the event
    list.
    """
    if not native.usable(x, weight, bias) or x.dim() == 0 or x.shape[-1] != weight.shape[1]:
        _check_finite(x, check_finite)
        return torch.nn.functional.linear(x, weight, bias)  # (raises on a shape mismatch)
    lead = x.shape[:-1]
    x2 = x.detach().reshape(-1, x.shape[-1]).contiguous()
    native.set_threads()
    slot = _spike_slot(x)  # a fused recurrent loop's spikes: the list it made of them, if any
    listed = slot[0] if slot else None
    if listed is not None and ((listed.rows, listed.cols) != tuple(x2.shape)
                               or listed.version != x._version):  # (x changed in place)
        listed = None
    if listed is None and not torch.is_grad_enabled():  # one pass, no list (no backward)
        w_t = transposed(weight.detach())
        y = torch.empty(x2.shape[0], weight.shape[0], dtype=torch.float32)
        bad = ctypes.c_int(0)
        nnz = native.library().sl_event_matmul_dense(
            x2.shape[0], x2.shape[1], weight.shape[0], x2.data_ptr(), w_t.data_ptr(),
            y.data_ptr(), max_density, ctypes.byref(bad))
        if nnz >= 0:  # (-1: rows far denser than max_density; decided below from all of x)
            if bad.value:
                _check_finite(x2, check_finite)
            if nnz > max_density * x2.numel():
                return torch.nn.functional.linear(x, weight, bias)
            if bias is not None:
                y += bias
            return y.reshape(*lead, weight.shape[0])
    # Wᵀ before the pass over x: the parameter check has just read W, x would evict it; the
    # pass lists x's events and sums each row's into the product while the row is in cache
    w_t = transposed(weight.detach())
    compressed = listed if listed is not None else Compressed(x2, w_t, max_density)
    # the product, taken off the list (which a backward pass or a later reader may keep)
    product, compressed.product = compressed.product, None
    _check_finite(compressed.val, check_finite)  # every non-finite entry is an event
    if slot is not None and listed is None:  # the loop's weight gradient reads this list too
        compressed.version = x._version  # (and a later reader of the same spikes)
        slot[:] = [compressed]
    if compressed.nnz > max_density * x2.numel():
        return torch.nn.functional.linear(x, weight, bias)
    if not torch.is_grad_enabled():
        y = product if product is not None else compressed.matmul(w_t)
        if bias is not None:
            y += bias
        return y.reshape(*lead, weight.shape[0])
    y = _EventLinear.apply(x.reshape(-1, x.shape[-1]), weight, bias, compressed, w_t, product)
    return y.reshape(*lead, weight.shape[0])
