"""The Xylo simulator's engine (native time loop and torch step loop) against the step function
bit for bit, long inputs against xylosim, memory independent of T, and the chip's limits in
the run's warnings."""

import subprocess
import sys

import pytest
import torch

from spikeloop.chips.xylo import XyloSpec, XyloStream, dynamics, engine, quantize, simulate
from spikeloop.chips.xylo.dynamics import TALLIES, Tally, XyloParams
from spikeloop.chips.xylo.registers import ARRAYS
from spikeloop.chips.xylo.simulator import config_params, limit_warnings
from spikeloop.errors import ParameterError, ShapeError, StateError, WeightRangeError
from spikeloop.network import Network
from spikeloop.nn import CubaLI, CubaLIF, Input, Linear
from test_chip_xylo import random_configs, random_raster, xylosim_run

SPEC = XyloSpec()
needs_native = pytest.mark.skipif(not engine.native_available(),
                                  reason="no C compiler: the native Xylo kernel is not built")
ENGINES = [pytest.param(True, marks=needs_native, id="native"),
           pytest.param(False, id="torch")]


def stacked(configs):
    """One parameter set with a leading axis of networks (as simulate_many builds it)."""
    params = [config_params(c) for c in configs]
    return XyloParams(**{k: torch.stack([getattr(p, k) for p in params]) for k in ARRAYS})


def reference(x, state, p):
    """The step function, step by step (dynamics.run), with its tally."""
    tally = Tally()
    with torch.no_grad():
        rec, final = dynamics.run(x.double(), state, p, tally=tally)
    return rec, final, tally.counts()


def assert_equal_run(records, final, counts, rec, ref_final, ref_counts):
    for name in engine.RECORDS:
        assert torch.equal(records[name].long(), getattr(rec, name).long()), name
    for name, a, b in zip(final._fields, final, ref_final, strict=True):
        assert a.dtype == b.dtype == torch.float64 and torch.equal(a, b), name
    assert counts == ref_counts


# ----------------------------------------------------------------------------- bit-exactness
@pytest.mark.parametrize("native", ENGINES)
def test_engine_equals_the_step_function_on_random_networks(native):
    configs, g = random_configs(48, 16, 14, 8, seed=11)
    x = random_raster(40, 48, 16, g, rate=0.4)
    p = stacked(configs)
    start = dynamics.initial_state(48, 14, 8)
    rec, final, counts = reference(x, start, p)
    records, state, got = engine.run(x, start, p, native=native)
    assert_equal_run(records, state, got, rec, final, counts)
    # the networks reach what they should: saturation, multi-spike counts, caps, aliases
    assert all(counts[name] > 0 for name in TALLIES)
    assert int(rec.z.max()) == SPEC.hidden_cap and int(rec.v.max()) == SPEC.state_max
    assert int(rec.v.min()) == SPEC.state_min and int(x.max()) > SPEC.input_cap
    assert sum(int((c.aliases >= 0).sum()) for c in configs) > 48
    assert any(bool((c.aliases == torch.arange(14)).any()) for c in configs)  # self-aliases
    assert all(bool((c.weights_rec != 0).any()) for c in configs)


@pytest.mark.parametrize("native", ENGINES)
def test_engine_with_one_network_for_a_batch_continues_across_calls_and_chunks(
        native, monkeypatch):
    configs, g = random_configs(3, 16, 20, 8, seed=5)
    p = config_params(configs[1])  # saturating kind, shared by the whole batch
    x = random_raster(90, 4, 16, g, rate=0.5)
    start = dynamics.initial_state(4, 20, 8)
    rec, final, counts = reference(x, start, p)
    monkeypatch.setattr(engine, "CHUNK_VALUES", 7 * 4 * 16)  # chunks of 7 steps inside a call
    parts, state, total = [], start, dict.fromkeys(TALLIES, 0)
    for piece in x.split([1, 30, 2, 57]):  # the state carried from call to call
        records, state, got = engine.run(piece, state, p, native=native)
        parts.append(records)
        total = {k: total[k] + got[k] for k in TALLIES}
    whole = {k: torch.cat([r[k] for r in parts]) for k in engine.RECORDS}
    assert_equal_run(whole, state, total, rec, final, counts)
    assert counts["current"] > 0 and counts["membrane"] > 0 and int(rec.z.max()) > 1


