"""Build and load the analog chip's native kernels (``native.c`` in this folder: the column ADC
read-out and the Gaussian noise generator) through :mod:`ctypes`.

The library is built by the generic machinery of :mod:`spikeloop.kernels.native`
(:func:`~spikeloop.kernels.native.load`: same compiler, flags, per-user cache and shared header
``sl_native.h``), as ``spikeloop_analog_<hash>.so``. The functions here mirror that module's:
:func:`library` is ``None`` with ``SPIKELOOP_NATIVE=0`` or without a working compiler, and the
callers then run their torch code (same results).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from torch import Tensor

from spikeloop.kernels import native

_SOURCE = Path(__file__).with_name("native.c")
ptr = native.ptr


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, f32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_float
    lib.sl_normal.argtypes = [ctypes.c_uint64, i64, f32, p]
    lib.sl_normal.restype = None
    lib.sl_adc_readout.argtypes = [i64, i64, i64, i64, p, p, p, p, p, p, f32, f32, f32, p]
    lib.sl_adc_readout.restype = None


_LIBRARY = native.LazyLibrary("analog", [_SOURCE], _declare, "using the torch code")


def library() -> ctypes.CDLL | None:
    """The loaded library, or ``None`` if disabled or it cannot be built here."""
    return _LIBRARY.get()


def unavailable_reason() -> str | None:
    """Why :func:`library` returned ``None`` (``None`` if it is loaded or was not tried)."""
    return _LIBRARY.unavailable_reason()


def usable(*tensors: Tensor | None) -> bool:
    """True if the library is loaded and every tensor is a float32 CPU tensor."""
    return library() is not None and native.cpu_float32(*tensors)


def set_threads() -> None:
    """Use as many OpenMP threads as torch does (``torch.get_num_threads()``)."""
    _LIBRARY.set_threads()
