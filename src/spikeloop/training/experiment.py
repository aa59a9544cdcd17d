"""Build the pieces of an experiment from its config: encoded data splits and the network."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor

from spikeloop.data import make_encoder, yin_yang
from spikeloop.errors import ConfigError
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


def load_data(cfg: DataConfig, generator: torch.Generator | None = None) -> dict[str, EncodedSplit]:
    """Generate the data set's splits and encode them with the configured encoder."""
    params = dict(cfg.encoder)
    if "name" not in params:
        raise ConfigError("data.encoder needs a 'name' (e.g. latency, rate)")
    name = params.pop("name")
    if name == "rate":
        params.setdefault("generator", generator)
    encode = make_encoder(name, dt=cfg.dt, duration=cfg.duration, **params)
    out = {}
    for split, (x, y) in DATASETS.get(cfg.dataset)(cfg).items():
        spikes = encode(torch.tensor(x, dtype=torch.float32))
        out[split] = EncodedSplit(spikes, torch.as_tensor(y, dtype=torch.long))
    return out


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
    """
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
    """
    unknown = set(init or {}) - set(INIT_DEFAULTS)
    if unknown:
        raise ConfigError(
            f"unknown model.init keys {sorted(unknown)}; known: {', '.join(INIT_DEFAULTS)}"
        )
    init = INIT_DEFAULTS | dict(init or {})
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
