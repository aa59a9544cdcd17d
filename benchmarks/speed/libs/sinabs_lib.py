"""Sinabs: ``nn.Linear`` → ``sinabs.layers.LIF(tau_syn=…)`` (``LIFRecurrent`` with an
``nn.Linear`` ``rec_connect`` for ``rec``) → ``nn.Linear`` → ``LIF(spike_fn=None)`` readout (its
output is then the membrane). Batch-first ``[B, T, N]`` (the input is transposed once, outside
the timed region); the layers' states are reset before every forward, as Sinabs training loops
do (``layer.reset_states()``: ``sinabs.reset_states(model)`` recurses into ``LIFRecurrent``'s
``rec_connect`` child instead of resetting the layer). Sinabs loops over time in Python.

Mapping onto the reference dynamics: Sinabs computes ``i = α (i + x)``, ``v = β v + (1 − β) i``
(``norm_input=True``), time constants in steps (``τ/dt``), so weights ``g / ((1 − β) α) · W``
give exactly the reference membrane. Spikes: ``SingleSpike`` (at most one per step, fires at
``v ≥ 1``), ``MembraneReset`` to 0 (reset not differentiated). Surrogate: Sinabs' default
``SingleExponential``. The time constants are frozen (``requires_grad=False``), as in the
other libraries.
"""

from __future__ import annotations

import torch
from benchmarks.speed.libs import Model
from benchmarks.speed.workload import Workload
from torch import Tensor, nn

NAME = "sinabs"


def version() -> str:
    import sinabs

    return sinabs.__version__


def build(wl: Workload) -> Model:
    from sinabs.activation import MembraneReset, SingleSpike
    from sinabs.layers import LIF, LIFRecurrent

    w = wl.weights()
    scale = wl.gain / ((1.0 - wl.beta) * wl.alpha)
    taus = {"tau_mem": wl.tau_mem / wl.dt, "tau_syn": wl.tau_syn / wl.dt}
    spiking = {"spike_threshold": torch.tensor(wl.v_threshold), "spike_fn": SingleSpike,
               "reset_fn": MembraneReset(reset_value=wl.v_reset)}
    fc1 = nn.Linear(wl.n_in, wl.hidden, bias=False)
    fc2 = nn.Linear(wl.hidden, wl.n_out, bias=False)
    if wl.recurrent:
        rec = nn.Linear(wl.hidden, wl.hidden, bias=False)
        lif = LIFRecurrent(**taus, rec_connect=rec, **spiking)
        with torch.no_grad():
            rec.weight.copy_(scale * w["wrec"])
    else:
        lif = LIF(**taus, **spiking)
    readout = LIF(**taus, spike_fn=None)
    with torch.no_grad():
        fc1.weight.copy_(scale * w["w1"])
        fc2.weight.copy_(scale * w["w2"])
    net = nn.Sequential(fc1, lif, fc2, readout)
    for layer in (lif, readout):
        layer.tau_mem.requires_grad_(False)
        layer.tau_syn.requires_grad_(False)

    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        for layer in (lif, readout):  # sinabs.reset_states(net) would skip LIFRecurrent
            layer.reset_states()
        s = lif(fc1(x))
        v = readout(fc2(s))
        return v.amax(1), s

    params = [p for p in net.parameters() if p.requires_grad]
    return Model(params=params, forward=forward, prepare=lambda x: x.transpose(0, 1).contiguous(),
                 modules=[net])
