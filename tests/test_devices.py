"""The device-model framework: attaching models to nodes, realising them for every backend,
noise-aware training through them, and its errors (the models themselves: test_crossbar,
test_analog_neuron, test_bit_flips)."""

from dataclasses import dataclass

import pytest
import torch

from spikeloop.backends import SimBackend
from spikeloop.devices import (
    DEVICE_MODELS,
    Devices,
    NeuronDevice,
    SynapseDevice,
    build_device,
    straight_through,
)
from spikeloop.errors import ConfigError, DeviceModelError, ParameterError, UnknownNameError
from spikeloop.network import Network
from spikeloop.nn import LIF, CubaLI, Input, Linear
from spikeloop.training import Trainer, load_config

SIM = SimBackend()
"""The backend the realisations are for."""


@dataclass(frozen=True)
class Scale(SynapseDevice):
    """A device that reads every weight times ``factor`` (a power of two: exact)."""

    factor: float = 0.5

    def weights(self, w, ctx):
        return straight_through(w, w * self.factor)


@dataclass(frozen=True)
class Jitter(SynapseDevice):
    """Programming variation ``w (1 + σ ε)``, ``ε`` from the programming instance, and read
    noise from the read stream."""

    std: float = 0.1
    read_std: float = 0.0

    def weights(self, w, ctx):
        eps = torch.randn(w.shape, generator=ctx.program, dtype=w.dtype)
        read = torch.randn(w.shape, generator=ctx.read, dtype=w.dtype)
        return straight_through(w, w * (1 + self.std * eps) + self.read_std * read)


@dataclass(frozen=True)
class Halve(NeuronDevice):
    """A neuron that integrates half its input."""

    def current(self, x, state, ctx, p, c):
        return x * 0.5


DEVICE_MODELS.add("test_jitter", Jitter)


def net(recurrent=False):
    torch.manual_seed(0)
    return Network({"input": Input(5), "fc1": Linear(5, 20),
                    "hidden": LIF(20, tau_mem=10e-3, recurrent=recurrent),
                    "fc2": Linear(20, 3), "output": CubaLI(3)})


def x_in(T=40, B=3):
    return (torch.rand(T, B, 5, generator=torch.Generator().manual_seed(1)) < 0.3).float() * 3


def test_no_devices_realise_the_same_graph_object():
    n = net()
    assert n.devices.realise(n.graph, SIM) is n.graph


def test_a_synapse_device_equals_the_network_with_those_weights():
    a, b = net(), net()
    a.devices = {"fc1": Scale(0.5)}
    with torch.no_grad():
        b.layers.fc1.weight.mul_(0.5)
    x = x_in()
    oa, ob = a(x), b(x)
    assert torch.equal(oa["hidden"].spikes, ob["hidden"].spikes)
    assert torch.equal(oa.output.v, ob.output.v)
    # the layer itself is unchanged: the device reads, it does not overwrite
    assert torch.equal(a.layers.fc1.weight, net().layers.fc1.weight)


def test_the_wildcard_reaches_every_weighted_projection_also_recurrent_ones():
    a = net(recurrent=True)
    a.devices = {"*": Scale(0.5)}
    realised = a.devices.realise(a.graph, SIM)
    for node in a.graph.projections():
        got = realised[node.name].params["weight"]
        assert torch.equal(got, node.params["weight"] * 0.5), node.name
    assert {n.name for n in a.graph.projections()} == {"fc1", "hidden.recurrent", "fc2"}


def test_gradients_pass_straight_through_to_the_layer():
    a = net()
    a.devices = {"*": Jitter(0.3)}
    a(x_in()).output.v.sum().backward()
    assert a.layers.fc1.weight.grad is not None and a.layers.fc1.weight.grad.abs().sum() > 0


def test_a_programming_instance_is_fixed_and_the_read_stream_runs_on():
    d = Devices({"fc1": Jitter(0.2, read_std=0.0)})
    n = net()
    w1 = d.realise(n.graph, SIM)["fc1"].params["weight"]
    w2 = d.realise(n.graph, SIM)["fc1"].params["weight"]
    assert torch.equal(w1, w2)
    d.program()
    assert d.instance == 1 and d.t == 0.0
    assert not torch.equal(d.realise(n.graph, SIM)["fc1"].params["weight"], w1)
    r = Devices({"fc1": Jitter(0.0, read_std=0.1)})
    assert not torch.equal(r.realise(n.graph, SIM)["fc1"].params["weight"],
                           r.realise(n.graph, SIM)["fc1"].params["weight"])
    state = r.state()
    again = [r.realise(n.graph, SIM)["fc1"].params["weight"] for _ in range(2)]
    r.load_state(state)
    assert torch.equal(r.realise(n.graph, SIM)["fc1"].params["weight"], again[0])


