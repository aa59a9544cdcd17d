"""Keyword spotting synthesised with espeak-ng: labelled 1 s clips and continuous streams.

Four keywords (:data:`KEYWORDS`: ``yes``, ``no``, ``stop``, ``down``) against a filler
vocabulary (:data:`FILLERS`, 60 common English words, none a keyword or a near-homophone of
one, :data:`EXCLUDED`), spoken by the espeak-ng voices of
:mod:`spikeloop.data.spoken_digits` (:data:`~spikeloop.data.spoken_digits.SPEAKERS`; the
:data:`~spikeloop.data.spoken_digits.TEST_SPEAKERS` speak only in the test split) in its
English accents, at random speeds and pitches, in white, pink or babble noise at several SNRs.

Audio is in digital full-scale units (1.0 = full scale) at :data:`FS` = 16 kHz: espeak-ng's
22 050 Hz output is resampled by ``scipy.signal.resample_poly(x, 320, 441)`` with a
Kaiser-windowed anti-aliasing low-pass (flat to 7 kHz, ≥ 100 dB down from 8 kHz:
:func:`resample_to_fs`). A word's extent is where its energy is: the first and last 2.5 ms
frame whose RMS is within :data:`EXTENT_DB` (40 dB) of the loudest frame; the word is cut to
that extent and scaled so that its RMS over it is the drawn level (dBFS RMS).
Noise of RMS ``10^((level − snr)/20)`` is added over the whole clip or stream, so

    SNR = 20 log10(RMS(word over its extent) / RMS(noise))

Babble is the sum of :data:`BABBLE_TALKERS` tracks of filler words from a bank spoken by the
split's other speakers, normalised to unit RMS. Nothing is clipped: a sample that would be
stored as full scale (``|x| ≥`` :data:`PEAK_LIMIT`, rounding to ±32767, which reads back as
``|x| = 1``, clipped audio for the front end) raises
:class:`~spikeloop.errors.DataFormatError` (the levels leave room: the largest peak of the
default files is stated in docs/keywords.md).

Two products per split, in one HDF5 file ``keywords_{split}.h5`` (:func:`file_name`):

**Clips** (classifier training and testing): :data:`CLIP_S` = 1.0 s each, class ``k < 4`` =
keyword ``k``, class 4 = ``other`` (a filler word, or noise only for a quarter of them). The
word starts at ``onset_s`` (uniform such that it ends ≥ 20 ms before the clip's end).

**Streams** (streaming evaluation): ``n_streams`` continuous recordings of ``stream_s``
seconds with noise throughout at one SNR; words separated by gaps of 0.3–2 s, each a keyword
with probability :data:`KEYWORD_SHARE` (30 %), with quiet stretches (3–8 s, noise only) in
between; an events table gives every word's onset and offset (its energy extent) and label.

HDF5 layout (audio int16 at scale :data:`SCALE` = 32767: ``x_int16 = round(32767 · x)``;
read back as ``x = x_int16 / 32767``):

==============================  =========================================================
``/`` attrs                     ``format = "spikeloop-keywords"``, ``version = 1``,
                                ``fs`` (Hz), ``scale`` (32767), ``seed``, ``split``
``keys``                        class names ``[5]`` (``yes no stop down other``)
``vocabulary``                  every word ``[64]``: the keywords, then the fillers
``speakers``                    :data:`~spikeloop.data.spoken_digits.SPEAKERS`
``voices``                      :data:`~spikeloop.data.spoken_digits.ENGLISH_VOICES`
``noise_kinds``                 :data:`NOISE_KINDS` (``white pink babble``)
``clips/audio``                 int16 ``[N, 16000]``
``clips/labels``                uint8 ``[N]``: 0–3 keyword, 4 other
``clips/onset_s``, ``offset_s`` float32 ``[N]``: the word's extent (NaN: noise only)
``clips/word``                  int16 ``[N]``: index into ``vocabulary`` (−1: noise only)
``clips/speaker``, ``voice``    int16 ``[N]``: indices into ``speakers``/``voices`` (−1: none)
``clips/speed_wpm``, ``pitch``  int16 ``[N]`` (0: noise only)
``clips/level_dbfs``            float32 ``[N]``: the word's RMS over its extent, dBFS
``clips/noise``                 int8 ``[N]``: index into ``noise_kinds`` (−1: clean)
``clips/snr_db``                float32 ``[N]`` (NaN: clean)
``streams/audio``               int16 ``[S, n]`` (``n = stream_s · fs``)
``streams/noise``, ``snr_db``,  ``[S]``: the stream's noise kind, SNR (to its nominal
``streams/level_dbfs``          level; each word lies within ±3 dB of it)
``streams/events/*``            one row per word, sorted by stream then onset: ``stream``
                                int32, ``onset_s``, ``offset_s`` float64, ``label`` uint8,
                                ``word``, ``speaker`` int16, ``level_dbfs`` float32
``streams`` attrs               ``stream_s``, ``non_keyword_s`` (stream time outside every
                                keyword's extent, for false alarms per hour)
==============================  =========================================================

Every choice is drawn from generators seeded by ``(seed, split, product, index)``, so a seed
fixes every byte of the files (datasets are written without HDF5 time stamps).
Needs the espeak-ng program (Debian package ``espeak-ng``) and scipy; nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from spikeloop._files import atomic_write
from spikeloop.checks import check_bool, check_choice, check_int, check_path, check_real, show
from spikeloop.data.catalog import DATA_SETS, data_dir
from spikeloop.data.spoken_digits import (
    ENGLISH_VOICES,
    ESPEAK_FS,
    SPEAKERS,
    SPLITS,
    TEST_SPEAKERS,
    _espeak_program,
    coloured_noise,
    espeak,
    run_tasks,
)
from spikeloop.errors import (
    ArgumentTypeError,
    DataFormatError,
    MissingDataError,
    MissingPackageError,
    ParameterError,
)

__all__ = [
    "CLASS_NAMES",
    "EXCLUDED",
    "FILLERS",
    "FS",
    "KEYWORDS",
    "NOISE_KINDS",
    "SCALE",
    "ClipSpec",
    "KeywordClips",
    "KeywordsFile",
    "default_dir",
    "file_name",
    "make_keywords",
    "non_keyword_seconds",
    "plan_clips",
    "read_keywords",
    "render_clip",
    "render_stream",
    "resample_to_fs",
    "word_extent",
    "word_sound",
]

KEYWORDS: tuple[str, ...] = ("yes", "no", "stop", "down")
"""The keywords (labels 0–3): four words of the Speech Commands core set whose vowels
(/ɛ/, /oʊ/, /ɑ/, /aʊ/) and initial consonants (/j/, /n/, /st/, /d/) all differ."""

OTHER = len(KEYWORDS)
CLASS_NAMES: tuple[str, ...] = (*KEYWORDS, "other")
"""Class names by label: the keywords, then ``other`` (a filler word or noise only)."""

FILLERS: tuple[str, ...] = (
    # one syllable
    "bird", "book", "bread", "cake", "car", "chair", "cup", "dog", "fish", "hand", "hat",
    "house", "king", "lamp", "leaf", "milk", "moon", "rain", "ring", "road", "salt", "ship",
    "sun", "tree", "wall", "wind",
    # two syllables
    "apple", "bottle", "butter", "candle", "carpet", "chicken", "coffee", "cookie", "dinner",
    "engine", "finger", "flower", "forest", "garden", "guitar", "hammer", "island", "jacket",
    "kitchen", "letter", "little", "market", "morning", "music", "number", "paper", "pencil",
    "people", "pillow", "rabbit", "river", "summer", "table", "water",
)
"""The ``other`` words: common English nouns of one or two syllables."""

EXCLUDED: tuple[str, ...] = (
    "yeah", "yet", "yess", "less", "guess", "chess", "know", "now", "note", "snow", "nose",
    "go", "so", "toe", "stock", "stopped", "shop", "top", "step", "drop", "town", "gown",
    "brown", "done", "dawn", "sound", "noun",
)
"""Near-homophones and near-rhymes of the keywords that :data:`FILLERS` must not contain."""

VOCABULARY: tuple[str, ...] = KEYWORDS + FILLERS
NOISE_KINDS: tuple[str, ...] = ("white", "pink", "babble")
"""Background noise kinds (``clips/noise`` indexes this)."""
FS = 16000
"""Sampling rate of the files, Hz."""
SCALE = 32767
"""int16 value of full scale: ``x_int16 = round(SCALE · x)``."""
CLIP_S = 1.0
SNRS_DB: tuple[float | None, ...] = (None, 20.0, 10.0, 5.0, 0.0)
"""SNRs of the clips (None: clean)."""
STREAM_SNRS_DB = (20.0, 10.0, 5.0, 0.0)
SPEED_WPM = (140, 210)
PITCH = (25, 75)
LEVEL_DBFS = (-40.0, -25.0)
"""Range of a word's RMS level over its extent, dBFS."""
EXTENT_DB = 40.0
"""A word's extent: frames whose RMS is within this many dB of its loudest frame."""
FRAME_S = 0.0025
MARGIN_S = 0.02
NOISE_ONLY_SHARE = 0.25
"""Share of ``other`` clips that hold noise only."""
KEYWORD_SHARE = 0.3
"""Probability that a word of a stream is a keyword."""
GAP_S = (0.3, 2.0)
QUIET_S = (3.0, 8.0)
QUIET_SHARE = 0.05
"""Probability that a quiet stretch (noise only, :data:`QUIET_S`) precedes a word's gap."""
STREAM_LEVEL_JITTER_DB = 3.0
BABBLE_TALKERS = 5
BABBLE_BANK = 40
"""Filler words per split in the babble bank."""


