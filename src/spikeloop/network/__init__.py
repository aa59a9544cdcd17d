"""The user's containers: :class:`Network` (an ordered stack of layers) and, for DAGs,
:class:`GraphNetwork`. A container traces its layers into the IR and picks a backend by value."""

from spikeloop.network.graph_network import GraphNetwork, trace_dag
from spikeloop.network.network import Network

__all__ = ["GraphNetwork", "Network", "trace_dag"]
