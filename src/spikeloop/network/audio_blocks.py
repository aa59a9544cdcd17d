r"""Audio models for the Xylo-like chip: :func:`wavesense` (spiking dilated temporal
convolutions) and :func:`recurrent_lif` (a plain recurrent LIF baseline of a given size).
:func:`~spikeloop.network.blocks.synnet` is the multi-time-scale model.

**WaveSense** (Weidel & Sheik 2021, arXiv:2111.01456; structure recalled from the paper and from
Rockpool's ``WaveSenseNet``, its reference implementation, not re-read here). A WaveNet-style
stack in which each dilated temporal convolution of kernel 2 is replaced by a layer of
two-current neurons: the layer's ``Linear`` of ``2C`` outputs feeds current 0, time constant
``τ_s`` (the "now" tap), and current 1, time constant ``d·τ_s`` (the "``d`` steps ago" tap) —
Rockpool's ``tau_syn = [base_tau_syn, dilation · base_tau_syn]`` (recalled). In
:class:`~spikeloop.nn.CubaLIF2` terms, for block ``k`` with dilation ``d_k``::

    I₀ ← α₀ I₀ + W₀ x_k          α₀ = 1 − 2^{−a},        τ_s   = 2^a dt
    I₁ ← α₁ I₁ + W₁ x_k          α₁ = 1 − 2^{−a−log₂d},  d·τ_s = 2^{a+log₂ d} dt
    v  ← β v + g₀ I₀ + g₁ I₁,    spike when v ≥ ϑ, v ← v − ϑ

so both time constants are exact powers of two times ``dt`` (decay shifts ``a`` and
``a + log₂ d`` on the chip, no rounding) when ``τ_s = 2^a dt`` (``a ≥ 1``) and ``d`` is a
power of two. The structure (``C`` residual channels, ``S`` skip channels)::

    input ─ fc_in ─ hidden(C)                          x₁ = z_hidden
    block k:  x_k ─ dil{k} (C→2C) ─ wave{k}(C, CubaLIF2: τ_s, d_k τ_s)
              wave{k} ─ res_fc{k} (C→C) ─ res{k}(C)     x_{k+1} = x_k + z_res{k}
              wave{k} ─ skip_fc{k} (C→S) ─ skip{k}(S)
    Σ_k z_skip{k} ─ readout_fc (S→O) ─ readout(O)

On the chip every sum of spike trains is an alias: ``hidden → res1 → res2 → …`` is one chain
(``x_{k+1}`` is carried by ``res{k}``'s outgoing weights) and every ``skip{k}`` aliases the
last skip population. The last block's residual output feeds nothing in the reference model;
it is left out here (it would cost ``C`` neurons). Hidden neurons:
``C + n (2C + S) − C``; every hop between populations costs one chip step (see
:mod:`spikeloop.chips.xylo.mapper`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from spikeloop.checks import check_choice, check_dt, check_int, check_real, show
from spikeloop.errors import ArgumentTypeError, ParameterError
from spikeloop.network.graph_network import GraphNetwork
from spikeloop.network.network import Network
from spikeloop.nn import CubaLI, CubaLIF, CubaLIF2, Input, Linear

READOUTS = {"li": CubaLI, "lif": CubaLIF}
"""Readout populations of :func:`wavesense` and :func:`recurrent_lif`: a leaky integrator
(membrane readout) or spiking LIF neurons (spike-count readout), both one current."""


def power_of_two_steps(tau: float, dt: float, who: str, low: int = 0, high: int = 15) -> int:
    """``k`` with ``tau = 2^k · dt`` (relative tolerance 1e-9), ``low ≤ k ≤ high``: a time
    constant the chip realises exactly as the decay shift ``k``.

    Raises:
        ArgumentTypeError: ``tau`` is not a real number.
        ParameterError: it is not a power of two times ``dt``, or ``k`` is out of range.
    """
    tau = check_real(tau, who, 0, low_open=True)
    ratio = tau / dt
    k = round(math.log2(ratio))
    if abs(ratio - 2.0**k) > 1e-9 * ratio:
        raise ParameterError(f"{who} = {tau * 1e3:g} ms is not a power of two times dt = "
                             f"{dt * 1e3:g} ms (τ/dt = {ratio:g}); the chip's decay shifts realise "
                             "τ = 2^k·dt only")
    if not low <= k <= high:
        raise ParameterError(f"{who} = {tau * 1e3:g} ms is 2^{k}·dt; the chip needs "
                             f"2^{low}·dt ≤ {who} ≤ 2^{high}·dt (decay shift {low}…{high})")
    return k


def _sizes(value: object, who: str) -> tuple[int, ...]:
    if isinstance(value, int | str) or not isinstance(value, Sequence):
        raise ArgumentTypeError(f"{who} must be a list of integers, got {show(value)} "
                                f"({type(value).__name__})")
    if not value:
        raise ParameterError(f"{who} must hold at least one entry, got {show(value)}")
    return tuple(check_int(v, f"{who}[{k}]", low=1) for k, v in enumerate(value))


def wavesense(
    inputs: int, channels: int, dilations: Sequence[int], skip_channels: int, outputs: int, *,
    dt: float = 10e-3, tau_syn: float | None = None, tau_mem: float | None = None,
    readout: str = "li", readout_tau_mem: float | None = None, v_threshold: float = 1.0,
    method: str = "exact",
) -> GraphNetwork:
    r"""A WaveSense network (structure in the module docstring) as a :class:`GraphNetwork`.

    Args:
        inputs: input channels (16 on the chip).
        channels: ``C``, the residual channels (neurons of ``hidden``, every ``wave{k}`` and
            ``res{k}``).
        dilations: one block per entry, each a power of two ``≥ 1``, e.g. ``(2, 4, 8, 16)``:
            block ``k``'s second current has ``τ = d_k · tau_syn``.
        skip_channels: ``S``, neurons of every ``skip{k}``.
        outputs: readout neurons (≤ 8 on the chip).
        dt: time step in seconds (10 ms: the audio front end's bins).
        tau_syn: ``τ_s``, every first synaptic current (and the readout's); default ``2·dt``;
            ``2^a·dt`` with ``a ≥ 1``.
        tau_mem: membrane time constant of the hidden neurons, default ``2·dt``;
            ``2^m·dt``.
        readout: ``"li"`` (:class:`CubaLI`, read the membrane) or ``"lif"`` (:class:`CubaLIF`).
        readout_tau_mem: the readout's membrane time constant, default ``16·dt``.
        v_threshold: firing threshold of every spiking population.
        method: every population's integration, ``"exact"`` (decay ``exp(−dt/τ)``) or
            ``"euler"`` (``1 − dt/τ = 1 − 2^−dash``, the chip's own decay).

    Raises:
        ArgumentTypeError: a size or time constant of the wrong type, ``dilations`` not a list.
        ParameterError: a size ``< 1``, no dilations, a dilation not a power of two, a time
            constant that is not ``2^k·dt`` or whose shift ``k`` leaves the chip's range
            (synaptic ``1 … 15``, membrane ``0 … 15``; ``d·τ_s`` included), an unknown
            ``readout``.
        TimeStepError: ``dt``.
    """
    dt = check_dt(dt)
    inputs = check_int(inputs, "inputs", low=1)
    channels = check_int(channels, "channels", low=1)
    skip_channels = check_int(skip_channels, "skip_channels", low=1)
    outputs = check_int(outputs, "outputs", low=1)
    dilations = _sizes(dilations, "dilations")
    for k, d in enumerate(dilations):
        if d & (d - 1):
            raise ParameterError(f"dilations[{k}] = {d} is not a power of two; the second "
                                 "current's τ = d·tau_syn must be an exact decay shift")
    out_cls = READOUTS[check_choice(readout, "readout", READOUTS)]
    tau_syn = 2 * dt if tau_syn is None else tau_syn
    tau_mem = 2 * dt if tau_mem is None else tau_mem
    readout_tau_mem = 16 * dt if readout_tau_mem is None else readout_tau_mem
    a = power_of_two_steps(tau_syn, dt, "tau_syn", low=1)
    power_of_two_steps(tau_mem, dt, "tau_mem")
    power_of_two_steps(readout_tau_mem, dt, "readout_tau_mem")
    for k, d in enumerate(dilations):
        if a + int(math.log2(d)) > 15:
            raise ParameterError(
                f"dilations[{k}] = {d}: d·tau_syn = 2^{a + int(math.log2(d))}·dt exceeds the "
                f"chip's longest synaptic time constant 2^15·dt ({2**15 * dt:g} s)")
    v_threshold = check_real(v_threshold, "v_threshold", 0, low_open=True)
    lif = {"dt": dt, "tau_mem": tau_mem, "tau_syn": tau_syn, "v_threshold": v_threshold,
           "reset": "subtract", "method": method}
    layers: dict[str, object] = {"input": Input(inputs), "fc_in": Linear(inputs, channels),
                                 "hidden": CubaLIF(channels, **lif)}
    wiring: dict[str, list[str]] = {"fc_in": ["input"], "hidden": ["fc_in"]}
    x = ["hidden"]  # the populations whose spike sum is the next block's input
    skips = []
    for k, d in enumerate(dilations, start=1):
        layers[f"dil{k}"], wiring[f"dil{k}"] = Linear(channels, 2 * channels), list(x)
        layers[f"wave{k}"] = CubaLIF2(channels, **lif, tau_syn2=d * tau_syn)
        wiring[f"wave{k}"] = [f"dil{k}"]
        if k < len(dilations):  # the last block's residual output would feed nothing
            layers[f"res_fc{k}"], wiring[f"res_fc{k}"] = Linear(channels, channels), [f"wave{k}"]
            layers[f"res{k}"], wiring[f"res{k}"] = CubaLIF(channels, **lif), [f"res_fc{k}"]
            x.append(f"res{k}")
        layers[f"skip_fc{k}"] = Linear(channels, skip_channels)
        wiring[f"skip_fc{k}"] = [f"wave{k}"]
        layers[f"skip{k}"] = CubaLIF(skip_channels, **lif)
        wiring[f"skip{k}"] = [f"skip_fc{k}"]
        skips.append(f"skip{k}")
    layers["readout_fc"], wiring["readout_fc"] = Linear(skip_channels, outputs), skips
    extra = {"v_threshold": v_threshold, "reset": "subtract"} if out_cls is CubaLIF else {}
    layers["readout"] = out_cls(outputs, dt=dt, tau_syn=tau_syn, tau_mem=readout_tau_mem,
                                method=method, **extra)
    wiring["readout"] = ["readout_fc"]
    return GraphNetwork(layers, wiring)


def wavesense_neurons(channels: int, blocks: int, skip_channels: int) -> int:
    """Hidden neurons of :func:`wavesense`: ``C + blocks·(2C + S) − C`` (the input layer, per
    block the dilated, residual and skip populations, less the last block's residual)."""
    return channels + blocks * (2 * channels + skip_channels) - channels


def recurrent_lif(
    inputs: int, hidden: int, outputs: int, *, dt: float = 10e-3, tau_syn: float | None = None,
    tau_mem: float | None = None, readout: str = "li", readout_tau_mem: float | None = None,
    v_threshold: float = 1.0, method: str = "exact",
) -> Network:
    """The baseline: ``Input → Linear → CubaLIF(hidden, recurrent) → Linear → readout``, with
    the time constants of :func:`wavesense` (defaults ``τ_s = τ_m = 2·dt``, readout
    ``τ_m = 16·dt``; each ``2^k·dt``). Give it ``hidden = wavesense_neurons(...)`` for a
    network of equal size on the chip (one population in the recurrent matrix's diagonal).

    Raises:
        ArgumentTypeError, ParameterError, TimeStepError: as
        :func:`wavesense`.
    """
    dt = check_dt(dt)
    inputs = check_int(inputs, "inputs", low=1)
    hidden = check_int(hidden, "hidden", low=1)
    outputs = check_int(outputs, "outputs", low=1)
    out_cls = READOUTS[check_choice(readout, "readout", READOUTS)]
    tau_syn = 2 * dt if tau_syn is None else tau_syn
    tau_mem = 2 * dt if tau_mem is None else tau_mem
    readout_tau_mem = 16 * dt if readout_tau_mem is None else readout_tau_mem
    power_of_two_steps(tau_syn, dt, "tau_syn", low=1)
    power_of_two_steps(tau_mem, dt, "tau_mem")
    power_of_two_steps(readout_tau_mem, dt, "readout_tau_mem")
    v_threshold = check_real(v_threshold, "v_threshold", 0, low_open=True)
    extra = {"v_threshold": v_threshold, "reset": "subtract"} if out_cls is CubaLIF else {}
    return Network({
        "input": Input(inputs), "fc1": Linear(inputs, hidden),
        "hidden1": CubaLIF(hidden, dt=dt, tau_mem=tau_mem, tau_syn=tau_syn,
                           v_threshold=v_threshold, reset="subtract", recurrent=True,
                           method=method),
        "fc2": Linear(hidden, outputs),
        "readout": out_cls(outputs, dt=dt, tau_syn=tau_syn, tau_mem=readout_tau_mem,
                           method=method, **extra),
    })