def test_a_neuron_device_changes_every_step_of_the_loop():
    a, b = net(), net()
    a.devices = {"hidden": Halve()}
    with torch.no_grad():
        b.layers.fc1.weight.mul_(0.5)
    x = x_in()
    assert torch.equal(a(x)["hidden"].spikes, b(x)["hidden"].spikes)
    with pytest.raises(ParameterError, match="no fused kernel for a neuron device model"):
        a(x, backend={"name": "sim", "kernel": "fused"})


def test_models_on_the_wrong_node_or_backend_raise_device_model_errors():
    n = net()
    n.devices = {"hidden": Scale()}
    with pytest.raises(DeviceModelError, match="acts on a projection; 'hidden' is a population"):
        n(x_in())
    n.devices = {"fc1": Halve()}
    with pytest.raises(DeviceModelError, match="acts on a population; 'fc1' is a projection"):
        n(x_in())
    n.devices = {"fc3": Scale()}
    with pytest.raises(DeviceModelError, match="no node 'fc3'"):
        n(x_in())
    n.devices = {"hidden": Halve()}
    with pytest.raises(DeviceModelError, match="cannot run on the 'event' backend"):
        n(x_in(), backend="event")
    with pytest.raises(DeviceModelError, match="give a device model"):
        Devices({"fc1": 3})
    with pytest.raises(DeviceModelError, match="must map node names"):
        Devices([Scale()])


def test_bad_settings_and_specs():
    with pytest.raises(ParameterError, match="cannot be negative"):
        Devices({}, t=-1.0)
    with pytest.raises(ParameterError, match="instance"):
        Devices({}, instance=-2)
    with pytest.raises(UnknownNameError):
        build_device({"name": "no_such_device"})
    with pytest.raises(ConfigError, match="test_jitter"):
        build_device({"name": "test_jitter", "sigma": 1})
    with pytest.raises(ConfigError, match="a DeviceModel or"):
        build_device("crossbar")


def _trainer(tmp_path, *more):
    cfg = load_config("configs/yinyang.yaml", [
        "train.epochs=1", "train.max_batches=3", f"run.out_dir={tmp_path}", "train.progress=false",
        "train.backend=sim", "data.train_size=90", "data.val_size=30", "data.test_size=30",
        "train.batch_size=30", *more])
    return Trainer(cfg)


def test_noise_aware_training_draws_a_new_instance_per_step_and_evaluates_on_one(tmp_path):
    tr = _trainer(tmp_path, "devices={models: {'*': {name: test_jitter, std: 0.2}}, train: true, "
                  "instance: 7, t: 10.0}")
    seen = []
    original = tr._train_devices.realise

    def spy(graph, backend):
        seen.append((tr._train_devices.instance, tr._train_devices.t))
        return original(graph, backend)

    tr._train_devices.realise = spy
    tr.train_epoch()
    assert [i for i, _ in seen] == [8, 9, 10] and all(t == 10.0 for _, t in seen)
    assert tr.network.devices is tr.devices and tr.devices.instance == 7
    # ideal-trained: the training steps see no devices, evaluation does
    ideal = _trainer(tmp_path, "devices={models: {'*': {name: test_jitter, std: 0.2}}}")
    assert not ideal._train_devices and ideal.network.devices is ideal.devices


def test_checkpoints_keep_the_devices_and_old_checkpoints_still_load(tmp_path):
    tr = _trainer(tmp_path, "devices={models: {fc1: {name: test_jitter, std: 0.1, read_std: "
                  "0.01}}, train: true}")
    tr.train_epoch()
    tr.save_checkpoint(tmp_path / "c.pt")
    other = _trainer(tmp_path, "devices={models: {fc1: {name: test_jitter, std: 0.1, read_std: "
                     "0.01}}, train: true}")
    other.load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(other.devices.read.get_state(), tr.devices.read.get_state())
    assert other._train_devices.instance == tr._train_devices.instance
    # a checkpoint written before the devices section existed
    plain = _trainer(tmp_path)
    plain.save_checkpoint(tmp_path / "old.pt")
    state = torch.load(tmp_path / "old.pt", weights_only=False)
    del state["config"]["devices"], state["devices"]
    torch.save(state, tmp_path / "old.pt")
    _trainer(tmp_path).load_checkpoint(tmp_path / "old.pt")
    with pytest.raises(ConfigError, match=r"devices: t .* drift time cannot be negative"):
        load_config("configs/yinyang.yaml", ["devices.t=-1"])
    with pytest.raises(ConfigError, match="no_such_model"):  # models are checked at load time
        load_config("configs/yinyang.yaml", ["devices.models={fc1: {name: no_such_model}}"])
    with pytest.raises(ConfigError, match=r"train\.method vdsp runs the network without its "
                       "devices"):
        _trainer(tmp_path, "devices.models={fc1: {name: test_jitter}}", "train.method=vdsp")


