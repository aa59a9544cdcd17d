"""Training on the real-data sets through configs: IDX images (fully connected and
convolutional), SHD-layout event files, sklearn digits; and the config mistakes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spikeloop.data import write_idx, write_shd
from spikeloop.errors import ConfigError, MissingDataError
from spikeloop.nn import AvgPool2d, Conv2d, Flatten
from spikeloop.training import Trainer, load_config
from spikeloop.training.experiment import load_data

ROOT = Path(__file__).resolve().parents[1]


def _fake_mnist(root, n_train=600, n_test=200, seed=0):
    """An MNIST-layout set whose class k is a bright 6×6 patch at one of 10 places (noisy)."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("t10k", n_test)):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
        for i, k in enumerate(y):
            r, c = divmod(int(k), 5)
            x[i, 4 + 12 * r: 10 + 12 * r, 2 + 5 * c: 8 + 5 * c] = 250
        write_idx(root / f"{split}-images-idx3-ubyte", x)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", y, gzip=True)


def _config(name, tmp_path, *overrides):
    return load_config(f"configs/{name}.yaml", [f"run.out_dir={tmp_path / 'runs'}",
                                                "train.progress=false", "run.threads=1",
                                                *overrides])


@pytest.mark.parametrize("config", sorted(p.stem for p in (ROOT / "configs").glob("*.yaml")))
def test_every_config_loads(config):
    cfg = load_config(ROOT / "configs" / f"{config}.yaml")
    assert cfg.run.name.replace("-", "_") == config  # runs and results take its name


@pytest.mark.parametrize("config", ["fashion_mnist_fc", "fashion_mnist_conv",
                                    "fashion_mnist_conv_surrogate", "fashion_mnist_conv_bn"])
def test_image_configs_train_on_idx_files(config, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    root = tmp_path / "fm"
    root.mkdir()
    _fake_mnist(root)
    cfg = _config(config, tmp_path, f"data.root={root}", "data.train_size=500",
                  "data.val_size=100", "data.test_size=200", "train.epochs=3",
                  "train.batch_size=50")
    trainer = Trainer(cfg)
    data = trainer.data
    assert [len(data[s]) for s in ("train", "val", "test")] == [500, 100, 200]
    flat = config.endswith("fc")
    assert data["train"].spikes.shape[2:] == ((784,) if flat else (1, 28, 28))
    assert data["train"].spikes.stride(0) == 0  # direct coding: a view over time, no copy
    kinds = [type(m) for m in trainer.network.layers.values()]
    assert (Conv2d in kinds and AvgPool2d in kinds and Flatten in kinds) != flat
    summary = trainer.fit()
    assert summary["test_acc"] > 0.5  # chance: 0.1


def test_image_sizes_and_params_are_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    root = tmp_path / "fm"
    root.mkdir()
    _fake_mnist(root, n_train=100, n_test=50)
    with pytest.raises(ConfigError, match=r"train_size \+ data.val_size = 55000 \+ 5000 "
                                          r"exceeds its 100 training samples"):
        load_data(_config("fashion_mnist_fc", tmp_path, f"data.root={root}").data)
    with pytest.raises(ConfigError, match=r"unknown data.params \['flatten'\]"):
        load_data(_config("fashion_mnist_fc", tmp_path, f"data.root={root}",
                          "data.params={flatten: true}").data)
    cfg = _config("fashion_mnist_conv", tmp_path, f"data.root={root}", "data.train_size=50",
                  "data.val_size=10", "data.test_size=10", "data.params={flat: true}")
    with pytest.raises(ConfigError, match=r"model.conv needs images \[C, H, W\]"):
        Trainer(cfg)
    with pytest.raises(ConfigError, match=r"model.conv\[0\]: needs 'channels'"):
        Trainer(_config("fashion_mnist_conv", tmp_path, f"data.root={root}",
                        "data.train_size=50", "data.val_size=10", "data.test_size=10",
                        "model.conv=[{channel: 8}]"))


def test_a_missing_data_set_names_the_paths_and_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("SPIKELOOP_DATA", str(tmp_path / "nothing"))
    with pytest.raises(MissingDataError) as info:
        load_data(_config("spoken_digits", tmp_path).data)
    assert str(tmp_path / "nothing" / "spoken_digits") in str(info.value)
    assert "make spoken-digits" in str(info.value)


def _shd_files(folder, n_per_class=6, n_classes=20, speakers=(0, 1, 2, 3), seed=0):
    """SHD-layout files: class k fires channels 30k … 30k+29 at random times in 0 … 0.45 s."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for split, spk in (("train", speakers), ("test", (7,))):
        times, units, labels, who = [], [], [], []
        for s in spk:
            for k in range(n_classes):
                for _ in range(n_per_class):
                    n = 600
                    times.append(np.sort(rng.random(n) * 0.45))
                    units.append(30 * k + rng.integers(0, 30, n))
                    labels.append(k)
                    who.append(s)
        write_shd(folder / f"spoken_digits_{split}.h5", times, units, labels, who,
                  [f"c{k}" for k in range(n_classes)])


def test_event_config_trains_on_shd_layout_files(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    _shd_files(tmp_path / "data" / "spoken_digits")
    monkeypatch.setenv("SPIKELOOP_DATA", str(tmp_path / "data"))
    cfg = _config("spoken_digits", tmp_path, "data.train_size=360", "data.val_size=120",
                  "data.test_size=120", "data.duration=0.5", "data.dt=0.005",
                  "train.epochs=4", "train.batch_size=40", "model.hidden=[64]")
    trainer = Trainer(cfg)
    train = trainer.data["train"]
    assert train.spikes.dtype == torch.int16 and train.spikes.shape[::2] == (100, 700)
    # validation: the training file's highest speaker (3) held out, 6 × 20 samples
    assert len(trainer.data["val"]) == 120
    assert int(train.spikes.sum()) == 360 * 600  # every spike of the first 360 samples binned
    assert trainer.fit()["test_acc"] > 0.3  # chance: 0.05
    with pytest.raises(ConfigError, match=r"data.encoder must be \{name: none\}"):
        load_data(_config("spoken_digits", tmp_path, "data.encoder={name: latency}").data)
    with pytest.raises(ConfigError, match=r"data.train_size = 5000 exceeds the 360 samples"):
        load_data(_config("spoken_digits", tmp_path, "data.train_size=5000").data)


def test_digits_config_learns(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    summary = Trainer(_config("digits", tmp_path, "train.epochs=6")).fit()
    assert summary["test_acc"] > 0.5  # chance 0.1; 40 epochs give about 0.91


def test_shd_config_reads_the_published_file_names(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    folder = tmp_path / "data" / "shd"
    _shd_files(folder, n_per_class=1)
    for split in ("train", "test"):  # the published names: shd_train.h5, shd_test.h5
        (folder / f"spoken_digits_{split}.h5").rename(folder / f"shd_{split}.h5")
    monkeypatch.setenv("SPIKELOOP_DATA", str(tmp_path / "data"))
    cfg = _config("shd", tmp_path, "data.train_size=60", "data.val_size=20",
                  "data.test_size=20")
    data = load_data(cfg.data)
    assert {k: tuple(v.spikes.shape) for k, v in data.items()} == {
        "train": (100, 60, 700), "val": (100, 20, 700), "test": (100, 20, 700)}
    assert data["test"].labels.tolist() == list(range(20))
