"""Plots of spike rasters, membrane traces and training curves (matplotlib, Agg, no pyplot)."""

from spikeloop.viz.plots import (
    compare_traces,
    membrane_traces,
    raster_panel,
    spike_raster,
    timed_traces,
    training_curves,
)

__all__ = [
    "compare_traces",
    "membrane_traces",
    "raster_panel",
    "spike_raster",
    "timed_traces",
    "training_curves",
]
