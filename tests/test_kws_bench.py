"""benchmarks/kws.py end to end on tiny synthesised keyword files: every network and stage
runs (float, quantised, QAT, chip in the loop, each chip stage on the integer chip in
streaming mode), the result file holds the measures the table shows, and the table is made
from it."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import kws  # noqa: E402

from spikeloop.data import AFEParams, afe_counts  # noqa: E402
from spikeloop.data import keywords as kw  # noqa: E402
from spikeloop.errors import ConfigError, LimitWarning  # noqa: E402
from spikeloop.training.config import load_config  # noqa: E402
from spikeloop.training.experiment import load_data  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                reason="espeak-ng is not installed (Debian package espeak-ng)")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kws")
    kw.make_keywords(folder, per_class=2, test_per_class=2, n_streams=1, train_streams=1,
                     stream_s=12.0, progress=False)
    return folder


def test_config_data_section_runs_the_integer_front_end(files, monkeypatch):
    cfg = load_config(ROOT / "configs" / "kws_synnet.yaml",
                      [f"data.root={files}", "data.train_size=8", "data.val_size=2",
                       "data.test_size=10"])
    data = load_data(cfg.data)
    test = kw.read_keywords(files / kw.file_name("test"))
    expected = afe_counts(test.clips, test.fs, integer=True).counts
    assert data["test"].spikes.dtype == torch.int16
    assert torch.equal(data["test"].spikes, torch.from_numpy(expected).to(torch.int16))
    assert torch.equal(data["test"].labels, torch.as_tensor(test.labels))
    assert data["train"].spikes.shape == (100, 8, 13) and data["val"].spikes.shape[1] == 2
    # counts above the chip's input cap are set to it, and said so (a tiny threshold here)
    import spikeloop.training.experiment as experiment
    low = AFEParams(threshold=1e-7)
    monkeypatch.setattr(experiment, "AFEParams", lambda: low)
    with pytest.warns(LimitWarning, match=r"counts above the chip's input limit 15 to 15"):
        capped = load_data(cfg.data)
    assert int(capped["test"].spikes.max()) == 15
    monkeypatch.undo()
    with pytest.raises(ConfigError, match=r"bin width 0\.01"):
        load_data(replace(cfg.data, dt=5e-3, duration=0.5))
    with pytest.raises(ConfigError, match=r"exceeds its clips' 1\.0 s"):
        load_data(replace(cfg.data, duration=2.0))
    with pytest.raises(ConfigError, match="encoder must be"):
        load_data(replace(cfg.data, encoder={"name": "rate"}))


def test_every_network_and_stage_is_measured(tmp_path, files):
    out = tmp_path / "kws.json"
    argv = ["--quick", "--no-progress", "--data", str(files), "--out", str(out),
            "--set", "data.train_size=8", "data.val_size=2", "data.test_size=10"]
    assert kws.main(argv) == 0
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["model"] for r in rows] == list(kws.MODELS)
    for r in rows:
        assert r["hidden"] == 256
        for stage in kws.STAGES:
            m = r[stage]
            assert 0.0 <= m["accuracy"] <= 1.0
            assert m["keywords"] == result["test_keywords"] > 0
            assert m["false_alarms_per_hour"] >= 0
            assert len(m["thresholds"]) == kws.KEYWORDS
        for stage in ("quantised", "qat", "in_the_loop"):  # on the chip: energy counted
            m = r[stage]
            assert m["energy_total_uj"] > m["energy_dynamic_uj"] > 0
            assert m["sops_per_inference"] > 0
    table = out.with_suffix(".md").read_text()
    assert table == kws.markdown(result)
    assert out.with_suffix(".png").stat().st_size > 10_000
    for model in kws.MODELS:
        assert table.count(f"| {model} (256 hidden) |") == len(kws.STAGES)
    assert result["command"].startswith("python benchmarks/kws.py --quick")

    # two runs' files combine into one table; a network and seed twice is refused
    parts = []
    for k, rows_part in enumerate((rows[:1], rows[1:])):
        parts.append(tmp_path / f"part{k}.json")
        parts[-1].write_text(json.dumps({**result, "rows": rows_part}))
    assert kws.main(["--combine", *map(str, parts), "--out", str(tmp_path / "all.json")]) == 0
    combined = json.loads((tmp_path / "all.json").read_text())
    assert combined["rows"] == rows and len(combined["command"]) == 2
    assert "(then `--combine`d)" in (tmp_path / "all.md").read_text()
    with pytest.raises(SystemExit, match="appear twice"):
        kws.main(["--combine", str(parts[0]), str(parts[0]), "--out", str(tmp_path / "x.json")])
