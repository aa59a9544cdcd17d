"""Issue 15: every argument of the losses, regularisers, encoders, data sets, experiment
builders and checkpoint functions is checked; a mistake raises a specific spikeloop error
that names the argument, and the object stays usable; valid edge inputs keep working."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeloop.data import delta, latency, log_latency, make_encoder, rate, yin_yang, yin_yang_split
from spikeloop.errors import (
    ArgumentTypeError,
    CheckpointError,
    ConfigError,
    DTypeError,
    NonFiniteError,
    ParameterError,
    ShapeError,
    TimeStepError,
    UnknownNameError,
)
from spikeloop.network import Network
from spikeloop.nn import CubaLI, CubaLIF, ExecutionReport, Input, Linear, NetworkOutput, Observables
from spikeloop.training import (
    DATASETS,
    ExpMembraneCE,
    FiringRateRegularizer,
    FirstSpikeCE,
    MaxMembraneCE,
    SpikeCountCE,
    Trainer,
    build_network,
    first_spike_times,
    init_weights,
    load_data,
    make_loss,
    spike_counts,
)
from spikeloop.training.trainer import CHECKPOINT
from test_loading import snapshot, tiny, unchanged

NAN, INF = math.nan, math.inf


def issue_net() -> Network:
    torch.manual_seed(0)
    return Network({"input": Input(4), "fc1": Linear(4, 10), "hidden": CubaLIF(10),
                    "fc2": Linear(10, 3), "output": CubaLI(3)})


@pytest.fixture(scope="module")
def out() -> NetworkOutput:
    """The issue's network on x [20, 2, 4], plus a spiking population of 3 neurons ("spk3")
    for the spike-based losses."""
    torch.manual_seed(1)
    run = issue_net()(torch.rand(20, 2, 4))
    spikes = (torch.rand(20, 2, 3) > 0.7).float()
    pops = dict(run.populations) | {"spk3": Observables(spikes=spikes)}
    return NetworkOutput(pops, run.output_name, run.state, run.report)


def empty_output() -> NetworkOutput:
    pops = {"hidden": Observables(spikes=torch.zeros(5, 0, 3)),
            "output": Observables(v=torch.zeros(5, 0, 3))}
    return NetworkOutput(pops, "output", {}, ExecutionReport("test"))


# ---------------------------------------------------------------------------- labels


@pytest.mark.parametrize(("labels", "exc", "fragment"), [
    (torch.tensor([0.0, 1.0]), DTypeError, "integer class indices .* got torch.float32"),
    (torch.tensor([NAN, 1.0]), DTypeError, "got torch.float32; float and bool labels are not"),
    (torch.tensor([True, False]), DTypeError, "got torch.bool"),
    (torch.tensor([0, 1], dtype=torch.complex64), DTypeError, "got torch.complex64"),
    ([0, 1], ArgumentTypeError,
     r"target \(the labels\) must be a torch.Tensor .* got \[0, 1\] \(list\)"),
    (np.array([0, 1]), ArgumentTypeError, r"\(ndarray\); convert it with torch.as_tensor"),
    (torch.tensor([[0, 1]]), ShapeError, r"of shape \[2\], got shape \(1, 2\)"),
    (torch.tensor([0, 1, 2]), ShapeError, "3 labels for a batch of 2 samples"),
    (torch.tensor([0, 3]), ParameterError, r"class indices in \[0, 2\] \(3 classes\), got 3"),
    (torch.tensor([-1, 0]), ParameterError, r"in \[0, 2\] \(3 classes\), got -1"),
])
@pytest.mark.parametrize("loss", [MaxMembraneCE(), MaxMembraneCE(bounds=(-1, 1)),
                                  FirstSpikeCE(population="spk3", alpha=0.1),
                                  SpikeCountCE(population="spk3"), ExpMembraneCE()])
def test_bad_labels_are_specific_errors(out, loss, labels, exc, fragment):
    with pytest.raises(exc, match=fragment):
        loss(out, labels)
    assert torch.isfinite(loss(out, torch.tensor([0, 1])))  # still usable


def test_integer_labels_of_any_width_give_the_int64_loss(out):
    y = torch.tensor([2, 0])
    expected = MaxMembraneCE()(out, y)
    for dtype in (torch.int32, torch.int16, torch.uint8, torch.int8):
        assert torch.equal(MaxMembraneCE()(out, y.to(dtype)), expected)


def test_an_empty_batch_is_an_error_not_a_nan_loss():
    with pytest.raises(ShapeError, match="the batch is empty"):
        MaxMembraneCE()(empty_output(), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ShapeError, match="population 'hidden': the batch is empty"):
        FiringRateRegularizer(["hidden"])(empty_output())


def test_unknown_populations_and_foreign_outputs(out):
    with pytest.raises(UnknownNameError, match="unknown population 'nope'; the output has "
                                               "'input', 'hidden', 'output', 'spk3'"):
        MaxMembraneCE(population="nope")(out, torch.tensor([0, 1]))
    with pytest.raises(UnknownNameError, match="firing-rate regulariser: unknown population "
                                               "'nope'"):
        FiringRateRegularizer(["hidden", "nope"])(out)
    with pytest.raises(ArgumentTypeError, match="output must be a NetworkOutput"):
        MaxMembraneCE()({"output": None}, torch.tensor([0, 1]))
    with pytest.raises(ArgumentTypeError, match="output must be a NetworkOutput"):
        MaxMembraneCE().predict(torch.zeros(3))
    with pytest.raises(ArgumentTypeError, match="spike_counts: obs must be the Observables"):
        spike_counts(torch.zeros(3, 2, 1))
    assert MaxMembraneCE(population="output").predict(out).shape == (2,)


# ---------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(("build", "exc", "fragment"), [
    *[(lambda c=cls, v=v: c(scale=v), ParameterError, f"{name}: scale must be a finite number "
       f"> 0, got {v}") for cls, name in ((MaxMembraneCE, "max_membrane_ce"),
                                           (SpikeCountCE, "spike_count_ce"),
                                           (ExpMembraneCE, "exp_membrane_ce"))
      for v in (0, NAN, INF, -1)],
    (lambda: SpikeCountCE(scale="2"), ArgumentTypeError, "scale must be a real number, got '2'"),
    (lambda: MaxMembraneCE(scale=True), ArgumentTypeError, "scale must be a real number"),
    (lambda: MaxMembraneCE(population=3), ArgumentTypeError, "population must be a population"),
    (lambda: MaxMembraneCE(bounds="12"), ParameterError, r"bounds must be \[low, high\]"),
    (lambda: MaxMembraneCE(bounds=[1]), ParameterError, r"bounds must be \[low, high\]"),
    (lambda: MaxMembraneCE(bounds=[1, NAN]), ParameterError, r"bounds\[1\] must be a number"),
    (lambda: MaxMembraneCE(bounds=[3, 1]), ParameterError, "bounds need low < high"),
    (lambda: MaxMembraneCE(bounds_strength=NAN), ParameterError, "bounds_strength must be"),
    (lambda: FirstSpikeCE(tau0=INF), ParameterError, "first_spike_ce: tau0 must be a finite"),
    (lambda: FirstSpikeCE(tau1=0), ParameterError, "first_spike_ce: tau1 must be a finite"),
    (lambda: FirstSpikeCE(dt=0), TimeStepError, "first_spike_ce: dt must be a finite number"),
    (lambda: FirstSpikeCE(dt=None), TimeStepError, "first_spike_ce: dt"),
    (lambda: FirstSpikeCE(alpha=-1), ParameterError, "alpha must be a finite number ≥ 0"),
    (lambda: ExpMembraneCE(tau=NAN), ParameterError, "exp_membrane_ce: tau must be"),
    (lambda: ExpMembraneCE(dt=INF), TimeStepError, "exp_membrane_ce: dt"),
    (lambda: FiringRateRegularizer("hidden"), ArgumentTypeError,
     r"populations must be a list of names, got 'hidden' \(str\); write \['hidden'\]"),
    (lambda: FiringRateRegularizer([1]), ArgumentTypeError, "list of names"),
    (lambda: FiringRateRegularizer([]), ParameterError, "at least one population"),
    (lambda: FiringRateRegularizer(["h", "h"]), ParameterError, "got 'h' twice"),
    (lambda: FiringRateRegularizer(["h"], strength=NAN), ParameterError,
     "strength must be a finite number ≥ 0, got nan"),
    (lambda: FiringRateRegularizer(["h"], low=10, high=1), ParameterError,
     "needs low ≤ high, got low = 10 Hz > high = 1 Hz"),
    (lambda: FiringRateRegularizer(["h"], low=-1), ParameterError, "low .* ≥ 0"),
    (lambda: FiringRateRegularizer(["h"], low=INF), ParameterError, "low .* finite"),
    (lambda: FiringRateRegularizer(["h"], high=NAN), ParameterError, "high"),
    (lambda: FiringRateRegularizer(["h"], dt=0), TimeStepError, "regulariser: dt"),
    (lambda: make_loss(42), ArgumentTypeError, "a loss spec must be a name or a mapping "
     r"\{'name': ..., parameter: value\}, got 42"),
    (lambda: make_loss({"name": 3}), ArgumentTypeError, "a loss name must be a str, got 3"),
    (lambda: make_loss({"scale": 1}), ConfigError, "needs a 'name'"),
    (lambda: make_loss({"name": "spike_count_ce", "margin": 1}), ConfigError,
     "takes no parameter 'margin'; it takes population, scale"),
    (lambda: make_loss({"name": "spike_count_ce", "scale": "2"}), ArgumentTypeError,
     "spike_count_ce: scale must be a real number"),
    (lambda: make_loss("first_spike_ce", dt=0), TimeStepError, "make_loss: dt"),
    (lambda: first_spike_times([[0.0]], 1e-3), ArgumentTypeError, "spikes must be a spike"),
    (lambda: first_spike_times(torch.zeros(4, 2), 1e-3), ShapeError, r"\[T, B, C\]"),
    (lambda: first_spike_times(torch.zeros(4, 2, 1, dtype=torch.long), 1e-3), DTypeError,
     "floating-point"),
    (lambda: first_spike_times(torch.zeros(0, 2, 1), 1e-3), ShapeError, "time axis"),
    (lambda: first_spike_times(torch.full((2, 1, 1), NAN), 1e-3), NonFiniteError, "NaN"),
    (lambda: first_spike_times(torch.zeros(4, 2, 1), -1), TimeStepError, "first_spike_times"),
])
def test_bad_loss_and_regulariser_parameters(build, exc, fragment):
    with pytest.raises(exc, match=fragment):
        build()


def test_valid_edge_parameters_work(out):
    y = torch.tensor([0, 1])
    assert MaxMembraneCE(scale=np.float32(2)).scale == 2.0
    assert type(MaxMembraneCE(scale=torch.tensor(2.0)).scale) is float
    assert make_loss({"name": "first_spike_ce", "tau0": np.float64(1e-3)}, dt=1e-3).dt == 1e-3
    one_sided = MaxMembraneCE(bounds=(-INF, 0.5))
    assert torch.isfinite(one_sided(out, y))
    def penalty(**kw) -> float:
        return float(FiringRateRegularizer(**kw)(out).detach())

    assert penalty(populations=["hidden"], high=INF) == 0.0
    assert penalty(populations=("hidden", "spk3"), low=5, high=5, strength=0) == 0.0
    assert penalty(populations=["hidden"], low=1e9, high=INF) > 0
    assert torch.isfinite(FirstSpikeCE(population="spk3", alpha=0)(out, y))
    assert first_spike_times(torch.zeros(1, 1, 1), 1.0).tolist() == [[1.0]]  # T = 1
    assert MaxMembraneCE()(out, torch.tensor([2, 2])).shape == ()


# ---------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run stopped after one of two epochs, and its checkpoint."""
    root = tmp_path_factory.mktemp("run")
    t = Trainer(tiny(root / "a"))
    t.fit(stop_after=1)
    return root, torch.load(root / "a" / "tiny" / CHECKPOINT, weights_only=False)


