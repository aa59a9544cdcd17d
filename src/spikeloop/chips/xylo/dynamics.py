r"""The chip's integer dynamics: one pure step function, shared by the integer simulator and
the quantisation-aware training (QAT) model.

Values are integers held in ``float64`` tensors (exact: every intermediate stays far below
``2^53``), so the same code runs the integer simulator (no gradients) and the QAT model
(parameters and spikes carry straight-through / surrogate gradients whose *values* are the
integer results). Bit-exactness of the two is therefore by construction, and the simulator is
tested against the independent reference ``xylosim``.

One time step (the order of the reference simulator, ``xylosim`` v2):

1. **Deliver events.** Input events of this step (``min(x, 15)`` per channel), then the hidden
   spikes of the previous step (``≤ 31`` per neuron; one hop = one step) to the hidden
   neurons' synaptic currents and to the output neurons' currents. Each event adds
   ``w << shift`` to the target current with a *saturating* 16-bit addition; events are added
   in a fixed order (input channels 0…15, then hidden neurons 0…N−1, each source's events in a
   row). Where no partial sum can leave the 16-bit range the result is the plain sum; otherwise
   the additions are replayed in order.
2. **Decay currents, then integrate** (so a current decays before it reaches the membrane):

   .. math::
       \mathrm{decay}_d(x) = \begin{cases} x \gg d & x \gg d \ne 0 \\ \mathrm{sign}(x) &
       \text{otherwise}\end{cases},\qquad
       I_s \leftarrow I_s - \mathrm{decay}_{d_s}(I_s), \\
       \Delta v = \mathrm{sat}\big(-\mathrm{decay}_{d_m}(v) + \textstyle\sum_s I_s\big),\quad
       \Delta v \leftarrow \mathrm{sat}(\Delta v + b),\quad
       v \leftarrow \mathrm{sat}(v + \Delta v)

   with ``sat`` the clamp to ``[−32768, 32767]`` and ``≫`` the arithmetic right shift
   (``−decay`` is a 16-bit value: for ``v = −32768, d_m = 0`` it wraps to −32768, as in the
   reference).
3. **Fire.** Hidden neurons are visited in index order. A neuron starts with the spikes its
   aliases already gave it this step (``c₀``) and fires while ``v ≥ ϑ`` and its count is below
   the cap (31 hidden, 1 output), subtracting ``ϑ`` each time: ``k = min(⌊(v−ϑ)/ϑ⌋+1, cap−c₀)``
   (``v ≥ ϑ``), ``v ← v − kϑ``. Its count ``c₀ + k`` is then added (capped) to its alias
   target's count; a target with a lower index has already fired, so those spikes only add to
   its emitted count.

Surrogate gradients (QAT): a spike count's gradient is the surrogate derivative of
``(v − ϑ)/ϑ`` (an alias target's count adds its sources' gradients, along whole chains);
the decay's is that of ``(1 − 2^{−d}) x``; saturation and the event order pass gradients
straight through; the reset ``v − kϑ`` uses the count without gradient.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from spikeloop.dynamics.neurons import straight_through
from spikeloop.dynamics.surrogate import Surrogate, spike

LO, HI = -32768.0, 32767.0


class XyloParams(NamedTuple):
    """The chip's parameters in integer units (float tensors; a leading batch dimension of
    networks is optional on every entry): the registers of
    :class:`~spikeloop.chips.xylo.registers.Registers` under the same names, built by
    :func:`~spikeloop.chips.xylo.simulator.register_params`. Weights are already shifted
    (``W · 2^shift``) and flattened: ``weights_in [Nin, N·S]``, ``weights_rec [N, N·S]``
    (``[pre, post·syn]``), ``weights_out [N, O]``; ``threshold``, ``bias``, ``dash_mem``
    ``[N]``; ``dash_syn [N, S]``; the same ``*_out`` for the ``O`` output neurons (one synapse);
    ``aliases [N]`` (long, −1: none); then the event caps, and ``alias_depth``: the longest
    chain of aliases (``A → B``: 1), computed once by
    :func:`~spikeloop.chips.xylo.simulator.register_params` so the time loop does not
    (``None``: computed where needed).
    """

    weights_in: Tensor
    weights_rec: Tensor
    weights_out: Tensor
    threshold: Tensor
    threshold_out: Tensor
    bias: Tensor
    bias_out: Tensor
    dash_mem: Tensor
    dash_mem_out: Tensor
    dash_syn: Tensor
    dash_syn_out: Tensor
    aliases: Tensor
    input_cap: int = 15
    hidden_cap: int = 31
    output_cap: int = 1
    alias_depth: int | None = None


class XyloState(NamedTuple):
    """State between steps: hidden ``v [B, N]``, ``i [B, N, S]``, spikes to deliver next step
    ``z [B, N]`` (counts), output ``v_out [B, O]`` and ``i_out [B, O]``."""

    v: Tensor
    i: Tensor
    z: Tensor
    v_out: Tensor
    i_out: Tensor


class StepRecord(NamedTuple):
    """What one step produced: hidden counts, membrane and currents; output counts, membrane
    and current (all after the step)."""

    z: Tensor
    v: Tensor
    i: Tensor
    z_out: Tensor
    v_out: Tensor
    i_out: Tensor


TALLIES: tuple[str, ...] = ("input", "current", "membrane", "current_out", "membrane_out")
"""What :class:`Tally` counts, summed over steps (and the batch): ``input`` — input counts
(step, channel) above the input cap (clamped to it); ``current`` — hidden synaptic currents
(step, neuron, synapse) where a saturating 16-bit addition of the step's events clipped;
``membrane`` — hidden membranes (step, neuron) where one of the step's three saturations
clipped; ``current_out``, ``membrane_out`` — the same for the output neurons."""


class Tally:
    """Counts of what hit the chip's limits in a run (:data:`TALLIES`), accumulated without a
    device synchronisation per step; :meth:`counts` reads them as ints."""

    def __init__(self) -> None:
        self._counts: dict[str, Tensor | int] = dict.fromkeys(TALLIES, 0)

    def add(self, name: str, where: Tensor | None) -> None:
        """Count the ``True`` entries of ``where`` under ``name`` (``None``: nothing)."""
        if where is not None:
            self._counts[name] = self._counts[name] + where.sum()

    def counts(self) -> dict[str, int]:
        """The counts so far, by name (:data:`TALLIES`)."""
        return {name: int(value) for name, value in self._counts.items()}


def _straight(model: Tensor, exact: Tensor) -> Tensor:
    """``exact``'s value with ``model``'s gradient (``exact`` when nothing needs a gradient)."""
    if not model.requires_grad:
        return exact
    return model + (exact - model).detach()


def saturate(x: Tensor) -> Tensor:
    """Clamp to the 16-bit range, gradient passed straight through."""
    return _straight(x, x.detach().clamp(LO, HI))


def decay(x: Tensor, dash: Tensor) -> Tensor:
    """``x − decay_dash(x)``: one step of bit-shift decay (``≈ (1 − 2^{−dash}) x``)."""
    xd = x.detach()
    shifted = torch.floor(xd / torch.exp2(dash))
    dec = torch.where(shifted == 0, torch.sign(xd), shifted)
    return _straight(x * (1.0 - torch.exp2(-dash)), xd - dec)


def _matvec(z: Tensor, w: Tensor) -> Tensor:
    """``z [B, P] @ w`` for ``w [P, K]`` or per-network ``w [B, P, K]``."""
    if w.dim() == 2:
        return z @ w
    return torch.bmm(z.unsqueeze(1), w).squeeze(1)


def deliver(i: Tensor, z: Tensor, w: Tensor) -> Tensor:
    """Add the events ``z [B, P]`` (counts) through ``w`` to currents ``i [B, K]`` with
    per-event 16-bit saturation in source order (see the module docstring)."""
    return _deliver(i, z, w)[0]


def _deliver(i: Tensor, z: Tensor, w: Tensor) -> tuple[Tensor, Tensor | None]:
    """:func:`deliver`, and where a saturating addition clipped (``None``: nowhere)."""
    total = i + _matvec(z, w)
    with torch.no_grad():
        zd, wd, idt = z.detach(), w.detach(), i.detach()
        pos = idt + _matvec(zd, wd.clamp(min=0))
        neg = idt + _matvec(zd, wd.clamp(max=0))
        unsafe = (pos > HI) | (neg < LO)
        if not bool(unsafe.any()):
            return total, None
        exact = (idt + _matvec(zd, wd)).clone()
        b, k = unsafe.nonzero(as_tuple=True)
        wk = wd[:, k].T if wd.dim() == 2 else wd[b, :, k]  # [U, P]
        contrib = zd[b] * wk
        x = idt[b, k]
        hit = torch.zeros_like(x, dtype=torch.bool)
        for j in contrib.abs().sum(0).nonzero().flatten().tolist():
            plain = x + contrib[:, j]
            x = plain.clamp(LO, HI)
            hit |= plain != x
        exact[b, k] = x
        clipped = torch.zeros_like(idt, dtype=torch.bool)
        clipped[b, k] = hit
    return _straight(total, exact), clipped


def _fire(
    v: Tensor, threshold: Tensor, cap: int, aliases: Tensor | None, surrogate: Surrogate | None,
    alias_depth: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Spike counts (with aliases) and the membrane after subtraction (see module docstring)."""
    vd, th = v.detach(), threshold.detach()
    with torch.no_grad():
        possible = torch.where(vd >= th, torch.floor((vd - th) / th) + 1, torch.zeros_like(vd))
        c0 = torch.zeros_like(vd)
        k = possible.clamp(max=cap)
        final = k
        if aliases is not None and bool((aliases >= 0).any()):
            al = aliases.expand(vd.shape)
            has = al >= 0
            target = al.clamp(min=0)
            src = torch.arange(vd.shape[-1], device=v.device).expand(vd.shape)
            early, late = has & (src < target), has & (src >= target)
            for _ in range(vd.shape[-1] + 1):
                k = torch.minimum(possible, cap - c0).clamp(min=0)
                new_c0 = torch.zeros_like(vd).scatter_add(-1, target, (c0 + k) * early)
                new_c0 = new_c0.clamp(max=cap)
                if torch.equal(new_c0, c0):
                    break
                c0 = new_c0
            count = c0 + k
            late_add = torch.zeros_like(vd).scatter_add(-1, target, count * late)
            final = (count + late_add).clamp(max=cap)
    v_new = v - k * threshold
    if surrogate is None or not v.requires_grad:
        return final, v_new
    z = spike((v - threshold) / threshold, surrogate)
    if aliases is not None and bool((aliases >= 0).any()):  # a target's count: own + sources'
        own, total = z, z
        depth = alias_depth if alias_depth is not None else alias_chain_depth(aliases)
        for _ in range(depth):  # a chain A → B → C: C's count carries A's too
            total = own + _alias_sum(total, aliases)
        z = total
    return _straight(z, final), v_new


