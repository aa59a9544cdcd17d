r"""An inner-ear front end: sound pressure → 700 auditory-nerve spike trains (SHD-style).

The Heidelberg spiking data sets (Cramer et al. 2022) were made with a hydrodynamic
basilar-membrane model, Meddis inner hair cells and bushy cells. This module is a cheaper,
documented stand-in with the same output format (700 channels, spike times in seconds). Its
stages, for channel ``c`` (``c = 0`` is the apex, the lowest frequency):

1. **Place map** (Greenwood 1990, human constants :math:`A = 165.4` Hz, :math:`a = 2.1`,
   :math:`k = 0.88`): centre frequencies
   :math:`f_c = A\,(10^{a x_c} - k)` at cochlear places :math:`x_c` (fraction of the length
   from the apex) spaced evenly between the places of ``f_min`` and ``f_max``.
2. **Basilar membrane** — a 4th-order complex gammatone filter per channel (impulse response
   :math:`g_c(t) = t^{n-1} e^{-2\pi b_c t} e^{i 2\pi f_c t}`, :math:`n = 4`), bandwidth
   :math:`b_c = 1.019\,\mathrm{ERB}(f_c)`, :math:`\mathrm{ERB}(f) = 24.7\,(4.37 f/1000 + 1)`
   Hz (Glasberg & Moore 1990). Its frequency response, normalised to gain 1 at :math:`f_c`, is

   .. math:: H_c(f) = \bigl(1 + i (f - f_c)/b_c\bigr)^{-n},

   applied in the frequency domain to the one-sided spectrum of the sound, so the output
   :math:`z_c(t)` is the analytic signal of the filtered sound (:math:`\operatorname{Re} z_c`
   the basilar-membrane motion, :math:`|z_c|` its Hilbert envelope). The output is computed
   directly at the model's step :math:`\Delta t = D/f_s` (:math:`D = \mathrm{round}(f_s
   \cdot dt)`) from the :math:`M = N/D` spectrum bins nearest :math:`f_c` (a band
   :math:`1/\Delta t` Hz wide), i.e. the filter is band-limited to :math:`f_c \pm 1/(2\Delta t)`.
3. **Inner hair cell** — half-wave rectification, compression with exponent :math:`\nu`
   and the low-pass of the hair-cell membrane, which removes the carrier: the output is the
   mean of the compressed, rectified carrier over a cycle,
   :math:`h_c = \kappa_\nu\,(|z_c| / p_0)^{\nu}`,
   :math:`\kappa_\nu = \Gamma(\tfrac{\nu+1}{2}) / (2\sqrt{\pi}\,\Gamma(\tfrac{\nu}{2}+1))`
   (the mean of :math:`\max(\cos\phi, 0)^\nu`). :math:`p_0 = 20\,\mu`\ Pa: the sound is in
   pascals (0 dB SPL = 20 µPa). This model has no phase locking: the fine structure of
   low-frequency channels is not kept (real fibres follow it up to ~1–4 kHz), a
   simplification against Cramer et al.'s Meddis hair cells.
4. **Threshold and adaptation** — the part above the threshold
   :math:`\theta = \kappa_\nu\,10^{\nu L_\theta/20}` (a carrier of amplitude
   :math:`p_0 10^{L_\theta/20}` at :math:`f_c`, i.e. a tone of :math:`L_\theta - 3` dB SPL),
   :math:`u_0 = \max(h - \theta, 0)`, minus a fast and a slow adapting component (rapid and
   short-term adaptation of auditory-nerve fibres):
   :math:`a_i[k] = e_i\,a_i[k-1] + (1 - e_i)\,u_0[k-1]`, :math:`e_i = e^{-\Delta t/\tau_i}`,
   :math:`u = \max(u_0 - g_f a_f - g_s a_s, 0)`; a sustained input settles at
   :math:`(1 - g_f - g_s)\,u_0`.
5. **Spike generation** — a leaky integrate-and-fire neuron per channel,
   :math:`\tau_m \dot{v} = -v + \gamma\,u`, integrated as
   :math:`v[k] = e_m v[k-1] + (1 - e_m)\gamma u[k]`; a spike when :math:`v \ge 1`, then
   :math:`v \leftarrow 0` and :math:`v` held at 0 for :math:`t_\mathrm{ref}`. A spike's time
   is the time :math:`k\,\Delta t` of its step. A constant drive fires at
   :math:`1/(t_\mathrm{ref} + \tau_m \ln\frac{\gamma u}{\gamma u - 1})` for
   :math:`\gamma u > 1`, never below.

Parameters (defaults, :class:`CochleaParams`):

===============  ===========  ===========================================================
name             default      meaning
===============  ===========  ===========================================================
n_channels       700          channels (SHD: 700)
f_min, f_max     100, 8000    Hz, lowest and highest centre frequency
order            4            gammatone order :math:`n`
bw_factor        1.019        :math:`b_c / \mathrm{ERB}(f_c)`
dt               0.5e-3       s, model step (spike-time resolution)
nu               0.3          hair-cell compression exponent
tau_fast         5e-3         s, rapid adaptation
tau_slow         60e-3        s, short-term adaptation
g_fast, g_slow   0.5, 0.3     adaptation strengths (sum < 1)
threshold_db     40           dB SPL, hair-cell threshold :math:`L_\theta`
gain             2.0          drive per hair-cell unit (:math:`\gamma`)
tau_m            5e-3         s, membrane time constant
t_ref            1e-3         s, refractory period
===============  ===========  ===========================================================

Sources: the Greenwood constants are the human values quoted with the function
:math:`F = A(10^{ax} - k)` (e.g. probsee.com/p/greenwood_function; PMC6617526 table 1); the
gammatone impulse response and the Glasberg & Moore (1990) bandwidth
``ERB = 24.7 + f/9.265`` (= 24.7 (4.37 f/1000 + 1)) with the 4th-order factor 1.0183 are from
the CASP model manual (caspmodel.sourceforge.net, ``gammatone``/``audfiltbw``) and the
factor 1.019 from AudioLazy's ``gammatone_erb_constants`` (Holdsworth et al. 1988).
Recalled, not checked here: the compression exponent 0.2–0.3 of the basilar membrane,
rapid/short-term adaptation time constants of a few ms and some tens of ms (Westerman &
Smith 1984), and the loss of phase locking above ~1–4 kHz. The hair-cell threshold, gain and
adaptation strengths were chosen here so that speech at 65 dB SPL gives a few thousand spikes
per utterance (mean ≈ 5500 over the synthesised digits), a sustained tone's rate adapts to
about a half of its onset rate and silence or 45 dB white noise none.

The baseline :func:`spectrogram_spikes` is what the front end is measured against: STFT
magnitudes at the same centre frequencies, a spike in every frame where the level exceeds a
threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from spikeloop.checks import check_int, check_real, check_type
from spikeloop.errors import NonFiniteError, ParameterError, ShapeError

__all__ = [
    "P_REF",
    "CochleaParams",
    "centre_frequencies",
    "cochlea_spikes",
    "erb",
    "greenwood",
    "greenwood_place",
    "hair_cell",
    "spectrogram_spikes",
]

P_REF = 20e-6
"""Reference sound pressure in pascals (0 dB SPL)."""

GREENWOOD_HUMAN = (165.4, 2.1, 0.88)
"""Greenwood's human constants ``(A [Hz], a, k)``: ``f = A (10^(a x) - k)``."""


