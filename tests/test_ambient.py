"""spikeloop.data.ambient: the scene models' spectra, the mixture, the files and the loader."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
from torch.utils.data import DataLoader

from spikeloop.data import ambient as amb
from spikeloop.data import find, time_major_collate
from spikeloop.errors import DataFormatError, MissingDataError, ParameterError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (Debian package espeak-ng)")


def test_plan_is_deterministic_balanced_with_distractors_of_other_classes() -> None:
    plan = amb.plan_scenes("train", 50, seed=2)
    assert plan == amb.plan_scenes("train", 50, seed=2) != amb.plan_scenes("test", 50, seed=2)
    assert np.bincount([s.label for s in plan]).tolist() == [50] * 6
    with_d = [s for s in plan if s.distractor >= 0]
    assert 0.7 < len(with_d) / len(plan) < 0.9  # DISTRACTOR_SHARE = 0.8 of 300
    assert all(s.distractor != s.label and amb.TDR_DB[0] <= s.tdr_db <= amb.TDR_DB[1]
               for s in with_d)
    assert all(s.tdr_db is None for s in plan if s.distractor < 0)
    assert len({s.distractor for s in with_d}) == 6
    with pytest.raises(ParameterError, match="per_class must be an integer ≥ 1"):
        amb.plan_scenes("train", 0)
    with pytest.raises(ParameterError, match="scene label"):
        amb.scene(6, 100, np.random.default_rng(0))


def _band_share(x: np.ndarray, lo: float, hi: float) -> float:
    p = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / amb.FS)
    return float(p[(f >= lo) & (f < hi)].sum() / p.sum())


@pytest.mark.parametrize("name, lo, hi, share", [
    ("rain", 700.0, 8000.0, 0.9),      # band-passed around 1.5–5 kHz (1.5 octaves wide)
    ("traffic", 0.0, 1000.0, 0.97),    # harmonics of 25–90 Hz with 1/k amplitudes, rumble < 600 Hz
    ("birds", 1000.0, 8000.0, 0.9),    # chirps from 2–6 kHz ± 2 kHz
    ("wind", 0.0, 1300.0, 0.97),       # 1/(1 + (f/f_c)^4), f_c ≤ 600 Hz
    ("alarm", 400.0, 6100.0, 0.99),    # tones 0.5–3 kHz and their second harmonic
])
def test_scene_spectra_follow_their_models(name: str, lo: float, hi: float,
                                           share: float) -> None:
    label = amb.CLASS_NAMES.index(name)
    for i in range(8):
        x = amb.scene(label, 16000, np.random.default_rng([7, i]))
        assert np.mean(x**2) == pytest.approx(1.0)
        assert _band_share(x, lo, hi) > share


def test_mixture_is_target_plus_distractor_plus_floor() -> None:
    spec = next(s for s in amb.plan_scenes("train", 4, seed=3)
                if s.distractor >= 0 and amb.CLASS_NAMES[s.distractor] != "babble"
                and amb.CLASS_NAMES[s.label] != "babble")
    x = amb.render_scene(spec, seed=3)
    g = 10 ** (spec.level_dbfs / 20)
    target = amb.scene(spec.label, 16000, amb._rng(3, "train", 1, spec.index)) * g
    distractor = amb.scene(spec.distractor, 16000, amb._rng(3, "train", 2, spec.index)) * g
    floor = x - target - distractor * 10 ** (-spec.tdr_db / 20)
    assert 20 * np.log10(np.sqrt(np.mean(target**2))) == pytest.approx(spec.level_dbfs)
    assert 20 * np.log10(np.sqrt(np.mean(floor**2)) / g) == pytest.approx(-amb.FLOOR_DB)
    loud = amb.SceneSpec("train", 0, 4, -2.0, 5, 3.0)
    with pytest.raises(DataFormatError, match="reach full scale"):
        amb.render_scene(loud)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match=r"ambient_train\.h5.*make ambient"):
        amb.AmbientClips(tmp_path, "train")
    with pytest.raises(MissingDataError, match="make ambient"):
        amb.read_ambient(tmp_path / "none.h5")


@needs_espeak
def test_files_are_deterministic_and_load(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    a = amb.make_ambient(tmp_path / "a", per_class=1, test_per_class=2, seed=4, progress=False)
    b = amb.make_ambient(tmp_path / "b", per_class=1, test_per_class=2, seed=4, progress=False,
                         splits=("test",))
    assert hashlib.sha256(a["test"].read_bytes()).digest() == \
        hashlib.sha256(b["test"].read_bytes()).digest()
    d = amb.read_ambient(a["test"])
    assert d.clips.shape == (12, 16000) and d.keys == list(amb.CLASS_NAMES)
    assert np.bincount(d.labels).tolist() == [2] * 6 and np.abs(d.clips).max() < 1.0
    spec = amb.plan_scenes("test", 2, seed=4)[3]
    np.testing.assert_array_equal(np.rint(amb.render_scene(spec, seed=4) * 32767),
                                  np.rint(d.clips[3].astype(np.float64) * 32767))
    ds = amb.AmbientClips(tmp_path / "a", "test")
    x, y = next(iter(DataLoader(ds, batch_size=6, collate_fn=time_major_collate)))
    assert x.shape == (16000, 6) and y.tolist() == [0, 1, 2, 3, 4, 5]
    assert "AmbientClips" in repr(ds) and "streams" not in repr(ds)
    monkeypatch.setenv("SPIKELOOP_DATA", str(tmp_path / "a"))
    assert find("ambient") == tmp_path / "a"
    import h5py

    with h5py.File(a["train"], "r+") as f:
        f["clips/labels"][0] = 9
    with pytest.raises(DataFormatError, match=r"clips/labels must lie in 0 … 5"):
        amb.read_ambient(a["train"])
    with h5py.File(a["train"], "r+") as f:
        del f["clips/tdr_db"]
    with pytest.raises(DataFormatError, match=r"no 'clips/tdr_db'"):
        amb.read_ambient(a["train"])
