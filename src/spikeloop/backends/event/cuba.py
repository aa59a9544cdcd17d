r"""Closed-form maths of the CUBA LIF neuron between events (float64).

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from spikeloop.dynamics.neurons import current_gain, decay

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

    def take(self, idx: Tensor) -> _Neuron:
        """The constants indexed by ``idx``: the neurons ``idx`` (any shape), or all of them
        with axes added for broadcasting (``(None, slice(None), None)``)."""
        return _Neuron(*(getattr(self, k)[idx] for k in
                         ("tau_mem", "tau_syn", "v_leak", "r", "v_threshold", "v_reset")),
                       self.t_refrac, self.spiking)


def membrane_slope(v: Tensor, i: Tensor, c: _Neuron) -> Tensor:
    r"""The membrane's time derivative :math:`\dot V = (v_{leak} - V + r I)/τ_{mem}` at the
    state ``(v, i)``: the one place the event maths states it (crossing search, EventProp's
    jump conditions)."""
    return (c.v_leak - v + c.r * i) / c.tau_mem


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


def _first_crossing(v0: Tensor, i0: Tensor, length: Tensor, c: _Neuron) -> Tensor:
    """First ``s ∈ (0, length]`` with ``V(s) = ϑ`` from ``(v0 < ϑ, i0)``, else ``+inf``.

    ``V(s) − ϑ`` has at most one extremum ``s*`` (:func:`_extremum`), so ``(0, s₁]`` and
    ``[s₁, length]`` with ``s₁ = min(s*, length)`` are monotone; the crossing lies in the first
    one whose right end is above threshold and is found by bracketed Newton iteration (slope
    :func:`membrane_slope`).
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
