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
the rate regulariser exact spike counts. Spike counts are piecewise constant in the weights
(exact gradient 0), so on the event backend the regulariser passes its gradient to the spike
times as if each count fell by ``1/T`` per second of delay
(:math:`\partial n/\partial t_k := -1/T`; the spike-count regularisation of Nowotny et al.).

:class:`FiringRateRegularizer` penalises mean rates outside ``[low, high]`` (Hz) per neuron:
:math:`λ \cdot \mathrm{mean}(\mathrm{relu}(r - high)^2 + \mathrm{relu}(low - r)^2)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from spikeloop.errors import ConfigError, ParameterError, ShapeError
from spikeloop.observables import NetworkOutput, Observables
from spikeloop.registry import Registry

LOSSES: Registry[type[Loss]] = Registry("loss")
_INF = math.inf


@dataclass(frozen=True)
class Loss:
    """Base class. ``population``: which population to read (default: the readout)."""

    population: str | None = None

    def observables(self, output: NetworkOutput) -> Observables:
        """The observables this loss reads."""
        return output.output if self.population is None else output[self.population]

    def logits(self, output: NetworkOutput) -> Tensor:
        """Per-class scores ``[B, C]`` (higher = more likely)."""
        raise NotImplementedError

    def __call__(self, output: NetworkOutput, target: Tensor) -> Tensor:
        logits = self.logits(output)
        _check_target(logits, target)
        return F.cross_entropy(logits, target)

    def predict(self, output: NetworkOutput) -> Tensor:
        """Predicted class per sample ``[B]``."""
        return self.logits(output).argmax(-1)


def _check_target(logits: Tensor, target: Tensor) -> None:
    if target.dim() != 1 or target.shape[0] != logits.shape[0]:
        raise ShapeError(
            f"target must be class indices of shape [{logits.shape[0]}], got {tuple(target.shape)}"
        )
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= logits.shape[1]):
        raise ShapeError(
            f"target classes must lie in [0, {logits.shape[1] - 1}], got "
            f"[{int(target.min())}, {int(target.max())}]"
        )


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
        scale: logits are ``max_t v / scale``.
        bounds: ``(low, high)``: penalise membranes above ``high`` or below ``low`` (model
            units) at any time step, ``bounds_strength · (relu(max_t v − high)² +
            relu(low − min_t v)²)`` summed over classes, averaged over the batch (on the grid
            membrane ``v``, also on the event backend). ``None``: no penalty.
        bounds_strength: ``λ`` of that penalty.
    """

    scale: float = 1.0
    bounds: tuple[float, float] | None = None
    bounds_strength: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ParameterError(f"max_membrane_ce: scale must be > 0, got {self.scale}")
        if self.bounds is not None:
            try:
                low, high = (float(b) for b in self.bounds)
            except (TypeError, ValueError):
                raise ParameterError(f"max_membrane_ce: bounds must be [low, high], got "
                                     f"{self.bounds!r}") from None
            if not low < high:
                raise ParameterError(f"max_membrane_ce: bounds need low < high, got "
                                     f"{self.bounds!r}")
            object.__setattr__(self, "bounds", (low, high))
        if not self.bounds_strength >= 0:
            raise ParameterError(f"max_membrane_ce: bounds_strength must be ≥ 0, got "
                                 f"{self.bounds_strength}")

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


def first_spike_times(spikes: Tensor, dt: float) -> Tensor:
    """Differentiable first-spike times ``[B, C]`` (s) from spikes ``[T, B, C]``.

    Step ``k`` ends at ``(k+1)·dt``; a neuron that never spikes gets ``T·dt``.
    """
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
        dt: time step of the spikes (s).
        tau0: softmax temperature (s). alpha, tau1: regulariser pushing the label neuron early.
    """

    dt: float = 1e-3
    tau0: float = 2e-3
    tau1: float = 10e-3
    alpha: float = 0.0

    def __post_init__(self) -> None:
        for key in ("dt", "tau0", "tau1"):
            if not getattr(self, key) > 0:
                raise ParameterError(f"first_spike_ce: {key} must be > 0, got {getattr(self, key)}")

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
        _check_target(logits, target)
        loss = F.cross_entropy(logits, target)
        if self.alpha:
            t_label = times.gather(1, target[:, None]).squeeze(1)
            loss = loss + self.alpha * (torch.exp(t_label / self.tau1) - 1).mean()
        return loss


@LOSSES.register("spike_count_ce")
@dataclass(frozen=True)
class SpikeCountCE(Loss):
    """Cross-entropy on spike counts divided by ``scale``."""

    scale: float = 1.0

    def logits(self, output: NetworkOutput) -> Tensor:
        return _require(self.observables(output), "spikes", "spike_count_ce").sum(0) / self.scale


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
        tau: weighting time constant ``τ_w`` (s); early membrane counts more.
        scale: ``s``, divides the logits.
        dt: grid step (s) of the dense membrane.
    """

    tau: float = 20e-3
    scale: float = 1.0
    dt: float = 1e-3

    def __post_init__(self) -> None:
        for key in ("tau", "scale", "dt"):
            value = getattr(self, key)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ParameterError(f"exp_membrane_ce: {key} must be a finite number > 0, "
                                     f"got {value!r}")

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
    """
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
        populations: names of the populations to regularise.
        dt: time step (s), to turn counts into rates.
        low: lower end of the allowed band of rates (Hz).
        high: upper end of the allowed band of rates (Hz).
        strength: ``λ``.
    """

    populations: Sequence[str]
    dt: float = 1e-3
    low: float = 0.0
    high: float = 100.0
    strength: float = 1e-3

    def __call__(self, output: NetworkOutput) -> Tensor:
        total = torch.zeros(())
        for name in self.populations:
            obs = output[name]
            if getattr(obs, "times", None) is not None:  # event backend: exact counts
                rate = spike_counts(obs).mean(0) / obs.duration
            elif obs.spikes is None:
                raise ConfigError(f"firing-rate regulariser: population {name!r} does not spike")
            else:
                rate = obs.spikes.mean(dim=(0, 1)) / self.dt
            penalty = F.relu(rate - self.high) ** 2 + F.relu(self.low - rate) ** 2
            total = total + penalty.mean()
        return self.strength * total


def make_loss(spec: str | dict[str, Any], dt: float | None = None) -> Loss:
    """Build a loss from a registered name or ``{"name": ..., param: value}``.

    ``dt`` (the simulation step) is passed to losses that take one unless the spec sets it.
    """
    name = spec if isinstance(spec, str) else spec.get("name", "")
    takes_dt = name in LOSSES and "dt" in {f.name for f in fields(LOSSES.get(name))}
    return LOSSES.build(spec, **({"dt": dt} if takes_dt and dt is not None else {}))
