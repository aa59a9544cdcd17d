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

__all__ = ["DEVICE_MODELS", "Crossbar", "DeviceContext", "DeviceModel", "Devices", "MemoryDevice",
           "NeuronDevice", "SynapseDevice", "build_device", "device_context", "node_devices",
           "straight_through"]
