"""Desire backpropagation (spikeloop.training.desire): the ternary desires by hand, the rule's
weight change against its closed form, and a short training on digits."""

from __future__ import annotations

import pytest
import torch

from spikeloop.errors import ArgumentTypeError, ParameterError, ShapeError
from spikeloop.training.desire import desire_error, hidden_desire, output_desire

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
