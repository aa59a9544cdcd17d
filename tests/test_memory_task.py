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
