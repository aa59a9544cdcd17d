"""Typed records that every backend returns: per-population observables and an execution report."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from spikeloop.errors import ShapeError, UnknownNameError


@dataclass(frozen=True)
class DenseTrace:
    """High-rate membrane samples of one neuron of one batch entry (e.g. a chip's fast ADC).

    ``t``: sample times (s, model time); ``v``: membrane in model units.
    """

    t: Tensor
    v: Tensor
    neuron: int
    sample: int


@dataclass
class Observables:
    """What was observed of one population, time-major ``[T, B, *shape]``.

    Attributes:
        spikes: 0/1 spikes (``None`` for non-spiking readouts).
        v: membrane potential on the simulation grid; for spiking neurons the value compared
            with the threshold (before reset). ``None`` for input populations.
        i: synaptic current at the end of each step, for current-based models.
        dense: optional high-rate membrane samples of a selected neuron (chips).
    """

    spikes: Tensor | None = None
    v: Tensor | None = None
    i: Tensor | None = None
    dense: DenseTrace | None = None

    def items(self) -> Iterator[tuple[str, Tensor]]:
        """The recorded (non-``None``) fields as ``(name, tensor)`` pairs."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                yield f.name, value

    @staticmethod
    def cat(parts: Sequence[Observables]) -> Observables:
        """Concatenate observables of consecutive time windows along time."""
        return Observables(**{
            name: torch.cat([getattr(p, name) for p in parts], dim=0)
            for name, _ in parts[0].items()
        })


@dataclass(frozen=True)
class ReadoutRange:
    """What a backend's membrane read-out of one population can report (e.g. a chip's ADC).

    Attributes:
        low, high: the lowest and highest value the read-out can return, per neuron ``[N]``,
            in model units (the units of ``Observables.v``); a membrane beyond them reads as
            the limit (saturation).
        resolution: model units per read-out code (one ADC LSB); ``0`` for a continuous one.
        description: what the read-out is, for plots and reports (``"chip 8-bit ADC read-out"``).
        unit: how its values relate to the model's units, for axis labels.
    """

    low: Tensor
    high: Tensor
    resolution: float
    description: str
    unit: str

    def at_limits(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """Which values of ``v [T, B, N]`` read the ceiling / the floor: two bool tensors of
        ``v``'s shape.

        A value within half a code of a limit is at it (the read-out can report nothing between
        the last code and the limit), so values interpolated between samples count only where
        a sample itself was at the limit.
        """
        if v.dim() != 3 or v.shape[-1] != self.high.numel():
            raise ShapeError(f"v must be [T, B, {self.high.numel()}], got {tuple(v.shape)}")
        tol = self._tolerance()
        high = self.high.to(v.dtype).reshape(1, 1, -1)
        low = self.low.to(v.dtype).reshape(1, 1, -1)
        return v >= high - tol, v <= low + tol

    def _tolerance(self) -> float:
        """Half a code (a value that close to a limit reads as the limit)."""
        return max(self.resolution / 2, 1e-6 * float(self.high.abs().max()))

    def saturated(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """Which batch entries of ``v [T, B, N]`` read the ceiling / the floor at any time step
        of any neuron (:meth:`at_limits`): two bool tensors ``[B]``."""
        high, low = self.at_limits(v)
        return high.any(-1).any(0), low.any(-1).any(0)

    def saturation_note(self, name: str, v: Tensor) -> str | None:
        """A line for a run's warnings counting the values of ``v`` at either limit (``None``
        if none is): once per run and population."""
        if v.numel() == 0:
            return None
        tol = self._tolerance()
        lo, hi = torch.aminmax(v.detach())  # one pass: most runs stay inside the limits
        if float(hi) < float(self.high.min()) - tol and float(lo) > float(self.low.max()) + tol:
            return None
        high, low = (int(m.sum()) for m in self.at_limits(v))
        if not (high or low):
            return None
        return (f"{name}: the {self.description} reads its ceiling on {high} and its floor on "
                f"{low} of {v.numel()} membrane values (steps × samples × neurons); the true "
                "membrane lay beyond")


@dataclass
class ExecutionReport:
    """How a backend ran: wall time split into phases (seconds), resources, warnings."""

    backend: str
    wall: dict[str, float] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class NetworkOutput(Mapping[str, Observables]):
    """Observables of every population of a network run, by population name.

    ``out["hidden"].spikes`` reads one population; ``out.output`` is the last population (the
    readout); ``out.state`` is the final state to continue a run (streaming); ``out.report``
    says how the backend ran.
    """

    populations: dict[str, Observables]
    output_name: str
    state: dict[str, Any]
    report: ExecutionReport

    @property
    def output(self) -> Observables:
        """Observables of the network's last population."""
        return self.populations[self.output_name]

    def __getitem__(self, name: str) -> Observables:
        try:
            return self.populations[name]
        except (KeyError, TypeError):
            raise UnknownNameError(f"the run has no population {name!r}; it has "
                                   f"{', '.join(map(repr, self.populations))}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.populations)

    def __len__(self) -> int:
        return len(self.populations)


class NetworkState(Mapping[str, Any]):
    """The state a run ended in (``out.state``), to continue the run where it stopped.

    A read-only mapping of node name → that node's state record (what the backend keeps: a
    population's :class:`~spikeloop.dynamics.models.PopulationState`, a delay's buffer, a chip's
    registers), tagged with what it belongs to, so that a state given to the wrong network or
    backend is an error and not a silent restart from rest:

    Attributes:
        backend: name of the backend that produced it (a ``"xylo"`` state continues only a
            xylo run).
        network: the network's signature — ``(name, kind, op, shape)`` of every node — as
            :func:`spikeloop.backends.network_signature` gives it.
        batch: batch size ``B`` of the run.
        dtype: the network's dtype in that run.
        device: the network's device in that run.
    """

    def __init__(self, values: Mapping[str, Any], *, backend: str,
                 network: tuple[tuple[Any, ...], ...], batch: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        self._values = dict(values)
        self.backend = backend
        self.network = network
        self.batch = batch
        self.dtype = dtype
        self.device = device

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return (f"NetworkState({sorted(self._values)}, backend={self.backend!r}, "
                f"batch={self.batch}, dtype={self.dtype}, device={self.device})")
