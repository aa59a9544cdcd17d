"""The description-only intermediate representation: a graph of nodes that hold parameters,
settings and capability flags (no live modules). Modules describe themselves into it; backends,
chip mappers and exporters read it."""

from spikeloop.ir.graph import Graph, Node, check_output, describe, trace

__all__ = ["Graph", "Node", "check_output", "describe", "trace"]
