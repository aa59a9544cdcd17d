"""Graph → placement on the analog chip: neuron circuits, synapse rows, quantised weights.

Supported graphs: an input, linear projections (feed-forward and recurrent) and current-based
populations (``CubaLIF``; ``CubaLI`` readouts run on circuits with the spike comparator off).
Every violated limit raises :class:`~spikeloop.errors.MappingError` naming it.

Synapse rows: each presynaptic source (input channel or neuron) feeding any neuron of a half
occupies two rows of that half, one excitatory and one inhibitory; a signed weight ``w`` is
``scale · (e − i)`` with 6-bit magnitudes ``e = max(w̃, 0)``, ``i = max(−w̃, 0)``,
``w̃ = round(w / scale)``. ``weight_scale="auto"`` picks ``scale = max|w| / 63`` per projection
(the synaptic gain is set to fit the weights); a number fixes it, and weights beyond
``63 · scale`` raise :class:`~spikeloop.errors.WeightRangeError` unless ``clip_weights``.
A neuron with more than 128 signed inputs joins two circuits (one per half, same column), each
receiving up to 128 of its inputs; more than 256 do not fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from spikeloop.checks import check_bool, check_choice, check_graph, check_real, check_type
from spikeloop.chips.analog.spec import AnalogChipSpec
from spikeloop.dynamics.models import MODELS
from spikeloop.errors import MappingError, NonFiniteError, WeightRangeError
from spikeloop.ir import Graph, Node


def supported_models() -> list[str]:
    """Neuron models whose description says the analog chip's circuits implement them."""
    return [n for n in MODELS.names() if MODELS.get(n).runs_on("analog")]


@dataclass(frozen=True)
class PopulationPlacement:
    """Where a population's neurons live: ``columns`` (0..255) and whether circuits are joined
    (then each neuron uses the circuit at its column in both halves); ``half`` of unjoined."""

    name: str
    columns: Tensor
    half: Tensor
    joined: bool


@dataclass(frozen=True)
class ProjectionPlacement:
    """A projection's quantised weights and the synapses (half, row, column) they occupy."""

    name: str
    source: str
    target: str
    recurrent: bool
    scale: float
    weight_lsb: Tensor  # [out, in] signed integers in [−63, 63]
    half: Tensor  # [out, in] half of each synapse
    row_exc: Tensor  # [out, in]
    row_inh: Tensor  # [out, in]
    column: Tensor  # [out, in]
    clipped: int = 0  # weights beyond ±63 LSB clipped to it (only with clip_weights)

    def quantized_weight(self) -> Tensor:
        """The weights the chip realises without mismatch: ``scale · w̃``."""
        return self.scale * self.weight_lsb.float()


