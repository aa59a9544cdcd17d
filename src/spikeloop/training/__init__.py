"""Losses, regularisers, configs and the trainer."""

from spikeloop.training import (
    desire,  # noqa: F401  (registers train.method desire_bp)
    vdsp,  # noqa: F401  (registers train.method: vdsp)
)
from spikeloop.training.config import Config, load_config
from spikeloop.training.experiment import DATASETS, build_network, init_weights, load_data
from spikeloop.training.losses import (
    LOSSES,
    ExpMembraneCE,
    FiringRateRegularizer,
    FirstSpikeCE,
    Loss,
    MaxMembraneCE,
    SpikeCountCE,
    first_spike_times,
    make_loss,
    spike_counts,
)
from spikeloop.training.methods import METHODS, TrainingMethod, register_method
from spikeloop.training.proxy import check_proxy, proxy_output, rate_network
from spikeloop.training.ssnn import SSNNBackprop  # noqa: F401  (train.method: ssnn_bp)
from spikeloop.training.trainer import Trainer

__all__ = [
    "DATASETS",
    "LOSSES",
    "METHODS",
    "Config",
    "ExpMembraneCE",
    "FiringRateRegularizer",
    "FirstSpikeCE",
    "Loss",
    "MaxMembraneCE",
    "SpikeCountCE",
    "Trainer",
    "TrainingMethod",
    "build_network",
    "check_proxy",
    "first_spike_times",
    "init_weights",
    "load_config",
    "load_data",
    "make_loss",
    "proxy_output",
    "rate_network",
    "register_method",
    "spike_counts",
]