def _rng(seed: int, split: str, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), *key])


def _split_speakers(split: str) -> list[int]:
    return [i for i, s in enumerate(SPEAKERS) if (s in TEST_SPEAKERS) == (split == "test")]


# ----------------------------------------------------------------------------- sounds

RESAMPLE_CUTOFF_HZ = 7600.0
"""The anti-aliasing low-pass of :func:`resample_to_fs`: −6 dB at 7.6 kHz; flat (±0.05 dB)
to 7 kHz, ≥ 100 dB down from 8 kHz (the new Nyquist frequency) on."""
RESAMPLE_HALF_LENGTH = 40
RESAMPLE_BETA = 8.6
_FILTERS: dict[tuple[int, int], np.ndarray] = {}


def resample_to_fs(x: np.ndarray, fs_in: float = ESPEAK_FS) -> np.ndarray:
    """``x`` sampled at ``fs_in`` Hz resampled to :data:`FS` by
    ``scipy.signal.resample_poly`` (up by ``L = FS/g``, down by ``M = fs_in/g``,
    ``g = gcd(FS, fs_in)``) with a polyphase FIR low-pass of ``2 · 40 · max(L, M) + 1`` taps,
    ``h = firwin(·, 7.6 kHz, window=("kaiser", 8.6))`` at the rate ``L · fs_in``: the band
    below 7 kHz passes unchanged and what lies above 8 kHz (it would alias) is removed by
    ≥ 100 dB (scipy's default filter, Kaiser β = 5, lets a 9 kHz tone alias at −31 dB).

    Raises:
        ParameterError: ``fs_in`` not a whole number of Hz above 16 kHz.
        MissingPackageError: scipy is not installed.
    """
    fs_in = check_real(fs_in, "fs_in", float(FS), None, low_open=True)
    if fs_in != int(fs_in):
        raise ParameterError(f"fs_in must be a whole number of Hz, got {fs_in}")
    try:
        from scipy.signal import firwin, resample_poly
    except ImportError:
        raise MissingPackageError("resampling needs scipy (installed with scikit-learn: "
                                  "pip install scipy)") from None
    g = int(np.gcd(FS, int(fs_in)))
    up, down = FS // g, int(fs_in) // g
    if (up, down) not in _FILTERS:
        _FILTERS[(up, down)] = firwin(2 * RESAMPLE_HALF_LENGTH * max(up, down) + 1,
                                      RESAMPLE_CUTOFF_HZ, window=("kaiser", RESAMPLE_BETA),
                                      fs=up * fs_in)
    return resample_poly(np.asarray(x, dtype=np.float64), up, down, window=_FILTERS[(up, down)])


