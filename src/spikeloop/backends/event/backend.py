"""The event backend itself: :class:`EventBackend` runs a graph layer by layer (see
:mod:`spikeloop.backends.event`) and puts the exact quantities on the ``dt`` grid."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from spikeloop._runtime import tune_allocator
from spikeloop.backends.base import BACKENDS, Backend, BackendBase, get_backend
from spikeloop.backends.event.adjoint import _on, _PopulationFunction
from spikeloop.backends.event.cuba import _F, _INF
from spikeloop.backends.event.forward import _arrivals, _dense_events, _next_input, _population
from spikeloop.backends.event.grid import grid_times, run_grid
from spikeloop.backends.event.layers import _delay, _layers_and_dt, _neuron
from spikeloop.backends.event.readout import _Readout
from spikeloop.backends.event.records import EventObservables, SpikeEvents
from spikeloop.backends.inloop import in_the_loop
from spikeloop.checks import check_bool, check_choice, check_int, check_sequence
from spikeloop.errors import ParameterError, ShapeError, SpikeloopError
from spikeloop.ir import Graph
from spikeloop.observables import ExecutionReport, NetworkOutput, Observables, ReadoutRange


@BACKENDS.register("event")
@dataclass(frozen=True)
class EventBackend(BackendBase):
    """Exact event-driven simulation with EventProp gradients (see :mod:`spikeloop.backends.event`).

    ``net(x, backend="event")`` with ``x`` a dense ``[T, B, C]`` tensor (event at ``k·dt``) or
    :class:`SpikeEvents`. Every population's observables are :class:`EventObservables`:
    differentiable exact ``times`` (spiking) and ``v_max`` (readouts), plus grid ``spikes``/``v``.

    Args:
        grid: also return ``spikes`` and ``v`` on the ``dt`` grid (``False``: only the exact
            quantities; memory then does not grow with ``T``).
        membrane: include the grid membrane of spiking populations (needs ``grid``).
        max_spikes: limit on spikes per neuron and window (more raises ParameterError).
        observe: a backend spec (e.g. ``{"name": "chip", "seed": 0}``) whose spike times
            replace the model's (chip in the loop): the forward values (spike times,
            readout maximum) are the device's, EventProp's adjoint is evaluated at them. It is
            resolved once, at construction: every run of this backend uses the same device
            instance (its noise stream and caches carry on from run to run).
        engine: ``"exact"`` (default): the event-driven simulation above; ``"grid"``: EventProp
            on the time grid of ``dt`` (:mod:`~spikeloop.backends.event.grid`, time-driven as
            in mlGeNN): the simulator's forward pass (the simulator's observables; spiking
            populations also carry their grid spike ``times``, differentiable by EventProp)
            and EventProp's adjoint backwards step by step; same networks, CUBA-LIF without
            a refractory period, no ``observe``.
    """

    grid: bool = True
    membrane: bool = True
    max_spikes: int = 10_000
    observe: Any = None
    engine: str = "exact"
    name: str = field(default="event", init=False)
    accepts_events = True  # (class attributes, not fields) takes SpikeEvents too;
    streaming = False  # every run starts from rest
    differentiable: bool = field(default=True, init=False)
    _observer: Backend | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_int(self.max_spikes, "event backend: max_spikes", 1)
        check_bool(self.grid, "event backend: grid")
        check_bool(self.membrane, "event backend: membrane")
        check_choice(self.engine, "event backend: engine", ("exact", "grid"))
        if self.engine == "grid" and (self.observe is not None or not self.grid):
            raise ParameterError("event backend: engine='grid' runs on the grid of dt: it "
                                 "takes neither observe nor grid=False (engine='exact' does)")
        if self.observe is not None:  # a derived field: set once here, never by a method
            try:
                device = get_backend(self.observe)
            except SpikeloopError as err:
                raise type(err)(f"event backend: observe: {err}") from None
            object.__setattr__(self, "_observer", device)

    def run(
        self, graph: Graph, x: Tensor | SpikeEvents, state: Mapping[str, Any] | None = None
    ) -> NetworkOutput:
        """Simulate ``graph`` exactly on ``x`` (dense ``[T, B, C]`` or :class:`SpikeEvents`)
        on the input's device."""
        if self.engine == "grid":
            return run_grid(graph, x, state, self.membrane)
        device = x.times.device if isinstance(x, SpikeEvents) else x.device
        if device.type == "cpu":
            tune_allocator()  # as the simulator's first CPU time loop: freed memory is reused
        with _on(device):
            return self._run(graph, x, state)

    def _run(
        self, graph: Graph, x: Tensor | SpikeEvents, state: Mapping[str, Any] | None
    ) -> NetworkOutput:
        start = time.perf_counter()
        layers, dt = _layers_and_dt(graph, state)
        n_in = math.prod(graph.input.shape)
        if isinstance(x, SpikeEvents):
            x.check_channels(n_in)
            valid = x.channels >= 0
            times = torch.where(valid, x.times.to(_F), torch.full_like(x.times, _INF, dtype=_F))
            src = torch.where(valid, x.channels, torch.zeros_like(x.channels)).long()
            amp = (x.values.to(_F) if x.values is not None
                   else torch.ones_like(times)) * valid
            t_max = float(x.duration)
            steps = max(round(t_max / dt), 1)
            dtype = layers[0].proj.params["weight"].dtype
            dense = x.to_dense(dt, n_in).to(dtype) if self.grid else None
        else:
            check_sequence(x, graph.input.shape, "event backend input")
            if len(graph.input.shape) != 1:
                raise ShapeError("event backend: the input must be 1-d channels [T, B, C]")
            times, src, amp = _dense_events(x, dt)
            steps, t_max, dense, dtype = x.shape[0], x.shape[0] * dt, x, x.dtype
        inputs = (times, src, amp, t_max, steps, dense, dtype, dt)
        if self._observer is None:
            populations, total = self._layers(layers, inputs, None)
            return NetworkOutput(populations, graph.output.name, {},
                                 self._report(start, total, t_max))
        observed = self._observe(graph, dense)
        if not self.membrane:  # spiking populations' membranes are not returned: not compared
            spiking = {layer.pop.name for layer in layers if layer.pop.spiking}
            observed = replace(observed, populations={
                k: replace(o, v=None) if k in spiking else o
                for k, o in observed.populations.items()})
        total = 0

        def replay(seen: Mapping[str, Observables]) -> dict[str, Observables]:
            nonlocal total
            populations, total = self._layers(layers, inputs, seen)
            return populations

        out = in_the_loop(graph, dense, observed, replay)
        report = self._report(start, total, t_max)
        report.resources["observed_by"] = observed.report.backend
        return NetworkOutput(out.populations, out.output_name, {}, report)

    def readout_range(self, graph: Graph, population: str) -> ReadoutRange | None:
        """With ``observe``, the observing device's (the values are its, ``v_max`` included);
        otherwise ``None``: exact values, unlimited."""
        if self._observer is None:
            return None
        return self._observer.readout_range(graph, population)

    @staticmethod
    def _report(start: float, spikes: int, t_max: float) -> ExecutionReport:
        return ExecutionReport("event", wall={"run": time.perf_counter() - start},
                               resources={"spikes": spikes, "window_s": t_max})

    def _layers(
        self, layers: list, inputs: tuple, observed: Mapping[str, Observables] | None
    ) -> tuple[dict[str, Observables], int]:
        """Run the layers from the input events; with ``observed`` (a device's observation,
        through :func:`~spikeloop.backends.in_the_loop`), spike times are forced to the
        observed ones and the grid values are the observed ones."""
        times, src, amp, t_max, steps, dense, dtype, dt = inputs
        populations: dict[str, Observables] = {
            layers[0].proj.inputs[0]: Observables(spikes=dense)}
        total_spikes = 0
        for layer in layers:
            c = _neuron(layer.pop)
            weight = layer.proj.params["weight"]
            delay = _delay(layer.proj)
            if delay is not None:  # per-axon delays: the events arrive later
                times, src, amp = _arrivals(times, src, amp, delay, t_max)
            w_rec = layer.rec.params["weight"] if layer.rec is not None else None
            record = self.grid and (self.membrane or not c.spiking)
            name = layer.pop.name
            if c.spiking:
                forced = None
                if observed is not None:
                    forced = grid_times(observed[name].spikes, dt, _F)[0]
                spike_times, v_grid, count, order = _PopulationFunction.apply(
                    times, weight, w_rec, src, amp.detach(), c, t_max,
                    (dt, steps) if record else None, self.max_spikes, forced)
                native = order.numel() > 0  # the native engine's count and time order
                total_spikes += int(count.sum() if native else torch.isfinite(spike_times).sum())
                v_grid = v_grid.to(dtype) if record else None
                if observed is not None and observed[name].v is not None:
                    v_grid = observed[name].v  # the device's membrane (replay contract)
                times, src, amp = _next_input(spike_times, order if native else None)
                obs = EventObservables(
                    spikes=_raster(times, src, amp, spike_times.shape[1], dt, steps, dtype)
                    if self.grid else None, v=v_grid, times=spike_times, duration=t_max)
            else:
                with torch.no_grad():
                    run = _population(times.detach().to(_F), src, amp.detach(),
                                      weight.detach().to(_F), None, c, t_max, 1,
                                      grid=(dt, steps) if self.grid else None, peak=True)
                readout = _Readout(times, src, amp.detach(), weight, c)
                v_max = readout.maximum(run.peak, t_max, run.table)
                v_grid = run.v_grid.to(dtype) if self.grid else None
                if observed is not None and observed[name].v is not None:
                    seen = observed[name].v.max(0).values.to(v_max.dtype)
                    v_max = v_max + (seen - v_max).detach()
                    v_grid = observed[name].v if self.grid else None
                obs = EventObservables(v=v_grid, v_max=v_max, duration=t_max, readout=readout)
            populations[name] = obs
        return populations, total_spikes

    def _observe(self, graph: Graph, dense: Tensor | None) -> NetworkOutput:
        """Run the observing backend (a chip) on the same input, without gradients."""
        if dense is None:
            raise ParameterError("event backend: observe needs grid=True (the device's input "
                                 "is the dense raster)")
        with torch.no_grad():
            return self._observer.run(graph, dense.detach())


def _raster(times: Tensor, src: Tensor, amp: Tensor, n: int, dt: float, steps: int,
            dtype: torch.dtype) -> Tensor:
    """A population's spikes as events ``(times, source neuron, amplitude)`` ``[B, E]``
    (:func:`~spikeloop.backends.event.forward._next_input`; amplitude 0: padding) → counts on
    the grid ``[T, B, n]`` (step ``⌈t/dt⌉ − 1``)."""
    out = torch.zeros(steps, times.shape[0], n, dtype=dtype)
    ok = amp > 0
    b = ok.nonzero(as_tuple=True)[0]
    k = (torch.ceil(times.detach()[ok] / dt * (1 - 1e-12)) - 1).long().clamp(0, steps - 1)
    out.index_put_((k, b, src[ok]), torch.ones(len(k), dtype=dtype), accumulate=True)
    return out
