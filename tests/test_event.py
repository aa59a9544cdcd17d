"""The event backend: exact simulation (against the dense simulator as dt → 0), EventProp
gradients (against central finite differences), exact losses, errors and the one switch."""

import math

import pytest
import torch

from spikeloop.backends import EventBackend, EventObservables, SpikeEvents, get_backend
from spikeloop.backends.event import forward
from spikeloop.errors import NonFiniteError, ParameterError, ShapeError, StateError
from spikeloop.network import Network
from spikeloop.nn import LIF, CubaLI, CubaLIF, Flatten, Input, Linear
from spikeloop.training import FiringRateRegularizer, FirstSpikeCE, MaxMembraneCE, make_loss
from spikeloop.training.losses import ExpMembraneCE, spike_counts

F64 = torch.float64
DURATION = 40e-3
TIMES = [[1e-3, 3.3e-3, 5e-3, 5.7e-3, 12e-3], [2e-3, 2.5e-3, 6.1e-3, 20e-3, 21e-3]]
CHANNELS = [[0, 1, 2, 0, 1], [2, 2, 1, 0, 0]]


def make_net(dt=1e-3, recurrent=False, t_refrac=0.0, readout="li", tau_syn=5e-3,
             reset="value", seed=1, hidden=5):
    torch.manual_seed(seed)
    out = CubaLI(2, dt=dt) if readout == "li" else CubaLIF(2, dt=dt, t_refrac=t_refrac)
    net = Network({
        "input": Input(3), "fc1": Linear(3, hidden),
        "hidden": CubaLIF(hidden, dt=dt, recurrent=recurrent, t_refrac=t_refrac,
                          tau_syn=tau_syn, reset=reset),
        "fc2": Linear(hidden, 2), "output": out,
    }).double()
    with torch.no_grad():
        net.layers["fc1"].weight.normal_(2.0, 1.0)
        net.layers["fc2"].weight.normal_(1.0, 1.0)
        if recurrent:
            net.layers["hidden"].recurrent.weight.normal_(0.0, 0.5)
    return net


def events(times=TIMES, channels=CHANNELS):
    return SpikeEvents(torch.tensor(times, dtype=F64), torch.tensor(channels), DURATION)


def dense_input(dt):
    x = torch.zeros(round(DURATION / dt), 2, 3, dtype=F64)
    for b, (ts, cs) in enumerate(zip(TIMES, CHANNELS, strict=True)):
        for t, c in zip(ts, cs, strict=True):
            x[round(t / dt), b, c] += 1
    return x


def spike_time_error(exact, dense, dt: float) -> float:
    """The largest difference between the event backend's spike times ``exact [B, N, K]`` and
    the dense simulator's spikes ``dense [T, B, N]`` (at the ends of their steps), asserting
    that every neuron fires as often on both; shared with the adaptive neurons' tests."""
    err = 0.0
    for b in range(exact.shape[0]):
        for n in range(exact.shape[1]):
            t_dense = (dense[:, b, n].nonzero().squeeze(1).to(F64) + 1) * dt
            t_exact = exact[b, n][torch.isfinite(exact[b, n])]
            assert len(t_dense) == len(t_exact), (dt, b, n)  # same number of spikes
            if len(t_exact):
                err = max(err, float((t_dense - t_exact).abs().max()))
    return err


# ----------------------------------------------------------------------------- forward
@pytest.mark.parametrize("case", [{}, {"t_refrac": 2e-3}, {"recurrent": True}])
def test_spike_times_converge_to_the_dense_simulator_as_dt_shrinks(case):
    errors = []
    for dt in (2e-4, 1e-4, 5e-5):
        net = make_net(dt, seed=8, **case)
        x = dense_input(dt)  # input times are multiples of every dt: same input on all grids
        with torch.no_grad():
            exact = net(x, backend="event")["hidden"].times
            dense = net(x, backend="sim")["hidden"].spikes
        err = spike_time_error(exact, dense, dt)
        errors.append(err)
        assert err <= 12 * dt  # first order in dt
    assert errors[-1] < errors[0] / 2  # and it shrinks with dt (first order: ÷4 here)
    assert int(torch.isfinite(exact).sum()) >= 8  # a multi-spike scenario


