"""Device models: what real devices do to a network's weights, neurons and memories.

Attach models to nodes with :class:`Devices` (``net.devices = Devices({...})``); every
backend then runs the realised network (see :mod:`spikeloop.devices.base`).
"""

from spikeloop.devices.attach import Devices, device_context, node_devices
from spikeloop.devices.base import (
    DEVICE_MODELS,
    DeviceContext,
    DeviceModel,
    MemoryDevice,
    NeuronDevice,
    SynapseDevice,
    build_device,
    straight_through,
)
from spikeloop.devices.crossbar import Crossbar
from spikeloop.devices.faults import BitFlips, apply_flips, draw_flips, flip_bits
from spikeloop.devices.neuron import AnalogNeuron, transfer_curve

__all__ = ["DEVICE_MODELS", "AnalogNeuron", "BitFlips", "Crossbar", "DeviceContext", "DeviceModel",
           "Devices", "MemoryDevice", "NeuronDevice", "SynapseDevice", "apply_flips",
           "build_device", "device_context", "draw_flips", "flip_bits", "node_devices",
           "straight_through", "transfer_curve"]
