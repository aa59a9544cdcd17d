"""Neuron populations: thin ``torch.nn.Module`` wrappers that own the parameters of a
registered neuron model (:mod:`spikeloop.dynamics.models`) and run it with the one time loop
(:func:`spikeloop.kernels.loop.run_population`).

Every population maps a time-major input current ``[T, B, *shape]`` (and an optional state) to
``(Observables, state)``. State is explicit: pass the returned state back in to continue a
sequence (streaming); ``None`` starts from rest. Each population describes itself into the IR
(:func:`spikeloop.ir.describe`) as a node holding its parameters and settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from spikeloop.checks import (
    check_bool,
    check_choice,
    check_dt,
    check_names,
    check_sequence,
    check_shape,
    check_type,
    show,
)
from spikeloop.dynamics import adlif, models
from spikeloop.dynamics import neurons as dyn
from spikeloop.dynamics.models import (
    NeuronModel,
    PopulationState,
    check_setting,
    check_tensor_parameter,
)
from spikeloop.dynamics.surrogate import Surrogate, make_surrogate
from spikeloop.errors import ArgumentTypeError, ParameterError, ShapeError
from spikeloop.ir import Node, describe
from spikeloop.kernels import loop
from spikeloop.kernels.loop import KERNELS, Kernel, Recurrent
from spikeloop.nn.base import Layer
from spikeloop.nn.projections import Linear
from spikeloop.observables import Observables
from spikeloop.registry import Registry

__all__ = ["KERNELS", "POPULATIONS", "Kernel", "Population", "PopulationState"]

POPULATIONS: Registry[type[Population]] = Registry("neuron model")
"""Population classes by config name (``"cuba_lif"``, ``"li"`` …)."""


class Settings(dict):
    """A population's settings (``reset``, ``t_refrac``, ``detach_reset``): a read-only dict,
    so that a change cannot bypass the checks and the traced graph; assign a new mapping to
    ``population.settings`` instead (it is checked, and the graph is traced again)."""

    def _read_only(self, *args: Any, **kwargs: Any) -> None:
        raise ParameterError("a population's settings are read-only; assign a new mapping, e.g. "
                             "pop.settings = {**pop.settings, 'reset': 'subtract'}")

    __setitem__ = __delitem__ = __ior__ = _read_only  # type: ignore[assignment]
    update = pop = popitem = clear = setdefault = _read_only  # type: ignore[assignment]

    def __reduce__(self) -> tuple[type, tuple[dict[str, Any]]]:  # copy and pickle as a dict
        return Settings, (dict(self),)


class Population(Layer):
    """Base class of neuron populations.

    A subclass names its registered model description (``description``, a
    :class:`~spikeloop.dynamics.models.NeuronModel`: parameter and state records, step function,
    capabilities); the base class builds parameters, runs the time loop and describes itself
    into the IR. Defining the class registers it in ``POPULATIONS`` under the model's config
    name (``description.config``), which configuration files use.

    Args:
        shape: number of neurons or a tuple (e.g. ``(C, H, W)`` after a convolution).
        dt: simulation step in seconds.
        method: ``"exact"`` (exponential integration) or ``"euler"``.
        surrogate: surrogate derivative (instance, name or ``{"name":..., ...}``).
        recurrent: add an all-to-all recurrent projection (``self.recurrent``, 1-d shapes only);
            spikes of step ``k`` arrive as input current at step ``k+1``.
        learn: names of parameters to train (e.g. ``("tau_mem", "v_threshold")``); they become
            per-neuron ``nn.Parameter`` s. Others are buffers.
        **params: parameter values of the neuron model: one real number or per-neuron values
            of ``shape`` (a tensor, NumPy array or list), finite; time constants (``tau_*``,
            seconds) ``> 0`` and larger than ``dt``; the settings ``reset``
            (``"value"``/``"subtract"``), ``t_refrac`` (seconds ``≥ 0``) and ``detach_reset``
            (a bool) of spiking models.

    Every argument is checked (:meth:`NeuronModel.check_parameters
    <spikeloop.dynamics.models.NeuronModel.check_parameters>`); so is a value assigned after
    construction (:meth:`__setattr__`).

    Raises:
        ArgumentTypeError: an argument of the wrong type (a string for a number, a float for a
            shape, a string for ``learn``).
        ParameterError: an unknown parameter, method, reset or learned name, a value out of
            range.
        ShapeError: per-neuron values of another shape, an invalid shape.
        NonFiniteError: values holding NaN or ±inf.
        TimeStepError: ``dt`` is not a finite number ``> 0`` or not smaller than a time
            constant.
    """

    description: ClassVar[NeuronModel]
    model: ClassVar[str]
    params_cls: ClassVar[type]
    state_cls: ClassVar[type]
    spiking: ClassVar[bool]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        d = cls.__dict__.get("description")
        if d is not None:  # the class attributes users and tests read, from the description
            cls.model, cls.params_cls, cls.state_cls = d.name, d.params, d.state
            cls.spiking = d.spiking
            if d.config is not None:  # the model's config name selects this class
                POPULATIONS.add(d.config, cls)

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
        who = type(self).__name__
        self.shape = check_shape(shape, who)
        self.dt = check_dt(dt, f"{who} dt")
        self.method = check_choice(method, f"{who} method", dyn.METHODS)
        self.surrogate = make_surrogate(surrogate, f"{who} surrogate")
        recurrent = check_bool(recurrent, f"{who} recurrent")
        self.tensor_names = self.description.tensor_names
        learn = check_names(learn, f"{who} learn")
        bad = sorted(set(learn) - set(self.tensor_names))
        if bad:
            raise ParameterError(f"{who}: cannot learn {bad}; learnable: "
                                 f"{list(self.tensor_names)}")
        tensors, settings = self.description.check_parameters(params, self.shape, who)
        self.settings = Settings(settings)  # read-only (Settings): assigning a new one re-traces
        for name, value in tensors.items():
            if name in learn:
                self.register_parameter(name, nn.Parameter(value.expand(self.shape).clone()))
            else:
                self.register_buffer(name, value)
        self._ir_cache: dict[str, Any] = {}  # derived values (coefficients) between calls
        # Validate the parameter record once at construction (dt vs time constants, reset...).
        self.description.coefficients(self.parameter_record(), self.dt, self.method)
        if recurrent and not self.description.recurrent and self.spiking:
            raise ParameterError(f"{type(self).__name__} has no recurrent projection")
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
            self.recurrent: Linear | None = Linear(self.shape[0], self.shape[0])
        else:
            self.recurrent = None
        self._built = True  # from here on, __setattr__ checks new values

    def __setattr__(self, name: str, value: Any) -> None:
        """Check a new ``dt``, ``method``, ``surrogate``, ``settings`` or parameter value as the
        constructor does, then set it (which re-traces the containers, see
        :mod:`spikeloop.nn.base`). A parameter keeps its dtype and device; a learned one must
        stay an ``nn.Parameter`` of its shape. New ``settings`` replace the settings they name
        and keep the others."""
        if self.__dict__.get("_built"):  # after construction
            value = self._checked(name, value)
        super().__setattr__(name, value)

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """``nn.Module.register_buffer``; a neuron parameter's new value is checked as in
        :meth:`__setattr__`."""
        if self.__dict__.get("_built") and name in self.tensor_names:
            tensor = self._checked(name, tensor)
        super().register_buffer(name, tensor, persistent)

    def _checked(self, name: str, value: Any) -> Any:
        who = type(self).__name__
        if name == "dt":
            return check_dt(value, f"{who} dt")
        if name == "method":
            return check_choice(value, f"{who} method", dyn.METHODS)
        if name == "surrogate":
            return make_surrogate(value, f"{who} surrogate")
        if name == "settings":
            check_type(value, f"{who} settings", Mapping, "a mapping of setting names to values")
            unknown = sorted(set(value) - set(self.settings), key=str)
            if unknown:
                raise ParameterError(f"{who} has no setting {unknown}; settings: "
                                     f"{list(self.settings)}")
            return Settings({n: check_setting(n, value[n], who) if n in value else v
                             for n, v in self.settings.items()})
        if name not in self.tensor_names:
            return value
        old = getattr(self, name)
        checked = check_tensor_parameter(name, value, self.shape, who).to(old.dtype)
        if isinstance(old, nn.Parameter):
            if not isinstance(value, nn.Parameter):
                raise ArgumentTypeError(
                    f"{who} {name} is learned (an nn.Parameter): assign an nn.Parameter or "
                    f"change it in place (with torch.no_grad(): pop.{name}.copy_(...)), got "
                    f"{show(value)} ({type(value).__name__})")
            if value.shape != old.shape:
                raise ShapeError(f"{who} {name} is learned per neuron: the new nn.Parameter must "
                                 f"have shape {tuple(old.shape)}, got {tuple(value.shape)}")
            return value
        return checked.to(old.device)

    @property
    def size(self) -> int:
        """Number of neurons."""
        return math.prod(self.shape)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample shape of the input current (``input_width × size`` for models fed
        several inputs per neuron)."""
        width = self.description.input_width
        return self.shape if width == 1 else (width * self.size,)

    @property
    def fusable(self) -> bool:
        """Whether the model has a fused kernel."""
        return "fused" in self.description.engines

    def parameter_record(self) -> Any:
        """The neuron parameters as the typed record the step function takes."""
        return self.params_cls(
            **{n: getattr(self, n) for n in self.tensor_names}, **self.settings
        )

    def initial_state(self, batch: int, like: Tensor, p: Any = None) -> PopulationState:
        """Resting state for ``batch`` samples (``v = v_leak``, currents 0), dtype of ``like``.

        ``p``: parameter record whose ``v_leak`` to rest at (default: the module's).
        """
        return loop.initial_state(self.description, self.shape, batch, like,
                                  p if p is not None else self, self.recurrent is not None)

    def forward(
        self,
        x: Tensor,
        state: PopulationState | None = None,
        observed: Observables | None = None,
    ) -> tuple[Observables, PopulationState]:
        """Run the population over a whole sequence ``x [T, B, *input_shape]``.

        ``observed`` (in-the-loop training): membrane and spikes a device recorded for this
        population; the returned values are the observed ones and gradients flow through this
        model evaluated at them (see :func:`~spikeloop.dynamics.fire`).
        """
        check_sequence(x, self.input_shape, type(self).__name__)
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
        """The time loop with explicit parameters ``p`` (a record of ``params_cls``):
        :func:`spikeloop.kernels.loop.run_population` with this population's model and
        settings. ``recurrent``: a custom ``z ↦ current`` instead of ``self.recurrent``
        (reference loop only); the other arguments are those of ``run_population``.
        """
        return loop.run_population(
            self.description, x, p, dt=self.dt, method=self.method, surrogate=self.surrogate,
            shape=self.shape, state=state, observed=observed,
            recurrent=self._recurrent(recurrent), kernel=kernel, grad_band=grad_band,
            record_current=record_current, record_v=record_v, cache=self._ir_cache)

    def _recurrent(self, custom: Callable[[Tensor], Tensor] | None) -> Recurrent | None:
        if custom is not None and custom is not self.recurrent:
            return Recurrent(fn=custom)
        if self.recurrent is None:
            return None
        return Recurrent(self.recurrent.weight, self.recurrent.bias)

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


