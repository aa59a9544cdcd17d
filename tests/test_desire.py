"""Desire backpropagation (spikeloop.training.desire): the ternary desires by hand, the rule's
weight change against its closed form, and a short training on digits."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import torch

from spikeloop.errors import ArgumentTypeError, ConfigError, ParameterError, ShapeError
from spikeloop.network import Network
from spikeloop.nn import LI, LIF, Conv2d, Flatten, Input, Linear
from spikeloop.training import Trainer, load_config
from spikeloop.training.desire import (
    DesireOptions,
    desire_chain,
    desire_error,
    desire_stdp,
    hidden_desire,
    output_desire,
    unique_argmax,
)
from spikeloop.training.methods import method_options
from spikeloop.training.plasticity import Plasticity

ROOT = Path(__file__).resolve().parents[1]
DT = 1e-3
LAMBDA = 0.75  # the paper's trace and membrane decay per step, 1 − 2^−2

# ----------------------------------------------------------------------------- output desires


def test_output_desire_signs_by_hand() -> None:
    # target c* = 16, θ = 0.3: the label must reach 1 − c/16 ≤ 0.3 (c ≥ 11.2) to be left alone,
    # another neuron c/16 ≤ 0.3 (c ≤ 4.8).
    counts = torch.tensor([[0.0, 4.0, 5.0, 11.0, 12.0, 20.0],
                           [0.0, 4.0, 5.0, 11.0, 12.0, 20.0]])
    labels = torch.tensor([3, 0])
    got = output_desire(counts, labels, 16.0, 0.3)
    # sample 0, label 3 (c = 11: 1 − 11/16 = 0.3125 > 0.3 → +1); others: 5, 12, 20 too many
    # sample 1, label 0 (c = 0: error 1 → +1); 4 ≤ 4.8 ignored, 5 … 20 too many
    want = torch.tensor([[0.0, 0.0, -1.0, 1.0, -1.0, -1.0],
                         [1.0, 0.0, -1.0, -1.0, -1.0, -1.0]])
    assert torch.equal(got, want)


def test_output_desire_label_above_target_is_ignored() -> None:
    # 1 − 20/16 < 0: the label's neuron spiking more than the target has no desire (not −1)
    got = output_desire(torch.tensor([[20.0, 0.0]]), torch.tensor([0]), 16.0, 0.3)
    assert torch.equal(got, torch.tensor([[0.0, 0.0]]))


def test_output_desire_threshold_is_strict() -> None:
    # c/c* = 4/16 = 0.25 equals θ: not above it, ignored; 1 − 12/16 = 0.25 too
    got = output_desire(torch.tensor([[4.0, 12.0]]), torch.tensor([1]), 16.0, 0.25)
    assert torch.equal(got, torch.zeros(1, 2))
    got = output_desire(torch.tensor([[4.0, 12.0]]), torch.tensor([1]), 16.0, 0.2499)
    assert torch.equal(got, torch.tensor([[-1.0, 1.0]]))


def test_output_desire_takes_integer_counts() -> None:
    got = output_desire(torch.tensor([[3, 9]]), torch.tensor([0]), 16.0, 0.3)
    assert got.dtype == torch.get_default_dtype()
    assert torch.equal(got, torch.tensor([[1.0, -1.0]]))


@pytest.mark.parametrize(("counts", "labels", "target", "threshold", "error", "match"), [
    (torch.zeros(3), torch.tensor([0]), 16.0, 0.3, ShapeError, r"spike counts \[B, N\]"),
    (torch.zeros(1, 3), torch.tensor([3]), 16.0, 0.3, ParameterError, r"\[0, 2\]"),
    (torch.zeros(2, 3), torch.tensor([0]), 16.0, 0.3, ShapeError, "1 labels for a batch of 2"),
    (torch.zeros(1, 3), torch.tensor([0]), 0.0, 0.3, ParameterError, "target must be"),
    (torch.zeros(1, 3), torch.tensor([0]), 16.0, -0.1, ParameterError, "threshold must be"),
    ([[0.0]], torch.tensor([0]), 16.0, 0.3, ArgumentTypeError, "counts must be a torch.Tensor"),
])
def test_output_desire_refuses(counts: object, labels: torch.Tensor, target: float,
                               threshold: float, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        output_desire(counts, labels, target, threshold)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- hidden desires


def test_desire_error_by_hand() -> None:
    # ε = |[d = +1] − c/c*|: wanted spikes measure the shortfall, unwanted ones the count
    d = torch.tensor([[1.0, 1.0, -1.0, 0.0]])
    c = torch.tensor([[4.0, 20.0, 8.0, 8.0]])
    got = desire_error(d, c, 16.0)
    assert torch.allclose(got, torch.tensor([[0.75, 0.25, 0.5, 0.5]]))


def test_hidden_desire_by_hand() -> None:
    # two post neurons (rows), three pre neurons (columns)
    w = torch.tensor([[0.2, -0.1, 0.03],
                      [0.4, 0.3, 0.00]])
    d_post = torch.tensor([[1.0, -1.0], [0.0, 1.0], [0.0, 0.0]])
    c_post = torch.tensor([[8.0, 4.0], [0.0, 16.0], [3.0, 3.0]])
    # sample 0: ε = (|1 − 0.5|, |0 − 0.25|) = (0.5, 0.25); signal d·ε = (0.5, −0.25)
    #   s = 0.5·(0.2, −0.1, 0.03) − 0.25·(0.4, 0.3, 0) = (0, −0.125, 0.015)
    #   → s₀ = 0: ignored; s₁ = −0.125: −1; |s₂| = 0.015 < 0.05: ignored
    # sample 1: post 1 wants spikes and has them all: ε = 0 → nothing propagates
    # sample 2: no desire → nothing
    got = hidden_desire(w, d_post, c_post, 16.0, 0.05)
    assert torch.equal(got, torch.tensor([[0.0, -1.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    # the threshold is inclusive: |s₁| = 0.125 ≥ 0.125
    assert hidden_desire(w, d_post, c_post, 16.0, 0.125)[0, 1] == -1.0
    assert hidden_desire(w, d_post, c_post, 16.0, 0.1251)[0, 1] == 0.0


def test_hidden_desire_sign_follows_weight_and_desire() -> None:
    # a positive weight passes the post neuron's desire on, a negative one flips it
    w = torch.tensor([[1.0, -1.0]])
    c = torch.zeros(1, 1)
    assert torch.equal(hidden_desire(w, torch.tensor([[1.0]]), c, 16.0, 0.5),
                       torch.tensor([[1.0, -1.0]]))
    c = torch.full((1, 1), 16.0)
    assert torch.equal(hidden_desire(w, torch.tensor([[-1.0]]), c, 16.0, 0.5),
                       torch.tensor([[-1.0, 1.0]]))


@pytest.mark.parametrize(("w", "d", "c", "error", "match"), [
    (torch.zeros(3, 2), torch.zeros(1, 2), torch.zeros(1, 2), ShapeError, "N_post = 2"),
    (torch.zeros(2, 2), torch.zeros(1, 3), torch.zeros(1, 2), ShapeError, "shape"),
    (torch.zeros(2, 2), torch.full((1, 2), 0.5), torch.zeros(1, 2), ArgumentTypeError,
     "only -1, 0 and"),
])
def test_hidden_desire_refuses(w: torch.Tensor, d: torch.Tensor, c: torch.Tensor, error: type,
                               match: str) -> None:
    with pytest.raises(error, match=match):
        hidden_desire(w, d, c, 16.0, 0.05)
    with pytest.raises(ParameterError, match="threshold"):
        hidden_desire(torch.zeros(2, 2), torch.zeros(1, 2), torch.zeros(1, 2), 16.0, 0.0)


def test_unique_argmax_counts_a_tie_as_no_class() -> None:
    counts = torch.tensor([[0.0, 3.0, 1.0], [2.0, 2.0, 1.0], [0.0, 0.0, 0.0]])
    assert torch.equal(unique_argmax(counts), torch.tensor([1, -1, -1]))


# ----------------------------------------------------------------------------- the rule


def _paper_lif(n: int) -> LIF:
    """The paper's neuron: v ← 0.75 v + x, threshold 1, reset by subtraction."""
    return LIF(n, dt=DT, tau_mem=4 * DT, method="euler", r=4.0, reset="subtract",
               v_threshold=1.0)


