r"""A first-order energy estimate of a run on the Xylo-like chip, from counted operations.

**Counting** (NeuroBench's "effective accumulate" convention: a synaptic operation is one
non-zero presynaptic event delivered through one non-zero weight; NeuroBench
``docs/metrics/workload_metrics/synaptic_operations.rst``):

.. math::

    \mathrm{SOP} = \sum_t \Big[\sum_i x_t[i]\, f_\mathrm{in}(i)
                 + \sum_j z_t[j]\, \big(f_\mathrm{rec}(j) + f_\mathrm{out}(j)\big)\Big]

with ``x_t[i]`` the input events of channel ``i`` (counts, as the chip delivers each event),
``z_t[j]`` the hidden spike counts the chip recorded, and ``f(·)`` the number of non-zero
weights of that row (each ``(target neuron, synapse)`` pair is one accumulate). The chip is
clocked: every neuron's state is updated on every step, so the neuron updates are
``U = T · (N + O)`` per sample.

**Energy.** ``E_dyn = e_SOP · SOP + e_upd · U`` and ``E_idle = P_idle · T · dt``;
``E = E_dyn + E_idle``. No energy per operation has been published for Xylo, so the
defaults (:data:`LOIHI_PROXY`) are Loihi's: 23.6 pJ per synaptic spike operation (the
minimum) and 81 pJ per active neuron update (Davies et al., "Loihi: a neuromorphic manycore
processor with on-chip learning", IEEE Micro 38(1), 2018, Table 2 — figures from pre-silicon
simulation of a 14 nm design; read in transcriptions of the table, not in the paper). The
idle power is Xylo Audio 2's, 219 µW (Bos & Muir 2022, arXiv:2208.12991, as quoted by the
open-neuromorphic.org Xylo page; with 93 µW dynamic power on ambient audio). Xylo's published
inference figures to compare with: 291 µW dynamic power and 6.6 µJ per inference on the
Aloha keyword task (Bos & Muir 2024, arXiv:2406.15112, abstract); < 100 µW and 100 ms latency
on ambient audio (arXiv:2208.12991, abstract). The estimate is first order: it leaves out the
audio front end, I/O, memory leakage and the clock tree, and a per-operation energy of
another chip in another process.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from spikeloop.checks import check_real
from spikeloop.chips.xylo.config import XyloConfig
from spikeloop.chips.xylo.simulator import XyloRun, raster
from spikeloop.errors import ShapeError


@dataclass(frozen=True)
class EnergyModel:
    """Energies per operation (J) and idle power (W), with where they come from."""

    synop_j: float
    update_j: float
    idle_w: float
    source: str

    def __post_init__(self) -> None:
        for name in ("synop_j", "update_j", "idle_w"):
            check_real(getattr(self, name), f"EnergyModel.{name}", low=0.0)


LOIHI_PROXY = EnergyModel(
    synop_j=23.6e-12, update_j=81e-12, idle_w=219e-6,
    source="per operation: Loihi (Davies et al. 2018, IEEE Micro, Table 2: 23.6 pJ per "
           "synaptic op, 81 pJ per active neuron update); idle: Xylo Audio 2, 219 µW "
           "(Bos & Muir 2022, arXiv:2208.12991)")
"""The default :class:`EnergyModel` (module docstring)."""


@dataclass(frozen=True)
class OpCounts:
    """Operations of a run, summed over its samples: ``sops`` (input and hidden parts),
    ``updates`` (neuron-steps), ``steps`` per sample and ``samples``."""

    sops_input: int
    sops_hidden: int
    updates: int
    steps: int
    samples: int

    @property
    def sops(self) -> int:
        """All synaptic operations."""
        return self.sops_input + self.sops_hidden

    def __add__(self, later: OpCounts) -> OpCounts:
        """The counts of a run followed by ``later``, its continuation on the same samples
        (streaming chunks: the steps add up).

        Raises:
            ShapeError: the two ran on different numbers of samples.
        """
        if later.samples != self.samples:
            raise ShapeError(f"chunks of one run hold the same samples, got {self.samples} "
                             f"and {later.samples}")
        return OpCounts(self.sops_input + later.sops_input, self.sops_hidden + later.sops_hidden,
                        self.updates + later.updates, self.steps + later.steps, self.samples)


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy per sample (J): ``dynamic``, ``idle`` and their sum ``total``; ``duration_s``
    of one sample; ``sops`` and ``updates`` per sample."""

    dynamic_j: float
    idle_j: float
    duration_s: float
    sops: float
    updates: float
    source: str

    @property
    def total_j(self) -> float:
        """Dynamic plus idle energy per sample."""
        return self.dynamic_j + self.idle_j

    @property
    def dynamic_power_w(self) -> float:
        """Mean dynamic power over the sample."""
        return self.dynamic_j / self.duration_s


def count_ops(config: XyloConfig, x: Tensor, run: XyloRun) -> OpCounts:
    """Count the synaptic operations and neuron updates of ``run`` (``config`` on the input
    raster ``x [T, Nin]`` or ``[T, B, Nin]``), as the module docstring defines.

    Raises:
        ShapeError: ``x`` and ``run`` disagree on steps or batch.
    """
    x3, _ = raster(x, config.num_inputs)
    spikes = run.spikes if run.spikes.dim() == 3 else run.spikes.unsqueeze(1)
    if spikes.shape[:2] != x3.shape[:2]:
        raise ShapeError(f"the run has [T, B] = {tuple(spikes.shape[:2])}, the input "
                         f"{tuple(x3.shape[:2])}")
    fan_in = (config.weights_in != 0).flatten(1).sum(1).to(torch.float64)
    fan_hidden = ((config.weights_rec != 0).flatten(1).sum(1)
                  + (config.weights_out != 0).sum(1)).to(torch.float64)
    events_in = x3.to(torch.float64).sum((0, 1))
    spikes_hidden = spikes.to(torch.float64).sum((0, 1))
    steps, batch = x3.shape[0], x3.shape[1]
    return OpCounts(int(events_in @ fan_in), int(spikes_hidden @ fan_hidden),
                    steps * batch * (config.num_hidden + config.num_outputs), steps, batch)


def estimate(counts: OpCounts, dt: float, model: EnergyModel = LOIHI_PROXY) -> EnergyEstimate:
    """Energy per sample from :func:`count_ops`'s counts with ``model``'s energies."""
    dt = check_real(dt, "dt", low=0.0, low_open=True)
    n = counts.samples
    duration = counts.steps * dt
    sops, updates = counts.sops / n, counts.updates / n
    return EnergyEstimate(model.synop_j * sops + model.update_j * updates,
                          model.idle_w * duration, duration, sops, updates, model.source)
