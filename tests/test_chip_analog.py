"""The emulated analog chip: mapping, quantisation, calibration, execution, in-the-loop."""

import pytest
import torch

from spikeloop.backends import get_backend, in_the_loop
from spikeloop.chips.analog import AnalogChip, AnalogChipBackend, AnalogChipSpec, map_graph
from spikeloop.chips.analog.simulator import adc_readout, effective_weight
from spikeloop.dynamics import SuperSpike, current_gain
from spikeloop.errors import (
    MappingError,
    NonFiniteError,
    ParameterError,
    StateError,
    WeightRangeError,
)
from spikeloop.network import Network
from spikeloop.nn import LIF, Conv1d, CubaLI, CubaLIF, Delay, DelayedLinear, Flatten, Input, Linear
from spikeloop.observables import ExecutionReport, NetworkOutput, Observables

SPEC = AnalogChipSpec()
DT = 0.5e-3


def yinyang_net(seed=0, hidden=120):
    torch.manual_seed(seed)
    net = Network({
        "input": Input(5), "fc1": Linear(5, hidden),
        "hidden": CubaLIF(hidden, dt=DT, tau_mem=10e-3, tau_syn=5e-3),
        "fc2": Linear(hidden, 3), "output": CubaLI(3, dt=DT, tau_mem=10e-3, tau_syn=5e-3),
    })
    with torch.no_grad():
        net.layers.fc1.weight.normal_(1.5, 1.0)
        net.layers.fc2.weight.normal_(0.0, 0.5)
    return net


def latency_input(batch=16, steps=80, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(steps, batch, 5)
    times = torch.randint(4, 60, (batch, 4), generator=g)
    for b in range(batch):
        x[times[b], b, torch.arange(4)] = 1.0
        x[4, b, 4] = 1.0
    return x


def snap_to_lsb(net):
    """Put every weight on the 6-bit grid so quantisation is exact."""
    with torch.no_grad():
        for layer in net.modules():
            if isinstance(layer, Linear):
                scale = layer.weight.abs().max() / SPEC.weight_max
                layer.weight.copy_(torch.round(layer.weight / scale) * scale)


# ----------------------------------------------------------------------------- mapping
def test_yinyang_network_maps_onto_one_half():
    placement = map_graph(yinyang_net().graph, SPEC)
    assert placement.circuits_used == 123
    assert placement.rows_used == (2 * (5 + 120), 0)  # two rows per signed source
    hidden = placement.populations["hidden"]
    assert not hidden.joined and hidden.columns.tolist() == list(range(120))


def test_fan_in_above_128_joins_two_circuits_and_above_256_does_not_fit():
    net = Network([Input(200), Linear(200, 4), CubaLIF(4, dt=DT, tau_mem=10e-3, tau_syn=5e-3)])
    placement = map_graph(net.graph, SPEC)
    pop = next(iter(placement.populations.values()))
    proj = next(iter(placement.projections.values()))
    assert pop.joined and placement.circuits_used == 8
    assert proj.half[:, :128].eq(0).all() and proj.half[:, 128:].eq(1).all()
    assert placement.rows_used == (256, 2 * 72)
    too_wide = Network([Input(300), Linear(300, 4),
                        CubaLIF(4, dt=DT, tau_mem=10e-3, tau_syn=5e-3)])
    with pytest.raises(MappingError, match="300 signed inputs; a neuron circuit takes 128 "
                                           r"\(256 with 2 joined circuits\)"):
        map_graph(too_wide.graph, SPEC)


def test_joined_readout_splits_its_inputs_by_the_rows_left_in_each_half():
    """240 hidden neurons (all in half 0, with the 5 input rows there) feed a joined readout:
    its first circuit takes the 123 inputs half 0 still has rows for, the second the rest."""
    placement = map_graph(yinyang_net(hidden=240).graph, SPEC)
    assert placement.populations["output"].joined
    readout = placement.projections["fc2"]
    assert readout.half[:, :123].eq(0).all() and readout.half[:, 123:].eq(1).all()
    assert placement.rows_used == (2 * (5 + 123), 2 * 117)
    with pytest.raises(MappingError, match=r"half 0 needs 500 synapse rows \(250 signed"):
        # 250 inputs fill half 0 already (joined hidden neurons): the readout's overflow is
        # named by the row limit
        map_graph(Network([Input(250), Linear(250, 250),
                           CubaLIF(250, dt=DT, tau_mem=10e-3, tau_syn=5e-3),
                           Linear(250, 3), CubaLI(3, dt=DT, tau_mem=10e-3, tau_syn=5e-3)]).graph,
                  SPEC)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([Input(10), Linear(10, 600), CubaLIF(600, dt=DT, tau_mem=10e-3, tau_syn=5e-3)],
         "needs 600 neuron circuits; the chip has 512"),
        ([Input(100), Linear(100, 100), CubaLIF(100, dt=DT, tau_mem=10e-3, tau_syn=5e-3),
          Linear(100, 100), CubaLIF(100, dt=DT, tau_mem=10e-3, tau_syn=5e-3)],
         "half 0 needs 400 synapse rows"),
        ([Input(4), Linear(4, 3), LIF(3, dt=DT)], "LIF; the analog chip runs current-based"),
        ([Input((2, 8)), Conv1d(2, 2, 3), CubaLIF((2, 6), dt=DT, tau_mem=10e-3, tau_syn=5e-3)],
         "Conv1d"),
        ([Input(4), Linear(4, 3), CubaLIF(3, dt=DT, tau_mem=100e-3, tau_syn=5e-3)],
         "tau_mem spans 100–100 µs .* supports 0.5–60 µs"),
        ([Input(4), Linear(4, 3), CubaLIF(3, dt=DT, tau_mem=10e-3, tau_syn=5e-3),
          Flatten(), Linear(3, 2), CubaLI(2, dt=DT, tau_mem=10e-3, tau_syn=5e-3)], "Flatten"),
    ],
)
def test_networks_that_do_not_fit_name_the_limit(layers, message):
    with pytest.raises(MappingError, match=message):
        map_graph(Network(layers).graph, SPEC)


