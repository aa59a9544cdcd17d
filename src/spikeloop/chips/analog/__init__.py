"""Emulated BrainScaleS-2-style analog chip: spec, mapper, calibration, simulator, backend.

Registered as the ``"chip"`` (alias ``"analog"``) backend.
"""

from spikeloop.chips.analog.backend import AnalogChipBackend, get_chip
from spikeloop.chips.analog.calibration import AnalogChip, CalibrationResult
from spikeloop.chips.analog.mapper import Placement, map_graph
from spikeloop.chips.analog.spec import CALIBRATED, AnalogChipSpec

__all__ = [
    "CALIBRATED",
    "AnalogChip",
    "AnalogChipBackend",
    "AnalogChipSpec",
    "CalibrationResult",
    "Placement",
    "get_chip",
    "map_graph",
]
