"""Run folders never clobber each other; resume, Ctrl-C and every CLI mistake say what happened."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spikeloop.cli import main
from spikeloop.errors import CheckpointError, RunFolderError, TrainingInterrupted
from spikeloop.training import Trainer, load_config
from spikeloop.training.trainer import CHECKPOINT, STATUS

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.train_size=120", "data.val_size=60", "data.test_size=60", "model.hidden=[12]",
        "train.batch_size=40", "train.epochs=3", "train.progress=false", "train.backend=sim"]


def tiny(out, *extra, name="tiny"):
    return load_config(ROOT / "configs/yinyang.yaml",
                       [f"run.out_dir={out}", f"run.name={name}", *TINY, *extra])


def status(folder):
    return json.loads((folder / STATUS).read_text())


def same_checkpoints(a, b):
    """The two checkpoint files hold the same model, optimiser state and history."""
    a, b = (torch.load(p, weights_only=False) for p in (a, b))
    assert a["epoch"] == b["epoch"]
    for name, value in a["model"].items():
        assert torch.equal(value, b["model"][name]), name
    for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(),
                    strict=True):
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def same_weights(a, b):
    sa, sb = a.network.state_dict(), b.network.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


# ------------------------------------------------------------------------------ run folders
def test_a_second_run_with_the_same_name_gets_a_fresh_folder(tmp_path, capsys):
    first = Trainer(tiny(tmp_path, "train.epochs=1"))
    first.fit()
    config_before = (tmp_path / "tiny" / "config.yaml").read_text()
    second = Trainer(tiny(tmp_path, "train.epochs=1", "run.seed=5"))
    assert second.dir == tmp_path / "tiny-2"
    second.fit()
    assert f"{tmp_path / 'tiny'} holds another run; this run writes to {tmp_path / 'tiny-2'}" \
        in capsys.readouterr().err
    assert (tmp_path / "tiny" / "config.yaml").read_text() == config_before
    assert "seed: 5" in (tmp_path / "tiny-2" / "config.yaml").read_text()
    assert status(tmp_path / "tiny")["state"] == status(tmp_path / "tiny-2")["state"] == "finished"
    assert Trainer(tiny(tmp_path)).dir == tmp_path / "tiny-3"
    (tmp_path / "empty").mkdir()  # an empty folder holds no run: it is used as it is
    assert Trainer(tiny(tmp_path, name="empty")).dir == tmp_path / "empty"


def test_a_failed_run_leaves_a_marked_folder_and_touches_no_other_run(tmp_path, monkeypatch):
    Trainer(tiny(tmp_path, "train.epochs=1")).fit()
    before = {p.name: p.read_bytes() for p in (tmp_path / "tiny").iterdir()}

    def boom(self, interrupt=None):
        raise RuntimeError("the loss exploded")

    monkeypatch.setattr(Trainer, "train_epoch", boom)
    failing = Trainer(tiny(tmp_path, "train.lr=5.0"))
    with pytest.raises(RuntimeError, match="exploded"):
        failing.fit()
    assert {p.name: p.read_bytes() for p in (tmp_path / "tiny").iterdir()} == before
    marked = status(tmp_path / "tiny-2")
    assert marked["state"] == "failed" and marked["error"] == "RuntimeError: the loss exploded"
    assert marked["started"] and marked["ended"] and marked["epoch"] == 0
    assert sorted(p.name for p in (tmp_path / "tiny-2").iterdir()) == ["config.yaml", STATUS]
    assert "lr: 5.0" in (tmp_path / "tiny-2" / "config.yaml").read_text()


def test_run_files_get_ordinary_permissions(tmp_path):
    Trainer(tiny(tmp_path, "train.epochs=1")).fit()
    mask = os.umask(0o022)
    os.umask(mask)
    for name in ("config.yaml", STATUS, CHECKPOINT, "metrics.json", "summary.json"):
        assert (tmp_path / "tiny" / name).stat().st_mode & 0o777 == 0o666 & ~mask, name


def test_summary_says_how_many_threads_and_why(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIKELOOP_THREADS", "1")
    summary = Trainer(tiny(tmp_path, "train.epochs=1")).fit()
    assert summary["torch_threads"] == 1 == torch.get_num_threads()
    assert summary["threads_chosen_by"] == "SPIKELOOP_THREADS=1"
    summary = Trainer(tiny(tmp_path, "train.epochs=1", "run.threads=1")).fit()
    assert summary["threads_chosen_by"] == "run.threads"


# ------------------------------------------------------------------------------ resume
def test_resume_refuses_without_a_checkpoint_and_names_the_runs_there(tmp_path):
    Trainer(tiny(tmp_path, "train.epochs=1")).fit()
    with pytest.raises(RunFolderError, match=r"cannot resume: run folder '.*tinny' does not "
                                             r"exist .*did you mean tiny"):
        Trainer(tiny(tmp_path, "train.resume=true", name="tinny"))
    (tmp_path / "other").mkdir()
    with pytest.raises(RunFolderError, match=r"'.*other' has no checkpoint"):
        Trainer(tiny(tmp_path, "train.resume=true", name="other"))


def test_resume_says_where_it_resumes_from(tmp_path, capsys):
    Trainer(tiny(tmp_path)).fit(stop_after=1)
    assert status(tmp_path / "tiny")["state"] == "stopped"
    resumed = Trainer(tiny(tmp_path, "train.resume=true"))
    err = capsys.readouterr().err
    assert f"resuming {tmp_path / 'tiny'} from {tmp_path / 'tiny' / CHECKPOINT} " \
           f"(epoch 1 of 3 done)" in err
    resumed.fit()
    record = status(tmp_path / "tiny")
    assert record["state"] == "finished" and record["epoch"] == 3
    assert [r["from"] for r in record["resumed"]] == ["epoch 1 of 3 done"]
    assert "ended" in record and "resume" not in record


def test_a_truncated_checkpoint_says_so(tmp_path):
    Trainer(tiny(tmp_path, "train.epochs=1")).fit()
    ckpt = tmp_path / "tiny" / CHECKPOINT
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"\(100 bytes\): it is truncated"):
        Trainer(tiny(tmp_path, "train.resume=true"))


def test_a_copied_run_folder_resumes_where_it_now_lies(tmp_path, capsys):
    straight = Trainer(tiny(tmp_path / "a"))
    straight.fit()
    Trainer(tiny(tmp_path / "b")).fit(stop_after=2)
    shutil.copytree(tmp_path / "b" / "tiny", tmp_path / "elsewhere" / "copy")
    assert main(["resume", str(tmp_path / "elsewhere" / "copy")]) == 0
    assert "test accuracy" in capsys.readouterr().out
    same_checkpoints(tmp_path / "a" / "tiny" / CHECKPOINT,
                     tmp_path / "elsewhere" / "copy" / CHECKPOINT)
    assert not (tmp_path / "b" / "tiny" / "summary.json").exists()  # the original is untouched


# ------------------------------------------------------------------------------ Ctrl-C
@pytest.fixture
def ctrl_c_delivered():
    """Python's own SIGINT handler, as in an interactive shell (a shell runs background jobs,
    e.g. ``make test &``, with SIGINT ignored; the trainer then leaves SIGINT alone)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _default_sigint() -> None:  # for a child process: SIGINT delivered, whatever the parent had
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_at(monkeypatch, batch, how="signal"):
    """Ctrl-C during the training batch number ``batch`` (counting from 1 over all epochs)."""
    seen = {"n": 0}
    objective = Trainer._objective

    def patched(self, out, labels):
        if self.network.training:
            seen["n"] += 1
            if seen["n"] == batch:
                if how == "signal":
                    signal.raise_signal(signal.SIGINT)
                else:
                    raise KeyboardInterrupt
        return objective(self, out, labels)

    monkeypatch.setattr(Trainer, "_objective", patched)


