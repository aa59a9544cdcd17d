"""Device-realistic execution of a placed network on one emulated chip.

The chip walks the graph with the simulator's executor
(:func:`~spikeloop.backends.executor.execute`, :class:`ChipHooks`); its neurons run the same
step functions as the simulator (:func:`~spikeloop.kernels.loop.run_population`), with the
parameters the chip's circuits really have after (or without) calibration. On top of that the
emulator adds what the chip does to a run:

- weights: 6-bit magnitudes in excitatory/inhibitory rows, each synapse with its fixed-pattern
  gain: ``W_eff = scale · (e ⊙ G_exc − i ⊙ G_inh)``;
- trial-to-trial noise: every PSP amplitude varies by ``psp_noise · |w|`` (σ), i.e. the input
  current gets ``N(0, psp_noise² · Σ_j w_ij² z_j)``;
- read-out: spikes are digital events (exact); the membrane is what the 8-bit column ADC
  sampled every ``adc_period`` (read noise, rounding, saturation at 0 and 255 LSB), linearly
  interpolated onto the simulation grid; ``adc="ideal"`` returns the true membrane;
- one selected neuron can be recorded by the fast 10-bit ADC: the emulator re-integrates that
  neuron on a fine grid from the input it received (:func:`dense_trace`).

Batch entries are independent runs from rest with their own noise, exactly as when the host runs
them one after another; the emulator computes them together, and the execution report accounts
chip time as sequential.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import Tensor

from spikeloop.backends.executor import ModelHooks, execute, neuron_device, recurrent_of
from spikeloop.chips.analog import _native as analog_native
from spikeloop.chips.analog.calibration import AnalogChip, CalibrationResult
from spikeloop.chips.analog.mapper import Placement, PopulationPlacement, ProjectionPlacement
from spikeloop.chips.analog.noise import normal
from spikeloop.chips.analog.spec import AnalogChipSpec
from spikeloop.errors import MappingError
from spikeloop.ir import Graph, Node
from spikeloop.kernels import Compressed, event_linear, native
from spikeloop.kernels.loop import Recurrent, run_population
from spikeloop.observables import DenseTrace, Observables


def effective_weight(proj: ProjectionPlacement, chip: AnalogChip) -> Tensor:
    """Weights as the synapses realise them, including their fixed-pattern gains."""
    lsb = proj.weight_lsb.float()
    if not chip.mismatch:
        return proj.scale * lsb
    g = chip.synapse_gain
    g_exc = g[proj.half, proj.row_exc, proj.column]
    g_inh = g[proj.half, proj.row_inh, proj.column]
    return proj.scale * (lsb.clamp(min=0) * g_exc - (-lsb).clamp(min=0) * g_inh)


def _relative_or_lsb(key: str, value: Tensor, target: Tensor) -> Tensor:
    return value / target - 1 if key.startswith("tau") else value - target


def _circuits(pop: PopulationPlacement, spec: AnalogChipSpec) -> list[Tensor]:
    if pop.joined:  # a joined neuron uses its column in both halves; parameters average
        return [h * spec.circuits_per_half + pop.columns for h in range(spec.halves)]
    return [pop.half * spec.circuits_per_half + pop.columns]


def chip_parameters(
    node: Node, pop: PopulationPlacement, chip: AnalogChip, calibrate: bool
) -> tuple[Any, dict[str, list[CalibrationResult]], list[str]]:
    """The parameter record (model units) of ``node``'s neurons as realised on the chip."""
    spec = chip.spec
    model = node.parameter_record()
    n = node.num_neurons
    v_leak = torch.as_tensor(model.v_leak).detach().double().expand(n)
    targets = {
        "tau_mem": torch.as_tensor(model.tau_mem).detach().double().expand(n) / spec.speedup,
        "tau_syn": torch.as_tensor(model.tau_syn).detach().double().expand(n) / spec.speedup,
        "v_leak": spec.to_lsb(v_leak, v_leak),
    }
    if node.spiking:
        for key in ("v_threshold", "v_reset"):
            value = torch.as_tensor(getattr(model, key)).detach().double().expand(n)
            targets[key] = spec.to_lsb(value, v_leak)
    warnings = []
    for key, target in targets.items():
        if key.startswith("v_"):
            lo, hi = spec.voltage_range_lsb
            if float(target.min()) < lo or float(target.max()) > hi:
                raise MappingError(
                    f"population {node.name!r}: {key} maps to {float(target.min()):.0f}–"
                    f"{float(target.max()):.0f} LSB; the chip sets {lo:g}–{hi:g} LSB "
                    f"(leak at {spec.leak_lsb:g} LSB, {spec.lsb_per_unit:g} LSB per model unit)"
                )
            r_lo, r_hi = spec.adc_reliable
            if float(target.min()) < r_lo or float(target.max()) > r_hi:
                warnings.append(f"{node.name}.{key} lies outside the ADC's reliable range "
                                f"{r_lo:g}–{r_hi:g} LSB")
    values: dict[str, Tensor] = {}
    results: dict[str, list[CalibrationResult]] = {}
    for key, target in targets.items():
        per_half = []
        for circuits in _circuits(pop, spec):
            if calibrate:
                res = chip.calibrate(key, circuits, target)
                results.setdefault(key, []).append(res)
                per_half.append(res.values)
            else:
                per_half.append(chip.physical(key, chip.nominal_code(key, target), circuits))
        values[key] = torch.stack(per_half).mean(0)
        worst = _relative_or_lsb(key, values[key], target).abs()
        limit = 0.02 if key.startswith("tau") else 2.0
        if calibrate and float(worst.max()) > limit:
            unit = "%" if key.startswith("tau") else " LSB"
            scale = 100 if key.startswith("tau") else 1
            warnings.append(
                f"{node.name}.{key}: {int((worst > limit).sum())} neuron(s) miss their target by "
                f"up to {float(worst.max()) * scale:.3g}{unit} after calibration (targets near "
                "the edge of what the circuits can reach)"
            )
    chip_values = {
        "tau_mem": values["tau_mem"] * spec.speedup,
        "tau_syn": values["tau_syn"] * spec.speedup,
        "v_leak": spec.from_lsb(values["v_leak"], v_leak),
    }
    if node.spiking:
        for key in ("v_threshold", "v_reset"):
            chip_values[key] = spec.from_lsb(values[key], v_leak)
    dtype = node.params["tau_mem"].dtype
    record = type(model)(**{
        f.name: chip_values[f.name].to(dtype) if f.name in chip_values else getattr(model, f.name)
        for f in fields(model)
    })
    return record, results, warnings


