r"""The population time loop: one function that runs any registered neuron model over a
sequence, by the reference step loop or the fused kernel.

:func:`run_population` is what the ``spikeloop.nn`` populations call in ``forward``, what the
simulator backend calls for every population node of the IR, and what the chip emulators and
the in-the-loop replay call with their own parameters. It takes the model's description
(:class:`~spikeloop.dynamics.models.NeuronModel`), a parameter record and the simulation settings,
never a module.

Reference loop, for ``k = 0 … T−1`` (``W_rec`` the optional recurrent projection, spikes of
step ``k`` arrive at step ``k+1``):

.. math::
    x'_k = x_k + W_{rec} z_{k-1} (+ b_{rec}),\qquad (z_k, v_k, s_{k+1}) =
    \mathrm{step}(x'_k, s_k, p, c, σ', o_k)

with ``c = coefficients(p, dt, method)`` and ``o_k`` the device observation of step ``k``
(in-the-loop training, see :func:`~spikeloop.dynamics.fire`). The fused kernel
(:func:`~spikeloop.kernels.neuron_loop`) computes the same recursion in one autograd node for the
models that declare the ``"fused"`` engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, MutableMapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import torch
from torch import Tensor

from spikeloop._runtime import tune_allocator
from spikeloop.dynamics import neurons as dyn
from spikeloop.dynamics.models import NeuronModel, PopulationState
from spikeloop.dynamics.surrogate import BandLimited, Surrogate
from spikeloop.errors import ParameterError, ShapeError
from spikeloop.kernels.eventprop import GridEventProp
from spikeloop.kernels.fused import LoopConfig, neuron_loop, per_neuron
from spikeloop.observables import Observables

Kernel = Literal["auto", "fused", "reference"]
KERNELS = ("auto", "fused", "reference")


@dataclass(frozen=True)
class Recurrent:
    """A population's recurrent projection: ``weight [N, N]`` (and ``bias``), or ``fn`` (a
    custom ``z ↦ current``, e.g. a chip's noisy synapses; reference loop only)."""

    weight: Tensor | None = None
    bias: Tensor | None = None
    fn: Callable[[Tensor], Tensor] | None = None

    def __call__(self, z: Tensor) -> Tensor:
        if self.fn is not None:
            return self.fn(z)
        return torch.nn.functional.linear(z, self.weight, self.bias)

    @property
    def fusable(self) -> bool:
        """The fused kernel takes a plain weight without bias."""
        return self.fn is None and self.bias is None


def initial_state(
    model: NeuronModel, shape: tuple[int, ...], batch: int, like: Tensor, p: Any,
    recurrent: bool = False,
) -> PopulationState:
    """Resting state for ``batch`` samples (``v = v_leak`` of ``p``, currents 0), dtype and
    device of ``like``."""
    zeros = like.new_zeros((batch, *shape))
    neuron = model.state(**{n: zeros + getattr(p, "v_leak", 0.0) if n == "v" else zeros
                            for n in model.state._fields})
    return PopulationState(neuron, zeros if recurrent else None)


