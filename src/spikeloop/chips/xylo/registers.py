"""The chip's register set, declared once.

:class:`Registers` lists every register with its shape (``dims``, in the sizes ``inputs``
``Nin``, ``hidden`` ``N``, ``outputs`` ``O`` and ``synapses`` 2). The three records that hold
registers derive from it, so they cannot drift apart:

- :class:`~spikeloop.chips.xylo.config.XyloConfig` — the registers as ``int64`` tensors
  (validated, JSON round trip), what a chip runs;
- :class:`~spikeloop.chips.xylo.quantize.ChipTensors` — the same registers as
  integer-valued, differentiable float tensors (QAT), plus the membrane scales;
- :class:`~spikeloop.chips.xylo.dynamics.XyloParams` — the step function's parameters: the
  same names (:data:`ARRAYS`), built by
  :func:`~spikeloop.chips.xylo.simulator.register_params` with the weights delivered shifted
  (``W · 2^shift``) and flattened ``[pre, post·syn]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from torch import Tensor


@dataclass(frozen=True)
class Registers:
    """Every register of the chip (``Nin ≤ 16`` inputs, ``N`` hidden, ``O ≤ 8`` outputs).

    Attributes:
        weights_in: ``[Nin, N, 2]`` int8 input weights (to synaptic current 0 or 1).
        weights_rec: ``[N, N, 2]`` int8 recurrent (hidden → hidden) weights ``[pre, post, syn]``.
        weights_out: ``[N, O]`` int8 hidden → output weights.
        threshold, threshold_out: ``[N]`` / ``[O]`` thresholds (1..32767).
        bias, bias_out: ``[N]`` / ``[O]`` int16 biases added to the membrane every step.
        dash_mem, dash_mem_out: ``[N]`` / ``[O]`` membrane decay shifts (0..15).
        dash_syn: ``[N, 2]``, dash_syn_out ``[O]``: synaptic decay shifts (1..15; 0 would
            silence the synapse, because currents decay before they reach the membrane).
        aliases: ``[N]`` alias target of each hidden neuron (−1: none).
        shift_in, shift_rec, shift_out: per-matrix left shift of the weights (0..7).
    """

    weights_in: Tensor = field(metadata={"dims": ("inputs", "hidden", "synapses")})
    weights_rec: Tensor = field(metadata={"dims": ("hidden", "hidden", "synapses")})
    weights_out: Tensor = field(metadata={"dims": ("hidden", "outputs")})
    threshold: Tensor = field(metadata={"dims": ("hidden",)})
    threshold_out: Tensor = field(metadata={"dims": ("outputs",)})
    bias: Tensor = field(metadata={"dims": ("hidden",)})
    bias_out: Tensor = field(metadata={"dims": ("outputs",)})
    dash_mem: Tensor = field(metadata={"dims": ("hidden",)})
    dash_mem_out: Tensor = field(metadata={"dims": ("outputs",)})
    dash_syn: Tensor = field(metadata={"dims": ("hidden", "synapses")})
    dash_syn_out: Tensor = field(metadata={"dims": ("outputs",)})
    aliases: Tensor = field(metadata={"dims": ("hidden",)})
    shift_in: int = 0
    shift_rec: int = 0
    shift_out: int = 0


ARRAYS: tuple[str, ...] = tuple(f.name for f in fields(Registers) if "dims" in f.metadata)
"""The array registers, in declaration order."""
DIMS: dict[str, tuple[str, ...]] = {f.name: f.metadata["dims"] for f in fields(Registers)
                                    if "dims" in f.metadata}
"""Each array register's shape in named sizes."""
SHIFTS: dict[str, str] = {"weights_in": "shift_in", "weights_rec": "shift_rec",
                          "weights_out": "shift_out"}
"""Weight matrix → its left-shift register."""