def other_trainer(root: Path, name: str) -> Trainer:
    t = Trainer(tiny(root / name))
    t.fit(stop_after=1)  # an optimiser with state of its own
    return t


def trainer_state(t: Trainer):
    return (snapshot(t.network), [s["exp_avg"].clone() for s in t.optimizer.state.values()],
            t.shuffle.get_state(), torch.get_rng_state(), t.epoch, len(t.history))


def same_state(t: Trainer, before) -> None:
    weights, moments, shuffle, rng, epoch, history = before
    unchanged(t.network, weights)
    assert all(torch.equal(s["exp_avg"], m) for s, m in
               zip(t.optimizer.state.values(), moments, strict=True))
    assert torch.equal(t.shuffle.get_state(), shuffle)
    assert torch.equal(torch.get_rng_state(), rng)
    assert (t.epoch, len(t.history)) == (epoch, history)


def break_exp_avg(s):
    key = next(iter(s["optimizer"]["state"]))
    s["optimizer"]["state"][key]["exp_avg"] = torch.zeros(7)


def two_groups(s):
    s["optimizer"]["param_groups"].append(dict(s["optimizer"]["param_groups"][0]))


def stray_state(s):
    s["optimizer"]["state"][99] = {"exp_avg": torch.zeros(1)}


def misfit_best(s):
    s["best"] = (0.5, 1, {"layers.fc1.weight": torch.zeros(1)})


