"""spikeloop with its default recording: every population's spikes, membrane and synaptic
current (see :mod:`.spikeloop_lib`, which records only what the peers return). Not a peer: a
second row of spikeloop, to show what the default recording costs.
"""

from __future__ import annotations

from benchmarks.speed.libs import Model, spikeloop_lib
from benchmarks.speed.workload import Workload

NAME = "spikeloop_all"
version = spikeloop_lib.version


def build(wl: Workload) -> Model:
    return spikeloop_lib.build(wl, record=None)
