"""The ``Backend`` protocol and the backend registry.

A backend executes a traced :class:`~spikeloop.ir.Graph` on input ``[T, B, *shape]`` and
returns a :class:`~spikeloop.observables.NetworkOutput`: the same typed observables for every
population whatever runs the network. Backends are values: register a factory with
``BACKENDS.register(name)`` and select it by name, by instance, or by ``{"name": ..., **options}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

from spikeloop.errors import DeviceError
from spikeloop.ir import Graph
from spikeloop.observables import NetworkOutput
from spikeloop.registry import Registry


@runtime_checkable
class Backend(Protocol):
    """What every backend provides.

    Attributes:
        name: registry name.
        differentiable: whether autograd flows through :meth:`run` (otherwise training goes
            through the in-the-loop bridge).
    """

    name: str
    differentiable: bool

    def run(
        self, graph: Graph, x: Tensor, state: Mapping[str, Any] | None = None
    ) -> NetworkOutput:
        """Run ``graph`` on input ``x`` from ``state`` (``None``: rest) and return observables."""
        ...


BACKENDS: Registry[Callable[..., Backend]] = Registry("backend")


def get_backend(spec: str | Backend | Mapping[str, Any]) -> Backend:
    """Resolve a backend from a name, an instance, or ``{"name": ..., option: value}``."""
    if isinstance(spec, Backend):
        return spec
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
