"""Encoders mapping real-valued features to spike rasters.

All encoders return time-major float tensors ``[T, B, ...]`` holding 0/1 spikes (``delta``:
−1/0/+1 events; ``rate`` in Poisson mode: non-negative integer counts). Times are in seconds
and the step ``dt`` is explicit; a window of ``duration`` seconds has
``T = round(duration / dt)`` steps, step ``k`` covering the time ``k·dt``. A spike time ``t``
is placed on step ``round(t / dt)`` (ties round half to even, as ``torch.round``).

Encoders are registered in :data:`ENCODERS`; :func:`make_encoder` binds parameters by name
(e.g. from a config file) and returns a one-argument callable.

Input rule: the features (``signal`` for :func:`delta`) are a ``torch.Tensor`` or a NumPy
array; a floating-point one keeps its dtype (the spikes have it too), an integer or bool one is
cast to torch's default float dtype (lossless for the values an encoder accepts). A list, a
string or a complex tensor is refused (:class:`ArgumentTypeError` / :class:`DTypeError`).

Invalid input is never clipped: wrong rank → :class:`ShapeError`, NaN/inf →
:class:`NonFiniteError`, values or parameters outside their range → :class:`ParameterError`
(a parameter of the wrong type → :class:`ArgumentTypeError`, an invalid ``dt`` →
:class:`TimeStepError`). :func:`make_encoder` checks the parameters when it binds them.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spikeloop.checks import (
    check_bool,
    check_choice,
    check_dense,
    check_dt,
    check_real,
    check_type,
    require_finite,
)
from spikeloop.errors import ConfigError, DeviceError, DTypeError, ParameterError, ShapeError
from spikeloop.registry import Registry

__all__ = ["ENCODERS", "delta", "direct", "integrate", "latency", "log_latency", "make_encoder",
           "rate"]

Encoder = Callable[..., Tensor]

ENCODERS: Registry[Encoder] = Registry("encoder")
"""Encoder functions by name: ``latency``, ``log_latency``, ``rate``, ``direct``, ``integrate``,
``delta``."""


# --------------------------------------------------------------------------- validation helpers


def _as_float_tensor(x: Any, who: str) -> Tensor:
    """``x`` (a tensor or NumPy array of real numbers) as a floating-point tensor (see the
    input rule in the module docstring)."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise DTypeError(f"{who} must hold real numbers, got a NumPy array of {x.dtype}")
        x = torch.from_numpy(np.ascontiguousarray(x))
    check_type(x, who, Tensor, "a torch.Tensor or a NumPy array")
    check_dense(x, who)
    if x.is_complex():
        raise DTypeError(f"{who} must hold real numbers, got {x.dtype}")
    return x if x.is_floating_point() else x.to(torch.get_default_dtype())


def _features(x: Any) -> Tensor:
    """Validate features ``[B, F]`` or ``[B, *shape]`` (an image ``[B, C, H, W]``) with values
    in ``[0, 1]``; return a float tensor."""
    t = _as_float_tensor(x, "x")
    if t.dim() < 2:
        raise ShapeError(
            f"x must have rank ≥ 2 [B, F] or [B, *shape] (batch first), got rank {t.dim()} "
            f"with shape {tuple(t.shape)}"
        )
    require_finite(t, "x")
    if t.numel() and (bool((t < 0).any()) or bool((t > 1).any())):
        raise ParameterError(
            f"x must lie in [0, 1]; found values in [{float(t.min()):.6g}, "
            f"{float(t.max()):.6g}] (normalise the features first)"
        )
    return t


def _positive(name: str, value: Any) -> float:
    return check_real(value, name, 0, low_open=True)


def _steps(dt: Any, duration: Any) -> tuple[float, float, int]:
    """Validate ``dt``/``duration`` and return ``(dt, duration, T)``, ``T = round(duration/dt)``."""
    dt_ = check_dt(dt)
    dur = _positive("duration", duration)
    if not math.isfinite(dur / dt_):
        raise ParameterError(f"duration / dt = {dur} s / {dt_} s is not a finite number of steps")
    n_steps = round(dur / dt_)
    if n_steps < 1:
        raise ParameterError(
            f"duration = {dur} s is shorter than one step dt = {dt_} s (T = round(duration/dt) "
            "must be >= 1)"
        )
    return dt_, dur, n_steps