def word_extent(x: np.ndarray, fs: float = FS, extent_db: float = EXTENT_DB) -> tuple[int, int]:
    """``(start, stop)`` sample indices of a word's energy: frames of ``FRAME_S`` (2.5 ms),
    the first to the last frame whose RMS ≥ ``max frame RMS · 10^(−extent_db/20)``.

    Raises:
        DataFormatError: ``x`` is silent (all frames zero).
    """
    n = max(1, round(FRAME_S * fs))
    m = -(-len(x) // n)
    frames = np.zeros(m * n)
    frames[:len(x)] = x
    rms = np.sqrt(np.mean(frames.reshape(m, n) ** 2, axis=1))
    if rms.max() == 0.0:
        raise DataFormatError("word_extent: the sound is silent")
    on = np.flatnonzero(rms >= rms.max() * 10 ** (-extent_db / 20))
    return int(on[0] * n), int(min(len(x), (on[-1] + 1) * n))


def word_sound(word: str, speaker: int, voice: int, speed_wpm: int, pitch: int,
               level_dbfs: float) -> np.ndarray:
    """One word spoken by espeak-ng (voice ``ENGLISH_VOICES[voice] + SPEAKERS[speaker]``),
    resampled to :data:`FS`, cut to its :func:`word_extent` and scaled so that
    ``20 log10(RMS) = level_dbfs``."""
    raw = espeak(word, f"{ENGLISH_VOICES[voice]}+{SPEAKERS[speaker]}", speed_wpm, pitch)
    x = resample_to_fs(raw)
    a, b = word_extent(x)
    x = x[a:b]
    return x * (10 ** (level_dbfs / 20) / np.sqrt(np.mean(x**2)))


_BANK: dict[tuple[int, str, int], np.ndarray] = {}


def _bank_speaker(split: str, i: int) -> int:
    speakers = _split_speakers(split)
    return speakers[i % len(speakers)]


def _bank_word(seed: int, split: str, i: int) -> np.ndarray:
    """Word ``i`` of the split's babble bank (``BABBLE_BANK`` filler words, speaker
    :func:`_bank_speaker`, the rest drawn from ``(seed, split, 3, i)``), unit RMS; made on
    first use and kept for the process."""
    key = (seed, split, i)
    if key not in _BANK:
        rng = _rng(seed, split, 3, i)
        _BANK[key] = word_sound(FILLERS[int(rng.integers(len(FILLERS)))],
                                _bank_speaker(split, i),
                                int(rng.integers(len(ENGLISH_VOICES))),
                                int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1)),
                                int(rng.integers(PITCH[0], PITCH[1] + 1)), 0.0)
    return _BANK[key]


