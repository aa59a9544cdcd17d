"""Adaptive (AHP) LIF neurons on the event backend (issue 17): b = 0 is the CUBA LIF bit for
bit, spikes converge to the dense simulator as dt → 0, the three-exponential threshold search
against a fine scan, a hand-computed neuron, EventProp gradients against central finite
differences, and the refusal of AdLIF."""

import math

import pytest
import torch

from spikeloop.backends import SpikeEvents
from spikeloop.backends.event.cuba import _advance, _first_crossing, _Neuron
from spikeloop.errors import ParameterError
from spikeloop.network import Network
from spikeloop.nn import AdaptiveLIF, AdLIF, CubaLI, CubaLIF, Input, Linear
from test_event import (  # the same input and checks
    F64,
    check_input_time_gradients,
    check_parameter_gradients,
    dense_input,
    events,
    spike_time_error,
)
from test_event_delays import _objective  # hidden spike times and the readout's maxima


def make_net(dt=1e-3, recurrent=False, t_refrac=0.0, readout="li", b=0.3, tau_adapt=30e-3,
             cuba=False, seed=1, w1=2.5):
    """An input → AdaptiveLIF(5) → readout network (``cuba``: the same with a CubaLIF)."""
    hidden = dict(dt=dt, recurrent=recurrent, t_refrac=t_refrac, tau_syn=5e-3)
    pop = (CubaLIF(5, **hidden) if cuba else
           AdaptiveLIF(5, **hidden, tau_adapt=tau_adapt, adapt_increment=b))
    out = CubaLI(2, dt=dt) if readout == "li" else CubaLIF(2, dt=dt, t_refrac=t_refrac)
    net = Network({"input": Input(3), "fc1": Linear(3, 5), "hidden": pop,
                   "fc2": Linear(5, 2), "output": out}).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.layers["fc1"].weight.copy_(torch.randn(5, 3, generator=g) + w1)
        net.layers["fc2"].weight.copy_(torch.randn(2, 5, generator=g) + 1.0)
        if recurrent:
            net.layers["hidden"].recurrent.weight.copy_(0.5 * torch.randn(5, 5, generator=g))
    return net


# ----------------------------------------------------------------------------- forward
@pytest.mark.parametrize("case", [{}, {"recurrent": True, "t_refrac": 1e-3, "readout": "lif"}])
def test_zero_increment_is_the_cuba_lif_bit_for_bit(case, monkeypatch):
    # both on the torch engine (adaptive populations always run there; CubaLIF would take the
    # native engine, equal to 1e-12 — tests/test_event_native.py)
    monkeypatch.setenv("SPIKELOOP_NATIVE", "0")
    results = []
    for cuba in (False, True):
        net = make_net(b=0.0, cuba=cuba, **case)
        out = net(events(), backend="event")
        loss, _ = _objective(net)
        loss.backward()
        results.append((out["hidden"].times, out["hidden"].v, out.output.v, loss,
                        *(p.grad for p in net.parameters())))
    assert int(torch.isfinite(results[0][0]).sum()) >= 15
    for adaptive, cuba in zip(*results, strict=True):
        assert torch.equal(adaptive, cuba)


@pytest.mark.parametrize("case", [{}, {"t_refrac": 2e-3}, {"recurrent": True}])
def test_spike_times_converge_to_the_dense_simulator_as_dt_shrinks(case):
    errors = []
    for dt in (5e-5, 1.25e-5, 6.25e-6):  # (coarser grids miss marginal late spikes)
        net = make_net(dt, b=0.6, w1=3.0, seed=2, **case)
        x = dense_input(dt)  # input times are multiples of every dt: same input on all grids
        with torch.no_grad():
            exact = net(x, backend="event")["hidden"].times
            dense = net(x, backend="sim")["hidden"].spikes
        err = spike_time_error(exact, dense, dt)
        errors.append(err)
        assert err <= 12 * dt
    assert errors[-1] < errors[0] / 2
    assert int(torch.isfinite(exact).sum()) >= 12
    # the adaptation matters here: without it the same network spikes more
    with torch.no_grad():
        plain = make_net(dt, b=0.0, w1=3.0, seed=2, **case)(x, backend="event")["hidden"].times
    assert int(torch.isfinite(plain).sum()) > int(torch.isfinite(exact).sum())