@pytest.mark.parametrize("delayed", [
    lambda: DelayedLinear(4, 3, 3e-3, dt=DT, per="axon"),
    lambda: DelayedLinear(4, 3, 3e-3, dt=DT, per="synapse"),
])
def test_a_delayed_projection_is_refused_by_name(delayed):
    """The chip has no programmable delays (issue 17): learnable or fixed, refused by name."""
    net = Network({"input": Input(4), "fc_delayed": delayed(),
                   "hidden": CubaLIF(3, dt=DT, tau_mem=10e-3, tau_syn=5e-3)})
    with pytest.raises(MappingError, match="projection 'fc_delayed' is a DelayedLinear with "
                       "transmission delays \\(up to 6 steps\\); the analog chip has no "
                       "programmable delays"):
        map_graph(net.graph, SPEC)
    fixed = Network({"input": Input(4), "line": Delay(2), "fc": Linear(4, 3),
                     "hidden": CubaLIF(3, dt=DT, tau_mem=10e-3, tau_syn=5e-3)})
    with pytest.raises(MappingError, match="projection 'line' is a Delay with transmission"):
        map_graph(fixed.graph, SPEC)
    with pytest.raises(MappingError, match="'fc_delayed' is a DelayedLinear"):
        net(torch.zeros(10, 1, 4), backend=AnalogChipBackend())


def test_weight_split_and_quantisation():
    net = yinyang_net()
    placement = map_graph(net.graph, SPEC)
    fc2 = placement.projections["fc2"]
    w = net.layers.fc2.weight.detach()
    assert fc2.scale == pytest.approx(float(w.abs().max()) / 63)
    assert torch.equal(fc2.weight_lsb, torch.round(w / fc2.scale).to(torch.int16))
    assert int(fc2.weight_lsb.abs().max()) == 63
    assert (fc2.row_exc % 2 == 0).all() and torch.equal(fc2.row_inh, fc2.row_exc + 1)
    ideal = AnalogChip(SPEC, 0, mismatch=False)
    torch.testing.assert_close(effective_weight(fc2, ideal), fc2.scale * fc2.weight_lsb.float())
    real = AnalogChip(SPEC, 0)
    w_eff = effective_weight(fc2, real)
    o, i = 1, 7
    lsb = int(fc2.weight_lsb[o, i])
    row = int(fc2.row_exc[o, i]) if lsb > 0 else int(fc2.row_inh[o, i])
    gain = real.synapse_gain[int(fc2.half[o, i]), row, int(fc2.column[o, i])]
    assert float(w_eff[o, i]) == pytest.approx(fc2.scale * lsb * float(gain), rel=1e-6)
    assert torch.equal(torch.sign(w_eff), torch.sign(fc2.weight_lsb.float()))