def bad_rng(s):  # passes every check, fails while restoring: everything is put back
    s["torch_rng"] = torch.zeros(3, dtype=torch.uint8)


@pytest.mark.parametrize(("spoil", "fragment"), [
    (break_exp_avg, r"optimiser state 'exp_avg' of parameter 0 is \(7,\), the parameter"),
    (two_groups, "the optimiser has 1 parameter group"),
    (stray_state, "names parameter 99, which no parameter group holds"),
    (misfit_best, "the state dict of the best epoch does not fit the model"),
    (lambda s: s.update(history=[{"epoch": 1}]), "missing"),
    (lambda s: s.update(epoch=-1), "epoch must be an integer ≥ 0"),
    (lambda s: s.update(partial={"done": 1}), "'partial'"),
    (bad_rng, "does not match this run, nothing was loaded"),
])
def test_a_checkpoint_that_does_not_fit_leaves_the_trainer_as_it_was(trained, spoil, fragment):
    root, state = trained
    spoiled = {k: v for k, v in state.items()}
    spoiled["optimizer"] = {"state": {k: dict(v) for k, v in state["optimizer"]["state"].items()},
                            "param_groups": [dict(g) for g in state["optimizer"]["param_groups"]]}
    spoil(spoiled)
    bad = root / f"bad-{spoil.__name__}.pt"
    torch.save(spoiled, bad)
    t = other_trainer(root, f"b-{spoil.__name__}")
    before = trainer_state(t)
    with pytest.raises(CheckpointError, match=fragment):
        t.load_checkpoint(bad)
    same_state(t, before)
    t.load_checkpoint(str(root / "a" / "tiny" / CHECKPOINT))  # a fitting one loads (str path)
    assert t.epoch == 1


