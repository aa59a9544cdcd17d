"""The analog chip as a backend: map → calibrate → run → read out, and in-the-loop gradients.

``net(x, backend="chip")`` (or ``{"name": "chip", "seed": 3, ...}``) runs the network on an
emulated chip instance. Under ``torch.no_grad()`` the result is what the chip observed. With
gradients enabled the result goes through :func:`~spikeloop.backends.inloop.in_the_loop`: the
values are the chip's, the gradients come from the software model evaluated at them.

Keep one backend instance for a whole experiment (``net.backend = get_backend(...)``): it holds
the chip's noise generator (so successive runs see fresh noise, reproducibly per seed) and its
calibration cache.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import fields
from typing import Any, Literal

import torch
from torch import Tensor

from spikeloop.backends.base import BACKENDS, BackendBase, require_host
from spikeloop.backends.inloop import in_the_loop
from spikeloop.checks import (
    check_bool,
    check_choice,
    check_int,
    check_real,
    check_sequence,
    check_type,
    show,
)
from spikeloop.chips.analog.calibration import AnalogChip
from spikeloop.chips.analog.mapper import map_graph
from spikeloop.chips.analog.simulator import adc_readout, chip_parameters, dense_trace, run_chip
from spikeloop.chips.analog.spec import AnalogChipSpec
from spikeloop.errors import ArgumentTypeError, ParameterError
from spikeloop.ir import Graph
from spikeloop.observables import ExecutionReport, NetworkOutput, Observables, ReadoutRange

_CHIPS: dict[tuple[AnalogChipSpec, int, bool], AnalogChip] = {}


def _value_key(value: Any) -> Any:
    """A hashable stand-in for ``value`` that changes when a tensor's values change."""
    if isinstance(value, Tensor):
        t = value.detach()
        return (tuple(t.shape), str(t.dtype),
                t.reshape(-1).contiguous().cpu().view(torch.uint8).numpy().tobytes())
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def get_chip(spec: AnalogChipSpec, seed: int, mismatch: bool) -> AnalogChip:
    """The chip instance for ``seed`` (shared, so its calibration cache is shared too)."""
    key = (spec, seed, mismatch)
    if key not in _CHIPS:
        _CHIPS[key] = AnalogChip(spec, seed, mismatch)
    return _CHIPS[key]


