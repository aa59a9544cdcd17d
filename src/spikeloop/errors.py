"""Exceptions raised by spikeloop.

Every error names the problem and, where one exists, the limit that was violated. All derive
from :class:`SpikeloopError` so callers can catch the whole family; each also derives from the
closest built-in exception (``ValueError``, ``KeyError``...) so ordinary code keeps working.
"""

from __future__ import annotations


class SpikeloopError(Exception):
    """Base class of all spikeloop errors."""


class ShapeError(SpikeloopError, ValueError):
    """A tensor has the wrong rank, time axis or feature size."""


class DTypeError(SpikeloopError, TypeError):
    """A tensor has a dtype the operation cannot use (e.g. integer spikes)."""


class NonFiniteError(SpikeloopError, ValueError):
    """A tensor (input, weight, parameter) holds NaN or infinite values."""


class TimeStepError(SpikeloopError, ValueError):
    """The simulation step ``dt`` is not valid for the given time constants."""


class ParameterError(SpikeloopError, ValueError):
    """A neuron, synapse or simulation parameter is outside its valid range."""


class ArgumentTypeError(ParameterError, TypeError):
    """An argument has a type the function cannot take (a string where a number is due, a
    float where an integer is due, a NumPy array where a tensor is due...). A
    :class:`ParameterError` and a ``TypeError``, so either ``except`` catches it."""


class StateError(SpikeloopError, ValueError):
    """A state given to continue a run does not belong to this network and backend: unknown or
    missing population names, another neuron type, another batch size, dtype or device, or
    non-finite values."""


class UnknownNameError(SpikeloopError, KeyError):
    """A name (encoder, loss, backend, surrogate...) is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise print the repr of the message
        return str(self.args[0]) if self.args else ""


class ConfigError(SpikeloopError, ValueError):
    """A configuration file or override is malformed or names a key that does not exist."""


class CheckpointError(SpikeloopError, RuntimeError):
    """A checkpoint cannot be written, read or does not match the model."""


class DeviceError(SpikeloopError, ValueError):
    """A tensor or network is on a device the backend does not run on."""


class ReplayError(SpikeloopError, RuntimeError):
    """A chip model replayed in the loop does not reproduce what the chip observed."""


class MappingError(SpikeloopError, ValueError):
    """A network does not fit a chip: the message names the violated limit."""


class WeightRangeError(MappingError):
    """A weight is outside the range a chip can represent (and clipping was not asked for)."""


class NIRError(SpikeloopError, ValueError):
    """A model cannot be converted to or from NIR (a node type or feature without counterpart,
    an inconsistent graph) or a NIR file is malformed or truncated."""


class MissingFileError(SpikeloopError, FileNotFoundError):
    """A file named as input (a config, a NIR file) does not exist. A ``FileNotFoundError``
    too, so ``except FileNotFoundError`` keeps working."""


class DataFormatError(SpikeloopError, ValueError):
    """A data file or array does not have its published layout: an HDF5 file without a group
    or data set the format has, lengths that disagree, a value out of the format's range (an
    SHD unit ≥ 700), a wrong IDX magic number, an event array without the fields ``t``, ``x``
    (and ``p``)."""


class MissingDataError(MissingFileError):
    """A data set is not where it was looked for. The message names every path searched and
    the command or Debian package that provides the data set; nothing is downloaded."""


class RunFolderError(SpikeloopError, OSError):
    """A run folder cannot be created or written, or does not hold what was asked of it (a
    resume without a checkpoint)."""


class DistributedError(SpikeloopError, RuntimeError):
    """Data-parallel training cannot go on: the process group cannot be joined, or a
    collective operation failed because another rank died, hung past ``run.dist_timeout`` or
    failed itself. The message names this rank, the operation and the timeout."""


class MissingPackageError(SpikeloopError, ImportError):
    """An optional feature was switched on whose package is not installed (e.g.
    ``run.tensorboard: true`` without TensorBoard). The message names the extra that installs
    it, e.g. ``pip install 'spikeloop[track]'``. An ``ImportError`` too."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C (SIGINT) after saving what could be saved.

    A ``KeyboardInterrupt``, so code that lets Ctrl-C through keeps doing so. ``checkpoint`` is
    the checkpoint to resume from (``None`` when there is none yet), ``resume`` the command that
    continues the run.
    """

    def __init__(self, message: str, checkpoint: str | None, resume: str | None) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.resume = resume

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ClippedAudioError(SpikeloopError, ValueError):
    """Audio samples are at or beyond full scale (``|x| ≥ 1``) and the caller asked for an
    error instead of a :class:`ClippedAudioWarning`. The message counts them."""


class ClippedAudioWarning(UserWarning):
    """Audio samples are at or beyond full scale (``|x| ≥ 1``): clipped audio. They were
    saturated to ``[-1, 1]``, as an ADC does; the message counts them."""


class LimitWarning(UserWarning):
    """Values exceeded a hardware limit and were set to it (e.g. audio front-end counts above
    the chip's 15 events per input channel and step); the message says which and how many."""


class UnknownTraceError(ConfigError):
    """A learning rule reads a variable that does not exist: an unknown name, a trace without
    a time constant, or the membrane of a node that has none (an ``Input``). The message names
    the rule, the variable and the ones that exist."""


class PlasticityBackendError(ConfigError):
    """A local plasticity rule was asked of a backend that cannot run it (the event backend,
    a chip emulator); the message says why and what the chip's own hardware could do."""


class DeviceModelError(ConfigError):
    """A device model (:mod:`spikeloop.devices`) was attached where it cannot act: a layer of
    the wrong kind (a synapse model on a population, a neuron model on a projection), a node
    that does not exist, or a backend that cannot run it (bit flips of integer memories on a
    float simulator, a neuron transfer curve on the event backend's closed form). The message
    names the node, the model and what would work."""
