r"""Analog neurons whose transfer curve is not the model's: voltage-domain and time-domain
integrate-and-fire circuits.

Kim & Choi (ISCAS 2022, arXiv:2201.01394, "Improving Spiking Neural Network Accuracy Using
Time-based Neurons") model current-mirror *voltage-domain* neurons designed in 28 nm CMOS and
show that their non-linearity (reduced voltage headroom and dynamic range) degrades SNN
inference badly, while their *time-domain* neuron, which processes incoming spikes in the time
domain, keeps the MNIST error rate within 0.1 % of the ideal neuron's. Song, Shin, Kim & Choi
(arXiv:2202.02015, 2022) report for a time-domain I&F neuron in 28 nm a > 4.3× lower MNIST
error rate than current-mirror neurons. We read only the abstracts, not the transfer curves of
either paper: the shapes below are parametrised, and the defaults are illustrative.

:class:`AnalogNeuron` changes each step's input ``x`` as the circuit integrates it
(:class:`~spikeloop.devices.NeuronDevice`), with ``Δ = v − v_leak``, ``S = ϑ − v_leak`` (the
threshold span) and ``β``, the input gain ``γ`` of the population's coefficients:

- ``domain="voltage"``: the membrane is a voltage on a capacitor. The current source that
  charges it loses headroom as the membrane approaches the rail (gain compression,
  ``compression`` α), and the leak is a transistor with a saturating I–V
  (``leak_saturation`` σ, in units of ``S``):

  .. math::
      \tilde x = \frac{x}{1 + α (Δ/S)^2}
               + \frac{1-β}{γ}\Big(Δ - σS \tanh\frac{Δ}{σS}\Big),

  so that a voltage model's step becomes ``v' = v − (1−β) σS tanh(Δ/(σS)) + γ x / (1 + α
  (Δ/S)²)``: the linear leak ``(1−β)Δ`` is replaced by one saturating at ``(1−β)σS``. The
  leak term is exact only where ``x`` drives the membrane directly (``LIF``, ``IF``; ``IF`` has
  ``β = 1`` and no leak to change); for a current-based model ``x`` enters a synaptic current
  that carries it on, so ``leak_saturation`` is refused there, and the compression acts on the
  current arriving at the synapse.
- ``domain="time"``: the membrane is a delay/phase. Integration is linear up to a gain error
  ε (``gain_error``) and the time resolution of the pulse that carries each step's input: the
  membrane increment ``γ x`` of a step is a whole number of quanta ``δ S`` (``resolution`` δ):

  .. math::
      \tilde x = (1 + ε)\, q \,\mathrm{round}(x / q),\qquad q = δ S / γ

  (``γ = x_gain`` for voltage models, ``syn_gain`` for current-based ones). The relative
  error of a step's input is at most ``|ε| + δS / (2γ|x|)``. The defaults (ε = 2·10⁻⁴,
  δ = 5·10⁻⁵) keep an LIF's f–I curve within 0.1 % of the ideal one (τ = 10 ms,
  dt = 0.1 ms, 1.5–5 × rheobase: mean |Δrate| / mean rate 0.07 %, measured with
  :func:`transfer_curve`), as the time-domain neuron of Kim & Choi keeps MNIST within 0.1 %.

Zero settings (``compression=0``, no ``leak_saturation``, ``gain_error=0``,
``resolution=0``) return ``x`` itself: the network is the ideal one exactly. Gradients flow
through ``x̃`` (the rounding passes the gradient straight through), so a network can be
trained through the neurons it will run on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from spikeloop.checks import check_choice, check_int, check_real, show
from spikeloop.devices.base import DEVICE_MODELS, DeviceContext, NeuronDevice, straight_through
from spikeloop.dynamics import MODELS, NeuronModel, SuperSpike
from spikeloop.errors import DeviceModelError, ParameterError
from spikeloop.kernels.loop import run_population

__all__ = ["AnalogNeuron", "transfer_curve"]

Domain = Literal["voltage", "time"]
_OPTIONS: dict[str, dict[str, float | None]] = {
    "voltage": {"compression": 0.5, "leak_saturation": None},
    "time": {"gain_error": 2e-4, "resolution": 5e-5},
}
"""Each domain's options and their defaults (illustrative, see the module docstring)."""


