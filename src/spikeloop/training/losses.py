r"""Losses and regularisers on network observables.

A loss is a small object with ``__call__(output, target) -> scalar`` and
``predict(output) -> class indices``, reading the observables of the network's readout (or of a
named population). Registered in :data:`LOSSES`; build one with :func:`make_loss`.

=====================  ========================================================================
``max_membrane_ce``    :math:`\mathrm{CE}(\mathrm{softmax}(\max_t v_{t}/τ_{s}), y)` on the readout
                       membrane (LI/CubaLI); prediction :math:`\arg\max_c \max_t v_{t,c}`.
                       With ``bounds`` :math:`(v_{lo}, v_{hi})` plus :math:`λ\,\mathrm{mean}_b
                       \sum_c [\mathrm{relu}(\max_t v - v_{hi})^2 + \mathrm{relu}(v_{lo} -
                       \min_t v)^2]`, which keeps the membrane inside a read-out's range (a
                       chip's ADC, whose limits a readout trained without them runs into).
``first_spike_ce``     :math:`\mathrm{CE}(\mathrm{softmax}(-t^{first}/τ_0), y) + α\,
                       (e^{t^{first}_y/τ_1} - 1)` (Göltz et al. 2021); prediction: earliest
                       spike. :math:`t^{first}_c = \sum_k t_k f_{k,c}
                       + T_{max}(1 - \sum_k f_{k,c})`,
                       with :math:`f_{k} = z_k \prod_{j<k}(1-z_j)` (differentiable through
                       the surrogate; no spike counts as :math:`T_{max}`).
``spike_count_ce``     :math:`\mathrm{CE}(\mathrm{softmax}(\sum_t z_t / s), y)`; prediction: most
                       spikes.
``exp_membrane_ce``    loss shaping (Nowotny et al. 2022): :math:`\mathrm{CE}(\mathrm{softmax}(
                       \frac{1}{s\,T}\int_0^T e^{-t/τ_w} V_c(t)\,dt), y)` on the readout
                       membrane; prediction: largest weighted integral.
=====================  ========================================================================

On the exact ``event`` backend the same losses read the exact, EventProp-differentiable
quantities of :class:`~spikeloop.backends.event.EventObservables` instead of the grid:
``max_membrane_ce`` the exact maximum ``v_max``, ``first_spike_ce`` the exact first spike
times (no spike: the window length ``T``), ``exp_membrane_ce`` the closed-form integral, and
``spike_count_ce`` and the rate regulariser exact spike counts (its grid engine,
``engine="grid"``, gives the grid's spike times, whose gradients enter EventProp's adjoint as
the exact engine's do). Spike counts are piecewise constant in the weights (exact gradient 0),
so on the event backend they pass their gradient to the spike times as if each count fell by
``1/T`` per second of delay (:math:`\partial n/\partial t_k := -1/T`; the spike-count
regularisation of Nowotny et al.).

:class:`FiringRateRegularizer` penalises mean rates outside ``[low, high]`` (Hz) per neuron:
:math:`λ \cdot \mathrm{mean}(\mathrm{relu}(r - high)^2 + \mathrm{relu}(low - r)^2)`.

Every parameter is checked when a loss or regulariser is built (type and range, with the
validators of :mod:`spikeloop.checks`; a number may be a Python, NumPy or one-element tensor
value and is stored as a ``float``), and every call checks what it is given: the output is a
:class:`~spikeloop.observables.NetworkOutput` holding the named population
(:class:`~spikeloop.errors.UnknownNameError` otherwise), the labels are integer class indices
of the batch's length within the classes (:func:`~spikeloop.checks.check_labels`: any integer
dtype is cast to ``int64``; float and bool labels are refused, not rounded; an empty batch is an
error rather than a NaN loss).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from spikeloop.checks import (
    check_dt,
    check_labels,
    check_names,
    check_real,
    check_sequence,
    check_type,
    show,
)
from spikeloop.errors import ConfigError, ParameterError, ShapeError, UnknownNameError
from spikeloop.observables import NetworkOutput, Observables
from spikeloop.registry import Registry

LOSSES: Registry[type[Loss]] = Registry("loss")
_INF = math.inf


def _positive(owner: Any, *keys: str) -> None:
    """Check that the fields ``keys`` of a frozen dataclass hold finite numbers ``> 0`` and
    store them as floats."""
    for key in keys:
        value = check_real(getattr(owner, key), f"{_name(owner)}: {key}", 0, low_open=True)
        object.__setattr__(owner, key, value)


def _name(owner: Any) -> str:
    """The registered name of a loss (the class name of anything else), for messages."""
    return _class_name(type(owner))


@functools.cache
def _class_name(cls: type) -> str:
    """Looked up once per class (the losses name themselves in every call's checks)."""
    return next((n for n in LOSSES.names() if LOSSES.get(n) is cls), cls.__name__)


def _population(output: Any, name: str | None, who: str) -> Observables:
    """The observables of population ``name`` (``None``: the readout) of ``output``."""
    check_type(output, f"{who}: output", NetworkOutput, "a NetworkOutput (what a network "
               "returns)")
    if name is None:
        return output.output
    if name not in output:
        raise UnknownNameError(f"{who}: unknown population {name!r}; the output has "
                               f"{', '.join(map(repr, output))}")
    return output[name]


@dataclass(frozen=True)
class Loss:
    """Base class. ``population``: which population to read (default: the readout)."""

    population: str | None = None

    def __post_init__(self) -> None:
        if self.population is not None:
            check_type(self.population, f"{_name(self)}: population", str,
                       "a population name (str) or None")

    def observables(self, output: NetworkOutput) -> Observables:
        """The observables this loss reads.

        Raises:
            ArgumentTypeError: ``output`` is not a :class:`NetworkOutput`.
            UnknownNameError: it has no population ``population``.
        """
        return _population(output, self.population, _name(self))

    def logits(self, output: NetworkOutput) -> Tensor:
        """Per-class scores ``[B, C]`` (higher = more likely)."""
        raise NotImplementedError

    def __call__(self, output: NetworkOutput, target: Tensor) -> Tensor:
        """The mean loss over the batch; ``target``: class indices ``[B]`` (see
        :func:`~spikeloop.checks.check_labels` for the dtype rule)."""
        logits = self.logits(output)
        return F.cross_entropy(logits, self._target(logits, target))

    def _target(self, logits: Tensor, target: Any) -> Tensor:
        return check_labels(target, f"{_name(self)}: target (the labels)",
                            n_classes=logits.shape[1], batch=logits.shape[0],
                            device=logits.device)

    def predict(self, output: NetworkOutput) -> Tensor:
        """Predicted class per sample ``[B]``."""
        return self.logits(output).argmax(-1)


def _require(obs: Observables, field: str, loss: str) -> Tensor:
    value = getattr(obs, field)
    if value is None:
        raise ConfigError(f"loss {loss!r} needs {field!r} of its population, which has none")
    if value.dim() != 3:
        raise ShapeError(
            f"loss {loss!r} needs {field} of shape [T, B, C], got {tuple(value.shape)}"
        )
    return value


@LOSSES.register("max_membrane_ce")
@dataclass(frozen=True)
class MaxMembraneCE(Loss):
    """Cross-entropy on the max-over-time readout membrane, divided by ``scale``.

    Args:
        scale: logits are ``max_t v / scale`` (a finite number > 0).
        bounds: ``(low, high)``, ``low < high`` (one may be infinite: a one-sided bound):
            penalise membranes above ``high`` or below ``low`` (model units) at any time
            step, ``bounds_strength · (relu(max_t v − high)² +
            relu(low − min_t v)²)`` summed over classes, averaged over the batch (on the grid
            membrane ``v``, also on the event backend). ``None``: no penalty.
        bounds_strength: ``λ`` of that penalty (finite, ``≥ 0``).
    """

    scale: float = 1.0
    bounds: tuple[float, float] | None = None
    bounds_strength: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "scale")
        if self.bounds is not None:
            if isinstance(self.bounds, str) or not isinstance(self.bounds, Sequence) \
                    or len(self.bounds) != 2:
                raise ParameterError(f"max_membrane_ce: bounds must be [low, high] (two "
                                     f"numbers) or None, got {show(self.bounds)}")
            low, high = (check_real(b, f"max_membrane_ce: bounds[{k}]", finite=False)
                         for k, b in enumerate(self.bounds))
            if not low < high:
                raise ParameterError(f"max_membrane_ce: bounds need low < high, got "
                                     f"{show(self.bounds)}")
            object.__setattr__(self, "bounds", (low, high))
        object.__setattr__(self, "bounds_strength", check_real(
            self.bounds_strength, "max_membrane_ce: bounds_strength", 0))

    def __call__(self, output: NetworkOutput, target: Tensor) -> Tensor:
        loss = super().__call__(output, target)
        if self.bounds is None:
            return loss
        v = _require(self.observables(output), "v", "max_membrane_ce with bounds")
        low, high = self.bounds
        excess = F.relu(v.max(0).values - high) ** 2 + F.relu(low - v.min(0).values) ** 2
        return loss + self.bounds_strength * excess.sum(-1).mean()

    def logits(self, output: NetworkOutput) -> Tensor:
        obs = self.observables(output)
        exact = getattr(obs, "v_max", None)
        if exact is not None:  # event backend: exact max over continuous time
            return exact / self.scale
        v = _require(obs, "v", "max_membrane_ce")
        return v.max(dim=0).values / self.scale


