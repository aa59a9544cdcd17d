"""The experiment builders: init_weights draws a network's weights as the configs do."""

import pytest
import torch

from spikeloop.errors import ArgumentTypeError, ConfigError
from spikeloop.network import Network
from spikeloop.nn import CubaLI, CubaLIF, Input, Linear
from spikeloop.training import build_network, init_weights, load_config


def _net(recurrent=False):
    return Network({
        "input": Input(5), "fc1": Linear(5, 400),
        "hidden": CubaLIF(400, dt=0.5e-3, recurrent=recurrent),
        "fc2": Linear(400, 300), "output": CubaLI(300, dt=0.5e-3),
    })


def test_init_weights_draws_the_config_distributions():
    net = init_weights(_net(recurrent=True), generator=torch.Generator().manual_seed(0))
    w1, w2 = net.layers.fc1.weight.detach(), net.layers.fc2.weight.detach()
    w_rec = net.layers.hidden.recurrent.weight.detach()
    assert abs(float(w1.mean()) - 1.0) < 0.1 and abs(float(w1.std()) - 1.0) < 0.1
    assert abs(float(w2.mean())) < 0.01 and abs(float(w2.std()) - 0.5) < 0.01
    assert abs(float(w_rec.std()) - 0.1) < 0.005
    net = init_weights(_net(), {"input_mean": 3.0, "input_std": 0.01})
    assert abs(float(net.layers.fc1.weight.detach().mean()) - 3.0) < 0.01


def test_init_weights_readout_keys_draw_the_last_projection_only():
    """readout_mean/readout_std draw the last of two or more projections (Kaiming's
    sqrt(2 / fan_in) differs per layer); the middle ones stay hidden_*; without them the last
    is drawn as the hidden ones; a network with one projection keeps input_* for it."""
    def three():
        return Network({
            "input": Input(5), "fc1": Linear(5, 400), "h1": CubaLIF(400, dt=0.5e-3),
            "fc2": Linear(400, 300), "h2": CubaLIF(300, dt=0.5e-3),
            "fc3": Linear(300, 200), "output": CubaLI(200, dt=0.5e-3)})

    net = init_weights(three(), {"hidden_std": 0.05, "readout_mean": 0.5, "readout_std": 0.2})
    w2, w3 = net.layers.fc2.weight.detach(), net.layers.fc3.weight.detach()
    assert abs(float(w2.std()) - 0.05) < 0.002 and abs(float(w2.mean())) < 0.002
    assert abs(float(w3.std()) - 0.2) < 0.005 and abs(float(w3.mean()) - 0.5) < 0.005
    net = init_weights(three(), {"hidden_std": 0.05, "readout_std": 0.2})
    assert abs(float(net.layers.fc3.weight.detach().mean())) < 0.005  # hidden_mean 0
    net = init_weights(three(), {"hidden_std": 0.05})
    assert abs(float(net.layers.fc3.weight.detach().std()) - 0.05) < 0.002
    one = Network({"input": Input(5), "fc1": Linear(5, 400), "output": CubaLI(400, dt=0.5e-3)})
    w = init_weights(one, {"readout_std": 0.01}).layers.fc1.weight.detach()
    assert abs(float(w.std()) - 1.0) < 0.1  # input_std


def test_init_weights_is_what_build_network_uses():
    cfg = load_config(None, ["model.hidden=[400]", "model.recurrent=true"])
    built = build_network(cfg.model, 5, 300, 0.5e-3, torch.Generator().manual_seed(1))
    drawn = init_weights(_net(recurrent=True), generator=torch.Generator().manual_seed(1))
    assert torch.equal(built.layers.fc1.weight, drawn.layers.fc1.weight)
    assert torch.equal(built.layers.fc2.weight, drawn.layers.fc2.weight)
    assert torch.equal(built.layers.hidden1.recurrent.weight, drawn.layers.hidden.recurrent.weight)


def test_init_weights_unknown_key_is_an_error():
    with pytest.raises(ConfigError, match=r"unknown model\.init keys \['input_sd'\]"):
        init_weights(_net(), {"input_sd": 1.0})
    with pytest.raises(ConfigError, match="input_sd"):
        build_network(load_config(None, ["model.init={input_sd: 1.0}"]).model, 5, 3, 0.5e-3)


