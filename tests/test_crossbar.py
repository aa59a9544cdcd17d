"""The crossbar device model: the ideal crossbar is the ideal network (sim and event), each
non-ideality against its specification (fixed seeds, stated tolerances), hand-computed and
circuit-solved IR drop, programming instances, gradients and training, and its errors."""

import math
import re

import pytest
import torch

from spikeloop.backends import SimBackend
from spikeloop.devices import DEVICE_MODELS, Crossbar, Devices, build_device
from spikeloop.errors import DeviceModelError, ParameterError
from spikeloop.network import Network
from spikeloop.nn import LIF, Conv2d, CubaLI, CubaLIF, Input, Linear
from test_event import dense_input, events, make_net

F64 = torch.float64
IDEAL = {"levels": None, "program_std": 0.0, "read_std": 0.0, "stuck_on": 0.0,
         "stuck_off": 0.0, "nu": 0.0, "ir_drop": 0.0}

SIM = SimBackend()
"""The backend the realisations are for."""


def ctx(instance=0, t=0.0, seed=0):
    """A fresh context (fresh programming generator) of node 'fc'."""
    return Devices(instance=instance, t=t, seed=seed).context("fc")


def realised(net, name="fc1"):
    return net.devices.realise(net.graph, SIM)[name].params["weight"]


def uniform(shape, low=-1.0, high=1.0, seed=0):
    g = torch.Generator().manual_seed(1000 + seed)  # (a stream no device context uses)
    return low + (high - low) * torch.rand(shape, generator=g, dtype=F64)


# ----------------------------------------------------------------------------- ideal devices
@pytest.mark.parametrize("differential", [True, False])
def test_an_ideal_crossbar_runs_the_ideal_network_on_sim_and_event(differential):
    net = make_net(1e-3)
    x = dense_input(1e-3)
    with torch.no_grad():
        ref, ref_e = net(x), net(events(), backend="event")
        model = Crossbar(differential=differential, **IDEAL)
        net.devices = Devices({"fc1": model, "fc2": model})
        for name in ("fc1", "fc2"):  # the map reproduces w up to rounding
            torch.testing.assert_close(realised(net, name), net.layers[name].weight,
                                       rtol=0, atol=1e-6)
        out, out_e = net(x), net(events(), backend="event")
    assert int(ref["hidden"].spikes.sum()) > 0
    assert torch.equal(out["hidden"].spikes, ref["hidden"].spikes)
    for k in ("hidden", "output"):
        torch.testing.assert_close(out[k].v, ref[k].v, rtol=0, atol=1e-12)
    assert torch.isfinite(ref_e["hidden"].times).sum() > 0
    torch.testing.assert_close(out_e["hidden"].times, ref_e["hidden"].times, rtol=0, atol=1e-12)
    torch.testing.assert_close(out_e["output"].v_max, ref_e["output"].v_max, rtol=0, atol=1e-12)


def test_registered_and_built_from_a_config():
    assert DEVICE_MODELS.get("crossbar") is Crossbar
    assert build_device({"name": "crossbar", "levels": 16}) == Crossbar(levels=16)
    pcm = Crossbar.pcm(levels=32)
    assert (pcm.g_max, pcm.t0, pcm.levels, pcm.drift_compensation) == (25.0, 20.0, 32, True)


# ----------------------------------------------------------------------------- statistics
def test_programming_variation_has_the_specified_std():
    sigma = 0.03
    w = uniform((400, 500))
    model = Crossbar(w_max=1.0, g_min=2.0, program_std=sigma)
    g = model.conductances(w, ctx())
    target = Crossbar(w_max=1.0, g_min=2.0).conductances(w, ctx())
    dg = model.g_max - model.g_min
    inside = (target > model.g_min + 5 * sigma * dg) & (target < model.g_max - 5 * sigma * dg)
    assert int(inside.sum()) > 100_000  # away from the bounds: no clipping
    err = ((g - target) / dg)[inside]
    assert abs(float(err.std()) / sigma - 1) < 0.05
    assert abs(float(err.mean())) < 0.05 * sigma
    assert float(g.min()) >= model.g_min and float(g.max()) <= model.g_max  # the device's range


