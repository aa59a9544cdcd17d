"""The SHD/SSC loader on files written in the published layout (issue 16)."""

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from spikeloop.data.events import make_events
from spikeloop.data.loading import time_major_collate
from spikeloop.data.shd import (
    N_CHANNELS,
    SHD,
    SSC,
    read_shd,
    speaker_holdout,
    write_shd,
)
from spikeloop.data.transforms import ChannelShift, TimeShift, ToRaster
from spikeloop.errors import DataFormatError, MissingDataError, ParameterError

KEYS = [f"digit-{k}" for k in range(20)]

TIMES = [np.array([0.0, 0.0105, 0.5, 1.4]),      # 1.4 s: past float16 × 1e6 (tonic → inf)
         np.array([]),                            # an empty sample
         np.array([0.25, 0.2501, 0.9999]),
         np.array([0.003])]
UNITS = [np.array([0, 1, 699, 350]), np.array([], dtype=int), np.array([5, 5, 6]),
         np.array([42])]
LABELS = [3, 0, 19, 7]
SPEAKERS = [1, 2, 1, 5]


@pytest.fixture
def shd_dir(tmp_path):
    write_shd(tmp_path / "shd_train.h5", TIMES, UNITS, LABELS, SPEAKERS, KEYS)
    return tmp_path


def mutate(path, edit):
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def test_written_file_has_the_published_layout(shd_dir):
    with h5py.File(shd_dir / "shd_train.h5", "r") as f:
        assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float16
        assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
        assert f["labels"].dtype == np.uint16 and f["extra/speaker"].dtype == np.uint16
        assert f["extra/keys"][0] == b"digit-0"


def test_read_shd_round_trip_and_the_1_4_s_time(shd_dir):
    data = read_shd(shd_dir / "shd_train.h5")
    assert data.labels.tolist() == LABELS and data.speakers.tolist() == SPEAKERS
    assert data.keys == KEYS and data.n_dropped == 0
    assert data.labels.dtype == np.int64
    for ev, t, u in zip(data.events, TIMES, UNITS, strict=True):
        expected = make_events(t.astype(np.float16), u)
        assert np.array_equal(ev, expected)
    assert data.events[0]["t"][-1] == 1_400_391          # float16(1.4) s, finite, in µs
    assert data.events.times_s.dtype == np.float16        # kept packed in the file's dtypes
    assert data.events.channels.dtype == np.uint16
    assert data.events[1].size == 0


def test_shd_dataset_rasters_golden(shd_dir):
    ds = SHD(shd_dir, "train", dt=1e-3, duration=1.5)
    assert len(ds) == 4 and ds.n_classes == 20 and ds.sample_shape == (700,)
    x, y = ds[0]
    assert x.shape == (1500, 700) and x.dtype == torch.float32 and y == 3
    assert x.sum() == 4
    # float16(0.0105) = 0.010498 s → bin 10; float16(1.4) = 1.40039 s → bin 1400
    assert x[0, 0] == 1 and x[10, 1] == 1 and x[500, 699] == 1 and x[1400, 350] == 1
    assert ds[1][0].abs().sum() == 0 and ds[1][0].shape == (1500, 700)   # the empty sample
    x2 = ds[2][0]
    assert x2[250, 5] == 2 and x2.sum() == 3             # 0.25 and 0.2501 share bin 250
    assert ds.events_past_duration == 0


