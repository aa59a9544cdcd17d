"""Tests of the spike encoders and the encoder factory."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import spikeloop.data as data
from spikeloop.data import (
    ENCODERS,
    delta,
    direct,
    integrate,
    latency,
    log_latency,
    make_encoder,
    rate,
)
from spikeloop.errors import (
    ConfigError,
    NonFiniteError,
    ParameterError,
    ShapeError,
    TimeStepError,
    UnknownNameError,
)

LAT = {"dt": 1e-3, "duration": 0.01, "t_early": 0.001, "t_late": 0.009}


def spike_steps(raster: torch.Tensor) -> list[list[list[int]]]:
    """[T, B, F] raster → per (b, f) list of step indices holding a spike."""
    _, n_b, n_f = raster.shape
    return [
        [torch.nonzero(raster[:, b, f]).flatten().tolist() for f in range(n_f)] for b in range(n_b)
    ]


# ------------------------------------------------------------------------------------ latency


def test_latency_exact_positions() -> None:
    x = torch.tensor([[0.0, 0.5, 1.0], [0.25, 0.75, 0.125]])
    out = latency(x, **LAT)
    assert out.shape == (10, 2, 3) and out.dtype == torch.float32
    # t = 1 ms + x·8 ms → 1, 5, 9 ms; 3, 7, 2 ms
    assert spike_steps(out) == [[[1], [5], [9]], [[3], [7], [2]]]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_latency_one_spike_per_feature(n_b: int, n_f: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_b, n_f, generator=g, dtype=torch.float64)
    out = latency(x, dt=1e-4, duration=0.05, t_early=0.002, t_late=0.04)
    assert out.shape == (500, n_b, n_f)
    assert torch.all(out.sum(0) == 1)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    expected = [[round((0.002 + float(v) * 0.038) / 1e-4) for v in row] for row in x]
    assert out.argmax(0).tolist() == expected


def test_latency_bias_channel() -> None:
    x = torch.tensor([[0.0, 1.0, 0.5, 0.5], [1.0, 0.0, 0.2, 0.8], [0.3, 0.3, 0.3, 0.3]])
    out = latency(x, **LAT, bias_time=0.004)
    assert out.shape == (10, 3, 5)
    torch.testing.assert_close(out[..., :4], latency(x, **LAT))
    bias = out[..., 4]
    assert torch.all(bias.sum(0) == 1)
    assert torch.all(bias[4] == 1)
    out0 = latency(x, **LAT, bias_time=0.0)
    assert torch.all(out0[0, :, 4] == 1)


def test_latency_inverted_order_allowed() -> None:
    out = latency(torch.tensor([[0.0, 1.0]]), dt=1e-3, duration=0.01, t_early=0.008, t_late=0.002)
    assert spike_steps(out) == [[[8], [2]]]


@pytest.mark.parametrize(
    ("x", "kwargs", "exc", "word"),
    [
        (torch.tensor([0.1, 0.2]), {}, ShapeError, "rank"),
        (torch.zeros(1, 2, 3), {"bias_time": 0.0}, ShapeError, "bias channel"),
        (torch.tensor([[0.1, float("nan")]]), {}, NonFiniteError, "NaN"),
        (torch.tensor([[0.1, float("inf")]]), {}, NonFiniteError, "finite"),
        (torch.tensor([[0.1, 1.5]]), {}, ParameterError, "[0, 1]"),
        (torch.tensor([[-0.1, 0.5]]), {}, ParameterError, "[0, 1]"),
        (torch.tensor([[0.5]]), {"dt": 0.0}, TimeStepError, "dt"),
        (torch.tensor([[0.5]]), {"dt": -1e-3}, TimeStepError, "dt"),
        (torch.tensor([[0.5]]), {"duration": 0.0}, ParameterError, "duration"),
        (torch.tensor([[0.5]]), {"t_late": 0.0105}, ParameterError, "duration"),
        (torch.tensor([[0.5]]), {"t_early": -0.001}, ParameterError, "t_early"),
        (torch.tensor([[0.5]]), {"bias_time": 0.02}, ParameterError, "bias_time"),
    ],
)
def test_latency_errors(x, kwargs, exc, word) -> None:
    with pytest.raises(exc) as info:
        latency(x, **{**LAT, **kwargs})
    assert word in str(info.value)


def test_latency_error_names_limit() -> None:
    with pytest.raises(ParameterError) as info:
        latency(torch.tensor([[0.5]]), **{**LAT, "t_late": 0.012})
    msg = str(info.value)
    assert "step 12" in msg and "T = 10" in msg


# -------------------------------------------------------------------------------- log_latency


def test_log_latency_matches_formula() -> None:
    tau, theta, dt = 0.01, 0.25, 1e-4
    xs = [0.0, 0.2, 0.25, 0.5, 0.8, 1.0, 0.2501]
    out = log_latency(torch.tensor([xs]), dt=dt, duration=0.05, tau=tau, threshold=theta)
    assert out.shape == (500, 1, len(xs))
    steps = spike_steps(out)[0]
    for v, got in zip(xs, steps, strict=True):
        if v > theta and round(tau * math.log(v / (v - theta)) / dt) < 500:
            assert got == [round(tau * math.log(v / (v - theta)) / dt)]
        else:
            assert got == []
    # hand values: tau·ln 2 = 6.93 ms → 69; tau·ln(0.8/0.55) = 3.75 ms → 37; tau·ln(4/3) → 29
    assert steps[3:6] == [[69], [37], [29]]
    assert steps[6] == []  # t = 78 ms lies after the 50 ms window


def test_log_latency_monotone_and_errors() -> None:
    x = torch.linspace(0.3, 1.0, 50).unsqueeze(0)
    out = log_latency(x, dt=1e-4, duration=0.1, tau=0.01, threshold=0.25)
    t_idx = out.argmax(0)[0]
    assert torch.all(out.sum(0) == 1)
    assert torch.all(t_idx[1:] <= t_idx[:-1])  # stronger input fires earlier
    with pytest.raises(ParameterError, match="threshold"):
        log_latency(x, dt=1e-4, duration=0.1, tau=0.01, threshold=1.0)
    with pytest.raises(ParameterError, match="tau"):
        log_latency(x, dt=1e-4, duration=0.1, tau=0.0, threshold=0.5)
    with pytest.raises(ShapeError, match="rank"):
        log_latency(x[0], dt=1e-4, duration=0.1, tau=0.01, threshold=0.5)


# ------------------------------------------------------------------------------------- rate


def test_rate_bernoulli_mean_within_binomial_tolerance() -> None:
    x = torch.tensor([[0.0, 0.25, 0.5, 1.0]]).repeat(50, 1)
    g = torch.Generator().manual_seed(0)
    out = rate(x, dt=1e-3, duration=2.0, max_rate=100.0, generator=g)
    assert out.shape == (2000, 50, 4)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    n = 2000 * 50
    for f, p in enumerate([0.0, 0.025, 0.05, 0.1]):
        mean = out[..., f].mean().item()
        # 5 sigma of the mean of n Bernoulli(p) trials
        assert abs(mean - p) <= 5 * math.sqrt(p * (1 - p) / n), (f, mean, p)
    assert out[..., 0].sum() == 0


def test_rate_p_equal_one_fires_every_step() -> None:
    out = rate(torch.tensor([[1.0, 0.0]]), dt=1e-3, duration=0.01, max_rate=1000.0)
    assert torch.all(out[:, 0, 0] == 1) and torch.all(out[:, 0, 1] == 0)


def test_rate_deterministic_with_seeded_generator() -> None:
    x = torch.full((3, 4), 0.5)
    kw = {"dt": 1e-3, "duration": 0.2, "max_rate": 200.0}
    a = rate(x, **kw, generator=torch.Generator().manual_seed(5))
    b = rate(x, **kw, generator=torch.Generator().manual_seed(5))
    c = rate(x, **kw, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    pa = rate(x, **kw, mode="poisson", generator=torch.Generator().manual_seed(5))
    pb = rate(x, **kw, mode="poisson", generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(pa, pb)


def test_rate_poisson_mean() -> None:
    x = torch.tensor([[0.0, 0.5, 1.0]]).repeat(100, 1)
    g = torch.Generator().manual_seed(1)
    out = rate(x, dt=1e-3, duration=0.5, max_rate=3000.0, mode="poisson", generator=g)
    assert out.shape == (500, 100, 3) and out.dtype == torch.float32
    assert torch.all(out == out.round()) and torch.all(out >= 0)
    assert out.max() > 1  # counts, not 0/1
    n = 500 * 100
    for f, lam in enumerate([0.0, 1.5, 3.0]):
        mean = out[..., f].mean().item()
        assert abs(mean - lam) <= 5 * math.sqrt(lam / n) + 1e-12, (f, mean, lam)


def test_rate_errors() -> None:
    x = torch.full((2, 2), 0.5)
    with pytest.raises(ParameterError) as info:
        rate(x, dt=1e-3, duration=0.1, max_rate=2000.0)
    assert "exceeds the limit 1" in str(info.value)
    with pytest.raises(ParameterError, match="mode"):
        rate(x, dt=1e-3, duration=0.1, max_rate=10.0, mode="uniform")
    with pytest.raises(ParameterError, match="max_rate"):
        rate(x, dt=1e-3, duration=0.1, max_rate=-1.0)
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        rate(x + 1, dt=1e-3, duration=0.1, max_rate=10.0)
    with pytest.raises(NonFiniteError, match="NaN"):
        rate(x * float("nan"), dt=1e-3, duration=0.1, max_rate=10.0)
    with pytest.raises(ShapeError, match="rank"):
        rate(x[0], dt=1e-3, duration=0.1, max_rate=10.0)
    # poisson has no p <= 1 limit
    assert rate(x, dt=1e-3, duration=0.01, max_rate=2000.0, mode="poisson").shape == (10, 2, 2)


# ------------------------------------------------------------------------------------ delta


def _col(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 1, 1)


def test_delta_hand_computed_ramp() -> None:
    s = _col([0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.5, -0.25, -0.25])
    # ref: 0 → (e=.5: +1) .5 → (e=.5: +1) 1 → (e=-.5: -1) .5 → (e=-.75: -1) 0
    expected = [0, 0, 1, 0, 1, 0, -1, -1, 0]
    assert delta(s, threshold=0.5).flatten().tolist() == expected


def test_delta_multiple_crossings_one_event_per_step() -> None:
    # jump of 3.2 θ: one event per step, the reference catching up over 3 steps
    s = _col([0.0, 1.6, 1.6, 1.6, 1.6, 0.0, 0.0, 0.0, 0.0])
    out = delta(s, threshold=0.5).flatten().tolist()
    assert out == [0, 1, 1, 1, 0, -1, -1, -1, 0]


def test_delta_sine_reconstruction_and_split() -> None:
    n_t, theta = 400, 0.08
    t = torch.arange(n_t, dtype=torch.float64).reshape(-1, 1, 1) * 1e-3
    amp = torch.tensor([[0.5, 1.0, 2.0], [1.0, 0.2, 1.5]], dtype=torch.float64)
    phase = torch.tensor([[0.0, 1.0, 2.0], [0.5, 3.0, 4.0]], dtype=torch.float64)
    s = amp * torch.sin(2 * math.pi * 5.0 * t + phase) + 0.3
    assert (s[1:] - s[:-1]).abs().max() <= theta  # at most one crossing per step
    out = delta(s, threshold=theta)
    assert out.shape == (n_t, 2, 3)
    assert set(out.unique().tolist()) <= {-1.0, 0.0, 1.0}
    recon = s[0] + theta * torch.cumsum(out, dim=0)
    assert (s - recon).abs().max() < theta
    assert out.abs().sum() > 50

    sp = delta(s, threshold=theta, split=True)
    assert sp.shape == (n_t, 2, 6)
    assert set(sp.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(sp[..., :3], (out > 0).double())
    torch.testing.assert_close(sp[..., 3:], (out < 0).double())
    torch.testing.assert_close(sp[..., :3] - sp[..., 3:], out)


def test_delta_errors() -> None:
    with pytest.raises(ShapeError, match="rank"):
        delta(torch.zeros(5, 3), threshold=0.1)
    with pytest.raises(NonFiniteError, match="NaN"):
        delta(_col([0.0, float("nan")]), threshold=0.1)
    with pytest.raises(ParameterError, match="threshold"):
        delta(_col([0.0, 1.0]), threshold=0.0)


# ---------------------------------------------------------------------------------- factory


def test_registry_and_make_encoder() -> None:
    assert ENCODERS.names() == ["delta", "direct", "integrate", "latency", "log_latency", "rate"]
    x = torch.tensor([[0.2, 0.9]])
    enc = make_encoder("latency", **LAT, bias_time=0.0)
    torch.testing.assert_close(enc(x), latency(x, **LAT, bias_time=0.0))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    r = make_encoder("rate", dt=1e-3, duration=0.1, max_rate=50.0, generator=g1)
    torch.testing.assert_close(r(x), rate(x, dt=1e-3, duration=0.1, max_rate=50.0, generator=g2))
    assert all(hasattr(data, name) for name in data.__all__)
    assert {"ENCODERS", "make_encoder", "direct", "rate", "latency", "SHD", "read_idx",
            "find"} <= set(data.__all__)


def test_direct_repeats_the_features_as_a_current_without_copying() -> None:
    x = torch.rand(3, 1, 4, 4)
    out = direct(x, dt=1e-3, duration=5e-3, gain=2.0)
    assert out.shape == (5, 3, 1, 4, 4)
    assert torch.equal(out, (2 * x).expand(5, 3, 1, 4, 4))
    assert direct(x, dt=1e-3, duration=5e-3).stride(0) == 0  # a view: memory of one step
    with pytest.raises(ParameterError, match="gain"):
        direct(x, dt=1e-3, duration=5e-3, gain=0.0)
    with pytest.raises(ParameterError, match=r"x must lie in \[0, 1\]"):
        direct(x + 1, dt=1e-3, duration=5e-3)
    with pytest.raises(ShapeError, match="rank ≥ 2"):
        direct(torch.rand(4), dt=1e-3, duration=5e-3)
    with pytest.raises(ShapeError, match="bias channel"):
        latency(torch.rand(2, 1, 2, 2), dt=1e-3, duration=5e-3, t_early=0.0, t_late=3e-3,
                bias_time=0.0)


def test_make_encoder_errors() -> None:
    with pytest.raises(UnknownNameError) as info:
        make_encoder("burst", dt=1e-3)
    assert "latency" in str(info.value) and "burst" in str(info.value)
    with pytest.raises(ConfigError) as info:
        make_encoder("latency", **LAT, tau=1.0)
    assert "tau" in str(info.value) and "t_early" in str(info.value)
    with pytest.raises(ConfigError) as info:
        make_encoder("log_latency", dt=1e-3, duration=0.1, tau=0.01)
    assert "missing" in str(info.value) and "threshold" in str(info.value)


def test_integrate_equals_integrate_and_fire_input_neurons() -> None:
    # the closed form against the neurons it stands for: v += g x, spike at v ≥ 1, v -= 1
    # (values on a 1/255 grid, as pixels, and float64 so the loop's sums are exact enough)
    x = torch.randint(0, 256, (4, 30), generator=torch.Generator().manual_seed(0)).double() / 255
    for gain in (1.0, 0.5, 2.5):
        got = integrate(x, dt=1e-3, duration=20e-3, gain=gain)
        v, want = torch.zeros_like(x), []
        for _ in range(20):
            v = v + gain * x
            z = torch.floor(v + 1e-9)  # spikes of this step (several where g x > 1)
            v = v - z
            want.append(z)
        assert torch.equal(got, torch.stack(want)), gain
        # T g x spikes up to rounding, none for x = 0, regular trains
        assert (got.sum(0) - 20 * gain * x).abs().max() < 1
    assert torch.equal(integrate(torch.tensor([[0.25]]), dt=1e-3, duration=8e-3)[:, 0, 0],
                       torch.tensor([0., 0., 0., 1., 0., 0., 0., 1.]))
    with pytest.raises(ParameterError, match="gain"):
        integrate(x, dt=1e-3, duration=2e-3, gain=0.0)
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        integrate(x + 1, dt=1e-3, duration=2e-3)
