"""spikeloop.data.spoken_digits: recipes, espeak-ng synthesis, held-out voices, SHD files."""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from spikeloop.data import spoken_digits as sd
from spikeloop.data.cochlea import P_REF, spectrogram_spikes
from spikeloop.errors import DataFormatError, MissingDataError, ParameterError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (Debian package espeak-ng)")
ROOT = Path(__file__).resolve().parents[1]


def test_keys_follow_shd_label_order() -> None:
    assert len(sd.KEYS) == 20
    assert sd.KEYS[0] == "zero" and sd.KEYS[9] == "nine"
    assert sd.KEYS[10] == "null" and sd.KEYS[15] == "fünf" and sd.KEYS[19] == "neun"


def test_plan_is_deterministic_balanced_and_holds_out_voices() -> None:
    train = sd.plan("train", 3, seed=7)
    assert train == sd.plan("train", 3, seed=7)
    assert train != sd.plan("train", 3, seed=8)
    assert np.bincount([u.label for u in train]).tolist() == [3] * 20
    test = sd.plan("test", 8, seed=7)
    assert np.bincount([u.label for u in test]).tolist() == [2] * 20
    held = {sd.SPEAKERS.index(s) for s in sd.TEST_SPEAKERS}
    assert {u.speaker for u in test} <= held
    assert not {u.speaker for u in sd.plan("train", 20, seed=7)} & held
    assert all(u.voice == "de" for u in train if u.label >= 10)
    assert all(u.voice in sd.ENGLISH_VOICES for u in train if u.label < 10)
    for u in train:
        assert 120 <= u.speed_wpm <= 200 and 25 <= u.pitch <= 75
        assert 55.0 <= u.level_db <= 75.0 and 0.0 <= u.onset_s <= 0.05
        assert (u.noise is None) == (u.snr_db is None)


def test_plan_errors() -> None:
    with pytest.raises(ParameterError, match="split must be one of"):
        sd.plan("valid", 1)
    with pytest.raises(ParameterError, match="per_class must be an integer ≥ 1"):
        sd.plan("train", 0)
    with pytest.raises(ParameterError, match="encoder must be one of"):
        sd.file_name("train", "mel")


def test_file_names() -> None:
    assert sd.file_name("train") == "spoken_digits_train.h5"
    assert sd.file_name("test", "spectrogram") == "spoken_digits_spectrogram_test.h5"


def test_noise_spectra() -> None:
    """White noise: equal power per Hz; pink: equal power per octave (statistics, 2^16
    samples, one seed)."""
    rng = np.random.default_rng(3)
    n = 2**16
    for kind, slope in (("white", 1.0), ("pink", 0.0)):
        x = sd.coloured_noise(kind, n, rng)
        assert np.mean(x**2) == pytest.approx(1.0)
        p = np.abs(np.fft.rfft(x)) ** 2
        octaves = [p[2**k:2 ** (k + 1)].sum() for k in (8, 10, 12)]
        ratios = np.log2(np.array(octaves[1:]) / octaves[:-1]) / 2  # per octave
        np.testing.assert_allclose(ratios, slope, atol=0.2)
    with pytest.raises(ParameterError, match="noise kind must be one of"):
        sd.coloured_noise("brown", n, rng)


def test_missing_espeak_names_the_package(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDataError, match="install the Debian package espeak-ng"):
        sd.espeak("zero", "en")
    with pytest.raises(MissingDataError, match=str(tmp_path)):
        sd.make_spoken_digits(tmp_path, per_class=1, progress=False)


def test_wav_parser_refuses_other_streams() -> None:
    with pytest.raises(DataFormatError, match="not a WAV stream"):
        sd._wav_samples(b"OggS" + bytes(60))
    header = bytearray(b"RIFF" + bytes(4) + b"WAVEfmt " + bytes(20) + b"data" + bytes(4))
    header[22:24] = (2).to_bytes(2, "little")  # two channels
    header[24:28] = (22050).to_bytes(4, "little")
    header[34:36] = (16).to_bytes(2, "little")
    with pytest.raises(DataFormatError, match="16-bit mono"):
        sd._wav_samples(bytes(header) + bytes(8))


