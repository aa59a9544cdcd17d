"""Experiment configuration: frozen dataclasses loaded from YAML, with command-line overrides.

``load_config("configs/yinyang.yaml", ["train.epochs=5", "run.seed=2"])`` reads the file, applies
the overrides (values parsed as YAML) and checks every key: a key that does not exist raises
:class:`~spikeloop.errors.ConfigError` naming it and the keys that do.
"""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spikeloop.devices import Devices
from spikeloop.errors import ConfigError, ParameterError, UnknownNameError
from spikeloop.training.methods import method_options


def _require_positive(section: object, *names: str, allow_none: bool = False) -> None:
    """Raise ConfigError unless each named field is > 0 (or None when allowed)."""
    for name in names:
        value = getattr(section, name)
        if value is None and allow_none:
            continue
        if not (isinstance(value, int | float) and value > 0):
            prefix = type(section).__name__.removesuffix("Config").lower()
            raise ConfigError(f"{prefix}.{name} must be > 0, got {value!r}")


@dataclass(frozen=True)
class RunConfig:
    """Where and how a run happens: ``runs/<name>/``, the seed, CPU threads."""

    name: str = "yinyang"
    """Name of the run: its files go to ``<out_dir>/<name>/``; when that folder already holds
    another run, to the first free ``<name>-2``, ``<name>-3`` … (a run never writes into
    another run's folder). A plain folder name, no ``/``."""
    out_dir: str = "runs"
    """Folder that holds the run folders (relative to the working directory)."""
    seed: int = 0
    """Seeds the initial weights (``seed + 1``), the batch order (``seed``), a rate encoder
    (``seed + 2``) and Python/NumPy/torch; ≥ 0."""
    threads: int | str | None = "auto"
    """CPU threads for torch and the native kernels (``torch.set_num_threads``, for the whole
    process): a positive integer, or ``auto`` (also ``null``) for half the usable cores, at
    least one, so that another busy process on the machine does not stall every operator
    (``SPIKELOOP_THREADS=N`` sets what ``auto`` means). The run summary says what was chosen."""
    dist_timeout: float = 300.0
    """Data-parallel training (launched by ``torchrun``): seconds a rank waits for the others
    at a collective (a step's gradient all-reduce, a reduction of metrics) before it stops with
    :class:`~spikeloop.errors.DistributedError`; a rank that dies is noticed sooner, when its
    connection closes. It must cover the longest stretch one rank works alone (rank 0's
    plots and checkpoint); > 0."""
    tensorboard: bool = False
    """Also write TensorBoard event files into ``<run folder>/tensorboard/`` (needs
    ``pip install 'spikeloop[track]'``): every epoch the scalars of ``metrics.json`` and a
    histogram of each population's per-neuron firing rates on the validation split, at the
    end the test accuracy and the plots; ``tensorboard --logdir runs`` shows them."""

    def __post_init__(self) -> None:
        if isinstance(self.threads, str) and self.threads != "auto":
            raise ConfigError(f"run.threads must be a positive integer or 'auto', "
                              f"got {self.threads!r}")
        if not isinstance(self.threads, str):
            _require_positive(self, "threads", allow_none=True)
        _require_positive(self, "dist_timeout")
        if self.seed < 0:
            raise ConfigError(f"run.seed must be ≥ 0, got {self.seed}")
        if not self.name or self.name in (".", "..") or "/" in self.name or "\\" in self.name:
            raise ConfigError(f"run.name must be a plain folder name (no '/'), got {self.name!r}")


