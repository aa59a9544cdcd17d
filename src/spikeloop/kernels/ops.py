"""Functional forms of the stateless and stateful non-neuron layers on time-major tensors
``[T, B, ...]``: the one implementation that the ``spikeloop.nn`` layers call in ``forward``
and that the simulator backend calls for the IR's projection and reshape nodes.

Time is folded into the batch axis wherever a step does not depend on the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from spikeloop.checks import require_finite
from spikeloop.dynamics.surrogate import Surrogate, spike
from spikeloop.errors import ParameterError, ShapeError
from spikeloop.kernels.fused import event_delay_axon, event_delay_synapse, event_linear


def fold(x: Tensor, rank: int, who: str) -> tuple[Tensor, tuple[int, int]]:
    """``[T, B, ...]`` of rank ``rank`` → ``[T·B, ...]`` and ``(T, B)``."""
    if x.dim() != rank:
        raise ShapeError(f"{who}: expected a time-major tensor of rank {rank}, got shape "
                         f"{tuple(x.shape)}")
    t, b = x.shape[:2]
    return x.reshape(t * b, *x.shape[2:]), (t, b)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``y_k = W x_k (+ b)`` for every step; ``W`` is ``[out, in]``."""
    if x.shape[-1] != weight.shape[1]:
        raise ShapeError(f"Linear: expected {weight.shape[1]} input features in the last "
                         f"dimension, got shape {tuple(x.shape)}")
    return F.linear(x, weight, bias)


def conv(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: Sequence[int], padding: object,
    dilation: Sequence[int], groups: int, padding_mode: str = "zeros",
    pad: Sequence[int] = (),
) -> Tensor:
    """``y_k = conv(x_k, W) (+ b)`` for every step; the spatial rank follows ``weight``.

    ``padding_mode`` other than ``"zeros"`` pads with ``F.pad(x, pad, mode)`` first (``pad``:
    torch's ``_reversed_padding_repeated_twice``), as ``torch.nn.ConvNd`` does.
    """
    spatial = weight.dim() - 2
    layout = "[T, B, C" + ", L" * (spatial == 1) + ", H, W" * (spatial == 2) + "]"
    folded, (t, b) = fold(x, 3 + spatial, f"Conv{spatial}d {layout}")
    fn = F.conv1d if spatial == 1 else F.conv2d
    if padding_mode != "zeros":
        folded, padding = F.pad(folded, list(pad), mode=padding_mode), 0
    y = fn(folded, weight, bias, stride, padding, dilation, groups)
    return y.reshape(t, b, *y.shape[1:])


def flatten(x: Tensor) -> Tensor:
    """Flatten all dimensions after ``[T, B]``."""
    if x.dim() < 3:
        raise ShapeError(f"Flatten: expected [T, B, ...] of rank ≥ 3, got {tuple(x.shape)}")
    return x.flatten(2)


def scale(x: Tensor, s: Tensor) -> Tensor:
    """Element-wise gain ``y_k = s ⊙ x_k``; ``s`` has the per-sample shape."""
    if tuple(x.shape[2:]) != tuple(s.shape):
        raise ShapeError(f"Scale: expected [T, B, {', '.join(map(str, s.shape))}], "
                         f"got {tuple(x.shape)}")
    return x * s


def pool2d(
    x: Tensor, kind: str, kernel_size: tuple[int, int], stride: tuple[int, int],
    padding: tuple[int, int],
) -> Tensor:
    """Sum (``kind="sum"``) or mean (``"avg"``, padded zeros counted) over each window of
    ``[T, B, C, H, W]``, one step at a time."""
    folded, (t, b) = fold(x, 5, f"{kind.capitalize()}Pool2d [T, B, C, H, W]")
    y = F.avg_pool2d(folded, kernel_size, stride, padding,
                     divisor_override=1 if kind == "sum" else None)
    return y.reshape(t, b, *y.shape[1:])


def threshold(x: Tensor, theta: Tensor, surrogate: Surrogate) -> Tensor:
    """Heaviside ``z_k = H(x_k − ϑ)`` with a surrogate derivative."""
    return spike(x - theta, surrogate)


def delay(
    x: Tensor, steps: Tensor, state: Tensor | None = None, max_steps: int | None = None
) -> tuple[Tensor, Tensor]:
    """``y_k = x_{k−d}`` with whole-step delays ``d`` (a scalar or per-element integers).

    ``state`` holds the last ``D = max(d)`` inputs of the previous call, ``[D, B, ...]``
    (``None``: zeros), so consecutive windows give the same result as one run. ``max_steps``:
    ``max(d)`` if known (saves a device synchronisation per call). Returns ``(y, state)``.

    Raises:
        ShapeError: ``state`` is not ``[D, B, ...]`` for this input.
    """
    d = max_steps if max_steps is not None else (int(steps.max()) if steps.numel() else 0)
    buf = _delay_line(x, state, d, "Delay")
    return _tap(buf, d, x.shape[0], steps), buf[buf.shape[0] - d:]


