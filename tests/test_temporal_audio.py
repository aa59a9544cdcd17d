"""benchmarks/temporal_audio.py: the three models train on SHD-layout files with several seeds,
the results file holds every run and the table is generated from it."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import temporal_audio  # noqa: E402

from test_real_data_training import _shd_files  # noqa: E402


def test_models_and_seeds_are_recorded_and_tabulated(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    _shd_files(tmp_path / "data" / "spoken_digits", n_per_class=2)
    monkeypatch.setenv("SPIKELOOP_DATA", str(tmp_path / "data"))
    tiny = ["data.train_size=40", "data.val_size=40", "data.test_size=40", "data.duration=0.3",
            "data.dt=0.005", "train.epochs=1", "train.batch_size=40", "model.hidden=[16]",
            "train.progress=false", "run.threads=1"]
    out = tmp_path / "results" / "ta"
    assert temporal_audio.main(["run", *tiny, "--seeds", "0", "1", "--out-dir",
                                str(tmp_path / "runs"), "--results", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    runs = result["runs"]
    assert sorted(runs) == sorted(f"spoken_digits{suffix}_seed{s}"
                                  for suffix in ("", "_delays", "_adlif") for s in (0, 1))
    for run in runs.values():
        assert run["overrides"] == tiny and run["test_size"] == 40 and run["epochs"] == 1
        assert run["command"] == ("python benchmarks/temporal_audio.py run " + " ".join(tiny)
                                  + f" --models {run['model_key']} --seeds {run['seed']}")
    summary = result["summary"]
    assert list(summary) == ["lif", "delays", "adlif"]
    for key, s in summary.items():
        accs = [runs[n]["test_acc"] for n in sorted(runs) if runs[n]["model_key"] == key]
        assert s["seeds"] == [0, 1] and s["test_acc"] == accs
        assert s["mean"] == pytest.approx(statistics.fmean(accs))
        assert s["std"] == pytest.approx(statistics.stdev(accs))
    # what each model is, from its config: learned delays, adLIF neurons with learned parameters
    from spikeloop.nn import AdLIF, CubaLIF, DelayedLinear, Linear
    from spikeloop.training import build_network, load_config

    nets = {k: build_network(load_config(ROOT / c).model, 700, 20, 0.01)
            for k, (c, _) in temporal_audio.MODELS.items()}
    assert type(nets["lif"].layers.fc1) is Linear and type(nets["lif"].layers.hidden1) is CubaLIF
    fc1 = nets["delays"].layers.fc1
    assert isinstance(fc1, DelayedLinear) and fc1.delay.requires_grad and fc1.per == "axon"
    assert type(nets["delays"].layers.hidden1) is CubaLIF
    hidden = nets["adlif"].layers.hidden1
    assert type(hidden) is AdLIF and type(nets["adlif"].layers.fc1) is Linear
    assert {n for n, p in hidden.named_parameters() if n in ("tau_mem", "tau_adapt", "a", "b")} \
        == {"tau_mem", "tau_adapt", "a", "b"}
    text = out.with_suffix(".md").read_text()
    gain = summary["delays"]["mean"] - summary["lif"]["mean"]
    assert f"Learned delays minus no delays: {100 * gain:+.2f} points" in text
    assert text.count("| `configs/spoken_digits") == 3
    # `table` rewrites the markdown from the json alone
    out.with_suffix(".md").unlink()
    assert temporal_audio.main(["table", "--results", str(out)]) == 0
    assert out.with_suffix(".md").read_text() == text


def test_configs_differ_only_in_what_the_table_says():
    import yaml

    def body(key):
        cfg = yaml.safe_load((ROOT / temporal_audio.MODELS[key][0]).read_text())
        cfg["run"].pop("name")
        return cfg

    base, delays, adlif = body("lif"), body("delays"), body("adlif")
    assert delays["model"].pop("delays") == {"max_delay": 0.25, "per": "axon"}
    assert delays == base
    assert adlif["model"].pop("neuron") == "adlif" and base["model"].pop("neuron") == "cuba_lif"
    adlif["model"].pop("neuron_params")
    assert adlif["model"].pop("learn") == ["tau_mem", "tau_adapt", "a", "b"]
    assert adlif == base
    # loss shaping on the simulator, and the same trained by EventProp on the grid
    shaped, eventprop = body("shaped"), body("eventprop")
    shaped["model"].pop("neuron")
    eventprop["model"].pop("neuron")
    loss = {"name": "exp_membrane_ce", "tau": 1.0, "scale": 0.05, "dt": 0.01}
    assert shaped["train"].pop("loss") == loss and base["train"].pop("loss")["name"] == \
        "max_membrane_ce"
    assert shaped == base
    assert eventprop["train"].pop("backend") == {"name": "event", "engine": "grid"}
    assert eventprop["train"].pop("loss") == loss and shaped["train"].pop("backend") == "sim"
    assert eventprop == shaped


@pytest.mark.parametrize("key", ["lif", "delays", "adlif"])
def test_each_config_runs_on_shd_files_with_the_documented_overrides(key, tmp_path, monkeypatch):
    # docs/temporal-audio.md: the same models run on real SHD files with data.dataset=shd (the
    # published names shd_train.h5 / shd_test.h5 in $SPIKELOOP_DATA/shd); here on small files
    # in that format, sizes scaled down
    from spikeloop.training import Trainer, load_config

    monkeypatch.chdir(ROOT)
    folder = tmp_path / "data" / "shd"
    _shd_files(folder, n_per_class=1)
    for split in ("train", "test"):
        (folder / f"spoken_digits_{split}.h5").rename(folder / f"shd_{split}.h5")
    monkeypatch.setenv("SPIKELOOP_DATA", str(tmp_path / "data"))
    doc = (ROOT / "docs" / "temporal-audio.md").read_text()
    assert "`data.dataset=shd data.train_size=7000 data.val_size=700 data.test_size=2264`" in doc
    cfg = load_config(ROOT / temporal_audio.MODELS[key][0], [
        "data.dataset=shd", "data.train_size=60", "data.val_size=20", "data.test_size=20",
        "train.epochs=1", "train.batch_size=20", "model.hidden=[16]", "train.progress=false",
        "run.threads=1", f"run.out_dir={tmp_path / 'runs'}"])
    summary = Trainer(cfg).fit()
    assert summary["epochs"] == 1 and 0.0 <= summary["test_acc"] <= 1.0
    assert (tmp_path / "runs" / cfg.run.name / "summary.json").exists()
