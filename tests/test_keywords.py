"""spikeloop.data.keywords: recipes, resampling, word extents, clips and streams, the file
layout and its loader."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from spikeloop.data import find, time_major_collate
from spikeloop.data import keywords as kw
from spikeloop.data.spoken_digits import SPEAKERS, TEST_SPEAKERS
from spikeloop.errors import ArgumentTypeError, DataFormatError, MissingDataError, ParameterError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (Debian package espeak-ng)")
HELD = {SPEAKERS.index(s) for s in TEST_SPEAKERS}
TINY = dict(per_class=2, test_per_class=3, n_streams=2, train_streams=1, stream_s=15.0,
            progress=False)


def test_vocabulary() -> None:
    assert kw.CLASS_NAMES == ("yes", "no", "stop", "down", "other")
    assert len(kw.FILLERS) >= 40 and len(set(kw.FILLERS)) == len(kw.FILLERS)
    assert not set(kw.FILLERS) & (set(kw.KEYWORDS) | set(kw.EXCLUDED))
    assert not {w + "s" for w in kw.KEYWORDS} & set(kw.FILLERS)


def test_plan_is_deterministic_balanced_and_holds_out_speakers() -> None:
    train = kw.plan_clips("train", 40, seed=3)
    assert train == kw.plan_clips("train", 40, seed=3)
    assert train != kw.plan_clips("train", 40, seed=4)
    assert np.bincount([c.label for c in train]).tolist() == [40] * 5
    test = kw.plan_clips("test", 40, seed=3)
    assert {c.speaker for c in test if c.word >= 0} <= HELD
    assert not {c.speaker for c in train} & HELD
    noise_only = [c for c in train if c.word < 0]
    assert noise_only and all(c.label == kw.OTHER and c.noise is not None for c in noise_only)
    assert 0.1 < len(noise_only) / 40 < 0.45  # NOISE_ONLY_SHARE = 0.25 of 40 other clips
    for c in train:
        if c.label < kw.OTHER:
            assert kw.VOCABULARY[c.word] == kw.KEYWORDS[c.label]
        elif c.word >= 0:
            assert kw.VOCABULARY[c.word] in kw.FILLERS
        assert kw.LEVEL_DBFS[0] <= c.level_dbfs <= kw.LEVEL_DBFS[1]
        assert (c.noise is None) == (c.snr_db is None)
    assert {c.snr_db for c in train} == set(kw.SNRS_DB)
    assert {c.noise for c in train} == {None, *kw.NOISE_KINDS}
    with pytest.raises(ParameterError, match="split must be one of"):
        kw.plan_clips("valid", 1)
    with pytest.raises(ParameterError, match="per_class must be an integer ≥ 1"):
        kw.plan_clips("train", 0)


def test_resampler_keeps_the_band_and_removes_aliases() -> None:
    """Tones at 22 050 Hz: up to 7 kHz they keep amplitude and phase at 16 kHz; from 8 kHz
    (the new Nyquist frequency; 9 kHz would alias to 7 kHz) they are removed by ≥ 100 dB."""
    t = np.arange(22050) / 22050.0
    t16 = np.arange(16000) / 16000.0
    for f in (1000.0, 5000.0, 7000.0, 8000.0, 9000.0, 10000.0):
        y = kw.resample_to_fs(np.sin(2 * np.pi * f * t))
        assert len(y) == 16000
        mid = slice(2000, -2000)
        gain_db = 20 * np.log10(np.sqrt(2 * np.mean(y[mid] ** 2)))
        if f <= 7000:
            assert gain_db == pytest.approx(0.0, abs=0.05)
            np.testing.assert_allclose(y[mid], np.sin(2 * np.pi * f * t16)[mid], atol=0.01)
        else:
            assert gain_db < -100
    with pytest.raises(ParameterError, match="whole number of Hz"):
        kw.resample_to_fs(np.zeros(10), 22050.5)
    with pytest.raises(ParameterError, match="fs_in"):
        kw.resample_to_fs(np.zeros(10), 8000)


def test_word_extent_is_framed_energy() -> None:
    x = np.zeros(1600)
    x[400:1000] = 0.1
    x[1000:1040] = 0.0005  # 46 dB below: outside the 40 dB extent
    assert kw.word_extent(x) == (400, 1000)
    x[1040:1080] = 0.002  # 34 dB below: inside
    assert kw.word_extent(x) == (400, 1080)
    x[403] = 0.0  # the extent starts at a frame boundary
    assert kw.word_extent(x)[0] == 400
    with pytest.raises(DataFormatError, match="silent"):
        kw.word_extent(np.zeros(100))


def test_non_keyword_seconds_golden() -> None:
    stream = np.array([0, 0, 0, 1])
    on = np.array([1.0, 2.0, 5.0, 9.5])
    off = np.array([1.5, 2.4, 5.3, 9.9])
    label = np.array([0, 1, 4, 2])  # the filler at 5 s does not count
    assert kw.non_keyword_seconds(stream, on, off, label, 10.0, 2) == pytest.approx(
        20 - 0.5 - 0.4 - 0.4)
    # guard 0.6 s: [1, 2.1] ∪ [2, 3] = 2 s in stream 0; [9.5, 10] (cut at the end) in stream 1
    assert kw.non_keyword_seconds(stream, on, off, label, 10.0, 2, guard_s=0.6) == \
        pytest.approx(20 - 2.0 - 0.5)
    with pytest.raises(ParameterError, match="guard_s"):
        kw.non_keyword_seconds(stream, on, off, label, 10.0, 2, guard_s=-1)


def test_babble_leaves_out_the_clips_speaker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Babble is made of bank words by the split's other speakers, summed to unit RMS."""
    used = []

    def fake_word(seed: int, split: str, i: int) -> np.ndarray:
        used.append(kw._bank_speaker(split, i))
        return np.ones(800)

    monkeypatch.setattr(kw, "_bank_word", fake_word)
    speaker = kw._split_speakers("test")[1]
    x = kw._babble(16000, np.random.default_rng(0), 0, "test", speaker)
    assert np.mean(x**2) == pytest.approx(1.0)
    assert used and speaker not in used and set(used) <= HELD
    assert len(used) >= kw.BABBLE_TALKERS * 16000 // (800 + 1600)


