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
from spikeloop.chips.xylo.dynamics import StepRecord, XyloParams, XyloState
from spikeloop.chips.xylo.mapper import XyloLayout
from spikeloop.chips.xylo.quantize import ChipTensors, QuantizationReport, QuantMethod, chip_tensors
from spikeloop.chips.xylo.spec import XyloSpec
from spikeloop.dynamics.surrogate import Surrogate


def tensor_params(t: ChipTensors, spec: XyloSpec | None = None) -> XyloParams:
    """:class:`ChipTensors` as step-function parameters (float64, no aliases); the weights are
    delivered shifted, ``W · 2^shift``, as in
    :func:`~spikeloop.chips.xylo.simulator.config_params`."""
    spec = spec or XyloSpec()
    f = torch.float64
    n = t.threshold.shape[0]
    return XyloParams(
        w_in=(t.weights_in.to(f) * 2.0**t.shift_in).reshape(t.weights_in.shape[0], -1),
        w_rec=(t.weights_rec.to(f) * 2.0**t.shift_rec).reshape(n, -1),
        w_out=t.weights_out.to(f) * 2.0**t.shift_out,
        threshold=t.threshold.to(f), threshold_out=t.threshold_out.to(f),
        bias=t.bias.to(f), bias_out=t.bias_out.to(f),
        dash_mem=t.dash_mem.to(f), dash_mem_out=t.dash_mem_out.to(f),
        dash_syn=t.dash_syn.to(f), dash_syn_out=t.dash_syn_out.to(f),
        aliases=torch.full((n,), -1, dtype=torch.int64),
        input_cap=spec.input_cap, hidden_cap=spec.hidden_cap, output_cap=spec.output_cap,
    )


def qat_run(
    layout: XyloLayout, x: Tensor, state: XyloState | None = None, *,
    method: QuantMethod = "per_channel", spec: XyloSpec | None = None,
    surrogate: Surrogate | None = None, report: QuantizationReport | None = None,
) -> tuple[StepRecord, XyloState, ChipTensors]:
    """Differentiable chip forward on event counts ``x [T, B, Nin]``.

    Returns the integer-valued records (float64, with gradients), the final state and the
    quantised tensors (their ``scale`` converts membranes to model units).
    """
    spec = spec or XyloSpec()
    tensors = chip_tensors(layout, method, spec, report)
    if surrogate is None:
        surrogate = layout.hidden[0].node.settings["surrogate"]
    if state is None:
        state = dynamics.initial_state(x.shape[1], layout.num_hidden, layout.num_outputs,
                                       spec.hidden_synapses)
    rec, state = dynamics.run(x.to(torch.float64), state, tensor_params(tensors, spec), surrogate)
    return rec, state, tensors