class AnalogChipBackend(BackendBase):
    """Emulated BrainScaleS-2-style chip behind the :class:`~spikeloop.backends.Backend` protocol.

    Args:
        seed: chip instance (fixed-pattern mismatch) and the start of its noise stream.
        mismatch: fixed-pattern mismatch of neurons and synapses (``False``: ideal circuits).
        noise: trial-to-trial noise: PSP amplitudes, ADC read noise and the ADC's sampling
            phase (off: all three are off, the run is deterministic).
        adc: ``"realistic"`` (8-bit ADC sampled every ``adc_period``) or ``"ideal"`` (the true
            membrane on the simulation grid).
        calibrate: calibrate the neurons (otherwise nominal parameter codes are used).
        weight_scale: ``"auto"`` or model weight per LSB (see the mapper).
        clip_weights: clip weights beyond the 6-bit range instead of raising.
        dense: ``(population, neuron)`` to record with the fast 10-bit ADC (batch entry 0).
        spec: chip limits and constants.
    """

    name = "chip"
    streaming = False  # each run starts from rest (run_checked refuses a state)
    device_support = frozenset({"weights", "step_loop"})  # its neurons run the step loop
    differentiable = False

    def __init__(
        self,
        seed: int = 0,
        *,
        mismatch: bool = True,
        noise: bool = True,
        adc: Literal["realistic", "ideal"] = "realistic",
        calibrate: bool = True,
        weight_scale: float | str = "auto",
        clip_weights: bool = False,
        dense: tuple[str, int] | list | None = None,
        spec: AnalogChipSpec | None = None,
    ) -> None:
        seed = check_int(seed, "chip backend: seed", 0)
        for flag, value in (("mismatch", mismatch), ("noise", noise), ("calibrate", calibrate),
                            ("clip_weights", clip_weights)):
            check_bool(value, f"chip backend: {flag}")
        check_choice(adc, "chip backend: adc", ("realistic", "ideal"))
        if weight_scale != "auto":
            check_real(weight_scale, "chip backend: weight_scale ('auto' or LSB size)", 0,
                       low_open=True)
        if dense is not None:
            if not (isinstance(dense, tuple | list) and len(dense) == 2
                    and isinstance(dense[0], str)):
                raise ArgumentTypeError(f"chip backend: dense must be (population name, neuron "
                                        f"index), got {show(dense)}")
            dense = (dense[0], check_int(dense[1], "chip backend: dense neuron index", 0))
        if spec is not None:
            check_type(spec, "chip backend: spec", AnalogChipSpec, "an AnalogChipSpec")
        self.spec = spec or AnalogChipSpec()
        self.seed = seed
        self.noise = noise
        self.adc = adc
        self.calibrate = calibrate
        self.weight_scale = weight_scale
        self.clip_weights = clip_weights
        self.dense = tuple(dense) if dense is not None else None
        self.chip = get_chip(self.spec, seed, mismatch)
        self.generator = torch.Generator().manual_seed(2_147_483_629 * seed + 11)
        self._layouts: dict[tuple, Any] = {}  # placement layouts by graph structure
        self._parameter_cache: dict[str, tuple] = {}  # population → (key, chip parameters)

    def run(
        self, graph: Graph, x: Tensor, state: Mapping[str, Any] | None = None
    ) -> NetworkOutput:
        """Run ``graph`` on the chip; differentiable through the in-the-loop bridge."""
        require_host("chip", graph, x)
        if state:
            raise ParameterError("the analog chip runs every batch entry from rest; it cannot "
                                 "continue from a state (streaming)")
        check_sequence(x, graph.input.shape, "Input")
        if not bool(((x == 0) | (x == 1)).all()):
            raise ParameterError("the analog chip receives spike events: its input must hold "
                                 "only 0 and 1")
        if self.dense is not None:
            self._check_dense(graph)
        wall: dict[str, float] = {}
        t0 = time.perf_counter()
        placement = map_graph(graph, self.spec, weight_scale=self.weight_scale,
                              clip_weights=self.clip_weights, layouts=self._layouts)
        t1 = time.perf_counter()
        params, spreads = {}, {}
        warnings = [f"{p.name}: {p.clipped} of {p.weight_lsb.numel()} weights clipped to the "
                    f"chip's ±{self.spec.weight_max} LSB (= ±{self.spec.weight_max * p.scale:.4g})"
                    for p in placement.projections.values() if p.clipped]
        for node in graph.populations():
            params[node.name], results, warn = self._chip_parameters(
                node, placement.populations[node.name])
            warnings += warn
            spreads[node.name] = {
                k: (max(r.spread_before for r in rs), max(r.spread_after for r in rs))
                for k, rs in results.items()
            }
        t2 = time.perf_counter()
        g = self.generator if self.noise else None
        with torch.no_grad():
            run = run_chip(graph, placement, params, self.chip, x.detach(), g)
            t3 = time.perf_counter()
            populations = {}
            for name, obs in run.populations.items():
                if name not in run.true_v:
                    populations[name] = obs
                    continue
                v = run.true_v[name]
                if self.adc == "realistic":
                    v_leak = torch.as_tensor(params[name].v_leak, dtype=v.dtype)
                    v = adc_readout(v, v_leak, self.spec, graph[name].settings["dt"], g)
                    note = self._adc_range(params[name], graph[name].num_neurons
                                           ).saturation_note(name, v)
                    if note is not None:
                        warnings.append(note)
                populations[name] = Observables(spikes=obs.spikes, v=v)
            if self.dense is not None:
                pop, neuron = self.dense
                trace = dense_trace(graph[pop], run, int(neuron), 0, self.spec, g)
                populations[pop] = Observables(spikes=populations[pop].spikes,
                                               v=populations[pop].v, dense=trace)
        t4 = time.perf_counter()
        dt = graph.output.settings["dt"]
        wall.update(mapping=t1 - t0, calibration=t2 - t1, run=t3 - t2, readout=t4 - t3,
                    total=t4 - t0)
        report = ExecutionReport(
            "chip", wall=wall,
            resources={
                "chip_seed": self.seed,
                "chip_time_s": x.shape[0] * x.shape[1] * dt / self.spec.speedup,
                "batch_entries_run_sequentially": x.shape[1],
                "placement": placement.summary(),
                "calibration_spread": spreads,
            },
            warnings=warnings,
        )
        observed = NetworkOutput(populations, graph.output.name, {}, report)
        if torch.is_grad_enabled():
            return in_the_loop(graph, x, observed)
        return observed


    def _chip_parameters(self, node, pop) -> tuple[Any, dict, list[str]]:
        """:func:`chip_parameters`, cached by the population's parameter values and placement
        (they change only when neuron parameters are trained; weights do not enter)."""
        model = node.parameter_record()
        key = (node.name, self.calibrate, pop.joined, _value_key(pop.columns),
               _value_key(pop.half),
               tuple((f.name, _value_key(getattr(model, f.name))) for f in fields(model)))
        hit = self._parameter_cache.get(node.name)
        if hit is None or hit[0] != key:
            hit = (key, chip_parameters(node, pop, self.chip, self.calibrate))
            self._parameter_cache[node.name] = hit
        return hit[1]

    def _check_dense(self, graph: Graph) -> None:
        if len(self.dense) != 2:
            raise ParameterError(f"dense must be (population, neuron), got {self.dense!r}")
        pop, neuron = self.dense
        names = [n.name for n in graph.populations()]
        if pop not in names:
            raise ParameterError(f"dense: no population {pop!r} on the chip; populations: {names}")
        size = graph[pop].num_neurons
        if not (isinstance(neuron, int) and 0 <= neuron < size):
            raise ParameterError(f"dense: neuron {neuron!r} outside 0..{size - 1} of {pop!r}")

    def with_dense(self, population: str, neuron: int) -> AnalogChipBackend:
        """The same chip (instance, settings, a fresh noise stream from ``seed``) recording
        ``neuron`` of ``population`` with the fast 10-bit ADC."""
        return AnalogChipBackend(
            self.seed, mismatch=self.chip.mismatch, noise=self.noise, adc=self.adc,
            calibrate=self.calibrate, weight_scale=self.weight_scale,
            clip_weights=self.clip_weights, dense=(population, neuron), spec=self.spec)

    def readout_range(self, graph: Graph, population: str) -> ReadoutRange | None:
        """The 8-bit column ADC's range for ``population`` in model units, per neuron: codes
        0 and ``adc_max`` around the leak of each (calibrated) circuit, as :func:`adc_readout`
        converts them; ``None`` with ``adc="ideal"`` (the true membrane, unlimited)."""
        if self.adc != "realistic":
            return None
        node = graph[population]
        placement = map_graph(graph, self.spec, weight_scale=self.weight_scale,
                              clip_weights=self.clip_weights, layouts=self._layouts)
        params, _, _ = self._chip_parameters(node, placement.populations[population])
        return self._adc_range(params, node.num_neurons)

    def _adc_range(self, params: Any, neurons: int) -> ReadoutRange:
        """The 8-bit ADC's range around the leak of each of ``neurons`` circuits."""
        leak = torch.as_tensor(params.v_leak).detach().expand(neurons)
        s = self.spec
        return ReadoutRange(
            low=s.from_lsb(torch.zeros_like(leak), leak),
            high=s.from_lsb(torch.full_like(leak, s.adc_max), leak),
            resolution=1.0 / s.lsb_per_unit,
            description=f"chip {s.adc_bits}-bit ADC read-out",
            unit=f"model units = (ADC code − {s.leak_lsb:g}) / {s.lsb_per_unit:g} + leak",
        )

    def get_rng_state(self) -> Tensor:
        """State of the chip's noise stream (checkpoints save it for bit-identical resume)."""
        return self.generator.get_state()

    def set_rng_state(self, state: Tensor) -> None:
        """Restore the chip's noise stream."""
        self.generator.set_state(state)


BACKENDS.add("chip", AnalogChipBackend)
BACKENDS.add("analog", AnalogChipBackend)
