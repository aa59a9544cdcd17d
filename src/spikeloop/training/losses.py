r"""Losses and regularisers on network observables.

A loss is a small object with ``__call__(output, target) -> scalar`` and
``predict(output) -> class indices``, reading the observables of the network's readout (or of a
named population). Registered in :data:`LOSSES`; build one with :func:`make_loss`.

=====================  ========================================================================
``max_membrane_ce``    :math:`\mathrm{CE}(\mathrm{softmax}(\max_t v_{t}/τ_{s}), y)` on the readout
                       membrane (LI/CubaLI); prediction :math:`\arg\max_c \max_t v_{t,c}`.
``first_spike_ce``     :math:`\mathrm{CE}(\mathrm{softmax}(-t^{first}/τ_0), y) + α\,
                       (e^{t^{first}_y/τ_1} - 1)` (Göltz et al. 2021); prediction: earliest
                       spike. :math:`t^{first}_c = \sum_k t_k f_{k,c}
                       + T_{max}(1 - \sum_k f_{k,c})`,
                       with :math:`f_{k} = z_k \prod_{j<k}(1-z_j)` (differentiable through
                       the surrogate; no spike counts as :math:`T_{max}`).
``spike_count_ce``     :math:`\mathrm{CE}(\mathrm{softmax}(\sum_t z_t / s), y)`; prediction: most
                       spikes.
=====================  ========================================================================

:class:`FiringRateRegularizer` penalises mean rates outside ``[low, high]`` (Hz) per neuron:
:math:`λ \cdot \mathrm{mean}(\mathrm{relu}(r - high)^2 + \mathrm{relu}(low - r)^2)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from spikeloop.errors import ConfigError, ParameterError, ShapeError
from spikeloop.nn.observables import NetworkOutput, Observables
from spikeloop.registry import Registry

LOSSES: Registry[type[Loss]] = Registry("loss")


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
    """Cross-entropy on the max-over-time readout membrane, divided by ``scale``."""

    scale: float = 1.0

    def logits(self, output: NetworkOutput) -> Tensor:
        v = _require(self.observables(output), "v", "max_membrane_ce")
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
        """First-spike times ``[B, C]``."""
        return first_spike_times(_require(self.observables(output), "spikes", "first_spike_ce"),
                                 self.dt)

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


@dataclass(frozen=True)
class FiringRateRegularizer:
    """Penalty on per-neuron mean firing rates (Hz) outside ``[low, high]``.

    Args:
        populations: names of the populations to regularise.
        dt: time step (s), to turn counts into rates.
        low, high: allowed band of rates (Hz).
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
            spikes = output[name].spikes
            if spikes is None:
                raise ConfigError(f"firing-rate regulariser: population {name!r} does not spike")
            rate = spikes.mean(dim=(0, 1)) / self.dt
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