@dataclass
class ChipRun:
    """Everything one execution produced: observables (as read out) and internals."""

    populations: dict[str, Observables]
    true_v: dict[str, Tensor]
    inputs: dict[str, Tensor]
    params: dict[str, Any]


def _noisy_projection(w: Tensor, noise: float, g: torch.Generator | None):
    """``z ↦ z Wᵀ`` plus trial-to-trial PSP noise for spike inputs ``z ∈ {0, 1}``: each event's
    PSP varies by ``noise · |w|`` (independent Gaussians), so a row of events gets
    ``N(0, noise² Σ_j z_j w_ij²)`` (``z² = z``: mean and variance are products with ``W`` and
    ``W²``). Noise is drawn only for rows (time step and batch entry) that carry events."""
    if g is None or noise <= 0:
        return lambda z: event_linear(z, w)
    w2 = w * w
    both_t, w_t = torch.cat([w, w2]).t().contiguous(), w.t().contiguous()  # [in, 2 out], [in, out]
    out = w.shape[0]

    def psp_noise(var: Tensor) -> Tensor:
        return var.sqrt() * normal(var.shape, g, scale=noise, dtype=var.dtype, device=var.device)

    def noisy(mean_var: Tensor) -> Tensor:
        return mean_var[:, :out] + psp_noise(mean_var[:, out:])

    def project(z: Tensor) -> Tensor:
        zf = z.reshape(-1, z.shape[-1]).contiguous()
        if native.usable(zf, w):  # event-driven products
            native.set_threads()
            events = Compressed(zf)
            rows, product = events.active_rows(), events.matmul
        else:  # z ∈ {0, 1}: a row sum marks events
            rows, product = (zf.sum(-1) > 0).nonzero().squeeze(-1), zf.__matmul__
        if 2 * rows.numel() > zf.shape[0]:  # most rows carry events: one product
            current = noisy(product(both_t))
        else:  # few rows carry events: the variance only there
            current = product(w_t)
            current.index_add_(0, rows, psp_noise(zf[rows] @ w2.T))
        return current.reshape(*z.shape[:-1], out)

    return project


