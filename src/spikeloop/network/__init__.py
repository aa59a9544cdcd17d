"""The user's containers: :class:`Network` (an ordered stack of layers) and, for DAGs,
:class:`GraphNetwork`. A container traces its layers into the IR and picks a backend by value;
:func:`fold_batchnorm` gives a batch-normalised network's deployment form."""

from spikeloop.network.fold import fold_batchnorm
from spikeloop.network.graph_network import GraphNetwork, trace_dag
from spikeloop.network.network import Network

__all__ = ["GraphNetwork", "Network", "fold_batchnorm", "trace_dag"]
