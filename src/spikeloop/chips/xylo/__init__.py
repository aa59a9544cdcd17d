"""Emulated Xylo-like digital SNN processor (integer dynamics): spec, mapper, quantisation,
config, bit-exact simulator with streaming, QAT model and backend. Its hidden neurons have two
synaptic currents: ``spikeloop.nn.CubaLIF2`` is their float model, and
``spikeloop.network.blocks.synnet`` builds multi-time-scale networks for it and
``spikeloop.network.audio_blocks.wavesense`` dilated temporal-convolution networks.

Registered as the ``"xylo"`` backend. Pure stages::

    layout = map_graph(net.graph)                 # graph → chip layout (MappingError on limits)
    config, report = quantize(layout)             # → XyloConfig (JSON) + QuantizationReport
    run = simulate(config, raster)                # integer simulator, [T, 16] event counts
    resource_use(config)                          # neurons, currents and weights used
    memories(net.graph)                           # what BitFlips can hit: register, bits, size
"""

from spikeloop.chips.xylo.backend import XyloBackend
from spikeloop.chips.xylo.config import XyloConfig
from spikeloop.chips.xylo.dynamics import XyloParams, XyloState
from spikeloop.chips.xylo.faults import memories, sensitivity
from spikeloop.chips.xylo.mapper import XyloLayout, map_graph
from spikeloop.chips.xylo.qat import qat_run
from spikeloop.chips.xylo.quantize import QuantizationReport, chip_tensors, quantize
from spikeloop.chips.xylo.resources import resource_use
from spikeloop.chips.xylo.simulator import XyloRun, XyloStream, simulate, simulate_many
from spikeloop.chips.xylo.spec import XyloSpec

__all__ = [
    "QuantizationReport", "XyloBackend", "XyloConfig", "XyloLayout", "XyloParams",
    "XyloRun", "XyloSpec", "XyloState", "XyloStream", "chip_tensors", "map_graph", "memories",
    "qat_run", "quantize", "resource_use", "sensitivity", "simulate", "simulate_many",
]
