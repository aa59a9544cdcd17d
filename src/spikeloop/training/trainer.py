"""The training loop: progress, per-epoch metrics, curves, atomic checkpoints, resume, Ctrl-C.

Every run gets a folder of its own, ``<out_dir>/<name>/``; when that folder already holds
another run, the new run takes the first free ``<name>-2``, ``<name>-3`` … and says so, so a
run never writes into another run's folder. It holds:

- ``status.json`` — what the folder is: ``running``, ``finished``, ``stopped`` (``fit`` with
  ``stop_after``), ``failed`` (with the error) or ``interrupted`` (with the command that
  resumes it), the command line, start/end times, the epoch reached and every resume;
- ``config.yaml`` — the resolved config, written once when the run starts;
- ``metrics.json`` — one record per epoch (loss, accuracy, rates, lr, time), rewritten each epoch;
- ``curves.png`` — training curves, redrawn each epoch;
- ``checkpoint.pt`` — model, optimiser, schedule, RNG states and history, written atomically
  (temporary file + ``os.replace``) after every epoch, and on Ctrl-C after the last finished
  batch; ``spikeloop resume <folder>`` (or ``train.resume=true`` with the same ``run.name``)
  continues from it with results bit-identical to an uninterrupted run;
- at the end ``summary.json`` (test accuracy, wall time, graph counts, threads, the fraction of
  test samples whose read-out saturated), ``curves.png`` again with the tested epoch marked,
  and plots of one test sample (``raster.png``, ``readout_membrane.png``); plots are titled
  with the run name and the backend;
- with ``run.tensorboard: true``, ``tensorboard/``: TensorBoard event files of the same
  metrics, per-neuron rate histograms and plots (:mod:`spikeloop.training.tracking`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import difflib
import importlib.metadata
import json
import os
import random
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import Tensor
from tqdm.auto import tqdm

from spikeloop._files import atomic_write
from spikeloop._runtime import set_threads
from spikeloop.backends import get_backend
from spikeloop.checks import check_bool, check_int, check_path, check_state_dict, check_type
from spikeloop.data.augment import augment, check_augment
from spikeloop.devices import Devices
from spikeloop.errors import (
    CheckpointError,
    ConfigError,
    ParameterError,
    RunFolderError,
    SpikeloopError,
    TrainingInterrupted,
)
from spikeloop.network import Network
from spikeloop.nn import NetworkOutput
from spikeloop.training.config import Config
from spikeloop.training.distributed import (
    World,
    check_launch,
    grads_of,
    join_world,
    launch_from_env,
    rank_record,
)
from spikeloop.training.experiment import EncodedSplit, build_network, load_data
from spikeloop.training.losses import FiringRateRegularizer, Loss, make_loss
from spikeloop.training.methods import make_method
from spikeloop.training.tracking import TensorBoardLog, require_tensorboard
from spikeloop.viz import membrane_traces, raster_panel, timed_traces, training_curves

CHECKPOINT = "checkpoint.pt"
STATUS = "status.json"
RESUMABLE_CHANGES = {"train.resume", "train.progress", "run.threads", "run.name", "run.out_dir",
                     "train.init_from", "run.dist_timeout", "run.tensorboard"}
"""Config keys that may differ between a checkpoint and the run that resumes it (a run folder
may be renamed, copied or moved and resumed there)."""


def _say(message: str) -> None:
    """A notice for the person running the training (stderr, above any progress bar)."""
    tqdm.write(message, file=sys.stderr)


def _now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


def resume_command(run_dir: Path) -> str:
    """The shell command that resumes the run in ``run_dir``."""
    return f"spikeloop resume {shlex.quote(str(run_dir))}"


def _config_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for key in keys:
        a, b, name = old.get(key), new.get(key), prefix + key
        if a is None and prefix == "" and isinstance(b, dict):  # a section added since: its
            a = Config().to_dict().get(key)                     # defaults are what ran
        if isinstance(a, dict) and isinstance(b, dict) and prefix == "":
            out += _config_changes(a, b, name + ".")
        elif a != b and name not in RESUMABLE_CHANGES:
            out.append(name)
    return out


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
        self.config = check_type(config, "Trainer: config", Config,
                                 "a Config (spikeloop.training.load_config)")
        run = config.run
        launch = launch_from_env()  # torchrun's environment: checked before anything is built
        if launch is not None:
            check_launch(launch, config.train.batch_size,
                         {"val": config.data.val_size, "test": config.data.test_size},
                         config.train.rate_regularizer is not None)
        if run.tensorboard:  # every rank: a missing package stops them all before training
            require_tensorboard()
        self._board: TensorBoardLog | None = None  # the event files, while fit() runs
        self.threads, self.threads_reason = set_threads(run.threads)
        _seed_everything(run.seed)
        self.shuffle = torch.Generator().manual_seed(run.seed)
        init_gen = torch.Generator().manual_seed(run.seed + 1)
        self.data = load_data(config.data, generator=torch.Generator().manual_seed(run.seed + 2))
        n_in = tuple(self.data["train"].spikes.shape[2:])
        self.augment = check_augment(config.data.augment, n_in)
        n_out = int(max(int(s.labels.max()) for s in self.data.values())) + 1
        self.network: Network = build_network(config.model, n_in, n_out, config.data.dt, init_gen)
        dev = config.devices
        self.devices = Devices(dev.models, instance=dev.instance, t=dev.t, seed=dev.seed)
        """The devices validation and test run on (``devices`` of the config; empty: ideal).
        Every evaluation puts them on the network; set another :class:`Devices` here to
        evaluate on it."""
        self._train_devices = (  # its own streams: never an instance evaluation runs on
            Devices(dev.models, instance=dev.instance, t=dev.t, seed=dev.seed, stream="train")
            if dev.train and dev.models else Devices())
        """The devices training steps run on: these (noise-aware) or ideal ones."""
        self.network.devices = self.devices
        self.world: World | None = None
        """This process's rank among the data-parallel processes (``None``: a single process)."""
        if launch is not None and launch.size > 1:
            cuda = any(p.is_cuda for p in self.network.parameters())
            self.world = join_world(launch, run.dist_timeout, cuda)
        self.backend = self._rank_backend()  # one instance: chip noise, caches
        self.network.backend = self.backend
        self.ranks = (self.world.gather(rank_record(self.world, self.backend), "sharing the "
                                        "ranks' backends") if self.world is not None
                      else [rank_record(None, self.backend)])
        """What each rank runs on (:func:`~spikeloop.training.distributed.rank_record`)."""
        self.loss: Loss = make_loss(config.train.loss, dt=config.data.dt)
        self.regularizer = _make_regularizer(config, self.network)
        self.optimizer = _make_optimizer(config, self.network)
        self.scheduler = _make_scheduler(config, self.optimizer)
        self.method = make_method(config.train.method)
        """What a training batch does (:mod:`spikeloop.training.methods`)."""
        if self.world is not None and not self.method.gradient:
            raise ConfigError(f"train.method {self.method.name} changes the weights locally; "
                              f"data-parallel training reduces gradients (run one process)")
        if self.devices and self.method.name != "backprop":
            raise ConfigError(f"devices: train.method {self.method.name} runs the network "
                              "without its devices (its own graph walk or rate network); "
                              "device models need train.method backprop")
        self.method.check(self)
        self.history: list[EpochMetrics] = []
        self.epoch = 0
        self.best: tuple[float, int, dict[str, Tensor]] | None = None  # val acc, epoch, weights
        self._partial: dict[str, Any] | None = None  # the epoch in progress (Ctrl-C, resume)
        if config.train.init_from is not None and not config.train.resume:
            self.load_weights(Path(config.train.init_from))  # a resume's checkpoint has them
        base = Path(run.out_dir) / run.name
        self._claimed = self._resuming = False
        self._saved: str | None = None  # what the checkpoint on disk holds
        if config.train.resume:
            self.dir = base
            self._require_checkpoint()
            used = self.load_checkpoint(self.dir / CHECKPOINT).get("threads")
            self._claimed = self._resuming = True
            self._saved = self._position()
            if self._writes:
                _say(f"resuming {self.dir} from {self.dir / CHECKPOINT} ({self._saved})")
            if used is not None and used != self.threads:
                if run.threads in (None, "auto"):  # the run's own count keeps results identical
                    self.threads = set_threads(used)[0]
                    self.threads_reason = "auto on resume: the thread count the run started with"
                elif self._writes:
                    _say(f"note: the run used {used} torch threads, this resume {self.threads}; "
                         f"results may differ in the last bits from an uninterrupted run")
        else:
            try:
                self.dir = _free_folder(base)
            except OSError as err:
                raise RunFolderError(f"cannot look into {str(base.parent)!r}: "
                                     f"{err.strerror}") from None

    def _require_checkpoint(self) -> None:
        """Refuse ``train.resume`` when the run folder has no checkpoint, naming what exists."""
        try:
            if (self.dir / CHECKPOINT).exists():
                return
            parent = self.dir.parent
            runs = sorted(p.name for p in parent.iterdir() if (p / CHECKPOINT).exists()) \
                if parent.is_dir() else []
        except OSError as err:
            raise RunFolderError(f"cannot look into {str(self.dir)!r}: {err.strerror}") from None
        near = difflib.get_close_matches(self.dir.name, runs, n=3)
        hint = (f"; did you mean {', '.join(near)}?" if near else
                f"; runs with a checkpoint in {str(parent)!r}: {', '.join(runs)}" if runs else "")
        what = "has no checkpoint" if self.dir.is_dir() else "does not exist"
        raise RunFolderError(
            f"cannot resume: run folder {str(self.dir)!r} {what} ({CHECKPOINT}){hint}"
        )

    @property
    def _writes(self) -> bool:
        """Whether this process writes the run folder: a single process, or rank 0."""
        return self.world is None or self.world.main

    def _rank_backend(self) -> Any:
        """The configured backend; in data-parallel training a chip (a non-differentiable
        backend with a ``seed``) is instance ``seed + rank``: every rank drives a chip of its
        own, as a lab with several boards would."""
        spec = self.config.train.backend
        backend = get_backend(spec)
        if self.world is None or backend.differentiable or not hasattr(backend, "seed"):
            return backend
        options = dict(spec) if isinstance(spec, Mapping) else {"name": spec}
        options["seed"] = backend.seed + self.world.rank
        return get_backend(options)

    def close(self) -> None:
        """Leave the data-parallel process group (nothing for a single process); the CLI
        calls it when training ends."""
        if self.world is not None:
            self.world.close()

    # ------------------------------------------------------------------ steps
    def forward(self, spikes: Tensor) -> NetworkOutput:
        """Run the network on a batch of encoded spikes ``[T, B, C]``."""
        return self.network(spikes)

    def _train_forward(self, spikes: Tensor) -> NetworkOutput:
        """The forward pass of a gradient method's training step (:meth:`forward`, or e.g.
        with ``train.method: ann_proxy`` the same run given the rate network's gradients)."""
        return self.method.forward(self, spikes)

    @property
    def lr_factor(self) -> float:
        """The schedule's current learning rate over ``train.lr``: local methods scale their
        own rates by it, so ``train.schedule`` applies to them too."""
        return self.optimizer.param_groups[0]["lr"] / self.config.train.lr

    def predict(self, out: NetworkOutput) -> Tensor:
        """The predicted class of every sample of a run: the method's rule (e.g. label
        assignment), else the loss's."""
        pred = self.method.predict(self, out)
        return self.loss.predict(out) if pred is None else pred

    def _objective(self, out: NetworkOutput, labels: Tensor) -> Tensor:
        loss = self.loss(out, labels)
        if self.regularizer is not None:
            loss = loss + self.regularizer(out)
        return loss

    def evaluate(self, split: EncodedSplit, batch_size: int = 1000) -> tuple[float, float, dict]:
        """Mean loss, accuracy and per-population rates (Hz) on a split, without gradients.
        In data-parallel training every rank evaluates its share and the sums are reduced:
        every rank must call it, and gets the numbers of the whole split.

        Raises:
            ArgumentTypeError: ``split`` is not an :class:`EncodedSplit` or ``batch_size`` not
                an integer. ParameterError: ``batch_size < 1``, or in data-parallel training a
                split with fewer samples than ranks.
        """
        return self._score(split, batch_size)[:3]

    def _score(self, split: EncodedSplit, batch_size: int = 1000, saturation: bool = False,
               per_neuron: bool = False
               ) -> tuple[float, float, dict, dict[str, Any] | None, dict[str, Tensor]]:
        """:meth:`evaluate`'s pass over ``split``; with ``saturation`` also
        :meth:`readout_saturation` of the very same runs (one pass: on a noisy chip a second
        pass would be other trials); with ``per_neuron`` also every spiking population's
        per-neuron rates in Hz (flattened; their mean is the population's rate), else ``{}``."""
        check_type(split, "split", EncodedSplit, "an EncodedSplit (e.g. trainer.data['val'])")
        batch_size = check_int(batch_size, "batch_size", 1)
        total_loss, correct, rates, counts = 0.0, 0, {}, {}
        ceiling = floor = either = 0
        dt = self.config.data.dt
        graph = self.network.graph
        readout = self.loss.population or graph.output.name
        limits = self.backend.readout_range(graph, readout) if saturation else None
        n = len(split)
        if self.world is not None and n < self.world.size:
            raise ParameterError(f"split: {n} sample(s) cannot be shared by WORLD_SIZE = "
                                 f"{self.world.size} ranks; every rank evaluates a share")
        mine = self.world.shard(n) if self.world is not None else slice(0, n)
        self.network.devices = self.devices
        with torch.no_grad():
            for k in range(mine.start, mine.stop, batch_size):
                x, y = split.batch(slice(k, min(k + batch_size, mine.stop)))
                out = self.forward(x)
                total_loss += float(self._objective(out, y)) * len(y)
                correct += int((self.predict(out) == y).sum())
                for name, obs in out.items():
                    if obs.spikes is not None and name != "input":
                        rates[name] = rates.get(name, 0.0) + float(obs.spikes.mean()) / dt * len(y)
                        if per_neuron:  # spikes of each neuron, summed over time and samples
                            count = obs.spikes.sum((0, 1)).flatten().double()
                            counts[name] = counts[name] + count if name in counts else count
                if limits is not None:
                    high, low = limits.saturated(out[readout].v)
                    ceiling, floor = ceiling + int(high.sum()), floor + int(low.sum())
                    either += int((high | low).sum())
        if self.world is not None:  # sums of this rank's share → sums over the split
            names = list(rates)  # the same populations, in the same order, on every rank
            sums = self.world.sum([total_loss, correct, ceiling, floor, either,
                                   *(rates[k] for k in names)], "reducing evaluation metrics")
            total_loss, rates = sums[0], dict(zip(names, sums[5:], strict=True))
            correct, ceiling, floor, either = (round(v) for v in sums[1:5])
            if counts:
                flat = self.world.sum(torch.cat(list(counts.values())).tolist(),
                                      "reducing per-neuron spike counts")
                counts = dict(zip(counts, torch.tensor(flat, dtype=torch.float64).split(
                    [len(c) for c in counts.values()]), strict=True))
        saturated = None if limits is None else {
            "any": either / n, "ceiling": ceiling / n, "floor": floor / n,
            "readout": limits.description}
        steps = split.spikes.shape[0]
        return (total_loss / n, correct / n, {k: v / n for k, v in rates.items()}, saturated,
                {k: c / (n * steps * dt) for k, c in counts.items()})

    def train_epoch(self, interrupt: _Interrupt | None = None) -> tuple[float, float]:
        """One pass over the training split in shuffled mini-batches; mean loss and accuracy.

        With ``interrupt`` (what :meth:`fit` passes) a Ctrl-C ends the epoch after the batch in
        progress: the epoch's position is kept for the checkpoint and :class:`_Stop` raised.
        """
        cfg = self.config.train
        train = self.data["train"]
        if self._partial is None:
            order = torch.randperm(len(train), generator=self.shuffle)
            n = -(-len(train) // cfg.batch_size)
            self._partial = {"order": order, "done": 0, "batches": min(n, cfg.max_batches or n),
                             "total": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}
        p = self._partial
        order = p["order"]
        t0 = time.perf_counter() - p["seconds"]
        bar = tqdm(range(p["done"], p["batches"]), desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   leave=False, disable=not self._bars, unit="batch", initial=p["done"],
                   total=p["batches"])
        params = grads_of(self.network.parameters())
        self.network.train()
        self.network.devices = self._train_devices
        try:
            for k in bar:
                idx = order[k * cfg.batch_size : (k + 1) * cfg.batch_size]
                mine = self.world.shard(len(idx)) if self.world is not None else slice(None)
                if self.augment["shift"] or self.augment["flip"]:  # drawn for the global batch
                    x, y = train.batch(idx)
                    x = augment(x, self.augment, self.shuffle)
                    x, y = x[:, mine], y[mine]
                else:
                    x, y = train.batch(idx[mine])
                self.optimizer.zero_grad(set_to_none=True)
                if self._train_devices and self.config.devices.reprogram == "step":
                    # a new device instance every step (of the training stream, so never
                    # an evaluation instance)
                    step = self.epoch * p["batches"] + k
                    self._train_devices.program(self.config.devices.instance + 1 + step)
                    self._train_devices.t = self.config.devices.t
                total, correct = 0.0, 0
                if not self.method.gradient:  # a local method changes the weights itself
                    total, correct = self.method.train_batch(self, x, y)
                elif len(y):  # a rank's share of a short last batch may be empty
                    out = self._train_forward(x)
                    loss = self._objective(out, y)
                    loss.backward()
                    total = float(loss.detach()) * len(y)
                    correct = int((self.predict(out) == y).sum())
                seen, stop = len(y), interrupt is not None and interrupt.requested
                if self.world is not None:  # the global batch's mean gradient, loss and counts
                    total, correct, seen, stop = self.world.reduce_gradients(
                        params, len(y) / len(idx), [total, correct, seen, float(stop)],
                        f"the gradient all-reduce of batch {k + 1} of epoch {self.epoch + 1}")
                    correct, seen, stop = round(correct), round(seen), stop > 0
                self.optimizer.step()  # a local method left no gradients: the schedule counts
                self.network.constrain_()
                p["total"] += total
                p["correct"] += correct
                p["seen"] += seen
                p["done"] = k + 1
                p["seconds"] = time.perf_counter() - t0
                bar.set_postfix(loss=f"{p['total'] / p['seen']:.4f}",
                                acc=f"{p['correct'] / p['seen']:.3f}")
                if stop and k + 1 < p["batches"]:
                    bar.close()
                    raise _Stop
        finally:  # an error or a Ctrl-C leaves the network as evaluation has it
            self.network.eval()
            self.network.devices = self.devices
        self._partial = None
        return p["total"] / p["seen"], p["correct"] / p["seen"]

    # ------------------------------------------------------------------ loop
    @property
    def _bars(self) -> bool:
        """Progress bars only on a terminal; logs get one line per epoch instead."""
        return (self.config.train.progress and self._writes
                and (sys.stderr.isatty() or "ipykernel" in sys.modules))

    def fit(self, stop_after: int | None = None) -> dict[str, Any]:
        """Train to ``train.epochs`` (or stop after ``stop_after`` more epochs) and report.

        Returns the summary (also written to ``summary.json`` when training is complete).
        Ctrl-C (SIGINT, main thread) finishes the batch in progress, saves a checkpoint of the
        finished batches, marks the folder ``interrupted`` and raises
        :class:`~spikeloop.errors.TrainingInterrupted` naming the resume command; a second
        Ctrl-C stops at once (the last epoch's checkpoint stays). Any other error marks the
        folder ``failed`` with the error.
        """
        if stop_after is not None:
            stop_after = check_int(stop_after, "fit: stop_after", 0)
        cfg = self.config
        self._claim_folder()
        if self._writes and cfg.run.tensorboard:
            self._board = TensorBoardLog(self.dir, first_step=self.epoch + 1)
        try:
            return self._fit(stop_after)
        finally:
            if self._board is not None:
                self._board.close()
                self._board = None

    def _fit(self, stop_after: int | None) -> dict[str, Any]:
        """:meth:`fit` once the run folder (and the event files) are open."""
        cfg = self.config
        start = time.perf_counter()
        last = cfg.train.epochs if stop_after is None else min(cfg.train.epochs,
                                                                self.epoch + stop_after)
        if self.epoch >= cfg.train.epochs:
            _say(f"{self.dir}: all {cfg.train.epochs} epochs are done; only testing")
        elif cfg.train.progress and self._writes:
            why = "" if self.threads_reason == "run.threads" else f"{self.threads_reason}; "
            ranks = "" if self.world is None else \
                f" in each of {self.world.size} processes ({self.world.backend})"
            _say(f"{self.dir}: {self.backend.name} backend, {self.threads} torch thread"
                 f"{'s' * (self.threads > 1)}{ranks} ({why}set run.threads to change)")
        try:
            with _Interrupt() as interrupt:
                try:
                    epochs = tqdm(range(self.epoch, last), desc=cfg.run.name,
                                  disable=not self._bars, unit="epoch", initial=self.epoch,
                                  total=cfg.train.epochs)
                    for _ in epochs:
                        self._run_epoch(interrupt, epochs)
                        if self._agree(interrupt.requested) and self.epoch < last:
                            raise _Stop
                    epochs.close()
                    return self._finish(time.perf_counter() - start)  # Ctrl-C now: finish first
                except _Stop:  # still under the handler: a second Ctrl-C lands below
                    self._checkpoint()
                    raise self._interrupted("after the batch in progress") from None
        except TrainingInterrupted:
            raise
        except KeyboardInterrupt:
            raise self._interrupted("at once") from None
        except BaseException as err:
            with contextlib.suppress(OSError):
                self._status(state="failed", error=f"{type(err).__name__}: {err}", ended=_now())
            raise

    def _agree(self, requested: bool) -> bool:
        """Whether any rank was asked to stop (Ctrl-C), so that all stop together."""
        if self.world is None:
            return requested
        return self.world.sum([float(requested)], f"the check at the end of epoch "
                                                   f"{self.epoch} (Ctrl-C on any rank?)")[0] > 0

    def _checkpoint(self) -> None:
        """Rank 0 (or the single process) writes ``checkpoint.pt``; every rank notes where
        training stands."""
        if self._writes:
            self.save_checkpoint(self.dir / CHECKPOINT)
        else:
            self._saved = self._position()

    def _finish(self, wall: float) -> dict[str, Any]:
        """Test, write the summary and the plots (when all epochs are done), mark the folder."""
        cfg = self.config
        if self.epoch >= cfg.train.epochs and self.best is not None:
            self.network.load_state_dict(self.best[2])
            if self._writes:
                atomic_write(self.dir / "best.pt", lambda p: torch.save(
                    {"model": self.best[2], "epoch": self.best[1], "val_acc": self.best[0]}, p))
        summary = self.summary(wall)
        if not self._writes:
            return summary
        if self.epoch >= cfg.train.epochs:
            _write_json(self.dir / "summary.json", summary)
            self.plot_sample()
            if self._board is not None:
                self._board.final(self.epoch, summary, self.dir)
            self._status(state="finished", ended=_now(), test_acc=summary["test_acc"])
        else:
            self._status(state="stopped", ended=_now(), resume=resume_command(self.dir))
        return summary

    def _run_epoch(self, interrupt: _Interrupt, bar: Any) -> None:
        cfg = self.config
        seconds_before = self._partial["seconds"] if self._partial is not None else 0.0
        t0 = time.perf_counter()
        train_loss, train_acc = self.train_epoch(interrupt)
        self.method.end_epoch(self)
        lr = self.optimizer.param_groups[0]["lr"]
        if self.scheduler is not None:
            self.scheduler.step()
        val_loss, val_acc, rates, _, neuron_rates = self._score(
            self.data["val"], per_neuron=cfg.run.tensorboard)
        self.epoch += 1
        m = EpochMetrics(self.epoch, train_loss, train_acc, val_loss, val_acc, lr,
                         seconds_before + time.perf_counter() - t0, rates)
        self.history.append(m)
        if cfg.train.keep_best and (self.best is None or val_acc > self.best[0]):
            state = {k: v.detach().clone() for k, v in self.network.state_dict().items()}
            self.best = (val_acc, self.epoch, state)
        bar.set_postfix(loss=f"{train_loss:.4f}", val_acc=f"{val_acc:.4f}")
        if self._board is not None:  # before the checkpoint: a resume from it purges this step
            self._board.epoch(self.epoch, m.flat(), neuron_rates)
        if cfg.train.progress and not self._bars and self._writes:
            _say(f"{cfg.run.name} epoch {self.epoch}/{cfg.train.epochs}: loss {train_loss:.4f}, "
                 f"acc {train_acc:.4f}, val loss {val_loss:.4f}, val acc {val_acc:.4f} "
                 f"({m.seconds:.1f} s)")
        self._checkpoint()
        if self._writes:
            _write_json(self.dir / "metrics.json", [h.flat() for h in self.history])
            self.plot_curves(mark=False)
            self._status(epoch=self.epoch)

    def _interrupted(self, how: str) -> TrainingInterrupted:
        """Mark the folder interrupted and build the exception that says how to resume."""
        ckpt, where = self.dir / CHECKPOINT, self._saved  # _saved: what the file on disk holds
        if where is None:
            self._status(state="interrupted", ended=_now(), resume=None)
            return TrainingInterrupted(
                f"interrupted in the first epoch, before any checkpoint; {self.dir} holds no "
                f"checkpoint to resume from", None, None)
        resume = resume_command(self.dir)
        self._status(state="interrupted", ended=_now(), resume=resume, position=where)
        return TrainingInterrupted(
            f"interrupted {how}: the checkpoint {ckpt} holds {where}; resume with: {resume}",
            str(ckpt), resume)

    # ------------------------------------------------------------------ the run folder
    def _claim_folder(self) -> None:
        """Create this run's folder (the first free name), write config.yaml and status.json;
        in data-parallel training rank 0 does it and tells the other ranks the folder (or its
        error)."""
        if self.world is None:
            return self._claim_here()
        error = None
        if self.world.main:
            try:
                self._claim_here()
            except RunFolderError as err:
                error = str(err)
        folder, error = self.world.broadcast((str(self.dir), error), "sharing the run folder")
        if error is not None:
            raise RunFolderError(error if self.world.main else f"rank 0: {error}")
        self.dir, self._claimed, self._resuming = Path(folder), True, False

    def _claim_here(self) -> None:
        """:meth:`_claim_folder` in the process that writes the folder."""
        wanted = Path(self.config.run.out_dir) / self.config.run.name
        try:
            if self._claimed:
                if self._resuming:
                    self._resuming = False
                    if not (self.dir / "config.yaml").exists():
                        self._write_config()
                    self._status(state="running", resumed=_now(), pid=os.getpid(),
                                 threads=self.threads)
                else:
                    self._status(state="running")
                return
            self.dir = _claim(wanted)
            self._claimed = True
            if self.dir != wanted:
                taken = "holds another run" if wanted.is_dir() else "is taken by another file"
                _say(f"{wanted} {taken}; this run writes to {self.dir}")
            self._write_config()
            self._status(
                state="running", started=_now(), command=_command_line(), pid=os.getpid(),
                spikeloop=_version(), epochs=self.config.train.epochs, epoch=self.epoch,
                threads=self.threads, world_size=1 if self.world is None else self.world.size,
            )
        except OSError as err:
            target = self.dir if self._claimed else wanted
            where = f" at {str(err.filename)!r}" if err.filename and \
                str(err.filename) != str(target) else ""
            raise RunFolderError(
                f"cannot create or write the run folder {str(target)!r}: {err.strerror}{where}; "
                f"set run.out_dir to a folder you can write"
            ) from None

    def _write_config(self) -> None:
        atomic_write(self.dir / "config.yaml", lambda p: p.write_text(
            yaml.safe_dump(self.config.to_dict(), sort_keys=False)))

    def _status(self, resumed: str | None = None, **fields: Any) -> None:
        """Update ``status.json`` (what the folder holds and how its run ended); only the
        process that writes the folder does."""
        if not self._writes:
            return
        path = self.dir / STATUS
        status: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            status = json.loads(path.read_text())
        if resumed is not None:
            status.setdefault("resumed", []).append(
                {"at": resumed, "from": self._saved, "command": _command_line()})
        if fields.get("state") == "running":  # a new session: what ended the last one is past
            for key in ("ended", "error", "resume", "position", "test_acc"):
                status.pop(key, None)
        status |= fields
        _write_json(path, status)

    def summary(self, wall: float) -> dict[str, Any]:
        """Final metrics: test accuracy and loss, the validation accuracy of the tested epoch
        (:meth:`tested_epoch`), wall time, network size, and the fraction
        of test samples whose read-out saturated (:meth:`readout_saturation`; ``None`` where the
        backend's read-out has no limits, e.g. the simulator)."""
        test_loss, test_acc, rates, saturation, _ = self._score(self.data["test"],
                                                                saturation=True)
        g = self.network.graph
        return {
            "name": self.config.run.name,
            "seed": self.config.run.seed,
            "epochs": self.epoch,
            "test_acc": test_acc,
            "test_loss": test_loss,
            "val_acc": self._tested_val_acc(),
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
            "world_size": 1 if self.world is None else self.world.size,
            "dist_backend": None if self.world is None else self.world.backend,
            "ranks": self.ranks,
            "threads_chosen_by": self.threads_reason,
            "run_dir": str(self.dir),
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
        :meth:`summary` counts them on the runs that score the test split.
        """
        return self._score(split, batch_size, saturation=True)[3]

    def _tested_val_acc(self) -> float | None:
        """The validation accuracy of :meth:`tested_epoch` (the pair to the test accuracy)."""
        tested = self.tested_epoch()
        return next((h.val_acc for h in self.history if h.epoch == tested), None)

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

    def plot_curves(self, mark: bool = True) -> None:
        """``curves.png``: training curves titled with run and backend; with ``mark`` (at the
        end) the tested epoch marked."""
        epoch = self.tested_epoch() if check_bool(mark, "plot_curves: mark") else None
        best = self.best is not None and epoch == self.best[1]
        training_curves(
            [h.flat() for h in self.history], mark_epoch=epoch,
            mark_label="tested: best val_acc" if best else "tested: last epoch",
            title=self._title("training curves"), path=self.dir / "curves.png")

    def plot_sample(self, index: int = 0) -> None:
        """Raster of every population and readout membrane for one test sample, and the final
        training curves with the tested epoch marked (:meth:`plot_curves`)."""
        index = self._test_index(index, "plot_sample")
        if self.history:
            self.plot_curves()
        test = self.data["test"]
        graph = self.network.graph
        with torch.no_grad():
            out = self.forward(test.batch(slice(index, index + 1))[0])
        dt = self.config.data.dt
        label = int(test.labels[index])
        # a population of shape (C, H, W) is drawn as C·H·W neurons (row-major)
        raster_panel({n: o.spikes.flatten(2) for n, o in out.items() if o.spikes is not None},
                     dt,
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
        index = self._test_index(index, "plot_device_vs_sim")
        x = self.data["test"].batch(slice(index, index + 1))[0]
        hidden = next(n for n in self.network.graph.populations() if n.spiking)
        if self.backend.with_dense(hidden.name, 0) is None:  # (e.g. the integer chip: its
            return                                          # devices may not run on "sim")
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
        def of_neuron(name: str) -> float | None:  # a scalar or per-neuron parameter's value
            p = hidden.params.get(name)
            return None if p is None else float(p.detach().reshape(-1)[neuron if p.dim() else 0])

        reset = of_neuron("v_reset") if hidden.settings.get("reset") == "value" else None
        timed_traces(
            {f"{self.backend.name} (dense ADC recording)": (trace.t, trace.v),
             "simulator (end of each step)": (t_sim, sim[hidden.name].v[:, 0, neuron],
                                              sim[hidden.name].spikes[:, 0, neuron])},
            threshold=of_neuron("v_threshold"),
            reset=reset,
            title=self._title(f"{hidden.name} neuron {neuron}, test sample {index}: "
                              "device vs simulator"),
            path=self.dir / "device_vs_sim_membrane.png",
        )

    def _test_index(self, index: Any, who: str) -> int:
        """``index`` checked as the index of a test sample."""
        return check_int(index, f"{who}: index", 0, len(self.data["test"]) - 1)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | os.PathLike[str]) -> None:
        """Write model, optimiser, schedule, RNG states and history atomically to ``path``
        (a ``str`` or ``Path``).

        Raises:
            ArgumentTypeError: ``path`` is not a path. RunFolderError: it cannot be written.
        """
        path = check_path(path, "save_checkpoint: path")
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
            "partial": self._partial,
            "threads": self.threads,
            "config": self.config.to_dict(),
            "method": self.method.state_dict(),
            "devices": {"eval": self.devices.state(), "train": self._train_devices.state()},
        }
        try:
            atomic_write(path, lambda p: torch.save(state, p))
        except OSError as err:
            raise RunFolderError(f"cannot write the checkpoint {str(path)!r}: "
                                 f"{err.strerror or err}") from None
        self._saved = self._position()

    def _position(self) -> str:
        """Where training stands: epochs done and batches of the epoch in progress."""
        where = f"epoch {self.epoch} of {self.config.train.epochs} done"
        if self._partial is not None:
            where += (f", and {self._partial['done']} of {self._partial['batches']} batches "
                      f"of epoch {self.epoch + 1}")
        return where

    def load_weights(self, path: str | os.PathLike[str]) -> None:
        """Start from the network weights of another run's checkpoint (e.g. trained in the
        simulator, to train further on a chip); optimiser and history start fresh.

        Transactional: the weights are loaded only if every tensor fits, else the network is
        left bit-identical.

        Raises:
            ArgumentTypeError: ``path`` is not a path. CheckpointError: no such file, it cannot
                be read, holds no weights, or they do not fit the network.
        """
        path = check_path(path, "train.init_from")
        try:
            state = torch.load(path, weights_only=False)
        except FileNotFoundError:
            raise CheckpointError(f"train.init_from: no checkpoint at {str(path)!r}") from None
        except Exception as err:
            why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"train.init_from: cannot read {str(path)!r} ({why})") from None
        if not isinstance(state, dict) or "model" not in state:
            raise CheckpointError(f"train.init_from: {str(path)!r} holds no network weights "
                                  f"(expected a checkpoint.pt or best.pt of a run)")
        try:  # transactional: nothing is written unless every tensor fits
            self.network.load_state_dict(state["model"])
        except CheckpointError as err:
            raise CheckpointError(f"train.init_from {str(path)!r}: {err}") from None

    def load_checkpoint(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Restore everything :meth:`save_checkpoint` wrote; the run continues bit-identically.
        Returns the checkpoint's contents.

        Transactional: every part is checked before anything is restored (the weights'
        names and shapes, the optimiser's parameter groups and the shapes of its state, the
        best weights, the history), and should restoring still fail, the network, optimiser,
        schedule, shuffling and random states are put back: the trainer is left exactly as
        it was.

        Raises:
            ArgumentTypeError: ``path`` is not a path. CheckpointError: the file cannot be
                read, is not a training checkpoint, was written for another config or does
                not fit this run.
        """
        path = check_path(path, "load_checkpoint: path")
        if not path.is_file():
            what = "a folder, not a file" if path.is_dir() else "no such file"
            raise CheckpointError(f"no checkpoint at {str(path)!r} ({what})")
        try:
            state = torch.load(path, weights_only=False)
        except Exception as err:  # a truncated or foreign file
            size = path.stat().st_size
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CheckpointError(
                f"cannot read checkpoint {str(path)!r} ({size} bytes): it is truncated or not a "
                f"spikeloop checkpoint (torch.load: {why}); "
                f"start a new run, or resume from a copy of the run folder that has an intact one"
            ) from None
        if not isinstance(state, dict):
            raise CheckpointError(
                f"{str(path)!r} is not a training checkpoint: it holds a "
                f"{type(state).__name__}, not the dict save_checkpoint writes")
        missing = sorted(set(_CHECKPOINT_KEYS) - set(state))
        if missing:
            raise CheckpointError(
                f"{str(path)!r} is not a training checkpoint (it lacks "
                f"{', '.join(missing)}; best.pt holds weights only: start from it with "
                f"train.init_from)")
        if not isinstance(state["config"], dict):
            raise CheckpointError(f"{str(path)!r}: its config is a "
                                  f"{type(state['config']).__name__}, not a dict")
        changed = _config_changes(state["config"], self.config.to_dict())
        if changed:
            raise CheckpointError(
                f"checkpoint {str(path)!r} was written for a different config "
                f"(changed: {', '.join(changed)}); resume needs the same model, data and training "
                f"settings (only {', '.join(sorted(RESUMABLE_CHANGES))} may change)"
            )
        try:  # everything is checked before anything is written
            history = self._check_checkpoint(state)
        except (SpikeloopError, TypeError, ValueError, KeyError, IndexError) as err:
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not match this run, nothing was loaded: "
                f"{_first_lines(err)}") from None
        before = self._snapshot()
        try:
            self.network.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None and state["scheduler"] is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            self.shuffle.set_state(state["shuffle"])
            torch.set_rng_state(state["torch_rng"])
            np.random.set_state(state["numpy_rng"])
            random.setstate(state["python_rng"])
            if state.get("backend_rng") is not None and self._writes:
                # rank 0's chip continues its stream; the other ranks' chips keep their own
                self.backend.set_rng_state(state["backend_rng"])
        except Exception as err:
            self._restore(before)
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not match this run, nothing was loaded: "
                f"{_first_lines(err)}"
            ) from None
        if state.get("method"):
            self.method.load_state_dict(state["method"])
        if state.get("devices"):
            self.devices.load_state(state["devices"]["eval"])
            self._train_devices.load_state(state["devices"]["train"])
        self.history = history
        self.best = state.get("best")
        self.epoch = state["epoch"]
        self._partial = state.get("partial")
        return state

    def _check_checkpoint(self, state: dict[str, Any]) -> list[EpochMetrics]:
        """Check the parts of a training checkpoint against this trainer; return its history.

        Raises:
            CheckpointError, ParameterError, TypeError...: a part that does not fit.
        """
        check_state_dict(self.network.state_dict(), state["model"], who="the model state dict")
        _check_optimizer_state(self.optimizer, state["optimizer"])
        check_int(state["epoch"], "epoch", 0, self.config.train.epochs)
        best = state.get("best")
        if best is not None:
            if not (isinstance(best, tuple | list) and len(best) == 3):
                raise CheckpointError(f"best must be (val_acc, epoch, weights), got "
                                      f"{type(best).__name__}")
            check_state_dict(self.network.state_dict(), best[2],
                             who="the state dict of the best epoch")
        partial = state.get("partial")
        if partial is not None and not (isinstance(partial, dict)
                                        and {"order", "done", "batches"} <= set(partial)):
            raise CheckpointError("the epoch in progress ('partial') is malformed")
        if not isinstance(state["history"], list) or not all(
                isinstance(h, dict) for h in state["history"]):
            raise CheckpointError("its history is not a list of epoch records")
        return [EpochMetrics(**h) for h in state["history"]]

    def _snapshot(self) -> tuple[Any, ...]:
        """Everything :meth:`load_checkpoint` writes before it can still fail."""
        return ({k: v.clone() for k, v in self.network.state_dict().items()},
                copy.deepcopy(self.optimizer.state_dict()),
                self.scheduler.state_dict() if self.scheduler is not None else None,
                self.shuffle.get_state(), torch.get_rng_state(), np.random.get_state(),
                random.getstate(), self.backend.get_rng_state())

    def _restore(self, before: tuple[Any, ...]) -> None:
        """Put back what :meth:`_snapshot` took."""
        weights, optimizer, scheduler, shuffle, torch_rng, numpy_rng, python_rng, backend = before
        self.network.load_state_dict(weights)
        self.optimizer.load_state_dict(optimizer)
        if scheduler is not None:
            self.scheduler.load_state_dict(scheduler)
        self.shuffle.set_state(shuffle)
        torch.set_rng_state(torch_rng)
        np.random.set_state(numpy_rng)
        random.setstate(python_rng)
        if backend is not None:
            self.backend.set_rng_state(backend)


