r"""Neuron models: typed parameters, states and one pure step function per model.

This module is the single source of truth for the dynamics. Modules in :mod:`spikeloop.nn`,
backends and chip emulators call these functions; nothing else writes an update equation.

Conventions
-----------
Parameters are in SI units with NIR names: ``tau_mem``, ``tau_syn`` (s), ``v_leak``,
``v_threshold``, ``v_reset`` (membrane units), ``r`` (membrane resistance: membrane units per
current unit). One call of a step function advances the state by ``dt`` from ``t = k·dt`` to
``(k+1)·dt``; the input ``x_k`` belongs to step ``k``.

Continuous-time models
    voltage LIF   ``τ_mem dv/dt = (v_leak − v) + r·x(t)``, input current held over the step
    CUBA LIF      ``τ_syn dI/dt = −I`` with jumps ``I ← I + x_k`` at ``t = k·dt``;
                  ``τ_mem dv/dt = (v_leak − v) + r·I``
    adaptive LIF  CUBA LIF with an after-hyperpolarisation current ``a``:
                  ``τ_adapt da/dt = −a``, ``a ← a + b`` at each spike, ``τ_mem dv/dt = … − r·a``
    LI / CubaLI   as LIF / CUBA LIF without threshold (readouts)
    IF            ``v_k+1 = v_k + r·x_k`` (no leak)

Discretisation (``method``)
    ``"exact"``: each step is the exact solution of the linear ODE over ``dt``:

    .. math::
        β = e^{-dt/τ_{mem}},\; α = e^{-dt/τ_{syn}}, \\
        v_{k+1} = β v_k + (1-β) v_{leak} + (1-β)\,r\,x_k                    \quad\text{(LIF)} \\
        I' = I_k + x_k,\quad v_{k+1} = β v_k + (1-β) v_{leak} + r\,g\,I',\quad I_{k+1} = α I' \\
        g = \frac{τ_{syn}}{τ_{syn} - τ_{mem}} (α - β)
        \quad (\to (dt/τ) e^{-dt/τ}\text{ for } τ_{syn}=τ_{mem})

    ``"euler"``: forward Euler, ``β = 1 − dt/τ_mem``, ``α = 1 − dt/τ_syn``, ``g = dt/τ_mem``.

Spiking, reset and refractoriness (shared by every spiking model, :func:`fire`)
    ``z = H(v − ϑ)`` with a surrogate derivative; the recorded membrane is the value compared
    with the threshold (before reset). Reset ``"value"``: ``v ← v − z (v − v_reset)``;
    ``"subtract"``: ``v ← v − z (ϑ − v_reset)``. The reset uses a detached ``z`` unless
    ``detach_reset=False``. With ``t_refrac > 0`` the membrane is clamped to ``v_reset`` for
    ``round(t_refrac/dt)`` steps after a spike, during which the neuron cannot fire (synaptic
    currents keep evolving).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from spikeloop.checks import check_bool, check_choice, check_dt, check_real, show
from spikeloop.dynamics.surrogate import Surrogate, spike
from spikeloop.errors import ArgumentTypeError, ParameterError, TimeStepError

Method = Literal["exact", "euler"]
ResetMode = Literal["value", "subtract"]
Scalar = Tensor | float

METHODS = ("exact", "euler")
RESETS = ("value", "subtract")


# ----------------------------------------------------------------------------- discretisation
def _as_tensor(value: Scalar) -> Tensor:
    return value if isinstance(value, Tensor) else torch.tensor(float(value))


def check_time_constants(dt: float, **taus: Scalar) -> None:
    """Raise :class:`TimeStepError` unless ``0 < dt < τ`` for every given time constant."""
    check_dt(dt)
    for name, tau in taus.items():
        t = _as_tensor(tau).detach()
        if not torch.isfinite(t).all():
            raise TimeStepError(f"{name} must be finite, got {t}")
        smallest = float(t.min())
        if smallest <= dt * (1 + 1e-6):  # tolerance: float32 parameters
            raise TimeStepError(
                f"dt = {dt:g} s must be smaller than {name} (smallest value {smallest:g} s)"
            )


def decay(tau: Scalar, dt: float, method: Method) -> Tensor:
    """Decay factor of one step: ``e^{−dt/τ}`` (exact) or ``1 − dt/τ`` (Euler)."""
    tau = _as_tensor(tau)
    if method == "exact":
        return torch.exp(-dt / tau)
    if method == "euler":
        return 1.0 - dt / tau
    raise ParameterError(f"unknown discretisation method {method!r}; known: {', '.join(METHODS)}")


def current_gain(tau_current: Scalar, tau_mem: Scalar, dt: float, method: Method) -> Tensor:
    r"""Membrane change over one step per unit of a current that decays with ``tau_current``.

    Exact: :math:`g = \frac{τ_c}{τ_c - τ_m}(e^{-dt/τ_c} - e^{-dt/τ_m})`, with the limit
    :math:`(dt/τ_m) e^{-dt/τ_m}` where ``τ_c = τ_m``. Euler: :math:`g = dt/τ_m`.
    """
    tau_c, tau_m = _as_tensor(tau_current), _as_tensor(tau_mem)
    if method == "euler":
        return dt / tau_m * torch.ones_like(tau_c)
    # Written as g = (dt/τ_m) β (e^u − 1)/u with u = dt (1/τ_m − 1/τ_c): no cancellation when
    # τ_c ≈ τ_m (the naive form loses digits in float32), exact limit 1 at u = 0.
    beta = decay(tau_m, dt, method)
    u = dt * (1.0 / tau_m - 1.0 / tau_c)
    small = u.abs() < 1e-4
    u_safe = torch.where(small, torch.ones_like(u), u)
    ratio = torch.where(small, 1.0 + u / 2 + u * u / 6, torch.expm1(u_safe) / u_safe)
    return dt / tau_m * beta * ratio


def refractory_steps(t_refrac: float, dt: float) -> int:
    """Number of steps a neuron stays refractory: ``round(t_refrac / dt)``."""
    t_refrac = check_real(t_refrac, "t_refrac (s)", low=0)
    steps = round(t_refrac / dt)
    if t_refrac > 0 and steps == 0:
        raise ParameterError(
            f"t_refrac = {t_refrac:g} s rounds to 0 steps at dt = {dt:g} s; use 0 or ≥ dt/2"
        )
    return steps


# ----------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Coefficients:
    """Per-step constants derived once per sequence from parameters, ``dt`` and ``method``.

    ``beta``: membrane decay; ``rest``: ``(1−β) v_leak``; ``x_gain``: input gain onto the membrane
    (voltage models) ; ``alpha``/``syn_gain``: synaptic decay and ``r·g``; ``adapt_decay`` /
    ``adapt_gain``: adaptation decay and ``r·g_adapt``; ``refrac_steps``.
    """

    beta: Scalar = 1.0
    rest: Scalar = 0.0
    x_gain: Scalar = 1.0
    alpha: Scalar = 0.0
    syn_gain: Scalar = 0.0
    adapt_decay: Scalar = 0.0
    adapt_gain: Scalar = 0.0
    refrac_steps: int = 0


SETTINGS = ("reset", "t_refrac", "detach_reset")
"""Fields of parameter records that are settings (IR ``settings``), not tensors (``params``)."""


def check_setting(name: str, value: Any, who: str, sep: str = " ") -> Any:
    """Return the setting ``name`` (one of :data:`SETTINGS`) if ``value`` is allowed for it:
    ``reset`` one of ``"value"``/``"subtract"``, ``t_refrac`` a finite number of seconds ``≥ 0``,
    ``detach_reset`` a bool. Messages name it ``{who}{sep}{name}`` (``"CubaLIF reset"``, or
    ``"LIFParameters.reset"`` with ``sep="."``).

    Raises:
        ArgumentTypeError: ``value`` has the wrong type.
        ParameterError: it is out of range (or ``name`` is no setting).
    """
    if name == "reset":
        return check_choice(value, f"{who}{sep}reset", RESETS)
    if name == "t_refrac":
        return check_real(value, f"{who}{sep}t_refrac (s)", low=0)
    if name == "detach_reset":
        return check_bool(value, f"{who}{sep}detach_reset")
    raise ParameterError(f"{who}: {name!r} is not a setting; settings: {list(SETTINGS)}")


@dataclass(frozen=True)
class _Params:
    def _check_finite(self) -> None:
        """Every parameter (not a setting) a finite real number or a tensor of them."""
        for f in fields(self):
            if f.name in SETTINGS:
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, Tensor | numbers.Real):
                raise ArgumentTypeError(f"{type(self).__name__}.{f.name} must be a real number "
                                        f"or a tensor, got {show(value)} "
                                        f"({type(value).__name__})")
            if not torch.isfinite(_as_tensor(value)).all():
                raise ParameterError(f"{type(self).__name__}.{f.name} must be finite")


@dataclass(frozen=True)
class ThresholdParameters(_Params):
    """Firing, reset and refractoriness shared by all spiking models."""

    v_threshold: Scalar = 1.0
    v_reset: Scalar = 0.0
    reset: ResetMode = "value"
    t_refrac: float = 0.0
    detach_reset: bool = True

    def _check_reset(self) -> None:
        for name in ("reset", "detach_reset"):
            check_setting(name, getattr(self, name), type(self).__name__, sep=".")


@dataclass(frozen=True)
class LIParameters(_Params):
    """Voltage leaky integrator: ``τ_mem dv/dt = (v_leak − v) + r x``."""

    tau_mem: Scalar = 10e-3
    v_leak: Scalar = 0.0
    r: Scalar = 1.0

    def coefficients(self, dt: float, method: Method = "exact") -> Coefficients:
        self._check_finite()
        check_time_constants(dt, tau_mem=self.tau_mem)
        beta = decay(self.tau_mem, dt, method)
        return Coefficients(beta=beta, rest=(1 - beta) * self.v_leak, x_gain=(1 - beta) * self.r)


@dataclass(frozen=True)
class CubaLIParameters(_Params):
    """Current-based leaky integrator (readout): exponential synapse into an LI membrane."""

    tau_mem: Scalar = 10e-3
    tau_syn: Scalar = 5e-3
    v_leak: Scalar = 0.0
    r: Scalar = 1.0

    def coefficients(self, dt: float, method: Method = "exact") -> Coefficients:
        self._check_finite()
        check_time_constants(dt, tau_mem=self.tau_mem, tau_syn=self.tau_syn)
        beta = decay(self.tau_mem, dt, method)
        return Coefficients(
            beta=beta,
            rest=(1 - beta) * self.v_leak,
            alpha=decay(self.tau_syn, dt, method),
            syn_gain=self.r * current_gain(self.tau_syn, self.tau_mem, dt, method),
        )


@dataclass(frozen=True)
class LIFParameters(LIParameters, ThresholdParameters):
    """Voltage LIF: LI membrane plus threshold, reset and refractoriness."""

    def coefficients(self, dt: float, method: Method = "exact") -> Coefficients:
        self._check_reset()
        c = LIParameters.coefficients(self, dt, method)
        return _with_refrac(c, self.t_refrac, dt)


@dataclass(frozen=True)
class CubaLIFParameters(CubaLIParameters, ThresholdParameters):
    """Current-based LIF."""

    def coefficients(self, dt: float, method: Method = "exact") -> Coefficients:
        self._check_reset()
        c = CubaLIParameters.coefficients(self, dt, method)
        return _with_refrac(c, self.t_refrac, dt)


@dataclass(frozen=True)
class AdaptiveLIFParameters(CubaLIFParameters):
    """CUBA LIF with a spike-triggered after-hyperpolarisation (AHP) current.

    ``τ_adapt da/dt = −a``; each spike adds ``adapt_increment`` to ``a``; ``a`` enters the
    membrane like an inhibitory synaptic current (``−r·a``).
    """

    tau_adapt: Scalar = 200e-3
    adapt_increment: Scalar = 0.5

    def coefficients(self, dt: float, method: Method = "exact") -> Coefficients:
        c = CubaLIFParameters.coefficients(self, dt, method)
        check_time_constants(dt, tau_adapt=self.tau_adapt)
        return replace(
            c,
            adapt_decay=decay(self.tau_adapt, dt, method),
            adapt_gain=self.r * current_gain(self.tau_adapt, self.tau_mem, dt, method),
        )


@dataclass(frozen=True)
class IFParameters(ThresholdParameters):
    """Integrate-and-fire without leak: ``v ← v + r x``."""

    r: Scalar = 1.0

    def coefficients(self, dt: float, method: Method = "exact") -> Coefficients:
        self._check_finite()
        self._check_reset()
        check_dt(dt)
        return _with_refrac(Coefficients(beta=1.0, rest=0.0, x_gain=self.r), self.t_refrac, dt)


@dataclass(frozen=True)
class CubaLIF2Parameters(CubaLIFParameters):
    """Current-based LIF with a second synaptic current (time constant ``tau_syn2``)."""

    tau_syn2: Scalar = 5e-3

    def second(self) -> CubaLIFParameters:
        """The parameters as seen by current 1 (``tau_syn ← tau_syn2``)."""
        values = {f.name: getattr(self, f.name) for f in fields(CubaLIFParameters)}
        return CubaLIFParameters(**{**values, "tau_syn": self.tau_syn2})

    def coefficients(self, dt: float, method: Method = "exact") -> Coefficients:
        """Current 0's coefficients (current 1's: ``self.second().coefficients``); checks
        ``tau_syn2`` too."""
        check_time_constants(dt, tau_syn2=self.tau_syn2)
        return CubaLIFParameters.coefficients(self, dt, method)


def cuba_lif2_coefficients(
    p: CubaLIF2Parameters, dt: float, method: Method = "exact"
) -> tuple[Coefficients, Coefficients]:
    """Coefficients of current 0 (``tau_syn``) and current 1 (``tau_syn2``)."""
    return p.coefficients(dt, method), p.second().coefficients(dt, method)


@dataclass(frozen=True)
class IntegratorParameters:
    """Non-spiking integrator (NIR ``I``): ``v_{k+1} = v_k + r x_k``.

    The coefficients are those of :class:`IFParameters` (``β = 1``, no rest term,
    ``x_gain = r``) without threshold or refractoriness.
    """

    r: Scalar = 1.0

    def coefficients(self, dt: float, method: Method = "exact") -> Coefficients:
        return replace(IFParameters(r=self.r).coefficients(dt, method), refrac_steps=0)


def _with_refrac(c: Coefficients, t_refrac: float, dt: float) -> Coefficients:
    return replace(c, refrac_steps=refractory_steps(t_refrac, dt))


# ----------------------------------------------------------------------------- states
class LIState(NamedTuple):
    """State of an LI membrane."""

    v: Tensor


class CubaLIState(NamedTuple):
    """State of a current-based LI: membrane and synaptic current."""

    v: Tensor
    i: Tensor


class LIFState(NamedTuple):
    """State of a voltage LIF / IF neuron; ``refrac`` counts remaining refractory steps."""

    v: Tensor
    refrac: Tensor


class CubaLIFState(NamedTuple):
    """State of a current-based LIF neuron."""

    v: Tensor
    i: Tensor
    refrac: Tensor


class AdaptiveLIFState(NamedTuple):
    """State of an adaptive LIF neuron: membrane, synaptic current, AHP current, refractory."""

    v: Tensor
    i: Tensor
    a: Tensor
    refrac: Tensor


class CubaLIF2State(NamedTuple):
    """Membrane, the two synaptic currents and the refractory counter."""

    v: Tensor
    i: Tensor
    i1: Tensor
    refrac: Tensor


# ----------------------------------------------------------------------------- shared pieces
def integrate_voltage(x: Tensor, v: Tensor, c: Coefficients) -> Tensor:
    """``v_{k+1} = β v_k + (1−β) v_leak + x_gain · x_k`` (``x_gain = (1−β) r``; IF: ``β = 1``)."""
    return c.beta * v + c.rest + c.x_gain * x


def integrate_current(i: Tensor, v: Tensor, c: Coefficients) -> Tensor:
    """``v_{k+1} = β v_k + (1−β) v_leak + r g I'`` for a current ``I'`` decaying over the step."""
    return c.beta * v + c.rest + current_drive(i, c)


def current_drive(i: Tensor, c: Coefficients) -> Tensor:
    """``r g I'``: what a current ``I'`` decaying over the step adds to the membrane (a neuron
    with several currents adds one such term per current to :func:`integrate_current`)."""
    return c.syn_gain * i


def membrane_slope(v: Tensor | float, i: Tensor, v_leak: Tensor, r: Tensor,
                   tau_mem: Tensor) -> Tensor:
    r"""The membrane's time derivative in continuous time,
    :math:`\dot V = (v_{leak} - V + r I)/τ_{mem}`, at membrane ``v`` and current ``i`` (the
    continuous-time form of :func:`integrate_current`; EventProp's jump conditions read it at
    a spike)."""
    return (v_leak - v + r * i) / tau_mem


class Observation(NamedTuple):
    """What a device observed of one population at one step (for in-the-loop training).

    ``v``: membrane (the value compared with the threshold); ``z``: spikes. Either may be
    ``None``: that quantity is then left to the model (e.g. forcing only the spike times).
    """

    v: Tensor | None
    z: Tensor | None = None


def straight_through(model: Tensor, observed: Tensor) -> Tensor:
    """The value of ``observed`` with the gradient of ``model``: ``o + (m − m.detach())``.

    Exactly ``observed`` for a finite ``model`` (``m − m`` is 0 in floating point, whereas
    ``m + (o − m)`` can round to a neighbour of ``o``)."""
    return observed.detach() + (model - model.detach())


def _observe(v: Tensor, observed: Observation | None) -> Tensor:
    """The observed membrane with the model's gradient, or ``v`` without an observation."""
    return v if observed is None or observed.v is None else straight_through(v, observed.v)


