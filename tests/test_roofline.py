"""The roofline of the speed benchmark (benchmarks/roofline.py): work counts against numbers
computed by hand, the floor's choice of the faster alternative, the quick run's files, and the
speed benchmark's ``× floor`` column. No timing assertions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import roofline, speed_bench  # noqa: E402
from benchmarks.speed.workload import Workload  # noqa: E402

TINY = {"T": 3, "batch": 2, "n_in": 5, "hidden": 4, "n_out": 2, "rate": 0.4}
ACT = roofline.Activity(input_events=7, hidden_spikes=5, hidden_spikes_prop=3, source="test")


def _works(terms: list[roofline.Term]) -> dict[str, list[tuple[str, float]]]:
    return {t.name: [(a.kind, a.work) for a in t.alts] for t in terms}


def test_work_counts_recurrent_by_hand() -> None:
    # T = 3, B = 2, N = 5, H = 4, O = 2; E_in = 7, E_h = 5, E_h⁻ = 3; P = 20 + 8 + 16 = 44
    w = roofline.work(Workload(variant="rec", **TINY), ACT)
    fwd, train = _works(w["forward"]), _works(w["train"])
    assert fwd == {
        "input projection": [("event", 7 * 4), ("gemm", 2 * 6 * 5 * 4)],  # 28 | 240
        "recurrent": [("event", 3 * 4), ("gemm", 2 * 2 * 4 * 4 * 2)],  # 12 | 128 (2 steps)
        "readout": [("event", 5 * 2), ("gemm", 2 * 6 * 4 * 2)],  # 10 | 96
        "neurons": [("elementwise", 7 * 24 + 6 * 12)],  # 240
        "memory": [("stream", 4 * 30 + 4 * 24)],  # input + spikes: 216 B
    }
    assert train == {
        "input projection": [("event", 28), ("gemm", 240)],
        "recurrent": [("event", 12), ("gemm", 128)],
        "readout": [("event", 10), ("gemm", 96)],
        "neurons": [("elementwise", 240)],
        # input + spikes + 2 × (saved membrane + event indices) + 16 B per parameter
        "memory": [("stream", 120 + 96 + 2 * (96 + 28) + 16 * 44)],  # 1168 B
        "readout adjoint → hidden": [("gemm", 2 * 6 * 2 * 4)],
        "dW2": [("event", 10), ("gemm", 96)],
        "recurrent adjoint": [("gemm", 128)],
        "dW_rec": [("event", 12), ("gemm", 2 * 4 * 4 * 4)],
        "dW1": [("event", 28), ("gemm", 240)],
        "adjoint neurons": [("elementwise", 14 * 24 + 4 * 12)],  # 384
    }


def test_work_counts_feed_forward_by_hand() -> None:
    w = roofline.work(Workload(variant="ff", **TINY), ACT)
    train = _works(w["train"])
    assert "recurrent" not in train and "dW_rec" not in train
    assert train["adjoint neurons"] == [("elementwise", 13 * 24 + 4 * 12)]  # 360
    assert train["memory"] == [("stream", 120 + 96 + 248 + 16 * 28)]  # P = 20 + 8


def test_activity_counts_the_real_input_and_the_given_density() -> None:
    wl = Workload(variant="ff", **TINY)
    act = roofline.activity(wl, hidden_density=0.25)
    assert act.input_events == int(torch.count_nonzero(wl.data()[0]))
    assert (act.hidden_spikes, act.hidden_spikes_prop) == (6, 4)  # 0.25·24, 0.25·16
    with pytest.raises(ValueError, match="hidden_density"):
        roofline.activity(wl, hidden_density=1.5)


def test_activity_from_a_spikeloop_forward_pass() -> None:
    wl = Workload(variant="rec", T=10, batch=4)
    act = roofline.activity(wl)
    assert 0 < act.hidden_spikes_prop <= act.hidden_spikes <= 10 * 4 * 256


def test_floor_takes_the_faster_alternative_and_sums() -> None:
    terms = roofline.work(Workload(variant="ff", **TINY), ACT)["forward"]
    keys = {a.rate for t in terms for a in t.alts}
    rates = {k: (1e3 if k.startswith("gemm") else 1e2 if k.startswith("event") else 1e1)
             for k in keys}  # per second: gemm 1000, event 100, others 10
    f = roofline.floor(terms, rates)
    ms = {r["term"]: r["ms"] for r in f["terms"]}
    assert ms["input projection"] == pytest.approx(240.0)  # gemm 240/1000 s < event 28/100 s
    assert ms["readout"] == pytest.approx(96.0)  # gemm 96/1000 s < event 10/100 s
    assert ms["neurons"] == pytest.approx(24_000.0) and ms["memory"] == pytest.approx(21_600.0)
    assert f["floor_ms"] == pytest.approx(sum(ms.values()))
    assert f["dominant"] == "neurons"


def test_quick_run_writes_its_files(tmp_path: Path) -> None:
    out = tmp_path / "roof"
    assert roofline.main(["--quick", "--variants", "ff", "rec", "--hidden-density", "0.05",
                          "--threads", "1", "--out", str(out)]) == 0
    result = json.loads((tmp_path / "roof.json").read_text())
    for variant in ("ff", "rec"):
        r = result["variants"][variant]
        assert r["workload"]["T"] == 10 and r["workload"]["batch"] == 4
        for mode in ("forward", "train"):
            assert r[mode]["floor_ms"] == pytest.approx(sum(t["ms"] for t in r[mode]["terms"]))
            assert all(t["rate"] > 0 for t in r[mode]["terms"])
        assert r["train"]["floor_ms"] > r["forward"]["floor_ms"]
    text = (tmp_path / "roof.md").read_text()
    assert "| **total** |" in text and "dW1" in text and "recurrent adjoint" in text


def test_speed_bench_reports_multiples_of_the_floor() -> None:
    roof = {"variants": {"ff": {"activity": {"hidden": 0.05},
                                "train": {"floor_ms": 4.0, "dominant": "dW1"},
                                "forward": {"floor_ms": 2.0, "dominant": "neurons"}}}}
    rec = {"variant": "ff", "version": "x", "peak_rss_mb": 300.0, "peak_delta_mb": 1.0,
           "hidden_rate": 0.05}
    records = [{**rec, "lib": lib, "mode": mode, "median_ms": ms, "min_ms": ms, "max_ms": ms}
               for lib, mode, ms in (("spikeloop", "train", 10.0), ("spikeloop", "forward", 5.0),
                                     ("norse", "train", 100.0), ("norse", "forward", 30.0))]
    floors = speed_bench.roofline_floors(roof)
    summary = speed_bench.summarize(records, ["ff"], floors)
    assert summary["ff"]["train"]["spikeloop_x_floor"] == pytest.approx(2.5)
    assert summary["ff"]["forward"]["fastest_peer_x_floor"] == pytest.approx(15.0)
    result = {"meta": {"date": "d", "cpu": "c", "cores": 2, "threads": 2, "torch": "t",
                       "python": "p", "spikeloop_commit": "abc", "spikeloop_src_modified": False,
                       "loadavg_start": [0.0]},
              "workload": Workload().as_dict(), "libs": ["spikeloop", "norse"],
              "variants": ["ff"], "repeat": 1, "warmup": 0, "rounds": 1, "records": records,
              "summary": summary, "roofline": roof}
    text = speed_bench.markdown(result)
    assert "× floor train / fwd" in text
    assert "| 2.5× / 2.5× |" in text and "| 25.0× / 15.0× |" in text
    assert "train **4.00 ms** (largest term: dW1)" in text