@dataclass(frozen=True)
class Placement:
    """The whole mapping of a graph onto the chip."""

    populations: dict[str, PopulationPlacement]
    projections: dict[str, ProjectionPlacement]
    circuits_used: int
    rows_used: tuple[int, ...]
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Resource use for execution reports."""
        return {"circuits_used": self.circuits_used, "rows_used": list(self.rows_used),
                "weight_scales": {k: p.scale for k, p in self.projections.items()}}


def _check_node(node: Node, spec: AnalogChipSpec) -> None:
    if node.kind == "reshape":
        raise MappingError(f"node {node.name!r} ({node.op}) has no counterpart on the analog "
                           "chip; feed populations through Linear projections")
    if node.delay_line:
        raise MappingError(
            f"projection {node.name!r} is a {node.op} with transmission delays (up to "
            f"{node.settings['max_steps']} steps); the analog chip has no programmable delays: "
            "its synapses act within the step, so use a Linear projection")
    if node.kind == "projection" and node.op != "Linear":
        raise MappingError(f"projection {node.name!r} is a {node.op}; the analog chip's synapse "
                           "array maps Linear projections only")
    if node.kind == "population":
        if not node.model.runs_on("analog"):
            raise MappingError(
                f"population {node.name!r} is a {node.op}; the analog chip runs current-based "
                f"neurons: {', '.join(supported_models())}"
            )
        if len(node.shape) != 1:
            raise MappingError(f"population {node.name!r} has shape {node.shape}; flatten to 1-d")
        dt = node.settings["dt"]
        for key, limits in (("tau_mem", spec.tau_mem_range), ("tau_syn", spec.tau_syn_range)):
            chip = node.params[key].detach() / spec.speedup
            lo, hi = limits
            if float(chip.min()) < lo * (1 - 1e-6) or float(chip.max()) > hi * (1 + 1e-6):
                raise MappingError(
                    f"population {node.name!r}: {key} spans {float(chip.min()) * 1e6:.3g}–"
                    f"{float(chip.max()) * 1e6:.3g} µs on the chip (model time / "
                    f"{spec.speedup:g}); the chip supports {lo * 1e6:g}–{hi * 1e6:g} µs"
                )
        t_ref = node.settings.get("t_refrac", 0.0) / spec.speedup
        if t_ref and not spec.refrac_range[0] <= t_ref <= spec.refrac_range[1]:
            raise MappingError(
                f"population {node.name!r}: t_refrac is {t_ref * 1e6:g} µs on the chip; the chip "
                f"supports {spec.refrac_range[0] * 1e6:g}–{spec.refrac_range[1] * 1e6:g} µs"
            )
        if dt / spec.speedup < spec.clock:
            raise MappingError(f"dt = {dt:g} s is {dt / spec.speedup:g} s on the chip, finer than "
                               f"its {spec.clock:g} s clock")


def _quantize(node: Node, weight_scale: float | str, clip: bool, spec: AnalogChipSpec
              ) -> tuple[float, Tensor, int]:
    """The weight scale, the weights in LSB and how many were clipped to the 6-bit range."""
    w = node.params["weight"].detach().float()
    if not bool(torch.isfinite(w).all()):
        raise NonFiniteError(f"projection {node.name!r}: weights hold NaN or inf")
    if "bias" in node.params:
        raise MappingError(f"projection {node.name!r} has a bias; the analog chip has none")
    wmax = float(w.abs().max())
    if weight_scale == "auto":
        scale = wmax / spec.weight_max if wmax > 0 else 1.0
    else:  # checked by map_graph
        scale = float(weight_scale)
    lsb = torch.round(w / scale)
    if not clip and float(lsb.abs().max()) > spec.weight_max:
        raise WeightRangeError(
            f"projection {node.name!r}: weight {wmax:.4g} needs {float(lsb.abs().max()):.0f} "
            f"LSB at weight_scale {scale:g}; the chip's 6-bit synapses hold at most "
            f"{spec.weight_max} (= {spec.weight_max * scale:.4g}); pass clip_weights=True to clip"
        )
    clipped = int((lsb.abs() > spec.weight_max).sum())
    return scale, lsb.clamp(-spec.weight_max, spec.weight_max).to(torch.int16), clipped


@dataclass(frozen=True)
class _Layout:
    """The structural part of a placement (circuits and synapse rows): it depends on the graph's
    structure only, not on parameter values, so a backend can reuse it between runs."""

    populations: dict[str, PopulationPlacement]
    synapses: dict[str, tuple[Tensor, Tensor, Tensor]]  # projection → half, row_exc, column
    circuits_used: int
    rows_used: tuple[int, ...]


def structure_key(graph: Graph) -> tuple:
    """What the layout of ``graph`` depends on: names, kinds, wiring and sizes."""
    return tuple(
        (n.name, n.kind, n.op, n.inputs, n.shape, n.recurrent,
         tuple(n.params["weight"].shape) if n.kind == "projection" else ())
        for n in graph.nodes)


def map_graph(
    graph: Graph,
    spec: AnalogChipSpec,
    *,
    weight_scale: float | str = "auto",
    clip_weights: bool = False,
    layouts: dict[tuple, _Layout] | None = None,
) -> Placement:
    """Place ``graph`` on the chip; raises :class:`MappingError` naming any violated limit.

    ``layouts``: a cache (a dict the caller keeps) of layouts by :func:`structure_key`; parameter
    limits are checked and weights quantised on every call.

    Raises:
        ArgumentTypeError: ``graph`` is not a Graph (a Network: pass ``net.graph``), ``spec``
            not an :class:`AnalogChipSpec`, ``weight_scale`` neither ``"auto"`` nor a number,
            ``clip_weights`` not a bool, ``layouts`` not a dict or ``None``.
        ParameterError: ``weight_scale`` is a number that is not finite and > 0, or a string
            other than ``"auto"``.
        MappingError: a limit of the chip (named); :class:`WeightRangeError` for weights beyond
            the 6-bit range at a fixed ``weight_scale`` without ``clip_weights``.
        NonFiniteError: weights hold NaN or inf.
    """
    check_graph(graph, "graph", Graph)
    check_type(spec, "spec", AnalogChipSpec, "an AnalogChipSpec")
    if isinstance(weight_scale, str):
        check_choice(weight_scale, "weight_scale", ["auto"])
    else:
        weight_scale = check_real(weight_scale, "weight_scale", 0.0, low_open=True)
    check_bool(clip_weights, "clip_weights")
    if layouts is not None:
        check_type(layouts, "layouts", dict, "a dict (a layout cache) or None")
    for node in graph.nodes:
        _check_node(node, spec)
    key = structure_key(graph)
    layout = layouts.get(key) if layouts is not None else None
    if layout is None:
        layout = _plan(graph, spec)
        if layouts is not None:
            layouts[key] = layout
    out: dict[str, ProjectionPlacement] = {}
    consumers = {i: n.name for n in graph.nodes for i in n.inputs}
    for proj in graph.projections():
        target = proj.inputs[0] if proj.recurrent else consumers[proj.name]
        scale, lsb, clipped = _quantize(proj, weight_scale, clip_weights, spec)
        half, row, column = layout.synapses[proj.name]
        out[proj.name] = ProjectionPlacement(proj.name, proj.inputs[0], target, proj.recurrent,
                                             scale, lsb, half, row, row + 1, column, clipped)
    return Placement(layout.populations, out, layout.circuits_used, layout.rows_used)


def _plan(graph: Graph, spec: AnalogChipSpec) -> _Layout:
    """Circuits and synapse rows for ``graph`` (raises :class:`MappingError` where it does not
    fit)."""
    for node in graph.nodes:
        if node.kind == "population" and not all(
            graph[i].kind == "projection" for i in node.inputs
        ):
            raise MappingError(f"population {node.name!r} must be fed through Linear projections "
                               "(synapses); it is connected directly to "
                               f"{', '.join(node.inputs)}")
        if node.kind == "projection":
            source = graph[node.inputs[0]]
            if source.kind == "population" and not source.spiking:
                raise MappingError(f"projection {node.name!r} reads the non-spiking readout "
                                   f"{source.name!r}; synapses carry spikes only")
    pops = graph.populations()
    projections = graph.projections()
    consumers = {i: n.name for n in graph.nodes for i in n.inputs}
    target_of = {p.name: p.inputs[0] if p.recurrent else consumers[p.name] for p in projections}
    fan_in = {p.name: 0 for p in pops}
    for proj in projections:
        fan_in[target_of[proj.name]] += proj.params["weight"].shape[1]
    limit = spec.signed_inputs_per_circuit
    joined = {}
    for pop in pops:
        if fan_in[pop.name] > limit * spec.max_joined_circuits:
            raise MappingError(
                f"population {pop.name!r}: each neuron has {fan_in[pop.name]} signed inputs; "
                f"a neuron circuit takes {limit} ({limit * spec.max_joined_circuits} with "
                f"{spec.max_joined_circuits} joined circuits)"
            )
        joined[pop.name] = fan_in[pop.name] > limit
    needed = sum(p.num_neurons * (2 if joined[p.name] else 1) for p in pops)
    if needed > spec.circuits:
        raise MappingError(f"the network needs {needed} neuron circuits; the chip has "
                           f"{spec.circuits}")
    # circuits: joined populations take whole columns first, the others fill the rest in order
    placed: dict[str, PopulationPlacement] = {}
    next_column = 0
    for pop in pops:
        if joined[pop.name]:
            cols = torch.arange(next_column, next_column + pop.num_neurons)
            next_column += pop.num_neurons
            placed[pop.name] = PopulationPlacement(pop.name, cols, torch.zeros_like(cols), True)
    free = [(h, c) for h in range(spec.halves)
            for c in range(next_column, spec.circuits_per_half)]
    for pop in pops:
        if not joined[pop.name]:
            slots, free = free[: pop.num_neurons], free[pop.num_neurons:]
            placed[pop.name] = PopulationPlacement(
                pop.name, torch.tensor([c for _, c in slots]),
                torch.tensor([h for h, _ in slots]), False)
    # synapse rows: a source channel range feeding a half occupies two rows per channel there
    blocks: list[dict[tuple[str, int, int], int]] = [{} for _ in range(spec.halves)]
    used = [0] * spec.halves
    synapses: dict[str, tuple[Tensor, Tensor, Tensor]] = {}
    in_first = dict.fromkeys(placed, 0)  # inputs of joined neurons on their half-0 circuit
    in_second = dict.fromkeys(placed, 0)
    for proj in projections:
        source, target = proj.inputs[0], target_of[proj.name]
        n_out, n_in = proj.params["weight"].shape
        tgt = placed[target]
        channel = torch.arange(n_in)
        if tgt.joined:
            # the first circuit takes as many inputs as its half still has rows for (≤ limit),
            # the joined circuit in the other half the rest
            first = min(limit - in_first[target], max(0, (spec.rows_per_half - used[0]) // 2))
            first = min(max(first, n_in - (limit - in_second[target])), n_in)
            in_first[target] += first
            in_second[target] += n_in - first
            if in_first[target] > limit or in_second[target] > limit:
                raise MappingError(
                    f"population {target!r}: its {fan_in[target]} inputs do not split over two "
                    f"joined circuits of {limit} inputs with the synapse rows left")
            half = (channel >= first).long()[None, :].expand(n_out, n_in)
        else:
            half = tgt.half[:, None].expand(n_out, n_in)
        row = torch.zeros(n_out, n_in, dtype=torch.long)
        for h in half.unique().tolist():
            chans = channel[(half == h).any(0)]
            a, b = int(chans.min()), int(chans.max()) + 1
            key = (source, a, b)
            if key not in blocks[h]:
                blocks[h][key] = used[h]
                used[h] += 2 * (b - a)
            rows_h = blocks[h][key] + 2 * (channel - a)
            row = torch.where(half == h, rows_h[None, :].expand(n_out, n_in), row)
        synapses[proj.name] = (half.clone(), row,
                               tgt.columns[:, None].expand(n_out, n_in).clone())
    for h, n in enumerate(used):
        if n > spec.rows_per_half:
            raise MappingError(
                f"half {h} needs {n} synapse rows ({n // 2} signed presynaptic inputs × 2); "
                f"a half has {spec.rows_per_half}"
            )
    return _Layout(placed, synapses, needed, tuple(used))