def test_threshold_search_finds_the_first_crossing_of_three_exponentials():
    """Against a scan of the closed form on a fine grid: 400 random states and time constants
    (some coinciding: the limits) resting below threshold, and 256 with a fast excitatory
    current, a slower AHP current and a leak above threshold, many of which rise, fall and
    rise again before they cross (``V̇`` changes sign twice)."""
    g = torch.Generator().manual_seed(3)
    m = 400
    tau = lambda: 2e-3 + 30e-3 * torch.rand(m, generator=g, dtype=F64)  # noqa: E731
    tau_mem, tau_syn, tau_adapt = tau(), tau(), tau()
    tau_syn[:40] = tau_mem[:40]
    tau_adapt[40:80] = tau_mem[40:80]
    tau_adapt[80:120] = tau_syn[80:120]
    tau_syn[120:140] = tau_adapt[120:140] = tau_mem[120:140]
    v0 = (1.0 - 3.0 * torch.rand(m, generator=g, dtype=F64)).clamp(max=0.999)
    i0 = 8.0 * torch.rand(m, generator=g, dtype=F64) - 2.0
    a0 = 8.0 * torch.rand(m, generator=g, dtype=F64) - 2.0
    v_leak = torch.zeros(m, dtype=F64)
    grid_i, grid_a = torch.meshgrid(torch.linspace(0, 30, 16, dtype=F64),
                                    torch.linspace(0, 30, 16, dtype=F64), indexing="ij")
    extra = lambda value: torch.full((256,), value, dtype=F64)  # noqa: E731
    tau_mem, tau_syn = torch.cat([tau_mem, extra(30e-3)]), torch.cat([tau_syn, extra(1e-3)])
    tau_adapt, v_leak = torch.cat([tau_adapt, extra(5e-3)]), torch.cat([v_leak, extra(1.5)])
    v0, i0 = torch.cat([v0, extra(0.0)]), torch.cat([i0, grid_i.flatten()])
    a0 = torch.cat([a0, grid_a.flatten()])
    m = len(v0)
    one = torch.ones(m, dtype=F64)
    c = _Neuron(tau_mem, tau_syn, v_leak, one, one, 0 * one, 0.0, True, tau_adapt, 0.5 * one)
    length = torch.full((m,), 40e-3, dtype=F64)
    s = _first_crossing(v0, i0, length, c, a0)
    grid = torch.linspace(0, 40e-3, 8001, dtype=F64)[:, None]
    v = _advance(v0.expand(len(grid), m), i0.expand(len(grid), m), grid.expand(-1, m), c,
                 a0.expand(len(grid), m))[0]
    above = v >= 1.0
    crosses = above.any(0)
    assert torch.equal(torch.isfinite(s), crosses)  # a crossing exactly where the scan has one
    assert 100 < int(crosses.sum()) < m - 100
    k = above.to(torch.int8).argmax(0)  # first grid point at or above threshold
    step = 40e-3 / 8000
    t_first = grid[k[crosses], 0]
    assert bool((s[crosses] <= t_first + 1e-12).all())
    assert bool((s[crosses] >= t_first - step - 1e-12).all())
    v_at = _advance(v0[crosses], i0[crosses], s[crosses], c.take(crosses.nonzero().squeeze(1)),
                    a0[crosses])[0]
    assert torch.allclose(v_at, torch.ones_like(v_at), atol=1e-12)
    # coverage: V̇ changes sign twice before the crossing in some of the cases
    change = torch.diff(torch.sign(torch.diff(v, dim=0)), dim=0) != 0  # [grid − 2, m]
    before = torch.arange(len(change))[:, None] < k[None, :] - 1
    twice = (change & before).sum(0)[crosses] >= 2
    assert int(twice.sum()) >= 10, int(twice.sum())


