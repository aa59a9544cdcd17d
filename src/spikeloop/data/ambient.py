"""Ambient scenes synthesised from generative models: 1 s clips of six sound classes.

Each clip is a *target* scene of one class of :data:`CLASS_NAMES`, at a random level, mixed
with a *distractor* scene of another class (in 80 % of the clips, 3–12 dB quieter) and a white
noise floor 30 dB below the target. Every class is a random process whose parameters are
drawn per clip, so no two clips are alike and the classes overlap in spectrum:

========  ==================================================================================
rain      Poisson drops (800–4000 /s), each a 1–4 ms exponentially decaying white burst of
          log-normal amplitude (σ = 0.5), the sum band-passed around 1.5–5 kHz (a Gaussian in
          log-frequency, 1.5 octaves wide), over a pink floor 15 dB down
traffic   an engine: harmonics ``k = 1 … 20`` of ``f0`` = 25–90 Hz with amplitude ``1/k``,
          ``f0`` slowly modulated (±5–15 % at 0.1–0.5 Hz), plus a rumble (white noise below
          600 Hz) of equal RMS, under a passing-car envelope (a Gaussian 0.3–1 s wide)
birds     Poisson chirps (3–12 /s), each 20–150 ms, a Hann-windowed linear FM sweep from
          2–6 kHz by −2…+2 kHz with a second harmonic at 0.2, over a pink floor 20 dB down
babble    speech babble of five talkers (:mod:`spikeloop.data.keywords`' babble: filler
          words of the split's espeak-ng speakers; needs espeak-ng)
wind      white noise through ``|H(f)|² = 1/(1 + (f/f_c)⁴)``, ``f_c`` = 150–600 Hz, times
          ``exp(d·z(t))`` with ``z`` a unit-RMS random process low-passed at 0.3–2 Hz,
          ``d`` = 0.3–0.8 (gusts)
alarm     either beeps — a 0.5–3 kHz tone with a 0.3 second harmonic, switched on for
          30–70 % of a 0.15–0.8 s period — or a siren, a tone swept sinusoidally between
          ``f1`` = 0.5–1.5 kHz and ``f1`` + 0.3–1.5 kHz at 0.5–3 Hz
========  ==================================================================================

A scene is normalised to unit RMS before mixing; the target is then scaled to an RMS of
``level_dbfs`` (−45 … −30 dBFS), the distractor to ``level_dbfs − tdr_db``. Nothing is
clipped: a sample beyond full scale raises :class:`~spikeloop.errors.DataFormatError`.

How the set was checked not to be trivial: ``benchmarks/keywords_baseline.py --set ambient``
classifies the test clips by their mean log mel spectrum with a nearest-centroid rule and
by a logistic regression on their spectrogram (docs/keywords.md gives the accuracies).

Files: ``ambient_{split}.h5`` (:func:`file_name`) — ``clips/audio`` int16 ``[N, 16000]``
(attributes ``fs``, ``scale`` = 32767), ``clips/labels`` uint8, ``clips/distractor`` int8
(−1: none), ``clips/level_dbfs`` and ``clips/tdr_db`` float32 (NaN: no distractor),
``keys`` (class names); root attributes ``format = "spikeloop-ambient"``, ``version``,
``fs``, ``scale``, ``seed``, ``split``. The train and test splits draw from the same
processes with different seeds; their babble uses the split's speakers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spikeloop._files import atomic_write
from spikeloop.checks import check_choice, check_int, check_path
from spikeloop.data.catalog import DATA_SETS, data_dir
from spikeloop.data.keywords import (
    FS,
    SCALE,
    KeywordClips,
    _babble,
    _check_peak,
    _maker_args,
    _need,
    _read_audio,
    _same_length,
)
from spikeloop.data.spoken_digits import SPLITS, coloured_noise, run_tasks
from spikeloop.errors import DataFormatError, MissingDataError

__all__ = ["CLASS_NAMES", "AmbientClips", "AmbientFile", "SceneSpec", "default_dir",
           "file_name", "make_ambient", "plan_scenes", "read_ambient", "render_scene", "scene"]

CLASS_NAMES: tuple[str, ...] = ("rain", "traffic", "birds", "babble", "wind", "alarm")
"""The scene classes by label."""
CLIP_S = 1.0
LEVEL_DBFS = (-45.0, -30.0)
TDR_DB = (3.0, 12.0)
"""Target-to-distractor ratio range, dB."""
DISTRACTOR_SHARE = 0.8
FLOOR_DB = 30.0


def _rng(seed: int, split: str, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS.index(split), 10, *key])


def _shape(x: np.ndarray, gain: Any) -> np.ndarray:
    """``x`` filtered in the frequency domain by the amplitude response ``gain(f)``."""
    f = np.fft.rfftfreq(len(x), 1 / FS)
    return np.fft.irfft(np.fft.rfft(x) * gain(f), len(x))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.mean(x**2))


def _rain(n: int, rng: np.random.Generator) -> np.ndarray:
    x = np.zeros(n)
    for _ in range(rng.poisson(rng.uniform(800, 4000) * n / FS)):
        m = int(rng.uniform(0.001, 0.004) * FS)
        t = int(rng.integers(0, n))
        burst = rng.standard_normal(m) * np.exp(-5 * np.arange(m) / m) * rng.lognormal(0, 0.5)
        x[t:t + m] += burst[:n - t]
    fc, width = rng.uniform(1500, 5000), 1.5 / 2.355  # 1.5 octaves full width at half height
    x = _shape(x, lambda f: np.exp(-0.5 * (np.log2(np.maximum(f, 1) / fc) / width) ** 2))
    return _unit(x) + coloured_noise("pink", n, rng) * 10 ** (-15 / 20)


def _traffic(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / FS
    f0 = rng.uniform(25, 90) * (1 + rng.uniform(0.05, 0.15)
                                * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t
                                         + rng.uniform(0, 2 * np.pi)))
    phase = 2 * np.pi * np.cumsum(f0) / FS
    engine = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 21))
    rumble = _shape(rng.standard_normal(n), lambda f: (f < 600).astype(float))
    env = np.exp(-0.5 * ((t - rng.uniform(0, CLIP_S)) / rng.uniform(0.3, 1.0)) ** 2)
    return (_unit(engine) + _unit(rumble)) * (0.2 + env)


def _birds(n: int, rng: np.random.Generator) -> np.ndarray:
    x = np.zeros(n)
    for _ in range(max(1, rng.poisson(rng.uniform(3, 12) * n / FS))):
        m = int(rng.uniform(0.02, 0.15) * FS)
        start = int(rng.integers(0, max(1, n - m)))
        f = rng.uniform(2000, 6000) + rng.uniform(-2000, 2000) * np.arange(m) / m
        ph = 2 * np.pi * np.cumsum(f) / FS
        chirp = (np.sin(ph) + 0.2 * np.sin(2 * ph)) * np.hanning(m) * rng.lognormal(0, 0.5)
        x[start:start + m] += chirp[:n - start]
    return _unit(x) + coloured_noise("pink", n, rng) * 10 ** (-20 / 20)


def _wind(n: int, rng: np.random.Generator) -> np.ndarray:
    fc = rng.uniform(150, 600)
    x = _shape(rng.standard_normal(n), lambda f: 1 / np.sqrt(1 + (f / fc) ** 4))
    fm = rng.uniform(0.3, 2.0)
    z = _unit(_shape(rng.standard_normal(n), lambda f: (f < fm).astype(float) + (f == 0)))
    return _unit(x) * np.exp(rng.uniform(0.3, 0.8) * z)


def _alarm(n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / FS
    if rng.random() < 0.5:
        f = rng.uniform(500, 3000)
        period, duty = rng.uniform(0.15, 0.8), rng.uniform(0.3, 0.7)
        gate = ((t + rng.uniform(0, period)) % period) < duty * period
        return (np.sin(2 * np.pi * f * t) + 0.3 * np.sin(4 * np.pi * f * t)) * gate
    f1, span, rate = rng.uniform(500, 1500), rng.uniform(300, 1500), rng.uniform(0.5, 3.0)
    f = f1 + span * 0.5 * (1 + np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    return np.sin(2 * np.pi * np.cumsum(f) / FS)


def scene(label: int, n: int, rng: np.random.Generator, seed: int = 0,
          split: str = "train") -> np.ndarray:
    """``n`` samples at :data:`FS` of a scene of class ``label`` (the generative models in the
    module docstring), unit RMS; ``seed`` and ``split`` choose the babble's speakers.

    Raises:
        ParameterError: a label outside ``0 … 5``, ``n < 1``.
    """
    label = check_int(label, "scene label", 0, len(CLASS_NAMES) - 1)
    n = check_int(n, "scene length n", 1)
    if CLASS_NAMES[label] == "babble":
        return _babble(n, rng, seed, split, -1)
    makers = {"rain": _rain, "traffic": _traffic, "birds": _birds, "wind": _wind,
              "alarm": _alarm}
    return _unit(makers[CLASS_NAMES[label]](n, rng))


@dataclass(frozen=True)
class SceneSpec:
    """One clip's recipe: target class ``label`` at ``level_dbfs``, an optional
    ``distractor`` class (−1: none) ``tdr_db`` quieter."""

    split: str
    index: int
    label: int
    level_dbfs: float
    distractor: int
    tdr_db: float | None


def plan_scenes(split: str, per_class: int, seed: int = 0) -> list[SceneSpec]:
    """``per_class`` recipes of each class (labels ``index % 6``), drawn from
    ``(seed, split, 10, 0, index)``: level −45 … −30 dBFS; with probability 0.8 a distractor
    of another class, uniform, 3–12 dB quieter.

    Raises:
        ParameterError: an unknown split, ``per_class < 1``, ``seed < 0``.
    """
    check_choice(split, "split", SPLITS)
    per_class = check_int(per_class, "per_class", 1)
    seed = check_int(seed, "seed", 0)
    out = []
    for index in range(per_class * len(CLASS_NAMES)):
        label = index % len(CLASS_NAMES)
        rng = _rng(seed, split, 0, index)
        level = float(rng.uniform(*LEVEL_DBFS))
        other = int(rng.integers(len(CLASS_NAMES) - 1))
        has = rng.random() < DISTRACTOR_SHARE
        tdr = float(rng.uniform(*TDR_DB))
        out.append(SceneSpec(split, index, label, level,
                             (other + (other >= label)) if has else -1, tdr if has else None))
    return out


def render_scene(spec: SceneSpec, seed: int = 0) -> np.ndarray:
    """The clip of one recipe, float64 ``[16000]`` in full-scale units: target scene ·
    ``10^(level/20)`` + distractor scene · ``10^((level − tdr)/20)`` + white floor ·
    ``10^((level − 30)/20)``, each scene drawn from ``(seed, split, 10, 1|2|3, index)``.

    Raises:
        DataFormatError: a sample beyond full scale.
    """
    n = round(CLIP_S * FS)
    g = 10 ** (spec.level_dbfs / 20)
    x = scene(spec.label, n, _rng(seed, spec.split, 1, spec.index), seed, spec.split) * g
    if spec.distractor >= 0 and spec.tdr_db is not None:
        x += scene(spec.distractor, n, _rng(seed, spec.split, 2, spec.index), seed,
                   spec.split) * g * 10 ** (-spec.tdr_db / 20)
    x += coloured_noise("white", n, _rng(seed, spec.split, 3, spec.index)) * g * 10 ** (
        -FLOOR_DB / 20)
    _check_peak(x, f"ambient clip {spec.split}/{spec.index}")
    return x


def _job(args: tuple[SceneSpec, int]) -> np.ndarray:
    return render_scene(*args)


def file_name(split: str) -> str:
    """``ambient_{split}.h5``."""
    check_choice(split, "split", SPLITS)
    return f"ambient_{split}.h5"


def default_dir() -> Path:
    """``<data dir>/ambient`` (``$SPIKELOOP_DATA/ambient``, else ``data/ambient``)."""
    return data_dir() / "ambient"


def make_ambient(out: str | os.PathLike[str] | None = None, *, per_class: int = 200,
                 test_per_class: int = 50, seed: int = 0, jobs: int = 1,
                 progress: bool = True, splits: tuple[str, ...] = SPLITS) -> dict[str, Path]:
    """Synthesise and write ``ambient_{split}.h5`` for each split; return ``{split: path}``.

    Args:
        out: output folder (default :func:`default_dir`).
        per_class: train clips per class (6 classes).
        test_per_class: test clips per class.
        seed: fixes every byte of the files.
        jobs: worker processes (1: none).
        progress: show tqdm bars.

    Raises:
        MissingDataError: espeak-ng is not installed (the babble class needs it).
        ParameterError: a bad argument.
    """
    out_dir, per_class, test_per_class, seed, jobs = _maker_args(
        out, default_dir, per_class, test_per_class, seed, jobs, progress, splits)
    paths = {}
    for split in splits:
        specs = plan_scenes(split, per_class if split == "train" else test_per_class, seed)
        clips = run_tasks(_job, [(s, seed) for s in specs], jobs, progress,
                          f"ambient {split}", "clip")

        def write(tmp: Path, split: str = split, specs: list = specs,
                  clips: list = clips) -> None:
            import h5py

            with h5py.File(tmp, "w") as f:
                f.attrs.update({"format": "spikeloop-ambient", "version": 1, "fs": FS,
                                "scale": SCALE, "seed": seed, "split": split})
                kw = {"track_times": False}
                f.create_dataset("keys", data=[k.encode() for k in CLASS_NAMES], **kw)
                c = f.create_group("clips")
                c.create_dataset("audio", data=np.rint(np.stack(clips) * SCALE).astype(
                    np.int16), **kw)
                c["audio"].attrs.update({"fs": FS, "scale": SCALE})
                c.create_dataset("labels", data=np.array([s.label for s in specs], np.uint8),
                                 **kw)
                c.create_dataset("distractor", data=np.array([s.distractor for s in specs],
                                                             np.int8), **kw)
                c.create_dataset("level_dbfs", data=np.array([s.level_dbfs for s in specs],
                                                             np.float32), **kw)
                c.create_dataset("tdr_db", data=np.array(
                    [np.nan if s.tdr_db is None else s.tdr_db for s in specs], np.float32), **kw)

        path = out_dir / file_name(split)
        atomic_write(path, write)
        paths[split] = path
    return paths


@dataclass
class AmbientFile:
    """One ``ambient_{split}.h5`` in memory: ``clips`` float32 ``[N, n]`` (full scale 1.0),
    ``labels`` int64, ``clip_meta`` (``distractor``, ``level_dbfs``, ``tdr_db``), ``keys``."""

    path: Path
    fs: int
    split: str
    keys: list[str]
    clips: np.ndarray
    labels: np.ndarray
    clip_meta: dict[str, np.ndarray]


def read_ambient(path: str | os.PathLike[str]) -> AmbientFile:
    """Read an ambient file (layout in the module docstring).

    Raises:
        MissingDataError: no such file (names it and ``make ambient``).
        DataFormatError: not HDF5, a missing data set or attribute, audio not int16 ``[N, n]``,
            fields of another length than the clips, a label or distractor outside the keys.
    """
    import h5py

    path = check_path(path, "read_ambient: path")
    if not path.is_file():
        raise MissingDataError(f"ambient file not found: {path}. To get it, "
                               f"{DATA_SETS['ambient'].how}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataFormatError(f"{path}: not an HDF5 file ({e})") from None
    with f:
        keys = [k.decode() if isinstance(k, bytes) else str(k) for k in _need(f, "keys", path)[()]]
        audio, fs, scale = _read_audio(f, "clips", path)
        meta = {k: _need(f, f"clips/{k}", path)[()]
                for k in ("labels", "distractor", "level_dbfs", "tdr_db")}
        split = str(f.attrs.get("split", ""))
    _same_length(path, "clips", len(audio), meta)
    labels = meta.pop("labels").astype(np.int64)
    for what, v, low in (("labels", labels, 0), ("distractor", meta["distractor"], -1)):
        if v.size and (v.min() < low or v.max() >= len(keys)):
            raise DataFormatError(f"{path}: clips/{what} must lie in {low} … {len(keys) - 1}, "
                                  f"got {v.min()} … {v.max()}")
    return AmbientFile(path=path, fs=fs, split=split, keys=keys,
                       clips=(audio / np.float32(scale)).astype(np.float32), labels=labels,
                       clip_meta=meta)


class AmbientClips(KeywordClips):
    """The clips of ``ambient_{split}.h5`` as a ``torch.utils.data`` data set: as
    :class:`~spikeloop.data.keywords.KeywordClips` (audio ``[16000]`` or, through a
    ``frontend``, counts ``[T, C]``; labels 0–5), read by :func:`read_ambient`."""

    NAME = "ambient"

    @staticmethod
    def read(path: Path) -> Any:
        """The file's content (:func:`read_ambient`)."""
        return read_ambient(path)