def test_files_that_are_not_checkpoints(trained):
    root, _ = trained
    t = Trainer(tiny(root / "c"))
    before = snapshot(t.network)
    path = root / "foreign.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="is not a training checkpoint: it holds a Tensor"):
        t.load_checkpoint(path)
    torch.save({"epoch": 1}, path)
    with pytest.raises(CheckpointError, match="it lacks config, history, model"):
        t.load_checkpoint(str(path))
    with pytest.raises(CheckpointError, match="holds no network weights"):
        t.load_weights(str(path))
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*nowhere.pt' \(no such file\)"):
        t.load_checkpoint(str(root / "nowhere.pt"))
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        t.load_weights(root / "nowhere.pt")
    unchanged(t.network, before)


def test_checkpoint_paths_may_be_str_or_pathlike(trained, tmp_path):
    root, _ = trained
    t = Trainer(tiny(root / "d"))
    t.save_checkpoint(str(tmp_path / "as-str.pt"))
    t.save_checkpoint(tmp_path / "as-path.pt")
    assert t.load_checkpoint(str(tmp_path / "as-str.pt"))["epoch"] == 0
    t.load_weights(str(tmp_path / "as-path.pt"))
    for bad, exc, fragment in ((42, ArgumentTypeError, r"save_checkpoint: path must be a path "
                                r"\(a str or pathlib.Path\), got 42"),
                               (b"x.pt", ArgumentTypeError, "must be a path"),
                               (None, ArgumentTypeError, "must be a path"),
                               ("", ParameterError, "got an empty string")):
        with pytest.raises(exc, match=fragment):
            t.save_checkpoint(bad)
    with pytest.raises(ArgumentTypeError, match=r"load_checkpoint: path must be a path"):
        t.load_checkpoint(3)
    with pytest.raises(ArgumentTypeError, match=r"train.init_from must be a path"):
        t.load_weights(None)