def _step_of(name: str, t: float, dt: float, n_steps: int, duration: float) -> int:
    """Step index ``round(t/dt)`` of a fixed spike time, which must fall inside the window."""
    if t < 0:
        raise ParameterError(f"{name} must be >= 0 s, got {t}")
    k = round(t / dt)
    if k > n_steps - 1:
        raise ParameterError(
            f"{name} = {t} s falls on step {k} but the window has only T = {n_steps} steps "
            f"(0..{n_steps - 1}, duration = {duration} s, dt = {dt} s); the duration must be "
            f"longer than every spike time"
        )
    return k


def _raster(index: Tensor, valid: Tensor, n_steps: int, dtype: torch.dtype) -> Tensor:
    """One spike per entry of ``index`` ``[B, F]`` (where ``valid``) → raster ``[T, B, F]``."""
    out = torch.zeros((n_steps, *index.shape), dtype=dtype, device=index.device)
    safe = torch.where(valid, index, torch.zeros_like(index))
    out.scatter_(0, safe.unsqueeze(0), valid.to(dtype).unsqueeze(0))
    return out


# --------------------------------------------------------------------------------- encoders


@ENCODERS.register("latency")
def latency(
    x: Tensor,
    *,
    dt: float,
    duration: float,
    t_early: float,
    t_late: float,
    bias_time: float | None = None,
) -> Tensor:
    """Linear time-to-first-spike encoding: one spike per feature.

    Feature ``x_i ∈ [0, 1]`` spikes once at

        t_i = t_early + x_i · (t_late − t_early),      step k_i = round(t_i / dt),

    in a window of ``T = round(duration / dt)`` steps. ``t_late < t_early`` is allowed (larger
    values then spike earlier). If ``bias_time`` is given, a bias channel spiking once at
    ``round(bias_time / dt)`` is appended for every sample (the Yin-Yang SNN encoding: 4
    features + bias = 5 inputs).

    Args:
        x: features ``[B, F]`` or ``[B, *shape]`` in ``[0, 1]``.
        dt: step in s (> 0).
        duration: window length in s; every spike time must fall on a step ``< T``.
        t_early: spike time of ``x = 0`` in s (>= 0).
        t_late: spike time of ``x = 1`` in s (>= 0).
        bias_time: optional spike time in s of the appended bias channel.

    Returns:
        spikes ``[T, B, F]`` (``[T, B, F + 1]`` with a bias channel), float 0/1, dtype of ``x``.

    Raises:
        ShapeError: ``x`` is not rank 2. NonFiniteError: ``x`` holds NaN/inf.
        ParameterError: ``x`` outside ``[0, 1]``, ``dt``/``duration`` not positive, a spike
            time negative or not inside the window.
    """
    x = _features(x)
    dt, duration, n_steps = _steps(dt, duration)
    t_early = check_real(t_early, "t_early")
    t_late = check_real(t_late, "t_late")
    _step_of("t_early", t_early, dt, n_steps, duration)
    _step_of("t_late", t_late, dt, n_steps, duration)
    times = t_early + x.to(torch.float64) * (t_late - t_early)
    index = torch.round(times / dt).to(torch.long)
    if index.numel() and int(index.max()) > n_steps - 1:  # only via rounding at the boundary
        raise ParameterError(
            f"a spike falls on step {int(index.max())} but the window has T = {n_steps} steps"
        )
    spikes = _raster(index, torch.ones_like(index, dtype=torch.bool), n_steps, x.dtype)
    if bias_time is not None:
        if x.dim() != 2:
            raise ShapeError(f"latency: bias_time adds a bias channel to features [B, F]; "
                             f"x has shape {tuple(x.shape)} (flatten it, or leave bias_time "
                             f"out)")
        k = _step_of("bias_time", check_real(bias_time, "bias_time"), dt, n_steps, duration)
        bias = torch.zeros((n_steps, x.shape[0], 1), dtype=x.dtype, device=x.device)
        bias[k] = 1.0
        spikes = torch.cat([spikes, bias], dim=2)
    return spikes


