"""The simulated backend (default): dense time-stepped simulation with autograd.

It executes the graph's nodes in order with the modules that own the parameters, which loop
the pure step functions of :mod:`spikeloop.dynamics`. ``mode="sequence"`` runs each layer over
the whole sequence before the next; ``mode="step"`` advances the whole network one time step at
a time (as streaming hardware does). Both give the same results.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from spikeloop.backends.base import BACKENDS
from spikeloop.errors import ParameterError
from spikeloop.ir import Graph
from spikeloop.nn.populations import KERNELS, Kernel
from spikeloop.nn.projections import Linear
from spikeloop.observables import ExecutionReport, NetworkOutput, Observables

RECORDABLE = ("spikes", "v", "i")
"""Fields of :class:`~spikeloop.nn.Observables` that ``SimBackend(record={...})`` can select."""


@BACKENDS.register("sim")
@dataclass(frozen=True)
class SimBackend:
    """Dense differentiable simulator.

    Args:
        mode: ``"sequence"`` (layer by layer over all steps) or ``"step"`` (network step by step).
        kernel: ``"auto"`` (default: fused neuron loops and event-driven projections wherever
            they apply, see :mod:`spikeloop.kernels`), ``"fused"`` (error where they do not) or
            ``"reference"`` (the step functions looped under autograd).
        grad_band: sparse surrogate backprop: the surrogate derivative is zero where
            ``|v − ϑ| ≥ grad_band`` (Perez-Nieves & Goodman 2021); ``None`` (default): off.
        checkpoint: trade recompute for memory over long sequences: run windows of this many
            steps under :func:`torch.utils.checkpoint.checkpoint`, so only the state at window
            boundaries (and what ``record`` keeps) is held for the backward pass; each window
            is simulated twice. ``None`` (default): off.
        record: what to return (default: everything). A list of population names returns
            those populations' observables; a mapping ``{name: fields}`` with fields out of
            ``"spikes"``, ``"v"``, ``"i"`` returns only those fields (the others are ``None``),
            e.g. ``{"hidden": ["spikes"], "output": ["v"]}`` for inference: a spiking
            population's membrane and any synaptic current not asked for are then not written
            at all under ``torch.no_grad()`` (spikes are always computed: they drive the next
            layer). The output population must be included. With ``checkpoint``, populations
            not recorded cost no memory across the sequence.
    """

    mode: Literal["sequence", "step"] = "sequence"
    kernel: Kernel = "auto"
    grad_band: float | None = None
    checkpoint: int | None = None
    record: tuple[str, ...] | Mapping[str, tuple[str, ...]] | None = field(default=None,
                                                                           hash=False)
    name: str = "sim"
    differentiable: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("sequence", "step"):
            raise ParameterError(f"unknown sim mode {self.mode!r}; known: sequence, step")
        if self.kernel not in KERNELS:
            raise ParameterError(f"unknown kernel {self.kernel!r}; known: {', '.join(KERNELS)}")
        if self.grad_band is not None and not (
            isinstance(self.grad_band, int | float) and math.isfinite(self.grad_band)
            and self.grad_band > 0
        ):
            raise ParameterError(f"grad_band must be a finite number > 0 (or None), "
                                 f"got {self.grad_band!r}")
        if self.checkpoint is not None and not (
            isinstance(self.checkpoint, int) and self.checkpoint >= 1
        ):
            raise ParameterError(f"checkpoint must be a whole number of steps ≥ 1 (or None), "
                                 f"got {self.checkpoint!r}")
        if self.checkpoint is not None and self.mode != "sequence":
            raise ParameterError("checkpoint needs mode='sequence'")
        if isinstance(self.record, Mapping):
            fields = {}
            for name, wanted in self.record.items():
                if isinstance(wanted, str) or not isinstance(name, str) or not isinstance(
                        wanted, Iterable):
                    raise ParameterError(f"record: map population names to lists of fields, "
                                         f"got {name!r}: {wanted!r}")
                wanted = tuple(wanted)
                bad = sorted(set(wanted) - set(RECORDABLE))
                if bad:
                    raise ParameterError(f"record[{name!r}]: no field {bad}; known: "
                                         f"{', '.join(RECORDABLE)}")
                fields[name] = wanted
            object.__setattr__(self, "record", MappingProxyType(fields))  # read-only
        elif self.record is not None:
            if isinstance(self.record, str) or not all(isinstance(r, str) for r in self.record):
                raise ParameterError(f"record must be a list of population names or a mapping "
                                     f"of names to fields, got {self.record!r}")
            object.__setattr__(self, "record", tuple(self.record))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle and deep-copy by the constructor's arguments (the read-only ``record``
        mapping itself cannot be pickled)."""
        kwargs = {f.name: getattr(self, f.name) for f in fields(self)}
        if isinstance(self.record, Mapping):
            kwargs["record"] = dict(self.record)
        return functools.partial(type(self), **kwargs), ()

    def run(
        self, graph: Graph, x: Tensor, state: Mapping[str, Any] | None = None
    ) -> NetworkOutput:
        """Simulate ``graph`` on ``x [T, B, *input_shape]``."""
        start = time.perf_counter()
        state = dict(state or {})
        if self.record is not None:
            names = {n.name for n in graph.nodes if n.kind in ("input", "population")}
            unknown = sorted(set(self.record) - names)
            if unknown:
                raise ParameterError(f"record: no population {unknown}; known: {sorted(names)}")
            if graph.output.name not in self.record:
                raise ParameterError(f"record must include the output population "
                                     f"{graph.output.name!r} (NetworkOutput.output)")
            if isinstance(self.record, Mapping):
                _check_fields(graph, self.record)
        # sequence: one window of all steps; step: windows of one step (as streaming hardware);
        # checkpoint: windows of K steps, each recomputed in the backward pass
        size = x.shape[0] if self.mode == "sequence" else 1
        populations, state = self._run_windows(graph, x, state, self.checkpoint or size)
        report = ExecutionReport("sim", wall={"run": time.perf_counter() - start})
        return NetworkOutput(populations, graph.output.name, state, report)

    def _run_windows(
        self, graph: Graph, x: Tensor, state: dict[str, Any], size: int
    ) -> tuple[dict[str, Observables], dict[str, Any]]:
        """Run ``x`` in windows of ``size`` steps, state carried between them; only the
        populations in ``record`` are kept. With ``checkpoint`` and gradients enabled, each
        window runs under :func:`torch.utils.checkpoint.checkpoint`."""
        keep = self.record
        fields = keep if isinstance(keep, Mapping) else None

        checkers = input_checkers(graph, self.kernel)  # once, not per window

        def window(x_w: Tensor, state_w: dict[str, Any]) -> tuple[dict, dict]:
            obs, new = _run_window(graph, x_w, state_w, kernel=self.kernel,
                                   grad_band=self.grad_band, fields=fields, checkers=checkers)
            if keep is not None:
                obs = {k: v for k, v in obs.items() if k in keep}
            return obs, new

        recompute = self.checkpoint is not None and torch.is_grad_enabled()
        windows = []
        for x_w in x.split(size):
            if recompute:
                obs, state = checkpoint(window, x_w, state, use_reentrant=False)
            else:
                obs, state = window(x_w, state)
            windows.append(obs)
        if len(windows) == 1:
            return windows[0], state
        return {name: Observables.cat([w[name] for w in windows]) for name in windows[0]}, state


