"""Stochastic spike-coded backprop (SSNN-BP): the expectation path is backprop of the ANN, the
spike-coded updates are unbiased (tolerances from the binomial second moments), hand-computed
single-synapse updates and their signs, the WTA's soft-max, and the networks it refuses."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from spikeloop.errors import ConfigError, ParameterError, ShapeError
from spikeloop.network import Network
from spikeloop.nn import IF, LI, LIF, Conv2d, Flatten, Input, Linear
from spikeloop.training.ssnn import (
    coincidence_update,
    ssnn_forward,
    ssnn_learn,
    ssnn_predict,
    ssnn_stages,
    ssnn_step,
    wta,
)

DT = 1e-3
ROOT = Path(__file__).resolve().parents[1]
Z = 5.0  # standard errors allowed per entry: P(|N(0,1)| > 5) ≈ 6e-7 per entry


def _net(sizes=(6, 5, 3), bias=False, mean=0.1, std=0.4, seed=0, **hidden) -> Network:
    """input → (Linear → IF) × (len(sizes) − 2) → Linear → LI, weights normal(mean, std)."""
    torch.manual_seed(seed)
    layers: dict[str, torch.nn.Module] = {"input": Input(sizes[0])}
    for k in range(1, len(sizes)):
        layers[f"fc{k}"] = Linear(sizes[k - 1], sizes[k], bias=bias)
        layers[f"hidden{k}" if k < len(sizes) - 1 else "output"] = (
            IF(sizes[k], dt=DT, **hidden) if k < len(sizes) - 1 else LI(sizes[k], dt=DT))
    net = Network(layers)
    with torch.no_grad():
        for name, module in net.layers.items():
            if name.startswith("fc"):
                module.weight.normal_(mean, std)
                if module.bias is not None:
                    module.bias.normal_(0.0, 0.1)
    return net


def _ann_gradients(net: Network, p: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """∂L/∂W by autograd of the clipped-ReLU MLP with the network's weights (c = 1)."""
    names = [n for n in net.layers if n.startswith("fc")]
    params = {}
    h = p
    for k, name in enumerate(names):
        layer = net.layers[name]
        w = layer.weight.detach().clone().requires_grad_()
        params[name] = w
        b = None
        if layer.bias is not None:
            b = layer.bias.detach().clone().requires_grad_()
            params[f"{name}.bias"] = b
        h = h @ w.T + (0 if b is None else b)
        if k < len(names) - 1:
            h = h.clamp(0.0, 1.0)
    torch.nn.functional.cross_entropy(h, y).backward()
    return {k: v.grad for k, v in params.items()}


