r"""The event backend: exact event-driven simulation of current-based LIF networks and exact
gradients by EventProp (Wunderlich & Pehle 2021).

Model (the continuous-time CUBA LIF of :mod:`spikeloop.dynamics.neurons`, per neuron)

.. math::
    τ_{syn} \dot I = -I, \qquad τ_{mem} \dot V = (v_{leak} - V) + r I,

with jumps :math:`I_n \leftarrow I_n + a_e W_{n,c}` at each input event ``e`` (time
:math:`t_e`, channel ``c``, amplitude :math:`a_e`), and a spike at every time :math:`t_k` at
which :math:`V` crosses :math:`ϑ` from below: then :math:`V \leftarrow v_{reset}` (``reset=
"value"`` and ``"subtract"`` coincide for an exact crossing), recurrent partners receive
:math:`I_m \leftarrow I_m + W^{rec}_{m,n}`, and with ``t_refrac > 0`` the membrane stays at
:math:`v_{reset}` until :math:`t_k + t_{refrac}` while :math:`I` keeps evolving.

Adaptive (AHP) neurons add the current :math:`A`, :math:`τ_{adapt}\dot A = -A`, with
:math:`-r A` in the membrane equation and :math:`A_n \leftarrow A_n + b` at each spike of
``n`` (:mod:`~spikeloop.backends.event.cuba`, :mod:`~spikeloop.backends.event.adjoint`).

A per-axon ``DelayedLinear`` delays each event of channel ``c``: it arrives at
:math:`t_e + d_c` exactly (continuous time; arrivals at or after the window end are dropped),
see :func:`~spikeloop.backends.event.forward._arrivals`; its gradient is EventProp's
arrival-time gradient summed per channel (:mod:`~spikeloop.backends.event.adjoint`).

The closed form between events and the threshold-crossing search are in
:mod:`~spikeloop.backends.event.cuba`, the simulation in :mod:`~spikeloop.backends.event.forward`,
EventProp in :mod:`~spikeloop.backends.event.adjoint`, the readouts' closed forms in
:mod:`~spikeloop.backends.event.readout`, the reading of the IR graph in
:mod:`~spikeloop.backends.event.layers` and :class:`EventBackend` in
:mod:`~spikeloop.backends.event.backend`.

Time convention (matches the dense simulator): an input spike at step ``k`` of a dense tensor
``[T, B, C]`` is an event at :math:`t = k·dt`; a spike at time ``t`` appears on the grid at step
:math:`\lceil t/dt \rceil - 1` (step ``k`` ends at ``(k+1)·dt``); the window is
:math:`[0, T·dt)`. The dense simulator converges to this model as ``dt → 0`` (tested).

Simultaneous spikes of recurrently connected neurons (a measure-zero event) are processed
together without their mutual timing derivatives.

``EventBackend(engine="grid")`` is EventProp on the time grid instead (time-driven, as mlGeNN
runs it): the simulator's forward pass and EventProp's adjoint step by step
(:mod:`~spikeloop.backends.event.grid`, :mod:`spikeloop.kernels.eventprop`); its spiking
populations' observables are :class:`GridObservables`.
"""

from spikeloop.backends.event.backend import EventBackend
from spikeloop.backends.event.grid import GridObservables
from spikeloop.backends.event.records import EventObservables, SpikeEvents

__all__ = ["EventBackend", "EventObservables", "GridObservables", "SpikeEvents"]