def test_readout_maximum_converges_and_is_the_exact_maximum():
    dt = 2.5e-5
    net = make_net(dt)
    x = dense_input(dt)
    with torch.no_grad():
        out = net(x, backend="event")
        dense = net(x, backend="sim").output.v
    v_max = out.output.v_max
    assert torch.allclose(v_max, dense.max(0).values, atol=2e-2)
    # the exact maximum bounds the membrane on a very fine grid and is attained on it
    t = torch.linspace(0, DURATION, 20001, dtype=F64)
    fine = out.output.readout.membrane(t[None, None, :].expand(2, 2, -1).permute(2, 0, 1))
    assert bool((fine.max(0).values <= v_max + 1e-12).all())
    assert torch.allclose(fine.max(0).values, v_max, atol=1e-6)


def test_grid_observables_agree_with_the_exact_quantities():
    net = make_net(1e-4, t_refrac=1e-3)
    with torch.no_grad():
        out = net(events(), backend="event")
    hidden = out["hidden"]
    assert isinstance(hidden, EventObservables)
    steps = round(DURATION / 1e-4)
    assert hidden.spikes.shape == (steps, 2, 5) and hidden.v.shape == (steps, 2, 5)
    assert int(hidden.spikes.sum()) == int(torch.isfinite(hidden.times).sum())
    # grid membrane from the event snapshots == closed-form readout kernel sum
    grid_t = torch.arange(1, steps + 1, dtype=F64) * 1e-4
    closed = out.output.readout.membrane(grid_t[:, None, None].expand(steps, 2, 2))
    assert torch.allclose(out.output.v, closed, atol=1e-10)
    # the membrane never exceeds threshold and sits at v_reset while refractory
    assert float(hidden.v.max()) <= 1.0 + 1e-9
    t0 = float(hidden.times[0, 0, 0])
    k = math.ceil(t0 / 1e-4)
    assert torch.allclose(hidden.v[k + 1 : k + 8, 0, 0], torch.zeros(7, dtype=F64))
    # dense and event inputs describe the same events
    dense = net(events().to_dense(1e-4, 3).double(), backend="event")
    assert torch.allclose(dense["hidden"].times, hidden.times)


def test_spike_events_round_trip_through_dense():
    x = dense_input(1e-4)
    ev = SpikeEvents.from_dense(x, 1e-4)
    assert torch.equal(ev.to_dense(1e-4, 3).double(), x)


# ----------------------------------------------------------------------------- EventProp
def _objective(net, seed=5):
    out = net(events(), backend={"name": "event", "grid": False})
    times = out["hidden"].times
    coef = torch.randn(times.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)
    loss = 100 * (torch.where(torch.isfinite(times), times, 0.0) * coef).sum()
    if out.output.v_max is not None:
        loss = loss + (out.output.v_max * torch.tensor([1.0, -0.7], dtype=F64)).sum()
    else:
        first = FirstSpikeCE(tau0=2e-3).times(out)
        loss = loss + 50 * first.sum()
    return loss, int(torch.isfinite(times).sum())


@pytest.mark.parametrize("case", [
    {}, {"recurrent": True}, {"t_refrac": 2e-3}, {"tau_syn": 10e-3}, {"reset": "subtract"},
    {"readout": "lif"}, {"recurrent": True, "t_refrac": 1e-3, "readout": "lif"},
])
def test_eventprop_gradients_match_central_finite_differences(case):
    net = make_net(**case)
    check_parameter_gradients(net, _objective, 15)


