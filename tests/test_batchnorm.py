"""Batch normalisation of spiking runs: the eval-mode affine map, training statistics of the
time mean, the rate network's exact counterpart (ANN proxy) and its gradients, the config
keys, the backends and exports that refuse it, and folding it into the weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from spikeloop.backends import get_backend
from spikeloop.backends.executor import ModelHooks
from spikeloop.chips.analog import AnalogChipSpec
from spikeloop.chips.analog import map_graph as map_analog
from spikeloop.chips.xylo import map_graph as map_xylo
from spikeloop.errors import (
    ArgumentTypeError,
    MappingError,
    NIRError,
    ParameterError,
    ShapeError,
)
from spikeloop.interop import to_nir
from spikeloop.network import Network, fold_batchnorm
from spikeloop.nn import (
    IF,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    CubaLI,
    CubaLIF,
    Flatten,
    Input,
    Integrator,
    Linear,
)
from spikeloop.training import Trainer, load_config
from spikeloop.training.config import ModelConfig
from spikeloop.training.experiment import build_network
from spikeloop.training.proxy import RateHooks, check_proxy, proxy_output, rate_network

DT = 1e-3
ROOT = Path(__file__).resolve().parents[1]


def test_eval_mode_is_the_closed_form_affine_map():
    bn = BatchNorm(2, eps=0.25).eval()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([2.0, -1.0]))
        bn.bias.copy_(torch.tensor([0.5, 1.0]))
        bn.running_mean.copy_(torch.tensor([1.0, -2.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.75]))
    x = torch.tensor([[[3.0, 0.0]], [[1.0, -2.0]]])  # [T=2, B=1, C=2]
    # channel 0: 2 (x − 1)/√4.25 + 0.5; channel 1: −(x + 2)/√1 + 1
    want = torch.tensor([[[2 * 2 / 4.25 ** 0.5 + 0.5, -1.0]], [[0.5, 1.0]]])
    torch.testing.assert_close(bn(x), want)
    before = bn.running_mean.clone()
    bn(x)
    assert torch.equal(bn.running_mean, before)  # eval mode leaves the statistics alone


def test_training_statistics_are_those_of_the_time_mean():
    bn = BatchNorm(1, eps=0.0 + 1e-12, momentum=0.1)
    x = torch.tensor([[0.0, 2.0], [2.0, 4.0]]).reshape(2, 2, 1)  # x̄ = [1, 3]: μ 2, σ² 1
    y = bn(x)
    torch.testing.assert_close(y, torch.tensor([[-2.0, 0.0], [0.0, 2.0]]).reshape(2, 2, 1))
    # running: 0.9·0 + 0.1·2; 0.9·1 + 0.1·(unbiased variance 2)
    torch.testing.assert_close(bn.running_mean, torch.tensor([0.2]))
    torch.testing.assert_close(bn.running_var, torch.tensor([1.1]))


def test_feature_maps_match_torch_batch_norm_of_the_time_mean():
    torch.manual_seed(0)
    bn = BatchNorm(3, momentum=0.3)
    ref = torch.nn.BatchNorm2d(3, momentum=0.3)
    with torch.no_grad():
        for m in (bn, ref):
            m.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
            m.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    x = torch.rand(5, 4, 3, 6, 6) * torch.tensor([1.0, 3.0, 0.2]).reshape(1, 1, 3, 1, 1)
    y = bn(x)
    torch.testing.assert_close(y.mean(0), ref(x.mean(0)))  # mean_t y = BN(x̄)
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)
    # every step the same affine map: differences between steps only scale
    scale = (bn.weight / torch.sqrt(x.mean(0).var((0, 2, 3), unbiased=False) + bn.eps))
    torch.testing.assert_close(y[1] - y[0], (x[1] - x[0]) * scale.reshape(1, 3, 1, 1))


def _linear_stack(bias: bool = False) -> Network:
    torch.manual_seed(1)
    return Network({"input": Input(3), "fc1": Linear(3, 4, bias=bias), "bn": BatchNorm(4),
                    "out": Integrator(4, dt=DT)})


def test_the_rate_network_gives_the_time_mean_of_the_spiking_batch_norm():
    net = _linear_stack(bias=True)
    with torch.no_grad():
        net.layers.bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5, -1.0]))
        net.layers.bn.bias.copy_(torch.tensor([0.0, 1.0, -1.0, 0.5]))
    x = (torch.rand(10, 6, 3) < 0.4).float()
    node, z = net.graph["bn"], net.layers.fc1(x)
    spiking, _ = ModelHooks().projection(net.graph, node, z, None)
    rate, _ = RateHooks(kernel="reference").projection(net.graph, node, z.mean(0, keepdim=True),
                                                       None)
    torch.testing.assert_close(rate[0], spiking.mean(0))
    # the readout integrates: v_T = r Σ_t y_t = r T ȳ in both networks
    with torch.no_grad():
        v_spiking = net(x).output.v[-1]
    v_rate = rate_network(net.graph, x)["out"].v[-1]
    torch.testing.assert_close(v_rate, v_spiking)
    net.eval()
    with torch.no_grad():
        v_spiking = net(x).output.v[-1]
    torch.testing.assert_close(rate_network(net.graph, x)["out"].v[-1], v_spiking)


def test_only_the_spiking_run_moves_the_running_statistics():
    net = _linear_stack()
    x = torch.rand(10, 6, 3)
    rate_network(net.graph, x)
    assert torch.equal(net.layers.bn.running_mean, torch.zeros(4))
    with torch.no_grad():
        net(x)
    z = net.layers.fc1(x).mean(0)
    torch.testing.assert_close(net.layers.bn.running_mean, 0.1 * z.mean(0).detach())


def _if_net() -> Network:
    torch.manual_seed(2)
    return Network({"input": Input(3), "fc1": Linear(3, 6), "bn": BatchNorm(6),
                    "hidden": IF(6, dt=DT, reset="subtract"), "fc2": Linear(6, 2),
                    "out": Integrator(2, dt=DT)})


def test_proxy_gradients_are_those_of_an_ordinary_batch_normalised_rate_network():
    net = _if_net()
    with torch.no_grad():
        net.layers.bn.weight.copy_(torch.linspace(0.5, 1.5, 6))
        net.layers.bn.bias.copy_(torch.linspace(-0.2, 0.3, 6))
    x = torch.rand(8, 16, 3)
    with torch.no_grad():
        observed = net(x)
    out = proxy_output(net.graph, x, observed)
    assert torch.equal(out.output.v, observed.output.v)  # values: the spiking run's
    out.output.v[-1].sum().backward()
    bn, fc1, fc2 = net.layers.bn, net.layers.fc1, net.layers.fc2
    got = [p.grad.clone() for p in (bn.weight, bn.bias, fc1.weight)]
    assert all(bool(g.abs().sum() > 0) for g in got)
    # by hand: v_T = r T W2 clip(BN(W1 x̄), 0, 1), BN with the batch statistics (autograd
    # through μ and σ², torch's own batch_norm), r = 1, ϑ − v_reset = 1
    params = [p.detach().clone().requires_grad_() for p in (bn.weight, bn.bias, fc1.weight)]
    z = F.linear(x.mean(0), params[2])
    a = F.batch_norm(z, None, None, params[0], params[1], training=True, eps=bn.eps)
    v = 8 * F.linear(a.clamp(0.0, 1.0), fc2.weight.detach())
    want = torch.autograd.grad(v.sum(), params)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4)  # float32 sums


def test_mode_switches_retrace_the_graph():
    net = _linear_stack()
    assert net.graph["bn"].settings["training"] is True
    net.eval()
    assert net.graph["bn"].settings["training"] is False
    net.train()
    assert net.graph["bn"].settings["training"] is True


@pytest.mark.parametrize("kwargs, match", [
    ({"num_features": 0}, "num_features"),
    ({"num_features": 3, "eps": 0.0}, "eps"),
    ({"num_features": 3, "momentum": 0.0}, "momentum"),
    ({"num_features": 3, "momentum": 1.5}, "momentum"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        BatchNorm(**kwargs)
    with pytest.raises(ArgumentTypeError, match="eps"):
        BatchNorm(3, eps="small")


def test_bad_shapes_are_refused():
    with pytest.raises(ShapeError, match=r"'bn'.*BatchNorm\(5\).*\(4,\)"):
        Network({"input": Input(3), "fc1": Linear(3, 4), "bn": BatchNorm(5),
                 "out": Integrator(5, dt=DT)})
    with pytest.raises(ShapeError, match="more than one value per channel"):
        BatchNorm(4)(torch.rand(5, 1, 4))  # one sample, no positions: no variance
    with pytest.raises(ShapeError, match=r"\[T, B, 4, \.\.\.\]"):
        BatchNorm(4).eval()(torch.rand(5, 4))


def test_backends_chips_and_nir_refuse_it_by_name():
    torch.manual_seed(0)
    layers = {"input": Input(3), "fc1": Linear(3, 4), "bn": BatchNorm(4),
              "hidden": CubaLIF(4, dt=DT), "fc2": Linear(4, 2), "out": CubaLI(2, dt=DT)}
    net = Network(layers)
    x = (torch.rand(6, 2, 3) < 0.5).float()
    with pytest.raises(ParameterError, match="event backend: layer 'bn' is a BatchNorm"):
        net(x, backend=get_backend("event"))
    with pytest.raises(MappingError, match="'bn'"):
        map_xylo(net.graph)
    with pytest.raises(MappingError, match="'bn'"):
        map_analog(net.graph, AnalogChipSpec())
    with pytest.raises(NIRError, match=r"'bn' is a BatchNorm.*fold_batchnorm"):
        to_nir(net, DT)


def test_the_proxy_takes_it():
    check_proxy(_if_net().graph)  # no error


def test_config_keys_build_it():
    cfg = ModelConfig(conv=[{"channels": 4, "kernel": 3, "pool": 2, "pool_spikes": True,
                             "norm": True},
                            {"channels": 6, "kernel": 3, "pool": 2, "norm": True}],
                      hidden=[8], neuron="if", readout="li", norm=True)
    net = build_network(cfg, (1, 12, 12), 3, DT)
    names = list(net.layers)
    assert names == ["input", "conv1", "conv1_bn", "spikes1", "pool1", "conv2", "pool2",
                     "conv2_bn", "spikes2", "flatten", "fc1", "fc1_bn", "hidden1", "fc2",
                     "output"]
    assert [net.layers[k].num_features for k in ("conv1_bn", "conv2_bn", "fc1_bn")] == [4, 6, 8]
    assert net.layers.conv1.bias is None  # β is the bias
    plain = build_network(ModelConfig(conv=[{"channels": 4}], hidden=[8]), (1, 12, 12), 3, DT)
    assert not any(isinstance(m, BatchNorm) for m in plain.layers.values())
    with pytest.raises(ParameterError, match=r"model\.conv\[0\]\.norm"):
        build_network(ModelConfig(conv=[{"channels": 4, "norm": 1}]), (1, 12, 12), 3, DT)
    with pytest.raises(ParameterError, match=r"model\.norm"):
        build_network(ModelConfig(hidden=[8], norm="yes"), 5, 3, DT)


def _conv_net(pool_between: bool) -> Network:
    torch.manual_seed(3)
    layers = {"input": Input((1, 8, 8)), "conv1": Conv2d(1, 3, 3, padding=1)}
    if pool_between:
        layers["pool1"] = AvgPool2d(2)
    layers |= {"bn1": BatchNorm(3), "spikes1": IF((3, 4, 4) if pool_between else (3, 8, 8),
                                                   dt=DT),
               "flatten": Flatten()}
    n = 3 * 16 if pool_between else 3 * 64
    layers |= {"fc1": Linear(n, 5, bias=True), "bn2": BatchNorm(5),
               "hidden": IF(5, dt=DT), "fc2": Linear(5, 2),
               "out": Integrator(2, dt=DT)}
    net = Network(layers)
    with torch.no_grad():  # statistics and affine maps far from the identity
        for name, c in (("bn1", 3), ("bn2", 5)):
            bn = net.layers[name]
            bn.weight.copy_(torch.linspace(0.5, 2.0, c))
            bn.bias.copy_(torch.linspace(-0.3, 1.2, c))
            bn.running_mean.copy_(torch.linspace(-0.2, 0.5, c))
            bn.running_var.copy_(torch.linspace(0.3, 2.0, c))
    return net.eval()


@pytest.mark.parametrize("pool_between", [False, True])
def test_folding_gives_the_same_spikes(pool_between):
    net = _conv_net(pool_between)
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, BatchNorm) for m in folded.layers.values())
    assert folded.layers.conv1.bias is not None and net.layers.conv1.bias is None  # a copy
    x = (torch.rand(6, 4, 1, 8, 8) < 0.5).float() * 3.0
    with torch.no_grad():
        a, b = net(x), folded(x)
    assert a["spikes1"].spikes.sum() > 0 and a["hidden"].spikes.sum() > 0
    for name in ("spikes1", "hidden"):
        assert torch.equal(a[name].spikes, b[name].spikes)
    torch.testing.assert_close(a.output.v, b.output.v)
    to_nir(folded, DT)  # the deployment form exports


def test_folding_refuses_training_mode_and_a_bn_after_a_population():
    net = _conv_net(False).train()
    with pytest.raises(ParameterError, match="training mode"):
        fold_batchnorm(net)
    bad = Network({"input": Input(3), "fc1": Linear(3, 4), "hidden": IF(4, dt=DT),
                   "bn": BatchNorm(4), "out": Integrator(4, dt=DT)}).eval()
    with pytest.raises(ParameterError, match="'bn' follows IF 'hidden'"):
        fold_batchnorm(bad)


def test_the_trainer_learns_digits_with_batch_norm_and_the_proxy(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_config("configs/digits.yaml", [
        f"run.out_dir={tmp_path}", "train.progress=false", "run.threads=1",
        "data.train_size=400", "data.val_size=100", "data.test_size=200",
        "data.encoder={name: direct}", "data.duration=8.0e-3", "data.dt=1.0e-3",
        "model.neuron=if", "model.readout=li", "model.neuron_params={reset: subtract}",
        "model.norm=true", "train.method=ann_proxy", "train.lr=1.0e-2",
        "train.loss.scale=0.1", "train.epochs=4"])
    trainer = Trainer(cfg)
    bn = trainer.network.layers.fc1_bn
    summary = trainer.fit()
    assert not bn.training and summary["test_acc"] > 0.7  # chance 0.1
    assert float(bn.running_var.min()) > 0 and bool((bn.running_mean != 0).any())