def test_expectation_path_is_backprop_of_the_ann():
    """stochastic=False: the update is minus autograd's gradient of the clipped-ReLU MLP with
    soft-max cross-entropy (two hidden layers, biases, an IF gain c = r/(ϑ − v_reset) = 1)."""
    net = _net((7, 6, 5, 4), bias=True)
    stages = ssnn_stages(net.graph)
    p, y = torch.rand(9, 7), torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0])
    step = ssnn_step(stages, p, y, 1, stochastic=False)
    grads = _ann_gradients(net, p, y)
    assert set(step.updates) == set(grads)
    for name, g in grads.items():
        torch.testing.assert_close(step.updates[name], -g, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(step.wins.sum(-1), torch.ones(9))


def test_if_gain_scales_activation_and_slope():
    """A threshold of 2 halves the slope: a = clamp(v/2, 0, 1) and a' = 1/2 on (0, 2)."""
    net = _net((4, 3, 2), v_threshold=2.0)
    stages = ssnn_stages(net.graph)
    p, y = torch.rand(5, 4), torch.tensor([0, 1, 0, 1, 1])
    acts, membranes, _ = ssnn_forward(stages, p, 1, stochastic=False)
    torch.testing.assert_close(acts[1], (membranes[0] / 2).clamp(0, 1))
    step = ssnn_step(stages, p, y, 1, stochastic=False)
    w1, w2 = (net.layers[n].weight.detach().clone().requires_grad_() for n in ("fc1", "fc2"))
    z = ((p @ w1.T) / 2).clamp(0, 1) @ w2.T
    torch.nn.functional.cross_entropy(z, y).backward()
    torch.testing.assert_close(step.updates["fc1"], -w1.grad)


def _second_moments(net, acts, membranes, z, y):
    """E[term²] of one coincidence term γ_j (ε⁺_j − ε⁻_j) x_i per synapse, one hidden layer:
    a Bernoulli pre spike (prob a_i) times an independent error spike of size γ_j (so
    E[term²] = γ_j² a_i P(error spike)). Output: P = y (1 − s) + (1 − y) s; hidden: P = E|J|/γ
    with J over the K possible winners."""
    w2 = net.layers["fc2"].weight.detach()
    soft = torch.softmax(z, -1)
    target = torch.nn.functional.one_hot(y, z.shape[-1]).to(z.dtype)
    out_p = target * (1 - soft) + (1 - target) * soft                       # [B, K]
    m2_out = out_p[:, :, None] * acts[1][:, None, :]                         # [B, K, H]
    v = membranes[0]
    gate = ((v > 0) & (v < 1)).to(v.dtype)                                   # [B, H]
    gamma = gate * (w2.amax(0) - w2.amin(0))                                 # [B, H]
    label_w = w2[y]                                                          # [B, H]
    abs_j = (soft[:, :, None] * (label_w[:, None, :] - w2[None]).abs()).sum(1) * gate
    m2_hid = (gamma * abs_j)[:, :, None] * acts[0][:, None, :]               # γ² · E|J|/γ · a
    return {"fc2": m2_out.mean(0), "fc1": m2_hid.mean(0)}


def test_learning_window_is_unbiased_given_the_forward_window():
    """Held at the ANN's membranes, the mean spike-coded update over R runs of T steps equals
    backprop's within Z standard errors from the binomial second moments (any T, here 32)."""
    net = _net((6, 5, 3), mean=0.15, std=0.5)
    stages = ssnn_stages(net.graph)
    gen = torch.Generator().manual_seed(7)
    p, y = torch.rand(4, 6, generator=gen), torch.tensor([0, 1, 2, 1])
    acts, membranes, z = ssnn_forward(stages, p, 1, stochastic=False)
    assert bool(((membranes[0] > 0) & (membranes[0] < 1)).any())  # some gates open
    exact = ssnn_learn(stages, acts, membranes, z, y, 1, stochastic=False).updates
    steps, runs = 32, 400
    mean = {k: torch.zeros_like(v) for k, v in exact.items()}
    for _ in range(runs):
        step = ssnn_learn(stages, acts, membranes, z, y, steps, gen)
        for k in mean:
            mean[k] += step.updates[k] / runs
    m2 = _second_moments(net, acts, membranes, z, y)
    n = runs * steps * len(y)   # terms averaged per entry (independent given the forward)
    for k in ("fc1", "fc2"):
        se = (m2[k] / len(y) / (runs * steps)).sqrt()  # Var(mean over B, T, R) ≤ E[term²]/n·B
        assert n > 0
        assert bool(((mean[k] - exact[k]).abs() <= Z * se + 1e-7).all()), k
        assert float((mean[k] - exact[k]).abs().max()) > 0  # it is a random estimate


def test_full_pass_converges_to_the_ann_step():
    """Forward and learning windows both spike-coded: with T = 2048 the mean update is the
    ANN's gradient step within Z binomial standard errors (membranes stay inside (0, 1), so
    the forward's only bias is the soft-max curvature, O(1/T))."""
    net = _net((6, 5, 3), mean=0.08, std=0.05, seed=3)
    with torch.no_grad():
        net.layers["fc2"].weight.normal_(0.0, 1.0)
    stages = ssnn_stages(net.graph)
    gen = torch.Generator().manual_seed(11)
    p, y = torch.rand(4, 6, generator=gen), torch.tensor([0, 1, 2, 1])
    acts, membranes, z = ssnn_forward(stages, p, 1, stochastic=False)
    assert bool(((membranes[0] > 0.05) & (membranes[0] < 0.95)).all())
    exact = ssnn_step(stages, p, y, 1, stochastic=False).updates
    steps, runs = 2048, 40
    mean = {k: torch.zeros_like(v) for k, v in exact.items()}
    for _ in range(runs):
        step = ssnn_step(stages, p, y, steps, gen)
        for k in mean:
            mean[k] += step.updates[k] / runs
    m2 = _second_moments(net, acts, membranes, z, y)
    for k in ("fc1", "fc2"):
        se = (m2[k] / len(y) / (runs * steps)).sqrt()
        assert bool(((mean[k] - exact[k]).abs() <= Z * se + 2e-4).all()), k
    # at T = 1 the same mean is far off: the limit is what makes it the ANN's step
    short = torch.zeros_like(exact["fc2"])
    for _ in range(runs):
        short += ssnn_step(stages, p, y, 1, gen).updates["fc2"] / runs
    assert float((short - exact["fc2"]).abs().max()) > float((mean["fc2"] - exact["fc2"]).abs()
                                                             .max())


def test_two_hidden_layers_unbiased_with_the_bound_as_variance():
    """Deeper layers: γ_l = c Σ_k |W_kj| γ_{l+1,k} keeps every probability ≤ 1, so the updates
    stay unbiased; the tolerance bounds each term's second moment by γ_j² a_i."""
    net = _net((5, 4, 4, 3), mean=0.1, std=0.4, seed=5)
    stages = ssnn_stages(net.graph)
    gen = torch.Generator().manual_seed(2)
    p, y = torch.rand(3, 5, generator=gen), torch.tensor([0, 1, 2])
    acts, membranes, z = ssnn_forward(stages, p, 1, stochastic=False)
    exact = ssnn_learn(stages, acts, membranes, z, y, 1, stochastic=False).updates
    w2, w3 = net.layers["fc2"].weight.detach(), net.layers["fc3"].weight.detach()
    gates = [((v > 0) & (v < 1)).to(v.dtype) for v in membranes]
    gamma2 = gates[1] * (w3.amax(0) - w3.amin(0))
    gamma1 = gates[0] * (gamma2 @ w2.abs())
    steps, runs = 64, 300
    mean = torch.zeros_like(exact["fc1"])
    for _ in range(runs):
        mean += ssnn_learn(stages, acts, membranes, z, y, steps, gen).updates["fc1"] / runs
    m2 = (gamma1[:, :, None] ** 2 * acts[0][:, None, :]).mean(0)
    se = (m2 / len(y) / (runs * steps)).sqrt()
    assert bool(((mean - exact["fc1"]).abs() <= Z * se + 1e-7).all())


def test_coincidence_update_by_hand():
    """One synapse, T = 4: pre 1 0 1 1, positive stream 1 1 0 0, negative 0 0 1 0.
    Coincidences: pre∧plus at t = 0 (+1), pre∧minus at t = 2 (−1): Δw = γ (1 − 1)/4 = 0;
    dropping the negative spike leaves +γ/4 (potentiation), dropping the positive −γ/4."""
    pre = torch.tensor([1.0, 0, 1, 1]).view(4, 1, 1)
    plus = torch.tensor([1.0, 1, 0, 0]).view(4, 1, 1)
    minus = torch.tensor([0.0, 0, 1, 0]).view(4, 1, 1)
    assert float(coincidence_update(pre, plus, minus, 2.0)) == 0.0
    assert float(coincidence_update(pre, plus, torch.zeros_like(minus), 2.0)) == 0.5
    assert float(coincidence_update(pre, torch.zeros_like(plus), minus, 2.0)) == -0.5
    # a post spike without a pre spike changes nothing (t = 1)
    assert float(coincidence_update(pre, torch.tensor([0.0, 1, 0, 0]).view(4, 1, 1),
                                    torch.zeros_like(minus))) == 0.0
    with pytest.raises(ShapeError, match="coincidence_update"):
        coincidence_update(pre, plus[:3], minus[:3])


def _one_synapse_net(w1: float, w2: tuple[float, float]) -> Network:
    net = _net((1, 1, 2))
    with torch.no_grad():
        net.layers["fc1"].weight.fill_(w1)
        net.layers["fc2"].weight.copy_(torch.tensor(w2).view(2, 1))
    return net


def test_network_updates_by_hand_positive_potentiates_negative_depresses():
    """Input p = 1 (spikes every step); hidden membrane v = 0.5 (fires w.p. ½, gate open);
    output weights (−30, +30): neuron 1 wins every step (P = 1 − e⁻⁶⁰) while the label is 0.
    Output streams: ε⁺ on neuron 0 and ε⁻ on neuron 1 every step, so Δw₂ = (+m, −m) with m the
    hidden neuron's spike fraction: the label's synapse potentiates, the winner's depresses.
    Hidden: J = W₂₀ − W₂₁ = −60 = −γ (γ = max − min = 60): a negative spike every step, the
    pre-synaptic input spikes every step, so Δw₁ = −60 exactly (depression)."""
    stages = ssnn_stages(_one_synapse_net(0.5, (-30.0, 30.0)).graph)
    gen = torch.Generator().manual_seed(0)
    step = ssnn_step(stages, torch.ones(1, 1), torch.tensor([0]), 64, gen)
    assert float(step.updates["fc1"]) == -60.0
    up = step.updates["fc2"].flatten()
    assert float(up[0]) == -float(up[1]) and 0.3 < float(up[0]) < 0.7
    assert float(step.wins[0, 1]) == 64
    # the same network with the winner's label: no error spike, no change
    step = ssnn_step(stages, torch.ones(1, 1), torch.tensor([1]), 64, gen)
    assert all(float(u.abs().max()) == 0.0 for u in step.updates.values())
    # a saturated hidden neuron (v = 2 > 1) fires every step, its gate is closed: Δw₂ = (+1,
    # −1) exactly, Δw₁ = 0
    stages = ssnn_stages(_one_synapse_net(2.0, (-30.0, 30.0)).graph)
    step = ssnn_step(stages, torch.ones(1, 1), torch.tensor([0]), 16, gen)
    assert step.updates["fc2"].flatten().tolist() == [1.0, -1.0]
    assert float(step.updates["fc1"]) == 0.0


def test_wta_distribution_is_the_softmax():
    """20 000 WTA steps: each neuron's win frequency is within Z binomial standard errors of
    soft-max(z); exactly one winner per step; huge membranes do not overflow."""
    z = torch.tensor([[0.3, -1.2, 2.0, 0.0], [5.0, 5.0, 5.0, 5.0]])
    n = 20000
    wins = wta(z, n, torch.Generator().manual_seed(3))
    assert wins.shape == (n, 2, 4) and bool((wins.sum(-1) == 1).all())
    freq, soft = wins.mean(0), torch.softmax(z, -1)
    se = (soft * (1 - soft) / n).sqrt()
    assert bool(((freq - soft).abs() <= Z * se).all())
    big = wta(torch.tensor([[1000.0, 999.0, -1000.0]]), 5000, torch.Generator().manual_seed(4))
    share = big.mean(0)[0]
    expect = torch.softmax(torch.tensor([1000.0, 999.0, -1000.0]), -1)
    assert float(share[2]) == 0.0
    assert abs(float(share[0] - expect[0])) <= Z * math.sqrt(float(expect[0] * expect[1]) / 5000)
    with pytest.raises(ShapeError, match="wta"):
        wta(torch.zeros(4), 3)
    with pytest.raises(ParameterError, match="steps"):
        wta(torch.zeros(1, 4), 0)


def test_predict_counts_wta_spikes():
    """Inference is the class whose output neuron fired most; with a clear margin it is the
    ANN's argmax, and stochastic=False gives the argmax of the membranes."""
    net = _net((6, 8, 3), mean=0.1, std=0.4, seed=1)
    stages = ssnn_stages(net.graph)
    p = torch.rand(50, 6, generator=torch.Generator().manual_seed(0))
    ann, z = ssnn_predict(stages, p, 1, stochastic=False)
    assert torch.equal(ann, z.argmax(-1))
    spikes, _ = ssnn_predict(stages, p, 512, torch.Generator().manual_seed(1))
    margin = z.topk(2, -1).values
    clear = (margin[:, 0] - margin[:, 1]) > 0.5
    assert bool(clear.any()) and torch.equal(spikes[clear], ann[clear])


@pytest.mark.parametrize(("layers", "node"), [
    ({"fc1": Linear(4, 3), "hidden1": LIF(3, dt=DT), "fc2": Linear(3, 2),
      "output": LI(2, dt=DT)}, "hidden1"),
    ({"fc1": Linear(4, 3), "hidden1": IF(3, dt=DT), "fc2": Linear(3, 2),
      "output": IF(2, dt=DT)}, "output"),
    ({"fc1": Linear(4, 3), "hidden1": LI(3, dt=DT), "fc2": Linear(3, 2),
      "output": LI(2, dt=DT)}, "hidden1"),
    ({"fc1": Linear(4, 3), "hidden1": IF(3, dt=DT, recurrent=True), "fc2": Linear(3, 2),
      "output": LI(2, dt=DT)}, "hidden1"),
])
def test_refuses_networks_naming_the_node(layers, node):
    net = Network({"input": Input(4), **layers})
    with pytest.raises(ConfigError, match=f"ssnn_bp.*{node}"):
        ssnn_stages(net.graph)


def test_refuses_convolutions_and_images():
    net = Network({"input": Input((1, 4, 4)), "conv1": Conv2d(1, 2, 3, padding=1),
                   "spikes1": IF((2, 4, 4), dt=DT), "flatten": Flatten(),
                   "fc1": Linear(32, 2), "output": LI(2, dt=DT)})
    with pytest.raises(ConfigError, match="flat"):
        ssnn_stages(net.graph)


def test_refuses_bad_inputs():
    stages = ssnn_stages(_net((4, 3, 2)).graph)
    y = torch.tensor([0, 1])
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        ssnn_step(stages, torch.full((2, 4), 1.5), y, 4)
    with pytest.raises(ParameterError, match=r"\[0, 1\]"):
        ssnn_step(stages, torch.full((2, 4), float("nan")), y, 4)
    with pytest.raises(ShapeError, match=r"\[B, 4\]"):
        ssnn_step(stages, torch.rand(2, 5), y, 4)
    with pytest.raises(ShapeError, match="labels"):
        ssnn_step(stages, torch.rand(2, 4), torch.tensor([0, 2]), 4)
    with pytest.raises(ParameterError, match="steps"):
        ssnn_step(stages, torch.rand(2, 4), y, 0)


# ----------------------------------------------------------------------------- train.method
def _config(tmp_path, *extra):
    from spikeloop.training import load_config

    return load_config(ROOT / "configs" / "digits_ssnn.yaml", [
        f"run.out_dir={tmp_path}", "run.threads=1", "train.progress=false",
        "data.train_size=256", "data.val_size=64", "data.test_size=64", "train.epochs=2",
        "train.method.steps=8", "model.hidden=[16]", *extra])


def test_options_and_refusals_through_the_config(tmp_path):
    from spikeloop.training import Trainer
    from spikeloop.training.methods import method_options
    from spikeloop.training.ssnn import SSNNBackprop, SSNNOptions

    assert method_options("ssnn_bp") == (SSNNBackprop, SSNNOptions(32, True, None))
    with pytest.raises(ConfigError, match=r"ssnn_bp: .*steps.*≥ 1"):
        _config(tmp_path, "train.method.steps=0")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['temperature'\]"):
        _config(tmp_path, "train.method.temperature=2")
    with pytest.raises(ConfigError, match=r"ssnn_bp: population 'hidden1' \(LIF\)"):
        Trainer(_config(tmp_path, "model.neuron=lif"))


def test_the_ann_variant_is_one_sgd_step_of_backprop(tmp_path):
    """train.method.stochastic=false: one batch through the method moves every weight by
    −lr · autograd's gradient of the clipped-ReLU MLP; no other tensor changes."""
    from spikeloop.training import Trainer

    trainer = Trainer(_config(tmp_path, "train.method.stochastic=false"))
    x, y = trainer.data["train"].batch(slice(0, 32))
    grads = _ann_gradients(trainer.network, x.mean(0), y)
    before = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    total, correct = trainer.method.train_batch(trainer, x, y)
    after = trainer.network.state_dict()
    lr = trainer.config.train.lr
    for name in ("fc1", "fc2"):
        key = f"layers.{name}.weight"
        torch.testing.assert_close(after[key], before[key] - lr * grads[name])
    assert sorted(k for k in before if not torch.equal(before[k], after[k])) == [
        "layers.fc1.weight", "layers.fc2.weight"]
    assert 0 <= correct <= 32 and total > 0


def test_fit_learns_digits_and_resumes_bit_identically(tmp_path):
    """Two epochs of spike-coded training (T = 8, 40 batches) reach 3× chance on the
    validation digits, and 1 epoch + resume gives the same weights as 2 epochs (the method's
    random state is in the checkpoint)."""
    from spikeloop.training import Trainer

    quick = ("data.train_size=640", "model.hidden=[32]", "train.lr=0.3")
    full = Trainer(_config(tmp_path, "run.name=full", *quick))
    full.fit()
    assert full.history[-1].val_acc > 0.3
    assert full.evaluate(full.data["val"])[1] > 0.3  # the WTA's counts, drawn again
    half = Trainer(_config(tmp_path, "run.name=half", *quick))
    half.fit(stop_after=1)
    resumed = Trainer(_config(tmp_path, "run.name=half", "train.resume=true", *quick))
    resumed.fit()
    for key, value in full.network.state_dict().items():
        assert torch.equal(value, resumed.network.state_dict()[key]), key
