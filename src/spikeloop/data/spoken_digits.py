"""Spoken digits synthesised with espeak-ng, encoded as spike trains, in the SHD layout.

The 20 classes of the Spiking Heidelberg Digits (SHD): labels 0–9 are the English words
"zero" … "nine", 10–19 the German words "null" … "neun" (:data:`KEYS`). Each utterance is one
word spoken by one of the :data:`SPEAKERS` (an espeak-ng voice variant: ``m1``, ``f3``,
``Annie`` …) in an English accent drawn from :data:`ENGLISH_VOICES` (German: ``de``), at a
random speed and pitch, scaled to a random level in dB SPL, with background noise (none, white
or pink at a few SNRs) and a random onset delay. Every choice is drawn from a generator seeded
by ``(seed, split, index)``, so a seed fixes every sample.

The speakers in :data:`TEST_SPEAKERS` speak only in the test split; the others only in the
train split. ``extra/speaker`` holds the index into :data:`SPEAKERS`.

Each sound is turned into 700 spike trains by :func:`spikeloop.data.cochlea.cochlea_spikes`
(``encoder="cochlea"``) or by the baseline :func:`spikeloop.data.cochlea.spectrogram_spikes`
(``encoder="spectrogram"``) and the split is written with :func:`spikeloop.data.shd.write_shd`
as ``spoken_digits_{train,test}.h5`` (baseline: ``spoken_digits_spectrogram_{train,test}.h5``).

Needs the espeak-ng program (Debian package ``espeak-ng``); nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spikeloop._files import atomic_write
from spikeloop.checks import check_bool, check_choice, check_int, check_path
from spikeloop.data.catalog import data_dir
from spikeloop.data.cochlea import P_REF, cochlea_spikes, spectrogram_spikes
from spikeloop.data.shd import write_shd
from spikeloop.errors import DataFormatError, MissingDataError, ParameterError

__all__ = [
    "ENCODER_NAMES",
    "ENGLISH_VOICES",
    "KEYS",
    "SPEAKERS",
    "SPLITS",
    "TEST_SPEAKERS",
    "Utterance",
    "coloured_noise",
    "default_dir",
    "encode",
    "espeak",
    "file_name",
    "make_spoken_digits",
    "plan",
    "render",
    "run_tasks",
]

ENGLISH = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GERMAN = ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
KEYS: tuple[str, ...] = ENGLISH + GERMAN
"""Class names by label: 0–9 English ``zero`` … ``nine``, 10–19 German ``null`` … ``neun``."""

ENGLISH_VOICES = ("en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
                  "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
"""espeak-ng English voices (accents); German words use the voice ``de``."""

SPEAKERS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "Alex", "Andy", "Annie", "Denis", "Gene", "Jacky", "Lee", "Mike", "anika", "belinda",
    "benjamin", "david", "edward", "linda", "max", "norbert", "paul", "robert", "steph",
)
"""espeak-ng voice variants, the "speakers" of the data set (``extra/speaker`` indexes this)."""

TEST_SPEAKERS: tuple[str, ...] = ("m3", "f2", "Annie", "david", "norbert", "steph")
"""Speakers held out: they speak only in the test split."""

SPLITS = ("train", "test")
ENCODER_NAMES = ("cochlea", "spectrogram")
SNRS_DB = (None, 20.0, 10.0, 5.0)
"""Signal-to-noise ratios drawn per utterance (None: no noise)."""
NOISES = ("white", "pink")
SPEED_WPM = (120, 200)
PITCH = (25, 75)
LEVEL_DB = (55.0, 75.0)
ONSET_S = (0.0, 0.05)
ESPEAK_FS = 22050.0
"""espeak-ng's sampling rate in Hz."""


@dataclass(frozen=True)
class Utterance:
    """One sample's recipe: the word (``label``), who says it, how, and in what noise."""

    split: str
    index: int
    label: int
    speaker: int
    voice: str
    speed_wpm: int
    pitch: int
    level_db: float
    noise: str | None
    snr_db: float | None
    onset_s: float

    @property
    def word(self) -> str:
        """The word spoken."""
        return KEYS[self.label]


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), index])


