"""IDX files (spikeloop.data.idx): round trips for every element type, gzipped and plain, the
exact bytes of the header, every malformed-file error, and MNIST / Fashion-MNIST loading (the
real Debian Fashion-MNIST files when they are installed)."""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from spikeloop.data import catalog
from spikeloop.data.idx import IDX_DTYPES, load_mnist_family, read_idx, write_idx
from spikeloop.errors import (
    ArgumentTypeError,
    DataFormatError,
    DTypeError,
    MissingDataError,
    MissingFileError,
    ParameterError,
    ShapeError,
)

# ----------------------------------------------------------------------------- read / write


def _extremes(dtype: np.dtype) -> np.ndarray:
    """A [2, 3, 4] array of ``dtype`` holding its smallest and largest values and a ramp."""
    info = np.iinfo(dtype) if dtype.kind in "iu" else np.finfo(dtype)
    values = np.linspace(0, 23, 24).astype(dtype)
    values[0], values[1] = info.min, info.max
    if dtype.kind == "f":
        values[2], values[3] = -0.0, info.tiny
    return values.reshape(2, 3, 4)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("code", sorted(IDX_DTYPES), ids=lambda c: f"0x{c:02X}")
def test_round_trip_every_dtype(tmp_path, code, gz):
    dtype = IDX_DTYPES[code].newbyteorder("=")
    array = _extremes(dtype)
    path = tmp_path / "a.idx"
    write_idx(path, array, gzip=gz)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") is gz
    content = gzip.decompress(raw) if gz else raw
    assert content[:4] == bytes([0, 0, code, 3])
    assert content[4:16] == b"\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04"
    assert content[16:] == array.astype(IDX_DTYPES[code]).tobytes()  # big-endian elements
    back = read_idx(path)
    assert back.dtype == dtype and back.dtype.isnative and back.shape == (2, 3, 4)
    assert back.tobytes() == array.tobytes()  # bit-exact, -0.0 included
    back[0, 0, 0] = 1  # a writable array of its own


def test_the_exact_bytes_of_a_small_file(tmp_path):
    path = tmp_path / "x"
    write_idx(path, np.array([258, -2], dtype=np.int16))
    assert path.read_bytes() == bytes.fromhex("00000b01 00000002 0102 fffe")


def test_a_big_endian_array_is_written_by_value(tmp_path):
    array = np.array([[1.5, -2.25]], dtype=">f8")
    write_idx(tmp_path / "x", array)
    assert read_idx(tmp_path / "x").tolist() == [[1.5, -2.25]]


def test_gzip_is_recognised_by_its_magic_bytes_not_the_name(tmp_path):
    array = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "looks-plain", array, gzip=True)
    write_idx(tmp_path / "looks.gz", array, gzip=False)
    assert read_idx(tmp_path / "looks-plain").tolist() == list(range(10))
    assert read_idx(tmp_path / "looks.gz").tolist() == list(range(10))


