r"""Multi-time-scale block (as in Rockpool's SynNet for ambient audio).

The neurons of a layer are split into ``scales`` groups whose synaptic time constants form a
geometric pyramid ``τ_k = base · 2^k · dt`` (``k = 0 … scales−1``; 2, 4, 8, 16 ms for
``dt = 1 ms``, ``base = 2``). Each is an exact power of two times ``dt``, so on the chip it
is an exact decay shift ``dash_k = log2(base) + k`` with no rounding: the layer sees its
input through filters from fast to slow.

**Physical units.** The pyramid ``τ_j = 2^j ms`` (octaves, as SynNet describes it) is this
pyramid at ``dt = 1 ms``. On the chip every ``τ`` must be ``2^dash · dt`` with
``dash ≥ 1`` for a synaptic current (``dash = 0`` empties the current before it reaches the
membrane), so the pyramid is tied to the time step: with the audio front end's 10 ms bins it
is 20, 40, 80, 160 ms (``base = 2``), the same octave spacing starting one octave above
``dt``; the 1–16 ms filters of the 1 ms grid would need ``dash < 1``. :func:`pyramid_taus`
lists the time constants of a pyramid; ``synnet(..., taus=[...])`` takes them explicitly (in
seconds, each checked to be ``2^k · dt`` with ``1 ≤ k ≤ 15``).

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
from spikeloop.network.audio_blocks import (
    power_of_two_steps,
    recurrent_lif,
    wavesense,
    wavesense_neurons,
)
from spikeloop.network.network import Network
from spikeloop.nn import CubaLI, CubaLIF, CubaLIF2, Input, Linear

__all__ = ["multi_time_scale_taus", "power_of_two_steps", "pyramid_taus", "recurrent_lif",
           "synnet", "wavesense", "wavesense_neurons"]


def pyramid_taus(dt: float, scales: int, base: int = 2) -> tuple[float, ...]:
    """The time constants of a multi-time-scale pyramid, ``τ_k = base · 2^k · dt``
    (``k = 0 … scales−1``), in seconds.

    Raises:
        ParameterError: ``scales < 1`` or ``base`` not a power of two ``≥ 2``.
        TimeStepError: ``dt``.
    """
    dt = check_dt(dt)
    scales = check_int(scales, "scales", low=1)
    base = check_int(base, "base")
    if base < 2 or base & (base - 1):
        raise ParameterError(f"base must be a power of two ≥ 2 (exact shifts), got {base}")
    return tuple(base * dt * 2.0**k for k in range(scales))


def multi_time_scale_taus(size: int, dt: float, scales: int | None = None, base: int = 2, *,
                          taus: Sequence[float] | None = None) -> Tensor:
    """Per-neuron ``τ_syn`` for a layer of ``size`` neurons: ``scales`` contiguous groups
    (sizes differ by at most one) with ``τ_k = base · 2^k · dt`` (:func:`pyramid_taus`;
    ``scales`` defaults to 4), or, with ``taus``, one group per given time constant (each
    ``2^k · dt``, ``1 ≤ k ≤ 15``: an exact synaptic decay shift on the chip).

    Raises:
        ParameterError: more groups than neurons, ``scales`` given with a different number of
            ``taus``, a time constant that is not ``2^k · dt`` (``1 ≤ k ≤ 15``), a bad ``base``.
    """
    size = check_int(size, "size", low=1)
    dt = check_dt(dt)
    if taus is None:
        taus = pyramid_taus(dt, 4 if scales is None else scales, base)
    else:
        if isinstance(taus, str) or not isinstance(taus, Sequence) or not taus:
            raise ArgumentTypeError(f"taus must be a non-empty list of time constants in "
                                    f"seconds, got {show(taus)}")
        if scales is not None and check_int(scales, "scales", low=1) != len(taus):
            raise ParameterError(f"scales = {scales} but {len(taus)} taus are given (give one)")
        for k, tau in enumerate(taus):
            power_of_two_steps(tau, dt, f"taus[{k}]", low=1)
        taus = tuple(float(t) for t in taus)
    scales = len(taus)
    if size < scales:
        raise ParameterError(f"need 1 ≤ scales ≤ size, got scales={scales}, size={size}")
    group = torch.arange(size) * scales // size
    return torch.tensor(taus, dtype=torch.float64)[group].float()


def synnet(
    inputs: int, hidden: Sequence[int], outputs: int, *, dt: float = 1e-3,
    scales: int | None = None, base: int = 2, tau_mem: float | None = None,
    readout_tau_mem: float | None = None, recurrent: bool = False,
    tau_syn2: float | None = None, taus: Sequence[float] | None = None,
    method: str = "exact",
) -> Network:
    """A SynNet-like stack: ``Input → (Linear → CubaLIF with multi-time-scale τ_syn) × L →
    Linear → CubaLI``, every time constant a power of two times ``dt`` (subtractive reset,
    as on the chip). ``tau_mem`` defaults to ``2·dt``, the readout's to ``16·dt``.
    ``tau_syn2``: hidden layers of :class:`CubaLIF2` whose second current has this time
    constant (feed-forward only). The pyramid: ``scales`` (default 4) and ``base`` give
    ``τ_k = base · 2^k · dt`` (:func:`pyramid_taus`); ``taus`` lists the time constants in
    seconds instead (each ``2^k · dt``, ``1 ≤ k ≤ 15``), e.g. ``taus=[0.02, 0.04, 0.08, 0.16]``
    at ``dt = 10 ms``. ``method``: every population's integration, ``"exact"`` (decay
    ``exp(−dt/τ)``) or ``"euler"`` (``1 − dt/τ = 1 − 2^−dash``: the chip's own decay)."""
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
        group_taus = multi_time_scale_taus(size, dt, scales, base, taus=taus)
        if tau_syn2 is None:
            layers[f"fc{k}"] = Linear(prev, size)
            layers[f"hidden{k}"] = CubaLIF(size, dt=dt, tau_mem=tau_mem, tau_syn=group_taus,
                                           reset="subtract", recurrent=recurrent,
                                           method=method)
        else:
            layers[f"fc{k}"] = Linear(prev, 2 * size)
            layers[f"hidden{k}"] = CubaLIF2(size, dt=dt, tau_mem=tau_mem, tau_syn=group_taus,
                                            tau_syn2=tau_syn2, reset="subtract",
                                            recurrent=recurrent, method=method)
        prev = size
    layers["readout_fc"] = Linear(prev, outputs)
    layers["readout"] = CubaLI(outputs, dt=dt, tau_syn=2 * dt,
                               tau_mem=readout_tau_mem if readout_tau_mem else 16 * dt,
                               method=method)
    return Network(layers)
