"""The Xylo-like chip as a backend: ``net(x, backend="xylo")``.

``mode="chip"`` (default): map → quantise → run the integer simulator. Under
``torch.no_grad()`` the result is what the chip computed; with gradients enabled it goes
through the in-the-loop bridge (:func:`~spikeloop.backends.inloop.in_the_loop`: values from the
chip, gradients from a model evaluated at the chip's states). ``replay="chip"`` (default): the
model is the chip's own integer step function on the live quantised parameters
(:func:`~spikeloop.chips.xylo.qat.qat_run` with the chip's records substituted step by step):
one-step hops, bit-shift decays, caps and saturation as on the chip, so the gradients are
exactly the QAT gradients at the chip's states. ``replay="float"``: the float populations
re-run on the observed spikes — approximate (no hop delay, exponential instead of bit-shift
decay, unquantised weights), kept for comparison.
``mode="qat"``: the differentiable quantised forward (:func:`~spikeloop.chips.xylo.qat.qat_run`),
bit-exact with the chip, gradients by surrogate derivatives.

Observables: hidden spikes are *event counts* per step (up to 31; 0/1 unless a neuron fires
several times in a step), membranes are converted to model units (``v_int / σ``). The state
(``out.state["xylo"]``) continues a run: streaming.

Limits: ``out.report.warnings`` says, once per run and with counts, what the chip clipped —
input counts above its cap of 15 per channel and step, 16-bit saturation of currents and
membranes (:func:`~spikeloop.chips.xylo.simulator.limit_warnings`), and biases or thresholds
that quantisation clipped to their registers; ``out.report.resources["clipped"]`` holds the
counts.

Bit flips: :class:`~spikeloop.devices.BitFlips` on a projection or population flips bits of
its weight or state memory (chip mode only; :mod:`spikeloop.chips.xylo.faults`);
``out.report.resources["bit_flips"]`` counts them by node and memory.

Memory: a chip-mode run converts the chip's records into the observables chunk by chunk, so
beyond the returned observables it does not grow with ``T``. With gradients enabled the
in-the-loop replay runs only in a backward pass (``in_the_loop(..., deferred=True)``), where it
runs the chip again for all its records (currents included) and replays them step by step.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from torch import Tensor

from spikeloop.backends.base import BACKENDS, BackendBase, require_host
from spikeloop.backends.inloop import in_the_loop
from spikeloop.checks import all_finite, check_sequence
from spikeloop.chips.xylo import dynamics, faults
from spikeloop.chips.xylo.dynamics import StepRecord, Tally, XyloState, own_counts
from spikeloop.chips.xylo.mapper import XyloLayout, map_graph
from spikeloop.chips.xylo.qat import qat_run
from spikeloop.chips.xylo.quantize import METHODS, QuantizationReport, QuantMethod, chip_tensors
from spikeloop.chips.xylo.quantize import to_config as _to_config
from spikeloop.chips.xylo.simulator import config_params, limit_warnings, raster
from spikeloop.chips.xylo.spec import XyloSpec, spec_or_default
from spikeloop.errors import ParameterError, StateError
from spikeloop.ir import Graph
from spikeloop.observables import ExecutionReport, NetworkOutput, Observables


class XyloBackend(BackendBase):
    """Xylo-like integer chip behind the :class:`~spikeloop.backends.Backend` protocol.

    Args:
        mode: ``"chip"`` (integer simulator; in-the-loop gradients) or ``"qat"``
            (differentiable quantised forward, bit-exact with the chip).
        method: weight/threshold quantisation, ``"per_channel"`` or ``"global"``.
        spec: chip limits.
        replay: in-the-loop gradient model (chip mode), ``"chip"`` (exact) or ``"float"``.
    """

    name = "xylo"

    def __init__(
        self, mode: Literal["chip", "qat"] = "chip", *, method: QuantMethod = "per_channel",
        spec: XyloSpec | None = None,
        replay: Literal["chip", "float"] = "chip",
    ) -> None:
        if mode not in ("chip", "qat"):
            raise ParameterError(f"unknown xylo mode {mode!r}; known: chip, qat")
        if replay not in ("chip", "float"):
            raise ParameterError(f"unknown in-the-loop replay {replay!r}; known: chip, float")
        self.replay = replay
        if method not in METHODS:
            raise ParameterError(f"unknown quantisation method {method!r}; known: {METHODS}")
        self.mode = mode
        self.method = method
        self.spec = spec_or_default(spec)
        self.differentiable = mode == "qat"
        self.device_support = frozenset({"weights", "integer_memories"} if mode == "chip"
                                        else {"weights"})
        """Device models it runs: realised weights (then quantised), and in mode ``chip`` bit
        flips of its integer memories (the ``qat`` mode is the chip's differentiable model,
        not its memories)."""
        self.label = f"'xylo' (mode {mode!r})"
        """How messages name it."""
        self.last_report: QuantizationReport | None = None

    def check_state(self, graph: Graph, values: Mapping[str, Any], batch: int) -> None:
        """A xylo state is ``{"xylo": XyloState}`` from a previous xylo run: integer registers
        (``float64`` tensors of whole numbers) of batch size ``batch``, within the chip's 16-bit
        state range (the engine checks the widths against the mapped network when it runs).

        Raises:
            StateError: names the first mismatch.
        """
        if set(values) != {"xylo"}:
            raise StateError(f"a xylo state is {{'xylo': XyloState}} from a previous xylo run, "
                             f"got entries {sorted(values)}")
        s = values["xylo"]
        if not isinstance(s, XyloState):
            raise StateError(f"state['xylo'] must be the XyloState of a previous xylo run, got "
                             f"{type(s).__name__}")
        for field, t in s._asdict().items():
            who = f"state['xylo'].{field}"
            if not isinstance(t, Tensor):
                raise StateError(f"{who} must be a tensor, got {type(t).__name__}")
            if t.dtype != torch.float64:
                raise StateError(f"{who} is {t.dtype}; the chip's registers are whole numbers "
                                 "held as float64 (use the state a xylo run returned)")
            if t.dim() < 2 or t.shape[0] != batch:
                raise StateError(f"{who} has shape {tuple(t.shape)}: not a state for batch "
                                 f"size B = {batch}")
            if not all_finite(t) or not bool((t == t.round()).all()):
                raise StateError(f"{who} holds values that are not whole numbers")
            lo, hi = (0, self.spec.hidden_cap) if field == "z" else (
                self.spec.state_min, self.spec.state_max)
            if t.numel() and (float(t.min()) < lo or float(t.max()) > hi):
                raise StateError(f"{who} holds values outside the chip's range [{lo}, {hi}]")

    def run(
        self, graph: Graph, x: Tensor, state: Mapping[str, Any] | None = None
    ) -> NetworkOutput:
        """Run ``graph`` on the chip from ``state`` (``None``: after reset)."""
        require_host("xylo", graph, x)
        t0 = time.perf_counter()
        check_sequence(x, graph.input.shape, "Input")
        counts, _ = raster(x.detach(), graph.input.num_neurons)
        layout = map_graph(graph, self.spec)
        chip_state = (state or {}).get("xylo")  # checked by check_state (backends.guard)
        if chip_state is None:
            chip_state = dynamics.initial_state(counts.shape[1], layout.num_hidden,
                                                layout.num_outputs, self.spec.hidden_synapses)
        report = QuantizationReport(self.method)
        start = chip_state
        plan = None
        t1 = time.perf_counter()
        if self.mode == "qat":
            tally = Tally()
            rec, chip_state, tensors = qat_run(layout, counts, chip_state, method=self.method,
                                               spec=self.spec, report=report, tally=tally)
            clipped = tally.counts()
            events = int(rec.z.detach().sum())
            populations = _observables(layout, x, rec._asdict().__getitem__, tensors.scale,
                                       tensors.scale_out, self.spec)
        else:
            with torch.no_grad():
                tensors = chip_tensors(layout, self.method, self.spec, report)
                params = config_params(_to_config(tensors).validate(self.spec), self.spec)
                plan = faults.plan_flips(graph, layout, counts.shape[1], counts.shape[0], {
                    "weights_in": tensors.shift_in, "weights_rec": tensors.shift_rec,
                    "weights_out": tensors.shift_out}, self.spec)
                # the records go chunk by chunk into the observables: memory beyond them
                # does not grow with T (the gradient replay re-runs the chip when asked)
                filler = _Filler(layout, x, tensors.scale, tensors.scale_out, self.spec)
                _, chip_state, clipped = faults.run(counts, chip_state, params, plan,
                                                    ("z", "v", "z_out", "v_out"), sink=filler)
            populations, events = filler.populations, filler.events
        t2 = time.perf_counter()
        self.last_report = report
        wall = {"mapping": t1 - t0, "run": t2 - t1, "total": time.perf_counter() - t0}
        sizes = (layout.inputs, layout.num_hidden, layout.num_outputs)
        warnings = [*report.notes, *limit_warnings(clipped, counts.shape[0], counts.shape[1],
                                                   sizes, self.spec)]
        out = NetworkOutput(
            populations, graph.output.name, {"xylo": chip_state},
            ExecutionReport("xylo", wall=wall, resources=layout.summary() | {
                "mode": self.mode, "quantisation": self.method,
                "hidden_events": events, "clipped": clipped}
                | ({"bit_flips": plan.counts} if plan is not None else {}),
                warnings=warnings),
        )
        if self.mode != "chip" or not torch.is_grad_enabled():
            return out
        if self.replay == "float":
            return in_the_loop(graph, x, out)

        def replay(_: Mapping[str, Observables]) -> dict[str, Observables]:
            with torch.no_grad():  # the chip's records again (the same flips), all of them
                records, _, _ = faults.run(counts, start, params, plan)
            rec = StepRecord(*(records[name] for name in StepRecord._fields))
            model, _, t = qat_run(layout, counts, start, method=self.method,
                                  spec=self.spec, observed=rec)
            return _observables(layout, x, model._asdict().__getitem__, t.scale, t.scale_out,
                                self.spec)

        return in_the_loop(graph, x, out, replay, deferred=True)


def _convert(layout: XyloLayout, dtype: torch.dtype, take: Callable[[str], Tensor],
             scale: Tensor, scale_out: Tensor, spec: XyloSpec) -> dict[str, tuple[Any, Tensor]]:
    """Per population ``(spikes, v)`` from the chip's records (all steps or a chunk): spikes
    are own counts (an alias target's emitted count less its sources'), membranes in model
    units ``v_int / σ``. ``take(name)`` gives the record ``name`` (a
    :class:`~spikeloop.chips.xylo.dynamics.StepRecord` field), each once."""

    def model_units(v: Tensor, s: Tensor) -> Tensor:
        return v.to(dtype, copy=True).div_(s.to(dtype))  # one new tensor: the observable

    out = {}
    z = own_counts(take("z").to(dtype), layout.alias_targets(), spec.hidden_cap)
    v = take("v")
    for h in layout.hidden:
        sl = slice(h.offset, h.offset + h.size)
        out[h.node.name] = (z[..., sl], model_units(v[..., sl], scale[sl]))
    del v
    readout = layout.readout
    out[readout.name] = (take("z_out").to(dtype) if readout.spiking else None,
                         model_units(take("v_out"), scale_out))
    return out


def _observables(layout: XyloLayout, x: Tensor, take: Callable[[str], Tensor], scale: Tensor,
                 scale_out: Tensor, spec: XyloSpec) -> dict[str, Observables]:
    """The observables of every population from whole records (differentiable: QAT, replay);
    see :func:`_convert`."""
    out = {layout.input_name: Observables(spikes=x)}
    for name, (spikes, v) in _convert(layout, x.dtype, take, scale, scale_out, spec).items():
        out[name] = Observables(spikes=spikes, v=v)
    return out


class _Filler:
    """An :data:`~spikeloop.chips.xylo.engine.Sink` that converts each chunk of records
    (:func:`_convert`) into preallocated observables ``[T, B, N]`` and counts hidden events."""

    def __init__(self, layout: XyloLayout, x: Tensor, scale: Tensor, scale_out: Tensor,
                 spec: XyloSpec) -> None:
        self.layout, self.scale, self.scale_out, self.spec = layout, scale, scale_out, spec
        self.dtype = x.dtype
        steps, batch = x.shape[0], x.shape[1]

        def empty(n: int) -> Tensor:
            return torch.empty(steps, batch, n, dtype=x.dtype)

        self.populations = {layout.input_name: Observables(spikes=x)}
        for h in layout.hidden:
            self.populations[h.node.name] = Observables(spikes=empty(h.size), v=empty(h.size))
        readout = layout.readout
        self.populations[readout.name] = Observables(
            spikes=empty(readout.num_neurons) if readout.spiking else None,
            v=empty(readout.num_neurons))
        self.events = 0

    def __call__(self, t0: int, records: dict[str, Tensor]) -> None:
        self.events += int(records["z"].sum())
        chunk = _convert(self.layout, self.dtype, records.__getitem__, self.scale,
                         self.scale_out, self.spec)
        for name, (spikes, v) in chunk.items():
            obs = self.populations[name]
            rows = slice(t0, t0 + v.shape[0])
            obs.v[rows] = v
            if spikes is not None:
                obs.spikes[rows] = spikes


BACKENDS.add("xylo", XyloBackend)