def test_ctrl_c_saves_the_finished_batches_and_resumes_bit_identically(tmp_path, monkeypatch,
                                                                        capsys, ctrl_c_delivered):
    straight = Trainer(tiny(tmp_path / "a"))
    straight.fit()
    _interrupt_at(monkeypatch, 5)  # epoch 2, batch 2 of 3
    run = Trainer(tiny(tmp_path / "b"))
    with pytest.raises(TrainingInterrupted) as stop:
        run.fit()
    folder = tmp_path / "b" / "tiny"
    assert str(stop.value) == (
        f"interrupted after the batch in progress: the checkpoint {folder / CHECKPOINT} holds "
        f"epoch 1 of 3 done, and 2 of 3 batches of epoch 2; resume with: spikeloop resume "
        f"{folder}")
    assert stop.value.resume == f"spikeloop resume {folder}"
    assert "Ctrl-C: stopping at the end of the batch or test in progress" in capsys.readouterr().err
    assert status(folder)["state"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    monkeypatch.undo()
    resumed = Trainer(tiny(tmp_path / "b", "train.resume=true"))
    assert "and 2 of 3 batches of epoch 2" in capsys.readouterr().err
    resumed.fit()
    same_weights(straight, resumed)
    same_checkpoints(tmp_path / "a" / "tiny" / CHECKPOINT, folder / CHECKPOINT)
    assert [h.train_loss for h in straight.history] == [h.train_loss for h in resumed.history]
    assert [h.val_loss for h in straight.history] == [h.val_loss for h in resumed.history]
    assert status(folder)["state"] == "finished"


def test_a_second_ctrl_c_stops_at_once_and_keeps_the_last_epoch(tmp_path, monkeypatch,
                                                                 ctrl_c_delivered):
    _interrupt_at(monkeypatch, 5, how="raise")
    with pytest.raises(TrainingInterrupted,
                       match=r"interrupted at once: .* holds epoch 1 of 3 done; resume"):
        Trainer(tiny(tmp_path)).fit()
    assert torch.load(tmp_path / "tiny" / CHECKPOINT, weights_only=False)["epoch"] == 1
    monkeypatch.undo()
    _interrupt_at(monkeypatch, 1, how="raise")
    with pytest.raises(TrainingInterrupted, match="before any checkpoint") as stop:
        Trainer(tiny(tmp_path)).fit()
    assert stop.value.resume is None and status(tmp_path / "tiny-2")["state"] == "interrupted"


def test_ctrl_c_on_the_command_line(tmp_path):
    """A real SIGINT to a real ``spikeloop train``: exit 130, the resume command, no traceback;
    the resumed run equals an uninterrupted one bit for bit."""
    base = [a for a in TINY if not a.startswith(("train.epochs", "train.progress",
                                                  "data.train_size"))]
    args = [f"run.out_dir={tmp_path}", *base, "data.train_size=2400", "train.epochs=3",
            "train.progress=true", "run.threads=1"]  # 60 batches per epoch
    proc = subprocess.Popen([sys.executable, "-m", "spikeloop.cli", "train",
                             str(ROOT / "configs/yinyang.yaml"), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    metrics = tmp_path / "yinyang" / "metrics.json"
    deadline = time.monotonic() + 120
    while not metrics.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("spikeloop: interrupted after the batch in progress")
    assert last.endswith(f"resume with: spikeloop resume {tmp_path / 'yinyang'}")
    # logs (stderr is a pipe, not a terminal) get one line per epoch, no progress bars
    assert "\r" not in err and "yinyang epoch 1/3: loss" in err
    assert main(["resume", str(tmp_path / "yinyang"), "train.progress=false"]) == 0
    straight = Trainer(load_config(ROOT / "configs/yinyang.yaml",
                                   [f"run.out_dir={tmp_path / 'a'}", *args[1:]]))
    straight.fit()
    same_checkpoints(tmp_path / "a" / "yinyang" / CHECKPOINT, tmp_path / "yinyang" / CHECKPOINT)


# ------------------------------------------------------------------------------ CLI mistakes
CLI_MISTAKES = [
    ([], "give a command: train, resume, summary or config"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["train"], "spikeloop train needs a config file"),
    (["train", "train.epochs=2"], "spikeloop train needs a config file"),
    (["train", "configs/yinyang.yaml", "--epochs", "2"],
     "unknown option --epochs; config keys are set as overrides: train.epochs=2"),
    (["train", "configs/yinyang.yaml", "--hidden=64"],
     "unknown option --hidden; config keys are set as overrides: model.hidden=64"),
    (["train", "configs/yinyang.yaml", "--fast"], "unknown option --fast; config keys are set"),
    (["train", "configs/yinyang.yaml", "model.hidden=[64,"],
     "override 'model.hidden=[64,': the value is not valid YAML"),
    (["train", "configs/yinyang.yaml", "fast"], "unexpected argument 'fast'"),
    (["train", "configs"], "config 'configs' is a directory; give a YAML file"),
    (["train", "configs/nope.yaml"], "config file 'configs/nope.yaml' does not exist"),
    (["train", "configs/yinyang.yaml", "--backend", "sim", "train.backend=chip"],
     "--backend sim and train.backend=chip disagree"),
    (["train", "configs/yinyang.yaml", "train.epochs=1", "train.epochs=2"],
     "train.epochs is given twice ('1' and '2')"),
    (["train", "configs/yinyang.yaml", "train.epoch=1"], "unknown config key 'train.epoch'"),
    (["train", "configs/yinyang.yaml", "run.name=a/b"], "run.name must be a plain folder name"),
    (["train", "configs/yinyang.yaml", "run.threads=many"],
     "run.threads must be a positive integer or 'auto'"),
    (["train", "configs/yinyang.yaml", "run.out_dir=/proc/nope", *TINY],
     "cannot create or write the run folder '/proc/nope/yinyang': No such file or directory "
     "at '/proc/nope'"),
    (["train", "configs/yinyang.yaml", "run.out_dir={tmp}", "train.resume=true", *TINY],
     "cannot resume: run folder '{tmp}/yinyang' does not exist"),
    (["resume"], "spikeloop resume needs a run folder"),
    (["resume", "{tmp}/nope"], "no run folder '{tmp}/nope'"),
    (["resume", "configs"], "'configs' is not a run folder: it has no config.yaml"),
    (["resume", "{tmp}/done", "train.lr=0.5"],
     "a resume may change only run.threads, train.progress, run.tensorboard and "
     "run.dist_timeout, not 'train.lr'"),
    (["resume", "{tmp}/done", "train.resume=false"], "not 'train.resume'"),
    (["train", "{tmp}/bad.yaml"], "is not valid YAML (line 3: expected ',' or ']'"),
    (["train", "configs/yinyang.yaml", "run.threads=true"],
     "run.threads: expected int or str or null, got True"),
    (["train", "configs/yinyang.yaml", "run=3"], "run: expected a mapping, got 3"),
    (["summary"], "spikeloop summary needs a config file"),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    Trainer(tiny(out, "train.epochs=1", name="done")).fit()
    (out / "bad.yaml").write_text("run:\n  name: [unclosed\n")
    return out


@pytest.mark.parametrize(("argv", "message"), CLI_MISTAKES, ids=lambda v: " ".join(v)[:50]
                         if isinstance(v, list) else None)
def test_every_cli_mistake_is_one_line_and_exit_2(argv, message, finished_run, capsys,
                                                  monkeypatch):
    monkeypatch.chdir(ROOT)
    fill = {"tmp": str(finished_run)}
    code = main([a.format(**fill) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("spikeloop: error: "), err
    assert message.format(**fill) in err
    assert "Traceback" not in err


def test_help_and_version_exit_0(capsys):
    for argv in (["--help"], ["train", "--help"], ["resume", "--help"], ["--version"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
    assert "KEY=VALUE" in capsys.readouterr().out


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (3, 1), (8, 4), (64, 32)])
def test_auto_threads_leave_half_the_cores(cores, threads, monkeypatch):
    import spikeloop._runtime as rt

    monkeypatch.delenv("SPIKELOOP_THREADS", raising=False)
    monkeypatch.setattr(rt, "usable_cores", lambda: cores)
    n, why = rt.auto_threads()
    assert n == threads and f"half of the {cores} usable cores" in why


def test_bad_thread_settings_are_errors(monkeypatch):
    import spikeloop._runtime as rt
    from spikeloop.errors import ConfigError

    monkeypatch.setenv("SPIKELOOP_THREADS", "0")
    with pytest.raises(ConfigError, match="SPIKELOOP_THREADS must be a positive integer"):
        rt.auto_threads()
    with pytest.raises(ConfigError, match="threads must be a positive integer or 'auto'"):
        rt.set_threads(0)
    assert 1 <= rt.usable_cores() <= (os.cpu_count() or 1)


# ------------------------------------------------------------------------------ edge cases
def test_a_second_ctrl_c_while_saving_still_marks_the_folder(tmp_path, monkeypatch,
                                                              ctrl_c_delivered):
    _interrupt_at(monkeypatch, 5)
    save = Trainer.save_checkpoint

    def interrupted_save(self, path):  # the second Ctrl-C arrives while the checkpoint is written
        if self._partial is not None:
            signal.raise_signal(signal.SIGINT)
        return save(self, path)

    monkeypatch.setattr(Trainer, "save_checkpoint", interrupted_save)
    with pytest.raises(TrainingInterrupted, match=r"interrupted at once: .* holds epoch 1 of 3 "
                                                  r"done; resume with"):
        Trainer(tiny(tmp_path)).fit()
    assert status(tmp_path / "tiny")["state"] == "interrupted"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ignored_sigint_is_left_alone(tmp_path):
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # e.g. a background job
    try:
        Trainer(tiny(tmp_path, "train.epochs=1")).fit()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_dangling_link_or_a_file_named_like_the_run_is_skipped(tmp_path):
    (tmp_path / "tiny").symlink_to(tmp_path / "nowhere")
    (tmp_path / "tiny-2").write_text("not a folder")
    t = Trainer(tiny(tmp_path, "train.epochs=1"))
    t.fit()
    assert t.dir == tmp_path / "tiny-3" and status(t.dir)["state"] == "finished"


def test_a_resume_does_not_need_the_init_from_file_any_more(tmp_path):
    Trainer(tiny(tmp_path / "a", "train.epochs=1")).fit()
    source = tmp_path / "a" / "tiny" / CHECKPOINT
    Trainer(tiny(tmp_path / "b", f"train.init_from={source}")).fit(stop_after=1)
    shutil.rmtree(tmp_path / "a")
    resumed = Trainer(tiny(tmp_path / "b", f"train.init_from={source}", "train.resume=true"))
    assert resumed.epoch == 1


def test_a_resumed_auto_run_uses_the_thread_count_it_started_with(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPIKELOOP_THREADS", "2")
    Trainer(tiny(tmp_path)).fit(stop_after=1)
    monkeypatch.setenv("SPIKELOOP_THREADS", "1")
    resumed = Trainer(tiny(tmp_path, "train.resume=true"))
    assert resumed.threads == 2 == torch.get_num_threads()
    assert "the thread count the run started with" in resumed.threads_reason
    explicit = Trainer(tiny(tmp_path, "train.resume=true", "run.threads=1"))
    assert explicit.threads == 1
    assert "note: the run used 2 torch threads, this resume 1" in capsys.readouterr().err
    torch.set_num_threads(1)


def test_a_weights_file_is_not_a_checkpoint_to_resume(tmp_path):
    t = Trainer(tiny(tmp_path, "train.epochs=1", "train.keep_best=true"))
    t.fit()
    shutil.copy(tmp_path / "tiny" / "best.pt", tmp_path / "tiny" / CHECKPOINT)
    with pytest.raises(CheckpointError, match=r"is not a training checkpoint .* train\.init_from"):
        Trainer(tiny(tmp_path, "train.resume=true", "train.keep_best=true"))
