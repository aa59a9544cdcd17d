"""Data sets and spike encoders."""

from spikeloop.data.catalog import DATA_SETS, DEFAULT_DATA_DIR, data_dir, find, status
from spikeloop.data.digits import DIGITS_SIZES, digits_split, load_digits
from spikeloop.data.encoders import (
    ENCODERS,
    delta,
    direct,
    latency,
    log_latency,
    make_encoder,
    rate,
)
from spikeloop.data.idx import load_mnist_family, read_idx, write_idx
from spikeloop.data.yin_yang import CLASS_NAMES, YIN_YANG_SPLITS, yin_yang, yin_yang_split

__all__ = [
    "CLASS_NAMES",
    "DATA_SETS",
    "DEFAULT_DATA_DIR",
    "DIGITS_SIZES",
    "ENCODERS",
    "YIN_YANG_SPLITS",
    "data_dir",
    "delta",
    "direct",
    "digits_split",
    "find",
    "latency",
    "load_digits",
    "load_mnist_family",
    "log_latency",
    "make_encoder",
    "rate",
    "read_idx",
    "status",
    "write_idx",
    "yin_yang",
    "yin_yang_split",
]
