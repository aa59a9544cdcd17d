"""Losses, configs, the trainer (checkpoints, resume) and the CLI."""

import json
import re

import pytest
import torch

from spikeloop.backends import BackendBase, get_backend
from spikeloop.cli import main
from spikeloop.errors import (
    CheckpointError,
    ConfigError,
    ParameterError,
    TimeStepError,
    UnknownNameError,
)
from spikeloop.nn import ExecutionReport, NetworkOutput, Observables
from spikeloop.observables import ReadoutRange
from spikeloop.training import (
    FiringRateRegularizer,
    FirstSpikeCE,
    MaxMembraneCE,
    SpikeCountCE,
    Trainer,
    first_spike_times,
    load_config,
    make_loss,
)


def output(**obs):
    pops = {k: Observables(**v) for k, v in obs.items()}
    return NetworkOutput(pops, list(pops)[-1], {}, ExecutionReport("test"))


def test_max_membrane_ce_and_prediction():
    v = torch.zeros(5, 2, 3)
    v[2, 0, 1] = 2.0
    v[4, 1, 2] = 1.0
    v[1, 1, 0] = -3.0
    out = output(out={"v": v})
    loss = MaxMembraneCE()
    assert loss.predict(out).tolist() == [1, 2]
    expected = torch.nn.functional.cross_entropy(
        torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]), torch.tensor([1, 0]))
    assert float(loss(out, torch.tensor([1, 0]))) == pytest.approx(float(expected))


def test_max_membrane_ce_bounds_penalise_membranes_outside_them():
    v = torch.zeros(5, 2, 3)
    v[2, 0, 1] = 3.5   # 0.5 above high
    v[3, 0, 1] = 3.2
    v[1, 1, 0] = -2.0  # 0.8 below low
    v[4, 1, 2] = 1.0   # inside
    out = output(out={"v": v.clone().requires_grad_()})
    y = torch.tensor([1, 2])
    plain = MaxMembraneCE(scale=0.2)(out, y)
    bounded = MaxMembraneCE(scale=0.2, bounds=(-1.2, 3.0), bounds_strength=2.0)
    total = bounded(out, y)
    assert float((total - plain).detach()) == pytest.approx(2.0 * (0.5**2 + 0.8**2) / 2)
    assert bounded.predict(out).tolist() == [1, 2]  # the prediction does not change
    (grad,) = torch.autograd.grad(total - plain, out.output.v)
    assert float(grad[2, 0, 1]) == pytest.approx(2.0 * 2 * 0.5 / 2)  # at the maximum only
    assert float(grad[1, 1, 0]) == pytest.approx(-2.0 * 2 * 0.8 / 2)  # at the minimum only
    assert int((grad != 0).sum()) == 2
    assert make_loss({"name": "max_membrane_ce", "bounds": [-1, 3]}).bounds == (-1.0, 3.0)
    for bad in ({"bounds": [3, 1]}, {"bounds": [1]}, {"scale": 0}, {"bounds_strength": -1}):
        with pytest.raises(ParameterError, match="max_membrane_ce"):
            make_loss({"name": "max_membrane_ce", **bad})


def test_first_spike_times_and_loss():
    z = torch.zeros(6, 1, 3)
    z[2, 0, 0] = z[4, 0, 0] = 1  # first at step 2 → t = 3 dt
    z[0, 0, 1] = 1  # step 0 → t = dt
    # neuron 2 never spikes → T·dt
    times = first_spike_times(z, dt=0.5)
    assert times.tolist() == [[1.5, 0.5, 3.0]]
    loss = FirstSpikeCE(dt=0.5, tau0=1.0, alpha=0.1, tau1=2.0)
    out = output(out={"spikes": z})
    assert loss.predict(out).tolist() == [1]
    ce = torch.nn.functional.cross_entropy(-times, torch.tensor([0]))
    assert float(loss(out, torch.tensor([0]))) == pytest.approx(
        float(ce) + 0.1 * (torch.exp(torch.tensor(1.5 / 2.0)) - 1).item())


def test_first_spike_time_gradient_flows_through_spikes():
    z = torch.zeros(4, 1, 1)
    z[1, 0, 0] = 1
    z.requires_grad_(True)
    first_spike_times(z, dt=1.0).sum().backward()
    # spiking earlier (step 0) lowers the time; removing the spike at step 1 raises it
    assert z.grad[0, 0, 0] < 0 and z.grad[1, 0, 0] < 0


