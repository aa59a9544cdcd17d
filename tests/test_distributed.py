"""Data-parallel training (spikeloop.training.distributed): 2 ranks × 1 thread with gloo over
loopback give the weights of one process trained on the same global batches (sim, event and an
ideal chip in the loop); checkpoints resume across rank counts; a rank that dies stops the
other with a clear error and leaves the last checkpoint intact; launch mistakes are refused
with the numbers that do not fit.

Every process imports torch (seconds on a busy 2-core machine), so the multi-process tests
share launches: one ``torchrun`` launch trains all three backends one after another in the same
process group.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spikeloop.cli import main
from spikeloop.errors import ConfigError, DistributedError, ParameterError
from spikeloop.training import Trainer, load_config
from spikeloop.training.config import load_run_config
from spikeloop.training.distributed import World, check_launch, launch_from_env

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "yinyang.yaml")
TORCHRUN = Path(sys.executable).with_name("torchrun")
BASE = ["data.train_size=37", "data.val_size=10", "data.test_size=10", "model.hidden=[16]",
        "train.batch_size=8", "run.threads=1", "train.progress=false", "train.keep_best=false"]
"""37 samples in batches of 8: the last batch (5) splits 3 + 2 across two ranks."""
BACKENDS = {
    "sim": ["train.backend=sim", "train.epochs=2"],
    "event": ["train.backend={name: event, membrane: false}", "train.epochs=1", "train.lr=3e-3"],
    "chip": ["train.backend={name: chip, mismatch: false, noise: false, adc: ideal}",
             "train.epochs=1"],
}
WORKER = """
import json, sys
from spikeloop.training import Trainer, load_config
from spikeloop.training.config import load_run_config
trainers = []
for job in json.loads(sys.argv[1]):
    cfg = (load_run_config(job["resume"]) if "resume" in job
           else load_config(sys.argv[2], job["overrides"]))
    trainers.append(Trainer(cfg))
    trainers[-1].fit(stop_after=job.get("stop_after"))
trainers[-1].close()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1", **extra)
    env.pop("SPIKELOOP_THREADS", None)
    return env


