"""Data sets and spike encoders."""

from spikeloop.data.encoders import ENCODERS, delta, latency, log_latency, make_encoder, rate
from spikeloop.data.yin_yang import CLASS_NAMES, YIN_YANG_SPLITS, yin_yang, yin_yang_split

__all__ = [
    "CLASS_NAMES",
    "ENCODERS",
    "YIN_YANG_SPLITS",
    "delta",
    "latency",
    "log_latency",
    "make_encoder",
    "rate",
    "yin_yang",
    "yin_yang_split",
]
