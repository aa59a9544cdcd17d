"""The data-set catalog (spikeloop.data.catalog): the search order, what counts as found, the
MissingDataError message, ``spikeloop data`` and ``make fashion-mnist``; and the sklearn 8×8
digits with their stratified split (spikeloop.data.digits)."""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from spikeloop.cli import main
from spikeloop.data import catalog
from spikeloop.data import digits as digits_module
from spikeloop.data.catalog import DATA_SETS, DEFAULT_DATA_DIR, data_dir, find, search_path, status
from spikeloop.data.digits import DIGITS_SIZES, digits_split, load_digits
from spikeloop.errors import (
    ArgumentTypeError,
    DataFormatError,
    MissingDataError,
    MissingFileError,
    ParameterError,
    UnknownNameError,
)

ROOT = Path(__file__).resolve().parents[1]


def _put(folder: Path, name: str, files: tuple[str, ...] | None = None) -> Path:
    """Create (empty) files of data set ``name`` in ``folder``: all of them, or ``files``."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in DATA_SETS[name].files if files is None else files:
        (folder / f).write_bytes(b"")
    return folder


@pytest.fixture
def env(tmp_path, monkeypatch):
    """$SPIKELOOP_DATA = an empty tmp folder; cwd = another (so data/ is not the repo's)."""
    data = tmp_path / "env"
    data.mkdir()
    (tmp_path / "cwd").mkdir()
    monkeypatch.setenv("SPIKELOOP_DATA", str(data))
    monkeypatch.chdir(tmp_path / "cwd")
    return data


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    """Fashion-MNIST's Debian folder moved to a tmp path that does not exist."""
    gone = tmp_path / "usr-share-datasets-fashion-mnist"
    entry = dataclasses.replace(DATA_SETS["fashion_mnist"], debian_dir=gone)
    monkeypatch.setitem(DATA_SETS, "fashion_mnist", entry)
    return gone


# ----------------------------------------------------------------------------- search order


def test_search_order_with_a_root_and_spikeloop_data(tmp_path, env):
    root = tmp_path / "root"
    assert search_path("shd", root) == [root, root / "shd", env / "shd", env]
    assert search_path("fashion_mnist", str(root)) == [
        root, root / "fashion_mnist", env / "fashion_mnist", env,
        Path("/usr/share/datasets/fashion-mnist")]
    assert search_path("ssc") == [env / "ssc", env]


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_without_spikeloop_data_the_default_is_data_in_the_cwd(tmp_path, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("SPIKELOOP_DATA", raising=False)
    else:
        monkeypatch.setenv("SPIKELOOP_DATA", value)
    monkeypatch.chdir(tmp_path)
    assert data_dir() == DEFAULT_DATA_DIR == Path("data")
    assert search_path("spoken_digits") == [tmp_path / "data" / "spoken_digits",
                                            tmp_path / "data"]
    _put(tmp_path / "data" / "spoken_digits", "spoken_digits")
    assert find("spoken_digits") == tmp_path / "data" / "spoken_digits"


def test_a_relative_root_and_a_home_root_are_made_absolute(tmp_path, env, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert search_path("mnist", "rel")[0] == tmp_path / "cwd" / "rel"
    assert search_path("mnist", "~/sets")[:2] == [tmp_path / "home" / "sets",
                                                  tmp_path / "home" / "sets" / "mnist"]


def test_the_first_folder_holding_every_file_wins(tmp_path, env):
    root = tmp_path / "root"
    _put(env, "shd")
    assert find("shd", root) == env  # $SPIKELOOP_DATA itself, last before Debian
    _put(env / "shd", "shd")
    assert find("shd", root) == env / "shd"
    _put(root / "shd", "shd")
    assert find("shd", root) == root / "shd"
    _put(root, "shd")
    assert find("shd", root) == root
    assert find("shd") == env / "shd"  # without the root argument


def test_the_debian_folder_comes_last(tmp_path, env, no_debian):
    _put(no_debian, "fashion_mnist")
    assert find("fashion_mnist") == no_debian
    _put(env, "fashion_mnist", tuple(f"{f}.gz" for f in DATA_SETS["fashion_mnist"].files))
    assert find("fashion_mnist") == env  # gzipped IDX files count


def test_gzipped_copies_count_only_for_idx_files(env):
    _put(env / "shd", "shd", ("shd_train.h5.gz", "shd_test.h5.gz"))
    with pytest.raises(MissingDataError, match=r"shd_train\.h5, shd_test\.h5 in"):
        find("shd")
    mixed = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte.gz")
    folder = _put(env / "m", "mnist", mixed)
    assert find("mnist", env / "m") == folder


def test_a_folder_with_some_of_the_files_is_not_found_and_is_reported(env):
    _put(env / "ssc", "ssc", ("ssc_train.h5", "ssc_test.h5"))
    (env / "ssc" / "ssc_valid.h5").mkdir()  # a folder with the name is not the file
    with pytest.raises(MissingDataError, match=re.escape(f"({env / 'ssc'} lacks ssc_valid.h5)")):
        find("ssc")


def test_the_missing_data_error_names_every_path_and_the_package(tmp_path, env, no_debian):
    root = tmp_path / "given"
    with pytest.raises(MissingDataError) as info:
        find("fashion_mnist", root)
    message = str(info.value)
    searched = [root, root / "fashion_mnist", env / "fashion_mnist", env, no_debian]
    assert search_path("fashion_mnist", root) == searched
    assert message.startswith("data set 'fashion_mnist' not found: looked for "
                              "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
                              "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] in "
                              + ", ".join(map(str, searched)) + "; to get it, ")
    assert "make fashion-mnist" in message and "dataset-fashion-mnist" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert isinstance(info.value, MissingFileError) and isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("name, provider", [
    ("mnist", "$SPIKELOOP_DATA/mnist (there is no Debian package)"),
    ("shd", "https://zenkelab.org/datasets/ and gunzip them into $SPIKELOOP_DATA/shd"),
    ("ssc", "ssc_valid.h5.gz"),
    ("spoken_digits", "run `make spoken-digits`"),
    ("keywords", "run `make keywords`"),
    ("ambient", "run `make ambient`"),
])
def test_every_missing_data_set_says_how_to_get_it(env, name, provider):
    with pytest.raises(MissingDataError, match=re.escape(provider)) as info:
        find(name)
    assert f"in {env / name}, {env};" in str(info.value)


def test_unknown_names(env):
    with pytest.raises(UnknownNameError, match=r"unknown data set 'cifar10'; known data sets: "
                                               r"fashion_mnist, mnist, digits, shd, ssc, "
                                               r"spoken_digits, keywords, ambient"):
        find("cifar10")
    with pytest.raises(ArgumentTypeError, match=r"data set name must be a str, got 3"):
        search_path(3)
    with pytest.raises(ParameterError, match="root must be a path, got an empty string"):
        find("shd", "")


def test_digits_are_found_in_scikit_learn_or_reported_missing(env, monkeypatch):
    spec = importlib.util.find_spec("sklearn")
    if spec is None:
        pytest.skip("scikit-learn is not installed")
    folder = find("digits", env / "ignored")
    assert folder == Path(spec.origin).parent / "datasets" / "data"
    assert (folder / "digits.csv.gz").is_file()
    assert search_path("digits") == []
    monkeypatch.setattr(catalog.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDataError, match=r"data set 'digits' \(digits.csv.gz\) not found: "
                                               r"scikit-learn is not installed; .*"
                                               r"`pip install scikit-learn`"):
        find("digits")


# ----------------------------------------------------------------------------- status, docs


def test_status_agrees_with_find(tmp_path, env, no_debian):
    _put(env / "shd", "shd")
    records = status()
    assert [r.name for r in records] == list(DATA_SETS)
    by_name = {r.name: r for r in records}
    assert by_name["shd"].path == env / "shd" == find("shd")
    assert by_name["fashion_mnist"].path is None
    assert by_name["fashion_mnist"].searched == tuple(search_path("fashion_mnist"))
    assert by_name["ssc"].how == DATA_SETS["ssc"].how
    assert by_name["mnist"].to_dict()["found"] is None
    assert json.loads(json.dumps(by_name["shd"].to_dict()))["found"] == str(env / "shd")
    assert status(tmp_path / "r")[3].searched[:2] == (tmp_path / "r", tmp_path / "r" / "shd")


def test_the_docs_table_is_the_catalog():
    table = catalog.markdown_table()
    lines = table.splitlines()
    assert len(lines) == len(DATA_SETS) + 2
    assert all(f"| `{name}` |" in table for name in DATA_SETS)
    assert table in (ROOT / "docs" / "datasets.md").read_text()


# ----------------------------------------------------------------------------- CLI, Makefile


def test_spikeloop_data_lists_each_set(tmp_path, env, no_debian, capsys):
    _put(env / "shd", "shd")
    assert main(["data"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"data directory: {env} (from $SPIKELOOP_DATA)"
    lines = {line.split()[0]: line for line in out[1:]}
    assert list(lines) == list(DATA_SETS)
    assert lines["shd"] == f"shd            {env / 'shd'}"
    assert lines["ssc"].startswith("ssc            missing; to get it, download ssc_train.h5.gz")
    assert "apt-get install dataset-fashion-mnist" in lines["fashion_mnist"]


def test_spikeloop_data_json_and_root(tmp_path, env, no_debian, capsys):
    _put(tmp_path / "mine" / "mnist", "mnist")
    assert main(["data", "--json", "--root", str(tmp_path / "mine")]) == 0
    records = json.loads(capsys.readouterr().out)
    assert records == [r.to_dict() for r in status(tmp_path / "mine")]
    found = {r["name"]: r["found"] for r in records}
    assert found["mnist"] == str(tmp_path / "mine" / "mnist")
    assert found["fashion_mnist"] is None and found["shd"] is None


@pytest.mark.parametrize("argv, message", [
    (["data", "extra"], "unexpected argument 'extra'; spikeloop data takes only --json and "
                        "--root DIR"),
    (["data", "--bogus"], "unexpected argument '--bogus'"),
    (["data", "--root", ""], "root must be a path, got an empty string"),
    (["data", "--root"], "argument --root: expected one argument"),
])
def test_spikeloop_data_mistakes_are_one_line_and_exit_2(argv, message, env, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"spikeloop: error: {message}") and err.count("\n") == 1


def test_default_data_dir_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SPIKELOOP_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["data"]) == 0
    assert capsys.readouterr().out.startswith(
        "data directory: data (default; set SPIKELOOP_DATA to change)\n")


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_fashion_mnist_installs_only_when_the_files_are_missing(tmp_path):
    files = tuple(f"{f}.gz" for f in DATA_SETS["fashion_mnist"].files)
    there = _put(tmp_path / "there", "fashion_mnist", files)
    run = subprocess.run(["make", "-s", "-C", str(ROOT), "fashion-mnist", f"FMNIST_DIR={there}"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0 and run.stdout == f"Fashion-MNIST is installed in {there}\n"
    (there / files[-1]).unlink()  # one file missing: the package is installed (dry run here)
    dry = subprocess.run(["make", "-n", "-C", str(ROOT), "fashion-mnist", f"FMNIST_DIR={there}"],
                         capture_output=True, text=True, timeout=30)
    assert dry.returncode == 0
    assert re.search(r"apt-get update && +(sudo )?apt-get install -y dataset-fashion-mnist",
                     dry.stdout)


# ----------------------------------------------------------------------------- digits


def test_digits_split_sizes_and_stratification():
    split = digits_split()
    assert {k: len(v) for k, v in split.items()} == DIGITS_SIZES == {
        "train": 1259, "validation": 179, "test": 359}
    everything = np.concatenate(list(split.values()))
    assert np.array_equal(np.sort(everything), np.arange(1797))  # disjoint and complete
    labels = {k: load_digits(k)[1] for k in split}
    assert np.bincount(labels["test"]).tolist() == [36, 36, 35, 37, 36, 36, 36, 36, 35, 36]
    assert np.bincount(labels["validation"]).tolist() == [18] * 8 + [17, 18]
    assert np.bincount(labels["train"]).tolist() == [124, 128, 124, 128, 127, 128, 127, 125,
                                                     122, 126]
    assert split["test"][:10].tolist() == [5, 9, 12, 14, 16, 17, 19, 23, 24, 34]  # golden, seed 0


def test_digits_are_deterministic_per_seed():
    a, b, c = digits_split(0), digits_split(0), digits_split(1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert {k: len(v) for k, v in c.items()} == DIGITS_SIZES
    assert not np.array_equal(a["test"], c["test"])


def test_digits_features_are_scikit_learns_pixels_over_16():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")  # the second way to read them
    bunch = sklearn_datasets.load_digits()
    index = digits_split()["validation"]
    x, y = load_digits("validation")
    assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (179, 64)
    np.testing.assert_array_equal(x, (bunch.data[index] / 16).astype(np.float32))
    np.testing.assert_array_equal(y, bunch.target[index])
    train = load_digits("train")[0]
    assert train.min() == 0.0 and train.max() == 1.0
    images, _ = load_digits("validation", flat=False)
    assert images.shape == (179, 8, 8)
    np.testing.assert_array_equal(images.reshape(179, 64), x)


@pytest.fixture
def fresh_digits():
    """The digits read anew (the module caches the file) before and after the test."""
    digits_module._load.cache_clear()
    yield
    digits_module._load.cache_clear()


@pytest.mark.parametrize("rows, message", [
    (["1," * 64 + "1"] * 1796, r"expected 1797 rows of 64 pixels 0 … 16 and a label 0 … 9, "
                               r"found shape \[1796, 65\]"),
    (["17," * 64 + "1"] * 1797, r"found shape \[1797, 65\]"),
    (["1," * 63 + "1"] * 1797, r"found shape \[1797, 64\]"),
    (["1," * 64 + "10"] * 1797, r"found shape \[1797, 65\]"),
    (["1," * 64 + "1", "1,2"], r"as comma-separated numbers: "),
    (["1," * 64 + "x"], r"as comma-separated numbers: "),
], ids=["rows", "pixel-17", "columns", "label-10", "ragged", "text"])
def test_a_malformed_digits_file(tmp_path, monkeypatch, fresh_digits, rows, message):
    with gzip.open(tmp_path / "digits.csv.gz", "wt") as f:
        f.write("\n".join(rows) + "\n")
    monkeypatch.setattr(digits_module, "find", lambda name: tmp_path)
    with pytest.raises(DataFormatError, match=re.escape(str(tmp_path)) + ".*" + message):
        load_digits("test")


def test_digits_without_scikit_learn(monkeypatch, fresh_digits):
    monkeypatch.setattr(catalog.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingDataError, match="`pip install scikit-learn`"):
        load_digits("train")


def test_digits_arguments():
    with pytest.raises(ParameterError, match=r"split must be one of \['train', 'validation', "
                                             r"'test'\], got 'val'"):
        load_digits("val")
    with pytest.raises(ParameterError, match=r"seed must be .*≥ 0"):
        digits_split(-1)
    with pytest.raises(ArgumentTypeError, match="flat must be True or False"):
        load_digits("test", flat="no")
