"""IDX files (the MNIST family's format) and the MNIST / Fashion-MNIST loaders.

An IDX file (LeCun et al., http://yann.lecun.com/exdb/mnist/) is a header and the raw array::

    bytes 0–1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions d (≥ 1)
    then        d sizes, each a big-endian uint32
    then        prod(sizes) elements, big-endian, C order (last index fastest)

MNIST and Fashion-MNIST ship as four such files, usually gzipped: ``train-images-idx3-ubyte``
(uint8 ``[60000, 28, 28]``), ``train-labels-idx1-ubyte`` (uint8 ``[60000]``) and the test set's
``t10k-…`` (10 000). A gzipped file is recognised by its first two bytes (``1f 8b``), not by
its name.
"""

from __future__ import annotations

import gzip as _gzip
import os
import zlib
from pathlib import Path
from typing import Final

import numpy as np

from spikeloop._files import atomic_write
from spikeloop.checks import check_bool, check_choice, check_path, check_type
from spikeloop.data.catalog import DATA_SETS, find
from spikeloop.errors import DataFormatError, DTypeError, MissingFileError, ShapeError

__all__ = ["IDX_DTYPES", "MNIST_FAMILY", "MNIST_SPLITS", "load_mnist_family", "read_idx",
           "write_idx"]

