r"""Multi-time-scale block (as in Rockpool's SynNet for ambient audio).

The neurons of a layer are split into ``scales`` groups whose synaptic time constants form a
geometric pyramid ``τ_k = base · 2^k · dt`` (``k = 0 … scales−1``; 2, 4, 8, 16 ms for
``dt = 1 ms``, ``base = 2``). Each is an exact power of two times ``dt``, so on the chip it
is an exact decay shift ``dash_k = log2(base) + k`` with no rounding: the layer sees its
input through filters from fast to slow.

Two synaptic currents per neuron. The chip gives every hidden neuron two currents with their
own dashes, ``dv ∝ I₀ + I₁`` with ``I_s ← I_s − decay_{d_s}(I_s) + Σ_i W_{is} z_i``, so one
neuron can see its input through two time scales at once. :class:`~spikeloop.nn.CubaLIF2` is
the float model of such a neuron (a population of ``N`` neurons fed by a ``Linear`` of ``2N``
outputs: the first ``N`` drive current 0 with ``tau_syn``, the last ``N`` current 1 with
``tau_syn2``, ``v_{k+1} = β v_k + (1−β) v_leak + r g₀ I₀' + r g₁ I₁'``); the mapper puts its
two halves into synapses 0 and 1. Its step is :func:`~spikeloop.dynamics.cuba_lif2_step`.
With ``CubaLIF`` hidden layers the mapper fills synapse 0 only, leaves the synapse-1 weights 0
and sets ``dash_syn[:, 1] = dash_syn[:, 0]`` (a valid register; the unused current stays 0). The
pyramid of :func:`synnet` is spread across neurons; ``synnet(..., tau_syn2=...)`` adds a second
current of another time scale to every hidden neuron.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from spikeloop.checks import check_bool, check_dt, check_int, show
from spikeloop.errors import ArgumentTypeError, ParameterError
from spikeloop.network.network import Network
from spikeloop.nn import CubaLI, CubaLIF, CubaLIF2, Input, Linear


def multi_time_scale_taus(size: int, dt: float, scales: int, base: int = 2) -> Tensor:
    """Per-neuron ``τ_syn`` for a layer of ``size`` neurons: ``scales`` contiguous groups
    (sizes differ by at most one) with ``τ_k = base · 2^k · dt``."""
    size = check_int(size, "size", low=1)
    scales = check_int(scales, "scales", low=1)
    base = check_int(base, "base")
    dt = check_dt(dt)
    if size < scales:
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
    dt = check_dt(dt)
    if isinstance(hidden, int | str) or not isinstance(hidden, Sequence):
        raise ArgumentTypeError(f"hidden must be a list of layer sizes, got {show(hidden)} "
                                f"({type(hidden).__name__})")
    recurrent = check_bool(recurrent, "recurrent")
    layers: dict[str, object] = {"input": Input(inputs)}
    prev = inputs
    tau_mem = tau_mem if tau_mem is not None else 2 * dt
    for k, size in enumerate(hidden):
        size = check_int(size, f"hidden[{k}]", low=1)
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