def _delay_line(x: Tensor, state: Tensor | None, d: int, who: str) -> Tensor:
    """The previous call's last ``d`` inputs followed by ``x``: ``buf[d + k − m] = x_{k−m}``.

    Raises:
        ShapeError: ``state`` is not ``[d, B, ...]`` for ``x [T, B, ...]``.
    """
    want = (d, *x.shape[1:])
    if state is None:
        return torch.cat([x.new_zeros(want), x])
    if tuple(state.shape) != want:
        raise ShapeError(f"{who}: the delay-line state must have shape (D, B, ...) = {want} "
                         f"(the last D = {d} inputs of the previous call), got "
                         f"{tuple(state.shape)}")
    return torch.cat([state, x])


def _delay_line_tail(x: Tensor, state: Tensor | None, d: int) -> Tensor:
    """The last ``d`` entries of the delay line ``[state; x]`` (the next call's state), a new
    tensor (not a view of ``x``), without writing the line out."""
    t = x.shape[0]
    if t >= d:
        return x[t - d:].clone()
    before = state if state is not None else x.new_zeros((d, *x.shape[1:]))
    return torch.cat([before[t:], x])


def _tap(buf: Tensor, d: int, t: int, steps: Tensor) -> Tensor:
    """``y_k = x_{k−m}`` for ``k = 0 … t−1`` from the delay line ``buf`` (see
    :func:`_delay_line`), ``m = steps`` in ``0 … d`` (a scalar or per-element integers)."""
    if steps.dim() == 0:
        return buf[d - int(steps): d - int(steps) + t]
    idx = torch.arange(d, d + t, device=buf.device).reshape(t, 1, *[1] * steps.dim())
    return torch.gather(buf, 0, (idx - steps).expand(t, *buf.shape[1:]))


SNAP = 1e-5
"""Delay positions (in steps) within this distance of a whole step are taken as that step."""


def delay_taps(delay: Tensor, dt: float, max_steps: int | None = None) -> tuple[Tensor, Tensor]:
    """A delay ``d`` in seconds as its lower whole-step tap ``lo = ⌊d/dt⌋`` (int64, no
    gradient) and the fraction ``f = d/dt − lo`` (with the gradient ``∂f/∂d = 1/dt``): the
    weight goes ``1 − f`` to tap ``lo`` and ``f`` to tap ``lo + 1``.

    Positions within :data:`SNAP` steps of a whole step are moved onto it in value (the
    gradient passes unchanged): a float32 delay in seconds rarely divides exactly
    (``7e-3 s / 1e-3 s = 7.0000002``), and a whole-step delay should give whole-step taps.

    ``max_steps = D ≥ 1``: positions ``d/dt ≥ D`` (where ``constrain_`` puts every clamped
    delay) take ``lo = D − 1``, ``f = 1``: the same value (the whole weight on tap ``D``), but
    the gradient is that of the interpolation inside ``[0, D]`` (the left derivative), not of
    a weight fading out beyond ``D``.
    """
    s = delay / dt
    with torch.no_grad():
        whole = s.round()
        shift = torch.where((s - whole).abs() < SNAP, whole - s, torch.zeros_like(s))
    s = s + shift
    lo = torch.floor(s.detach())
    if max_steps is not None and max_steps >= 1:
        top = s.detach() >= max_steps
        lo = torch.where(top, torch.full_like(lo, max_steps - 1), lo)
        # f = 1 in value at and beyond D, with the gradient ∂f/∂d = 1/dt
        return lo.long(), torch.where(top, s - s.detach() + 1, s - lo)
    return lo.long(), s - lo


def delays_outside(delay: Tensor, max_delay: float) -> Tensor:
    """Where ``delay`` (seconds) is NaN, ±inf or outside ``[0, max_delay]``; a float32 delay of
    ``max_delay`` may lie a rounding above it (6e-8 relative), which is allowed."""
    top = max_delay * (1 + 1e-6)
    return ~(torch.isfinite(delay) & (delay >= 0) & (delay <= top))


CONSTRAIN_HINT = "call constrain_() (Network.constrain_) after each optimiser step"


