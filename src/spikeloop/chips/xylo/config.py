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
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spikeloop.checks import check_dt, check_int, check_path, check_type, show
from spikeloop.chips.xylo.registers import ARRAYS, DIMS, SHIFTS, Registers
from spikeloop.chips.xylo.spec import XyloSpec, spec_or_default
from spikeloop.errors import (
    ArgumentTypeError,
    ConfigError,
    DTypeError,
    MappingError,
    MissingFileError,
    ParameterError,
    ShapeError,
    WeightRangeError,
)


@dataclass(frozen=True)
class XyloConfig(Registers):
    """Every register of the chip as ``int64`` tensors (fields:
    :class:`~spikeloop.chips.xylo.registers.Registers`), plus ``dt``: the time step (s) the
    time constants were quantised for.

    Construction checks types: every array register is an integer tensor, NumPy array or
    nested list of the register's rank (floats that are whole numbers are cast without loss;
    ``1.5``, bools and strings are refused), the shifts are integers and ``dt`` a number > 0.
    :meth:`validate` checks the sizes (that the registers agree on ``Nin``, ``N``, ``O`` and
    the synapse count, within the chip's limits) and every value against a :class:`XyloSpec`;
    the simulator and :func:`~spikeloop.chips.xylo.quantize.quantize` call it.

    Raises:
        ArgumentTypeError: a register is not an array or list (e.g. a string), or a shift is not
            an integer.
        DTypeError: an array holds bools, strings or non-whole numbers.
        ParameterError: a value does not fit int64.
        ShapeError: a ragged nested list or an array of the wrong rank.
        TimeStepError: ``dt`` is not a finite number > 0.
    """

    dt: float = 1e-3

    def __post_init__(self) -> None:
        for name in ARRAYS:
            object.__setattr__(self, name, _register(name, getattr(self, name)))
        for name, dims in DIMS.items():
            shape = tuple(getattr(self, name).shape)
            if len(shape) != len(dims):
                raise ShapeError(f"XyloConfig.{name} must have shape [{', '.join(dims)}] (rank "
                                 f"{len(dims)}), got {shape}")
        for name in SHIFTS.values():
            object.__setattr__(self, name, check_int(getattr(self, name), f"XyloConfig.{name}"))
        object.__setattr__(self, "dt", check_dt(self.dt, "XyloConfig.dt"))

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
        spec = spec_or_default(spec)
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
        out: dict[str, Any] = {"format": FORMAT}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.tolist() if isinstance(value, Tensor) else value
        out["shapes"] = {name: list(getattr(self, name).shape) for name in ARRAYS}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> XyloConfig:
        """Inverse of :meth:`to_dict`.

        Raises:
            ConfigError: ``data`` is not a mapping, has another ``format``, lacks a register or
                has keys that are not registers, or its ``shapes`` entry is not a mapping of
                register names to lists of sizes.
            ShapeError: a register's values do not fill the shape recorded for it (or see the
                construction errors of :class:`XyloConfig`: ragged lists, sizes that disagree;
                non-integer values raise :class:`~spikeloop.errors.DTypeError`).
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"a Xylo config record is a JSON object (dict) with the registers, "
                              f"got {show(data)} ({type(data).__name__})")
        if data.get("format") != FORMAT:
            raise ConfigError(f"not a Xylo config record (format {data.get('format')!r}, "
                              f"expected {FORMAT!r})")
        known = {f.name for f in fields(cls)}
        missing = known - set(data)
        if missing:
            raise ConfigError(f"Xylo config record lacks {sorted(missing)}")
        unknown = set(data) - known - {"format", "shapes"}
        if unknown:
            raise ConfigError(f"Xylo config record has unknown keys {sorted(map(str, unknown))}; "
                              f"known: {sorted(known)}")
        shapes = data.get("shapes", {})
        if not isinstance(shapes, Mapping) or set(shapes) - set(ARRAYS):
            raise ConfigError(f"Xylo config record: 'shapes' must map register names to lists of "
                              f"sizes, got {show(shapes)}")
        values: dict[str, Any] = {}
        for name in known:
            values[name] = data[name]
            if name in ARRAYS and shapes.get(name) is not None:
                values[name] = _reshape(name, _register(name, data[name]), shapes[name])
        return cls(**values)

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The config as a JSON string (also written to ``path`` if given).

        Raises:
            ArgumentTypeError: ``path`` is not a str, ``os.PathLike`` or ``None``.
        """
        text = json.dumps(self.to_dict())
        if path is not None:
            check_type(path, "path", (str, os.PathLike), "a file path (str or os.PathLike)")
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> XyloConfig:
        """Read a config from JSON text or a file.

        The rule: a ``str`` whose first non-blank character is ``{`` or ``[`` is JSON text;
        any other ``str`` and any ``os.PathLike`` (``pathlib.Path``) is a file path.

        Raises:
            ArgumentTypeError: ``text_or_path`` is neither a str nor ``os.PathLike``.
            MissingFileError: the path names no file (a ``FileNotFoundError``).
            ParameterError: an empty string.
            ConfigError: the text (or the file's content) is not JSON, or not a JSON object
                (e.g. an array), or see :meth:`from_dict`.
        """
        check_type(text_or_path, "text_or_path", (str, os.PathLike),
                   "JSON text (a str starting with '{') or a file path (str or os.PathLike)")
        where = "Xylo config JSON"
        if isinstance(text_or_path, str) and text_or_path.lstrip()[:1] in ("{", "["):
            text = text_or_path
        else:
            path = check_path(text_or_path, "text_or_path")
            if not path.is_file():
                raise MissingFileError(
                    f"no Xylo config file {str(path)!r} (XyloConfig.from_json reads a str that "
                    "starts with '{' as JSON text, anything else as a file path)")
            text = path.read_text()
            where = f"Xylo config file {str(path)!r}"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"malformed {where}: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where} holds a JSON {_JSON_NAMES.get(type(data), 'value')}; a "
                              "Xylo config is a JSON object {\"format\": ..., \"weights_in\": "
                              "...}")
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, XyloConfig):
            return NotImplemented
        return all(
            torch.equal(a, b) if isinstance(a, Tensor) else a == b
            for a, b in ((getattr(self, f.name), getattr(other, f.name)) for f in fields(self))
        )

    __hash__ = None  # type: ignore[assignment]