def test_trainer_methods_check_their_arguments(trained):
    root, _ = trained
    with pytest.raises(ArgumentTypeError, match="Trainer: config must be a Config"):
        Trainer({"train": {}})
    t = Trainer(tiny(root / "e"))
    for call, exc, fragment in (
        (lambda: t.evaluate("val"), ArgumentTypeError, "split must be an EncodedSplit"),
        (lambda: t.evaluate(t.data["val"], batch_size=0), ParameterError,
         "batch_size must be an integer ≥ 1, got 0"),
        (lambda: t.evaluate(t.data["val"], batch_size=2.0), ArgumentTypeError,
         "batch_size must be an integer"),
        (lambda: t.readout_saturation(t.data["test"], batch_size=-1), ParameterError,
         "batch_size"),
        (lambda: t.fit(stop_after=-1), ParameterError, "stop_after must be an integer ≥ 0"),
        (lambda: t.fit(stop_after=1.5), ArgumentTypeError, "stop_after must be an integer"),
        (lambda: t.plot_sample(40), ParameterError, r"plot_sample: index must be an integer "
         r"≥ 0 and ≤ 39, got 40"),
        (lambda: t.plot_device_vs_sim(-1), ParameterError, "plot_device_vs_sim: index"),
        (lambda: t.plot_curves(mark="yes"), ArgumentTypeError, "mark must be True or False"),
    ):
        with pytest.raises(exc, match=fragment):
            call()
    assert not (root / "e" / "tiny").exists()  # the refused fit claimed no folder
    loss, acc, _ = t.evaluate(t.data["val"], batch_size=np.int64(7))
    assert math.isfinite(loss) and 0 <= acc <= 1


def test_rate_regulariser_config(tmp_path):
    with pytest.raises(ConfigError, match=r"train.rate_regularizer takes no 'hi'"):
        Trainer(tiny(tmp_path, "train.rate_regularizer={hi: 3}"))
    with pytest.raises(ParameterError, match="needs low ≤ high"):
        Trainer(tiny(tmp_path, "train.rate_regularizer={low: 30, high: 3}"))


# ---------------------------------------------------------------------------- experiment


def test_init_weights_checks_before_writing():
    net = issue_net()
    before = snapshot(net)
    for init, exc, fragment in (
        ({"input_std": -1.0}, ParameterError, "model.init.input_std must be a finite number ≥ 0"),
        ({"input_std": NAN}, ParameterError, "model.init.input_std"),
        ({"hidden_mean": INF}, ParameterError, "model.init.hidden_mean must be a finite"),
        ({"input_mean": "1"}, ArgumentTypeError, "model.init.input_mean must be a real number"),
        ({"input_sd": 1.0}, ConfigError, "unknown model.init keys"),
        ({3: 1.0}, ConfigError, "unknown model.init keys"),
        ("input_std", ArgumentTypeError, "model.init must be a mapping"),
    ):
        with pytest.raises(exc, match=fragment):
            init_weights(net, init)
        unchanged(net, before)
    with pytest.raises(ArgumentTypeError, match=r"init_weights: net must be a Network"):
        init_weights(torch.nn.Linear(2, 2))
    with pytest.raises(ArgumentTypeError, match=r"generator must be a torch.Generator"):
        init_weights(net, generator=3)
    init_weights(net, {"input_std": 0, "input_mean": np.float32(0.5)})  # valid edges
    assert torch.all(net.layers["fc1"].weight == 0.5)


def test_build_network_and_load_data_check_their_arguments(tmp_path):
    cfg = tiny(tmp_path)
    for call, exc, fragment in (
        (lambda: build_network(cfg.data, 4, 3, 1e-3), ArgumentTypeError, "cfg must be a "
         "ModelConfig"),
        (lambda: build_network(cfg.model, 4.0, 3, 1e-3), ArgumentTypeError,
         "n_in shape must be a positive integer or a tuple"),
        (lambda: build_network(cfg.model, 4, 0, 1e-3), ParameterError, "n_out must be an "
         "integer ≥ 1, got 0"),
        (lambda: build_network(cfg.model, 4, 3, 0), TimeStepError, "build_network: dt"),
        (lambda: load_data(cfg.model), ArgumentTypeError, "load_data: cfg must be a DataConfig"),
        (lambda: load_data(cfg.data, generator=1), ArgumentTypeError, "generator"),
    ):
        with pytest.raises(exc, match=fragment):
            call()
    assert build_network(cfg.model, np.int64(4), 3, np.float32(1e-3)).graph.num_neurons > 0


