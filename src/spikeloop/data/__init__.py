"""Data sets and spike encoders."""

from spikeloop.data.afe import (
    AFE_CENTRES,
    AFEParams,
    AFEResult,
    AFEStream,
    FilterBank,
    afe_counts,
    design_bank,
    impulse_responses,
    measure_bank,
)
from spikeloop.data.ambient import AmbientClips, make_ambient, read_ambient
from spikeloop.data.augment import augment, random_flip, random_shift
from spikeloop.data.catalog import DATA_SETS, DEFAULT_DATA_DIR, data_dir, find, status
from spikeloop.data.cochlea import CochleaParams, cochlea_spikes, spectrogram_spikes
from spikeloop.data.digits import DIGITS_SIZES, digits_split, load_digits
from spikeloop.data.encoders import (
    ENCODERS,
    delta,
    direct,
    integrate,
    latency,
    log_latency,
    make_encoder,
    rate,
)
from spikeloop.data.events import EVENT_DTYPE, check_events, event_times, make_events
from spikeloop.data.idx import load_mnist_family, read_idx, write_idx
from spikeloop.data.keywords import KeywordClips, make_keywords, read_keywords
from spikeloop.data.loading import EventDataset, LabelledSubset, time_major_collate
from spikeloop.data.shd import SHD, SSC, read_shd, speaker_holdout, write_shd
from spikeloop.data.spoken_digits import make_spoken_digits
from spikeloop.data.store_recall import StoreRecall, store_recall
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
    "AFE_CENTRES",
    "CLASS_NAMES",
    "DATA_SETS",
    "DEFAULT_DATA_DIR",
    "DIGITS_SIZES",
    "ENCODERS",
    "EVENT_DTYPE",
    "SHD",
    "SSC",
    "YIN_YANG_SPLITS",
    "AFEParams",
    "AFEResult",
    "AFEStream",
    "AmbientClips",
    "ChannelShift",
    "CochleaParams",
    "Compose",
    "CropTime",
    "Downsample",
    "EventDataset",
    "FilterBank",
    "FixedLength",
    "KeywordClips",
    "LabelledSubset",
    "PadTime",
    "StoreRecall",
    "TimeJitter",
    "TimeShift",
    "ToRaster",
    "afe_counts",
    "augment",
    "check_events",
    "cochlea_spikes",
    "data_dir",
    "delta",
    "design_bank",
    "digits_split",
    "direct",
    "event_times",
    "find",
    "impulse_responses",
    "integrate",
    "latency",
    "load_digits",
    "load_mnist_family",
    "log_latency",
    "make_ambient",
    "make_encoder",
    "make_events",
    "make_keywords",
    "make_spoken_digits",
    "measure_bank",
    "random_flip",
    "random_shift",
    "rate",
    "read_ambient",
    "read_idx",
    "read_keywords",
    "read_shd",
    "speaker_holdout",
    "spectrogram_spikes",
    "status",
    "store_recall",
    "time_major_collate",
    "write_idx",
    "write_shd",
    "yin_yang",
    "yin_yang_split",
]
