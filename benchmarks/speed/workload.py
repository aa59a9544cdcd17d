"""The one definition of the speed benchmark's workload.

Standard workload (``variant="ff"``): 700 inputs → 256 current-based LIF → 20 current-based
leaky-integrator readouts, ``T = 100`` steps of ``dt = 1 ms``, batch 64, 5 % Bernoulli input
spikes, ``tau_mem = 10 ms``, ``tau_syn = 5 ms``, threshold 1, reset to 0; loss = cross-entropy of
the maximum over time of the readout membrane against 20 random class labels; plain SGD.
``variant="rec"`` adds an all-to-all 256 × 256 recurrent projection to the hidden layer (spikes
of step ``k`` arrive at step ``k + 1``). ``variant="shd"`` is ``rec`` on SHD-format data: the
first 64 samples of the spoken digits' training file (``make spoken-digits``; another
SHD-layout file with ``SPIKELOOP_BENCH_SHD=path``) binned into ``T = 100`` bins of 10 ms
(spike counts per bin, through :class:`spikeloop.data.SHD`) and their labels; each bin is one
step of the same dynamics (``τ`` in steps as above), the input weights scaled with the data's
mean density instead of ``rate``.

``variant="shd_scale"`` is the size of the SHD networks in the literature (issue 22): the same
file's first 64 samples over the same 1 s, binned into ``T = 250`` bins of 4 ms, into a
512-neuron recurrent hidden layer (512 × 512 recurrent weights), 20 readouts. Its sizes are in
:data:`SIZES` and :func:`at_variant` applies them. The time constants stay 10 and 5 *steps*
(``dt = 1 ms``, ``τ_mem = 10 ms``, ``τ_syn = 5 ms``, as every variant): at 4 ms bins that is
``τ_mem = 40 ms`` and ``τ_syn = 20 ms`` of the recording, the time constants
``configs/spoken_digits.yaml`` trains with, so the dynamics per step are those of every other
row and only the sizes grow. Input weights scaled with the data's density as ``shd``.

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

import functools
import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

VARIANTS = ("ff", "rec", "shd", "shd_scale")
RECURRENT = ("rec", "shd", "shd_scale")  # variants with the hidden × hidden projection
FROM_FILE = ("shd", "shd_scale")  # variants whose input is the SHD-format file
# The sizes that define a variant where they differ from the dataclass defaults.
SIZES: dict[str, dict[str, int]] = {"shd_scale": {"T": 250, "hidden": 512}}
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
        return self.variant in RECURRENT

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
        if self.variant == "shd" and self.T != 100:
            raise ValueError(f"the shd variant is T = 100 (10 ms bins), got T = {self.T}; "
                             "shd_scale bins the same second into any T")
        if self.variant in FROM_FILE:
            return shd_data(self.T, self.batch, self.n_in, self.n_out)
        g = torch.Generator().manual_seed(self.seed)
        x = (torch.rand(self.T, self.batch, self.n_in, generator=g) < self.rate).float()
        y = torch.randint(0, self.n_out, (self.batch,), generator=g)
        return x, y

    def weights(self) -> dict[str, Tensor | None]:
        """Initial weights ``w1 [hidden, n_in]``, ``w2 [n_out, hidden]``, ``wrec [hidden,
        hidden]`` (``None`` for ``ff``), ``[out, in]`` like ``torch.nn.Linear``, reference units.
        """
        g = torch.Generator().manual_seed(self.seed + 1)
        rate = float(self.data()[0].mean()) if self.variant in FROM_FILE else self.rate
        active = max(rate * self.n_in, 1.0)
        w1 = (_W1_MEAN / active
              + _W1_STD / math.sqrt(active) * torch.randn(self.hidden, self.n_in, generator=g))
        w2 = _W2_STD / math.sqrt(self.hidden) * torch.randn(self.n_out, self.hidden, generator=g)
        wrec = None
        if self.recurrent:
            wrec = (_WREC_MEAN / self.hidden
                    + _WREC_STD / math.sqrt(self.hidden)
                    * torch.randn(self.hidden, self.hidden, generator=g))
        return {"w1": w1, "w2": w2, "wrec": wrec}


def at_variant(wl: Workload, variant: str) -> Workload:
    """``wl`` as ``variant``: a field that still has its dataclass default takes the variant's
    own size from :data:`SIZES` (``shd_scale``: ``T = 250``, ``hidden = 512``); a field set to
    anything else stays (e.g. the harness's ``--quick`` ``T = 10``). Every harness builds a
    variant's workload through this function."""
    defaults = Workload()
    sizes = {name: value for name, value in SIZES.get(variant, {}).items()
             if getattr(wl, name) == getattr(defaults, name)}
    return wl.with_(variant=variant, **sizes)


def shd_file() -> Path:
    """The SHD-format file of the ``shd`` and ``shd_scale`` variants: ``$SPIKELOOP_BENCH_SHD``,
    else the spoken digits' training file where :func:`spikeloop.data.find` finds it."""
    from spikeloop.data import find

    path = os.environ.get("SPIKELOOP_BENCH_SHD")
    return Path(path) if path else find("spoken_digits") / "spoken_digits_train.h5"


@functools.cache
def shd_data(steps: int, batch: int, n_in: int, n_out: int) -> tuple[Tensor, Tensor]:
    """The first ``batch`` samples of :func:`shd_file` as spike counts ``[T, B, 700]``: the
    first second in ``T`` bins of ``1 s / T`` (``T = 100``: 10 ms, the ``shd`` variant;
    ``T = 250``: 4 ms, ``shd_scale``), and their labels."""
    from spikeloop.data import SHD

    if (n_in, n_out) != (700, 20) or steps < 1:
        raise ValueError(f"the SHD-format variants are n_in = 700, n_out = 20 (the file's "
                         f"shape) and T ≥ 1, got T = {steps}, n_in = {n_in}, n_out = {n_out}")
    data = SHD(shd_file(), "train", dt=1.0 / steps, duration=1.0)
    if len(data) < batch:
        raise ValueError(f"{data.path} holds {len(data)} samples, fewer than batch {batch}")
    x = torch.stack([data[i][0] for i in range(batch)], dim=1).float()
    y = torch.as_tensor([data[i][1] for i in range(batch)], dtype=torch.long)
    return x, y


def loss_fn(logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy of the readout's max-over-time membrane (``logits [B, n_out]``)."""
    return F.cross_entropy(logits, y)
