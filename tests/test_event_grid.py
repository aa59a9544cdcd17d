"""EventProp on the time grid (the event backend's ``engine="grid"``,
spikeloop.kernels.eventprop): the simulator's forward pass, gradients that approach the exact
engine's EventProp gradients as dt → 0, the native backward pass against the torch one, and the
networks it refuses."""

from __future__ import annotations

import pytest
import torch

from spikeloop.backends.event import EventBackend
from spikeloop.dynamics.surrogate import SuperSpike
from spikeloop.errors import ParameterError
from spikeloop.kernels import LoopConfig, native, neuron_loop
from spikeloop.kernels.eventprop import GridEventProp, _adjoint_torch, grid_adjoint
from spikeloop.network import Network
from spikeloop.nn import AdaptiveLIF, CubaLI, CubaLIF, Input, Linear
from spikeloop.training import MaxMembraneCE, make_loss

GRID = {"name": "event", "engine": "grid"}


def _net(dt: float, hidden: int = 3, recurrent: bool = False, **lif) -> Network:
    return Network({
        "input": Input(2), "fc1": Linear(2, hidden, bias=False),
        "hidden": CubaLIF(hidden, dt=dt, tau_mem=10e-3, tau_syn=5e-3, recurrent=recurrent,
                          **lif),
        "fc2": Linear(hidden, 2, bias=False),
        "output": CubaLI(2, dt=dt, tau_mem=10e-3, tau_syn=5e-3)}).double()


def _input(dt: float, batch: int = 1) -> torch.Tensor:
    """Three input spikes in a 50 ms window (at 2, 5 and 20 ms; later ones in later samples)."""
    x = torch.zeros(round(50e-3 / dt), batch, 2, dtype=torch.float64)
    for b in range(batch):
        x[round((2e-3 + b * 1e-3) / dt), b, 0] = 1
        x[round((5e-3 + b * 1e-3) / dt), b, 1] = 1
        x[round(20e-3 / dt), b, 0] = 1
    return x


def _grads(net: Network, x: torch.Tensor, backend: object) -> tuple[list[torch.Tensor], float]:
    net.zero_grad()
    out = net(x, backend=backend)
    MaxMembraneCE()(out, torch.zeros(x.shape[1], dtype=torch.long)).backward()
    grads = [p.grad.clone() for p in net.parameters() if p.grad is not None]
    return grads, float(out["hidden"].spikes.detach().sum())


def _setup(net: Network, recurrent: bool) -> None:
    with torch.no_grad():
        net.layers.fc1.weight.copy_(torch.tensor([[4.0, 1.0], [0.5, 0.5], [2.0, 3.0]]))
        net.layers.fc2.weight.copy_(torch.tensor([[1.0, 2.0, 0.5], [0.5, 0.2, 1.5]]))
        if recurrent:
            net.layers.hidden.recurrent.weight.copy_(
                torch.tensor([[0.4, 0.3, 0.0], [2.5, 0.0, -0.5], [0.0, 0.8, 0.0]]))


def _two_layers(dt: float) -> Network:
    """Two hidden layers: the first one's spike times reach the loss through the second's."""
    lif = {"dt": dt, "tau_mem": 10e-3, "tau_syn": 5e-3}
    net = Network({"input": Input(2), "fc1": Linear(2, 3, bias=False), "h1": CubaLIF(3, **lif),
                   "fc2": Linear(3, 3, bias=False), "hidden": CubaLIF(3, **lif),
                   "fc3": Linear(3, 2, bias=False), "output": CubaLI(2, **lif)}).double()
    with torch.no_grad():
        net.layers.fc1.weight.copy_(torch.tensor([[4.0, 1.0], [0.5, 0.5], [2.0, 3.0]]))
        net.layers.fc2.weight.copy_(torch.tensor([[3.0, 2.5, 1.25], [1.25, 3.1, 1.25],
                                                  [1.5, 1.5, 3.0]]))
        net.layers.fc3.weight.copy_(torch.tensor([[1.0, 2.0, 0.5], [0.5, 0.2, 1.5]]))
    return net


