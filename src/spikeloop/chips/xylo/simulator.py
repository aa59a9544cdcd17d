"""The integer simulator: runs a :class:`~spikeloop.chips.xylo.config.XyloConfig` on an integer
input raster, bit-exactly as the reference ``xylosim`` (tested on thousands of random
networks), with streaming (state carried between calls).

The dynamics are :mod:`spikeloop.chips.xylo.dynamics` (the step order and integer conventions
are documented there); this module turns a config into parameters, checks the input and
returns integer records. The steps run in :mod:`spikeloop.chips.xylo.engine` (a native time
loop, or the step function where no C compiler is available): a long input costs about a
microsecond per step for a small network; the records come back as int64 tensors. What hit
the chip's limits (input counts above the cap, 16-bit saturation) is counted in
:attr:`XyloRun.clipped` and :func:`limit_warnings` words it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from spikeloop.chips.xylo import dynamics, engine
from spikeloop.chips.xylo.config import XyloConfig
from spikeloop.chips.xylo.dynamics import XyloParams, XyloState
from spikeloop.chips.xylo.registers import ARRAYS, SHIFTS, Registers
from spikeloop.chips.xylo.spec import XyloSpec, spec_or_default
from spikeloop.errors import DTypeError, MappingError, ShapeError


@dataclass(frozen=True)
class XyloRun:
    """What the chip did, time-major, ``int64``: hidden spike counts ``spikes [T, B, N]``,
    membranes ``v [T, B, N]``, synaptic currents ``i [T, B, N, 2]``, output spike counts
    ``spikes_out [T, B, O]``, ``v_out`` and ``i_out [T, B, O]`` — every value after its step —
    and the final ``state`` (pass it back to continue: streaming). Without a batch axis in the
    input the batch axis is absent here too. ``clipped``: how often the run hit the chip's
    limits, by :data:`~spikeloop.chips.xylo.dynamics.TALLIES` name (words:
    :func:`limit_warnings`)."""

    spikes: Tensor
    v: Tensor
    i: Tensor
    spikes_out: Tensor
    v_out: Tensor
    i_out: Tensor
    state: XyloState
    clipped: Mapping[str, int] = field(default_factory=dict)


def register_params(r: Registers, spec: XyloSpec | None = None) -> XyloParams:
    """Registers as :class:`~spikeloop.chips.xylo.dynamics.XyloParams` (the same names; float64
    integers, the weights delivered shifted, ``W · 2^shift``, and flattened
    ``[pre, post·syn]``, the aliases long). ``r`` is a :class:`XyloConfig` or a
    :class:`~spikeloop.chips.xylo.quantize.ChipTensors`."""
    spec = spec_or_default(spec)
    values = {}
    for name in ARRAYS:
        t = getattr(r, name)
        if name in SHIFTS:
            t = (t.to(torch.float64) * 2.0 ** getattr(r, SHIFTS[name])).reshape(t.shape[0], -1)
        values[name] = t.to(torch.int64 if name == "aliases" else torch.float64)
    return XyloParams(**values, input_cap=spec.input_cap, hidden_cap=spec.hidden_cap,
                      output_cap=spec.output_cap,
                      alias_depth=dynamics.alias_chain_depth(values["aliases"]))


def config_params(config: XyloConfig, spec: XyloSpec | None = None) -> XyloParams:
    """The config as :class:`~spikeloop.chips.xylo.dynamics.XyloParams` (float64 integers)."""
    return register_params(config, spec)


def raster(x: Tensor, inputs: int) -> tuple[Tensor, bool]:
    """Validate an input raster ``[T, Nin]`` or ``[T, B, Nin]`` of non-negative integer event
    counts (any real or bool dtype); returns it as a ``[T, B, Nin]`` view (no copy) and whether
    a batch axis was given."""
    if not isinstance(x, Tensor):
        raise ShapeError(f"the Xylo input must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() not in (2, 3) or x.shape[-1] != inputs or x.shape[0] == 0:
        raise ShapeError(f"the Xylo input must be [T, {inputs}] or [T, B, {inputs}] with "
                         f"T ≥ 1, got {tuple(x.shape)}")
    batched = x.dim() == 3
    if x.is_floating_point():  # in chunks of steps: no temporary of the input's size
        step = max(1, engine.CHUNK_VALUES // max(1, x[0].numel()))
        for part in x.split(step):
            if not bool((torch.isfinite(part) & (part == part.round())).all()):
                raise DTypeError("the Xylo input must hold integer event counts")
    if x.dtype != torch.bool and x.numel() and float(x.min()) < 0:
        raise ShapeError("the Xylo input holds negative event counts")
    return (x if batched else x.unsqueeze(1)), batched


def _check_state(state: XyloState, batch: int, config: XyloConfig) -> None:
    if tuple(state.v.shape) != (batch, config.num_hidden) or tuple(state.v_out.shape) != (
        batch, config.num_outputs
    ):
        raise ShapeError(f"the state is for hidden/output shapes {tuple(state.v.shape)} / "
                         f"{tuple(state.v_out.shape)}, the run needs ({batch}, "
                         f"{config.num_hidden}) / ({batch}, {config.num_outputs})")


def _as_run(records: dict[str, Tensor], state: XyloState, clipped: Mapping[str, int],
            batched: bool) -> XyloRun:
    values = [records[name].to(torch.int64) for name in engine.RECORDS]
    if not batched:
        values = [t.squeeze(1) for t in values]
    return XyloRun(*values, state=state, clipped=dict(clipped))


def simulate(
    config: XyloConfig, x: Tensor, state: XyloState | None = None, *,
    spec: XyloSpec | None = None, validate: bool = True,
) -> XyloRun:
    """Run ``config`` on the integer input raster ``x [T, Nin]`` (or ``[T, B, Nin]``) from
    ``state`` (``None``: after reset). Streaming: ``simulate(c, x[a:b], run.state)`` continues
    a run; chunks give exactly the one long call."""
    spec = spec_or_default(spec)
    if validate:
        config.validate(spec)
    x3, batched = raster(x, config.num_inputs)
    batch = x3.shape[1]
    if state is None:
        state = dynamics.initial_state(batch, config.num_hidden, config.num_outputs,
                                       spec.hidden_synapses)
    else:
        _check_state(state, batch, config)
    records, state, clipped = engine.run(x3, state, config_params(config, spec))
    return _as_run(records, state, clipped, batched)


def simulate_many(
    configs: Sequence[XyloConfig], x: Tensor, *, spec: XyloSpec | None = None
) -> XyloRun:
    """Run many configs of equal sizes at once, config ``b`` on input ``x[:, b]``
    (``x [T, len(configs), Nin]``): one vectorised run instead of a loop (sweeps, tests)."""
    spec = spec_or_default(spec)
    if not configs:
        raise MappingError("simulate_many needs at least one config")
    sizes = {(c.num_inputs, c.num_hidden, c.num_outputs) for c in configs}
    if len(sizes) != 1:
        raise MappingError(f"simulate_many needs configs of equal sizes, got {sorted(sizes)}")
    for c in configs:
        c.validate(spec)
    x3, _ = raster(x, configs[0].num_inputs)
    if x3.shape[1] != len(configs):
        raise ShapeError(f"x has batch {x3.shape[1]}, expected one entry per config "
                         f"({len(configs)})")
    params = [config_params(c, spec) for c in configs]
    stacked = XyloParams(
        **{name: torch.stack([getattr(p, name) for p in params]) for name in ARRAYS},
        input_cap=spec.input_cap, hidden_cap=spec.hidden_cap, output_cap=spec.output_cap,
    )
    c = configs[0]
    state = dynamics.initial_state(len(configs), c.num_hidden, c.num_outputs,
                                   spec.hidden_synapses)
    records, state, clipped = engine.run(x3, state, stacked)
    return _as_run(records, state, clipped, True)


def limit_warnings(clipped: Mapping[str, int], steps: int, batch: int, sizes: tuple[int, int, int],
                   spec: XyloSpec | None = None) -> list[str]:
    """One sentence per limit a run hit (``clipped``: :attr:`XyloRun.clipped`), with the count
    and of how many values, for a run of ``steps`` steps and ``batch`` networks of
    ``sizes = (Nin, N, O)``. Nothing for limits not hit."""
    spec = spec_or_default(spec)
    n_in, n, o = sizes
    b = " × batch" if batch > 1 else ""
    state = f"the 16-bit range {spec.state_min}..{spec.state_max}"
    lines = {
        "input": (n_in, f"(step{b} × channel) input counts were above the chip's cap of "
                        f"{spec.input_cap} events per channel and step and were clamped to "
                        f"{spec.input_cap}"),
        "current": (n * spec.hidden_synapses,
                    f"(step{b} × neuron × synapse) hidden synaptic currents saturated at "
                    f"{state} while the step's events were added"),
        "membrane": (n, f"(step{b} × neuron) hidden membrane updates saturated at {state}"),
        "current_out": (o, f"(step{b} × neuron) output synaptic currents saturated at {state} "
                           "while the step's events were added"),
        "membrane_out": (o, f"(step{b} × neuron) output membrane updates saturated at "
                            f"{state}"),
    }
    out = []
    for name, (width, text) in lines.items():
        count = int(clipped.get(name, 0))
        if count:
            out.append(f"xylo {name}: {count} of {steps * batch * width} {text}")
    return out


class XyloStream:
    """Streaming inference: feed chunks of input, state carried between calls.

    Example:
        >>> stream = XyloStream(config)
        >>> parts = [stream(chunk) for chunk in x.split(10)]   # == simulate(config, x)
        >>> stream.reset()
    """

    def __init__(self, config: XyloConfig, spec: XyloSpec | None = None) -> None:
        self.spec = spec_or_default(spec)
        self.config = config.validate(self.spec)
        self.state: XyloState | None = None
        self.steps = 0

    def __call__(self, chunk: Tensor) -> XyloRun:
        """Run one chunk ``[T, Nin]`` / ``[T, B, Nin]`` and keep the final state."""
        run = simulate(self.config, chunk, self.state, spec=self.spec, validate=False)
        self.state = run.state
        self.steps += chunk.shape[0]
        return run

    def reset(self) -> None:
        """Back to the state after reset (all zero)."""
        self.state = None
        self.steps = 0
