"""A plain hand-written torch loop: the reference a user could write in an afternoon.

Best practices from our performance notes: the input projection is one GEMM over all ``T·B``
rows, the time loop iterates over ``unbind(0)`` (indexing ``x[t]`` inside an autograd graph
makes backward zero-fill a full-size gradient per step), a minimal number of element-wise ops
per step, a custom autograd Heaviside with the SuperSpike surrogate (β = 10), a detached reset,
and the readout projection again as one GEMM. Same exact-exponential dynamics as spikeloop.
"""

from __future__ import annotations

import torch
from benchmarks.speed.libs import Model
from benchmarks.speed.workload import Workload
from torch import Tensor, nn

NAME = "torch_loop"


def version() -> str:
    return torch.__version__


class SuperSpike(torch.autograd.Function):
    """``H(x)`` forward, ``1 / (β|x| + 1)²`` backward (β = 10)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad / (10.0 * x.abs() + 1.0) ** 2


class Net(nn.Module):
    def __init__(self, wl: Workload) -> None:
        super().__init__()
        w = wl.weights()
        self.fc1 = nn.Linear(wl.n_in, wl.hidden, bias=False)
        self.fc2 = nn.Linear(wl.hidden, wl.n_out, bias=False)
        self.rec = nn.Linear(wl.hidden, wl.hidden, bias=False) if wl.recurrent else None
        with torch.no_grad():
            self.fc1.weight.copy_(w["w1"])
            self.fc2.weight.copy_(w["w2"])
            if self.rec is not None:
                self.rec.weight.copy_(w["wrec"])
        self.beta, self.alpha, self.gain = wl.beta, wl.alpha, wl.gain
        self.threshold = wl.v_threshold

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        b = x.shape[1]
        beta, alpha, gain, thr = self.beta, self.alpha, self.gain, self.threshold
        cur = self.fc1(x)  # [T, B, H]: one GEMM
        i = v = cur.new_zeros(b, cur.shape[-1])
        z = None
        spikes = []
        for c in cur.unbind(0):
            if self.rec is not None and z is not None:
                c = c + self.rec(z)
            i = i + c
            v = beta * v + gain * i
            z = SuperSpike.apply(v - thr)
            v = v * (1.0 - z.detach())
            i = alpha * i
            spikes.append(z)
        s = torch.stack(spikes)
        cur2 = self.fc2(s)  # [T, B, n_out]: one GEMM
        i2 = v2 = cur2.new_zeros(b, cur2.shape[-1])
        vs = []
        for c in cur2.unbind(0):
            i2 = i2 + c
            v2 = beta * v2 + gain * i2
            i2 = alpha * i2
            vs.append(v2)
        return torch.stack(vs).amax(0), s


def build(wl: Workload) -> Model:
    net = Net(wl)
    return Model(params=list(net.parameters()), forward=net, modules=[net])