def _babble(n: int, rng: np.random.Generator, seed: int, split: str,
            exclude: int) -> np.ndarray:
    """Unit-RMS babble: ``BABBLE_TALKERS`` tracks, each bank words (none by speaker
    ``exclude``) one after the other with 0–100 ms gaps from a random start, summed."""
    words = [i for i in range(BABBLE_BANK) if _bank_speaker(split, i) != exclude]
    out = np.zeros(n)
    for _ in range(BABBLE_TALKERS):
        t = -int(rng.integers(0, FS))
        while t < n:
            w = _bank_word(seed, split, words[int(rng.integers(len(words)))])
            a, b = max(t, 0), min(t + len(w), n)
            if b > a:
                out[a:b] += w[a - t:b - t]
            t += len(w) + int(rng.integers(0, FS // 10))
    return out / np.sqrt(np.mean(out**2))


def _noise(kind: str, n: int, rng: np.random.Generator, seed: int, split: str,
           exclude: int) -> np.ndarray:
    if kind == "babble":
        return _babble(n, rng, seed, split, exclude)
    return coloured_noise(kind, n, rng)


PEAK_LIMIT = (SCALE - 0.5) / SCALE
"""The largest sample stored: anything that would round to ``±SCALE`` reads back as full
scale, which the audio front end counts as clipped audio."""


def _check_peak(x: np.ndarray, what: str) -> None:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak >= PEAK_LIMIT:
        n = int(np.sum(np.abs(x) >= PEAK_LIMIT))
        raise DataFormatError(f"{what}: {n} samples reach full scale (peak {peak:.3f} = "
                              f"{20 * np.log10(peak):+.2f} dBFS, limit {PEAK_LIMIT:.6f}: a "
                              f"stored sample must stay below {SCALE}); nothing is clipped — "
                              "lower LEVEL_DBFS")


# ----------------------------------------------------------------------------- clips

@dataclass(frozen=True)
class ClipSpec:
    """One clip's recipe. ``word = -1``: noise only (then speaker, voice, speed, pitch are
    −1/0 and ``level_dbfs`` is the level the noise is relative to); ``noise = None``: clean."""

    split: str
    index: int
    label: int
    word: int
    speaker: int
    voice: int
    speed_wpm: int
    pitch: int
    level_dbfs: float
    noise: str | None
    snr_db: float | None
    onset_frac: float


def plan_clips(split: str, per_class: int, seed: int = 0) -> list[ClipSpec]:
    """The clip recipes of one split: ``per_class`` clips of each of the 5 classes (labels
    ``index % 5``), speakers in turn from the split's speakers, the rest drawn from
    ``(seed, split, 0, index)``: filler word uniform over :data:`FILLERS` (noise only with
    probability :data:`NOISE_ONLY_SHARE` in class ``other``), voice uniform over
    ``ENGLISH_VOICES``, speed 140–210 wpm, pitch 25–75, level −40…−25 dBFS, SNR from
    (clean, 20, 10, 5, 0) dB (noise only: not clean), noise kind uniform over
    :data:`NOISE_KINDS`, onset uniform over the room the word leaves.

    Raises:
        ParameterError: an unknown split, ``per_class < 1``, ``seed < 0``.
    """
    check_choice(split, "split", SPLITS)
    per_class = check_int(per_class, "per_class", 1)
    seed = check_int(seed, "seed", 0)
    speakers = _split_speakers(split)
    out = []
    for index in range(per_class * len(CLASS_NAMES)):
        label, rep = index % len(CLASS_NAMES), index // len(CLASS_NAMES)
        rng = _rng(seed, split, 0, index)
        filler = int(rng.integers(len(FILLERS)))
        noise_only = label == OTHER and rng.random() < NOISE_ONLY_SHARE
        voice = int(rng.integers(len(ENGLISH_VOICES)))
        speed = int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1))
        pitch = int(rng.integers(PITCH[0], PITCH[1] + 1))
        level = float(rng.uniform(*LEVEL_DBFS))
        snrs = SNRS_DB[1:] if noise_only else SNRS_DB
        snr = snrs[int(rng.integers(len(snrs)))]
        kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
        onset = float(rng.random())
        word = label if label < OTHER else len(KEYWORDS) + filler
        out.append(ClipSpec(
            split=split, index=index, label=label, word=-1 if noise_only else word,
            speaker=-1 if noise_only else speakers[(rep + label) % len(speakers)],
            voice=-1 if noise_only else voice, speed_wpm=0 if noise_only else speed,
            pitch=0 if noise_only else pitch, level_dbfs=level,
            noise=None if snr is None else kind, snr_db=snr, onset_frac=onset))
    return out


def render_clip(spec: ClipSpec, seed: int = 0,
                with_noise: bool = True) -> tuple[np.ndarray, float, float]:
    """``(audio [16000] float64 full scale, onset_s, offset_s)`` of one recipe: the word
    (:func:`word_sound`) placed at ``onset_s = 0.02 + onset_frac · (1 − 0.04 − duration)`` s,
    plus noise of RMS ``10^((level_dbfs − snr_db)/20)`` drawn from ``(seed, split, 1, index)``
    (``with_noise=False``: the clean word alone, for checks). Noise only: NaN onset and offset.

    Raises:
        DataFormatError: the word is longer than the clip allows (0.96 s), or a sample
            exceeds full scale.
    """
    n = round(CLIP_S * FS)
    audio = np.zeros(n)
    onset = offset = float("nan")
    if spec.word >= 0:
        x = word_sound(VOCABULARY[spec.word], spec.speaker, spec.voice, spec.speed_wpm,
                       spec.pitch, spec.level_dbfs)
        room = n - 2 * round(MARGIN_S * FS) - len(x)
        if room < 0:
            raise DataFormatError(f"clip {spec.split}/{spec.index}: the word "
                                  f"{VOCABULARY[spec.word]!r} lasts {len(x) / FS:.3f} s, longer "
                                  f"than the {CLIP_S - 2 * MARGIN_S:.2f} s a clip allows")
        start = round(MARGIN_S * FS) + int(spec.onset_frac * room)
        audio[start:start + len(x)] = x
        onset, offset = start / FS, (start + len(x)) / FS
    if with_noise and spec.noise is not None and spec.snr_db is not None:
        rng = _rng(seed, spec.split, 1, spec.index)
        noise = _noise(spec.noise, n, rng, seed, spec.split, spec.speaker)
        audio = audio + noise * 10 ** ((spec.level_dbfs - spec.snr_db) / 20)
    _check_peak(audio, f"clip {spec.split}/{spec.index}")
    return audio, onset, offset


def _clip_job(args: tuple[ClipSpec, int]) -> tuple[np.ndarray, float, float]:
    return render_clip(*args)


# ----------------------------------------------------------------------------- streams

