"""The training loop: progress bar, per-epoch metrics, curves, atomic checkpoints, resume.

Everything a run writes lands in ``<out_dir>/<name>/``:

- ``config.yaml`` — the resolved config;
- ``metrics.json`` — one record per epoch (loss, accuracy, rates, lr, time), rewritten each epoch;
- ``curves.png`` — training curves, redrawn each epoch;
- ``checkpoint.pt`` — model, optimiser, schedule, RNG states and history, written atomically
  (temporary file + ``os.replace``) after every epoch; ``train.resume=true`` continues from it
  and gives bit-identical results to an uninterrupted run;
- at the end ``summary.json`` (test accuracy, wall time, graph counts, the fraction of test
  samples whose read-out saturated), ``curves.png`` again with the tested epoch marked, and plots
  of one test sample (``raster.png``, ``readout_membrane.png``); plots are titled with the run
  name and the backend.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor
from tqdm.auto import tqdm

from spikeloop.backends import get_backend
from spikeloop.errors import CheckpointError, ConfigError
from spikeloop.network import Network
from spikeloop.nn import NetworkOutput
from spikeloop.training.config import Config
from spikeloop.training.experiment import EncodedSplit, build_network, load_data
from spikeloop.training.losses import FiringRateRegularizer, Loss, make_loss
from spikeloop.viz import membrane_traces, raster_panel, timed_traces, training_curves

CHECKPOINT = "checkpoint.pt"
RESUMABLE_CHANGES = {"train.resume", "train.progress", "run.threads"}
"""Config keys that may differ between a checkpoint and the run that resumes it."""


def _config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for key in keys:
        a, b, name = old.get(key), new.get(key), prefix + key
        if isinstance(a, dict) and isinstance(b, dict) and prefix == "":
            out += _config_changes(a, b, name + ".")
        elif a != b and name not in RESUMABLE_CHANGES:
            out.append(name)
    return out


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2) + "\n"))


@dataclass
class EpochMetrics:
    """Metrics of one epoch."""

    epoch: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float
    seconds: float
    rates: dict[str, float] = field(default_factory=dict)

    def flat(self) -> dict[str, float]:
        """A flat dict (rates as ``rate_<population>`` in Hz)."""
        out = {k: v for k, v in self.__dict__.items() if k != "rates"}
        out |= {f"rate_{k}": v for k, v in self.rates.items()}
        return out


class Trainer:
    """Train a network described by a :class:`Config`.

    Example:
        >>> cfg = load_config("configs/yinyang.yaml", ["train.epochs=2"])
        >>> summary = Trainer(cfg).fit()      # doctest: +SKIP
        >>> summary["test_acc"]               # doctest: +SKIP
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        run = config.run
        if run.threads is not None:
            torch.set_num_threads(run.threads)
        self.dir = Path(run.out_dir) / run.name
        _seed_everything(run.seed)
        self.shuffle = torch.Generator().manual_seed(run.seed)
        init_gen = torch.Generator().manual_seed(run.seed + 1)
        self.data = load_data(config.data, generator=torch.Generator().manual_seed(run.seed + 2))
        n_in = self.data["train"].spikes.shape[-1]
        n_out = int(max(int(s.labels.max()) for s in self.data.values())) + 1
        self.network: Network = build_network(config.model, n_in, n_out, config.data.dt, init_gen)
        self.backend = get_backend(config.train.backend)  # one instance: chip noise, caches
        self.network.backend = self.backend
        self.loss: Loss = make_loss(config.train.loss, dt=config.data.dt)
        self.regularizer = _make_regularizer(config, self.network)
        self.optimizer = _make_optimizer(config, self.network)
        self.scheduler = _make_scheduler(config, self.optimizer)
        self.history: list[EpochMetrics] = []
        self.epoch = 0
        self.best: tuple[float, int, dict[str, Tensor]] | None = None  # val acc, epoch, weights
        if config.train.init_from is not None:
            self.load_weights(Path(config.train.init_from))
        if config.train.resume and (self.dir / CHECKPOINT).exists():
            self.load_checkpoint(self.dir / CHECKPOINT)

    # ------------------------------------------------------------------ steps
    def forward(self, spikes: Tensor) -> NetworkOutput:
        """Run the network on a batch of encoded spikes ``[T, B, C]``."""
        return self.network(spikes)

    def _objective(self, out: NetworkOutput, labels: Tensor) -> Tensor:
        loss = self.loss(out, labels)
        if self.regularizer is not None:
            loss = loss + self.regularizer(out)
        return loss

    def evaluate(self, split: EncodedSplit, batch_size: int = 1000) -> tuple[float, float, dict]:
        """Mean loss, accuracy and per-population rates (Hz) on a split, without gradients."""
        total_loss, correct, rates = 0.0, 0, {}
        dt = self.config.data.dt
        with torch.no_grad():
            for k in range(0, len(split), batch_size):
                x, y = split.spikes[:, k : k + batch_size], split.labels[k : k + batch_size]
                out = self.forward(x)
                total_loss += float(self._objective(out, y)) * len(y)
                correct += int((self.loss.predict(out) == y).sum())
                for name, obs in out.items():
                    if obs.spikes is not None and name != "input":
                        rates[name] = rates.get(name, 0.0) + float(obs.spikes.mean()) / dt * len(y)
        n = len(split)
        return total_loss / n, correct / n, {k: v / n for k, v in rates.items()}

    def train_epoch(self) -> tuple[float, float]:
        """One pass over the training split in shuffled mini-batches; mean loss and accuracy."""
        cfg = self.config.train
        train = self.data["train"]
        order = torch.randperm(len(train), generator=self.shuffle)
        batches = [order[k : k + cfg.batch_size] for k in range(0, len(train), cfg.batch_size)]
        if cfg.max_batches is not None:
            batches = batches[: cfg.max_batches]
        total, correct, seen = 0.0, 0, 0
        bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", leave=False,
                   disable=not cfg.progress, unit="batch")
        self.network.train()
        for idx in bar:
            x, y = train.spikes[:, idx], train.labels[idx]
            out = self.forward(x)
            loss = self._objective(out, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.network.constrain_()
            total += float(loss.detach()) * len(y)
            correct += int((self.loss.predict(out) == y).sum())
            seen += len(y)
            bar.set_postfix(loss=f"{total / seen:.4f}", acc=f"{correct / seen:.3f}")
        self.network.eval()
        return total / seen, correct / seen

    # ------------------------------------------------------------------ loop
    def fit(self, stop_after: int | None = None) -> dict[str, Any]:
        """Train to ``train.epochs`` (or stop after ``stop_after`` more epochs) and report.

        Returns the summary (also written to ``summary.json`` when training is complete).
        """
        cfg = self.config
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.dir / "config.yaml",
                     lambda p: p.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False)))
        start = time.perf_counter()
        last = cfg.train.epochs if stop_after is None else min(cfg.train.epochs,
                                                                self.epoch + stop_after)
        epochs = tqdm(range(self.epoch, last), desc=cfg.run.name, disable=not cfg.train.progress,
                      unit="epoch", initial=self.epoch, total=cfg.train.epochs)
        for _ in epochs:
            t0 = time.perf_counter()
            train_loss, train_acc = self.train_epoch()
            lr = self.optimizer.param_groups[0]["lr"]
            if self.scheduler is not None:
                self.scheduler.step()
            val_loss, val_acc, rates = self.evaluate(self.data["val"])
            self.epoch += 1
            m = EpochMetrics(self.epoch, train_loss, train_acc, val_loss, val_acc, lr,
                             time.perf_counter() - t0, rates)
            self.history.append(m)
            if cfg.train.keep_best and (self.best is None or val_acc > self.best[0]):
                state = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
                self.best = (val_acc, self.epoch, state)
            epochs.set_postfix(loss=f"{train_loss:.4f}", val_acc=f"{val_acc:.4f}")
            self.save_checkpoint(self.dir / CHECKPOINT)
            _write_json(self.dir / "metrics.json", [h.flat() for h in self.history])
            training_curves([h.flat() for h in self.history], path=self.dir / "curves.png")
        if self.epoch >= cfg.train.epochs and self.best is not None:
            self.network.load_state_dict(self.best[2])
            atomic_write(self.dir / "best.pt", lambda p: torch.save(
                {"model": self.best[2], "epoch": self.best[1], "val_acc": self.best[0]}, p))
        summary = self.summary(time.perf_counter() - start)
        if self.epoch >= cfg.train.epochs:
            _write_json(self.dir / "summary.json", summary)
            self.plot_sample()
        return summary

    def summary(self, wall: float) -> dict[str, Any]:
        """Final metrics: test/val accuracy and loss, wall time, network size, and the fraction
        of test samples whose read-out saturated (:meth:`readout_saturation`; ``None`` where the
        backend's read-out has no limits, e.g. the simulator)."""
        test_loss, test_acc, rates = self.evaluate(self.data["test"])
        saturation = self.readout_saturation(self.data["test"])
        g = self.network.graph
        return {
            "name": self.config.run.name,
            "seed": self.config.run.seed,
            "epochs": self.epoch,
            "test_acc": test_acc,
            "test_loss": test_loss,
            "val_acc": self.history[-1].val_acc if self.history else None,
            "best_epoch": self.best[1] if self.best is not None else None,
            "train_acc": self.history[-1].train_acc if self.history else None,
            "rates_hz": rates,
            "wall_seconds": wall,
            "seconds_per_epoch": float(np.mean([h.seconds for h in self.history]))
            if self.history else None,
            "neurons": g.num_neurons,
            "synapses": g.num_synapses,
            "parameters": g.num_parameters,
            "backend": self.config.train.backend,
            "torch_threads": torch.get_num_threads(),
            "tested_epoch": self.tested_epoch(),
            "readout_saturated_fraction": saturation["any"] if saturation else None,
            "readout_saturation": saturation,
        }

    def readout_saturation(
        self, split: EncodedSplit, batch_size: int = 1000
    ) -> dict[str, Any] | None:
        """Fractions of ``split``'s samples whose read-out — the membrane the loss reads, as
        the backend returned it — reached the floor or ceiling of the backend's read-out
        (:meth:`~spikeloop.backends.Backend.readout_range`, e.g. a chip's ADC) at any time step:
        ``{"any", "ceiling", "floor", "readout"}``; ``None`` if its read-out has no limits.

        The split runs once more (under ``torch.no_grad()``): on a noisy chip these are fresh
        trials of the same weights, not the very runs :meth:`evaluate` scored.
        """
        graph = self.network.graph
        name = self.loss.population or graph.output.name
        limits = self.backend.readout_range(graph, name)
        if limits is None:
            return None
        ceiling = floor = either = 0
        with torch.no_grad():
            for k in range(0, len(split), batch_size):
                out = self.forward(split.spikes[:, k : k + batch_size])
                high, low = limits.saturated(out[name].v)
                ceiling, floor = ceiling + int(high.sum()), floor + int(low.sum())
                either += int((high | low).sum())
        n = len(split)
        return {"any": either / n, "ceiling": ceiling / n, "floor": floor / n,
                "readout": limits.description}

    def tested_epoch(self) -> int | None:
        """The epoch whose weights the test uses: with ``train.keep_best`` the best-validation
        epoch once training is complete, else the last one (``None`` before the first)."""
        if self.best is not None and self.epoch >= self.config.train.epochs:
            return self.best[1]
        return self.epoch or None

    def _title(self, what: str) -> str:
        """A plot title naming the run and the backend."""
        spec, backend = self.config.train.backend, self.backend.name
        if isinstance(spec, dict):
            options = ", ".join(f"{k}={v}" for k, v in spec.items() if k != "name")
            backend += f" ({options})" if options else ""
        head = f"{self.config.run.name} [{backend}]:"
        sep = "\n" if len(head) + len(what) > 70 else " "  # a long title on two lines
        return f"{head}{sep}{what}"

    def plot_curves(self) -> None:
        """``curves.png``: training curves titled with run and backend, the tested epoch marked."""
        epoch = self.tested_epoch()
        best = self.best is not None and epoch == self.best[1]
        training_curves(
            [h.flat() for h in self.history], mark_epoch=epoch,
            mark_label="tested: best val_acc" if best else "tested: last epoch",
            title=self._title("training curves"), path=self.dir / "curves.png")

    def plot_sample(self, index: int = 0) -> None:
        """Raster of every population and readout membrane for one test sample, and the final
        training curves with the tested epoch marked (:meth:`plot_curves`)."""
        if self.history:
            self.plot_curves()
        test = self.data["test"]
        graph = self.network.graph
        with torch.no_grad():
            out = self.forward(test.spikes[:, index : index + 1])
        dt = self.config.data.dt
        label = int(test.labels[index])
        raster_panel({n: o.spikes for n, o in out.items() if o.spikes is not None}, dt,
                     inputs=(graph.input.name,),
                     title=self._title(f"spikes, test sample {index} (label {label})"),
                     path=self.dir / "raster.png")
        classes = out.output.v.shape[-1]
        readout = self.backend.readout_range(graph, out.output_name)
        what = "readout membrane" if readout is None else f"readout membrane, {readout.description}"
        membrane_traces(out.output.v, dt, labels=[f"class {c}" for c in range(classes)],
                        readout=readout,
                        title=self._title(f"{what}, test sample {index} (label {label})"),
                        path=self.dir / "readout_membrane.png")
        if not self.backend.differentiable:
            self.plot_device_vs_sim(index)

    def plot_device_vs_sim(self, index: int = 0) -> None:
        """One hidden neuron's membrane for one test sample: the device's dense ADC recording
        against the simulator on the same input (``device_vs_sim_membrane.png``). The
        simulator's samples are the ends of its steps; its resets drop vertically at the spike
        times (to ``v_reset``; a subtractive reset breaks the line)."""
        x = self.data["test"].spikes[:, index : index + 1]
        hidden = next(n for n in self.network.graph.populations() if n.spiking)
        with torch.no_grad():
            sim = self.network(x, backend="sim")
            neuron = int(sim[hidden.name].spikes[:, 0].sum(0).argmax())
            recorder = self.backend.with_dense(hidden.name, neuron)
            if recorder is None:
                return
            device = self.network(x, backend=recorder)
        trace = device[hidden.name].dense
        if trace is None:
            return
        dt = self.config.data.dt
        steps = sim[hidden.name].v.shape[0]
        t_sim = torch.arange(1, steps + 1, dtype=torch.float64) * dt
        threshold = hidden.params.get("v_threshold")
        v_reset = hidden.params.get("v_reset")
        reset = (float(v_reset.detach().reshape(-1)[neuron if v_reset.dim() else 0])
                 if v_reset is not None and hidden.settings.get("reset") == "value" else None)
        timed_traces(
            {f"{self.backend.name} (dense ADC recording)": (trace.t, trace.v),
             "simulator (end of each step)": (t_sim, sim[hidden.name].v[:, 0, neuron],
                                              sim[hidden.name].spikes[:, 0, neuron])},
            threshold=float(threshold.detach().reshape(-1)[neuron if threshold.dim() else 0])
            if threshold is not None else None,
            reset=reset,
            title=self._title(f"{hidden.name} neuron {neuron}, test sample {index}: "
                              "device vs simulator"),
            path=self.dir / "device_vs_sim_membrane.png",
        )

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: Path) -> None:
        """Write model, optimiser, schedule, RNG states and history atomically."""
        state = {
            "epoch": self.epoch,
            "model": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "shuffle": self.shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(),
            "backend_rng": self.backend.get_rng_state(),
            "history": [h.__dict__ for h in self.history],
            "best": self.best,
            "config": self.config.to_dict(),
        }
        atomic_write(path, lambda p: torch.save(state, p))

    def load_weights(self, path: Path) -> None:
        """Start from the network weights of another run's checkpoint (e.g. trained in the
        simulator, to train further on a chip); optimiser and history start fresh."""
        try:
            state = torch.load(path, weights_only=False)
            self.network.load_state_dict(state["model"])
        except FileNotFoundError:
            raise CheckpointError(f"train.init_from: no checkpoint at {str(path)!r}") from None
        except Exception as err:
            raise CheckpointError(f"train.init_from: cannot load {str(path)!r}: {err}") from None

    def load_checkpoint(self, path: Path) -> None:
        """Restore everything :meth:`save_checkpoint` wrote; the run continues bit-identically."""
        try:
            state = torch.load(path, weights_only=False)
        except Exception as err:  # a truncated or foreign file
            raise CheckpointError(f"cannot read checkpoint {str(path)!r}: {err}") from None
        changed = _config_changes(state.get("config", {}), self.config.to_dict())
        if changed:
            raise CheckpointError(
                f"checkpoint {str(path)!r} was written for a different config "
                f"(changed: {', '.join(changed)}); resume needs the same model, data and training "
                f"settings (only {', '.join(sorted(RESUMABLE_CHANGES))} may change)"
            )
        try:
            self.network.load_state_dict(state["model"])
        except RuntimeError as err:
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not match the model: {err}"
            ) from None
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.shuffle.set_state(state["shuffle"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        if state.get("backend_rng") is not None:
            self.backend.set_rng_state(state["backend_rng"])
        self.history = [EpochMetrics(**h) for h in state["history"]]
        self.best = state.get("best")
        self.epoch = state["epoch"]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _make_optimizer(cfg: Config, net: Network) -> torch.optim.Optimizer:
    t = cfg.train
    optimizers = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    if t.optimizer not in optimizers:
        raise ConfigError(f"unknown optimizer {t.optimizer!r}; known: {', '.join(optimizers)}")
    return optimizers[t.optimizer](net.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def _make_scheduler(cfg: Config, opt: torch.optim.Optimizer) -> Any:
    name = cfg.train.schedule
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.train.epochs))
    if name == "constant":
        return None
    raise ConfigError(f"unknown schedule {name!r}; known: cosine, constant")


def _make_regularizer(cfg: Config, net: Network) -> FiringRateRegularizer | None:
    spec = cfg.train.rate_regularizer
    if spec is None:
        return None
    spec = dict(spec)
    spec.setdefault("populations", [n.name for n in net.graph.populations()
                                    if n.spiking])
    spec.setdefault("dt", cfg.data.dt)
    try:
        return FiringRateRegularizer(**spec)
    except TypeError as err:
        raise ConfigError(f"train.rate_regularizer: {err}") from None
