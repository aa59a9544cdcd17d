"""spikeloop with learned delays per axon on the input projection: :mod:`.spikeloop_lib`'s
network with ``fc1 = DelayedLinear(n_in, hidden, max_delay = 25 steps, per="axon")`` (issue 17's
speed goal: a training step with delays of at most 25 steps costs at most 1.5× the step
without). Delays drawn uniformly in ``[0, 25]`` steps from the workload's seed and learned
(``learn_delay=True``, so their gradient is part of the step). Not a peer: a second row of
spikeloop, compared with the ``spikeloop`` row of the same run.
"""

from __future__ import annotations

import torch
from benchmarks.speed.libs import Model, spikeloop_lib
from benchmarks.speed.workload import Workload

NAME = "spikeloop_delay_axon"
version = spikeloop_lib.version
MAX_STEPS = 25


def fc1(wl: Workload) -> torch.nn.Module:
    from spikeloop.nn import DelayedLinear

    shape = (wl.n_in,) if "axon" == "axon" else (wl.hidden, wl.n_in)
    g = torch.Generator().manual_seed(wl.seed + 17)
    delay = torch.rand(shape, generator=g, dtype=torch.float64) * MAX_STEPS * wl.dt
    return DelayedLinear(wl.n_in, wl.hidden, MAX_STEPS * wl.dt, dt=wl.dt, per="axon",
                         delay=delay)


def build(wl: Workload) -> Model:
    model = spikeloop_lib.build(wl, fc1=fc1)
    net, forward = model.modules[0], model.forward

    def constrained(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net.constrain_()  # what the Trainer does after each optimiser step (delays in range)
        return forward(x)

    model.forward = constrained
    model.notes = (f"input projection DelayedLinear per axon, D = {MAX_STEPS} steps, "
                   "delays learned")
    return model
