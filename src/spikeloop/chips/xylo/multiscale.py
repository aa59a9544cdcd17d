r"""Multi-time-scale block (as in Rockpool's SynNet for ambient audio).

The neurons of a layer are split into ``scales`` groups whose synaptic time constants form a
geometric pyramid ``τ_k = base · 2^k · dt`` (``k = 0 … scales−1``; 2, 4, 8, 16 ms for
``dt = 1 ms``, ``base = 2``). Each is an exact power of two times ``dt``, so on the chip it
is an exact decay shift ``dash_k = log2(base) + k`` with no rounding: the layer sees its
input through filters from fast to slow.

Two synaptic currents per neuron. The chip gives every hidden neuron two currents with their
own dashes, ``dv ∝ I₀ + I₁`` with ``I_s ← I_s − decay_{d_s}(I_s) + Σ_i W_{is} z_i``, so one
neuron can see its input through two time scales at once. :class:`CubaLIF2` is the float model
of such a neuron (a population of ``N`` neurons fed by a ``Linear`` of ``2N`` outputs: the
first ``N`` drive current 0 with ``tau_syn``, the last ``N`` current 1 with ``tau_syn2``,
``v_{k+1} = β v_k + (1−β) v_leak + r g₀ I₀' + r g₁ I₁'``); the mapper puts its two halves
into synapses 0 and 1. The step reuses :func:`~spikeloop.dynamics.neurons.integrate_current` and
:func:`~spikeloop.dynamics.fire` (threshold, reset, in-the-loop observation). With ``CubaLIF``
hidden layers the mapper fills synapse 0 only, leaves the synapse-1 weights 0 and sets
``dash_syn[:, 1] = dash_syn[:, 0]`` (a valid register; the unused current stays 0). The
pyramid of :func:`synnet` is spread across neurons; ``synnet(..., tau_syn2=...)`` adds a second
current of another time scale to every hidden neuron.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import torch
from torch import Tensor

from spikeloop import dynamics as dyn
from spikeloop.checks import check_sequence
from spikeloop.dynamics.neurons import Scalar, current_drive, integrate_current
from spikeloop.dynamics.surrogate import Surrogate
from spikeloop.errors import ParameterError, ShapeError
from spikeloop.ir import Node, describe
from spikeloop.network import Network
from spikeloop.nn import CubaLI, CubaLIF, Input, Linear
from spikeloop.nn.populations import Population, PopulationState
from spikeloop.observables import Observables


@dataclass(frozen=True)
class CubaLIF2Parameters(dyn.CubaLIFParameters):
    """Current-based LIF with a second synaptic current (time constant ``tau_syn2``)."""

    tau_syn2: Scalar = 5e-3

    def second(self) -> dyn.CubaLIFParameters:
        """The parameters as seen by current 1 (``tau_syn ← tau_syn2``)."""
        values = {f.name: getattr(self, f.name) for f in fields(dyn.CubaLIFParameters)}
        return dyn.CubaLIFParameters(**{**values, "tau_syn": self.tau_syn2})

    def coefficients(self, dt: float, method: dyn.Method = "exact") -> dyn.Coefficients:
        """Current 0's coefficients (current 1's: ``self.second().coefficients``); checks
        ``tau_syn2`` too."""
        dyn.check_time_constants(dt, tau_syn2=self.tau_syn2)
        return dyn.CubaLIFParameters.coefficients(self, dt, method)


class CubaLIF2State(NamedTuple):
    """Membrane, the two synaptic currents and the refractory counter."""

    v: Tensor
    i: Tensor
    i1: Tensor
    refrac: Tensor


class CubaLIF2(Population):
    """Current-based LIF population with two synaptic currents (see the module docstring).

    Its input is ``[T, B, 2N]``: ``x[..., :N]`` feeds current 0 (``tau_syn``),
    ``x[..., N:]`` current 1 (``tau_syn2``). Feed-forward only (1-d, no ``recurrent``).
    """

    model = "CubaLIF2"
    params_cls = CubaLIF2Parameters
    state_cls = CubaLIF2State
    fusable = False  # no fused kernel: the reference loop of the shared step pieces

    def __init__(self, shape: int, **kwargs: Any) -> None:
        if kwargs.get("recurrent"):
            raise ParameterError("CubaLIF2 has no recurrent projection (which current would it "
                                 "feed?); use CubaLIF for recurrent layers")
        super().__init__(shape, **kwargs)
        if len(self.shape) != 1:
            raise ShapeError(f"CubaLIF2 populations are 1-d, got shape {self.shape}")

    def coefficients(self, p: Any) -> tuple[dyn.Coefficients, dyn.Coefficients]:  # type: ignore
        """Coefficients of current 0 and current 1."""
        return (p.coefficients(self.dt, self.method),
                p.second().coefficients(self.dt, self.method))

    def forward(
        self, x: Tensor, state: PopulationState | None = None,
        observed: Observables | None = None,
    ) -> tuple[Observables, PopulationState]:
        """Run over ``x [T, B, 2N]`` (see :meth:`Population.forward`)."""
        check_sequence(x, (2 * self.size,), type(self).__name__)
        return self.simulate(x, self.parameter_record(), state, observed)

    def _step(
        self, x: Tensor, s: Any, p: Any, c: Any, obs: dyn.Observation | None,
        surrogate: Surrogate,
    ) -> tuple[Any, Tensor, Any]:
        r"""``I_s' = I_s + x_s``; ``v = β v + (1−β) v_leak + r g₀ I₀' + r g₁ I₁'``; fire;
        ``I_s ← α_s I_s'``."""
        c0, c1 = c
        i0, i1 = s.i + x[..., :self.size], s.i1 + x[..., self.size:]
        v = integrate_current(i0, s.v, c0) + current_drive(i1, c1)
        z, v_obs, v, refrac = dyn.fire(v, s.refrac, p, c0, surrogate, obs)
        return z, v_obs, CubaLIF2State(v, c0.alpha * i0, c1.alpha * i1, refrac)


