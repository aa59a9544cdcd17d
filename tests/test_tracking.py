"""TensorBoard event files (``run.tensorboard``): read back, they hold what metrics.json and
summary.json hold, the rate histograms and the plots; a resumed run appends without a step
twice; without TensorBoard the error names the extra that installs it."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from spikeloop.errors import ConfigError, MissingPackageError
from spikeloop.training import Trainer, load_config
from spikeloop.training.tracking import PLOTS, scalar_tag

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.train_size=80", "data.val_size=40", "data.test_size=40", "model.hidden=[12]",
        "train.batch_size=40", "train.epochs=3", "train.progress=false", "train.backend=sim",
        "run.threads=1"]


def tiny(out, *extra, name="tb"):
    return load_config(ROOT / "configs/yinyang.yaml",
                       [f"run.out_dir={out}", f"run.name={name}", *TINY, *extra])


def events(folder):
    acc = EventAccumulator(str(folder / "tensorboard"), size_guidance={"images": 0,
                                                                        "histograms": 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def f32(x):
    """A value as a TensorBoard scalar holds it (float32)."""
    return float(np.float32(x))


def test_event_files_hold_the_metrics_the_histograms_and_the_plots(tmp_path):
    trainer = Trainer(tiny(tmp_path, "run.tensorboard=true"))
    summary = trainer.fit()
    folder = trainer.dir
    metrics = json.loads((folder / "metrics.json").read_text())
    acc = events(folder)
    tags = acc.Tags()
    keys = [k for k in metrics[0] if k != "epoch"]
    assert {"loss/train", "accuracy/val", "lr", "time/epoch_seconds", "rate_hz/hidden1"} <= \
        {scalar_tag(k) for k in keys}
    for key in keys:  # every metric, every epoch, as metrics.json has it (float32)
        assert scalars(acc, scalar_tag(key)) == [(m["epoch"], f32(m[key])) for m in metrics], key
    final = json.loads((folder / "summary.json").read_text())
    assert scalars(acc, "accuracy/test") == [(3, f32(final["test_acc"]))]
    assert final["test_acc"] == summary["test_acc"]
    assert scalars(acc, "loss/test") == [(3, f32(final["test_loss"]))]
    # one histogram of per-neuron rates per spiking population and epoch; its mean is the rate
    populations = [k.removeprefix("rate_") for k in keys if k.startswith("rate_")]
    assert populations and set(tags["histograms"]) == {f"rate_hz/{p}" for p in populations}
    for p in populations:
        hist = acc.Histograms(f"rate_hz/{p}")
        assert [h.step for h in hist] == [1, 2, 3]
        for h, m in zip(hist, metrics, strict=True):
            value = h.histogram_value
            assert value.num == 12  # model.hidden=[12]
            assert value.sum / value.num == pytest.approx(m[f"rate_{p}"], rel=1e-6)
            assert value.min >= 0
    # the trainer's plots, as images at the last step, the size of the PNG files
    assert set(tags["images"]) == {f"plots/{n}" for n in PLOTS if (folder / f"{n}.png").exists()}
    assert {"plots/curves", "plots/raster", "plots/readout_membrane"} <= set(tags["images"])
    for tag in tags["images"]:
        (image,) = acc.Images(tag)
        assert image.step == 3 and image.width > 100 and image.height > 100
        assert image.encoded_image_string.startswith(b"\x89PNG")


def test_no_tensorboard_folder_when_switched_off(tmp_path):
    trainer = Trainer(tiny(tmp_path, "train.epochs=1"))
    trainer.fit()
    assert (trainer.dir / "metrics.json").exists()
    assert not (trainer.dir / "tensorboard").exists()


def test_without_tensorboard_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import → ImportError
    with pytest.raises(MissingPackageError, match=r"pip install 'spikeloop\[track\]'"):
        Trainer(tiny(tmp_path, "run.tensorboard=true"))
    assert not (tmp_path / "tb").exists()  # refused before the run folder was made
    assert isinstance(MissingPackageError("x"), ImportError)
    assert Trainer(tiny(tmp_path)).dir == tmp_path / "tb"  # switched off: not needed


def test_run_tensorboard_must_be_a_bool(tmp_path):
    with pytest.raises(ConfigError, match=r"run\.tensorboard"):
        tiny(tmp_path, "run.tensorboard=yes please")


def test_a_resumed_run_appends_without_a_step_twice(tmp_path):
    first = Trainer(tiny(tmp_path, "run.tensorboard=true"))
    first.fit(stop_after=1)
    # an earlier session wrote epoch 2 to the event files but died before its checkpoint:
    # the resume trains epoch 2 again, and TensorBoard must keep only the new one
    ghost = Trainer(tiny(tmp_path, "run.tensorboard=true", "train.resume=true"))
    ghost.save_checkpoint = lambda path: None  # the checkpoint of epoch 2 is never written
    ghost.fit(stop_after=1)
    resumed = Trainer(tiny(tmp_path, "run.tensorboard=true", "train.resume=true"))
    assert resumed.epoch == 1
    resumed.fit()
    folder = resumed.dir
    assert len(list((folder / "tensorboard").glob("events.out.tfevents.*"))) == 3  # appended
    metrics = json.loads((folder / "metrics.json").read_text())
    acc = events(folder)
    for key in (k for k in metrics[0] if k != "epoch"):
        assert scalars(acc, scalar_tag(key)) == [(m["epoch"], f32(m[key])) for m in metrics], key
    assert [h.step for h in acc.Histograms("rate_hz/hidden1")] == [1, 2, 3]
    assert [e.step for e in acc.Scalars("accuracy/test")] == [3]


def test_a_resume_may_switch_tensorboard_on_and_nothing_it_computes(tmp_path):
    """``spikeloop resume DIR run.tensorboard=true`` (and run.dist_timeout) are accepted; a key
    that changes what the run computes is refused, naming the keys a resume may change."""
    import yaml

    from spikeloop.training.config import RESUME_OVERRIDES, load_run_config

    run = tmp_path / "tb"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump(tiny(tmp_path).to_dict(), sort_keys=False))
    cfg = load_run_config(run, ["run.tensorboard=true", "run.dist_timeout=30"])
    assert cfg.run.tensorboard is True and cfg.run.dist_timeout == 30
    assert cfg.train.resume is True and cfg.run.name == "tb"
    assert load_run_config(run).run.tensorboard is False
    with pytest.raises(ConfigError, match="may change only " + ", ".join(RESUME_OVERRIDES[:-1])):
        load_run_config(run, ["train.lr=0.5"])