def greenwood(x: np.ndarray | float) -> np.ndarray:
    """Characteristic frequency (Hz) at cochlear place ``x`` (0 = apex, 1 = base):
    ``f = 165.4 (10^(2.1 x) - 0.88)``.

    Example:
        >>> round(float(greenwood(1.0)))
        20677
    """
    a_hz, a, k = GREENWOOD_HUMAN
    return a_hz * (10.0 ** (a * np.asarray(x, dtype=np.float64)) - k)


def greenwood_place(f: np.ndarray | float) -> np.ndarray:
    """The inverse of :func:`greenwood`: place ``x = log10(f/165.4 + 0.88) / 2.1``."""
    a_hz, a, k = GREENWOOD_HUMAN
    return np.log10(np.asarray(f, dtype=np.float64) / a_hz + k) / a


def erb(f: np.ndarray | float) -> np.ndarray:
    """Equivalent rectangular bandwidth in Hz (Glasberg & Moore 1990):
    ``ERB(f) = 24.7 (4.37 f / 1000 + 1)``."""
    return 24.7 * (4.37 * np.asarray(f, dtype=np.float64) / 1000.0 + 1.0)


def centre_frequencies(n_channels: int = 700, f_min: float = 100.0,
                       f_max: float = 8000.0) -> np.ndarray:
    """Centre frequencies (Hz, ascending) of ``n_channels`` places spaced evenly along the
    cochlea between the places of ``f_min`` and ``f_max`` (both included).

    Raises:
        ParameterError: ``n_channels < 1`` or not ``0 < f_min < f_max``.
    """
    n = check_int(n_channels, "n_channels", 1)
    f_min = check_real(f_min, "f_min", 0.0, low_open=True)
    f_max = check_real(f_max, "f_max", f_min, low_open=True)
    x = np.linspace(greenwood_place(f_min), greenwood_place(f_max), n)
    out = greenwood(x)
    out[0], out[-1] = f_min, f_max  # exact end points (the round trip is exact to ~1e-12)
    return out