def plan(split: str, per_class: int, seed: int = 0) -> list[Utterance]:
    """The recipes of one split: ``per_class`` utterances of each of the 20 classes (train) or
    ``max(1, per_class // 4)`` (test), speakers taken in turn from the split's speakers (train:
    :data:`SPEAKERS` less :data:`TEST_SPEAKERS`; test: :data:`TEST_SPEAKERS`), the rest drawn
    from ``(seed, split, index)``: English voice uniform over :data:`ENGLISH_VOICES`, speed
    120–200 wpm, pitch 25–75, level 55–75 dB SPL, SNR from (none, 20, 10, 5) dB with white
    or pink noise, onset delay 0–50 ms.

    Raises:
        ParameterError: an unknown split, ``per_class < 1``.
    """
    check_choice(split, "split", SPLITS)
    per_class = check_int(per_class, "per_class", 1)
    seed = check_int(seed, "seed", 0)
    speakers = [i for i, s in enumerate(SPEAKERS) if (s in TEST_SPEAKERS) == (split == "test")]
    n = per_class if split == "train" else max(1, per_class // 4)
    out = []
    for index in range(n * len(KEYS)):
        label, rep = index % len(KEYS), index // len(KEYS)
        rng = _rng(seed, split, index)
        voice = "de" if label >= 10 else ENGLISH_VOICES[int(rng.integers(len(ENGLISH_VOICES)))]
        snr = SNRS_DB[int(rng.integers(len(SNRS_DB)))]
        noise = NOISES[int(rng.integers(len(NOISES)))]
        out.append(Utterance(
            split=split, index=index, label=label,
            speaker=speakers[(rep + label) % len(speakers)], voice=voice,
            speed_wpm=int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1)),
            pitch=int(rng.integers(PITCH[0], PITCH[1] + 1)),
            level_db=float(rng.uniform(*LEVEL_DB)),
            noise=None if snr is None else noise, snr_db=snr,
            onset_s=float(rng.uniform(*ONSET_S)),
        ))
    return out


def _espeak_program() -> str:
    path = shutil.which("espeak-ng")
    if path is None:
        searched = os.environ.get("PATH", "")
        raise MissingDataError(f"the program espeak-ng was not found on PATH ({searched}); "
                               f"install the Debian package espeak-ng "
                               f"(apt-get install espeak-ng)")
    return path


def espeak(text: str, voice: str, speed_wpm: int = 175, pitch: int = 50) -> np.ndarray:
    """The waveform of ``text`` spoken by espeak-ng (``-v voice -s speed_wpm -p pitch``), as
    float64 samples in ``[-1, 1]`` at :data:`ESPEAK_FS` Hz.

    Raises:
        MissingDataError: espeak-ng is not installed (names the Debian package).
        ParameterError: speed outside 80–450 wpm, pitch outside 0–99, or espeak-ng fails (an
            unknown voice).
        DataFormatError: its output is not a 16-bit mono WAV stream.
    """
    speed_wpm = check_int(speed_wpm, "speed_wpm", 80, 450)
    pitch = check_int(pitch, "pitch", 0, 99)
    prog = _espeak_program()
    res = subprocess.run([prog, "-v", voice, "-s", str(speed_wpm), "-p", str(pitch), "--stdout",
                          text], capture_output=True, check=False)
    if res.returncode != 0 or len(res.stdout) <= 44:
        raise ParameterError(f"espeak-ng -v {voice!r} failed for {text!r} (exit code "
                             f"{res.returncode}): {res.stderr.decode(errors='replace').strip()}")
    return _wav_samples(res.stdout)


def _wav_samples(data: bytes) -> np.ndarray:
    """16-bit mono PCM samples of a WAV byte stream (espeak-ng's ``--stdout`` leaves the
    lengths in the header unset, so the data run to the end of the stream)."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DataFormatError("espeak-ng output is not a WAV stream (no RIFF/WAVE header)")
    fmt = data.find(b"fmt ")
    pos = data.find(b"data", 12)
    if fmt < 0 or pos < 0:
        raise DataFormatError("espeak-ng output has no 'fmt ' or 'data' chunk")
    channels = int.from_bytes(data[fmt + 10:fmt + 12], "little")
    fs = int.from_bytes(data[fmt + 12:fmt + 16], "little")
    bits = int.from_bytes(data[fmt + 22:fmt + 24], "little")
    if channels != 1 or bits != 16 or fs != int(ESPEAK_FS):
        raise DataFormatError(f"espeak-ng output must be 16-bit mono at {ESPEAK_FS:g} Hz, got "
                              f"{bits}-bit, {channels} channels, {fs} Hz")
    raw = data[pos + 8:]
    raw = raw[:len(raw) // 2 * 2]
    return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0


def coloured_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-RMS white noise (``kind="white"``: i.i.d. normal), or pink noise
    (``kind="pink"``: power ∝ 1/f, the white noise's spectrum divided by ``√f`` and its DC bin
    set to 0), rescaled to ``mean(x²) = 1``. Shared by the synthesised spoken digits and
    :mod:`spikeloop.data.keywords`.

    Raises:
        ParameterError: an unknown ``kind``, ``n < 1``.
    """
    check_choice(kind, "noise kind", NOISES)
    n = check_int(n, "noise length n", 1)
    w = rng.standard_normal(n)
    if kind == "pink":
        spec = np.fft.rfft(w)
        f = np.arange(len(spec), dtype=np.float64)
        f[0] = 1.0
        spec /= np.sqrt(f)
        spec[0] = 0.0
        w = np.fft.irfft(spec, n)
    return w / np.sqrt(np.mean(w**2))


