"""Surrogate derivatives for the spike non-linearity.

The forward pass of every spiking neuron is the Heaviside step ``z = H(v − ϑ)``; its derivative is
zero almost everywhere, so the backward pass replaces ``δ(x)`` (with ``x = v − ϑ``) by a smooth
pseudo-derivative ``σ'(x)`` chosen here. Each surrogate is a small frozen object with one
steepness parameter; :func:`spike` applies it.

========================  =============================================  ======================
name                      σ'(x)                                          peak (x = 0)
========================  =============================================  ======================
``superspike`` (β)        1 / (β|x| + 1)²   (Zenke & Ganguli 2018)          1
``fast_sigmoid`` (k)      k / (2 (k|x| + 1)²)   (derivative of ½(1 + kx/(1+k|x|)))   k/2
``arctan`` (α)            α / (2 (1 + (π α x / 2)²))   (derivative of ½ + arctan(παx/2)/π)   α/2
``triangle`` (β)          β · max(0, 1 − β|x|)   (Bellec et al. 2018, width 1/β)  β
========================  =============================================  ======================

``fast_sigmoid``, ``arctan`` and ``triangle`` integrate to 1 over x (they are derivatives of
smoothed step functions); ``superspike`` is Zenke's unnormalised form (integral 2/β).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from spikeloop.checks import check_real, check_type
from spikeloop.registry import Registry

SURROGATES: Registry[type[Surrogate]] = Registry("surrogate")


@dataclass(frozen=True)
class Surrogate:
    """Base class: a pseudo-derivative ``σ'(x)`` of the Heaviside step at ``x = v − ϑ``."""

    name: ClassVar[str] = "surrogate"

    def __post_init__(self) -> None:
        for key, value in self.__dict__.items():  # a bool or a string is no steepness
            object.__setattr__(self, key, check_real(value, f"surrogate {self.name!r}: {key}",
                                                     low=0, low_open=True))

    def derivative(self, x: Tensor) -> Tensor:
        """Return ``σ'(x)`` element-wise (a new tensor)."""
        return self.derivative_(x.clone())

    def derivative_(self, x: Tensor) -> Tensor:
        """Overwrite ``x`` with ``σ'(x)`` and return it (no temporaries: the fused backward
        evaluates it on ``[T, B, N]`` at once). Subclasses implement this *or*
        :meth:`derivative`."""
        if type(self).derivative is Surrogate.derivative:
            raise NotImplementedError(f"{type(self).__name__} implements no derivative")
        return x.copy_(self.derivative(x))

    def native_form(self) -> NativeForm | None:
        """The same :meth:`derivative_`, operation for operation, as one of the forms the
        native kernels evaluate in a single pass (:class:`NativeForm`); ``None`` (the default,
        e.g. for a user's own surrogate): the native backward evaluates :meth:`derivative_`."""
        return None

    def _form_if_own(self, declared_by: type[Surrogate], form: NativeForm) -> NativeForm | None:
        """``form`` if this object's :meth:`derivative_` is the one of ``declared_by``, the
        class that declares it; ``None`` for a subclass that redefines :meth:`derivative_` (its
        parent's form would be the wrong function)."""
        return form if type(self).derivative_ is declared_by.derivative_ else None


@dataclass(frozen=True)
class NativeForm:
    r"""A surrogate derivative as the native kernels evaluate it, with ``x = v − ϑ`` and the
    float operations in :meth:`Surrogate.derivative_`'s order (so the result is the same to
    the bit, tested):

    - ``kind = 1``: :math:`c \cdot 1/(a|x| + 1)^2`;
    - ``kind = 2``: :math:`c \cdot 1/((a x)^2 + 1)`;
    - ``kind = 3``: :math:`c \cdot \max(0, -a|x| + 1)` (NaN stays NaN);

    times :math:`[|x| < band]` when ``band > 0`` (:class:`BandLimited`)."""

    kind: int
    a: float
    c: float = 1.0
    band: float = 0.0


@SURROGATES.register("superspike")
@dataclass(frozen=True)
class SuperSpike(Surrogate):
    """SuperSpike: ``σ'(x) = 1 / (β|x| + 1)²``."""

    name: ClassVar[str] = "superspike"
    beta: float = 10.0

    def derivative_(self, x: Tensor) -> Tensor:
        return x.abs_().mul_(self.beta).add_(1.0).square_().reciprocal_()

    def native_form(self) -> NativeForm | None:
        # (the final product with c = 1 changes no bit)
        return self._form_if_own(SuperSpike, NativeForm(1, self.beta))


