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
import logging
import threading
from pathlib import Path

from spikeloop.kernels import native

_SOURCE = Path(__file__).with_name("native.c")
_log = logging.getLogger(__name__)
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_tried = False
_error: str | None = None
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


def library() -> ctypes.CDLL | None:
    """The loaded library, or ``None`` if disabled or it cannot be built here."""
    global _lib, _tried, _error
    if native.disabled():
        return None
    if _tried:
        return _lib
    with _lock:
        if _tried:
            return _lib
        _tried = True
        try:
            _lib = native.load("xylo", [_SOURCE], _declare)
        except (OSError, RuntimeError) as exc:
            _error = str(exc)
            _log.info("xylo chip kernel unavailable, using the torch step loop: %s", exc)
    return _lib


def unavailable_reason() -> str | None:
    """Why :func:`library` returned ``None`` (``None`` if it is loaded or was not tried)."""
    return native.DISABLED if native.disabled() else _error


def set_threads() -> None:
    """Use as many OpenMP threads as torch does (``torch.get_num_threads()``)."""
    lib = library()
    if lib is not None:
        native.set_threads(lib)
