"""Data sets and spike encoders."""

from spikeloop.data.encoders import ENCODERS, delta, latency, log_latency, make_encoder, rate
from spikeloop.data.events import EVENT_DTYPE, check_events, event_times, make_events
from spikeloop.data.loading import EventDataset, LabelledSubset, time_major_collate
from spikeloop.data.shd import SHD, SSC, read_shd, speaker_holdout, write_shd
from spikeloop.data.transforms import (
    ChannelShift,
    Compose,
    CropTime,
    Downsample,
    FixedLength,
    PadTime,
    TimeJitter,
    TimeShift,
    ToRaster,
)
from spikeloop.data.yin_yang import CLASS_NAMES, YIN_YANG_SPLITS, yin_yang, yin_yang_split

__all__ = [
    "CLASS_NAMES",
    "ENCODERS",
    "EVENT_DTYPE",
    "SHD",
    "SSC",
    "YIN_YANG_SPLITS",
    "ChannelShift",
    "Compose",
    "CropTime",
    "Downsample",
    "EventDataset",
    "FixedLength",
    "LabelledSubset",
    "PadTime",
    "TimeJitter",
    "TimeShift",
    "ToRaster",
    "check_events",
    "delta",
    "event_times",
    "latency",
    "log_latency",
    "make_encoder",
    "make_events",
    "rate",
    "read_shd",
    "speaker_holdout",
    "time_major_collate",
    "write_shd",
    "yin_yang",
    "yin_yang_split",
]
