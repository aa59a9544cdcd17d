"""Summary statistics shared by the benchmark scripts (they live in the package, where
``spikeloop sweep`` uses them too)."""

from spikeloop.training.stats import mean_sd, show_mean_sd

__all__ = ["mean_sd", "show_mean_sd"]
