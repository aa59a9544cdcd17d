"""Every example and benchmark script runs end to end on a tiny setting (the code blocks of
the README and docs/ run in tests/test_docs.py)."""

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, cwd=ROOT):
    proc = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_custom_loop_example(tmp_path):
    out = run("examples/custom_loop.py", "--epochs", "1", "--train-size", "200",
              "--out", str(tmp_path))
    assert "test accuracy" in out and "step-by-step run identical: True" in out
    assert (tmp_path / "raster.png").stat().st_size > 0


def test_yinyang_chip_benchmark_smoke(tmp_path):
    run(str(ROOT / "benchmarks/yinyang_chip.py"), "--config",
        str(ROOT / "configs/yinyang.yaml"), "--seeds", "0", "1", "--hil-epochs", "1",
        "--out", str(tmp_path / "res"), f"run.out_dir={tmp_path}", "data.train_size=60",
        "data.val_size=30", "data.test_size=30", "train.epochs=1", "model.hidden=[8]",
        "train.progress=false")
    result = json.loads((tmp_path / "res.json").read_text())
    assert [r["seed"] for r in result["rows"]] == [0, 1]
    assert set(result["rows"][0]) >= {"sim", "deployed", "in_the_loop"}
    assert result["hil_over_sim_epoch"] > 0
    assert "(c) chip in the loop" in (tmp_path / "res.md").read_text()
    for name in ("chip-table-seed1-sim", "chip-table-seed1-hil"):
        assert (tmp_path / name / "summary.json").exists()
    assert (tmp_path / "chip-table-seed1-hil" / "device_vs_sim_membrane.png").exists()


def test_sparse_backprop_and_long_sequence_benchmarks_smoke(tmp_path):
    run(str(ROOT / "benchmarks/sparse_backprop.py"), "--quick", "--bands", "0.5",
        "--out", str(tmp_path / "sbp"), "--run-dir", str(tmp_path))
    result = json.loads((tmp_path / "sbp.json").read_text())
    assert [(r["variant"], r["band"]) for r in result["speed"]] == [
        ("ff", None), ("ff", 0.5), ("rec", None), ("rec", 0.5)]
    assert all(0 < r["in_band"] <= 1 for r in result["speed"])
    assert all(0 < r["backward_ms"] < r["median_ms"] for r in result["speed"])
    assert [a["band"] for a in result["yinyang"]] == [None, 0.5]
    assert "spoken_digits" not in result  # --quick: speed and Yin-Yang only
    run(str(ROOT / "benchmarks/long_sequences.py"), "--quick", "--out", str(tmp_path / "ls"))
    rows = json.loads((tmp_path / "ls.json").read_text())["rows"]
    assert {(r["mode"], r["T"]) for r in rows} == {
        (m, t) for m in ("default", "checkpoint") for t in (50, 100)}
    assert "memory saved" in (tmp_path / "ls.md").read_text()


def test_speed_benchmark_smoke(tmp_path):
    run(str(ROOT / "benchmarks/speed_bench.py"), "--quick", "--out", str(tmp_path / "speed"))
    result = json.loads((tmp_path / "speed.json").read_text())
    text = (tmp_path / "speed.md").read_text()
    assert "spikeloop" in text and "torch_loop" in text
    runs = {(r["lib"], r["variant"], r["mode"]) for r in result["records"]}
    assert {("spikeloop", v, m) for v in ("ff", "rec") for m in ("train", "forward")} <= runs
    assert all(r.get("median_ms", 0) > 0 for r in result["records"] if r["lib"] == "spikeloop")


