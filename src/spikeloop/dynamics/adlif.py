r"""Adaptive LIF with subthreshold and spike-triggered adaptation (adLIF), the neuron of the
recurrent adaptive SNNs for speech (Bittar & Garner 2022, 94.6 % on SHD as quoted in issue 17).

Continuous time, with an adaptation variable ``w`` in membrane units:

.. math::
    τ_{mem}\,\dot v = (v_{leak} - v) + r\,x - w,\qquad
    τ_{adapt}\,\dot w = -w + a\,(v - v_{leak}) \;(+\,b\text{ per spike, discrete})

Discretised like the voltage LIF (:func:`~spikeloop.dynamics.lif_step`), ``ρ = e^{-dt/τ_{adapt}}``
(``1 − dt/τ_adapt`` for Euler):

.. math::
    v_{k+1} = β v_k + (1-β) v_{leak} + (1-β)(r x_k - w_k),\qquad
    z_k = H(v_{k+1} - ϑ) \text{ (then reset)},\\
    w_{k+1} = ρ w_k + a\,(v_{k+1} - v_{leak}) + b\,z_k

with ``v_{k+1}`` the membrane compared with the threshold (before reset). This is the update
of the adLIF layer in the SpArch code of Bittar & Garner as read here
(``w_t = β w_{t−1} + a u_{t−1} + b s_{t−1}``, ``u_t = α(u_{t−1} − s_{t−1}) + (1−α)(W x_t − w_t)``:
subtractive reset by the threshold ``1``), written with time constants and a leak potential.
``a < 0`` makes the subthreshold coupling resonant; ``b > 0`` adapts the firing rate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

from torch import Tensor

from spikeloop.dynamics import models
from spikeloop.dynamics.neurons import (
    Coefficients,
    LIFParameters,
    Method,
    Observation,
    ResetMode,
    Scalar,
    check_time_constants,
    decay,
    fire,
    integrate_voltage,
)
from spikeloop.dynamics.surrogate import Surrogate


@dataclass(frozen=True)
class AdLIFParameters(LIFParameters):
    """Voltage LIF plus the adaptation ``w`` (``tau_adapt``, coupling ``a``, jump ``b``);
    subtractive reset by default, as in the adLIF literature."""

    tau_adapt: Scalar = 100e-3
    a: Scalar = 0.5
    b: Scalar = 0.5
    reset: ResetMode = "subtract"

    def coefficients(self, dt: float, method: Method = "exact") -> Coefficients:
        """The voltage LIF's, plus ``adapt_decay = ρ`` and ``adapt_gain = 1 − β`` (the weight
        of ``w`` on the membrane)."""
        c = LIFParameters.coefficients(self, dt, method)
        check_time_constants(dt, tau_adapt=self.tau_adapt)
        return replace(c, adapt_decay=decay(self.tau_adapt, dt, method), adapt_gain=1 - c.beta)


class AdLIFState(NamedTuple):
    """Membrane, adaptation and refractory counter."""

    v: Tensor
    w: Tensor
    refrac: Tensor


def adlif_step(
    x: Tensor,
    s: AdLIFState,
    p: AdLIFParameters,
    c: Coefficients,
    surrogate: Surrogate,
    observed: Observation | None = None,
) -> tuple[Tensor, Tensor, AdLIFState]:
    """One step of the adLIF (module docstring). Returns ``(z, v_observed, state)``."""
    v = integrate_voltage(x, s.v, c) - c.adapt_gain * s.w
    z, v_obs, v_next, refrac = fire(v, s.refrac, p, c, surrogate, observed)
    w = c.adapt_decay * s.w + p.a * (v_obs - p.v_leak) + p.b * z
    return z, v_obs, AdLIFState(v_next, w, refrac)


def _adaptation(p: AdLIFParameters, c: Coefficients) -> models.Adaptation:
    """``w`` in the fused kernel: ``κ = 1 − β``, ``ρ``, coupling ``a``, jump ``b``, ``v_leak``."""
    return models.Adaptation("w", decay=c.adapt_decay, gain=c.adapt_gain, coupling=p.a,
                             jump=p.b, v_leak=p.v_leak)


ADLIF = models.register(models.NeuronModel(
    "AdLIF", AdLIFParameters, AdLIFState, adlif_step, currents=0,
    engines=frozenset({"reference", "fused"}), config="adlif", adaptation=_adaptation,
    unsupported={"event": (
        "its adaptation w is driven by the membrane (coupling a·(v − v_leak)), so between "
        "events v and w form a coupled two-dimensional linear system whose solution may "
        "oscillate (complex eigenvalues): the membrane is not a sum of real exponentials, on "
        "which the exact threshold search relies (and it is a voltage model, fed no synaptic "
        "current); the AHP neuron AdaptiveLIF, whose adaptation current is not coupled to v, "
        "runs on the event backend")}))