def test_read_noise_per_inference_has_the_specified_variance():
    sigma, w_max = 0.02, 2.0
    w = uniform((300, 300), -w_max, w_max)
    model = Crossbar(w_max=w_max, read_std=sigma)
    dw = model.weights(w, ctx()) - Crossbar(w_max=w_max).weights(w, ctx())
    # two devices per weight, each σ·Δg µS, w_max/Δg weight per µS: var = 2 (σ w_max)²
    assert abs(float(dw.var()) / (2 * (sigma * w_max) ** 2) - 1) < 0.05
    single = Crossbar(w_max=w_max, read_std=sigma, differential=False)
    dw = single.weights(w, ctx()) - Crossbar(w_max=w_max, differential=False).weights(w, ctx())
    assert abs(float(dw.var()) / (2 * sigma * w_max) ** 2 - 1) < 0.05  # one device, 2w_max/Δg


def test_read_noise_per_step_leaves_weights_and_silent_steps_and_is_fresh_every_step():
    model = Crossbar(w_max=1.0, read_std=0.05, read="step")
    assert model.per_step and not Crossbar(read_std=0.05).per_step
    w, c = uniform((4, 6), seed=1), ctx()
    w_dev = model.weights(w, c)  # noise-free weights in this mode
    torch.testing.assert_close(w_dev, w, rtol=0, atol=1e-12)
    x = uniform((200, 25, 6), 0.0, 1.0, seed=2) * (uniform((200, 25, 6), seed=3) < 0)
    y = torch.zeros(200, 25, 4, dtype=F64)
    noise = model.output(x, y, w_dev, c)
    silent = x.pow(2).sum(-1) == 0
    assert bool(silent.any()) and bool((~silent).any())
    assert torch.equal(noise[silent], y[silent])  # silent: exact
    assert bool((noise[~silent] != 0).all())
    assert not torch.equal(noise, model.output(x, y, w_dev, c))  # fresh at every call / step


def read_mode_outputs(options, w, x, n, t=20.0, seed=1):
    """``n`` outputs ``y = w̃ x`` of one programming instance, each from an independent run
    (read="inference": a fresh read of the array; "step": one step of fresh output noise),
    ``{mode: [n, out]}``."""
    out = {}
    for mode in ("inference", "step"):
        model, devices = Crossbar(read=mode, **options), Devices(instance=0, t=t, seed=seed)
        ys = []
        for _ in range(n):
            c = devices.context("fc")
            w_dev = model.weights(w, c)
            y = (w_dev @ x)[None, None]
            ys.append(model.output(x[None, None], y, w_dev, c)[0, 0] if model.per_step else
                      y[0, 0])
        out[mode] = torch.stack(ys)
    return out


@pytest.mark.parametrize(("differential", "compensate"),
                         [(True, False), (False, False), (True, True), (False, True)])
def test_read_noise_per_step_has_the_output_variance_of_per_inference_reads(differential,
                                                                            compensate):
    """Monte Carlo: per-step output noise has, per output, the variance of ``w̃ x`` over
    independent array reads of the same programmed devices (drift compensation included)."""
    n = 3000
    w, x = uniform((4, 200), seed=4), uniform((200,), 0.0, 1.0, seed=5)
    options = {"w_max": 1.0, "differential": differential, "read_std": 0.1,
               "program_std": 0.02, "nu": 0.05, "nu_std": 0.02,
               "drift_compensation": compensate}
    y = read_mode_outputs(options, w, x, n, t=1e4)
    ratio = y["step"].var(0) / y["inference"].var(0)
    # two independent variance estimates of n draws each: sd of log ratio = sqrt(4/n) = 0.037
    # per output; over the 4 outputs 0.018; 4.5 sd per output, 4 sd pooled
    assert float(ratio.log().abs().max()) < 4.5 * math.sqrt(4 / n)
    assert abs(float(ratio.log().mean())) < 4 * math.sqrt(4 / n) / 2