_CHECKPOINT_KEYS = ("config", "epoch", "model", "optimizer", "scheduler", "shuffle", "torch_rng",
                    "numpy_rng", "python_rng", "history")
"""What :meth:`Trainer.load_checkpoint` needs of a checkpoint (``backend_rng``, ``best``,
``partial`` and ``threads`` may be absent)."""


def _first_lines(err: BaseException, n: int = 3) -> str:
    """The first ``n`` lines of an error's message, on one line."""
    lines = str(err).strip().splitlines() or [type(err).__name__]
    return " ".join(line.strip() for line in lines[:n])


def _check_optimizer_state(optimizer: torch.optim.Optimizer, saved: Any) -> None:
    """Check a saved optimiser state against ``optimizer`` before it is loaded: the same
    number of parameter groups and of parameters in each, and every per-parameter state
    tensor (Adam's moments, SGD's momentum) of its parameter's shape — torch checks only the
    counts and would load moments of another shape, to fail at the next step.

    Raises:
        CheckpointError: it does not fit (the message names the first misfit).
    """
    if not (isinstance(saved, dict) and isinstance(saved.get("param_groups"), list)
            and isinstance(saved.get("state"), dict)):
        raise CheckpointError("the optimiser state is not a dict of 'state' and 'param_groups'")
    groups = saved["param_groups"]
    if len(groups) != len(optimizer.param_groups):
        raise CheckpointError(f"the optimiser has {len(optimizer.param_groups)} parameter "
                              f"group(s), the checkpoint's {len(groups)}")
    params: dict[Any, Tensor] = {}
    for k, (own, given) in enumerate(zip(optimizer.param_groups, groups, strict=True)):
        ids = given.get("params") if isinstance(given, dict) else None
        if not isinstance(ids, list) or len(ids) != len(own["params"]):
            raise CheckpointError(
                f"optimiser parameter group {k} holds {len(own['params'])} parameters, the "
                f"checkpoint's {len(ids) if isinstance(ids, list) else type(ids).__name__}")
        params |= dict(zip(ids, own["params"], strict=True))
    for key, entry in saved["state"].items():
        if key not in params:
            raise CheckpointError(f"the optimiser state names parameter {key!r}, which no "
                                  f"parameter group holds")
        for name, value in (entry.items() if isinstance(entry, dict) else ()):
            if isinstance(value, Tensor) and value.dim() and value.shape != params[key].shape:
                raise CheckpointError(
                    f"optimiser state {name!r} of parameter {key} is {tuple(value.shape)}, the "
                    f"parameter {tuple(params[key].shape)}")


