"""``Network``: the one model definition that every backend runs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from spikeloop.backends import get_backend
from spikeloop.backends.guard import run_checked
from spikeloop.checks import all_finite, check_state_dict
from spikeloop.errors import NonFiniteError, ParameterError
from spikeloop.ir import Graph, trace
from spikeloop.nn.base import version as layer_version


class Network(nn.Module):
    """An ordered stack of layers — an :class:`Input`, then projections, reshapes and
    populations — traced into a :class:`~spikeloop.ir.Graph` and run by a backend.

    Args:
        layers: a mapping ``name → module`` (names appear in the observables) or a sequence
            (named ``<type>_<index>``).
        backend: default backend (name, instance or ``{"name": ..., **options}``); ``"sim"``.

    Example:
        >>> from spikeloop.network import Network
        >>> from spikeloop.nn import Input, Linear, CubaLIF, CubaLI
        >>> net = Network({"input": Input(5), "fc1": Linear(5, 120), "hidden": CubaLIF(120),
        ...                "fc2": Linear(120, 3), "output": CubaLI(3)})
        >>> out = net(torch.zeros(100, 8, 5))          # [T, B, features]
        >>> out["hidden"].spikes.shape, out.output.v.shape
        (torch.Size([100, 8, 120]), torch.Size([100, 8, 3]))
    """

    def __init__(
        self,
        layers: Mapping[str, nn.Module] | Sequence[nn.Module],
        *,
        backend: Any = "sim",
    ) -> None:
        super().__init__()
        if not isinstance(layers, Mapping):
            layers = OrderedDict(
                (f"{type(m).__name__.lower()}_{i}", m) for i, m in enumerate(layers)
            )
        for name in layers:
            if not isinstance(name, str) or not name or "." in name or hasattr(nn.ModuleDict, name):
                raise ParameterError(
                    f"invalid layer name {name!r}: names must be non-empty strings without '.' "
                    "and not a ModuleDict attribute (pop, keys, items, ...)"
                )
        self.layers = nn.ModuleDict(layers)
        self.backend = backend
        self._graph = self._trace(self.layers)
        self._traced_at = layer_version()

    @property
    def graph(self) -> Graph:
        """The layers as an IR graph holding their current tensors and settings: traced again
        when a layer's attribute was set (a new tensor, ``dt``, ``surrogate`` …) or a layer was
        converted (``.to(device)``, ``.double()``; :func:`spikeloop.nn.base.version`), so the
        graph never holds stale values. (Changing a tensor in place — an optimiser step,
        ``load_state_dict`` — needs no new trace: the graph holds the same tensors.)"""
        if layer_version() != self._traced_at:
            self._graph = self._trace(self.layers)
            self._traced_at = layer_version()
        return self._graph

    def _trace(self, layers: nn.ModuleDict) -> Graph:
        """The layers as a graph: a chain, each layer reading the previous one's output
        (subclasses wire them otherwise, e.g. :class:`~spikeloop.network.GraphNetwork`)."""
        return trace(layers)

    def forward(
        self, x: Tensor, state: Mapping[str, Any] | None = None, *, backend: Any = None
    ) -> Any:
        """Run the network on ``x [T, B, *input_shape]``; returns a ``NetworkOutput``.

        ``state`` (a previous output's ``.state``, a
        :class:`~spikeloop.observables.NetworkState`) continues a run; it must come from this
        network and backend, with the same batch size. ``backend`` overrides the network's
        default backend for this call. Input, state and the run's membranes are checked by
        :func:`~spikeloop.backends.guard.run_checked`: an input of another dtype is cast to the
        network's where no value changes (the run's warnings say so) and refused otherwise.
        """
        self.check_parameters()
        graph = self.graph
        chosen = get_backend(backend if backend is not None else self.backend)
        return run_checked(chosen, graph, x, state)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> Any:
        """``torch.nn.Module.load_state_dict``, transactional: every key and shape is checked
        (:func:`~spikeloop.checks.check_state_dict`) before any tensor is written, so a state
        that does not fit raises :class:`~spikeloop.errors.CheckpointError` and leaves the
        network exactly as it was."""
        check_state_dict(self.state_dict(), state_dict, strict, who="state dict")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def check_parameters(self) -> None:
        """Raise :class:`NonFiniteError` naming the first parameter holding NaN or inf."""
        for name, p in self.named_parameters():
            if not all_finite(p):
                raise NonFiniteError(f"parameter {name!r} holds NaN or infinite values")

    def constrain_(self) -> None:
        """Apply every population's parameter constraints (call after an optimiser step)."""
        for module in self.modules():
            if module is not self and hasattr(module, "constrain_"):
                module.constrain_()

    def summary(self) -> str:
        """The traced graph's table of neurons, synapses and parameters."""
        return self.graph.summary()
