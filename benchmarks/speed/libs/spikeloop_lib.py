"""spikeloop through its public API only (``spikeloop.network.Network``, ``"sim"`` backend).

Exactly the reference dynamics of :mod:`benchmarks.speed.workload` (it is spikeloop's exact
discretisation): CubaLIF hidden layer (reset to 0, detached reset, SuperSpike β = 10 surrogate),
CubaLI readout, weights copied unchanged. Whatever fast path the simulator picks is picked
automatically; nothing here selects a kernel.

The network records what every peer's module returns — the hidden spikes and the readout
membrane — with ``SimBackend(record={"hidden": ["spikes"], "output": ["v"]})``; by default
spikeloop would also return the hidden membrane and both synaptic currents. That changes no
computation, only which ``[T, B, N]`` recordings are written; under ``torch.no_grad()`` it saves
the memory of three of them. ``spikeloop_all`` (:mod:`.spikeloop_all_lib`) runs the default,
everything recorded, for comparison.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from benchmarks.speed.libs import Model
from benchmarks.speed.workload import Workload

NAME = "spikeloop"


def version() -> str:
    import spikeloop

    return getattr(spikeloop, "__version__", "unknown")


RECORD: dict[str, list[str]] | None = {"hidden": ["spikes"], "output": ["v"]}


def build(wl: Workload, record: dict[str, list[str]] | None = RECORD,
          fc1: Callable[[Workload], torch.nn.Module] | None = None) -> Model:
    """The workload's network; ``fc1``: a factory for the input projection (default
    ``Linear``; the delay rows pass a ``DelayedLinear``, whose weight is copied the same)."""
    from spikeloop.backends import SimBackend
    from spikeloop.network import Network
    from spikeloop.nn import CubaLI, CubaLIF, Input, Linear

    neuron = {"dt": wl.dt, "tau_mem": wl.tau_mem, "tau_syn": wl.tau_syn}
    net = Network({
        "input": Input(wl.n_in),
        "fc1": fc1(wl) if fc1 is not None else Linear(wl.n_in, wl.hidden),
        "hidden": CubaLIF(wl.hidden, **neuron, v_threshold=wl.v_threshold,
                          v_reset=wl.v_reset, recurrent=wl.recurrent),
        "fc2": Linear(wl.hidden, wl.n_out),
        "output": CubaLI(wl.n_out, **neuron),
    }, backend=SimBackend(record=record))
    w = wl.weights()
    with torch.no_grad():
        net.layers["fc1"].weight.copy_(w["w1"])
        net.layers["fc2"].weight.copy_(w["w2"])
        if wl.recurrent:
            net.layers["hidden"].recurrent.weight.copy_(w["wrec"])

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = net(x)
        return out.output.v.amax(0), out["hidden"].spikes

    return Model(params=list(net.parameters()), forward=forward, modules=[net])