def _spike_raster(spikes: Any, who: str) -> None:
    """Check that ``spikes`` is a finite floating-point raster ``[T, B, C]``, ``T ≥ 1``."""
    check_type(spikes, who, Tensor, "a spike tensor [T, B, C]")
    if spikes.dim() != 3:
        raise ShapeError(f"{who} must be [T, B, C], got shape {tuple(spikes.shape)}")
    check_sequence(spikes, (spikes.shape[2],), who)


def first_spike_times(spikes: Tensor, dt: float) -> Tensor:
    """Differentiable first-spike times ``[B, C]`` (s) from spikes ``[T, B, C]``.

    Step ``k`` ends at ``(k+1)·dt``; a neuron that never spikes gets ``T·dt``.

    Raises:
        ArgumentTypeError: ``spikes`` is not a tensor. ShapeError: it is not ``[T, B, C]``
            with ``T ≥ 1``. DTypeError: it is not floating point. TimeStepError: ``dt`` is not
            a finite number ``> 0``.
    """
    _spike_raster(spikes, "first_spike_times: spikes")
    dt = check_dt(dt, "first_spike_times: dt")
    t = spikes.shape[0]
    before = torch.cumprod(1 - spikes, dim=0)
    not_before = torch.cat([torch.ones_like(before[:1]), before[:-1]], dim=0)
    first = spikes * not_before
    times = torch.arange(1, t + 1, dtype=spikes.dtype, device=spikes.device) * dt
    return (first * times[:, None, None]).sum(0) + t * dt * (1 - first.sum(0))