@dataclass(frozen=True)
class AnalogNeuron(NeuronDevice):
    """A population's neurons as voltage-domain or time-domain analog circuits (equations in
    the module docstring).

    Args:
        domain: ``"voltage"`` or ``"time"``.
        compression: (voltage) α ≥ 0 of the integration gain ``1/(1 + α (Δ/S)²)``; 0.5.
        leak_saturation: (voltage) σ > 0, where the leak saturates in units of ``S``;
            ``None`` (default): the model's linear leak.
        gain_error: (time) ε, the integration gain ``1 + ε``, ``−1 < ε < 1``; 2·10⁻⁴.
        resolution: (time) δ in ``[0, 1)``, the time quantum in units of the threshold span;
            5·10⁻⁵.

    An option left ``None`` takes its domain's default; an option of the other domain is an
    error.

    Raises:
        ParameterError: an unknown domain, another domain's option, or a value out of range
            (the message names the option and the limit).
        DeviceModelError: (at a run) a population without a threshold or with two inputs per
            neuron, ``leak_saturation`` on a current-based model, a backend other than
            ``'sim'`` and the analog ``'chip'``.

    Example:
        >>> net.devices = Devices({"hidden": AnalogNeuron("voltage", compression=0.3)})
    """

    name: ClassVar[str] = "analog_neuron"
    domain: Domain = "voltage"
    compression: float | None = None
    leak_saturation: float | None = None
    gain_error: float | None = None
    resolution: float | None = None

    def __post_init__(self) -> None:
        check_choice(self.domain, "AnalogNeuron: domain", tuple(_OPTIONS))
        own = _OPTIONS[self.domain]
        for option in ("compression", "leak_saturation", "gain_error", "resolution"):
            value = getattr(self, option)
            if option not in own:
                if value is not None:
                    raise ParameterError(
                        f"AnalogNeuron: {option} is an option of the "
                        f"{'voltage' if self.domain == 'time' else 'time'} domain, not of "
                        f"domain={self.domain!r} (its options: {', '.join(own)})")
                continue
            if value is None:
                value = own[option]
            elif option == "compression":
                value = check_real(value, "AnalogNeuron: compression (α of the gain "
                                   "1/(1 + α u²))", 0.0)
            elif option == "leak_saturation":
                value = check_real(value, "AnalogNeuron: leak_saturation (in units of the "
                                   "threshold span)", 0.0, low_open=True)
            elif option == "gain_error":
                value = check_real(value, "AnalogNeuron: gain_error", -1.0, 1.0,
                                   low_open=True, high_open=True)
            else:
                value = check_real(value, "AnalogNeuron: resolution (a fraction of the "
                                   "threshold span)", 0.0, 1.0, high_open=True)
            object.__setattr__(self, option, value)

    def check_node(self, node: Any) -> None:
        super().check_node(node)
        self.check_model(node.model, f"AnalogNeuron on {node.name!r}")

    def check_model(self, model: NeuronModel, who: str = "AnalogNeuron") -> None:
        """Raise :class:`DeviceModelError` unless this device can act on ``model``'s neurons."""
        if not model.spiking or model.input_width != 1:
            raise DeviceModelError(
                f"{who}: its transfer curve is set in units of the threshold span of a spiking "
                f"neuron with one input; {model.name} "
                f"{'has no threshold' if not model.spiking else 'takes two inputs per neuron'}")
        if self.leak_saturation is not None and model.currents:
            raise DeviceModelError(
                f"{who}: leak_saturation acts on a membrane driven by its input (LIF, IF); the "
                f"input of {model.name} enters a synaptic current, where the leak correction "
                f"would not be exact")

    def current(self, x: Tensor, state: Any, ctx: DeviceContext, p: Any, c: Any) -> Tensor:
        v_leak = getattr(p, "v_leak", 0.0)  # an IF neuron rests at 0
        delta, span = state.v - v_leak, p.v_threshold - v_leak
        if self.domain == "voltage":
            if self.compression:
                x = x / (1 + self.compression * (delta / span) ** 2)
            if self.leak_saturation is not None:
                s = self.leak_saturation * span
                x = x + (1 - c.beta) / c.x_gain * (delta - s * torch.tanh(delta / s))
            return x
        if self.resolution:
            gain = c.syn_gain if "i" in state._fields else c.x_gain
            q = self.resolution * span / gain
            x = straight_through(x, torch.round(x / q) * q)
        return x * (1 + self.gain_error) if self.gain_error else x


DEVICE_MODELS.add(AnalogNeuron.name, AnalogNeuron)


def transfer_curve(
    model: str | NeuronModel, currents: Sequence[float] | Tensor, *,
    device: AnalogNeuron | None = None, steps: int = 1000, dt: float = 1e-3,
    **params: Any,
) -> Tensor:
    """The f–I curve: firing rates (Hz) of one neuron of ``model`` (a registered name or
    description, parameters ``params``) held at each constant input current for ``steps``
    steps of ``dt``, from rest, ideal or as ``device``'s circuit (float64, reference loop).

    Example:
        >>> i = torch.linspace(0, 5, 51)
        >>> ideal = transfer_curve("LIF", i, tau_mem=10e-3)
        >>> analog = transfer_curve("LIF", i, device=AnalogNeuron("voltage"), tau_mem=10e-3)
    """
    model = MODELS.get(model) if isinstance(model, str) else model
    steps = check_int(steps, "transfer_curve: steps", 1)
    i = torch.as_tensor(currents, dtype=torch.float64).flatten()
    if not torch.isfinite(i).all():
        raise ParameterError(f"transfer_curve: currents must be finite, got {show(currents)}")
    p = model.params(**params)
    hook = None
    if device is not None:
        device.check_model(model, "transfer_curve")
        ctx = DeviceContext("transfer_curve", torch.Generator(), torch.Generator(), 0.0)

        def hook(x: Tensor, s: Any, p: Any, c: Any) -> Tensor:
            return device.current(x, s, ctx, p, c)

    x = i.expand(steps, 1, len(i)).contiguous()
    with torch.no_grad():
        obs, _ = run_population(model, x, p, dt=dt, method="exact", surrogate=SuperSpike(),
                                shape=(len(i),), kernel="reference", record_v=False,
                                record_current=False, device=hook)
    return obs.spikes.sum(0)[0] / (steps * dt)
