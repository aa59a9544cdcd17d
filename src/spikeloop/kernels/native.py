"""Build and load native CPU libraries through :mod:`ctypes`: the generic kernels (``native.c``)
and, with :func:`load`, any other library from its own C sources.

A library is compiled on first use with the system C compiler (``$CC``, else
``cc``/``gcc``/``clang``) into a per-user cache (``$SPIKELOOP_CACHE``, default
``~/.cache/spikeloop``), keyed by a hash of its sources, the shared header and runtime
(``sl_native.h``, ``sl_runtime.c``), the flags, the compiler (path and modification time) and
the CPU (the build targets ``-march=native``), so a later import loads it in milliseconds.
Without a compiler, :func:`library` returns ``None`` and the portable torch engine runs instead
(same results; set ``SPIKELOOP_NATIVE=0`` to force that, e.g. to compare).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from spikeloop import checks

_HERE = Path(__file__).parent
_SOURCE = _HERE / "native.c"
INCLUDE_DIR = _HERE  # holds sl_native.h, the header every library built here includes
_HEADER = _HERE / "sl_native.h"
_RUNTIME = _HERE / "sl_runtime.c"  # linked into every library: sl_set_threads
# -ffp-contract=off: no fused multiply-add (the same rounding as the torch reference);
# -fno-trapping-math: lets gcc if-convert the neuron loops' selections so they vectorise (it
# changes no result, only which floating-point exception flags may be raised)
_FLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-fast-math", "-fno-trapping-math",
          "-fopenmp", "-fPIC", "-shared", "-std=c11"]
_log = logging.getLogger(__name__)
_lock = threading.Lock()
NO_COMPILER = "no C compiler found ($CC, cc, gcc, clang)"
DISABLED = "disabled by SPIKELOOP_NATIVE=0"


class Shape(ctypes.Structure):
    """Mirror of the C ``Shape`` struct."""

    _fields_ = [("T", ctypes.c_int64), ("B", ctypes.c_int64), ("N", ctypes.c_int64),
                ("spiking", ctypes.c_int), ("reset_mode", ctypes.c_int),
                ("refrac_steps", ctypes.c_int)]


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def _cache_dir() -> Path:
    root = os.environ.get("SPIKELOOP_CACHE") or Path.home() / ".cache" / "spikeloop"
    return Path(root) / "kernels"


def _cpu_signature() -> str:
    """The CPU's model and instruction-set flags (Linux), else the machine type."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    keep = [line for line in info.splitlines() if line.startswith(("model name", "flags"))]
    return platform.machine() + "|" + "|".join(sorted(set(keep)))


