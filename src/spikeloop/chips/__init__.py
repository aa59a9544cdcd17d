"""Emulated neuromorphic chips, one package each (spec, mapper, calibration/quantisation,
simulator, backend). ``analog``: a BrainScaleS-2-style accelerated analog chip."""