def test_conv_stages_pool_currents_or_spikes():
    def build(**stage):
        cfg = load_config(overrides=["model.neuron=if", "model.readout=li",
                                     f"model.conv=[{{channels: 3, kernel: 3, pool: 2, "
                                     f"{', '.join(f'{k}: {v}' for k, v in stage.items())}}}]",
                                     "model.hidden=[4]"]).model
        return build_network(cfg, (1, 6, 6), 2, 1e-3)

    currents = build()
    assert list(currents.layers)[:4] == ["input", "conv1", "pool1", "spikes1"]
    assert currents.layers.spikes1.shape == (3, 3, 3)
    spikes = build(pool_spikes="true")
    assert list(spikes.layers)[:4] == ["input", "conv1", "spikes1", "pool1"]
    assert spikes.layers.spikes1.shape == (3, 6, 6)  # the neurons at full resolution
    with torch.no_grad():
        out = spikes(torch.rand(4, 2, 1, 6, 6))
    assert out["spikes1"].spikes.shape == (4, 2, 3, 6, 6)
    assert spikes.graph.nodes_by_name["pool1"].inputs == ("spikes1",)
    with pytest.raises(ArgumentTypeError, match=r"model.conv\[0\].pool_spikes must be True or"):
        build(pool_spikes="2")


def test_model_delays_make_every_hidden_projection_a_delayed_linear():
    """``model.delays`` turns fc1 … (into hidden layers, not the readout's) into DelayedLinear
    with the given range and kind; init_weights draws the weights as for a Linear,
    build_network the delays uniform in [0, max_delay] from the generator (reproducible), and
    init_weights alone never touches delays a user set."""
    from spikeloop.nn import DelayedLinear

    def build(delays, seed=0):
        cfg = load_config(overrides=["model.hidden=[16, 8]"]).model
        cfg = type(cfg)(**{**cfg.__dict__, "delays": delays})
        return build_network(cfg, n_in=5, n_out=3, dt=1e-3,
                             generator=torch.Generator().manual_seed(seed))

    net = build({"max_delay": 4e-3, "per": "synapse"})
    fc1, fc2, fc3 = (net.layers[f"fc{k}"] for k in (1, 2, 3))
    assert isinstance(fc1, DelayedLinear) and isinstance(fc2, DelayedLinear)
    assert type(fc3) is Linear  # the readout's projection keeps no delays
    assert (fc1.per, fc1.max_steps, fc1.delay.shape, fc1.delay.requires_grad) == (
        "synapse", 4, (16, 5), True)
    d = fc1.delay.detach()
    assert float(d.min()) >= 0 and float(d.max()) <= 4e-3
    assert float(d.std()) > 5e-4  # spread over the range, not one value
    again = build({"max_delay": 4e-3, "per": "synapse"})
    assert torch.equal(again.layers.fc1.delay, fc1.delay)
    assert torch.equal(again.layers.fc1.weight, fc1.weight)
    fixed = build({"max_delay": 4e-3, "learn": False}).layers.fc1
    assert (fixed.per, fixed.delay.shape, fixed.delay.requires_grad) == ("axon", (5,), False)
    from spikeloop.nn import CubaLI, CubaLIF, DelayedLinear

    mine = Network({"input": Input(3), "fc": DelayedLinear(3, 4, 4e-3, dt=1e-3, delay=2e-3),
                    "h": CubaLIF(4), "fc2": Linear(4, 2), "out": CubaLI(2)})
    init_weights(mine, generator=torch.Generator().manual_seed(0))
    assert torch.equal(mine.layers.fc.delay.detach(), torch.full((4, 3), 2e-3))
    out = net((torch.rand(20, 2, 5) < 0.5).float())
    assert out.output.v.shape == (20, 2, 3)
    with pytest.raises(ConfigError, match=r"model.delays needs 'max_delay'.*got \['per'\]"):
        build({"per": "axon"})
    with pytest.raises(ConfigError, match=r"takes only max_delay, per, learn; got.*'steps'"):
        build({"max_delay": 4e-3, "steps": 2})
    with pytest.raises(ConfigError, match=r"model\.delays: DelayedLinear max_delay = "
                                          r"0\.0025 s must be a whole number"):
        build({"max_delay": 2.5e-3})
    with pytest.raises(ArgumentTypeError, match=r"model\.delays must be"):
        build([4e-3])
