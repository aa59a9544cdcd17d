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


# ----------------------------------------------------------------------------- distractors

S = 10  # steps of a cue (50 ms at dt = 5 ms)


@pytest.mark.parametrize(("kwargs", "digest"), [
    ({"size": 64, "seed": 3},
     "07b3c3afc0973701f22c20cbb74dc8fe7a08013ab38b9918b44ba1c8f13fc725"),
    ({"size": 16, "seed": 1, "gap": (0.05, 0.2), "group": 3, "n_values": 3, "rate": 200.0,
      "noise_rate": 0.0},
     "d475149d67c50eed40bc585b0214838b30e09d8e3a0e9347575a35b8ec73232b"),
    ({"size": 8, "seed": 7}, "3d14bee0bb5f6763ff18053e0115dbc8aa5d4a4e5210c82c11e9ac1bcfb69ad7"),
])
def test_no_distractors_gives_the_trials_of_before_bit_for_bit(kwargs, digest):
    """SHA-256 of the trials as the generator made them before it had the option (commit
    28a7c7e): the default and ``distractors=0`` reproduce them exactly."""
    import hashlib

    for extra in ({}, {"distractors": 0}):
        d = store_recall(**kwargs, **extra)
        h = hashlib.sha256()
        for x in (d.spikes, d.labels, d.targets, d.mask, d.store_start, d.gap_steps):
            h.update(x.numpy().tobytes())
        assert h.hexdigest() == digest
        assert d.distractor_start.shape == d.distractor_values.shape == (kwargs["size"], 0)


@pytest.fixture(scope="module")
def noisy() -> StoreRecall:
    return store_recall(256, seed=5, dt=DT, gap=(0.25, 1.0), distractors=3)


def test_distractors_lie_in_the_gap_clear_of_the_cues_and_apart(noisy):
    d, t_steps = noisy, noisy.spikes.shape[0]
    assert d.distractor_start.shape == d.distractor_values.shape == (256, 3)
    first, last = d.distractor_start[:, 0], d.distractor_start[:, -1]
    # one cue length clear of the end of the store cue and of the start of the recall cue
    assert (first >= d.store_start + 2 * S).all()
    assert (last + S <= t_steps - S - S).all()
    # in order and not overlapping (a distractor ends before the next starts; they may touch)
    assert (d.distractor_start.diff(dim=1) >= S).all()
    # random, not packed: with F = G − 5S spare steps and 3 i.i.d. offsets in [0, F], slack
    # before the first (all offsets > 0) and after the last (all < F) has probability
    # (F / (F + 1))³; 256 trials: within 0.06 (about 3 sd of the mean of 256 Bernoullis)
    spare = (d.gap_steps - 5 * S).double()
    expected = ((spare / (spare + 1)) ** 3).mean().item()
    before = ((first - d.store_start - 2 * S) > 0).double().mean().item()
    after = ((t_steps - 2 * S - (last + S)) > 0).double().mean().item()
    assert before == pytest.approx(expected, abs=0.06)
    assert after == pytest.approx(expected, abs=0.06)


def test_a_distractor_fills_every_place_of_the_gap_equally_often():
    # one gap of 0.3 s (60 steps), one distractor: F = 60 − 3·10 = 30, 31 start positions
    d = store_recall(6200, seed=11, dt=DT, gap=(0.3, 0.3), distractors=1, noise_rate=0.0)
    offset = d.distractor_start[:, 0] - d.store_start - 2 * S
    counts = torch.bincount(offset, minlength=31)
    assert counts.numel() == 31 and counts.min() > 0
    # 200 expected per place; binomial sd ≈ 14: every count within 5 sd
    assert (counts - 200).abs().max() < 70


def test_distractor_values_are_uniform_and_independent_of_the_label():
    d = store_recall(4000, seed=4, dt=DT, gap=(0.25, 0.5), n_values=4, distractors=2)
    values = d.distractor_values.flatten()
    # 8000 draws of 4 values: 2000 each, binomial sd ≈ 39; 5 sd
    assert (torch.bincount(values, minlength=4) - 2000).abs().max() < 200
    same = (d.distractor_values == d.labels[:, None]).float().mean().item()
    assert same == pytest.approx(0.25, abs=0.03)  # equals the stored value by chance only


def test_distractors_drive_their_value_group_without_store():
    # no noise, rate 1/dt: every spike belongs to a cue or a distractor, every step of one fires
    d = store_recall(32, seed=6, dt=DT, gap=(0.25, 0.4), group=3, n_values=3, rate=1 / DT,
                     noise_rate=0.0, distractors=2)
    t = torch.arange(d.spikes.shape[0])
    for b in range(32):
        s0, label = int(d.store_start[b]), int(d.labels[b])
        store = (t >= s0) & (t < s0 + S)
        x = d.spikes[:, b].view(-1, 5, 3)  # [T, groups (3 values, STORE, RECALL), group]
        expected = torch.zeros(len(t), 5, dtype=torch.bool)
        expected[:, label] |= store
        expected[:, 3] = store  # STORE only with the stored value
        expected[:, 4] = d.mask[:, b]
        for start, value in zip(d.distractor_start[b].tolist(), d.distractor_values[b].tolist(),
                                strict=True):
            expected[start:start + S, value] = True
        assert torch.equal(x, expected[:, :, None].expand(-1, -1, 3).float()), b


def test_distractors_keep_labels_targets_and_timing():
    plain = store_recall(64, seed=9, gap=(0.25, 1.0))
    d = store_recall(64, seed=9, gap=(0.25, 1.0), distractors=3)
    for name in ("labels", "targets", "mask", "store_start", "gap_steps"):
        assert torch.equal(getattr(d, name), getattr(plain, name)), name
    assert not torch.equal(d.spikes, plain.spikes)
    again = store_recall(64, seed=9, gap=(0.25, 1.0), distractors=3)
    for x, y in zip(d[:-1], again[:-1], strict=True):
        assert torch.equal(x, y)


def test_the_shortest_gap_that_holds_the_distractors_packs_them():
    # gap 0.25 s = 50 steps = (3 + 2) cues: no spare step, the distractors touch each other
    d = store_recall(8, seed=0, dt=DT, gap=(0.25, 0.25), distractors=3)
    expected = d.store_start[:, None] + 2 * S + S * torch.arange(3)
    assert torch.equal(d.distractor_start, expected)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"distractors": -1}, ParameterError, "distractors"),
    ({"distractors": 1.0}, ArgumentTypeError, "distractors"),
    ({"distractors": "2"}, ArgumentTypeError, "distractors"),
    ({"distractors": 3, "gap": (0.2, 1.0)}, ParameterError,
     "need a shortest gap of at least (distractors + 2) · cue = 50 steps (0.25 s); the "
     "shortest gap is 40 steps (0.2 s)"),
    ({"distractors": 1, "gap": (0.05, 1.0), "cue": 0.02}, ParameterError,
     "= 12 steps (0.06 s); the shortest gap is 10 steps"),
])
def test_bad_distractors_name_the_limit(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        store_recall(4, **kwargs)