@SURROGATES.register("fast_sigmoid")
@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    """Fast sigmoid: ``σ'(x) = k / (2 (k|x| + 1)²)`` (unit integral)."""

    name: ClassVar[str] = "fast_sigmoid"
    slope: float = 25.0

    def derivative_(self, x: Tensor) -> Tensor:
        return x.abs_().mul_(self.slope).add_(1.0).square_().reciprocal_().mul_(0.5 * self.slope)

    def native_form(self) -> NativeForm | None:
        return self._form_if_own(FastSigmoid, NativeForm(1, self.slope, 0.5 * self.slope))


@SURROGATES.register("arctan")
@dataclass(frozen=True)
class ArcTan(Surrogate):
    """Arctan: ``σ'(x) = α / (2 (1 + (π α x / 2)²))`` (unit integral)."""

    name: ClassVar[str] = "arctan"
    alpha: float = 2.0

    def derivative_(self, x: Tensor) -> Tensor:
        return x.mul_(0.5 * math.pi * self.alpha).square_().add_(1.0).reciprocal_().mul_(
            0.5 * self.alpha)

    def native_form(self) -> NativeForm | None:
        return self._form_if_own(ArcTan, NativeForm(2, 0.5 * math.pi * self.alpha,
                                                    0.5 * self.alpha))


@SURROGATES.register("triangle")
@dataclass(frozen=True)
class Triangle(Surrogate):
    """Triangle: ``σ'(x) = β · max(0, 1 − β|x|)`` (unit integral, support |x| < 1/β)."""

    name: ClassVar[str] = "triangle"
    beta: float = 1.0

    def derivative_(self, x: Tensor) -> Tensor:
        return x.abs_().mul_(-self.beta).add_(1.0).clamp_(min=0.0).mul_(self.beta)

    def native_form(self) -> NativeForm | None:
        return self._form_if_own(Triangle, NativeForm(3, self.beta, self.beta))


@dataclass(frozen=True)
class BandLimited(Surrogate):
    """``base`` surrogate set to zero outside a band around threshold: ``σ'(x)·[|x| < band]``.

    Sparse surrogate backprop (Perez-Nieves & Goodman 2021): only neurons whose membrane is
    within ``band`` of the threshold pass gradient, so the backward pass can skip the others
    (see :mod:`spikeloop.kernels.fused`). Not registered by name; backends build it from their
    ``grad_band`` option.
    """

    name: ClassVar[str] = "band_limited"
    base: Surrogate = SuperSpike()
    band: float = 0.5

    def __post_init__(self) -> None:
        check_type(self.base, "band_limited: base", Surrogate, "a Surrogate")
        object.__setattr__(self, "band", check_real(self.band, "band_limited: band", low=0,
                                                    low_open=True))

    def derivative_(self, x: Tensor) -> Tensor:
        inside = x.abs().lt_(self.band)  # 1.0 inside the band, 0.0 outside (and at NaN)
        # a product with the 0/1 mask: on the CPU masked_fill_ costs about 4x as much
        return self.base.derivative_(x).mul_(inside)

    def native_form(self) -> NativeForm | None:
        base = self.base.native_form()
        if base is None or base.band > 0:  # (a band inside a band: the torch form)
            return None
        return self._form_if_own(BandLimited, NativeForm(base.kind, base.a, base.c, self.band))


class _SpikeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, surrogate: Surrogate) -> Tensor:
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (x,) = ctx.saved_tensors
        return grad * ctx.surrogate.derivative(x), None


def spike(x: Tensor, surrogate: Surrogate) -> Tensor:
    """Heaviside ``H(x) = [x > 0]`` in the forward pass, ``σ'(x)`` in the backward pass."""
    return _SpikeFunction.apply(x, surrogate)


def make_surrogate(spec: str | Surrogate | Mapping[str, Any], who: str = "surrogate") -> Surrogate:
    """Build a surrogate from an instance, a registered name, or ``{"name": ..., param: ...}``.

    Raises:
        ArgumentTypeError: ``spec`` is none of these (``who`` names it).
        UnknownNameError: the name is not registered.
        ConfigError: a parameter the surrogate does not take.
        ParameterError: a steepness that is not a finite number ``> 0``.
    """
    if isinstance(spec, Surrogate):
        return spec
    check_type(spec, who, str | Mapping,
               f"a surrogate name ({', '.join(SURROGATES.names())}), a {{'name': ...}} mapping "
               "or a Surrogate")
    return SURROGATES.build(spec)