@pytest.mark.parametrize("native", ENGINES)
def test_engine_from_a_mid_run_state_and_with_some_records(native):
    configs, g = random_configs(2, 6, 9, 3, seed=8, kind_cycle=("aliases",))
    p = stacked(configs)
    x = random_raster(50, 2, 6, g, rate=0.6)
    with torch.no_grad():
        _, mid = dynamics.run(x[:20].double(), dynamics.initial_state(2, 9, 3), p)
    rec, final, counts = reference(x[20:], mid, p)
    records, state, got = engine.run(x[20:].float(), mid, p, ("v", "z_out"), native=native)
    assert sorted(records) == ["v", "z_out"]
    assert records["v"].dtype == torch.int32 and records["v"].shape == (30, 2, 9)
    assert torch.equal(records["v"].long(), rec.v.long())
    assert torch.equal(records["z_out"].long(), rec.z_out.long())
    assert got == counts and all(torch.equal(a, b) for a, b in zip(state, final, strict=True))


def test_native_and_torch_engines_agree_through_simulate(monkeypatch):
    configs, g = random_configs(1, 16, 30, 8, seed=2, kind_cycle=("saturating",))
    x = random_raster(120, 2, 16, g, rate=0.5)
    fast = simulate(configs[0], x)
    monkeypatch.setenv("SPIKELOOP_NATIVE", "0")
    assert not engine.native_available()
    slow = simulate(configs[0], x)
    for name in ("spikes", "v", "i", "spikes_out", "v_out", "i_out"):
        assert getattr(fast, name).dtype == torch.int64
        assert torch.equal(getattr(fast, name), getattr(slow, name)), name
    assert fast.clipped == slow.clipped and fast.clipped["current"] > 0
    with pytest.raises(ParameterError,
                       match=r"native Xylo kernel is unavailable.*SPIKELOOP_NATIVE"):
        engine.run(x, fast.state, config_params(configs[0]), native=True)


@needs_native
def test_long_input_is_bit_exact_with_xylosim_and_streams_in_chunks():
    pytest.importorskip("xylosim")
    configs, g = random_configs(3, 16, 24, 8, seed=21)
    for config in configs:
        x = random_raster(3000, 1, 16, g, rate=0.2)[:, 0]
        ref, _ = xylosim_run(config, x)
        stream = XyloStream(config)
        parts = [stream(chunk) for chunk in x.split(700)]
        mine = {"spikes_out": torch.cat([r.spikes_out for r in parts]),
                "spikes": torch.cat([r.spikes for r in parts]),
                "v": torch.cat([r.v for r in parts]), "i0": torch.cat([r.i[..., 0] for r in parts]),
                "i1": torch.cat([r.i[..., 1] for r in parts]),
                "v_out": torch.cat([r.v_out for r in parts]),
                "i_out": torch.cat([r.i_out for r in parts])}
        for key, value in mine.items():
            assert value.numpy().tolist() == ref[key].tolist(), key
        whole = simulate(config, x)
        assert {k: sum(r.clipped[k] for r in parts) for k in TALLIES} == whole.clipped