def check_parameter_gradients(net: Network, objective, min_spikes: int, eps: float = 1e-6
                              ) -> None:
    """EventProp's gradient of ``objective(net) → (loss, spike count)`` equals central finite
    differences (float64, relative 1e-4) at 4 random entries of every parameter, where no
    spike appears or vanishes; shared with the adaptive neurons' tests."""
    loss, n_spikes = objective(net)
    assert n_spikes >= min_spikes  # several spikes per neuron: resets and multi-spike jumps
    net.zero_grad()
    loss.backward()
    pick = torch.Generator().manual_seed(0)
    for name, p in net.named_parameters():
        entries = torch.randperm(p.numel(), generator=pick)[:4].tolist()  # keep CI fast
        numeric = torch.zeros(len(entries), dtype=F64)
        for j, k in enumerate(entries):
            with torch.no_grad():
                orig = float(p.view(-1)[k])
                p.view(-1)[k] = orig + eps
                up, n_up = objective(net)
                p.view(-1)[k] = orig - eps
                down, n_down = objective(net)
                p.view(-1)[k] = orig
            assert n_up == n_down == n_spikes  # differentiable here: no spike appears/vanishes
            numeric[j] = (up - down) / (2 * eps)
        exact = p.grad.view(-1)[entries]
        rel = float((exact - numeric).abs().max() / numeric.abs().max())
        assert rel <= 1e-4, (name, rel)


def check_input_time_gradients(net: Network) -> None:
    """The gradient of (hidden spike times + readout maxima) with respect to the input event
    times of :data:`TIMES` equals central finite differences (float64); shared with the
    adaptive neurons' tests."""
    times = torch.tensor(TIMES, dtype=F64, requires_grad=True)

    def objective(t):
        out = net(SpikeEvents(t, torch.tensor(CHANNELS), DURATION), backend="event")
        s = out["hidden"].times
        return (torch.where(torch.isfinite(s), s, 0.0)).sum() + out.output.v_max.sum()

    objective(times).backward()
    numeric = torch.zeros_like(times)
    for b in range(2):
        for e in range(5):
            with torch.no_grad():
                up, down = times.detach().clone(), times.detach().clone()
                up[b, e] += 1e-8
                down[b, e] -= 1e-8
                numeric[b, e] = (objective(up) - objective(down)) / 2e-8
    assert float(numeric.abs().max()) > 0
    assert torch.allclose(times.grad, numeric, rtol=1e-4, atol=1e-4 * float(numeric.abs().max()))


def test_input_time_gradients_match_finite_differences():
    check_input_time_gradients(make_net(t_refrac=1e-3))


def test_backward_memory_does_not_grow_with_the_window_resolution():
    saved = {}
    for steps in (100, 2000):
        dt = DURATION / steps
        net = make_net(dt)
        x = dense_input(dt)
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = net(x, backend={"name": "event", "grid": False})
            loss = out.output.v_max.sum()
        loss.backward()
        saved[steps] = total
    assert saved[2000] == saved[100]  # O(#spikes), independent of T


# ----------------------------------------------------------------------------- losses
def test_exact_losses_read_exact_quantities_and_match_the_grid_as_dt_shrinks():
    dt = 2.5e-5
    x = dense_input(dt)
    target = torch.tensor([0, 1])
    net, spiking = make_net(dt), make_net(dt, readout="lif")
    shaped = ExpMembraneCE(tau=20e-3, dt=dt)
    ttfs = FirstSpikeCE(dt=dt, alpha=0.1)
    with torch.no_grad():
        ev, sim = net(x, backend="event"), net(x, backend="sim")
        assert torch.allclose(shaped.logits(ev), shaped.logits(sim), rtol=1e-3, atol=1e-4)
        assert float(shaped(ev, target)) == pytest.approx(float(shaped(sim, target)), rel=1e-3)
        assert torch.equal(MaxMembraneCE().logits(ev), ev.output.v_max)
        ev, sim = spiking(x, backend="event"), spiking(x, backend="sim")
        assert torch.allclose(ttfs.times(ev), ttfs.times(sim), atol=3 * dt)
        assert float(ttfs(ev, target)) == pytest.approx(float(ttfs(sim, target)), rel=0.02)
    assert make_loss("exp_membrane_ce", dt=dt).dt == dt
    with pytest.raises(ParameterError, match="tau"):
        ExpMembraneCE(tau=0.0)


