"""Per-axon delays on the event backend (issue 17): each event arrives ``d_c`` later, exactly;
against the plain Linear (zero delays), against shifted input events, against the dense
simulator at whole-step delays as dt → 0, EventProp delay gradients against central finite
differences, dropped late arrivals and the errors."""

import pytest
import torch

from spikeloop.backends import SpikeEvents
from spikeloop.errors import NonFiniteError, ParameterError
from spikeloop.network import Network
from spikeloop.nn import CubaLI, CubaLIF, DelayedLinear, Input, Linear
from test_event import CHANNELS, DURATION, F64, TIMES, dense_input, events  # the same input

D_IN = [3e-3, 0.0, 5e-3]  # s, whole steps of every dt used below
D_HID = [1e-3, 4e-3, 0.0, 2e-3, 6e-3]


def make_net(dt=1e-3, d_in=D_IN, d_hid=D_HID, recurrent=False, t_refrac=0.0, readout="li",
             learn_delay=True, seed=1, plain=False):
    """The network of tests/test_event.py with per-axon DelayedLinear projections (``plain``:
    the same weights through plain Linear projections, no delays)."""
    torch.manual_seed(seed)

    def proj(n_in, n_out, delay):
        if plain or delay is None:
            return Linear(n_in, n_out)
        return DelayedLinear(n_in, n_out, 8e-3, dt=dt, per="axon", delay=delay,
                             learn_delay=learn_delay)

    out = CubaLI(2, dt=dt) if readout == "li" else CubaLIF(2, dt=dt, t_refrac=t_refrac)
    net = Network({
        "input": Input(3), "fc1": proj(3, 5, d_in),
        "hidden": CubaLIF(5, dt=dt, recurrent=recurrent, t_refrac=t_refrac),
        "fc2": proj(5, 2, d_hid), "output": out,
    }).double()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        net.layers["fc1"].weight.copy_(torch.randn(5, 3, generator=g) + 2.0)
        net.layers["fc2"].weight.copy_(torch.randn(2, 5, generator=g) + 1.0)
        if recurrent:
            net.layers["hidden"].recurrent.weight.copy_(0.5 * torch.randn(5, 5, generator=g))
    return net


def grid_times(spikes, dt, b, n):
    return (spikes[:, b, n].nonzero().squeeze(1).to(F64) + 1) * dt


def finite(t):
    return t[torch.isfinite(t)]


# ----------------------------------------------------------------------------- forward
def test_zero_delays_equal_the_plain_linear_exactly():
    delayed = make_net(d_in=[0.0] * 3, d_hid=[0.0] * 5, recurrent=True, readout="lif")
    plain = make_net(recurrent=True, readout="lif", plain=True)
    results = []
    for net in (delayed, plain):
        out = net(events(), backend="event")
        t_out = out.output.times
        (torch.where(torch.isfinite(t_out), t_out, 0.0).sum()
         + finite(out["hidden"].times).sum()).backward()
        results.append((out["hidden"].times, t_out, out["hidden"].v, out.output.spikes,
                        net.layers["fc1"].weight.grad, net.layers["fc2"].weight.grad))
    assert int(torch.isfinite(results[1][0]).sum()) >= 10
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_a_delay_shifts_each_event_exactly():
    """Delays on the input projection = the undelayed network on input events shifted by
    ``d_c`` (sorted again); an arrival at or after the window end is dropped."""
    net = make_net(d_hid=None)
    times = torch.tensor([*TIMES, [30e-3, 36e-3, 37e-3, 38e-3, 39e-3]], dtype=F64)
    channels = torch.tensor([*CHANNELS, [1, 0, 2, 1, 0]])
    shifted = times + net.layers["fc1"].delay.detach()[channels]  # D_IN, rounded to float32
    late = shifted >= DURATION  # 39 + 3 ms and 37 + 5 ms
    assert int(late.sum()) == 2
    order = torch.sort(torch.where(late, torch.inf, shifted), dim=1, stable=True).indices
    plain = make_net(d_hid=None, plain=True)
    with torch.no_grad():
        got = net(SpikeEvents(times, channels, DURATION), backend="event")
        want = plain(SpikeEvents(
            torch.where(late, 0.0, shifted).gather(1, order),
            torch.where(late, -1, channels).gather(1, order), DURATION), backend="event")
    assert int(torch.isfinite(got["hidden"].times).sum()) >= 8
    assert torch.allclose(got["hidden"].times, want["hidden"].times, rtol=0, atol=1e-15)
    assert torch.allclose(got.output.v_max, want.output.v_max, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", [{}, {"t_refrac": 2e-3}, {"recurrent": True},
                                  {"readout": "lif"}])