@dataclass(frozen=True)
class CochleaParams:
    """Parameters of :func:`cochlea_spikes` (the table in the module docstring; seconds, Hz).

    Raises:
        ParameterError: a value outside its range (checked on construction).
    """

    n_channels: int = 700
    f_min: float = 100.0
    f_max: float = 8000.0
    order: int = 4
    bw_factor: float = 1.019
    dt: float = 0.5e-3
    nu: float = 0.3
    tau_fast: float = 5e-3
    tau_slow: float = 60e-3
    g_fast: float = 0.5
    g_slow: float = 0.3
    threshold_db: float = 40.0
    gain: float = 2.0
    tau_m: float = 5e-3
    t_ref: float = 1e-3

    def __post_init__(self) -> None:
        check_int(self.n_channels, "CochleaParams.n_channels", 1)
        check_int(self.order, "CochleaParams.order", 1, 8)
        check_real(self.f_min, "CochleaParams.f_min", 0.0, low_open=True)
        check_real(self.f_max, "CochleaParams.f_max", self.f_min, low_open=True)
        for name in ("bw_factor", "dt", "nu", "tau_fast", "tau_slow", "gain", "tau_m"):
            check_real(getattr(self, name), f"CochleaParams.{name}", 0.0, low_open=True)
        for name in ("g_fast", "g_slow", "threshold_db", "t_ref"):
            check_real(getattr(self, name), f"CochleaParams.{name}", 0.0)
        if self.g_fast + self.g_slow >= 1.0:
            raise ParameterError(f"CochleaParams: g_fast + g_slow must be < 1 (a sustained "
                                 f"input must keep a positive drive), got "
                                 f"{self.g_fast} + {self.g_slow}")

    def as_dict(self) -> dict[str, float]:
        """The parameters by name."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _signal(signal: np.ndarray, fs: float, who: str) -> tuple[np.ndarray, float]:
    check_type(signal, who, np.ndarray, "a NumPy array")
    if signal.ndim != 1:
        raise ShapeError(f"{who} must be 1-d (samples), got shape {signal.shape}")
    if signal.dtype.kind not in "iuf":
        raise ParameterError(f"{who} must hold real numbers, got {signal.dtype}")
    x = signal.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise NonFiniteError(f"{who} holds {int(np.sum(~np.isfinite(x)))} non-finite samples")
    return x, check_real(fs, "fs", 0.0, low_open=True)


def _kappa(nu: float) -> float:
    """Mean of ``max(cos θ, 0)^ν`` over a cycle."""
    return math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2 + 1)) / (2 * math.sqrt(math.pi))


def hair_cell(signal: np.ndarray, fs: float,
              params: CochleaParams | None = None) -> tuple[np.ndarray, float]:
    """Stages 1–3 of the module docstring: the compressed hair-cell output ``h [T, C]``
    (float32, hair-cell units) at the model step, and that step ``Δt = D/fs`` in seconds.

    ``signal`` is the sound pressure in pascals sampled at ``fs`` Hz. ``T = ceil(N/D)``
    with ``N`` the signal's length padded by the slowest filter's ring-down (15 time
    constants ``1/(2π b)`` of the lowest channel).

    Raises:
        ShapeError: ``signal`` not 1-d. NonFiniteError: NaN/inf samples.
        ParameterError: ``fs`` not positive, ``f_max`` at or above the Nyquist frequency,
            ``dt`` shorter than ``2/fs``.
    """
    p = CochleaParams() if params is None else check_type(params, "params", CochleaParams,
                                                           "a CochleaParams")
    x, fs = _signal(signal, fs, "signal")
    if p.f_max >= fs / 2:
        raise ParameterError(f"f_max ({p.f_max} Hz) must lie below the Nyquist frequency "
                             f"fs/2 = {fs / 2} Hz")
    d = round(fs * p.dt)
    if d < 2:
        raise ParameterError(f"dt ({p.dt} s) must be at least 2 samples (2/fs = {2 / fs} s)")
    fc = centre_frequencies(p.n_channels, p.f_min, p.f_max)
    b = p.bw_factor * erb(fc)
    ring = 15.0 / (2 * math.pi * b[0])
    m = math.ceil((len(x) + ring * fs) / d)
    m += m % 2
    n = m * d
    spec = np.fft.rfft(x, n)  # bins k·fs/n, k = 0 … n/2
    df = fs / n
    # channel c: the M bins k_c - M/2 … k_c + M/2 - 1 around k_c = round(fc/df), placed at
    # ifft position (k - k_c) mod M; z = 2·ifft·(M/n) is the analytic signal shifted by k_c bins
    k_c = np.round(fc / df).astype(np.int64)
    offs = np.arange(m) - m // 2
    k = k_c[:, None] + offs[None, :]  # [C, M]
    valid = (k >= 1) & (k <= n // 2)  # positive frequencies only
    w = 1.0 / (1.0 + 1j * ((k * df - fc[:, None]) / b[:, None])).astype(np.complex64)
    gain = w
    for _ in range(p.order - 1):
        gain = gain * w  # (1 + i(f - fc)/b)^(-order)
    buf = np.where(valid, spec.astype(np.complex64)[np.clip(k, 0, n // 2)] * gain, 0)
    buf = np.fft.ifftshift(buf, axes=1)  # offset 0 at position 0
    env = np.abs(np.fft.ifft(buf, axis=1)) * (2.0 * m / n)  # [C, T] Hilbert envelope, Pa
    out = (_kappa(p.nu) * (env.T / P_REF) ** p.nu).astype(np.float32)
    return out, d / fs


def cochlea_spikes(signal: np.ndarray, fs: float,
                   params: CochleaParams | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Spike trains of the inner-ear model (module docstring) for one sound.

    Args:
        signal: sound pressure in pascals, 1-d, sampled at ``fs`` Hz (e.g. 65 dB SPL speech
            has an RMS of ``20e-6 · 10^(65/20) ≈ 0.036`` Pa).
        fs: sampling rate in Hz (above ``2 · f_max``).
        params: model parameters (default :class:`CochleaParams()`).

    Returns:
        ``(times_s, units)``: spike times in seconds (float64, ascending) and channels
        (int64, ``0 … n_channels - 1``, 0 = lowest frequency).

    Example:
        >>> fs = 22050.0
        >>> t = np.arange(int(0.2 * fs)) / fs
        >>> tone = 0.02 * np.sin(2 * np.pi * 1000.0 * t)  # 1 kHz, 57 dB SPL
        >>> times, units = cochlea_spikes(tone, fs)
        >>> fc = centre_frequencies()
        >>> bool(abs(fc[np.bincount(units).argmax()] - 1000.0) < 100.0)
        True
    """
    p = CochleaParams() if params is None else check_type(params, "params", CochleaParams,
                                                           "a CochleaParams")
    h, step = hair_cell(signal, fs, p)
    n_t, n_c = h.shape
    theta = _kappa(p.nu) * (10.0 ** (p.threshold_db / 20.0)) ** p.nu
    u0 = np.maximum(h - theta, 0.0)
    ef, es, em = (math.exp(-step / tau) for tau in (p.tau_fast, p.tau_slow, p.tau_m))
    ref_steps = round(p.t_ref / step)
    a_f = np.zeros(n_c)
    a_s = np.zeros(n_c)
    v = np.zeros(n_c)
    u = np.zeros(n_c)
    free = np.ones(n_c)  # 0 while refractory
    last = np.full(n_c, -(10**9), dtype=np.int64)
    steps: list[int] = []
    spikes_c: list[np.ndarray] = []
    gain = p.gain * (1.0 - em)
    for i in range(n_t):
        x_i = u0[i]
        # u = max(u0 - g_f a_f - g_s a_s, 0); a_f, a_s low-pass u0 (values before this step)
        np.subtract(x_i, p.g_fast * a_f + p.g_slow * a_s, out=u)
        np.maximum(u, 0.0, out=u)
        a_f += (1.0 - ef) * (x_i - a_f)
        a_s += (1.0 - es) * (x_i - a_s)
        v *= em
        v += gain * u
        if ref_steps:
            np.greater(i - last, ref_steps, out=free, casting="unsafe")
            v *= free
        fired = np.flatnonzero(v >= 1.0)
        if len(fired):
            steps.append(i)
            spikes_c.append(fired)
            v[fired] = 0.0
            last[fired] = i
    if not steps:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    counts = [len(c) for c in spikes_c]
    times = np.repeat(np.asarray(steps, dtype=np.float64) * step, counts)
    return times, np.concatenate(spikes_c).astype(np.int64)


