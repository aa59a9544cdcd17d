"""The event backend's native engine (backends/event/event_native.c) against its torch engine:
the same spike times (1e-12 relative), grid membranes, readout maxima and EventProp gradients
(weights, recurrent weights, input times, per-axon delays; 1e-10 relative) on random
feed-forward and recurrent CUBA networks with several spikes per neuron."""

import pytest
import torch

from spikeloop.backends import SpikeEvents
from spikeloop.backends.event import _native
from spikeloop.network import Network
from spikeloop.nn import CubaLI, CubaLIF, DelayedLinear, Input, Linear

F64 = torch.float64
pytestmark = pytest.mark.skipif(_native.engine() is None,
                                reason=f"no native event engine: {_native.unavailable_reason()}")


def make_net(recurrent=False, t_refrac=0.0, reset="value", readout="li", delays=False,
             two=False, seed=0, n_in=6, hidden=12):
    """Random network (channels → hidden [→ hidden] → readout), weights strong enough that the
    hidden neurons fire several times in the 60 ms window."""
    g = torch.Generator().manual_seed(seed)
    dt = 1e-3

    def proj(a, b):
        if delays:
            return DelayedLinear(a, b, 8e-3, dt=dt, per="axon",
                                 delay=(torch.rand(a, generator=g) * 8e-3).tolist())
        return Linear(a, b)

    layers = {"input": Input(n_in), "fc1": proj(n_in, hidden),
              "h1": CubaLIF(hidden, dt=dt, recurrent=recurrent, t_refrac=t_refrac, reset=reset,
                            tau_syn=5e-3)}
    if two:
        layers |= {"fc2": proj(hidden, hidden),
                   "h2": CubaLIF(hidden, dt=dt, t_refrac=t_refrac, reset=reset, tau_syn=8e-3)}
    layers |= {"fo": proj(hidden, 3),
               "output": CubaLI(3, dt=dt) if readout == "li"
               else CubaLIF(3, dt=dt, t_refrac=t_refrac)}
    net = Network(layers).double()
    with torch.no_grad():
        for name, layer in net.layers.items():
            if isinstance(layer, Linear | DelayedLinear):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 1.5 + 1.5)
            if name.startswith("h") and recurrent and name == "h1":
                layer.recurrent.weight.copy_(torch.randn(hidden, hidden, generator=g) * 0.4)
    return net


def make_events(batch=3, n_in=6, per=25, seed=0, duration=60e-3):
    g = torch.Generator().manual_seed(seed + 100)
    times = torch.sort(torch.rand(batch, per, generator=g, dtype=F64) * duration * 0.8).values
    chans = torch.randint(0, n_in, (batch, per), generator=g)
    chans[-1, -5:] = -1  # padding in the last sample
    times[-1, -5:] = 0.0
    times[-1] = torch.where(chans[-1] >= 0, times[-1], times[-1, :-5].max())
    return times, chans, duration


def run(net, native, monkeypatch, events):
    """Forward and backward through the exact losses; the quantities to compare."""
    monkeypatch.setenv("SPIKELOOP_NATIVE", "1" if native else "0")
    times, chans, duration = events
    t = times.clone().requires_grad_(True)
    net.zero_grad()
    out = net(SpikeEvents(t, chans, duration), backend="event")
    spikes = {k: o.times for k, o in out.populations.items() if getattr(o, "times", None)
              is not None}
    loss = sum((torch.where(torch.isfinite(s), s, 0.0) * torch.linspace(1, 2, s.shape[1],
               dtype=F64)[:, None]).sum() for s in spikes.values())
    readout = out.output
    if readout.v_max is not None:
        loss = loss + (readout.v_max * torch.arange(1, 4, dtype=F64)).sum()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    grads["input times"] = t.grad.clone()
    grids = {k: o.v for k, o in out.populations.items() if o.v is not None and k != "input"}
    return spikes, readout.v_max, grids, grads


CASES = [
    {}, {"recurrent": True}, {"t_refrac": 2e-3}, {"recurrent": True, "t_refrac": 1.5e-3},
    {"reset": "subtract"}, {"readout": "lif"}, {"delays": True}, {"delays": True,
                                                                  "recurrent": True},
    {"two": True, "recurrent": True, "t_refrac": 1e-3},
]


@pytest.mark.parametrize("case", CASES)
def test_native_engine_equals_the_torch_engine(case, monkeypatch):
    net = make_net(**case)
    events = make_events()
    ref = run(net, False, monkeypatch, events)
    got = run(net, True, monkeypatch, events)
    spikes = ref[0]
    assert sum(int(torch.isfinite(s).sum()) for s in spikes.values()) >= 60
    assert max(int(torch.isfinite(s).sum(2).max()) for s in spikes.values()) >= 3  # multi-spike
    for name, s in spikes.items():
        assert s.shape == got[0][name].shape, name
        assert torch.equal(torch.isfinite(s), torch.isfinite(got[0][name])), name
        ok = torch.isfinite(s)
        torch.testing.assert_close(got[0][name][ok], s[ok], rtol=1e-12, atol=0)
    if ref[1] is not None:
        torch.testing.assert_close(got[1], ref[1], rtol=1e-12, atol=1e-12)
    for name, v in ref[2].items():
        torch.testing.assert_close(got[2][name], v, rtol=1e-10, atol=1e-10)
    assert ref[3].keys() == got[3].keys()
    for name, g in ref[3].items():
        scale = float(g.abs().max())
        assert scale > 0, name
        torch.testing.assert_close(got[3][name], g, rtol=1e-10, atol=1e-10 * scale, msg=name)