class _Stop(Exception):  # internal control flow, never escapes fit()
    """Ctrl-C was asked for: stop after the batch in progress."""


class _Interrupt:
    """While active (main thread only), the first Ctrl-C sets :attr:`requested` instead of
    raising; the second raises ``KeyboardInterrupt`` at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> _Interrupt:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        with contextlib.suppress(RuntimeError):  # a print interrupted mid-write
            _say("Ctrl-C: stopping at the end of the batch or test in progress to save a "
                 "checkpoint (Ctrl-C again stops at once)")

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _candidates(base: Path) -> Iterator[Path]:
    yield base
    k = 2
    while True:
        yield base.with_name(f"{base.name}-{k}")
        k += 1


def _free_folder(base: Path) -> Path:
    """``base`` if it is free (nothing there, or an empty folder), else the first free
    ``base-2``, ``base-3`` …"""
    for path in _candidates(base):
        if not os.path.lexists(path) or (path.is_dir() and not any(path.iterdir())):
            return path
    raise AssertionError("unreachable")


def _claim(base: Path) -> Path:
    """Claim the first free folder of :func:`_free_folder`'s sequence for this run: created
    with ``mkdir`` (or, when empty, taken by creating its ``status.json`` exclusively), so two
    runs starting at once never share a folder."""
    base.parent.mkdir(parents=True, exist_ok=True)
    for path in _candidates(base):
        try:
            path.mkdir()
        except FileExistsError:
            if not (path.is_dir() and not path.is_symlink() and not any(path.iterdir())):
                continue
        try:
            (path / STATUS).open("x").close()
        except FileExistsError:
            continue
        return path
    raise AssertionError("unreachable")


def _command_line() -> str:
    """This process's command line (``spikeloop …`` for the console script or ``-m``)."""
    first = sys.argv[0] if sys.argv else ""
    if Path(first).name in ("spikeloop", "cli.py", "__main__.py"):
        first = "spikeloop"
    return shlex.join([first, *sys.argv[1:]])


def _version() -> str:
    try:
        return importlib.metadata.version("spikeloop")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


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
    accepted = [f.name for f in dataclasses.fields(FiringRateRegularizer)]
    unknown = sorted(set(spec) - set(accepted))
    if unknown:
        raise ConfigError(f"train.rate_regularizer takes no {', '.join(map(repr, unknown))}; "
                          f"it takes {', '.join(accepted)}")
    return FiringRateRegularizer(**spec)
