"""Quantisation-aware training: the chip's integer forward pass with surrogate gradients.

:func:`qat_run` quantises the live float parameters with straight-through rounding
(:func:`~spikeloop.chips.xylo.quantize.chip_tensors`) and runs the *same* step function as the
integer simulator (:mod:`spikeloop.chips.xylo.dynamics`: decay before integration, one-step
hops, event caps, 16-bit saturation), so its forward values are bit-exact with
``simulate(quantize(graph))``; gradients flow to the float weights, thresholds and biases
through the surrogate derivative of every spike count.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spikeloop.chips.xylo import dynamics
from spikeloop.chips.xylo.dynamics import StepRecord, Tally, XyloParams, XyloState
from spikeloop.chips.xylo.mapper import XyloLayout
from spikeloop.chips.xylo.quantize import ChipTensors, QuantizationReport, QuantMethod, chip_tensors
from spikeloop.chips.xylo.simulator import register_params
from spikeloop.chips.xylo.spec import XyloSpec, spec_or_default
from spikeloop.dynamics.surrogate import Surrogate


def tensor_params(t: ChipTensors, spec: XyloSpec | None = None) -> XyloParams:
    """:class:`ChipTensors` as step-function parameters (float64), converted as
    :func:`~spikeloop.chips.xylo.simulator.register_params` converts a config."""
    return register_params(t, spec)


def qat_run(
    layout: XyloLayout, x: Tensor, state: XyloState | None = None, *,
    method: QuantMethod = "per_channel", spec: XyloSpec | None = None,
    surrogate: Surrogate | None = None, report: QuantizationReport | None = None,
    observed: StepRecord | None = None, tally: Tally | None = None,
) -> tuple[StepRecord, XyloState, ChipTensors]:
    """Differentiable chip forward on event counts ``x [T, B, Nin]``.

    Returns the integer-valued records (float64, with gradients), the final state and the
    quantised tensors (their ``scale`` converts membranes to model units). ``observed``: a
    chip's records of the same run, replayed with straight-through values (in-the-loop
    gradients, see :func:`~spikeloop.chips.xylo.dynamics.run`). ``tally``: counts what hit
    the chip's limits.
    """
    spec = spec_or_default(spec)
    tensors = chip_tensors(layout, method, spec, report)
    if surrogate is None:
        surrogate = layout.hidden[0].node.settings["surrogate"]
    if state is None:
        state = dynamics.initial_state(x.shape[1], layout.num_hidden, layout.num_outputs,
                                       spec.hidden_synapses)
    rec, state = dynamics.run(x.to(torch.float64), state, tensor_params(tensors, spec), surrogate,
                              observed, tally)
    return rec, state, tensors
