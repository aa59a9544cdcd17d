"""Emulated neuromorphic chips, one package each (spec, mapper, calibration/quantisation,
simulator, backend). ``analog``: a BrainScaleS-2-style accelerated analog chip; ``xylo``: a
Xylo-like integer SNN processor.

Each registers itself as a backend (``"chip"``/``"analog"``, ``"xylo"``) when first used by name
(see :mod:`spikeloop.backends`).
"""