def test_missing_espeak_names_the_package(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingDataError, match="install the Debian package espeak-ng"):
        kw.make_keywords(tmp_path, **TINY)


def test_missing_file_names_the_path_and_the_command(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match=r"keywords_test\.h5.*make keywords"):
        kw.KeywordClips(tmp_path, "test")
    with pytest.raises(MissingDataError, match=str(tmp_path / "x.h5") + r".*make keywords"):
        kw.read_keywords(tmp_path / "x.h5")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataFormatError, match="not an HDF5 file"):
        kw.read_keywords(tmp_path / "bad.h5")


# ----------------------------------------------------------------------------- generated files

@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (Debian package espeak-ng)")
    start = time.perf_counter()
    paths = kw.make_keywords(tmp_path_factory.mktemp("kws"), seed=5, **TINY)
    paths["seconds"] = time.perf_counter() - start
    return paths


@needs_espeak
def test_generation_is_fast_and_byte_deterministic(files: dict, tmp_path: Path) -> None:
    assert files["seconds"] < 20  # 25 clips, three 15 s streams: about 2 s on an idle core
    again = kw.make_keywords(tmp_path / "a", seed=5, **TINY)
    for split in ("train", "test"):
        assert hashlib.sha256(files[split].read_bytes()).digest() == \
            hashlib.sha256(again[split].read_bytes()).digest()
    other = kw.make_keywords(tmp_path / "b", seed=6, **{**TINY, "splits": ("test",)})
    assert files["test"].read_bytes() != other["test"].read_bytes()
    assert set(other) == {"test"}


