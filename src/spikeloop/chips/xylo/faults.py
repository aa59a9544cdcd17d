"""Bit flips (:class:`~spikeloop.devices.BitFlips`) in the Xylo-like chip's memories.

Which memory a node owns follows the mapper's layout
(:func:`~spikeloop.chips.xylo.mapper.map_graph`):

- a projection: its blocks of the weight matrices (int8, ``weights_in [Nin, N, 2]``,
  ``weights_rec [N, N, 2]``, ``weights_out [N, O]``): the rows of its source neurons and the
  columns of its target neurons, both synaptic weights of each pair in ``in``/``rec``
  (a one-current population's second weight is stored as 0; a flip there drives its second
  current, which decays as the first). A projection that feeds two populations owns both
  blocks. Two projections whose blocks overlap (both from one source into one population:
  the chip stores their sum) have no memory of their own: bit flips on either are refused.
- a hidden population: its membranes ``v`` and synaptic currents ``i`` (16 bits, both
  synapses); the readout: the output neurons' ``v_out`` and ``i_out``.

A run draws every flip of the run before it starts (:func:`plan_flips`, from the devices'
read stream) and then runs the engine in segments between the steps where flips happen
(:func:`run`): exact, and about as fast as one run when flips are rare. A weight flip hits the
stored int8 value (before the matrix's left shift). Every sample of a batch is an inference
of its own: once a weight memory flips, the run's weights are per sample (``[B, …]``). The
in-the-loop replay re-runs the same plan, so it sees the same flipped memories; its gradient
model is the fault-free chip evaluated at the faulty chip's states (the training does not
know which bits flipped, as with a real chip in the loop).

Which memories matter most (:func:`sensitivity`)::

    def accuracy(devices):
        net.devices = devices
        with torch.no_grad():
            out = net(x, backend="xylo")
        return float((out.output.v.amax(0).argmax(-1) == y).float().mean())

    table = sensitivity(accuracy, net.graph, [1e-4, 1e-3, 1e-2])  # {node: {memory: [acc]}}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import torch
from torch import Tensor

from spikeloop.chips.xylo import engine
from spikeloop.chips.xylo.dynamics import XyloParams, XyloState
from spikeloop.chips.xylo.mapper import XyloLayout, map_graph
from spikeloop.chips.xylo.registers import ARRAYS
from spikeloop.chips.xylo.spec import XyloSpec, spec_or_default
from spikeloop.devices import BitFlips, Devices, MemoryDevice, device_context, node_devices
from spikeloop.devices.faults import apply_flips, draw_flips
from spikeloop.errors import DeviceModelError
from spikeloop.ir import Graph

__all__ = ["FlipPlan", "Memory", "flipped_nodes", "memories", "plan_flips", "run", "sensitivity"]

MATRICES = {"in": "weights_in", "rec": "weights_rec", "out": "weights_out"}


class Memory(NamedTuple):
    """One memory of a node: the chip register that holds it, its width in bits and how many
    values of it one inference uses."""

    register: str
    bits: int
    cells: int


class _Region(NamedTuple):
    """Part of a register (indices after the batch axis) that a node owns; ``weights_*`` are
    indexed as the engine holds them, ``[pre, post · synapses]``."""

    register: str
    index: tuple[slice, ...]
    bits: int
    cells: int


def _regions(layout: XyloLayout, spec: XyloSpec) -> tuple[dict[str, dict[str, list[_Region]]],
                                                          dict[str, str]]:
    """Every node's regions by memory name, and the projections that share memory (each
    with one node it shares with)."""
    s = spec.hidden_synapses
    out: dict[str, dict[str, list[_Region]]] = {}
    boxes: list[tuple[str, str, slice, slice]] = []
    for blk in layout.projections:
        post, pre = blk.node.params["weight"].shape
        post //= blk.synapses
        rows = slice(blk.src_offset, blk.src_offset + pre)
        width = 1 if blk.matrix == "out" else s
        cols = slice(blk.dst_offset * width, (blk.dst_offset + post) * width)
        reg = _Region(MATRICES[blk.matrix], (rows, cols), spec.weight_bits, pre * post * width)
        out.setdefault(blk.node.name, {}).setdefault("weights", []).append(reg)
        boxes.append((blk.node.name, reg.register, rows, cols))
    shared: dict[str, str] = {}
    for k, (a, reg_a, ra, ca) in enumerate(boxes):
        for b, reg_b, rb, cb in boxes[k + 1:]:
            if a != b and reg_a == reg_b and ra.start < rb.stop and rb.start < ra.stop \
                    and ca.start < cb.stop and cb.start < ca.stop:
                shared.setdefault(a, b)
                shared.setdefault(b, a)
    bits = spec.state_bits
    for h in layout.hidden:
        cells = slice(h.offset, h.offset + h.size)
        out[h.node.name] = {"v": [_Region("v", (cells,), bits, h.size)],
                            "i": [_Region("i", (cells,), bits, h.size * s)]}
    o = layout.num_outputs
    out[layout.readout.name] = {"v": [_Region("v_out", (slice(None),), bits, o)],
                                "i": [_Region("i_out", (slice(None),), bits, o)]}
    return out, shared


def memories(graph: Graph | XyloLayout, spec: XyloSpec | None = None
             ) -> dict[str, dict[str, Memory]]:
    """The memories :class:`~spikeloop.devices.BitFlips` can act on, by node and memory name
    (``"weights"`` of a projection, ``"v"`` and ``"i"`` of a population): the register, bit
    width and values per inference (a projection in several blocks: their sum; register
    ``weights_*`` then names the first). Projections that share their memory are left out."""
    spec = spec_or_default(spec)
    layout = graph if isinstance(graph, XyloLayout) else map_graph(graph, spec)
    regions, shared = _regions(layout, spec)
    return {node: {name: Memory(regs[0].register, regs[0].bits, sum(r.cells for r in regs))
                   for name, regs in mems.items()}
            for node, mems in regions.items() if node not in shared}


@dataclass
class FlipPlan:
    """Every flip of one run: ``events[t]`` the ``(region, bit indices)`` flipped before step
    ``t`` (indices into the region's values ``[B, …]`` times their bits, see
    :func:`~spikeloop.devices.faults.apply_flips`); ``counts[node][memory]`` the number of
    flips; ``shifts`` the weight matrices' left shifts."""

    events: dict[int, list[tuple[_Region, Tensor]]] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    shifts: Mapping[str, int] = field(default_factory=dict)


