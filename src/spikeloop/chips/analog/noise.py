"""Gaussian noise for the analog chip's emulator (read and PSP noise), fast on the CPU.

``torch.randn`` with a generator draws about 250 M numbers per second on one core (Mersenne
Twister, single-threaded); an emulated chip's read-out needs ~10⁶ per batch. :func:`normal`
draws from the given generator only a 64-bit seed and lets the chip's native kernels
(``native.c`` here, loaded by :mod:`spikeloop.chips.analog._native`) produce the numbers
(ziggurat method on SplitMix64, in chunks seeded by ``(seed, chunk)``, so the values do not
depend on the number of threads). Without the native kernels (no compiler, other devices or
dtypes) it is ``torch.randn`` on the same generator. Either way a run is reproducible from the
generator's state; the two engines give different (equally distributed) streams.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spikeloop.chips.analog import _native as native


def normal(
    shape: tuple[int, ...] | torch.Size,
    generator: torch.Generator,
    *,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Tensor:
    """``scale · N(0, 1)`` of ``shape``, drawn reproducibly from ``generator``."""
    device = torch.device(device)
    if dtype == torch.float32 and device.type == "cpu" and generator.device.type == "cpu" \
            and native.library() is not None:
        seed = int(torch.randint(-(2**63), 2**63 - 1, (), generator=generator,
                                 dtype=torch.int64)) & (2**64 - 1)
        out = torch.empty(shape, dtype=dtype)
        native.set_threads()
        native.library().sl_normal(seed, out.numel(), scale, native.ptr(out))
        return out
    out = torch.randn(shape, generator=generator, dtype=dtype, device=generator.device)
    out = out.to(device)
    return out * scale if scale != 1.0 else out