def _check_fields(graph: Graph, fields: Mapping[str, tuple[str, ...]]) -> None:
    """Every requested field exists for its population, and the output returns something."""
    for name, wanted in fields.items():
        node = graph[name]
        module = node.module
        can = {"spikes"} if node.kind == "input" else {"v"} | (
            {"spikes"} if module.spiking else set()) | (
            {"i"} if "i" in getattr(getattr(module, "state_cls", None), "_fields", ())
            else set())
        bad = sorted(set(wanted) - can)
        if bad:
            raise ParameterError(f"record[{name!r}]: a {type(module).__name__} has no {bad}; "
                                 f"it records {sorted(can)}")
    if not fields[graph.output.name]:
        raise ParameterError(f"record[{graph.output.name!r}] is empty: the output population "
                             "must return at least one field (NetworkOutput.output)")


def input_checkers(graph: Graph, kernel: Kernel) -> frozenset[str]:
    """Projections that check the input for NaN/inf on its events (a few % of its entries)
    instead of the input layer's own pass over it: all readers of the input, if every one is a
    plain event-driven ``Linear`` of the input alone; otherwise none."""
    readers = [n for n in graph.nodes if graph.input.name in n.inputs]
    if kernel != "reference" and readers and all(
            type(n.module) is Linear and n.inputs == (graph.input.name,) and not n.recurrent
            for n in readers):
        return frozenset(n.name for n in readers)
    return frozenset()


def _run_window(
    graph: Graph,
    x: Tensor,
    state: dict[str, Any],
    observed: Mapping[str, Observables] | None = None,
    *,
    kernel: Kernel = "auto",
    grad_band: float | None = None,
    fields: Mapping[str, tuple[str, ...]] | None = None,
    checkers: frozenset[str] | None = None,
) -> tuple[dict[str, Observables], dict[str, Any]]:
    """Run every node over the window ``x`` from ``state``; returns observables and new state.

    ``observed`` (in-the-loop bridge): per-population device recordings that replace the
    model's values with a straight-through identity (see :mod:`spikeloop.backends.inloop`).
    ``kernel`` / ``grad_band``: see :class:`SimBackend`. ``fields``: per population, the
    observables to return (``SimBackend.record`` as a mapping; ``None``: all). ``checkers``:
    :func:`input_checkers` of the graph (derived here if not given).
    """
    observed = observed or {}
    if checkers is None:
        checkers = input_checkers(graph, kernel)
    values: dict[str, Tensor] = {}
    populations: dict[str, Observables] = {}
    new_state: dict[str, Any] = {}
    for node in graph.nodes:
        if node.recurrent:  # run inside its population's time loop
            continue
        if node.kind == "input":
            inp = x
        else:
            inp = values[node.inputs[0]]
            for other in node.inputs[1:]:
                inp = inp + values[other]
        if node.kind == "input":  # validates shape, dtype and finiteness of x
            obs, new_state[node.name] = node.module(inp, check_finite=not checkers)
        elif node.kind == "population":  # shapes were checked when the graph was traced
            module = node.module
            wanted = RECORDABLE if fields is None else fields.get(node.name, ())
            obs, new_state[node.name] = module.simulate(
                inp, module.parameter_record(), state.get(node.name), observed.get(node.name),
                kernel=kernel, grad_band=grad_band, record_current="i" in wanted,
                record_v="v" in wanted,
            )
        if node.kind in ("input", "population"):
            values[node.name] = obs.spikes if obs.spikes is not None else obs.v
            if fields is not None:
                wanted = fields.get(node.name, ())
                obs = Observables(**{k: v if k in wanted else None for k, v in obs.items()})
            populations[node.name] = obs
        elif getattr(node.module, "stateful", False):  # e.g. a delay line: state across windows
            values[node.name], new_state[node.name] = node.module(inp, state.get(node.name))
        elif kernel != "reference" and isinstance(node.module, Linear):
            values[node.name] = node.module.forward_events(
                inp, check_finite="Input" if node.name in checkers else None)
        else:
            values[node.name] = node.module(inp)
    return populations, new_state