def coefficients(
    model: NeuronModel, p: Any, dt: float, method: dyn.Method,
    cache: MutableMapping[str, Any] | None = None,
) -> Any:
    """``model.coefficients(p, dt, method)``, reused from ``cache`` while ``p`` holds the same
    values.

    Parameters rarely change between calls (neuron parameters are often not trained, and a
    chip backend reuses its records), and deriving the coefficients costs a few dozen small
    tensor operations. The last result is kept with copies of the values it came from and
    returned when every field compares equal; never when a parameter needs a graph
    (gradients enabled and ``requires_grad``), so autograd always sees fresh coefficients,
    and never in ``torch.inference_mode`` (inference tensors cannot enter a later graph).
    """
    values = [getattr(p, f.name) for f in fields(p)]
    tensors = [v for v in values if isinstance(v, Tensor)]
    if cache is None or torch.is_inference_mode_enabled() or (
            torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
        return model.coefficients(p, dt, method)  # (inference tensors must not be kept)
    key = (model.name, type(p), dt, method)
    cached = cache.get("coefficients")
    if cached is not None and cached[0] == key and all(
        (torch.equal(a, b) if isinstance(a, Tensor) and isinstance(b, Tensor)
         and a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
         else not isinstance(a, Tensor) and not isinstance(b, Tensor) and a == b)
        for a, b in zip(cached[1], values, strict=True)
    ):
        return cached[2]
    c = model.coefficients(p, dt, method)
    if not isinstance(c, dyn.Coefficients):  # e.g. one record per current: not kept
        return c
    kept = [v.detach().clone() if isinstance(v, Tensor) else v for v in values]
    # own copies: a coefficient may be a parameter itself (e.g. x_gain = r), changed in place
    own = replace(c, **{f.name: getattr(c, f.name).detach().clone() for f in fields(c)
                        if isinstance(getattr(c, f.name), Tensor)})
    cache["coefficients"] = (key, kept, own)
    return c


def fused_unsupported(model: NeuronModel, p: Any, recurrent: Recurrent | None) -> str | None:
    """Why ``model`` with parameters ``p`` cannot run fused (``None`` if it can)."""
    if "fused" not in model.engines:
        return f"the {model.name} model"
    if model.spiking and not p.detach_reset:
        return "detach_reset=False"
    if recurrent is not None and not recurrent.fusable:
        return "a custom recurrent projection or one with a bias"
    return None


def run_population(
    model: NeuronModel,
    x: Tensor,
    p: Any,
    *,
    dt: float,
    method: dyn.Method,
    surrogate: Surrogate,
    shape: tuple[int, ...],
    state: PopulationState | None = None,
    observed: Observables | None = None,
    recurrent: Recurrent | None = None,
    kernel: Kernel = "auto",
    grad_band: float | None = None,
    record_current: bool = True,
    record_v: bool = True,
    cache: MutableMapping[str, Any] | None = None,
    device: Callable[[Tensor, Any, Any, Any], Tensor] | None = None,
    eventprop: GridEventProp | None = None,
) -> tuple[Observables, PopulationState]:
    """Run ``model`` over ``x [T, B, *input]`` with parameters ``p`` (a record of
    ``model.params``); returns the observables and the final state.

    ``observed`` (in-the-loop training): membrane and spikes a device recorded; the returned
    values are the observed ones and gradients flow through the model evaluated at them.
    ``kernel``: ``"reference"`` loops the step function under autograd; ``"fused"`` runs
    :func:`~spikeloop.kernels.neuron_loop` (one autograd node, hand-written backward, native
    CPU code for float32) and raises :class:`ParameterError` where it cannot (see
    :func:`fused_unsupported`); ``"auto"`` fuses wherever possible.
    ``grad_band``: sparse surrogate backprop — the surrogate derivative is zero where
    ``|v − ϑ| ≥ grad_band`` (:class:`~spikeloop.dynamics.BandLimited`).
    ``record_current``: return the synaptic current ``i`` (``False``: ``i = None``). A full
    replay (membrane and, for spiking models, spikes observed) never records it.
    ``record_v``: return the membrane (``False``: ``v = None`` for spiking models; under
    ``torch.no_grad()`` it is then not written at all). Non-spiking models always return it.
    ``cache``: where to keep derived coefficients between calls (:func:`coefficients`).
    ``device``: ``(x_t, neuron_state, p, c) → x̃_t``, the input of each step as a device's
    neuron integrates it (:class:`~spikeloop.devices.NeuronDevice`; ``p`` the parameter record
    run, ``c`` its coefficients, so a device knows ``v_leak``, ``v_threshold``, ``β``, the
    input gains of the circuits it runs on); it needs the step loop, so the
    fused kernel is not used (``kernel="fused"`` raises).
    ``eventprop``: the backward pass is EventProp's on the grid instead of the surrogate's
    (:mod:`~spikeloop.kernels.eventprop`; the fused kernel only: anything else raises).
    """
    spiking = model.spiking
    record_v = record_v or not spiking
    if x.device.type == "cpu":
        tune_allocator()  # from the first CPU time loop on, freed memory is reused
    record_current = record_current and not _full_replay(observed, spiking)
    if kernel not in KERNELS:
        raise ParameterError(f"unknown kernel {kernel!r}; known: {', '.join(KERNELS)}")
    if grad_band is not None:
        surrogate = BandLimited(surrogate, grad_band)
    if state is None:
        state = initial_state(model, shape, x.shape[1], x, p, recurrent is not None)
    elif tuple(state.neuron[0].shape) != (x.shape[1], *shape):
        raise ShapeError(
            f"{model.name}: the state is for batch/shape {tuple(state.neuron[0].shape)}, the "
            f"input is {tuple(x.shape)} ([T, B, *shape] needs B = {state.neuron[0].shape[0]})"
        )
    c = coefficients(model, p, dt, method, cache)
    if kernel != "reference":
        reason = fused_unsupported(model, p, recurrent) if device is None else (
            "a neuron device model (it changes every step's input)")
        if reason is None:
            return _run_fused(model, x, p, c, shape, state, surrogate, observed, recurrent,
                              record_current, record_v, cache, eventprop)
        if eventprop is not None:
            raise ParameterError(f"{model.name}: EventProp on the grid needs the fused kernel, "
                                 f"and there is none for {reason}")
        if kernel == "fused":
            raise ParameterError(f"{model.name}: no fused kernel for {reason}; "
                                 "use kernel='auto' or 'reference'")
    if eventprop is not None:
        raise ParameterError(f"{model.name}: EventProp on the grid needs the fused kernel "
                             "(kernel='auto' or 'fused', not 'reference')")
    neuron, z = state
    spikes, vs, currents = [], [], []
    record_i = record_current and "i" in model.state._fields
    seen = _observations(observed, x.shape[0], spiking)
    step = model.step
    for x_t, obs_t in zip(x.unbind(0), seen, strict=True):
        if recurrent is not None:
            x_t = x_t + recurrent(z)
        if device is not None:
            x_t = device(x_t, neuron, p, c)
        z, v, neuron = step(x_t, neuron, p, c, surrogate, obs_t)
        if record_v:
            vs.append(v)
        if z is not None:
            spikes.append(z)
        if record_i:
            currents.append(neuron.i)
    obs = Observables(
        spikes=torch.stack(spikes) if spikes else None,
        v=torch.stack(vs) if record_v else None,
        i=torch.stack(currents) if record_i else None,
    )
    return obs, PopulationState(neuron, z if recurrent is not None else None)


def _run_fused(
    model: NeuronModel, x: Tensor, p: Any, c: dyn.Coefficients, shape: tuple[int, ...],
    state: PopulationState, surrogate: Surrogate, observed: Observables | None,
    recurrent: Recurrent | None, record_current: bool, record_v: bool,
    cache: MutableMapping[str, Any] | None = None, eventprop: GridEventProp | None = None,
) -> tuple[Observables, PopulationState]:
    steps, batch = x.shape[:2]
    n = math.prod(shape)
    spiking = model.spiking
    current = "i" in model.state._fields
    neuron = state.neuron._asdict()
    zeros = x.new_zeros((batch, n))
    flat = {k: v.reshape(batch, n) for k, v in neuron.items()}
    coefficients = _loop_coefficients(c, p, current, n, x, cache)
    adaptation = model.adaptation(p, c) if model.adaptation is not None else None
    loop_state = [flat["v"], flat.get("i", zeros), flat.get("refrac", zeros),
                  state.z.reshape(batch, n) if state.z is not None else None]
    if adaptation is not None:
        coefficients.update(rho=adaptation.decay, kappa=adaptation.gain,
                            a=adaptation.coupling, b=adaptation.jump, vleak=adaptation.v_leak)
        loop_state.append(flat[adaptation.state])
    cfg = LoopConfig(spiking=spiking, reset=getattr(p, "reset", "value"),
                     refrac_steps=c.refrac_steps, surrogate=surrogate, engine="auto",
                     adaptive=adaptation is not None, eventprop=eventprop)
    seen: tuple[Tensor | None, Tensor | None] = (None, None)
    if observed is not None:
        _check_observed(observed, steps, spiking)
        seen = tuple(
            None if o is None else o.reshape(steps, batch, n)
            for o in (observed.v, observed.spikes if spiking else None))
    v, z, i, v_t, i_t, r_t, z_t, w_t = neuron_loop(
        cfg, x.reshape(steps, batch, n), coefficients, tuple(loop_state),
        recurrent.weight if recurrent is not None else None, seen,
        record_current=record_current and current, record_v=record_v)
    full = (steps, batch, *shape)
    final = {"v": v_t, "i": i_t, "refrac": r_t}
    if adaptation is not None:
        final[adaptation.state] = w_t
    new = model.state(**{k: final[k].reshape(batch, *shape) for k in model.state._fields})
    obs = Observables(spikes=z.reshape(full) if spiking else None,
                      v=v.reshape(full) if record_v else None,
                      i=i.reshape(full) if current and record_current else None)
    return obs, PopulationState(new, z_t if recurrent is not None else None)


def _loop_coefficients(c: dyn.Coefficients, p: Any, current: bool, n: int, like: Tensor,
                       cache: MutableMapping[str, Any] | None) -> dict[str, Any]:
    """The fused loop's six coefficients (``beta, rest, alpha, gain, thr, vreset``) as ``[n]``
    tensors of ``like``'s dtype and device. Kept in ``cache`` beside the record ``c`` while
    :func:`coefficients` returns that same kept record (the parameters hold the same values, and
    none needs a graph), so a repeated run does not expand them again."""
    key = (n, like.dtype, like.device, current)
    kept = cache.get("loop coefficients") if cache is not None else None
    if kept is not None and kept[0] is c and kept[1] == key:
        return dict(kept[2])
    values = {
        "beta": c.beta, "rest": c.rest,
        "alpha": c.alpha if current else 0.0,
        "gain": c.syn_gain if current else c.x_gain,
        "thr": getattr(p, "v_threshold", 0.0), "vreset": getattr(p, "v_reset", 0.0),
    }
    cached = cache.get("coefficients") if cache is not None else None
    if cache is None or cached is None or cached[2] is not c:
        return values  # derived afresh (a graph, inference mode, no cache): nothing to keep
    expanded = {k: per_neuron(v, n, like) for k, v in values.items()}
    cache["loop coefficients"] = (c, key, expanded)
    return dict(expanded)


# ----------------------------------------------------------------------------- observations
def _observations(
    observed: Observables | None, steps: int, spiking: bool
) -> Iterable[dyn.Observation | None]:
    """Per-step observations of a device recording (``None`` for every step without one)."""
    if observed is None:
        return [None] * steps
    _check_observed(observed, steps, spiking)
    parts = [[None] * steps if value is None else value.unbind(0)
             for value in (observed.v, observed.spikes if spiking else None)]
    return [dyn.Observation(v, z) for v, z in zip(*parts, strict=True)]


def _check_observed(observed: Observables, steps: int, spiking: bool) -> None:
    for name, value in (("v", observed.v), ("spikes", observed.spikes if spiking else None)):
        if value is not None and value.shape[0] != steps:
            raise ShapeError(f"observed {name} has {value.shape[0]} steps, the input {steps}")
    if observed.v is None and not (spiking and observed.spikes is not None):
        raise ShapeError("an observation needs the membrane or (for spiking neurons) spikes")


def _full_replay(observed: Observables | None, spiking: bool) -> bool:
    """Membrane and (for spiking neurons) spikes are both observed."""
    return observed is not None and observed.v is not None and (
        not spiking or observed.spikes is not None)