@dataclass
class ChipHooks(ModelHooks):
    """The chip's evaluation of the graph for :func:`~spikeloop.backends.executor.execute`:
    projections through its synapses (effective 6-bit weights with PSP noise), populations with
    the parameters its circuits have (the model's step functions otherwise). Records what each
    population received and its true membrane."""

    placement: Placement | None = None
    params: dict[str, Any] = field(default_factory=dict)
    chip: AnalogChip | None = None
    g: torch.Generator | None = None
    dtype: torch.dtype = torch.float32
    inputs: dict[str, Tensor] = field(default_factory=dict)

    def _synapses(self, name: str):
        w = effective_weight(self.placement.projections[name], self.chip).to(self.dtype)
        return _noisy_projection(w, self.chip.spec.psp_noise, self.g)

    def input(self, graph: Graph, node: Node, x: Tensor) -> Observables:
        return Observables(spikes=x)  # the backend validated it

    def projection(self, graph: Graph, node: Node, x: Tensor, state: Any) -> tuple[Tensor, None]:
        return self._synapses(node.name)(x), None

    def population(
        self, graph: Graph, node: Node, current: Tensor, state: Any
    ) -> tuple[Observables, Any]:
        rec, recorded = None, []
        if recurrent_of(graph, node) is not None:
            project = self._synapses(f"{node.name}.recurrent")

            def synapses(z: Tensor) -> Tensor:
                out = project(z)
                recorded.append(out)
                return out

            rec = Recurrent(fn=synapses)
        obs, after = self.run(graph, node, current, state, self.params[node.name], rec,
                              record_current=False)
        self.inputs[node.name] = current + torch.stack(recorded) if recorded else current
        return obs, after


def run_chip(
    graph: Graph,
    placement: Placement,
    params: dict[str, Any],
    chip: AnalogChip,
    x: Tensor,
    g: torch.Generator | None,
) -> ChipRun:
    """Execute the placed graph on ``x [T, B, C]``; ``g`` draws trial-to-trial noise (None: off).

    Returns spikes and true membranes; :func:`adc_readout` turns membranes into observations.
    """
    hooks = ChipHooks(placement=placement, params=params, chip=chip, g=g, dtype=x.dtype)
    pops, _ = execute(graph, x, hooks)
    true_v = {name: obs.v for name, obs in pops.items() if name in hooks.inputs}
    return ChipRun(pops, true_v, hooks.inputs, params)


