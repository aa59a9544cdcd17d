r"""A memristive crossbar that stores a projection's weights as device conductances.

Units: conductances :math:`G` in µS, times in s, weights in the layer's own units; every
``*_std`` and the IR-drop ratio are dimensionless. :math:`\Delta g = g_{max} - g_{min}`.

**Mapping** (at programming). :math:`w_{max} = \max|w|` of the layer (or the fixed option
``w_max``; weights beyond :math:`\pm w_{max}` then saturate at :math:`g_{max}`: the device's
range). Differential pair (``differential=True``, two devices per weight):

.. math::
    G^\pm = g_{min} + \Delta g\,\frac{\max(\pm w, 0)}{w_{max}}, \qquad
    \tilde w = \frac{G^+ - G^-}{\Delta g}\,w_{max}.

One device per weight (``differential=False``) against a reference column held at
:math:`G_{ref} = g_{min} + \Delta g\,\rho`, taken as ideal (no variation, noise or drift: a
stated simplification):

.. math::
    G = \mathrm{clip}\Big(G_{ref} + \Delta g\,\frac{w}{2 w_{max}},\ g_{min},\ g_{max}\Big),
    \qquad \tilde w = \frac{G - G_{ref}}{\Delta g}\,2 w_{max},

:math:`\rho = 1/2` (the middle of the range) for analog devices and
:math:`\rho = \lfloor (L-1)/2 \rfloor / (L-1)` with ``levels = L``: the reference is itself a
device column, so it sits on a level (the middle one for odd :math:`L`, the one just below the
middle for even :math:`L`), and :math:`w = 0` reads exactly 0. For even :math:`L` the
positive side then has one level more than the negative one: :math:`-w_{max}` reads
:math:`-w_{max}(1 - 1/(L-1))`, within half a level step (:math:`w_{max}/(L-1)`) like every
weight in :math:`[-w_{max}, w_{max}]`. ``levels = 2`` is refused here (a reference on one of
two levels stores weights of one sign only).

**Levels** (``levels = L``; ``None``: analog): the target rounds to the nearest of
:math:`L` equally spaced conductances,
:math:`G \leftarrow g_{min} + \Delta g\,\mathrm{round}\big((L-1)(G-g_{min})/\Delta g\big)/(L-1)`.

**Programming** (drawn from ``ctx.program``: fixed per programming instance), per device:
:math:`G_p = \mathrm{clip}(G + \sigma_p \Delta g\,\xi,\ g_{min},\ g_{max})`,
:math:`\xi \sim \mathcal N(0, 1)`, :math:`\sigma_p` = ``program_std``. The clip is the device's
physics (a conductance outside its range cannot be programmed), not a silent correction.
Stuck devices: with probability ``stuck_on`` :math:`G_p = g_{max}`, with probability
``stuck_off`` :math:`G_p = g_{min}` (one uniform draw per device; they do not drift). Drift
exponents: :math:`\nu = \max(0, \nu_0 + \sigma_\nu \zeta)`, :math:`\zeta \sim \mathcal N(0, 1)`
(drift only lowers a conductance). The three draws are made for every device in this order
whatever the options, so changing one option leaves the other patterns of an instance as
they were.

**Drift** (PCM power law, Nandakumar et al., ICECS 2019), :math:`t` = ``ctx.t`` seconds since
programming: :math:`G(t) = G_p\,(t/t_0)^{-\nu}` for :math:`t > t_0`, :math:`G(t) = G_p`
otherwise (:math:`t_0` = 20 s: aihwkit's ``PCMLikeNoiseModel.t_0``; aihwkit counts its
``t_inference`` from :math:`t_0`, i.e. its ``t_inference`` is our :math:`t - t_0`).
Global drift compensation (``drift_compensation``, the idea of aihwkit's
``GlobalDriftCompensation``: one output scale from a read-out of the whole array) multiplies
the read weights by :math:`\alpha = \overline{|\tilde w(t_0)|} / \overline{|\tilde w(t)|}`
(means over the layer). Both means are of calibration *reads* of the array, with read noise,
as a chip can only read its array through its read noise (aihwkit likewise reads the array
with its noise model at programming and at the inference time): the reference one at
:math:`t_0`, its noise drawn from ``ctx.program`` after the three draws below, so fixed per
instance; the current one at :math:`t`, its noise drawn from ``ctx.read`` once per run, after
the run's own read in ``read="inference"`` mode. The calibration read is a read of its own,
not the one the run computes with, in both modes (in ``"step"`` mode there is no array read to
share: the per-step reads are of the outputs), so :math:`\alpha` is the same quantity in both
modes, independent of the run's read noise, and the two modes agree in the distribution of
every output (mean and variance). With read noise :math:`\alpha` under-compensates: noise
inflates :math:`\overline{|\tilde w|}` more when drift has made the weights small.

**IR drop** (``ir_drop`` :math:`r = R\,g_{max}`, :math:`R` one wire segment's resistance),
first order in :math:`r`. Device :math:`(o, i)` (weight ``w[o, i]``; conv weights as their
``[out, in·k…]`` matrix) sits on row :math:`i` (driven at column 0 by input :math:`i`) and
column :math:`o` (sensed below row :math:`n-1`, :math:`n` = inputs). Assumptions: every input
active at the same read voltage, outputs at virtual ground, the zeroth-order currents in the
wires, the two arrays of a differential pair laid out alike and separately. With
:math:`g = G/g_{max}`, the drop along row :math:`i` up to column :math:`o` and the rise of
column :math:`o` at row :math:`i` attenuate the device's voltage, so
:math:`G_{eff} = a\,G`,

.. math::
    a_{oi} = 1 - r\Big[\sum_{o'} g_{o'i}\,(\min(o, o') + 1)
                       + \sum_{i'} g_{oi'}\,(n - \max(i, i'))\Big],

valid while :math:`1 - a \ll 1` (an :math:`a \le 0` raises ParameterError).

**Read noise** (``read_std`` :math:`\sigma_r`, drawn from ``ctx.read``, not bounded: it is a
fluctuation of the read current): every device reads :math:`G_{eff} + \sigma_r \Delta g\,\eta`.
``read="inference"``: drawn once per run into the realised weights. ``read="step"``: drawn
afresh at every time step; for a ``Linear`` projection the sum over inputs of independent
Gaussian conductance noise is exactly Gaussian, so it is drawn on the output,

.. math::
    \tilde y_{t,o} = y_{t,o} + \alpha\,c\,\sigma_r\,\Delta g\,\sqrt{k}\,
        \sqrt{\textstyle\sum_i x_{t,i}^2}\;\epsilon_{t,o},

:math:`c` the weight per µS (:math:`w_{max}/\Delta g`, or :math:`2 w_{max}/\Delta g` single),
:math:`k` devices per weight (2 or 1). Only the simulator ('sim') runs it (its projection hook).

**Gradients**: :func:`~spikeloop.devices.straight_through`: the device forward, the model's
backward (:math:`\partial\tilde w/\partial w = 1`).

Where this differs from aihwkit's ``PCMLikeNoiseModel`` (IBM/aihwkit,
``src/aihwkit/inference/noise/pcm.py`` at commit 4545f11b5214c5e3c6b9d293053bbf8baf74e110):
its programming noise is a polynomial in :math:`G/g_{max}`, its :math:`\nu` mean and spread
depend on :math:`\log G`, its read noise is multiplicative, grows as
:math:`\sqrt{\ln((t + t_{read})/2t_{read})}` and is fixed per inference time, and it clips
only at 0; here each is one constant (see :meth:`Crossbar.pcm` for the values). Its global
drift compensation reads the very (noise-frozen) weights the inference then uses, so its
:math:`\alpha` is correlated with each weight's read noise; here the calibration read is
independent of the run's read (above). The correlation matters with one device per weight
(drift moves every weight the same way there, so :math:`\overline{|\tilde w|}` follows the
sum of the noise): with it, the output variance was 7–11 % lower in ``"inference"`` than in
``"step"`` mode (measured with the options of the test
``test_read_noise_per_step_has_the_output_variance_of_per_inference_reads``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor

from spikeloop.checks import check_bool, check_choice, check_int, check_real
from spikeloop.devices.base import DEVICE_MODELS, DeviceContext, SynapseDevice, straight_through
from spikeloop.errors import DeviceModelError, ParameterError

if TYPE_CHECKING:
    from spikeloop.ir import Node

__all__ = ["Crossbar"]


def _draw(kind: str, shape: torch.Size, gen: torch.Generator, like: Tensor) -> Tensor:
    """``randn``/``rand`` from a CPU generator, on ``like``'s device and dtype."""
    fn = torch.randn if kind == "normal" else torch.rand
    return fn(shape, generator=gen, dtype=like.dtype).to(like.device)