def test_spike_count_ce_and_rate_regulariser():
    z = torch.zeros(10, 2, 2)
    z[:, 0, 1] = 1
    z[:3, 1, 0] = 1
    out = output(hidden={"spikes": z}, out={"spikes": z})
    assert SpikeCountCE().predict(out).tolist() == [1, 0]
    reg = FiringRateRegularizer(["hidden"], dt=1e-3, low=0.0, high=100.0, strength=1.0)
    # rates: neuron 0: 3/20 steps → 150 Hz, neuron 1: 10/20 → 500 Hz
    assert float(reg(out)) == pytest.approx(((150 - 100) ** 2 + (500 - 100) ** 2) / 2)


def test_loss_errors():
    with pytest.raises(UnknownNameError, match="hinge"):
        make_loss("hinge")
    with pytest.raises(ConfigError, match="margin"):
        make_loss({"name": "max_membrane_ce", "margin": 1})
    out = output(out={"v": torch.zeros(3, 2, 3)})
    with pytest.raises(ParameterError, match=r"class indices in \[0, 2\] \(3 classes\), got 3"):
        MaxMembraneCE()(out, torch.tensor([0, 3]))
    with pytest.raises(ConfigError, match="spikes"):
        SpikeCountCE()(out, torch.tensor([0, 1]))