@needs_espeak
def test_layout_speakers_and_no_clipping(files: dict) -> None:
    train, test = kw.read_keywords(files["train"]), kw.read_keywords(files["test"])
    assert train.clips.shape == (10, 16000) and test.clips.shape == (15, 16000)
    assert train.streams.shape == (1, 15 * 16000) and test.streams.shape == (2, 15 * 16000)
    assert train.fs == 16000 and train.split == "train" and train.keys == list(kw.CLASS_NAMES)
    assert np.bincount(test.labels).tolist() == [3] * 5
    for d, split in ((train, "train"), (test, "test")):
        spk = np.concatenate([d.clip_meta["speaker"], d.events["speaker"]])
        spk = set(spk[spk >= 0].tolist())
        assert (spk <= HELD) if split == "test" else not (spk & HELD)
        assert np.abs(d.clips).max() < 1.0 and np.abs(d.streams).max() < 1.0
    # the stored clip is the rendered one, rounded to int16 at scale 32767
    specs = kw.plan_clips("test", 3, seed=5)
    audio, onset, _ = kw.render_clip(specs[4], seed=5)
    np.testing.assert_array_equal(np.rint(audio * 32767).astype(np.int16),
                                  np.rint(test.clips[4].astype(np.float64) * 32767))
    assert test.clip_meta["onset_s"][4] == np.float32(onset)
    loud = dataclasses.replace(specs[0], level_dbfs=-3.0, noise="white", snr_db=0.0)
    with pytest.raises(DataFormatError, match=r"reach full scale.*nothing is clipped"):
        kw.render_clip(loud, seed=5)


@needs_espeak
def test_onsets_and_snr_match_the_audio(files: dict) -> None:
    """The word's energy starts at onset_s (within one 2.5 ms frame); the SNR measured on the
    stored int16 audio (stored clip − clean word) is the requested one within 0.5 dB."""
    d = kw.read_keywords(files["train"])
    specs = kw.plan_clips("train", 2, seed=5)
    checked = 0
    for i, spec in enumerate(specs):
        if spec.word < 0:
            assert np.isnan(d.clip_meta["onset_s"][i]) and d.clip_meta["word"][i] == -1
            continue
        clean, onset, offset = kw.render_clip(spec, seed=5, with_noise=False)
        a, b = kw.word_extent(clean)
        assert abs(a / kw.FS - d.clip_meta["onset_s"][i]) <= kw.FRAME_S
        assert abs(b / kw.FS - d.clip_meta["offset_s"][i]) <= kw.FRAME_S
        assert np.all(clean[:round(onset * kw.FS)] == 0)
        assert np.all(clean[round(offset * kw.FS):] == 0)
        word = clean[round(onset * kw.FS):round(offset * kw.FS)]
        assert 20 * np.log10(np.sqrt(np.mean(word**2))) == pytest.approx(spec.level_dbfs,
                                                                         abs=1e-9)
        if spec.snr_db is not None:
            noise = d.clips[i].astype(np.float64) - clean
            snr = 20 * np.log10(np.sqrt(np.mean(word**2) / np.mean(noise**2)))
            assert snr == pytest.approx(spec.snr_db, abs=0.5)
            checked += 1
        else:
            np.testing.assert_allclose(d.clips[i], clean, atol=0.5 / 32767 + 1e-7)
    assert checked >= 3


@needs_espeak
def test_streams_events_and_noise(files: dict) -> None:
    d = kw.read_keywords(files["test"])
    ev = d.events
    assert len(ev["stream"]) >= 10 and set(ev["stream"].tolist()) == {0, 1}
    assert np.all(np.diff(ev["stream"]) >= 0)
    assert np.all(ev["onset_s"] >= 0) and np.all(ev["offset_s"] <= d.stream_s)
    assert np.all(ev["offset_s"] > ev["onset_s"])
    same = ev["stream"][1:] == ev["stream"][:-1]
    gaps = ev["onset_s"][1:] - ev["offset_s"][:-1]
    assert np.all(gaps[same] >= kw.GAP_S[0] - 1e-9)
    is_kw = ev["label"] < kw.OTHER
    assert np.all(ev["word"][is_kw] == ev["label"][is_kw])
    assert d.non_keyword_s == pytest.approx(
        2 * 15.0 - np.sum((ev["offset_s"] - ev["onset_s"])[is_kw]))
    with pytest.raises(ParameterError, match="stream index"):
        d.stream_events(2)
    for k in range(2):
        mine = d.stream_events(k)
        assert set(mine["stream"].tolist()) == {k} and len(mine["onset_s"]) == np.sum(
            ev["stream"] == k)
        # outside the words the stream is noise alone, at level − SNR dB (statistically)
        x = d.streams[k].astype(np.float64)
        inside = np.zeros(len(x), bool)
        for on, off in zip(ev["onset_s"][ev["stream"] == k], ev["offset_s"][ev["stream"] == k],
                           strict=True):
            inside[round(on * kw.FS):round(off * kw.FS)] = True
            seg = x[round(on * kw.FS):round(off * kw.FS)]
            assert np.sqrt(np.mean(seg**2)) > 0  # a word is there
        rms_db = 20 * np.log10(np.sqrt(np.mean(x[~inside] ** 2)))
        want = d.stream_meta["level_dbfs"][k] - d.stream_meta["snr_db"][k]
        assert rms_db == pytest.approx(want, abs=1.5)


