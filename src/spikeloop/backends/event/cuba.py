r"""Closed-form maths of the CUBA LIF neuron (and its adaptive, AHP form) between events
(float64).

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

The adaptive (AHP) LIF (:func:`~spikeloop.dynamics.adaptive_lif_step`) adds the current ``A``,
:math:`τ_{adapt} \dot A = -A` and :math:`A \leftarrow A + b` at each spike, entering the membrane
as :math:`-r A` (:math:`τ_{mem}\dot V = v_{leak} - V + r I - r A`); its closed form is the dense
step's again, :math:`V(t+s) = \dots - r g^{a}_s A` with :math:`g^{a}_s` the same
:func:`~spikeloop.dynamics.neurons.current_gain` for :math:`τ_{adapt}`, and
:math:`A(t+s) = e^{-s/τ_{adapt}} A`. ``V̇`` is then a sum of three exponentials (with
polynomial factors where time constants coincide) and may have two zeros per interval:
:func:`_first_crossing` splits the interval into monotone pieces first (see there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from spikeloop.dynamics.neurons import current_gain, decay
from spikeloop.dynamics.neurons import membrane_slope as _slope

_F = torch.float64  # internal precision of the event simulation
_INF = math.inf
_NEWTON_ITERATIONS = 100


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
    tau_adapt: Tensor | None = None  # AHP current's time constant (None: no AHP current)
    b: Tensor | None = None  # its jump at a spike (``adapt_increment``)

    @property
    def adaptive(self) -> bool:
        """Whether the neurons carry the AHP current ``A`` (the state gains ``a``)."""
        return self.b is not None

    def take(self, idx: Tensor) -> _Neuron:
        """The constants indexed by ``idx``: the neurons ``idx`` (any shape), or all of them
        with axes added for broadcasting (``(None, slice(None), None)``)."""
        adapt = (self.tau_adapt[idx], self.b[idx]) if self.adaptive else (None, None)
        return _Neuron(*(getattr(self, k)[idx] for k in
                         ("tau_mem", "tau_syn", "v_leak", "r", "v_threshold", "v_reset")),
                       self.t_refrac, self.spiking, *adapt)


def membrane_slope(v: Tensor, i: Tensor, c: _Neuron, a: Tensor | None = None) -> Tensor:
    r"""The membrane's time derivative :math:`\dot V = (v_{leak} - V + r I - r A)/τ_{mem}` at
    the state ``(v, i, a)`` (``a = None``: no AHP current, the dense model's
    :func:`~spikeloop.dynamics.neurons.membrane_slope`): what the event maths reads (crossing
    search, EventProp's jump conditions)."""
    if a is None:
        return _slope(v, i, c.v_leak, c.r, c.tau_mem)
    return (c.v_leak - v + c.r * i - c.r * a) / c.tau_mem


def _adapt(a: Tensor, s: Tensor | float, c: _Neuron) -> Tensor:
    r"""The AHP current after ``s ≥ 0``: :math:`A(t+s) = e^{-s/τ_{adapt}} A(t)` (the dense
    step's ``adapt_decay``)."""
    return decay(c.tau_adapt, s, "exact") * a


def _advance(v: Tensor, i: Tensor, s: Tensor, c: _Neuron,
             a: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Free evolution over ``s ≥ 0``: the dense model's exact step with ``dt = s``. Returns
    ``(v, i)``; with the AHP current ``a`` the membrane includes its term ``−r g^a_s a`` (the
    current itself evolves by :func:`_adapt`)."""
    beta = decay(c.tau_mem, s, "exact")
    gain = current_gain(c.tau_syn, c.tau_mem, s, "exact")
    v1 = c.v_leak + beta * (v - c.v_leak) + c.r * gain * i
    if a is not None:
        v1 = v1 - c.r * current_gain(c.tau_adapt, c.tau_mem, s, "exact") * a
    return v1, decay(c.tau_syn, s, "exact") * i


def _advance_clamped(
    v: Tensor, i: Tensor, t0: Tensor, t1: Tensor, rel: Tensor, c: _Neuron,
    a: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Evolve from ``t0`` to ``t1`` with the membrane clamped until the release time ``rel``
    (``v`` is ``v_reset`` while refractory; ``i`` and the AHP current ``a`` keep decaying).
    Returns ``(v, i, i_at_release)`` (``a`` at ``t1`` is :func:`_adapt` over ``t1 − t0``)."""
    s_ref = (rel - t0).clamp(min=0.0)
    s_ref = torch.minimum(s_ref, t1 - t0)
    i_mid = decay(c.tau_syn, s_ref, "exact") * i
    a_mid = _adapt(a, s_ref, c) if a is not None else None
    v1, i1 = _advance(v, i_mid, (t1 - t0) - s_ref, c, a_mid)
    return v1, i1, i_mid


def _extremum(v0: Tensor, i0: Tensor, length: Tensor, c: _Neuron) -> tuple[Tensor, Tensor]:
    """The membrane's one stationary point ``s*`` after ``(v0, i0)``, the zero of
    :func:`membrane_slope` along the free evolution, in closed form: ``V̇(s) = 0`` ⇔
    ``e^{κs} = 1 + κ y``, ``κ = 1/τ_mem − 1/τ_syn``, ``y = τ_syn (1 − (v0 − v_leak)/(r i0))``
    (``= τ_syn τ_mem V̇(0)/(r i0)``), so ``s* = y log(1 + κy)/(κy)`` (series near ``κy = 0``,
    which covers ``τ_mem = τ_syn``).
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


def _first_crossing(v0: Tensor, i0: Tensor, length: Tensor, c: _Neuron,
                    a0: Tensor | None = None) -> Tensor:
    """First ``s ∈ (0, length]`` with ``V(s) = ϑ`` from ``(v0 < ϑ, i0)``, else ``+inf``.

    ``V(s) − ϑ`` has at most one extremum ``s*`` (:func:`_extremum`), so ``(0, s₁]`` and
    ``[s₁, length]`` with ``s₁ = min(s*, length)`` are monotone; the crossing lies in the first
    one whose right end is above threshold and is found by bracketed Newton iteration (slope
    :func:`membrane_slope`). With an AHP current ``a0`` the entries with ``a0 ≠ 0`` go to
    :func:`_first_crossing_adaptive` (those with ``a0 = 0`` follow the CUBA path above, so
    ``b = 0`` reproduces the CUBA LIF bit for bit).
    """
    if a0 is not None:
        return _split_adaptive(v0, i0, length, c, a0)
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
        slope = membrane_slope(vx, ix, cc)
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


def _split_adaptive(v0: Tensor, i0: Tensor, length: Tensor, c: _Neuron, a0: Tensor) -> Tensor:
    """:func:`_first_crossing` with the AHP current ``a0``: entries with ``a0 = 0`` by the CUBA
    search (their membrane is the CUBA one), the others by :func:`_first_crossing_adaptive`."""
    plain = a0 == 0
    if bool(plain.all()):
        return _first_crossing(v0, i0, length, c)
    out = torch.full_like(v0, _INF)
    per = bool(c.tau_mem.dim()) and c.tau_mem.shape == v0.shape
    for mask, cuba in ((plain, True), (~plain, False)):
        if not bool(mask.any()):
            continue
        idx = mask.nonzero().squeeze(1)
        cc = c.take(idx) if per else c
        out[idx] = (_first_crossing(v0[idx], i0[idx], length[idx], cc) if cuba else
                    _first_crossing_adaptive(v0[idx], i0[idx], a0[idx], length[idx], cc))
    return out


def _derivatives(v0: Tensor, i0: Tensor, a0: Tensor, s: Tensor,
                 c: _Neuron) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""``(V, V̇, V̈, V⃛)`` at ``s`` after ``(v0, i0, a0)`` on the free evolution: ``V`` and
    ``V̇`` by :func:`_advance` and :func:`membrane_slope`, the higher ones by differentiating
    :math:`τ_{mem}\dot V = v_{leak} - V + r I - r A` with :math:`\dot I = -I/τ_{syn}`,
    :math:`\dot A = -A/τ_{adapt}`:
    :math:`τ_{mem}\ddot V = -\dot V - r I/τ_{syn} + r A/τ_{adapt}`,
    :math:`τ_{mem}\dddot V = -\ddot V + r I/τ_{syn}^2 - r A/τ_{adapt}^2`."""
    v, i = _advance(v0, i0, s, c, a0)
    a = _adapt(a0, s, c)
    d1 = membrane_slope(v, i, c, a)
    d2 = (-d1 - c.r * i / c.tau_syn + c.r * a / c.tau_adapt) / c.tau_mem
    d3 = (-d2 + c.r * i / c.tau_syn ** 2 - c.r * a / c.tau_adapt ** 2) / c.tau_mem
    return v, d1, d2, d3


def _root(fn, lo: Tensor, hi: Tensor, f_lo: Tensor, f_hi: Tensor,
          f_tol: Tensor | float) -> Tensor:
    """The zero of ``fn`` (``x → (f, f')``) in ``[lo, hi]`` where ``f`` is monotone and
    ``f_lo``, ``f_hi`` (its end values) do not have the same strict sign: safeguarded Newton
    iteration (a bisection step whenever Newton leaves the bracket), from the secant point, to
    float64 precision (``|f| ≤ f_tol``, or the step or the bracket below ``1e-13`` of ``hi``)."""
    sign = torch.where(f_hi >= f_lo, torch.ones_like(f_lo), -torch.ones_like(f_lo))
    g_lo, g_hi = sign * f_lo, sign * f_hi  # g = sign·f increases: g_lo ≤ 0 ≤ g_hi
    x = lo + (hi - lo) * (-g_lo / (g_hi - g_lo).clamp(min=1e-300))
    scale = hi.abs().clamp(min=1e-12)
    for _ in range(_NEWTON_ITERATIONS):
        f, df = fn(x)
        g, dg = sign * f, sign * df
        lo = torch.where(g < 0, x, lo)
        hi = torch.where(g >= 0, x, hi)
        newton = x - g / torch.where(dg > 0, dg, torch.ones_like(dg))
        ok = (dg > 0) & (newton >= lo) & (newton <= hi)
        x_new = torch.where(ok, newton, 0.5 * (lo + hi))
        x_new = torch.where(g == 0, x, x_new)
        done = ((g.abs() <= f_tol) | ((x_new - x).abs() <= 1e-13 * scale + 1e-16)
                | (hi - lo <= 1e-13 * scale))
        x = x_new
        if bool(done.all()):
            break
    return x


def _first_crossing_adaptive(v0: Tensor, i0: Tensor, a0: Tensor, length: Tensor,
                             c: _Neuron) -> Tensor:
    r"""First ``s ∈ (0, length]`` with ``V(s) = ϑ`` from ``(v0 < ϑ, i0, a0)`` with the AHP
    current, else ``+inf`` (constants ``c`` per entry).

    :math:`\dot V(s) = c_m e^{-s/τ_{mem}} + c_s e^{-s/τ_{syn}} + c_a e^{-s/τ_{adapt}}` (with
    polynomial factors where time constants coincide). :math:`h(s) = \dot V(s) e^{s/τ_{syn}}`
    has :math:`h' = e^{s/τ_{syn}} D`, :math:`D = \ddot V + \dot V/τ_{syn}`, in which the
    :math:`τ_{syn}` term cancels: ``D`` is a two-term sum :math:`d_m e^{-s/τ_{mem}} +
    d_a e^{-s/τ_{adapt}}` (or :math:`(d_0 + d_1 s) e^{-s/τ}` for :math:`τ_{adapt} = τ_{mem}`,
    and likewise in the other coincidences), which has at most one zero. So ``h``, hence
    ``V̇``, is monotone on ``[0, s₁]`` and ``[s₁, length]`` (``s₁`` the zero of ``D`` if inside,
    else ``length``) and has at most one zero on each; ``V`` is monotone between the
    consecutive points ``0 ≤ q₁ ≤ q₂ ≤ length`` (the zeros of ``V̇``, or the ends of the
    pieces where there is none), and the crossing lies in the first of the three pieces whose
    right end is at or above threshold. Every zero (of ``D``, of ``V̇``, of ``V − ϑ``) is
    bracketed by a sign change on a monotone piece and found by :func:`_root`; all values come
    from the closed form (:func:`_derivatives`), whose gains take the limits of coinciding
    time constants, so equal ``τ_adapt``, ``τ_syn``, ``τ_mem`` need no special case.
    """
    out = torch.full_like(v0, _INF)
    if v0.numel() == 0:
        return out
    per = bool(c.tau_mem.dim()) and c.tau_mem.shape == v0.shape

    def solve(idx: Tensor, kind: str, lo: Tensor, hi: Tensor, f_lo: Tensor,
              f_hi: Tensor) -> Tensor:
        cc = c.take(idx) if per else c
        v, i, a = v0[idx], i0[idx], a0[idx]
        if kind == "D":  # zero of D = V̈ + V̇/τ_syn
            def fn(x: Tensor) -> tuple[Tensor, Tensor]:
                _, d1, d2, d3 = _derivatives(v, i, a, x, cc)
                return d2 + d1 / cc.tau_syn, d3 + d2 / cc.tau_syn
            tol: Tensor | float = 0.0
        elif kind == "slope":  # zero of V̇
            def fn(x: Tensor) -> tuple[Tensor, Tensor]:
                return _derivatives(v, i, a, x, cc)[1:3]
            tol = 0.0
        else:  # V = ϑ
            def fn(x: Tensor) -> tuple[Tensor, Tensor]:
                vx, d1, _, _ = _derivatives(v, i, a, x, cc)
                return vx - cc.v_threshold, d1
            tol = 1e-13 * (cc.v_threshold.abs() + 1)
        return _root(fn, lo[idx], hi[idx], f_lo[idx], f_hi[idx], tol)

    zero = torch.zeros_like(v0)
    _, d1_0, d2_0, _ = _derivatives(v0, i0, a0, zero, c)
    v_end, d1_end, d2_end, _ = _derivatives(v0, i0, a0, length, c)
    big_d0, big_d_end = d2_0 + d1_0 / c.tau_syn, d2_end + d1_end / c.tau_syn
    split = big_d0 * big_d_end < 0  # D changes sign: V̇ may have two zeros
    s1 = length.clone()
    if bool(split.any()):
        idx = split.nonzero().squeeze(1)
        s1[idx] = solve(idx, "D", zero, length, big_d0, big_d_end)
    _, d1_1, _, _ = _derivatives(v0, i0, a0, s1, c)
    q1, q2 = s1.clone(), length.clone()
    left = d1_0 * d1_1 < 0  # a zero of V̇ in (0, s₁)
    if bool(left.any()):
        idx = left.nonzero().squeeze(1)
        q1[idx] = solve(idx, "slope", zero, s1, d1_0, d1_1)
    right = split & (d1_1 * d1_end < 0)  # a zero of V̇ in (s₁, length)
    if bool(right.any()):
        idx = right.nonzero().squeeze(1)
        q2[idx] = solve(idx, "slope", s1, length, d1_1, d1_end)
    f0 = v0 - c.v_threshold
    f1 = _advance(v0, i0, q1, c, a0)[0] - c.v_threshold
    f2 = _advance(v0, i0, q2, c, a0)[0] - c.v_threshold
    f3 = v_end - c.v_threshold
    first, second, third = f1 >= 0, f2 >= 0, f3 >= 0
    found = first | second | third
    if not bool(found.any()):
        return out
    lo = torch.where(first, zero, torch.where(second, q1, q2))
    hi = torch.where(first, q1, torch.where(second, q2, length))
    f_lo = torch.where(first, f0, torch.where(second, f1, f2))
    f_hi = torch.where(first, f1, torch.where(second, f2, f3))
    idx = found.nonzero().squeeze(1)
    out[idx] = solve(idx, "crossing", lo, hi, f_lo, f_hi)
    return out
