"""spikeloop with learned delays per axon on the input projection (see
:mod:`.spikeloop_delay_lib`). Not a peer: a second row of spikeloop."""

from __future__ import annotations

import functools

from benchmarks.speed.libs import spikeloop_delay_lib, spikeloop_lib

NAME = "spikeloop_delay_axon"
version = spikeloop_lib.version
build = functools.partial(spikeloop_delay_lib.build, per="axon")