class LIF(Population):
    """Voltage leaky integrate-and-fire population (see :func:`~spikeloop.dynamics.lif_step`)."""

    description = models.LIF


class CubaLIF(Population):
    """Current-based LIF population (see :func:`~spikeloop.dynamics.cuba_lif_step`)."""

    description = models.CUBA_LIF


class AdaptiveLIF(Population):
    """Adaptive CUBA LIF with an AHP current (see :func:`~spikeloop.dynamics.adaptive_lif_step`)."""

    description = models.ADAPTIVE_LIF


class AdLIF(Population):
    """Adaptive LIF with subthreshold and spike-triggered adaptation
    (see :mod:`spikeloop.dynamics.adlif`)."""

    description = adlif.ADLIF


class IF(Population):
    """Non-leaky integrate-and-fire population (see :func:`~spikeloop.dynamics.if_step`)."""

    description = models.IF


class LI(Population):
    """Voltage leaky-integrator readout (non-spiking, see :func:`~spikeloop.dynamics.li_step`)."""

    description = models.LI


class CubaLI(Population):
    """Current-based leaky-integrator readout (see :func:`~spikeloop.dynamics.cuba_li_step`)."""

    description = models.CUBA_LI


class CubaLIF2(Population):
    r"""Current-based LIF population with two synaptic currents
    (:func:`~spikeloop.dynamics.cuba_lif2_step`), as the Xylo chip's hidden neurons have.

    Its input is ``[T, B, 2N]`` (a ``Linear`` of ``2N`` outputs): ``x[..., :N]`` feeds current 0
    (``tau_syn``), ``x[..., N:]`` current 1 (``tau_syn2``);
    ``v_{k+1} = β v_k + (1−β) v_leak + r g₀ I₀' + r g₁ I₁'``. Feed-forward only (1-d, no
    ``recurrent``).
    """

    description = models.CUBA_LIF2

    def __init__(self, shape: int, **kwargs: Any) -> None:
        if check_bool(kwargs.get("recurrent", False), "CubaLIF2 recurrent"):
            raise ParameterError("CubaLIF2 has no recurrent projection (which current would it "
                                 "feed?); use CubaLIF for recurrent layers")
        super().__init__(shape, **kwargs)
        if len(self.shape) != 1:
            raise ShapeError(f"CubaLIF2 populations are 1-d, got shape {self.shape}")