@ENCODERS.register("log_latency")
def log_latency(x: Tensor, *, dt: float, duration: float, tau: float, threshold: float) -> Tensor:
    """Logarithmic time-to-first-spike of an RC membrane driven by a constant input.

    The membrane ``tau · dV/dt = −V + x``, ``V(0) = 0`` gives ``V(t) = x (1 − e^{−t/tau})``,
    which reaches ``threshold`` θ at

        t = tau · ln(x / (x − θ))    for x > θ,

    and never for ``x ≤ θ``. The spike goes on step ``round(t / dt)``; as ``t → ∞`` for
    ``x → θ⁺``, a spike whose step is ``>= T = round(duration / dt)`` lies after the window and
    is not emitted (exactly like ``x ≤ θ``). At most one spike per feature; ``x = 1`` spikes
    first, at ``tau · ln(1 / (1 − θ))``.

    Args:
        x: features ``[B, F]`` or ``[B, *shape]`` in ``[0, 1]`` (normalise them first).
        dt: step in s (> 0).
        duration: window length in s (> 0).
        tau: membrane time constant in s (> 0).
        threshold: firing threshold θ in the units of ``x``, ``0 < θ < 1``.

    Returns:
        spikes ``[T, B, F]``, float 0/1, dtype of ``x``.

    Raises:
        ShapeError, NonFiniteError, ParameterError: as :func:`latency`; also ``tau <= 0`` or
            ``threshold`` outside ``(0, 1)``.
    """
    x = _features(x)
    dt, duration, n_steps = _steps(dt, duration)
    tau = _positive("tau", tau)
    theta = check_real(threshold, "threshold")
    if not 0 < theta < 1:
        raise ParameterError(
            f"threshold must lie in (0, 1) for inputs in [0, 1], got {theta} "
            "(>= 1 would never fire, <= 0 would fire every input at t = 0)"
        )
    x64 = x.to(torch.float64)
    fires = x64 > theta
    safe_x = torch.where(fires, x64, torch.ones_like(x64))
    times = tau * torch.log(safe_x / (safe_x - theta))
    index = torch.round(times / dt).to(torch.long)
    valid = fires & (index < n_steps)
    return _raster(index, valid, n_steps, x.dtype)


