"""Data-parallel training on ``torch.distributed``, launched by ``torchrun``.

A process started by ``torchrun`` (or any launcher that sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``, the ``env://`` rendezvous) joins the process
group in :func:`join_world`; spikeloop has no launcher of its own. The :class:`World` it returns
is what the trainer asks:

- :meth:`World.shard`: this rank's contiguous share of a batch or a split;
- :meth:`World.reduce_gradients`: one all-reduce per training step of every parameter's
  gradient, weighted by this rank's share of the global batch, together with the step's loss
  and accuracy counts (sums, never means of means);
- :meth:`World.sum` and :meth:`World.gather`: reductions of counts and of small records;
- :meth:`World.broadcast`: a value decided by rank 0 (the run folder it claimed).

Gradients are all-reduced explicitly after ``backward`` rather than by
``DistributedDataParallel``'s forward wrapper: the trainer's forward passes do not all go
through one module call (``train.method: ann_proxy`` runs the network without gradients and then
the rate network on the graph's parameters; a chip in the loop replays the software model inside
the in-the-loop bridge), and the last batch of an epoch may split unevenly across ranks, which
needs each rank's gradient weighted by its share rather than DDP's plain average.

A failed collective (a rank that died, or one that did not arrive within ``run.dist_timeout``
seconds) raises :class:`~spikeloop.errors.DistributedError` naming this rank and the operation.
"""

from __future__ import annotations

import datetime
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from spikeloop.errors import ConfigError, DistributedError

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
"""The environment variables of ``torch.distributed``'s ``env://`` rendezvous (what ``torchrun``
sets for every process it starts)."""


@dataclass(frozen=True)
class Launch:
    """Where this process stands in a launch: read from the environment, before joining."""

    rank: int
    size: int
    local_rank: int
    address: str
    port: str


def launch_from_env(environ: Mapping[str, str] | None = None) -> Launch | None:
    """This process's place in a ``torchrun`` launch, or ``None`` for a plain single process
    (``WORLD_SIZE`` unset).

    Raises:
        ConfigError: ``WORLD_SIZE`` is set but another of :data:`ENV` is missing, or a number
            among them is malformed or out of range.
    """
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return None
    missing = [k for k in ENV if not env.get(k)]
    if missing:
        raise ConfigError(f"WORLD_SIZE is set ({env['WORLD_SIZE']!r}) but {', '.join(missing)} "
                          f"is not: launch data-parallel training with torchrun, which sets "
                          f"{', '.join(ENV)}")

    def number(key: str, low: int, high: int | None = None) -> int:
        try:
            value = int(env[key])
        except ValueError:
            raise ConfigError(f"{key} must be an integer, got {env[key]!r}") from None
        if value < low or (high is not None and value > high):
            limit = f"≥ {low}" if high is None else f"in {low}..{high}"
            raise ConfigError(f"{key} must be {limit}, got {value}")
        return value

    size = number("WORLD_SIZE", 1)
    return Launch(rank=number("RANK", 0, size - 1), size=size,
                  local_rank=number("LOCAL_RANK", 0), address=env["MASTER_ADDR"],
                  port=env["MASTER_PORT"])


def check_launch(launch: Launch, batch_size: int, split_sizes: Mapping[str, int],
                 rate_regularizer: bool) -> None:
    """Refuse a config that data-parallel training over ``launch.size`` ranks cannot run as
    one process would.

    Raises:
        ConfigError: ``train.batch_size`` not divisible by the world size; a split smaller
            than the world size (every rank evaluates a share of it); ``train.rate_regularizer``
            (it penalises the mean rates of the whole batch, which no rank sees).
    """
    if batch_size % launch.size:
        raise ConfigError(f"train.batch_size = {batch_size} is not divisible by the world size "
                          f"WORLD_SIZE = {launch.size}: the global batch is split evenly across "
                          f"ranks; choose a multiple of {launch.size}")
    for name, size in split_sizes.items():
        if size < launch.size:
            raise ConfigError(f"data.{name}_size = {size} is smaller than the world size "
                              f"WORLD_SIZE = {launch.size}: every rank evaluates a share of it")
    if rate_regularizer and launch.size > 1:
        raise ConfigError(f"train.rate_regularizer penalises the firing rates averaged over the "
                          f"whole batch, which no single rank of WORLD_SIZE = {launch.size} "
                          f"sees; it is not supported in data-parallel training yet")


