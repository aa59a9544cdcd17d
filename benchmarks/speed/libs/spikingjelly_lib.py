"""SpikingJelly 2.0 (``activation_based``), its fastest CPU path for a current-based LIF.

``ff``: the synapse and the membrane are each one multi-step ``neuron.LIFNode`` (``step_mode="m"``,
``decay_input=False``, hard reset) — the node that dispatches to SpikingJelly's registered
``sj_lif`` op (whole sequence in one call, hand-written backward) — chained: the synaptic filter
``c_k = α c_{k-1} + x_k`` is a ``LIFNode`` with ``τ = 1/(1 − α)`` that never fires (threshold
1e9, its voltage sequence read with ``store_v_seq=True``), the membrane a ``LIFNode`` with
``τ = 1/(1 − β)``, threshold 1, reset to 0 (detached). The readout is the same pair of filters
without threshold. ``rec``: the op cannot take a recurrent input, so the hidden layer is
``neuron.CUBALIFNode`` stepped in a Python loop with an ``nn.Linear`` recurrent projection (the
readout keeps the op filters). ``functional.reset_net`` before every forward.

Mapping onto the reference dynamics: with weights ``g · W`` both paths compute exactly the
reference membrane. Surrogate: ``SoftSign(alpha=10)`` (same shape as SuperSpike β = 10, 5× its
scale); a surrogate the op supports natively.
"""

from __future__ import annotations

import torch
from benchmarks.speed.libs import Model
from benchmarks.speed.workload import Workload
from torch import Tensor, nn

NAME = "spikingjelly"
_NEVER = 1e9  # threshold of a filter that never fires


def version() -> str:
    from importlib.metadata import version as dist_version

    import spikingjelly  # noqa: F401  (ImportError when missing)

    return dist_version("spikingjelly")


def build(wl: Workload) -> Model:
    from spikingjelly.activation_based import functional, neuron, surrogate

    w = wl.weights()
    g = wl.gain
    tau_syn = 1.0 / (1.0 - wl.alpha)
    tau_mem = 1.0 / (1.0 - wl.beta)
    sg = surrogate.SoftSign(alpha=10.0)

    def lif(tau: float, threshold: float) -> nn.Module:
        return neuron.LIFNode(tau=tau, decay_input=False, v_threshold=threshold,
                              v_reset=wl.v_reset, surrogate_function=sg, detach_reset=True,
                              step_mode="m", store_v_seq=threshold == _NEVER)

    fc1 = nn.Linear(wl.n_in, wl.hidden, bias=False)
    fc2 = nn.Linear(wl.hidden, wl.n_out, bias=False)
    syn1, out_syn, out_mem = lif(tau_syn, _NEVER), lif(tau_syn, _NEVER), lif(tau_mem, _NEVER)
    rec = None
    if wl.recurrent:
        mem1 = neuron.CUBALIFNode(c_decay=wl.alpha, v_decay=wl.beta,
                                  v_threshold=wl.v_threshold, v_reset=wl.v_reset,
                                  surrogate_function=sg)
        mem1.detach_reset = True
        mem1.step_mode = "s"
        rec = nn.Linear(wl.hidden, wl.hidden, bias=False)
        with torch.no_grad():
            rec.weight.copy_(g * w["wrec"])
    else:
        mem1 = lif(tau_mem, wl.v_threshold)
    with torch.no_grad():
        fc1.weight.copy_(g * w["w1"])
        fc2.weight.copy_(g * w["w2"])
    net = nn.ModuleList([fc1, syn1, mem1, fc2, out_syn, out_mem, *([rec] if rec else [])])

    def hidden_ff(cur: Tensor) -> Tensor:
        syn1(cur)
        return mem1(syn1.v_seq)

    def hidden_rec(cur: Tensor) -> Tensor:
        spikes = []
        z = None
        for c in cur.unbind(0):
            z = mem1(c if z is None else c + rec(z))
            spikes.append(z)
        return torch.stack(spikes)

    hidden = hidden_rec if wl.recurrent else hidden_ff

    def forward(x: Tensor) -> tuple[Tensor, Tensor]:
        functional.reset_net(net)
        s = hidden(fc1(x))
        out_syn(fc2(s))
        out_mem(out_syn.v_seq)
        return out_mem.v_seq.amax(0), s

    params = [p for p in net.parameters() if p.requires_grad]
    return Model(params=params, forward=forward, modules=[net],
                 notes="hidden: CUBALIFNode loop; readout: sj_lif op filters" if wl.recurrent
                 else "ff: sj_lif op chain (synapse + membrane)")