@pytest.mark.parametrize("differential", [True, False])
def test_drift_compensated_read_modes_agree_in_the_mean_output(differential):
    """The compensation factor comes from noisy reads in both modes: same mean output."""
    n = 3000
    w, x = uniform((8, 16), seed=6), uniform((16,), 0.0, 1.0, seed=7)
    options = {"w_max": 1.0, "differential": differential, "read_std": 0.2,
               "program_std": 0.02, "nu": 0.05, "nu_std": 0.02, "drift_compensation": True}
    y = read_mode_outputs(options, w, x, n, t=3600.0)
    diff = y["inference"].mean(0) - y["step"].mean(0)
    se = ((y["inference"].var(0) + y["step"].var(0)) / n).sqrt()
    assert float((diff / se).abs().max()) < 4.0  # 4 standard errors on each of 8 outputs


def test_stuck_devices_have_the_specified_fractions():
    n, p_on, p_off = 200_000, 0.1, 0.05
    w = uniform((n,), -0.9, 0.9)  # targets inside the range (one device per weight)
    g = Crossbar(w_max=1.0, differential=False, stuck_on=p_on, stuck_off=p_off).conductances(
        w, ctx())
    for value, p in ((25.0, p_on), (0.0, p_off)):
        frac = float((g == value).double().mean())
        assert abs(frac - p) < 4 * math.sqrt(p * (1 - p) / n)  # 4 binomial sd


def test_drift_exponent_is_recovered_by_a_log_log_fit_of_the_mean_conductance():
    nu = 0.06
    model = Crossbar(w_max=1.0, differential=False, nu=nu, nu_std=0.01)
    w = torch.ones(10_000, dtype=F64)  # all at g_max
    t = torch.logspace(math.log10(40.0), 4, 12, dtype=F64)
    mean = torch.stack([model.conductances(w, ctx(), float(s)).mean() for s in t])
    slope = torch.linalg.lstsq(torch.stack([torch.log(t), torch.ones_like(t)], 1),
                               torch.log(mean)[:, None]).solution[0, 0]
    assert abs(-float(slope) / nu - 1) < 0.02
    assert torch.equal(model.conductances(w, ctx(), 20.0), model.conductances(w, ctx(), 5.0))


def test_global_drift_compensation_leaves_the_lognormal_spread_of_drift():
    """Without read noise the drift factors f = (t/t0)^-ν, ν ~ N(ν0, σ²), are lognormal:
    compensated w̃/w = f/α⁻¹ has mean 1 and relative spread √(exp(σ² ln²(t/t0)) − 1)."""
    nu, nu_std, t = 0.05, 0.02, 1e5
    w = uniform((200, 200), 0.2, 1.0)  # positive: G⁻ = g_min = 0 does not drift
    drifting = Crossbar(w_max=1.0, nu=nu, nu_std=nu_std)
    log_t = math.log(t / drifting.t0)
    late = drifting.weights(w, ctx(t=t)) / w
    mean_f = math.exp(-nu * log_t + (nu_std * log_t) ** 2 / 2)  # E f (lognormal)
    sd_f = mean_f * math.sqrt(math.exp((nu_std * log_t) ** 2) - 1)
    n = w.numel()  # CLT tolerances: 5 standard errors
    assert abs(float(late.mean()) - mean_f) < 5 * sd_f / math.sqrt(n)
    fixed = Crossbar(w_max=1.0, nu=nu, nu_std=nu_std, drift_compensation=True)
    ratio = fixed.weights(w, ctx(t=t)) / w
    assert abs(float(ratio.mean()) - 1) < 5 * sd_f / mean_f / math.sqrt(n)
    assert abs(float(ratio.std()) / (sd_f / mean_f) - 1) < 5 / math.sqrt(2 * n)
    # without a spread of ν: the compensated weights are the weights
    torch.testing.assert_close(Crossbar(w_max=1.0, nu=nu, drift_compensation=True).weights(
        w, ctx(t=t)), w, rtol=1e-12, atol=0)


def folded_mean(mu, s):
    """E|μ + s ξ|, ξ ~ N(0, 1) (folded normal)."""
    z = mu / s
    phi = torch.exp(-z**2 / 2) / math.sqrt(2 * math.pi)
    return s * 2 * phi + mu * torch.erf(z / math.sqrt(2))