def test_delay_rows_of_the_speed_benchmark(tmp_path):
    """The learned-delay rows run and the report states their step time against spikeloop's
    against the 1.5× goal, computed from the rows themselves."""
    run(str(ROOT / "benchmarks/speed_bench.py"), "--quick", "--libs", "spikeloop",
        "spikeloop_delay_axon", "spikeloop_delay_synapse", "--variants", "ff", "--modes",
        "train", "--out", str(tmp_path / "delays"))
    result = json.loads((tmp_path / "delays.json").read_text())
    rows = {r["lib"]: r for r in result["records"]}
    assert set(rows) == {"spikeloop", "spikeloop_delay_axon", "spikeloop_delay_synapse"}
    assert "DelayedLinear per synapse" in rows["spikeloop_delay_synapse"]["notes"]
    text = (tmp_path / "delays.md").read_text()
    for lib in ("spikeloop_delay_axon", "spikeloop_delay_synapse"):
        ratio = rows[lib]["median_ms"] / rows["spikeloop"]["median_ms"]
        met = "met" if ratio <= 1.5 else "not met"
        assert (f"learned delays: {lib} / spikeloop = **{ratio:.3f}×** (goal ≤ 1.5×: {met})"
                in text)


def test_compare_commits_smoke(tmp_path):
    """The same-run comparison of two trees (here the same tree twice) times both and writes
    the ratios."""
    src = str(ROOT / "src")
    out = tmp_path / "compare.json"
    text = run(str(ROOT / "benchmarks/compare_commits.py"), src, src, "--rounds", "1",
               "--workloads", "ff", "--out", str(out))
    rows = json.loads(out.read_text())["rows"]
    assert {r["step"] for r in rows} == {"forward", "train"} and "| ff | train |" in text
    assert all(r["old_ms"] > 0 and r["new_ms"] > 0 and r["ratio"] > 0 for r in rows)


def test_contention_benchmark_smoke(tmp_path):
    run(str(ROOT / "benchmarks/contention.py"), "--quick", "--workloads", "demo",
        "--competitors", "idle", "yes", "--out", str(tmp_path / "c"))
    result = json.loads((tmp_path / "c.json").read_text())
    rows = result["runs"]["auto"]
    assert rows["idle"]["demo"]["value"] > 0 and rows["yes"]["demo"]["value"] > 0
    assert rows["idle"]["demo"]["torch_threads"] >= 1
    assert "| demo |" in (tmp_path / "c.md").read_text()