def test_delayed_spike_times_converge_to_the_dense_simulator_as_dt_shrinks(case):
    """At whole-step delays the dense simulator's delay kernel is a pure shift by d/dt steps;
    its spikes converge to the exact ones (first order in dt), hidden and output alike. (As in
    tests/test_event.py, a seed without a grazing threshold crossing, where the grid's first
    order error is amplified: seeds 1-8 at these dt all converge, some only below 12·dt.)"""
    errors = []
    for dt in (2e-4, 1e-4, 5e-5):
        net = make_net(dt, seed=6, **case)
        x = dense_input(dt)
        with torch.no_grad():
            exact = net(x, backend="event")
            dense = net(x, backend="sim")
        err = 0.0
        names = ["hidden"] + (["output"] if case.get("readout") == "lif" else [])
        for name in names:
            for b in range(2):
                for n in range(exact[name].times.shape[1]):
                    t_dense = grid_times(dense[name].spikes, dt, b, n)
                    t_exact = finite(exact[name].times[b, n])
                    assert len(t_dense) == len(t_exact), (dt, name, b, n)
                    if len(t_exact):
                        err = max(err, float((t_dense - t_exact).abs().max()))
        if "readout" not in case:
            v_dense = dense.output.v.max(0).values
            assert torch.allclose(exact.output.v_max, v_dense, atol=5e-2 * dt / 1e-4)
        errors.append(err)
        assert err <= 12 * dt
    assert errors[-1] < errors[0] / 2
    assert int(torch.isfinite(exact["hidden"].times).sum()) >= 8


