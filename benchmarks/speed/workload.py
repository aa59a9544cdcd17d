"""The one definition of the speed benchmark's workload.

Standard workload (``variant="ff"``): 700 inputs → 256 current-based LIF → 20 current-based
leaky-integrator readouts, ``T = 100`` steps of ``dt = 1 ms``, batch 64, 5 % Bernoulli input
spikes, ``tau_mem = 10 ms``, ``tau_syn = 5 ms``, threshold 1, reset to 0; loss = cross-entropy of
the maximum over time of the readout membrane against 20 random class labels; plain SGD.
``variant="rec"`` adds an all-to-all 256 × 256 recurrent projection to the hidden layer (spikes
of step ``k`` arrive at step ``k + 1``).

Reference dynamics (spikeloop's exact discretisation, which every library is mapped onto)::

    I' = I_k + x_k                      x_k: weighted input of step k (W · spikes_k)
    v  = β v_k + g I'                   β = e^{-dt/τ_mem}, α = e^{-dt/τ_syn}
    z  = H(v − 1);  v_{k+1} = v (1 − z) g = τ_syn/(τ_syn − τ_mem) (α − β)
    I_{k+1} = α I'

The readout is the same without threshold. Every library gets the *same* weights (drawn here
from a fixed seed, in the units above: the jump of ``I`` per input spike); each library module
rescales them to its own discretisation (e.g. snnTorch's ``mem = β mem + syn`` needs ``g · W``)
so that all libraries simulate the same network from the same starting point. The hidden layer
then fires at a few–15 % per step (reported per library in the results).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

VARIANTS = ("ff", "rec")
MODES = ("train", "forward")

# Weight initialisation (reference units). The input weights are scaled with the expected number
# of active inputs per step, so the hidden rate stays in the same range when the input rate or
# the number of inputs is varied (scaling curves); recurrent and readout weights scale with
# 1/sqrt(hidden).
_W1_MEAN = 0.35  # mean total drive per step, split over the active inputs
_W1_STD = 0.50  # std of the drive, over sqrt(active inputs)
_WREC_STD = 1.0  # over sqrt(hidden)
_WREC_MEAN = 0.0  # over hidden (balanced)
_W2_STD = 1.0  # over sqrt(hidden)


@dataclass(frozen=True)
class Workload:
    """Sizes, neuron parameters and seeds of one benchmark configuration."""

    variant: str = "ff"
    T: int = 100
    batch: int = 64
    n_in: int = 700
    hidden: int = 256
    n_out: int = 20
    rate: float = 0.05
    dt: float = 1e-3
    tau_mem: float = 10e-3
    tau_syn: float = 5e-3
    v_threshold: float = 1.0
    v_reset: float = 0.0
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; known: {', '.join(VARIANTS)}")
        if not 0.0 < self.rate <= 1.0:
            raise ValueError(f"rate must lie in (0, 1], got {self.rate}")

    @property
    def recurrent(self) -> bool:
        return self.variant == "rec"

    def with_(self, **changes: Any) -> Workload:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    # ------------------------------------------------------------------ discretisation
    @property
    def beta(self) -> float:
        """Membrane decay per step ``e^{-dt/τ_mem}``."""
        return math.exp(-self.dt / self.tau_mem)

    @property
    def alpha(self) -> float:
        """Synaptic decay per step ``e^{-dt/τ_syn}``."""
        return math.exp(-self.dt / self.tau_syn)

    @property
    def gain(self) -> float:
        """Membrane change over one step per unit of synaptic current (exact integration)."""
        return self.tau_syn / (self.tau_syn - self.tau_mem) * (self.alpha - self.beta)

    # ------------------------------------------------------------------ data and weights
    def data(self) -> tuple[Tensor, Tensor]:
        """Input spikes ``[T, B, n_in]`` (float32 0/1) and labels ``[B]`` (int64), fixed seed."""
        g = torch.Generator().manual_seed(self.seed)
        x = (torch.rand(self.T, self.batch, self.n_in, generator=g) < self.rate).float()
        y = torch.randint(0, self.n_out, (self.batch,), generator=g)
        return x, y

    def weights(self) -> dict[str, Tensor | None]:
        """Initial weights ``w1 [hidden, n_in]``, ``w2 [n_out, hidden]``, ``wrec [hidden,
        hidden]`` (``None`` for ``ff``), ``[out, in]`` like ``torch.nn.Linear``, reference units.
        """
        g = torch.Generator().manual_seed(self.seed + 1)
        active = max(self.rate * self.n_in, 1.0)
        w1 = (_W1_MEAN / active
              + _W1_STD / math.sqrt(active) * torch.randn(self.hidden, self.n_in, generator=g))
        w2 = _W2_STD / math.sqrt(self.hidden) * torch.randn(self.n_out, self.hidden, generator=g)
        wrec = None
        if self.recurrent:
            wrec = (_WREC_MEAN / self.hidden
                    + _WREC_STD / math.sqrt(self.hidden)
                    * torch.randn(self.hidden, self.hidden, generator=g))
        return {"w1": w1, "w2": w2, "wrec": wrec}


def loss_fn(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy of the readout's max-over-time membrane (``logits [B, n_out]``)."""
    return F.cross_entropy(logits, y)
