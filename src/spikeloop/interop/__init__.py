r"""NIR interchange: export spikeloop models to the Neuromorphic Intermediate Representation and
import NIR graphs written by other frameworks (snnTorch, Norse, Rockpool, Sinabs, ...).

>>> graph = to_nir(net)                     # nir.NIRGraph (dt taken from the populations)
>>> save_nir(net, "model.nir")              # the same, written with nir.write
>>> net2 = from_nir(graph, dt=1e-3)         # a spikeloop Network
>>> net3 = load_nir("other.nir", dt=1e-4, method="euler")

Conventions
-----------
NIR describes continuous-time dynamics; spikeloop simulates on a grid of step ``dt``. A sample
``x_k`` on the grid stands for the NIR input signal ``S(t)`` over ``[k·dt, (k+1)·dt)`` with the
same charge, ``∫ S dt = x_k · dt`` (held for the step in the voltage models, an impulse at the
step's start for the synaptic current). With that one rule the parameters map as follows
(NIR ← spikeloop; import applies the inverse):

=========  ===============================================  ==========================
NIR node   NIR equation                                     parameters
=========  ===============================================  ==========================
LIF / LI   ``τ dv/dt = (v_leak − v) + R S``                 ``tau = tau_mem``, ``R = r``
CubaLIF,   ``τ_syn dI/dt = −I + w_in S``,                   ``tau_syn``, ``tau_mem``,
CubaLI     ``τ_mem dv/dt = (v_leak − v) + R I``             ``R = r``, ``w_in = tau_syn/dt``
IF / I     ``dv/dt = R S``                                  ``R = r / dt``
Delay      ``y(t) = x(t − d)``                              ``d = steps · dt``
=========  ===============================================  ==========================

``v_leak``, ``v_threshold``, ``v_reset`` are copied; time constants stay in seconds. spikeloop's
CUBA current jumps by ``x_k`` per step, which is NIR's jump ``w_in·x_k·dt/τ_syn`` for
``w_in = τ_syn/dt`` (snnTorch's convention too). On import a NIR ``w_in`` other than
``τ_syn/dt`` is folded into the resistance, ``r = R·w_in·dt/τ_syn`` (the current reaches the
membrane only through ``R·I``, so the membrane and spikes are unchanged; the recorded current is
scaled by ``w_in·dt/τ_syn``). NIR's own papers and snnTorch use ``dt = 1e-4 s``; Norse's default
is ``1e-3 s``: pass the ``dt`` the other framework simulates with.

How the continuous model is discretised is a simulation setting, not part of NIR: export writes
each population's ``method`` into the node metadata (``spikeloop_method``) and import uses it
unless ``method`` is given; graphs from snnTorch and Norse (forward Euler) match with
``method="euler"``. Spiking neurons fire when ``v > v_threshold`` and reset to ``v_reset`` in the
same step (spikeloop ``reset="value"``); populations with ``reset="subtract"`` or a refractory
period, and adaptive LIF, have no NIR counterpart and raise :class:`~spikeloop.errors.NIRError`.
A population's recurrent projection is written as a cycle ``pop → pop.recurrent → pop``; on
import, a Linear/Affine node whose only input and output is one neuron node becomes that
population's recurrent projection (spikes of step ``k`` arrive at step ``k+1``), and nested
subgraphs are inlined. A :class:`~spikeloop.nn.DelayedLinear` with whole-step delays is written
as ``Delay → Linear/Affine`` (per synapse: one such branch per distinct delay, summed into the
next node) with its name, ``per`` and ``max_delay`` in the projection's metadata; such branches
are read back as one DelayedLinear. The supported nodes are listed by :func:`support_matrix`.

Validation: import checks everything a graph holds before building a module and raises
:class:`~spikeloop.errors.NIRError` naming the node, attribute and value — nodes and edges
(pairs of existing node names), parameters (finite real numbers, one value or one per neuron;
time constants > 0), whole-number sizes and strides, an Output whose declared shape matches
what feeds it, every node leading to the Output. Wrong arguments (not a graph, a bad ``dt`` or
``method``, a path that is not a str or ``os.PathLike``) raise the argument errors of
:mod:`spikeloop.checks`.
"""

