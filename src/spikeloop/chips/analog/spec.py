"""Limits and constants of the emulated analog chip, in one place.

The numbers follow the published BrainScaleS-2 system (Pehle et al. 2022, Frontiers in
Neuroscience 16:795876; Billaudelle et al. 2020; Cramer et al. 2022, PNAS 119:e2109194119):

- 512 neuron circuits in two halves of 256; each half has a 256-row × 256-column synapse array
  fed by 256 synapse drivers; a row carries one presynaptic source with one sign, so a signed
  input needs an excitatory and an inhibitory row: ≤ 128 signed inputs per neuron circuit, ≤ 256
  when two circuits (one per half) are joined into one neuron.
- 6-bit weights (0..63) per synapse; time runs 1000× faster than biology; spike times on an
  8 ns (125 MHz) clock (the emulator resolves them on the simulation grid, ``dt / 1000`` of
  chip time — 0.5 µs for the demo — so a finer ``dt`` gives finer spike times); membrane time
  constants 0.5–60 µs, synaptic 0.3–30 µs, refractory 0.04–32 µs.
- Membrane read-out: an 8-bit column ADC per neuron sampled every ~1.7–2 µs (reliable range
  30–210 LSB, read noise ≲ 3 LSB) and a 10-bit ADC that samples one selected neuron at tens of
  MSample/s.
- Imperfections: fixed-pattern mismatch of every neuron's parameters and every synapse's gain
  (per chip instance), trial-to-trial noise of PSP amplitudes (≲ 7 LSB). The magnitudes below
  are chosen within the published bounds; they are emulator settings, not measurements.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from torch import Tensor

from spikeloop.checks import check_int, check_real, check_type
from spikeloop.errors import ParameterError

_FLOAT_LOW = {"leak_lsb": (None, False), "speedup": (0.0, True), "clock": (0.0, True),
              "adc_period": (0.0, True), "dense_adc_rate": (0.0, True),
              "lsb_per_unit": (0.0, True)}
"""Lower bounds (and whether they are strict) of float fields other than ``≥ 0``."""

CALIBRATED = ("tau_mem", "tau_syn", "v_leak", "v_threshold", "v_reset")
"""Neuron parameters set per circuit by a 10-bit code (and therefore calibrated)."""


@dataclass(frozen=True)
class AnalogChipSpec:
    """Limits and constants of the emulated analog chip. Times are chip time (s)."""

    name: str = "BrainScaleS-2-style analog chip (emulated)"
    halves: int = 2
    circuits_per_half: int = 256
    rows_per_half: int = 256
    synapse_drivers: int = 256
    weight_max: int = 63
    max_joined_circuits: int = 2
    speedup: float = 1000.0
    clock: float = 8e-9
    tau_mem_range: tuple[float, float] = (0.5e-6, 60e-6)
    tau_syn_range: tuple[float, float] = (0.3e-6, 30e-6)
    refrac_range: tuple[float, float] = (0.04e-6, 32e-6)
    code_bits: int = 10
    # membrane read-out
    adc_bits: int = 8
    adc_period: float = 1.8e-6
    adc_reliable: tuple[float, float] = (30.0, 210.0)
    adc_read_noise: float = 2.0
    dense_adc_bits: int = 10
    dense_adc_rate: float = 30e6
    dense_read_noise: float = 1.0  # in 10-bit LSB
    # mapping of model membrane units to ADC LSB: v_lsb = leak_lsb + (v − v_leak)·lsb_per_unit
    leak_lsb: float = 80.0
    lsb_per_unit: float = 50.0
    voltage_range_lsb: tuple[float, float] = (0.0, 255.0)  # what the parameter DACs can set
    # fixed-pattern mismatch before calibration (σ): relative for time constants, LSB otherwise
    mismatch_tau: float = 0.15
    mismatch_voltage_lsb: float = 10.0
    mismatch_code_offset: float = 20.0
    mismatch_synapse_gain: float = 0.08
    # calibration measurement noise (σ per measurement)
    measure_noise_tau: float = 0.005
    measure_noise_lsb: float = 0.5
    # trial-to-trial noise: σ of each PSP amplitude, relative to its weight. The demo's largest
    # trained weight (≈ 3.8 current units after chip-in-the-loop training) makes a PSP of
    # ≈ 0.95 model units ≈ 48 LSB (peak of the τ_syn = 5 ms / τ_mem = 10 ms kernel: 0.25 per
    # unit), which thus varies by ≈ 2.4 LSB (σ), within the published ≲ 7 LSB.
    psp_noise: float = 0.05

    def __post_init__(self) -> None:
        """Every limit has its type and a sensible range: counts and bit widths are integers
        ≥ 1, rates, periods and scales numbers > 0, noise and mismatch magnitudes ≥ 0, ranges
        ``(low, high)`` with ``low < high`` (time ranges ``low > 0``)."""
        check_type(self.name, "AnalogChipSpec.name", str, "a string")
        for f in fields(self):
            who, value = f"AnalogChipSpec.{f.name}", getattr(self, f.name)
            if f.type == "int":
                value = check_int(value, who, 1, 62 if f.name.endswith("_bits") else None)
            elif f.type == "float":
                low, open_ = _FLOAT_LOW.get(f.name, (0.0, False))
                value = check_real(value, who, low, low_open=open_)
            elif f.type == "tuple[float, float]":
                if not isinstance(value, tuple | list) or len(value) != 2:
                    raise ParameterError(f"{who} must be a (low, high) pair, got {value!r}")
                positive = f.name.endswith("_range") and f.name != "voltage_range_lsb"
                lo = check_real(value[0], f"{who}[0]", 0.0 if positive else None,
                                low_open=positive)
                hi = check_real(value[1], f"{who}[1]")
                if not lo < hi:
                    raise ParameterError(f"{who} must be (low, high) with low < high, got "
                                         f"{value!r}")
                value = (lo, hi)
            object.__setattr__(self, f.name, value)

    @property
    def circuits(self) -> int:
        """Neuron circuits on the chip (512)."""
        return self.halves * self.circuits_per_half

    @property
    def signed_inputs_per_circuit(self) -> int:
        """Signed inputs one circuit can receive (an excitatory and an inhibitory row each)."""
        return self.rows_per_half // 2

    @property
    def code_max(self) -> int:
        """Largest parameter code (1023)."""
        return 2**self.code_bits - 1

    @property
    def adc_max(self) -> int:
        """Largest code of the 8-bit membrane ADC (255); it saturates at 0 and here."""
        return 2**self.adc_bits - 1

    def to_lsb(self, v: Tensor, v_leak: Tensor | float) -> Tensor:
        """Model membrane units → ADC LSB: ``leak_lsb + (v − v_leak) · lsb_per_unit``."""
        return self.leak_lsb + (v - v_leak) * self.lsb_per_unit

    def from_lsb(self, lsb: Tensor, v_leak: Tensor | float) -> Tensor:
        """ADC LSB → model membrane units (inverse of :meth:`to_lsb`)."""
        return v_leak + (lsb - self.leak_lsb) / self.lsb_per_unit