def test_refused_runs_raise_the_torch_engines_error(monkeypatch):
    """A neuron over max_spikes: the native engine stops and the torch engine's error (the same
    ParameterError) is raised."""
    from spikeloop.errors import ParameterError

    net = make_net()
    with torch.no_grad():
        net.layers["fc1"].weight.fill_(200.0)
    times, chans, duration = make_events(batch=1)
    monkeypatch.setenv("SPIKELOOP_NATIVE", "1")
    with pytest.raises(ParameterError, match="max_spikes = 5"):
        net(SpikeEvents(times, chans, duration), backend={"name": "event", "max_spikes": 5})


def test_threads_give_the_same_result(monkeypatch):
    """One sample per OpenMP thread and one weight-gradient accumulator per thread: two threads
    give what one gives (to rounding of the per-thread sums)."""
    net = make_net(recurrent=True)
    events = make_events(batch=4)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(net, True, monkeypatch, events)
        torch.set_num_threads(2)
        two = run(net, True, monkeypatch, events)
    finally:
        torch.set_num_threads(before)
    for name, s in one[0].items():
        assert torch.equal(s, two[0][name]), name  # per-sample work: identical
    for name, g in one[3].items():
        torch.testing.assert_close(two[3][name], g, rtol=1e-12, atol=1e-12 * float(g.abs().max()))


def test_ctypes_signatures_match_the_c_functions():
    """_native's declarations against event_native.c."""
    from pathlib import Path

    from test_kernels import check_ctypes_signatures

    source = Path(_native.__file__).with_name("event_native.c").read_text()
    assert {"sl_event_forward", "sl_event_adjoint"} <= check_ctypes_signatures(
        _native._declare, source)


def test_event_lists_from_the_native_compression_equal_the_torch_ones():
    # _dense_events: each sample's non-zeros in time, then channel order, padded; the rows
    # compressed by the native kernels give the same lists as the torch operations
    from spikeloop.backends.event.forward import _dense_events_native, _dense_events_torch
    g = torch.Generator().manual_seed(3)
    for shape, density in (((60, 9, 40), 0.08), ((7, 3, 5), 0.6), ((4, 2, 3), 0.0)):
        x = (torch.rand(shape, generator=g) < density).float()
        x = x * torch.where(torch.rand(shape, generator=g) < 0.3, 2.5, 1.0)  # amplitudes
        x[:, 0] = 0  # a sample without events
        for a, b in zip(_dense_events_native(x, 1e-3), _dense_events_torch(x, 1e-3),
                        strict=True):
            assert a.dtype == b.dtype and torch.equal(a, b)


def test_input_table_of_sorted_events_equals_the_sorted_table():
    # the backend's sorted event lists skip the sort: the end marker swaps into place; the
    # table and the map back to the events (order) are those of the stable sort where they
    # matter: every event before t_max, the marker, and padding of time +inf, amplitude 0
    from spikeloop.backends.event.forward import _input_table
    g = torch.Generator().manual_seed(4)
    times = torch.sort(torch.rand(5, 12, generator=g, dtype=torch.float64) * 1.3).values
    times[1, 8:] = float("inf")  # padding
    times[2] = float("inf")  # no events
    src = torch.randint(0, 7, (5, 12), generator=g)
    amp = torch.rand(5, 12, generator=g, dtype=torch.float64)
    fast = _input_table(times, src, amp, 1.0)
    swapped = torch.cat([times[:, 1:2], times[:, :1], times[:, 2:]], 1)  # unsorted: sorts
    order_in = torch.cat([torch.tensor([1, 0]), torch.arange(2, 12)])
    slow = _input_table(swapped, src[:, order_in], amp[:, order_in], 1.0)
    t, s, a, order = fast
    assert torch.equal(t, slow[0]) and torch.equal(a, slow[2])
    real = torch.isfinite(t) & (a > 0)
    assert torch.equal(s[real], slow[1][real])
    marker = t == 1.0
    assert bool((marker.sum(1) == 1).all()) and bool((a[marker] == 0).all())
    # the map back: table entry k came from event order[b, k] (index 12: the marker)
    assert torch.equal(order[marker], torch.full((5,), 12))
    assert torch.equal(torch.gather(torch.cat([times, torch.ones(5, 1)], 1), 1, order)[real],
                       t[real])
    assert torch.equal(torch.sort(order, 1).values, torch.arange(13).expand(5, 13))


def test_a_non_finite_loss_gradient_at_a_spike_counts_as_zero(monkeypatch):
    # both engines take NaN/±inf in dL/dt at a spike as 0: the same weight gradients as the
    # loss gradient with those entries set to 0
    net = make_net(recurrent=True)
    times, chans, duration = make_events()

    def grads(native: bool, poison: bool) -> torch.Tensor:
        monkeypatch.setenv("SPIKELOOP_NATIVE", "1" if native else "0")
        net.zero_grad()
        out = net(SpikeEvents(times, chans, duration), backend="event")
        s = out.populations["h1"].times
        real = torch.isfinite(s).nonzero()[:3].unbind(1)

        def hook(g: torch.Tensor) -> torch.Tensor:
            g = g.clone()
            g[real] = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=F64) \
                if poison else 0.0
            return g

        s.register_hook(hook)
        (torch.where(torch.isfinite(s), s, 0.0).sum() + out.output.v_max.sum()).backward()
        return net.layers["fc1"].weight.grad.clone()

    want = grads(False, False)
    for native in (False, True):
        got = grads(native, True)
        assert bool(torch.isfinite(got).all())
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
