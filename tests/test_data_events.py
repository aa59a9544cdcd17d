"""Event arrays, transforms, the time-major collate and EventDataset (issue 16)."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from spikeloop.data.events import (
    EVENT_DTYPE,
    PackedEvents,
    as_event_array,
    check_events,
    event_times,
    make_events,
)
from spikeloop.data.loading import EventDataset, time_major_collate
from spikeloop.data.transforms import (
    ChannelShift,
    Compose,
    CropTime,
    Downsample,
    FixedLength,
    PadTime,
    TimeJitter,
    TimeShift,
    ToRaster,
)
from spikeloop.errors import (
    ArgumentTypeError,
    DataFormatError,
    DTypeError,
    NonFiniteError,
    ParameterError,
    ShapeError,
    TimeStepError,
)

# ----------------------------------------------------------------------------- events


def test_make_events_converts_seconds_to_rounded_microseconds():
    ev = make_events([0.0, 1.5e-6, 2.5e-6, 0.0123456], [0, 1, 2, 699])
    assert ev.dtype == EVENT_DTYPE
    assert ev["t"].tolist() == [0, 2, 2, 12346]          # round half to even: 1.5→2, 2.5→2
    assert ev["x"].tolist() == [0, 1, 2, 699]
    assert ev["p"].tolist() == [1, 1, 1, 1]
    assert make_events([0.1, 0.2], [0, 1], polarity=[-1, 1])["p"].tolist() == [-1, 1]


def test_make_events_casts_float16_before_scaling():
    t16 = np.array([1.4, 0.07], dtype=np.float16)       # 1.4 s × 1e6 overflows float16
    with np.errstate(over="ignore"):
        assert np.isinf(t16 * 1e6).all()                 # the tonic bug this avoids
    ev = make_events(t16, [0, 1])
    assert ev["t"].tolist() == [round(float(t16[0]) * 1e6), round(float(t16[1]) * 1e6)]
    assert ev["t"][0] == 1_400_391                       # float16(1.4) = 1.400390625 s


def test_event_times_round_trip():
    times = np.array([0.0, 0.001, 0.25, 1.399999])
    ev = make_events(times, [1, 2, 3, 4])
    back = event_times(ev)
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, times, atol=0.5e-6)


@pytest.mark.parametrize("times, chans, err, match", [
    ([0.1, np.nan], [0, 1], NonFiniteError, "1 NaN"),
    ([0.1, -0.2], [0, 1], DataFormatError, "≥ 0 s"),
    ([0.1], [0, 1], ShapeError, "one length"),
    ([0.1], [40000], DataFormatError, "0 … 32767"),
    ([0.1], [1.5], DTypeError, "integers"),
    (["a"], [1], DTypeError, "real numbers"),
])
def test_make_events_errors(times, chans, err, match):
    with pytest.raises(err, match=match):
        make_events(times, chans)


def test_make_events_polarity_errors():
    with pytest.raises(ShapeError, match="one per event"):
        make_events([0.1, 0.2], [0, 1], polarity=[1, 1, 1])
    with pytest.raises(DataFormatError, match="int8"):
        make_events([0.1], [0], polarity=300)


def tonic_array(t, x, p=None, t_dtype=int):
    """An event array as tonic builds one: int (int64) for every field, or a float t."""
    fields = [("t", t_dtype), ("x", int)] + ([("p", int)] if p is not None else [])
    out = np.zeros(len(t), dtype=fields)
    out["t"], out["x"] = t, x
    if p is not None:
        out["p"] = p
    return out


def test_check_events_accepts_tonic_style_arrays():
    for ev in (tonic_array([10, 2000], [3, 699], [1, 1]), tonic_array([10.0, 2e3], [3, 5],
                                                                       t_dtype=float)):
        assert check_events(ev, "ev", n_channels=700) is ev
    txyp = np.zeros(2, dtype=[("x", int), ("y", int), ("t", int), ("p", int)])  # 2-d sensor
    assert check_events(txyp) is txyp
    conv = as_event_array(tonic_array([10.4, 2e3], [3, 5], t_dtype=float))
    assert conv.dtype == EVENT_DTYPE and conv["t"].tolist() == [10, 2000]
    assert conv["p"].tolist() == [1, 1]                   # missing p → 1


@pytest.mark.parametrize("events, err, match", [
    (np.zeros((3, 3)), DTypeError, "structured array"),
    ([(1, 2, 1)], DTypeError, "structured array"),
    (np.zeros(2, dtype=[("x", int), ("p", int)]), DataFormatError, "no field 't'"),
    (np.zeros(2, dtype=[("t", int), ("y", int)]), DataFormatError, "no field 'x'"),
    (np.zeros(2, dtype=[("t", "U3"), ("x", int)]), DataFormatError, "field 't' must be numeric"),
    (np.zeros(2, dtype=[("t", int), ("x", int), ("p", "U1")]), DataFormatError, "'p' must be"),
    (np.zeros((2, 2), dtype=EVENT_DTYPE), ShapeError, "1-d"),
    (tonic_array([1.0, np.inf], [0, 1], t_dtype=float), NonFiniteError, "1 NaN or infinite"),
    (tonic_array([-5, 3], [0, 1]), DataFormatError, "'t' must be ≥ 0"),
    (tonic_array([5, 3], [0, 700]), DataFormatError, r"0 … 699, got 0 … 700"),
    (tonic_array([5, 3], [-1, 7]), DataFormatError, "channel"),
])
def test_check_events_errors(events, err, match):
    with pytest.raises(err, match=match):
        check_events(events, "ev", n_channels=700)


def test_packed_events_equal_make_events_and_keep_the_file_dtypes():
    t = [np.array([0.001, 1.4], np.float16), np.array([], np.float16), np.array([0.5], np.float16)]
    x = [np.array([3, 699], np.uint16), np.array([], np.uint16), np.array([7], np.uint16)]
    packed = PackedEvents(np.concatenate(t), np.concatenate(x), [0, 2, 2, 3], n_channels=700)
    assert len(packed) == 3 and packed.nbytes == 3 * 2 + 3 * 2 + 4 * 8   # 4 bytes per spike
    for k, ev in enumerate(packed):
        assert np.array_equal(ev, make_events(t[k], x[k]))
    assert np.array_equal(packed[-1], packed[2]) and packed[0]["t"][1] == 1_400_391
    assert packed.sample_of_event().tolist() == [0, 0, 2]
    ds = EventDataset(packed, [0, 1, 0], ToRaster(0.01, 700, duration=1.5))
    assert ds.events is packed and ds[0][0][140, 699] == 1
    with pytest.raises(DataFormatError, match="channel 699"):
        EventDataset(packed, [0, 1, 0], n_channels=600)


@pytest.mark.parametrize("args, err, match", [
    (([0.1, 0.2], [0, 1], [0, 3]), ShapeError, "offsets must run from 0 to 2"),
    (([0.1, 0.2], [0, 1], [0, 2, 1, 2]), ShapeError, "without decreasing"),
    (([0.1, 0.2], [0], [0, 2]), ShapeError, "one length"),
    (([0.1, np.nan], [0, 1], [0, 2]), NonFiniteError, "1 NaN"),
    (([0.1, -0.2], [0, 1], [0, 2]), DataFormatError, "≥ 0 s"),
    (([0.1, 0.2], [0, 700], [0, 2]), DataFormatError, "0 … 699"),
    (([0.1, 0.2], [0.0, 1.0], [0, 2]), DTypeError, "integers"),
])
def test_packed_events_errors(args, err, match):
    t, x, off = (np.asarray(a) for a in args)
    with pytest.raises(err, match=match):
        PackedEvents(t, x, off, n_channels=700)


# ----------------------------------------------------------------------------- ToRaster


def test_to_raster_golden():
    ev = make_events([0.0, 0.0005, 0.001, 0.0015, 0.0049, 0.002], [0, 0, 1, 1, 2, 0])
    r = ToRaster(dt=1e-3, n_channels=3, T=5)(ev)
    expected = torch.tensor([[2, 0, 0],     # t = 0, 0.5 ms
                             [0, 2, 0],     # t = 1.0 (bin edge → bin 1), 1.5 ms
                             [1, 0, 0],     # t = 2.0 ms
                             [0, 0, 0],
                             [0, 0, 1]],    # t = 4.9 ms
                            dtype=torch.float32)
    assert r.dtype == torch.float32 and torch.equal(r, expected)


def test_to_raster_lengths_and_dropped_count():
    ev = make_events([0.0, 0.0099, 0.010, 0.0301], [0, 1, 1, 1])
    free = ToRaster(dt=1e-3, n_channels=2)
    assert free(ev).shape == (31, 2)                       # ⌊30.1⌋ + 1 bins
    assert free(make_events([], [])).shape == (1, 2)       # an empty sample: one empty bin
    fixed = ToRaster(dt=1e-3, n_channels=2, duration=0.01)
    r = fixed(ev)
    assert r.shape == (10, 2) and r.sum() == 2
    assert fixed.last_dropped == 2 and fixed.dropped == 2  # t = 10 ms (edge) and 30.1 ms
    fixed(ev)
    assert fixed.dropped == 4
    with pytest.raises(ParameterError, match="2 events lie at or past"):
        ToRaster(dt=1e-3, n_channels=2, T=10, strict=True)(ev)


def test_transforms_take_tonic_arrays():
    tonic = tonic_array([500, 1500, 2500], [0, 1, 699], [1, 1, 1])        # all int64, as tonic
    ours = make_events([0.0005, 0.0015, 0.0025], [0, 1, 699])
    to = ToRaster(1e-3, 700, T=3)
    assert torch.equal(to(tonic), to(ours))
    floats = tonic_array([500.0, 1500.0, 2500.0], [0, 1, 699], t_dtype=float)   # float t, no p
    assert torch.equal(to(floats), to(ours))
    assert np.array_equal(Downsample(2)(tonic), Downsample(2)(ours))
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    assert np.array_equal(TimeJitter(1e-4)(floats, rng_a), TimeJitter(1e-4)(ours, rng_b))


def test_to_raster_non_integer_microsecond_dt_agrees_with_float_floor():
    rng = np.random.default_rng(1)
    times = np.sort(rng.uniform(0, 0.05, 500))
    ev = make_events(times, rng.integers(0, 4, 500))
    dt = 1 / 3 * 1e-3
    r = ToRaster(dt=dt, n_channels=4)(ev)
    k = np.floor(ev["t"] / (dt * 1e6)).astype(int)
    ref = np.zeros((k.max() + 1, 4))
    np.add.at(ref, (k, ev["x"]), 1)
    assert torch.equal(r, torch.tensor(ref, dtype=torch.float32))


def test_to_raster_errors():
    with pytest.raises(TimeStepError):
        ToRaster(dt=0, n_channels=2)
    with pytest.raises(ParameterError, match="not both"):
        ToRaster(dt=1e-3, n_channels=2, duration=0.1, T=100)
    with pytest.raises(ParameterError, match="shorter than half"):
        ToRaster(dt=1e-3, n_channels=2, duration=1e-4)
    with pytest.raises(DataFormatError, match="0 … 1"):
        ToRaster(dt=1e-3, n_channels=2)(make_events([0.0], [2]))


# ----------------------------------------------------------------------------- Downsample etc.


def test_downsample_events_and_rasters_agree():
    rng = np.random.default_rng(0)
    ev = make_events(np.sort(rng.uniform(0, 0.02, 300)), rng.integers(0, 700, 300))
    for factor in (1, 2, 3, 7):
        down = Downsample(factor)
        c = down.n_out(700)
        assert c == -(-700 // factor)
        a = ToRaster(1e-3, c, T=20)(down(ev))
        b = down(ToRaster(1e-3, 700, T=20)(ev))
        assert a.shape == (20, c) and torch.equal(a, b)
        assert a.sum() == 300
    assert Downsample(3)(torch.ones(2, 7)).tolist() == [[3, 3, 1]] * 2
    with pytest.raises(ParameterError):
        Downsample(0)


def test_crop_pad_fixed_length():
    x = torch.arange(12, dtype=torch.float32).reshape(6, 2)
    crop = CropTime(4, start=1)
    assert torch.equal(crop(x), x[1:5])
    assert crop.last_dropped == int(x[0].sum() + x[5].sum())          # 1 + 21
    assert torch.equal(PadTime(8)(x)[:6], x) and PadTime(8)(x)[6:].abs().sum() == 0
    assert PadTime(3)(x) is x
    fix = FixedLength(4)
    assert torch.equal(fix(x), x[:4]) and fix.last_dropped == int(x[4:].sum())
    assert fix(x[:2]).shape == (4, 2) and fix.last_dropped == 0
    with pytest.raises(ShapeError, match=r"\[T, C"):
        CropTime(3)(torch.ones(5))
    with pytest.raises(ArgumentTypeError, match="raster tensor"):
        PadTime(3)(np.ones((5, 2)))


# ----------------------------------------------------------------------------- augmentations


def test_time_jitter_statistics_and_dropped_count():
    n = 20000
    ev = make_events(np.full(n, 0.5), np.zeros(n, int))
    jit = TimeJitter(std_s=0.01)
    out = jit(ev, np.random.default_rng(0))
    d = (out["t"] - 500_000) / 1e6
    assert abs(d.mean()) < 4 * 0.01 / np.sqrt(n)
    assert abs(d.std() / 0.01 - 1) < 0.03
    assert (np.diff(out["t"]) >= 0).all()                 # re-sorted by time
    near = make_events(np.full(n, 0.001), np.zeros(n, int))
    out = jit(near, np.random.default_rng(1))
    assert jit.last_dropped == n - out.size
    assert abs(jit.last_dropped / n - 0.4602) < 0.02      # P(N(0,1) < −0.1) = 0.4602
    assert (out["t"] >= 0).all()


def test_time_shift_range_one_offset_per_sample():
    ev = make_events([0.2, 0.3, 0.5], [0, 1, 2])
    shift = TimeShift(max_s=0.1)
    offsets = []
    for seed in range(400):
        out = shift(ev, np.random.default_rng(seed))
        d = out["t"] - ev["t"]
        assert (d == d[0]).all()                           # the same offset for every event
        offsets.append(d[0] / 1e6)
    offsets = np.array(offsets)
    assert offsets.min() >= -0.1 and offsets.max() <= 0.1
    assert offsets.min() < -0.09 and offsets.max() > 0.09  # covers the range
    assert abs(offsets.mean()) < 0.015                     # U(−0.1, 0.1): sd of mean 0.0029
    early = make_events([0.01, 0.2], [0, 1])
    drops = [(shift(early, np.random.default_rng(s)), shift.last_dropped)[1] for s in range(200)]
    assert 0.35 < np.mean(drops) < 0.55                    # P(s < −0.01) = 0.45


def test_channel_shift_range_and_drops():
    ev = make_events(np.zeros(700), np.arange(700))
    cs = ChannelShift(5, n_channels=700)
    seen = set()
    for seed in range(200):
        out = cs(ev, np.random.default_rng(seed))
        k = 700 - out.size                                 # |shift| channels fall off an edge
        assert cs.last_dropped == k and k <= 5
        assert np.array_equal(np.diff(out["x"]), np.ones(out.size - 1))  # still contiguous
        assert out["x"][0] == 0 or out["x"][-1] == 699
        seen.add(k)
    assert seen == {0, 1, 2, 3, 4, 5}
    rng = np.random.default_rng(3)
    one = make_events([0.1], [350])
    shifts = [int(cs(one, rng)["x"][0]) - 350 for _ in range(3000)]
    assert set(shifts) == set(range(-5, 6))
    assert abs(np.mean(shifts)) < 0.2


def test_random_transforms_need_a_generator_and_are_deterministic():
    ev = make_events([0.1, 0.2, 0.3], [0, 1, 2])
    for t in (TimeJitter(0.01), TimeShift(0.05), ChannelShift(2, 3)):
        with pytest.raises(ArgumentTypeError, match=r"numpy\.random\.Generator"):
            t(ev)
        a = t(ev, np.random.default_rng(7))
        b = t(ev, np.random.default_rng(7))
        assert np.array_equal(a, b)
    with pytest.raises(ParameterError):
        TimeJitter(-1.0)


def test_compose_hands_rng_and_sums_drops():
    ev = make_events([0.0005, 0.0015, 0.0095], [0, 1, 2])
    pipe = Compose([TimeShift(0.002), Downsample(2), ToRaster(1e-3, 2, T=10)])
    assert pipe.random
    a = pipe(ev, np.random.default_rng(0))
    b = pipe(ev, np.random.default_rng(0))
    assert torch.equal(a, b) and a.shape == (10, 2)
    assert a.sum() + pipe.last_dropped == 3
    assert not Compose([Downsample(2)]).random
    assert repr(ToRaster(1e-3, 2, T=10)) == "ToRaster(dt=0.001, n_channels=2, T=10, strict=False)"
    assert Compose([lambda e: e["x"]])(ev).tolist() == [0, 1, 2]   # plain callables: no rng
    with pytest.raises(ArgumentTypeError, match=r"transforms\[1\]"):
        Compose([Downsample(2), 3])


# ----------------------------------------------------------------------------- collate, dataset


def test_time_major_collate_shapes_and_padding():
    a = torch.ones(3, 4)
    b = torch.full((5, 4), 2.0)
    x, y = time_major_collate([(a, 1), (b, np.int64(0))])
    assert x.shape == (5, 2, 4) and y.dtype == torch.int64 and y.tolist() == [1, 0]
    assert torch.equal(x[:3, 0], a) and x[3:, 0].abs().sum() == 0     # padded at the end
    assert torch.equal(x[:, 1], b)
    x, _ = time_major_collate([(np.ones((2, 3, 3), np.float32), torch.tensor(2))])
    assert x.shape == (2, 1, 3, 3)


@pytest.mark.parametrize("batch, err, match", [
    ([], ParameterError, "empty"),
    ([(torch.ones(2, 3),)], ArgumentTypeError, "pair"),
    ([(torch.ones(2, 3), 0), (torch.ones(2, 4), 1)], ShapeError, "must agree"),
    ([(torch.ones(2, 3), 0), (torch.ones(2, 3, dtype=torch.float64), 1)], DTypeError, "dtype"),
    ([(torch.ones(2, 3), 0.5)], DTypeError, "label must be an integer"),
    ([([1, 2], 0)], ArgumentTypeError, "tensor"),
])
def test_time_major_collate_errors(batch, err, match):
    with pytest.raises(err, match=match):
        time_major_collate(batch)


def tiny_set(n=12, seed=0):
    rng = np.random.default_rng(seed)
    events = [make_events(np.sort(rng.uniform(0, 0.03, 40)), rng.integers(0, 16, 40))
              for _ in range(n)]
    labels = rng.integers(0, 3, n)
    pipe = Compose([TimeJitter(0.002), ChannelShift(2, 16), ToRaster(1e-3, 16, T=30)])
    return EventDataset(events, labels, pipe, seed=5, n_classes=3)


def batches(ds, workers):
    loader = DataLoader(ds, batch_size=4, shuffle=False, num_workers=workers,
                        collate_fn=time_major_collate)
    return list(loader)


def test_event_dataset_deterministic_per_seed_epoch_index():
    ds = tiny_set()
    assert len(ds) == 12 and ds.n_classes == 3 and ds.sample_shape == (16,)
    assert ds.labels.dtype == np.int64
    x0, y0 = ds[3]
    assert torch.equal(ds[3][0], x0) and y0 == ds.labels[3]
    assert torch.equal(ds[-9][0], x0)
    ds.epoch = 1
    assert not torch.equal(ds[3][0], x0)                  # a new epoch, new augmentation
    ds.set_epoch(0)
    assert torch.equal(ds[3][0], x0)
    manual = ds.transform(ds.events[3], np.random.default_rng([5, 0, 3]))
    assert torch.equal(manual, x0)
    with pytest.raises(ParameterError, match="index"):
        ds[12]
    assert [y for _, y in ds] == ds.labels.tolist()        # iteration stops at len


@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # 1-core affinity
def test_dataloader_two_workers_gives_the_same_batches_as_zero():
    ds = tiny_set()
    ds.set_epoch(2)
    b0 = batches(ds, 0)
    b2 = batches(ds, 2)
    assert len(b0) == len(b2) == 3
    for (x0, y0), (x2, y2) in zip(b0, b2, strict=True):
        assert x0.shape == (30, 4, 16)
        assert torch.equal(x0, x2) and torch.equal(y0, y2)


def test_event_dataset_errors():
    ev = [make_events([0.1], [0]), make_events([0.2], [1])]
    with pytest.raises(ShapeError, match="one label per sample"):
        EventDataset(ev, [0, 1, 2])
    with pytest.raises(DTypeError, match="integers"):
        EventDataset(ev, [0.5, 1.0])
    with pytest.raises(ParameterError, match="≥ 0"):
        EventDataset(ev, [-1, 1])
    with pytest.raises(ParameterError, match="n_classes"):
        EventDataset(ev, [0, 5], n_classes=3)
    with pytest.raises(DataFormatError, match=r"events\[1\]"):
        EventDataset(ev, [0, 1], n_channels=1)
    with pytest.raises(DTypeError, match=r"events\[0\]"):
        EventDataset([np.zeros(3)], [0])
    with pytest.raises(ArgumentTypeError, match="callable"):
        EventDataset(ev, [0, 1], transform=3)
    raw = EventDataset(ev, [0, 1])
    assert raw[1][0] is ev[1] and raw.n_classes == 2
