"""Analog neuron transfer non-linearity (issue 21): voltage-domain and time-domain neurons
(:class:`spikeloop.devices.AnalogNeuron`)."""

import math

import pytest
import torch

from spikeloop.devices import AnalogNeuron, DeviceContext, Devices, build_device, transfer_curve
from spikeloop.dynamics import (
    CubaLIFParameters,
    CubaLIFState,
    LIFParameters,
    LIFState,
    SuperSpike,
    cuba_lif_step,
    lif_step,
)
from spikeloop.errors import DeviceModelError, ParameterError
from spikeloop.network import Network
from spikeloop.nn import LIF, CubaLI, CubaLIF, Input, Linear
from test_chip_analog import latency_input, snap_to_lsb, yinyang_net

DT = 1e-3
CTX = DeviceContext("hidden", torch.Generator(), torch.Generator(), 0.0)
IDEAL = (AnalogNeuron("voltage", compression=0.0),
         AnalogNeuron("time", gain_error=0.0, resolution=0.0))


def small_net(population, seed=0):
    """input → 32 neurons of ``population`` → 3 CubaLI, weights strong enough to spike."""
    torch.manual_seed(seed)
    net = Network({"input": Input(5), "fc1": Linear(5, 32),
                   "hidden": population(32, dt=DT, tau_mem=10e-3),
                   "fc2": Linear(32, 3), "output": CubaLI(3, dt=DT, tau_mem=10e-3)})
    with torch.no_grad():
        net.layers.fc1.weight.normal_(8.0 if population is LIF else 1.0, 4.0)
    return net


def spikes_in(steps=60, batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(steps, batch, 5, generator=g) < 0.3).float()


# ----------------------------------------------------------------------------- identity
@pytest.mark.parametrize("population", [LIF, CubaLIF])
@pytest.mark.parametrize("device", IDEAL, ids=["voltage", "time"])
def test_zero_settings_are_the_ideal_network_exactly(population, device):
    """With every non-ideality at zero, the run (kernel 'auto', which a neuron device sends to
    the reference loop) equals the ideal network run by the reference loop bit for bit."""
    net, x = small_net(population), spikes_in()
    with torch.no_grad():
        ideal = net(x, backend={"name": "sim", "kernel": "reference"})
        net.devices = Devices({"hidden": device})
        analog = net(x, backend="sim")
    assert ideal["hidden"].spikes.sum() > 20  # the population really spikes
    assert torch.equal(analog["hidden"].spikes, ideal["hidden"].spikes)
    assert torch.equal(analog["hidden"].v, ideal["hidden"].v)
    assert torch.equal(analog.output.v, ideal.output.v)


