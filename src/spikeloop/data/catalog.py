"""The data sets spikeloop knows: which files each needs, where they are looked for, and how to
get one that is missing. Nothing is ever downloaded.

Search order of :func:`find` (the first directory that holds *every* file of the data set
wins):

1. ``root`` given by the caller (a config's ``data.root``), then ``root/<name>``;
2. ``$SPIKELOOP_DATA/<name>``, then ``$SPIKELOOP_DATA`` — or, when ``SPIKELOOP_DATA`` is not
   set (or empty), ``data/<name>`` and ``data`` relative to the current working directory
   (:data:`DEFAULT_DATA_DIR`; the ``make`` targets run from the repository root, so that is
   the repository's ``data/`` folder);
3. the Debian package's folder, for a data set that has one
   (``/usr/share/datasets/fashion-mnist`` for Fashion-MNIST).

The scikit-learn 8×8 digits are bundled with scikit-learn and always found while it is
installed. An IDX file may be stored gzipped (``NAME.gz``) or plain (``NAME``).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from spikeloop.checks import check_path, check_type
from spikeloop.errors import MissingDataError, UnknownNameError

__all__ = [
    "DATA_SETS",
    "DEFAULT_DATA_DIR",
    "DataSet",
    "DataSetStatus",
    "data_dir",
    "find",
    "markdown_table",
    "search_path",
    "status",
]

DEFAULT_DATA_DIR: Final[Path] = Path("data")
"""Where data sets are looked for (and ``make spoken-digits`` writes) when the environment
variable ``SPIKELOOP_DATA`` is not set: ``data/`` relative to the current working directory."""

ENV_VAR: Final[str] = "SPIKELOOP_DATA"
"""The environment variable naming the data directory."""


@dataclass(frozen=True)
class DataSet:
    """A known data set.

    Attributes:
        name: the name used by :func:`find`, configs and ``spikeloop data``.
        title: what it is, in a few words.
        files: the file names the data set needs, all in one directory.
        how: how to get it (a command, a Debian package, a web page), for error messages.
        debian_dir: where its Debian package installs the files, if there is one.
        gz_ok: a file may also be stored gzipped as ``NAME.gz`` (IDX files).
        bundled: the files come with a Python package (found through it, not on disk).
    """

    name: str
    title: str
    files: tuple[str, ...]
    how: str
    debian_dir: Path | None = None
    gz_ok: bool = False
    bundled: bool = False

    def file_names(self) -> str:
        """The files as a comma-separated list (``NAME[.gz]`` where a gzipped copy counts)."""
        suffix = "[.gz]" if self.gz_ok else ""
        return ", ".join(f"{f}{suffix}" for f in self.files)

    def missing_in(self, directory: Path) -> list[str]:
        """The files of the data set that ``directory`` does not hold."""
        return [f for f in self.files if _file_in(directory, f, self.gz_ok) is None]


def _file_in(directory: Path, name: str, gz_ok: bool) -> Path | None:
    """``directory/name`` (or ``directory/name.gz`` when ``gz_ok``) if it is a file."""
    for candidate in (name, f"{name}.gz") if gz_ok else (name,):
        path = directory / candidate
        if path.is_file():
            return path
    return None


_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

DATA_SETS: Final[dict[str, DataSet]] = {
    d.name: d for d in (
        DataSet(
            "fashion_mnist", "Fashion-MNIST: 28×28 grey clothing images, 10 classes, "
            "60 000 train / 10 000 test (IDX)", _MNIST_FILES,
            "run `make fashion-mnist` (installs the Debian package dataset-fashion-mnist: "
            "`sudo apt-get install dataset-fashion-mnist`), or put the four IDX files in "
            "$SPIKELOOP_DATA/fashion_mnist",
            debian_dir=Path("/usr/share/datasets/fashion-mnist"), gz_ok=True),
        DataSet(
            "mnist", "MNIST: 28×28 handwritten digits, 10 classes, 60 000 train / 10 000 test "
            "(IDX)", _MNIST_FILES,
            "put the four IDX files (gzipped or not) in $SPIKELOOP_DATA/mnist (there is no "
            "Debian package)", gz_ok=True),
        DataSet(
            "digits", "scikit-learn's 8×8 handwritten digits: 1797 images, 10 classes",
            ("digits.csv.gz",),
            "install scikit-learn, which bundles it: `pip install scikit-learn`", bundled=True),
        DataSet(
            "shd", "Spiking Heidelberg Digits: 700 channels, 20 classes (HDF5)",
            ("shd_train.h5", "shd_test.h5"),
            "download shd_train.h5.gz and shd_test.h5.gz from https://zenkelab.org/datasets/ "
            "and gunzip them into $SPIKELOOP_DATA/shd"),
        DataSet(
            "ssc", "Spiking Speech Commands: 700 channels, 35 classes (HDF5)",
            ("ssc_train.h5", "ssc_valid.h5", "ssc_test.h5"),
            "download ssc_train.h5.gz, ssc_valid.h5.gz and ssc_test.h5.gz from "
            "https://zenkelab.org/datasets/ and gunzip them into $SPIKELOOP_DATA/ssc"),
        DataSet(
            "spoken_digits", "spoken digits synthesised here with espeak-ng in the SHD "
            "layout: 700 channels, 20 classes (HDF5)",
            ("spoken_digits_train.h5", "spoken_digits_test.h5"),
            "run `make spoken-digits` (writes them into $SPIKELOOP_DATA/spoken_digits, "
            "default data/spoken_digits)"),
        DataSet(
            "keywords", "keyword spotting synthesised here with espeak-ng: 16 kHz audio clips "
            "(4 keywords + other) and continuous streams with labelled onsets (HDF5)",
            ("keywords_train.h5", "keywords_test.h5"),
            "run `make keywords` (writes them into $SPIKELOOP_DATA/keywords, default "
            "data/keywords)"),
        DataSet(
            "ambient", "ambient scenes synthesised here from generative models: 16 kHz audio "
            "clips, 6 classes with overlapping distractors (HDF5)",
            ("ambient_train.h5", "ambient_test.h5"),
            "run `make ambient` (writes them into $SPIKELOOP_DATA/ambient, default "
            "data/ambient)"),
    )
}
"""Every known data set by name."""


@dataclass(frozen=True)
class DataSetStatus:
    """Where a data set was found (``path``, ``None`` when missing) and how to get it; what
    :func:`status` returns for each data set, and ``spikeloop data`` prints."""

    name: str
    title: str
    path: Path | None
    how: str
    files: str
    searched: tuple[Path, ...]

    def to_dict(self) -> dict[str, object]:
        """The record as JSON-ready values (paths as strings, ``found`` ``None`` if missing)."""
        return {"name": self.name, "title": self.title,
                "found": None if self.path is None else str(self.path), "how": self.how,
                "files": self.files, "searched": [str(p) for p in self.searched]}


def data_dir() -> Path:
    """The data directory: ``$SPIKELOOP_DATA`` when it is set and not empty, else
    :data:`DEFAULT_DATA_DIR` (``data``). Read at each call, so a changed environment counts."""
    value = os.environ.get(ENV_VAR, "")
    return Path(value) if value else DEFAULT_DATA_DIR


def _data_set(name: object) -> DataSet:
    check_type(name, "data set name", str, "a str")
    assert isinstance(name, str)
    if name not in DATA_SETS:
        raise UnknownNameError(f"unknown data set {name!r}; known data sets: "
                               f"{', '.join(DATA_SETS)}")
    return DATA_SETS[name]


def search_path(name: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The directories :func:`find` looks in for data set ``name``, in order (see the module
    docstring), as absolute paths (a relative one is taken from the current working
    directory); duplicates are listed once. A bundled data set has no directories to search.

    Example:
        >>> search_path("mnist", root="/data")[:2]
        [PosixPath('/data'), PosixPath('/data/mnist')]
    """
    data = _data_set(name)
    if data.bundled:
        return []
    paths: list[Path] = []
    if root is not None:
        base = check_path(root, "root").expanduser().absolute()
        paths += [base, base / name]
    base = data_dir().expanduser().absolute()
    paths += [base / name, base]
    if data.debian_dir is not None:
        paths.append(data.debian_dir)
    return list(dict.fromkeys(paths))