def test_gzipped_files_are_reproducible(tmp_path):
    array = np.arange(100, dtype=np.int32).reshape(10, 10)
    write_idx(tmp_path / "a", array, gzip=True)
    write_idx(tmp_path / "b", array, gzip=True)
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def _write_raw(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


GOOD = bytes.fromhex("00000802 00000002 00000003") + bytes(range(6))


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("data, message", [
    (bytes.fromhex("01000801 00000001 07"),
     r"wrong magic number: expected bytes 00 00 <type> <ndim>, found 01 00 08 01"),
    (bytes.fromhex("00080801 00000001 07"), r"wrong magic number.*found 00 08 08 01"),
    (bytes.fromhex("00000a01 00000001 07"), r"unknown element type 0x0A .*0x08 uint8"),
    (bytes.fromhex("00000800"), r"0 dimensions \(expected ≥ 1\)"),
    (bytes.fromhex("0000"), r"expected a 4-byte magic number, found 2 bytes"),
    (b"", r"expected a 4-byte magic number, found 0 bytes"),
    (bytes.fromhex("00000803 00000002 000000"),
     r"truncated header: expected 16 bytes for 3 dimensions, found 11"),
    (GOOD[:-1], r"truncated: shape \[2, 3\] of uint8 needs 6 bytes of data, found 5"),
    (GOOD + b"\x00", r"longer than its header says: shape \[2, 3\] .*needs 6 .*found 7"),
    (bytes.fromhex("00000d01 00000002") + bytes(7),
     r"truncated: shape \[2\] of float32 needs 8 bytes of data, found 7"),
], ids=["first-byte", "second-byte", "type-code", "ndim-0", "short", "empty", "header",
        "truncated", "trailing", "float32"])
def test_malformed_files_name_the_file_and_what_was_expected(tmp_path, data, message, gz):
    path = _write_raw(tmp_path / "bad-file.idx", data, gz)
    with pytest.raises(DataFormatError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_a_truncated_gzip_stream_is_a_format_error(tmp_path):
    whole = gzip.compress(GOOD)
    path = _write_raw(tmp_path / "cut.gz", whole[: len(whole) // 2])
    with pytest.raises(DataFormatError, match=r"cut.gz: a gzip file that cannot be decompressed"):
        read_idx(path)
    assert read_idx(_write_raw(tmp_path / "whole.gz", whole)).tolist() == [[0, 1, 2], [3, 4, 5]]


def test_a_missing_file_or_a_folder(tmp_path):
    with pytest.raises(MissingFileError, match=r"IDX file .*nothing does not exist"):
        read_idx(tmp_path / "nothing")
    with pytest.raises(MissingFileError, match="is a directory"):
        read_idx(tmp_path)
    with pytest.raises(ArgumentTypeError, match="IDX path must be a path"):
        read_idx(3)


@pytest.mark.parametrize("array, error, message", [
    (np.zeros(3, np.float16), DTypeError, r"array dtype float16 has no IDX code; use one of uint8"),
    (np.zeros(3, np.int64), DTypeError, r"array dtype int64 has no IDX code"),
    (np.zeros(3, bool), DTypeError, r"array dtype bool has no IDX code"),
    (np.array(5, np.uint8), ShapeError, r"1 … 255 dimensions, each < 2\*\*32, got shape \[\]"),
    ([1, 2], ArgumentTypeError, r"array must be a NumPy array, got \[1, 2\] \(list\)"),
])
def test_write_refuses_what_idx_cannot_hold(tmp_path, array, error, message):
    with pytest.raises(error, match=message):
        write_idx(tmp_path / "x", array)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_write_gzip_must_be_a_bool(tmp_path):
    with pytest.raises(ArgumentTypeError, match="gzip must be True or False"):
        write_idx(tmp_path / "x", np.zeros(2, np.uint8), gzip=1)


# ----------------------------------------------------------------------------- MNIST family


def _mnist_files(folder: Path, n_train: int = 5, n_test: int = 3, gz: bool = True,
                 seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write the four MNIST-style files (random images, labels 0 … 9) into ``folder``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gzip=gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gzip=gz)
        out[split] = (images, labels)
    return out


@pytest.fixture
def no_data_dir(tmp_path, monkeypatch):
    """An empty $SPIKELOOP_DATA, so only the test's folders (and Debian's) are found."""
    empty = tmp_path / "empty-data"
    empty.mkdir()
    monkeypatch.setenv("SPIKELOOP_DATA", str(empty))
    return empty


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_load_mnist_family_from_a_root(tmp_path, no_data_dir, name, gz):
    written = _mnist_files(tmp_path / "root", gz=gz)
    for split in ("train", "test"):
        images, labels = load_mnist_family(name, split, root=tmp_path / "root")
        assert images.dtype == np.uint8 and labels.dtype == np.int64
        np.testing.assert_array_equal(images, written[split][0])
        np.testing.assert_array_equal(labels, written[split][1])
    assert load_mnist_family(name, "test", root=tmp_path / "root")[0].shape == (3, 28, 28)


def test_load_mnist_from_spikeloop_data(tmp_path, no_data_dir):
    written = _mnist_files(no_data_dir / "mnist", gz=False, seed=4)
    images, _ = load_mnist_family("mnist", "train")
    np.testing.assert_array_equal(images, written["train"][0])


def test_image_and_label_counts_must_agree(tmp_path, no_data_dir):
    _mnist_files(tmp_path, n_train=5)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, np.uint8), gzip=True)
    with pytest.raises(DataFormatError, match=r"mnist train: train-images-idx3-ubyte.gz holds 5 "
                                              r"images but train-labels-idx1-ubyte.gz 4 labels"):
        load_mnist_family("mnist", "train", root=tmp_path)
    load_mnist_family("mnist", "test", root=tmp_path)  # the other split is intact


@pytest.mark.parametrize("file, array, message", [
    ("t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 27), np.uint8),
     r"t10k-images-idx3-ubyte.gz: expected uint8 images \[N, 28, 28\], found uint8 \[3, 28, 27\]"),
    ("t10k-images-idx3-ubyte.gz", np.zeros((3, 28, 28), np.float32),
     r"expected uint8 images \[N, 28, 28\], found float32 \[3, 28, 28\]"),
    ("t10k-labels-idx1-ubyte.gz", np.zeros((3, 1), np.uint8),
     r"t10k-labels-idx1-ubyte.gz: expected uint8 labels \[N\], found uint8 \[3, 1\]"),
    ("t10k-labels-idx1-ubyte.gz", np.array([0, 10, 12], np.uint8),
     r"labels must lie in 0 … 9, found 2 above 9 \(max 12\)"),
], ids=["image-width", "image-dtype", "label-rank", "label-range"])
def test_mnist_files_with_the_wrong_layout(tmp_path, no_data_dir, file, array, message):
    _mnist_files(tmp_path)
    write_idx(tmp_path / file, array, gzip=True)
    with pytest.raises(DataFormatError, match=message):
        load_mnist_family("mnist", "test", root=tmp_path)


def test_load_mnist_family_arguments_and_a_missing_set(tmp_path, no_data_dir):
    with pytest.raises(ParameterError, match=r"name must be one of \['fashion_mnist', 'mnist'\], "
                                             r"got 'kmnist'"):
        load_mnist_family("kmnist", "train")
    with pytest.raises(ParameterError, match=r"split must be one of \['train', 'test'\], got "
                                             r"'validation'"):
        load_mnist_family("mnist", "validation")
    with pytest.raises(MissingDataError, match=r"data set 'mnist' not found: .*"
                                               + re.escape(str(no_data_dir / "mnist"))):
        load_mnist_family("mnist", "train", root=tmp_path / "nowhere")


# ----------------------------------------------------------------------------- the Debian files

DEBIAN = catalog.DATA_SETS["fashion_mnist"].debian_dir
FIRST_TRAIN_IMAGE_SHA256 = "5bd44e331a6d6998daf675700cd0c13dcd7af8ab954b7585124124da61459e7b"
FIRST_TEST_IMAGE_SHA256 = "ffc7351ed0f8bae542820866086177fa4e0b366b97bf9d998dffdb8dbe138787"
"""SHA-256 of the raw 784 bytes of image 0 of each split (Fashion-MNIST from Zalando's
repository as packaged by Debian: an ankle boot (label 9) in both)."""


@pytest.mark.skipif(DEBIAN is None or not (DEBIAN / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_the_debian_fashion_mnist_files(tmp_path, monkeypatch):
    monkeypatch.delenv("SPIKELOOP_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no data/ folder here: the Debian copy is the one found
    assert catalog.find("fashion_mnist") == DEBIAN
    for split, n, digest, first in (("train", 60000, FIRST_TRAIN_IMAGE_SHA256, 9),
                                    ("test", 10000, FIRST_TEST_IMAGE_SHA256, 9)):
        images, labels = load_mnist_family("fashion_mnist", split)
        assert images.shape == (n, 28, 28) and labels.shape == (n,)
        assert np.bincount(labels).tolist() == [n // 10] * 10
        assert hashlib.sha256(images[0].tobytes()).hexdigest() == digest
        assert labels[0] == first
        assert images.min() == 0 and images.max() == 255
    assert labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]  # the test split's first ten
