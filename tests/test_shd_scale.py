"""The SHD-scale row of the speed benchmark (``shd_scale``: 700 → 512 recurrent → 20, T = 250
bins of 4 ms, batch 64) on a tiny file in the SHD layout: its data against histograms of the
file's spikes, its sizes through every harness (run_one, roofline, speed_bench), every library
module building it, and the sparse-backprop benchmark's phase timings and part merging."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import roofline, sparse_backprop, speed_bench  # noqa: E402
from benchmarks.speed import run_one, workload  # noqa: E402
from benchmarks.speed.libs import LIBS, load  # noqa: E402
from benchmarks.speed.workload import Workload, at_variant  # noqa: E402

from spikeloop.data import write_shd  # noqa: E402

N_SAMPLES = 70


@pytest.fixture
def shd_file(tmp_path, monkeypatch):
    """A 70-sample SHD-layout file (some spikes past the 1 s window) as the bench's file."""
    rng = np.random.default_rng(0)
    times = [np.sort(rng.random(400) * 1.2) for _ in range(N_SAMPLES)]
    units = [rng.integers(0, 700, 400) for _ in range(N_SAMPLES)]
    path = tmp_path / "s.h5"
    write_shd(path, times, units, [k % 20 for k in range(N_SAMPLES)],
              [k % 3 for k in range(N_SAMPLES)], [f"c{k}" for k in range(20)])
    monkeypatch.setenv("SPIKELOOP_BENCH_SHD", str(path))
    workload.shd_data.cache_clear()
    yield times, units
    workload.shd_data.cache_clear()


def test_at_variant_gives_shd_scale_its_sizes_and_keeps_explicit_ones() -> None:
    wl = at_variant(Workload(), "shd_scale")
    assert (wl.variant, wl.T, wl.hidden, wl.batch, wl.n_in, wl.n_out) == (
        "shd_scale", 250, 512, 64, 700, 20)
    assert wl.recurrent and (wl.dt, wl.tau_mem, wl.tau_syn) == (1e-3, 10e-3, 5e-3)
    assert at_variant(Workload(T=10, batch=4), "shd_scale").as_dict() == Workload(
        variant="shd_scale", T=10, batch=4, hidden=512).as_dict()
    for variant in ("ff", "rec", "shd"):  # the other variants keep every field
        assert at_variant(Workload(T=7), variant) == Workload(variant=variant, T=7)


def test_shd_scale_data_bins_the_same_second_into_4_ms(shd_file) -> None:
    times, units = shd_file
    wl = at_variant(Workload(), "shd_scale")
    x, y = wl.data()
    assert x.shape == (250, 64, 700) and x.dtype == torch.float32
    assert y.tolist() == [k % 20 for k in range(64)]
    k = 5  # one sample's raster is the histogram of its own spikes in 4 ms bins
    t = times[k].astype(np.float16).astype(np.float64)  # the file stores float16 times
    keep = t < 1.0
    want = np.zeros((250, 700))
    np.add.at(want, (np.floor(t[keep] / 0.004 + 1e-9).astype(int), units[k][keep]), 1)
    np.testing.assert_array_equal(x[:, k].numpy(), want)
    # the same spikes as the shd variant's 10 ms bins: equal counts per 20 ms (5 vs 2 bins)
    x_shd, _ = Workload(variant="shd").data()
    assert x_shd.shape == (100, 64, 700)
    torch.testing.assert_close(x.reshape(50, 5, 64, 700).sum(1),
                               x_shd.reshape(50, 2, 64, 700).sum(1), rtol=0, atol=0)
    with pytest.raises(ValueError, match="T = 100"):  # shd itself stays 10 ms bins
        Workload(variant="shd", T=250).data()


def test_shd_scale_weights_are_scaled_by_the_files_density(shd_file) -> None:
    wl = at_variant(Workload(), "shd_scale")
    w = wl.weights()
    assert w["w1"].shape == (512, 700) and w["w2"].shape == (20, 512)
    assert w["wrec"].shape == (512, 512)
    active = float(wl.data()[0].mean()) * 700  # active inputs per step in this file
    # the mean total drive per step is 0.35 whatever the density (3 standard errors)
    stderr = 0.5 / np.sqrt(active) / np.sqrt(w["w1"].numel()) * active
    assert float(w["w1"].mean()) * active == pytest.approx(0.35, abs=3 * stderr)
    rate = Workload(variant="rec").weights()["w1"]  # Bernoulli 5 %: another scale
    assert float(rate.mean()) * 0.05 * 700 == pytest.approx(0.35, abs=0.01)


