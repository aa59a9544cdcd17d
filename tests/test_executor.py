"""The one graph walk (spikeloop.backends.executor.execute) against the layers run by hand.

The simulator, the analog chip and the in-the-loop replay all walk the graph with
``execute``, so comparing them with each other cannot catch a bug in the walk itself (a
dropped input projection would vanish from both sides). These tests compute the same networks
by calling the modules directly, outside the executor.
"""

from __future__ import annotations

import torch

from spikeloop.backends import ModelHooks, execute
from spikeloop.network import GraphNetwork, Network
from spikeloop.nn import CubaLI, CubaLIF, Delay, Input, Linear


def test_a_population_receives_the_sum_of_all_its_inputs():
    torch.manual_seed(0)
    layers = {"input": Input(5), "fc_a": Linear(5, 12), "h1": CubaLIF(12),
              "fc_h": Linear(12, 8), "fc_skip": Linear(5, 8), "h2": CubaLIF(8),
              "fc_o": Linear(8, 3), "fc_o1": Linear(12, 3), "out": CubaLI(3)}
    wiring = {"fc_a": ["input"], "h1": ["fc_a"], "fc_h": ["h1"], "fc_skip": ["input"],
              "h2": ["fc_h", "fc_skip"], "fc_o": ["h2"], "fc_o1": ["h1"],
              "out": ["fc_o", "fc_o1"]}
    net = GraphNetwork(layers, wiring)
    with torch.no_grad():
        for name in ("fc_a", "fc_h", "fc_skip"):
            net.layers[name].weight.normal_(1.0, 1.0)
    x = (torch.rand(60, 4, 5) < 0.3).float()
    for kernel in ("auto", "reference"):
        out = net(x, backend={"name": "sim", "kernel": kernel})
        m = net.layers
        h1, _ = m["h1"](m["fc_a"](x))
        h2, _ = m["h2"](m["fc_h"](h1.spikes) + m["fc_skip"](x))
        o, _ = m["out"](m["fc_o"](h2.spikes) + m["fc_o1"](h1.spikes))
        assert h1.spikes.sum() > 0 and h2.spikes.sum() > 0
        assert torch.equal(out["h2"].spikes, h2.spikes)
        torch.testing.assert_close(out["out"].v, o.v)
        # each input matters: without the skip, h2 would differ
        alone, _ = m["h2"](m["fc_h"](h1.spikes))
        assert not torch.equal(alone.spikes, h2.spikes)


def test_a_recurrent_population_and_a_stateful_projection_carry_state_across_windows():
    torch.manual_seed(1)
    net = Network({"input": Input(4), "delay": Delay(torch.tensor([0, 2, 5, 1])),
                   "fc": Linear(4, 6), "h": CubaLIF(6, recurrent=True), "fc2": Linear(6, 2),
                   "out": CubaLI(2)})
    with torch.no_grad():
        net.layers.fc.weight.normal_(1.5, 0.5)
        net.layers.h.recurrent.weight.normal_(0.0, 0.5)
    x = (torch.rand(40, 3, 4) < 0.3).float()
    whole, state = execute(net.graph, x, ModelHooks())
    first, mid = execute(net.graph, x[:17], ModelHooks())
    second, end = execute(net.graph, x[17:], ModelHooks(), mid)
    assert set(mid) == {"input", "delay", "h", "out"}  # populations and the delay line
    for name in ("h", "out"):
        for field in ("spikes", "v"):
            a = getattr(whole[name], field)
            if a is not None:
                torch.testing.assert_close(
                    torch.cat([getattr(first[name], field), getattr(second[name], field)]), a)
    torch.testing.assert_close(end["h"].neuron.v, state["h"].neuron.v)


def test_observed_replay_takes_the_observed_values():
    """ModelHooks(observed=...) (the in-the-loop bridge) returns the observed membrane and
    spikes of every population with the model's gradient."""
    torch.manual_seed(2)
    net = Network({"input": Input(3), "fc": Linear(3, 5), "h": CubaLIF(5), "fc2": Linear(5, 2),
                   "out": CubaLI(2)})
    with torch.no_grad():
        net.layers.fc.weight.normal_(1.0, 0.5)
        device = net(x := (torch.rand(30, 2, 3) < 0.4).float())
        noisy = {k: type(o)(spikes=o.spikes, v=None if o.v is None else o.v + 0.01)
                 for k, o in device.populations.items()}
    replay, _ = execute(net.graph, x, ModelHooks(observed=noisy))
    for name in ("h", "out"):
        assert torch.equal(replay[name].v, noisy[name].v)
    replay["out"].v.sum().backward()
    assert net.layers.fc.weight.grad.abs().sum() > 0


def test_a_population_subclass_that_overrides_the_dynamics_is_refused():
    """Backends run the registered description, so a subclass whose own simulate() would be
    silently bypassed is an error naming the method."""
    import pytest

    from spikeloop.errors import ParameterError

    class Custom(CubaLIF):
        def simulate(self, *args, **kwargs):  # pragma: no cover - never run
            raise AssertionError

    with pytest.raises(ParameterError, match=r"Custom overrides simulate\(\)"):
        Network({"input": Input(2), "fc": Linear(2, 3), "h": Custom(3), "fc2": Linear(3, 1),
                 "out": CubaLI(1)})