def test_engine_refuses_what_would_break_the_kernel_and_stays_usable():
    config = random_configs(1, 4, 5, 2, seed=0)[0][0]
    p = config_params(config)
    x = torch.zeros(3, 1, 4)
    state = dynamics.initial_state(1, 5, 2)
    with pytest.raises(ParameterError, match=r"unknown Xylo records \['spikes'\]; known: z, v"):
        engine.run(x, state, p, ("spikes",))
    with pytest.raises(ShapeError, match=r"input must be \[T, B, 4\], got \(3, 1, 5\)"):
        engine.run(torch.zeros(3, 1, 5), state, p)
    with pytest.raises(StateError, match=r"'v' has shape \(2, 5\), the run needs \(1, 5\)"):
        engine.run(x, state._replace(v=torch.zeros(2, 5, dtype=torch.float64)), p)
    with pytest.raises(ShapeError, match=r"weights_out has shape \(5, 3\), expected \(5, 2\)"):
        engine.run(x, state, p._replace(weights_out=torch.zeros(5, 3, dtype=torch.float64)))
    bad = state._replace(v=torch.full((1, 5), 0.5, dtype=torch.float64))
    with pytest.raises(StateError, match=r"'v' must hold integers in -32768\.\.32767"):
        simulate(config, x[:, 0], bad)
    bad = state._replace(z=torch.full((1, 5), 32.0, dtype=torch.float64))
    with pytest.raises(StateError, match=r"'z' must hold integers in 0\.\.31"):
        simulate(config, x[:, 0], bad)
    # an unvalidated config with a threshold 0 (a division by zero in C) is refused, not run
    from dataclasses import replace
    zero = replace(config, threshold=torch.zeros(5, dtype=torch.int64))
    with pytest.raises(ParameterError, match=r"threshold hold values in 0\.\.0, outside 1\.\."):
        simulate(zero, x[:, 0], validate=False)
    edge = state._replace(v=torch.full((1, 5), -32768.0, dtype=torch.float64),
                          z=torch.full((1, 5), 31.0, dtype=torch.float64))
    run = simulate(config, x[:, 0], edge)  # the extremes a chip can hold still run
    assert run.v.shape == (3, 5)
    assert torch.equal(simulate(config, x[:, 0]).v, engine.run(x, state, p)[0]["v"][:, 0].long())


@needs_native
def test_memory_does_not_grow_with_the_number_of_steps():
    """Two million steps without records: the peak resident memory grows by less than 16 MB
    (a byte per step kept would be 2 MB, a Python object per step hundreds of MB)."""
    code = """
import resource, torch
from test_chip_xylo import random_configs
from spikeloop.chips.xylo import dynamics, engine
from spikeloop.chips.xylo.simulator import config_params
config = random_configs(1, 4, 10, 3, seed=0)[0][0]
p = config_params(config)
x = torch.ones(1, 1, 4).expand(2_000_000, 1, 4)  # a view: the input holds no memory either
engine.run(x[:1000], dynamics.initial_state(1, 10, 3), p, ())
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
_, state, counts = engine.run(x, dynamics.initial_state(1, 10, 3), p, ())
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd="tests", check=True)
    assert float(done.stdout.strip().splitlines()[-1]) < 16


@pytest.mark.parametrize("native", ENGINES)
def test_a_sink_takes_the_records_chunk_by_chunk_and_nothing_of_size_t_is_kept(native,
                                                                             monkeypatch):
    """With a sink, the engine writes each chunk's records into buffers of one chunk and hands
    them over: concatenated they are the whole run's records, bit for bit."""
    monkeypatch.setattr(engine, "CHUNK_VALUES", 64)  # 16 steps per chunk of [T, 1, 4]
    (config,), _ = random_configs(1, 4, 10, 3, seed=2)
    p = config_params(config)
    x = random_raster(100, 1, 4, torch.Generator().manual_seed(5), rate=0.5)
    whole, final, counts = engine.run(x, dynamics.initial_state(1, 10, 3), p, native=native)
    got, starts, buffers = {name: [] for name in engine.RECORDS}, [], set()

    def sink(t0, records):
        starts.append(t0)
        for name, value in records.items():
            assert value.shape[0] <= 16
            buffers.add(value.data_ptr())
            got[name].append(value.clone())

    none, final2, counts2 = engine.run(x, dynamics.initial_state(1, 10, 3), p, native=native,
                                       sink=sink)
    assert none == {} and starts == list(range(0, 100, 16)) and counts2 == counts
    assert len(buffers) == len(engine.RECORDS)  # the same buffers, reused for every chunk
    for name in engine.RECORDS:
        assert torch.equal(torch.cat(got[name]), whole[name]), name
    assert all(torch.equal(a, b) for a, b in zip(final, final2, strict=True))


def test_the_backend_streams_records_into_the_observables(monkeypatch):
    """Chunked conversion gives exactly the observables of a one-chunk run."""
    net = small_net()
    x = random_raster(50, 2, 16, torch.Generator().manual_seed(1), rate=0.2).float()
    with torch.no_grad():
        one = net(x, backend="xylo")
        monkeypatch.setattr(engine, "CHUNK_VALUES", 32 * 7)  # 7 steps per chunk
        chunked = net(x, backend="xylo")
    for name in ("hidden", "output"):
        assert torch.equal(one[name].v, chunked[name].v)
        assert one[name].spikes is None or torch.equal(one[name].spikes, chunked[name].spikes)
    assert one.report.resources["hidden_events"] == chunked.report.resources["hidden_events"]


