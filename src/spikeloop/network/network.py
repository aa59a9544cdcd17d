"""``Network``: the one model definition that every backend runs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from spikeloop.backends import get_backend
from spikeloop.backends.guard import run_checked
from spikeloop.checks import check_state_dict, check_type, show
from spikeloop.devices import Devices
from spikeloop.errors import ArgumentTypeError, NonFiniteError, ParameterError
from spikeloop.ir import Graph, trace
from spikeloop.kernels.native import finite_flags
from spikeloop.nn.base import version as layer_version


class Network(nn.Module):
    """An ordered stack of layers — an :class:`Input`, then projections, reshapes and
    populations — traced into a :class:`~spikeloop.ir.Graph` and run by a backend.

    Args:
        layers: a mapping ``name → module`` (names appear in the observables) or a list or
            tuple (named ``<type>_<index>``). The last layer is a population (the output).
            All populations share one ``dt``.
        backend: default backend (name, instance or ``{"name": ..., **options}``); ``"sim"``.
        devices: device models by node name (:class:`~spikeloop.devices.Devices`, or the
            mapping it takes): every run, on every backend, uses what the devices realise.

    Raises:
        ArgumentTypeError: ``layers`` is not a mapping or list of modules, a name not a string.
        ParameterError: a name a ``ModuleDict`` cannot hold (``'training'``, ``'a.b'`` …).
        UnknownNameError: an unknown backend.
        ShapeError, TimeStepError: the layers do not form a network (see
            :func:`spikeloop.ir.trace`).

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
        devices: Devices | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_type(layers, "layers", Mapping | nn.ModuleDict | list | tuple | nn.ModuleList
                   | nn.Sequential, "a mapping of layer names to layers or a list of layers")
        if not isinstance(layers, Mapping | nn.ModuleDict):
            layers = OrderedDict(
                (f"{type(m).__name__.lower()}_{i}", m) for i, m in enumerate(layers)
            )
        self.layers = nn.ModuleDict(_checked_layers(layers))
        self.backend = backend
        self.devices = devices
        self._graph = self._trace(self.layers)
        self._traced_at = (layer_version(), self._structure())

    @property
    def backend(self) -> Any:
        """The default backend: a registered name, ``{"name": ..., **options}`` or a backend
        instance (checked when set: an unknown name or option is an error here, not at the
        first run)."""
        return self._backend

    @backend.setter
    def backend(self, spec: Any) -> None:
        get_backend(spec)  # resolves it: a wrong type, unknown name or option raises now
        self._backend = spec

    @property
    def devices(self) -> Devices:
        """The device models attached to the network's nodes (:class:`~spikeloop.devices.Devices`;
        empty: ideal devices). Set a :class:`Devices` or the mapping it takes."""
        return self._devices

    @devices.setter
    def devices(self, value: Devices | Mapping[str, Any] | None) -> None:
        self._devices = value if isinstance(value, Devices) else Devices(value)

    @property
    def graph(self) -> Graph:
        """The layers as an IR graph holding their current tensors and settings: traced again
        when a layer's attribute was set (a new tensor, ``dt``, ``surrogate`` …), a buffer,
        parameter or sub-module registered, a layer converted (``.to(device)``, ``.double()``;
        :func:`spikeloop.nn.base.version`) or a layer of this network replaced
        (``net.layers["fc1"] = …``, ``net.layers.fc1 = …``), so the graph never holds stale
        values. (Changing a tensor in place — an optimiser step, ``load_state_dict``,
        ``.data = …`` — needs no new trace: the graph holds the same tensors.)"""
        now = (layer_version(), self._structure())
        if not _same(now, self._traced_at):
            self._graph = self._trace(self.layers)
            self._traced_at = now
        return self._graph

    def _structure(self) -> tuple[Any, ...]:
        """What the graph is traced from besides the layers' own attributes: the layers in
        order (the objects, compared by identity)."""
        return tuple(self.layers.items())

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
        graph = self._devices.realise(graph, chosen)
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
        """Raise :class:`NonFiniteError` naming the first parameter or floating-point buffer
        (a population's untrained ``tau_mem`` …) holding NaN or inf (set in place after
        construction: every backend then refuses it the same way)."""
        named = self._checked_tensors()
        flags = finite_flags([t for _, _, t in named])  # one host synchronisation at most
        for (kind, name, _), ok in zip(named, flags, strict=True):
            if not ok:
                raise NonFiniteError(f"{kind} {name!r} holds NaN or infinite values")

    def _checked_tensors(self) -> list[tuple[str, str, Tensor]]:
        """``(kind, name, tensor)`` of every parameter and floating-point buffer, listed again
        when the graph would be traced again (:attr:`graph`: a layer's attribute, tensor or
        sub-module set, a layer replaced) or the network's own modules, parameters or buffers
        changed; kept between runs otherwise (the walk over the modules costs about as much as
        the check itself)."""
        now = (layer_version(), self._structure(),
               *(tuple((k, id(v)) for k, v in d.items())
                 for d in (self._modules, self._parameters, self._buffers)))
        kept = self.__dict__.get("_checked_at")
        if kept is not None and _same(now, kept[0]):
            return kept[1]
        named = [("parameter", n, t) for n, t in self.named_parameters()] + [
            ("buffer", n, t) for n, t in self.named_buffers() if t.is_floating_point()]
        self.__dict__["_checked_at"] = (now, named)  # (not a module attribute)
        return named

    def constrain_(self) -> None:
        """Apply every population's parameter constraints (call after an optimiser step)."""
        for module in self.modules():
            if module is not self and hasattr(module, "constrain_"):
                module.constrain_()

    def summary(self) -> str:
        """The traced graph's table of neurons, synapses and parameters."""
        return self.graph.summary()


_PROBE = nn.ModuleDict()


def _checked_layers(layers: Mapping[Any, Any]) -> dict[str, nn.Module]:
    """``layers`` as a dict after checking every name (a non-empty string without ``'.'`` that
    is no attribute of a ``ModuleDict``: ``pop``, ``training``, ``_modules`` …) and every value
    (a ``torch.nn.Module``)."""
    out = {}
    for name, module in layers.items():
        if not isinstance(name, str):
            raise ArgumentTypeError(f"invalid layer name {show(name)}: layer names must be "
                                    f"strings, got {type(name).__name__}")
        if not name or "." in name or hasattr(_PROBE, name):
            raise ParameterError(
                f"invalid layer name {name!r}: names must be non-empty strings without '.' "
                "and not a ModuleDict attribute (pop, keys, items, training, _modules, ...)"
            )
        out[name] = check_type(module, f"layer {name!r}", nn.Module,
                               "a layer (a torch.nn.Module such as Linear or CubaLIF)")
    return out


def _same(a: Any, b: Any) -> bool:
    """``a == b`` for (nested) tuples, comparing modules by identity."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a is b if isinstance(a, nn.Module) else a == b