def test_spike_count_regularisation_on_exact_spike_times():
    net = make_net()
    out = net(events(), backend="event")
    counts = spike_counts(out["hidden"])
    assert torch.equal(counts.detach(), torch.isfinite(out["hidden"].times).sum(-1).to(F64))
    reg = FiringRateRegularizer(["hidden"], high=10.0, strength=1.0)
    penalty = reg(out)
    rate = counts.detach().mean(0) / DURATION
    assert float(penalty.detach()) == pytest.approx(float(torch.relu(rate - 10.0).pow(2).mean()))
    penalty.backward()
    # too many spikes: the gradient delays spikes, i.e. weakens the excitatory input weights
    assert float(net.layers["fc1"].weight.grad.sum()) > 0


# ----------------------------------------------------------------------------- one switch
def test_the_same_network_trains_with_surrogate_or_exact_gradients():
    net = make_net(1e-3, hidden=8)
    x = dense_input(1e-3)
    target = torch.tensor([0, 1])
    loss_fn = MaxMembraneCE()
    grads = {}
    for backend in ("sim", "event"):
        net.zero_grad()
        loss_fn(net(x, backend=backend), target).backward()
        grads[backend] = torch.cat([p.grad.flatten() for p in net.parameters()])
    assert all(bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0 for g in grads.values())
    # readout weights see the same membrane: their gradients nearly agree
    n_out = net.layers["fc2"].weight.numel()
    cos = torch.nn.functional.cosine_similarity(grads["sim"][-n_out:], grads["event"][-n_out:],
                                                dim=0)
    assert float(cos) > 0.9


def test_trainer_runs_on_the_event_backend_by_one_switch(tmp_path):
    from spikeloop.training import Trainer, load_config

    cfg = load_config("configs/yinyang_eventprop.yaml", [
        "data.train_size=60", "data.val_size=30", "data.test_size=30", "train.epochs=1",
        "train.batch_size=30", "model.hidden=[20]", f"run.out_dir={tmp_path}",
        "train.progress=false", "train.rate_regularizer={high: 50.0}",
    ])
    summary = Trainer(cfg).fit()
    assert summary["backend"]["name"] == "event" and 0 <= summary["test_acc"] <= 1
    assert (tmp_path / cfg.run.name / "readout_membrane.png").exists()


# ----------------------------------------------------------------------------- errors
def test_bad_events_raise_specific_errors():
    with pytest.raises(NonFiniteError, match="NaN or infinite"):
        events(times=[[1e-3, float("nan")], [1e-3, 2e-3]], channels=[[0, 1], [0, 1]])
    with pytest.raises(ParameterError, match="sorted"):
        events(times=[[3e-3, 1e-3], [1e-3, 2e-3]], channels=[[0, 1], [0, 1]])
    with pytest.raises(ParameterError, match=r"\[0, duration"):
        events(times=[[1e-3, 50e-3], [1e-3, 2e-3]], channels=[[0, 1], [0, 1]])
    with pytest.raises(ShapeError, match="3 channels"):
        make_net()(events(channels=[[0, 1, 2, 0, 7], CHANNELS[1]]), backend="event")
    with pytest.raises(ShapeError, match="B, E"):
        SpikeEvents(torch.zeros(3), torch.zeros(3, dtype=torch.long), 1.0)
    with pytest.raises(NonFiniteError):
        make_net()(torch.full((10, 2, 3), float("nan"), dtype=F64), backend="event")