IDX_DTYPES: Final[dict[int, np.dtype]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
"""IDX element-type code → big-endian NumPy dtype."""

MNIST_FAMILY: Final[tuple[str, ...]] = ("fashion_mnist", "mnist")
"""Data sets :func:`load_mnist_family` reads (same file names, same layout)."""

MNIST_SPLITS: Final[dict[str, tuple[str, int]]] = {"train": ("train", 60000),
                                                    "test": ("t10k", 10000)}
"""Split → (file-name prefix, published number of images)."""

_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed when it starts with the gzip magic bytes."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise MissingFileError(f"IDX file {path} does not exist") from None
    except IsADirectoryError:
        raise MissingFileError(f"IDX file {path} is a directory, not a file") from None
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return _gzip.decompress(raw)
    except (EOFError, _gzip.BadGzipFile, zlib.error) as err:
        raise DataFormatError(f"IDX file {path}: a gzip file that cannot be decompressed "
                              f"(truncated or corrupt: {err})") from None


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, gzipped or plain, into a native-endian NumPy array of its shape.

    Raises:
        MissingFileError: the file does not exist.
        DataFormatError: the first two bytes are not ``00 00``, an unknown element-type code,
            no dimensions, a header or data shorter (truncated) or longer than the sizes in
            the header say, or a gzip stream that cannot be decompressed; the message names
            the file and what was expected and found.

    Example:
        >>> write_idx("x.idx", np.arange(6, dtype=np.int16).reshape(2, 3))
        >>> read_idx("x.idx").tolist()
        [[0, 1, 2], [3, 4, 5]]
    """
    path = check_path(path, "IDX path")
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataFormatError(f"IDX file {path}: expected a 4-byte magic number, found "
                              f"{len(data)} bytes")
    if data[0] != 0 or data[1] != 0:
        raise DataFormatError(f"IDX file {path}: wrong magic number: expected bytes 00 00 "
                              f"<type> <ndim>, found {data[:4].hex(' ')}")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X} {d.name}" for c, d in IDX_DTYPES.items())
        raise DataFormatError(f"IDX file {path}: unknown element type 0x{code:02X} in the "
                              f"magic number (expected one of {known})")
    if ndim == 0:
        raise DataFormatError(f"IDX file {path}: the magic number says 0 dimensions "
                              f"(expected ≥ 1)")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise DataFormatError(f"IDX file {path}: truncated header: expected {start} bytes for "
                              f"{ndim} dimensions, found {len(data)}")
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", ndim, 4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - start
    if found != expected:
        what = "truncated" if found < expected else "longer than its header says"
        raise DataFormatError(f"IDX file {path}: {what}: shape {list(shape)} of {dtype.name} "
                              f"needs {expected} bytes of data, found {found}")
    array = np.frombuffer(data, dtype, offset=start).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray, gzip: bool = False) -> None:
    """Write ``array`` as an IDX file (gzipped when ``gzip``; the gzip header holds no time, so
    equal arrays give equal files); :func:`read_idx` reads it back exactly. The file is
    written atomically (a failure leaves no partial file).

    Raises:
        ArgumentTypeError: ``array`` is not a NumPy array, ``gzip`` not a bool.
        DTypeError: its dtype has no IDX code (allowed: uint8, int8, int16, int32, float32,
            float64).
        ShapeError: it is 0-dimensional, has more than 255 dimensions or a size ≥ 2³².
    """
    path = check_path(path, "IDX path")
    check_type(array, "array", np.ndarray, "a NumPy array")
    gzip = check_bool(gzip, "gzip")
    codes = {d.newbyteorder("=").str: c for c, d in IDX_DTYPES.items()}
    key = array.dtype.newbyteorder("=").str
    if key not in codes:
        names = ", ".join(d.name for d in IDX_DTYPES.values())
        raise DTypeError(f"write_idx: array dtype {array.dtype} has no IDX code; use one of "
                         f"{names}")
    if not 1 <= array.ndim <= 255 or any(s >= 2**32 for s in array.shape):
        raise ShapeError(f"write_idx: an IDX array has 1 … 255 dimensions, each < 2**32, got "
                         f"shape {list(array.shape)}")
    code = codes[key]
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    content = header + np.ascontiguousarray(array, IDX_DTYPES[code]).tobytes()
    if gzip:
        content = _gzip.compress(content, mtime=0)
    atomic_write(path, lambda tmp: tmp.write_bytes(content))


def _idx_file(directory: Path, name: str) -> Path:
    """``directory/name`` or ``directory/name.gz``, the first that exists (as the catalog)."""
    for candidate in (name, f"{name}.gz"):
        if (directory / candidate).is_file():
            return directory / candidate
    raise MissingFileError(f"IDX file {name}[.gz] is not in {directory}")


def load_mnist_family(name: str, split: str,
                      root: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of MNIST or Fashion-MNIST, found by :func:`spikeloop.data.catalog.find`.

    Args:
        name: ``"fashion_mnist"`` or ``"mnist"``.
        split: ``"train"`` (60 000 images) or ``"test"`` (10 000; the ``t10k`` files).
        root: a directory to look in first (a config's ``data.root``).

    Returns:
        ``(images, labels)``: uint8 ``[N, 28, 28]`` (0 = background, 255 = full intensity) and
        int64 ``[N]`` class indices 0 … 9.

    Raises:
        ParameterError: an unknown ``name`` or ``split``.
        MissingDataError: the data set is not found (the message says where it was looked for
            and how to get it).
        DataFormatError: a file is not IDX (see :func:`read_idx`), the images are not uint8
            ``[N, 28, 28]`` or the labels uint8 ``[N]`` with the same ``N``, or a label is
            outside 0 … 9.
    """
    check_choice(name, "name", MNIST_FAMILY)
    check_choice(split, "split", tuple(MNIST_SPLITS))
    directory = find(name, root)
    prefix = MNIST_SPLITS[split][0]
    images_path = _idx_file(directory, f"{prefix}-images-idx3-ubyte")
    labels_path = _idx_file(directory, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataFormatError(f"{images_path}: expected uint8 images [N, 28, 28], found "
                              f"{images.dtype.name} {list(images.shape)}")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataFormatError(f"{labels_path}: expected uint8 labels [N], found "
                              f"{labels.dtype.name} {list(labels.shape)}")
    if len(labels) != len(images):
        raise DataFormatError(f"{DATA_SETS[name].name} {split}: {images_path.name} holds "
                              f"{len(images)} images but {labels_path.name} {len(labels)} labels")
    if len(labels) and labels.max() > 9:
        bad = int(np.count_nonzero(labels > 9))
        raise DataFormatError(f"{labels_path}: labels must lie in 0 … 9, found {bad} above 9 "
                              f"(max {labels.max()})")
    return images, labels.astype(np.int64)