def test_global_drift_compensation_with_read_noise_scales_by_the_ratio_of_noisy_means():
    """α = mean|w + n₀| / mean|f w + n|, the means over noisy reads (folded normals):
    the compensated weights regress on w with slope f·α, computed here independently."""
    nu, sigma, t, n_inst = 0.05, 0.1, 1e5, 50
    w = uniform((60, 50))
    model = Crossbar(w_max=1.0, nu=nu, read_std=sigma, drift_compensation=True)
    f = (t / model.t0) ** -nu
    s = math.sqrt(2) * sigma  # two devices per weight, σ Δg each, w_max/Δg weight per µS
    slope = f * float(folded_mean(w, s).mean() / folded_mean(f * w, s).mean())
    slopes = [float((model.weights(w, ctx(instance=i, t=t, seed=i)) * w).sum() / w.pow(2).sum())
              for i in range(n_inst)]
    mean = sum(slopes) / n_inst
    se = math.sqrt(sum((v - mean) ** 2 for v in slopes) / (n_inst - 1) / n_inst)
    assert slope < 0.985  # under-compensated: noise inflates the drifted mean more
    assert abs(mean - slope) < 4 * se  # 4 standard errors of the mean over instances
    assert 4 * se < 0.3 * (1 - slope)  # (a tolerance well below the effect)


def test_levels_give_at_most_that_many_conductances():
    w = uniform((64, 64))
    g = Crossbar(levels=5, g_min=1.0).conductances(w, ctx())
    assert torch.unique(g).numel() <= 5
    grid = 1.0 + 24.0 * torch.arange(5, dtype=F64) / 4
    assert bool(torch.isclose(g[..., None], grid).any(-1).all())


@pytest.mark.parametrize("levels", [None, 3, 4, 5, 8, 16])
@pytest.mark.parametrize("differential", [True, False])
def test_zero_weights_read_zero_and_every_weight_within_half_a_level(levels, differential):
    w = torch.cat([torch.zeros(50, dtype=F64), uniform((950,), seed=8)]).reshape(20, 50)
    w_dev = Crossbar(w_max=1.0, levels=levels, differential=differential).weights(w, ctx())
    assert bool((w_dev[w == 0] == 0).all())
    step = 1.0 / (levels - 1) if levels else 0.0  # one level is 2 w_max/(L - 1) (single)
    half = step if not differential else step / 2  # differential: w_max/(L - 1) per level
    assert float((w_dev - w).abs().max()) <= half + 1e-12
    if levels:
        assert torch.unique(w_dev).numel() <= (levels if not differential else 2 * levels - 1)


def test_two_levels_are_refused_with_one_device_per_weight():
    with pytest.raises(ParameterError, match="Crossbar levels must be ≥ 3 with one device"):
        Crossbar(levels=2, differential=False)
    assert Crossbar(levels=2).levels == 2


# ----------------------------------------------------------------------------- IR drop
def test_ir_drop_hand_computed_2x2():
    # all devices at g_max (g = 1): row loads (min(o,o')+1 summed over o') = 2, 3;
    # column loads ((n - max(i,i')) summed over i') = 3, 2; a = 1 - r (row + col)
    w, r = torch.ones(2, 2, dtype=F64), 0.01
    g = Crossbar(ir_drop=r).conductances(w, ctx())
    a = torch.tensor([[1 - r * 5, 1 - r * 4], [1 - r * 6, 1 - r * 5]], dtype=F64)
    torch.testing.assert_close(g[0], 25.0 * a)
    torch.testing.assert_close(g[1], torch.zeros(2, 2, dtype=F64))  # G⁻ = g_min = 0