def test_unsupported_networks_raise_specific_errors():
    x = torch.zeros(10, 1, 3)
    lif = Network({"input": Input(3), "fc": Linear(3, 4), "h": LIF(4), "fc2": Linear(4, 2),
                   "out": CubaLI(2)})
    with pytest.raises(ParameterError, match=r"LIF.*supported neuron models: Adaptive.*CubaLIF"):
        lif(x, backend="event")
    biased = Network({"input": Input(3), "fc": Linear(3, 2, bias=True), "out": CubaLI(2)})
    with pytest.raises(ParameterError, match="bias"):
        biased(x, backend="event")
    flat = Network({"input": Input(3), "flat": Flatten(), "fc": Linear(3, 2), "out": CubaLI(2)})
    with pytest.raises(ParameterError, match="Flatten"):
        flat(x, backend="event")
    learned = Network({"input": Input(3), "fc": Linear(3, 2),
                       "out": CubaLIF(2, learn=("tau_mem",))})
    with pytest.raises(ParameterError, match="tau_mem is learned"):
        learned(x, backend="event")
    with pytest.raises(ParameterError, match="v_reset < v_threshold"):
        Network({"input": Input(3), "fc": Linear(3, 2), "out": CubaLIF(2, v_reset=1.5)})(
            x, backend="event")
    with pytest.raises(StateError, match="event backend cannot continue from a state"):
        make_net()(dense_input(1e-3), {"hidden": None}, backend="event")
    runaway = make_net()
    with torch.no_grad():
        runaway.layers["fc1"].weight.fill_(500.0)
    with pytest.raises(ParameterError, match="max_spikes = 4"):
        runaway(dense_input(1e-3), backend={"name": "event", "max_spikes": 4})
    with pytest.raises(ParameterError, match="max_spikes"):
        EventBackend(max_spikes=0)
    assert isinstance(get_backend("event"), EventBackend)


# ----------------------------------------------------------------------------- chip in the loop
def test_exact_gradients_with_the_chip_in_the_loop_use_the_chip_spike_times():
    from spikeloop.training import Trainer, load_config

    cfg = load_config("configs/yinyang_eventprop.yaml", [
        "data.train_size=20", "data.val_size=10", "data.test_size=10", "model.hidden=[30]",
        "train.progress=false"])
    net = Trainer(cfg).network
    data = Trainer(cfg).data["train"]
    x, y = data.spikes[:, :10], data.labels[:10]
    chip = {"name": "chip", "mismatch": False, "noise": False, "adc": "ideal",
            "calibrate": False}
    loss = MaxMembraneCE(scale=0.2)
    grads = {}
    for name, spec in (("event", "event"), ("chip", {"name": "event", "observe": chip})):
        net.zero_grad()
        out = net(x, backend=spec)
        loss(out, y).backward()
        grads[name] = torch.cat([p.grad.flatten() for p in net.parameters()])
        if name == "chip":
            with torch.no_grad():
                seen = net(x, backend=chip)
            hidden = seen["hidden1"].spikes
            # forward values are the chip's: its spike times (ends of steps) and readout max
            expected = (hidden.nonzero()[:, 0].to(F64) + 1) * cfg.data.dt
            got = out["hidden1"].times[torch.isfinite(out["hidden1"].times)]
            assert torch.allclose(got.sort().values, expected.sort().values)
            assert torch.allclose(out.output.v_max.detach().float(),
                                  seen.output.v.max(0).values.float(), atol=1e-6)
    assert bool(torch.isfinite(grads["chip"]).all())
    cos = torch.nn.functional.cosine_similarity(grads["chip"], grads["event"], dim=0)
    assert float(cos) > 0.5  # the ideal chip spikes where the model does, up to the grid


def test_the_observing_backend_is_resolved_once_and_the_backend_is_not_mutated():
    spec = {"name": "sim"}
    backend = get_backend({"name": "event", "observe": spec})
    device = backend._observer
    assert device is not None and backend.observe == spec
    before = repr(backend)
    net = make_net()
    for _ in range(2):
        with torch.no_grad():
            out = net(dense_input(1e-3).clamp(max=1), backend=backend)
        assert torch.isfinite(out["hidden"].times).any()
    assert backend._observer is device and repr(backend) == before