def _bundled_dir(data: DataSet) -> Path | None:
    """The directory of a data set bundled with scikit-learn, found without importing it."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    directory = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return directory if not data.missing_in(directory) else None


def find(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding every file of data set ``name``: the first of
    :func:`search_path` that does (the digits: scikit-learn's data folder).

    Args:
        name: a key of :data:`DATA_SETS` (``"fashion_mnist"``, ``"mnist"``, ``"digits"``,
            ``"shd"``, ``"ssc"``, ``"spoken_digits"``, ``"keywords"``,
            ``"ambient"``).
        root: a directory to look in first (a config's ``data.root``); ``None``: none.

    Raises:
        UnknownNameError: ``name`` is not a known data set.
        MissingDataError: no searched directory holds all its files; the message names the
            files, every directory searched (with the files missing from one that holds some)
            and how to get the data set.

    Example:
        >>> find("digits").name
        'data'
    """
    data = _data_set(name)
    if data.bundled:
        found = _bundled_dir(data)
        if found is None:
            raise MissingDataError(f"data set {name!r} ({data.files[0]}) not found: "
                                   f"scikit-learn is not installed; to get it, {data.how}")
        return found
    searched = search_path(name, root)
    notes = []
    for directory in searched:
        missing = data.missing_in(directory)
        if not missing:
            return directory
        if len(missing) < len(data.files):
            notes.append(f"{directory} lacks {', '.join(missing)}")
    partial = f" ({'; '.join(notes)})" if notes else ""
    raise MissingDataError(
        f"data set {name!r} not found: looked for {data.file_names()} in "
        f"{', '.join(str(p) for p in searched)}{partial}; to get it, {data.how}")


def status(root: str | os.PathLike[str] | None = None) -> list[DataSetStatus]:
    """One record per known data set, in :data:`DATA_SETS` order: where it was found
    (``None``: missing), how to get it, its files and the directories searched."""
    out = []
    for name, data in DATA_SETS.items():
        try:
            path: Path | None = find(name, root)
        except MissingDataError:
            path = None
        out.append(DataSetStatus(name, data.title, path, data.how, data.file_names(),
                                 tuple(search_path(name, root))))
    return out


def markdown_table() -> str:
    """The known data sets as a Markdown table (name, what, files, how to get it) for the docs;
    independent of what is installed on the machine that builds them."""
    rows = ["| name | data set | files | how to get it |", "|---|---|---|---|"]
    for data in DATA_SETS.values():
        cells = [f"`{data.name}`", data.title, ", ".join(f"`{f}`" for f in data.files),
                 data.how]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)
