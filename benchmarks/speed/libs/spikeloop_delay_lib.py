"""spikeloop with learned delays on the input projection: :mod:`.spikeloop_lib`'s network with
``fc1 = DelayedLinear(n_in, hidden, max_delay = 25 steps, per=...)`` (issue 17's speed goal: a
training step with delays of at most 25 steps costs at most 1.5× the step without). Delays
drawn uniformly in ``[0, 25]`` steps from the workload's seed and learned (``learn_delay=True``,
so their gradient is part of the step); each forward pass first calls ``Network.constrain_``,
as the Trainer does after each optimiser step. The rows ``spikeloop_delay_axon`` and
``spikeloop_delay_synapse`` (modules of two lines) are compared with the ``spikeloop`` row of
the same run.
"""

from __future__ import annotations

import torch
from benchmarks.speed.libs import Model, spikeloop_lib
from benchmarks.speed.workload import Workload

MAX_STEPS = 25


def build(wl: Workload, per: str) -> Model:
    from spikeloop.nn import DelayedLinear

    def fc1(wl: Workload) -> torch.nn.Module:
        shape = (wl.n_in,) if per == "axon" else (wl.hidden, wl.n_in)
        g = torch.Generator().manual_seed(wl.seed + 17)
        delay = torch.rand(shape, generator=g, dtype=torch.float64) * MAX_STEPS * wl.dt
        return DelayedLinear(wl.n_in, wl.hidden, MAX_STEPS * wl.dt, dt=wl.dt, per=per,
                             delay=delay)

    model = spikeloop_lib.build(wl, fc1=fc1)
    net, forward = model.modules[0], model.forward

    def constrained(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net.constrain_()  # what the Trainer does after each optimiser step (delays in range)
        return forward(x)

    model.forward = constrained
    model.notes = f"input projection DelayedLinear per {per}, D = {MAX_STEPS} steps, learned"
    return model