# ----------------------------------------------------------------------------- limits → warnings
def small_net(bias=False, excitatory=False):
    torch.manual_seed(0)
    net = Network({"input": Input(16), "fc1": Linear(16, 8, bias=bias),
                   "hidden": CubaLIF(8, tau_mem=16e-3, tau_syn=4e-3, reset="subtract"),
                   "fc2": Linear(8, 4), "output": CubaLI(4, tau_mem=32e-3, tau_syn=4e-3)})
    if excitatory:  # all input weights positive: currents pile up over steps
        with torch.no_grad():
            net.layers.fc1.weight.abs_()
    return net


def limit_lines(out):
    return [w for w in out.report.warnings if w.startswith("xylo ")]


def test_input_counts_above_the_cap_are_counted_in_the_warnings_once_per_run():
    net = small_net()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 25, (50, 3, 16), generator=g).float()
    with torch.no_grad():
        out = net(x, backend="xylo")
    above = int((x > 15).sum())
    lines = [w for w in out.report.warnings if w.startswith("xylo input")]
    assert lines == [f"xylo input: {above} of {50 * 3 * 16} (step × batch × channel) input "
                     "counts were above the chip's cap of 15 events per channel and step and "
                     "were clamped to 15"]
    assert out.report.resources["clipped"]["input"] == above
    # the clamp is the chip's: the same run with the counts clamped beforehand is identical
    with torch.no_grad():
        same = net(x.clamp(max=15), backend="xylo")
    assert torch.equal(same.output.v, out.output.v)
    assert not [w for w in same.report.warnings if w.startswith("xylo input")]
    # batch 1: no batch in the wording
    with torch.no_grad():
        one = net(x[:10, :1], backend="xylo")
    assert f"{int((x[:10, :1] > 15).sum())} of 160 (step × channel)" in limit_lines(one)[0]


def test_saturation_counts_match_the_simulator_in_chip_qat_and_gradient_runs():
    net = small_net(excitatory=True)
    x = random_raster(60, 2, 16, torch.Generator().manual_seed(4), rate=0.9).float()
    config, _ = quantize(net.graph)
    counts = simulate(config, x).clipped
    assert counts["current"] > 0 and counts["membrane_out"] > 0 and counts["input"] > 0
    with torch.no_grad():
        chip = net(x, backend="xylo")
    qat = net(x, backend={"name": "xylo", "mode": "qat"})
    replayed = net(x, backend="xylo")  # gradients on: the in-the-loop path
    expected = limit_warnings(counts, 60, 2, (16, 8, 4))
    assert any(w.startswith("xylo current: ") for w in expected)
    assert any(w.startswith("xylo membrane_out: ") for w in expected) and len(expected) == 3
    for out in (chip, qat, replayed):
        assert limit_lines(out) == expected
        assert out.report.resources["clipped"] == counts
    replayed.output.v.sum().backward()
    assert net.layers.fc1.weight.grad is not None
    # a run that hits no limit says nothing about limits (valid edge input: the cap itself)
    edge = torch.zeros(5, 1, 16)
    edge[:, :, 3] = 15.0
    with torch.no_grad():
        quiet = small_net()(edge, backend="xylo")
    assert limit_lines(quiet) == [] and set(quiet.report.resources["clipped"].values()) == {0}


def test_biases_clipped_by_quantisation_are_in_the_warnings_and_quantize_still_refuses():
    net = small_net(bias=True)
    with torch.no_grad():
        net.layers.fc1.bias.fill_(50.0)  # far beyond the 16-bit bias register
    with pytest.raises(WeightRangeError, match="bias of neuron"):
        quantize(net.graph)
    for backend in ("xylo", {"name": "xylo", "mode": "qat"}):
        with torch.no_grad():
            out = net(torch.zeros(4, 1, 16), backend=backend)
        lines = [w for w in out.report.warnings if w.startswith("bias: ")]
        assert lines == ["bias: 8 of 8 values (neurons [0, 1, 2, 3, 4, 5, 6, 7]) do not fit the "
                         "chip's register -32768..32767 at the membrane scale set by the "
                         "weights and were clipped to it (quantize() refuses this network)"]
