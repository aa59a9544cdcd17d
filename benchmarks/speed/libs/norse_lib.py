"""Norse: ``nn.Linear`` → ``norse.torch.LIF`` → ``nn.Linear`` → ``norse.torch.LI`` (``ff``), or
``norse.torch.LIFRecurrent`` (input and recurrent weights inside the cell, Norse's recurrent
API) for ``rec``. Norse's modules loop over time in Python.

Mapping onto the reference dynamics: Norse integrates with forward Euler after the current
jump: ``i' = i + x``, ``v = v + dt/τ_mem (v_leak − v + i')``, ``i = (1 − dt/τ_syn) i'``, reset to
``v_reset``. With ``1/τ_mem = (1 − β)/dt``, ``1/τ_syn = (1 − α)/dt`` and weights
``g / (1 − β) · W`` this is exactly the reference discretisation. Difference: Norse's reset is
not detached and its ``method="super"`` surrogate is SuperSpike with β = 1 (it ignores
``alpha``).
"""

from __future__ import annotations

import torch
from benchmarks.speed.libs import Model
from benchmarks.speed.workload import Workload
from torch import Tensor, nn

NAME = "norse"


def version() -> str:
    import norse

    return norse.__version__


def build(wl: Workload) -> Model:
    from norse.torch import LI, LIF, LIFParameters, LIFRecurrent, LIParameters

    w = wl.weights()
    scale = wl.gain / (1.0 - wl.beta)
    tau_mem_inv = torch.as_tensor((1.0 - wl.beta) / wl.dt)
    tau_syn_inv = torch.as_tensor((1.0 - wl.alpha) / wl.dt)
    p = LIFParameters(tau_syn_inv=tau_syn_inv, tau_mem_inv=tau_mem_inv,
                      v_th=torch.as_tensor(wl.v_threshold),
                      v_reset=torch.as_tensor(wl.v_reset), method="super")
    fc2 = nn.Linear(wl.hidden, wl.n_out, bias=False)
    readout = LI(LIParameters(tau_syn_inv=tau_syn_inv, tau_mem_inv=tau_mem_inv), dt=wl.dt)
    if wl.recurrent:
        fc1 = None
        lif = LIFRecurrent(wl.n_in, wl.hidden, p, dt=wl.dt, autapses=True,
                           input_weights=nn.Parameter(scale * w["w1"]),
                           recurrent_weights=nn.Parameter(scale * w["wrec"]))
    else:
        fc1 = nn.Linear(wl.n_in, wl.hidden, bias=False)
        lif = LIF(p, dt=wl.dt)
        with torch.no_grad():
            fc1.weight.copy_(scale * w["w1"])
    with torch.no_grad():
        fc2.weight.copy_(scale * w["w2"])

    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        s, _ = lif(x) if fc1 is None else lif(fc1(x))
        v, _ = readout(fc2(s))
        return v.amax(0), s

    mods = [m for m in (fc1, lif, fc2, readout) if m is not None]
    params = [q for m in mods for q in m.parameters()]
    return Model(params=params, forward=forward, modules=mods)