def test_ir_drop_of_a_conv_weight_is_that_of_its_matrix_and_a_vector_is_refused():
    w = uniform((3, 2, 2, 2), 0.0, 1.0, seed=9)
    model = Crossbar(w_max=1.0, ir_drop=1e-3)
    g = model.conductances(w, ctx())
    torch.testing.assert_close(g.reshape(2, 3, 8), model.conductances(w.reshape(3, 8), ctx()),
                               rtol=0, atol=0)
    assert float((g - Crossbar(w_max=1.0).conductances(w, ctx())).abs().max()) > 1e-3
    with pytest.raises(DeviceModelError, match=r"weight matrix \[out, in…\]; got a 1-D"):
        model.conductances(uniform((6,)), ctx())


def exact_currents(g, r):
    """Column currents of a crossbar (conductances g [out, in] / g_max, every row driven at 1,
    wire segments 1/r, columns sensed at virtual ground), by nodal analysis."""
    n_out, n_in = g.shape
    row = lambda i, o: i * n_out + o  # noqa: E731
    col = lambda i, o: n_in * n_out + i * n_out + o  # noqa: E731
    a = torch.zeros(2 * n_in * n_out, 2 * n_in * n_out, dtype=F64)
    b = torch.zeros(2 * n_in * n_out, dtype=F64)

    def link(p, q, c):
        a[p, p] += c
        if q is None:
            return
        a[q, q] += c
        a[p, q] -= c
        a[q, p] -= c

    for i in range(n_in):
        for o in range(n_out):
            link(row(i, o), row(i, o - 1) if o else None, 1 / r)  # driver: b below
            link(row(i, o), col(i, o), float(g[o, i]))
            link(col(i, o), col(i + 1, o) if i < n_in - 1 else None, 1 / r)  # last: ground
        b[row(i, 0)] = 1 / r
    v = torch.linalg.solve(a, b)
    return torch.stack([v[col(n_in - 1, o)] / r for o in range(n_out)])


def test_ir_drop_is_first_order_exact_against_the_circuit():
    w, r = uniform((3, 4), 0.0, 1.0, seed=3), 1e-3
    g = Crossbar(w_max=1.0, ir_drop=r).conductances(w, ctx())[0] / 25.0
    ideal, exact = w.sum(1), exact_currents(w, r)
    first = g.sum(1)
    effect, err = (ideal - exact).abs(), (first - exact).abs()
    assert float(effect.min()) > 2e-3  # a visible drop …
    assert float((err / effect).max()) < 0.03  # … which the first-order model gets to O(r²)


# ----------------------------------------------------------------------------- instances, runs
def small_net(model, seed=0):
    torch.manual_seed(seed)
    net = Network({"input": Input(6), "fc1": Linear(6, 8), "hidden": LIF(8),
                   "fc2": Linear(8, 2), "output": CubaLI(2)})
    with torch.no_grad():
        net.layers["fc1"].weight.mul_(6.0)  # a hidden layer that spikes
    net.devices = Devices({"fc1": model})
    return net


def test_programming_instances_and_read_noise():
    net = small_net(Crossbar(program_std=0.05, stuck_on=0.05, stuck_off=0.05))
    with torch.no_grad():
        first = realised(net)
        assert torch.equal(first, realised(net))  # same instance, same devices
        net.devices.program()
        assert not torch.equal(first, realised(net))  # a new pattern
        net.devices.program(0)
        assert torch.equal(first, realised(net))
        net.devices = Devices({"fc1": Crossbar(read_std=0.02)})
        assert not torch.equal(realised(net), realised(net))  # read noise: every run