def _build(cc: str, name: str, sources: Sequence[Path]) -> Path:
    units = [*sources, _RUNTIME]
    compiler = Path(shutil.which(cc) or cc).resolve()
    # a new compiler or another CPU (the build uses -march=native) gives a new key
    stamp = f"{compiler}:{compiler.stat().st_mtime_ns}:{_cpu_signature()}"
    digest = hashlib.sha256()
    for part in (*units, _HEADER):
        digest.update(part.name.encode() + b"\0" + part.read_bytes() + b"\0")
    digest.update(" ".join(_FLAGS).encode() + stamp.encode())
    filename = f"spikeloop_{name}_{digest.hexdigest()[:16]}.so"
    for folder in (_cache_dir(), Path(tempfile.gettempdir()) / f"spikeloop-{os.getuid()}"):
        target = folder / filename
        if target.exists():
            return target
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            break
    else:
        raise RuntimeError("no writable cache folder for the native kernels")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        out = Path(tmp) / target.name
        result = subprocess.run([cc, *_FLAGS, f"-I{INCLUDE_DIR}", *map(str, units), "-o", str(out)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            built = ", ".join(p.name for p in sources)
            raise RuntimeError(f"{cc} failed to build {built}:\n{result.stderr[-2000:]}")
        os.replace(out, target)  # atomic: concurrent builders end with one complete file
    return target


_ENVIRON = os.environ
try:  # the dict os.environ reads (keys and values encoded), to skip encoding the key per call
    _ENV_DATA = _ENVIRON._data  # type: ignore[attr-defined]
    _ENV_KEY = _ENVIRON.encodekey("SPIKELOOP_NATIVE")  # type: ignore[attr-defined]
    _ENV_OFF = _ENVIRON.encodevalue("0")  # type: ignore[attr-defined]
except (AttributeError, TypeError):  # (another os.environ: its own lookup below)
    _ENV_DATA = None


def disabled() -> bool:
    """True if ``SPIKELOOP_NATIVE=0`` turns every native library off (read at every call, so
    setting it at run time takes effect; asked dozens of times per training step, hence the
    direct look into ``os.environ``'s own dict where it is the usual one)."""
    if _ENV_DATA is not None and os.environ is _ENVIRON:
        return _ENV_DATA.get(_ENV_KEY) == _ENV_OFF
    return os.environ.get("SPIKELOOP_NATIVE", "1") == "0"


def load(name: str, sources: Sequence[Path],
         declare: Callable[[ctypes.CDLL], None] | None = None) -> ctypes.CDLL:
    """Build (or take from the cache) and load the library ``name`` compiled from ``sources``.

    The sources are compiled together with ``sl_runtime.c`` (so the library exports
    ``sl_set_threads``), with this folder on the include path (``#include "sl_native.h"``) and
    the flags of the generic kernels; ``declare`` sets the ctypes signatures of its functions.
    Raises :class:`RuntimeError` (no compiler, failed build) or :class:`OSError` (failed load);
    the caller decides on a fallback and keeps the loaded library (this does not cache it).
    """
    cc = _compiler()
    if cc is None:
        raise RuntimeError(NO_COMPILER)
    lib = ctypes.CDLL(str(_build(cc, name, [Path(s) for s in sources])))
    lib.sl_set_threads.argtypes = [ctypes.c_int]
    lib.sl_set_threads.restype = None
    if declare is not None:
        declare(lib)
    return lib


def _declare(lib: ctypes.CDLL) -> None:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    lib.sl_neuron_forward.argtypes = [ctypes.POINTER(Shape)] + [p] * 28
    lib.sl_neuron_forward.restype = None
    f32 = ctypes.c_float
    lib.sl_neuron_backward.argtypes = ([ctypes.POINTER(Shape)] + [p] * 41
                                       + [ctypes.c_int, f32, f32, f32, p])
    lib.sl_neuron_backward.restype = None
    lib.sl_surrogate_grad.argtypes = [i64, i64, p, p, ctypes.c_int, ctypes.c_float,
                                      ctypes.c_float, ctypes.c_float, p]
    lib.sl_surrogate_grad.restype = None
    lib.sl_finite.argtypes = [i64, p]
    lib.sl_finite.restype = ctypes.c_int
    lib.sl_compress_begin.argtypes = [i64, i64, p, p, p]
    lib.sl_compress_begin.restype = p
    lib.sl_compress_product_begin.argtypes = [i64, i64, p, p, p, i64, p, p, ctypes.c_double, p]
    lib.sl_compress_product_begin.restype = p
    lib.sl_compress_end.argtypes = [p, p, p]
    lib.sl_compress_end.restype = None
    lib.sl_event_matmul.argtypes = [i64, i64, p, p, p, p, p]
    lib.sl_event_matmul.restype = None
    lib.sl_event_matmul_dense.argtypes = [i64, i64, i64, p, p, p, ctypes.c_double, p]
    lib.sl_event_matmul_dense.restype = i64
    lib.sl_event_weight_grad_rows.argtypes = [i64, i64, i64, p, p, p, p, p]
    lib.sl_event_weight_grad_rows.restype = ctypes.c_int
    lib.sl_transpose.argtypes = [i64, i64, p, p]
    lib.sl_transpose.restype = None
    lib.sl_delay_axon_grads.argtypes = [i64, i64, p, p, p, p, p, p, p]
    lib.sl_delay_axon_grads.restype = None
    lib.sl_delay_axon_events.argtypes = [i64, i64, i64, i64, i64, p, p, p, p, p, i64] + [p] * 6
    lib.sl_delay_axon_events.restype = i64
    lib.sl_delay_synapse_forward.argtypes = [i64] * 6 + [p] * 6
    lib.sl_delay_synapse_forward.restype = None
    lib.sl_delay_synapse_backward.argtypes = [i64] * 6 + [p] * 9
    lib.sl_delay_synapse_backward.restype = ctypes.c_int
    lib.sl_grid_adjoint.argtypes = [i64] * 3 + [p] * 16 + [ctypes.c_float] * 2 + [
        ctypes.c_int, p]
    lib.sl_grid_adjoint.restype = None


class LazyLibrary:
    """A native library built (:func:`load`) and loaded on first use, once, thread-safely.

    :meth:`get` is ``None`` with ``SPIKELOOP_NATIVE=0``, without a C compiler or when the build
    fails (logged once); callers then run their torch code. Every native library of the
    package (the generic kernels here, each chip's own) is one of these.
    """

    def __init__(self, name: str, sources: Sequence[Path],
                 declare: Callable[[ctypes.CDLL], None], fallback: str) -> None:
        self.name, self.sources, self.declare, self.fallback = name, sources, declare, fallback
        self._lock = threading.Lock()
        self._lib: ctypes.CDLL | None = None
        self._tried = False
        self._error: str | None = None

    def get(self) -> ctypes.CDLL | None:
        """The loaded library, or ``None`` if disabled or it cannot be built here."""
        if disabled():
            return None
        if self._tried:
            return self._lib
        with self._lock:
            if self._tried:
                return self._lib
            self._tried = True
            if _compiler() is None:
                self._error = NO_COMPILER
                return None
            try:
                self._lib = load(self.name, self.sources, self.declare)
            except (OSError, RuntimeError) as exc:
                self._error = str(exc)
                _log.info("%s native library unavailable, %s: %s", self.name, self.fallback,
                          exc)
        return self._lib

    def unavailable_reason(self) -> str | None:
        """Why :meth:`get` returned ``None`` (``None`` if it is loaded or was not tried)."""
        return DISABLED if disabled() else self._error

    def set_threads(self) -> None:
        """Let the library use as many OpenMP threads as torch does."""
        lib = self.get()
        if lib is not None:
            set_threads(lib)


_LIBRARY = LazyLibrary("native", [_SOURCE], _declare, "using the torch engine")


def library() -> ctypes.CDLL | None:
    """The loaded native library, or ``None`` if disabled or it cannot be built here."""
    return _LIBRARY.get()


def unavailable_reason() -> str | None:
    """Why :func:`library` returned ``None`` (``None`` if it is loaded or was not tried)."""
    return _LIBRARY.unavailable_reason()


def cpu_float32(*tensors: Tensor | None) -> bool:
    """True if every tensor (``None`` aside) is a float32 CPU tensor, as native kernels need."""
    return all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32)
               for t in tensors)


