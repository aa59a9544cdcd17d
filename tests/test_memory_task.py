"""The store–recall benchmark (benchmarks/memory_task.py): a tiny training writes its results
file, table and figure; the docs table is generated from the committed results file."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import memory_task  # noqa: E402


def test_tiny_training_writes_results_table_and_figure(tmp_path, one_thread, capsys):
    out = tmp_path / "memory"
    assert memory_task.main(["--tiny", "--models", "lif", "adlif", "--seeds", "0", "1",
                             "--out", str(out), "--no-progress"]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert [(r["model"], r["seed"]) for r in result["rows"]] == [
        ("lif", 0), ("lif", 1), ("adlif", 0), ("adlif", 1)]
    for row in result["rows"]:
        assert 0 <= row["accuracy"] <= 1 and row["cpu_s"] >= 0
        assert row["final_loss"] > 0
    assert result["chance"] == 0.5 and result["settings"]["steps"] == memory_task.TINY["steps"]
    assert result["command"].startswith("python benchmarks/memory_task.py --tiny")
    assert set(result["examples"]) == {"lif", "adlif"}
    adaptation = result["examples"]["adlif"]["adaptation"]
    assert adaptation["variable"] == "w" and len(adaptation["neurons"]) == 5
    steps = len(result["examples"]["adlif"]["readout_v"])
    assert len(adaptation["values"]) == steps
    assert "adaptation" not in result["examples"]["lif"]
    assert out.with_suffix(".md").read_text() == memory_task.table(result)
    assert out.with_suffix(".png").stat().st_size > 0
    assert re.search(r"^adlif +seed 1: recall accuracy", capsys.readouterr().out, re.MULTILINE)
    # --plot-only rebuilds the table and the figure from the JSON alone
    out.with_suffix(".md").unlink()
    out.with_suffix(".png").unlink()
    assert memory_task.main(["--plot-only", "--out", str(out.with_suffix(".json"))]) == 0
    assert out.with_suffix(".md").read_text() == memory_task.table(result)
    assert out.with_suffix(".png").stat().st_size > 0


def test_tiny_training_with_distractors_writes_its_own_files(tmp_path, one_thread, monkeypatch):
    # without --out the run goes to OUT_DISTRACTORS, not to the results without distractors
    monkeypatch.setattr(memory_task, "OUT_DISTRACTORS", tmp_path / "distractors")
    monkeypatch.setattr(memory_task, "OUT", tmp_path / "plain")
    assert memory_task.main(["--tiny", "--distractors", "2", "--models", "lif", "adlif",
                             "--seeds", "0", "--no-progress"]) == 0
    out = tmp_path / "distractors"
    assert not (tmp_path / "plain.json").exists()
    result = json.loads(out.with_suffix(".json").read_text())
    # the tiny gaps (0.05–0.1 s) are raised to the (2 + 2) cue lengths two distractors need
    assert result["settings"]["distractors"] == 2 and result["settings"]["gap"] == [0.2, 0.2]
    assert result["command"].endswith("--tiny --distractors 2 --models lif adlif --seeds 0 "
                                      "--no-progress")
    text = out.with_suffix(".md").read_text()
    assert text == memory_task.table(result)
    assert "gaps 0.2–0.2 s, 2 distractor values in every gap" in text
    assert out.with_suffix(".png").stat().st_size > 0
    ex = result["examples"]["adlif"]
    starts, steps = ex["distractor_start"], len(ex["readout_v"])
    assert len(starts) == len(ex["distractor_values"]) == 2
    # gap 40 steps = 2 distractors of 10 steps + one cue clear on each side: packed
    assert starts == [ex["store_start"] + 20, ex["store_start"] + 30]
    assert starts[-1] + 10 <= steps - 2 * ex["recall_steps"]
    # the example's raster holds the distractors' spikes: their value group fires there
    events = torch.tensor(ex["events"])
    for start, value in zip(starts, ex["distractor_values"], strict=True):
        inside = (events[:, 0] >= start) & (events[:, 0] < start + 10)
        group = events[inside, 1] // 10
        assert (group == value).sum() > 20  # 10 channels × 10 steps at 100 Hz · 5 ms: ~50


def test_without_distractors_the_settings_and_table_are_as_before():
    assert memory_task.gap_for((0.2, 1.0), 0) == (0.2, 1.0)
    assert memory_task.gap_for((0.2, 1.0), 2) == (0.2, 1.0)  # the full run holds two
    assert memory_task.gap_for((0.2, 1.0), 3) == (0.25, 1.0)
    assert memory_task.gap_for((0.05, 0.1), 2) == (0.2, 0.2)
    result = json.loads((ROOT / "benchmarks/results/memory_task.json").read_text())
    assert "distractor" not in memory_task.table(result)
    assert "distractor" not in memory_task.table(
        result | {"settings": result["settings"] | {"distractors": 0}})


def test_gaps_on_a_boundary_are_grouped_by_their_exact_value():
    """A gap of exactly 0.6 s is a long gap and one of exactly 0.2 or 0.4 s starts its bin (in
    float32, 120 · 0.005, 40 · 0.005 and 80 · 0.005 round below the boundaries)."""
    steps = torch.tensor([40, 79, 80, 119, 120, 160, 200])
    long, bins = memory_task.gap_groups(steps, (0.2, 1.0))
    assert long.tolist() == [False, False, False, False, True, True, True]
    assert [x for edges, _ in bins for x in edges] == pytest.approx(
        [0.2, 0.4, 0.4, 0.6, 0.6, 0.8, 0.8, 1.0])
    assert [inside.nonzero().flatten().tolist() for _, inside in bins] == [
        [0, 1], [2, 3], [4], [5, 6]]


def test_negative_distractors_are_refused(capsys):
    with pytest.raises(SystemExit):
        memory_task.main(["--tiny", "--distractors", "-1"])
    assert "--distractors must be ≥ 0, got -1" in capsys.readouterr().err


def test_recall_window_reads_the_masked_steps_only():
    from spikeloop.data import store_recall

    d = store_recall(4, seed=0, gap=(0.05, 0.1))
    net = memory_task.build("lif", d.spikes.shape[2], 6, 2, seed=0)
    out = net(d.spikes)
    cut = memory_task.recall_window(out, d.mask)
    assert torch.equal(cut.output.v, out.output.v[-10:])
    assert torch.equal(cut["hidden"].spikes, out["hidden"].spikes)  # other populations kept
    bad = d.mask.clone()
    bad[-1, 0] = False
    with pytest.raises(ValueError, match="recall steps differ"):
        memory_task.recall_window(out, bad)


def test_docs_table_is_generated_from_the_results_file():
    result = json.loads((ROOT / "benchmarks/results/memory_task.json").read_text())
    assert (ROOT / "benchmarks/results/memory_task.md").read_text() == memory_task.table(result)
    assert {r["seed"] for r in result["rows"]} == {0, 1, 2}
    assert set(result["models"]) == set(memory_task.MODELS)
    page = (ROOT / "docs/memory-task.md").read_text()
    assert "<!-- generated: results memory_task.md -->" in page
    assert "<!-- generated: results memory_task.png -->" in page


@pytest.mark.parametrize(("margin", "grows"), [(-2.0, True), (-0.8, False)])
def test_adlif_w_grows_when_a_is_below_minus_one_minus_rho(margin, grows):
    """The benchmark's ``unstable_neurons`` criterion: with ``a = margin · (1 − ρ)`` and no
    input, a subthreshold start of the (v, w) recursion grows for ``margin < −1`` and decays
    for ``margin > −1``."""
    from spikeloop.nn import AdLIF

    dt, tau_adapt = 5e-3, 0.6
    rho = torch.exp(torch.tensor(-dt / tau_adapt)).item()
    pop = AdLIF(1, dt=dt, tau_mem=20e-3, tau_adapt=tau_adapt, a=margin * (1 - rho), b=0.0,
                v_threshold=1e9)
    x = torch.zeros(2000, 1, 1)
    x[0] = -1.0  # a push below rest
    _, state = pop(x)
    w = state.neuron.w.abs().item()
    assert (w > 1.0) if grows else (w < 1e-3)