def check_delay_range(delay: Tensor, max_delay: float, hint: str = CONSTRAIN_HINT) -> None:
    """A ParameterError naming the worst delay if any lies outside ``[0, max_delay]`` (its taps
    would be lost), ending with ``hint`` (default: learned delays are kept in range by
    ``DelayedLinear.constrain_``)."""
    d = delay.detach()
    bad = delays_outside(d, max_delay)
    if not bool(bad.any()):
        return
    excess = torch.maximum(-d, d - max_delay).nan_to_num(math.inf)
    worst = tuple(int(k) for k in (excess == excess.max()).nonzero()[0])
    per = "axon" if d.dim() == 1 else "synapse"
    raise ParameterError(
        f"DelayedLinear delay (per {per}, seconds) must lie in [0, max_delay = "
        f"{max_delay:g} s], got {float(d[worst]):g} s at index {list(worst)} (the "
        f"worst of {int(bad.sum())} outside): {hint}")


def delayed_linear(
    x: Tensor, weight: Tensor, delay: Tensor, dt: float, max_steps: int,
    bias: Tensor | None = None, state: Tensor | None = None, event: bool = False,
    check_finite: str | None = None,
) -> tuple[Tensor, Tensor]:
    """``y_k[j] = Σ_i Σ_m K[j, i, m] x_{k−m}[i] (+ b_j)`` with the interpolated delay kernel
    ``K[j, i, m] = W[j, i] · max(0, 1 − |m − d/dt|)``, ``m = 0 … D`` (``D = max_steps``): each
    synapse's weight is split between the two whole-step taps around its delay ``d`` (taps
    below ``0`` are dropped; a delay above ``D`` acts as ``D``, see :func:`delay_taps`).

    ``x [T, B, in]``; ``weight [out, in]``; ``delay`` in seconds, ``[in]`` (one per presynaptic
    neuron, per axon) or ``[out, in]`` (per synapse). Per axon, the input is delayed (by
    :func:`delay`'s delay line) and interpolated first and projected by one matrix product over
    the ``T·B`` rows; per synapse, the kernel ``[out, in, D + 1]`` is applied as one causal
    ``conv1d`` over time. ``state``: the last ``D`` inputs of the previous call,
    ``[D, B, in]`` (``None``: zeros), so consecutive windows give the same result as one run.
    ``event``: per axon, project from the input's events where
    :func:`~spikeloop.kernels.fused.event_delay_axon` applies (sparse float32 CPU input that
    needs no gradient; its backward pass reads ``dy`` only where the delayed events land), else
    the delayed inputs with :func:`~spikeloop.kernels.event_linear` (from their non-zero
    entries where they are sparse, as the simulator's ``Linear`` does); per synapse, scatter
    each input event to its two taps per output with
    :func:`~spikeloop.kernels.fused.event_delay_synapse` where it applies (the same
    conditions), else the convolution; the same values up to summation order. The event paths
    take the delay line's events from ``state`` and ``x`` without writing the line out.
    ``check_finite``: raise :class:`~spikeloop.errors.NonFiniteError` ("<check_finite>: input
    holds NaN or infinite values") if ``x`` or ``state`` does (on the event paths from their
    events alone, as :func:`~spikeloop.kernels.event_linear` does).
    At a whole step ``d/dt = n`` the derivative with respect to ``d`` is the right one
    (``lo = n``), except at ``n = D ≥ 1``, where it is the left one (``lo = D − 1``), so the
    gradient never points out of ``[0, D]``. Returns ``(y, state)``.

    Raises:
        ParameterError: a delay lies outside ``[0, D·dt]`` or is NaN (:func:`check_delay_range`).
        ShapeError: ``x`` is not ``[T, B, in]``, or ``state`` is not ``[D, B, in]``.
    """
    check_delay_range(delay, max_steps * dt)
    if x.dim() != 3 or x.shape[-1] != weight.shape[1]:
        raise ShapeError(f"DelayedLinear: expected [T, B, {weight.shape[1]}], got shape "
                         f"{tuple(x.shape)}")
    d = max_steps
    t = x.shape[0]
    lo, frac = delay_taps(delay, dt, d)
    y = None  # from the input's events, where they apply (a state of another shape: they don't)
    if event and delay.dim() == 1:  # per axon
        y = event_delay_axon(x, state, weight, lo, frac, bias, d, check_finite=check_finite)
    elif event and delay.dim() == 2:  # per synapse
        y = event_delay_synapse(x, state, weight, lo, frac, bias, d, check_finite=check_finite)
    if y is not None:
        return y, _delay_line_tail(x, state, d)
    buf = _delay_line(x, state, d, "DelayedLinear")  # buf[d + k − m] = x_{k−m}; checks state
    if check_finite is not None:
        require_finite(x, check_finite)
        if state is not None:
            require_finite(state, check_finite)
    hi = lo + 1
    if delay.dim() == 1:  # per axon: interpolate the delayed inputs, then one GEMM
        # Rows (i, step) of B values: each tap is one row gather (index_select; its backward
        # an index_add of whole rows), several times cheaper than an element-wise gather over
        # [T, B, in]. The range check leaves 0 ≤ lo ≤ D and hi ≤ D, except hi = 1 > D = 0
        # with f = 0.
        n, length = buf.shape[-1], buf.shape[0]
        rows = buf.permute(2, 0, 1).reshape(n * length, -1)  # row i·L + u = buf[u, :, i]
        base = (torch.arange(n, device=x.device) * length)[:, None] + d + torch.arange(
            t, device=x.device)
        near = rows.index_select(0, (base - lo[:, None]).reshape(-1))
        far = rows.index_select(0, (base - hi.clamp(max=d)[:, None]).reshape(-1))
        weight_far = frac.to(near.dtype).repeat_interleave(t)[:, None]
        delayed = torch.lerp(near, far, weight_far).view(n, t, -1)
        delayed = delayed.permute(1, 2, 0).contiguous()
        y = event_linear(delayed, weight, bias) if event else F.linear(delayed, weight, bias)
    else:  # per synapse: a causal temporal convolution with the interpolated kernel
        m = torch.arange(d + 1, device=x.device)
        taps = (torch.where(m == lo[..., None], (1 - frac)[..., None], 0.0)
                + torch.where(m == hi[..., None], frac[..., None], 0.0))
        kernel = (weight[..., None] * taps).flip(-1)  # conv1d correlates: index u = D − m
        y = F.conv1d(buf.permute(1, 2, 0), kernel, bias).permute(2, 0, 1)
    return y, buf[buf.shape[0] - d:]


