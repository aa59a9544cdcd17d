r"""Quantisation: float model parameters → the chip's integer registers, with a report.

Units. The chip's membrane of neuron ``j`` counts in units of ``1/σ_j`` model units. An event
through a weight ``w`` (model current units) raises the model's membrane by ``r g w`` in the
step it arrives (CUBA LIF, :func:`~spikeloop.dynamics.current_gain`), the chip's by
``α_chip · W`` (currents decay before they reach the membrane); matching the two first-step
responses gives the integer weight

.. math::
    W_{ij} = \mathrm{round}\big(σ_j \, w_{ij} \, r_j g_j / α_j\big),\qquad
    ϑ_j^{int} = \mathrm{round}(σ_j ϑ_j),\qquad
    b_j^{int} = \mathrm{round}\big(σ_j\, r_j g_j\, b_j / (1 − α_j)\big)

with the chip's synaptic decay ``α_j = 1 − 2^{−dash_{syn,j}}`` (``g_j``, ``α_j`` per synapse
for a two-current ``CubaLIF2``; a ``CubaLIF``'s synapse 1 stays empty) (a Linear bias ``b``
feeds the synaptic current every step; the chip adds its bias to the membrane, so it is matched
at the steady state). Time constants become decay shifts
``dash = round(log2(τ/dt))`` (exact for ``τ = 2^k dt``).

Scales and weight shifts. Each matrix ``M`` delivers ``W^M_{ij} · 2^{s_M}`` per event (its
left shift ``s_M ∈ 0…7``), so with the membrane scale ``σ_j`` the integer weights are
``W^M_{ij} = round(σ_j w^M_{ij} r_j g_j / (α_j 2^{s_M}))``. With ``m^M_j = max_i |w^M_{ij}
r_j g_j / α_j|``, ``method="per_channel"`` uses

.. math::
    σ_j = \min_M \; 127 · 2^{s_M} / m^M_j

over the matrices feeding neuron ``j`` (input and recurrent), so every neuron uses the full
int8 range of its most demanding matrix; ``"global"``: one ``σ`` for all hidden neurons
(``m^M = max_j m^M_j``) and one for the outputs. ``σ_j`` is lowered where the threshold would
not fit 16 bits. The input and recurrent matrices share ``σ_j``: if the input weights into a
neuron are ``2^k`` times larger than its recurrent weights, shifts 0 would leave the recurrent
weights ``k`` bits of the int8 range (small ones round to 0). Instead the larger matrix gets the
shift ``s = min(7, ⌊log2 ρ⌋)`` with ``ρ = m^{in}_j / m^{rec}_j`` (the median over the neurons fed
by both; per-matrix maxima for ``"global"``; ``s_{rec}`` likewise for ``ρ < 1``), which raises
``σ_j`` by ``2^s``: the larger matrix still fills int8 (its steps are ``2^s`` chip units), the
smaller one gains ``s`` bits. The output matrix has its own ``σ``, so a shift would add no
resolution there: ``s_{out} = 0``. ``shifts=False`` keeps all shifts 0.

:func:`chip_tensors` computes the integer values differentiably (straight-through rounding),
which is what the QAT model trains through; :func:`quantize` detaches them into a
:class:`~spikeloop.chips.xylo.config.XyloConfig` and a :class:`QuantizationReport`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from spikeloop.checks import check_bool, check_choice, check_type
from spikeloop.chips.xylo.config import XyloConfig
from spikeloop.chips.xylo.mapper import XyloLayout, map_graph
from spikeloop.chips.xylo.registers import ARRAYS, SHIFTS, Registers
from spikeloop.chips.xylo.spec import XyloSpec, spec_or_default
from spikeloop.dynamics import current_gain
from spikeloop.errors import MappingError, WeightRangeError
from spikeloop.ir import Graph, Node

QuantMethod = Literal["per_channel", "global"]
METHODS = ("per_channel", "global")


def round_ste(x: Tensor) -> Tensor:
    """``round(x)`` with the identity gradient (straight-through)."""
    return x + (torch.round(x) - x).detach()


@dataclass(frozen=True)
class ChipTensors(Registers):
    """The registers (:class:`~spikeloop.chips.xylo.registers.Registers`) as integer-valued
    float tensors, differentiable through straight-through rounding, plus the membrane scales
    ``σ`` (chip units per model unit) and ``dt``."""

    scale: Tensor = field(kw_only=True)
    scale_out: Tensor = field(kw_only=True)
    dt: float = field(kw_only=True)


@dataclass
class QuantizationReport:
    """What was rounded. ``matrices``: per weight matrix the largest float magnitude (chip
    units before rounding), weights rounded to 0, RMS rounding error relative to the RMS
    weight, its left shift; ``shifts``: the per-matrix left shifts; ``time_constants``: per
    population and parameter the requested and realised ``τ`` and the dashes;
    ``scale``/``scale_out``: ``σ`` per neuron; ``notes``: approximations (reset mode, biases,
    readout)."""

    method: str
    matrices: dict[str, dict[str, float]] = field(default_factory=dict)
    shifts: dict[str, int] = field(default_factory=dict)
    time_constants: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, dict[str, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    saturated: dict[str, list[int]] = field(default_factory=dict)
    scale: Tensor | None = None
    scale_out: Tensor | None = None

    def summary(self) -> str:
        """A printable account of the rounding."""
        lines = [f"Xylo quantisation ({self.method})"]
        for name, m in self.matrices.items():
            lines.append(f"  {name}: {int(m['nonzero'])} weights, {int(m['zeroed'])} rounded to "
                         f"0, RMS rounding error {100 * m['rel_rms_error']:.2f}% of RMS weight, "
                         f"left shift {int(m['shift'])} (weights × 2^{int(m['shift'])})")
        for t in self.time_constants:
            lines.append(f"  {t['population']}.{t['parameter']}: τ {t['tau_min'] * 1e3:.3g}–"
                         f"{t['tau_max'] * 1e3:.3g} ms → dash {t['dash_min']}–{t['dash_max']} "
                         f"(τ = 2^dash·dt, max relative error {100 * t['max_rel_error']:.1f}%)")
        for name, t in self.thresholds.items():
            lines.append(f"  {name}: thresholds {int(t['min'])}–{int(t['max'])}, max relative "
                         f"rounding error {100 * t['max_rel_error']:.2f}%")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _per_neuron(node: Node, key: str, default: float = 1.0) -> Tensor:
    value = node.params.get(key)
    if value is None:
        return torch.full((node.num_neurons,), default)
    return value.float().expand(node.shape).reshape(-1)


def _dashes(node: Node, key: str, dt: float, spec: XyloSpec, lowest: int,
            report: QuantizationReport) -> Tensor:
    tau = _per_neuron(node, key).detach().double()
    dash = torch.round(torch.log2(tau / dt))
    if float(dash.min()) < lowest:
        bad = float(tau[dash.argmin()])
        why = (" (a synaptic current with dash 0 decays to 0 before it reaches the membrane)"
               if lowest else "")
        raise MappingError(
            f"population {node.name!r}: {key} = {bad * 1e3:g} ms gives dash "
            f"{int(dash.min())} at dt = {dt * 1e3:g} ms; the chip needs dash ≥ {lowest}{why}: "
            f"{key} ≥ {2 ** (lowest - 0.5) * dt * 1e3:.3g} ms")
    if float(dash.max()) > spec.dash_max:
        bad = float(tau[dash.argmax()])
        raise MappingError(
            f"population {node.name!r}: {key} = {bad * 1e3:g} ms gives dash {int(dash.max())} at "
            f"dt = {dt * 1e3:g} ms; the chip's 4-bit decay shifts reach {spec.dash_max} "
            f"({key} < {2 ** (spec.dash_max + 0.5) * dt * 1e3:.4g} ms)")
    realised = torch.exp2(dash) * dt
    report.time_constants.append({
        "population": node.name, "parameter": key, "tau_min": float(tau.min()),
        "tau_max": float(tau.max()), "dash_min": int(dash.min()), "dash_max": int(dash.max()),
        "max_rel_error": float(((realised - tau) / tau).abs().max()),
    })
    return dash.float()


def _gain(node: Node, dt: float, dash_syn: Tensor, key: str = "tau_syn"
          ) -> tuple[Tensor, Tensor]:
    """Per neuron ``r g / α`` (chip units per model current unit before σ) and the chip's
    synaptic decay ``α = 1 − 2^{−dash_syn}`` of the current with time constant ``key``."""
    method = node.settings.get("method", "exact")
    tau_mem, tau_syn = _per_neuron(node, "tau_mem"), _per_neuron(node, key)
    r = _per_neuron(node, "r")
    alpha = 1.0 - torch.exp2(-dash_syn)
    return r * current_gain(tau_syn, tau_mem, dt, method) / alpha, alpha


def weight_shifts(
    m_in: Tensor, m_rec: Tensor, method: QuantMethod, spec: XyloSpec
) -> tuple[int, int]:
    """Left shifts ``(s_in, s_rec)`` of the two matrices that share the hidden scales ``σ``.

    ``m_in``, ``m_rec``: per hidden neuron the largest weight magnitude into it (before ``σ``).
    ``ρ = m_in / m_rec`` (median over neurons fed by both; ``"global"``: ratio of the matrices'
    maxima); ``s_in = min(7, ⌊log2 ρ⌋)`` for ``ρ ≥ 2``, ``s_rec = min(7, ⌊log2(1/ρ)⌋)`` for
    ``ρ ≤ 1/2``, else 0 (see the module docstring).
    """
    if method == "global":
        a, b = m_in.amax(), m_rec.amax()
        if not (float(a) > 0 and float(b) > 0):
            return 0, 0
        log_ratio = float(torch.log2(a / b))
    else:
        both = (m_in > 0) & (m_rec > 0)
        if not bool(both.any()):
            return 0, 0
        log_ratio = float(torch.log2(m_in[both] / m_rec[both]).median())
    k = min(spec.weight_shift_max, math.floor(abs(log_ratio) + 1e-9))
    return (k, 0) if log_ratio > 0 else (0, k)


def chip_tensors(
    layout: XyloLayout, method: QuantMethod = "per_channel", spec: XyloSpec | None = None,
    report: QuantizationReport | None = None, shifts: bool = True,
) -> ChipTensors:
    """All registers as integer-valued, differentiable (straight-through) tensors; the scales
    and shifts are chosen on detached values (see the module docstring)."""
    check_type(layout, "layout", XyloLayout, "a XyloLayout (from map_graph)")
    check_choice(method, "method", METHODS)
    spec = spec_or_default(spec)
    check_bool(shifts, "shifts")
    if report is not None:
        check_type(report, "report", QuantizationReport, "a QuantizationReport or None")
    report = report if report is not None else QuantizationReport(method)
    dt = layout.dt
    n, o, n_in = layout.num_hidden, layout.num_outputs, layout.inputs
    gains, alphas, dash_mem, dash_syn, thresholds = [], [], [], [], []
    for h in layout.hidden:  # synapse 1: tau_syn2 of a CubaLIF2, else a copy of synapse 0
        dash_mem.append(_dashes(h.node, "tau_mem", dt, spec, 0, report))
        keys = ("tau_syn", "tau_syn2") if h.node.model.currents == 2 else ("tau_syn", "tau_syn")
        d = [_dashes(h.node, k, dt, spec, 1, report) for k in dict.fromkeys(keys)]
        dash_syn.append(torch.stack([d[0], d[-1]], -1))
        g, a = zip(*(_gain(h.node, dt, dash_syn[-1][:, k], key) for k, key in enumerate(keys)),
                   strict=True)
        gains.append(torch.stack(g, -1))
        alphas.append(torch.stack(a, -1))
        thresholds.append(_per_neuron(h.node, "v_threshold"))
    gain, alpha = torch.cat(gains), torch.cat(alphas)  # [N, 2]: per neuron and synapse
    theta = torch.cat(thresholds)
    readout = layout.readout
    spiking_out = readout.spiking
    theta_out = _per_neuron(readout, "v_threshold") if spiking_out else None
    d_mem_out = _dashes(readout, "tau_mem", dt, spec, 0, report)
    d_syn_out = _dashes(readout, "tau_syn", dt, spec, 1, report)
    gain_out, alpha_out = _gain(readout, dt, d_syn_out)

    # float weights in chip membrane units per σ, assembled into the three matrices
    w_in = torch.zeros(n_in, n, spec.hidden_synapses)
    w_rec = torch.zeros(n, n, spec.hidden_synapses)
    w_out = torch.zeros(n, o)
    bias = torch.zeros(n)
    bias_out = torch.zeros(o)
    for blk in layout.projections:
        syn = blk.synapses  # a CubaLIF2's Linear: outputs [syn 0 of N | syn 1 of N]
        w = blk.node.params["weight"].float().T  # [pre, syn·post]
        pre = w.shape[0]
        w = w.reshape(pre, syn, -1).transpose(1, 2)  # [pre, post, syn]
        b = blk.node.params.get("bias")
        post = w.shape[1]
        rows = slice(blk.src_offset, blk.src_offset + pre)
        cols = slice(blk.dst_offset, blk.dst_offset + post)
        # blocks add up: two projections from one source into one population sum their weights
        if blk.matrix == "out":
            w_out[rows, cols] = w_out[rows, cols] + w[..., 0] * gain_out[cols]
            if b is not None:
                bias_out = bias_out + b.float() * (gain_out * alpha_out / (1 - alpha_out))
            continue
        target = w_in if blk.matrix == "in" else w_rec
        target[rows, cols, :syn] = target[rows, cols, :syn] + w * gain[cols, :syn]
        if b is not None:
            full = torch.zeros(n, spec.hidden_synapses)
            full[cols, :syn] = b.float().reshape(syn, -1).T
            bias = bias + (full * gain * alpha / (1 - alpha)).sum(-1)
    if any(blk.node.params.get("bias") is not None for blk in layout.projections):
        report.notes.append("Linear biases become membrane biases matched at the steady state "
                            "(b r g / (1 − α) per step); their transient differs")

    # scales σ (detached)
    with torch.no_grad():
        m_in, m_rec = w_in.abs().amax((0, 2)), w_rec.abs().amax((0, 2))
        shift_in, shift_rec = weight_shifts(m_in, m_rec, method, spec) if shifts else (0, 0)
        # the matrix with the largest weight in shift-adjusted units sets σ (σ·m/2^s ≤ 127)
        m_hidden = torch.maximum(m_in / 2**shift_in, m_rec / 2**shift_rec)
        m_out = w_out.abs().amax(0)
        if method == "global":
            m_hidden = m_hidden.amax().expand(n)
            m_out = m_out.amax().expand(o)
        scale = torch.where(m_hidden > 0, spec.weight_max / m_hidden.clamp(min=1e-30),
                            spec.threshold_max / 8 / theta.detach().abs().clamp(min=1e-30))
        cap = spec.threshold_max / theta.detach().clamp(min=1e-30)
        if bool((scale > cap).any()):
            report.notes.append(f"{int((scale > cap).sum())} hidden neurons: σ lowered so the "
                                "threshold fits 16 bits (weights use less than the int8 range)")
        scale = torch.minimum(scale, cap)
        if method == "global":
            scale = scale.amin().expand(n).clone()
        default_out = spec.weight_max / 8 if theta_out is None else (
            spec.threshold_max / 8 / theta_out.detach().abs().clamp(min=1e-30))
        scale_out = torch.where(m_out > 0, spec.weight_max / m_out.clamp(min=1e-30),
                                torch.as_tensor(default_out).expand(o))
        if theta_out is not None:
            scale_out = torch.minimum(scale_out, spec.threshold_max / theta_out.detach())
        if method == "global":
            scale_out = scale_out.amin().expand(o).clone()
    if bool((theta.detach() <= 0).any()) or (
        theta_out is not None and bool((theta_out.detach() <= 0).any())):
        raise MappingError("thresholds must be > 0 on the Xylo chip (1..32767 after scaling)")

    lim = (spec.weight_min, spec.weight_max)
    wq_in = round_ste(w_in * scale[:, None] / 2**shift_in).clamp(*lim)
    wq_rec = round_ste(w_rec * scale[:, None] / 2**shift_rec).clamp(*lim)
    wq_out = round_ste(w_out * scale_out).clamp(*lim)
    th = round_ste(theta * scale).clamp(1, spec.threshold_max)
    th_out = (round_ste(theta_out * scale_out).clamp(1, spec.threshold_max)
              if theta_out is not None else torch.full((o,), float(spec.threshold_max)))
    if not spiking_out:
        report.notes.append(f"readout {readout.name!r} is a CubaLI: output threshold set to "
                            f"{spec.threshold_max} (read the membrane)")
    bq = round_ste(bias * scale).clamp(spec.state_min, spec.state_max)
    bq_out = round_ste(bias_out * scale_out).clamp(spec.state_min, spec.state_max)
    with torch.no_grad():  # registers the clamps above saturate (quantize() refuses them)
        for name, raw, lo, hi in (
                ("bias", bias * scale, spec.state_min, spec.state_max),
                ("bias_out", bias_out * scale_out, spec.state_min, spec.state_max),
                ("threshold", theta * scale, 1, spec.threshold_max),
                ("threshold_out", theta_out * scale_out if theta_out is not None else None, 1,
                 spec.threshold_max)):
            if raw is None:
                continue
            r = torch.round(raw)
            bad = ((r < lo) | (r > hi)).nonzero().flatten().tolist()
            if bad:
                report.saturated[name] = bad
                report.notes.append(
                    f"{name}: {len(bad)} of {r.numel()} values (neurons {_listed(bad)}) do not "
                    f"fit the chip's register {lo}..{hi} at the membrane scale set by the "
                    f"weights and were clipped to it (quantize() refuses this network)")
    reset = {h.node.settings.get("reset", "value") for h in layout.hidden}
    if "value" in reset:
        report.notes.append("the chip resets by subtracting the threshold; the float model "
                            "resets to v_reset = 0 (reset='value'): train with QAT or "
                            "reset='subtract' for a closer match")
    fewest, most = layout.summary()["hops"]
    report.notes.append(
        "each hidden → hidden and hidden → output hop costs one time step on the chip: input "
        f"events reach the readout after {fewest}" + (f"–{most}" if most != fewest else "")
        + (" step" if most == 1 else " steps"))
    for a in layout.aliases:
        report.notes.append(f"alias {a.source!r} → {a.target!r}: {a.size} neurons' spikes are "
                            f"also counted as {a.target!r}'s (residual sum)")
    tensors = ChipTensors(
        weights_in=wq_in, weights_rec=wq_rec,
        weights_out=wq_out, threshold=th, threshold_out=th_out, bias=bq, bias_out=bq_out,
        dash_mem=torch.cat(dash_mem), dash_mem_out=d_mem_out,
        dash_syn=torch.cat(dash_syn), dash_syn_out=d_syn_out,
        aliases=layout.alias_targets(), scale=scale, scale_out=scale_out, dt=dt,
        shift_in=shift_in, shift_rec=shift_rec, shift_out=0,
    )
    with torch.no_grad():
        report.shifts = {"weights_in": shift_in, "weights_rec": shift_rec, "weights_out": 0}
        for name, fl, q, s in (("weights_in", w_in, wq_in, scale[:, None] / 2**shift_in),
                               ("weights_rec", w_rec, wq_rec, scale[:, None] / 2**shift_rec),
                               ("weights_out", w_out, wq_out, scale_out)):
            f = fl.detach() * s
            nz = f != 0
            if not bool(nz.any()):
                continue
            err = (q.detach() - f)[nz]
            report.matrices[name] = {
                "nonzero": float(nz.sum()), "zeroed": float((nz & (q.detach() == 0)).sum()),
                "max_abs": float(f.abs().max()), "shift": float(report.shifts[name]),
                "rel_rms_error": float(err.pow(2).mean().sqrt() / f[nz].pow(2).mean().sqrt()),
            }
        for name, fl, q in (("threshold", theta * scale, th),
                            ("threshold_out", None if theta_out is None else theta_out * scale_out,
                             th_out)):
            if fl is None:
                continue
            f = fl.detach()
            report.thresholds[name] = {
                "min": float(q.min()), "max": float(q.max()),
                "max_rel_error": float(((q.detach() - f) / f).abs().max()),
            }
    report.scale, report.scale_out = scale.clone(), scale_out.clone()
    return tensors


def _listed(items: list[int], most: int = 8) -> str:
    """``[a, b, …]``: at most ``most`` of ``items``."""
    return f"{items[:most]}{' …' if len(items) > most else ''}"


def to_config(t: ChipTensors) -> XyloConfig:
    """Detach :class:`ChipTensors` into a :class:`XyloConfig`."""
    return XyloConfig(**{name: getattr(t, name).detach() for name in ARRAYS},
                      **{name: getattr(t, name) for name in SHIFTS.values()}, dt=t.dt)


def quantize(
    graph: Graph | XyloLayout, method: QuantMethod = "per_channel",
    spec: XyloSpec | None = None, shifts: bool = True,
) -> tuple[XyloConfig, QuantizationReport]:
    """Map (if given a graph) and quantise: the chip config and a report of what was rounded
    (``shifts=False``: all weight shifts 0).

    Raises:
        ArgumentTypeError: ``graph`` is neither a Graph nor a :class:`XyloLayout` (a Network:
            pass ``net.graph``), ``spec`` not a :class:`XyloSpec`, ``shifts`` not a bool.
        ParameterError: ``method`` is not ``"per_channel"`` or ``"global"``.
        MappingError: the graph does not fit the chip (see :func:`map_graph`).
        WeightRangeError: a bias or threshold does not fit its register.
    """
    check_choice(method, "method", METHODS)
    spec = spec_or_default(spec)
    check_bool(shifts, "shifts")
    layout = graph if isinstance(graph, XyloLayout) else map_graph(graph, spec)
    report = QuantizationReport(method)
    with torch.no_grad():
        tensors = chip_tensors(layout, method, spec, report, shifts)
    for name, neurons in report.saturated.items():
        limit = ("1..32767 (a threshold that rounds to 0 would fire on every step)"
                 if name.startswith("threshold") else "−32768..32767 (16-bit register)")
        raise WeightRangeError(
            f"Xylo quantisation: {name} of neuron(s) {_listed(neurons)} does not fit the chip "
            f"register ({limit}) at the "
            "membrane scale set by the weights; scale the biases/thresholds down or the "
            "weights up")
    config = to_config(tensors).validate(spec)
    if not math.isfinite(float(tensors.scale.sum())):
        raise MappingError("non-finite membrane scale (all weights and thresholds zero?)")
    return config, report
