"""The data benchmarks on tiny files in the real layouts: the loader-against-step benchmark
(benchmarks/data_loading.py) and the speed benchmark's shd workload."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import data_loading  # noqa: E402
from benchmarks.speed import workload  # noqa: E402

from spikeloop.data import write_idx, write_shd  # noqa: E402


def _shd_file(path: Path, n: int = 70, seed: int = 0) -> tuple[list, list]:
    rng = np.random.default_rng(seed)
    times = [np.sort(rng.random(300) * 1.2) for _ in range(n)]  # some past the 1 s window
    units = [rng.integers(0, 700, 300) for _ in range(n)]
    write_shd(path, times, units, [k % 20 for k in range(n)], [k % 3 for k in range(n)],
              [f"c{k}" for k in range(20)])
    return times, units


def test_shd_workload_reads_the_first_64_samples_in_10_ms_bins(tmp_path, monkeypatch):
    times, units = _shd_file(tmp_path / "s.h5")
    monkeypatch.setenv("SPIKELOOP_BENCH_SHD", str(tmp_path / "s.h5"))
    workload.shd_data.cache_clear()
    wl = workload.Workload(variant="shd")
    x, y = wl.data()
    assert x.shape == (100, 64, 700) and x.dtype == torch.float32 and wl.recurrent
    assert y.tolist() == [k % 20 for k in range(64)]
    # every spike inside the window is counted (float16 times: compare in the file's precision)
    inside = sum(int((t.astype(np.float16).astype(np.float64) < 1.0).sum()) for t in times[:64])
    assert int(x.sum()) == inside
    k = 3  # one sample's raster equals a histogram of its own spikes
    t = times[k].astype(np.float16).astype(np.float64)
    keep = t < 1.0
    want = np.zeros((100, 700))
    np.add.at(want, (np.floor(t[keep] / 0.01 + 1e-9).astype(int), units[k][keep]), 1)
    np.testing.assert_array_equal(x[:, k].numpy(), want)
    assert wl.weights()["wrec"].shape == (256, 256)
    with pytest.raises(ValueError, match="T = 100"):
        workload.Workload(variant="shd", T=10).data()
    workload.shd_data.cache_clear()


def test_data_loading_benchmark_runs_on_tiny_files(tmp_path, monkeypatch):
    _shd_file(tmp_path / "s.h5")
    fm = tmp_path / "data" / "fashion_mnist"
    fm.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 300), ("t10k", 50)):
        write_idx(fm / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28),
                                                                  dtype=np.uint8))
        write_idx(fm / f"{split}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
    monkeypatch.setenv("SPIKELOOP_DATA", str(tmp_path / "data"))
    out = tmp_path / "dl"
    assert data_loading.main(["--quick", "--shd-file", str(tmp_path / "s.h5"), "--workers", "0",
                              "--out", str(out)]) == 0
    rows = json.loads(out.with_suffix(".json").read_text())["rows"]
    assert [r["model"].split(":")[0] for r in rows] == [
        "spoken_digits.yaml", "fashion_mnist_fc", "fashion_mnist_conv"]
    assert all(r["loader"] > 0 and r["step"] > 0 and r["ratio"] == r["loader"] / r["step"]
               for r in rows)
    assert "| loader ÷ step |" in out.with_suffix(".md").read_text()


def test_data_loading_benchmark_names_a_missing_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPIKELOOP_DATA", str(tmp_path / "none"))
    assert data_loading.main(["--quick", "--out", str(tmp_path / "dl")]) == 2
    assert "make spoken-digits" in capsys.readouterr().err


def test_the_real_data_record_describes_the_network_method_and_augmentation(tmp_path):
    from benchmarks import real_data

    run = tmp_path / "fashion_mnist_conv"
    run.mkdir()
    cfg = yaml.safe_load((ROOT / "configs" / "fashion_mnist_conv.yaml").read_text())
    cfg["data"]["augment"] = {"shift": 1, "flip": True}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "status.json").write_text(json.dumps({
        "state": "finished", "command": "spikeloop train configs/fashion_mnist_conv.yaml",
        "started": "2026-12-04T14:48:04+00:00"}))
    (run / "summary.json").write_text(json.dumps({
        "test_acc": 0.5, "val_acc": 0.6, "best_epoch": 2, "epochs": 3,
        "seconds_per_epoch": 300.0, "wall_seconds": 900.0, "torch_threads": 1}))
    entry = real_data.record(run, commit="abc1234")
    assert entry["model"] == ("conv3×3 32 → if → pool 2 → conv3×3 64 → if → pool 2 → 256 if "
                              "→ li; T = 8; trained by ANN proxy; training images augmented "
                              "(shift ±1, left–right flip)")
    assert entry["reference"].startswith("proxy learning")
    table = real_data.markdown({entry["name"]: entry})
    assert "| fashion_mnist_conv | fashion_mnist | conv3×3 32 → if → pool 2" in table
    assert "50.00 %" in table and "`spikeloop train configs/fashion_mnist_conv.yaml`" in table


def _fake_run(tmp_path, name, config, acc, method):
    run = tmp_path / name
    run.mkdir()
    cfg = yaml.safe_load((ROOT / "configs" / config).read_text())
    cfg["run"]["name"] = name
    cfg["train"]["method"] = method
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "status.json").write_text(json.dumps({
        "state": "finished", "command": f"spikeloop train configs/{config}",
        "started": "2026-12-05T01:00:00+00:00"}))
    (run / "summary.json").write_text(json.dumps({
        "test_acc": acc, "val_acc": acc, "best_epoch": 1, "epochs": 1,
        "seconds_per_epoch": 60.0, "wall_seconds": 75.0, "torch_threads": 1}))
    return run


def test_the_local_learning_table_sets_each_method_against_its_paper_and_target(tmp_path):
    from benchmarks import local_learning as ll

    runs = [("fm_proxy", "fashion_mnist_conv.yaml", 0.9205, "ann_proxy"),
            ("fm_digits_proxy", "digits.yaml", 0.5, "ann_proxy"),
            ("fm_ssnn", "fashion_mnist_conv.yaml", 0.851, {"name": "ssnn_bp", "steps": 32}),
            ("fm_ssnn_ann", "fashion_mnist_conv.yaml", 0.8855,
             {"name": "ssnn_bp", "steps": 32, "stochastic": False})]
    entries = {}
    for name, config, acc, method in runs:
        entry = ll.record(_fake_run(tmp_path, name, config, acc, method), commit="abc1234")
        entries[entry["name"]] = entry
    assert ll.verdict(entries["fm_proxy"], entries) == "met (92.05 % vs 92 %)"
    assert ll.verdict(entries["fm_digits_proxy"], entries) == "no target on this data set"
    assert ll.verdict(entries["fm_ssnn_ann"], entries) == "the ANN reference"
    assert ll.verdict(entries["fm_ssnn"], entries) == (
        "not met: +3.45 points below the ANN (88.55 %, fm_ssnn_ann)")
    table = ll.markdown(entries)
    assert table.index("| ann_proxy | Fashion-MNIST 94.56 %") < table.index("| ssnn_bp |")
    assert "`spikeloop train configs/fashion_mnist_conv.yaml` — 2026-12-05" in table
    with pytest.raises(SystemExit, match=r"was trained by 'backprop'; this table holds"):
        ll.record(_fake_run(tmp_path, "bp", "digits.yaml", 0.9, "backprop"))