def alias_chain_depth(aliases: Tensor) -> int:
    """The longest chain of aliases (``A → B``: 1; ``A → B → C``: 2)."""
    al = aliases.reshape(-1, aliases.shape[-1])
    has, target = al >= 0, al.clamp(min=0)
    level = torch.zeros(al.shape, dtype=torch.int64, device=al.device)
    for depth in range(al.shape[-1] + 1):
        new = torch.zeros_like(level).scatter_reduce(-1, target, (level + 1) * has, "amax")
        if torch.equal(new, level):
            return depth
        level = new
    return depth  # unreachable for aliases from lower to higher indices (no cycles)


def _alias_sum(z: Tensor, aliases: Tensor) -> Tensor:
    """Per hidden neuron the sum of the counts ``z [..., N]`` of the neurons aliased to it."""
    al = aliases.expand(z.shape)
    return torch.zeros_like(z).scatter_add(-1, al.clamp(min=0), z * (al >= 0))


def own_counts(z: Tensor, aliases: Tensor, cap: int = 31) -> Tensor:
    r"""Each hidden neuron's own spike count from the chip's emitted counts ``z [..., N]``.

    An alias target emits its own spikes plus those of its sources:
    ``z_j = \min(cap, Σ_{s→j} z_s) + k_j`` where it fires after its sources (lower indices),
    so ``k_j = z_j − \min(cap, Σ_{s→j} z_s)`` — exact for aliases from lower to higher
    indices (what the mapper creates), chains included: a source's emitted count ``z_s`` is
    what it passed on; gradients pass straight through the cap.
    """
    if not bool((aliases >= 0).any()):
        return z
    given = _alias_sum(z, aliases)
    return z - _straight(given, given.detach().clamp(max=cap))