def _rank_env(rank: int, size: int, port: int) -> dict[str, str]:
    """The environment torchrun gives rank ``rank``."""
    return _env(RANK=str(rank), WORLD_SIZE=str(size), LOCAL_RANK=str(rank),
                MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def _cfg(out: Path, name: str, backend: str, *more: str):
    return load_config(CONFIG, [*BASE, *BACKENDS[backend], f"run.out_dir={out}",
                                f"run.name={name}", *more])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False)["model"]


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def _run_one(out: Path, name: str, backend: str, stop_after: int | None = None) -> Path:
    Trainer(_cfg(out, name, backend)).fit(stop_after=stop_after)
    return out / name / "checkpoint.pt"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process: sim epoch 1 of 2 (copied to ``one-sim``, to be resumed by 2 ranks), then
    epoch 2 (``whole``). Then one torchrun launch of 2 ranks × 1 thread in one process group:
    sim stopped after epoch 1 of 2 (``two-sim``), event and ideal chip (1 epoch each,
    ``two-event``, ``two-chip``, the chip's with TensorBoard event files), and the resume of
    ``one-sim``."""
    out = tmp_path_factory.mktemp("dist")
    trainer = Trainer(_cfg(out, "whole", "sim"))
    trainer.fit(stop_after=1)
    shutil.copytree(out / "whole", out / "one-sim")
    trainer.fit()
    jobs = [{"overrides": [*BASE, *BACKENDS[b], f"run.out_dir={out}", f"run.name=two-{b}",
                           f"run.tensorboard={b == 'chip'}"],
             "stop_after": 1 if b == "sim" else None} for b in BACKENDS]
    jobs.append({"resume": str(out / "one-sim")})
    script = out / "worker.py"
    script.write_text(WORKER)
    run = subprocess.run(
        [str(TORCHRUN), "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
         "--master-port", str(_free_port()), str(script), json.dumps(jobs), CONFIG],
        env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return out


SHARED = pytest.mark.xdist_group("distributed")
"""The tests that read :func:`runs` (its launch runs once per worker process: ``make test``
runs each test file in one worker, ``--dist loadfile``; the group also holds under
``--dist loadgroup`` where pytest-xdist supports it)."""


@SHARED
@pytest.mark.parametrize("backend", ["sim", "event", "chip"])
def test_two_ranks_train_the_weights_of_one_process(runs, tmp_path, backend):
    """After the same global batches (5 steps, the last split unevenly) the weights of the
    2-rank run equal those of one process, up to float summation order."""
    mine = _run_one(tmp_path, "one", backend, stop_after=1)
    _assert_same(_weights(runs / f"two-{backend}" / "checkpoint.pt"), _weights(mine))
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())[0]
    two = json.loads((runs / f"two-{backend}" / "metrics.json").read_text())[0]
    assert two["train_acc"] == one["train_acc"] and two["val_acc"] == one["val_acc"]
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-5)
    if backend != "sim":  # finished runs: the summary names the ranks and their backends
        summary = json.loads((runs / f"two-{backend}" / "summary.json").read_text())
        assert summary["world_size"] == 2 and summary["dist_backend"] == "gloo"
        assert [r["rank"] for r in summary["ranks"]] == [0, 1]
        seeds = [r["chip_seed"] for r in summary["ranks"]]
        assert seeds == ([0, 1] if backend == "chip" else [None, None])  # a chip per rank


@SHARED
def test_only_rank_0_writes_event_files_of_the_reduced_metrics(runs):
    """``run.tensorboard`` with 2 ranks: one event file (rank 0's), whose scalars are the
    reduced metrics.json and whose rate histograms hold the whole validation split's counts."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = runs / "two-chip"
    assert len(list((folder / "tensorboard").iterdir())) == 1
    acc = EventAccumulator(str(folder / "tensorboard"), size_guidance={"images": 0})
    acc.Reload()
    (metrics,) = json.loads((folder / "metrics.json").read_text())
    assert [(e.step, e.value) for e in acc.Scalars("accuracy/val")] == \
        [(1, pytest.approx(metrics["val_acc"], rel=1e-6))]
    (hist,) = acc.Histograms("rate_hz/hidden1")
    value = hist.histogram_value
    assert value.num == 16 and value.sum / value.num == pytest.approx(metrics["rate_hidden1"],
                                                                      rel=1e-6)
    assert "plots/device_vs_sim_membrane" in acc.Tags()["images"]


@SHARED
def test_a_two_rank_checkpoint_resumes_in_one_process_and_back(runs):
    """2 ranks → 1 process, and 1 process → 2 ranks: the same weights after epoch 2 as an
    uninterrupted run."""
    whole = _weights(runs / "whole" / "checkpoint.pt")
    two = runs / "two-sim"
    assert torch.load(two / "checkpoint.pt", weights_only=False)["epoch"] == 1
    Trainer(load_run_config(two)).fit()  # the 2-rank run's epoch 2 in one process
    _assert_same(_weights(two / "checkpoint.pt"), whole)
    _assert_same(_weights(runs / "one-sim" / "checkpoint.pt"), whole)  # resumed by 2 ranks
    status = json.loads((runs / "one-sim" / "status.json").read_text())
    assert status["state"] == "finished" and len(status["resumed"]) == 1
    summary = json.loads((runs / "one-sim" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["epochs"] == 2


def test_a_rank_that_dies_stops_the_other_with_an_error_and_the_checkpoint_is_intact(tmp_path):
    """Rank 1 is killed after the first checkpoint: rank 0 stops within the timeout with one
    line naming the failed all-reduce (exit status 2), marks the run failed, and the
    checkpoint still loads and resumes."""
    port = _free_port()
    base = [o for o in BASE if not o.startswith("data.train_size")]
    args = [sys.executable, "-m", "spikeloop", "train", CONFIG, *base, "train.backend=sim",
            "data.train_size=96", "train.epochs=200", f"run.out_dir={tmp_path}", "run.name=r",
            "run.dist_timeout=20"]
    ranks = [subprocess.Popen(args, env=_rank_env(r, 2, port), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    try:
        checkpoint = tmp_path / "r" / "checkpoint.pt"
        deadline = time.monotonic() + 120
        while not checkpoint.exists():
            assert ranks[0].poll() is None and time.monotonic() < deadline, \
                ranks[0].stderr.read() if ranks[0].poll() is not None else "no checkpoint"
            time.sleep(0.2)
        ranks[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        _, err = ranks[0].communicate(timeout=60)
        waited = time.monotonic() - killed
    finally:
        for p in ranks:
            if p.poll() is None:
                p.kill()
            p.communicate()  # reaps it and closes its pipe
    assert ranks[0].returncode == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("spikeloop: error: rank 0 of 2:") and "failed" in last, err
    assert "run.dist_timeout = 20 s" in last and "Traceback" not in err
    assert waited < 30  # noticed when the connection closed, within the timeout
    status = json.loads((tmp_path / "r" / "status.json").read_text())
    assert status["state"] == "failed" and "DistributedError" in status["error"]
    trainer = Trainer(load_run_config(tmp_path / "r"))  # the checkpoint loads and resumes
    assert trainer.epoch >= 1 and trainer.epoch == len(trainer.history)


# ---------------------------------------------------------------- in one process
def _launch_env(monkeypatch, rank: str = "0", size: str = "2") -> None:
    for key, value in {"RANK": rank, "WORLD_SIZE": size, "LOCAL_RANK": rank,
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize(("override", "message"), [
    ("train.batch_size=7", "train.batch_size = 7 is not divisible by the world size "
                           "WORLD_SIZE = 2"),
    ("data.val_size=1", "data.val_size = 1 is smaller than the world size WORLD_SIZE = 2"),
    ("train.rate_regularizer={strength: 1.0}", "train.rate_regularizer penalises"),
])
def test_a_config_that_cannot_be_split_is_refused_before_joining(monkeypatch, tmp_path,
                                                                 override, message):
    _launch_env(monkeypatch)
    with pytest.raises(ConfigError, match=re.escape(message)):
        Trainer(_cfg(tmp_path, "x", "sim", override))
    assert not (tmp_path / "x").exists()


def test_the_cli_reports_a_launch_mistake_in_one_line(monkeypatch, tmp_path, capsys):
    _launch_env(monkeypatch)
    monkeypatch.delenv("MASTER_PORT")
    assert main(["train", CONFIG, *BASE, f"run.out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert err == ("spikeloop: error: WORLD_SIZE is set ('2') but MASTER_PORT is not: launch "
                   "data-parallel training with torchrun, which sets RANK, WORLD_SIZE, "
                   "LOCAL_RANK, MASTER_ADDR, MASTER_PORT\n")


@pytest.mark.parametrize(("env", "message"), [
    ({"WORLD_SIZE": "two"}, "WORLD_SIZE must be an integer, got 'two'"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE must be ≥ 1, got 0"),
    ({"RANK": "2"}, "RANK must be in 0..1, got 2"),
])
def test_malformed_launch_variables_are_named(env, message):
    base = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "h",
            "MASTER_PORT": "1"}
    with pytest.raises(ConfigError, match=re.escape(message)):
        launch_from_env(base | env)
    assert launch_from_env({}) is None
    assert launch_from_env(base).size == 2


def test_shards_cover_a_batch_contiguously_and_differ_by_at_most_one():
    for size in (1, 2, 3, 8):
        for n in (0, 1, 5, 8, 37):
            parts = [World(r, size, r, "gloo", 1.0).shard(n) for r in range(size)]
            assert [p.start for p in parts[1:]] == [p.stop for p in parts[:-1]]
            assert parts[0].start == 0 and parts[-1].stop == n
            lengths = [p.stop - p.start for p in parts]
            assert max(lengths) - min(lengths) <= 1 and lengths == sorted(lengths, reverse=True)


def test_check_launch_accepts_what_splits():
    launch = launch_from_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1",
                              "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    check_launch(launch, 8, {"val": 4, "test": 100}, rate_regularizer=False)
    with pytest.raises(ConfigError, match=re.escape("data.test_size = 3")):
        check_launch(launch, 8, {"val": 4, "test": 3}, rate_regularizer=False)


def test_a_failed_collective_is_a_distributed_error():
    world = World(0, 2, 0, "gloo", 5.0)

    def broken(*args):
        raise RuntimeError("Connection closed by peer [127.0.0.1]:1234\nmore")

    with pytest.raises(DistributedError, match=r"rank 0 of 2: the step failed: another rank "
                                               r"died.*5 s \(gloo: Connection closed by peer"):
        world._collective("the step", broken)


def test_a_split_smaller_than_the_world_is_refused_before_any_collective(tmp_path):
    """``evaluate`` checks before it reduces: a rank with nothing to evaluate would send
    another number of sums than the others."""
    trainer = Trainer(_cfg(tmp_path, "x", "sim"))
    trainer.world = World(0, 2, 0, "gloo", 1.0)  # no group joined: nothing may be reduced
    val = trainer.data["val"]
    one = type(val)(val.spikes[:, :1], val.labels[:1])
    with pytest.raises(ParameterError, match=re.escape("split: 1 sample(s) cannot be shared "
                                                       "by WORLD_SIZE = 2 ranks")):
        trainer.evaluate(one)
