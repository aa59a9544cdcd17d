"""Hypothesis strategies of bad (and valid edge) inputs, one per kind of public entry point.

Each strategy draws a :class:`bad_inputs.Case`. Networks are tiny (4 inputs, 6 hidden, 3
outputs, a few time steps) and built once (``common``), so each case runs in milliseconds.
One module per kind: construction, forward, backends, states, losses, encoders, nir, xylo,
checkpoints.
"""

from .backends import backend_cases
from .checkpoints import checkpoint_cases, checkpoint_files
from .construction import construction_cases
from .encoders import encoder_cases
from .forward import forward_cases
from .losses import loss_cases
from .nir import nir_cases, set_tmp
from .states import state_cases
from .xylo import xylo_cases

__all__ = [
    "backend_cases",
    "checkpoint_cases",
    "checkpoint_files",
    "construction_cases",
    "encoder_cases",
    "forward_cases",
    "loss_cases",
    "nir_cases",
    "set_tmp",
    "state_cases",
    "xylo_cases",
]