def render_stream(split: str, index: int, stream_s: float = 60.0, seed: int = 0
                  ) -> tuple[np.ndarray, dict[str, Any], list[dict[str, Any]]]:
    """``(audio [stream_s · FS], info, events)`` of stream ``index`` of a split.

    Drawn from ``(seed, split, 2, index)``: a nominal level (−40…−25 dBFS), SNR from
    (20, 10, 5, 0) dB and noise kind; noise of RMS ``10^((level − snr)/20)`` throughout. From
    ``t = 0``: with probability :data:`QUIET_SHARE` a quiet stretch of 3–8 s, then a gap of
    0.3–2 s, then a word — a keyword with probability :data:`KEYWORD_SHARE` (uniform over
    them) else a filler — by a speaker of the split, at the nominal level ±3 dB; words that
    would end past ``stream_s − 0.3`` s end the stream. ``events`` holds one dict per word
    (``onset_s``, ``offset_s``: the word's extent; ``label`` 0–4, ``word``, ``speaker``,
    ``level_dbfs``); ``info`` the stream's ``noise``, ``snr_db``, ``level_dbfs``.

    Raises:
        ParameterError: an unknown split, ``index < 0``, ``stream_s < 1``.
        DataFormatError: a sample exceeds full scale.
    """
    check_choice(split, "split", SPLITS)
    index = check_int(index, "stream index", 0)
    stream_s = check_real(stream_s, "stream_s", 1.0)
    seed = check_int(seed, "seed", 0)
    rng = _rng(seed, split, 2, index)
    speakers = _split_speakers(split)
    level = float(rng.uniform(*LEVEL_DBFS))
    snr = STREAM_SNRS_DB[int(rng.integers(len(STREAM_SNRS_DB)))]
    kind = NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))]
    n = round(stream_s * FS)
    audio = np.zeros(n)
    events = []
    t = 0.0
    while True:
        if rng.random() < QUIET_SHARE:
            t += float(rng.uniform(*QUIET_S))
        t += float(rng.uniform(*GAP_S))
        label = int(rng.integers(len(KEYWORDS))) if rng.random() < KEYWORD_SHARE else OTHER
        word = label if label < OTHER else len(KEYWORDS) + int(rng.integers(len(FILLERS)))
        spk = speakers[int(rng.integers(len(speakers)))]
        w_level = level + float(rng.uniform(-STREAM_LEVEL_JITTER_DB, STREAM_LEVEL_JITTER_DB))
        params = (spk, int(rng.integers(len(ENGLISH_VOICES))),
                  int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1)),
                  int(rng.integers(PITCH[0], PITCH[1] + 1)))
        start = round(t * FS)
        if start >= n:
            break
        x = word_sound(VOCABULARY[word], *params, w_level)
        if start + len(x) > n - round(GAP_S[0] * FS):
            break
        audio[start:start + len(x)] += x
        events.append({"onset_s": start / FS, "offset_s": (start + len(x)) / FS,
                       "label": label, "word": word, "speaker": spk, "level_dbfs": w_level})
        t = (start + len(x)) / FS
    noise = _noise(kind, n, np.random.default_rng([seed, SPLITS.index(split), 4, index]),
                   seed, split, -1)
    audio += noise * 10 ** ((level - snr) / 20)
    _check_peak(audio, f"stream {split}/{index}")
    return audio, {"noise": kind, "snr_db": snr, "level_dbfs": level}, events


def _stream_job(args: tuple[str, int, float, int]) -> tuple[np.ndarray, dict, list]:
    return render_stream(*args)


def non_keyword_seconds(stream: np.ndarray, onset_s: np.ndarray, offset_s: np.ndarray,
                        label: np.ndarray, stream_s: float, n_streams: int,
                        guard_s: float = 0.0) -> float:
    """Seconds of stream audio outside every keyword: ``n_streams · stream_s`` less the union,
    per stream, of the keyword events' windows ``[onset_s, min(offset_s + guard_s, stream_s)]``
    (``label < 4``). With ``guard_s = 0`` and disjoint events that is
    ``n_streams · stream_s − Σ_keywords (offset_s − onset_s)``, the ``non_keyword_s`` of the
    files. False alarms per hour = ``3600 · false alarms / non_keyword_seconds(...)``.

    Raises:
        ParameterError: ``guard_s < 0``, ``stream_s ≤ 0``, ``n_streams < 0``.
    """
    guard_s = check_real(guard_s, "guard_s", 0.0)
    stream_s = check_real(stream_s, "stream_s", 0.0, None, low_open=True)
    n_streams = check_int(n_streams, "n_streams", 0)
    keep = np.asarray(label) < OTHER
    covered = 0.0
    for k in np.unique(np.asarray(stream)[keep]):
        sel = keep & (np.asarray(stream) == k)
        order = np.argsort(np.asarray(onset_s, dtype=np.float64)[sel], kind="stable")
        on = np.asarray(onset_s, dtype=np.float64)[sel][order]
        off = np.minimum(np.asarray(offset_s, dtype=np.float64)[sel][order] + guard_s, stream_s)
        end = -np.inf
        for a, b in zip(on, off, strict=True):
            covered += max(0.0, b - max(a, end))
            end = max(end, b)
    return float(n_streams * stream_s - covered)


# ----------------------------------------------------------------------------- files

def file_name(split: str) -> str:
    """``keywords_{split}.h5``."""
    check_choice(split, "split", SPLITS)
    return f"keywords_{split}.h5"


def default_dir() -> Path:
    """``<data dir>/keywords``: ``$SPIKELOOP_DATA/keywords`` when ``SPIKELOOP_DATA`` is set,
    else ``data/keywords`` (where :func:`spikeloop.data.find` looks for it)."""
    return data_dir() / "keywords"


def _strings(values: Sequence[str]) -> list[bytes]:
    return [v.encode() for v in values]