class Input(Layer):
    """Input population: checks and passes on spikes (or analog input) ``[T, B, *shape]``.

    ``shape``: a positive integer (NumPy integers and one-element integer tensors too) or a
    tuple of them; a float (``4.0``) or a string (``'16'``) is refused."""

    model = "Input"
    spiking = True

    def __init__(self, shape: int | Iterable[int]) -> None:
        super().__init__()
        self.shape = check_shape(shape, "Input")

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


# ----------------------------------------------------------------------------- IR description
@describe.register
def _(module: Input, name, inputs, in_shape) -> list[Node]:
    if inputs:
        raise ShapeError(f"the Input layer {name!r} must come first")
    return [Node(name, "input", "Input", (), module.shape)]


_DESCRIBED_BY_MODEL = ("forward", "simulate", "parameter_record", "initial_state")


@describe.register
def _(module: Population, name, inputs, in_shape) -> list[Node]:
    for method in _DESCRIBED_BY_MODEL:  # backends run the description, never the module
        if getattr(type(module), method) is not getattr(Population, method):
            raise ParameterError(
                f"population {name!r}: {type(module).__name__} overrides {method}(), which no "
                "backend would run (they run the registered model description); give new "
                "dynamics their own NeuronModel (spikeloop.dynamics.models.register)")
    if in_shape is not None and tuple(in_shape) != module.input_shape:
        width = module.description.input_width
        if width == 1:
            raise ShapeError(f"population {name!r} has shape {module.shape} but receives input "
                             f"of shape {in_shape}")
        raise ShapeError(f"population {name!r} ({module.model}, {module.size} neurons) takes "
                         f"{width} × {module.size} = {width * module.size} inputs (one block per "
                         f"synaptic current), got {in_shape}")
    for n in module.tensor_names:  # at trace time: a tensor of another shape set by .data = …
        value = getattr(module, n)
        if value.dim() and tuple(value.shape) != module.shape:
            raise ShapeError(f"population {name!r}: {n} has shape {tuple(value.shape)}, not "
                             f"the population's {module.shape}")
    settings = {"dt": module.dt, "method": module.method, "surrogate": module.surrogate}
    settings |= module.settings if module.spiking else {}
    pop = Node(
        name, "population", module.model, inputs, module.shape,
        params={n: getattr(module, n) for n in module.tensor_names},
        settings=settings, cache=module._ir_cache,
    )
    if module.recurrent is None:
        return [pop]
    rec = module.recurrent
    (proj,) = describe(rec, f"{name}.recurrent", (name,), module.shape)
    return [pop, replace(proj, recurrent=True)]
