"""TensorBoard event files of a run (``run.tensorboard: true``), beside its JSON.

The :class:`~spikeloop.training.Trainer` owns the numbers and the plots; this module only
writes what the trainer already has into ``<run folder>/tensorboard/``, one step per epoch:

- every epoch, each value of the epoch's ``metrics.json`` record as a scalar under the tag
  :func:`scalar_tag` gives it (``loss/train``, ``accuracy/val``, ``lr``, ``time/epoch_seconds``,
  ``rate_hz/<population>`` …), and a histogram ``rate_hz/<population>`` of the population's
  per-neuron firing rates (Hz) on the validation split, the per-neuron values whose mean is
  the ``rate_<population>`` of ``metrics.json``;
- at the end, the test accuracy and loss (``accuracy/test``, ``loss/test``, as in
  ``summary.json``) and the plots the trainer drew (``curves.png``, ``raster.png``,
  ``readout_membrane.png`` and, for a chip, ``device_vs_sim_membrane.png``) as images
  ``plots/<name>``, at the last epoch's step.

A resumed run appends to the same folder: its writer starts with ``purge_step`` at the first
epoch it trains, so TensorBoard drops anything an earlier session wrote for that epoch or
later (written before the checkpoint that the resume starts from was saved), and no step
appears twice.

TensorBoard is an optional dependency (``pip install 'spikeloop[track]'``);
:func:`require_tensorboard` raises :class:`~spikeloop.errors.MissingPackageError` naming that
extra when it is missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from spikeloop.errors import MissingPackageError

FOLDER = "tensorboard"
"""The sub-folder of a run folder that holds the event files."""

TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/val",
    "train_acc": "accuracy/train",
    "val_acc": "accuracy/val",
    "lr": "lr",
    "seconds": "time/epoch_seconds",
}
"""TensorBoard tags of the keys of a ``metrics.json`` record (rates: :func:`scalar_tag`)."""

PLOTS = ("curves", "raster", "readout_membrane", "device_vs_sim_membrane")
"""The trainer's plots (``<name>.png`` in the run folder) logged as images ``plots/<name>``."""


def scalar_tag(key: str) -> str:
    """The TensorBoard tag of a key of a ``metrics.json`` record: :data:`TAGS`, and
    ``rate_<population>`` as ``rate_hz/<population>``.

    Raises:
        KeyError: a key that is neither (e.g. ``epoch``, which is the step).
    """
    if key in TAGS:
        return TAGS[key]
    if key.startswith("rate_"):
        return "rate_hz/" + key.removeprefix("rate_")
    raise KeyError(f"{key!r} is not a metric TensorBoard logs")


def require_tensorboard() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, which needs the ``tensorboard`` package.

    Raises:
        MissingPackageError: TensorBoard is not installed (or torch cannot use it).
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise MissingPackageError(
            f"run.tensorboard: true needs TensorBoard, which is not installed ({err}); "
            f"install it with: pip install 'spikeloop[track]' (or set run.tensorboard: false)"
        ) from None
    return SummaryWriter


class TensorBoardLog:
    """The event files of one training session in ``<run_dir>/tensorboard/``.

    Args:
        run_dir: the run folder.
        first_step: the first epoch this session logs (``Trainer.epoch + 1``); when the folder
            already holds event files (a resumed run), everything they hold at this step or
            later is purged (TensorBoard's ``purge_step``).

    Raises:
        MissingPackageError: TensorBoard is not installed.
    """

    def __init__(self, run_dir: Path, first_step: int) -> None:
        writer = require_tensorboard()
        self.folder = Path(run_dir) / FOLDER
        resumed = self.folder.is_dir() and any(self.folder.iterdir())
        self._writer = writer(log_dir=str(self.folder),
                              purge_step=first_step if resumed else None)

    def epoch(self, step: int, record: Mapping[str, float],
              neuron_rates: Mapping[str, Tensor]) -> None:
        """One epoch: every value of its ``metrics.json`` ``record`` (but ``epoch``, the
        step) as a scalar, and a histogram of each population's per-neuron rates (Hz) on the
        validation split; flushed, so that the files are complete when the checkpoint is
        written."""
        for key, value in record.items():
            if key != "epoch":
                self._writer.add_scalar(scalar_tag(key), value, step)
        for name, rates in neuron_rates.items():
            self._writer.add_histogram(f"rate_hz/{name}", rates.detach().cpu().numpy(), step)
        self._writer.flush()

    def final(self, step: int, summary: Mapping[str, Any], run_dir: Path,
              plots: Iterable[str] = PLOTS) -> None:
        """The end of training: test accuracy and loss of ``summary`` (what ``summary.json``
        holds) and the plots ``<run_dir>/<name>.png`` that exist, as images."""
        import matplotlib.image

        self._writer.add_scalar("accuracy/test", summary["test_acc"], step)
        self._writer.add_scalar("loss/test", summary["test_loss"], step)
        for name in plots:
            path = Path(run_dir) / f"{name}.png"
            if path.is_file():
                self._writer.add_image(f"plots/{name}", matplotlib.image.imread(path), step,
                                       dataformats="HWC")
        self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self._writer.close()
