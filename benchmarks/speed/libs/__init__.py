"""One module per library; each builds the workload's network with that library's own API.

A library module defines ``NAME``, ``version() -> str`` (raises ``ImportError`` when the library
is missing) and ``build(workload) -> Model``. A :class:`Model` owns its parameters, converts the
shared input ``x [T, B, n_in]`` to its own layout once (outside the timed region) and maps it to
``(logits [B, n_out], hidden_spikes)``: logits = max over time of the readout membrane, hidden
spikes in any layout (only their mean is used, to report the hidden firing rate).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from torch import Tensor

# Registered libraries: name → module (in benchmarks.speed.libs). Order = report order.
LIBS: dict[str, str] = {
    "spikeloop": "spikeloop_lib",
    "spikeloop_all": "spikeloop_all_lib",
    "spikeloop_delay_axon": "spikeloop_delay_axon_lib",  # issue 17: learned delays, not peers
    "spikeloop_delay_synapse": "spikeloop_delay_synapse_lib",
    "torch_loop": "torch_loop",
    "torch_compile": "torch_compile",
    "snntorch": "snntorch_lib",
    "norse": "norse_lib",
    "sinabs": "sinabs_lib",
    "spikingjelly": "spikingjelly_lib",
    "rockpool": "rockpool_lib",
}
OURS = "spikeloop"
DELAYS = ("spikeloop_delay_axon", "spikeloop_delay_synapse")  # spikeloop with learned delays
DELAY_GOAL = 1.5  # issue 17: a step with delays costs at most this × the step without
OURS_ALL = "spikeloop_all"  # spikeloop recording everything (its default), not a peer
BASELINES = ("torch_loop", "torch_compile")  # hand-written references, not peers
PEERS = ("snntorch", "norse", "sinabs", "spikingjelly", "rockpool")
# torch_compile: opt-in (slow cold compile)
DEFAULT_LIBS = ("spikeloop", "spikeloop_all", "torch_loop", *PEERS)


@dataclass
class Model:
    """A built network: parameters, an input adapter and the forward function."""

    params: list[Tensor]
    forward: Callable[[Any], tuple[Tensor, Tensor]]
    prepare: Callable[[Tensor], Any] = field(default=lambda x: x)
    notes: str = ""
    modules: list[Any] = field(default_factory=list)  # kept alive (train/eval switching)

    def parameters(self) -> Iterable[Tensor]:
        return self.params


def load(name: str) -> ModuleType:
    """Import the benchmark module of library ``name`` (not the library itself)."""
    if name not in LIBS:
        raise KeyError(f"unknown library {name!r}; known: {', '.join(LIBS)}")
    return importlib.import_module(f"{__name__}.{LIBS[name]}")