def test_fixed_weight_scale_overflow_is_an_error_unless_clipping_is_asked_for():
    net = yinyang_net()
    w_max = float(net.layers.fc1.weight.detach().abs().max())
    with pytest.raises(WeightRangeError, match=r"fc1.*at most 63"):
        map_graph(net.graph, SPEC, weight_scale=w_max / 100)
    placement = map_graph(net.graph, SPEC, weight_scale=w_max / 100, clip_weights=True)
    assert int(placement.projections["fc1"].weight_lsb.abs().max()) == 63
    # what was clipped is counted, and the run's warnings say so once per projection
    w = net.layers.fc1.weight.detach()
    clipped = int((torch.round(w / (w_max / 100)).abs() > 63).sum())
    assert placement.projections["fc1"].clipped == clipped > 0
    with torch.no_grad():
        out = net(latency_input(batch=1), backend={"name": "chip", "clip_weights": True,
                                                   "weight_scale": w_max / 100})
    assert [w for w in out.report.warnings if "clipped" in w] == [
        f"fc1: {clipped} of {w.numel()} weights clipped to the chip's ±63 LSB "
        f"(= ±{63 * w_max / 100:.4g})"] + [
        f"fc2: {p.clipped} of {p.weight_lsb.numel()} weights clipped to the chip's ±63 LSB "
        f"(= ±{63 * w_max / 100:.4g})" for p in [placement.projections["fc2"]] if p.clipped]


# ----------------------------------------------------------------------------- calibration
def test_calibration_brings_the_spread_down():
    chip = AnalogChip(SPEC, seed=3)
    circuits = torch.arange(200)
    for param, target in (("tau_mem", 10e-6), ("tau_syn", 5e-6), ("v_leak", 80.0),
                          ("v_threshold", 130.0), ("v_reset", 80.0)):
        result = chip.calibrate(param, circuits, torch.full((200,), target, dtype=torch.float64))
        if param.startswith("tau"):  # relative spread: ~17 % before, < 1 % after
            assert result.spread_before > 0.1 and result.spread_after < 0.01, param
        else:  # LSB: ~12 before, < 1 after
            assert result.spread_before > 8 and result.spread_after < 1.0, param
        again = chip.calibrate(param, circuits, torch.full((200,), target, dtype=torch.float64))
        assert again is result  # cached per (seed, parameter, targets)
        assert result.codes.min() >= 0 and result.codes.max() <= SPEC.code_max


# ----------------------------------------------------------------------------- execution
def test_determinism_per_chip_seed_and_fresh_noise_per_run():
    net, x = yinyang_net(), latency_input()

    def two_runs(seed):
        backend = AnalogChipBackend(seed)
        with torch.no_grad():
            return [net(x, backend=backend) for _ in range(2)]

    a, b, c = two_runs(0), two_runs(0), two_runs(1)
    for ra, rb in zip(a, b, strict=True):
        assert torch.equal(ra["hidden"].spikes, rb["hidden"].spikes)
        assert torch.equal(ra.output.v, rb.output.v)
    assert not torch.equal(a[0].output.v, a[1].output.v)  # trial-to-trial noise
    assert not torch.equal(a[0].output.v, c[0].output.v)  # another chip


