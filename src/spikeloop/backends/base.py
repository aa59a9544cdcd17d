"""The ``Backend`` protocol and the backend registry.

A backend executes a traced :class:`~spikeloop.ir.Graph` on input ``[T, B, *shape]`` and
returns a :class:`~spikeloop.observables.NetworkOutput`: the same typed observables for every
population whatever runs the network. Backends are values: register a factory with
``BACKENDS.register(name)`` (or ``BACKENDS.add``) and select it by name, by instance, or by
``{"name": ..., **options}``.

A package outside ``spikeloop.backends`` (a chip) registers itself when imported; to be found by
name before anyone imports it, it declares an entry point in the group ``spikeloop.backends``
(``name = "package.module"``, the module whose import registers ``name``). spikeloop's own chips
are declared so in ``pyproject.toml``; ``spikeloop.backends`` names none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from spikeloop.checks import show
from spikeloop.errors import ArgumentTypeError, DeviceError, ParameterError
from spikeloop.ir import Graph
from spikeloop.observables import NetworkOutput, ReadoutRange
from spikeloop.registry import Registry


@runtime_checkable
class Backend(Protocol):
    """What every backend provides — everything the trainer and the network call.

    Attributes:
        name: registry name.
        differentiable: whether autograd flows through :meth:`run` (otherwise training goes
            through the in-the-loop bridge, :func:`~spikeloop.backends.in_the_loop`).

    :class:`BackendBase` gives the defaults of everything but :meth:`run` for a backend without
    a random stream of its own, without a high-rate membrane recording and with an unbounded
    membrane read-out.
    """

    name: str
    differentiable: bool

    def run(
        self, graph: Graph, x: Tensor, state: Mapping[str, Any] | None = None
    ) -> NetworkOutput:
        """Run ``graph`` on input ``x`` from ``state`` (``None``: rest) and return observables."""
        ...

    def get_rng_state(self) -> Tensor | None:
        """State of the backend's own random stream (a chip's trial-to-trial noise), saved in
        checkpoints so a resumed run is bit-identical; ``None`` if it has none."""
        ...

    def set_rng_state(self, state: Tensor) -> None:
        """Restore a state :meth:`get_rng_state` returned."""
        ...

    def with_dense(self, population: str, neuron: int) -> Backend | None:
        """A backend like this one that also records ``neuron`` of ``population`` at a high rate
        (``Observables.dense``, batch entry 0; a chip's fast ADC), or ``None`` if it cannot."""
        ...

    def readout_range(self, graph: Graph, population: str) -> ReadoutRange | None:
        """What the membrane read-out (``Observables.v``) of ``population`` can report when
        ``graph`` runs here: its limits (a chip ADC's floor and ceiling, in model units), its
        resolution and a description; ``None`` if the read-out has no limits (a simulator)."""
        ...


class BackendBase:
    """Defaults of the :class:`Backend` protocol: no random stream, no dense recording, an
    unbounded read-out.

    Two capabilities that :func:`~spikeloop.backends.guard.run_checked` reads (a backend not
    derived from this class has the same defaults): ``streaming`` (``True``: a run continues
    from a previous run's state; ``False``: every run starts at rest and a state is refused)
    and ``accepts_events`` (``False``: the input is a dense tensor only; ``True``: also
    :class:`~spikeloop.backends.SpikeEvents`). A backend whose state is not the per-node
    records of the model (a chip's registers) defines ``check_state(graph, values, batch)``
    raising :class:`~spikeloop.errors.StateError`.
    """

    streaming: bool = True
    accepts_events: bool = False
    device_support: frozenset[str] = frozenset({"weights"})
    """What it can run of device models (:data:`spikeloop.devices.base.CAPABILITIES`): by
    default the realised weights of the graph it is given."""

    def get_rng_state(self) -> Tensor | None:
        """``None``: this backend draws no random numbers of its own."""
        return None

    def set_rng_state(self, state: Tensor) -> None:
        """Accept only ``None`` (there is no random stream to restore)."""
        if state is not None:
            raise ParameterError(f"backend {getattr(self, 'name', type(self).__name__)!r} has "
                                 "no random stream to restore")

    def with_dense(self, population: str, neuron: int) -> Backend | None:
        """``None``: no high-rate membrane recording."""
        return None

    def readout_range(self, graph: Graph, population: str) -> ReadoutRange | None:
        """``None``: the membrane is returned as computed, without limits or codes."""
        return None


BACKENDS: Registry[Callable[..., Backend]] = Registry("backend", entry_points="spikeloop.backends")


_COMPLETE: set[type] = set()  # classes whose instances passed the Backend protocol check


def get_backend(spec: str | Backend | Mapping[str, Any]) -> Backend:
    """Resolve a backend from a name, an instance, or ``{"name": ..., option: value}``.

    Raises:
        ArgumentTypeError: ``spec`` is none of these.
        UnknownNameError: no backend has the name.
        ConfigError / ParameterError: an option the backend does not take or a bad value.
    """
    if type(spec) in _COMPLETE and hasattr(spec, "name") and hasattr(spec, "differentiable"):
        return spec  # (the protocol's methods are its class's: checked once per class)
    if isinstance(spec, type):
        raise ArgumentTypeError(f"backend: got the class {spec.__name__}; pass an instance "
                                f"({spec.__name__}(...)) or a registered name")
    if isinstance(spec, Backend):  # a structural check: about 20 us a call
        _COMPLETE.add(type(spec))
        return spec
    if hasattr(spec, "run"):
        missing = [m for m in ("name", "differentiable", "get_rng_state", "set_rng_state",
                               "with_dense", "readout_range") if not hasattr(spec, m)]
        raise ParameterError(f"{type(spec).__name__} is not a complete backend: it lacks "
                             f"{missing} (inherit spikeloop.backends.BackendBase for the "
                             "defaults)")
    if not isinstance(spec, str | Mapping):
        raise ArgumentTypeError(f"backend must be a name ({', '.join(BACKENDS.names())}), a "
                                f"backend instance or {{'name': ..., option: value}}, got "
                                f"{show(spec)} ({type(spec).__name__})")
    if isinstance(spec, Mapping) and not isinstance(spec.get("name"), str):
        raise ArgumentTypeError(f"a backend spec needs a 'name' string, got {show(dict(spec))}")
    return BACKENDS.build(spec)


def require_host(backend: str, graph: Graph, x: Tensor) -> None:
    """Raise :class:`DeviceError` unless ``x`` and every parameter of ``graph`` are on the CPU.

    The chip emulators stand for devices attached to the host: like the real chips they take
    their input and configuration from host memory. A network trained on a GPU is moved with
    ``net.cpu()`` before it runs on a chip.
    """
    where = {str(x.device)} | {str(t.device) for node in graph.nodes
                               for t in node.params.values()}
    if where != {"cpu"}:
        raise DeviceError(f"the {backend} backend runs on the host: input and network must be on "
                          f"the CPU, got {sorted(where)} (use net.cpu() and x.cpu())")
