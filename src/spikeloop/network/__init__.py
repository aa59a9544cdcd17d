"""The user's containers: :class:`Network` (an ordered stack of layers) and, for DAGs,
``GraphNetwork``. A container traces its layers into the IR and picks a backend by value."""

from spikeloop.network.network import Network

__all__ = ["Network"]