def fire(
    v: Tensor,
    refrac: Tensor,
    p: ThresholdParameters,
    c: Coefficients,
    surrogate: Surrogate,
    observed: Observation | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Threshold, reset and refractoriness. Returns ``(z, v_observed, v_next, refrac_next)``.

    With ``observed`` (in-the-loop training), the membrane and spikes take the observed values
    through :func:`straight_through`, so the surrogate derivative is evaluated at the observed
    membrane and reset and refractoriness follow the observed spikes.
    """
    if c.refrac_steps:
        active = refrac <= 0
        v = torch.where(active, v, p.v_reset)
    v = _observe(v, observed)
    z = spike(v - p.v_threshold, surrogate)
    if observed is not None and observed.z is not None:
        z = straight_through(z, observed.z)
    zr = z.detach() if p.detach_reset else z
    if p.reset == "value":
        v_next = v - zr * (v - p.v_reset)
    else:
        v_next = v - zr * (p.v_threshold - p.v_reset)
    if c.refrac_steps:
        refrac = torch.where(z > 0, float(c.refrac_steps), (refrac - 1).clamp(min=0))
    return z, v, v_next, refrac


# ----------------------------------------------------------------------------- step functions
def li_step(
    x: Tensor, s: LIState, c: Coefficients, observed: Observation | None = None
) -> tuple[Tensor, LIState]:
    """One step of the voltage leaky integrator. Returns ``(v, state)``."""
    v = _observe(integrate_voltage(x, s.v, c), observed)
    return v, LIState(v)


def cuba_li_step(
    x: Tensor, s: CubaLIState, c: Coefficients, observed: Observation | None = None
) -> tuple[Tensor, CubaLIState]:
    """One step of the current-based leaky integrator. Returns ``(v, state)``."""
    i = s.i + x
    v = _observe(integrate_current(i, s.v, c), observed)
    return v, CubaLIState(v, c.alpha * i)


def lif_step(
    x: Tensor,
    s: LIFState,
    p: LIFParameters,
    c: Coefficients,
    surrogate: Surrogate,
    observed: Observation | None = None,
) -> tuple[Tensor, Tensor, LIFState]:
    """One step of the voltage LIF. Returns ``(z, v_observed, state)``.

    ``observed`` (optional, in-the-loop training): see :func:`fire`.
    """
    z, v_obs, v, refrac = fire(integrate_voltage(x, s.v, c), s.refrac, p, c, surrogate, observed)
    return z, v_obs, LIFState(v, refrac)


if_step = lif_step
"""One step of the non-leaky IF neuron: :func:`lif_step` with the coefficients of
:class:`IFParameters` (``β = 1``, no rest term, ``x_gain = r``)."""


def cuba_lif_step(
    x: Tensor,
    s: CubaLIFState,
    p: CubaLIFParameters,
    c: Coefficients,
    surrogate: Surrogate,
    observed: Observation | None = None,
) -> tuple[Tensor, Tensor, CubaLIFState]:
    """One step of the current-based LIF. Returns ``(z, v_observed, state)``."""
    i = s.i + x
    z, v_obs, v, refrac = fire(integrate_current(i, s.v, c), s.refrac, p, c, surrogate, observed)
    return z, v_obs, CubaLIFState(v, c.alpha * i, refrac)


def adaptive_lif_step(
    x: Tensor,
    s: AdaptiveLIFState,
    p: AdaptiveLIFParameters,
    c: Coefficients,
    surrogate: Surrogate,
    observed: Observation | None = None,
) -> tuple[Tensor, Tensor, AdaptiveLIFState]:
    """One step of the adaptive (AHP) LIF. Returns ``(z, v_observed, state)``.

    ``v_{k+1} = β v_k + (1−β) v_leak + r g_syn I' − r g_adapt a_k``, ``a_{k+1} = ρ a_k + b z``.
    """
    i = s.i + x
    v_int = integrate_current(i, s.v, c) - c.adapt_gain * s.a
    z, v_obs, v, refrac = fire(v_int, s.refrac, p, c, surrogate, observed)
    a = c.adapt_decay * s.a + p.adapt_increment * z
    return z, v_obs, AdaptiveLIFState(v, c.alpha * i, a, refrac)


def cuba_lif2_step(
    x: Tensor,
    s: CubaLIF2State,
    p: CubaLIF2Parameters,
    c: tuple[Coefficients, Coefficients],
    surrogate: Surrogate,
    observed: Observation | None = None,
) -> tuple[Tensor, Tensor, CubaLIF2State]:
    r"""One step of the two-current LIF fed ``x [..., 2N]``: ``x[..., :N]`` drives current 0
    (``tau_syn``), ``x[..., N:]`` current 1 (``tau_syn2``). Returns ``(z, v_observed, state)``.

    ``I_s' = I_s + x_s``; ``v = β v + (1−β) v_leak + r g₀ I₀' + r g₁ I₁'``; fire;
    ``I_s ← α_s I_s'`` (``c = (c₀, c₁)``, :func:`cuba_lif2_coefficients`).
    """
    c0, c1 = c
    n = s.i.shape[-1]
    i0, i1 = s.i + x[..., :n], s.i1 + x[..., n:]
    v = integrate_current(i0, s.v, c0) + current_drive(i1, c1)
    z, v_obs, v, refrac = fire(v, s.refrac, p, c0, surrogate, observed)
    return z, v_obs, CubaLIF2State(v, c0.alpha * i0, c1.alpha * i1, refrac)
