"""Loading is transactional: a state that does not fit raises and leaves everything as it was."""

from pathlib import Path

import pytest
import torch

from spikeloop.errors import CheckpointError, UnknownNameError
from spikeloop.network import Network
from spikeloop.nn import CubaLI, CubaLIF, Input, Linear
from spikeloop.training import Trainer, load_config
from spikeloop.training.trainer import CHECKPOINT

ROOT = Path(__file__).resolve().parents[1]


def net() -> Network:
    torch.manual_seed(0)
    return Network({"input": Input(4), "fc1": Linear(4, 10), "hidden": CubaLIF(10),
                    "fc2": Linear(10, 3), "output": CubaLI(3)})


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items()}


def unchanged(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = module.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        assert torch.equal(after[k], v), k


def tiny(out, *extra):
    return load_config(ROOT / "configs/yinyang.yaml", [
        f"run.out_dir={out}", "run.name=tiny", "data.train_size=80", "data.val_size=40",
        "data.test_size=40", "model.hidden=[12]", "train.batch_size=40", "train.epochs=2",
        "train.progress=false", "train.backend=sim", *extra])


def misfit(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every tensor changed, the last one also of the wrong shape: torch's own
    ``load_state_dict`` would have written all the others before failing on it."""
    out = {k: v + 1 if v.is_floating_point() else v for k, v in state.items()}
    last = list(out)[-1]
    out[last] = torch.zeros(*out[last].shape, 2)
    return out


@pytest.mark.parametrize(("bad", "message"), [
    (lambda s: misfit(s), r"nothing was loaded: .* is \(.*\), the model's"),
    (lambda s: {k: v for k, v in list(s.items())[1:]}, "missing 'layers.fc1.weight'"),
    (lambda s: s | {"layers.extra": torch.zeros(1)}, "unexpected 'layers.extra'"),
    (lambda s: s | {"layers.fc1.weight": [[0.0]]}, "layers.fc1.weight is a list, not a tensor"),
    (lambda s: torch.zeros(3), "expected a mapping of tensor names to tensors, got Tensor"),
])
def test_network_load_state_dict_is_transactional(bad, message):
    model = net()
    before = snapshot(model)
    other = snapshot(net())
    with pytest.raises(CheckpointError, match=message):
        model.load_state_dict(bad({k: v + 1 for k, v in other.items()}))
    unchanged(model, before)
    model.load_state_dict(other)  # a fitting state still loads
    assert torch.equal(model.state_dict()["layers.fc1.weight"], other["layers.fc1.weight"])


def test_a_failed_init_from_leaves_the_network_as_it_was(tmp_path):
    source = Trainer(tiny(tmp_path / "a", "train.epochs=1"))
    source.fit()
    bad = tmp_path / "bad.pt"
    torch.save({"model": misfit(source.network.state_dict())}, bad)
    t = Trainer(tiny(tmp_path / "b"))
    before = snapshot(t.network)
    with pytest.raises(CheckpointError, match=r"train.init_from .*nothing was loaded"):
        t.load_weights(bad)
    unchanged(t.network, before)
    torch.save(torch.zeros(3), bad)
    with pytest.raises(CheckpointError, match="holds no network weights"):
        t.load_weights(bad)
    torch.save({"weights": 1}, bad)
    with pytest.raises(CheckpointError, match="holds no network weights"):
        t.load_weights(bad)
    unchanged(t.network, before)


@pytest.mark.parametrize("broken", ["model", "optimizer"])
def test_a_failed_checkpoint_load_leaves_network_and_optimiser_as_they_were(tmp_path, broken):
    first = Trainer(tiny(tmp_path / "a"))
    first.fit(stop_after=1)
    state = torch.load(tmp_path / "a" / "tiny" / CHECKPOINT, weights_only=False)
    if broken == "model":
        state["model"] = misfit(state["model"])
    else:  # the model fits; the optimiser's parameter groups do not
        state["optimizer"]["param_groups"][0]["params"] = [0]
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    t = Trainer(tiny(tmp_path / "b"))
    t.fit(stop_after=1)  # an optimiser with state of its own
    before, optimizer_before = snapshot(t.network), t.optimizer.state_dict()
    exp_avg = [s["exp_avg"].clone() for s in optimizer_before["state"].values()]
    with pytest.raises(CheckpointError, match="does not match this run, nothing was loaded"):
        t.load_checkpoint(bad)
    unchanged(t.network, before)
    after = t.optimizer.state_dict()
    assert [torch.equal(a["exp_avg"], b) for a, b in
            zip(after["state"].values(), exp_avg, strict=True)] == [True] * len(exp_avg)
    assert t.epoch == 1


def test_a_state_dict_holding_nan_is_refused_and_nothing_is_loaded():
    net = Network({"input": Input(3), "fc": Linear(3, 4), "out": CubaLI(4)})
    before = {k: v.clone() for k, v in net.state_dict().items()}
    bad = {k: v.clone() for k, v in before.items()}
    bad["layers.fc.weight"][0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"layers.fc.weight holds NaN or infinite values"):
        net.load_state_dict(bad)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_reading_a_population_the_run_does_not_have_names_those_it_has():
    net = Network({"input": Input(3), "fc": Linear(3, 4), "out": CubaLI(4)})
    out = net(torch.zeros(2, 1, 3))
    with pytest.raises(UnknownNameError, match="no population 'hidden'; it has 'input', 'out'"):
        out["hidden"]