def test_the_wildcard_attaches_only_where_a_model_can_act():
    from spikeloop.devices import AnalogNeuron, Crossbar
    from spikeloop.nn import BatchNorm, Conv2d, Flatten

    torch.manual_seed(0)
    conv = Network({"input": Input((1, 6, 6)), "conv1": Conv2d(1, 2, 3, padding=1),
                    "conv1_bn": BatchNorm(2), "c1": LIF((2, 6, 6)), "flat": Flatten(),
                    "fc": Linear(72, 3), "hidden": LIF(3, recurrent=True), "fc2": Linear(3, 2),
                    "output": CubaLI(2)})
    conv.eval()
    devices = Devices({"*": [Crossbar(levels=8), AnalogNeuron("voltage", compression=0.5)]})
    attached = {n.name: [type(m).__name__ for m in devices.of(n)] for n in conv.graph.nodes
                if devices.of(n)}
    assert attached == {"conv1": ["Crossbar"], "c1": ["AnalogNeuron"], "fc": ["Crossbar"],
                        "hidden": ["AnalogNeuron"], "hidden.recurrent": ["Crossbar"],
                        "fc2": ["Crossbar"]}  # not the BatchNorm's gain, not the LI readout
    conv.devices = devices
    assert conv(torch.rand(4, 2, 1, 6, 6)).output.v.shape == (4, 2, 2)
    # per-step read noise only where the executor's hook draws it: feed-forward Linear
    step = Devices({"*": Crossbar(read_std=0.1, read="step")})
    assert [n.name for n in conv.graph.nodes if step.of(n)] == ["fc", "fc2"]
    with pytest.raises(DeviceModelError, match=r"devices\['\*'\]: no node"):
        Devices({"*": AnalogNeuron("time")}).check(Network({"input": Input(2), "fc": Linear(2, 2),
                                               "output": CubaLI(2)}).graph, SIM)


def test_training_streams_are_not_the_evaluation_streams_and_errors_restore_the_devices(
        tmp_path, monkeypatch):
    ev, tr = Devices({"fc1": Jitter(0.2)}), Devices({"fc1": Jitter(0.2)}, stream="train")
    n = net()
    assert not torch.equal(ev.realise(n.graph, SIM)["fc1"].params["weight"],
                           tr.realise(n.graph, SIM)["fc1"].params["weight"])
    assert not torch.equal(ev.read.get_state(), tr.read.get_state())
    trainer = _trainer(tmp_path, "devices={models: {'*': {name: test_jitter}}, train: true}")

    def fail(*args, **kwargs):
        assert trainer.network.devices is trainer._train_devices
        raise RuntimeError("boom")

    monkeypatch.setattr(trainer, "_objective", fail)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train_epoch()
    assert trainer.network.devices is trainer.devices and not trainer.network.training


def test_a_noise_aware_run_resumed_from_a_checkpoint_continues_bit_identically(tmp_path):
    spec = ("devices={models: {'*': {name: test_jitter, std: 0.2, read_std: 0.01}}, "
            "train: true}")
    straight = _trainer(tmp_path, spec)
    for epoch in range(2):
        straight.epoch = epoch
        straight.train_epoch()
    first = _trainer(tmp_path, spec)
    first.train_epoch()
    first.epoch = 1
    first.save_checkpoint(tmp_path / "c.pt")
    resumed = _trainer(tmp_path, spec)
    resumed.load_checkpoint(tmp_path / "c.pt")
    resumed.train_epoch()
    for (name, a), b in zip(straight.network.state_dict().items(),
                            resumed.network.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(straight._train_devices.read.get_state(),
                       resumed._train_devices.read.get_state())
