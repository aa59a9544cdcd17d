"""Build the pieces of an experiment from its config: encoded data splits and the network."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from spikeloop.checks import check_dt, check_int, check_real, check_type, show
from spikeloop.data import make_encoder, yin_yang
from spikeloop.errors import ConfigError, DTypeError, ShapeError, SpikeloopError
from spikeloop.network import Network
from spikeloop.nn import POPULATIONS, Input, Linear
from spikeloop.registry import Registry
from spikeloop.training.config import INIT_DEFAULTS, DataConfig, ModelConfig

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


@dataclass(frozen=True)
class EncodedSplit:
    """A split encoded once into spikes ``[T, N, C]`` with labels ``[N]``."""

    spikes: Tensor
    labels: Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


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
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0] or not len(y):
        raise ShapeError(f"{who}: expected features [N, F] and labels [N], N ≥ 1, got "
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
    """Input → (Linear → spiking population) × len(hidden) → Linear → readout.

    Layer names: ``input``, ``fc1``, ``hidden1``, ``fc2``, ``hidden2`` …, ``output``. Weights are
    drawn from ``normal(input_mean, input_std)`` for the first projection and
    ``normal(hidden_mean, hidden_std)`` for the others; recurrent weights from
    ``normal(0, recurrent_std)``. Model-wide values (``tau_mem``, ``tau_syn``, ``v_threshold``,
    ``reset``) go to every population whose model has that parameter.

    Raises:
        ArgumentTypeError: ``cfg`` is not a :class:`ModelConfig`, ``n_in``/``n_out`` not
            integers. ParameterError: ``n_in``/``n_out`` ``< 1``. TimeStepError: ``dt``.
        UnknownNameError: an unknown neuron or readout model. ConfigError: a neuron model
            that does not spike, unknown ``model.init`` keys.
    """
    check_type(cfg, "build_network: cfg", ModelConfig, "a ModelConfig (config.model)")
    n_in = check_int(n_in, "build_network: n_in", 1)
    n_out = check_int(n_out, "build_network: n_out", 1)
    dt = check_dt(dt, "build_network: dt")
    neuron = POPULATIONS.get(cfg.neuron)
    readout = POPULATIONS.get(cfg.readout)
    if not neuron.spiking:
        raise ConfigError(f"model.neuron {cfg.neuron!r} does not spike; use lif, cuba_lif, ...")
    common = {"dt": dt, "method": cfg.method}
    shared = {"tau_mem": cfg.tau_mem, "tau_syn": cfg.tau_syn, "v_threshold": cfg.v_threshold,
              "reset": cfg.reset}
    layers: OrderedDict[str, torch.nn.Module] = OrderedDict(input=Input(n_in))
    sizes = [n_in, *cfg.hidden]
    for k, (a, b) in enumerate(itertools.pairwise(sizes), start=1):
        layers[f"fc{k}"] = Linear(a, neuron.description.input_width * b)  # 2b: two currents
        layers[f"hidden{k}"] = neuron(
            b, **common, surrogate=cfg.surrogate, recurrent=cfg.recurrent, learn=cfg.learn,
            **(_accepted(neuron, shared) | cfg.neuron_params),
        )
    layers[f"fc{len(sizes)}"] = Linear(sizes[-1], n_out)
    layers["output"] = readout(n_out, **common, **(_accepted(readout, shared) | cfg.readout_params))
    return init_weights(Network(layers), cfg.init, generator)


def init_weights(
    net: Network,
    init: Mapping[str, float] | None = None,
    generator: torch.Generator | None = None,
) -> Network:
    """Draw ``net``'s weights as the training configs do (``model.init``) and return ``net``.

    The first :class:`~spikeloop.nn.Linear` of ``net.layers`` gets ``normal(input_mean,
    input_std)`` — strong enough that a latency-coded input makes the first hidden layer
    spike —, every later ``Linear`` ``normal(hidden_mean, hidden_std)`` and every recurrent
    projection ``normal(0, recurrent_std)``; biases and other layers keep their values.
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
    unknown = set(init or {}) - set(INIT_DEFAULTS)
    if unknown:
        raise ConfigError(
            f"unknown model.init keys {sorted(unknown, key=str)}; known: "
            f"{', '.join(INIT_DEFAULTS)}"
        )
    init = INIT_DEFAULTS | dict(init or {})
    init = {k: check_real(v, f"model.init.{k}", 0 if k.endswith("_std") else None)
            for k, v in init.items()}
    with torch.no_grad():
        linears = [m for m in net.layers.values() if isinstance(m, Linear)]
        for k, layer in enumerate(linears):
            mean, std = ("input_mean", "input_std") if k == 0 else ("hidden_mean", "hidden_std")
            layer.weight.normal_(init[mean], init[std], generator=generator)
        for module in net.modules():
            rec = getattr(module, "recurrent", None)
            if rec is not None:
                rec.weight.normal_(0.0, init["recurrent_std"], generator=generator)
    return net
