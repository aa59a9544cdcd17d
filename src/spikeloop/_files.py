"""Writing files so that a failure never leaves a truncated one (run folders, checkpoints,
NIR files)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask can only be read by setting it


def atomic_write(path: Path, write: Callable[[Path], None], parents: bool = True) -> None:
    """Write ``path`` via a temporary file in the same folder and ``os.replace``: a failure
    (an exception, Ctrl-C) leaves the previous file or none, never a truncated one, and the
    temporary file is removed.

    ``write(tmp)`` writes the content to ``tmp``. ``parents``: create missing folders
    (otherwise a missing folder is the ``FileNotFoundError`` of creating the temporary file).
    The file gets the permissions an ordinary ``open`` would give it (``0o666`` less the
    umask), not the ``0o600`` of a temporary file.
    """
    if parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