def _write(path: Path, seed: int, split: str, specs: list[ClipSpec],
           clips: list[tuple[np.ndarray, float, float]], stream_s: float,
           streams: list[tuple[np.ndarray, dict, list]]) -> None:
    import h5py

    def ds(group: Any, name: str, data: Any, dtype: Any = None) -> None:
        group.create_dataset(name, data=data, dtype=dtype, track_times=False)

    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "spikeloop-keywords", "version": 1, "fs": FS, "scale": SCALE,
                        "seed": seed, "split": split})
        for name, values in (("keys", CLASS_NAMES), ("vocabulary", VOCABULARY),
                             ("speakers", SPEAKERS), ("voices", ENGLISH_VOICES),
                             ("noise_kinds", NOISE_KINDS)):
            ds(f, name, _strings(values))
        c = f.create_group("clips")
        audio = np.stack([a for a, _, _ in clips]) if clips else np.zeros((0, round(CLIP_S * FS)))
        ds(c, "audio", np.rint(audio * SCALE).astype(np.int16))
        c["audio"].attrs.update({"fs": FS, "scale": SCALE})
        ds(c, "labels", np.array([s.label for s in specs], np.uint8))
        ds(c, "onset_s", np.array([o for _, o, _ in clips], np.float32))
        ds(c, "offset_s", np.array([o for _, _, o in clips], np.float32))
        for name in ("word", "speaker", "voice", "speed_wpm", "pitch"):
            ds(c, name, np.array([getattr(s, name) for s in specs], np.int16))
        ds(c, "level_dbfs", np.array([s.level_dbfs for s in specs], np.float32))
        ds(c, "noise", np.array([-1 if s.noise is None else NOISE_KINDS.index(s.noise)
                                 for s in specs], np.int8))
        ds(c, "snr_db", np.array([np.nan if s.snr_db is None else s.snr_db for s in specs],
                                 np.float32))
        s = f.create_group("streams")
        n = round(stream_s * FS)
        ds(s, "audio", np.stack([np.rint(a * SCALE).astype(np.int16) for a, _, _ in streams])
           if streams else np.zeros((0, n), np.int16))
        s["audio"].attrs.update({"fs": FS, "scale": SCALE})
        ds(s, "noise", np.array([NOISE_KINDS.index(i["noise"]) for _, i, _ in streams], np.int8))
        ds(s, "snr_db", np.array([i["snr_db"] for _, i, _ in streams], np.float32))
        ds(s, "level_dbfs", np.array([i["level_dbfs"] for _, i, _ in streams], np.float32))
        rows = [(k, e) for k, (_, _, ev) in enumerate(streams) for e in ev]
        e = s.create_group("events")
        ds(e, "stream", np.array([k for k, _ in rows], np.int32))
        for name, dtype in (("onset_s", np.float64), ("offset_s", np.float64),
                            ("label", np.uint8), ("word", np.int16), ("speaker", np.int16),
                            ("level_dbfs", np.float32)):
            ds(e, name, np.array([r[name] for _, r in rows], dtype))
        s.attrs["stream_s"] = stream_s
        s.attrs["non_keyword_s"] = non_keyword_seconds(
            e["stream"][()], e["onset_s"][()], e["offset_s"][()], e["label"][()], stream_s,
            len(streams))


def _maker_args(out: Any, default: Callable[[], Path], per_class: Any, test_per_class: Any,
                seed: Any, jobs: Any, progress: Any, splits: Sequence[str]
                ) -> tuple[Path, int, int, int, int]:
    """The arguments every maker of a synthesised audio set takes (keywords, ambient),
    checked, and espeak-ng present: ``(out_dir, per_class, test_per_class, seed, jobs)``."""
    out_dir = default() if out is None else check_path(out, "out")
    values = (check_int(per_class, "per_class", 1), check_int(test_per_class, "test_per_class", 1),
              check_int(seed, "seed", 0), check_int(jobs, "jobs", 1))
    check_bool(progress, "progress")
    for s in splits:
        check_choice(s, "splits", SPLITS)
    _espeak_program()
    return (out_dir, *values)


def make_keywords(out: str | os.PathLike[str] | None = None, *, per_class: int = 800,
                  test_per_class: int = 100, n_streams: int = 12, train_streams: int = 12,
                  stream_s: float = 60.0, seed: int = 0, jobs: int = 1, progress: bool = True,
                  splits: tuple[str, ...] = SPLITS) -> dict[str, Path]:
    """Synthesise the clips and streams of each split and write ``keywords_{split}.h5``;
    return ``{split: path}``.

    Args:
        out: output folder (default :func:`default_dir`), created if missing.
        per_class: clips per class in the train split (5 classes).
        test_per_class: clips per class in the test split.
        n_streams: streams in the test split (0: none).
        train_streams: streams in the train split (0: none).
        stream_s: length of a stream, seconds.
        seed: fixes every byte of the files.
        jobs: worker processes (1: none).
        progress: show tqdm bars.

    Raises:
        MissingDataError: espeak-ng is not installed.
        ParameterError / ArgumentTypeError: a bad argument.

    Example:
        >>> make_keywords("/tmp/kws", per_class=2, test_per_class=2, n_streams=1,
        ...               train_streams=0, stream_s=10, progress=False)  # doctest: +SKIP
    """
    out_dir, per_class, test_per_class, seed, jobs = _maker_args(
        out, default_dir, per_class, test_per_class, seed, jobs, progress, splits)
    n_streams = check_int(n_streams, "n_streams", 0)
    train_streams = check_int(train_streams, "train_streams", 0)
    stream_s = check_real(stream_s, "stream_s", 1.0)
    paths = {}
    for split in splits:
        specs = plan_clips(split, per_class if split == "train" else test_per_class, seed)
        clips = run_tasks(_clip_job, [(s, seed) for s in specs], jobs, progress,
                          f"keyword clips {split}", "clip")
        k = train_streams if split == "train" else n_streams
        streams = run_tasks(_stream_job, [(split, i, stream_s, seed) for i in range(k)], jobs,
                            progress, f"keyword streams {split}", "stream")
        path = out_dir / file_name(split)

        def write(tmp: Path, split: str = split, specs: list = specs, clips: list = clips,
                  streams: list = streams) -> None:
            _write(tmp, seed, split, specs, clips, stream_s, streams)

        atomic_write(path, write)
        paths[split] = path
    return paths


