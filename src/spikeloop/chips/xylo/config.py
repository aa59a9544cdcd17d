"""The chip configuration: a typed, validated, JSON-serialisable record of every register.

A :class:`XyloConfig` is what the integer simulator (and a real chip) runs. All arrays are
``int64`` tensors holding the integer register values; :meth:`XyloConfig.to_json` /
:meth:`XyloConfig.from_json` round-trip it exactly. :meth:`XyloConfig.validate` checks every
value against a :class:`~spikeloop.chips.xylo.spec.XyloSpec` and raises
:class:`~spikeloop.errors.MappingError` (or :class:`~spikeloop.errors.WeightRangeError`)
naming the field, the offending value and the limit (an invalid ``dt``:
:class:`~spikeloop.errors.TimeStepError`, the one check of :func:`spikeloop.checks.check_dt`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from spikeloop.checks import check_dt
from spikeloop.chips.xylo.registers import ARRAYS, DIMS, SHIFTS, Registers
from spikeloop.chips.xylo.spec import XyloSpec
from spikeloop.errors import ConfigError, MappingError, WeightRangeError


@dataclass(frozen=True)
class XyloConfig(Registers):
    """Every register of the chip as ``int64`` tensors (fields:
    :class:`~spikeloop.chips.xylo.registers.Registers`), plus ``dt``: the time step (s) the
    time constants were quantised for."""

    dt: float = 1e-3

    def __post_init__(self) -> None:
        for name in ARRAYS:
            value = getattr(self, name)
            t = torch.as_tensor(value)
            if t.is_floating_point() and not (
                bool(torch.isfinite(t).all()) and bool((t == t.round()).all())
            ):
                raise ConfigError(f"XyloConfig.{name} must hold integers")
            object.__setattr__(self, name, t.detach().to(torch.int64).clone())
        for name in SHIFTS.values():
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value:
                raise ConfigError(f"XyloConfig.{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        object.__setattr__(self, "dt", float(self.dt))

    # ------------------------------------------------------------------------ sizes
    @property
    def num_inputs(self) -> int:
        """Input channels used (``Nin``)."""
        return int(self.weights_in.shape[0])

    @property
    def num_hidden(self) -> int:
        """Hidden neurons (``N``)."""
        return int(self.weights_rec.shape[0])

    @property
    def num_outputs(self) -> int:
        """Output neurons (``O``)."""
        return int(self.weights_out.shape[1])

    # ------------------------------------------------------------------------ checks
    def validate(self, spec: XyloSpec | None = None) -> XyloConfig:
        """Check shapes and every register against ``spec``; returns ``self``.

        Raises :class:`MappingError` naming the field and the limit,
        :class:`WeightRangeError` for weights outside the int8 range, or
        :class:`~spikeloop.errors.TimeStepError` for a ``dt`` that is not a number > 0.
        """
        spec = spec or XyloSpec()
        n_in, n, o = self.weights_in.shape[0], self.weights_rec.shape[0], self.weights_out.shape[1]
        if n_in > spec.inputs:
            raise MappingError(f"{n_in} input channels exceed the chip's {spec.inputs}")
        if not 1 <= n <= spec.hidden_max:
            raise MappingError(f"{n} hidden neurons: the chip has 1..{spec.hidden_max}")
        if not 1 <= o <= spec.outputs:
            raise MappingError(f"{o} output neurons: the chip has 1..{spec.outputs}")
        sizes = {"inputs": n_in, "hidden": n, "outputs": o, "synapses": spec.hidden_synapses}
        shapes = {name: tuple(sizes[d] for d in dims) for name, dims in DIMS.items()}
        for name, shape in shapes.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise MappingError(f"XyloConfig.{name} has shape {got}, expected {shape}")
        for name in ("weights_in", "weights_rec", "weights_out"):
            _check_range(name, getattr(self, name), spec.weight_min, spec.weight_max,
                         "int8 weights", WeightRangeError)
        for name in SHIFTS.values():
            value = getattr(self, name)
            if not 0 <= value <= spec.weight_shift_max:
                raise MappingError(f"XyloConfig.{name} = {value} is outside the weight shift "
                                   f"range 0..{spec.weight_shift_max}")
        for name in ("threshold", "threshold_out"):
            _check_range(name, getattr(self, name), 1, spec.threshold_max,
                         "positive 16-bit thresholds")
        for name in ("bias", "bias_out"):
            _check_range(name, getattr(self, name), spec.state_min, spec.state_max,
                         "16-bit biases")
        for name in ("dash_mem", "dash_mem_out"):
            _check_range(name, getattr(self, name), 0, spec.dash_max, "4-bit decay shifts")
        for name in ("dash_syn", "dash_syn_out"):
            value = getattr(self, name)
            if bool((value == 0).any()):
                raise MappingError(
                    f"XyloConfig.{name} holds 0: a synaptic current with dash 0 decays to 0 "
                    "before it reaches the membrane (silent synapse); dash_syn must be "
                    f"1..{spec.dash_max} (τ_syn ≥ 2·dt)")
            _check_range(name, value, 1, spec.dash_max, "4-bit decay shifts")
        _check_range("aliases", self.aliases, -1, n - 1, "hidden neuron indices (−1: none)")
        check_dt(self.dt, "XyloConfig.dt")
        return self

    # ------------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (nested lists of ints): ``json.dumps`` works on it."""
        out: dict[str, Any] = {"format": "spikeloop.xylo.config/1"}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.tolist() if isinstance(value, Tensor) else value
        out["shapes"] = {name: list(getattr(self, name).shape) for name in ARRAYS}
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> XyloConfig:
        """Inverse of :meth:`to_dict`; raises :class:`ConfigError` for a malformed record."""
        if data.get("format") != "spikeloop.xylo.config/1":
            raise ConfigError(f"not a Xylo config record (format {data.get('format')!r})")
        known = {f.name for f in fields(cls)}
        missing = known - set(data)
        if missing:
            raise ConfigError(f"Xylo config record lacks {sorted(missing)}")
        values: dict[str, Any] = {}
        for name in known:
            if name in ARRAYS:
                shape = data.get("shapes", {}).get(name)
                t = torch.tensor(data[name], dtype=torch.int64)
                values[name] = t.reshape(shape) if shape is not None else t
            else:
                values[name] = data[name]
        return cls(**values)

    def to_json(self, path: str | Path | None = None) -> str:
        """The config as a JSON string (also written to ``path`` if given)."""
        text = json.dumps(self.to_dict())
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> XyloConfig:
        """Read a config from a JSON string or a file path."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"malformed Xylo config JSON: {err}") from None
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, XyloConfig):
            return NotImplemented
        return all(
            torch.equal(a, b) if isinstance(a, Tensor) else a == b
            for a, b in ((getattr(self, f.name), getattr(other, f.name)) for f in fields(self))
        )

    __hash__ = None  # type: ignore[assignment]


def _check_range(
    name: str, value: Tensor, lo: int, hi: int, what: str, error: type = MappingError
) -> None:
    if value.numel() == 0:
        return
    vmin, vmax = int(value.min()), int(value.max())
    if vmin < lo or vmax > hi:
        bad = vmin if vmin < lo else vmax
        raise error(f"XyloConfig.{name} holds {bad}, outside the chip's {what} range {lo}..{hi}")