@pytest.mark.parametrize("layers", ["feed-forward", "recurrent", "two hidden"])
def test_grid_gradients_approach_the_exact_engine_as_dt_shrinks(layers):
    """The exact engine's EventProp gradients are the derivative of the continuous-time model;
    the grid's differ by the grid's resolution of the spike times: the relative error shrinks
    with dt (4 × finer: at most half the error) and is within 3 % at dt = 5 µs — for every
    weight: the recurrent one (with a self-connection and an inhibitory synapse) and, with two
    hidden layers, the first layer's (its spike times reach the loss through the second's),
    with the same spikes on both engines."""
    errors = []
    recurrent = layers == "recurrent"
    for dt in (20e-6, 5e-6):
        if layers == "two hidden":
            net = _two_layers(dt)
        else:
            net = _net(dt, recurrent=recurrent)
            _setup(net, recurrent)
        x = _input(dt, batch=2)
        exact, n_exact = _grads(net, x, "event")
        grid, n_grid = _grads(net, x, GRID)
        assert n_grid == n_exact > 0
        errors.append(max(float((g - e).norm() / e.norm()) for g, e in zip(grid, exact,
                                                                           strict=True)))
    assert errors[1] < 0.5 * errors[0]
    assert errors[1] < 0.03, errors


def _spiking_readout(dt: float) -> Network:
    lif = {"dt": dt, "tau_mem": 10e-3, "tau_syn": 5e-3}
    net = Network({"input": Input(2), "fc1": Linear(2, 3, bias=False), "hidden": CubaLIF(3, **lif),
                   "fc2": Linear(3, 2, bias=False), "output": CubaLIF(2, **lif)}).double()
    with torch.no_grad():
        net.layers.fc1.weight.copy_(torch.tensor([[4.0, 1.0], [0.5, 0.5], [2.0, 3.0]]))
        net.layers.fc2.weight.copy_(torch.tensor([[3.0, 2.0, 1.5], [1.5, 1.2, 2.5]]))
    return net


@pytest.mark.parametrize("loss", ["first_spike_ce", "spike_count_ce"])
def test_losses_on_spike_times_approach_the_exact_engine(loss):
    """A spiking readout: the grid engine's spike times (the ends of their steps) are within
    three steps of the exact ones (each layer sees its inputs' spikes on the grid), and the
    gradients of the losses that read them (first-spike
    times; counts, whose gradient passes to the times) approach the exact engine's as dt
    shrinks (within 0.5 % at 5 µs)."""
    errors = []
    for dt in (20e-6, 5e-6):
        net = _spiking_readout(dt)
        x = _input(dt, batch=2)
        make = make_loss({"name": loss, "dt": dt, "tau0": 5e-3} if loss == "first_spike_ce"
                         else {"name": loss})
        grads, outs = [], []
        for backend in ("event", GRID):
            net.zero_grad()
            out = net(x, backend=backend)
            make(out, torch.tensor([0, 1])).backward()
            grads.append([p.grad.clone() for p in net.parameters()])
            outs.append(out)
        exact, grid = (o["output"].times.detach() for o in outs)
        assert exact.shape == grid.shape
        finite = torch.isfinite(exact)
        assert torch.equal(finite, torch.isfinite(grid)) and bool(finite.any())
        lag = grid[finite] - exact[finite]
        assert bool((lag.abs() < 3 * dt).all())
        errors.append(max(float((g - e).norm() / e.norm())
                          for g, e in zip(grads[1], grads[0], strict=True)))
    assert errors[1] < errors[0] and errors[1] < 0.005, errors


def test_grid_forward_is_the_simulators():
    """Spikes, membrane and current equal the dense simulator's bit for bit (the same fused
    loop), and so do the readout's values; only the backward pass differs."""
    torch.manual_seed(0)
    net = _net(0.5e-3, hidden=8, recurrent=True)
    x = (torch.rand(100, 4, 2, dtype=torch.float64) < 0.1).double()
    sim, grid = net(x, backend="sim"), net(x, backend=GRID)
    for name in ("hidden", "output"):
        for field in ("spikes", "v", "i"):
            a, b = getattr(sim[name], field), getattr(grid[name], field)
            assert (a is None and b is None) or torch.equal(a, b)
    assert grid.report.resources["engine"] == "grid"
    no_membrane = net(x, backend={**GRID, "membrane": False})
    assert no_membrane["hidden"].v is None and no_membrane["output"].v is not None
    assert torch.equal(no_membrane["hidden"].times, grid["hidden"].times)
    assert [k for k, _ in grid["hidden"].items()] == ["spikes", "v", "i"]  # times kept aside