@DEVICE_MODELS.register("crossbar")
@dataclass(frozen=True)
class Crossbar(SynapseDevice):
    """A memristive crossbar holding a projection's weights (equations: module docstring).

    Args:
        g_max: top of the conductance range in µS (``g_max > g_min``).
        g_min: bottom of the conductance range in µS (``≥ 0``).
        w_max: weight mapped to ``g_max`` (``None``: ``max|w|`` of the layer at programming).
        differential: two devices per weight (``True``) or one against a reference column.
        levels: conductance levels (≥ 2), ``None``: analog.
        program_std: programming variation, relative to ``g_max − g_min`` (≥ 0).
        read_std: read noise, relative to ``g_max − g_min`` (≥ 0).
        read: ``"inference"`` (read noise once per run) or ``"step"`` (at every step;
            'sim' backend, ``Linear`` projections only).
        nu: mean of the drift exponent (≥ 0).
        nu_std: spread of the drift exponent across devices (≥ 0).
        t0: first read after programming in s (> 0); drift acts for ``t > t0``.
        drift_compensation: global drift compensation of the read weights.
        stuck_on: probability of a device stuck at ``g_max``.
        stuck_off: probability of a device stuck at ``g_min`` (``stuck_on + stuck_off ≤ 1``).
        ir_drop: ``R_wire_segment · g_max`` (≥ 0; 0: no IR drop).

    Raises:
        ParameterError: an option outside its range (the message names option and limit).
    """

    name: ClassVar[str] = "crossbar"
    g_max: float = 25.0
    g_min: float = 0.0
    w_max: float | None = None
    differential: bool = True
    levels: int | None = None
    program_std: float = 0.0
    read_std: float = 0.0
    read: Literal["inference", "step"] = "inference"
    nu: float = 0.0
    nu_std: float = 0.0
    t0: float = 20.0
    drift_compensation: bool = False
    stuck_on: float = 0.0
    stuck_off: float = 0.0
    ir_drop: float = 0.0

    def __post_init__(self) -> None:
        who = "Crossbar "
        g_min = check_real(self.g_min, who + "g_min (µS)", 0.0)
        check_real(self.g_max, who + f"g_max (µS; above g_min = {g_min:g})", g_min,
                   low_open=True)
        if self.w_max is not None:
            check_real(self.w_max, who + "w_max", 0.0, low_open=True)
        check_bool(self.differential, who + "differential")
        check_bool(self.drift_compensation, who + "drift_compensation")
        if self.levels is not None:
            check_int(self.levels, who + "levels", 2)
            if not self.differential and self.levels < 3:
                raise ParameterError(f"Crossbar levels must be ≥ 3 with one device per weight "
                                     f"(differential=False; a reference column on one of 2 "
                                     f"levels stores weights of one sign only), got "
                                     f"{self.levels}")
        for option in ("program_std", "read_std", "nu_std", "ir_drop"):
            check_real(getattr(self, option), who + option, 0.0)
        check_real(self.nu, who + "nu (drift only lowers a conductance)", 0.0)
        check_real(self.t0, who + "t0 (s)", 0.0, low_open=True)
        check_choice(self.read, who + "read", ("inference", "step"))
        for option in ("stuck_on", "stuck_off"):
            check_real(getattr(self, option), who + option + " (a probability)", 0.0, 1.0)
        if self.stuck_on + self.stuck_off > 1.0:
            raise ParameterError(f"Crossbar stuck_on + stuck_off (probabilities of one device) "
                                 f"must be ≤ 1, got {self.stuck_on + self.stuck_off:g}")

    @classmethod
    def pcm(cls, **options: Any) -> Crossbar:
        """A phase-change memory crossbar with constants from aihwkit's ``PCMLikeNoiseModel``
        (IBM/aihwkit ``src/aihwkit/inference/noise/pcm.py``, commit 4545f11b; fitted by
        Nandakumar et al., ICECS 2019), reduced to this model's constants over
        ``G/g_max`` uniform on [0, 1] (``benchmarks/crossbar_vs_aihwkit.py`` recomputes them):
        ``g_max`` = 25 µS, ``g_min`` = 0 (its ``SinglePairConductanceConverter``);
        ``program_std`` = 0.034: mean of its σ(G) = 0.26348 + 1.9650 u − 1.1731 u² µS,
        u = G/g_max, over 25 µS; ``nu`` = 0.052 and ``nu_std`` = 0.012: means of its
        clipped μ_ν(u) = −0.0155 ln u + 0.0244 and σ_ν(u) = −0.0125 ln u − 0.0059;
        ``read_std`` = 0.028: rms of its read noise u·q_s(u)·√ln((t + t_read)/2t_read),
        q_s = 0.0088/u^0.65, at its t_inference = 0 (t = t0 = 20 s, t_read = 250 ns);
        global drift compensation on. ``options`` override any of them.
        """
        preset: dict[str, Any] = {"g_max": 25.0, "g_min": 0.0, "program_std": 0.034,
                                  "read_std": 0.028, "nu": 0.052, "nu_std": 0.012, "t0": 20.0,
                                  "drift_compensation": True}
        return cls(**(preset | options))

    # -- where it can act
    @property
    def per_step(self) -> bool:  # type: ignore[override]
        """Whether read noise is drawn at every step (``read="step"``)."""
        return self.read == "step"

    def check_node(self, node: Node) -> None:
        super().check_node(node)
        if self.per_step and (node.op != "Linear" or node.recurrent):
            raise DeviceModelError(
                f"Crossbar(read='step') draws read noise on the output of a feed-forward "
                f"Linear projection; {node.name!r} is a "
                f"{'recurrent ' if node.recurrent else ''}{node.op}: use read='inference'")

    def requires(self) -> frozenset[str]:
        """Per-step read noise needs the executor's projection hook (the simulator's)."""
        return frozenset({"weights", "projection_hook"} if self.per_step else {"weights"})

    # -- the devices
    @property
    def _dg(self) -> float:
        return self.g_max - self.g_min

    def _scale(self, w: Tensor) -> float:
        if self.w_max is not None:
            return float(self.w_max)
        top = float(w.abs().max()) if w.numel() else 0.0
        return top if top > 0 else 1.0

    @property
    def _ref(self) -> float:
        """The reference column's place ρ in the range (single device; module docstring)."""
        if self.levels is None:
            return 0.5
        return ((self.levels - 1) // 2) / (self.levels - 1)

    def _targets(self, w: Tensor, scale: float) -> Tensor:
        """Target conductances ``[k, *w.shape]`` (µS), levels applied."""
        u = ((w / scale).clamp(0, 1), (-w / scale).clamp(0, 1)) if self.differential else (
            (self._ref + w / (2 * scale)).clamp(0, 1),)
        frac = torch.stack(u)
        if self.levels is not None:
            frac = torch.round(frac * (self.levels - 1)) / (self.levels - 1)
        return self.g_min + self._dg * frac

    def _program(self, w: Tensor, ctx: DeviceContext) -> tuple[Tensor, Tensor, float]:
        """Programmed conductances (µS) and drift exponents, ``[k, *w.shape]``, and w_max."""
        scale = self._scale(w)
        g = self._targets(w, scale)
        xi = _draw("normal", g.shape, ctx.program, g)
        u = _draw("uniform", g.shape, ctx.program, g)
        zeta = _draw("normal", g.shape, ctx.program, g)
        g = (g + self.program_std * self._dg * xi).clamp(self.g_min, self.g_max)
        on, off = u < self.stuck_on, (u >= self.stuck_on) & (u < self.stuck_on + self.stuck_off)
        g = torch.where(on, self.g_max, torch.where(off, self.g_min, g))
        nu = (self.nu + self.nu_std * zeta).clamp(min=0).masked_fill(on | off, 0.0)
        return g, nu, scale

    def _drifted(self, g: Tensor, nu: Tensor, t: float) -> Tensor:
        return g * (t / self.t0) ** (-nu) if t > self.t0 else g

    def _ir(self, g: Tensor) -> Tensor:
        """IR-drop attenuated conductances (first order, module docstring)."""
        if self.ir_drop == 0:
            return g
        if g.dim() < 3:  # [k, out, in…]
            raise DeviceModelError(f"Crossbar IR drop acts on a weight matrix [out, in…]; got "
                                   f"a {g.dim() - 1}-D weight of shape {tuple(g.shape[1:])}")
        x = g.reshape(g.shape[0], g.shape[1], -1) / self.g_max  # [k, out, in]
        n_out, n_in = x.shape[1:]
        o, i = torch.arange(n_out, device=g.device), torch.arange(n_in, device=g.device)
        rows = (torch.minimum(o[:, None], o[None, :]) + 1).to(g.dtype)  # [out, out]
        cols = (n_in - torch.maximum(i[:, None], i[None, :])).to(g.dtype)  # [in, in]
        a = 1 - self.ir_drop * (rows @ x + x @ cols)
        if float(a.min()) <= 0:
            raise ParameterError(f"Crossbar ir_drop = {self.ir_drop:g} is beyond the first-order "
                                 f"model on a {n_out}×{n_in} array (attenuation "
                                 f"{float(a.min()):.3g} ≤ 0): it needs r·n ≪ 1")
        return (a * x * self.g_max).reshape(g.shape)

    def _read_noise(self, g: Tensor, gen: torch.Generator) -> Tensor:
        return self.read_std * self._dg * _draw("normal", g.shape, gen, g)

    def _unit(self, scale: float) -> float:
        """Weight per µS."""
        return (1 if self.differential else 2) * scale / self._dg

    def _read_back(self, g: Tensor, scale: float) -> Tensor:
        ref = g[1] if self.differential else self.g_min + self._dg * self._ref
        return (g[0] - ref) * self._unit(scale)

    def conductances(self, w: Tensor, ctx: DeviceContext, t: float | None = None) -> Tensor:
        """The conductances ``[k, *w.shape]`` (µS; ``k`` = 2: ``G⁺, G⁻``, or 1) that store
        ``w``, as read at ``t`` s after programming (default ``ctx.t``) without read noise:
        programmed, stuck, drifted and IR-drop attenuated. Draws from ``ctx.program``."""
        with torch.no_grad():
            g, nu, _ = self._program(w.detach(), ctx)
            return self._ir(self._drifted(g, nu, ctx.t if t is None else t))

    def weights(self, w: Tensor, ctx: DeviceContext) -> Tensor:
        with torch.no_grad():
            g, nu, scale = self._program(w.detach(), ctx)
            now = self._ir(self._drifted(g, nu, ctx.t))
            noisy = self.read_std > 0
            w_dev = self._read_back(now + self._read_noise(now, ctx.read)
                                    if noisy and not self.per_step else now, scale)
            alpha = torch.ones((), dtype=w.dtype, device=w.device)
            if self.drift_compensation:  # two calibration reads (module docstring)
                at_t0 = self._ir(g)  # the reference: at t0, fixed per instance
                if noisy:
                    at_t0 = at_t0 + self._read_noise(at_t0, ctx.program)
                    now = now + self._read_noise(now, ctx.read)  # its own read, in either mode
                ref = self._read_back(at_t0, scale).abs().mean()
                mean = self._read_back(now, scale).abs().mean()
                alpha = torch.where(mean > 0, ref / mean.clamp(min=1e-30), alpha)
            ctx.memo[self] = alpha * self._unit(scale) * self.read_std * self._dg * (
                len(g) ** 0.5)
        return straight_through(w, alpha * w_dev)

    def output(self, x: Tensor, y: Tensor, w: Tensor, ctx: DeviceContext) -> Tensor:
        if self not in ctx.memo:
            raise DeviceModelError("Crossbar.output needs the weights realised in the same run "
                                   "(Crossbar.weights with this context) first")
        sigma = ctx.memo[self]
        if self.read_std == 0:
            return y
        norm = x.detach().pow(2).sum(-1, keepdim=True).sqrt()
        return y + (sigma * norm * _draw("normal", y.shape, ctx.read, y)).detach()