def adc_readout(
    v: Tensor, v_leak: Tensor, spec: AnalogChipSpec, dt: float, g: torch.Generator | None
) -> Tensor:
    """The 8-bit column ADC, then linear interpolation back onto the simulation grid.

    Each batch entry (an independent run) is sampled every ``adc_period`` from its own random
    phase (``g``; phase 0 without), at the nearest simulation step; samples get read noise, are
    rounded and saturate at 0 and 255 LSB; between samples the trace is interpolated linearly,
    before the first and after the last it is held. Returns model units, shape of ``v``.

    With ``s_k`` the samples taken at steps ``t_k``, step ``t`` between them reads
    ``(1 − w) s_k + w s_{k+1}``, ``w = (t − t_k) / (t_{k+1} − t_k)``. On float32 CPU tensors the
    native kernels do this in one pass (same operations, same rounding as the torch code below).
    """
    steps, batch = v.shape[0], v.shape[1]
    period = spec.adc_period * spec.speedup / dt  # in simulation steps
    n = int((steps - 1) // period) + 1  # samples per run (≥ 1)
    phase = (torch.rand(batch, generator=g, dtype=torch.float64) * period if g is not None
             else torch.zeros(batch, dtype=torch.float64))
    k = torch.arange(n, dtype=torch.float64)
    idx = (phase[None, :] + k[:, None] * period).round().clamp(max=steps - 1).long()  # [K, B]
    # neighbouring samples of every grid step, from the steps really sampled
    grid = torch.arange(steps, dtype=torch.float64)[:, None]
    k0 = ((grid - phase[None, :]) / period).floor().clamp(0, max(n - 2, 0)).long()  # [T, B]
    if n > 1:
        t0 = torch.gather(idx, 0, k0).double()
        t1 = torch.gather(idx, 0, k0 + 1).double()
        w1 = ((grid - t0) / (t1 - t0).clamp(min=1)).clamp(0, 1).to(v.dtype)
    else:
        w1 = torch.zeros(steps, batch, dtype=v.dtype)
    width = v[0, 0].numel()
    leak = torch.as_tensor(v_leak, dtype=v.dtype, device=v.device).expand(v.shape[2:])
    noise = None
    if g is not None:
        noise = normal((n, batch, *v.shape[2:]), g, scale=spec.adc_read_noise, dtype=v.dtype,
                       device=v.device)
    if analog_native.usable(v, noise):
        out = torch.empty_like(v, memory_format=torch.contiguous_format)
        # contiguous copies kept in locals: the C call reads them through raw pointers
        args = [t.contiguous() for t in (v, leak, idx, k0, w1)]
        analog_native.set_threads()
        p = analog_native.ptr
        analog_native.library().sl_adc_readout(
            steps, batch, width, n, *(p(t) for t in args), p(noise), spec.leak_lsb,
            spec.lsb_per_unit, float(spec.adc_max), p(out))
        return out
    entry = torch.arange(batch, device=v.device)
    lsb = spec.to_lsb(v[idx, entry], leak)  # [K, B, ...]
    if noise is not None:
        lsb = lsb + noise
    samples = spec.from_lsb(lsb.round().clamp(0, spec.adc_max), leak)
    if n == 1:
        return samples.expand(steps, *samples.shape[1:]).clone()
    w = w1.reshape(steps, batch, *[1] * (v.dim() - 2))
    return (1 - w) * samples[k0, entry] + w * samples[k0 + 1, entry]


def dense_trace(
    node: Node, run: ChipRun, neuron: int, sample: int, spec: AnalogChipSpec,
    g: torch.Generator | None,
) -> DenseTrace:
    """The fast 10-bit ADC's recording of one neuron of one run.

    The neuron's trajectory between simulation steps is the exact solution from its state at
    each step, evaluated on the ADC's finer grid: the neuron is re-integrated there from the
    input it received, with its spikes (and so resets) forced to the steps where it spiked in
    the run. On the simulation grid the trace therefore equals the run's membrane (up to the
    ADC's resolution and read noise). A neuron device model
    (:class:`~spikeloop.devices.NeuronDevice`) acts on the fine grid as on the run's: one that
    depends on the step size (a time-domain neuron's quantum) then differs from the run's in
    the last digits.
    """
    dt = node.settings["dt"]
    substeps = max(1, round(dt / (spec.speedup / spec.dense_adc_rate)))
    p = run.params[node.name]
    one = {f.name: (getattr(p, f.name)[neuron:neuron + 1]
                    if isinstance(getattr(p, f.name), Tensor) and getattr(p, f.name).dim()
                    else getattr(p, f.name)) for f in fields(p)}
    record = type(p)(**one)
    x = run.inputs[node.name][:, sample, neuron]
    x_fine = torch.zeros(x.shape[0] * substeps, 1, 1, dtype=x.dtype)
    x_fine[::substeps, 0, 0] = x  # input spikes arrive at the start of each step
    observed = None
    spikes = run.populations[node.name].spikes
    if spikes is not None:  # the run's spikes happen at the end of their step
        z_fine = torch.zeros_like(x_fine)
        z_fine[substeps - 1 :: substeps, 0, 0] = spikes[:, sample, neuron]
        observed = Observables(spikes=z_fine)
    obs, _ = run_population(node.model, x_fine, record, dt=dt / substeps,
                            method=node.settings["method"], surrogate=node.settings["surrogate"],
                            shape=(1,), observed=observed, device=neuron_device(node))
    v = obs.v[:, 0, 0]
    v_leak = torch.as_tensor(record.v_leak).reshape(-1)[0]
    scale = 2 ** (spec.dense_adc_bits - spec.adc_bits)
    lsb = spec.to_lsb(v, v_leak) * scale
    if g is not None:
        lsb = lsb + spec.dense_read_noise * torch.randn(lsb.shape, generator=g, dtype=lsb.dtype)
    lsb = lsb.round().clamp(0, 2**spec.dense_adc_bits - 1) / scale
    t = torch.arange(1, v.shape[0] + 1, dtype=torch.float64) * (dt / substeps)
    return DenseTrace(t, spec.from_lsb(lsb, v_leak), neuron, sample)