@describe.register
def _(module: CubaLIF2, name: str, inputs: tuple[str, ...],
      in_shape: tuple[int, ...] | None) -> list[Node]:
    if in_shape is not None and tuple(in_shape) != (2 * module.size,):
        raise ShapeError(f"population {name!r} (CubaLIF2, {module.size} neurons) takes "
                         f"2 × {module.size} = {2 * module.size} inputs (one block per "
                         f"synaptic current), got {in_shape}")
    return describe.dispatch(Population)(module, name, inputs, None)


def multi_time_scale_taus(size: int, dt: float, scales: int, base: int = 2) -> Tensor:
    """Per-neuron ``τ_syn`` for a layer of ``size`` neurons: ``scales`` contiguous groups
    (sizes differ by at most one) with ``τ_k = base · 2^k · dt``."""
    if scales < 1 or size < scales:
        raise ParameterError(f"need 1 ≤ scales ≤ size, got scales={scales}, size={size}")
    if base < 2 or base & (base - 1):
        raise ParameterError(f"base must be a power of two ≥ 2 (exact shifts), got {base}")
    group = torch.arange(size) * scales // size
    return (base * dt * torch.exp2(group.double())).float()


def synnet(
    inputs: int, hidden: Sequence[int], outputs: int, *, dt: float = 1e-3, scales: int = 4,
    base: int = 2, tau_mem: float | None = None, readout_tau_mem: float | None = None,
    recurrent: bool = False, tau_syn2: float | None = None,
) -> Network:
    """A SynNet-like stack: ``Input → (Linear → CubaLIF with multi-time-scale τ_syn) × L →
    Linear → CubaLI``, every time constant a power of two times ``dt`` (subtractive reset,
    as on the chip). ``tau_mem`` defaults to ``2·dt``, the readout's to ``16·dt``.
    ``tau_syn2``: hidden layers of :class:`CubaLIF2` whose second current has this time
    constant (feed-forward only)."""
    layers: dict[str, object] = {"input": Input(inputs)}
    prev = inputs
    tau_mem = tau_mem if tau_mem is not None else 2 * dt
    for k, size in enumerate(hidden):
        taus = multi_time_scale_taus(size, dt, scales, base)
        if tau_syn2 is None:
            layers[f"fc{k}"] = Linear(prev, size)
            layers[f"hidden{k}"] = CubaLIF(size, dt=dt, tau_mem=tau_mem, tau_syn=taus,
                                           reset="subtract", recurrent=recurrent)
        else:
            layers[f"fc{k}"] = Linear(prev, 2 * size)
            layers[f"hidden{k}"] = CubaLIF2(size, dt=dt, tau_mem=tau_mem, tau_syn=taus,
                                            tau_syn2=tau_syn2, reset="subtract",
                                            recurrent=recurrent)
        prev = size
    layers["readout_fc"] = Linear(prev, outputs)
    layers["readout"] = CubaLI(outputs, dt=dt, tau_syn=2 * dt,
                               tau_mem=readout_tau_mem if readout_tau_mem else 16 * dt)
    return Network(layers)
