"""``spikeloop sweep``: a grid of overrides × seeds as parallel training processes, the results
file, the table (mean ± sd over seeds) and the plot; failed trials are recorded; bad input is
refused before any trial starts."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest

from spikeloop.cli import main
from spikeloop.errors import ConfigError
from spikeloop.training.sweep import make_trials, parse_grid, usable_cores

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs/yinyang.yaml")
TINY = ["data.train_size=80", "data.val_size=40", "data.test_size=40", "model.hidden=[8]",
        "train.batch_size=40", "train.epochs=1", "train.backend=sim"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """2 learning rates × seeds 0 and 1, 2 at a time."""
    out = tmp_path_factory.mktemp("sweep") / "lr"
    code = main(["sweep", CONFIG, "--grid", "train.lr=0.01,0.05", "--parallel", "2",
                 "--out", str(out), "--seeds", "0", "1", *TINY])  # overrides after the seeds
    return code, out


def test_sweep_trains_every_setting_and_seed(swept):
    code, out = swept
    assert code == 0
    result = json.loads((out / "sweep.json").read_text())
    trials = result["trials"]
    assert [(t["setting"], t["seed"]) for t in trials] == [
        ({"train.lr": lr}, seed) for lr in (0.01, 0.05) for seed in (0, 1)]
    assert len({t["name"] for t in trials}) == 4
    for t in trials:
        assert t["status"] == "ok" and t["error"] is None, t
        assert t["name"] == f"lr={t['setting']['train.lr']}_seed={t['seed']}"
        summary = json.loads((out / t["name"] / "summary.json").read_text())
        assert summary["seed"] == t["seed"] and summary["epochs"] == 1
        assert summary["test_acc"] == t["test_acc"]
        assert summary["torch_threads"] == max(1, usable_cores() // 2)  # 2 processes share
        config = (out / t["name"] / "config.yaml").read_text()
        assert f"lr: {t['setting']['train.lr']}" in config
        assert t["best_epoch"] == 1 and t["wall_seconds"] > 0
    assert (out / "sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_table_is_mean_and_sd_over_the_seeds(swept):
    _, out = swept
    result = json.loads((out / "sweep.json").read_text())
    rows = [line for line in (out / "sweep.md").read_text().splitlines()
            if line.startswith("| ") and "train.lr=" in line]
    assert len(rows) == 2
    means = {}
    for lr in (0.01, 0.05):
        runs = [json.loads((out / t["name"] / "summary.json").read_text())
                for t in result["trials"] if t["setting"]["train.lr"] == lr]
        row = next(r for r in rows if f"train.lr={lr}`" in r)
        for key in ("val_acc", "test_acc"):
            values = [100 * r[key] for r in runs]
            expected = f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f} %"
            assert expected in row, (key, expected, row)
        assert "2/2" in row
        means[lr] = statistics.fmean(r["val_acc"] for r in runs)
    best = max(means, key=means.get)
    assert rows[0].startswith("| best |") and f"train.lr={best}`" in rows[0]
    assert not rows[1].startswith("| best")


def test_failed_trial_is_recorded_and_the_others_finish(tmp_path, capsys):
    out = tmp_path / "opt"
    code = main(["sweep", CONFIG, *TINY, "--grid", "train.optimizer=adam,bogus",
                 "--parallel", "2", "--out", str(out)])
    assert code == 1
    trials = {t["setting"]["train.optimizer"]: t
              for t in json.loads((out / "sweep.json").read_text())["trials"]}
    assert trials["adam"]["status"] == "ok" and (out / trials["adam"]["name"] / "summary.json"
                                                 ).is_file()
    bad = trials["bogus"]
    assert bad["status"] == "failed" and bad["exit_status"] == 2
    assert bad["error"].startswith("spikeloop: error: unknown optimizer 'bogus'")
    table = (out / "sweep.md").read_text()
    assert "0/1" in table and bad["error"] in table
    assert "1/2 trials finished" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--grid", "train.lrr=0.1,0.2"], r"trial lrr=0\.1_seed=0: unknown config key 'train\.lrr'"),
    (["--grid", "train.lr="], r"--grid 'train\.lr=' lists no values"),
    (["--grid", "train.lr"], r"--grid 'train\.lr' must look like key\.sub=V1,V2"),
    (["--grid", "=1,2"], r"must look like key\.sub=V1,V2"),
    (["--grid", "model.hidden=[8"], r"the values are not valid YAML"),
    (["--grid", "train.lr=0.1,0.1"], r"train\.lr lists 0\.1 twice"),
    (["--grid", "train.lr=0.1", "--grid", "train.lr=0.2"], r"train\.lr is given twice"),
    (["--grid", "run.seed=1,2"], r"cannot sweep run\.seed \(use --seeds\)"),
    (["--grid", "data.dt=0,1e-3"], r"trial dt=0_seed=0: data\.dt must be > 0, got 0"),
    (["--grid", "model.hidden=[16]"], r"model\.hidden is set by the sweep"),
    (["--grid", "train.lr=0.1,0.2", "--parallel", "0"], r"--parallel must be ≥ 1, got 0"),
    (["--grid", "train.lr=0.1,0.2", "--random", "3"],
     r"--random 3 exceeds the grid's 2 settings"),
    (["--grid", "train.lr=0.1", "--seeds", "0", "0"], r"--seeds lists 0 twice"),
    (["--grid", "train.lr=0.1", "--seeds", "0", "one"], r"--seeds: 'one' is not an integer"),
    (["--grid", "train.lr=0.1", "--parallel", "two"], r"invalid int value: 'two'"),
])
def test_bad_sweeps_are_refused_before_any_trial(tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert main(["sweep", CONFIG, *TINY, *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("spikeloop: error: "), err
    assert re.search(message, err), err
    assert not out.exists()


def test_existing_results_are_never_overwritten(tmp_path, capsys):
    out = tmp_path / "old"
    out.mkdir()
    (out / "sweep.json").write_text("earlier results")
    assert main(["sweep", CONFIG, *TINY, "--grid", "train.lr=0.1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is a folder that is not empty" in err and "--out" in err
    assert (out / "sweep.json").read_text() == "earlier results"
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json"]


def test_grid_values_are_yaml_and_names_are_readable():
    grid = parse_grid(["model.hidden=[8, 8],[16]", "train.optimizer=adam,'sgd'",
                       "model.tau_mem=1e-2,2.0e-2"])
    assert grid == {"model.hidden": [[8, 8], [16]], "train.optimizer": ["adam", "sgd"],
                    "model.tau_mem": ["1e-2", 0.02]}  # YAML 1.1; the config reads both
    trials = make_trials(grid, seeds=[3])
    assert len(trials) == 8
    assert trials[0].name == "hidden=8-8_optimizer=adam_tau_mem=1e-2_seed=3"
    assert trials[0].overrides == ['model.hidden=[8, 8]', 'train.optimizer="adam"',
                                   'model.tau_mem="1e-2"']
    clash = make_trials(parse_grid(["model.tau_mem=0.01", "data.tau_mem=0.02"]), seeds=[0])
    assert clash[0].name == "model.tau_mem=0.01_data.tau_mem=0.02_seed=0"


def test_random_draws_are_distinct_and_repeatable():
    grid = parse_grid(["train.lr=0.01,0.02,0.05", "model.hidden=[8],[16]"])
    first = make_trials(grid, seeds=[0, 1], random_draws=4, draw_seed=7)
    assert first == make_trials(grid, seeds=[0, 1], random_draws=4, draw_seed=7)
    settings = [json.dumps(t.setting) for t in first[::2]]
    assert len(settings) == len(set(settings)) == 4
    assert [t.seed for t in first] == [0, 1] * 4
    with pytest.raises(ConfigError, match="--random must be ≥ 1"):
        make_trials(grid, random_draws=0)
