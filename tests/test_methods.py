"""``train.method``: the registry of training methods, their options, and how the trainer runs a
local (non-gradient) method: its batches, its epoch hook, its prediction and its checkpoint."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from spikeloop.errors import ConfigError
from spikeloop.training import METHODS, Trainer, TrainingMethod, load_config
from spikeloop.training.methods import AnnProxy, Backprop, make_method, method_options

ROOT = Path(__file__).resolve().parents[1]


def test_a_method_is_a_name_or_a_mapping_with_options():
    assert method_options("backprop") == (Backprop, Backprop.Options())
    assert isinstance(make_method({"name": "ann_proxy"}), AnnProxy)
    assert {"backprop", "ann_proxy"} <= set(METHODS.names())


@pytest.mark.parametrize(("spec", "match"), [
    ("sgd", r"unknown train.method 'sgd'; known: .*ann_proxy.*backprop"),
    ({"name": "backprop", "lr": 1}, r"train.method backprop: unknown option\(s\) \['lr'\]; "
                                    r"known: none"),
    ({"lr": 1}, r"train.method must be a name or a mapping with a 'name' key"),
    (3, r"train.method must be a name or a mapping"),
])
def test_bad_methods_are_refused_naming_what_is_known(spec, match):
    with pytest.raises(ConfigError, match=match):
        method_options(spec)


@dataclass(frozen=True)
class _HebbOptions:
    rate: float = 1e-3

    def __post_init__(self):
        if self.rate <= 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")


class _Hebb(TrainingMethod):
    """A test-only local method: Hebbian growth of the readout weights towards the label."""

    name = "_test_hebb"
    gradient = False
    Options = _HebbOptions

    def __init__(self, options):
        super().__init__(options)
        self.batches = self.epochs = 0

    def train_batch(self, trainer, x, y):
        with torch.no_grad():
            out = trainer.forward(x)
            hidden = out["hidden1"].spikes.mean(0)                    # [B, N]
            target = torch.nn.functional.one_hot(y, 10).float()       # [B, 10]
            w = trainer.network.layers["fc2"].weight
            w += self.options.rate * trainer.lr_factor * (target.T @ hidden)
        self.batches += 1
        return float("nan"), int((self.predict(trainer, out) == y).sum())

    def predict(self, trainer, out):
        return out["hidden1"].spikes.sum(0)[:, :10].argmax(1)  # a rule the loss does not have

    def end_epoch(self, trainer):
        self.epochs += 1

    def state_dict(self):
        return {"batches": self.batches, "epochs": self.epochs}

    def load_state_dict(self, state):
        self.batches, self.epochs = state["batches"], state["epochs"]


@pytest.fixture
def hebb():
    METHODS.add(_Hebb.name, _Hebb)
    try:
        yield _Hebb
    finally:
        METHODS._items.pop(_Hebb.name)


def _config(tmp_path, *extra):
    return load_config(ROOT / "configs/digits.yaml", [
        f"run.out_dir={tmp_path}", "train.progress=false", "run.threads=1", "train.epochs=2",
        "data.train_size=200", "data.val_size=50", "data.test_size=50", "train.batch_size=50",
        "train.schedule=cosine", *extra])


def test_the_trainer_runs_a_local_method_without_its_optimizer(tmp_path, hebb):
    with pytest.raises(ConfigError, match=r"_test_hebb: rate must be > 0, got -1"):
        _config(tmp_path, "train.method={name: _test_hebb, rate: -1}")
    trainer = Trainer(_config(tmp_path, "train.method={name: _test_hebb, rate: 0.01}"))
    method = trainer.method
    assert isinstance(method, _Hebb) and method.options.rate == 0.01
    before = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    trainer.fit(stop_after=1)
    after = trainer.network.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["layers.fc2.weight"]  # the method's update only: no optimiser step
    assert (method.batches, method.epochs) == (4, 1)
    x, y = trainer.data["val"].batch(slice(0, 50))
    with torch.no_grad():
        out = trainer.forward(x)
    acc = float((out["hidden1"].spikes.sum(0)[:, :10].argmax(1) == y).float().mean())
    assert trainer.evaluate(trainer.data["val"])[1] == pytest.approx(acc)  # its prediction

    resumed = Trainer(_config(tmp_path, "train.method={name: _test_hebb, rate: 0.01}",
                              "train.resume=true", f"run.name={trainer.dir.name}"))
    assert (resumed.method.batches, resumed.method.epochs) == (4, 1)  # from the checkpoint
    resumed.fit()
    assert (resumed.method.batches, resumed.method.epochs) == (8, 2)
    assert trainer.lr_factor == pytest.approx(0.5)  # cosine, after 1 of 2 epochs
    assert resumed.lr_factor == pytest.approx(0.0, abs=1e-12)  # annealed to 0
