"""Build the pieces of an experiment from its config: encoded data splits and the network."""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spikeloop.checks import (
    check_bool,
    check_dt,
    check_int,
    check_real,
    check_shape,
    check_type,
    show,
)
from spikeloop.data import (
    SHD,
    SSC,
    AFEParams,
    afe_counts,
    find,
    load_digits,
    load_mnist_family,
    make_encoder,
    read_ambient,
    read_keywords,
    speaker_holdout,
    time_major_collate,
    yin_yang,
)
from spikeloop.errors import (
    ConfigError,
    DTypeError,
    LimitWarning,
    ParameterError,
    ShapeError,
    SpikeloopError,
)
from spikeloop.network import Network
from spikeloop.network.audio_blocks import recurrent_lif, wavesense
from spikeloop.network.blocks import synnet
from spikeloop.nn import (
    POPULATIONS,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    DelayedLinear,
    Flatten,
    Input,
    Linear,
)
from spikeloop.registry import Registry
from spikeloop.training.config import INIT_DEFAULTS, INIT_READOUT_KEYS, DataConfig, ModelConfig

DATASETS: Registry[Callable[[DataConfig], dict[str, tuple[np.ndarray, np.ndarray]]]] = Registry(
    "dataset"
)


@DATASETS.register("yin_yang")
def _yin_yang_splits(cfg: DataConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The standard Yin-Yang splits (seeds 42/41/40) with the configured sizes."""
    return {
        "train": yin_yang(cfg.train_size, 42),
        "val": yin_yang(cfg.val_size, 41),
        "test": yin_yang(cfg.test_size, 40),
    }


def _params(cfg: DataConfig, allowed: Mapping[str, Any]) -> dict[str, Any]:
    """``data.params`` over the data set's defaults ``allowed``; an unknown key is refused."""
    unknown = sorted(set(cfg.params) - set(allowed), key=str)
    if unknown:
        raise ConfigError(f"unknown data.params {unknown} for data set {cfg.dataset!r}; known: "
                          f"{', '.join(allowed) or 'none'}")
    return dict(allowed) | dict(cfg.params)


def _holdout(cfg: DataConfig, n: int, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation splits drawn from ``n`` training samples (one
    permutation from ``seed``: validation first, ``val_size`` of them, then ``train_size``),
    after checking the configured sizes fit."""
    if cfg.train_size + cfg.val_size > n:
        raise ConfigError(f"data set {cfg.dataset!r}: data.train_size + data.val_size = "
                          f"{cfg.train_size} + {cfg.val_size} exceeds its {n} training samples")
    if cfg.test_size > n_test:
        raise ConfigError(f"data set {cfg.dataset!r}: data.test_size = {cfg.test_size} exceeds "
                          f"its {n_test} test samples")
    order = np.random.default_rng(seed).permutation(n)
    return order[cfg.val_size : cfg.val_size + cfg.train_size], order[: cfg.val_size]


def _images(name: str, cfg: DataConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """An MNIST-family data set (IDX files, found by :func:`spikeloop.data.find`): pixels
    scaled to ``[0, 1]``; ``flat`` gives ``[N, 784]``, else ``[N, 1, 28, 28]``."""
    opts = _params(cfg, {"flat": True, "seed": 0})
    x, y = load_mnist_family(name, "train", root=cfg.root)
    xt, yt = load_mnist_family(name, "test", root=cfg.root)
    train, val = _holdout(cfg, len(y), len(yt), check_int(opts["seed"], "data.params.seed", 0))
    shape = (-1, 784) if check_type(opts["flat"], "data.params.flat", bool, "true or false") \
        else (-1, 1, 28, 28)

    def pixels(a: np.ndarray) -> np.ndarray:
        return (a.astype(np.float32) / 255.0).reshape(shape)

    return {"train": (pixels(x[train]), y[train]), "val": (pixels(x[val]), y[val]),
            "test": (pixels(xt[: cfg.test_size]), yt[: cfg.test_size])}


@DATASETS.register("fashion_mnist")
def _fashion_mnist(cfg: DataConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 60 000 training and 10 000 test images
    28×28 of 10 kinds of clothing; validation drawn from the training images."""
    return _images("fashion_mnist", cfg)


@DATASETS.register("mnist")
def _mnist(cfg: DataConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MNIST (LeCun et al. 1998), the same IDX layout and splits as Fashion-MNIST."""
    return _images("mnist", cfg)


@DATASETS.register("digits")
def _digits(cfg: DataConfig) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """scikit-learn's 8×8 handwritten digits in its stratified split
    (:func:`spikeloop.data.load_digits`): 64 features in ``[0, 1]``; ``flat: false`` gives
    ``[N, 1, 8, 8]``. The configured sizes take the first samples of each split."""
    opts = _params(cfg, {"flat": True, "seed": 0})
    flat = check_type(opts["flat"], "data.params.flat", bool, "true or false")
    seed = check_int(opts["seed"], "data.params.seed", 0)
    out = {}
    for split, size in (("train", cfg.train_size), ("val", cfg.val_size),
                        ("test", cfg.test_size)):
        x, y = load_digits("validation" if split == "val" else split, seed=seed)
        if size > len(y):
            raise ConfigError(f"data set 'digits': data.{split}_size = {size} exceeds its "
                              f"{len(y)} {split} samples")
        x = x[:size] if flat else x[:size].reshape(-1, 1, 8, 8)
        out[split] = (x, y[:size])
    return out


@dataclass(frozen=True)
class EncodedSplit:
    """A split encoded once into spikes ``[T, N, ...]`` with labels ``[N]``.

    ``spikes`` may be stored compactly (spike counts as ``int16``); :meth:`batch` hands out
    float batches."""

    spikes: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def batch(self, index: Tensor | slice) -> tuple[Tensor, Tensor]:
        """Spikes ``[T, B, ...]`` (floating point) and labels ``[B]`` of the samples ``index``."""
        x = self.spikes[:, index]
        if not x.is_floating_point():
            x = x.to(torch.get_default_dtype())
        return x, self.labels[index]


EVENT_DATASETS = ("shd", "ssc", "spoken_digits")
"""Data sets of spike events in the SHD layout: their splits come rasterised at ``data.dt``
over ``data.duration`` (``data.encoder`` must be ``{name: none}``)."""


def _rasters(dataset: Any, workers: int, who: str) -> EncodedSplit:
    """Every sample of an event data set binned into one ``int16`` count raster
    ``[T, N, C]`` (through a ``DataLoader`` with ``workers`` processes)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=256, num_workers=workers,
                                         collate_fn=time_major_collate)
    xs, ys = [], []
    for x, y in loader:
        if x.numel() and float(x.max()) > torch.iinfo(torch.int16).max:
            raise ConfigError(f"{who}: a bin holds {int(x.max())} spikes, more than int16 "
                              f"holds; choose a smaller data.dt")
        xs.append(x.to(torch.int16))
        ys.append(y)
    return EncodedSplit(torch.cat(xs, 1), torch.cat(ys))


def _events(name: str, cfg: DataConfig) -> dict[str, EncodedSplit]:
    """SHD, SSC or the synthesised spoken digits (:func:`~spikeloop.data.find` locates the
    files): rasters at ``data.dt`` over ``data.duration``; ``factor`` merges neighbouring
    channels (``⌈700 / factor⌉`` inputs). Validation: SSC's official ``valid`` file, else our
    speaker holdout (:func:`~spikeloop.data.speaker_holdout`, ``val_speakers``). The configured
    sizes must not exceed what the files hold (a smaller size takes the first samples)."""
    opts = _params(cfg, {"factor": 1, "val_speakers": None, "workers": 0, "file": name})
    folder = find(name, root=cfg.root)
    kind = SSC if name == "ssc" else SHD
    workers = check_int(opts["workers"], "data.params.workers", 0)

    def split(which: str) -> Any:
        path = folder / f"{opts['file']}_{which}.h5"
        return kind(path, which, dt=cfg.dt, duration=cfg.duration, factor=opts["factor"])

    train = split("train")
    if name == "ssc":
        parts = {"train": train, "val": split("valid")}
    else:
        parts = dict(zip(("train", "val"), speaker_holdout(train, opts["val_speakers"]),
                         strict=True))
    parts["test"] = split("test")
    out = {}
    for which, ds in parts.items():
        size = getattr(cfg, f"{which}_size")
        if size > len(ds):
            raise ConfigError(f"data set {name!r}: data.{which}_size = {size} exceeds the "
                              f"{len(ds)} samples of its {which} split")
        subset = torch.utils.data.Subset(ds, range(size))
        out[which] = _rasters(subset, workers, f"data set {name!r}, split {which!r}")
    return out


for _name in EVENT_DATASETS:
    DATASETS.register(_name)(functools.partial(_events, _name))


AUDIO_DATASETS = ("keywords", "ambient")
"""Audio clips synthesised here (``make keywords``, ``make ambient``): the audio front end
(:mod:`spikeloop.data.afe`) turns them into spike counts per bin of ``data.dt``, which must be
the front end's bin width (10 ms); ``data.encoder`` must be ``{name: none}``."""


def _audio(name: str, cfg: DataConfig) -> dict[str, EncodedSplit]:
    """Keyword or ambient clips through the audio front end: counts ``[T, N, C]`` (``int16``),
    ``T = data.duration / data.dt`` of the clip's bins. ``data.params``: ``integer`` (the
    integer front end, what the chip is fed; default true), ``seed`` (the validation draw
    from the training clips)."""
    opts = _params(cfg, {"integer": True, "seed": 0})
    integer = check_bool(opts["integer"], "data.params.integer")
    seed = check_int(opts["seed"], "data.params.seed", 0)
    params = AFEParams()
    if not math.isclose(cfg.dt, params.bin_width, rel_tol=1e-9):
        raise ConfigError(f"data set {name!r}: data.dt must be the audio front end's bin width "
                          f"{params.bin_width} s, got {cfg.dt}")
    folder = find(name, root=cfg.root)
    read = read_keywords if name == "keywords" else read_ambient
    train, test = (read(folder / f"{name}_{split}.h5") for split in ("train", "test"))
    steps = round(cfg.duration / cfg.dt)
    clip_steps = train.clips.shape[1] * 1.0 / train.fs / cfg.dt
    if steps > clip_steps + 1e-9:
        raise ConfigError(f"data set {name!r}: data.duration {cfg.duration} s exceeds its "
                          f"clips' {train.clips.shape[1] / train.fs} s")
    idx_train, idx_val = _holdout(cfg, len(train.labels), len(test.labels), seed)

    def encode(f: Any, idx: np.ndarray) -> EncodedSplit:
        res = afe_counts(f.clips[idx], f.fs, params, integer=integer, on_clip="error")
        if res.n_capped:
            warnings.warn(f"data set {name!r}: the audio front end set {res.n_capped} of "
                          f"{res.counts.size} counts above the chip's input limit "
                          f"{params.cap} to {params.cap}", LimitWarning, stacklevel=2)
        counts = torch.from_numpy(res.counts[:steps]).to(torch.int16)
        return EncodedSplit(counts, torch.as_tensor(f.labels[idx], dtype=torch.long))

    return {"train": encode(train, idx_train), "val": encode(train, idx_val),
            "test": encode(test, np.arange(cfg.test_size))}


for _name in AUDIO_DATASETS:
    DATASETS.register(_name)(functools.partial(_audio, _name))


SPLITS = ("train", "val", "test")
"""The splits a data set provides (what the trainer reads)."""


def load_data(cfg: DataConfig, generator: torch.Generator | None = None) -> dict[str, EncodedSplit]:
    """Generate the data set's splits and encode them with the configured encoder.

    Raises:
        ArgumentTypeError: ``cfg`` is not a :class:`DataConfig`, ``generator`` not a
            ``torch.Generator``.
        ConfigError: ``data.encoder`` has no name, or the data set does not return the splits
            ``train``, ``val``, ``test`` as ``(features [N, F], labels [N])``.
        ShapeError, DTypeError: a split's features and labels do not fit together, or its
            labels are not non-negative integers.
        UnknownNameError, ParameterError, TimeStepError: from the encoder's name or
            parameters; the message starts with ``data.encoder``.
    """
    check_type(cfg, "load_data: cfg", DataConfig, "a DataConfig (config.data)")
    if generator is not None:
        check_type(generator, "load_data: generator", torch.Generator, "a torch.Generator")
    params = dict(cfg.encoder)
    if cfg.dataset in EVENT_DATASETS + AUDIO_DATASETS:
        if params.get("name") != "none":
            raise ConfigError(f"data set {cfg.dataset!r} holds spike events, binned at data.dt; "
                              f"data.encoder must be {{name: none}}, got {params}")
        return DATASETS.get(cfg.dataset)(cfg)
    if "name" not in params:
        raise ConfigError("data.encoder needs a 'name' (e.g. latency, rate)")
    name = params.pop("name")
    if name == "rate":
        params.setdefault("generator", generator)
    try:
        encode = make_encoder(name, dt=cfg.dt, duration=cfg.duration, **params)
    except SpikeloopError as err:  # the same error, saying where in the config it is
        raise type(err)(f"data.encoder: {err}") from None
    splits = DATASETS.get(cfg.dataset)(cfg)
    if not isinstance(splits, Mapping) or sorted(splits) != sorted(SPLITS):
        got = sorted(splits) if isinstance(splits, Mapping) else type(splits).__name__
        raise ConfigError(f"data set {cfg.dataset!r} must return the splits "
                          f"{', '.join(SPLITS)}, got {got}")
    out = {}
    for split, pair in splits.items():
        x, y = _check_split(f"data set {cfg.dataset!r}, split {split!r}", pair)
        spikes = encode(torch.tensor(x, dtype=torch.float32))
        out[split] = EncodedSplit(spikes, torch.as_tensor(y, dtype=torch.long))
    return out


def _check_split(who: str, pair: object) -> tuple[np.ndarray, np.ndarray]:
    """A data set's split ``(features [N, F], labels [N])`` as NumPy arrays, the labels
    non-negative integers (a float label is refused, not rounded)."""
    if not (isinstance(pair, tuple | list) and len(pair) == 2):
        raise ConfigError(f"{who}: expected (features, labels), got {show(pair)}")
    x, y = (np.asarray(a) for a in pair)
    if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0] or not len(y):
        raise ShapeError(f"{who}: expected features [N, F] or [N, *shape] and labels [N], "
                         f"N ≥ 1, got "
                         f"{x.shape} and {y.shape}")
    if y.dtype.kind not in "iu":
        raise DTypeError(f"{who}: labels must be integer class indices, got {y.dtype}")
    if y.min() < 0:
        raise ShapeError(f"{who}: labels must be ≥ 0, got {int(y.min())}")
    return x, y


def _accepted(population: type, values: dict) -> dict:
    """The entries of ``values`` that ``population``'s neuron model has as parameters."""
    names = {f.name for f in fields(population.params_cls)}
    return {k: v for k, v in values.items() if k in names}


def build_network(
    cfg: ModelConfig, n_in: int, n_out: int, dt: float, generator: torch.Generator | None = None
) -> Network:
    """Input → (Conv2d → AvgPool2d → spiking population, or with ``pool_spikes`` Conv2d →
    spiking population → AvgPool2d) × len(conv) → Flatten →
    (Linear → spiking population) × len(hidden) → Linear → readout; a conv stage's ``norm``
    and ``model.norm`` put a :class:`~spikeloop.nn.BatchNorm` right before the stage's or the
    hidden layers' neurons (``conv{k}_bn``, ``fc{k}_bn``).

    ``n_in``: the shape of one input step, an integer or ``(C, H, W)`` (needed by
    ``model.conv``; another shape without convolutions is flattened). Layer names: ``input``,
    ``conv1``, ``pool1``, ``spikes1`` …, ``flatten``, ``fc1``, ``hidden1``, ``fc2``,
    ``hidden2`` …, ``output``. Convolutions are drawn from ``normal(0, conv_gain /
    sqrt(fan_in))``, the first Linear from ``normal(input_mean, input_std)`` and
    ``normal(hidden_mean, hidden_std)`` for the others; recurrent weights from
    ``normal(0, recurrent_std)``. With ``model.delays`` every ``fc{k}`` into a hidden layer
    is a :class:`~spikeloop.nn.DelayedLinear` (delays uniform in ``[0, max_delay]``).
    Model-wide values (``tau_mem``, ``tau_syn``, ``v_threshold``, ``reset``) go to every
    population whose model has that parameter.

    Raises:
        ArgumentTypeError: ``cfg`` is not a :class:`ModelConfig`, ``n_in``/``n_out`` not
            integers. ParameterError: ``n_in``/``n_out`` ``< 1``. TimeStepError: ``dt``.
        UnknownNameError: an unknown neuron or readout model. ConfigError: a neuron model
            that does not spike, unknown ``model.init`` keys.
    """
    check_type(cfg, "build_network: cfg", ModelConfig, "a ModelConfig (config.model)")
    shape = check_shape(n_in, "build_network: n_in")
    n_out = check_int(n_out, "build_network: n_out", 1)
    dt = check_dt(dt, "build_network: dt")
    if cfg.block:
        return init_weights(_block_network(cfg.block, shape, n_out, dt), cfg.init, generator)
    neuron = POPULATIONS.get(cfg.neuron)
    readout = POPULATIONS.get(cfg.readout)
    if not neuron.spiking:
        raise ConfigError(f"model.neuron {cfg.neuron!r} does not spike; use lif, cuba_lif, ...")
    common = {"dt": dt, "method": cfg.method}
    shared = {"tau_mem": cfg.tau_mem, "tau_syn": cfg.tau_syn, "v_threshold": cfg.v_threshold,
              "reset": cfg.reset}
    layers: OrderedDict[str, torch.nn.Module] = OrderedDict(input=Input(shape))
    if cfg.conv and len(shape) != 3:
        raise ConfigError(f"model.conv needs images [C, H, W] as input, got samples of shape "
                          f"{shape} (set data.params.flat: false)")
    for k, stage in enumerate(cfg.conv, start=1):
        shape = _conv_stage(layers, k, stage, shape, neuron, common, cfg, shared)
    if len(shape) > 1:
        layers["flatten"] = Flatten()
    sizes = [math.prod(shape), *cfg.hidden]
    delays = _delay_settings(cfg.delays, dt)
    for k, (a, b) in enumerate(itertools.pairwise(sizes), start=1):
        width = neuron.description.input_width * b  # 2b: two currents
        layers[f"fc{k}"] = _delayed(a, width, dt, delays) if delays else Linear(a, width)
        if check_bool(cfg.norm, "model.norm"):
            layers[f"fc{k}_bn"] = BatchNorm(width)
        layers[f"hidden{k}"] = neuron(
            b, **common, surrogate=cfg.surrogate, recurrent=cfg.recurrent, learn=cfg.learn,
            **(_accepted(neuron, shared) | cfg.neuron_params),
        )
    layers[f"fc{len(sizes)}"] = Linear(sizes[-1], n_out)
    layers["output"] = readout(n_out, **common, **(_accepted(readout, shared) | cfg.readout_params))
    return init_weights(Network(layers), cfg.init, generator, draw_delays=True)


BLOCK_KEYS: dict[str, tuple[str, ...]] = {
    "synnet": ("hidden", "scales", "base", "taus", "tau_mem", "readout_tau_mem", "recurrent",
               "tau_syn2", "method"),
    "wavesense": ("channels", "dilations", "skip_channels", "tau_syn", "tau_mem", "readout",
                  "readout_tau_mem", "v_threshold", "method"),
    "lif": ("hidden", "tau_syn", "tau_mem", "readout", "readout_tau_mem", "v_threshold",
            "method"),
}
"""The networks of ``model.block`` (``name``) and the keys each takes besides ``name``."""

BLOCK_BUILDERS = {"synnet": synnet, "wavesense": wavesense, "lif": recurrent_lif}


def _block_network(block: Any, shape: tuple[int, ...], n_out: int, dt: float) -> Network:
    """The network ``model.block`` names, for ``shape`` inputs and ``n_out`` outputs; errors of
    the builder name the config key."""
    check_type(block, "model.block", Mapping, "a mapping with a 'name'")
    name = block.get("name")
    if name not in BLOCK_KEYS:
        raise ConfigError(f"model.block.name must be one of {', '.join(BLOCK_KEYS)}, got "
                          f"{name!r}")
    unknown = sorted(set(block) - {"name", *BLOCK_KEYS[name]}, key=str)
    if unknown:
        raise ConfigError(f"unknown model.block keys {unknown} for {name}; known: "
                          f"{', '.join(BLOCK_KEYS[name])}")
    if len(shape) != 1:
        raise ConfigError(f"model.block {name} takes 1-d input channels, got samples of shape "
                          f"{shape}")
    kwargs = {k: v for k, v in block.items() if k != "name"}
    required = {"synnet": ("hidden",), "wavesense": ("channels", "dilations", "skip_channels"),
                "lif": ("hidden",)}[name]
    missing = [k for k in required if k not in kwargs]
    if missing:
        raise ConfigError(f"model.block {name} needs {', '.join(missing)}")
    try:
        if name == "wavesense":
            return wavesense(shape[0], kwargs.pop("channels"), kwargs.pop("dilations"),
                             kwargs.pop("skip_channels"), n_out, dt=dt, **kwargs)
        return BLOCK_BUILDERS[name](shape[0], kwargs.pop("hidden"), n_out, dt=dt, **kwargs)
    except ParameterError as err:  # ArgumentTypeError included
        raise ConfigError(f"model.block ({name}): {err}") from None


DELAY_KEYS = ("max_delay", "per", "learn")
"""The keys of ``model.delays``: ``max_delay`` (seconds, required), ``per`` (``axon``,
default, or ``synapse``) and ``learn`` (``true``)."""


def _delay_settings(delays: Any, dt: float) -> dict[str, Any]:
    """``model.delays`` as DelayedLinear keyword arguments (``{}``: no delays); the values
    are checked by DelayedLinear itself (a whole number of steps, ``per``)."""
    check_type(delays, "model.delays", Mapping, f"a mapping of {', '.join(DELAY_KEYS)}")
    if not delays:
        return {}
    unknown = sorted(set(delays) - set(DELAY_KEYS), key=str)
    if unknown or "max_delay" not in delays:
        raise ConfigError(f"model.delays needs 'max_delay' (s) and takes only "
                          f"{', '.join(DELAY_KEYS)}; got {sorted(delays, key=str)}")
    return {"max_delay": delays["max_delay"], "per": delays.get("per", "axon"),
            "learn_delay": check_bool(delays.get("learn", True), "model.delays.learn")}


def _delayed(n_in: int, n_out: int, dt: float, delays: dict[str, Any]) -> DelayedLinear:
    """A DelayedLinear from ``model.delays``; its own checks' errors name the config key."""
    try:
        return DelayedLinear(n_in, n_out, dt=dt, **delays)
    except SpikeloopError as err:
        raise ConfigError(f"model.delays: {err}") from None


CONV_KEYS = ("channels", "kernel", "padding", "pool", "pool_spikes", "norm")
"""The keys of one ``model.conv`` stage: ``channels``, ``kernel`` (3), ``padding``
(``kernel // 2``), ``pool`` (1: none), ``pool_spikes`` (``false``: pool the convolution's
currents before the neurons; ``true``: pool the neurons' spikes, the usual conv → activation →
pool order, with the neurons at full resolution) and ``norm`` (``false``; ``true``: a
:class:`~spikeloop.nn.BatchNorm` ``conv{k}_bn`` right before the neurons)."""


def _conv_stage(layers: OrderedDict[str, torch.nn.Module], k: int, stage: Any,
                shape: tuple[int, ...], neuron: type, common: dict[str, Any], cfg: ModelConfig,
                shared: dict[str, Any]) -> tuple[int, ...]:
    """Append ``conv{k}`` (→ ``pool{k}``) (→ ``conv{k}_bn``) → ``spikes{k}`` to ``layers``;
    the output shape."""
    who = f"model.conv[{k - 1}]"
    check_type(stage, who, Mapping, f"a mapping of {', '.join(CONV_KEYS)}")
    unknown = sorted(set(stage) - set(CONV_KEYS), key=str)
    if unknown or "channels" not in stage:
        raise ConfigError(f"{who}: needs 'channels' and takes only {', '.join(CONV_KEYS)}; got "
                          f"{sorted(stage, key=str)}")
    channels = check_int(stage["channels"], f"{who}.channels", 1)
    kernel = check_int(stage.get("kernel", 3), f"{who}.kernel", 1)
    padding = check_int(stage.get("padding", kernel // 2), f"{who}.padding", 0)
    pool = check_int(stage.get("pool", 1), f"{who}.pool", 1)
    pool_spikes = check_bool(stage.get("pool_spikes", False), f"{who}.pool_spikes")
    norm = check_bool(stage.get("norm", False), f"{who}.norm")
    c, h, w = shape
    h, w = h + 2 * padding - kernel + 1, w + 2 * padding - kernel + 1
    if min(h, w) // pool < 1:
        raise ConfigError(f"{who}: a {shape[1]}×{shape[2]} input leaves no output with kernel "
                          f"{kernel}, padding {padding} and pool {pool}")
    layers[f"conv{k}"] = Conv2d(c, neuron.description.input_width * channels, kernel,
                                padding=padding)

    def neurons(size: tuple[int, ...]) -> None:
        if norm:
            layers[f"conv{k}_bn"] = BatchNorm(layers[f"conv{k}"].out_channels)
        layers[f"spikes{k}"] = neuron(size, **common, surrogate=cfg.surrogate, learn=cfg.learn,
                                      **(_accepted(neuron, shared) | cfg.neuron_params))

    if pool_spikes:
        neurons((channels, h, w))
    if pool > 1:
        layers[f"pool{k}"] = AvgPool2d(pool)
        h, w = h // pool, w // pool
    if not pool_spikes:
        neurons((channels, h, w))
    return (channels, h, w)


def init_weights(
    net: Network,
    init: Mapping[str, float] | None = None,
    generator: torch.Generator | None = None,
    draw_delays: bool = False,
) -> Network:
    """Draw ``net``'s weights as the training configs do (``model.init``) and return ``net``.

    The first :class:`~spikeloop.nn.Linear` (or :class:`~spikeloop.nn.DelayedLinear`) of
    ``net.layers`` gets ``normal(input_mean, input_std)`` — strong enough that a latency-coded
    input makes the first hidden layer spike —, every later one ``normal(hidden_mean,
    hidden_std)`` except that the last of two or more takes ``readout_mean``/``readout_std``
    where ``init`` gives them (:data:`~spikeloop.training.config.INIT_READOUT_KEYS`), and
    every recurrent projection ``normal(0, recurrent_std)``; biases and other
    layers keep their values, and so do delays unless ``draw_delays`` (what
    :func:`build_network` asks for ``model.delays``: each ``DelayedLinear``'s delays uniform in
    ``[0, max_delay]``, drawn right after its weights).
    ``init`` overrides entries of :data:`~spikeloop.training.config.INIT_DEFAULTS` (input
    normal(1, 1), hidden normal(0, 0.5), recurrent normal(0, 0.1)).

    Example:
        >>> net = init_weights(Network({"input": Input(5), "fc1": Linear(5, 20)}))

    Raises:
        ArgumentTypeError: ``net`` is not a :class:`Network`, ``init`` not a mapping or a value
            in it not a real number, ``generator`` not a ``torch.Generator``.
        ConfigError: unknown ``init`` keys. ParameterError: a mean not finite, a standard
            deviation not finite or ``< 0``.
    """
    check_type(net, "init_weights: net", Network, "a Network")
    if init is not None:
        check_type(init, "model.init", Mapping, "a mapping of the keys of INIT_DEFAULTS")
    if generator is not None:
        check_type(generator, "init_weights: generator", torch.Generator, "a torch.Generator")
    draw_delays = check_bool(draw_delays, "init_weights: draw_delays")
    known = (*INIT_DEFAULTS, *INIT_READOUT_KEYS)
    unknown = set(init or {}) - set(known)
    if unknown:
        raise ConfigError(
            f"unknown model.init keys {sorted(unknown, key=str)}; known: {', '.join(known)}"
        )
    init = INIT_DEFAULTS | dict(init or {})
    init = {k: check_real(v, f"model.init.{k}", 0 if k.endswith("_std") else None)
            for k, v in init.items()}
    with torch.no_grad():
        linears = [m for m in net.layers.values() if isinstance(m, Linear | DelayedLinear)]
        for k, layer in enumerate(linears):
            mean, std = ("input_mean", "input_std") if k == 0 else ("hidden_mean", "hidden_std")
            if 0 < k == len(linears) - 1:  # into the readout: its own keys where given
                mean, std = (key if key in init else fallback for key, fallback in
                             zip(INIT_READOUT_KEYS, (mean, std), strict=True))
            layer.weight.normal_(init[mean], init[std], generator=generator)
            if draw_delays and isinstance(layer, DelayedLinear):
                layer.delay.uniform_(0.0, layer.max_delay, generator=generator)
        for module in net.layers.values():
            if isinstance(module, Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, init["conv_gain"] / math.sqrt(fan_in),
                                      generator=generator)
        for module in net.modules():
            rec = getattr(module, "recurrent", None)
            if rec is not None:
                rec.weight.normal_(0.0, init["recurrent_std"], generator=generator)
    return net
