r"""Augmentation of time-major batches ``[T, B, *shape]`` during training.

The trainer encodes a data set once; these functions vary each training batch instead, with
the same change at every time step of a sample:

- :func:`random_shift` moves each sample by integer offsets drawn uniformly from
  ``[−shift, shift]`` along each spatial axis (images ``[C, H, W]``: rows and columns; channel
  vectors ``[C]``: the channels, the SHD-style channel shift); what moves in is zero and what
  moves out is dropped:
  :math:`y_{t,b,\ldots,i,\ldots} = x_{t,b,\ldots,i-o_b,\ldots}` where :math:`0 \le i-o_b < n`,
  else 0.
- :func:`random_flip` mirrors each image left–right with probability ½.

:func:`augment` applies a config's ``{shift: s, flip: bool}`` (``data.augment``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from spikeloop.checks import check_bool, check_int, check_type
from spikeloop.errors import ConfigError, ShapeError

AUGMENT_KEYS = ("shift", "flip")
"""The keys of ``data.augment``."""


def _batch(x: Any, who: str) -> Tensor:
    check_type(x, f"{who}: x", Tensor, "a tensor [T, B, C] or [T, B, C, H, W]")
    if x.dim() not in (3, 5):
        raise ShapeError(f"{who}: expected a batch [T, B, C] or [T, B, C, H, W], got shape "
                         f"{tuple(x.shape)}")
    return x


def random_shift(x: Tensor, shift: int, generator: torch.Generator | None = None) -> Tensor:
    """Each sample of ``x [T, B, C]`` or ``[T, B, C, H, W]`` moved by its own offsets in
    ``[−shift, shift]`` (channels, or rows and columns), zeros moved in.

    Example:
        >>> y = random_shift(torch.ones(4, 2, 1, 28, 28), 2)

    Raises:
        ArgumentTypeError, ShapeError: ``x`` is not such a tensor. ParameterError:
            ``shift < 0`` or not smaller than an axis it moves.
    """
    x = _batch(x, "random_shift")
    axes = (2,) if x.dim() == 3 else (3, 4)
    shift = check_int(shift, "random_shift: shift", 0, min(x.shape[a] for a in axes) - 1)
    if shift == 0:
        return x
    batch = x.shape[1]
    for axis in axes:
        n = x.shape[axis]
        offsets = torch.randint(-shift, shift + 1, (batch,), generator=generator)
        pad = [0, 0] * (x.dim() - 1 - axis) + [shift, shift]
        padded = torch.nn.functional.pad(x, pad)
        index = torch.arange(n)[None, :] - offsets[:, None] + shift  # [B, n]
        view = [1] * x.dim()
        view[1], view[axis] = batch, n
        index = index.reshape(view).to(x.device).expand(
            *[padded.shape[d] if d != axis else n for d in range(x.dim())])
        x = torch.gather(padded, axis, index)
    return x


def random_flip(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Each image of ``x [T, B, C, H, W]`` mirrored left–right with probability ½.

    Raises:
        ArgumentTypeError, ShapeError: ``x`` is not a batch of images.
    """
    x = _batch(x, "random_flip")
    if x.dim() != 5:
        raise ShapeError(f"random_flip mirrors images [T, B, C, H, W]; got shape "
                         f"{tuple(x.shape)}")
    flip = torch.rand(x.shape[1], generator=generator) < 0.5
    return torch.where(flip.to(x.device)[None, :, None, None, None], x.flip(-1), x)


def check_augment(spec: Any, sample_shape: tuple[int, ...]) -> dict[str, Any]:
    """``data.augment`` checked against the samples' shape: ``{shift: int ≥ 0, flip: bool}``.

    Raises:
        ConfigError: unknown keys, or ``flip`` for samples that are not images ``[C, H, W]``,
            or samples that are neither ``[C]`` nor ``[C, H, W]``.
        ArgumentTypeError, ParameterError: a value of the wrong type or range.
    """
    check_type(spec, "data.augment", Mapping, f"a mapping of {', '.join(AUGMENT_KEYS)}")
    unknown = sorted(set(spec) - set(AUGMENT_KEYS), key=str)
    if unknown:
        raise ConfigError(f"data.augment takes {', '.join(AUGMENT_KEYS)}; got unknown "
                          f"{', '.join(map(repr, unknown))}")
    out = {"shift": check_int(spec.get("shift", 0), "data.augment.shift", 0),
           "flip": check_bool(spec.get("flip", False), "data.augment.flip")}
    if (out["shift"] or out["flip"]) and len(sample_shape) not in (1, 3):
        raise ConfigError(f"data.augment works on channel vectors [C] or images [C, H, W]; "
                          f"the samples have shape {sample_shape}")
    if out["flip"] and len(sample_shape) != 3:
        raise ConfigError(f"data.augment.flip mirrors images [C, H, W]; the samples have shape "
                          f"{sample_shape}")
    axes = sample_shape[:1] if len(sample_shape) == 1 else sample_shape[1:]
    if axes and out["shift"] >= min(axes):
        raise ConfigError(f"data.augment.shift = {out['shift']} must be smaller than the "
                          f"{min(axes)} positions it shifts along")
    return out


def augment(x: Tensor, spec: Mapping[str, Any], generator: torch.Generator | None = None
            ) -> Tensor:
    """``x`` shifted (``spec["shift"]``) and flipped (``spec["flip"]``) per sample; a spec
    checked by :func:`check_augment`."""
    if spec.get("shift"):
        x = random_shift(x, spec["shift"], generator)
    if spec.get("flip"):
        x = random_flip(x, generator)
    return x