@LOSSES.register("first_spike_ce")
@dataclass(frozen=True)
class FirstSpikeCE(Loss):
    """Time-to-first-spike cross-entropy with the Göltz et al. regulariser.

    Args:
        dt: time step of the spikes (s, finite, > 0).
        tau0: softmax temperature (s, finite, > 0).
        alpha: strength of the regulariser pushing the label neuron early (finite, ≥ 0;
            0: none).
        tau1: its time constant (s, finite, > 0).
    """

    dt: float = 1e-3
    tau0: float = 2e-3
    tau1: float = 10e-3
    alpha: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "dt", check_dt(self.dt, "first_spike_ce: dt"))
        _positive(self, "tau0", "tau1")
        object.__setattr__(self, "alpha", check_real(self.alpha, "first_spike_ce: alpha", 0))

    def times(self, output: NetworkOutput) -> Tensor:
        """First-spike times ``[B, C]`` (exact on the event backend; no spike: ``T``)."""
        obs = self.observables(output)
        exact = getattr(obs, "times", None)
        if exact is not None:
            first = exact[..., 0] if exact.shape[-1] else exact.new_full(exact.shape[:-1], _INF)
            return torch.where(torch.isfinite(first), first,
                               torch.full_like(first, obs.duration))
        return first_spike_times(_require(obs, "spikes", "first_spike_ce"), self.dt)

    def logits(self, output: NetworkOutput) -> Tensor:
        return -self.times(output) / self.tau0

    def __call__(self, output: NetworkOutput, target: Tensor) -> Tensor:
        times = self.times(output)
        logits = -times / self.tau0
        target = self._target(logits, target)
        loss = F.cross_entropy(logits, target)
        if self.alpha:
            t_label = times.gather(1, target[:, None]).squeeze(1)
            loss = loss + self.alpha * (torch.exp(t_label / self.tau1) - 1).mean()
        return loss