def render(utt: Utterance, seed: int = 0) -> tuple[np.ndarray, float]:
    """The sound of one recipe in pascals at :data:`ESPEAK_FS` Hz: the espeak-ng waveform,
    delayed by ``onset_s``, scaled to an RMS of ``20 µPa · 10^(level_db/20)``, plus noise of
    RMS ``speech RMS · 10^(-snr_db/20)`` (noise drawn from ``(seed, split, index)``)."""
    speech = espeak(utt.word, f"{utt.voice}+{SPEAKERS[utt.speaker]}", utt.speed_wpm, utt.pitch)
    speech = np.concatenate([np.zeros(round(utt.onset_s * ESPEAK_FS)), speech])
    rms = float(np.sqrt(np.mean(speech**2)))
    if rms == 0.0:
        raise DataFormatError(f"espeak-ng produced silence for {utt}")
    target = P_REF * 10.0 ** (utt.level_db / 20.0)
    sound = speech * (target / rms)
    if utt.noise is not None and utt.snr_db is not None:
        rng = np.random.default_rng([seed, SPLITS.index(utt.split), utt.index, 1])
        noise = coloured_noise(utt.noise, len(sound), rng)
        sound = sound + noise * (target * 10 ** (-utt.snr_db / 20))
    return sound, ESPEAK_FS


def encode(utt: Utterance, seed: int = 0,
           encoder: str = "cochlea") -> tuple[np.ndarray, np.ndarray]:
    """``(times_s, units)`` of one recipe under ``encoder`` (``"cochlea"`` or
    ``"spectrogram"``, default parameters)."""
    check_choice(encoder, "encoder", ENCODER_NAMES)
    sound, fs = render(utt, seed)
    if encoder == "cochlea":
        return cochlea_spikes(sound, fs)
    return spectrogram_spikes(sound, fs)


def file_name(split: str, encoder: str = "cochlea") -> str:
    """``spoken_digits_{split}.h5`` (cochlea) or ``spoken_digits_spectrogram_{split}.h5``."""
    check_choice(split, "split", SPLITS)
    check_choice(encoder, "encoder", ENCODER_NAMES)
    return f"spoken_digits_{split}.h5" if encoder == "cochlea" else \
        f"spoken_digits_{encoder}_{split}.h5"


def default_dir() -> Path:
    """``<data dir>/spoken_digits``: ``$SPIKELOOP_DATA/spoken_digits`` when ``SPIKELOOP_DATA``
    is set, else ``data/spoken_digits`` (:func:`spikeloop.data.catalog.data_dir`, where
    :func:`spikeloop.data.find` looks for it)."""
    return data_dir() / "spoken_digits"


def _job(args: tuple[Utterance, int, str]) -> tuple[np.ndarray, np.ndarray]:
    return encode(*args)


def make_spoken_digits(out: str | os.PathLike[str] | None = None, *, per_class: int = 120,
                       seed: int = 0, encoder: str = "cochlea", jobs: int = 1,
                       progress: bool = True,
                       splits: tuple[str, ...] = SPLITS) -> dict[str, Path]:
    """Synthesise, encode and write the splits; return ``{split: path}``.

    Args:
        out: output folder (default :func:`default_dir`), created if missing.
        per_class: training utterances per class (test: ``max(1, per_class // 4)``); the
            default 120 gives 2400 train and 600 test utterances.
        seed: fixes every sample (same seed → same arrays).
        encoder: ``"cochlea"`` or ``"spectrogram"``.
        jobs: worker processes (1: none).
        progress: show a tqdm bar per split.

    Raises:
        MissingDataError: espeak-ng is not installed.
        ParameterError / ArgumentTypeError: a bad argument.

    Example:
        >>> paths = make_spoken_digits("/tmp/sd", per_class=1, progress=False)  # doctest: +SKIP
    """
    out_dir = default_dir() if out is None else check_path(out, "out")
    check_choice(encoder, "encoder", ENCODER_NAMES)
    jobs = check_int(jobs, "jobs", 1)
    check_bool(progress, "progress")
    for s in splits:
        check_choice(s, "splits", SPLITS)
    plans = {s: plan(s, per_class, seed) for s in splits}
    _espeak_program()
    paths = {}
    for split, utts in plans.items():
        results = run_tasks(_job, [(u, seed, encoder) for u in utts], jobs, progress,
                            f"spoken digits {split}", "utt")
        path = out_dir / file_name(split, encoder)
        times = [r[0] for r in results]
        units = [r[1] for r in results]

        def write(tmp: Path, times: list = times, units: list = units,
                  utts: list = utts) -> None:
            write_shd(tmp, times, units, [u.label for u in utts], [u.speaker for u in utts],
                      KEYS)

        atomic_write(path, write)
        paths[split] = path
    return paths


def run_tasks(job: Callable[[Any], Any], tasks: list[Any], jobs: int, progress: bool,
              desc: str, unit: str = "it") -> list[Any]:
    """``[job(t) for t in tasks]``, in order: in this process (``jobs == 1``) or in a pool of
    ``jobs`` spawned worker processes (``job`` must then be a module-level function), with a
    tqdm bar labelled ``desc`` when ``progress``. The synthesised data sets' runner."""
    from tqdm import tqdm

    bar: Callable[[Iterator], Iterator] = (
        (lambda it: tqdm(it, total=len(tasks), desc=desc, unit=unit))
        if progress else (lambda it: it))
    if jobs == 1:
        return list(bar(map(job, tasks)))
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        return list(bar(pool.imap(job, tasks, chunksize=4)))
