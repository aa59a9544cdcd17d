r"""Single-event upsets: radiation flips bits of an integer chip's memories.

A particle that deposits enough charge in an SRAM cell or a register flips its bit (a
*single-event upset*, SEU); the stored integer changes by ``±2^k`` for bit ``k``, and a flip of
the sign bit of a two's-complement word changes it by ``∓2^{w-1}`` (a weight 3 becomes −125 in
int8). The usual fault model (e.g. Reagen et al., "Ares: a framework for quantifying the
resilience of deep neural networks", DAC 2018; recalled, not read here) flips each bit
independently with a probability ``p``: :class:`BitFlips` says which memory, how often and
when; :func:`flip_bits` is the operation on any integer-valued tensor. An integer chip's
backend applies the model to its own memories (the Xylo-like chip:
:mod:`spikeloop.chips.xylo.faults`).

Per sample: every sample of a batch is one inference of its own, on a chip of its own; its
bits flip independently of the other samples' (a batch of ``B`` samples draws from ``B``
times as many bits, and once a weight flips the weights differ between samples). This
differs from :class:`~spikeloop.devices.Crossbar`'s ``read="inference"`` noise, which is
drawn once per run and shared by every sample of the batch.

Sampling: the flipped bits among ``n`` are drawn exactly, in ``O(n p)`` time, as the positions
of the successes of ``n`` Bernoulli(``p``) trials: the gaps between successes are geometric,
``P(g = k) = (1 - p)^{k-1} p``, drawn as ``g = 1 + \lfloor \ln U / \ln(1 - p) \rfloor`` with
``U`` uniform on ``(0, 1]`` (float64, resolution ``2^{-53}``). A gap that reaches past the
last bit ends the draw; it is cut to the bits left before it becomes an integer, so rates
down to the smallest positive float (gaps far beyond int64) are drawn correctly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor

from spikeloop.checks import check_choice, check_int, check_real, show
from spikeloop.devices.base import DEVICE_MODELS, MemoryDevice
from spikeloop.errors import ParameterError

__all__ = ["MAX_BITS", "STATE_MEMORIES", "BitFlips", "apply_flips", "draw_flips", "flip_bits"]

STATE_MEMORIES: tuple[str, ...] = ("v", "i")
"""A population's state memories, named as the chip's registers: ``v`` the membranes, ``i``
the synaptic currents."""


@dataclass(frozen=True)
class BitFlips(MemoryDevice):
    r"""Bits of an integer chip's memory flip at random: each bit independently with
    probability ``rate`` (per inference or per time step).

    On a projection it hits the projection's weight memory (the chip's int8 weights); on a
    population its state registers (16-bit), those named in ``state``: ``"v"`` (membranes),
    ``"i"`` (synaptic currents).

    Per sample: each sample of a batch is one inference of its own, on its own copy of the
    memories, whose bits flip independently of the other samples' (``"inference"``: one
    draw per sample at the start of the run, not one draw shared by the batch; ``"step"``:
    one draw per sample and step). ``rate`` is therefore a probability per bit and per
    sample (per inference or per step).

    Args:
        rate: probability that a given bit of one sample's memory flips, per inference or
            per step, in ``[0, 1]``. Rates however small are drawn correctly (see
            :func:`draw_flips`): an SRAM with about ``10^{-3}`` FIT per bit (recalled; one
            FIT is one failure in ``10^9`` hours) has about ``3·10^{-19}`` per bit and 1 ms
            step.
        per: ``"inference"``: every bit of every sample's memory flips with probability
            ``rate`` once, at the start of the run; a weight memory is written anew before
            every inference, so its flips do not outlast the run; a state memory's flips hit
            the registers the run starts from.
            ``"step"``: every bit flips with probability ``rate`` before every time step
            (before step 0 too); a flipped weight stays flipped to the end of the run (an SRAM
            upset), a flipped state register changes its current value, which the dynamics
            then carry on. The expected number of flips of a memory of ``n`` bits in a run of
            ``T`` steps is ``B · n · rate`` (``"inference"``) or ``B · n · T · rate``
            (``"step"``) for a batch of ``B`` samples.
        state: the state memories of a population (ignored on a projection).

    Raises:
        ParameterError: ``rate`` outside ``[0, 1]``, an unknown ``per`` or state memory.
        DeviceModelError: (when run) a backend without integer memories, or a node whose
            memory the chip does not store on its own.
    """

    name: ClassVar[str] = "bit_flips"
    rate: float
    per: Literal["inference", "step"] = "inference"
    state: tuple[str, ...] = STATE_MEMORIES

    def __post_init__(self) -> None:
        rate = check_real(self.rate, "BitFlips: rate (a probability per bit)", 0.0, 1.0)
        object.__setattr__(self, "rate", rate)
        check_choice(self.per, "BitFlips: per", ["inference", "step"])
        state = (self.state,) if isinstance(self.state, str) else self.state
        if not isinstance(state, Sequence) or not state or any(
                s not in STATE_MEMORIES for s in state):
            raise ParameterError(f"BitFlips: state must name one or more of a population's state "
                                 f"memories {list(STATE_MEMORIES)}, got {show(self.state)}")
        object.__setattr__(self, "state", tuple(dict.fromkeys(state)))

    def requires(self) -> frozenset[str]:
        """Bit flips act on integer memories (int8 weights, 16-bit state registers)."""
        return frozenset({"integer_memories"})


DEVICE_MODELS.add("bit_flips", BitFlips)


MAX_BITS: int = 2**62
"""The most bits :func:`draw_flips` draws among (flat bit indices stay within int64)."""


def draw_flips(count: int, rate: float, generator: torch.Generator | None = None) -> Tensor:
    r"""The indices (sorted, distinct, int64) of the bits that flip among ``count`` bits when
    each flips independently with probability ``rate`` (``O(count · rate)`` time; the
    geometric gaps of the module docstring, exact up to the ``2^{-53}`` resolution of the
    float64 uniforms).

    Any ``rate`` in ``[0, 1]`` works, down to the smallest positive float: a gap longer than
    the bits left (at realistic upset rates, ``10^{-18}`` per bit and step, nearly every gap)
    is cut to that length before it becomes an integer, so it neither overflows int64 nor
    wraps around into a spurious flip.

    Raises:
        ParameterError: ``count`` outside ``0..2^62``, ``rate`` outside ``[0, 1]``.
    """
    count = check_int(count, "draw_flips: count (bits)", 0, MAX_BITS)
    rate = check_real(rate, "draw_flips: rate (a probability per bit)", 0.0, 1.0)
    if rate == 0.0 or count == 0:
        return torch.zeros(0, dtype=torch.int64)
    if rate == 1.0:
        return torch.arange(count)
    log_q = math.log1p(-rate)
    parts, end = [], -1  # end: the last position drawn (flipped, or -1)
    while True:
        left = count - end  # a gap of `left` or more reaches past the last bit
        chunk = max(16, int(1.2 * left * rate + 6 * math.sqrt(count * rate) + 16))
        u = 1.0 - torch.rand(chunk, generator=generator, dtype=torch.float64)  # (0, 1]
        # 1 + ⌊ln U / ln(1 − p)⌋ in float64 (+inf at the tiniest rates), cut to `left` (first
        # to a float bound ≥ left that int64 holds: float(left) may round below `left`)
        bound = float(left) if int(float(left)) >= left else math.nextafter(float(left), math.inf)
        gaps = (torch.floor(torch.log(u) / log_q) + 1).clamp_(max=bound)
        gaps = gaps.to(torch.int64).clamp_(max=left)
        # the partial sums grow by ≤ left ≤ 2^62 each, so they are exact up to the first one
        # that reaches `left` (only later ones, which are dropped, may wrap around)
        reach = gaps.cumsum(0)
        past = reach >= left
        if bool(past.any()):
            first = int(past.int().argmax())
            return torch.cat([*parts, end + reach[:first]])
        parts.append(end + reach)
        end += int(reach[-1])


def apply_flips(values: Tensor, bits: int, where: Tensor, signed: bool = True, *,
                inplace: bool = False) -> Tensor:
    r"""``values`` (integers of ``bits`` bits, any dtype) with the bits at ``where`` inverted.

    ``where`` holds distinct flat bit indices ``e · bits + k``, in any order: bit ``k``
    (0 = least significant) of element ``e`` of ``values`` in row-major order. A signed value
    is a two's-complement word: ``u = v \bmod 2^{bits}``, ``u ← u \oplus m``,
    ``v = u − 2^{bits}`` where ``u ≥ 2^{bits-1}``. Only the elements hit are read and written;
    returns a new tensor, or ``values`` itself changed in place (``inplace``, e.g. a view into
    a register).

    Raises:
        ParameterError: an index repeated or outside ``0..values.numel() · bits − 1``, or a
            hit element that is not an integer of ``bits`` bits.
    """
    bits = check_int(bits, "apply_flips: bits", 1, 62)
    out = values if inplace else values.clone()
    if where.numel() == 0:
        return out
    given = where.numel()
    where = torch.unique(where.reshape(-1).to(torch.int64), sorted=True)
    if where.numel() != given:
        raise ParameterError(f"apply_flips: where repeats {given - where.numel()} bit "
                             "index(es); each bit flips once, so list it once")
    last = values.numel() * bits - 1
    if int(where[0]) < 0 or int(where[-1]) > last:
        raise ParameterError(f"apply_flips: bit indices {int(where[0])}..{int(where[-1])} "
                             f"outside 0..{last} ({values.numel()} values of {bits} bits)")
    elements, inverse = torch.unique_consecutive(where // bits, return_inverse=True)
    mask = torch.zeros_like(elements).index_add_(0, inverse, torch.ones_like(where) << where % bits)
    at = torch.unravel_index(elements, values.shape)
    v = values[at].detach()
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not bool((v == v.round()).all()) or float(v.min()) < lo or float(v.max()) > hi:
        raise ParameterError(f"apply_flips: values in {float(v.min()):g}..{float(v.max()):g} "
                             f"are not {'signed' if signed else 'unsigned'} {bits}-bit integers "
                             f"({lo}..{hi})")
    u = (v.to(torch.int64) & ((1 << bits) - 1)) ^ mask
    if signed:
        u = torch.where(u >= 1 << (bits - 1), u - (1 << bits), u)
    out[at] = u.to(values.dtype)
    return out


def flip_bits(values: Tensor, bits: int, rate: float, generator: torch.Generator | None = None,
              signed: bool = True) -> tuple[Tensor, int]:
    """Flip each bit of the ``bits``-bit integers ``values`` (two's complement if ``signed``)
    independently with probability ``rate``; returns the new values (same dtype and shape) and
    the number of bits flipped.

    Raises:
        ParameterError: ``rate`` outside ``[0, 1]``, ``bits`` outside 1..62, or a value hit
            that is not an integer of that width.
    """
    where = draw_flips(values.numel() * check_int(bits, "flip_bits: bits", 1, 62), rate,
                       generator)
    return apply_flips(values, bits, where, signed), int(where.numel())