def test_hand_computed_single_neuron_and_the_effect_of_the_jump():
    r"""One input of weight ``w`` at ``t_0`` into a neuron with ``r = 1``, ``v_leak = 0``,
    ``ϑ = 1``, ``τ_mem = 10`` ms, ``τ_syn = 5`` ms, ``τ_adapt = 20`` ms. With
    ``x = e^{-s/τ_mem}`` the membrane is :math:`w (x - x^2)`: the first spike is at
    ``x = (1 + \sqrt{1 - 4/w})/2``. After it ``V = 0``, ``I_1 = w x^2``, ``A = b`` and with
    ``y = e^{-u/τ_mem}``: :math:`V = I_1 (y - y^2) - 2 b (\sqrt y - y)` (gain of the AHP
    current: :math:`\tfrac{τ_a}{τ_a - τ_m}(e^{-u/τ_a} - e^{-u/τ_m})`)."""
    w, t0 = 10.0, 2e-3
    tm = float(torch.tensor(10e-3, dtype=torch.float32))  # the float32 parameter's value
    x = (1 + math.sqrt(1 - 4 / w)) / 2
    t1 = t0 - tm * math.log(x)
    i1 = w * x * x

    def second(b):
        if b == 0:
            return t1 - tm * math.log((1 + math.sqrt(1 - 4 / i1)) / 2)
        f = lambda z: i1 * (z * z - z ** 4) - 2 * b * (z - z * z) - 1  # noqa: E731
        hi = 1.0  # z = √y falls from 1 (u = 0, f = −1): scan down to the first sign change
        while f(hi - 1e-3) < 0:
            hi -= 1e-3
        lo = hi - 1e-3
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if f(mid) > 0 else (lo, mid)
        return t1 - 2 * tm * math.log(0.5 * (lo + hi))

    got = {}
    for b in (0.0, 0.375):  # (values exact in float32, as the parameters are stored)
        net = Network({"input": Input(1), "fc": Linear(1, 1),
                       "h": AdaptiveLIF(1, dt=1e-4, tau_mem=tm, tau_syn=tm / 2, tau_adapt=2 * tm,
                                        adapt_increment=b, v_leak=0.0, v_reset=0.0,
                                        v_threshold=1.0, r=1.0)}).double()
        with torch.no_grad():
            net.layers["fc"].weight.fill_(w)
        ev = SpikeEvents(torch.tensor([[t0]], dtype=F64), torch.tensor([[0]]), 30e-3)
        with torch.no_grad():
            out = net(ev, backend="event")["h"]
        got[b] = out.times[0, 0]
        finite = got[b][torch.isfinite(got[b])]
        assert len(finite) >= 2
        assert float(finite[0]) == pytest.approx(t1, abs=1e-14)
        assert float(finite[1]) == pytest.approx(second(b), abs=1e-13)
        # the grid membrane between the two spikes is the closed form above
        grid = torch.arange(1, 301, dtype=F64) * 1e-4
        between = (grid > float(finite[0])) & (grid < float(finite[1]))
        y = torch.exp(-(grid[between] - t1) / tm)
        want = i1 * (y - y * y) - 2 * b * (y.sqrt() - y)
        assert int(between.sum()) >= 10
        assert torch.allclose(out.v[between, 0, 0], want, rtol=0, atol=1e-12)
    assert float(got[0.375][1]) - float(got[0.0][1]) > 0.1e-3  # the AHP current delays it


# ----------------------------------------------------------------------------- EventProp


@pytest.mark.parametrize("case", [
    {}, {"recurrent": True}, {"t_refrac": 2e-3, "readout": "lif"},
    {"recurrent": True, "t_refrac": 1e-3, "tau_adapt": 10e-3},  # τ_adapt = τ_mem: the limit
])
def test_eventprop_gradients_match_central_finite_differences(case):
    net = make_net(b=0.4, w1=3.0, **case)
    check_parameter_gradients(net, _objective, 15)


def test_input_time_gradients_match_finite_differences():
    check_input_time_gradients(make_net(b=0.4, w1=3.0, t_refrac=1e-3, recurrent=True))


# ----------------------------------------------------------------------------- errors
def test_adlif_is_refused_with_the_reason():
    net = Network({"input": Input(3), "fc": Linear(3, 4), "h": AdLIF(4), "fc2": Linear(4, 2),
                   "out": CubaLI(2)})
    with pytest.raises(ParameterError, match=r"'h' is a AdLIF.*coupled two-dimensional linear "
                                             r"system.*oscillate.*AdaptiveLIF \(spiking\)"):
        net(torch.zeros(10, 1, 3), backend="event")


def test_the_runaway_check_counts_the_adaptation():
    """A strong input that the AHP current tames: the early runaway check (a lower bound on
    the spikes still to come) must not refuse a run within ``max_spikes``."""
    def run(max_spikes, b=4.0):
        net = Network({"input": Input(1), "fc": Linear(1, 1),
                       "h": AdaptiveLIF(1, dt=1e-4, tau_adapt=100e-3,
                                        adapt_increment=b)}).double()
        with torch.no_grad():
            net.layers["fc"].weight.fill_(300.0)
        ev = SpikeEvents(torch.tensor([[1e-3]], dtype=F64), torch.tensor([[0]]), 40e-3)
        with torch.no_grad():
            times = net(ev, backend={"name": "event", "max_spikes": max_spikes})["h"].times
        return int(torch.isfinite(times).sum())

    n = run(10_000)
    assert 5 <= n < run(10_000, b=0.0)  # adaptation cuts the spike count
    assert run(n) == n
    with pytest.raises(ParameterError, match=f"max_spikes = {n - 1}"):
        run(n - 1)