def test_config_loading_overrides_and_errors(tmp_path):
    cfg = load_config("configs/yinyang.yaml", ["train.epochs=3", "model.hidden=[10, 8]"])
    assert cfg.train.epochs == 3 and cfg.model.hidden == [10, 8]
    assert cfg.data.encoder["name"] == "latency"
    with pytest.raises(ConfigError, match=r"train\.epoch'"):
        load_config("configs/yinyang.yaml", ["train.epoch=3"])
    with pytest.raises(ConfigError, match="expected int"):
        load_config(None, ["train.epochs=three"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  hiden: [3]\n")
    with pytest.raises(ConfigError, match=r"model\.hiden"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"key\.subkey=value"):
        load_config(None, ["train.epochs"])


def tiny(tmp_path, *extra):
    return load_config("configs/yinyang.yaml", [
        f"run.out_dir={tmp_path}", "run.name=tiny", "data.train_size=120", "data.val_size=60",
        "data.test_size=60", "model.hidden=[12]", "train.batch_size=40", "train.epochs=3",
        "train.progress=false", "train.backend=sim", *extra,
    ])


@pytest.mark.parametrize("backend", ["sim", "chip"])
def test_checkpoint_resume_is_bit_identical(tmp_path, backend):
    straight = Trainer(tiny(tmp_path / "a", f"train.backend={backend}"))
    straight.fit()
    first = Trainer(tiny(tmp_path / "b", f"train.backend={backend}"))
    first.fit(stop_after=1)
    assert first.epoch == 1 and not (tmp_path / "b" / "tiny" / "summary.json").exists()
    resumed = Trainer(tiny(tmp_path / "b", "train.resume=true", f"train.backend={backend}"))
    assert resumed.epoch == 1
    resumed.fit()
    for (name, a), (_, b) in zip(straight.network.state_dict().items(),
                                 resumed.network.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert [h.train_loss for h in straight.history] == [h.train_loss for h in resumed.history]
    summary = json.loads((tmp_path / "b" / "tiny" / "summary.json").read_text())
    assert summary["epochs"] == 3 and 0.0 <= summary["test_acc"] <= 1.0
    for name in ("curves.png", "raster.png", "readout_membrane.png", "metrics.json",
                 "config.yaml"):
        assert (tmp_path / "b" / "tiny" / name).stat().st_size > 0


def test_seed_controls_everything(tmp_path):
    runs = [Trainer(tiny(tmp_path / name, "train.epochs=2", f"run.seed={seed}"))
            for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    for t in runs:
        t.fit()
    a, b, c = ([h.val_loss for h in t.history] for t in runs)
    assert a == b and a != c


def test_keep_best_finishes_with_the_best_validation_epoch(tmp_path):
    t = Trainer(tiny(tmp_path, "train.epochs=4", "train.keep_best=true"))
    summary = t.fit()
    accs = [h.val_acc for h in t.history]
    best_epoch = accs.index(max(accs)) + 1
    assert summary["best_epoch"] == best_epoch
    assert summary["val_acc"] == max(accs)  # the tested epoch's, not the last one's
    best = torch.load(tmp_path / "tiny" / "best.pt", weights_only=False)
    assert best["epoch"] == best_epoch and best["val_acc"] == max(accs)
    for name, value in t.network.state_dict().items():
        assert torch.equal(value, best["model"][name]), name
    _, val_acc, _ = t.evaluate(t.data["val"])
    assert val_acc == max(accs)  # the network now is the best epoch's


def test_training_learns(tmp_path):
    t = Trainer(tiny(tmp_path, "data.train_size=500", "data.val_size=200", "data.test_size=200",
                     "model.hidden=[30]", "train.batch_size=50", "train.epochs=5"))
    summary = t.fit()
    assert t.history[-1].train_loss < t.history[0].train_loss
    assert t.history[-1].val_acc > t.history[0].val_acc
    assert summary["test_acc"] > 0.45  # chance is 1/3; full training reaches > 0.97 (README)


def test_training_with_the_chip_in_the_loop(tmp_path):
    t = Trainer(tiny(tmp_path, "train.epochs=2", "train.backend={name: chip, seed: 1}"))
    summary = t.fit()
    assert summary["backend"] == {"name": "chip", "seed": 1}
    assert summary["readout_saturation"]["readout"] == "chip 8-bit ADC read-out"
    assert 0.0 <= summary["readout_saturated_fraction"] <= 1.0
    assert summary["tested_epoch"] == summary["best_epoch"]
    assert t.history[-1].train_loss < t.history[0].train_loss
    assert (tmp_path / "tiny" / "device_vs_sim_membrane.png").stat().st_size > 0
    # weights trained elsewhere can be deployed as they are
    chip = Trainer(tiny(tmp_path / "b", f"train.init_from={tmp_path / 'tiny' / 'best.pt'}",
                        "train.backend=chip"))
    for a, b in zip(t.network.parameters(), chip.network.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(tiny(tmp_path / "c", "train.init_from=/nonexistent.pt"))


class ClippedSim(BackendBase):
    """The simulator with its readout membrane clipped to ``[low, high]``, as an ADC would."""

    name = "clipped"
    differentiable = True

    def __init__(self, low: float, high: float) -> None:
        self.sim, self.low, self.high = get_backend("sim"), low, high

    def run(self, graph, x, state=None):
        out = self.sim.run(graph, x, state)
        pops = dict(out.populations)
        pops[out.output_name] = Observables(v=out.output.v.clamp(self.low, self.high))
        return NetworkOutput(pops, out.output_name, out.state, out.report)

    def readout_range(self, graph, population):
        n = graph[population].num_neurons
        return ReadoutRange(torch.full((n,), self.low), torch.full((n,), self.high), 1e-4,
                            "test read-out", "model units")


def test_readout_saturated_fraction_counts_the_test_samples_at_the_limits(tmp_path):
    t = Trainer(tiny(tmp_path))
    test = t.data["test"]
    with torch.no_grad():
        v = t.network(test.spikes, backend="sim").output.v  # [T, 60, 3]
    peak, trough = v.amax((0, 2)).sort().values, v.amin((0, 2)).sort().values
    high = float(peak[44] + peak[45]) / 2  # 15 of the 60 samples reach above it
    low = float(trough[5] + trough[6]) / 2  # 6 reach below it
    assert float(peak[45] - peak[44]) > 1e-3 and float(trough[6] - trough[5]) > 1e-3
    summary = t.summary(0.0)
    assert summary["readout_saturated_fraction"] is None  # the simulator: no limits
    assert summary["readout_saturation"] is None
    t.backend = t.network.backend = ClippedSim(low, high)
    expected_any = int(((v.amax((0, 2)) > high) | (v.amin((0, 2)) < low)).sum()) / 60
    summary = t.summary(0.0)
    assert summary["readout_saturation"] == {
        "any": expected_any, "ceiling": 15 / 60, "floor": 6 / 60, "readout": "test read-out"}
    assert summary["readout_saturated_fraction"] == expected_any
    assert t.readout_saturation(test, batch_size=7) == summary["readout_saturation"]


def test_tested_epoch_and_plot_titles(tmp_path):
    t = Trainer(tiny(tmp_path, "train.epochs=3", "train.keep_best=false"))
    assert t.tested_epoch() is None
    t.fit()
    assert t.tested_epoch() == 3  # the last epoch without keep_best
    assert t._title("curves") == "tiny [sim]: curves"
    best = Trainer(tiny(tmp_path / "b", "train.epochs=3", "train.keep_best=true",
                        "train.backend={name: chip, seed: 2}"))
    assert best._title("x") == "tiny [chip (seed=2)]: x"
    assert len(best._title("a long description of what a figure shows, then more")
               .split("\n")) == 2


def test_corrupt_or_foreign_checkpoint_is_a_clear_error(tmp_path):
    t = Trainer(tiny(tmp_path, "train.epochs=1"))
    t.fit()
    ckpt = tmp_path / "tiny" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot read"):
        Trainer(tiny(tmp_path, "train.resume=true"))
    t.save_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="different config"):
        Trainer(tiny(tmp_path, "train.resume=true", "model.hidden=[5]"))


@pytest.mark.parametrize(
    ("override", "exc", "error"),
    [
        ("data.encoder={name: latency5}", UnknownNameError, "unknown encoder"),
        ("train.loss={name: hinge}", UnknownNameError, "unknown loss"),
        ("train.backend=chipz", UnknownNameError, "unknown backend"),
        ("model.neuron=lif5", UnknownNameError, "unknown neuron model"),
        ("model.tau_syn=0.2e-3", TimeStepError, "tau_syn"),
        ("train.optimizer=lion", ConfigError, "unknown optimizer"),
        ("model.neuron_params={tau_ahp: 1}", ParameterError, "tau_ahp"),
    ],
)
def test_bad_names_in_configs_are_specific_errors(tmp_path, override, exc, error):
    cfg = tiny(tmp_path, "train.epochs=1", "train.max_batches=1", override)
    with pytest.raises(exc, match=error):
        Trainer(cfg).fit()


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ("train.batch_size=0", "train.batch_size must be > 0"),
        ("train.epochs=-3", "train.epochs must be > 0"),
        ("data.train_size=-5", "data.train_size must be > 0"),
        ("train.lr=-1.0", "train.lr must be > 0"),
        ("run.threads=0", "run.threads must be > 0"),
        ("model.hidden=[]", "model.hidden"),
    ],
)
def test_out_of_range_config_values_are_errors(override, error):
    with pytest.raises(ConfigError, match=re.escape(error)):
        load_config("configs/yinyang.yaml", [override])


def test_config_values_parse_like_yaml_users_expect(tmp_path):
    cfg = load_config("configs/yinyang.yaml", ["train.lr=1e-3",  # YAML 1.1: a string
                                               "train.backend={name: sim, mode: step}"])
    assert cfg.train.lr == 1e-3 and cfg.train.backend == {"name": "sim", "mode": "step"}
    t = Trainer(tiny(tmp_path, "train.loss={name: first_spike_ce}", "model.readout=cuba_lif"))
    assert t.loss.dt == t.config.data.dt == 0.5e-3  # losses that need dt get the data's


def test_resume_with_a_changed_config_is_refused(tmp_path):
    Trainer(tiny(tmp_path)).fit(stop_after=1)
    with pytest.raises(CheckpointError, match=r"changed: data\.dt, train\.lr"):
        Trainer(tiny(tmp_path, "train.resume=true", "train.lr=0.5", "data.dt=1e-3"))
    assert Trainer(tiny(tmp_path, "train.resume=true", "train.progress=true")).epoch == 1


def test_cli(tmp_path, capsys):
    assert main(["train", "configs/yinyang.yaml", f"run.out_dir={tmp_path}", "run.name=cli",
                 "data.train_size=60", "data.val_size=30", "data.test_size=30",
                 "train.epochs=1", "train.progress=false", "model.hidden=[8]"]) == 0
    out = capsys.readouterr().out
    assert "test accuracy:" in out and "hidden1" in out
    assert (tmp_path / "cli" / "summary.json").exists()
    assert main(["train", "configs/yinyang.yaml", "train.epoch=1"]) == 2
    assert "unknown config key 'train.epoch'" in capsys.readouterr().err
    assert main(["config", "configs/yinyang.yaml", "train.lr=0.5"]) == 0
    assert "lr: 0.5" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
