"""The audio front end (spikeloop.data.afe): band rule, filter centre and Q against the
specification, float vs integer agreement, streaming = one call, mismatch statistics, the
threshold's golden counts and every bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import signal

from spikeloop.chips.xylo.spec import XyloSpec
from spikeloop.data import (
    AFE_CENTRES,
    AFEParams,
    AFEStream,
    afe_counts,
    design_bank,
    impulse_responses,
    measure_bank,
)
from spikeloop.data.afe import upper_edge
from spikeloop.errors import (
    ArgumentTypeError,
    ClippedAudioError,
    ClippedAudioWarning,
    DTypeError,
    NonFiniteError,
    ParameterError,
    ShapeError,
)

SPEC = (40, 54, 77, 137, 203, 290, 428, 674, 1177, 1700, 2226, 3418, 5154, 7884, 11630, 16940)


def tone(f: float, fs: int, seconds: float, dbfs_rms: float) -> np.ndarray:
    t = np.arange(round(seconds * fs)) / fs
    return math.sqrt(2) * 10 ** (dbfs_rms / 20) * np.sin(2 * np.pi * f * t)


def noise(shape: tuple[int, ...], dbfs_rms: float, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(shape) * 10 ** (dbfs_rms / 20)
    return np.clip(x, -0.999, 0.999)  # no clipped samples (tested separately)


# ------------------------------------------------------------------------ the specification

def test_spec_constants_match_the_issue_and_the_chip():
    assert AFE_CENTRES == SPEC
    p = AFEParams()
    assert (p.q, p.bin_width, p.cap, len(p.centres)) == (4.0, 0.01, 15, 16)
    assert p.cap == XyloSpec().input_cap and len(p.centres) == XyloSpec().inputs


@pytest.mark.parametrize("fs,kept", [(16000, 13), (22050, 14), (44100, 16), (48000, 16),
                                     (8000, 11), (101, 1)])
def test_band_rule(fs, kept):
    bands = AFEParams().bands(fs)
    assert bands.tolist() == list(range(kept))
    edges = upper_edge(np.array(SPEC, float), 4.0)
    assert np.all(edges[:kept] < 0.45 * fs) and np.all(edges[kept:] >= 0.45 * fs)
    assert design_bank(fs).channels == kept


def test_upper_edge_is_the_minus_3_db_point_of_the_designed_filter():
    bank = design_bank(48000)
    for c in (0, 8, 15):
        f2 = upper_edge(bank.fc[c], bank.q[c])
        f1 = f2 - bank.fc[c] / bank.q[c]
        # the analogue edges; the digital ones of the design are tested by freqz below
        assert math.isclose(f1 * f2, bank.fc[c] ** 2, rel_tol=1e-12)


@pytest.mark.parametrize("fs", [16000, 48000])
def test_designed_coefficients_have_the_specified_centre_and_bandwidth(fs):
    """Independent of measure_bank: scipy's freqz of the float biquads is 1 at fc, 1/2 in
    power at the two edges fc/Q apart, and peaks at fc."""
    bank = design_bank(fs)
    for c in range(bank.channels):
        b, a = [bank.g[c], 0, -bank.g[c]], [1, bank.a1[c], bank.a2[c]]
        fc, bw = bank.fc[c], bank.fc[c] / bank.q[c]
        _, h = signal.freqz(b, a, worN=[fc, fc * 0.999, fc * 1.001], fs=fs)
        assert abs(abs(h[0]) - 1) < 1e-9 and abs(h[0]) > abs(h[1]) and abs(h[0]) > abs(h[2])
        # the edges f1 < f2, f2 - f1 = bw, both at half power
        _, grid = signal.freqz(b, a, worN=np.linspace(fc - bw, fc + bw, 20001), fs=fs)
        f = np.linspace(fc - bw, fc + bw, 20001)
        above = f[np.abs(grid) ** 2 >= 0.5]
        assert abs((above[-1] - above[0]) / bw - 1) < 1e-3


def test_measured_centre_and_q_match_the_spec_float_48k():
    fc, q = measure_bank(48000)
    np.testing.assert_allclose(fc, SPEC, rtol=1e-3)   # measured: < 0.001 %
    np.testing.assert_allclose(q, 4.0, rtol=2e-3)     # measured: < 0.002 %


@pytest.mark.parametrize("fs", [16000, 48000])
def test_measured_centre_and_q_match_the_spec_integer(fs):
    """Integer filters: within 0.5 % (fc) and 1 % (Q); measured ≤ 0.02 % and ≤ 0.1 %
    (the 40 Hz band at 48 kHz is the worst: its recursion amplifies rounding ~760×)."""
    kept = AFEParams().bands(fs).size
    fc, q = measure_bank(fs, integer=True)
    np.testing.assert_allclose(fc, SPEC[:kept], rtol=5e-3)
    np.testing.assert_allclose(q, 4.0, rtol=1e-2)


def test_too_few_state_bits_are_what_spoils_the_40_hz_band():
    """The design note: with 8 fractional state bits the 40 Hz band's measured Q is > 1 % low
    at 48 kHz; the default 12 bits bring it within 0.2 %."""
    _, q8 = measure_bank(48000, AFEParams(state_bits=8), integer=True)
    assert q8[0] < 4.0 * 0.99
    assert q8[8] == pytest.approx(4.0, rel=2e-3)  # higher bands are fine either way


# ------------------------------------------------------------------------------- mismatch

def test_mismatch_statistics_match_the_specification():
    banks = [design_bank(48000, AFEParams(mismatch=True, seed=s)) for s in range(200)]
    dfc = np.array([bank.fc for bank in banks])
    dq = np.array([bank.q for bank in banks])
    rel_f = dfc / np.array(SPEC) - 1
    rel_q = dq / 4.0 - 1
    for rel, spread in ((rel_f, 0.05), (rel_q, 0.10)):
        assert np.abs(rel).max() <= spread
        assert np.abs(rel).max() > 0.95 * spread          # the range is used
        sigma = spread / math.sqrt(3)                     # uniform in ±spread
        assert abs(rel.mean()) < 4 * sigma / math.sqrt(rel.size)
        assert rel.std() == pytest.approx(sigma, rel=0.05)
    # independent across bands: correlation of neighbouring bands ≈ 0
    assert abs(np.corrcoef(rel_f[:, 3], rel_f[:, 4])[0, 1]) < 0.2


def test_mismatch_is_seeded_independent_of_fs_and_what_the_filters_do():
    p = AFEParams(mismatch=True, seed=7)
    b48, b16 = design_bank(48000, p), design_bank(16000, p)
    assert np.array_equal(b48.fc[:13], b16.fc) and np.array_equal(b48.q[:13], b16.q)
    assert np.array_equal(design_bank(48000, p).fc, b48.fc)
    assert not np.array_equal(design_bank(48000, AFEParams(mismatch=True, seed=8)).fc, b48.fc)
    assert np.array_equal(design_bank(48000).fc, SPEC)
    fc, q = measure_bank(16000, p)
    np.testing.assert_allclose(fc, b16.fc, rtol=1e-3)
    np.testing.assert_allclose(q, b16.q, rtol=2e-3)
    r = afe_counts(noise((16000,), -26), 16000, p)
    assert np.array_equal(r.fc, b16.fc) and np.array_equal(r.q, b16.q)


# ------------------------------------------------------------------- threshold, cap, golden

@pytest.mark.parametrize("integer", [False, True])
def test_tone_at_minus_26_dbfs_gives_five_spikes_per_bin(integer):
    """Golden count from the module's formula 0.01·(2√2/π)·10^(L/20)/θ = 5.00 at −26 dBFS."""
    fs = 16000
    expected = 0.01 * (2 * math.sqrt(2) / math.pi) * 10 ** (-26 / 20) / 9e-5
    assert expected == pytest.approx(5.0, abs=0.02)
    bank = design_bank(fs)
    for c in (3, 9, 12):
        counts = afe_counts(tone(bank.fc[c], fs, 1.0, -26), fs, integer=integer).counts
        assert counts[30:, c].mean() == pytest.approx(expected, abs=0.05)
        assert counts[30:, c].max() <= 6
        assert counts[30:].sum(0).argmax() == c