@needs_espeak
def test_espeak_errors() -> None:
    with pytest.raises(ParameterError, match="speed_wpm"):
        sd.espeak("zero", "en", speed_wpm=1000)
    with pytest.raises(ParameterError, match="pitch"):
        sd.espeak("zero", "en", pitch=-1)
    with pytest.raises(ParameterError, match="espeak-ng -v 'xx-nonexistent' failed"):
        sd.espeak("zero", "xx-nonexistent")


@needs_espeak
def test_render_level_noise_and_determinism() -> None:
    utt = dataclasses.replace(sd.plan("train", 1, seed=1)[3], noise="pink", snr_db=10.0,
                              level_db=60.0)
    sound, fs = sd.render(utt, seed=1)
    again, _ = sd.render(utt, seed=1)
    np.testing.assert_array_equal(sound, again)
    assert fs == sd.ESPEAK_FS
    clean, _ = sd.render(dataclasses.replace(utt, noise=None, snr_db=None), seed=1)
    target = P_REF * 10 ** (60.0 / 20)
    assert np.sqrt(np.mean(clean**2)) == pytest.approx(target, rel=1e-9)
    noise = sound - clean
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(target * 10 ** (-0.5), rel=1e-9)
    other, _ = sd.render(utt, seed=2)
    assert not np.array_equal(other, sound)  # the noise follows the seed
    assert other.shape == sound.shape
    onset = round(utt.onset_s * fs)
    assert np.all(clean[:onset] == 0.0)


@needs_espeak
def test_files_round_trip_in_shd_layout_and_are_deterministic(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    a = sd.make_spoken_digits(tmp_path / "a", per_class=4, seed=5, encoder="spectrogram",
                              progress=False, splits=("test",))
    b = sd.make_spoken_digits(tmp_path / "b", per_class=4, seed=5, encoder="spectrogram",
                              progress=False, splits=("test",))
    assert a["test"].name == "spoken_digits_spectrogram_test.h5"
    utts = sd.plan("test", 4, seed=5)
    with h5py.File(a["test"]) as fa, h5py.File(b["test"]) as fb:
        assert set(fa) == {"spikes", "labels", "extra"}
        assert fa["spikes/times"].dtype.metadata["vlen"] == np.float16
        assert fa["spikes/units"].dtype.metadata["vlen"] == np.uint16
        assert fa["labels"].dtype == np.uint16
        np.testing.assert_array_equal(fa["labels"][:], [u.label for u in utts])
        np.testing.assert_array_equal(fa["extra/speaker"][:], [u.speaker for u in utts])
        assert [k.decode() for k in fa["extra/keys"][:]] == list(sd.KEYS)
        for i in range(len(utts)):
            np.testing.assert_array_equal(fa["spikes/times"][i], fb["spikes/times"][i])
            np.testing.assert_array_equal(fa["spikes/units"][i], fb["spikes/units"][i])
        times, units = spectrogram_spikes(*sd.render(utts[7], seed=5))
        np.testing.assert_array_equal(fa["spikes/units"][7], units)
        np.testing.assert_array_equal(fa["spikes/times"][7], times.astype(np.float16))
        assert len(times) > 0


@needs_espeak
def test_cochlea_encoding_is_deterministic() -> None:
    utt = sd.plan("test", 1, seed=0)[4]
    t1, u1 = sd.encode(utt, seed=0)
    t2, u2 = sd.encode(utt, seed=0)
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(u1, u2)
    assert len(t1) > 100 and u1.max() < 700


@needs_espeak
def test_script_writes_both_splits_and_reports_bad_options(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("make_spoken_digits",
                                                  ROOT / "scripts" / "make_spoken_digits.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--out", str(tmp_path), "--encoder", "spectrogram", "--per-class", "1",
                        "--quiet"]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["spoken_digits_spectrogram_test.h5", "spoken_digits_spectrogram_train.h5"]
    assert script.main(["--out", str(tmp_path), "--jobs", "0", "--quiet"]) == 2
    assert "jobs must be an integer ≥ 1" in capsys.readouterr().err