def flipped_nodes(graph: Graph) -> list[str]:
    """The nodes that carry a memory device."""
    return [n.name for n in graph.nodes if node_devices(n, MemoryDevice)]


def plan_flips(graph: Graph, layout: XyloLayout, batch: int, steps: int,
               shifts: Mapping[str, int], spec: XyloSpec | None = None) -> FlipPlan | None:
    """Draw the flips of a run of ``steps`` steps and ``batch`` samples from the devices
    realised on ``graph`` (``None``: no bit flips attached). Per sample: each sample's copy
    of a memory draws its own flips (``batch · cells · bits`` bits per draw, times ``steps``
    with ``per="step"``).

    Raises:
        DeviceModelError: a memory device other than BitFlips, or a projection whose weights
            share the chip's memory with another's.
    """
    names = flipped_nodes(graph)
    if not names:
        return None
    regions, shared = _regions(layout, spec_or_default(spec))
    plan = FlipPlan(shifts=shifts)
    for name in names:
        node = graph[name]
        if name in shared:
            raise DeviceModelError(
                f"BitFlips on {name!r}: the chip stores no weights of {name!r} alone; its "
                f"block of the weight matrix overlaps {shared[name]!r}'s (the chip stores their "
                "sum), so flips in it cannot be told apart; attach the model to neither, or "
                "merge the two projections")
        ctx = device_context(node)
        for m in node_devices(node, MemoryDevice):
            if not isinstance(m, BitFlips):
                raise DeviceModelError(f"{type(m).__name__} on {name!r}: the xylo backend "
                                       "applies BitFlips only")
            for memory in ("weights",) if node.kind == "projection" else m.state:
                for reg in regions[name][memory]:
                    n = batch * reg.cells * reg.bits
                    where = draw_flips(n * (steps if m.per == "step" else 1), m.rate, ctx.read)
                    counts = plan.counts.setdefault(name, {})
                    counts[memory] = counts.get(memory, 0) + int(where.numel())
                    t, local = where // n, where % n
                    steps_hit, sizes = torch.unique_consecutive(t, return_counts=True)
                    for tt, part in zip(steps_hit.tolist(), local.split(sizes.tolist()),
                                        strict=True):
                        plan.events.setdefault(int(tt), []).append((reg, part))
    return plan