def test_a_silent_population_passes_no_gradient_to_its_inputs():
    """EventProp's blind spot: a hidden layer below threshold (its membrane moving, no spike)
    gives its input weights no gradient; one input more makes it spike, and then they get
    one."""
    net = _net(0.5e-3)
    _setup(net, False)
    with torch.no_grad():
        net.layers.fc1.weight.mul_(0.3)
    x = _input(0.5e-3)
    out = net(x, backend=GRID)
    assert float(out["hidden"].v.detach().abs().max()) > 0.1
    grid, spikes = _grads(net, x, GRID)
    assert spikes == 0
    assert torch.count_nonzero(grid[0]) == 0
    x[round(6e-3 / 0.5e-3), 0, 0] = 3.0  # a strong input: the first hidden neuron spikes
    grid, spikes = _grads(net, x, GRID)
    assert spikes > 0
    assert torch.count_nonzero(grid[0]) > 0


def _loop_case(subtract: bool, seed: int = 0):
    torch.manual_seed(seed)
    steps, batch, n = 60, 5, 24
    x = torch.rand(steps, batch, n) * 0.1
    w = torch.randn(n, n) * 0.3
    coefficients = {"beta": 0.9, "rest": 0.0, "alpha": 0.8, "gain": 0.5, "thr": 1.0,
                    "vreset": 0.0}
    state = (torch.zeros(batch, n), torch.zeros(batch, n), torch.zeros(batch, n),
             torch.zeros(batch, n))
    cfg = LoopConfig(spiking=True, reset="subtract" if subtract else "value",
                     surrogate=SuperSpike())
    with torch.no_grad():
        v, z, i, *_ = neuron_loop(cfg, x, coefficients, state, w)
    ep = GridEventProp(torch.zeros(n), torch.full((n,), 1.3), torch.full((n,), 0.02),
                       torch.full((n,), 0.01), 1e-3, 1e-12)
    consts = [torch.full((n,), float(coefficients[k]))
              for k in ("beta", "alpha", "gain", "thr", "vreset")]
    grads = [torch.randn(steps, batch, n) for _ in range(3)]
    return z, v, i, grads, w, consts, ep


@pytest.mark.skipif(native.library() is None, reason="no C compiler: no native kernels")
@pytest.mark.parametrize("subtract", [False, True])
@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("given", ["z", "zvi"])
def test_native_grid_adjoint_equals_the_torch_one(subtract, recurrent, given):
    """sl_grid_adjoint (float32, C) and the torch recursion give the same ∂L/∂x (relative
    1e-5; they sum the recurrent dot products in different orders), with gradients arriving at
    the spikes only or at spikes, membrane and current, value or subtract reset."""
    z, v, i, (gz, gv, gi), w, (beta, alpha, gain, thr, vreset), ep = _loop_case(subtract)
    assert 0.02 < float(z.mean()) < 0.5  # spikes to jump at
    gv, gi = (gv, gi) if given == "zvi" else (None, None)
    w = w if recurrent else None
    args = (z, v, i, gz, gv, gi, w, beta, alpha, gain, thr, vreset, subtract, ep)
    native_dx = grid_adjoint(*args)
    torch_dx = _adjoint_torch(*args)
    scale = float(torch_dx.abs().max())
    assert float((native_dx - torch_dx).abs().max()) <= 1e-5 * scale
    double = _adjoint_torch(*(a.double() if isinstance(a, torch.Tensor) else a
                              for a in args[:13]),
                            GridEventProp(*(t.double() for t in (ep.v_leak, ep.r, ep.tau_mem,
                                                                  ep.tau_syn)),
                                          ep.dt, ep.floor))
    assert float((native_dx.double() - double).abs().max()) <= 1e-4 * scale


def test_grid_backward_through_the_loop_equals_the_adjoint():
    """The fused loop with ``LoopConfig.eventprop`` returns the adjoint's ∂L/∂x as its input
    gradient and ``Σ_k ∂L/∂J_{k+1} ⊗ z_k`` as the recurrent weight's."""
    z0, _, _, (gz, _, _), w, consts, ep = _loop_case(False, seed=1)
    steps, batch, n = z0.shape
    torch.manual_seed(1)
    x = (torch.rand(steps, batch, n) * 0.1).requires_grad_()
    wr = w.clone().requires_grad_()
    coefficients = {"beta": 0.9, "rest": 0.0, "alpha": 0.8, "gain": 0.5, "thr": 1.0,
                    "vreset": 0.0}
    state = tuple(torch.zeros(batch, n) for _ in range(4))
    cfg = LoopConfig(spiking=True, eventprop=ep)
    v, z, i, *_ = neuron_loop(cfg, x, coefficients, state, wr)
    (z * gz).sum().backward()
    dx = grid_adjoint(z.detach(), v.detach(), i.detach(), gz, None, None, w, *consts, False, ep)
    assert torch.allclose(x.grad, dx, rtol=1e-5, atol=1e-6)
    expect = dx[1:].reshape(-1, n).t() @ z.detach()[:-1].reshape(-1, n)
    assert torch.allclose(wr.grad, expect, rtol=1e-4, atol=1e-5)


