"""The store–recall memory task generator (spikeloop.data.store_recall): layout, timing,
targets, mask, determinism and the errors that name the limit."""

from __future__ import annotations

import re

import pytest
import torch

from spikeloop.data import StoreRecall, store_recall
from spikeloop.errors import ArgumentTypeError, ParameterError, TimeStepError

DT = 5e-3


@pytest.fixture(scope="module")
def batch() -> StoreRecall:
    return store_recall(64, seed=3, dt=DT, gap=(0.2, 1.0), group=10, cue=50e-3, lead=50e-3,
                        rate=100.0, noise_rate=5.0)


def test_shapes_and_dtypes(batch):
    # T = lead 10 + store 10 + longest gap 200 + recall 10 steps; C = (2 values + 2 cues) · 10
    assert batch.spikes.shape == (230, 64, 40) and batch.spikes.dtype == torch.float32
    assert set(batch.spikes.unique().tolist()) <= {0.0, 1.0}
    assert batch.labels.shape == (64,) and batch.labels.dtype == torch.int64
    assert batch.targets.shape == batch.mask.shape == (230, 64)
    assert batch.mask.dtype == torch.bool and batch.dt == DT
    assert set(batch.labels.tolist()) == {0, 1}


def test_timing_of_store_gap_and_recall(batch):
    assert batch.gap_steps.min() >= 40 and batch.gap_steps.max() <= 200
    assert len(set(batch.gap_steps.tolist())) > 20  # drawn per trial
    # the store window ends `gap` steps before the recall window, which is the last 10 steps
    assert torch.equal(batch.store_start + 10 + batch.gap_steps, torch.full((64,), 220))
    assert batch.store_start.min() >= 10  # the lead


def test_mask_and_targets(batch):
    assert batch.mask[220:].all() and not batch.mask[:220].any()
    assert torch.equal(batch.targets[220:], batch.labels.expand(10, 64))
    assert (batch.targets[:220] == -1).all()


def test_channel_groups_fire_in_their_windows():
    # no noise: every spike belongs to a cue; rate 1/dt: every step of a cue spikes
    d = store_recall(16, seed=1, dt=DT, gap=(0.05, 0.2), group=3, n_values=3, rate=1 / DT,
                     noise_rate=0.0)
    t = torch.arange(d.spikes.shape[0])
    for b in range(16):
        s0, label = int(d.store_start[b]), int(d.labels[b])
        store = (t >= s0) & (t < s0 + 10)
        recall = d.mask[:, b]
        x = d.spikes[:, b].view(-1, 5, 3)  # [T, groups (3 values, STORE, RECALL), group]
        for g in range(5):
            on = store if g in (label, 3) else recall if g == 4 else torch.zeros_like(store)
            assert torch.equal(x[:, g], on[:, None].expand(-1, 3).float()), (b, g)


def test_noise_and_cue_rates():
    d = store_recall(400, seed=2, dt=DT, gap=(0.2, 0.2), rate=100.0, noise_rate=10.0)
    quiet = d.spikes[~d.mask][:, 30:]  # the RECALL group outside the recall window
    assert quiet.mean().item() == pytest.approx(10.0 * DT, rel=0.1)
    cue = d.spikes[d.mask][:, 30:]
    expected = 1 - (1 - 100.0 * DT) * (1 - 10.0 * DT)
    assert cue.mean().item() == pytest.approx(expected, rel=0.05)


def test_deterministic_for_a_seed():
    a, b = store_recall(8, seed=7), store_recall(8, seed=7)
    for x, y in zip(a[:-1], b[:-1], strict=True):
        assert torch.equal(x, y)
    c = store_recall(8, seed=8)
    assert not torch.equal(a.spikes, c.spikes)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"size": 0}, ParameterError, "size"),
    ({"size": 2.5}, ArgumentTypeError, "size"),
    ({"seed": -1}, ParameterError, "seed"),
    ({"dt": 0.0}, TimeStepError, "dt"),
    ({"n_values": 1}, ParameterError, "n_values"),
    ({"group": 0}, ParameterError, "group"),
    ({"gap": (0.5, 0.2)}, ParameterError, "shortest gap must not exceed the longest"),
    ({"gap": 0.5}, ParameterError, "gap must be (shortest, longest)"),
    ({"gap": (0.0, 0.2)}, ParameterError, "gap[0]"),
    ({"gap": (1e-3, 0.2)}, ParameterError, "under one step (dt = 0.005 s)"),
    ({"gap": (0.2, float("nan"))}, ParameterError, "gap[1]"),
    ({"cue": 1e-3}, ParameterError, "cue = 0.001 s is under one step"),
    ({"cue": 4e-3}, ParameterError, "cue = 0.004 s is under one step"),
    ({"lead": -1.0}, ParameterError, "lead"),
    ({"rate": 0.0}, ParameterError, "rate must be > 0"),
    ({"rate": 300.0}, ParameterError, "the limit is 1 / dt = 200 Hz"),
    ({"noise_rate": -1.0}, ParameterError, "noise_rate"),
    ({"noise_rate": 201.0}, ParameterError, "the limit is 1 / dt = 200 Hz"),
    ({"gap": (0.2, 1000.0)}, ParameterError, "exceeds the limit of 100000 steps"),
])
def test_bad_arguments_name_the_limit(kwargs, error, message):
    args = {"size": 4} | kwargs
    with pytest.raises(error, match=re.escape(message)):
        store_recall(args.pop("size"), **args)