FORMAT = "spikeloop.xylo.config/1"
"""The ``format`` entry of a Xylo config record."""

_JSON_NAMES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def _register(name: str, value: Any) -> Tensor:
    """A register as an ``int64`` tensor (see :class:`XyloConfig` for what is accepted)."""
    who = f"XyloConfig.{name}"
    if isinstance(value, list | tuple):
        try:
            value = np.asarray(value)
        except ValueError:
            raise ShapeError(f"{who} is a ragged nested list (rows of different lengths): "
                             f"{show(value)}") from None
        if value.dtype == object:  # Python ints beyond int64 (or mixed types)
            bad = [v for v in value.reshape(-1) if not isinstance(v, int) or isinstance(v, bool)]
            if not bad:
                raise ParameterError(f"{who} holds {max(value.reshape(-1), key=abs)}, beyond the "
                                     "int64 range of a register")
            raise DTypeError(f"{who} must hold integers, got {show(bad[0])} in it")
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise DTypeError(f"{who} must hold integers, got an array of dtype {value.dtype}: "
                             f"{show(value)}")
        if value.dtype.kind == "u":
            if value.size and int(value.max()) >= 2**63:
                raise ParameterError(f"{who} holds {int(value.max())}, beyond the int64 range")
            value = value.astype(np.int64)
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, Tensor):
        raise ArgumentTypeError(f"{who} must be an integer tensor, NumPy array or nested list, "
                                f"got {show(value)} ({type(value).__name__})")
    t = value.detach()
    if t.dtype == torch.bool or t.is_complex():
        raise DTypeError(f"{who} must hold integers, got a {t.dtype} tensor")
    if t.is_floating_point():
        t = t.double()
        bad = ~(torch.isfinite(t) & (t == t.round()))
        if bool(bad.any()):
            raise DTypeError(f"{who} must hold integers, got {float(t[bad][0])!r} (a float "
                             "tensor is cast only where every value is a whole number)")
        if t.numel() and float(t.abs().max()) >= 2.0**63:
            raise ParameterError(f"{who} holds {float(t.abs().max()):g}, beyond the int64 range")
    return t.to(torch.int64).clone()


def _reshape(name: str, t: Tensor, shape: Any) -> Tensor:
    """``t`` in the recorded ``shape`` (a list of sizes that its values fill)."""
    if not isinstance(shape, list | tuple) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise ConfigError(f"Xylo config record: shapes[{name!r}] must be a list of sizes, got "
                          f"{show(shape)}")
    if math.prod(shape) != t.numel():
        raise ShapeError(f"XyloConfig.{name} has {t.numel()} values, which do not fill the "
                         f"recorded shape {list(shape)} ({math.prod(shape)} values)")
    return t.reshape(shape)


def _check_range(
    name: str, value: Tensor, lo: int, hi: int, what: str, error: type = MappingError
) -> None:
    if value.numel() == 0:
        return
    vmin, vmax = int(value.min()), int(value.max())
    if vmin < lo or vmax > hi:
        bad = vmin if vmin < lo else vmax
        raise error(f"XyloConfig.{name} holds {bad}, outside the chip's {what} range {lo}..{hi}")
