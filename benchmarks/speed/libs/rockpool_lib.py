"""Rockpool (torch backend): ``LinearTorch`` → ``LIFTorch`` (``has_rec=True`` for ``rec``) →
``LinearTorch`` → ``LIFTorch`` readout with a threshold it never reaches, whose membrane is read
with ``evolve(record=True)``. Batch-first ``[B, T, N]`` (input transposed once, outside the timed
region); ``reset_state()`` before every forward. ``LIFTorch`` loops over time in Python.

Mapping onto the reference dynamics: Rockpool computes ``I = α (I + x)``, ``v = β v + I`` (its
``alpha``/``beta`` are the membrane/synaptic decays), so weights ``g / α · W`` give the
reference membrane. Differences: ``LIFTorch`` resets by *subtracting* the threshold (it has no
reset-to-value), uses ``max_spikes_per_dt=1`` here (its default allows many spikes per step),
and its surrogate is the piece-wise linear ``StepPWL``. Time constants, thresholds and biases
are ``Constant`` (not trained), as in the other libraries.
"""

from __future__ import annotations

import torch
from benchmarks.speed.libs import Model
from benchmarks.speed.workload import Workload
from torch import Tensor

NAME = "rockpool"


def version() -> str:
    import rockpool

    return rockpool.__version__


def build(wl: Workload) -> Model:
    from rockpool.nn.modules import LIFTorch, LinearTorch
    from rockpool.parameters import Constant

    w = wl.weights()
    scale = wl.gain / wl.alpha

    def lif(n: int, threshold: float, **kw) -> LIFTorch:
        return LIFTorch(n, tau_mem=Constant(wl.tau_mem), tau_syn=Constant(wl.tau_syn),
                        threshold=Constant(threshold), bias=Constant(0.0),
                        max_spikes_per_dt=1.0, dt=wl.dt, **kw)

    fc1 = LinearTorch((wl.n_in, wl.hidden), weight=scale * w["w1"].T)
    fc2 = LinearTorch((wl.hidden, wl.n_out), weight=scale * w["w2"].T)
    if wl.recurrent:
        hidden = lif(wl.hidden, wl.v_threshold, has_rec=True, w_rec=scale * w["wrec"].T)
    else:
        hidden = lif(wl.hidden, wl.v_threshold)
    readout = lif(wl.n_out, 1e9)
    mods = [fc1, hidden, fc2, readout]

    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        for m in (hidden, readout):
            m.reset_state()
        s, _, _ = hidden.evolve(fc1.evolve(x)[0])
        _, _, rec = readout.evolve(fc2.evolve(s)[0], record=True)
        return rec["vmem"].amax(1), s

    params = [p for m in mods for p in torch.nn.Module.parameters(m) if p.requires_grad]
    return Model(params=params, forward=forward, prepare=lambda x: x.transpose(0, 1).contiguous(),
                 modules=mods)


