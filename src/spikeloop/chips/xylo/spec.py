"""Limits and constants of the Xylo-like integer SNN processor, in one place.

The numbers follow the published SynSense Xylo Audio 2 model (Rockpool's
``devices/xylo/syns61201`` documentation and the ``xylosim`` reference simulator, v2):

- 16 input channels; up to 1000 hidden neurons with 2 synaptic currents each; 8 output neurons
  with 1 synaptic current; three weight matrices (input → hidden ``[16, N, 2]``, one recurrent
  hidden → hidden ``[N, N, 2]`` and hidden → output ``[N, 8]``).
- Signed 8-bit weights; each matrix has a left shift applied to its weights when an event is
  delivered (``w << shift``).
- Signed 16-bit saturating synaptic currents, membranes, biases and thresholds.
- 4-bit decay shifts ("dash"): ``decay(x) = x >> dash`` (arithmetic), or ``sign(x)`` where the
  shift gives 0; each step ``x ← x − decay(x)``, i.e. ``x ≈ (1 − 2^{−dash}) x``, the exact
  discretisation of ``τ = 2^{dash} dt``.
- One alias per hidden neuron (its spikes are also counted as the alias target's spikes).
- Event caps per time step: 15 per input channel, 31 per hidden neuron, 1 per output neuron.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from spikeloop.checks import check_int, check_type


@dataclass(frozen=True)
class XyloSpec:
    """Limits and constants of the Xylo-like chip (defaults: Xylo Audio 2)."""

    name: str = "Xylo-Audio-2-like integer SNN processor (emulated)"
    inputs: int = 16
    hidden_max: int = 1000
    outputs: int = 8
    hidden_synapses: int = 2
    output_synapses: int = 1
    weight_bits: int = 8
    state_bits: int = 16
    threshold_bits: int = 16
    dash_bits: int = 4
    weight_shift_max: int = 7
    input_cap: int = 15
    hidden_cap: int = 31
    output_cap: int = 1

    def __post_init__(self) -> None:
        check_type(self.name, "XyloSpec.name", str, "a string")
        for f in fields(self):
            if f.name != "name":  # every limit is a whole number; only a shift may be 0
                low = 0 if f.name == "weight_shift_max" else 1
                high = 62 if f.name.endswith("_bits") else None  # registers fit int64
                object.__setattr__(self, f.name, check_int(getattr(self, f.name),
                                                           f"XyloSpec.{f.name}", low, high))

    @property
    def weight_max(self) -> int:
        """Largest weight (127)."""
        return 2 ** (self.weight_bits - 1) - 1

    @property
    def weight_min(self) -> int:
        """Smallest weight (−128)."""
        return -(2 ** (self.weight_bits - 1))

    @property
    def state_max(self) -> int:
        """Largest current / membrane / bias (32767)."""
        return 2 ** (self.state_bits - 1) - 1

    @property
    def state_min(self) -> int:
        """Smallest current / membrane / bias (−32768)."""
        return -(2 ** (self.state_bits - 1))

    @property
    def threshold_max(self) -> int:
        """Largest threshold (32767)."""
        return 2 ** (self.threshold_bits - 1) - 1

    @property
    def dash_max(self) -> int:
        """Largest decay shift (15)."""
        return 2**self.dash_bits - 1


def spec_or_default(spec: Any) -> XyloSpec:
    """``spec`` if it is a :class:`XyloSpec`; the default chip for ``None``.

    Raises:
        ArgumentTypeError: ``spec`` is anything else.
    """
    if spec is None:
        return XyloSpec()
    return check_type(spec, "spec", XyloSpec, "a XyloSpec or None")