# ----------------------------------------------------------------------------- reading

_CLIP_FIELDS = ("labels", "onset_s", "offset_s", "word", "speaker", "voice", "speed_wpm",
                "pitch", "level_dbfs", "noise", "snr_db")
_EVENT_FIELDS = ("stream", "onset_s", "offset_s", "label", "word", "speaker", "level_dbfs")


@dataclass
class KeywordsFile:
    """The content of one ``keywords_{split}.h5`` in memory.

    ``clips`` float32 ``[N, n]`` (full scale 1.0), ``labels`` int64 ``[N]``, ``clip_meta``
    every other ``clips/*`` field by name (NumPy arrays); ``streams`` float32 ``[S, n_s]``,
    ``stream_meta`` (``noise``, ``snr_db``, ``level_dbfs``), ``events`` the events table
    (one array per column), ``stream_s`` and ``non_keyword_s`` (seconds of stream audio
    outside every keyword event). ``keys``: class names; ``vocabulary``, ``speakers``,
    ``voices``, ``noise_kinds``: what the index fields point into.
    """

    path: Path
    fs: int
    split: str
    keys: list[str]
    vocabulary: list[str]
    speakers: list[str]
    voices: list[str]
    noise_kinds: list[str]
    clips: np.ndarray
    labels: np.ndarray
    clip_meta: dict[str, np.ndarray]
    streams: np.ndarray
    stream_meta: dict[str, np.ndarray]
    events: dict[str, np.ndarray]
    stream_s: float
    non_keyword_s: float

    def stream_events(self, k: int) -> dict[str, np.ndarray]:
        """The events of stream ``k`` (every column of ``events``, rows of that stream, in
        onset order).

        Raises:
            ParameterError: ``k`` outside ``0 … S − 1``.
        """
        k = check_int(k, "stream index", 0, len(self.streams) - 1)
        rows = self.events["stream"] == k
        return {name: column[rows] for name, column in self.events.items()}


def _need(f: Any, name: str, path: Path) -> Any:
    import h5py

    if name not in f:
        raise DataFormatError(f"{path}: no {name!r} — not the keywords layout (see "
                              "spikeloop.data.keywords: clips/audio, clips/labels, …, "
                              "streams/events/…)")
    node = f[name]
    if not isinstance(node, h5py.Dataset):
        raise DataFormatError(f"{path}: {name!r} must be a data set, got a group")
    return node


def _read_audio(f: Any, group: str, path: Path) -> tuple[np.ndarray, int, float]:
    """``{group}/audio`` of an open keywords or ambient file, checked: int16 samples
    ``[N, n]``, its ``fs`` and its ``scale``."""
    node = _need(f, f"{group}/audio", path)
    if node.dtype != np.int16 or node.ndim != 2:
        raise DataFormatError(f"{path}: {group}/audio must be int16 [N, n], got "
                              f"{node.dtype} {node.shape}")
    for attr in ("fs", "scale"):
        if attr not in node.attrs:
            raise DataFormatError(f"{path}: {group}/audio lacks the attribute {attr!r}")
    return node[()], int(node.attrs["fs"]), float(node.attrs["scale"])


def _how() -> str:
    return DATA_SETS["keywords"].how


