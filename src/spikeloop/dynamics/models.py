r"""Registered neuron models: one description per model, the single place that says what a
model is and who can run it.

A :class:`NeuronModel` bundles a model's parameter record, state record, step function and
capabilities (spiking, number of synaptic currents, inputs per neuron, which engines and chips
can run it). The IR names a population's model by :attr:`NeuronModel.name` (``node.op``);
backends, mappers and exporters look the description up in :data:`MODELS` and ask its
capabilities instead of matching class names.

Every step function has one signature::

    step(x, state, params, coefficients, surrogate, observation) -> (z | None, v, state)

``z`` are the spikes (``None`` for a non-spiking model), ``v`` the membrane the model reports
(for spiking models the value compared with the threshold), ``state`` the new state.

Adding a simulator-only model: a module of its own in :mod:`spikeloop.dynamics` with its
parameter/state records, step function and one :func:`register` call (as
:mod:`spikeloop.dynamics.adlif`), its export in ``spikeloop/dynamics/__init__.py``, and a thin
population class in :mod:`spikeloop.nn` (plus its tests; see docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

from torch import Tensor

from spikeloop.checks import check_values
from spikeloop.dynamics import neurons as dyn
from spikeloop.dynamics.surrogate import Surrogate
from spikeloop.errors import ParameterError
from spikeloop.registry import Registry

SETTINGS = dyn.SETTINGS
check_setting = dyn.check_setting


def check_tensor_parameter(name: str, value: Any, shape: tuple[int, ...] | None,
                           who: str) -> Tensor:
    """Return a neuron parameter as a new float32 tensor (one number or per-neuron values of
    ``shape``, :func:`~spikeloop.checks.check_values`): finite, and a time constant
    (``tau_*``, seconds) ``> 0``. (Whether ``dt`` is small enough for it is the coefficients'
    check, :func:`~spikeloop.dynamics.check_time_constants`.)"""
    if name.startswith("tau_"):
        return check_values(value, f"{who} {name} (s)", shape, low=0, low_open=True)
    return check_values(value, f"{who} {name}", shape)

ENGINES = ("reference", "fused", "event")
"""Engines a model can declare: the reference step loop (every model), the fused time-loop
kernel (:func:`spikeloop.kernels.neuron_loop`), the exact event-driven backend (EventProp)."""


class PopulationState(NamedTuple):
    """State of a population: the neuron state and, for recurrent populations, last spikes."""

    neuron: Any
    z: Tensor | None = None


def _default_coefficients(p: Any, dt: float, method: dyn.Method) -> Any:
    return p.coefficients(dt, method)


class Adaptation(NamedTuple):
    r"""How a model's adaptation variable enters the fused kernel
    (:func:`spikeloop.kernels.neuron_loop` with ``LoopConfig(adaptive=True)``).

    The kernel runs ``u_k = β v_k + rest + g i'_k − κ w_k`` (fire on ``u_k``) and
    ``w_{k+1} = ρ w_k + a_c (ṽ_k − v_leak) + b z_k`` (``ṽ_k`` the membrane compared with the
    threshold). ``state``: the field of the model's state record that holds ``w``; the rest are
    scalars or per-neuron tensors (carrying the parameters' gradients): ``decay`` ρ, ``gain`` κ,
    ``coupling`` a_c, ``jump`` b, ``v_leak``.
    """

    state: str
    decay: Any
    gain: Any
    coupling: Any
    jump: Any
    v_leak: Any


@dataclass(frozen=True)
class NeuronModel:
    """Everything that defines a neuron model.

    Attributes:
        name: the model's name in the IR (``node.op``) and in NIR where it has a counterpart.
        params: parameter record type (frozen dataclass with ``coefficients(dt, method)``).
        state: state record type (a ``NamedTuple``; a field ``v`` rests at ``v_leak``).
        step: the step function (signature in the module docstring).
        spiking: whether the model emits spikes.
        currents: number of synaptic currents (0: voltage model, input drives the membrane).
        input_width: inputs per neuron (2 for a two-current neuron fed ``[..., 2N]``).
        engines: engines that run it, out of :data:`ENGINES`.
        chips: emulated chips whose neurons implement it (``"analog"``, ``"xylo"``).
        config: name in the configuration files (``model.neuron``), ``None`` for none.
        recurrent: whether a population of this model may have a recurrent projection.
        coefficients: ``(params, dt, method) → coefficients`` handed to ``step`` (default:
            ``params.coefficients(dt, method)``).
        adaptation: ``(params, coefficients) → Adaptation`` for a spiking model with an
            adaptation variable that the fused kernel runs (``None``: no adaptation).
        unsupported: why an engine or chip that does not run the model cannot, by its name
            (``{"event": "…"}``); the backend puts the reason in its error message.
    """

    name: str
    params: type
    state: type
    step: Callable[..., tuple[Tensor | None, Tensor, Any]]
    spiking: bool = True
    currents: int = 1
    input_width: int = 1
    engines: frozenset[str] = frozenset({"reference"})
    chips: frozenset[str] = frozenset()
    config: str | None = None
    recurrent: bool = True
    coefficients: Callable[[Any, float, dyn.Method], Any] = field(
        default=_default_coefficients, repr=False)
    adaptation: Callable[[Any, Any], Adaptation] | None = field(default=None, repr=False)
    unsupported: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.engines) - set(ENGINES)
        if unknown or "reference" not in self.engines:
            raise ValueError(f"model {self.name}: engines must include 'reference' and come from "
                             f"{ENGINES}, got {sorted(self.engines)}")

    @property
    def param_names(self) -> tuple[str, ...]:
        """All fields of the parameter record (tensors and settings)."""
        return tuple(f.name for f in fields(self.params))

    @property
    def tensor_names(self) -> tuple[str, ...]:
        """Parameter fields that are tensors (IR ``params``)."""
        return tuple(n for n in self.param_names if n not in SETTINGS)

    def check_parameters(self, values: Mapping[str, Any], shape: tuple[int, ...],
                         who: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Check parameter values given for a population of ``shape`` (missing ones take the
        record's defaults) and return ``(tensors, settings)``: every tensor parameter as a new
        float32 tensor (:func:`check_tensor_parameter`), every setting checked
        (:func:`check_setting`). ``who`` names the population in messages.

        Raises:
            ParameterError: a name that is no parameter of this model, or a value out of range
                (:class:`~spikeloop.errors.ArgumentTypeError` for a wrong type).
            ShapeError: per-neuron values of another shape.
            NonFiniteError: values holding NaN or ±inf.
        """
        names = self.param_names
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ParameterError(f"{who} has no parameter {unknown}; known: {list(names)}")
        defaults = self.params()
        given = {n: values[n] if n in values else getattr(defaults, n) for n in names}
        tensors = {n: check_tensor_parameter(n, given[n], shape, who) for n in self.tensor_names}
        settings = {n: check_setting(n, given[n], who) for n in names if n in SETTINGS}
        return tensors, settings

    def runs_on(self, engine_or_chip: str) -> bool:
        """Whether the engine or chip named can run this model."""
        return engine_or_chip in self.engines or engine_or_chip in self.chips


MODELS: Registry[NeuronModel] = Registry("neuron model")
"""Neuron model descriptions by IR name (``"CubaLIF"``, ``"LI"`` …)."""


def register(model: NeuronModel) -> NeuronModel:
    """Add ``model`` to :data:`MODELS` (a duplicate name is an error) and return it."""
    MODELS.add(model.name, model)
    return model


def _readout(step: Callable[..., tuple[Tensor, Any]]) -> Callable[..., Any]:
    """A non-spiking ``step(x, s, c, obs) → (v, s)`` in the common signature."""

    def wrapped(x: Tensor, s: Any, p: Any, c: Any, surrogate: Surrogate,
                obs: dyn.Observation | None = None) -> tuple[None, Tensor, Any]:
        v, s = step(x, s, c, obs)
        return None, v, s

    wrapped.__doc__ = step.__doc__
    wrapped.__name__ = step.__name__
    return wrapped


FUSED_EVENT = frozenset({"reference", "fused", "event"})

LIF = register(NeuronModel("LIF", dyn.LIFParameters, dyn.LIFState, dyn.lif_step, currents=0,
                           engines=frozenset({"reference", "fused"}), config="lif"))
CUBA_LIF = register(NeuronModel("CubaLIF", dyn.CubaLIFParameters, dyn.CubaLIFState,
                                dyn.cuba_lif_step, engines=FUSED_EVENT,
                                chips=frozenset({"analog", "xylo"}), config="cuba_lif"))


def _ahp_adaptation(p: dyn.AdaptiveLIFParameters, c: dyn.Coefficients) -> Adaptation:
    """The AHP current ``a`` of :func:`~spikeloop.dynamics.adaptive_lif_step` in the fused
    kernel: ``κ = r g_adapt``, ``ρ = adapt_decay``, no subthreshold coupling, ``b =
    adapt_increment``."""
    return Adaptation("a", decay=c.adapt_decay, gain=c.adapt_gain, coupling=0.0,
                      jump=p.adapt_increment, v_leak=0.0)


ADAPTIVE_LIF = register(NeuronModel("AdaptiveLIF", dyn.AdaptiveLIFParameters,
                                    dyn.AdaptiveLIFState, dyn.adaptive_lif_step,
                                    engines=FUSED_EVENT,
                                    config="adaptive_lif", adaptation=_ahp_adaptation))
IF = register(NeuronModel("IF", dyn.IFParameters, dyn.LIFState, dyn.if_step, currents=0,
                          engines=frozenset({"reference", "fused"}), config="if"))
LI = register(NeuronModel("LI", dyn.LIParameters, dyn.LIState, _readout(dyn.li_step),
                          spiking=False, currents=0, engines=frozenset({"reference", "fused"}),
                          config="li", recurrent=False))
CUBA_LI = register(NeuronModel("CubaLI", dyn.CubaLIParameters, dyn.CubaLIState,
                               _readout(dyn.cuba_li_step), spiking=False, engines=FUSED_EVENT,
                               chips=frozenset({"analog", "xylo"}), config="cuba_li",
                               recurrent=False))
CUBA_LIF2 = register(NeuronModel(
    "CubaLIF2", dyn.CubaLIF2Parameters, dyn.CubaLIF2State, dyn.cuba_lif2_step, currents=2,
    input_width=2, chips=frozenset({"xylo"}), config="cuba_lif2", recurrent=False,
    coefficients=dyn.cuba_lif2_coefficients))
INTEGRATOR = register(NeuronModel("I", dyn.IntegratorParameters, dyn.LIState,
                                  _readout(dyn.li_step), spiking=False, currents=0,
                                  engines=frozenset({"reference", "fused"}), recurrent=False))
