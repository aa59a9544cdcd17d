"""VDSP (Garg et al. 2022): the rule's closed form, winner-take-all, homeostasis, label
assignment and the vote."""

from __future__ import annotations

import math

import pytest
import torch

from spikeloop.errors import ParameterError, ShapeError
from spikeloop.training.vdsp import (
    Responses,
    assign_labels,
    f_depression,
    f_potentiation,
    g_depression,
    g_potentiation,
    homeostasis_step,
    vdsp_delta,
    vote,
    winner_take_all,
)

E = math.e


def test_g_sign_flips_at_v_prog():
    v = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    assert torch.allclose(g_potentiation(v), torch.tensor([E - 1, math.exp(0.5) - 1, 0, 0, 0]))
    assert torch.allclose(g_depression(v), torch.tensor([0, 0, 0, math.exp(0.5) - 1, E - 1]))
    # the boundary moves with v_prog: v = 0.2 potentiates below v_prog = 0.3
    assert g_potentiation(torch.tensor(0.2), 0.3) == pytest.approx(math.exp(0.1) - 1)
    assert g_depression(torch.tensor(0.2), 0.3) == 0


def test_weight_windows():
    w = torch.tensor([0.0, 0.5, 1.0])
    assert torch.equal(f_potentiation(w), torch.tensor([1.0, 0.5, 0.0]))
    assert torch.equal(f_depression(w), w)
    assert f_potentiation(torch.tensor(0.5), 2.0) == pytest.approx(0.5 * math.exp(-1))
    assert f_depression(torch.tensor(0.5), 2.0) == pytest.approx(0.5 * math.exp(-1))


def test_delta_hand_computed():
    # 3 pre neurons: just fired (v = −1), charging (v = 0.5), at rest (v = 0); 2 post neurons,
    # only post 0 spikes.
    w = torch.tensor([[0.25, 0.25], [0.25, 0.25], [0.25, 0.25]])
    v_pre = torch.tensor([[-1.0, 0.5, 0.0]])
    z = torch.tensor([[1.0, 0.0]])
    d = vdsp_delta(w, v_pre, z, lr=0.01)
    expected = torch.tensor([[0.01 * (E - 1) * 0.75, 0.0],
                             [-0.01 * (math.exp(0.5) - 1) * 0.25, 0.0],
                             [0.0, 0.0]])
    assert torch.allclose(d, expected)
    assert d[0, 0] > 0 > d[1, 0]


def test_no_update_without_post_spike():
    w = torch.rand(5, 4)
    v_pre = torch.randn(3, 5)
    assert torch.equal(vdsp_delta(w, v_pre, torch.zeros(3, 4), lr=1.0), torch.zeros(5, 4))


def test_delta_sums_over_batch():
    w = torch.rand(4, 3)
    v = torch.randn(2, 4)
    z = torch.tensor([[1.0, 0, 1], [0, 1, 1]])
    both = vdsp_delta(w, v, z, lr=0.1)
    one = vdsp_delta(w, v[:1], z[:1], lr=0.1) + vdsp_delta(w, v[1:], z[1:], lr=0.1)
    assert torch.allclose(both, one)


def test_delta_shapes_refused():
    with pytest.raises(ShapeError, match="does not fit"):
        vdsp_delta(torch.rand(4, 3), torch.rand(2, 5), torch.rand(2, 3), lr=1)


def test_winner_take_all():
    v = torch.tensor([[1.2, 1.5, 0.3], [0.9, 0.2, 0.1], [1.1, 1.1, 2.0]])
    z = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    # row 3: neuron 2 has the highest membrane but did not spike; tie 0/1 → first
    assert torch.equal(winner_take_all(v, z),
                       torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]))


def test_homeostasis_closed_form():
    rho, inc = math.exp(-5e-3 / 1.0), 0.01
    train = torch.tensor([[1, 0], [0, 0], [1, 1], [0, 0], [0, 1], [1, 0]], dtype=torch.float32)
    theta = torch.tensor([0.2, 0.0])
    for z in train:
        theta = homeostasis_step(theta, z, rho, inc)
    T = len(train)
    expected = [rho ** T * 0.2 + inc * sum(rho ** (T - 1 - k) for k in (0, 2, 5)),
                inc * sum(rho ** (T - 1 - k) for k in (2, 4))]
    assert torch.allclose(theta, torch.tensor(expected))