def test_delay_scatter_benchmark_times_the_accesses_and_states_the_floor(tmp_path):
    """benchmarks/delay_scatter.py on a small workload: every formulation of the per-synapse
    delays' scattered updates and reads runs (the script itself checks that they agree), and
    spikeloop's kernels are timed; the floor is the plain step of the speed JSON minus its input
    projection plus the fastest update and read per synapse event, and the goal's verdict
    follows it."""
    sys.path.insert(0, str(ROOT))
    from benchmarks import delay_scatter

    speed = tmp_path / "speed.json"
    speed.write_text(json.dumps({"records": [
        {"lib": "spikeloop", "mode": "train", "variant": "ff", "T": 20, "batch": 4,
         "median_ms": 1000.0},
        {"lib": "spikeloop", "mode": "train", "variant": "ff", "T": 100, "batch": 64,
         "median_ms": 1.0}]}))
    out = tmp_path / "ds"
    assert delay_scatter.main(["--variant", "ff", "--T", "20", "--batch", "4", "--rounds", "1",
                               "--speed", str(speed), "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".md").read_text() == delay_scatter.markdown(result)
    assert set(result["updates"]) >= {"0", "2"} and set(result["reads"]) >= {"0", "2"}
    pairs = result["synapse_events"]
    assert pairs == result["events"] * 256 > 0
    for row in [*result["updates"].values(), *result["reads"].values()]:
        assert row["ms"] > 0 and row["ns_per_access"] == pytest.approx(row["ms"] * 1e6 / pairs)
    f, k = result["floor"], result["kernels_ms"]
    assert f["plain_step_ms"] == 1000.0  # the record of this workload's T and batch
    update = min(r["ns_per_access"] for r in result["updates"].values())
    read = min(r["ns_per_access"] for r in result["reads"].values())
    plain = k["plain_forward"] + k["plain_backward"]
    assert f["floor_ms"] == pytest.approx(1000.0 - plain + pairs * (update + read) * 1e-6)
    assert f["floor_ratio"] == pytest.approx(f["floor_ms"] / 1000.0)
    assert f["allowed_ns_per_access"] == pytest.approx((500.0 + plain) / (2 * pairs) * 1e6)
    verdict = "out of reach" if f["floor_ratio"] > 1.5 else "within reach"
    assert f"goal ≤ 1.5×: {verdict}" in out.with_suffix(".md").read_text()
    too_slow = {**result, "floor": delay_scatter.floor(result, step_ms=1e-3)}
    assert too_slow["floor"]["floor_ratio"] > 1.5
    assert "out of reach" in delay_scatter.markdown(too_slow)
    no_step = {**result, "floor": delay_scatter.floor(result, step_ms=None)}
    assert "no floor" in delay_scatter.markdown(no_step)


def test_event_step_benchmark_times_the_backends(capsys, tmp_path):
    """benchmarks/event_step.py times training steps on the dense simulator and on the event
    backend's exact and grid engines, on the same batch, and with --epoch an epoch of each
    (steps and epochs --rounds times, the backends taking turns), prints their ratios and
    writes a table of medians."""
    sys.path.insert(0, str(ROOT))
    from benchmarks import event_step

    out = tmp_path / "speed"
    assert event_step.main([str(ROOT / "configs/yinyang_eventprop.yaml"), "data.train_size=20",
                            "data.val_size=10", "data.test_size=10", "train.batch_size=10",
                            "--batch", "3", "--steps", "1", "--epoch", "--rounds", "2",
                            "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = [json.loads(line) for line in lines[:3]]
    assert [r["backend"] for r in rows] == ["sim", "event", "event_grid"]
    assert all(r["s_per_step"] > 0 and r["batch"] == 3 for r in rows)
    assert all(len(r["times_s"]) == 2 for r in rows)  # 2 rounds of 1 step, taking turns
    assert rows[0]["input_events_per_sample"] == rows[1]["input_events_per_sample"] > 0
    assert all(r["spikes_per_sample"] > 0 for r in rows)  # the hidden layer's
    assert rows[2]["spikes_per_sample"] == rows[0]["spikes_per_sample"]  # the same grid
    ratios = [r["s_per_step"] / rows[0]["s_per_step"] for r in rows[1:]]
    assert lines[3] == (f"batch 3: event / sim: {ratios[0]:.2f}× wall, "
                        f"event_grid / sim: {ratios[1]:.2f}× wall")
    result = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".md").read_text() == event_step.markdown(result)
    for key, r in result["epoch"].items():
        assert len(r["epoch_s_all"]) == 2 and r["epoch_s"] == statistics.median(
            r["epoch_s_all"]), key
    assert "event, grid epoch / dense epoch" in out.with_suffix(".md").read_text()


def test_distributed_throughput_tables_are_generated_from_their_results():
    """benchmarks/results/distributed*.md are benchmarks/distributed.py's tables of the JSON next
    to them (what docs/distributed.md includes), and the speed-up column is each row's time
    against the 1 × 1 row of its backend."""
    sys.path.insert(0, str(ROOT))
    from benchmarks import distributed

    for name in ("distributed", "distributed_spoken_digits"):
        result = json.loads((ROOT / f"benchmarks/results/{name}.json").read_text())
        assert (ROOT / f"benchmarks/results/{name}.md").read_text() == \
            distributed.markdown(result)
        assert {(r["processes"], r["threads_per_process"]) for r in result["rows"]} == set(
            distributed.SETTINGS)
    row = {"backend": "sim", "global_batch": 10, "trainable_parameters": 2, "gradient_bytes": 8}
    result = {"machine": "m", "date": "d", "torch": "t", "command": "c", "batches": 3, "rows": [
        row | {"processes": 1, "threads_per_process": 1, "seconds_per_step": 0.04,
               "samples_per_second": 250.0},
        row | {"processes": 2, "threads_per_process": 1, "seconds_per_step": 0.025,
               "samples_per_second": 400.0, "allreduce_ms": 1.5}]}
    lines = distributed.markdown(result).splitlines()
    assert lines[-2] == "| sim | 1 × 1 | 40.0 | 250 | 1.00× | – | – |"
    assert lines[-1] == "| sim | 2 × 1 | 25.0 | 400 | 1.60× | 1.50 ms (0.0 kB) | – |"