def test_an_observation_goes_through_the_bridge_contract():
    """With ``observe``, the values are the device's (checked by the in-the-loop bridge):
    grid spikes and readout membrane equal the observation; a spiking membrane that is not
    recorded (``membrane=False``) is neither returned nor compared."""
    net = make_net()
    x = dense_input(1e-3).clamp(max=1)
    with torch.no_grad():
        device = net(x, backend="sim")
        full = net(x, backend={"name": "event", "observe": "sim"})
        lean = net(x, backend={"name": "event", "observe": "sim", "membrane": False})
    assert torch.equal(full["hidden"].spikes, device["hidden"].spikes)
    assert torch.equal(full["hidden"].v, device["hidden"].v)
    assert torch.equal(full["output"].v, device["output"].v)
    assert lean["hidden"].v is None and torch.equal(lean["hidden"].spikes, device["hidden"].spikes)
    assert full.report.backend == "event" and full.report.resources["observed_by"] == "sim"


def test_runaway_is_refused_at_once_and_only_when_the_limit_would_be_reached(monkeypatch):
    """The early runaway check (a lower bound on the spikes still to come) refuses exactly the
    runs that the spike-by-spike simulation refuses on reaching max_spikes, and refuses a huge
    input after a handful of spikes instead of 10 000."""
    torch.manual_seed(0)
    net = Network({"input": Input(4), "fc1": Linear(4, 6), "hidden": CubaLIF(6),
                   "fc2": Linear(6, 3), "output": CubaLI(3)})
    x = torch.zeros(5, 1, 4)
    x[0] = 1.0
    backend = get_backend({"name": "event", "max_spikes": 40})
    outcomes = {}
    for scale in (1.0, 10.0, 30.0, 60.0, 100.0, 300.0, 1e3, 1e30):
        try:
            net(x * scale, backend=backend)
            outcomes[scale] = "ran"
        except ParameterError as err:
            assert "max_spikes = 40" in str(err)
            outcomes[scale] = "refused"
    assert outcomes[1.0] == "ran" and outcomes[1e30] == "refused"
    monkeypatch.setattr(forward, "_check_runaway", lambda *args: None)
    for scale, outcome in outcomes.items():
        try:
            net(x * scale, backend=backend)
            assert outcome == "ran", scale
        except ParameterError as err:
            assert outcome == "refused" and "more than max_spikes = 40" in str(err), scale
    monkeypatch.undo()
    with pytest.raises(ParameterError, match=r"would fire more than max_spikes = 10000 times .*"
                                             r"has fired \d+ times"):
        net(torch.ones(1, 1, 4) * 3e38, backend="event")


def test_the_first_cpu_run_tunes_the_allocator_as_the_simulator_does():
    """The event backend never runs the simulator's time loop; its own first CPU run raises
    glibc's thresholds (freed memory reused: its training step on the spoken digits otherwise
    faulted in ~160 MB of fresh pages per step), and ``SPIKELOOP_MALLOC=0`` still keeps the
    defaults."""
    import os
    import platform
    import subprocess
    import sys

    code = ("import spikeloop._runtime as r, torch; from spikeloop.network import Network; "
            "from spikeloop.nn import CubaLI, CubaLIF, Input, Linear; "
            "net = Network({'input': Input(3), 'fc1': Linear(3, 4), 'hidden': CubaLIF(4), "
            "'fc2': Linear(4, 2), 'output': CubaLI(2)}).double(); before = r._applied; "
            "net(torch.zeros(5, 2, 3, dtype=torch.float64), backend='event'); "
            "print(before, r._applied)")
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    for value, want in (("1", str(glibc)), ("0", "False")):
        env = {**os.environ, "SPIKELOOP_MALLOC": value}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        assert out.stdout.split() == ["None", want]