def test_execution_report_and_readout():
    net, x = yinyang_net(), latency_input(batch=4, steps=60)
    backend = get_backend("chip")
    with torch.no_grad():
        out = net(x, backend=backend)
    wall = out.report.wall
    assert set(wall) == {"mapping", "calibration", "run", "readout", "total"}
    assert wall["total"] >= wall["run"] + wall["readout"]
    assert out.report.resources["chip_time_s"] == pytest.approx(60 * 4 * DT / 1000)
    assert out.report.resources["placement"]["circuits_used"] == 123
    spread = out.report.resources["calibration_spread"]["hidden"]
    assert set(spread) == {"tau_mem", "tau_syn", "v_leak", "v_threshold", "v_reset"}
    assert all(after < before / 10 for before, after in spread.values())
    assert set(out.report.resources["calibration_spread"]["output"]) == {
        "tau_mem", "tau_syn", "v_leak"}  # a readout has no threshold or reset
    # the only warnings: read-outs at the ADC's limits, counted once per population and run
    expected = []
    for name in ("hidden", "output"):
        high, low = backend.readout_range(net.graph, name).at_limits(out[name].v)
        if high.any() or low.any():
            expected.append(f"{name}: the chip 8-bit ADC read-out reads its ceiling on "
                            f"{int(high.sum())} and its floor on {int(low.sum())} of "
                            f"{out[name].v.numel()} membrane values (steps × samples × neurons); "
                            "the true membrane lay beyond")
    assert out.report.warnings == expected and expected  # this untrained readout saturates


