r"""Multi-time-scale block (as in Rockpool's SynNet for ambient audio).

The neurons of a layer are split into ``scales`` groups whose synaptic time constants form a
geometric pyramid ``τ_k = base · 2^k · dt`` (``k = 0 … scales−1``; 2, 4, 8, 16 ms for
``dt = 1 ms``, ``base = 2``). Each is an exact power of two times ``dt``, so on the chip it
is an exact decay shift ``dash_k = log2(base) + k`` with no rounding: the layer sees its
input through filters from fast to slow.

Why each hidden neuron uses one of its two synaptic currents. The chip gives every hidden
neuron two currents with their own dashes, ``dv ∝ I₀ + I₁`` with
``I_s ← I_s − decay_{d_s}(I_s) + Σ_i W_{is} z_i``, so one neuron could see its input through
two time scales at once. The float models in :mod:`spikeloop.nn` have no counterpart: a
``CubaLIF`` has a single synaptic current (one ``τ_syn`` per neuron) and a ``Linear`` writes into
it, so a traced graph cannot express a neuron driven by two differently filtered copies of its
input (two projections into one population sum into that one current; the mapper places them
as two blocks of synapse 0). Using synapse 1 would therefore need a
two-current neuron model in ``spikeloop.nn`` / ``spikeloop.dynamics`` (outside this package) and
its float dynamics matched to the chip's; until then the mapper fills synapse 0, leaves the
synapse-1 weights 0 and sets ``dash_syn[:, 1] = dash_syn[:, 0]`` (so the register is valid and
the unused current stays 0). The pyramid is spread across neurons instead of across the two
synapses of each neuron, which costs neurons (``scales`` groups) but no accuracy for the
float model being mapped. The simulator and QAT model already run both currents (tested
bit-exactly against ``xylosim`` with random weights and dashes on both synapses).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from spikeloop.errors import ParameterError
from spikeloop.nn import CubaLI, CubaLIF, Input, Linear, Network


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
    recurrent: bool = False,
) -> Network:
    """A SynNet-like stack: ``Input → (Linear → CubaLIF with multi-time-scale τ_syn) × L →
    Linear → CubaLI``, every time constant a power of two times ``dt`` (subtractive reset,
    as on the chip). ``tau_mem`` defaults to ``2·dt``, the readout's to ``16·dt``."""
    layers: dict[str, object] = {"input": Input(inputs)}
    prev = inputs
    tau_mem = tau_mem if tau_mem is not None else 2 * dt
    for k, size in enumerate(hidden):
        layers[f"fc{k}"] = Linear(prev, size)
        layers[f"hidden{k}"] = CubaLIF(
            size, dt=dt, tau_mem=tau_mem, tau_syn=multi_time_scale_taus(size, dt, scales, base),
            reset="subtract", recurrent=recurrent)
        prev = size
    layers["readout_fc"] = Linear(prev, outputs)
    layers["readout"] = CubaLI(outputs, dt=dt, tau_syn=2 * dt,
                               tau_mem=readout_tau_mem if readout_tau_mem else 16 * dt)
    return Network(layers)