def test_shd_window_counts_events_past_duration(shd_dir):
    ds = SHD(shd_dir / "shd_train.h5", dt=1e-3, duration=1.0)
    # 1.4 s, and 0.9999 s which float16 stores as exactly 1.0 s (the window's end)
    assert np.float16(0.9999) == 1.0
    assert ds.events_past_duration == 2 and ds.samples_past_duration == 2
    assert ds[0][0].sum() == 3 and ds[2][0].sum() == 2
    assert "2 events in 2 samples lie past the window" in repr(ds)
    free = SHD(shd_dir, duration=None, dt=0.01)
    assert free[0][0].shape == (141, 700) and free[3][0].shape == (1, 700)


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # 1-core affinity
def test_shd_factor_and_augmentation_with_workers(shd_dir):
    ds = SHD(shd_dir, dt=0.01, duration=1.5, factor=2,
             augment=[TimeShift(0.05), ChannelShift(3, N_CHANNELS)], seed=3)
    assert ds.sample_shape == (350,) and ds[0][0].shape == (150, 350)
    plain = SHD(shd_dir, dt=0.01, duration=1.5, factor=2)
    x2 = plain[2][0]                                       # units 5, 5, 6 → channels 2, 2, 3
    assert x2[25, 2] == 2 and x2[100, 3] == 1 and x2.sum() == 3
    a = [b for b in DataLoader(ds, batch_size=2, collate_fn=time_major_collate)]
    b = [b for b in DataLoader(ds, batch_size=2, collate_fn=time_major_collate, num_workers=2)]
    assert a[0][0].shape == (150, 2, 350) and a[1][1].tolist() == [19, 7]
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a, b, strict=True))
    assert not torch.equal(a[0][0][:, 0], plain[0][0][:, 0])   # the augmentation moved it


def test_nan_and_inf_samples_are_dropped_and_counted(tmp_path):
    times = [np.array([0.1, np.nan]), np.array([0.2]), np.array([np.inf]), np.array([0.3])]
    units = [np.array([1, 2]), np.array([3]), np.array([4]), np.array([5])]
    path = tmp_path / "shd_test.h5"
    write_shd(path, times, units, [0, 1, 2, 3], [4, 4, 5, 5], KEYS)
    with pytest.warns(UserWarning, match=r"dropped 2 of 4 samples .* NaN or infinite \(rows "
                                         r"\[0, 2\]\)"):
        data = read_shd(path)
    assert data.dropped == [0, 2] and data.labels.tolist() == [1, 3]
    assert data.source_index.tolist() == [1, 3] and data.speakers.tolist() == [4, 5]
    with pytest.warns(UserWarning, match="dropped 2 of 4"):
        ds = SHD(tmp_path, "test")
    assert len(ds) == 2 and ds.dropped == [0, 2]
    assert "dropped 2 samples with non-finite times" in repr(ds)


@pytest.mark.parametrize("edit, match", [
    (lambda f: f.__delitem__("spikes"), r"no group 'spikes'"),
    (lambda f: f.__delitem__("spikes/units"), r"no data set 'spikes/units'"),
    (lambda f: f.__delitem__("labels"), r"no data set 'labels'"),
    (lambda f: f.__delitem__("extra"), r"no group 'extra'"),
    (lambda f: f["extra"].__delitem__("keys"), r"no data set 'extra/keys'"),
    (lambda f: (f.__delitem__("spikes"), f.create_dataset("spikes", data=[1, 2])),
     r"'spikes' must be a group holding 'times'"),
])
def test_missing_group_or_data_set(shd_dir, edit, match):
    path = mutate(shd_dir / "shd_train.h5", edit)
    with pytest.raises(DataFormatError, match=match) as info:
        read_shd(path)
    assert str(path) in str(info.value)


def _replace(name, data, dtype=None):
    def edit(f):
        del f[name]
        f.create_dataset(name, data=data, dtype=dtype)
    return edit


def _ragged(arrays, dtype):
    out = np.empty(len(arrays), dtype=object)
    for k, a in enumerate(arrays):
        out[k] = np.asarray(a, dtype=dtype)
    return out