@dataclass(frozen=True)
class DataConfig:
    """Data set, its split sizes, the simulation grid and the spike encoder."""

    dataset: str = "yin_yang"
    """Registered data set (``spikeloop.training.DATASETS``) that provides the train, val and
    test splits."""
    train_size: int = 5000
    """Samples in the training split."""
    val_size: int = 1000
    """Samples in the validation split (per-epoch accuracy, ``train.keep_best``)."""
    test_size: int = 1000
    """Samples in the test split (the final ``test_acc``)."""
    dt: float = 0.5e-3
    """Simulation step in seconds, used by the encoder and every population."""
    duration: float = 50e-3
    """Length of one sample in seconds: ``T = round(duration / dt)`` steps."""
    encoder: dict[str, Any] = field(
        default_factory=lambda: {
            "name": "latency", "t_early": 2e-3, "t_late": 30e-3, "bias_time": 2e-3,
        }
    )
    """Spike encoder: ``name`` (a registered encoder, ``spikeloop.data.ENCODERS``) and its
    parameters in seconds; ``dt`` and ``duration`` come from this section."""
    root: str | None = None
    """Folder to look for the data set's files first (before ``$SPIKELOOP_DATA`` and the
    Debian location; ``spikeloop data`` lists where each data set was found)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Options of the data set, e.g. ``{flat: false}`` (images as ``[1, 28, 28]`` for a
    convolutional model) or ``{seed: 0}`` (the validation split's draw)."""
    augment: dict[str, Any] = field(default_factory=dict)
    """Vary each training batch (:mod:`spikeloop.data.augment`): ``shift`` (each sample moved by
    up to that many pixels along rows and columns, or channels for ``[C]`` samples; zeros
    moved in) and ``flip`` (images mirrored left–right with probability ½); e.g.
    ``{shift: 1, flip: true}``. Validation and test samples are never changed."""

    def __post_init__(self) -> None:
        _require_positive(self, "train_size", "val_size", "test_size", "dt", "duration")


INIT_DEFAULTS: dict[str, float] = {
    "input_mean": 1.0, "input_std": 1.0, "hidden_mean": 0.0, "hidden_std": 0.5,
    "recurrent_std": 0.1, "conv_gain": 1.0,
}
"""Weight initialisation of :func:`~spikeloop.training.build_network`: normal(mean, std)."""

INIT_READOUT_KEYS: tuple[str, ...] = ("readout_mean", "readout_std")
"""Optional ``model.init`` keys for the last projection (into the readout) of a network with at
least two; without them it is drawn as the other hidden projections."""


