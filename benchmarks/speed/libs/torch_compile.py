"""The plain torch loop of :mod:`torch_loop` under ``torch.compile`` (inductor, whole unrolled
sequence). Opt-in (``--libs torch_compile``): the cold compile takes 50–110 s per shape on the
2-core machine, which the warm-up absorbs and the timed steps do not show. Needs a C++ compiler.
"""

from __future__ import annotations

import torch
from benchmarks.speed.libs import Model
from benchmarks.speed.libs.torch_loop import Net
from benchmarks.speed.workload import Workload

NAME = "torch_compile"


def version() -> str:
    return torch.__version__


def build(wl: Workload) -> Model:
    net = Net(wl)
    compiled = torch.compile(net)
    return Model(params=list(net.parameters()), forward=compiled, modules=[net],
                 notes="torch.compile(inductor) of the torch_loop network")