@ENCODERS.register("rate")
def rate(
    x: Tensor,
    *,
    dt: float,
    duration: float,
    max_rate: float,
    mode: str = "bernoulli",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Stochastic rate coding at ``r = x · max_rate`` (Hz).

    * ``mode="bernoulli"``: each step independently holds a spike with probability
      ``p = x · max_rate · dt``; requires ``max_rate · dt <= 1``.
    * ``mode="poisson"``: each step holds a count ``n ~ Poisson(x · max_rate · dt)``
      (float tensor of non-negative integers); no limit on ``max_rate · dt``.

    Both have mean ``x · max_rate · dt`` spikes per step. The output is a deterministic
    function of the state of ``generator`` (a seeded ``torch.Generator`` on ``x``'s device).

    Args:
        x: features ``[B, F]`` or ``[B, *shape]`` in ``[0, 1]``.
        dt: step in s (> 0).
        duration: window length in s (> 0), ``T = round(duration / dt)``.
        max_rate: rate in Hz of ``x = 1`` (>= 0).
        mode: ``"bernoulli"`` or ``"poisson"``.
        generator: random generator; ``None`` uses torch's global one.

    Returns:
        ``[T, B, F]`` float spikes (bernoulli, 0/1) or counts (poisson), dtype of ``x``.

    Raises:
        ShapeError, NonFiniteError: as :func:`latency`. ParameterError: ``x`` outside
            ``[0, 1]``, ``max_rate < 0``, ``max_rate · dt > 1`` in bernoulli mode, unknown mode.
    """
    x = _features(x)
    dt, _, n_steps = _steps(dt, duration)
    max_rate = check_real(max_rate, "max_rate (Hz)", 0)
    check_choice(mode, "mode", ("bernoulli", "poisson"))
    if generator is not None:
        check_type(generator, "generator", torch.Generator, "a torch.Generator or None")
        if generator.device.type != x.device.type:
            raise DeviceError(f"generator is on {generator.device}, x on {x.device}")
    if mode == "bernoulli" and max_rate * dt > 1:
        raise ParameterError(
            f"spike probability per step p = max_rate·dt = {max_rate}·{dt} = "
            f"{max_rate * dt:.6g} exceeds the limit 1; lower max_rate or dt "
            "(or use mode='poisson')"
        )
    shape = (n_steps, *x.shape)
    p = (x * (max_rate * dt)).unsqueeze(0).expand(shape)
    if mode == "bernoulli":
        u = torch.rand(shape, generator=generator, dtype=x.dtype, device=x.device)
        return (u < p).to(x.dtype)
    return torch.poisson(p.contiguous(), generator=generator)


@ENCODERS.register("direct")
def direct(x: Tensor, *, dt: float, duration: float, gain: float = 1.0) -> Tensor:
    """Direct (current) coding: the features themselves, ``gain · x``, as the input of every
    step — no spikes; the first layer's neurons turn the constant current into spikes (the
    usual input of convolutional SNNs on images).

    ``out[t, b, ...] = gain · x[b, ...]`` for ``t = 0 … T − 1``, ``T = round(duration / dt)``.
    The result is a view that repeats ``x`` over time (no copy: an encoded split of ``N``
    images costs the memory of ``N`` images, whatever ``T``).

    Args:
        x: features ``[B, F]`` or ``[B, *shape]`` (e.g. images ``[B, 1, 28, 28]``) in
            ``[0, 1]``.
        dt: step in s (> 0).
        duration: window length in s (> 0).
        gain: factor of the current (finite, > 0).

    Returns:
        ``[T, B, ...]``, dtype of ``x``.

    Example:
        >>> direct(torch.full((2, 3), 0.5), dt=1e-3, duration=4e-3).shape
        torch.Size([4, 2, 3])

    Raises:
        ShapeError, NonFiniteError: as :func:`latency`. ParameterError: ``x`` outside
            ``[0, 1]``, ``gain ≤ 0``.
    """
    x = _features(x)
    _, _, n_steps = _steps(dt, duration)
    gain = _positive("gain", gain)
    current = x if gain == 1.0 else x * gain
    return current.unsqueeze(0).expand(n_steps, *x.shape)


@ENCODERS.register("integrate")
def integrate(x: Tensor, *, dt: float, duration: float, gain: float = 1.0) -> Tensor:
    r"""Deterministic rate coding by integrate-and-fire input neurons (no leak, threshold 1,
    reset by subtraction) driven by the constant current ``gain · x``: the input layer of
    desire backpropagation's code (Gerlinghoff et al., arXiv:2211.05412) and of ANN-to-SNN
    conversion.

    Neuron ``i`` has integrated :math:`(k + 1)\,g x_i` by the end of step ``k`` and fired one
    spike per whole unit of it, so in closed form

    .. math::
        s_k = \lfloor (k + 1)\, g x \rfloor - \lfloor k\, g x \rfloor

    (a charge within :math:`10^{-9}` of a whole unit counts as having reached it: a regular
    train of :math:`T g x` spikes up to rounding, the first at step
    :math:`\lceil 1/(g x) \rceil - 1`; ``0/1`` spikes when :math:`g x ≤ 1`, counts above).

    Args:
        x: features ``[B, F]`` or ``[B, *shape]`` in ``[0, 1]``.
        dt: step in s (> 0).
        duration: window length in s (> 0), ``T = round(duration / dt)``.
        gain: spikes per step of ``x = 1`` (finite, > 0).

    Returns:
        ``[T, B, ...]`` spikes (counts where ``gain · x > 1``), dtype of ``x``.

    Example:
        >>> integrate(torch.tensor([[0.5, 1.0, 0.0]]), dt=1e-3, duration=4e-3)[:, 0]
        tensor([[0., 1., 0.],
                [1., 1., 0.],
                [0., 1., 0.],
                [1., 1., 0.]])

    Raises:
        ShapeError, NonFiniteError: as :func:`latency`. ParameterError: ``x`` outside
            ``[0, 1]``, ``gain ≤ 0``.
    """
    x = _features(x)
    _, _, n_steps = _steps(dt, duration)
    gain = _positive("gain", gain)
    drive = gain * x.to(torch.float64)
    out = torch.empty((n_steps, *x.shape), dtype=x.dtype, device=x.device)
    # spikes fired by the end of each step; a charge within 1e-9 of a whole unit has reached it
    # (k·(g x) may round just below an integer that the neurons' running sum would reach).
    # Step by step: one float64 copy of x at a time, not [T, *x.shape] of them
    before = torch.zeros_like(drive)
    for k in range(n_steps):
        fired = torch.floor(drive * (k + 1) + 1e-9)
        out[k] = fired - before
        before = fired
    return out


@ENCODERS.register("delta")
def delta(signal: Tensor, *, threshold: float, split: bool = False) -> Tensor:
    """Ternary delta modulation of a time series (send-on-delta / sigma-delta style).

    Each channel keeps a reference level ``ref``, starting at ``ref_0 = s_0`` (step 0 never
    emits). At each step ``t >= 1``, with ``e_t = s_t − ref_{t−1}`` and θ = ``threshold``::

        out_t = +1, ref_t = ref_{t−1} + θ    if e_t >= θ
        out_t = −1, ref_t = ref_{t−1} − θ    if e_t <= −θ
        out_t =  0, ref_t = ref_{t−1}        otherwise

    **Multiple crossings in one step**: at most one event per channel and step is emitted and
    the reference moves by exactly one θ; the rest of the error carries over, so a jump of
    ``n·θ`` produces ``n`` events on ``n`` consecutive steps (the classic delta-modulation
    slope overload). This keeps the output strictly ternary and keeps a receiver in sync: the
    reference is always recoverable from the events,

        ref_t = s_0 + θ · Σ_{τ<=t} out_τ,

    and ``|s_t − ref_t| < θ`` whenever the signal moves by at most θ per step.

    Args:
        signal: ``[T, B, C]`` real-valued time series.
        threshold: θ (> 0), in the units of the signal.
        split: if True return ``[T, B, 2C]`` 0/1 spikes, the ``C`` "up" (+1) channels first,
            then the ``C`` "down" (−1) channels.

    Returns:
        ``[T, B, C]`` events in {−1, 0, +1}, or ``[T, B, 2C]`` 0/1 with ``split``.

    Raises:
        ShapeError: ``signal`` is not rank 3. NonFiniteError: NaN/inf in ``signal``.
        ParameterError: ``threshold`` not positive and finite.
    """
    s = _as_float_tensor(signal, "signal")
    if s.dim() != 3:
        raise ShapeError(
            f"signal must have rank 3 [T, B, C] (time, batch, channels), got rank {s.dim()} "
            f"with shape {tuple(s.shape)}"
        )
    require_finite(s, "signal")
    theta = _positive("threshold", threshold)
    split = check_bool(split, "split")
    out = torch.zeros_like(s)
    if s.shape[0] > 0:
        base = s[0]
        count = torch.zeros_like(base)  # integer-valued: ref = base + count·θ, no drift
        for t in range(1, s.shape[0]):
            err = s[t] - (base + count * theta)
            step = (err >= theta).to(s.dtype) - (err <= -theta).to(s.dtype)
            out[t] = step
            count = count + step
    if split:
        return torch.cat([(out > 0).to(s.dtype), (out < 0).to(s.dtype)], dim=2)
    return out


# ----------------------------------------------------------------------------------- factory


def make_encoder(name: str, **params: Any) -> Callable[[Tensor], Tensor]:
    """Return the encoder ``name`` with its keyword parameters bound: ``enc(x) -> spikes``.

    Example:
        >>> enc = make_encoder("latency", dt=1e-4, duration=0.05, t_early=0.0, t_late=0.04)

    The parameters are checked here, by encoding an empty batch (which draws no random
    numbers), so a bad one fails when the encoder is made rather than at its first use.

    Raises:
        ArgumentTypeError: ``name`` is not a str.
        UnknownNameError: ``name`` is not registered (the message lists the known encoders).
        ConfigError: a parameter is unknown or a required one is missing (the message names it
            and lists the accepted parameters).
        ParameterError, TimeStepError: a parameter of the wrong type or out of range (as the
            encoder itself raises them).
    """
    check_type(name, "encoder name", str, "a str")
    fn = ENCODERS.get(name)
    sig = inspect.signature(fn)
    kw = {n: p for n, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    accepted = ", ".join(kw) or "none"
    unknown = sorted(set(params) - set(kw))
    if unknown:
        raise ConfigError(
            f"unknown parameter(s) {', '.join(unknown)} for encoder {name!r}; accepted: {accepted}"
        )
    missing = [n for n, p in kw.items() if p.default is inspect.Parameter.empty and n not in params]
    if missing:
        raise ConfigError(
            f"missing parameter(s) {', '.join(missing)} for encoder {name!r}; accepted: {accepted}"
        )
    encoder = functools.partial(fn, **params)
    if name in _INPUT_RANK:  # an empty batch on the generator's device checks the parameters
        g = params.get("generator")
        device = g.device if isinstance(g, torch.Generator) else None
        encoder(torch.zeros((1,) * (_INPUT_RANK[name] - 2) + (0, 1), device=device))
    return encoder


_INPUT_RANK = {"latency": 2, "log_latency": 2, "rate": 2, "delta": 3}
"""Rank of the input of the built-in encoders (for :func:`make_encoder`'s check)."""