@pytest.mark.filterwarnings("ignore")  # the peers' own deprecation warnings on import
@pytest.mark.parametrize("lib", [lib for lib in LIBS if lib != "torch_compile"])  # opt-in, slow
def test_every_library_module_builds_the_shd_scale_network(shd_file, lib) -> None:
    """Each module reads its sizes from the workload: T = 12 steps of the file (4 ms sizes
    otherwise), batch 2; the libraries that map the reference dynamics exactly fire like
    spikeloop."""
    module = load(lib)
    try:
        module.version()
    except ImportError:
        pytest.skip(f"{lib} not installed")
    wl = at_variant(Workload(T=12, batch=2), "shd_scale")
    x, _ = wl.data()
    torch.manual_seed(0)
    model = module.build(wl)
    with torch.no_grad():
        logits, spikes = model.forward(model.prepare(x))
    assert logits.shape == (2, 20) and torch.isfinite(logits).all()
    assert spikes.numel() == 12 * 2 * 512
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) >= 700 * 512 + 512 * 512
    if lib in ("torch_loop", "norse", "sinabs", "spikingjelly", "spikeloop_all"):
        ref = load("spikeloop").build(wl)
        with torch.no_grad():
            _, ref_spikes = ref.forward(ref.prepare(x))
        assert float(ref_spikes.sum()) > 0
        assert float(spikes.sum()) == pytest.approx(float(ref_spikes.sum()), rel=0.05)


def test_run_one_and_the_roofline_run_shd_scale_at_its_sizes(shd_file) -> None:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        run_one.main(["--lib", "spikeloop", "--variant", "shd_scale", "--mode", "forward",
                      "--repeat", "1", "--warmup", "0", "--batch", "2", "--threads", "1"])
    (line,) = [ln for ln in buf.getvalue().splitlines() if ln.startswith(run_one.PREFIX)]
    rec = json.loads(line[len(run_one.PREFIX):])
    assert "error" not in rec, rec.get("traceback")
    assert (rec["variant"], rec["T"], rec["hidden"], rec["batch"]) == ("shd_scale", 250, 512, 2)
    assert rec["median_ms"] > 0
    roof = roofline.run(["shd_scale"], Workload(batch=2), threads=1, hidden_density=0.1,
                        quick=True)
    r = roof["variants"]["shd_scale"]
    assert (r["workload"]["T"], r["workload"]["hidden"]) == (250, 512)
    terms = {t["term"]: t for t in r["train"]["terms"]}
    # the recurrent adjoint: T − 1 GEMMs B × H × H
    assert terms["recurrent adjoint"]["work"] == 2.0 * 249 * 2 * 512 * 512
    assert "## shd_scale: T = 250, batch 2, 700 → 512 → 20, recurrent" in roofline.markdown(roof)


def test_speed_bench_titles_the_row_and_refuses_another_T(shd_file) -> None:
    rec = {"variant": "shd_scale", "version": "x", "peak_rss_mb": 300.0, "peak_delta_mb": 1.0,
           "hidden_rate": 0.05, "lib": "spikeloop", "median_ms": 9.0, "min_ms": 8.0,
           "max_ms": 10.0}
    records = [{**rec, "mode": m} for m in ("train", "forward")]
    result = {"meta": {"date": "d", "cpu": "c", "cores": 2, "threads": 2, "torch": "t",
                       "python": "p", "spikeloop_commit": "abc", "spikeloop_src_modified": False,
                       "loadavg_start": [0.0]},
              "workload": Workload().as_dict(), "libs": ["spikeloop"],
              "variants": ["shd_scale"], "repeat": 1, "warmup": 0, "rounds": 1,
              "records": records, "summary": speed_bench.summarize(records, ["shd_scale"]),
              "roofline": None}
    text = speed_bench.markdown(result)
    assert ("## shd_scale: SHD scale: spoken digits in 4 ms bins, T = 250, 700 → 512 "
            "recurrent → 20") in text
    assert "shd_scale" in speed_bench.VARIANTS  # in the default `make bench` variants
    with pytest.raises(SystemExit):
        speed_bench.main(["--variants", "shd_scale", "--T", "50"])


def test_sparse_backprop_times_the_backward_pass_and_merges_parts(shd_file, tmp_path) -> None:
    wl = at_variant(Workload(T=20, batch=2), "shd_scale")
    r = sparse_backprop.step_times(wl, 0.5, repeat=2)
    assert (r["T"], r["hidden"]) == (20, 512)
    assert 0 < r["forward_ms"] < r["median_ms"] and 0 < r["backward_ms"] < r["median_ms"]
    assert r["backward_min_ms"] <= r["backward_ms"] <= r["backward_max_ms"]
    assert 0 < r["in_band"] < 1
    speed = [{"variant": "rec", "band": b, "median_ms": ms, "min_ms": ms, "max_ms": ms,
              "forward_ms": 2.0, "backward_ms": back, "in_band": 1.0, "grad_cosine": 1.0}
             for b, ms, back in ((None, 10.0, 6.0), (0.5, 8.0, 4.0))]
    out = tmp_path / "sbp"
    out.with_suffix(".json").write_text(json.dumps({"speed": speed}))
    sparse_backprop.main(["--quick", "--parts", "yinyang", "--out", str(out),
                          "--run-dir", str(tmp_path / "runs"), "--threads", "1"])
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["speed"] == speed  # kept: only the yin-yang part ran
    assert [a["band"] for a in result["yinyang"]] == [None, 0.5]
    assert set(result["parts_meta"]) == {"yinyang"}
    text = out.with_suffix(".md").read_text()
    # step speed-up 10 / 8 = 1.25×, backward speed-up 6 / 4 = 1.50×
    assert "| rec | 0.5 | 8.0 ms (8.0–8.0) | 1.25× | 2.0 ms | 4.0 ms | 1.50× |" in text
    assert "| Yin-Yang (sim), 1 epochs |" in text and "| grad_band 0.5 |" in text
