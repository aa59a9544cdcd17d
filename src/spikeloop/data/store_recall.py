r"""A store-and-recall memory task, in the style of the long short-term memory SNN literature
(the store–recall task of Bellec et al. 2018, "Long short-term memory and learning-to-learn
in networks of spiking neurons", as recalled here, not re-read): the network sees a value
together with a STORE cue, then distractor time, then a RECALL cue, and must report the
stored value during the recall cue. With ``distractors > 0`` other values are shown in the gap
without the STORE cue, and the network must ignore them.

Layout of one trial (``dt`` per step; ``S = R = round(cue / dt)``, ``L = round(lead / dt)``,
gaps ``G ∈ [G_min, G_max] = [round(gap[0] / dt), round(gap[1] / dt)]`` steps)::

    step   0 ........ s0 ...... s0+S ........ T-R ........ T
           | lead+slack | STORE+value | gap G (noise) | RECALL |

- ``T = L + S + G_max + R`` steps, the same for every trial;
- the store window is ``[s0, s0 + S)`` with ``s0 = L + G_max − G``: its gap ``G`` to the
  recall window is drawn per trial, uniformly among the integers of ``[G_min, G_max]``;
- the recall window is ``[T − R, T)``, the last ``R`` steps of every trial; ``mask`` is true
  there (the steps where the answer counts) and ``targets`` holds the stored value there
  (``-1`` elsewhere).

Channels (``C = (n_values + 2) · group`` inputs, ``group`` channels per group, in this
order): ``n_values`` value groups (group ``k`` codes value ``k``), the STORE group, the RECALL
group. Every channel fires as a Bernoulli process at ``noise_rate`` (Hz) throughout; in
addition, during the store window the stored value's group and the STORE group fire at
``rate``, and during the recall window the RECALL group fires at ``rate`` (a step spikes with
probability ``1 − (1 − rate·dt)(1 − noise_rate·dt)``). The value group is silent apart from
noise at recall, so the value must be remembered across the gap.

Distractors (``distractors = n > 0``): in each trial, ``n`` presentations of a value
``u_i`` drawn uniformly from ``0 … n_values − 1`` (independently of the stored value and of
each other; it may equal it), each one cue long (``S`` steps), during which value group
``u_i`` fires at ``rate`` while the STORE group does not (noise only). They lie inside the gap,
at least one cue length clear of the store and recall cues and not overlapping each other
(they may touch): the free region of a trial with gap ``G`` is
``[s0 + 2S, T − 2S)``, ``A = G − 2S`` steps long, and with ``F = A − nS`` spare steps the
``i``-th distractor (``i = 0 … n − 1``) starts at

.. math::

    d_i = s_0 + 2S + o_{(i)} + iS, \qquad o_j \sim \mathcal{U}\{0, \dots, F\}\ \text{i.i.d.},

where ``o_(0) ≤ … ≤ o_(n−1)`` are the offsets sorted. This needs ``F ≥ 0`` in every trial,
that is ``G_min ≥ (n + 2) S``; a shorter shortest gap is refused. The label and targets stay
the stored value. The offsets and values are drawn from the same generator after the labels
and gaps and before the spikes, and not at all when ``n = 0``, so trials without distractors
are those of the generator without the option, bit for bit.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from spikeloop.checks import check_dt, check_int, check_real, show
from spikeloop.errors import ParameterError

__all__ = ["StoreRecall", "store_recall"]

_MAX_STEPS = 100_000


class StoreRecall(NamedTuple):
    """One batch of store–recall trials (see :mod:`spikeloop.data.store_recall`).

    Attributes:
        spikes: inputs ``[T, B, C]``, float 0/1.
        labels: the stored value per trial ``[B]`` (int64, ``0 … n_values − 1``).
        targets: ``[T, B]`` int64: the stored value at the recall steps, ``-1`` elsewhere.
        mask: ``[T, B]`` bool: the recall steps, where the answer counts.
        store_start: first step of each trial's store window ``[B]`` (int64).
        gap_steps: steps from the end of the store window to the start of the recall window
            ``[B]`` (int64).
        distractor_start: first step of each distractor ``[B, n]`` (int64, increasing along
            a row; ``[B, 0]`` without distractors).
        distractor_values: the value each distractor shows ``[B, n]`` (int64).
        dt: the time step (s).
    """

    spikes: Tensor
    labels: Tensor
    targets: Tensor
    mask: Tensor
    store_start: Tensor
    gap_steps: Tensor
    distractor_start: Tensor
    distractor_values: Tensor
    dt: float


def _steps(seconds: float, dt: float, who: str) -> int:
    """``seconds`` as a whole number of steps (rounded), refusing a time under one step."""
    steps = round(seconds / dt)
    if seconds < dt * (1 - 1e-9):
        raise ParameterError(f"store_recall: {who} = {seconds:g} s is under one step "
                             f"(dt = {dt:g} s); it must be at least dt")
    return steps


def _rate(value: Any, who: str, dt: float) -> float:
    rate = check_real(value, f"store_recall: {who} (Hz)", 0)
    if rate * dt > 1:
        raise ParameterError(f"store_recall: {who} = {rate:g} Hz asks for more than one spike "
                             f"per step; the limit is 1 / dt = {1 / dt:g} Hz")
    return rate


def store_recall(
    size: int,
    *,
    seed: int = 0,
    dt: float = 5e-3,
    gap: tuple[float, float] = (0.2, 1.0),
    n_values: int = 2,
    group: int = 10,
    cue: float = 50e-3,
    lead: float = 50e-3,
    rate: float = 100.0,
    noise_rate: float = 5.0,
    distractors: int = 0,
) -> StoreRecall:
    """``size`` store–recall trials, deterministic for a given ``seed`` (a
    ``torch.Generator`` on the CPU; layout and timing: :mod:`spikeloop.data.store_recall`).

    Args:
        size: number of trials ``B`` (``≥ 1``).
        seed: seed of the generator (``0 ≤ seed < 2**64``).
        dt: time step (s).
        gap: ``(shortest, longest)`` time (s) from the end of the store cue to the start of
            the recall cue, ``dt ≤ shortest ≤ longest``.
        n_values: number of values to store (``≥ 2``; chance level ``1 / n_values``).
        group: input channels per group (``≥ 1``).
        cue: duration of the store and of the recall cue (s, ``≥ dt``).
        lead: time before the earliest store cue (s, ``≥ 0``).
        rate: firing rate of an active group (Hz, ``0 < rate ≤ 1/dt``).
        noise_rate: background rate of every channel (Hz, ``0 ≤ noise_rate ≤ 1/dt``).
        distractors: value presentations in the gap without the STORE cue (``≥ 0``), each one
            cue long, at random non-overlapping times at least one cue length clear of the
            store and recall cues, each showing a uniformly random value; the shortest gap
            must hold them: ``gap[0] ≥ (distractors + 2) · cue`` (in steps). ``0`` (the
            default) gives the trials of the generator without distractors, bit for bit.

    Raises:
        ArgumentTypeError: an argument of the wrong type.
        ParameterError: a value out of its range (the message names the limit), a gap range
            with ``shortest > longest`` or under one step, a trial longer than 100 000 steps,
            a shortest gap too short for the distractors.
        TimeStepError: ``dt`` is not a finite number ``> 0``.
    """
    size = check_int(size, "store_recall: size", 1)
    seed = check_int(seed, "store_recall: seed", 0, 2**64 - 1)
    dt = check_dt(dt, "store_recall: dt")
    n_values = check_int(n_values, "store_recall: n_values", 2)
    group = check_int(group, "store_recall: group", 1)
    if isinstance(gap, str) or not hasattr(gap, "__len__") or len(gap) != 2:
        raise ParameterError(f"store_recall: gap must be (shortest, longest) in seconds, got "
                             f"{show(gap)}")
    g_lo, g_hi = (check_real(g, f"store_recall: gap[{k}] (s)", 0, low_open=True)
                  for k, g in enumerate(gap))
    if g_lo > g_hi:
        raise ParameterError(f"store_recall: gap = ({g_lo:g}, {g_hi:g}) s: the shortest gap "
                             "must not exceed the longest")
    g_min, g_max = _steps(g_lo, dt, "gap[0]"), _steps(g_hi, dt, "gap[1]")
    cue_steps = _steps(check_real(cue, "store_recall: cue (s)", 0, low_open=True), dt, "cue")
    lead_steps = round(check_real(lead, "store_recall: lead (s)", 0) / dt)
    rate = _rate(rate, "rate", dt)
    if rate == 0:
        raise ParameterError("store_recall: rate must be > 0 Hz (the cues would be silent)")
    noise_rate = _rate(noise_rate, "noise_rate", dt)
    distractors = check_int(distractors, "store_recall: distractors", 0)
    if distractors and g_min < (distractors + 2) * cue_steps:
        need = (distractors + 2) * cue_steps
        raise ParameterError(
            f"store_recall: {distractors} distractors of one cue ({cue_steps} steps) each, one "
            f"cue clear of the store and recall cues, need a shortest gap of at least "
            f"(distractors + 2) · cue = {need} steps ({need * dt:g} s); the shortest gap is "
            f"{g_min} steps ({g_min * dt:g} s)")
    steps = lead_steps + 2 * cue_steps + g_max
    if steps > _MAX_STEPS:
        raise ParameterError(f"store_recall: a trial of {steps} steps exceeds the limit of "
                             f"{_MAX_STEPS} steps; use a larger dt or shorter gaps")

    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(n_values, (size,), generator=gen)
    gaps = torch.randint(g_min, g_max + 1, (size,), generator=gen)
    start = lead_steps + g_max - gaps
    if distractors:  # sorted offsets in [0, F] per trial, shifted by a cue length each
        spare = gaps - (distractors + 2) * cue_steps  # F [B], ≥ 0
        offsets = (torch.rand(size, distractors, generator=gen, dtype=torch.float64)
                   * (spare[:, None] + 1)).floor().long().clamp_(max=spare[:, None])
        d_start = (start[:, None] + 2 * cue_steps + offsets.sort(1).values
                   + cue_steps * torch.arange(distractors))
        d_values = torch.randint(n_values, (size, distractors), generator=gen)
    else:
        d_start = torch.zeros(size, 0, dtype=torch.int64)
        d_values = torch.zeros(size, 0, dtype=torch.int64)
    channels = (n_values + 2) * group
    t = torch.arange(steps)[:, None]  # [T, 1]
    store = (t >= start) & (t < start + cue_steps)  # [T, B]
    recall = (t >= steps - cue_steps).expand(steps, size)
    grp = torch.arange(channels) // group  # group of each channel
    active = (store[:, :, None] & ((grp == labels[:, None]) | (grp == n_values))[None]) | (
        recall[:, :, None] & (grp == n_values + 1))
    for i in range(distractors):
        shown = (t >= d_start[:, i]) & (t < d_start[:, i] + cue_steps)  # [T, B]
        active |= shown[:, :, None] & (grp == d_values[:, i, None])[None]
    p_on, p_noise = rate * dt, noise_rate * dt
    p = torch.where(active, 1 - (1 - p_on) * (1 - p_noise), p_noise)
    spikes = (torch.rand(steps, size, channels, generator=gen) < p).float()
    targets = torch.where(recall, labels[None], -1)
    return StoreRecall(spikes, labels, targets, recall.clone(), start, gaps, d_start, d_values,
                       dt)
