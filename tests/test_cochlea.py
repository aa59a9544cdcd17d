"""spikeloop.data.cochlea: place map, filter bank levels, tonotopy, adaptation, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spikeloop.data import cochlea as co
from spikeloop.errors import ArgumentTypeError, NonFiniteError, ParameterError, ShapeError

FS = 22050.0


def tone(freq: float, level_db: float, dur: float, fs: float = FS) -> np.ndarray:
    """A sine whose RMS is ``level_db`` dB SPL."""
    t = np.arange(round(dur * fs)) / fs
    return math.sqrt(2) * co.P_REF * 10 ** (level_db / 20) * np.sin(2 * np.pi * freq * t)


def test_greenwood_golden_values_and_inverse() -> None:
    assert co.greenwood(0.0) == pytest.approx(165.4 * 0.12)
    assert co.greenwood(1.0) == pytest.approx(165.4 * (10**2.1 - 0.88))
    f = np.array([100.0, 440.0, 1000.0, 8000.0])
    np.testing.assert_allclose(co.greenwood(co.greenwood_place(f)), f, rtol=1e-12)
    assert co.erb(1000.0) == pytest.approx(24.7 + 1000.0 / 9.265, rel=1e-3)  # G&M 1990 form


def test_centre_frequencies_even_in_place() -> None:
    fc = co.centre_frequencies()
    assert fc.shape == (700,) and fc[0] == 100.0 and fc[-1] == 8000.0
    steps = np.diff(co.greenwood_place(fc))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-6)
    assert np.all(np.diff(fc) > 0)


def test_kappa_is_mean_of_rectified_compressed_cosine() -> None:
    phi = (np.arange(200000) + 0.5) / 200000 * 2 * np.pi
    for nu in (0.3, 1.0):
        assert co._kappa(nu) == pytest.approx(np.mean(np.maximum(np.cos(phi), 0) ** nu),
                                              rel=1e-6)
    assert co._kappa(1.0) == pytest.approx(1 / math.pi)


def test_hair_cell_level_matches_gammatone_gain() -> None:
    """Steady hair-cell output = κ (P |H(f)| / p0)^ν with |H| = (1 + ((f-fc)/b)²)^(-n/2)."""
    p = co.CochleaParams()
    freq, level = 1234.0, 60.0
    h, step = co.hair_cell(tone(freq, level, 0.3), FS, p)
    assert step == pytest.approx(11 / FS)
    fc = co.centre_frequencies()
    b = p.bw_factor * co.erb(fc)
    amp = math.sqrt(2) * co.P_REF * 10 ** (level / 20)
    mag = (1 + ((freq - fc) / b) ** 2) ** (-p.order / 2)
    want = co._kappa(p.nu) * (amp * mag / co.P_REF) ** p.nu
    mid = h[round(0.15 / step)]
    near = np.abs(fc - freq) < 2 * b  # channels where the band-limited filter is exact
    np.testing.assert_allclose(mid[near], want[near], rtol=0.02)


@pytest.mark.parametrize("freq", [250.0, 1000.0, 4000.0])
def test_pure_tone_excites_the_nearest_channels(freq: float) -> None:
    times, units = co.cochlea_spikes(tone(freq, 70.0, 0.15), FS)
    fc = co.centre_frequencies()
    counts = np.bincount(units, minlength=700)
    nearest = int(np.argmin(np.abs(fc - freq)))
    best = int(np.argmax(counts))
    assert abs(best - nearest) <= 3
    # the excitation stays within a few ERB of the tone
    b = co.erb(fc)
    assert counts[np.abs(fc - freq) > 4 * b].sum() == 0
    assert times.min() >= 0 and times.max() < 0.15 + 0.1


def test_silence_and_quiet_noise_give_no_spikes() -> None:
    times, units = co.cochlea_spikes(np.zeros(4000), FS)
    assert times.size == 0 and units.dtype == np.int64
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(8000) * co.P_REF * 10 ** (30 / 20)  # 30 dB SPL white noise
    assert co.cochlea_spikes(noise, FS)[0].size == 0
    assert co.spectrogram_spikes(noise, FS)[0].size == 0


def test_adaptation_lowers_the_rate_to_the_lif_prediction() -> None:
    """Rate over the first 30 ms > 2× the sustained rate, and the sustained rate of the best
    channel matches 1/(t_ref + τ_m ln(γu/(γu-1))) with u = (1 - g_f - g_s)(h - θ)."""
    p = co.CochleaParams()
    sound = tone(1000.0, 70.0, 0.6)
    times, units = co.cochlea_spikes(sound, FS, p)
    h, step = co.hair_cell(sound, FS, p)
    c = int(np.argmax(np.bincount(units, minlength=700)))
    t = times[units == c]
    onset = np.sum(t < 0.03) / 0.03
    late = np.sum((t >= 0.45) & (t < 0.55)) / 0.1
    assert onset > 2 * late > 0
    theta = co._kappa(p.nu) * 10 ** (p.nu * p.threshold_db / 20)
    drive = p.gain * (1 - p.g_fast - p.g_slow) * (h[round(0.5 / step), c] - theta)
    predicted = 1 / (p.t_ref + p.tau_m * math.log(drive / (drive - 1)))
    assert late == pytest.approx(predicted, rel=0.15)


def test_louder_gives_more_spikes_and_output_is_deterministic() -> None:
    quiet = co.cochlea_spikes(tone(500.0, 55.0, 0.1), FS)
    loud = co.cochlea_spikes(tone(500.0, 75.0, 0.1), FS)
    again = co.cochlea_spikes(tone(500.0, 75.0, 0.1), FS)
    assert loud[0].size > quiet[0].size
    np.testing.assert_array_equal(loud[0], again[0])
    np.testing.assert_array_equal(loud[1], again[1])
    assert np.all(np.diff(loud[0]) >= 0)


def test_spectrogram_level_calibration() -> None:
    """A sine at L dB SPL reads L at the nearest channel: spikes at threshold L - 0.5, none
    at L + 0.1; frame times are multiples of the hop."""
    fs, level = 20000.0, 60.0
    sound = tone(1000.0, level, 0.2, fs)  # 1000 Hz = bin 25 of the 500-point frame
    times, units = co.spectrogram_spikes(sound, fs, threshold_db=level - 0.5)
    fc = co.centre_frequencies()
    assert int(np.argmin(np.abs(fc - 1000.0))) in set(units.tolist())
    assert np.all(np.abs(fc[units] - 1000.0) < 60.0)
    np.testing.assert_allclose(times / 0.01, np.round(times / 0.01), atol=1e-9)
    assert co.spectrogram_spikes(sound, fs, threshold_db=level + 0.1)[0].size == 0


def test_bad_inputs_raise_specific_errors() -> None:
    with pytest.raises(ShapeError, match="signal must be 1-d"):
        co.cochlea_spikes(np.zeros((2, 100)), FS)
    with pytest.raises(NonFiniteError, match="1 non-finite"):
        co.cochlea_spikes(np.array([0.0, np.nan, 0.0]), FS)
    with pytest.raises(ArgumentTypeError, match="signal must be a NumPy array"):
        co.cochlea_spikes([0.0, 1.0], FS)
    with pytest.raises(ParameterError, match="Nyquist"):
        co.cochlea_spikes(np.zeros(100), 12000.0)
    with pytest.raises(ParameterError, match="fs must be"):
        co.cochlea_spikes(np.zeros(100), 0.0)
    with pytest.raises(ParameterError, match=r"dt .* at least 2 samples"):
        co.cochlea_spikes(np.zeros(100), FS, co.CochleaParams(dt=1e-5))
    with pytest.raises(ParameterError, match=r"g_fast \+ g_slow must be < 1"):
        co.CochleaParams(g_fast=0.6, g_slow=0.5)
    with pytest.raises(ParameterError, match=r"CochleaParams.tau_m"):
        co.CochleaParams(tau_m=0.0)
    with pytest.raises(ParameterError, match=r"CochleaParams.f_max"):
        co.CochleaParams(f_min=500.0, f_max=400.0)
    with pytest.raises(ArgumentTypeError, match=r"CochleaParams.n_channels"):
        co.CochleaParams(n_channels=7.0)
    with pytest.raises(ArgumentTypeError, match="params must be a CochleaParams"):
        co.cochlea_spikes(np.zeros(100), FS, {"dt": 1e-3})
    with pytest.raises(ParameterError, match="window"):
        co.spectrogram_spikes(np.zeros(100), FS, window=1e-5)
    with pytest.raises(ParameterError, match="Nyquist"):
        co.spectrogram_spikes(np.zeros(100), 8000.0)
    with pytest.raises(ParameterError, match="n_channels"):
        co.centre_frequencies(0)