def join_world(launch: Launch, timeout: float, cuda: bool) -> World:
    """Join the process group of ``launch``: ``nccl`` when the network is on CUDA, else
    ``gloo``; collectives give up after ``timeout`` seconds. A group this process already
    joined is used as it is (several trainers one after another in one job).

    Raises:
        DistributedError: the rendezvous at ``MASTER_ADDR:MASTER_PORT`` failed or timed out.
    """
    if dist.is_initialized():  # the caller's own group (e.g. several trainers in one job)
        if (dist.get_rank(), dist.get_world_size()) != (launch.rank, launch.size):
            raise DistributedError(
                f"the process group already joined is rank {dist.get_rank()} of "
                f"{dist.get_world_size()}, the environment says rank {launch.rank} of "
                f"{launch.size}")
        return World(launch.rank, launch.size, launch.local_rank, dist.get_backend(), timeout)
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(launch.local_rank)
    try:
        dist.init_process_group(backend, init_method="env://", rank=launch.rank,
                                world_size=launch.size,
                                timeout=datetime.timedelta(seconds=timeout))
    except Exception as err:
        raise DistributedError(
            f"rank {launch.rank} of {launch.size} cannot join the process group at "
            f"{launch.address}:{launch.port} ({backend}, run.dist_timeout = {timeout:g} s): "
            f"{_first_line(err)}") from None
    return World(launch.rank, launch.size, launch.local_rank, backend, timeout)


@dataclass
class World:
    """This process's rank among ``size`` data-parallel processes (see the module notes)."""

    rank: int
    size: int
    local_rank: int
    backend: str
    timeout: float

    @property
    def main(self) -> bool:
        """Whether this is rank 0, the one that writes the run folder."""
        return self.rank == 0

    def shard(self, n: int) -> slice:
        """This rank's contiguous share of ``n`` items: sizes differ by at most one, the first
        ``n % size`` ranks take one more."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def _collective(self, what: str, op: Any, *args: Any) -> Any:
        try:
            return op(*args)
        except Exception as err:
            raise DistributedError(
                f"rank {self.rank} of {self.size}: {what} failed: another rank died, failed or "
                f"did not arrive within run.dist_timeout = {self.timeout:g} s "
                f"({self.backend}: {_first_line(err)})") from None

    def sum(self, values: Iterable[float], what: str) -> list[float]:
        """Sums over ranks of ``values`` (float64)."""
        t = torch.tensor(list(values), dtype=torch.float64)
        self._collective(what, dist.all_reduce, t)
        return t.tolist()

    def reduce_gradients(self, params: list[torch.nn.Parameter], share: float,
                         stats: list[float], what: str) -> list[float]:
        """All-reduce ``share × gradient`` of every parameter (``share``: this rank's samples
        over the global batch's, so the result is the gradient of the global batch's mean
        loss) in one flat buffer per dtype, and sum ``stats`` (float64) in another. A parameter
        without a gradient counts as zero; it keeps ``None`` if no rank has one. Returns the
        summed stats."""
        has = torch.tensor([float(p.grad is not None) for p in params], dtype=torch.float64)
        totals = torch.cat([has, torch.tensor(stats, dtype=torch.float64)])
        self._collective(what, dist.all_reduce, totals)
        for dtype in dict.fromkeys(p.dtype for p in params):  # one buffer per dtype, in order
            group = [p for p in params if p.dtype == dtype]
            buffer = torch.cat([p.grad.reshape(-1) * share if p.grad is not None
                                else torch.zeros(p.numel(), dtype=dtype) for p in group])
            self._collective(what, dist.all_reduce, buffer)
            for p, g in zip(group, buffer.split([p.numel() for p in group]), strict=True):
                p.grad = g.view_as(p).clone()
        for p, count in zip(params, totals[: len(params)].tolist(), strict=True):
            if count == 0:
                p.grad = None
        return totals[len(params):].tolist()

    def gather(self, value: Any, what: str) -> list[Any]:
        """``value`` of every rank, in rank order (small picklable records)."""
        out: list[Any] = [None] * self.size
        self._collective(what, dist.all_gather_object, out, value)
        return out

    def broadcast(self, value: Any, what: str) -> Any:
        """Rank 0's ``value`` on every rank."""
        box = [value if self.main else None]
        self._collective(what, dist.broadcast_object_list, box, 0)
        return box[0]

    def close(self) -> None:
        """Leave the process group (once; later calls do nothing)."""
        if dist.is_initialized():
            dist.destroy_process_group()


def rank_record(world: World | None, backend: Any) -> dict[str, Any]:
    """What this rank ran on, for the run summary: rank, host, the backend and, for a chip,
    its instance (``seed``)."""
    return {"rank": world.rank if world else 0,
            "local_rank": world.local_rank if world else 0,
            "host": socket.gethostname(),
            "backend": backend.name,
            "chip_seed": getattr(backend, "seed", None) if not backend.differentiable else None}


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def grads_of(params: Iterable[Tensor]) -> list[torch.nn.Parameter]:
    """The parameters that take gradients, in a fixed order (the same on every rank)."""
    return [p for p in params if p.requires_grad]