def test_label_assignment_hand_made():
    # 4 samples, 3 neurons, 3 classes (class 2 has no sample)
    counts = torch.tensor([[4.0, 0, 0], [2.0, 1, 0], [1.0, 3, 0], [0.0, 3, 0]])
    y = torch.tensor([0, 0, 1, 1])
    r = Responses(3, 3)
    r.add(counts[:2], y[:2])
    r.add(counts[2:], y[2:])
    # mean responses: class 0 → [3, 0.5, 0], class 1 → [0.5, 3, 0]
    assert torch.equal(r.labels(), torch.tensor([0, 1, -1]))
    # the mean, not the sum: 3 samples of class 0 with 1 spike each lose to 1 of class 1 with 2
    assert torch.equal(assign_labels(torch.tensor([[3.0], [2.0]]), torch.tensor([3.0, 1.0])),
                       torch.tensor([1]))


def test_responses_refuse_bad_labels():
    with pytest.raises(ParameterError, match="class indices"):
        Responses(2, 3).add(torch.zeros(1, 3), torch.tensor([2]))


def test_vote_sum_and_mean():
    labels = torch.tensor([0, 0, 1, -1])
    counts = torch.tensor([[1.0, 1.0, 1.5, 9.0], [0.0, 0.5, 1.0, 0.0]])
    assert torch.equal(vote(counts, labels, 3), torch.tensor([0, 1]))     # sums 2 vs 1.5
    assert torch.equal(vote(counts, labels, 3, mean=True), torch.tensor([1, 1]))  # 1 vs 1.5


# ----------------------------------------------------------------------------- on the engine


def _tiny_net(w2: torch.Tensor, r_out: float = 10.0):
    from spikeloop.network import Network
    from spikeloop.nn import LIF, Input, Linear

    net = Network({"input": Input(3), "fc1": Linear(3, 3),
                   "hidden1": LIF(3, dt=5e-3, tau_mem=30e-3, r=4.0, v_leak=0.5, v_reset=-1.0),
                   "fc2": Linear(3, w2.shape[0]),
                   "hidden2": LIF(w2.shape[0], dt=5e-3, tau_mem=30e-3, r=r_out)})
    with torch.no_grad():
        net.layers["fc1"].weight.copy_(torch.eye(3))
        net.layers["fc2"].weight.copy_(w2)
    return net


def _pixels_state(v0):
    from spikeloop.dynamics.models import PopulationState
    from spikeloop.dynamics.neurons import LIFState

    v0 = torch.tensor([v0])
    return {"hidden1": PopulationState(LIFState(v0, torch.zeros_like(v0)))}


def test_engine_rule_equals_closed_form_with_reset_value():
    from spikeloop.training.plasticity import Plasticity
    from spikeloop.training.vdsp import vdsp

    # pre 0 crosses its threshold (counted at its reset −1: potentiation), pre 1 charges to
    # v > 0 (depression), pre 2 sits below 0 (potentiation without a spike); post 0 receives
    # pre 0's spike through w = 0.9 and fires, post 1 (w = 0) does not.
    w2 = torch.tensor([[0.9, 0.4, 0.6], [0.0, 0.4, 0.6]])
    net = _tiny_net(w2)
    seen = {}
    engine = Plasticity(net, {"fc2": vdsp(lr=0.05)})
    engine.run(torch.tensor([[[1.0, 0.3, 0.0]]]), state=_pixels_state([1.0, 0.2, -0.6]),
               on_step=lambda t, obs: seen.update(v=obs["hidden1"].v[0].clone(),
                                                  x=obs["hidden1"].spikes[0].clone(),
                                                  z=obs["hidden2"].spikes[0].clone()))
    assert seen["x"].tolist() == [[1.0, 0.0, 0.0]] and seen["z"].tolist() == [[1.0, 0.0]]
    v = seen["v"][0]
    assert v[1] > 0 > v[2]
    after = torch.where(seen["x"] > 0, -1.0, seen["v"])  # the membrane after the reset
    expected = w2 + vdsp_delta(w2.T, after, seen["z"], lr=0.05).T
    assert torch.allclose(net.layers["fc2"].weight, expected.clamp(0, 1))
    change = net.layers["fc2"].weight.detach() - w2
    assert change[0, 0] > 0 and change[0, 1] < 0 and change[0, 2] > 0
    assert float(change[0, 0]) == pytest.approx(0.05 * (E - 1) * 0.1)
    assert torch.equal(change[1], torch.zeros(3))     # no post spike, no change


