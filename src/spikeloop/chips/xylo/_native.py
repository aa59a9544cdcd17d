"""Build and load the Xylo-like chip's native kernel (``native.c`` in this folder: the integer
time loop) through :mod:`ctypes`.

The library is built by the generic machinery of :mod:`spikeloop.kernels.native`
(:func:`~spikeloop.kernels.native.load`: same compiler, flags, per-user cache and shared header
``sl_native.h``), as ``spikeloop_xylo_<hash>.so``. :func:`library` is ``None`` with
``SPIKELOOP_NATIVE=0`` or without a working compiler; the engine
(:mod:`spikeloop.chips.xylo.engine`) then loops the torch step function (same results).
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from spikeloop.kernels import native

_SOURCE = Path(__file__).with_name("native.c")
ptr = native.ptr


class XyloShape(ctypes.Structure):
    """Mirror of the C ``XyloShape`` struct."""

    _fields_ = [("T", ctypes.c_int64), ("B", ctypes.c_int64), ("Nin", ctypes.c_int64),
                ("N", ctypes.c_int64), ("O", ctypes.c_int64), ("per_net", ctypes.c_int64),
                ("cap_in", ctypes.c_int32), ("cap_hidden", ctypes.c_int32),
                ("cap_out", ctypes.c_int32)]


def _declare(lib: ctypes.CDLL) -> None:
    lib.xylo_run.argtypes = [ctypes.POINTER(XyloShape)] + [ctypes.c_void_p] * 25
    lib.xylo_run.restype = None


_LIBRARY = native.LazyLibrary("xylo", [_SOURCE], _declare, "using the torch step loop")


def library() -> ctypes.CDLL | None:
    """The loaded library, or ``None`` if disabled or it cannot be built here."""
    return _LIBRARY.get()


def unavailable_reason() -> str | None:
    """Why :func:`library` returned ``None`` (``None`` if it is loaded or was not tried)."""
    return _LIBRARY.unavailable_reason()


def set_threads() -> None:
    """Use as many OpenMP threads as torch does (``torch.get_num_threads()``)."""
    _LIBRARY.set_threads()