def finite_flags(tensors: Sequence[Tensor]) -> list[bool]:
    """:func:`spikeloop.checks.finite_flags` (each tensor free of NaN and ±inf), with every
    float32 CPU tensor whose entries fill one block of memory (contiguous, or a matrix whose
    transpose is: ``w.t()`` of a contiguous ``w``) scanned by the native kernel
    (one pass over its exponent bits, no temporary tensor, no host synchronisation); the
    others, and all of them without the native library, by the torch check."""
    lib = library()
    if lib is None:
        return checks.finite_flags(tensors)
    flags: list[bool | None] = []
    rest: list[Tensor] = []
    for t in tensors:
        if (t.dtype == torch.float32 and t.device.type == "cpu" and t.layout == torch.strided
                and (t.is_contiguous() or (t.dim() == 2 and t.t().is_contiguous()))):
            flags.append(bool(lib.sl_finite(t.numel(), t.data_ptr())))
        else:
            flags.append(None)
            rest.append(t)
    if rest:
        others = iter(checks.finite_flags(rest))
        return [next(others) if f is None else f for f in flags]
    return flags  # type: ignore[return-value]


def all_finite(x: Tensor) -> bool:
    """:func:`spikeloop.checks.all_finite` through :func:`finite_flags` (natively where it
    can)."""
    return finite_flags([x])[0]


def usable(*tensors: Tensor | None) -> bool:
    """True if the native library is loaded and every tensor is a float32 CPU tensor."""
    return library() is not None and cpu_float32(*tensors)


def ptr(t: Tensor | None) -> int | None:
    """Data pointer of a contiguous tensor (``None`` for ``None``)."""
    if t is None:
        return None
    assert t.is_contiguous(), "native kernels need contiguous tensors"
    return t.data_ptr()


_THREADS_SET = threading.local()  # per OS thread (OpenMP keeps the count per thread)


def set_threads(lib: ctypes.CDLL | None = None) -> None:
    """Let ``lib`` (default: the generic kernels) use as many OpenMP threads as torch does
    (``torch.get_num_threads()``); any library from :func:`load` has ``sl_set_threads``. The
    call into the library is skipped where this thread already set that count in it."""
    lib = library() if lib is None else lib
    if lib is None:
        return
    n = torch.get_num_threads()
    done = _THREADS_SET.__dict__
    if done.get(id(lib)) != (lib, n):
        lib.sl_set_threads(n)
        done[id(lib)] = (lib, n)