@LOSSES.register("spike_count_ce")
@dataclass(frozen=True)
class SpikeCountCE(Loss):
    """Cross-entropy on spike counts divided by ``scale`` (a finite number > 0)."""

    scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "scale")

    def logits(self, output: NetworkOutput) -> Tensor:
        obs = self.observables(output)
        _require(obs, "spikes", "spike_count_ce")
        return spike_counts(obs) / self.scale  # (spike times on the event backend)


@LOSSES.register("exp_membrane_ce")
@dataclass(frozen=True)
class ExpMembraneCE(Loss):
    r"""Loss shaping (Nowotny et al. 2022): cross-entropy on the exponentially weighted
    membrane integral of the readout,

    .. math:: \ell_c = \frac{1}{s\,T} \int_0^T e^{-t/τ_w} V_c(t)\,dt ,

    exact (closed form) on the event backend, the rectangle rule
    :math:`\sum_k dt\,e^{-(k+1)dt/τ_w} v_k` on the grid elsewhere (the two agree as
    ``dt → 0``).

    Args:
        tau: weighting time constant ``τ_w`` (s, finite, > 0); early membrane counts more.
        scale: ``s``, divides the logits (finite, > 0).
        dt: grid step (s) of the dense membrane (finite, > 0).
    """

    tau: float = 20e-3
    scale: float = 1.0
    dt: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "tau", "scale")
        object.__setattr__(self, "dt", check_dt(self.dt, "exp_membrane_ce: dt"))

    def logits(self, output: NetworkOutput) -> Tensor:
        obs = self.observables(output)
        if getattr(obs, "readout", None) is not None:  # event backend: closed form
            return obs.exp_integral(self.tau) / (self.scale * obs.duration)
        v = _require(obs, "v", "exp_membrane_ce")
        steps = v.shape[0]
        t = torch.arange(1, steps + 1, dtype=v.dtype, device=v.device) * self.dt
        weight = torch.exp(-t / self.tau) * self.dt
        return (weight[:, None, None] * v).sum(0) / (self.scale * steps * self.dt)


def spike_counts(obs: Observables) -> Tensor:
    r"""Spikes per sample and neuron ``[B, N]``.

    Grid spikes: :math:`\sum_t z_t` (surrogate gradient). Exact spike times (event backend):
    the count, with the gradient :math:`\partial n/\partial t_k = -1/T` (a spike that moves
    later is counted as a fraction of a spike less; straight-through, value exact).

    Raises:
        ArgumentTypeError: ``obs`` is not :class:`Observables`. ConfigError: it does not spike.
    """
    check_type(obs, "spike_counts: obs", Observables, "the Observables of one population")
    exact = getattr(obs, "times", None)
    if exact is not None:
        finite = torch.isfinite(exact)
        t = torch.where(finite, exact, torch.zeros_like(exact))
        surrogate = -(t - t.detach()) / obs.duration
        return finite.to(exact.dtype).sum(-1) + surrogate.sum(-1)
    if obs.spikes is None:
        raise ConfigError("spike counts need a spiking population")
    return obs.spikes.sum(0)


