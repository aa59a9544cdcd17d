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
        theta = homeostasis_step(theta, z[None], rho, inc)
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