def test_encoder_config_errors_say_where_they_are(tmp_path):
    with pytest.raises(ArgumentTypeError, match=r"data.encoder: t_early must be a real number"):
        load_data(tiny(tmp_path, "data.encoder={name: latency, t_early: 2ms, t_late: 0.03}").data)
    with pytest.raises(ParameterError, match=r"data.encoder: bias_time = 0.2 s falls on step"):
        load_data(tiny(tmp_path, "data.encoder.bias_time=0.2").data)


def _float_labels(cfg):
    x = np.full((4, 2), 0.5)
    return {s: (x, np.array([0.0, 1.0, 1.0, 0.5])) for s in ("train", "val", "test")}


def _missing_split(cfg):
    return {"train": (np.zeros((2, 2)), np.zeros(2, dtype=np.int64))}


def _ragged(cfg):
    return {s: (np.zeros((3, 2)), np.zeros(2, dtype=np.int64)) for s in ("train", "val", "test")}


DATASETS.add("test-float-labels", _float_labels)
DATASETS.add("test-missing-split", _missing_split)
DATASETS.add("test-ragged", _ragged)


@pytest.mark.parametrize(("name", "exc", "fragment"), [
    ("test-float-labels", DTypeError, "labels must be integer class indices, got float64"),
    ("test-missing-split", ConfigError, r"must return the splits train, val, test, got \['train'"),
    ("test-ragged", ShapeError, r"labels \[N\], N ≥ 1, got \(3, 2\) and"),
])
def test_data_sets_must_return_integer_labelled_splits(tmp_path, name, exc, fragment):
    with pytest.raises(exc, match=fragment):
        load_data(tiny(tmp_path, f"data.dataset={name}").data)


# ---------------------------------------------------------------------------- encoders

LAT = {"dt": 1e-3, "duration": 0.01, "t_early": 0.001, "t_late": 0.009}
X = torch.tensor([[0.0, 0.5], [1.0, 0.25]])


