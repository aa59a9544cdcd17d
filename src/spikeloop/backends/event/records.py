"""Public records of the event backend: input events and exact observables."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from spikeloop.backends.event.cuba import _INF
from spikeloop.backends.event.forward import _dense_events
from spikeloop.errors import DTypeError, NonFiniteError, ParameterError, ShapeError
from spikeloop.observables import Observables

if TYPE_CHECKING:
    from spikeloop.backends.event.readout import _Readout


@dataclass(frozen=True)
class SpikeEvents:
    """Input spikes as an explicit event list (e.g. a latency code with exact times).

    Attributes:
        times: ``[B, E]`` event times (s), sorted ascending within each row; padding entries
            (``channels == -1``) must come last (their times are ignored).
        channels: ``[B, E]`` integer input channel of each event, ``-1`` for padding.
        duration: window length (s); every event must lie in ``[0, duration)``.
        values: optional ``[B, E]`` amplitudes (default 1): the jump is ``value · W``.
    """

    times: Tensor
    channels: Tensor
    duration: float
    values: Tensor | None = None

    def __post_init__(self) -> None:
        t, c = self.times, self.channels
        if not isinstance(t, Tensor) or not isinstance(c, Tensor):
            raise ShapeError("SpikeEvents: times and channels must be torch tensors")
        if t.dim() != 2 or tuple(c.shape) != tuple(t.shape):
            raise ShapeError(f"SpikeEvents: times and channels must both be [B, E], got "
                             f"{tuple(t.shape)} and {tuple(c.shape)}")
        if not t.is_floating_point():
            raise DTypeError(f"SpikeEvents: times must be floating point, got {t.dtype}")
        if c.is_floating_point() or c.dtype == torch.bool:
            raise DTypeError(f"SpikeEvents: channels must be integers, got {c.dtype}")
        if self.values is not None and tuple(self.values.shape) != tuple(t.shape):
            raise ShapeError(f"SpikeEvents: values must be [B, E] = {tuple(t.shape)}, got "
                             f"{tuple(self.values.shape)}")
        d = self.duration
        if not (isinstance(d, int | float) and math.isfinite(d) and d > 0):
            raise ParameterError(f"SpikeEvents: duration must be a finite number > 0 s, got {d!r}")
        valid = c >= 0
        if bool((c < -1).any()):
            raise ParameterError("SpikeEvents: channels must be ≥ 0 (or -1 for padding), got "
                                 f"{int(c.min())}")
        vt = t.detach()[valid]
        if not bool(torch.isfinite(vt).all()):
            bad = int((~torch.isfinite(vt)).sum())
            raise NonFiniteError(f"SpikeEvents: {bad} event time(s) are NaN or infinite; all "
                                 "event times must be finite")
        if vt.numel() and (float(vt.min()) < 0 or float(vt.max()) >= d):
            raise ParameterError(f"SpikeEvents: event times must lie in [0, duration = {d} s), "
                                 f"got [{float(vt.min()):g}, {float(vt.max()):g}]")
        if self.values is not None and not bool(torch.isfinite(self.values[valid]).all()):
            raise NonFiniteError("SpikeEvents: values hold NaN or infinite entries")
        padded = torch.where(valid, t.detach(), torch.full_like(t, _INF))
        if t.shape[1] > 1:
            bad = padded[:, 1:] < padded[:, :-1]
            if bool(bad.any()):
                b, e = (int(i) for i in bad.nonzero()[0])
                raise ParameterError(
                    f"SpikeEvents: events must be sorted by time within each sample (padding "
                    f"last); sample {b}: event {e + 1} at t = {float(padded[b, e + 1]):g} s comes "
                    f"after t = {float(padded[b, e]):g} s")

    @property
    def batch(self) -> int:
        """Number of samples ``B``."""
        return int(self.times.shape[0])

    @staticmethod
    def from_dense(x: Tensor, dt: float) -> SpikeEvents:
        """Events of a dense ``[T, B, C]`` tensor: a non-zero ``x[k, b, c]`` is an event at
        ``t = k·dt`` on channel ``c`` with amplitude ``x[k, b, c]``."""
        times, src, amp = _dense_events(x, dt)
        channels = torch.where(torch.isfinite(times), src, torch.full_like(src, -1))
        return SpikeEvents(torch.where(torch.isfinite(times), times, torch.zeros_like(times)),
                           channels, x.shape[0] * dt, amp)

    def check_channels(self, channels: int) -> None:
        """Every event's channel exists among ``channels`` input channels (else
        :class:`~spikeloop.errors.ShapeError`, naming the channel and the limit)."""
        if self.channels.numel() and int(self.channels.max()) >= channels:
            raise ShapeError(f"SpikeEvents: channel {int(self.channels.max())} does not exist; "
                             f"the input has {channels} channels (0..{channels - 1})")

    def to_dense(self, dt: float, channels: int) -> Tensor:
        """``[T, B, channels]`` raster, event at ``t`` on step ``round(t/dt)`` (as the encoders),
        ``T = round(duration/dt)``; amplitudes add up."""
        steps = round(self.duration / dt)
        out = torch.zeros(steps, self.batch, channels, dtype=torch.get_default_dtype())
        valid = self.channels >= 0
        b = torch.arange(self.batch)[:, None].expand_as(self.channels)[valid]
        k = torch.round(self.times.detach()[valid].double() / dt).long().clamp(max=steps - 1)
        v = (self.values[valid] if self.values is not None
             else torch.ones(int(valid.sum()))).to(out.dtype)
        out.index_put_((k, b, self.channels[valid]), v, accumulate=True)
        return out


@dataclass
class EventObservables(Observables):
    """:class:`~spikeloop.observables.Observables` plus the event backend's exact quantities.

    Attributes:
        times: ``[B, N, K]`` exact spike times (s) of each neuron, ascending, ``+inf``
            padding; differentiable (EventProp). ``None`` for non-spiking readouts.
        v_max: ``[B, N]`` exact maximum of the membrane over ``[0, duration]``
            (readouts); differentiable.
        duration: the window length ``T·dt`` (s).
        readout: closed-form functionals of a non-spiking readout (see
            :meth:`exp_integral`).

    ``spikes`` (on the grid, step ``⌈t/dt⌉ − 1``) and ``v`` (the exact membrane sampled at the
    ends of the steps, ``(k+1)·dt``) carry no gradient: losses read ``times``/``v_max``.
    """

    times: Tensor | None = None
    v_max: Tensor | None = None
    duration: float = 0.0
    readout: _Readout | None = None

    def exp_integral(self, tau: float) -> Tensor:
        r""":math:`\int_0^{T} e^{-t/τ} V(t)\,dt` per sample and neuron ``[B, N]``, exact and
        differentiable (readouts only)."""
        if self.readout is None:
            raise ParameterError("exp_integral needs a non-spiking readout population")
        return self.readout.exp_integral(tau, self.duration)