@needs_espeak
def test_torch_dataset_with_and_without_a_frontend(files: dict) -> None:
    ds = kw.KeywordClips(files["test"].parent, "test")
    assert len(ds) == 15 and ds.n_classes == 5 and "15 clips" in repr(ds)
    x, y = ds[-1]
    assert x.shape == (16000,) and x.dtype == torch.float32 and y == 4 and ds.sample_shape == ()
    xb, yb = next(iter(DataLoader(ds, batch_size=4, collate_fn=time_major_collate)))
    assert xb.shape == (16000, 4) and yb.tolist() == [0, 1, 2, 3]

    def frontend(audio: torch.Tensor, fs: int) -> torch.Tensor:  # [B, n] -> [B, T, C]
        assert audio.shape == (1, 16000) and fs == 16000
        frames = audio.reshape(1, 100, 160)
        return (frames.abs().amax(-1, keepdim=True) > 0.01).float().expand(1, 100, 3)

    ds = kw.KeywordClips(files["test"], "test", frontend=frontend)
    xb, _ = next(iter(DataLoader(ds, batch_size=3, collate_fn=time_major_collate)))
    assert xb.shape == (100, 3, 3) and ds.sample_shape == (3,)
    direct = frontend(torch.from_numpy(ds.data.clips[1:2]), 16000)[0]
    assert torch.equal(xb[:, 1], direct) and direct.sum() > 0
    with pytest.raises(ArgumentTypeError, match="frontend must be callable"):
        kw.KeywordClips(files["test"], "test", frontend=3)


@needs_espeak
def test_catalog_finds_the_files(files: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPIKELOOP_DATA", str(files["test"].parent))
    assert find("keywords") == files["test"].parent


def _corrupt(src: Path, dst: Path, edit) -> Path:
    import h5py

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


@needs_espeak
@pytest.mark.parametrize("edit, message", [
    (lambda f: f.__delitem__("clips/labels"), r"no 'clips/labels'"),
    (lambda f: f["streams"].attrs.__delitem__("non_keyword_s"), "lacks the attribute"),
    (lambda f: f["clips/audio"].attrs.__delitem__("fs"), "lacks the attribute 'fs'"),
    (lambda f: (f.__delitem__("clips/audio"), f.create_dataset("clips/audio",
                                                               data=np.zeros((15, 10)))),
     r"clips/audio must be int16"),
    (lambda f: (f.__delitem__("clips/pitch"), f.create_dataset("clips/pitch",
                                                               data=np.zeros(3))),
     r"clips/pitch has shape \(3,\); one entry per row \(15\)"),
    (lambda f: f["clips/labels"].__setitem__(0, 7), r"clips/labels must lie in 0 … 4"),
    (lambda f: f["streams/events/onset_s"].__setitem__(1, 0.0), "overlaps or precedes"),
    (lambda f: f["streams/events/offset_s"].__setitem__(0, 99.0), "outside the streams"),
])
def test_malformed_files_raise_specific_errors(files: dict, tmp_path: Path, edit,
                                               message: str) -> None:
    bad = _corrupt(files["test"], tmp_path / "bad.h5", edit)
    with pytest.raises(DataFormatError, match=message):
        kw.read_keywords(bad)


def test_a_sample_that_would_be_stored_as_full_scale_is_refused() -> None:
    """32767 would read back as 1.0, which the front end counts as clipped audio: the writer
    refuses what rounds to it and keeps what stays one step below."""
    just_below = np.array([0.0, 32766.0 / 32767.0])
    kw._check_peak(just_below, "ok")
    with pytest.raises(DataFormatError, match=r"1 samples reach full scale"):
        kw._check_peak(np.array([0.0, 32766.6 / 32767.0]), "clip")