@dataclass(frozen=True)
class ModelConfig:
    """A stack of fully connected spiking layers and a readout.

    ``neuron``/``readout`` name population models (see ``spikeloop.nn.POPULATIONS``);
    ``neuron_params``/``readout_params`` pass extra parameters (e.g. ``tau_adapt``);
    ``init`` sets the weight initialisation: ``normal(mean, std)`` per projection.
    """

    hidden: list[int] = field(default_factory=lambda: [120])
    """Sizes of the hidden spiking layers, e.g. ``[240]`` or ``[64, 64]``."""
    neuron: str = "cuba_lif"
    """Population model of the hidden layers (a config name of ``spikeloop.nn.POPULATIONS``;
    must spike)."""
    readout: str = "cuba_li"
    """Population model of the readout layer (a config name of ``spikeloop.nn.POPULATIONS``)."""
    recurrent: bool = False
    """Give every hidden layer an all-to-all recurrent projection."""
    norm: bool = False
    """Batch-normalise the currents into every hidden layer (a :class:`~spikeloop.nn.BatchNorm`
    ``fc{k}_bn`` after ``fc{k}``; statistics of the time mean over the batch). For the
    convolutional stages it is their own key ``norm`` (``model.conv``)."""
    tau_mem: float = 10e-3
    """Membrane time constant in seconds, for every population whose model has one."""
    tau_syn: float = 5e-3
    """Synaptic time constant in seconds, for every population whose model has one."""
    v_threshold: float = 1.0
    """Firing threshold, for every population whose model has one (the hidden layers)."""
    reset: str = "value"
    """Reset after a spike: ``value`` (to ``v_reset``) or ``subtract`` (the threshold)."""
    method: str = "exact"
    """Discretisation of every population: ``exact`` (exponential integration) or ``euler``."""
    surrogate: dict[str, Any] = field(default_factory=lambda: {"name": "superspike", "beta": 10.0})
    """Surrogate derivative of the hidden layers: ``name`` (``spikeloop.dynamics.SURROGATES``)
    and its parameters."""
    learn: list[str] = field(default_factory=list)
    """Neuron parameters trained per neuron besides the weights, e.g. ``[tau_mem,
    v_threshold]``."""
    neuron_params: dict[str, Any] = field(default_factory=dict)
    """Extra parameters of the hidden model (e.g. ``{tau_adapt: 0.1}``); they override the
    model-wide values above."""
    readout_params: dict[str, Any] = field(default_factory=dict)
    """Extra parameters of the readout model; they override the model-wide values above."""
    conv: list[dict[str, Any]] = field(default_factory=list)
    """Convolutional stages before the fully connected ones, each ``{channels: 32, kernel: 3,
    padding: 1, pool: 2}`` (``padding`` defaults to ``kernel // 2``, ``pool`` to 1, no
    pooling; ``norm: true`` batch-normalises the currents into the stage's neurons,
    ``conv{k}_bn``): ``Conv2d`` → ``AvgPool2d(pool)`` → a population of ``model.neuron``; the
    input must then be images ``[C, H, W]`` (``data.params.flat: false``)."""
    delays: dict[str, Any] = field(default_factory=dict)
    """Learnable transmission delays on every projection into a hidden layer (``fc1`` …;
    not the readout's): ``{max_delay: 0.25, per: axon, learn: true}`` makes each a
    :class:`~spikeloop.nn.DelayedLinear` with delays in ``[0, max_delay]`` seconds (a whole
    number of steps ``data.dt``), ``per`` ``axon`` (one per input neuron; the default here,
    as it costs little more than a Linear) or ``synapse`` (one per weight, ``max_delay / dt + 1``
    times a Linear's multiply-adds; ``DelayedLinear``'s own default), initially uniform in
    that range; ``learn: false`` keeps them fixed. Empty
    (the default): plain ``Linear`` projections."""
    init: dict[str, Any] = field(default_factory=lambda: dict(INIT_DEFAULTS))
    """Weight initialisation, ``normal(mean, std)``: ``input_mean``/``input_std`` for the first
    projection, ``hidden_mean``/``hidden_std`` for the others, ``readout_mean``/``readout_std``
    (optional; default: the hidden ones) for the last of two or more (into the readout: e.g.
    Kaiming's ``sqrt(2 / fan_in)`` per layer needs its own value there), ``recurrent_std`` for
    recurrent weights, ``conv_gain`` for convolutions (``normal(0, conv_gain / sqrt(fan_in))``);
    missing keys keep their defaults."""

    block: dict[str, Any] = field(default_factory=dict)
    """A ready-made network instead of the stack above: ``{name: synnet | wavesense | lif,
    ...}`` with the keyword arguments of :func:`~spikeloop.network.blocks.synnet`,
    :func:`~spikeloop.network.audio_blocks.wavesense` or
    :func:`~spikeloop.network.audio_blocks.recurrent_lif` (``inputs``, ``outputs`` and ``dt``
    come from the data), e.g. ``{name: wavesense, channels: 16, dilations: [2, 4, 8, 16],
    skip_channels: 32}``; :data:`~spikeloop.training.experiment.BLOCK_KEYS` lists the keys.
    Of this section only ``init`` then applies. Empty (the default): the stack above."""

    def __post_init__(self) -> None:
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ConfigError(
                f"model.hidden must be a non-empty list of sizes ≥ 1, got {self.hidden}"
            )
        _require_positive(self, "tau_mem", "tau_syn")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: epochs, batches, optimiser, schedule, loss, regulariser, checkpoints.

    ``backend``: where the forward pass runs (``"sim"``, ``"event"`` (exact EventProp
    gradients; ``{"name": "event", "engine": "grid"}``: EventProp on the grid of ``dt``),
    ``"chip"``, ``"xylo"`` or ``{"name": "chip", "seed": 1, ...}``); a chip trains in the
    loop. ``init_from``: a checkpoint whose network
    weights to start from (e.g. a simulator run, to train further on a chip). ``keep_best``:
    finish with the weights of the epoch with the best validation accuracy (model selection on
    the validation split; also written to ``best.pt``).
    """

    epochs: int = 60
    """Passes over the training split."""
    batch_size: int = 100
    """Samples per training batch."""
    lr: float = 1e-2
    """Learning rate (at the start of the schedule)."""
    optimizer: str = "adam"
    """Optimiser: ``adam``, ``adamw`` or ``sgd``."""
    weight_decay: float = 0.0
    """The optimiser's weight decay (≥ 0)."""
    schedule: str = "cosine"
    """Learning-rate schedule over ``epochs``: ``cosine`` (annealed to 0) or ``constant``."""
    loss: dict[str, Any] = field(default_factory=lambda: {"name": "max_membrane_ce"})
    """Loss: ``name`` (``spikeloop.training.LOSSES``) and its parameters, e.g. ``scale: 0.2``
    (logits = max membrane / scale)."""
    rate_regularizer: dict[str, Any] | None = None
    """Optional firing-rate penalty (``FiringRateRegularizer``): ``low``, ``high`` (Hz),
    ``strength``, ``populations`` (default: every spiking population)."""
    backend: str | dict[str, Any] = "sim"
    """Where the forward pass runs: a name (``spikeloop.backends.BACKENDS``) or ``{name: chip,
    seed: 1, ...}`` with options; a non-differentiable backend trains in the loop."""
    init_from: str | None = None
    """Path of a checkpoint (``checkpoint.pt`` or ``best.pt``) whose network weights the run
    starts from, e.g. a simulator run trained further on a chip; the optimiser, schedule and
    history start fresh."""
    keep_best: bool = False
    """Finish with the weights of the epoch with the best validation accuracy (also written to
    ``best.pt``); the test accuracy is theirs."""
    resume: bool = False
    """Continue the run in ``<out_dir>/<name>/`` from its ``checkpoint.pt`` (model, optimiser,
    schedule, random states, history, the position inside an interrupted epoch), bit-identical
    to an uninterrupted run; refused when that folder has no checkpoint. The config must be the
    same except ``train.resume``, ``train.progress``, ``run.threads``, ``run.name`` and
    ``run.out_dir``. ``spikeloop resume <folder>`` does the same from the folder's own config."""
    method: str | dict[str, Any] = "backprop"
    """How the weights are trained (:mod:`spikeloop.training.methods`): a name or ``{name:
    <method>, <option>: <value>}``. Gradient methods: ``backprop`` (through the backend:
    surrogate gradients on the simulator, EventProp on ``event``, the in-the-loop bridge on a
    chip) and ``ann_proxy`` (the spiking run's loss, backpropagated through its rate network,
    :mod:`spikeloop.training.proxy`; IF neurons, so the sim backend: the emulated chips have
    none). Local methods change the weights without backpropagation through time; each
    method's options default to its paper's values."""
    max_batches: int | None = None
    """Train on at most this many batches per epoch (quick checks); ``null``: all."""
    progress: bool = True
    """Show progress: the start-up line (folder, backend, threads), then bars per epoch and batch
    on a terminal, or one line per epoch when the output is a file or a pipe."""

    def __post_init__(self) -> None:
        _require_positive(self, "epochs", "batch_size", "lr")
        _require_positive(self, "max_batches", allow_none=True)
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be ≥ 0, got {self.weight_decay}")
        method_options(self.method)