def test_loud_tone_is_capped_and_the_caps_are_counted():
    fs = 16000
    x = tone(design_bank(fs).fc[9], fs, 0.5, -6)
    r = afe_counts(x, fs)
    assert r.counts.max() == 15
    uncapped = AFEStream(fs, AFEParams(cap=1000))(x)
    assert r.n_capped == int((uncapped > 15).sum()) > 0
    assert np.array_equal(r.counts, np.minimum(uncapped, 15))


def test_speech_like_sound_at_minus_26_dbfs_gives_a_few_spikes_in_active_bands():
    fs = 16000
    t = np.arange(fs) / fs
    x = np.zeros(fs)
    for h in range(1, 33):  # a vowel: 120 Hz harmonics shaped by formants at 700/1200/2500 Hz
        f = 120 * h
        x += sum(1 / (1 + ((f - F) / (0.1 * F)) ** 2) for F in (700, 1200, 2500)) * \
            np.sin(2 * np.pi * f * t + h)
    x *= 1 + 0.5 * np.sin(2 * np.pi * 4 * t)
    x *= 10 ** (-26 / 20) / np.sqrt(np.mean(x ** 2))
    r = afe_counts(x, fs)
    means = r.counts.mean(0)
    assert r.n_capped == 0 and r.counts.max() <= 6
    assert 1.0 <= means.max() <= 4.0 and (means > 0.5).sum() >= 3


