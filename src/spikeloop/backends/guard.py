"""What every run of a network checks, whatever backend runs it: :func:`run_checked`.

Before the backend sees anything, the input is checked and brought to the network's dtype
(:func:`spikeloop.checks.check_input`: the one dtype rule — cast where no value changes and say
so in the run's warnings, refuse otherwise), and the state is checked against the network and
the backend (:func:`check_state`). After the run, every population's membrane must be finite
(finite input and parameters can still overflow: inputs of ``3e38``), and the state the run
ended in is tagged as a :class:`~spikeloop.observables.NetworkState` of this network and
backend. So every backend refuses the same inputs with the same errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from spikeloop.backends.base import Backend
from spikeloop.checks import check_input, show
from spikeloop.dynamics.models import PopulationState
from spikeloop.errors import ArgumentTypeError, DTypeError, NonFiniteError, StateError
from spikeloop.ir import Graph, Node
from spikeloop.kernels.native import all_finite
from spikeloop.observables import NetworkOutput, NetworkState


def network_signature(graph: Graph) -> tuple[tuple[Any, ...], ...]:
    """``(name, kind, op, shape)`` of every node: what a state must have been made for
    (:attr:`Graph.signature <spikeloop.ir.Graph.signature>`, derived once per graph)."""
    return graph.signature


def network_dtype_device(graph: Graph) -> tuple[torch.dtype, torch.device]:
    """The floating-point dtype and the device of the network's tensors (the default dtype and
    the CPU if it has none).

    Raises:
        DTypeError: its floating-point tensors mix dtypes.
    """
    dtypes: dict[torch.dtype, str] = {}
    device = None
    for node in graph.nodes:
        for key, t in node.params.items():
            if isinstance(t, Tensor) and t.is_floating_point():
                dtypes.setdefault(t.dtype, f"{node.name}.{key}")
                device = device or t.device
    if len(dtypes) > 1:
        shown = ", ".join(f"{where} is {dt}" for dt, where in dtypes.items())
        raise DTypeError(f"the network's tensors mix dtypes ({shown}): convert the whole "
                         "network (net.float() or net.double())")
    dtype = next(iter(dtypes), torch.get_default_dtype())
    return dtype, device or torch.device("cpu")


def run_checked(backend: Backend, graph: Graph, x: Any, state: Any = None) -> NetworkOutput:
    """Run ``graph`` on ``x`` from ``state`` with ``backend``, checking both first and the
    membranes after (see the module docstring). :meth:`spikeloop.network.Network.forward`
    runs every network through here.

    Raises:
        ArgumentTypeError, ShapeError, DTypeError, DeviceError: the input (see
            :func:`~spikeloop.checks.check_input`); :class:`SpikeEvents` given to a backend that
            takes dense tensors only.
        StateError: the state does not belong to this network and backend.
        NonFiniteError: a membrane became NaN or infinite during the run.
    """
    dtype, device = network_dtype_device(graph)
    note = None
    name = getattr(backend, "name", type(backend).__name__)
    if _is_events(x):
        if not getattr(backend, "accepts_events", False):
            raise ArgumentTypeError(f"the {name} backend takes a dense input tensor [T, B, "
                                    f"{', '.join(map(str, graph.input.shape))}]; SpikeEvents "
                                    "run on the event backend (backend='event')")
        batch = int(x.times.shape[0])
    else:
        x, note = check_input(x, graph.input.shape, dtype, device)
        batch = int(x.shape[1])
    values = check_state(graph, backend, state, batch, dtype, device)
    out = backend.run(graph, x, values)
    _check_membranes(out, x)
    out.state = NetworkState(out.state or {}, backend=name, network=network_signature(graph),
                             batch=batch, dtype=dtype, device=device)
    if note is not None:
        out.report.warnings.insert(0, note)
    return out


def _is_events(x: Any) -> bool:
    return not isinstance(x, Tensor) and hasattr(x, "times") and hasattr(x, "channels")


def check_state(graph: Graph, backend: Backend, state: Any, batch: int, dtype: torch.dtype,
                device: torch.device) -> dict[str, Any] | None:
    """Check a state given to continue a run and return its values (``None``: start at rest).

    ``state`` is ``None`` (or empty), the :class:`~spikeloop.observables.NetworkState` of a
    previous run, or a mapping of node name → state record; a backend with ``streaming = False``
    (it cannot continue a run) takes only ``None``. A ``NetworkState`` must come from
    the same backend and an identical network, with the same batch size, dtype and device.
    Every entry is then checked against its node: a population's entry is a
    :class:`~spikeloop.dynamics.models.PopulationState` holding its neuron model's state record
    (its fields ``[B, *shape]``, finite, of the network's dtype and device); a stateful
    projection's (a delay line's) is a tensor ``[max_steps, B, *input shape]``; every stateful
    node of the network has an entry. A backend with a state of its own layout (a chip's
    registers) checks its entries itself (``check_state(graph, values, batch)``).

    Raises:
        StateError: names the first mismatch.
    """
    if state is None or (isinstance(state, Mapping) and not state):
        return None
    name = getattr(backend, "name", type(backend).__name__)
    if not getattr(backend, "streaming", True):
        raise StateError(f"the {name} backend cannot continue from a state (streaming): run "
                         "the whole sequence in one call (state=None)")
    if isinstance(state, NetworkState):
        _check_tags(graph, name, state, batch, dtype, device)
    elif not isinstance(state, Mapping):
        raise StateError(f"state must be the .state of a previous run (or None to start at "
                         f"rest), got {show(state)} ({type(state).__name__})")
    values = dict(state)
    bad_keys = [k for k in values if not isinstance(k, str)]
    if bad_keys:
        raise StateError(f"state keys must be node names, got {show(bad_keys[0])}")
    own = getattr(backend, "check_state", None)
    if own is not None:
        own(graph, values, batch)
        return values
    stateful = {n.name: n for n in graph.nodes
                if n.kind in ("input", "population") or n.delay_line}
    unknown = sorted(set(values) - set(stateful))
    if unknown:
        raise StateError(f"state holds {unknown}, which are not stateful nodes of this network "
                         f"({sorted(stateful)}): it belongs to another network or backend")
    missing = [n for n, node in stateful.items()
               if n not in values and node.kind == "population"]
    if missing:
        raise StateError(f"state lacks {missing}: give the whole .state of a previous run (or "
                         "None to start at rest)")
    for name, value in values.items():
        node = stateful[name]
        if node.kind == "input":
            if value is not None:
                raise StateError(f"state[{name!r}]: the input has no state (None), got "
                                 f"{show(value)}")
        elif node.kind == "population":
            _check_population_state(node, value, batch, dtype, device)
        else:
            _check_tensor(f"state[{name!r}]", value, _delay_line_shape(graph, node, batch),
                          batch, dtype, device)
    return values


def _delay_line_shape(graph: Graph, node: Node, batch: int) -> tuple[int, ...]:
    """A delay line's state: its last ``max_steps`` inputs, ``(max_steps, B, *input shape)``."""
    return (node.settings["max_steps"], batch, *graph[node.inputs[0]].shape)


