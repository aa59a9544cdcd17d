"""The device-robustness benchmark (benchmarks/robustness.py): a tiny run writes its results
file, table and figure with every part; the docs tables are generated from the committed
results files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import robustness  # noqa: E402


def test_tiny_run_writes_every_part(tmp_path, one_thread, capsys):
    out = tmp_path / "rob"
    assert robustness.main(["--tiny", "--out", str(out), "--runs", str(tmp_path / "runs")]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    sweeps = robustness.TINY_SWEEPS
    assert result["sweeps"] == sweeps and result["instances"] == 1
    for task in ("Yin-Yang", "Fashion-MNIST"):
        part = result["crossbar"][task]
        assert set(part["clean"]) == {"ideal", "aware"}
        for kind in ("ideal", "aware"):
            assert len(part["sweeps"][kind]["program_std"]) == len(sweeps["program_std"])
            assert len(part["sweeps"][kind]["drift_t_comp"]) == len(sweeps["drift_t"])
            # ideal devices (program_std 0) give the clean accuracy exactly
            assert part["sweeps"][kind]["program_std"][0]["mean"] == part["clean"][kind]
        neurons = result["neurons"][task]
        assert neurons["hidden"] and len(neurons["ideal"]["voltage"]) == len(sweeps["compression"])
        assert neurons["ideal"]["voltage"][0]["mean"] == neurons["ideal"]["clean"]  # α = 0
    assert [r["T"] for r in result["steps"]] == sweeps["T"]
    flips = result["flips"]
    assert len(flips["memories"]) == 10 and all(
        p[0]["mean"] == flips["clean"] for p in flips["memories"].values())  # rate 0: exact
    assert set(flips) >= {"control", "aware"}
    text = out.with_suffix(".md").read_text()
    assert "share of the loss recovered" in text and "Bit flips on the integer chip" in text
    assert out.with_suffix(".png").stat().st_size > 10_000
    assert robustness.main(["--plot-only", "--out", str(out)]) == 0


def test_the_docs_tables_are_the_committed_results():
    page = (ROOT / "docs" / "devices.md").read_text()
    for name in ("robustness.md", "crossbar_vs_aihwkit.md"):
        assert f"<!-- generated: results {name} -->" in page
        assert (ROOT / "benchmarks" / "results" / name).exists()
    result = json.loads((ROOT / "benchmarks" / "results" / "robustness.json").read_text())
    assert (ROOT / "benchmarks" / "results" / "robustness.md").read_text() == \
        robustness.table(result)