# -------------------------------------------------------------- the integer model's equations

def reference_integer(x: np.ndarray, fs: int, channels: list[int]) -> np.ndarray:
    """The module docstring's integer equations, one sample at a time with Python ints."""
    p, bank = AFEParams(), design_bank(fs)
    n_lsb, s, f = p.adc_bits, p.state_bits, p.coef_bits
    full = 2 ** (n_lsb - 1)
    xs = [max(-full, min(full - 1, math.floor(v * full + 0.5))) for v in x]
    per_bin = round(fs * p.bin_width)
    out = np.zeros((len(x) // per_bin, len(channels)), dtype=np.int64)
    for j, c in enumerate(channels):
        g, a1, a2 = int(bank.G[c]), int(bank.A1[c]), int(bank.A2[c])
        x1 = x2 = y1 = y2 = e = v = 0
        for n, xn in enumerate(xs):
            acc = g * (xn - x2) * 2 ** s - a1 * y1 - a2 * y2 + e
            y = acc >> f
            e = acc - y * 2 ** f
            x2, x1, y2, y1 = x1, xn, y1, y
            v += abs(y)
            while v >= bank.theta_int:
                v -= bank.theta_int
                if n // per_bin < out.shape[0]:
                    out[n // per_bin, j] += 1
    return np.minimum(out, p.cap)


def test_integer_model_is_its_documented_equations():
    fs = 16000
    x = noise((1600,), -12, seed=3) + tone(1000, fs, 0.1, -20)
    ref = reference_integer(x, fs, [0, 7, 12])
    got = afe_counts(x, fs, integer=True).counts[:, [0, 7, 12]]
    assert ref.sum() > 50
    assert np.array_equal(got, ref)


def test_integer_filter_has_no_dead_band_offset():
    """After a loud burst the integer filters settle to silence: no DC offset is counted."""
    fs = 48000
    x = np.concatenate([noise((fs // 4,), -10, seed=1), np.zeros(fs)])
    counts = afe_counts(x, fs, integer=True).counts
    assert counts[:25].sum() > 100
    assert counts[50:].sum() == 0


# ----------------------------------------------------------------- float vs integer models

@pytest.mark.parametrize("fs", [16000, 48000])
def test_float_and_integer_models_agree(fs):
    """Per bin and channel |float − integer| ≤ 1, ≥ 99.5 % of bins equal, and the running
    total per channel never differs by more than 1 (measured: 99.85–100 % equal, running
    difference ≤ 1) for noise at −50, −26 and −12 dBFS, a log chirp and tones."""
    t = np.arange(fs) / fs
    sounds = [noise((2, fs), -50, 1), noise((2, fs), -26, 2), noise((2, fs), -12, 3),
              np.stack([0.1 * signal.chirp(t, 30, 1, 0.45 * fs, method="logarithmic"),
                        tone(440, fs, 1, -20) + tone(3000, fs, 1, -30)])]
    for x in sounds:
        a = afe_counts(x, fs).counts
        b = afe_counts(x, fs, integer=True).counts
        d = a - b
        assert np.abs(d).max() <= 1
        assert (d == 0).mean() >= 0.995
        assert np.abs(np.cumsum(d, axis=0)).max() <= 1
    assert a.sum() > 1000


# ------------------------------------------------------------------------------- streaming

@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("fs", [16000, 22050])
def test_stream_equals_one_call(integer, fs):
    """Random chunk sizes (0, 1, shorter than a bin, not multiples of one) give the one-call
    counts bit for bit; the one call is longer than the stream's internal block (8192)."""
    x = noise((3, fs), -20, seed=4)
    one = afe_counts(x, fs, integer=integer)
    rng = np.random.default_rng(5)
    for _ in range(2):
        stream = AFEStream(fs, integer=integer)
        outs, i = [], 0
        while i < x.shape[1]:
            n = int(rng.choice([0, 1, 7, 100, 159, 220, 221, 333, 1000]))
            outs.append(stream(x[:, i:i + n]))
            i += n
        got = np.concatenate(outs)
        assert got.dtype == np.int64 and got.shape == one.counts.shape
        assert np.array_equal(got, one.counts)          # bit-exact, both models
        stream.reset()
        assert np.array_equal(stream(x), one.counts)     # reset: a fresh stream


def test_bins_follow_the_sample_grid_at_22050_hz():
    """220.5 samples per bin: bin k is samples ceil(220.5 k) ≤ n < ceil(220.5 (k+1))."""
    fs = 22050
    for n, bins, tail in [(220, 0, 220), (221, 1, 0), (441, 2, 0), (22050, 100, 0),
                          (22060, 100, 10)]:
        r = afe_counts(noise((n,), -30), fs)
        assert (r.counts.shape[0], r.n_tail) == (bins, tail)


def test_batch_items_are_independent_and_shapes_are_time_major():
    fs = 16000
    x = noise((3, 1700), -20, seed=6)
    batched = afe_counts(x, fs, integer=True).counts
    assert batched.shape == (10, 3, 13)
    for b in range(3):
        single = afe_counts(x[b], fs, integer=True).counts
        assert single.shape == (10, 13) and np.array_equal(single, batched[:, b])
    as_tensor = afe_counts(torch.from_numpy(x.astype(np.float32)), fs).counts
    assert np.array_equal(as_tensor, afe_counts(x.astype(np.float32), fs).counts)


def test_float_stream_state_matches_one_call():
    fs = 16000
    x = noise((2, 5000), -20)
    a, b = AFEStream(fs), AFEStream(fs)
    a(x)
    for i in range(0, 5000, 37):
        b(x[:, i:i + 37])
    np.testing.assert_allclose(a._y, b._y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(a._v, b._v, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------ bad input

def test_nan_and_inf_samples_name_the_first_index():
    x = noise((2, 3000), -20)
    x[1, 1234] = np.nan
    x[1, 2000] = np.inf
    with pytest.raises(NonFiniteError, match=r"2 NaN or infinite.*batch 1, sample 1234"):
        afe_counts(x, 16000)
    with pytest.raises(NonFiniteError, match="sample 1234"):
        AFEStream(16000, integer=True)(x[1])


@pytest.mark.parametrize("integer", [False, True])
def test_clipped_audio_is_reported_never_silent(integer):
    fs = 16000
    x = tone(1000, fs, 0.2, -3) * 1.5  # peaks at 1.06 full scale
    n_clip = int((np.abs(x) >= 1).sum())
    with pytest.warns(ClippedAudioWarning, match=rf"{n_clip} of 3200 samples"):
        r = afe_counts(x, fs, integer=integer)
    assert r.n_clipped == n_clip > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = afe_counts(np.clip(x, -0.99999999, 0.99999999), fs, integer=integer)
    assert np.abs(r.counts.astype(int) - same.counts).max() <= 1  # saturated at ±1
    with pytest.raises(ClippedAudioError, match="full scale"):
        afe_counts(x, fs, integer=integer, on_clip="error")
    stream = AFEStream(fs, integer=integer)
    with pytest.warns(ClippedAudioWarning):
        stream(x[:1600])
        stream(x[1600:])
    assert stream.n_clipped == n_clip


@pytest.mark.parametrize("fs", [0, -16000, float("nan"), float("inf"), 22050.5])
def test_bad_sample_rate(fs):
    with pytest.raises(ParameterError, match="fs"):
        afe_counts(np.zeros(1000), fs)


def test_sample_rate_too_low_and_stream_rate_change():
    with pytest.raises(ParameterError, match=r"fs = 100 Hz keeps no band.*fs > 100\.7"):
        afe_counts(np.zeros(1000), 100)
    with pytest.raises(ArgumentTypeError, match="fs"):
        afe_counts(np.zeros(1000), "16k")
    stream = AFEStream(16000)
    stream(np.zeros(100), fs=16000)
    with pytest.raises(ParameterError, match="22050 Hz differs from the stream's 16000 Hz"):
        stream(np.zeros(100), fs=22050)


def test_bad_dtype_shape_and_type():
    with pytest.raises(DTypeError, match=r"int16.*32768"):
        afe_counts(np.zeros(1000, dtype=np.int16), 16000)
    with pytest.raises(DTypeError):
        afe_counts(torch.zeros(1000, dtype=torch.int32), 16000)
    with pytest.raises(ShapeError, match=r"\[n\] or \[B, n\]"):
        afe_counts(np.zeros((2, 2, 1000)), 16000)
    with pytest.raises(ArgumentTypeError, match="NumPy array or a torch tensor"):
        afe_counts([0.0] * 1000, 16000)
    stream = AFEStream(16000)
    stream(np.zeros((2, 100)))
    with pytest.raises(ShapeError, match=r"continue a stream of chunks of shape \[2, n\]"):
        stream(np.zeros((3, 100)))
    with pytest.raises(ShapeError):
        stream(np.zeros(100))
    with pytest.raises(ParameterError, match="on_clip"):
        AFEStream(16000, on_clip="ignore")


@pytest.mark.parametrize("kwargs,match", [
    ({"q": 0}, "q"), ({"cap": 0}, "cap"), ({"threshold": -1}, "threshold"),
    ({"centres": (100.0, 50.0)}, "increasing"), ({"fc_spread": 0.5}, "fc_spread"),
    ({"coef_bits": 36}, "62"), ({"bin_width": 0}, "bin_width"), ({"seed": -1}, "seed"),
])
def test_bad_parameters(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        AFEParams(**kwargs)


def test_bad_parameter_types():
    with pytest.raises(ArgumentTypeError):
        AFEParams(mismatch=1)
    with pytest.raises(ArgumentTypeError):
        design_bank(16000, {"q": 4})
    with pytest.raises(ArgumentTypeError):
        impulse_responses(16000, n=10.5)
