"""Golden trajectories and properties of the pure step functions."""

import math

import pytest
import torch

from spikeloop.dynamics import (
    AdaptiveLIFParameters,
    AdaptiveLIFState,
    ArcTan,
    CubaLIFParameters,
    CubaLIFState,
    CubaLIParameters,
    CubaLIState,
    FastSigmoid,
    IFParameters,
    LIFParameters,
    LIFState,
    LIParameters,
    LIState,
    SuperSpike,
    Triangle,
    adaptive_lif_step,
    cuba_li_step,
    cuba_lif_step,
    current_gain,
    if_step,
    li_step,
    lif_step,
    make_surrogate,
    spike,
)
from spikeloop.errors import ConfigError, ParameterError, TimeStepError, UnknownNameError

SG = SuperSpike()


@pytest.fixture(autouse=True)
def float64():
    """Golden comparisons in double precision; restored after each test."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def run_lif(p, x, dt, method="exact"):
    c = p.coefficients(dt, method)
    s = LIFState(torch.zeros(1), torch.zeros(1))
    zs, vs = [], []
    for x_t in x:
        z, v, s = lif_step(torch.tensor([x_t]), s, p, c, SG)
        zs.append(float(z))
        vs.append(float(v))
    return zs, vs


def test_lif_constant_current_spikes_at_analytic_time():
    tau, dt, current = 20e-3, 1e-4, 1.5
    p = LIFParameters(tau_mem=tau, v_threshold=1.0, v_reset=0.0, r=1.0)
    zs, vs = run_lif(p, [current] * 2000, dt)
    t_star = tau * math.log(current / (current - 1.0))  # v(t) = rI(1 − e^{−t/τ}) reaches 1
    first = zs.index(1.0)
    # step k ends at (k+1)·dt: the first grid time at or after t*
    assert (first + 1) * dt == pytest.approx(math.ceil(t_star / dt) * dt)
    # membrane on the grid equals the analytic solution before the first spike
    for k in range(first):
        assert vs[k] == pytest.approx(current * (1 - math.exp(-(k + 1) * dt / tau)), rel=1e-10)
    # reset to 0 makes the train periodic with the same period
    spikes = [k for k, z in enumerate(zs) if z]
    assert len(spikes) > 3
    assert set(torch.diff(torch.tensor(spikes)).tolist()) == {first + 1}


def test_lif_euler_follows_euler_recurrence():
    tau, dt = 10e-3, 1e-3
    p = LIFParameters(tau_mem=tau, v_threshold=100.0, v_leak=0.2, r=2.0)
    x = [0.5, 1.0, 0.0, -0.3, 0.7]
    _, vs = run_lif(p, x, dt, method="euler")
    v = 0.0  # the state starts at 0, not at v_leak
    for k, x_t in enumerate(x):
        v = v + dt / tau * (0.2 - v + 2.0 * x_t)
        assert vs[k] == pytest.approx(v, rel=1e-12)


@pytest.mark.parametrize("tau_syn", [5e-3, 10e-3])
def test_cuba_li_response_to_one_spike_is_closed_form(tau_syn):
    tau_mem, dt, w, r = 10e-3, 1e-4, 0.8, 1.5
    p = CubaLIParameters(tau_mem=tau_mem, tau_syn=tau_syn, r=r)
    c = p.coefficients(dt)
    s = CubaLIState(torch.zeros(1), torch.zeros(1))
    vs = []
    for k in range(400):
        v, s = cuba_li_step(torch.tensor([w if k == 0 else 0.0]), s, c)
        vs.append(float(v))
    for k, v in enumerate(vs):
        t = (k + 1) * dt
        if tau_syn == tau_mem:
            expected = r * w * t / tau_mem * math.exp(-t / tau_mem)
        else:
            expected = (
                r * w * tau_syn / (tau_syn - tau_mem)
                * (math.exp(-t / tau_syn) - math.exp(-t / tau_mem))
            )
        assert v == pytest.approx(expected, rel=1e-9, abs=1e-14)


def test_li_response_to_current_pulse_is_closed_form():
    tau, dt, amp = 8e-3, 1e-3, 2.0
    p = LIParameters(tau_mem=tau, v_leak=0.1, r=0.5)
    c = p.coefficients(dt)
    s = LIState(torch.full((1,), 0.1))
    on = 5
    for k in range(20):
        v, s = li_step(torch.tensor([amp if k < on else 0.0]), s, c)
        t = (k + 1) * dt
        if k < on:
            expected = 0.1 + 0.5 * amp * (1 - math.exp(-t / tau))
        else:
            peak = 0.5 * amp * (1 - math.exp(-on * dt / tau))
            expected = 0.1 + peak * math.exp(-(t - on * dt) / tau)
        assert float(v) == pytest.approx(expected, rel=1e-12)


def test_cuba_lif_spikes_when_the_psp_crosses_threshold():
    tau_mem, tau_syn, dt, w = 10e-3, 5e-3, 1e-5, 6.0
    p = CubaLIFParameters(tau_mem=tau_mem, tau_syn=tau_syn, v_threshold=1.0)
    c = p.coefficients(dt)
    s = CubaLIFState(torch.zeros(1), torch.zeros(1), torch.zeros(1))
    first = None
    for k in range(2000):
        z, _, s = cuba_lif_step(torch.tensor([w if k == 0 else 0.0]), s, p, c, SG)
        if z.item():
            first = (k + 1) * dt
            break

    def psp(t):
        return w * tau_syn / (tau_syn - tau_mem) * (math.exp(-t / tau_syn) - math.exp(-t / tau_mem))

    lo, hi = 0.0, 5e-3  # bisection on the rising flank of the closed form
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if psp(mid) < 1.0 else (lo, mid)
    assert first is not None
    assert first - dt < hi <= first


def test_refractory_period_clamps_membrane_and_blocks_spikes():
    dt, t_ref = 1e-3, 3e-3
    p = LIFParameters(tau_mem=5e-3, v_threshold=1.0, v_reset=-0.2, t_refrac=t_ref, r=1.0)
    zs, vs = run_lif(p, [50.0] * 30, dt)
    spikes = [k for k, z in enumerate(zs) if z]
    # huge input: fires every step it is allowed to, so the period is 1 + refractory steps
    assert spikes[0] == 0
    assert set(torch.diff(torch.tensor(spikes)).tolist()) == {1 + round(t_ref / dt)}
    for k in spikes:
        for j in range(k + 1, min(k + 1 + round(t_ref / dt), 30)):
            assert vs[j] == pytest.approx(-0.2)


def test_reset_modes():
    dt = 1e-3
    x = torch.tensor([30.0])
    c_sub = LIFParameters(tau_mem=10e-3, reset="subtract", v_reset=0.0).coefficients(dt)
    p_sub = LIFParameters(tau_mem=10e-3, reset="subtract", v_reset=0.0)
    z, v, s = lif_step(x, LIFState(torch.zeros(1), torch.zeros(1)), p_sub, c_sub, SG)
    assert z.item() == 1.0 and s.v.item() == pytest.approx(v.item() - 1.0)
    p_val = LIFParameters(tau_mem=10e-3, reset="value", v_reset=0.25)
    z, v, s = lif_step(x, LIFState(torch.zeros(1), torch.zeros(1)), p_val,
                       p_val.coefficients(dt), SG)
    assert z.item() == 1.0 and s.v.item() == pytest.approx(0.25)
    with pytest.raises(ParameterError, match="reset"):
        LIFParameters(reset="zero").coefficients(dt)


def test_adaptive_lif_membrane_under_ahp_current_is_closed_form():
    """No input, a(0) = 1: v(t) = −r τa/(τa − τm) (e^{−t/τa} − e^{−t/τm})."""
    tau_m, tau_a, dt, r = 10e-3, 80e-3, 1e-4, 1.3
    p = AdaptiveLIFParameters(tau_mem=tau_m, tau_adapt=tau_a, r=r, adapt_increment=0.0)
    c = p.coefficients(dt)
    s = AdaptiveLIFState(torch.zeros(1), torch.zeros(1), torch.ones(1), torch.zeros(1))
    for k in range(300):
        _, v, s = adaptive_lif_step(torch.zeros(1), s, p, c, SG)
        t = (k + 1) * dt
        expected = -r * tau_a / (tau_a - tau_m) * (math.exp(-t / tau_a) - math.exp(-t / tau_m))
        assert float(v) == pytest.approx(expected, rel=1e-9)
        assert float(s.a) == pytest.approx(math.exp(-t / tau_a), rel=1e-12)


def test_adaptive_lif_adaptation_current_and_slowing_rate():
    dt = 1e-3
    p = AdaptiveLIFParameters(tau_mem=10e-3, tau_syn=5e-3, tau_adapt=100e-3, adapt_increment=0.3)
    c = p.coefficients(dt)
    s = AdaptiveLIFState(*(torch.zeros(1) for _ in range(4)))
    zs, a_prev, rho = [], 0.0, math.exp(-dt / 100e-3)
    for _ in range(300):
        z, _, s = adaptive_lif_step(torch.tensor([0.5]), s, p, c, SG)
        zs.append(float(z))
        assert float(s.a) == pytest.approx(rho * a_prev + 0.3 * float(z), rel=1e-12)
        a_prev = float(s.a)
    spikes = [k for k, z in enumerate(zs) if z]
    isi = torch.diff(torch.tensor(spikes))
    assert len(spikes) > 4 and isi[-1] > isi[0]  # spike-frequency adaptation
    # without adaptation the same neuron is regular
    p0 = AdaptiveLIFParameters(tau_mem=10e-3, tau_syn=5e-3, adapt_increment=0.0)
    s = AdaptiveLIFState(*(torch.zeros(1) for _ in range(4)))
    zs0 = []
    for _ in range(300):
        z, _, s = adaptive_lif_step(torch.tensor([0.5]), s, p0, p0.coefficients(dt), SG)
        zs0.append(float(z))
    assert sum(zs0) > sum(zs)


@pytest.mark.parametrize(
    ("reset", "expected"),
    [("value", [0, 0, 0, 1, 0, 0, 0, 1]), ("subtract", [0, 0, 0, 1, 0, 0, 1, 0])],
)
def test_if_integrates_without_leak(reset, expected):
    p = IFParameters(v_threshold=1.0, r=0.3, reset=reset)
    c = p.coefficients(1e-3)
    s = LIFState(torch.zeros(1), torch.zeros(1))
    out = []
    for _ in range(8):
        z, v, s = if_step(torch.tensor([1.0]), s, p, c, SG)
        out.append((float(z), float(v)))
    assert [z for z, _ in out] == expected
    assert out[2][1] == pytest.approx(0.9) and out[3][1] == pytest.approx(1.2)


def test_current_gain_equals_the_defining_formula():
    tau_c, tau_m, dt = 5e-3, 10e-3, 1e-3
    expected = tau_c / (tau_c - tau_m) * (math.exp(-dt / tau_c) - math.exp(-dt / tau_m))
    assert float(current_gain(tau_c, tau_m, dt, "exact")) == pytest.approx(expected, rel=1e-12)
    assert float(current_gain(5e-3, 10e-3, 1e-3, "euler")) == pytest.approx(0.1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gap", [0.0, 1e-7, 2e-6, 1e-5, 1e-3, 0.5])
def test_current_gain_accurate_near_equal_time_constants(dtype, gap):
    """No cancellation when τ_c ≈ τ_m, in float32 too (the naive form loses ~4 % at 2e-6)."""
    dt = 1e-3
    tau_m = torch.tensor(10e-3, dtype=dtype)
    tau_c = torch.tensor(10e-3 * (1 + gap), dtype=dtype)
    tm, tc = float(tau_m), float(tau_c)  # the values the function really sees
    u = dt * (1 / tm - 1 / tc)  # reference in double precision, g = (dt/τm) β (e^u − 1)/u
    expected = dt / tm * math.exp(-dt / tm) * (math.expm1(u) / u if u else 1.0)
    rel = 1e-6 if dtype == torch.float32 else 1e-12
    assert float(current_gain(tau_c, tau_m, dt, "exact")) == pytest.approx(expected, rel=rel)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (LIFParameters(tau_mem=1e-3), "tau_mem"),
        (CubaLIFParameters(tau_syn=0.5e-3), "tau_syn"),
        (AdaptiveLIFParameters(tau_adapt=1e-4), "tau_adapt"),
    ],
)
def test_dt_not_smaller_than_time_constants_is_an_error(params, match):
    with pytest.raises(TimeStepError, match=match):
        params.coefficients(1e-3)


def test_bad_dt_and_non_finite_parameters():
    with pytest.raises(TimeStepError, match="dt"):
        LIFParameters().coefficients(-1e-3)
    with pytest.raises(ParameterError, match="v_threshold"):
        LIFParameters(v_threshold=float("nan")).coefficients(1e-3)
    with pytest.raises(ParameterError, match="method"):
        LIFParameters().coefficients(1e-3, "rk4")
    with pytest.raises(ParameterError, match="rounds to 0 steps"):
        LIFParameters(t_refrac=0.2e-3).coefficients(1e-3)


# ----------------------------------------------------------------------------- surrogates
@pytest.mark.parametrize(
    ("surrogate", "at0", "x", "value"),
    [
        (SuperSpike(beta=10.0), 1.0, 0.1, 1 / (1 + 1.0) ** 2),
        (FastSigmoid(slope=25.0), 12.5, 0.04, 12.5 / (1 + 1.0) ** 2),
        (ArcTan(alpha=2.0), 1.0, 1 / math.pi, 1.0 / 2),
        (Triangle(beta=2.0), 2.0, 0.25, 1.0),
    ],
)
def test_surrogate_values_and_spike_gradient(surrogate, at0, x, value):
    xs = torch.tensor([0.0, x, -x], requires_grad=True)
    z = spike(xs, surrogate)
    assert z.tolist() == [0.0, 1.0, 0.0]
    z.sum().backward()
    assert xs.grad.tolist() == pytest.approx([at0, value, value])


@pytest.mark.parametrize("surrogate", [FastSigmoid(), ArcTan(), Triangle(beta=3.0)])
def test_normalised_surrogates_integrate_to_one(surrogate):
    x = torch.linspace(-2000, 2000, 4_000_001)
    integral = torch.trapezoid(surrogate.derivative(x), x)
    assert float(integral) == pytest.approx(1.0, abs=2e-3)


def test_make_surrogate_and_errors():
    assert make_surrogate({"name": "triangle", "beta": 4.0}) == Triangle(beta=4.0)
    assert make_surrogate("arctan") == ArcTan()
    with pytest.raises(UnknownNameError, match="sigmoid5"):
        make_surrogate("sigmoid5")
    with pytest.raises(ParameterError, match="beta"):
        SuperSpike(beta=-1.0)
    with pytest.raises(ConfigError, match="'superspike' takes no parameter 'slope'; it takes beta"):
        make_surrogate({"name": "superspike", "slope": 3})
