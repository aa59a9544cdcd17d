"""One chip instance (its fixed-pattern mismatch) and the automated neuron calibration.

Every neuron circuit sets each of its parameters (``tau_mem``, ``tau_syn``, ``v_leak``,
``v_threshold``, ``v_reset``) from a 10-bit code. The nominal transfer function is known —

- time constants: ``τ(code) = τ_lo · (τ_hi/τ_lo)^(code/1023)`` (chip seconds),
- voltages: ``V(code) = code · 255/1023`` (ADC LSB) —

but each circuit deviates from it by a hidden code offset ``δ_n`` and a gain ``g_n`` (and, for
voltages, an offset ``o_n``), drawn once per chip seed from :class:`AnalogChipSpec`'s mismatch
magnitudes: ``τ_n(code) = g_n · τ(code + δ_n)``, ``V_n(code) = g_n · V(code + δ_n) + o_n``.

Uncalibrated, a circuit gets the nominal code for its target and misses it by its mismatch.
:func:`calibrate` measures each circuit (with measurement noise) and binary-searches the code
that hits its target, for all circuits at once, then reports the spread before and after.
Results are cached per (chip seed, parameter, targets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from spikeloop.checks import check_bool, check_choice, check_int, check_type, require_finite
from spikeloop.chips.analog.spec import CALIBRATED, AnalogChipSpec
from spikeloop.errors import DTypeError, ParameterError, ShapeError

_TAUS = ("tau_mem", "tau_syn")


class AnalogChip:
    """One emulated chip: its fixed-pattern mismatch, drawn from ``seed``.

    Args:
        spec: chip limits and mismatch magnitudes.
        seed: chip instance (the same seed is the same chip).
        mismatch: ``False`` gives an ideal chip whose circuits hit any target exactly.
    """

    def __init__(self, spec: AnalogChipSpec, seed: int, mismatch: bool = True) -> None:
        check_type(spec, "spec", AnalogChipSpec, "an AnalogChipSpec")
        seed = check_int(seed, "seed", 0, 2**40)
        mismatch = check_bool(mismatch, "mismatch")
        self.spec, self.seed, self.mismatch = spec, seed, mismatch
        g = torch.Generator().manual_seed(1_000_003 * seed + 17)
        n = spec.circuits

        def normal(*shape: int) -> Tensor:
            return torch.randn(*shape, generator=g, dtype=torch.float64)

        self.code_offset = {p: normal(n) * spec.mismatch_code_offset for p in CALIBRATED}
        self.gain = {p: torch.exp(normal(n) * spec.mismatch_tau) if p in _TAUS
                     else 1 + normal(n) * 0.05 for p in CALIBRATED}
        self.offset_lsb = {p: normal(n) * spec.mismatch_voltage_lsb for p in CALIBRATED}
        self.synapse_gain = (
            1 + normal(spec.halves, spec.rows_per_half, spec.circuits_per_half)
            * spec.mismatch_synapse_gain
        ).float()
        self._cache: dict[tuple, CalibrationResult] = {}

    # ---------------------------------------------------------------- transfer functions
    def _range(self, param: str) -> tuple[float, float]:
        return self.spec.tau_mem_range if param == "tau_mem" else self.spec.tau_syn_range

    def nominal(self, param: str, code: Tensor) -> Tensor:
        """Nominal transfer function code → value (no mismatch)."""
        frac = code / self.spec.code_max
        if param in _TAUS:
            lo, hi = self._range(param)
            return lo * (hi / lo) ** frac
        lo, hi = self.spec.voltage_range_lsb
        return lo + (hi - lo) * frac

    def nominal_code(self, param: str, target: Tensor) -> Tensor:
        """The code the nominal transfer function assigns to ``target`` (no calibration)."""
        if param in _TAUS:
            lo, hi = self._range(param)
            frac = torch.log(target / lo) / math.log(hi / lo)
        else:
            lo, hi = self.spec.voltage_range_lsb
            frac = (target - lo) / (hi - lo)
        return torch.round(frac * self.spec.code_max).clamp(0, self.spec.code_max)

    def physical(self, param: str, code: Tensor, circuits: Tensor | None = None) -> Tensor:
        """What circuits really do at ``code`` (chip seconds or LSB)."""
        idx = slice(None) if circuits is None else circuits
        if not self.mismatch:
            return self.nominal(param, code)
        value = self.nominal(param, code + self.code_offset[param][idx])
        value = value * self.gain[param][idx]
        if param not in _TAUS:
            value = value + self.offset_lsb[param][idx]
        return value

    def measure(self, param: str, code: Tensor, circuits: Tensor, g: torch.Generator) -> Tensor:
        """An emulated measurement of ``physical`` with measurement noise."""
        value = self.physical(param, code, circuits)
        noise = torch.randn(value.shape, generator=g, dtype=value.dtype)
        if param in _TAUS:
            return value * (1 + self.spec.measure_noise_tau * noise)
        return value + self.spec.measure_noise_lsb * noise

    # ---------------------------------------------------------------- calibration
    def calibrate(self, param: str, circuits: Tensor, targets: Tensor) -> CalibrationResult:
        """Codes that bring ``circuits`` to ``targets`` (cached per seed, parameter, targets).

        Args:
            param: one of :data:`~spikeloop.chips.analog.spec.CALIBRATED`.
            circuits: 1-d integer tensor of circuit indices ``0 … spec.circuits − 1``.
            targets: real tensor of the same shape: finite; ``> 0`` (chip seconds) for a time
                constant, ADC LSB for a voltage.

        Raises:
            ParameterError: ``param`` is unknown, a circuit index is out of range, or a time
                constant target is ``≤ 0``.
            ArgumentTypeError: ``circuits`` or ``targets`` is not a tensor.
            DTypeError: ``circuits`` is not an integer tensor or ``targets`` not a real one.
            ShapeError: ``circuits`` is not 1-d or ``targets`` has another shape.
            NonFiniteError: ``targets`` holds NaN or inf.
        """
        check_choice(param, "param", CALIBRATED)
        check_type(circuits, "circuits", Tensor, "a 1-d integer tensor of circuit indices")
        check_type(targets, "targets", Tensor, "a tensor of target values")
        if circuits.is_floating_point() or circuits.is_complex() or circuits.dtype == torch.bool:
            raise DTypeError(f"circuits must be an integer tensor, got {circuits.dtype}")
        if not targets.is_floating_point() and targets.dtype not in (torch.int32, torch.int64):
            raise DTypeError(f"targets must be a real tensor, got {targets.dtype}")
        if circuits.dim() != 1 or targets.shape != circuits.shape:
            raise ShapeError(f"circuits must be 1-d and targets of the same shape, got "
                             f"{tuple(circuits.shape)} and {tuple(targets.shape)}")
        if circuits.numel() and (int(circuits.min()) < 0
                                 or int(circuits.max()) >= self.spec.circuits):
            bad = int(circuits.min()) if int(circuits.min()) < 0 else int(circuits.max())
            raise ParameterError(f"circuits must be indices 0..{self.spec.circuits - 1}, got "
                                 f"{bad}")
        require_finite(targets, f"calibrate({param!r}) targets")
        if param in _TAUS and targets.numel() and float(targets.min()) <= 0:
            raise ParameterError(f"targets of {param} must be > 0 s (chip time), got "
                                 f"{float(targets.min()):g}")
        targets = targets.double()
        key = (param, circuits.numpy().tobytes(), targets.numpy().round(12).tobytes())
        if key not in self._cache:
            self._cache[key] = _calibrate(self, param, circuits, targets)
        return self._cache[key]


@dataclass(frozen=True)
class CalibrationResult:
    """Calibrated codes of one parameter and the spread of the circuits around their targets.

    ``spread_before``/``spread_after``: standard deviation of ``value − target`` over the
    circuits, relative to the target for time constants, in LSB for voltages — with nominal
    codes (uncalibrated) and with the calibrated codes.
    """

    param: str
    circuits: Tensor
    targets: Tensor
    codes: Tensor
    values: Tensor
    spread_before: float
    spread_after: float


def _spread(param: str, values: Tensor, targets: Tensor) -> float:
    err = values / targets - 1 if param in _TAUS else values - targets
    return float(err.std(unbiased=False)) if err.numel() > 1 else float(err.abs().max())


def _calibrate(chip: AnalogChip, param: str, circuits: Tensor, targets: Tensor
               ) -> CalibrationResult:
    code_max = chip.spec.code_max
    g = torch.Generator().manual_seed(7919 * chip.seed + CALIBRATED.index(param))
    nominal = chip.nominal_code(param, targets)
    before = chip.physical(param, nominal, circuits)
    if not chip.mismatch:  # an ideal chip realises any target exactly
        return CalibrationResult(param, circuits, targets, nominal, targets.clone(), 0.0, 0.0)
    lo = torch.zeros_like(targets)
    hi = torch.full_like(targets, float(code_max))
    while bool((lo < hi).any()):  # monotone transfer: binary search, all circuits at once
        mid = torch.floor((lo + hi) / 2)
        below = chip.measure(param, mid, circuits, g) < targets
        lo = torch.where(below & (lo < hi), mid + 1, lo)
        hi = torch.where(~below & (lo < hi), mid, hi)
    # the neighbour below may be closer
    down = (lo - 1).clamp(min=0)
    closer = (chip.measure(param, down, circuits, g) - targets).abs() < (
        chip.measure(param, lo, circuits, g) - targets).abs()
    codes = torch.where(closer, down, lo)
    after = chip.physical(param, codes, circuits)
    return CalibrationResult(param, circuits, targets, codes, after,
                             _spread(param, before, targets), _spread(param, after, targets))