def _evolve(
    v: Tensor, i: Tensor, dash_mem: Tensor, dash_syn: Tensor, bias: Tensor, count: bool = False
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Decay the currents, then integrate them (and the bias) into the membrane; the third
    value (with ``count``) says where one of the membrane's three saturations clipped."""
    i = decay(i, dash_syn)
    leak = decay(v, dash_mem) - v  # −decay(v): a 16-bit value, so −(−32768) wraps to −32768
    leak = _straight(leak, torch.where(leak.detach() == -LO, LO, leak.detach()))
    dv0 = leak + i.sum(-1)
    dv = saturate(dv0)
    dv1 = dv + bias
    dv = saturate(dv1)
    v1 = v + dv
    clipped = (_outside(dv0) | _outside(dv1) | _outside(v1)) if count else None
    return saturate(v1), i, clipped


def _outside(x: Tensor) -> Tensor:
    """Where ``x`` leaves the 16-bit range."""
    return (x.detach() < LO) | (x.detach() > HI)


def step(
    x: Tensor, s: XyloState, p: XyloParams, surrogate: Surrogate | None = None,
    observed: StepRecord | None = None, tally: Tally | None = None,
) -> tuple[StepRecord, XyloState]:
    """Advance the chip by one step on input counts ``x [B, Nin]`` (see the module docstring).

    ``observed`` (in-the-loop replay, :func:`run`): what a chip recorded in this step. The
    currents after the decay, the membranes before firing (``v + k ϑ``, ``k`` the own counts,
    since firing subtracted ``k ϑ``) and every recorded value take the chip's values through
    :func:`~spikeloop.dynamics.straight_through`, so the surrogate derivative is evaluated at
    the membrane the chip compared with its threshold. ``tally``: counts what hit a limit.
    """
    batch = s.v.shape[0]
    if tally is not None:
        tally.add("input", x.detach() > p.input_cap)
    x = x.clamp(max=p.input_cap)
    i = s.i.reshape(batch, -1)
    i, clip_in = _deliver(i, x, p.weights_in)
    i, clip_rec = _deliver(i, s.z, p.weights_rec)
    i = i.reshape(s.i.shape)
    i_out, clip_out = _deliver(s.i_out, s.z, p.weights_out)
    i_out = i_out.unsqueeze(-1)
    count = tally is not None
    v, i, clip_v = _evolve(s.v, i, p.dash_mem, p.dash_syn, p.bias, count)
    v_out, i_out, clip_v_out = _evolve(s.v_out, i_out, p.dash_mem_out,
                                       p.dash_syn_out.unsqueeze(-1), p.bias_out, count)
    if tally is not None:
        clips = [c for c in (clip_in, clip_rec) if c is not None]
        if clips:
            tally.add("current", clips[0] | clips[-1])
        if clip_out is not None:
            tally.add("current_out", clip_out)
        tally.add("membrane", clip_v)
        tally.add("membrane_out", clip_v_out)
    if observed is not None:
        own = own_counts(observed.z, p.aliases, p.hidden_cap)
        i = straight_through(i, observed.i)
        i_out = straight_through(i_out, observed.i_out.unsqueeze(-1))
        v = straight_through(v, observed.v + own * p.threshold)
        v_out = straight_through(v_out, observed.v_out + observed.z_out * p.threshold_out)
    z, v = _fire(v, p.threshold, p.hidden_cap, p.aliases, surrogate, p.alias_depth)
    z_out, v_out = _fire(v_out, p.threshold_out, p.output_cap, None, surrogate)
    rec = StepRecord(z, v, i, z_out, v_out, i_out.squeeze(-1))
    if observed is not None:
        rec = StepRecord(*(straight_through(m, o) for m, o in zip(rec, observed, strict=True)))
    return rec, state_after(rec)


def state_after(rec: StepRecord) -> XyloState:
    """The state a step leaves: its membranes, currents and the counts to deliver next."""
    return XyloState(rec.v, rec.i, rec.z, rec.v_out, rec.i_out)


def initial_state(batch: int, hidden: int, outputs: int, synapses: int = 2,
                  dtype: torch.dtype = torch.float64) -> XyloState:
    """All states zero (the chip after reset)."""
    z = torch.zeros(batch, hidden, dtype=dtype)
    return XyloState(z, torch.zeros(batch, hidden, synapses, dtype=dtype), z.clone(),
                     torch.zeros(batch, outputs, dtype=dtype),
                     torch.zeros(batch, outputs, dtype=dtype))


def run(
    x: Tensor, s: XyloState, p: XyloParams, surrogate: Surrogate | None = None,
    observed: StepRecord | None = None, tally: Tally | None = None,
) -> tuple[StepRecord, XyloState]:
    """Run :func:`step` over ``x [T, B, Nin]``; records stacked along time.

    ``observed`` (in-the-loop replay): what a chip recorded on ``x`` from ``s`` (time-major,
    as returned here). Every step's values are replaced by the observed ones with a
    straight-through identity (value from the chip, gradient from this model, see
    :func:`step`), so each step starts from the chip's state and every surrogate derivative is
    evaluated where the chip was. Where the chip computes what this model computes (the
    emulator), the replacement changes no value and the gradients are the QAT gradients.
    ``tally``: counts what hit a limit (:class:`Tally`).

    This keeps every step's records as Python objects (what the gradients need); the integer
    simulator runs long inputs through :mod:`spikeloop.chips.xylo.engine` instead (the same
    steps, tested bit for bit against this).
    """
    records = []
    for t, x_t in enumerate(x.unbind(0)):
        seen = None if observed is None else StepRecord(*(o[t].to(x.dtype) for o in observed))
        rec, s = step(x_t, s, p, surrogate, seen, tally)
        records.append(rec)
    return StepRecord(*(torch.stack(r) for r in zip(*records, strict=True))), s