def _flip(value: Tensor, reg: _Region, where: Tensor, shift: int) -> None:
    """Flip ``where`` in ``value[:, *reg.index]`` in place (weights: the int8 values
    ``W = value / 2^shift`` the chip stores)."""
    view = value[(slice(None), *reg.index)]
    view.div_(2.0**shift)  # exact: powers of two
    apply_flips(view, reg.bits, where, inplace=True)
    view.mul_(2.0**shift)


def run(x: Tensor, state: XyloState, p: XyloParams, plan: FlipPlan | None,
        record: Sequence[str] = engine.RECORDS, sink: engine.Sink | None = None
        ) -> tuple[dict[str, Tensor], XyloState, dict[str, int]]:
    """:func:`engine.run <spikeloop.chips.xylo.engine.run>` with the flips of ``plan``
    applied before their steps (the same returns; ``state`` and ``p`` are not changed)."""
    if plan is None or not plan.events:
        return engine.run(x, state, p, record, sink=sink)
    batch, steps = x.shape[1], x.shape[0]
    weights = [name for name in plan.shifts
               if any(reg.register == name for ev in plan.events.values() for reg, _ in ev)]
    if weights and p.weights_in.dim() == 2:  # flipped weights: one copy per sample
        p = p._replace(**{name: getattr(p, name).expand(batch, *getattr(p, name).shape)
                          for name in ARRAYS})
        p = p._replace(**{name: getattr(p, name).clone() for name in weights})
    starts = sorted({0, *(t for t in plan.events if t < steps)})
    parts: list[dict[str, Tensor]] = []
    tally: dict[str, int] = {}
    s = state
    for a, b in zip(starts, [*starts[1:], steps], strict=True):
        for reg, where in plan.events.get(a, ()):
            if reg.register in plan.shifts:
                _flip(getattr(p, reg.register), reg, where, plan.shifts[reg.register])
            else:  # a new tensor: the caller's state stays as it was
                s = s._replace(**{reg.register: getattr(s, reg.register).clone()})
                _flip(getattr(s, reg.register), reg, where, 0)
        part_sink = None if sink is None else (lambda t0, r, a=a: sink(a + t0, r))
        records, s, counts = engine.run(x[a:b], s, p, record, sink=part_sink)
        parts.append(records)
        tally = {k: tally.get(k, 0) + v for k, v in counts.items()}
    out = {} if sink is not None else {k: torch.cat([r[k] for r in parts]) for k in parts[0]}
    return out, s, tally


def sensitivity(evaluate: Callable[[Devices], float], graph: Graph, rates: Sequence[float], *,
                per: Literal["inference", "step"] = "inference", seed: int = 0,
                spec: XyloSpec | None = None) -> dict[str, dict[str, list[float]]]:
    """``evaluate(devices)`` with bit flips in one memory at a time, for every memory of
    :func:`memories` and every rate: ``{node: {memory: [value per rate]}}`` (each run from a
    fresh :class:`~spikeloop.devices.Devices` with read stream ``seed``). ``evaluate`` sets
    the devices on the network and returns a number (an accuracy, a distance to the
    fault-free output; see the module docstring)."""
    out: dict[str, dict[str, list[float]]] = {}
    for node, mems in memories(graph, spec).items():
        for memory in mems:
            state = {} if memory == "weights" else {"state": (memory,)}
            out.setdefault(node, {})[memory] = [
                float(evaluate(Devices({node: BitFlips(rate, per, **state)}, seed=seed)))
                for rate in rates]
    return out