@dataclass(frozen=True)
class FiringRateRegularizer:
    """Penalty on per-neuron mean firing rates (Hz) outside ``[low, high]``.

    The spike-count regulariser: :math:`r = \bar n / T` with :math:`\bar n` the batch mean
    of :func:`spike_counts` (exact counts with a straight-through spike-time gradient on the
    event backend; surrogate-differentiable grid counts elsewhere). ``low = high`` gives the
    target-count penalty :math:`λ (\bar n/T - r^*)^2`.

    Args:
        populations: names of the populations to regularise (a non-empty list of distinct
            names; a single string is refused, not read letter by letter).
        dt: time step (s, finite, > 0), to turn counts into rates.
        low: lower end of the allowed band of rates (Hz, finite, ≥ 0).
        high: upper end of the allowed band of rates (Hz, ``≥ low``; ``inf``: no upper end).
        strength: ``λ`` (finite, ≥ 0; 0 switches the penalty off).

    Raises:
        ArgumentTypeError, ParameterError, TimeStepError: a parameter of the wrong type or out
            of range (on construction). UnknownNameError: a population the output lacks (on
            call).
    """

    populations: Sequence[str]
    dt: float = 1e-3
    low: float = 0.0
    high: float = 100.0
    strength: float = 1e-3

    def __post_init__(self) -> None:
        who = "firing-rate regulariser"
        names = check_names(self.populations, f"{who}: populations")
        if not names:
            raise ParameterError(f"{who}: populations must name at least one population, "
                                 f"got {show(self.populations)}")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ParameterError(f"{who}: populations must be distinct, got {twice[0]!r} twice")
        object.__setattr__(self, "populations", names)
        object.__setattr__(self, "dt", check_dt(self.dt, f"{who}: dt"))
        low = check_real(self.low, f"{who}: low (Hz)", 0)
        high = check_real(self.high, f"{who}: high (Hz)", 0, finite=False)
        if high < low:
            raise ParameterError(f"{who}: the band of rates needs low ≤ high, got low = "
                                 f"{low:g} Hz > high = {high:g} Hz")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "strength", check_real(self.strength, f"{who}: strength", 0))

    def __call__(self, output: NetworkOutput) -> Tensor:
        total = torch.zeros(())
        for name in self.populations:
            obs = _population(output, name, "firing-rate regulariser")
            if getattr(obs, "times", None) is not None:  # event backend: exact counts
                rate = spike_counts(obs).mean(0) / obs.duration
            elif obs.spikes is None:
                raise ConfigError(f"firing-rate regulariser: population {name!r} does not spike")
            else:
                if obs.spikes.shape[1] == 0:
                    raise ShapeError(f"firing-rate regulariser: population {name!r}: the batch "
                                     f"is empty (a mean rate over no samples is undefined)")
                rate = obs.spikes.mean(dim=(0, 1)) / self.dt
            penalty = F.relu(rate - self.high) ** 2 + F.relu(self.low - rate) ** 2
            total = total + penalty.mean()
        return self.strength * total


def make_loss(spec: str | Mapping[str, Any], dt: float | None = None) -> Loss:
    """Build a loss from a registered name or ``{"name": ..., param: value}``.

    ``dt`` (the simulation step) is passed to losses that take one unless the spec sets it.

    Raises:
        ArgumentTypeError: ``spec`` is neither a name nor a mapping, or its name is not a str.
        UnknownNameError: no loss of that name is registered.
        ConfigError: the spec has no name, or names a parameter the loss does not take.
        ParameterError, TimeStepError: a parameter (or ``dt``) of the wrong type or range.
    """
    if dt is not None:
        dt = check_dt(dt, "make_loss: dt")
    return LOSSES.build(spec, **({"dt": dt} if dt is not None else {}))