from __future__ import annotations

import os

import nir
from torch import nn

from spikeloop._files import atomic_write
from spikeloop.checks import check_path, check_type
from spikeloop.errors import MissingFileError, NIRError
from spikeloop.interop.assemble import nir_to_network
from spikeloop.interop.common import METHOD_KEY
from spikeloop.interop.export import EXPORTERS, Exporter, exporter, graph_to_nir
from spikeloop.interop.importer import IMPORTERS, Importer, importer
from spikeloop.ir import Graph
from spikeloop.network import GraphNetwork, Network
from spikeloop.nn.layers import (
    AvgPool2d,
    Delay,
    Integrator,
    IntegratorParameters,
    Scale,
    SumPool2d,
    Threshold,
)

PathLike = str | os.PathLike


def to_nir(model: Network | Graph, dt: float | None = None) -> nir.NIRGraph:
    """Export a network (or its traced graph) as a ``nir.NIRGraph``.

    Args:
        model: a :class:`~spikeloop.network.Network` or :class:`~spikeloop.ir.Graph`.
        dt: the simulation step (s) that fixes ``w_in = τ_syn/dt`` and the IF/I ``R = r/dt``;
            default: the populations' ``dt``. A value different from theirs is an error.

    Raises:
        ArgumentTypeError: ``model`` is neither a Network nor a Graph.
        NIRError: a node without NIR counterpart (named, with its type), a population with
            ``reset="subtract"`` or ``t_refrac > 0``, or an inconsistent ``dt``.
        NonFiniteError: a parameter holds NaN or inf (node and parameter named).
        TimeStepError: ``dt`` is not a finite number > 0.
    """
    check_type(model, "model", (Network, Graph), "a spikeloop Network or Graph")
    graph = model.graph if isinstance(model, Network) else model
    return graph_to_nir(graph, dt)


def from_nir(graph: nir.NIRGraph, dt: float, *, method: str | None = None) -> nn.Module:
    """Import a NIR graph as a spikeloop network.

    Args:
        graph: the NIR graph (one Input and one Output node; nested subgraphs are inlined).
        dt: the simulation step (s) of the spikeloop model (see the conventions above).
        method: ``"exact"`` or ``"euler"`` for every population; default: the ``method`` that
            spikeloop recorded in the node's metadata, else ``"exact"``.

    Returns:
        a :class:`~spikeloop.network.Network` where the graph is a chain (plus recurrent
        projections), else a :class:`GraphNetwork` (a Network over a DAG whose layers sum their
        inputs). Both run on the sim backend and return the usual observables.

    Raises:
        ArgumentTypeError: ``graph`` is not a ``nir.NIRGraph``.
        ParameterError: ``method`` is not ``"exact"``, ``"euler"`` or ``None``.
        TimeStepError: ``dt`` is not a finite number > 0.
        NIRError: anything wrong with the graph, naming the node: a node type without spikeloop
            counterpart, malformed nodes or edges (an edge that is not a pair of node names, or
            names a node the graph lacks), a cycle other than a population's recurrent
            projection, several inputs or outputs, a node that does not lead to the output, an
            Output whose declared shape differs from what feeds it, an Input shape that is not
            positive whole numbers, parameters that are not finite numbers, have neither one
            value nor one per neuron, or do not fit (a time constant ≤ 0, ``dt ≥ τ``, delays
            that are not multiples of ``dt``).
    """
    return nir_to_network(graph, dt, method)


