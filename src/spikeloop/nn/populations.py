"""Neuron populations: thin ``torch.nn.Module`` wrappers that own parameters and loop the
pure step functions of :mod:`spikeloop.dynamics` over time.

Every population maps a time-major input current ``[T, B, *shape]`` (and an optional state) to
``(Observables, state)``. State is explicit: pass the returned state back in to continue a
sequence (streaming); ``None`` starts from rest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import fields, replace
from typing import Any, ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn

from spikeloop._runtime import tune_allocator
from spikeloop.checks import check_sequence, check_shape
from spikeloop.dynamics import neurons as dyn
from spikeloop.dynamics.surrogate import BandLimited, Surrogate, make_surrogate
from spikeloop.errors import NonFiniteError, ParameterError, ShapeError
from spikeloop.observables import Observables
from spikeloop.registry import Registry

POPULATIONS: Registry[type[Population]] = Registry("neuron model")
"""Population classes by config name (``"cuba_lif"``, ``"li"`` …)."""

Kernel = Literal["auto", "fused", "reference"]
KERNELS = ("auto", "fused", "reference")

# Fields of the parameter records that are settings, not tensors.
_SETTINGS = ("reset", "t_refrac", "detach_reset")


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


class PopulationState(NamedTuple):
    """State of a population: the neuron state and, for recurrent populations, last spikes."""

    neuron: Any
    z: Tensor | None = None


class Population(nn.Module):
    """Base class of neuron populations.

    Subclasses set ``params_cls`` (a parameter record of :mod:`spikeloop.dynamics.neurons`),
    ``state_cls`` and ``step_fn``; the base class builds parameters, runs the time loop and
    records observables.

    Args:
        shape: number of neurons or a tuple (e.g. ``(C, H, W)`` after a convolution).
        dt: simulation step in seconds.
        method: ``"exact"`` (exponential integration) or ``"euler"``.
        surrogate: surrogate derivative (instance, name or ``{"name":..., ...}``).
        recurrent: add an all-to-all recurrent projection (``self.recurrent``, 1-d shapes only);
            spikes of step ``k`` arrive as input current at step ``k+1``.
        learn: names of parameters to train (e.g. ``("tau_mem", "v_threshold")``); they become
            per-neuron ``nn.Parameter`` s. Others are buffers.
        **params: parameter values (floats or per-neuron tensors) of the neuron model.
    """

    model: ClassVar[str]
    params_cls: ClassVar[type]
    state_cls: ClassVar[type]
    spiking: ClassVar[bool] = True
    fusable: ClassVar[bool] = True
    step_fn: ClassVar[Callable[..., Any]]

    def __init__(
        self,
        shape: int | Iterable[int],
        *,
        dt: float = 1e-3,
        method: dyn.Method = "exact",
        surrogate: str | Surrogate | dict[str, Any] = "superspike",
        recurrent: bool = False,
        learn: Iterable[str] = (),
        **params: Any,
    ) -> None:
        super().__init__()
        self.shape = check_shape(shape)
        if method not in dyn.METHODS:
            raise ParameterError(f"unknown method {method!r}; known: {', '.join(dyn.METHODS)}")
        self.dt = float(dt)
        self.method = method
        self.surrogate = make_surrogate(surrogate)
        names = [f.name for f in fields(self.params_cls)]
        unknown = set(params) - set(names)
        if unknown:
            raise ParameterError(
                f"{type(self).__name__} has no parameter {sorted(unknown)}; known: {names}"
            )
        self.tensor_names = tuple(n for n in names if n not in _SETTINGS)
        learn = tuple(learn)
        bad = set(learn) - set(self.tensor_names)
        if bad:
            raise ParameterError(
                f"{type(self).__name__}: cannot learn {sorted(bad)}; learnable: "
                f"{list(self.tensor_names)}"
            )
        defaults = self.params_cls()
        self.settings = {
            n: params.get(n, getattr(defaults, n)) for n in names if n in _SETTINGS
        }
        for name in self.tensor_names:
            value = torch.as_tensor(params.get(name, getattr(defaults, name)), dtype=torch.float32)
            if not torch.isfinite(value).all():
                raise NonFiniteError(f"{type(self).__name__}.{name} holds NaN or inf")
            if value.dim() and tuple(value.shape) != self.shape:
                raise ShapeError(
                    f"{type(self).__name__}.{name}: per-neuron values must have shape "
                    f"{self.shape}, got {tuple(value.shape)}"
                )
            if name in learn:
                self.register_parameter(name, nn.Parameter(value.expand(self.shape).clone()))
            else:
                self.register_buffer(name, value)
        # Validate the parameter record once at construction (dt vs time constants, reset...).
        self.parameter_record().coefficients(self.dt, self.method)
        if recurrent:
            if not self.spiking:
                raise ParameterError(
                    f"{type(self).__name__} does not spike: recurrence feeds spikes back, so only "
                    "spiking populations can be recurrent"
                )
            if len(self.shape) != 1:
                raise ShapeError(
                    f"recurrent populations must be 1-d, got shape {self.shape}; flatten first"
                )
            from spikeloop.nn.projections import Linear

            self.recurrent: Linear | None = Linear(self.shape[0], self.shape[0])
        else:
            self.recurrent = None

    @property
    def size(self) -> int:
        """Number of neurons."""
        return math.prod(self.shape)

    def parameter_record(self) -> Any:
        """The neuron parameters as the typed record the step function takes."""
        return self.params_cls(
            **{n: getattr(self, n) for n in self.tensor_names}, **self.settings
        )

    def initial_state(self, batch: int, like: Tensor, p: Any = None) -> PopulationState:
        """Resting state for ``batch`` samples (``v = v_leak``, currents 0), dtype of ``like``.

        ``p``: parameter record whose ``v_leak`` to rest at (default: the module's).
        """
        zeros = like.new_zeros((batch, *self.shape))
        neuron = self.state_cls(
            **{
                n: (zeros + getattr(p if p is not None else self, "v_leak", 0.0))
                if n == "v" else zeros
                for n in self.state_cls._fields
            }
        )
        return PopulationState(neuron, zeros if self.recurrent is not None else None)

    def forward(
        self,
        x: Tensor,
        state: PopulationState | None = None,
        observed: Observables | None = None,
    ) -> tuple[Observables, PopulationState]:
        """Run the population over a whole sequence ``x [T, B, *shape]``.

        ``observed`` (in-the-loop training): membrane and spikes a device recorded for this
        population; the returned values are the observed ones and gradients flow through this
        model evaluated at them (see :func:`~spikeloop.dynamics.fire`).
        """
        check_sequence(x, self.shape, type(self).__name__)
        return self.simulate(x, self.parameter_record(), state, observed)

    def simulate(
        self,
        x: Tensor,
        p: Any,
        state: PopulationState | None = None,
        observed: Observables | None = None,
        recurrent: Callable[[Tensor], Tensor] | None = None,
        *,
        kernel: Kernel = "auto",
        grad_band: float | None = None,
        record_current: bool = True,
        record_v: bool = True,
    ) -> tuple[Observables, PopulationState]:
        """The time loop with explicit parameters ``p`` (a record of ``params_cls``).

        :meth:`forward` calls it with the module's own parameters; a chip emulator calls it with
        the parameters its neurons really have and its own ``recurrent`` projection (default:
        ``self.recurrent``).

        ``kernel``: ``"reference"`` loops the step function under autograd; ``"fused"`` runs
        :func:`spikeloop.kernels.neuron_loop` (one autograd node, hand-written backward, native
        CPU code for float32) and raises :class:`ParameterError` where it cannot;
        ``"auto"`` (default) fuses wherever possible (see :meth:`fused_unsupported`).
        ``grad_band``: sparse surrogate backprop — the surrogate derivative is zero where
        ``|v − ϑ| ≥ grad_band`` (:class:`~spikeloop.dynamics.BandLimited`).
        ``record_current``: return the synaptic current ``i`` in the observables (``False``:
        ``i = None``, which saves memory and time when nobody reads it). A full replay (membrane
        and, for spiking neurons, spikes observed) never records it: a device observes
        membrane and spikes, and the replay's ``i`` is not needed for its gradients.
        ``record_v``: return the membrane (``False``: ``v = None`` for spiking populations; under
        ``torch.no_grad()`` it is then not written at all, which is what inference of a hidden
        layer needs). Non-spiking populations always return it: it is their output.
        """
        record_v = record_v or not self.spiking
        if x.device.type == "cpu":
            tune_allocator()  # from the first CPU time loop on, freed memory is reused
        record_current = record_current and not _full_replay(observed, self.spiking)
        if kernel not in KERNELS:
            raise ParameterError(f"unknown kernel {kernel!r}; known: {', '.join(KERNELS)}")
        surrogate = self.surrogate
        if grad_band is not None:
            surrogate = BandLimited(surrogate, grad_band)
        if recurrent is None:
            recurrent = self.recurrent
        if state is None:
            state = self.initial_state(x.shape[1], x, p)
        elif tuple(state.neuron[0].shape) != (x.shape[1], *self.shape):
            raise ShapeError(
                f"{type(self).__name__}: the state is for batch/shape "
                f"{tuple(state.neuron[0].shape)}, the input is {tuple(x.shape)} "
                f"([T, B, *shape] needs B = {state.neuron[0].shape[0]})"
            )
        c = self.coefficients(p)
        if kernel != "reference":
            reason = self.fused_unsupported(p, recurrent)
            if reason is None:
                return self._simulate_fused(x, p, c, state, surrogate, observed,
                                            record_current, record_v)
            if kernel == "fused":
                raise ParameterError(f"{type(self).__name__}: no fused kernel for {reason}; "
                                     "use kernel='auto' or 'reference'")
        neuron, z = state
        spikes, vs, currents = [], [], []
        record_i = record_current and "i" in self.state_cls._fields
        seen = _observations(observed, x.shape[0], self.spiking)
        for x_t, obs_t in zip(x.unbind(0), seen, strict=True):
            if recurrent is not None:
                x_t = x_t + recurrent(z)
            z, v, neuron = self._step(x_t, neuron, p, c, obs_t, surrogate)
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
        return obs, PopulationState(neuron, z if self.recurrent is not None else None)

    def coefficients(self, p: Any) -> dyn.Coefficients:
        """``p.coefficients(dt, method)``, reused while ``p`` holds the same values.

        Parameters rarely change between calls (neuron parameters are often not trained, and a
        chip backend reuses its records), and deriving the coefficients costs a few dozen small
        tensor operations. The last result is kept with copies of the values it came from and
        returned when every field compares equal; never when a parameter needs a graph
        (gradients enabled and ``requires_grad``), so autograd always sees fresh coefficients,
        and never in ``torch.inference_mode`` (inference tensors cannot enter a later graph).
        """
        values = [getattr(p, f.name) for f in fields(p)]
        tensors = [v for v in values if isinstance(v, Tensor)]
        if torch.is_inference_mode_enabled() or (
                torch.is_grad_enabled() and any(t.requires_grad for t in tensors)):
            return p.coefficients(self.dt, self.method)  # (inference tensors must not be kept)
        cached = self.__dict__.get("_coefficient_cache")
        if cached is not None and cached[0] == (type(p), self.dt, self.method) and all(
            (torch.equal(a, b) if isinstance(a, Tensor) and isinstance(b, Tensor)
             and a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
             else not isinstance(a, Tensor) and not isinstance(b, Tensor) and a == b)
            for a, b in zip(cached[1], values, strict=True)
        ):
            return cached[2]
        c = p.coefficients(self.dt, self.method)
        kept = [v.detach().clone() if isinstance(v, Tensor) else v for v in values]
        # own copies: a coefficient may be a parameter itself (e.g. x_gain = r), changed in place
        own = replace(c, **{f.name: getattr(c, f.name).detach().clone() for f in fields(c)
                            if isinstance(getattr(c, f.name), Tensor)})
        self.__dict__["_coefficient_cache"] = ((type(p), self.dt, self.method), kept, own)
        return c

    def _step(
        self, x: Tensor, s: Any, p: Any, c: dyn.Coefficients, obs: dyn.Observation | None,
        surrogate: Surrogate,
    ) -> tuple[Any, Tensor, Any]:
        return type(self).step_fn(x, s, p, c, surrogate, obs)

    def fused_unsupported(
        self, p: Any, recurrent: Callable[[Tensor], Tensor] | None = None
    ) -> str | None:
        """Why this population cannot run fused with parameters ``p`` (``None`` if it can)."""
        if not self.fusable:
            return f"the {self.model} model"
        if self.spiking and not p.detach_reset:
            return "detach_reset=False"
        if recurrent is not None and not (
            recurrent is self.recurrent and self.recurrent.bias is None
        ):
            return "a custom recurrent projection or one with a bias"
        return None

    def _simulate_fused(
        self, x: Tensor, p: Any, c: dyn.Coefficients, state: PopulationState,
        surrogate: Surrogate, observed: Observables | None = None,
        record_current: bool = True,
        record_v: bool = True,
    ) -> tuple[Observables, PopulationState]:
        from spikeloop.kernels import LoopConfig, neuron_loop

        steps, batch = x.shape[:2]
        n = self.size
        current = "i" in self.state_cls._fields
        neuron = state.neuron._asdict()
        zeros = x.new_zeros((batch, n))
        flat = {k: v.reshape(batch, n) for k, v in neuron.items()}
        coefficients = {
            "beta": c.beta, "rest": c.rest,
            "alpha": c.alpha if current else 0.0,
            "gain": c.syn_gain if current else c.x_gain,
            "thr": getattr(p, "v_threshold", 0.0), "vreset": getattr(p, "v_reset", 0.0),
        }
        cfg = LoopConfig(spiking=self.spiking, reset=getattr(p, "reset", "value"),
                         refrac_steps=c.refrac_steps, surrogate=surrogate,
                         engine="auto")
        z0 = state.z.reshape(batch, n) if state.z is not None else None
        seen: tuple[Tensor | None, Tensor | None] = (None, None)
        if observed is not None:
            _check_observed(observed, steps, self.spiking)
            seen = tuple(
                None if o is None else o.reshape(steps, batch, n)
                for o in (observed.v, observed.spikes if self.spiking else None))
        v, z, i, v_t, i_t, r_t, z_t = neuron_loop(
            cfg, x.reshape(steps, batch, n), coefficients,
            (flat["v"], flat.get("i", zeros), flat.get("refrac", zeros), z0),
            self.recurrent.weight if self.recurrent is not None else None, seen,
            record_current=record_current and current, record_v=record_v)
        shape = (steps, batch, *self.shape)
        final = {"v": v_t, "i": i_t, "refrac": r_t}
        new = self.state_cls(**{k: final[k].reshape(batch, *self.shape)
                                for k in self.state_cls._fields})
        obs = Observables(spikes=z.reshape(shape) if self.spiking else None,
                          v=v.reshape(shape) if record_v else None,
                          i=i.reshape(shape) if current and record_current else None)
        return obs, PopulationState(new, z_t if self.recurrent is not None else None)

    @torch.no_grad()
    def constrain_(self, min_steps: float = 2.0) -> None:
        """Project learned time constants back to ``τ ≥ min_steps · dt`` (in place).

        Gradient steps can push a learned ``tau_*`` below ``dt``, where the discretisation is
        invalid (:class:`~spikeloop.errors.TimeStepError`). Call this after each optimiser step
        (the :class:`~spikeloop.training.Trainer` does, via ``Network.constrain_``).
        """
        for name, value in self.named_parameters(recurse=False):
            if name.startswith("tau_"):
                value.clamp_(min=min_steps * self.dt)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, dt={self.dt:g}, method={self.method!r}"


@POPULATIONS.register("lif")
class LIF(Population):
    """Voltage leaky integrate-and-fire population (see :func:`~spikeloop.dynamics.lif_step`)."""

    model = "LIF"
    params_cls = dyn.LIFParameters
    state_cls = dyn.LIFState
    step_fn = dyn.lif_step


@POPULATIONS.register("cuba_lif")
class CubaLIF(Population):
    """Current-based LIF population (see :func:`~spikeloop.dynamics.cuba_lif_step`)."""

    model = "CubaLIF"
    params_cls = dyn.CubaLIFParameters
    state_cls = dyn.CubaLIFState
    step_fn = dyn.cuba_lif_step


@POPULATIONS.register("adaptive_lif")
class AdaptiveLIF(Population):
    """Adaptive CUBA LIF with an AHP current (see :func:`~spikeloop.dynamics.adaptive_lif_step`)."""

    model = "AdaptiveLIF"
    fusable = False  # the AHP current has no fused kernel (yet): reference loop
    params_cls = dyn.AdaptiveLIFParameters
    state_cls = dyn.AdaptiveLIFState
    step_fn = dyn.adaptive_lif_step


@POPULATIONS.register("if")
class IF(Population):
    """Non-leaky integrate-and-fire population (see :func:`~spikeloop.dynamics.if_step`)."""

    model = "IF"
    params_cls = dyn.IFParameters
    state_cls = dyn.LIFState
    step_fn = dyn.if_step


@POPULATIONS.register("li")
class LI(Population):
    """Voltage leaky-integrator readout (non-spiking, see :func:`~spikeloop.dynamics.li_step`)."""

    model = "LI"
    params_cls = dyn.LIParameters
    state_cls = dyn.LIState
    spiking = False

    def _step(
        self, x: Tensor, s: Any, p: Any, c: dyn.Coefficients, obs: dyn.Observation | None,
        surrogate: Surrogate,
    ) -> tuple[Any, Tensor, Any]:
        v, s = dyn.li_step(x, s, c, obs)
        return None, v, s


@POPULATIONS.register("cuba_li")
class CubaLI(Population):
    """Current-based leaky-integrator readout (see :func:`~spikeloop.dynamics.cuba_li_step`)."""

    model = "CubaLI"
    params_cls = dyn.CubaLIParameters
    state_cls = dyn.CubaLIState
    spiking = False

    def _step(
        self, x: Tensor, s: Any, p: Any, c: dyn.Coefficients, obs: dyn.Observation | None,
        surrogate: Surrogate,
    ) -> tuple[Any, Tensor, Any]:
        v, s = dyn.cuba_li_step(x, s, c, obs)
        return None, v, s


class Input(nn.Module):
    """Input population: checks and passes on spikes (or analog input) ``[T, B, *shape]``."""

    model = "Input"
    spiking = True

    def __init__(self, shape: int | Iterable[int]) -> None:
        super().__init__()
        self.shape = check_shape(shape)

    @property
    def size(self) -> int:
        """Number of input channels."""
        return math.prod(self.shape)

    def forward(
        self, x: Tensor, state: None = None, observed: Observables | None = None, *,
        check_finite: bool = True,
    ) -> tuple[Observables, None]:
        """Validate ``x`` and return it as the population's spikes (``observed`` is ignored).

        ``check_finite=False`` leaves the NaN/inf check to the caller (the simulator does it on
        the events when every reader of the input is an event-driven projection).
        """
        check_sequence(x, self.shape, "Input", finite=check_finite)
        return Observables(spikes=x), None

    def extra_repr(self) -> str:
        return f"shape={self.shape}"