def test_adc_quantises_saturates_and_interpolates():
    steps = 40
    v = torch.linspace(-3.0, 6.0, steps)[:, None, None].expand(steps, 2, 1).clone()
    out = adc_readout(v, torch.tensor(0.0), SPEC, DT, None)  # phase 0, no read noise
    lsb = SPEC.to_lsb(out, 0.0)
    # saturation at both ends
    assert float(lsb.min()) == pytest.approx(0.0, abs=1e-3)
    assert float(lsb.max()) == pytest.approx(255.0, abs=1e-3)
    true = SPEC.to_lsb(v, 0.0).round().clamp(0, 255)
    period = SPEC.adc_period * SPEC.speedup / DT  # 3.6 steps
    sampled = [round(k * period) for k in range(int((steps - 1) // period) + 1)]
    assert sampled[:4] == [0, 4, 7, 11]
    torch.testing.assert_close(lsb[sampled], true[sampled], rtol=0, atol=1e-3)
    # between two sampled steps the trace is linear in time: step 5 is 1/3 from 4 to 7
    torch.testing.assert_close(lsb[5], true[4] + (true[7] - true[4]) / 3, rtol=0, atol=1e-3)


def test_readout_range_is_the_adc_range_and_marks_the_saturated_runs():
    """Entries 0-3 drive the readout far beyond the ADC (class 0 up, class 1 down), entries
    4-7 get no input and rest at the leak: exactly half the runs saturate, at both limits."""
    net, x = yinyang_net(), latency_input(batch=8)
    x[:, 4:] = 0.0
    with torch.no_grad():
        net.layers.fc1.weight.fill_(3.0)
        net.layers.fc2.weight.zero_()
        net.layers.fc2.weight[0] = 2.0
        net.layers.fc2.weight[1] = -2.0
    chip = AnalogChipBackend(0)
    with torch.no_grad():
        out = net(x, backend=chip)
        true = net(x, backend=AnalogChipBackend(0, noise=False, adc="ideal")).output.v
    assert float(true[:, :4, 0].max()) > 5.0 and float(true[:, :4, 1].min()) < -3.0
    limits = chip.readout_range(net.graph, "output")
    assert limits.description == "chip 8-bit ADC read-out"
    assert limits.resolution == pytest.approx(1 / SPEC.lsb_per_unit)
    # codes 0 and 255 around each calibrated circuit's leak (≈ 80 LSB): ≈ −1.6 … 3.5 model units
    torch.testing.assert_close(limits.high - limits.low, torch.full((3,), 255 / 50.0))
    assert limits.high.sub(3.5).abs().max() < 0.1 and limits.low.add(1.6).abs().max() < 0.1
    v = out.output.v
    assert float(v.max()) == pytest.approx(float(limits.high.max()), abs=1e-5)  # clipped there
    ceiling, floor = limits.saturated(v)
    assert ceiling.tolist() == floor.tolist() == [True] * 4 + [False] * 4
    assert get_backend("sim").readout_range(net.graph, "output") is None
    assert AnalogChipBackend(0, adc="ideal").readout_range(net.graph, "output") is None
    observed = get_backend({"name": "event", "observe": chip})
    assert observed.readout_range(net.graph, "output").high.equal(limits.high)
    assert get_backend("event").readout_range(net.graph, "output") is None


def test_adc_runs_are_independent_and_short_runs_work():
    v = torch.sin(torch.linspace(0, 6, 30))[:, None, None].expand(30, 2, 3).clone()
    g = torch.Generator().manual_seed(0)
    out = adc_readout(v, torch.tensor(0.0), SPEC, DT, g)
    assert not torch.equal(out[:, 0], out[:, 1])  # own phase and noise per batch entry
    for steps in (1, 2, 3):
        for seed in range(5):
            short = adc_readout(v[:steps], torch.tensor(0.0), SPEC, DT,
                                torch.Generator().manual_seed(seed))
            assert short.shape == v[:steps].shape and torch.isfinite(short).all()


def test_dense_trace_of_a_spiking_neuron_is_a_recording_of_the_run():
    net, x = yinyang_net(), latency_input(batch=2)
    backend = AnalogChipBackend(0, noise=False, adc="ideal")
    with torch.no_grad():
        plain = net(x, backend=backend)
        neuron = int(plain["hidden"].spikes[:, 0].sum(0).argmax())
        assert plain["hidden"].spikes[:, 0, neuron].sum() >= 2
        backend.dense = ("hidden", neuron)
        out = net(x, backend=backend)
    trace = out["hidden"].dense
    substeps = round(DT / (SPEC.speedup / SPEC.dense_adc_rate))
    on_grid = trace.v[substeps - 1 :: substeps].double()
    torch.testing.assert_close(on_grid, out["hidden"].v[:, 0, neuron].double(), rtol=0,
                               atol=1 / SPEC.lsb_per_unit / 4 * 0.5 + 1e-6)
    with pytest.raises(ParameterError, match=r"outside 0\.\.119"):
        net(x, backend=AnalogChipBackend(0, dense=("hidden", 500)))
    with pytest.raises(ParameterError, match="no population 'input'"):
        net(x, backend=AnalogChipBackend(0, dense=("input", 0)))


def test_dense_adc_trace_follows_the_membrane():
    net, x = yinyang_net(), latency_input(batch=2)
    backend = AnalogChipBackend(0, noise=False, adc="ideal", dense=("output", 1))
    with torch.no_grad():
        out = net(x, backend=backend)
    trace = out["output"].dense
    substeps = round(DT / (SPEC.speedup / SPEC.dense_adc_rate))
    assert trace.t.shape == (x.shape[0] * substeps,) and trace.neuron == 1
    on_grid = trace.v[substeps - 1 :: substeps]
    # the readout never spikes: the fine re-integration is exact on the grid up to 10-bit LSB
    torch.testing.assert_close(on_grid.double(), out.output.v[:, 0, 1].double(), rtol=0,
                               atol=1 / SPEC.lsb_per_unit / 4 * 0.5 + 1e-6)


# ----------------------------------------------------------------------------- in the loop
def recurrent_refractory_net(seed=5):
    torch.manual_seed(seed)
    net = Network({
        "input": Input(5), "fc1": Linear(5, 40),
        "hidden": CubaLIF(40, dt=DT, tau_mem=10e-3, tau_syn=5e-3, t_refrac=2e-3,
                          recurrent=True),
        "fc2": Linear(40, 3), "output": CubaLI(3, dt=DT, tau_mem=10e-3, tau_syn=5e-3),
    })
    with torch.no_grad():
        net.layers.fc1.weight.normal_(1.5, 1.0)
        net.layers.hidden.recurrent.weight.normal_(0.0, 0.3)
    return net


@pytest.mark.parametrize("make", [yinyang_net, recurrent_refractory_net])
def test_ideal_chip_in_the_loop_gradients_equal_simulator_gradients(make):
    net = make(seed=4)
    snap_to_lsb(net)
    x, y = latency_input(batch=24, seed=2), torch.randint(0, 3, (24,))
    ideal = AnalogChipBackend(0, mismatch=False, noise=False, adc="ideal")

    def grads(backend):
        net.zero_grad()
        out = net(x, backend=backend)
        loss = torch.nn.functional.cross_entropy(out.output.v.max(0).values, y)
        loss = loss + out["hidden"].spikes.mean()
        loss.backward()
        return out, [p.grad.clone() for p in net.parameters()]

    sim, g_sim = grads("sim")
    chip, g_chip = grads(ideal)
    assert sim["hidden"].spikes.sum() > 0
    assert torch.equal(sim["hidden"].spikes, chip["hidden"].spikes)
    for a, b in zip(g_sim, g_chip, strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_bridge_returns_observed_values_and_evaluates_the_surrogate_there():
    """One step, v = r g W x: values z_obs, v_obs and dz/dW = σ'(v_obs − ϑ) r g x."""
    net = Network({"input": Input(2), "fc": Linear(2, 1),
                   "cell": CubaLIF(1, dt=DT, tau_mem=10e-3, tau_syn=5e-3)})
    with torch.no_grad():
        net.layers.fc.weight.copy_(torch.tensor([[0.7, -0.2]]))
    x = torch.tensor([[[1.0, 1.0]]])
    v_obs, z_obs = torch.tensor([[[0.93]]]), torch.tensor([[[1.0]]])
    observed = NetworkOutput({"input": Observables(spikes=x),
                              "cell": Observables(spikes=z_obs, v=v_obs)},
                             "cell", {}, ExecutionReport("fake"))
    out = in_the_loop(net.graph, x, observed)
    assert out["cell"].spikes.item() == 1.0 and out["cell"].v.item() == pytest.approx(0.93)
    out["cell"].spikes.sum().backward()
    g = float(current_gain(5e-3, 10e-3, DT, "exact"))
    sg = float(SuperSpike().derivative(torch.tensor(0.93 - 1.0)))
    expected = sg * g * x[0, 0]
    torch.testing.assert_close(net.layers.fc.weight.grad[0], expected, rtol=1e-5, atol=0)


def test_bridge_resets_and_integrates_from_the_observed_spikes():
    """Two steps. If the chip spiked at step 0 the model's membrane is reset there, so v at
    step 1 depends on W only through step 1's input; if not, through both steps."""
    net = Network({"input": Input(1), "fc": Linear(1, 1),
                   "cell": CubaLIF(1, dt=DT, tau_mem=10e-3, tau_syn=5e-3)})
    with torch.no_grad():
        net.layers.fc.weight.fill_(0.4)  # the model alone would not spike
    x = torch.ones(2, 1, 1)
    c = net.layers.cell.parameter_record().coefficients(DT)
    beta, alpha, g = float(c.beta), float(c.alpha), float(c.syn_gain)

    def grad(z0):
        net.zero_grad()
        observed = NetworkOutput(
            {"input": Observables(spikes=x),
             "cell": Observables(spikes=torch.tensor([[[z0]], [[0.0]]]),
                                 v=torch.tensor([[[1.2]], [[0.3]]]))},
            "cell", {}, ExecutionReport("fake"))
        out = in_the_loop(net.graph, x, observed)
        assert out["cell"].v[:, 0, 0].tolist() == pytest.approx([1.2, 0.3])
        out["cell"].v[1].sum().backward()
        return float(net.layers.fc.weight.grad)

    # v1 = β v0' + g (α I0 + x1), I0 = W x0: after a reset v0' = v_reset (no W); else v0' = v0
    assert grad(1.0) == pytest.approx(g * (alpha + 1), rel=1e-5)
    assert grad(0.0) == pytest.approx(beta * g + g * (alpha + 1), rel=1e-5)


def test_calibration_warns_when_targets_are_out_of_reach():
    net = Network({"input": Input(3), "fc": Linear(3, 4),
                   "cell": CubaLIF(4, dt=DT, tau_mem=0.51e-3, tau_syn=5e-3, v_reset=-1.58)})
    with torch.no_grad():
        out = net((torch.rand(10, 2, 3) < 0.3).float(), backend=AnalogChipBackend(2))
    assert any("tau_mem" in w and "miss their target" in w for w in out.report.warnings)


@pytest.mark.parametrize(
    ("layers", "error", "message"),
    [
        ([Input(3), CubaLIF(3, dt=DT, tau_mem=10e-3, tau_syn=5e-3)], MappingError,
         "must be fed through Linear"),
        ([Input(3), Linear(3, 3), CubaLI(3, dt=DT, tau_mem=10e-3, tau_syn=5e-3), Linear(3, 2),
          CubaLI(2, dt=DT, tau_mem=10e-3, tau_syn=5e-3)], MappingError, "non-spiking readout"),
    ],
)
def test_mapper_rejects_connections_the_chip_does_not_have(layers, error, message):
    with pytest.raises(error, match=message):
        map_graph(Network(layers).graph, SPEC)


def test_chip_input_must_be_events_and_weights_finite():
    net = yinyang_net()
    x = latency_input(batch=2)
    with pytest.raises(ParameterError, match="only 0 and 1"):
        net(x * 0.37, backend="chip")
    with torch.no_grad():
        net.layers.fc2.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="fc2"):
        map_graph(net.graph, SPEC)


def test_chip_rejects_streaming_and_bad_options():
    net, x = yinyang_net(), latency_input(batch=2)
    with torch.no_grad():
        first = net(x, backend="sim")
        with pytest.raises(StateError, match="chip backend cannot continue from a state "
                                             r"\(streaming\)"):
            net(x, first.state, backend="chip")
    with pytest.raises(ParameterError, match="adc"):
        get_backend({"name": "chip", "adc": "perfect"})


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("per_neuron_leak", [False, True])
def test_adc_native_pass_equals_the_torch_code(monkeypatch, noise, per_neuron_leak):
    from spikeloop.chips.analog import _native as native

    if native.library() is None:
        pytest.skip(f"native kernels unavailable: {native.unavailable_reason()}")
    v = torch.randn(37, 5, 11) * 1.5
    v_leak = 0.1 * torch.randn(11) if per_neuron_leak else torch.tensor(0.3)

    def read():
        g = torch.Generator().manual_seed(3) if noise else None
        return adc_readout(v, v_leak, SPEC, DT, g)

    fast = read()
    monkeypatch.setattr(native, "usable", lambda *t: False)
    reference = read()  # the same phases and read noise (drawn before the engine is chosen)
    torch.testing.assert_close(fast, reference, rtol=0, atol=1e-6)
    assert not torch.equal(fast[:, 0], fast[:, 1]) or not noise


def test_normal_noise_is_gaussian_reproducible_and_thread_independent():
    from spikeloop.chips.analog import _native as native
    from spikeloop.chips.analog.noise import normal

    x = normal((200_000,), torch.Generator().manual_seed(1), scale=2.0)
    assert x.dtype == torch.float32 and x.shape == (200_000,)
    assert abs(float(x.mean())) < 0.02 and float(x.std()) == pytest.approx(2.0, rel=0.01)
    tail = float((x.abs() > 6.0).float().mean())  # beyond 3 σ: 0.27 %
    assert tail == pytest.approx(0.0027, rel=0.15)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = normal((50_000,), torch.Generator().manual_seed(7))
        torch.set_num_threads(2)
        two = normal((50_000,), torch.Generator().manual_seed(7))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)
    g = torch.Generator().manual_seed(7)
    assert not torch.equal(normal((1000,), g), normal((1000,), g))  # the stream advances
    if native.library() is None:  # the torch fallback is plain randn on the generator
        torch.testing.assert_close(one, torch.randn(50_000, generator=torch.Generator()
                                                    .manual_seed(7)))


def test_noisy_projection_native_path_equals_the_torch_path(monkeypatch):
    """Event-driven PSP noise: the same draws, the same mean, noise only where events arrive."""
    from spikeloop.chips.analog.simulator import _noisy_projection
    from spikeloop.kernels import native

    if native.library() is None:
        pytest.skip(f"native kernels unavailable: {native.unavailable_reason()}")
    torch.manual_seed(5)
    w = torch.randn(24, 10)
    for rate in (0.02, 0.6):  # few rows with events / most rows with events
        z = (torch.rand(30, 4, 10) < rate).float()
        fast = _noisy_projection(w, 0.05, torch.Generator().manual_seed(9))(z)
        with monkeypatch.context() as m:
            m.setattr(native, "usable", lambda *t: False)
            slow = _noisy_projection(w, 0.05, torch.Generator().manual_seed(9))(z)
        torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
        quiet = z.sum(-1) == 0
        assert torch.equal(fast[quiet], torch.zeros_like(fast[quiet]))
        assert not torch.allclose(fast, z @ w.T)  # noise was added where events arrived