@dataclass(frozen=True)
class DevicesConfig:
    """Device models the network runs on (:mod:`spikeloop.devices`), and whether training goes
    through them.

    Validation and test always run on the devices (programming instance ``instance``, ``t``
    seconds after programming). With ``train: false`` the network trains on ideal devices
    and is deployed on these; with ``train: true`` it trains through them (noise-aware
    training: the devices' stochastic forward, the model's backward), on a new programming
    instance at every step (``reprogram: step``) or on the evaluation instance throughout
    (``reprogram: never``).
    """

    models: dict[str, Any] = field(default_factory=dict)
    """``{node name: {name: <model>, <option>: <value>} | [..]}``; the key ``"*"`` attaches to
    every node of the model's kind, e.g. ``{"*": {name: crossbar, levels: 16}}``. Empty (the
    default): ideal devices."""
    train: bool = False
    """Train through the devices (noise-aware training) instead of on ideal ones."""
    reprogram: str = "step"
    """Noise-aware training: ``step`` (a new programming instance per training step, so the
    network learns weights robust to the device variation, not to one pattern) or ``never``."""
    instance: int = 0
    """The programming instance validation and test run on."""
    t: float = 0.0
    """Seconds since programming at which the devices are read (drift), ≥ 0."""
    seed: int = 0
    """Start of the read-noise stream."""

    def __post_init__(self) -> None:
        if self.reprogram not in ("step", "never"):
            raise ConfigError(f"devices.reprogram must be step or never, got {self.reprogram!r}")
        try:  # the models, instance, t and seed as Devices checks them, at load time
            Devices(self.models, instance=self.instance, t=self.t, seed=self.seed)
        except (ConfigError, ParameterError, UnknownNameError) as err:
            raise ConfigError(str(err) if str(err).startswith("devices") else
                              f"devices: {err}") from None