def _check_tags(graph: Graph, backend: str, state: NetworkState, batch: int,
                dtype: torch.dtype, device: torch.device) -> None:
    if state.backend != backend:
        raise StateError(f"this state comes from a {state.backend!r} run; it continues only a "
                         f"run on that backend, not on {backend!r}")
    sig = network_signature(graph)
    if state.network != sig:
        theirs = {n[0]: n for n in state.network}
        ours = {n[0]: n for n in sig}
        diff = [f"{k}: {theirs.get(k, 'absent')} here {ours.get(k, 'absent')}"
                for k in sorted(set(theirs) | set(ours)) if theirs.get(k) != ours.get(k)]
        raise StateError("this state comes from another network (nodes that differ: "
                         f"{'; '.join(diff[:3])}{' …' if len(diff) > 3 else ''})")
    if state.batch != batch:
        raise StateError(f"the state is for batch size B = {state.batch}, the input has "
                         f"B = {batch}")
    if state.dtype != dtype or state.device != device:
        raise StateError(f"the state was made by the network as {state.dtype} on "
                         f"{state.device}; it is now {dtype} on {device}")


def _check_population_state(node: Node, value: Any, batch: int, dtype: torch.dtype,
                            device: torch.device) -> None:
    who = f"state[{node.name!r}]"
    record = node.model.state
    if not isinstance(value, PopulationState):
        raise StateError(f"{who} must be the PopulationState of a {node.op} population, got "
                         f"{show(value)} ({type(value).__name__})")
    if type(value.neuron) is not record:
        raise StateError(f"{who} holds a {type(value.neuron).__name__}; a {node.op} "
                         f"population's state is a {record.__name__}")
    for field, t in value.neuron._asdict().items():
        _check_tensor(f"{who}.neuron.{field}", t, (batch, *node.shape), batch, dtype, device)
    if value.z is not None:
        _check_tensor(f"{who}.z", value.z, None, batch, dtype, device, batch_dim=0)


def _check_tensor(who: str, t: Any, shape: tuple[int, ...] | None, batch: int,
                  dtype: torch.dtype, device: torch.device, batch_dim: int = 1) -> None:
    if not isinstance(t, Tensor):
        raise StateError(f"{who} must be a tensor, got {show(t)} ({type(t).__name__})")
    if shape is not None and tuple(t.shape) != shape:
        raise StateError(f"{who} has shape {tuple(t.shape)}, this network and input need "
                         f"{shape} (batch B = {batch})")
    if shape is None and (t.dim() <= batch_dim or t.shape[batch_dim] != batch):
        raise StateError(f"{who} has shape {tuple(t.shape)}: not a state for batch size "
                         f"B = {batch}")
    if t.dtype != dtype or t.device != device:
        raise StateError(f"{who} is {t.dtype} on {t.device}; the network runs {dtype} on "
                         f"{device}")
    if not all_finite(t):
        raise StateError(f"{who} holds NaN or infinite values")


def _check_membranes(out: NetworkOutput, x: Any) -> None:
    """Every population's membrane finite after the run (finite inputs can still overflow)."""
    for name, obs in out.populations.items():
        v = obs.v
        if v is not None and isinstance(v, Tensor) and not all_finite(v):
            biggest = (f" (the input reaches |x| = {float(x.detach().abs().max()):.3g})"
                       if isinstance(x, Tensor) else "")
            raise NonFiniteError(f"population {name!r}: the membrane became NaN or infinite "
                                 f"during the run{biggest}; the values overflow "
                                 f"{v.dtype}")
