"""snnTorch: ``nn.Linear`` → ``snn.Synaptic`` (``snn.RSynaptic`` for ``rec``) → ``nn.Linear`` →
``snn.Synaptic(reset_mechanism="none")`` readout, stepped in a Python loop over ``x.unbind(0)``
(snnTorch's documented usage; the input projection is applied to the whole sequence at once).

Mapping onto the reference dynamics: snnTorch computes ``syn = α syn + x``, ``mem = β mem +
syn``, so with ``α = e^{-dt/τ_syn}``, ``β = e^{-dt/τ_mem}`` and weights ``g · W`` its membrane
equals the reference membrane. Differences: snnTorch resets (to zero, ``reset_mechanism="zero"``)
one step *after* the spike and then also discards that step's input, and its recurrent
``RSynaptic`` evaluates the recurrent projection twice per step for reset-to-zero (library
behaviour, kept). Surrogate: ``fast_sigmoid(slope=10)`` = SuperSpike β = 10.
"""

from __future__ import annotations

import torch
from benchmarks.speed.libs import Model
from benchmarks.speed.workload import Workload
from torch import Tensor, nn

NAME = "snntorch"


def version() -> str:
    import snntorch

    return snntorch.__version__


def build(wl: Workload) -> Model:
    import snntorch as snn
    from snntorch import surrogate

    w = wl.weights()
    g = wl.gain
    fc1 = nn.Linear(wl.n_in, wl.hidden, bias=False)
    fc2 = nn.Linear(wl.hidden, wl.n_out, bias=False)
    grad = surrogate.fast_sigmoid(slope=10)
    common = {"alpha": wl.alpha, "beta": wl.beta, "threshold": wl.v_threshold,
              "spike_grad": grad, "reset_mechanism": "zero"}
    if wl.recurrent:
        lif = snn.RSynaptic(**common, all_to_all=True, linear_features=wl.hidden)
        lif.recurrent = nn.Linear(wl.hidden, wl.hidden, bias=False)
    else:
        lif = snn.Synaptic(**common)
    readout = snn.Synaptic(alpha=wl.alpha, beta=wl.beta, reset_mechanism="none")
    with torch.no_grad():
        fc1.weight.copy_(g * w["w1"])
        fc2.weight.copy_(g * w["w2"])
        if wl.recurrent:
            lif.recurrent.weight.copy_(g * w["wrec"])

    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        cur = fc1(x)
        if wl.recurrent:
            spk, syn, mem = lif.init_rsynaptic()
        else:
            syn, mem = lif.reset_mem()
        spikes = []
        for c in cur.unbind(0):
            if wl.recurrent:
                spk, syn, mem = lif(c, spk, syn, mem)
            else:
                spk, syn, mem = lif(c, syn, mem)
            spikes.append(spk)
        s = torch.stack(spikes)
        syn2, mem2 = readout.reset_mem()
        mems = []
        for c in fc2(s).unbind(0):
            _, syn2, mem2 = readout(c, syn2, mem2)
            mems.append(mem2)
        return torch.stack(mems).amax(0), s

    params = [*fc1.parameters(), *fc2.parameters(), *lif.parameters(), *readout.parameters()]
    return Model(params=params, forward=forward, modules=[fc1, fc2, lif, readout])