@dataclass(frozen=True)
class Config:
    """A whole experiment."""

    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    devices: DevicesConfig = field(default_factory=DevicesConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML/JSON serialisable)."""
        return dataclasses.asdict(self)


def _check_type(value: Any, annotation: Any, path: str) -> Any:
    """Check (and gently coerce int → float) ``value`` against a field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(annotation):
            with contextlib.suppress(ConfigError):
                return _check_type(value, option, path)
        names = [getattr(a, "__name__", str(a)).replace("NoneType", "null")
                 for a in typing.get_args(annotation)]
        raise ConfigError(f"{path}: expected {' or '.join(names)}, got {value!r}")
    if annotation is type(None):
        if value is None:
            return None
    elif annotation is Any:
        return value
    elif annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation in (str, bool):
        if type(value) is annotation:
            return value
    elif origin is list:
        if isinstance(value, Sequence) and not isinstance(value, str):
            (item,) = typing.get_args(annotation)
            return [_check_type(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    elif origin is dict and isinstance(value, Mapping):
        return dict(value)
    name = getattr(annotation, "__name__", str(annotation))
    raise ConfigError(f"{path}: expected {name}, got {value!r}")


def from_dict(cls: type, data: Mapping[str, Any], path: str = "") -> Any:
    """Build dataclass ``cls`` from a nested mapping, rejecting unknown keys."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"unknown config key {path + key!r}; known keys here: {', '.join(sorted(known))}"
        )
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value, f"{path}{key}.")
        else:
            kwargs[key] = _check_type(value, hint, path + key)
    return cls(**kwargs)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a nested dict copy."""
    out = yaml.safe_load(yaml.safe_dump(data)) or {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.subkey=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(
                f"override {item!r}: the value is not valid YAML ({problem}); quote lists and "
                f"mappings for the shell, e.g. 'model.hidden=[64, 32]'"
            ) from None
    return out


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load a YAML config (or the defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"config {str(path)!r} is a directory; give a YAML file such as "
                              f"configs/yinyang.yaml (a run folder resumes with "
                              f"`spikeloop resume {path}`)")
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"config file {str(path)!r} is not valid YAML ({where}{problem})"
                              ) from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"cannot read config file {str(path)!r}: {err}") from None
    return from_dict(Config, apply_overrides(data, overrides))


RESUME_OVERRIDES = ("run.threads", "train.progress", "run.tensorboard", "run.dist_timeout")
"""The keys ``spikeloop resume`` may change: threads, progress output, TensorBoard logging and
the data-parallel timeout."""


def load_run_config(run_dir: str | Path, overrides: Sequence[str] = ()) -> Config:
    """The config of the run in ``run_dir`` (its ``config.yaml``), set up to resume it there.

    ``run.out_dir`` and ``run.name`` point at ``run_dir`` wherever the folder now lies (a copied
    or moved run resumes in its new place) and ``train.resume`` is on; ``overrides`` may set only
    :data:`RESUME_OVERRIDES` (how the run is executed and logged, not what it computes);
    anything else raises :class:`ConfigError`.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"no run folder {str(run_dir)!r}")
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{str(run_dir)!r} is not a run folder: it has no config.yaml")
    allowed = RESUME_OVERRIDES
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key not in allowed:
            raise ConfigError(f"a resume may change only {', '.join(allowed[:-1])} and "
                              f"{allowed[-1]}, not {key!r} "
                              f"(the rest must stay as the run was started; start a new run "
                              f"with train.init_from={run_dir / 'checkpoint.pt'} to change it)")
    data = apply_overrides(load_config(run_dir / "config.yaml").to_dict(), overrides)
    data["run"] |= {"out_dir": str(run_dir.resolve().parent), "name": run_dir.resolve().name}
    data["train"]["resume"] = True
    return from_dict(Config, data)