@pytest.mark.parametrize("edit, match", [
    (_replace("labels", np.array([1, 2, 3], np.uint16)),
     "spikes/times has 4 samples but labels has 3"),
    (_replace("extra/speaker", np.array([1, 2, 3, 4, 5], np.uint16)),
     "extra/speaker has 5 samples but labels has 4"),
    (_replace("spikes/units", _ragged([[0], [], [1, 2, 3], [4]], np.uint16),
              h5py.vlen_dtype(np.uint16)),
     r"sample 0: spikes/times has shape \(4,\) and spikes/units \(1,\)"),
    (_replace("spikes/units", _ragged([[0, 1, 700, 2], [], [1, 2, 3], [4]], np.uint16),
              h5py.vlen_dtype(np.uint16)),
     r"sample 0: spikes/units must lie in 0 … 699, got 0 … 700"),
    (_replace("labels", np.array([1, 2, 20, 3], np.uint16)),
     r"labels must lie in 0 … 19"),
    (_replace("spikes/times", _ragged([[0, 1, 2, 3], [], [-0.5, 1, 2], [4]], np.float16),
              h5py.vlen_dtype(np.float16)),
     r"sample 2: spike times must be ≥ 0 s"),
])
def test_malformed_files(shd_dir, edit, match):
    path = mutate(shd_dir / "shd_train.h5", edit)
    with pytest.raises(DataFormatError, match=match):
        read_shd(path)


def test_missing_data_and_not_hdf5(tmp_path):
    with pytest.raises(MissingDataError, match=r"nowhere\.h5.*zenkelab\.org/datasets"):
        read_shd(tmp_path / "nowhere.h5")
    with pytest.raises(MissingDataError, match=r"searched .*shd_test\.h5.*zenkelab") as info:
        SHD(tmp_path, "test")
    assert str(tmp_path / "shd_test.h5") in str(info.value)
    (tmp_path / "shd_test.h5.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(MissingDataError, match=r"un-zip it first"):
        SHD(tmp_path, "test")
    with pytest.raises(MissingDataError, match=r"searched .*absent"):
        SHD(tmp_path / "absent", "train")
    bad = tmp_path / "shd_train.h5"
    bad.write_text("not hdf5")
    with pytest.raises(DataFormatError, match="not an HDF5 file"):
        SHD(tmp_path)
    assert isinstance(MissingDataError("x"), FileNotFoundError)


def test_ssc_valid_split_and_split_names(tmp_path):
    keys = [f"word-{k}" for k in range(35)]
    write_shd(tmp_path / "ssc_valid.h5", [np.array([0.01])], [np.array([3])], [34], [0], keys)
    ds = SSC(tmp_path, "valid", dt=1e-3, duration=0.05)
    assert ds.n_classes == 35 and ds.labels.tolist() == [34] and ds[0][0][10, 3] == 1
    with pytest.raises(ParameterError, match=r"SHD: split must be one of \['train', 'test'\]"):
        SHD(tmp_path, "valid")


def test_speaker_holdout(shd_dir):
    ds = SHD(shd_dir, dt=0.01, duration=1.5)
    train, val = speaker_holdout(ds)
    assert val.name == "speaker-holdout val: speakers [5]"        # the highest id by default
    assert train.name == "speaker-holdout train: speakers [1, 2]"
    assert val.indices == [3] and train.indices == [0, 1, 2]
    assert val.labels.tolist() == [7] and train.n_classes == 20 and val.sample_shape == (700,)
    assert torch.equal(val[0][0], ds[3][0])
    train, val = speaker_holdout(ds, val_speakers=[1, 2])
    assert train.indices == [3] and sorted(val.indices) == [0, 1, 2]
    val.set_epoch(4)
    assert ds.epoch == 4 and train.epoch == 4
    with pytest.raises(ParameterError, match=r"\[9\] are not in the data set; speakers "
                                             r"present: \[1, 2, 5\]"):
        speaker_holdout(ds, [9])
    with pytest.raises(ParameterError, match="training would be empty"):
        speaker_holdout(ds, [1, 2, 5])


def test_file_without_speakers(shd_dir):
    path = mutate(shd_dir / "shd_train.h5", lambda f: f["extra"].__delitem__("speaker"))
    ds = SHD(path)
    assert ds.speakers is None
    with pytest.raises(DataFormatError, match="no speaker ids"):
        speaker_holdout(ds)


def test_rasters_agree_with_to_raster_on_the_events(shd_dir):
    ds = SHD(shd_dir, dt=2e-3, duration=1.5)
    to = ToRaster(2e-3, 700, duration=1.5)
    for k in range(len(ds)):
        assert torch.equal(ds[k][0], to(ds.events[k]))