def spectrogram_spikes(signal: np.ndarray, fs: float, *, n_channels: int = 700,
                       f_min: float = 100.0, f_max: float = 8000.0, window: float = 25e-3,
                       hop: float = 10e-3, threshold_db: float = 40.0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Baseline encoder: binned spectrogram thresholds.

    Hann-windowed STFT frames of ``window`` seconds every ``hop`` seconds; the magnitude at
    each centre frequency of :func:`centre_frequencies` (linear interpolation between bins),
    scaled so that a sine of RMS ``P`` Pa reads ``P``, in dB SPL:
    ``L = 20 log10(|X|/20 µPa)`` (a sine reads its level). A spike at frame ``j`` (time
    ``j · hop``) in every channel where ``L > threshold_db``.

    Returns:
        ``(times_s, units)`` as :func:`cochlea_spikes`.

    Raises:
        ShapeError / NonFiniteError: a bad signal. ParameterError: a bad window, hop or
            frequency range.
    """
    x, fs = _signal(signal, fs, "signal")
    window = check_real(window, "window", 0.0, low_open=True)
    hop = check_real(hop, "hop", 0.0, low_open=True)
    threshold_db = check_real(threshold_db, "threshold_db")
    fc = centre_frequencies(n_channels, f_min, f_max)
    if f_max >= fs / 2:
        raise ParameterError(f"f_max ({f_max} Hz) must lie below the Nyquist frequency "
                             f"fs/2 = {fs / 2} Hz")
    n_win = round(window * fs)
    n_hop = round(hop * fs)
    if n_win < 2 or n_hop < 1:
        raise ParameterError(f"window ({window} s) must span ≥ 2 samples and hop ({hop} s) "
                             f"≥ 1 sample at fs = {fs} Hz")
    n_frames = max(1, math.ceil(len(x) / n_hop))
    padded = np.concatenate([np.zeros(n_win // 2), x, np.zeros(n_win + n_frames * n_hop)])
    idx = np.arange(n_frames)[:, None] * n_hop + np.arange(n_win)[None, :]
    w = np.hanning(n_win)
    mag = np.abs(np.fft.rfft(padded[idx] * w, axis=1)) * (math.sqrt(2.0) / w.sum())  # sine RMS
    freqs = np.fft.rfftfreq(n_win, 1.0 / fs)
    chan = np.empty((n_frames, len(fc)))
    for j in range(n_frames):
        chan[j] = np.interp(fc, freqs, mag[j])
    level = 20.0 * np.log10(np.maximum(chan, 1e-30) / P_REF)
    frame, unit = np.nonzero(level > threshold_db)
    return frame * (n_hop / fs), unit.astype(np.int64)