# ----------------------------------------------------------------------------- EventProp
def _objective(net):
    out = net(events(), backend={"name": "event", "grid": False})
    times = out["hidden"].times
    coef = torch.randn(times.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    loss = 100 * (torch.where(torch.isfinite(times), times, 0.0) * coef).sum()
    if out.output.v_max is not None:
        loss = loss + (out.output.v_max * torch.tensor([1.0, -0.7], dtype=F64)).sum()
    else:
        t_out = out.output.times
        loss = loss + 50 * torch.where(torch.isfinite(t_out), t_out, 0.0).sum()
    return loss, int(torch.isfinite(times).sum())


@pytest.mark.parametrize("case", [{}, {"recurrent": True}, {"t_refrac": 2e-3},
                                  {"readout": "lif"},
                                  {"recurrent": True, "t_refrac": 1e-3, "readout": "lif"}])
def test_delay_gradients_match_central_finite_differences(case):
    """dL/dd_c (EventProp: the arrival-time gradients of channel c, summed) against central
    differences in float64, every delay of both projections; the weights keep theirs."""
    net = make_net(**case)
    # delays off the whole steps, so no two arrivals coincide
    with torch.no_grad():
        net.layers["fc1"].delay.add_(torch.tensor([0.37e-3, 0.21e-3, 0.13e-3], dtype=F64))
        net.layers["fc2"].delay.add_(torch.tensor([0.11e-3, 0.29e-3, 0.43e-3, 0.17e-3,
                                                   0.31e-3], dtype=F64))
    loss, n_spikes = _objective(net)
    assert n_spikes >= 12
    net.zero_grad()
    loss.backward()
    eps = 1e-8
    for name in ("fc1", "fc2"):
        p = net.layers[name].delay
        numeric = torch.zeros_like(p)
        for k in range(p.numel()):
            with torch.no_grad():
                orig = float(p[k])
                p[k] = orig + eps
                up, n_up = _objective(net)
                p[k] = orig - eps
                down, n_down = _objective(net)
                p[k] = orig
            assert n_up == n_down == n_spikes  # no spike appears or vanishes
            numeric[k] = (up - down) / (2 * eps)
        assert float(numeric.abs().max()) > 0
        rel = float((p.grad - numeric).abs().max() / numeric.abs().max())
        assert rel <= 1e-4, (name, rel, p.grad, numeric)
    assert float(net.layers["fc1"].weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("readout", ["li", "lif"])
def test_delay_gradients_at_whole_steps_match_one_sided_differences(readout):
    """Whole-step delays on grid input: arrivals of different channels coincide, and a delay
    of 0 sits on the lower bound. The gradient equals the right difference (and the left one
    where the delay is > 0): equal arrivals add their jumps, the co-state does not jump at an
    input, so a tie is no kink here."""
    net = make_net(readout=readout)
    with torch.no_grad():  # float64 whole steps (DelayedLinear stored them as float32)
        net.layers["fc1"].delay.copy_(torch.tensor(D_IN, dtype=F64))
    x = dense_input(1e-3)
    x[[4, 7, 2], :, [0, 1, 2]] += 1  # + d = 3, 0, 5 ms: three arrivals at 7 ms in each sample
    arrive = torch.arange(len(x), dtype=F64)[:, None] * 1e-3 + torch.tensor(D_IN, dtype=F64)
    assert int(((arrive == 7e-3) & (x[:, 0] > 0)).sum()) == 3  # they do tie, in float64

    def objective():
        out = net(x, backend={"name": "event", "grid": False})
        loss = 100 * finite(out["hidden"].times).sum()
        if out.output.v_max is not None:
            return loss + out.output.v_max.sum()
        return loss + 50 * finite(out.output.times).sum()

    objective().backward()
    eps = 1e-8
    for name in ("fc1", "fc2"):
        p = net.layers[name].delay
        for k in range(p.numel()):
            with torch.no_grad():
                orig = float(p[k])
                base = objective()
                sides = (1, -1) if orig > 0 else (1,)
                for side in sides:
                    p[k] = orig + side * eps
                    numeric = side * float(objective() - base) / eps
                    p[k] = orig
                    assert abs(float(p.grad[k]) - numeric) <= 1e-4 * abs(numeric), (
                        name, k, side, float(p.grad[k]), numeric)


def test_fixed_delays_train_the_weights_only():
    net = make_net(learn_delay=False)
    loss, _ = _objective(net)
    loss.backward()
    assert not isinstance(net.layers["fc1"].delay, torch.nn.Parameter)
    assert float(net.layers["fc1"].weight.grad.abs().sum()) > 0


def test_delays_in_the_loop_of_an_observing_backend():
    """With ``observe`` the hidden spike times are the device's (here the dense simulator's,
    delays included); the delayed arrivals are taken from them and the delays get gradients."""
    net = make_net()
    x = dense_input(1e-3).clamp(max=1)
    device = net(x, backend="sim")
    out = net(x, backend={"name": "event", "observe": "sim"})
    assert torch.equal(out["hidden"].spikes, device["hidden"].spikes)
    assert torch.equal(out.output.v, device.output.v)
    out.output.v_max.sum().backward()
    for name in ("fc1", "fc2"):
        grad = net.layers[name].delay.grad
        assert bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0


def test_the_trainer_learns_per_axon_delays_on_the_event_backend(tmp_path):
    from spikeloop.training import Trainer, load_config

    cfg = load_config("configs/yinyang_eventprop.yaml", [
        "data.train_size=30", "data.val_size=30", "data.test_size=30", "train.epochs=1",
        "train.batch_size=30", "model.hidden=[10]", f"run.out_dir={tmp_path}",
        "train.progress=false", "model.delays={max_delay: 0.01, per: axon}"])
    trainer = Trainer(cfg)
    layer = trainer.network.layers["fc1"]
    before = layer.delay.detach().clone()
    summary = trainer.fit()
    assert summary["backend"]["name"] == "event"
    moved = layer.delay.detach() - before
    assert float(moved.abs().max()) > 0  # EventProp gave the delays a gradient
    delay = layer.delay.detach()
    assert float(delay.min()) >= 0 and float(delay.max()) <= 0.01 * (1 + 1e-6)  # constrain_


# ----------------------------------------------------------------------------- errors
def test_bad_delays_and_refused_delayed_layers_raise_specific_errors():
    net = make_net()
    with torch.no_grad():
        net.layers["fc2"].delay[1] = 9e-3
    with pytest.raises(ParameterError, match=r"layer 'fc2': DelayedLinear delay \(per axon, "
                                             r"seconds\) must lie in \[0, max_delay = 0.008 s\], "
                                             r"got 0.009 s at index \[1\]"):
        net(events(), backend="event")
    with torch.no_grad():
        net.layers["fc2"].delay[1] = -1e-3
    with pytest.raises(ParameterError, match=r"got -0.001 s at index \[1\]"):
        net(events(), backend="event")
    with torch.no_grad():  # NaN: refused before any backend runs, as for every parameter
        net.layers["fc2"].delay[1] = float("nan")
    with pytest.raises(NonFiniteError, match=r"fc2\.delay"):
        net(events(), backend="event")
    synapse = Network({"input": Input(3), "fc": DelayedLinear(3, 2, 4e-3, dt=1e-3),
                       "out": CubaLI(2)})
    with pytest.raises(ParameterError, match=r"layer 'fc' is a DelayedLinear with a delay per "
                                             r"synapse .* runs DelayedLinear with per=\"axon\""):
        synapse(events(), backend="event")
    biased = Network({"input": Input(3), "fc": DelayedLinear(3, 2, 4e-3, dt=1e-3, per="axon",
                                                             bias=True), "out": CubaLI(2)})
    with pytest.raises(ParameterError, match="DelayedLinear 'fc' has a bias"):
        biased(events(), backend="event")
