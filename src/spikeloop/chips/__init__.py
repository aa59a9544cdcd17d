"""Emulated neuromorphic chips, one package each (spec, mapper, calibration/quantisation,
simulator, backend). ``analog``: a BrainScaleS-2-style accelerated analog chip; ``xylo``: a
Xylo-like integer SNN processor."""

# Chips register themselves as backends on import (``"xylo"``).
import spikeloop.chips.xylo  # noqa: F401
