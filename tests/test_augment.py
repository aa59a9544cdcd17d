"""Batch augmentation (random shift, left–right flip): against a per-sample loop, the same at
every time step, its statistics, the config checks, and the trainer using it on training
batches only with a bit-identical resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spikeloop.data import augment, random_flip, random_shift
from spikeloop.data.augment import check_augment
from spikeloop.errors import ArgumentTypeError, ConfigError, ParameterError, ShapeError
from spikeloop.training import Trainer, load_config

ROOT = Path(__file__).resolve().parents[1]


def _shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``image [..., H, W]`` moved down ``dy`` and right ``dx`` pixels, zeros moved in."""
    out = torch.zeros_like(image)
    h, w = image.shape[-2:]
    for i in range(h):
        for j in range(w):
            if 0 <= i - dy < h and 0 <= j - dx < w:
                out[..., i, j] = image[..., i - dy, j - dx]
    return out


def test_random_shift_moves_each_sample_by_its_drawn_offsets():
    x = torch.rand(3, 6, 2, 5, 7)
    y = random_shift(x, 2, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)  # the same draws: rows, then columns
    dy, dx = torch.randint(-2, 3, (6,), generator=g), torch.randint(-2, 3, (6,), generator=g)
    for b in range(6):
        torch.testing.assert_close(y[:, b], _shifted(x[:, b], int(dy[b]), int(dx[b])))
    assert len(set(zip(dy.tolist(), dx.tolist(), strict=True))) > 1


def test_random_shift_of_channel_vectors_and_of_a_view_over_time():
    x = torch.arange(1.0, 9.0).expand(4, 3, 8)  # [T, B, C], the same at every step (a view)
    y = random_shift(x, 3, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    offsets = torch.randint(-3, 4, (3,), generator=g)
    for b, o in enumerate(offsets.tolist()):
        want = torch.zeros(8)
        for c in range(8):
            if 0 <= c - o < 8:
                want[c] = c - o + 1
        for t in range(4):
            assert torch.equal(y[t, b], want)
    assert torch.equal(random_shift(x, 0), x)


def test_random_flip_mirrors_about_half_of_the_images():
    x = torch.rand(2, 4000, 1, 3, 4)
    y = random_flip(x, torch.Generator().manual_seed(1))
    same = (y == x).flatten(2).all(-1).all(0)
    mirrored = (y == x.flip(-1)).flatten(2).all(-1).all(0)
    assert bool((same | mirrored).all()) and not bool((same & mirrored).any())
    assert abs(float(mirrored.float().mean()) - 0.5) < 4 * (0.25 / 4000) ** 0.5  # 4 sigma


def test_augment_applies_the_spec_and_bad_input_is_refused():
    x = torch.rand(2, 5, 1, 6, 6)
    g1, g2 = (torch.Generator().manual_seed(2) for _ in range(2))
    both = augment(x, {"shift": 1, "flip": True}, g1)
    assert torch.equal(both, random_flip(random_shift(x, 1, g2), g2))
    assert torch.equal(augment(x, {"shift": 0, "flip": False}), x)
    with pytest.raises(ShapeError, match=r"expected a batch \[T, B, C\] or \[T, B, C, H, W\]"):
        random_shift(torch.zeros(2, 3, 4, 5), 1)
    with pytest.raises(ShapeError, match="random_flip mirrors images"):
        random_flip(torch.zeros(2, 3, 4))
    with pytest.raises(ParameterError, match="random_shift: shift"):
        random_shift(torch.zeros(2, 3, 1, 4, 4), 4)


@pytest.mark.parametrize(("spec", "shape", "error", "match"), [
    ({"shfit": 1}, (1, 28, 28), ConfigError, "got unknown 'shfit'"),
    ({"flip": True}, (64,), ConfigError, r"flip mirrors images \[C, H, W\]"),
    ({"shift": 8}, (1, 8, 8), ConfigError, "shift = 8 must be smaller than the 8 positions"),
    ({"shift": 1}, (2, 3), ConfigError, r"channel vectors \[C\] or images \[C, H, W\]"),
    ({"shift": -1}, (64,), ParameterError, "data.augment.shift"),
    ({"flip": "yes"}, (1, 8, 8), ArgumentTypeError, "data.augment.flip"),
])
def test_check_augment_names_the_mistake(spec, shape, error, match):
    with pytest.raises(error, match=match):
        check_augment(spec, shape)


def _config(tmp_path, *extra):
    return load_config("configs/digits.yaml", [
        f"run.out_dir={tmp_path}", "run.name=aug", "train.progress=false", "run.threads=1",
        "data.train_size=200", "data.val_size=60", "data.test_size=60", "data.params={flat: false}",
        "data.augment={shift: 1, flip: true}", "model.hidden=[16]", "train.epochs=2",
        *extra])


def test_the_trainer_augments_training_batches_only_and_resumes_bit_identically(
        tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    seen = []

    def recording(x, spec, generator=None):
        seen.append(x.shape[1])
        return augment(x, spec, generator)

    monkeypatch.setattr("spikeloop.training.trainer.augment", recording)
    straight = Trainer(_config(tmp_path / "a"))
    straight.fit()
    # two epochs of 200 training samples in batches of 64 (the config's), nothing else:
    # validation (60) and test (60) batches are never augmented
    assert seen == [64, 64, 64, 8] * 2
    first = Trainer(_config(tmp_path / "b"))
    first.fit(stop_after=1)
    resumed = Trainer(_config(tmp_path / "b", "train.resume=true"))
    resumed.fit()
    for (name, a), (_, b) in zip(straight.network.state_dict().items(),
                                 resumed.network.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    plain = Trainer(_config(tmp_path / "c", "data.augment={}"))
    plain.fit()
    assert [h.train_loss for h in plain.history] != [h.train_loss for h in straight.history]


def test_a_flip_on_channel_vectors_is_refused_by_the_trainer(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match="flip mirrors images"):
        Trainer(_config(tmp_path, "data.params={flat: true}"))
