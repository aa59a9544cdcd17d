"""spikeloop: spiking neural networks on simulators and (emulated) neuromorphic chips."""

__version__ = "0.1.0"
