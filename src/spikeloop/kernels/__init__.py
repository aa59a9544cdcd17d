"""Fast paths: fused neuron time loops with hand-written backward passes, event-driven
projections, and the native (C, OpenMP) CPU kernels behind them.

Every fast path computes what the reference step functions of :mod:`spikeloop.dynamics` compute
(tests/test_kernels.py checks values and gradients); backends pick them with ``kernel="auto"``.
"""

from spikeloop.kernels.fused import (
    Compressed,
    LoopConfig,
    event_linear,
    event_weight_grad,
    neuron_loop,
)

__all__ = ["Compressed", "LoopConfig", "event_linear", "event_weight_grad", "neuron_loop"]
