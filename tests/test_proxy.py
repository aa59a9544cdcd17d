"""ANN-proxy training: the rate network of an IF network, its agreement with the spiking run,
the substitution (values from the spikes, gradients from the rates), shared tensors, and the
networks and backends it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spikeloop.backends import get_backend
from spikeloop.errors import ConfigError
from spikeloop.network import Network
from spikeloop.nn import (
    IF,
    LI,
    LIF,
    AvgPool2d,
    Conv2d,
    CubaLI,
    CubaLIF,
    Delay,
    Flatten,
    Input,
    Linear,
)
from spikeloop.training import Trainer, load_config
from spikeloop.training.proxy import check_proxy, proxy_output, rate_network

DT = 1e-3
ROOT = Path(__file__).resolve().parents[1]


def _fc(n_in=3, n_hidden=4, n_out=2, reset="subtract", bias=True, **hidden):
    torch.manual_seed(0)
    return Network({
        "input": Input(n_in),
        "fc1": Linear(n_in, n_hidden, bias=bias),
        "hidden": IF(n_hidden, dt=DT, reset=reset, **hidden),
        "fc2": Linear(n_hidden, n_out, bias=bias),
        "out": LI(n_out, dt=DT, tau_mem=5e-3),
    })


def test_rates_and_readout_are_the_closed_forms():
    net = _fc(v_threshold=1.5, v_reset=-0.5)
    x = torch.rand(6, 5, 3)
    pops = rate_network(net.graph, x)
    w1, b1 = net.layers.fc1.weight, net.layers.fc1.bias
    current = x.mean(0) @ w1.T + b1
    rate = (current / 2.0).clamp(0, 1)  # g I / (ϑ − v_reset), clipped to one spike per step
    assert pops["hidden"].spikes.shape == (1, 5, 4)
    torch.testing.assert_close(pops["hidden"].spikes[0], rate)
    # the readout runs its own dynamics, 6 steps, on the constant mean current
    drive = rate @ net.layers.fc2.weight.T + net.layers.fc2.bias
    beta = torch.exp(torch.tensor(-DT / 5e-3))
    v, trace = torch.zeros_like(drive), []
    for _ in range(6):
        v = beta * v + (1 - beta) * drive
        trace.append(v)
    torch.testing.assert_close(pops["out"].v, torch.stack(trace))


def test_the_rate_is_the_spike_rate_of_a_constant_current():
    """Reset by subtraction: over T steps the count is within one spike of T × rate."""
    net = _fc(n_hidden=50)
    x = torch.rand(1, 8, 3).expand(400, 8, 3)
    with torch.no_grad():
        rate = rate_network(net.graph, x)["hidden"].spikes[0]
        count = net(x)["hidden"].spikes.sum(0)
    assert (rate > 0).any() and (rate < 1).any()
    assert ((count - 400 * rate).abs() <= 1.0 + 1e-4).all()


def test_proxy_keeps_the_spiking_values_and_takes_the_rate_gradient():
    net = _fc()
    x = (torch.rand(8, 5, 3) < 0.6).float()
    y = torch.tensor([0, 1, 1, 0, 1])
    with torch.no_grad():
        snn = net(x)
    out = proxy_output(net.graph, x, snn)
    for name in ("hidden", "out"):
        for key in ("spikes", "v"):
            value = getattr(snn[name], key)
            if value is not None:
                assert torch.equal(getattr(out[name], key), value)
    logits = lambda v: v.max(0).values  # noqa: E731 (max_membrane_ce with scale 1)
    loss = torch.nn.functional.cross_entropy(logits(out["out"].v), y)
    params = list(net.parameters())
    got = torch.autograd.grad(loss, params, allow_unused=True)
    # by hand: the rate network's readout trace with the spiking values substituted
    ann = rate_network(net.graph, x)["out"].v
    mixed = snn["out"].v + (ann - ann.detach())
    want = torch.autograd.grad(torch.nn.functional.cross_entropy(logits(mixed), y), params,
                               allow_unused=True)
    for g, w in zip(got, want, strict=True):
        if w is None:
            assert g is None or not g.abs().sum()
        else:
            torch.testing.assert_close(g, w)
    assert any(g is not None and g.abs().sum() > 0 for g in got)


def test_the_rate_network_runs_on_the_spiking_networks_own_tensors():
    net = _fc()
    graph = net.graph
    assert graph.nodes_by_name["fc1"].params["weight"] is net.layers.fc1.weight
    with torch.no_grad():
        net.layers.fc1.weight.uniform_(0.1, 0.3)  # rates inside (0, 1)
    x = torch.rand(4, 2, 3)
    rate_network(graph, x)["out"].v.sum().backward()
    assert net.layers.fc1.weight.grad is not None and net.layers.fc1.weight.grad.abs().sum() > 0


def test_a_trained_threshold_gets_a_gradient_through_the_rate():
    net = _fc(learn=["v_threshold"])
    x = torch.rand(4, 2, 3) + 1.0
    rate_network(net.graph, x)["out"].v.sum().backward()
    assert net.layers.hidden.v_threshold.grad is not None


def test_convolutions_and_pooling_have_rates():
    torch.manual_seed(1)
    net = Network({"input": Input((1, 6, 6)), "conv1": Conv2d(1, 2, 3, padding=1, bias=True),
                   "pool1": AvgPool2d(2), "spikes1": IF((2, 3, 3), dt=DT, reset="subtract"),
                   "flatten": Flatten(), "fc1": Linear(18, 3), "out": LI(3, dt=DT)})
    x = torch.rand(5, 4, 1, 6, 6)
    pops = rate_network(net.graph, x)
    conv = torch.nn.functional.conv2d(x.mean(0), net.layers.conv1.weight, net.layers.conv1.bias,
                                      padding=1)
    want = torch.nn.functional.avg_pool2d(conv, 2).clamp(0, 1)
    torch.testing.assert_close(pops["spikes1"].spikes[0], want)


@pytest.mark.parametrize(("network", "match"), [
    (lambda: Network({"input": Input(3), "fc": Linear(3, 4), "h": LIF(4, dt=DT),
                      "fo": Linear(4, 2), "out": LI(2, dt=DT)}),
     r"population 'h' \(LIF\) is not a non-leaky integrate-and-fire"),
    (lambda: _fc(t_refrac=2e-3), r"population 'hidden' \(IF\).*refractory"),
    (lambda: _fc(v_threshold=0.5, v_reset=0.5),
     r"population 'hidden' has v_threshold ≤ v_reset \(smallest v_threshold − v_reset: 0\)"),
    (lambda: Network({"input": Input(3), "fc": Linear(3, 4),
                      "h": IF(4, dt=DT, recurrent=True), "fo": Linear(4, 2),
                      "out": LI(2, dt=DT)}),
     r"population 'h' has recurrent weights"),
    (lambda: Network({"input": Input(3), "fc": Linear(3, 4), "d": Delay(2),
                      "h": IF(4, dt=DT), "fo": Linear(4, 2), "out": LI(2, dt=DT)}),
     r"Delay node 'd' has no rate counterpart"),
])
def test_networks_without_a_rate_network_are_refused_by_name(network, match):
    with pytest.raises(ConfigError, match=match):
        check_proxy(network().graph)


def test_the_event_backends_records_are_refused():
    net = Network({"input": Input(3), "fc1": Linear(3, 4), "hidden": CubaLIF(4, dt=DT),
                   "fc2": Linear(4, 2), "out": CubaLI(2, dt=DT)}, backend=get_backend("event"))
    x = (torch.rand(6, 2, 3) < 0.5).float()
    with torch.no_grad():
        out = net(x)
    with pytest.raises(ConfigError, match="ann_proxy needs grid observables"):
        proxy_output(net.graph, x, out)


def _digits(tmp_path, *extra):
    return load_config("configs/digits.yaml", [
        f"run.out_dir={tmp_path}", "train.progress=false", "run.threads=1",
        "data.train_size=400", "data.val_size=100", "data.test_size=200",
        "data.encoder={name: direct}", "data.duration=8.0e-3", "data.dt=1.0e-3",
        "model.neuron=if", "model.readout=li", "model.neuron_params={reset: subtract}",
        "model.init={input_mean: 0.0, input_std: 0.3, hidden_mean: 0.0, hidden_std: 0.3}",
        "train.method=ann_proxy", "train.lr=1.0e-2", "train.loss.scale=0.1", *extra])


def test_the_trainer_learns_digits_with_the_proxy(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    summary = Trainer(_digits(tmp_path, "train.epochs=8")).fit()
    assert summary["test_acc"] > 0.7  # chance 0.1; measured 0.82


def test_the_trainer_refuses_a_proxy_for_lif_and_an_unknown_method(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match=r"population 'hidden1' \(LIF\)"):
        Trainer(_digits(tmp_path, "model.neuron=lif"))
    with pytest.raises(ConfigError, match=r"unknown train.method 'proxy'; known: .*backprop"):
        _digits(tmp_path, "train.method=proxy")