def read_keywords(path: str | os.PathLike[str]) -> KeywordsFile:
    """Read a keywords file (the layout in the module docstring); audio as float32
    ``int16 / scale``.

    Raises:
        MissingDataError: ``path`` does not exist (names it and ``make keywords``).
        DataFormatError: not an HDF5 file; a missing data set (named); audio not int16 or not
            2-d; ``fs`` or ``scale`` missing; per-clip or per-event fields whose lengths
            differ from the number of clips/events; a label outside ``0 … len(keys) − 1``;
            an event outside its stream, of negative length, or overlapping the one before.
    """
    import h5py

    path = check_path(path, "read_keywords: path")
    if not path.is_file():
        raise MissingDataError(f"keywords file not found: {path}. To get it, {_how()}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataFormatError(f"{path}: not an HDF5 file ({e})") from None
    with f:
        names = {k: [x.decode() if isinstance(x, bytes) else str(x)
                     for x in _need(f, k, path)[()]]
                 for k in ("keys", "vocabulary", "speakers", "voices", "noise_kinds")}
        audio = {group: _read_audio(f, group, path) for group in ("clips", "streams")}
        clip_meta = {k: _need(f, f"clips/{k}", path)[()] for k in _CLIP_FIELDS}
        stream_meta = {k: _need(f, f"streams/{k}", path)[()]
                       for k in ("noise", "snr_db", "level_dbfs")}
        events = {k: _need(f, f"streams/events/{k}", path)[()] for k in _EVENT_FIELDS}
        attrs = dict(f["streams"].attrs)
        split = str(f.attrs.get("split", ""))
    for k in ("stream_s", "non_keyword_s"):
        if k not in attrs:
            raise DataFormatError(f"{path}: streams lacks the attribute {k!r}")
    (clips, fs, scale), (streams, fs_s, _) = audio["clips"], audio["streams"]
    if fs != fs_s:
        raise DataFormatError(f"{path}: clips at {fs} Hz but streams at {fs_s} Hz")
    _same_length(path, "clips", len(clips), clip_meta)
    _same_length(path, "streams", len(streams), stream_meta)
    _same_length(path, "streams/events", len(events["stream"]), events)
    labels = clip_meta.pop("labels").astype(np.int64)
    n_keys = len(names["keys"])
    for what, lab in (("clips/labels", labels), ("streams/events/label", events["label"])):
        if lab.size and (lab.min() < 0 or lab.max() >= n_keys):
            raise DataFormatError(f"{path}: {what} must lie in 0 … {n_keys - 1} (one per "
                                  f"entry of keys), got {lab.min()} … {lab.max()}")
    stream_s = float(attrs["stream_s"])
    _check_events(path, events, len(streams), stream_s)
    return KeywordsFile(
        path=path, fs=fs, split=split, **names,
        clips=(clips / np.float32(scale)).astype(np.float32), labels=labels,
        clip_meta=clip_meta, streams=(streams / np.float32(scale)).astype(np.float32),
        stream_meta=stream_meta, events=events, stream_s=stream_s,
        non_keyword_s=float(attrs["non_keyword_s"]))


def _same_length(path: Path, group: str, n: int, fields: dict[str, np.ndarray]) -> None:
    for k, v in fields.items():
        if np.ndim(v) != 1 or len(v) != n:
            raise DataFormatError(f"{path}: {group}/{k} has shape {np.shape(v)}; one entry per "
                                  f"row ({n}) expected")


def _check_events(path: Path, ev: dict[str, np.ndarray], n_streams: int,
                  stream_s: float) -> None:
    s, on, off = ev["stream"], ev["onset_s"], ev["offset_s"]
    if not s.size:
        return
    bad = (s < 0) | (s >= n_streams) | (on < 0) | (off > stream_s + 1e-9) | (off <= on)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataFormatError(f"{path}: event {i} (stream {s[i]}, {on[i]:.3f}–{off[i]:.3f} s) "
                              f"lies outside the streams (0 … {n_streams - 1}, 0 … "
                              f"{stream_s:g} s) or has no length")
    same = s[1:] == s[:-1]
    bad = (s[1:] < s[:-1]) | (same & (on[1:] < off[:-1]))
    if bad.any():
        i = int(np.argmax(bad)) + 1
        raise DataFormatError(f"{path}: event {i} (stream {s[i]}, onset {on[i]:.3f} s) "
                              f"overlaps or precedes event {i - 1} (stream {s[i - 1]}, ends "
                              f"{off[i - 1]:.3f} s): events must be sorted and disjoint")


# ----------------------------------------------------------------------------- torch

class KeywordClips(Dataset):
    """The clips of one split as a ``torch.utils.data`` map-style data set.

    ``dataset[i]`` is ``(x, label)``: without a ``frontend``, ``x`` is the clip's audio, a
    float32 tensor ``[n]`` (full scale 1.0; :func:`~spikeloop.data.loading.time_major_collate`
    stacks it into ``[n, B]``); with one, ``x = frontend(audio[None, :], fs)[0]`` — a front end
    maps audio ``[B, n]`` at ``fs`` Hz to counts ``[B, T, C]``, so ``x`` is ``[T, C]`` and the
    collate gives ``[T, B, C]``.

    ``path`` is the file itself or a folder holding ``keywords_{split}.h5``. Attributes:
    ``labels`` (int64 ``[N]``), ``n_classes`` (5), ``sample_shape``, ``keys``, ``fs``, ``data``
    (the :class:`KeywordsFile`, streams included).

    Raises:
        MissingDataError: the file is not there (names the path and ``make keywords``).
        ParameterError: an unknown split; ArgumentTypeError: a frontend that is not callable.
        DataFormatError: a malformed file (:func:`read_keywords`).
    """

    NAME = "keywords"
    """The catalog's name of the data set; files are ``{NAME}_{split}.h5``."""

    @staticmethod
    def read(path: Path) -> Any:
        """The file's content (:func:`read_keywords`)."""
        return read_keywords(path)

    def __init__(self, path: str | os.PathLike[str], split: str = "train",
                 frontend: Callable[[Any, int], Any] | None = None) -> None:
        who = type(self).__name__
        self.split = check_choice(split, f"{who}: split", SPLITS)
        p = check_path(path, f"{who}: path")
        if not p.is_file():
            candidate = p / f"{self.NAME}_{split}.h5"
            if not candidate.is_file():
                raise MissingDataError(f"{self.NAME} {split} split not found: searched "
                                       f"{candidate if p.is_dir() else p}. To get it, "
                                       f"{DATA_SETS[self.NAME].how}")
            p = candidate
        if frontend is not None and not callable(frontend):
            raise ArgumentTypeError(f"{who}: frontend must be callable (audio [B, n], "
                                    f"fs) -> counts [B, T, C], got {show(frontend)}")
        self.path = p
        self.data = self.read(p)
        self.frontend = frontend
        self.labels = self.data.labels
        self.keys = self.data.keys
        self.n_classes = len(self.keys)
        self.fs = self.data.fs
        self._sample_shape: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        import torch

        n = len(self)
        index = check_int(index, f"{type(self).__name__}: index", -n, n - 1) % n
        x = torch.from_numpy(self.data.clips[index].copy())
        if self.frontend is not None:
            x = self.frontend(x[None, :], self.fs)[0]
        return x, int(self.labels[index])

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """A sample's shape after the time axis: ``()`` for audio, ``(C,)`` through a front end
        (measured on clip 0 when first read)."""
        if self._sample_shape is None:
            if len(self) == 0:
                raise ParameterError(f"{type(self).__name__}: sample_shape of an empty split "
                                     "is unknown")
            self._sample_shape = tuple(self[0][0].shape[1:])
        return self._sample_shape

    def __repr__(self) -> str:
        streams = getattr(self.data, "streams", None)
        extra = "" if streams is None else f", {len(streams)} streams"
        return (f"{type(self).__name__}({str(self.path)!r}, split={self.split!r}: {len(self)} "
                f"clips, {self.n_classes} classes, fs={self.fs} Hz{extra})")