@pytest.mark.parametrize(("t_pre", "t_post", "desire"), [
    (2, 5, 1.0), (5, 5, 1.0), (8, 5, 1.0), (0, 9, -1.0), (4, 5, 0.0),
])
def test_desire_stdp_pair_equals_the_closed_form(t_pre: int, t_post: int,
                                                 desire: float) -> None:
    # input 0 spikes once at t_pre through a weight too small to fire the neuron; input 1
    # spikes once at t_post through a weight that fires it at once (same step: v = 1.5 > 1)
    net = Network({"input": Input(2), "fc": Linear(2, 1), "out": _paper_lif(1)})
    with torch.no_grad():
        net.layers.fc.weight.copy_(torch.tensor([[0.01, 1.5]]))
    x = torch.zeros(12, 1, 2)
    x[t_pre, 0, 0] = 1.0
    x[t_post, 0, 1] = 1.0
    eta = 0.01
    engine = Plasticity(net, {"fc": desire_stdp(eta, DT / math.log(1 / LAMBDA))})
    counts = engine.run(x)
    assert counts["out"].item() == 1.0  # one post spike, at t_post
    w0 = net.layers.fc.weight.detach().clone()
    engine.finish({"fc": torch.tensor([[desire]])})
    dw = net.layers.fc.weight - w0
    # Δw = η d λ^(t_post − t_pre) for a pre spike at or before the post spike, else 0
    want0 = eta * desire * LAMBDA ** (t_post - t_pre) if t_pre <= t_post else 0.0
    torch.testing.assert_close(dw, torch.tensor([[want0, eta * desire]]), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("steps", [12, 25])
def test_desire_stdp_over_a_batch_equals_the_recorded_sums(steps: int) -> None:
    # 40 × 30 synapses: for 12 steps the engine keeps rows only (12·70 < 1200); for 25 it folds
    # the first 18 into the per-sample correlation (18·70 ≥ 1200) and keeps 7 rows. Either way
    # the result is Σ_b Σ_t d_bj y_bj(t) x̃_bi(t) computed from a recorded simulator run
    torch.manual_seed(0)
    net = Network({"input": Input(40), "fc": Linear(40, 30), "out": _paper_lif(30)})
    with torch.no_grad():
        net.layers.fc.weight.uniform_(0.0, 0.4)
    x = (torch.rand(steps, 5, 40) < 0.3).float()
    with torch.no_grad():
        post = net(x)["out"].spikes
    trace, elig = torch.zeros(5, 40), torch.zeros(5, 30, 40)
    for t in range(steps):
        trace = LAMBDA * trace + x[t]
        elig += post[t].unsqueeze(2) * trace.unsqueeze(1)
    d = torch.randint(-1, 2, (5, 30)).float()
    want = torch.einsum("bj,bji->ji", d, elig)
    w0 = net.layers.fc.weight.detach().clone()
    engine = Plasticity(net, {"fc": desire_stdp(0.5, DT / math.log(1 / LAMBDA))})
    assert torch.equal(engine.run(x)["out"], post.sum(0))
    engine.finish({"fc": d}, scale=0.1)
    torch.testing.assert_close(net.layers.fc.weight - w0, 0.05 * want, rtol=1e-5, atol=1e-6)


def test_desire_stdp_refuses_bad_rates() -> None:
    with pytest.raises(ParameterError, match="lr"):
        desire_stdp(0.0)
    with pytest.raises(ParameterError, match="tau"):
        desire_stdp(1.0, -1e-3)


# ----------------------------------------------------------------------------- the method


def test_options_are_the_papers_and_are_checked() -> None:
    cls, opts = method_options("desire_bp")
    assert opts == DesireOptions(margin=4, hidden_threshold=0.05, output_threshold=0.30,
                                 trace_decay=0.75, lr_decay=0.04, dropout=(0.0, 0.3))
    assert cls.gradient is False
    with pytest.raises(ConfigError, match="trace_decay"):
        method_options({"name": "desire_bp", "trace_decay": 1.0})
    with pytest.raises(ConfigError, match="unknown option"):
        method_options({"name": "desire_bp", "drop": 0.3})
    assert method_options({"name": "desire_bp", "dropout": [0.05, 0.4]})[1].dropout == (0.05, 0.4)
    with pytest.raises(ConfigError, match="two probabilities"):
        method_options({"name": "desire_bp", "dropout": 0.3})
    with pytest.raises(ConfigError, match=r"dropout\[1\] \(hidden\)"):
        method_options({"name": "desire_bp", "dropout": [0.0, 1.0]})


@pytest.mark.parametrize(("layers", "match"), [
    ({"input": Input((1, 4, 4)), "conv": Conv2d(1, 2, 3), "spk": _paper_lif((2, 2, 2)),
      "flat": Flatten(), "fc": Linear(8, 3), "out": _paper_lif(3)},
     "projection 'conv' is a Conv2d"),
    ({"input": Input(4), "fc": Linear(4, 3), "out": LI(3, dt=DT)},
     "population 'out' \\(LI\\) does not spike"),
])
def test_desire_chain_refuses_what_it_cannot_train(layers: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        desire_chain(Network(layers).graph)


def test_desire_chain_walks_input_to_output() -> None:
    net = Network({"input": Input(4), "fc1": Linear(4, 5), "h": _paper_lif(5),
                   "fc2": Linear(5, 3), "out": _paper_lif(3)})
    chain = desire_chain(net.graph)
    assert [(c.fc.name, c.pre.name, c.post.name) for c in chain] == [
        ("fc1", "input", "h"), ("fc2", "h", "out")]


@pytest.mark.parametrize("updates", ["batch", "sample"])
def test_desire_bp_learns_digits_in_a_few_seconds(tmp_path: Path, updates: str) -> None:
    cfg = load_config(ROOT / "configs" / "digits_desire.yaml",
                      [f"run.out_dir={tmp_path}", "run.threads=1", "train.epochs=3",
                       "data.train_size=600", "data.val_size=50", "data.test_size=359",
                       "train.progress=false", f"train.method.updates={updates}"])
    start = time.perf_counter()
    trainer = Trainer(cfg)
    w0 = trainer.network.layers.fc1.weight.detach().clone()
    for epoch in range(3):
        trainer.epoch = epoch
        trainer.train_epoch()
    _, acc, _ = trainer.evaluate(trainer.data["test"])
    assert time.perf_counter() - start < 20
    assert not torch.equal(trainer.network.layers.fc1.weight, w0)  # the hidden layer learnt
    assert acc > 0.5  # chance: 0.1


def test_updates_after_every_sample_equal_batches_of_one() -> None:
    # updates: sample (each sample through the fused kernels, its update replayed from the
    # record) against updates: batch on batches of one sample (the step-by-step engine)
    from types import SimpleNamespace

    from spikeloop.training.desire import DesireBackprop

    def run(updates: str, batches: list[slice]) -> Network:
        net = _two_layer()
        with torch.no_grad():
            net.layers.fc1.weight.uniform_(-0.1, 0.9, generator=torch.Generator().manual_seed(7))
        method = DesireBackprop(DesireOptions(dropout=(0.0, 0.0), updates=updates))
        trainer = SimpleNamespace(network=net, lr_factor=1.0, epoch=0,
                                  config=SimpleNamespace(train=SimpleNamespace(lr=0.02)))
        for k in batches:
            method.train_batch(trainer, x[:, k], y[k])
        return net

    x = (torch.rand(20, 6, 6, generator=torch.Generator().manual_seed(8)) < 0.5).float()
    y = torch.tensor([0, 2, 1, 2, 0, 1])
    per_sample = run("sample", [slice(0, 4), slice(4, 6)])
    one_by_one = run("batch", [slice(b, b + 1) for b in range(6)])
    summed = run("batch", [slice(0, 4), slice(4, 6)])
    w0 = _two_layer().layers.fc2.weight
    assert not torch.allclose(per_sample.layers.fc2.weight, w0)
    for name in ("fc1", "fc2"):
        torch.testing.assert_close(getattr(per_sample.layers, name).weight,
                                   getattr(one_by_one.layers, name).weight, rtol=1e-5, atol=1e-6)
    # (a batch's summed update is another trajectory)
    assert not torch.allclose(summed.layers.fc1.weight, one_by_one.layers.fc1.weight)
    with pytest.raises(ConfigError, match=r"updates must be 'sample' or 'batch', got 'epoch'"):
        DesireOptions(updates="epoch")


def test_updates_after_every_sample_leave_silenced_neurons_alone() -> None:
    # updates: sample with hidden dropout: a silenced hidden neuron neither learns (its row of
    # fc1) nor teaches (its column of fc2) during its sample; the others do
    from types import SimpleNamespace

    from spikeloop.training.desire import DesireBackprop
    net = _two_layer()
    w1, w2 = net.layers.fc1.weight.detach().clone(), net.layers.fc2.weight.detach().clone()
    method = DesireBackprop(DesireOptions(dropout=(0.0, 0.5), updates="sample"))
    trainer = SimpleNamespace(network=net, lr_factor=1.0, epoch=0,
                              config=SimpleNamespace(train=SimpleNamespace(lr=0.05)))
    x = (torch.rand(20, 1, 6, generator=torch.Generator().manual_seed(9)) < 0.6).float()
    torch.manual_seed(11)
    keep = (torch.rand(1, 8) >= 0.5)[0]  # the mask _dropout draws next (no input dropout)
    torch.manual_seed(11)
    method.train_batch(trainer, x, torch.tensor([1]))
    moved1 = (net.layers.fc1.weight != w1).any(1)
    moved2 = (net.layers.fc2.weight != w2).any(0)
    assert 0 < int(keep.sum()) < 8
    assert not bool(moved1[~keep].any()) and not bool(moved2[~keep].any())
    assert bool(moved2[keep].any())


# ----------------------------------------------------------------------------- dropout


def _two_layer() -> Network:
    torch.manual_seed(1)
    net = Network({"input": Input(6), "fc1": Linear(6, 8), "h": _paper_lif(8),
                   "fc2": Linear(8, 3), "out": _paper_lif(3)})
    with torch.no_grad():
        net.layers.fc1.weight.uniform_(0.0, 0.8)
        net.layers.fc2.weight.uniform_(-0.2, 0.6)
    return net


def test_dropout_silences_neurons_and_scales_what_the_others_pass_on() -> None:
    # a silenced hidden neuron counts no spike, and the output sees the others' spikes scaled
    # by 1/(1 − p): the same output as the network without dropout whose fc2 drops the
    # silenced columns and multiplies the rest by 1/(1 − p) (batch of one: one mask)
    from spikeloop.training.desire import _Dropout
    x = (torch.rand(15, 1, 6, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    keep = torch.tensor([[1., 0., 1., 1., 0., 1., 1., 0.]])
    net = _two_layer()
    hooks = _Dropout(kernel="reference", keep={"h": keep}, scale={"fc2": 1 / 0.6})
    counts = Plasticity(net, {}).run(x, hooks=hooks)
    plain = Plasticity(net, {}).run(x)
    assert torch.equal(counts["h"], plain["h"] * keep)  # the kept neurons run unchanged
    assert bool((plain["h"] * (1 - keep)).sum() > 0)  # (a silenced neuron would have spiked)
    ref = _two_layer()
    with torch.no_grad():
        ref.layers.fc2.weight.mul_(keep / 0.6)
    assert torch.equal(counts["out"], Plasticity(ref, {}).run(x)["out"])
    # input dropout: a silenced input channel reaches nobody
    keep_in = torch.tensor([[0., 1., 1., 0., 1., 1.]])
    hooks = _Dropout(kernel="reference", keep={"input": keep_in}, scale={"fc1": 1 / 0.95})
    ref = _two_layer()
    with torch.no_grad():
        ref.layers.fc1.weight.mul_(keep_in / 0.95)
    got = Plasticity(net, {}).run(x, hooks=hooks)
    want = Plasticity(ref, {}).run(x)
    assert torch.equal(got["h"], want["h"]) and torch.equal(got["out"], want["out"])
    assert torch.equal(got["input"], x.sum(0) * keep_in)  # the rule sees 0/1 input spikes


def test_dropout_masks_follow_the_options_and_silenced_neurons_have_no_desire() -> None:
    from spikeloop.training.desire import DesireBackprop
    net = Network({"input": Input(50), "fc1": Linear(50, 400), "h": _paper_lif(400),
                   "fc2": Linear(400, 3), "out": _paper_lif(3)})
    method = DesireBackprop(DesireOptions(dropout=(0.05, 0.4)))
    layers = desire_chain(net.graph)
    x = torch.zeros(4, 64, 50)
    torch.manual_seed(3)
    hooks, keep = method._dropout(layers, x)
    assert set(keep) == {"input", "h"} and hooks.scale == {"fc1": 1 / 0.95, "fc2": 1 / 0.6}
    for name, p in (("input", 0.05), ("h", 0.4)):
        n = keep[name].numel()
        dropped = float((keep[name] == 0).sum())  # binomial(n, p): within 5 standard deviations
        assert abs(dropped - n * p) < 5 * math.sqrt(n * p * (1 - p)), name
    counts = {"h": torch.full((64, 400), 3.0), "out": torch.zeros(64, 3)}
    with torch.no_grad():
        net.layers.fc2.weight.fill_(0.5)
    d = method.desires(layers, counts, torch.zeros(64, dtype=torch.long), 20, keep)
    assert bool((d["fc1"][keep["h"] == 0] == 0).all())  # silenced: no desire
    assert bool((d["fc1"][keep["h"] == 1] == 1).all())  # the others: +1 (label 0 too quiet)
    assert DesireBackprop(DesireOptions(dropout=(0.0, 0.0)))._dropout(layers, x) == (None, {})