def save_nir(model: Network | Graph, path: PathLike, dt: float | None = None) -> None:
    """Export ``model`` with :func:`to_nir` and write it to ``path`` (``nir.write``, HDF5).

    The model is converted before anything is written, and the file is written under a
    temporary name and then renamed: a failure leaves no file (or the previous one) at
    ``path``, never a truncated one.

    Raises:
        ArgumentTypeError: ``path`` is not a str or ``os.PathLike``.
        NIRError: the model cannot be exported (see :func:`to_nir`) or the file cannot be
            written (its folder does not exist, no permission...).
    """
    path = check_path(path, "path")
    graph = to_nir(model, dt)
    try:
        atomic_write(path, lambda tmp: nir.write(tmp, graph), parents=False)
    except OSError as err:
        raise NIRError(f"cannot write the NIR file {str(path)!r}: {err}") from err


def read_nir(path: PathLike) -> nir.NIRGraph:
    """Read a NIR file (``nir.read``).

    Raises:
        ArgumentTypeError: ``path`` is not a str or ``os.PathLike``.
        MissingFileError: ``path`` does not exist (a ``FileNotFoundError``).
        NIRError: the file is not a readable NIR graph (truncated, not HDF5, missing fields).
    """
    path = check_path(path, "path")
    if not path.is_file():
        raise MissingFileError(f"no NIR file {str(path)!r}")
    try:
        graph = nir.read(path)
    except Exception as err:  # h5py/nir raise OSError, KeyError, ValueError, AssertionError...
        raise NIRError(f"{str(path)!r} is not a valid NIR file: {type(err).__name__}: {err}"
                       ) from err
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"{str(path)!r} holds a single {type(graph).__name__} node, not a graph")
    return graph


def load_nir(path: PathLike, dt: float, *, method: str | None = None) -> nn.Module:
    """Read a NIR file (:func:`read_nir`) and import it with :func:`from_nir` (the errors of
    both)."""
    return from_nir(read_nir(path), dt, method=method)


def support_matrix() -> list[tuple[str, str, str]]:
    """Rows ``(NIR node, export, import)`` built from :data:`EXPORTERS` and :data:`IMPORTERS`:
    which spikeloop layer each NIR node is written from and read into, with conversion notes
    (``"no"`` where there is no converter)."""
    produced: dict[str, list[str]] = {}
    for op in EXPORTERS.names():
        conv = EXPORTERS.get(op)
        for t in conv.produces:
            produced.setdefault(t, []).append(op + (f" ({conv.note})" if conv.note else ""))
    structural = {
        "Input": ("yes (the network's Input)", "yes (Input layer)"),
        "Output": ("yes (after the output population)", "yes (marks the output population)"),
        "NIRGraph": ("no (written flat)", "yes (nested graphs are inlined)"),
    }
    rows = []
    for t in sorted(set(nir.ir.__all_ir) | set(IMPORTERS.names()) | set(produced)):
        if t in structural:
            rows.append((t, *structural[t]))
            continue
        exp = "from " + "; ".join(produced[t]) if t in produced else "no"
        if t in IMPORTERS:
            imp = IMPORTERS.get(t)
            impt = f"to {imp.builds}" + (f" ({imp.note})" if imp.note else "")
        else:
            impt = "no"
        rows.append((t, exp, impt))
    rows.append(("recurrent edge (cycle)", "yes (pop → pop.recurrent → pop)",
                 "yes (Linear/Affine from a neuron node onto itself)"))
    rows.append(("Delay → Linear/Affine branches", "from DelayedLinear (one per distinct "
                 "delay per synapse, summed)", "to one DelayedLinear (branches marked by "
                 "spikeloop, or unmarked ones that share no synapse)"))
    return rows


__all__ = [
    "EXPORTERS",
    "IMPORTERS",
    "METHOD_KEY",
    "AvgPool2d",
    "Delay",
    "Exporter",
    "GraphNetwork",
    "Importer",
    "Integrator",
    "IntegratorParameters",
    "Scale",
    "SumPool2d",
    "Threshold",
    "exporter",
    "from_nir",
    "importer",
    "load_nir",
    "read_nir",
    "save_nir",
    "support_matrix",
    "to_nir",
]