def test_per_step_read_noise_acts_in_the_simulator():
    x = (torch.rand(30, 4, 6, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with torch.no_grad():
        ideal = small_net(Crossbar())(x)
        noisy = small_net(Crossbar(read_std=0.2, read="step"))(x)
    diff = (noisy["hidden"].v - ideal["hidden"].v).abs().amax((1, 2))
    assert bool((diff > 0).all())  # the hidden input perturbed at every step
    assert int(ideal["hidden"].spikes.sum()) > 0
    assert not torch.equal(noisy["hidden"].spikes, ideal["hidden"].spikes)


def test_gradients_go_straight_through_and_training_through_a_crossbar_learns():
    w = uniform((3, 4)).requires_grad_()
    out = Crossbar(levels=4, program_std=0.05).weights(w, ctx())
    (out * torch.arange(12.0, dtype=F64).reshape(3, 4)).sum().backward()
    torch.testing.assert_close(w.grad, torch.arange(12.0, dtype=F64).reshape(3, 4))

    net = small_net(Crossbar(levels=16, program_std=0.02, read_std=0.01), seed=1)
    x = (torch.rand(20, 8, 6, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    target = torch.tensor([1.0, -1.0])
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(40):
        loss = (net(x)["output"].v[-5:].mean((0, 1)) - target).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert min(losses[-5:]) < 0.2 * losses[0]
    assert net.layers["fc1"].weight.grad is not None


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("options", "names"), [
    ({"stuck_on": 1.5}, "stuck_on"), ({"stuck_off": -0.1}, "stuck_off"),
    ({"stuck_on": 0.6, "stuck_off": 0.6}, "stuck_on + stuck_off"),
    ({"program_std": -0.01}, "program_std"), ({"read_std": -1.0}, "read_std"),
    ({"nu_std": -0.01}, "nu_std"), ({"nu": -0.01}, "nu"), ({"ir_drop": -1e-3}, "ir_drop"),
    ({"levels": 1}, "levels"), ({"g_max": 5.0, "g_min": 5.0}, "g_max"),
    ({"g_min": -1.0}, "g_min"), ({"w_max": 0.0}, "w_max"), ({"t0": 0.0}, "t0"),
    ({"read": "always"}, "read"),
])
def test_invalid_options_raise_naming_the_option(options, names):
    with pytest.raises(ParameterError, match=f"Crossbar {re.escape(names)}"):
        Crossbar(**options)


def test_ir_drop_beyond_first_order_raises():
    with pytest.raises(ParameterError, match="first-order"):
        Crossbar(ir_drop=0.5).conductances(torch.ones(4, 4), ctx())


@pytest.mark.parametrize("backend", ["chip", "xylo", "event"])
def test_per_step_read_noise_is_refused_off_the_simulator(backend):
    net = small_net(Crossbar(read_std=0.01, read="step"))
    with pytest.raises(DeviceModelError, match="needs a backend that evaluates projections "
                       r"step by step .*\('sim' without checkpoint\)"):
        net(torch.zeros(5, 1, 6), backend=backend)


def test_per_step_read_noise_is_refused_with_checkpointed_windows():
    """A checkpointed window is simulated again in the backward pass: its per-step noise would
    be drawn anew, the gradient taken at other values than the forward pass's."""
    net = small_net(Crossbar(read_std=0.01, read="step"))
    with pytest.raises(DeviceModelError, match="cannot run on the 'sim' backend"):
        net(torch.zeros(5, 1, 6), backend={"name": "sim", "checkpoint": 2})


def test_refused_on_a_population_a_conv_per_step_and_a_negative_time():
    net = small_net(Crossbar())
    net.devices = Devices({"hidden": Crossbar()})
    with pytest.raises(DeviceModelError, match="acts on a projection"):
        net(torch.zeros(5, 1, 6))
    rec = Network({"input": Input(3), "fc": Linear(3, 4), "p": CubaLIF(4, recurrent=True)})
    rec.devices = Devices({"p.recurrent": Crossbar(read_std=0.1, read="step")})
    with pytest.raises(DeviceModelError, match="recurrent Linear"):
        rec(torch.zeros(5, 1, 3))
    conv = Network({"input": Input((1, 6, 6)), "conv": Conv2d(1, 2, 3), "p": LIF((2, 4, 4))})
    conv.devices = Devices({"conv": Crossbar(read_std=0.1, read="step")})
    with pytest.raises(DeviceModelError, match="is a Conv2d"):
        conv(torch.zeros(5, 1, 1, 6, 6))
    conv.devices = Devices({"conv": Crossbar(read_std=0.1, ir_drop=1e-3)})  # per run: fine
    assert conv(torch.ones(5, 1, 1, 6, 6))["p"].v.shape == (5, 1, 2, 4, 4)
    with pytest.raises(ParameterError, match="seconds since programming"):
        Devices({"fc1": Crossbar()}, t=-1)
