r"""An audio front end like Xylo Audio's: microphone samples → 16 channels of spike counts.

Audio in, per 10 ms bin and per band a spike count of at most 15 out — the input of the
Xylo-like integer chip (``spikeloop.chips.xylo``, whose ``XyloSpec.input_cap`` is 15). Two
models of one front end: a float model (the reference) and an integer model (fixed point,
bit-exact, what a chip would compute). Both run in one call (:func:`afe_counts`) or on a
stream of chunks (:class:`AFEStream`) with the same output, bit for bit.

**Input.** Digital audio samples in full-scale units (1.0 = the ADC's full scale), a float
array of shape ``[n]`` or ``[B, n]`` (NumPy or a torch tensor), and the sample rate ``fs``
in Hz (an integer number of Hz, given explicitly). Samples at or beyond full scale
(:math:`|x| \ge 1`) are *clipped audio*: they are saturated to :math:`[-1, 1]` (what an ADC
does), counted, and reported with a :class:`~spikeloop.errors.ClippedAudioWarning` (or a
:class:`~spikeloop.errors.ClippedAudioError` with ``on_clip="error"``); NaN or ±inf samples
raise :class:`~spikeloop.errors.NonFiniteError` naming the first bad sample.

**Stages**, for band :math:`c` with centre frequency :math:`f_c` and quality factor :math:`Q`:

1. **Band selection.** The 16 nominal bands have :math:`Q = 4` and
   :math:`f_c` = 40, 54, 77, 137, 203, 290, 428, 674, 1177, 1700, 2226, 3418, 5154, 7884,
   11630, 16940 Hz. A band is kept only if its upper −3 dB edge
   :math:`f_c\,(\sqrt{1 + 1/(4Q^2)} + 1/(2Q))` (the upper edge of a second-order band-pass,
   1.1328 :math:`f_c` for :math:`Q = 4`) lies below :math:`0.45\,f_s`. The rule uses the
   nominal :math:`f_c, Q` (mismatch never changes the number of channels). Kept bands: 13 at
   16 kHz (up to 5154 Hz), 14 at 22.05 kHz (up to 7884 Hz), 16 at 44.1 and 48 kHz. Output
   channel :math:`c` is the :math:`c`-th kept band. Below :math:`f_s` = 101 Hz no band is kept
   (a ``ParameterError``).
2. **Band-pass filter** — a second-order (biquad) Butterworth band-pass, the bilinear
   transform of :math:`H(s) = \Omega_b s / (s^2 + \Omega_b s + \Omega_0^2)`:

   .. math:: H_c(z) = g\,\frac{1 - z^{-2}}{1 + a_1 z^{-1} + a_2 z^{-2}},
             \qquad y[n] = g\,(x[n] - x[n-2]) - a_1 y[n-1] - a_2 y[n-2],

   with peak gain 1 at :math:`f_c`. Its digital −3 dB edges :math:`f_1 < f_2` are chosen so
   that the *digital* filter has exactly the specified centre and bandwidth:
   :math:`f_2 - f_1 = f_c / Q` and :math:`\tan(\pi f_1/f_s)\tan(\pi f_2/f_s) =
   \tan^2(\pi f_c/f_s)` (the bilinear transform maps the analogue centre
   :math:`\sqrt{\Omega_1\Omega_2}` to :math:`f_c`); :func:`scipy.signal.butter` of order 1
   with these edges gives :math:`g, a_1, a_2`.
3. **Full-wave rectification** :math:`r[n] = |y[n]|`.
4. **Integrate-and-fire** with subtractive reset: :math:`v \leftarrow v + r[n]/f_s`; while
   :math:`v \ge \theta`: a spike, :math:`v \leftarrow v - \theta`. :math:`\theta` (the
   ``threshold``, default :math:`9\times10^{-5}` full-scale·seconds) is an integral of the
   rectified signal, so the counts do not depend on the sample rate. A tone at the band centre
   of RMS level :math:`L` dBFS gives :math:`0.01\cdot(2\sqrt2/\pi)\,10^{L/20}/\theta` spikes
   per 10 ms: 5.0 at −26 dBFS, the cap of 15 at −16.5 dBFS.
5. **Binning** into bins of 10 ms (``bin_width``): bin :math:`k` holds samples
   :math:`\lceil k f_s w\rceil \le n < \lceil (k+1) f_s w\rceil` (220 or 221 samples at
   22.05 kHz, alternating, so that bins stay 10 ms on average). As the input is never
   negative, the spikes of bin :math:`k` are
   :math:`s_k = \lfloor (v_k + \Sigma_k)/\theta \rfloor` with :math:`\Sigma_k` the bin's
   integrated input and :math:`v_{k+1} = v_k + \Sigma_k - s_k\theta` — the same as the
   sample-by-sample rule. Counts above 15 (``cap``, the chip's input limit per channel and
   time step) are set to 15; how many were capped is reported (:attr:`AFEResult.n_capped`,
   :attr:`AFEStream.n_capped`). The neuron's :math:`v` is not affected by the cap.

**Integer model** (``integer=True``). Word lengths are assumptions, not read from a data
sheet: a 16-bit ADC (``adc_bits`` :math:`N`); coefficients with 30 fractional bits
(``coef_bits`` :math:`F`); filter outputs with 12 fractional bits below the ADC's LSB
(``state_bits`` :math:`S`). The filter is a direct form I biquad whose accumulator keeps
the fraction that the arithmetic shift drops and adds it to the next sample's sum
("fraction saving", first-order error feedback). All values are int64:

.. math::
   X[n] &= \operatorname{sat}\bigl(\lfloor x[n]\,2^{N-1} + \tfrac12\rfloor\bigr) \in
           [-2^{N-1}, 2^{N-1} - 1], \\
   P[n] &= G\,(X[n] - X[n-2])\,2^{S} - A_1 Y[n-1] - A_2 Y[n-2] + E[n-1], \\
   Y[n] &= P[n] \gg F, \qquad E[n] = P[n] - Y[n]\,2^F \in [0, 2^F), \\
   V &\leftarrow V + |Y[n]|, \quad \text{spikes while } V \ge \Theta,\ V \leftarrow V - \Theta,

with :math:`G, A_1, A_2 = \operatorname{round}((g, a_1, a_2)\,2^F)` and
:math:`\Theta = \operatorname{round}(\theta f_s 2^{N-1+S})`. Why these choices: the 40 Hz
band at 48 kHz has its poles :math:`6.5\times10^{-4}` from the unit circle and
:math:`1 + a_1 + a_2 = 2.7\times10^{-5}`. With a plain rounding shift its output has a dead
band: any constant :math:`|Y| < 1/(2(1 + a_1 + a_2))` is a fixed point, a DC offset that the
rectifier would count as signal; fraction saving shapes the rounding error by
:math:`1 - z^{-1}` and removes it. The rounding error that remains is amplified about 760 times
at 40 Hz by the recursion, hence :math:`S` = 12 (with :math:`S` = 8 the measured Q of that band
is 2.7 % low, with 12 0.06 %). Measured at 48 kHz (:func:`measure_bank`), centre frequencies
need :math:`F \ge 22` (:math:`F` = 20: the 40 Hz band is 1.3 % low; 22–30: within 0.2 %).
:math:`F + 1 + (N + S + 1) + 2 \le 62` is checked when the parameters are made, so no sum
overflows int64 (:math:`|Y| < 2^{N+S}`: the impulse responses' L1 norms, the largest
output for a full-scale input, are at most 1.32, measured with and without mismatch).

**Mismatch** (``mismatch=True``): band :math:`c` uses
:math:`f_c (1 + \delta_f)`, :math:`Q (1 + \delta_Q)` with :math:`\delta_f \sim
U(-0.05, 0.05)` (``fc_spread``) and :math:`\delta_Q \sim U(-0.10, 0.10)` (``q_spread``),
drawn for all 16 nominal bands from ``numpy.random.default_rng(seed)`` (first the 16
:math:`\delta_f`, then the 16 :math:`\delta_Q`), so a band's draw does not depend on
``fs``. :func:`design_bank` returns the values used.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import torch
from scipy import optimize, signal

from spikeloop.checks import check_bool, check_choice, check_int, check_real, show
from spikeloop.errors import (
    ArgumentTypeError,
    ClippedAudioError,
    ClippedAudioWarning,
    DTypeError,
    NonFiniteError,
    ParameterError,
    ShapeError,
)

AFE_CENTRES = (40.0, 54.0, 77.0, 137.0, 203.0, 290.0, 428.0, 674.0, 1177.0, 1700.0, 2226.0,
               3418.0, 5154.0, 7884.0, 11630.0, 16940.0)
"""Nominal centre frequencies of the 16 bands, Hz (the Xylo Audio front end's)."""

KEEP_FRACTION = 0.45
"""A band is kept if its upper −3 dB edge is below ``KEEP_FRACTION · fs``."""

_BLOCK = 8192  # samples per internal block of a call (bounds the memory of long inputs)
_PRODUCT_BITS = 62  # every integer product and sum stays below 2**62 (int64 has 63)


def upper_edge(fc: float | np.ndarray, q: float | np.ndarray) -> Any:
    r"""Upper −3 dB edge of a second-order band-pass of centre ``fc`` and quality ``q``:
    :math:`f_c(\sqrt{1 + 1/(4Q^2)} + 1/(2Q))` Hz."""
    return fc * (np.sqrt(1 + 1 / (4 * np.square(q))) + 1 / (2 * q))


@dataclass(frozen=True)
class AFEParams:
    r"""Parameters of the audio front end (see the module docstring for the equations).

    Args:
        q: quality factor :math:`Q = f_c / \text{−3 dB bandwidth}` of every band (4).
        centres: nominal centre frequencies, Hz, increasing (:data:`AFE_CENTRES`).
        threshold: integrate-and-fire threshold :math:`\theta` in full-scale·seconds.
        bin_width: bin width, s (0.01).
        cap: largest count per bin and channel (15, the chip's input limit).
        adc_bits: integer model's ADC word length :math:`N` (16, an assumption).
        coef_bits: fractional bits :math:`F` of the integer filter coefficients (30).
        state_bits: fractional bits :math:`S` of the integer filter output below the ADC LSB.
        mismatch: draw per-band centre and Q deviations.
        fc_spread: half-width of the uniform relative deviation of :math:`f_c` (0.05).
        q_spread: half-width of the uniform relative deviation of :math:`Q` (0.10).
        seed: seed of the mismatch draw.

    Raises:
        ParameterError: a value out of its range (the message names it and the limit), or
            word lengths whose products would overflow 62 bits.
        ArgumentTypeError: a value of the wrong type.
    """

    q: float = 4.0
    centres: tuple[float, ...] = AFE_CENTRES
    threshold: float = 9e-5
    bin_width: float = 0.01
    cap: int = 15
    adc_bits: int = 16
    coef_bits: int = 30
    state_bits: int = 12
    mismatch: bool = False
    fc_spread: float = 0.05
    q_spread: float = 0.10
    seed: int = 0

    def __post_init__(self) -> None:
        check_real(self.q, "AFEParams.q", 0.5, 100)
        if isinstance(self.centres, str) or not isinstance(self.centres, tuple | list):
            raise ArgumentTypeError(f"AFEParams.centres must be a tuple of frequencies in Hz, "
                                    f"got {show(self.centres)}")
        centres = tuple(check_real(f, "AFEParams.centres", 0, low_open=True)
                        for f in self.centres)
        if not centres or any(b <= a for a, b in itertools.pairwise(centres)):
            raise ParameterError(f"AFEParams.centres must be increasing and not empty, got "
                                 f"{show(self.centres)}")
        object.__setattr__(self, "centres", centres)
        check_real(self.threshold, "AFEParams.threshold", 0, low_open=True)
        check_real(self.bin_width, "AFEParams.bin_width", 0, 10, low_open=True)
        check_int(self.cap, "AFEParams.cap", 1)
        check_int(self.adc_bits, "AFEParams.adc_bits", 2, 24)
        check_int(self.coef_bits, "AFEParams.coef_bits", 8, 40)
        check_int(self.state_bits, "AFEParams.state_bits", 0, 16)
        check_bool(self.mismatch, "AFEParams.mismatch")
        check_real(self.fc_spread, "AFEParams.fc_spread", 0, 0.2)
        check_real(self.q_spread, "AFEParams.q_spread", 0, 0.5)
        check_int(self.seed, "AFEParams.seed", 0)
        # |Y| ≤ 2 · 2^(N-1+S) with margin (a band-pass of peak gain 1 rings at most a little
        # above its input); |A1| < 2^(F+1); three terms summed.
        bits = self.coef_bits + 1 + (self.adc_bits + self.state_bits + 1) + 2
        if bits > _PRODUCT_BITS:
            raise ParameterError(f"AFEParams: coef_bits + adc_bits + state_bits = "
                                 f"{self.coef_bits + self.adc_bits + self.state_bits} needs "
                                 f"{bits}-bit products, more than the {_PRODUCT_BITS} allowed "
                                 "(int64)")

    def bands(self, fs: float) -> np.ndarray:
        """Indices (into ``centres``) of the bands kept at sample rate ``fs``: those whose upper
        −3 dB edge is below ``KEEP_FRACTION · fs``.

        Raises:
            ParameterError: ``fs`` is not valid or keeps no band.
        """
        fs = check_fs(fs)
        edges = upper_edge(np.asarray(self.centres), self.q)
        kept = np.flatnonzero(edges < KEEP_FRACTION * fs)
        if kept.size == 0:
            raise ParameterError(f"fs = {fs:g} Hz keeps no band: the lowest band "
                                 f"({self.centres[0]:g} Hz) needs fs > "
                                 f"{edges[0] / KEEP_FRACTION:.1f} Hz (its upper -3 dB edge "
                                 f"must be below {KEEP_FRACTION} fs)")
        return kept


def check_fs(fs: Any) -> float:
    """Return a sample rate as a float if it is a finite, positive, whole number of Hz.

    Raises:
        ParameterError: it is not finite, ``≤ 0`` or not a whole number of Hz.
        ArgumentTypeError: it is not a real number.
    """
    value = check_real(fs, "fs (sample rate, Hz)", 0, low_open=True)
    if value != round(value):
        raise ParameterError(f"fs (sample rate, Hz) must be a whole number of Hz, got {value:g}")
    return value


@dataclass(frozen=True)
class FilterBank:
    """The designed filters of one front end at one sample rate (from :func:`design_bank`).

    ``fc``, ``q``: per channel, the centre frequency (Hz) and Q actually used (with mismatch
    applied); ``bands``: indices of the kept nominal bands; ``g``, ``a1``, ``a2``: float
    coefficients; ``G``, ``A1``, ``A2``: int64 coefficients (scaled by ``2**coef_bits``);
    ``theta``: float threshold per sample sum (``threshold · fs``); ``theta_int``: integer
    threshold.
    """

    fs: float
    params: AFEParams
    bands: np.ndarray
    fc: np.ndarray
    q: np.ndarray
    g: np.ndarray
    a1: np.ndarray
    a2: np.ndarray
    G: np.ndarray = field(repr=False)
    A1: np.ndarray = field(repr=False)
    A2: np.ndarray = field(repr=False)
    theta: float = 0.0
    theta_int: int = 0

    @property
    def channels(self) -> int:
        """Number of output channels (kept bands)."""
        return int(self.bands.size)


def _digital_edges(fc: float, q: float, fs: float) -> tuple[float, float]:
    """Digital −3 dB edges ``f1 < f2`` with ``f2 - f1 = fc/q`` and a bilinear-transform centre
    at ``fc``."""
    bw = fc / q
    target = math.tan(math.pi * fc / fs) ** 2
    top = min(fc, fs / 2 - bw) * (1 - 1e-12)

    def gap(f1: float) -> float:
        return math.tan(math.pi * f1 / fs) * math.tan(math.pi * (f1 + bw) / fs) - target

    if fc + bw >= fs / 2 or gap(top) <= 0:
        raise ParameterError(f"a band of centre {fc:g} Hz and Q {q:.3g} does not fit below "
                             f"fs/2 = {fs / 2:g} Hz")
    f1 = optimize.brentq(gap, 0.0, top, xtol=1e-12, rtol=1e-15)
    return f1, f1 + bw


def design_bank(fs: float, params: AFEParams | None = None) -> FilterBank:
    """Design the filters of the front end at sample rate ``fs`` (see the module docstring).

    Returns:
        The :class:`FilterBank`, with the centre frequencies and Q actually used.

    Raises:
        ParameterError: ``fs`` is not valid or keeps no band.
    """
    params = AFEParams() if params is None else params
    if not isinstance(params, AFEParams):
        raise ArgumentTypeError(f"params must be an AFEParams, got {show(params)}")
    fs = check_fs(fs)
    bands = params.bands(fs)
    fc = np.asarray(params.centres, dtype=np.float64)
    q = np.full(fc.shape, float(params.q))
    if params.mismatch:
        rng = np.random.default_rng(params.seed)
        fc = fc * (1 + rng.uniform(-params.fc_spread, params.fc_spread, fc.size))
        q = q * (1 + rng.uniform(-params.q_spread, params.q_spread, fc.size))
    fc, q = fc[bands], q[bands]
    g, a1, a2 = (np.empty(bands.size) for _ in range(3))
    for c in range(bands.size):
        f1, f2 = _digital_edges(fc[c], q[c], fs)
        b, a = signal.butter(1, [f1, f2], btype="bandpass", fs=fs)
        g[c], a1[c], a2[c] = b[0], a[1], a[2]
    scale = 2.0 ** params.coef_bits
    integer = [np.round(v * scale).astype(np.int64) for v in (g, a1, a2)]
    theta = params.threshold * fs
    theta_int = round(theta * 2.0 ** (params.adc_bits - 1 + params.state_bits))
    return FilterBank(fs, params, bands, fc, q, g, a1, a2, *integer, theta=theta,
                      theta_int=max(int(theta_int), 1))


# ------------------------------------------------------------------------------- input checks

def _as_audio(audio: Any, who: str = "audio") -> tuple[np.ndarray, bool]:
    """``audio`` as a float64 array ``[B, n]`` and whether it was 1-D."""
    if isinstance(audio, torch.Tensor):
        if audio.is_complex() or not audio.is_floating_point():
            raise DTypeError(f"{who} must hold floats in full-scale units, got {audio.dtype} "
                             "(divide 16-bit PCM by 32768)")
        audio = audio.detach().cpu().numpy()
    if not isinstance(audio, np.ndarray):
        raise ArgumentTypeError(f"{who} must be a NumPy array or a torch tensor of samples, got "
                                f"{show(audio)} ({type(audio).__name__})")
    if audio.dtype.kind != "f":
        raise DTypeError(f"{who} must hold floats in full-scale units, got {audio.dtype} "
                         "(divide 16-bit PCM by 32768)")
    if audio.ndim not in (1, 2):
        raise ShapeError(f"{who} must have shape [n] or [B, n], got shape {audio.shape}")
    single = audio.ndim == 1
    audio = np.asarray(audio, dtype=np.float64).reshape(1, -1) if single else \
        np.asarray(audio, dtype=np.float64)
    bad = ~np.isfinite(audio)
    if bad.any():
        b, n = np.argwhere(bad)[0]
        where = f"sample {n}" if single else f"batch {b}, sample {n}"
        raise NonFiniteError(f"{who} holds {int(bad.sum())} NaN or infinite samples; the first "
                             f"at {where} ({audio[b, n]})")
    return audio, single


def _clip(audio: np.ndarray, on_clip: str, who: str) -> tuple[np.ndarray, int]:
    """Saturate to [-1, 1]; count the samples with |x| ≥ 1 and report them."""
    clipped = int(np.count_nonzero(np.abs(audio) >= 1.0))
    if clipped:
        message = (f"{who}: {clipped} of {audio.size} samples are at or beyond full scale "
                   f"(|x| >= 1; largest |x| = {np.abs(audio).max():.4g}): clipped audio, "
                   "saturated to [-1, 1]")
        if on_clip == "error":
            raise ClippedAudioError(message)
        warnings.warn(message, ClippedAudioWarning, stacklevel=3)
        audio = np.clip(audio, -1.0, 1.0)
    return audio, clipped


# --------------------------------------------------------------------------------- the stream

class AFEStream:
    """The front end on a stream of audio chunks: filter states, integrate-and-fire
    accumulators and the partial bin are kept between calls, so any split of the audio into
    chunks gives the same counts as one call (bit for bit, float and integer model).

    Args:
        fs: sample rate, Hz (a whole number).
        params: :class:`AFEParams` (default: the Xylo-like defaults).
        integer: run the integer model instead of the float model.
        on_clip: ``"warn"`` (a :class:`~spikeloop.errors.ClippedAudioWarning`) or ``"error"``
            (a :class:`~spikeloop.errors.ClippedAudioError`) for samples with ``|x| ≥ 1``.

    Calling it with a chunk ``[n]`` or ``[B, n]`` returns the counts of the bins this chunk
    completes, int64 of shape ``[T, C]`` or ``[T, B, C]`` (time-major; ``T`` may be 0). The
    batch size and rank are fixed by the first chunk. ``n_capped`` and ``n_clipped`` count,
    since the last :meth:`reset`, the counts set to ``cap`` and the clipped samples.
    """

    def __init__(self, fs: float, params: AFEParams | None = None, *, integer: bool = False,
                 on_clip: str = "warn") -> None:
        self.bank = design_bank(fs, params)
        self.fs = self.bank.fs
        self.params = self.bank.params
        self.integer = check_bool(integer, "integer")
        self.on_clip = check_choice(on_clip, "on_clip", ["warn", "error"])
        bin_width = Fraction(repr(float(self.params.bin_width)))
        self._samples_per_bin = Fraction(int(self.fs)) * bin_width
        if self._samples_per_bin < 1:
            raise ParameterError(f"bin_width {float(bin_width):g} s holds less than one sample "
                                 f"at fs = {self.fs:g} Hz")
        self.reset()

    @property
    def channels(self) -> int:
        """Number of output channels."""
        return self.bank.channels

    def reset(self) -> None:
        """Forget the stream: zero filter states, accumulators, the partial bin and the
        counters."""
        self._batch: int | None = None
        self._single: bool | None = None
        self._x: np.ndarray | None = None   # last two inputs  [2, B] (integer model)
        self._y: np.ndarray | None = None   # last two outputs [2, B, C] or lfilter zi
        self._e: np.ndarray | None = None   # saved fraction of the integer filter [B, C]
        self._v: np.ndarray | None = None   # accumulators [B, C]
        self._pending: np.ndarray | None = None  # open bin: int [m,B,C], float [m,C,B]
        self._seen = 0   # samples consumed
        self._bins = 0   # bins emitted
        self.n_capped = 0
        self.n_clipped = 0

    def _edge(self, k: int) -> int:
        """First sample of bin ``k``: ceil(k · fs · bin_width)."""
        value = k * self._samples_per_bin
        return -((-value.numerator) // value.denominator)

    def _start(self, batch: int, single: bool) -> None:
        self._batch, self._single = batch, single
        c = self.channels
        if self.integer:
            self._x = np.zeros((2, batch), dtype=np.int64)
            self._y = np.zeros((2, batch, c), dtype=np.int64)
            self._e = np.zeros((batch, c), dtype=np.int64)
            self._v = np.zeros((batch, c), dtype=np.int64)
            self._pending = np.zeros((0, batch, c), dtype=np.int64)
        else:
            self._y = np.zeros((c, batch, 2))  # lfilter's zi per channel
            self._v = np.zeros((batch, c))
            self._pending = np.zeros((0, c, batch))  # float: [n, C, B]

    def __call__(self, chunk: Any, fs: float | None = None) -> np.ndarray:
        """Feed one chunk; return the counts of the bins it completes (see the class).

        Raises:
            ParameterError: ``fs`` is given and differs from the stream's.
            ShapeError: the chunk's rank or batch size differs from the first chunk's.
            NonFiniteError, DTypeError, ClippedAudioError: see :func:`afe_counts`.
        """
        if fs is not None and check_fs(fs) != self.fs:
            raise ParameterError(f"chunk sample rate {check_fs(fs):g} Hz differs from the "
                                 f"stream's {self.fs:g} Hz (resample, or make a new stream)")
        audio, single = _as_audio(chunk, "chunk")
        if self._batch is None:
            self._start(audio.shape[0], single)
        elif single != self._single or audio.shape[0] != self._batch:
            was = "[n]" if self._single else f"[{self._batch}, n]"
            raise ShapeError(f"chunk of shape {tuple(np.shape(chunk))} does not continue a "
                             f"stream of chunks of shape {was}")
        audio, clipped = _clip(audio, self.on_clip, "chunk")
        self.n_clipped += clipped
        # blocks of _BLOCK samples bound the memory (a stream's output does not depend on how
        # the audio is cut); an empty chunk never reaches lfilter (it returns a wrong state)
        counts = [np.zeros((0, self._batch, self.channels), dtype=np.int64)]
        for lo in range(0, audio.shape[1], _BLOCK):
            block = audio[:, lo:lo + _BLOCK]
            rect = self._rectified_int(block) if self.integer else self._rectified_float(block)
            self._pending = (rect if self._pending.shape[0] == 0 else
                             np.concatenate([self._pending, rect], axis=0))
            self._seen += block.shape[1]
            counts.append(self._bin())
        out = np.concatenate(counts)
        return out[:, 0] if self._single else out

    def _rectified_float(self, audio: np.ndarray) -> np.ndarray:
        bank = self.bank
        out = np.empty((audio.shape[1], self.channels, audio.shape[0]))  # [n, C, B]
        for c in range(self.channels):
            b = np.array([bank.g[c], 0.0, -bank.g[c]])
            a = np.array([1.0, bank.a1[c], bank.a2[c]])
            y, self._y[c] = signal.lfilter(b, a, audio, axis=1, zi=self._y[c])
            np.abs(y.T, out=out[:, c, :])
        return out

    def _rectified_int(self, audio: np.ndarray) -> np.ndarray:
        return np.abs(self._filter_int_signed(audio))

    def _filter_int_signed(self, audio: np.ndarray) -> np.ndarray:
        """Integer filter outputs ``[n, B, C]`` (signed) of ``audio`` ``[B, n]``; the state
        is kept."""
        p, bank = self.params, self.bank
        full = 2 ** (p.adc_bits - 1)
        x = np.clip(np.floor(audio * full + 0.5), -full, full - 1).astype(np.int64).T  # [n, B]
        x = np.concatenate([self._x, x], axis=0)
        n = x.shape[0] - 2
        feed = ((x[2:] - x[:-2])[:, :, None] * bank.G) << p.state_bits  # [n, B, C]
        a1, a2 = -bank.A1, -bank.A2
        mask = np.int64((1 << p.coef_bits) - 1)
        shift = p.coef_bits
        y = np.empty((n + 2, *feed.shape[1:]), dtype=np.int64)
        y[:2] = self._y
        e = self._e.copy()
        t1 = np.empty(feed.shape[1:], dtype=np.int64)
        t2 = np.empty_like(t1)
        for i in range(n):
            np.multiply(a1, y[i + 1], out=t1)
            np.multiply(a2, y[i], out=t2)
            t1 += t2
            t1 += feed[i]
            t1 += e
            np.right_shift(t1, shift, out=y[i + 2])
            np.bitwise_and(t1, mask, out=e)
        self._e = e
        self._x = x[-2:].copy()
        self._y = y[-2:].copy()
        return y[2:]

    def _bin(self) -> np.ndarray:
        """Close every bin that the samples seen so far complete."""
        start = self._seen - self._pending.shape[0]  # stream index of _pending[0]
        edges = []
        k = self._bins
        while self._edge(k + 1) <= self._seen:
            edges.append(self._edge(k + 1) - start)
            k += 1
        n_bins = len(edges)
        c = self.channels
        counts = np.zeros((n_bins, self._batch, c), dtype=np.int64)
        if n_bins == 0:
            return counts
        cuts = [self._edge(self._bins) - start, *edges]
        pending = self._pending
        sums = [pending[lo:hi].sum(axis=0) for lo, hi in itertools.pairwise(cuts)]
        if not self.integer:
            sums = [s.T for s in sums]  # float model's samples are [n, C, B]
        theta = self.bank.theta_int if self.integer else self.bank.theta
        v = self._v
        for k in range(n_bins):
            v = v + sums[k]
            spikes = v // theta if self.integer else np.floor(v / theta).astype(np.int64)
            v = v - spikes * theta
            counts[k] = spikes
        self._v = v
        self._pending = self._pending[edges[-1]:].copy()
        self._bins += n_bins
        over = counts > self.params.cap
        self.n_capped += int(over.sum())
        counts[over] = self.params.cap
        return counts


@dataclass(frozen=True)
class AFEResult:
    """The front end's output for one call of :func:`afe_counts`.

    ``counts``: int64 spike counts ``[T, C]`` (1-D input) or ``[T, B, C]``, each ≤ ``cap``;
    ``fc``, ``q``: centre frequency (Hz) and Q used per channel; ``bands``: indices of the kept
    nominal bands; ``n_capped``: counts that were above ``cap`` and set to it; ``n_clipped``:
    input samples with ``|x| ≥ 1``; ``n_tail``: samples after the last complete bin (not
    counted).
    """

    counts: np.ndarray
    fc: np.ndarray
    q: np.ndarray
    bands: np.ndarray
    n_capped: int
    n_clipped: int
    n_tail: int


def afe_counts(audio: Any, fs: float, params: AFEParams | None = None, *,
               integer: bool = False, on_clip: str = "warn") -> AFEResult:
    """Spike counts of the audio front end (see the module docstring) for ``audio`` of shape
    ``[n]`` or ``[B, n]`` in full-scale units at sample rate ``fs``; one call of a fresh
    :class:`AFEStream`, so its counts equal any chunked run's. Samples after the last complete
    bin are not counted (``n_tail``).

    Raises:
        ParameterError: ``fs`` not finite, ``≤ 0``, not whole, or too low to keep any band.
        NonFiniteError: a NaN or infinite sample (the message names the first).
        DTypeError: integer, bool or complex samples.
        ShapeError: ``audio`` is not 1-D or 2-D.
        ClippedAudioError: samples with ``|x| ≥ 1`` and ``on_clip="error"`` (otherwise a
            :class:`~spikeloop.errors.ClippedAudioWarning`).
    """
    stream = AFEStream(fs, params, integer=integer, on_clip=on_clip)
    counts = stream(audio)
    return AFEResult(counts, stream.bank.fc.copy(), stream.bank.q.copy(),
                     stream.bank.bands.copy(), stream.n_capped, stream.n_clipped,
                     int(stream._pending.shape[0]))


# ------------------------------------------------------------------------------ measurement

def impulse_responses(fs: float, params: AFEParams | None = None, *, integer: bool = False,
                      n: int | None = None) -> np.ndarray:
    """Impulse responses ``[n, C]`` of the front end's filters (before rectification), in
    full-scale units per unit impulse, from the models themselves: the float filters on a unit
    impulse, or the integer filters on an impulse of ``2**(adc_bits-1) - 1`` LSB (scaled back).
    ``n`` defaults to 40 time constants of the slowest pole."""
    bank = design_bank(fs, params)
    if n is None:
        radius = np.sqrt(bank.a2.max())
        n = math.ceil(40 / (1 - radius))
    n = check_int(n, "n", 8)
    p = bank.params
    if integer:
        full = 2 ** (p.adc_bits - 1) - 1
        stream = AFEStream(fs, p, integer=True)
        stream._start(1, True)
        x = np.zeros((1, n))
        x[0, 0] = full / 2 ** (p.adc_bits - 1)
        y = np.empty((n, bank.channels))
        for lo in range(0, n, 1 << 15):  # unrectified output: run the filter part only
            hi = min(n, lo + (1 << 15))
            yi = stream._filter_int_signed(x[:, lo:hi])
            y[lo:hi] = yi[:, 0] / (full * 2.0 ** p.state_bits)
        return y
    impulse = np.zeros(n)
    impulse[0] = 1.0
    return np.stack([signal.lfilter([bank.g[c], 0, -bank.g[c]], [1, bank.a1[c], bank.a2[c]],
                                    impulse) for c in range(bank.channels)], axis=1)


def measure_bank(fs: float, params: AFEParams | None = None, *,
                 integer: bool = False) -> tuple[np.ndarray, np.ndarray]:
    r"""Measure each filter's centre frequency and Q from its impulse response.

    The response :math:`|H(f)|^2` is the squared magnitude of the zero-padded FFT of the
    impulse response (:func:`impulse_responses`; a resolution of at least 1/100 of the
    narrowest −3 dB bandwidth); the centre is its peak (refined by a parabola through the three
    highest points), the −3 dB edges are where :math:`|H|^2` falls to half the peak (linear
    interpolation), and :math:`Q = f_c / (f_2 - f_1)`.

    Returns:
        ``(fc, q)``: measured centre frequencies (Hz) and Q factors per channel.
    """
    bank = design_bank(fs, params)
    h = impulse_responses(fs, params, integer=integer)
    resolution = float(np.min(bank.fc / bank.q)) / 100  # 100 points per narrowest bandwidth
    n_fft = 1 << math.ceil(math.log2(max(h.shape[0], bank.fs / resolution)))
    power = np.abs(np.fft.rfft(h, n_fft, axis=0)) ** 2
    df = check_fs(fs) / n_fft
    fcs, qs = np.empty(h.shape[1]), np.empty(h.shape[1])
    for c in range(h.shape[1]):
        p = power[:, c]
        k = int(np.argmax(p))
        lo, mid, hi = p[k - 1], p[k], p[k + 1]
        offset = 0.5 * (lo - hi) / (lo - 2 * mid + hi)
        peak = mid - 0.25 * (lo - hi) * offset
        half = peak / 2
        i = k
        while p[i] > half:
            i -= 1
        f1 = (i + (half - p[i]) / (p[i + 1] - p[i])) * df
        j = k
        while p[j] > half:
            j += 1
        f2 = (j - 1 + (p[j - 1] - half) / (p[j - 1] - p[j])) * df
        fcs[c] = (k + offset) * df
        qs[c] = fcs[c] / (f2 - f1)
    return fcs, qs