def grid_net() -> Network:
    """A recurrent network the grid engine runs, its weights on a 1/64 grid (every weighted sum
    exact in any order: spikes agree between engines and devices)."""
    torch.manual_seed(11)
    net = Network({"input": Input(40), "fc1": Linear(40, 32, bias=False),
                   "hidden": CubaLIF(32, recurrent=True), "fc2": Linear(32, 4, bias=False),
                   "out": CubaLI(4)})
    with torch.no_grad():
        for w, gain in ((net.layers.fc1.weight, 6.0), (net.layers.hidden.recurrent.weight, 1.0),
                        (net.layers.fc2.weight, 1.0)):
            w.copy_(torch.round(w * gain * 64) / 64)
    return net


def test_grid_engine_native_equals_its_torch_engine(monkeypatch):
    """The whole network with the native loop and adjoint against their torch engines
    (``SPIKELOOP_NATIVE=0``): the same spikes and membrane, gradients within float32
    rounding."""
    net = grid_net()
    x = (torch.rand(40, 3, 40, generator=torch.Generator().manual_seed(3)) < 0.3).float()
    results = []
    for off in ("1", "0"):
        monkeypatch.setenv("SPIKELOOP_NATIVE", off)
        net.zero_grad()
        out = net(x, backend=GRID)
        MaxMembraneCE()(out, torch.tensor([0, 1, 2])).backward()
        results.append((out, [p.grad.clone() for p in net.parameters()]))
    (a, ga), (b, gb) = results
    assert 0.02 < float(a["hidden"].spikes.detach().mean()) < 0.5
    assert torch.equal(a["hidden"].spikes, b["hidden"].spikes)
    torch.testing.assert_close(a["out"].v, b["out"].v)
    for g, h in zip(ga, gb, strict=True):
        assert float(g.abs().max()) > 0
        torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-5 * float(h.abs().max()))


def test_grid_engine_refuses_what_it_cannot_run():
    x = _input(0.5e-3)
    with pytest.raises(ParameterError, match=r"t_refrac = 0\.002 s; engine='grid'"):
        _net(0.5e-3, t_refrac=2e-3)(x, backend=GRID)
    adaptive = Network({"input": Input(2), "fc1": Linear(2, 3, bias=False),
                        "hidden": AdaptiveLIF(3, dt=0.5e-3), "fc2": Linear(3, 2, bias=False),
                        "output": CubaLI(2, dt=0.5e-3)}).double()
    with pytest.raises(ParameterError, match="adaptive \\(AHP\\) neurons; engine='grid'"):
        adaptive(x, backend=GRID)
    with pytest.raises(ParameterError, match="engine='grid' runs on the grid of dt"):
        EventBackend(engine="grid", grid=False)
    with pytest.raises(ParameterError, match="engine='grid' runs on the grid of dt"):
        EventBackend(engine="grid", observe="chip")
    with pytest.raises(ParameterError, match="engine"):
        EventBackend(engine="exactly")
    ep = GridEventProp(*(torch.zeros(3) for _ in range(4)), 1e-3, 1e-12)
    state = tuple(torch.zeros(1, 3) for _ in range(4))
    coefficients = {"beta": 0.9, "rest": 0.0, "alpha": 0.8, "gain": 0.5, "thr": 1.0,
                    "vreset": 0.0}
    with pytest.raises(ParameterError, match="without refractoriness or adaptation"):
        neuron_loop(LoopConfig(spiking=True, refrac_steps=2, eventprop=ep),
                    torch.zeros(5, 1, 3), coefficients, state)
    cfg = LoopConfig(spiking=True, eventprop=ep)
    learned = coefficients | {"beta": torch.full((3,), 0.9, requires_grad=True)}
    with pytest.raises(ParameterError, match="input and the recurrent weight only; beta"):
        neuron_loop(cfg, torch.zeros(5, 1, 3), learned, state)
    with pytest.raises(ParameterError, match="does not replay observations"):
        neuron_loop(cfg, torch.zeros(5, 1, 3), coefficients, state,
                    observed=(None, torch.zeros(5, 1, 3)))