# ----------------------------------------------------------------------------- one step by hand
def test_voltage_domain_step_by_hand():
    """LIF, v_leak = −0.2, ϑ = 1 (S = 1.2), v = 0.4 (Δ = 0.6, u = 0.5), x = 2, α = 0.5,
    σ = 0.25 (s = 0.3): x̃ = 2/(1 + 0.5·0.25) + (1−β)/((1−β) r)·(0.6 − 0.3 tanh 2), and the
    step integrates the saturating leak: v' = v − (1−β)·0.3 tanh 2 + (1−β)·r·x/(1.125)."""
    p = LIFParameters(tau_mem=10e-3, v_leak=-0.2, v_threshold=1.0, r=1.0)
    c = p.coefficients(DT)
    s = LIFState(torch.tensor([0.4], dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    x = torch.tensor([2.0], dtype=torch.float64)
    dev = AnalogNeuron("voltage", compression=0.5, leak_saturation=0.25)
    xt = dev.current(x, s, CTX, p, c)
    assert xt.item() == pytest.approx(2 / 1.125 + 0.6 - 0.3 * math.tanh(2.0), rel=1e-12)
    _, v, _ = lif_step(xt, s, p, c, SuperSpike())
    one_minus_beta = 1 - math.exp(-DT / 10e-3)  # (the coefficients are float32: rel 1e-7)
    assert v.item() == pytest.approx(0.4 - one_minus_beta * 0.3 * math.tanh(2.0)
                                     + one_minus_beta * 2 / 1.125, rel=1e-7)


def test_time_domain_step_by_hand():
    """CubaLIF: the input quantum is q = δ S / (r g_syn); x = 3.4 q becomes 1.01 · 3 q (and
    −3.6 q becomes −1.01 · 4 q); for LIF the quantum is δ S / ((1−β) r)."""
    dev = AnalogNeuron("time", gain_error=0.01, resolution=0.01)
    p = CubaLIFParameters(tau_mem=10e-3, tau_syn=5e-3, v_leak=0.1, v_threshold=0.6)
    c = p.coefficients(DT)
    zero = torch.zeros(2, dtype=torch.float64)
    q = 0.01 * 0.5 / float(c.syn_gain)
    x = torch.tensor([3.4 * q, -3.6 * q], dtype=torch.float64)
    xt = dev.current(x, CubaLIFState(zero, zero, zero), CTX, p, c)
    torch.testing.assert_close(xt, torch.tensor([3.03 * q, -4.04 * q], dtype=torch.float64),
                               rtol=1e-7, atol=0)  # (the coefficients are float32)
    pl = LIFParameters(tau_mem=10e-3, v_threshold=1.0, r=2.0)
    cl = pl.coefficients(DT)
    assert float(cl.x_gain) == pytest.approx(2.0 * (1 - math.exp(-DT / 10e-3)), rel=1e-6)
    ql = 0.01 / float(cl.x_gain)
    xt = dev.current(torch.tensor([2.2 * ql], dtype=torch.float64), LIFState(zero[:1], zero[:1]),
                     CTX, pl, cl)
    assert xt.item() == pytest.approx(1.01 * 2 * ql, rel=1e-7)
    cuba_lif_step(xt, CubaLIFState(zero[:1], zero[:1], zero[:1]), p, c, SuperSpike())  # runs


# ----------------------------------------------------------------------------- f–I curves
def test_voltage_domain_compresses_the_f_i_curve():
    """An IF neuron (no leak, v from 0 to ϑ = 1) with gain 1/(1 + α v²) needs
    ∫₀¹ (1 + α u²) du / (r x) = (1 + α/3)/(r x) steps per spike instead of 1/(r x): its rate is
    the ideal one times 1/(1 + α/3) (0.857 for α = 0.5). Tolerance 2 %: a period is a whole
    number of steps (58–230 here) and a 12 s run counts whole spikes (≥ 50). An LIF's rate is
    below the ideal one wherever the ideal one fires."""
    i = torch.tensor([0.005, 0.01, 0.02])
    dev = AnalogNeuron("voltage", compression=0.5)
    ideal = transfer_curve("IF", i, steps=12_000)
    analog = transfer_curve("IF", i, device=dev, steps=12_000)
    assert (ideal * 12).min() > 50  # spikes in the 12 s run
    torch.testing.assert_close(analog / ideal, torch.full((3,), 1 / (1 + 0.5 / 3),
                                                          dtype=torch.float64), rtol=0.02, atol=0)
    i = torch.linspace(1.5, 5.0, 8)
    ideal = transfer_curve("LIF", i, steps=4000, dt=1e-4)
    analog = transfer_curve("LIF", i, device=dev, steps=4000, dt=1e-4)
    assert ideal.min() > 0 and (analog < ideal).all()


def test_time_domain_f_i_curve_within_a_tenth_of_a_percent():
    """With the default gain error (2·10⁻⁴) and resolution (5·10⁻⁵ S), the LIF f–I curve over
    1.5–5 × rheobase deviates from the ideal one by ≤ 0.1 % on average (sum of |Δrate| over a
    grid of 200 currents / sum of rates; 0.2 s at dt = 0.1 ms); the voltage domain (α = 0.5)
    by more than 10 %."""
    i = torch.linspace(1.5, 5.0, 200)
    ideal = transfer_curve("LIF", i, steps=2000, dt=1e-4)
    time = transfer_curve("LIF", i, device=AnalogNeuron("time"), steps=2000, dt=1e-4)
    voltage = transfer_curve("LIF", i, device=AnalogNeuron("voltage"), steps=2000, dt=1e-4)
    assert (time - ideal).abs().sum() / ideal.sum() <= 1e-3
    assert (voltage - ideal).abs().sum() / ideal.sum() > 0.1


# ----------------------------------------------------------------------------- backends
def test_runs_on_the_analog_chip():
    """On the ideal analog chip, zero settings change nothing and compression changes the
    hidden population's spikes (fewer: the integration gain is ≤ 1)."""
    net, x = yinyang_net(), latency_input()
    snap_to_lsb(net)
    chip = {"name": "chip", "mismatch": False, "noise": False, "adc": "ideal"}
    with torch.no_grad():
        plain = net(x, backend=chip)["hidden"].spikes
        net.devices = Devices({"hidden": AnalogNeuron("voltage", compression=0.0)})
        assert torch.equal(net(x, backend=chip)["hidden"].spikes, plain)
        net.devices = Devices({"hidden": AnalogNeuron("voltage", compression=2.0)})
        analog = net(x, backend=chip)["hidden"].spikes
    assert plain.sum() > 50
    assert 0 < analog.sum() < plain.sum()


@pytest.mark.parametrize("backend", ["event", "xylo"])
def test_backends_without_a_step_loop_refuse_it(backend):
    net = yinyang_net(hidden=16)
    net.devices = Devices({"hidden": AnalogNeuron("time")})
    with torch.no_grad(), pytest.raises(DeviceModelError, match=backend):
        net(latency_input(batch=2), backend=backend)


@pytest.mark.parametrize(("node", "device", "match"), [
    ("fc1", AnalogNeuron("voltage"), "acts on a population"),
    ("output", AnalogNeuron("voltage"), "CubaLI has no threshold"),
    ("hidden", AnalogNeuron("voltage", leak_saturation=0.5), "synaptic current"),
])
def test_refused_where_it_cannot_act(node, device, match):
    net = yinyang_net(hidden=16)
    net.devices = Devices({node: device})
    with torch.no_grad(), pytest.raises(DeviceModelError, match=match):
        net(latency_input(batch=2))


@pytest.mark.parametrize(("options", "match"), [
    ({"domain": "current"}, "domain"),
    ({"compression": -0.1}, r"compression .* ≥ 0"),
    ({"leak_saturation": 0.0}, r"leak_saturation .* > 0"),
    ({"domain": "time", "resolution": 1.0}, r"resolution .* ≥ 0 and < 1"),
    ({"domain": "time", "resolution": -1e-3}, "resolution"),
    ({"domain": "time", "gain_error": -1.0}, "gain_error must be a finite number > -1 and < 1"),
    ({"domain": "time", "compression": 0.1}, "compression is an option of the voltage"),
    ({"resolution": 0.1}, "resolution is an option of the time"),
])
def test_bad_options(options, match):
    with pytest.raises(ParameterError, match=match):
        AnalogNeuron(**options)


def test_config_and_defaults():
    dev = build_device({"name": "analog_neuron", "domain": "time"})
    assert dev == AnalogNeuron("time", gain_error=2e-4, resolution=5e-5)
    assert AnalogNeuron() == AnalogNeuron("voltage", compression=0.5)


# ----------------------------------------------------------------------------- training
@pytest.mark.parametrize("device", [AnalogNeuron("voltage", leak_saturation=0.5),
                                    AnalogNeuron("time", resolution=1e-3)], ids=["voltage", "time"])
def test_training_through_the_device(device):
    """Gradients flow through x̃ (the time domain's rounding straight through): ∂x̃/∂x is
    the gain 1/(1 + α u²), resp. 1 + ε; and Adam on the weights *before* the analog neurons
    (fc1 only) lowers the readout loss over five steps."""
    p = LIFParameters(v_threshold=1.0)
    x = torch.tensor([3.0], requires_grad=True)
    s = LIFState(torch.tensor([0.5]), torch.zeros(1))
    device.current(x, s, CTX, p, p.coefficients(DT)).backward()
    gain = 1 / (1 + 0.5 * 0.25) if device.domain == "voltage" else 1 + device.gain_error
    assert x.grad.item() == pytest.approx(gain, rel=1e-6)

    net, x = small_net(LIF), spikes_in()
    net.devices = Devices({"hidden": device})
    target = torch.tensor([1.0, -1.0, 0.5])
    w0 = net.layers.fc1.weight.detach().clone()
    opt = torch.optim.Adam(net.layers.fc1.parameters(), lr=0.1)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        loss = ((net(x).output.v.mean((0, 1)) - target) ** 2).sum()
        loss.backward()
        assert net.layers.fc1.weight.grad.abs().sum() > 0
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
    assert not torch.equal(net.layers.fc1.weight, w0)