def test_competition_one_winner_losers_reset_and_homeostasis():
    from spikeloop.training.plasticity import Plasticity
    from spikeloop.training.vdsp import Competition

    # three post neurons all driven over threshold by pre 0 at the first step; the largest
    # weight wins; neuron 2 has θ = 5 in this row: above ϑ = 1, below its own threshold
    w2 = torch.tensor([[0.5, 0.0, 0.0], [0.9, 0.0, 0.0], [1.0, 0.0, 0.0]])
    net = _tiny_net(w2, r_out=40.0)
    out = net.layers["hidden2"]
    out.settings = {"t_refrac": 5e-3}
    hook = Competition("hidden2", out, inhibit_steps=2, theta_plus=0.05, tau_theta=1.0)
    hook.theta = torch.tensor([[0.0, 0.0, 5.0]])
    engine = Plasticity(net, {})
    spikes, membranes = [], []
    x = torch.tensor([[[1.0, 0.3, 0.0]]] * 2)
    hook.start(1, x)
    counts = engine.run(x, before_rule=hook, state=_pixels_state([1.0, 0.2, -0.6]),
                        on_step=lambda t, obs: (spikes.append(obs["hidden2"].spikes[0].clone()),
                                                membranes.append(obs["hidden2"].v[0].clone())))
    assert membranes[0][0, 2] > 1.0                         # crossed ϑ, not ϑ + θ
    assert spikes[0].tolist() == [[0.0, 1.0, 0.0]]
    assert torch.equal(counts["hidden2"], spikes[0] + spikes[1])
    s = engine.state["hidden2"].neuron
    assert s.refrac[0, 0] > 0 and s.refrac[0, 2] > 0         # the losers are held
    rho = math.exp(-5e-3)
    theta = torch.tensor([[0.0, 0.0, 5.0]])
    for z in spikes:
        theta = homeostasis_step(theta, z, rho, 0.05)
    assert torch.allclose(hook.theta, theta)
    assert hook.theta[0, 1] > 0 and hook.theta[0, 0] == 0
    # a second run keeps the row's θ, new rows start from 0; a reading hook keeps θ fixed
    hook.start(2, x)
    assert torch.allclose(hook.theta[0], theta[0]) and torch.equal(hook.theta[1], torch.zeros(3))
    reading = Competition("hidden2", out, 2, 0.05, 1.0, adapt=False)
    reading.start(2, x, theta[0])
    engine.run(torch.cat([x, x], 1), before_rule=reading)
    assert torch.equal(reading.theta, theta.expand(2, 3))


# ----------------------------------------------------------------------------- train.method


def _digits(tmp_path, *extra):
    from spikeloop.training import load_config

    return load_config("configs/digits_vdsp.yaml", [
        f"run.out_dir={tmp_path}", "run.name=v", "data.duration=0.05", "model.hidden=[64,20]",
        "train.batch_size=200", "train.progress=false", *extra])


def test_method_trains_labels_and_predicts(tmp_path):
    from spikeloop.training import Trainer

    trainer = Trainer(_digits(tmp_path))
    method = trainer.method
    assert method.name == "vdsp" and not method.gradient
    w0 = trainer.network.layers["fc2"].weight.clone()
    x, y = trainer.data["train"].batch(slice(0, 200))
    loss, correct = method.train_batch(trainer, x, y)
    assert math.isnan(loss) and correct == 0       # no labels before the first assignment
    assert not torch.equal(trainer.network.layers["fc2"].weight, w0)
    w = trainer.network.layers["fc2"].weight
    assert float(w.min()) >= 0 and float(w.max()) <= 1
    method.end_epoch(trainer)
    labels = method.neuron_labels
    assert labels.shape == (20,) and int((labels >= 0).sum()) > 0
    pred = trainer.predict(trainer.forward(x))
    assert pred.shape == (200,) and float((pred == y).float().mean()) > 0.2


def test_method_refuses_other_networks(tmp_path):
    from spikeloop.errors import ConfigError
    from spikeloop.training import Trainer

    with pytest.raises(ConfigError, match="hidden1 are the input neurons, one per input"):
        Trainer(_digits(tmp_path, "model.hidden=[32,20]"))
    with pytest.raises(ConfigError, match="voltage LIF"):
        Trainer(_digits(tmp_path, "model.neuron=cuba_lif", "model.tau_syn=0.01"))
    with pytest.raises(ConfigError, match="vote"):
        Trainer(_digits(tmp_path, "train.method={name: vdsp, vote: max}"))


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    from spikeloop.training import Trainer

    whole = Trainer(_digits(tmp_path / "a", "train.epochs=2"))
    whole.fit()
    first = Trainer(_digits(tmp_path / "b", "train.epochs=2"))
    first.fit(stop_after=1)
    resumed = Trainer(_digits(tmp_path / "b", "train.epochs=2", "train.resume=true"))
    resumed.fit()
    for key, value in whole.network.state_dict().items():
        assert torch.equal(resumed.network.state_dict()[key], value), key
    assert torch.equal(resumed.method.neuron_labels, whole.method.neuron_labels)