def batch_norm(
    x: Tensor, weight: Tensor, bias: Tensor, running_mean: Tensor, running_var: Tensor,
    eps: float, momentum: float, training: bool, update: bool = True,
) -> Tensor:
    r"""Batch normalisation of a spiking run ``x [T, B, C, ...]`` over channel ``C``, the same
    affine map at every step:

    .. math::

        y_t = γ \frac{x_t - μ}{\sqrt{σ^2 + ε}} + β, \qquad
        \bar x = \frac1T \sum_t x_t .

    In ``training`` mode :math:`μ, σ^2` are the mean and (biased) variance of the **time mean**
    :math:`\bar x` over the batch and every position after ``C`` (so :math:`\frac1T \sum_t y_t`
    is ordinary batch normalisation of :math:`\bar x`: the rate network of ANN-proxy training
    sees exactly that), differentiable; with ``update`` the running statistics move towards
    them, ``r ← (1 − m) r + m s`` with the unbiased variance :math:`σ^2 n/(n − 1)`, ``n`` the
    values per channel (as ``torch.nn.BatchNorm`` does). Otherwise :math:`μ, σ^2` are
    ``running_mean``/``running_var``.

    Raises:
        ShapeError: ``x`` is not ``[T, B, C, ...]`` with ``C`` the parameters' length, or in
            training mode a channel has a single value (``B · positions = 1``): its variance
            is undefined.
    """
    c = weight.shape[0]
    if x.dim() < 3 or x.shape[2] != c:
        raise ShapeError(f"BatchNorm: expected [T, B, {c}, ...] (channels in dimension 2), "
                         f"got shape {tuple(x.shape)}")
    view = (1, 1, c) + (1,) * (x.dim() - 3)
    if training:
        dims = (0, *range(2, x.dim() - 1))  # of the time mean [B, C, ...]: all but C
        mean_t = x.mean(0)
        n = mean_t.numel() // c
        if n < 2:
            raise ShapeError(f"BatchNorm in training mode needs more than one value per channel "
                             f"(batch × positions), got {n} from shape {tuple(x.shape)}; use "
                             f"a batch of ≥ 2 samples or eval mode")
        mean = mean_t.mean(dims)
        var = mean_t.var(dims, unbiased=False)
        if update:
            with torch.no_grad():
                running_mean.mul_(1.0 - momentum).add_(mean.detach(), alpha=momentum)
                running_var.mul_(1.0 - momentum).add_(var.detach() * (n / (n - 1)),
                                                      alpha=momentum)
    else:
        mean, var = running_mean, running_var
    scale = weight * torch.rsqrt(var + eps)
    return (x - mean.reshape(view)) * scale.reshape(view) + bias.reshape(view)
