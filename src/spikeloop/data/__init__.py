"""Data sets and spike encoders."""

from spikeloop.data.cochlea import CochleaParams, cochlea_spikes, spectrogram_spikes
from spikeloop.data.encoders import ENCODERS, delta, latency, log_latency, make_encoder, rate
from spikeloop.data.spoken_digits import make_spoken_digits
from spikeloop.data.yin_yang import CLASS_NAMES, YIN_YANG_SPLITS, yin_yang, yin_yang_split

__all__ = [
    "CLASS_NAMES",
    "ENCODERS",
    "YIN_YANG_SPLITS",
    "CochleaParams",
    "cochlea_spikes",
    "delta",
    "latency",
    "log_latency",
    "make_encoder",
    "make_spoken_digits",
    "rate",
    "spectrogram_spikes",
    "yin_yang",
    "yin_yang_split",
]