@pytest.mark.parametrize(("call", "exc", "fragment"), [
    (lambda: latency([[0.5]], **LAT), ArgumentTypeError, r"x must be a torch.Tensor or a NumPy "
     r"array, got \[\[0.5\]\] \(list\)"),
    (lambda: latency("0.5", **LAT), ArgumentTypeError, "x must be a torch.Tensor"),
    (lambda: latency(np.array([["a"]]), **LAT), DTypeError, "x must hold real numbers"),
    (lambda: latency(torch.zeros(1, 1, dtype=torch.complex64), **LAT), DTypeError,
     "complex64"),
    (lambda: latency(X, **(LAT | {"t_early": "1ms"})), ArgumentTypeError,
     "t_early must be a real number, got '1ms'"),
    (lambda: latency(X, **(LAT | {"t_late": NAN})), ParameterError, "t_late must be a finite"),
    (lambda: latency(X, **LAT, bias_time=INF), ParameterError, "bias_time must be a finite"),
    (lambda: latency(X, **(LAT | {"dt": None})), TimeStepError, "dt must be a finite number"),
    (lambda: latency(X, **(LAT | {"dt": 5e-324})), ParameterError, "not a finite number of "
     "steps"),
    (lambda: latency(X, **(LAT | {"duration": INF})), ParameterError, "duration must be a "
     "finite number > 0, got inf"),
    (lambda: latency(X, **(LAT | {"duration": True})), ArgumentTypeError, "duration"),
    (lambda: log_latency(X, dt=1e-3, duration=0.01, tau=0.01, threshold=NAN), ParameterError,
     "threshold must be a finite number"),
    (lambda: log_latency(X, dt=1e-3, duration=0.01, tau=-1, threshold=0.5), ParameterError,
     "tau must be a finite number > 0"),
    (lambda: rate(X, dt=1e-3, duration=0.01, max_rate=10, mode=3), ParameterError,
     r"mode must be one of \['bernoulli', 'poisson'\], got 3"),
    (lambda: rate(X, dt=1e-3, duration=0.01, max_rate=True), ArgumentTypeError, "max_rate"),
    (lambda: rate(X, dt=1e-3, duration=0.01, max_rate=INF, mode="poisson"), ParameterError,
     "max_rate .* must be a finite number ≥ 0, got inf"),
    (lambda: rate(X, dt=1e-3, duration=0.01, max_rate=10, generator=3), ArgumentTypeError,
     "generator must be a torch.Generator"),
    (lambda: delta(torch.zeros(3, 1, 1), threshold=INF), ParameterError, "threshold"),
    (lambda: delta(torch.zeros(3, 1, 1), threshold=0.1, split="yes"), ArgumentTypeError,
     "split must be True or False"),
    (lambda: delta([[[0.0]]], threshold=0.1), ArgumentTypeError, "signal must be a torch"),
    (lambda: make_encoder(42), ArgumentTypeError, "encoder name must be a str, got 42"),
    (lambda: make_encoder("latency", **(LAT | {"t_early": -1})), ParameterError,
     "t_early must be >= 0 s"),
    (lambda: make_encoder("rate", dt=0, duration=0.01, max_rate=1), TimeStepError, "dt"),
    (lambda: make_encoder("delta", threshold=0), ParameterError, "threshold must be a finite "
     "number > 0"),
])
def test_bad_encoder_arguments(call, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call()


def test_valid_encoder_edges():
    as_tensor = latency(X, **LAT)
    from_numpy = latency(X.numpy(), **LAT)
    assert torch.equal(as_tensor, from_numpy)
    assert latency(X.double().numpy(), **LAT).dtype == torch.float64  # the dtype is kept
    ints = latency(torch.tensor([[0, 1]]), **LAT)
    assert ints.dtype == torch.get_default_dtype()
    assert torch.equal(ints, latency(torch.tensor([[0.0, 1.0]]), **LAT))
    assert torch.equal(latency(torch.tensor([[False, True]]), **LAT), ints)
    assert latency(torch.zeros(0, 3), **LAT).shape == (10, 0, 3)  # an empty batch
    assert latency(X, **(LAT | {"dt": torch.tensor(1e-3)})).shape == (10, 2, 2)
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    enc = make_encoder("rate", dt=1e-3, duration=0.01, max_rate=100, generator=g)
    assert torch.equal(g.get_state(), state)  # checking the parameters drew no numbers
    assert enc(X).shape == (10, 2, 2)
    assert delta(np.zeros((3, 1, 2)), threshold=0.1, split=np.True_).shape == (3, 1, 4)


# ---------------------------------------------------------------------------- Yin-Yang


@pytest.mark.parametrize(("kwargs", "exc", "fragment"), [
    ({"size": 5.0, "seed": 1}, ArgumentTypeError, r"size must be an integer, got 5.0 \(float\)"),
    ({"size": True, "seed": 1}, ArgumentTypeError, "size must be an integer"),
    ({"size": "5", "seed": 1}, ArgumentTypeError, "size must be an integer"),
    ({"size": 5, "seed": 2**32}, ParameterError, r"seed \(numpy RandomState\) must be an "
     r"integer ≥ 0 and ≤ 4.29497e\+09, got 4294967296"),
    ({"size": 5, "seed": None}, ArgumentTypeError, "seed"),
    ({"size": 5, "seed": 1, "r_small": "0.1"}, ArgumentTypeError, "r_small must be a real"),
    ({"size": 5, "seed": 1, "r_big": INF}, ParameterError, "r_big must be a finite number > 0"),
    ({"size": 5, "seed": 1, "r_small": -0.1}, ParameterError, "r_small must be a finite"),
])
def test_bad_yin_yang_arguments(kwargs, exc, fragment):
    with pytest.raises(exc, match=fragment):
        yin_yang(**kwargs)


def test_yin_yang_valid_edges_and_split_names():
    x, y = yin_yang(np.int64(3), np.uint32(42))
    x_ref, y_ref = yin_yang(3, 42)
    assert np.array_equal(x, x_ref) and np.array_equal(y, y_ref)
    assert yin_yang(1, 2**32 - 1, r_small=np.float64(0.1))[0].shape == (1, 4)
    with pytest.raises(ArgumentTypeError, match="split name must be a str"):
        yin_yang_split(3)
    with pytest.raises(UnknownNameError, match="unknown Yin-Yang split 'dev'"):
        yin_yang_split("dev")
