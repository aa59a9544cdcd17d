"""The simulated backend (default): dense time-stepped simulation with autograd.

It walks the graph with the one executor (:func:`~spikeloop.backends.executor.execute`) and
the software model's hooks (:class:`~spikeloop.backends.executor.ModelHooks`): every population
runs its registered neuron model through :func:`~spikeloop.kernels.loop.run_population`.
``mode="sequence"`` runs each layer over the whole sequence before the next; ``mode="step"``
advances the whole network one time step at a time (as streaming hardware does). Both give
the same results.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from spikeloop.backends.base import BACKENDS, BackendBase
from spikeloop.backends.executor import RECORDABLE, ModelHooks, execute, input_checkers
from spikeloop.checks import check_choice, check_int, check_real
from spikeloop.errors import ParameterError
from spikeloop.ir import Graph
from spikeloop.kernels.loop import KERNELS, Kernel
from spikeloop.observables import ExecutionReport, NetworkOutput, Observables


@BACKENDS.register("sim")
@dataclass(frozen=True)
class SimBackend(BackendBase):
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
    name: str = field(default="sim", init=False)
    differentiable: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        check_choice(self.mode, "sim backend: mode", ("sequence", "step"))
        check_choice(self.kernel, "sim backend: kernel", KERNELS)
        if self.grad_band is not None:
            check_real(self.grad_band, "sim backend: grad_band (or None)", 0, low_open=True)
        if self.checkpoint is not None:
            check_int(self.checkpoint, "sim backend: checkpoint (steps per window, or None)", 1)
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

    @property
    def device_support(self) -> frozenset[str]:
        """Device models it runs (:data:`spikeloop.devices.base.CAPABILITIES`): realised
        weights, neuron devices in the step loop, and per-step projection devices — except
        with ``checkpoint``, whose recomputed windows would draw their noise again."""
        return frozenset({"weights", "step_loop"} | (
            {"projection_hook"} if self.checkpoint is None else set()))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        """Pickle and deep-copy by the constructor's arguments (the read-only ``record``
        mapping itself cannot be pickled)."""
        kwargs = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
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
            hooks = ModelHooks(self.kernel, self.grad_band, fields, checkers=checkers)
            obs, new = execute(graph, x_w, hooks, state_w)
            if fields is not None:
                obs = {k: Observables(**{f: v if f in fields.get(k, ()) else None
                                         for f, v in o.items()}) for k, o in obs.items()}
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
        if node.kind == "input":
            can, what = {"spikes"}, "Input"
        else:
            model = node.model
            can = {"v"} | ({"spikes"} if model.spiking else set()) | (
                {"i"} if "i" in model.state._fields else set())
            what = model.name
        bad = sorted(set(wanted) - can)
        if bad:
            raise ParameterError(f"record[{name!r}]: a {what} has no {bad}; "
                                 f"it records {sorted(can)}")
    if not fields[graph.output.name]:
        raise ParameterError(f"record[{graph.output.name!r}] is empty: the output population "
                             "must return at least one field (NetworkOutput.output)")
