"""The Xylo-like integer chip: bit-exactness with xylosim, config round trip, mapping errors,
quantisation, streaming, QAT and the backend."""

import json

import numpy as np
import pytest
import torch

from spikeloop.backends import get_backend
from spikeloop.chips.xylo import (
    XyloConfig,
    XyloSpec,
    XyloStream,
    dynamics,
    map_graph,
    qat_run,
    quantize,
    simulate,
    simulate_many,
)
from spikeloop.chips.xylo.quantize import weight_shifts
from spikeloop.errors import ConfigError, MappingError, WeightRangeError
from spikeloop.network import Network
from spikeloop.network.blocks import multi_time_scale_taus, synnet
from spikeloop.nn import LIF, Conv1d, CubaLI, CubaLIF, DelayedLinear, Flatten, Input, Linear

SPEC = XyloSpec()


# ----------------------------------------------------------------------------- random configs
def random_configs(count, n_in, n, o, seed, kind_cycle=("ordinary", "saturating", "aliases")):
    """``count`` random configs of one size, cycling through kinds of networks."""
    g = torch.Generator().manual_seed(seed)

    def r(lo, hi, *shape):
        return torch.randint(lo, hi + 1, shape, generator=g)

    def sparse(t, p):
        return t * (torch.rand(t.shape, generator=g) < p)

    configs = []
    for k in range(count):
        kind = kind_cycle[k % len(kind_cycle)]
        heavy = kind == "saturating"
        configs.append(XyloConfig(
            weights_in=sparse(r(-128, 127, n_in, n, 2), 0.6),
            weights_rec=sparse(r(-128, 127, n, n, 2), 0.4),
            weights_out=sparse(r(-128, 127, n, o), 0.6),
            threshold=r(1, 32767 if heavy else 3000, n), threshold_out=r(1, 3000, o),
            bias=r(-3000, 3000, n) if heavy else sparse(r(-60, 60, n), 0.5),
            bias_out=sparse(r(-60, 60, o), 0.5),
            dash_mem=r(0, 15, n), dash_mem_out=r(0, 15, o),
            dash_syn=r(1, 15, n, 2), dash_syn_out=r(1, 15, o),
            aliases=torch.where(torch.rand(n, generator=g) < (0.5 if kind == "aliases" else 0.1),
                                r(0, n - 1, n), -1),
            shift_in=int(r(4, 7, 1)) if heavy else int(r(0, 7, 1)),
            shift_rec=int(r(4, 7, 1)) if heavy else int(r(0, 7, 1)),
            shift_out=int(r(0, 7, 1)),
        ))
    return configs, g


def random_raster(steps, batch, n_in, g, rate=0.3):
    counts = torch.randint(0, 20, (steps, batch, n_in), generator=g)
    return counts * (torch.rand(steps, batch, n_in, generator=g) < rate)


def xylosim_run(config, raster):
    """Run the reference simulator; returns its recordings as numpy arrays [T, ...]."""
    from xylosim.v2 import XyloLayer, XyloSynapse

    def synapses(w):
        return [[XyloSynapse(int(post), int(syn), int(w[pre, post, syn]))
                 for post, syn in zip(*np.nonzero(w[pre]), strict=True)]
                for pre in range(w.shape[0])]

    keep = (synapses(config.weights_in.numpy()), synapses(config.weights_rec.numpy()),
            synapses(config.weights_out.numpy()[..., None]))
    layer = XyloLayer(
        *keep, [[int(a)] if a >= 0 else [] for a in config.aliases.tolist()],
        config.threshold.tolist(), config.threshold_out.tolist(), True, config.bias.tolist(),
        config.bias_out.tolist(), config.shift_in, config.shift_rec, config.shift_out,
        config.dash_mem.tolist(), config.dash_mem_out.tolist(), config.dash_syn.tolist(),
        [[d] for d in config.dash_syn_out.tolist()], "ref")
    out = layer.evolve(raster.numpy().astype(np.uint8).tolist())
    return {
        "spikes_out": np.array(out), "spikes": np.array(layer.rec_recurrent_spikes),
        "v": np.array(layer.rec_v_mem).T, "i0": np.array(layer.rec_i_syn).T,
        "i1": np.array(layer.rec_i_syn2).T, "v_out": np.array(layer.rec_v_mem_out).T,
        "i_out": np.array(layer.rec_i_syn_out).T,
    }, keep


def assert_same(run, ref, b=None):
    pick = (lambda t: t[:, b]) if b is not None else (lambda t: t)
    mine = {"spikes_out": pick(run.spikes_out), "spikes": pick(run.spikes), "v": pick(run.v),
            "i0": pick(run.i)[..., 0], "i1": pick(run.i)[..., 1], "v_out": pick(run.v_out),
            "i_out": pick(run.i_out)}
    for key, value in mine.items():
        np.testing.assert_array_equal(value.numpy(), ref[key], err_msg=f"{key} differs")


# ----------------------------------------------------------------------------- bit-exactness
@pytest.mark.parametrize("sizes,count,seed", [((16, 12, 8), 1000, 0), ((5, 40, 3), 60, 1)])
def test_bit_exact_with_xylosim_on_random_networks(sizes, count, seed):
    xylosim = pytest.importorskip("xylosim")
    del xylosim
    n_in, n, o = sizes
    configs, g = random_configs(count, n_in, n, o, seed)
    raster = random_raster(30, count, n_in, g)
    run = simulate_many(configs, raster)  # all networks in one vectorised run
    for b, config in enumerate(configs):
        ref, _ = xylosim_run(config, raster[:, b])
        assert_same(run, ref, b)
    # the networks exercised what they should: saturation, caps, every dash, aliases, shifts
    assert int(run.v.max()) == SPEC.state_max and int(run.v.min()) == SPEC.state_min
    assert int(run.spikes.max()) == SPEC.hidden_cap and int(run.spikes_out.max()) == 1
    assert int(raster.max()) > SPEC.input_cap
    dashes = torch.cat([c.dash_syn.flatten() for c in configs]).unique().tolist()
    assert dashes == list(range(1, 16))
    assert sum(int((c.aliases >= 0).sum()) for c in configs) > count
    assert {c.shift_in for c in configs} == set(range(8))


def test_simulate_many_equals_one_by_one_and_single_runs_match_xylosim():
    configs, g = random_configs(6, 16, 10, 4, seed=3)
    raster = random_raster(25, 6, 16, g, rate=0.5)
    many = simulate_many(configs, raster)
    for b, config in enumerate(configs):
        one = simulate(config, raster[:, b])
        for name in ("spikes", "v", "i", "spikes_out", "v_out", "i_out"):
            assert torch.equal(getattr(one, name), getattr(many, name)[:, b]), name
    pytest.importorskip("xylosim")
    ref, _ = xylosim_run(configs[0], raster[:, 0])
    assert_same(simulate(configs[0], raster[:, 0]), ref)


# ----------------------------------------------------------------------------- streaming
def test_streaming_chunks_equal_one_long_call_and_xylosim_continuing():
    configs, g = random_configs(1, 16, 20, 8, seed=4)
    config = configs[0]
    raster = random_raster(60, 3, 16, g)
    whole = simulate(config, raster)
    stream = XyloStream(config)
    parts = [stream(chunk) for chunk in raster.split([7, 1, 30, 22])]
    for name in ("spikes", "v", "i", "spikes_out", "v_out", "i_out"):
        assert torch.equal(torch.cat([getattr(p, name) for p in parts]), getattr(whole, name))
    assert stream.steps == 60
    stream.reset()
    assert torch.equal(stream(raster[:5]).v, whole.v[:5])
    pytest.importorskip("xylosim")
    ref, _ = xylosim_run(config, raster[:, 0])
    assert_same(simulate(config, raster[:, 0]), ref)


# ----------------------------------------------------------------------------- config
def test_config_json_round_trip_is_exact(tmp_path):
    config, _ = quantize(net_two_layers().graph)
    again = XyloConfig.from_json(config.to_json())
    assert again == config
    path = tmp_path / "xylo.json"
    config.to_json(path)
    assert XyloConfig.from_json(path) == config
    assert json.loads(path.read_text())["format"] == "spikeloop.xylo.config/1"
    with pytest.raises(ConfigError, match="format"):
        XyloConfig.from_dict({"weights_in": []})
    with pytest.raises(ConfigError, match="malformed"):
        XyloConfig.from_json("{not json")


@pytest.mark.parametrize("field,value,error,message", [
    ("weights_in", 128, WeightRangeError, r"weights_in holds 128.*-128\.\.127"),
    ("threshold", 0, MappingError, r"threshold holds 0.*1\.\.32767"),
    ("dash_syn", 0, MappingError, r"dash_syn holds 0.*silent synapse"),
    ("dash_mem", 16, MappingError, r"dash_mem holds 16.*0\.\.15"),
    ("bias", 40000, MappingError, r"bias holds 40000.*-32768\.\.32767"),
    ("shift_rec", 8, MappingError, r"shift_rec = 8.*0\.\.7"),
    ("aliases", 99, MappingError, r"aliases holds 99"),
])
def test_config_validation_names_the_register_and_limit(field, value, error, message):
    config = random_configs(1, 16, 10, 4, seed=5)[0][0]
    data = config.to_dict()
    if isinstance(data[field], list):
        flat = np.array(data[field])
        flat.flat[0] = value
        data[field] = flat.tolist()
    else:
        data[field] = value
    with pytest.raises(error, match=message):
        XyloConfig.from_dict(data).validate()


def test_config_sizes_are_checked():
    config = random_configs(1, 16, 10, 4, seed=6)[0][0]
    data = config.to_dict()
    data["weights_out"] = np.zeros((10, 9), int).tolist()
    data["shapes"]["weights_out"] = [10, 9]
    for key in ("threshold_out", "bias_out", "dash_mem_out", "dash_syn_out"):
        data[key] = [1] * 9
        data["shapes"][key] = [9]
    with pytest.raises(MappingError, match=r"9 output neurons: the chip has 1\.\.8"):
        XyloConfig.from_dict(data).validate()


# ----------------------------------------------------------------------------- mapping
def net_two_layers(seed=0, reset="subtract", out=CubaLI):
    torch.manual_seed(seed)
    readout = out(4, tau_mem=32e-3, tau_syn=4e-3) if out is CubaLI else out(
        4, tau_mem=32e-3, tau_syn=4e-3, reset=reset)
    net = Network({
        "input": Input(16), "fc1": Linear(16, 40),
        "hidden": CubaLIF(40, tau_mem=16e-3, tau_syn=4e-3, recurrent=True, reset=reset),
        "fc2": Linear(40, 30), "h2": CubaLIF(30, tau_mem=8e-3, tau_syn=8e-3, reset=reset),
        "fc3": Linear(30, 4), "output": readout,
    })
    with torch.no_grad():
        net.layers.fc1.weight.mul_(6)
        net.layers.fc2.weight.mul_(4)
    return net


def test_layout_places_layers_and_blocks():
    layout = map_graph(net_two_layers().graph)
    assert [(h.node.name, h.offset, h.size) for h in layout.hidden] == [("hidden", 0, 40),
                                                                          ("h2", 40, 30)]
    blocks = {b.node.name: (b.matrix, b.src_offset, b.dst_offset) for b in layout.projections}
    assert blocks == {"fc1": ("in", 0, 0), "fc2": ("rec", 0, 40), "fc3": ("out", 40, 0),
                      "hidden.recurrent": ("rec", 0, 0)}
    config, _ = quantize(layout)
    rec = config.weights_rec
    assert (rec[:40, 40:, 0] != 0).any() and (rec[40:] == 0).all()
    assert (config.weights_out[:40] == 0).all() and (config.dash_syn == torch.tensor([2, 2])).any()


def _net(*layers):
    return Network(list(layers))


@pytest.mark.parametrize("make,message", [
    (lambda: _net(Input(17), Linear(17, 4), CubaLIF(4), Linear(4, 2), CubaLI(2)),
     "17 input channels exceed the chip's 16"),
    (lambda: _net(Input(4), Linear(4, 1001), CubaLIF(1001), Linear(1001, 2), CubaLI(2)),
     "1001 hidden neurons exceed the chip's 1000"),
    (lambda: _net(Input(4), Linear(4, 5), CubaLIF(5), Linear(5, 9), CubaLI(9)),
     "9 neurons; the chip has 8 output neurons"),
    (lambda: _net(Input(4), Linear(4, 5), LIF(5), Linear(5, 2), CubaLI(2)),
     "is a LIF; the Xylo chip's hidden neurons are current-based"),
    (lambda: _net(Input(4), Linear(4, 2), CubaLI(2)), "at least one hidden layer"),
    (lambda: _net(Input(4), Linear(4, 5), CubaLIF(5, tau_syn=1.2e-3), Linear(5, 2), CubaLI(2)),
     r"tau_syn = 1.2 ms gives dash 0.*silent|dash 0 decays"),
    (lambda: _net(Input(4), Linear(4, 5), CubaLIF(5, tau_mem=70.0), Linear(5, 2), CubaLI(2)),
     "reach 15"),
    (lambda: _net(Input(4), Linear(4, 5), CubaLIF(5, v_leak=0.1), Linear(5, 2), CubaLI(2)),
     "v_leak must be 0"),
    (lambda: _net(Input(4), Linear(4, 5), CubaLIF(5, t_refrac=2e-3), Linear(5, 2), CubaLI(2)),
     "no refractory period"),
    (lambda: _net(Input(4), Linear(4, 5), CubaLIF(5), Linear(5, 2), CubaLIF(2, recurrent=True)),
     "output neurons have no recurrent weights"),
    (lambda: _net(Input((1, 8)), Conv1d(1, 2, 3), Flatten(), Linear(12, 2), CubaLI(2)),
     "input has shape"),
])
def test_networks_that_do_not_fit_name_the_limit(make, message):
    with pytest.raises(MappingError, match=message):
        quantize(make().graph)


@pytest.mark.parametrize("per", ["axon", "synapse"])
def test_a_delayed_projection_is_refused_by_name(per):
    """The chip has no programmable delays (issue 17): a DelayedLinear is refused by name."""
    dt = 1e-3
    net = Network({"input": Input(4), "fc1": Linear(4, 5), "hidden": CubaLIF(5, dt=dt),
                   "fc_delayed": DelayedLinear(5, 2, 4e-3, dt=dt, per=per),
                   "out": CubaLI(2, dt=dt)})
    with pytest.raises(MappingError, match="projection 'fc_delayed' is a DelayedLinear with "
                       "transmission delays \\(up to 4 steps\\); the Xylo chip has no "
                       "programmable delays"):
        quantize(net.graph)
    with pytest.raises(MappingError, match="'fc_delayed' is a DelayedLinear"):
        net(torch.zeros(10, 1, 4), backend="xylo")


# ----------------------------------------------------------------------------- quantisation
@pytest.mark.parametrize("method", ["per_channel", "global"])
def test_quantisation_uses_the_int8_range_and_reports_rounding(method):
    net = net_two_layers()
    config, report = quantize(net.graph, method)
    into = torch.maximum(config.weights_in[..., 0].abs().amax(0),
                         config.weights_rec[..., 0].abs().amax(0))
    if method == "per_channel":
        assert (into == 127).all()  # every hidden neuron uses the full range
    else:
        assert int(into.max()) == 127 and int(into.min()) < 127
        assert report.scale.unique().numel() == 1
    assert set(report.matrices) == {"weights_in", "weights_rec", "weights_out"}
    assert all(m["rel_rms_error"] < 0.02 for m in report.matrices.values())
    taus = {(t["population"], t["parameter"]): (t["dash_min"], round(t["max_rel_error"], 6))
            for t in report.time_constants}
    assert taus[("hidden", "tau_mem")] == (4, 0.0) and taus[("output", "tau_syn")] == (2, 0.0)
    assert "CubaLI" in report.summary()
    # a time constant that is not a power of two times dt is rounded, and reported
    net.layers.hidden.tau_syn.fill_(5e-3)
    _, report = quantize(net.graph, method)
    err = next(t for t in report.time_constants if t["population"] == "hidden"
               and t["parameter"] == "tau_syn")
    assert err["dash_min"] == 2 and err["max_rel_error"] == pytest.approx(0.2)


def test_quantised_chip_follows_the_float_model_when_dynamics_match():
    """With τ = 2^k dt and subtractive reset, the chip's first-layer membrane follows the float
    model's closely for a few steps (dynamics differ only by quantisation and exp vs shift)."""
    net = net_two_layers()
    x = random_raster(30, 4, 16, torch.Generator().manual_seed(0), rate=0.2).clamp(max=1).float()
    with torch.no_grad():
        sim = net(x)
        chip = net(x, backend="xylo")
    v_sim, v_chip = sim["hidden"].v[:3], chip["hidden"].v[:3]
    assert (v_sim - v_chip).abs().max() < 0.05 * v_sim.abs().max()


# ----------------------------------------------------------------------------- weight shifts
def net_small_recurrence(seed=0, rec_factor=1 / 40):
    """Input weights into every hidden neuron ≈ 2^5 × larger than its recurrent weights: with
    shifts 0 the shared σ would leave the recurrent matrix ~2 bits of int8."""
    torch.manual_seed(seed)
    net = Network({
        "input": Input(16), "fc": Linear(16, 24),
        "hidden": CubaLIF(24, tau_mem=8e-3, tau_syn=4e-3, recurrent=True, reset="subtract"),
        "out_fc": Linear(24, 4), "out": CubaLIF(4, tau_mem=16e-3, tau_syn=2e-3),
    })
    with torch.no_grad():
        net.layers.fc.weight.mul_(6)
        net.layers.hidden.recurrent.weight.mul_(6 * rec_factor)
        net.layers.out_fc.weight.mul_(8)
    return net


def test_weight_shift_rule():
    spec = SPEC
    assert weight_shifts(torch.tensor([8.0, 9.0, 2.0]), torch.tensor([1.0, 1.0, 0.0]),
                         "per_channel", spec) == (3, 0)  # median ratio 8.5 → ⌊log2⌋ = 3
    assert weight_shifts(torch.tensor([1.0, 0.0]), torch.tensor([5.0, 3.0]),
                         "per_channel", spec) == (0, 2)  # recurrent 5× larger → s_rec = 2
    assert weight_shifts(torch.tensor([1e3]), torch.tensor([1e-3]), "global", spec) == (7, 0)
    assert weight_shifts(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]),
                         "per_channel", spec) == (0, 0)  # no neuron fed by both matrices
    assert weight_shifts(torch.tensor([1.5]), torch.tensor([1.0]), "per_channel", spec) == (0, 0)


@pytest.mark.parametrize("method", ["per_channel", "global"])
def test_matrix_with_wider_range_gets_a_shift_and_the_smaller_one_keeps_its_bits(method):
    net = net_small_recurrence()
    config, report = quantize(net.graph, method)
    flat, flat_report = quantize(net.graph, method, shifts=False)
    assert config.shift_in == report.shifts["weights_in"] >= 4
    assert config.shift_rec == 0 and config.shift_out == 0 and flat.shift_in == 0
    assert report.matrices["weights_in"]["shift"] == config.shift_in
    assert f"left shift {config.shift_in}" in report.summary()
    # the input matrix still uses the int8 range, the recurrent one gains ~shift_in bits
    assert int(config.weights_in.abs().max()) == 127
    w_rec, w_rec_flat = config.weights_rec.abs().max(), flat.weights_rec.abs().max()
    assert int(w_rec) >= 2 ** (config.shift_in - 1) * int(w_rec_flat)
    rec, rec_flat = report.matrices["weights_rec"], flat_report.matrices["weights_rec"]
    assert rec["zeroed"] < rec_flat["zeroed"]
    assert rec["rel_rms_error"] < rec_flat["rel_rms_error"] / 4
    # the membrane scale grew by 2^shift (thresholds keep 2^shift times the resolution)
    assert torch.allclose(report.scale, flat_report.scale * 2**config.shift_in)
    assert XyloConfig.from_json(config.to_json()) == config


def test_shifted_quantisation_is_bit_exact_between_qat_and_simulator_and_xylosim():
    net = net_small_recurrence(rec_factor=1 / 10)
    g = torch.Generator().manual_seed(7)
    x = random_raster(40, 4, 16, g, rate=0.3).float()
    config, _ = quantize(net.graph)
    assert config.shift_in > 0
    run = simulate(config, x)
    rec, _, tensors = qat_run(map_graph(net.graph), x)
    assert (tensors.shift_in, tensors.shift_rec) == (config.shift_in, config.shift_rec)
    for name, ref in (("z", run.spikes), ("v", run.v), ("i", run.i), ("z_out", run.spikes_out),
                      ("v_out", run.v_out), ("i_out", run.i_out)):
        assert torch.equal(getattr(rec, name).detach().long(), ref), name
    assert int(run.spikes.sum()) > 0 and int(run.spikes_out.sum()) > 0
    # the recurrent (unshifted) weights do reach the membranes: removing them changes the run
    silent = XyloConfig(**{**{f: getattr(config, f) for f in config.__dataclass_fields__},
                           "weights_rec": torch.zeros_like(config.weights_rec)})
    assert not torch.equal(simulate(silent, x).v, run.v)
    pytest.importorskip("xylosim")
    ref, _ = xylosim_run(config, x[:, 0].long())
    assert_same(simulate(config, x[:, 0]), ref)


# ----------------------------------------------------------------------------- QAT
def test_qat_forward_is_bit_exact_with_the_integer_simulator_and_has_gradients():
    net = net_two_layers(out=CubaLIF)
    with torch.no_grad():
        net.layers.fc3.weight.mul_(8)
    g = torch.Generator().manual_seed(1)
    x = random_raster(40, 5, 16, g, rate=0.3).float()
    config, _ = quantize(net.graph)
    run = simulate(config, x)
    rec, _, _ = qat_run(map_graph(net.graph), x)
    for name, ref in (("z", run.spikes), ("v", run.v), ("i", run.i), ("z_out", run.spikes_out),
                      ("v_out", run.v_out), ("i_out", run.i_out)):
        assert torch.equal(getattr(rec, name).detach().long(), ref), name
    assert int(run.spikes.sum()) > 0 and int(run.spikes_out.sum()) > 0
    rec.v_out.sum().backward()
    for name in ("fc1", "fc2", "fc3"):
        assert getattr(net.layers, name).weight.grad.abs().sum() > 0, name


def test_qat_backend_equals_chip_backend_forward_and_trains():
    net = net_two_layers()
    x = random_raster(30, 8, 16, torch.Generator().manual_seed(2), rate=0.2).float()
    with torch.no_grad():
        chip = net(x, backend="xylo")
    qat = net(x, backend={"name": "xylo", "mode": "qat"})
    for name in chip:
        assert torch.equal(qat[name].v.detach(), chip[name].v) if chip[name].v is not None else True
    target = torch.tensor([0, 1, 2, 3] * 2)
    opt = torch.optim.Adam(net.parameters(), lr=2e-2)
    losses = []
    backend = get_backend({"name": "xylo", "mode": "qat"})
    for _ in range(8):
        out = net(x, backend=backend)
        loss = torch.nn.functional.cross_entropy(out.output.v.amax(0), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


# ----------------------------------------------------------------------------- backend
def test_backend_streaming_state_and_in_the_loop_gradients():
    net = net_two_layers()
    x = random_raster(40, 3, 16, torch.Generator().manual_seed(3), rate=0.3).float()
    with torch.no_grad():
        whole = net(x, backend="xylo")
        first = net(x[:15], backend="xylo")
        second = net(x[15:], first.state, backend="xylo")
    for name in ("hidden", "h2", "output"):
        assert torch.equal(torch.cat([first[name].v, second[name].v]), whole[name].v)
    assert whole.report.backend == "xylo" and whole.report.resources["hidden"] == 70
    # in the loop: values are the chip's, gradients flow through the chip model (replayed from
    # the state the chunk started in)
    out = net(x, backend="xylo")
    assert torch.equal(out.output.v.detach(), whole.output.v)
    assert torch.equal(out["hidden"].spikes.detach(), whole["hidden"].spikes)
    out.output.v.sum().backward()
    assert net.layers.fc1.weight.grad.abs().sum() > 0
    again = net(x[15:], first.state, backend="xylo")
    assert torch.equal(again.output.v.detach(), second.output.v)


def test_backend_rejects_bad_input_and_options():
    net = net_two_layers()
    with pytest.raises(ValueError, match="negative"):
        net(-torch.ones(5, 1, 16), backend="xylo")
    with pytest.raises(TypeError, match="integer event counts"):
        net(torch.full((5, 1, 16), 0.5), backend="xylo")
    with pytest.raises(ValueError, match="unknown xylo mode"):
        get_backend({"name": "xylo", "mode": "fpga"})
    with pytest.raises(ValueError, match="unknown quantisation method"):
        get_backend({"name": "xylo", "method": "per_tensor"})


# ----------------------------------------------------------------------------- multi-time-scale
def test_multi_time_scale_block_has_exact_power_of_two_time_constants():
    taus = multi_time_scale_taus(12, dt=1e-3, scales=4)
    assert taus.tolist() == pytest.approx([2e-3] * 3 + [4e-3] * 3 + [8e-3] * 3 + [16e-3] * 3)
    net = synnet(16, (24, 24), 3, dt=1e-3, scales=4)
    config, report = quantize(net.graph)
    assert sorted(config.dash_syn[:24, 0].unique().tolist()) == [1, 2, 3, 4]
    assert all(t["max_rel_error"] < 1e-6 for t in report.time_constants)
    config, _ = quantize(synnet(16, (24,), 3, scales=4, tau_syn2=32e-3).graph)  # 2 currents
    assert config.dash_syn[:, 1].unique().tolist() == [5]
    assert sorted(config.dash_syn[:, 0].unique().tolist()) == [1, 2, 3, 4]


# ----------------------------------------------------------------------------- example
def test_temporal_example_runs_in_quick_mode(monkeypatch, capsys):
    import runpy

    monkeypatch.setattr("sys.argv", ["xylo_temporal.py", "--quick"])
    runpy.run_path("examples/xylo_temporal.py", run_name="__main__")
    out = capsys.readouterr().out
    assert "QAT → integer sim (streaming)" in out and "Xylo quantisation" in out
    assert "QAT forward identical to the integer simulator: True" in out



def test_quantise_refuses_biases_and_thresholds_that_do_not_fit_their_registers():
    torch.manual_seed(0)
    net = Network({"input": Input(16), "fc1": Linear(16, 8, bias=True),
                   "hidden": CubaLIF(8, tau_mem=16e-3, tau_syn=4e-3, reset="subtract"),
                   "fc2": Linear(8, 4), "output": CubaLI(4, tau_mem=32e-3, tau_syn=4e-3)})
    with torch.no_grad():
        net.layers.fc1.bias.fill_(50.0)  # 50 model units of bias: far beyond 16 bits
    with pytest.raises(WeightRangeError, match="bias of neuron"):
        quantize(net.graph)
    with torch.no_grad():
        net.layers.fc1.bias.zero_()
    _, report = quantize(net.graph)  # in range: no error, nothing saturated
    assert report.saturated == {}


# ----------------------------------------------------------------------------- skips (DAGs)
def dag(sizes, inputs, *, recurrent=(), n_in=16, readout=CubaLI, seed=0):
    """A :class:`GraphNetwork`: ``sizes`` (population → neurons, hidden ones then the readout
    last), ``inputs`` (node → sources); every population is fed by the Linear projections
    named ``fc_<source>_<target>`` listed in ``inputs`` (a projection's sources are summed)."""
    from spikeloop.network import GraphNetwork

    torch.manual_seed(seed)
    layers, wiring = {"input": Input(n_in)}, {}
    names = list(sizes)
    for name in names:
        for proj in inputs[name]:
            srcs = inputs[proj]
            width = sizes.get(srcs[0], n_in)
            layers[proj] = Linear(width, sizes[name])
            wiring[proj] = srcs
        if name == names[-1]:
            layers[name] = readout(sizes[name], tau_mem=16e-3, tau_syn=4e-3)
        else:
            layers[name] = CubaLIF(sizes[name], tau_mem=8e-3, tau_syn=4e-3, reset="subtract",
                                   recurrent=name in recurrent)
        wiring[name] = inputs[name]
    net = GraphNetwork(layers, wiring)
    with torch.no_grad():
        for module in net.layers.values():
            if isinstance(module, Linear):
                module.weight.mul_(6)
    return net


# A → B → C → readout, with a weighted skip A → C and A → readout
SKIP = dict(
    sizes={"A": 12, "B": 10, "C": 8, "out": 4},
    inputs={"A": ["fc_in_A"], "fc_in_A": ["input"], "B": ["fc_A_B"], "fc_A_B": ["A"],
            "C": ["fc_B_C", "fc_A_C"], "fc_B_C": ["B"], "fc_A_C": ["A"],
            "out": ["fc_C_out", "fc_A_out"], "fc_C_out": ["C"], "fc_A_out": ["A"]})
# residual: A → B, then one Linear reads the spike sum z_A + z_B (A is B's alias source)
RESIDUAL = dict(
    sizes={"A": 10, "B": 10, "C": 6, "out": 4},
    inputs={"A": ["fc_in_A"], "fc_in_A": ["input"], "B": ["fc_A_B"], "fc_A_B": ["A"],
            "C": ["fc_res_C"], "fc_res_C": ["A", "B"], "out": ["fc_C_out"], "fc_C_out": ["C"]})


def assert_qat_equals_simulator(layout, config, x):
    run = simulate(config, x)
    rec, _, _ = qat_run(layout, x)
    for name, ref in (("z", run.spikes), ("v", run.v), ("i", run.i), ("z_out", run.spikes_out),
                      ("v_out", run.v_out), ("i_out", run.i_out)):
        assert torch.equal(getattr(rec, name).detach().long(), ref), name
    return run


def test_weighted_skip_fills_matrix_blocks_bit_exact_with_qat_and_xylosim():
    net = dag(**SKIP)
    layout = map_graph(net.graph)
    blocks = {b.node.name: (b.matrix, b.src_offset, b.dst_offset) for b in layout.projections}
    assert blocks == {"fc_in_A": ("in", 0, 0), "fc_A_B": ("rec", 0, 12),
                      "fc_B_C": ("rec", 12, 22), "fc_A_C": ("rec", 0, 22),
                      "fc_C_out": ("out", 22, 0), "fc_A_out": ("out", 0, 0)}
    assert layout.aliases == () and layout.hops == {"A": (0, 0), "B": (1, 1), "C": (1, 2),
                                                    "out": (1, 3)}
    config, report = quantize(layout)
    assert (config.weights_rec[:12, 22:30, 0] != 0).any()  # the skip's block
    assert (config.weights_out[:12] != 0).any() and (config.weights_out[12:22] == 0).all()
    assert any("after 1–3 steps" in n for n in report.notes)
    x = random_raster(40, 3, 16, torch.Generator().manual_seed(11), rate=0.3).float()
    run = assert_qat_equals_simulator(layout, config, x)
    assert int(run.spikes[..., 22:30].sum()) > 0 and int(run.spikes[..., :12].sum()) > 0
    with torch.no_grad():  # the backend: chip forward == QAT forward for every population
        chip = net(x, backend="xylo")
        qat = net(x, backend={"name": "xylo", "mode": "qat"})
    for name in ("A", "B", "C", "out"):
        assert torch.equal(chip[name].v, qat[name].v), name
    pytest.importorskip("xylosim")
    ref, _ = xylosim_run(config, x[:, 0].long())
    assert_same(simulate(config, x[:, 0]), ref)


@pytest.mark.parametrize("skip_only,first_step", [(True, 1), (False, 2)])
def test_each_hidden_hop_costs_one_step(skip_only, first_step):
    """A fires at step 0 on an input impulse; C's current starts one step later through the
    skip A → C, two steps later through A → B → C."""
    net = dag(**SKIP)
    with torch.no_grad():
        for module in net.layers.values():
            if isinstance(module, Linear):
                module.weight.copy_(torch.eye(*module.weight.shape) * 40.0)
        net.layers["fc_B_C" if skip_only else "fc_A_C"].weight.zero_()
    config, _ = quantize(net.graph)
    x = torch.zeros(6, 16)
    x[0, :8] = 3
    run = simulate(config, x)
    first = lambda t: int(t.nonzero()[0, 0])  # noqa: E731
    assert first(run.spikes[:, :8]) == 0  # A (neurons 0–11) fires in the step of the input
    assert first(run.spikes[:, 12:20]) == 1  # B (neurons 12–21): A → B is one hop
    assert first(run.i[:, 22:30].abs().sum(-1)) == first_step  # C's synaptic current


def test_residual_sum_is_an_alias_bit_exact_with_qat_xylosim_and_duplicated_weights():
    net = dag(**RESIDUAL, recurrent=("A",))
    layout = map_graph(net.graph)
    assert [(a.source, a.target, a.source_offset, a.target_offset, a.size)
            for a in layout.aliases] == [("A", "B", 0, 10, 10)]
    assert layout.hops["C"] == (1, 2) and layout.hops["out"] == (2, 3)
    blocks = {b.node.name: (b.matrix, b.src_offset, b.dst_offset) for b in layout.projections}
    assert blocks["fc_res_C"] == ("rec", 10, 20)  # the sum's weights sit in the target's rows
    config, report = quantize(layout)
    assert config.aliases.tolist() == list(range(10, 20)) + [-1] * 16
    assert XyloConfig.from_json(config.to_json()) == config
    assert any("alias 'A' → 'B'" in n for n in report.notes)
    x = random_raster(40, 3, 16, torch.Generator().manual_seed(12), rate=0.3).float()
    run = assert_qat_equals_simulator(layout, config, x)
    # the alias computes W (z_A + z_B): the same run as the weights copied into A's rows
    rec = config.weights_rec.clone()
    rec[:10, 20:26] += rec[10:20, 20:26]
    copied = XyloConfig(**{**{f: getattr(config, f) for f in config.__dataclass_fields__},
                           "weights_rec": rec, "aliases": torch.full((26,), -1)})
    ref = simulate(copied, x)
    assert int(run.spikes[..., :10].sum()) > 0 and int(run.spikes[..., 10:20].sum()) > 0
    for name in ("v", "i", "v_out", "i_out"):
        assert torch.equal(getattr(run, name), getattr(ref, name)), name
    own = dynamics.own_counts(run.spikes, config.aliases)
    assert torch.equal(own, ref.spikes) and not torch.equal(run.spikes, ref.spikes)
    with torch.no_grad():  # observables report B's own spikes, not the alias-inflated count
        chip = net(x, backend="xylo")
    assert torch.equal(chip["B"].spikes, ref.spikes[..., 10:20].float())
    pytest.importorskip("xylosim")
    ref, _ = xylosim_run(config, x[:, 0].long())
    assert_same(simulate(config, x[:, 0]), ref)


def test_qat_gradient_flows_through_an_alias():
    """With A → B silenced, A reaches the readout only through the alias sum: its input
    weights still get a gradient (the target's count carries the source's surrogate)."""
    net = dag(**RESIDUAL)
    with torch.no_grad():
        net.layers.fc_A_B.weight.zero_()
    x = random_raster(30, 4, 16, torch.Generator().manual_seed(13), rate=0.3).float()
    out = net(x, backend={"name": "xylo", "mode": "qat"})
    assert int(out["B"].spikes.sum()) == 0 and int(out["A"].spikes.sum()) > 0
    out.output.v.sum().backward()
    assert net.layers.fc_in_A.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("inputs_change,sizes_change,recurrent,message", [
    ({}, {}, ("B",), "'B' is recurrent and the alias target"),
    ({"out": ["fc_C_out", "fc_B_out"], "fc_B_out": ["B"]}, {}, (), "every reader of 'B'"),
    ({"C": ["fc_res_C", "fc_AC"], "fc_AC": ["A", "C2"], "C2": ["fc_in_C2"],
      "fc_in_C2": ["input"]}, {"A": 10, "B": 10, "C2": 10, "C": 6, "out": 4}, (),
     "'A' is summed with 'B' and with 'C2'; the chip has one alias per hidden neuron"),
    ({"fc_res_C": ["A", "B", "A"]}, {}, (), "a population twice in one sum"),
    ({"C": ["fc_x_C"], "fc_x_C": ["input", "A"]}, {"A": 16, "B": 16, "C": 6, "out": 4}, (),
     "input channels have no aliases"),
    ({"out": ["fc_C_out", "fc_in_out"], "fc_in_out": ["input"]}, {}, (), "no input → output"),
])
def test_skips_the_chip_cannot_express_raise_mapping_errors(
        inputs_change, sizes_change, recurrent, message):
    sizes = sizes_change or RESIDUAL["sizes"]
    net = dag(sizes, {**RESIDUAL["inputs"], **inputs_change}, recurrent=recurrent)
    with pytest.raises(MappingError, match=message):
        map_graph(net.graph)


def test_population_fed_by_a_population_without_weights_is_refused():
    with pytest.raises(MappingError, match="fed by 'A' \\(CubaLIF\\) directly"):
        map_graph(_raw_dag().graph)


def _raw_dag():
    """C fed by population A without weights (a GraphNetwork allows it, the chip does not)."""
    from spikeloop.network import GraphNetwork

    layers = {"input": Input(16), "fc_in_A": Linear(16, 10), "A": CubaLIF(10),
              "C": CubaLIF(10), "fc_C_out": Linear(10, 4), "out": CubaLI(4)}
    wiring = {"fc_in_A": ["input"], "A": ["fc_in_A"], "C": ["A"], "fc_C_out": ["C"],
              "out": ["fc_C_out"]}
    return GraphNetwork(layers, wiring)


def test_a_sum_that_holds_part_of_an_inner_sum_is_refused():
    """B carries z_A + z_B (A aliases B); a sum z_B + z_C would also count A's spikes."""
    spec = {"sizes": {"A": 6, "B": 6, "C": 6, "D": 6, "out": 2},
            "inputs": {"A": ["fc_in_A"], "fc_in_A": ["input"], "B": ["fc_AB"], "fc_AB": ["A"],
                       "C": ["fc_sum1"], "fc_sum1": ["A", "B"], "D": ["fc_sum2"],
                       "fc_sum2": ["B", "C"], "out": ["fc_D_out"], "fc_D_out": ["D"]}}
    with pytest.raises(MappingError, match="chained aliases"):
        map_graph(dag(**spec).graph)


# ----------------------------------------------------------------------------- in the loop
def _grads(net):
    return {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None}


def _wavesense():
    """A WaveSense network: its residual stream is an alias chain hidden → res1 → res2."""
    from spikeloop.network.audio_blocks import wavesense

    torch.manual_seed(0)
    net = wavesense(16, 8, (2, 4, 8), 6, 5)
    with torch.no_grad():
        for module in net.layers.values():
            if isinstance(module, Linear):
                module.weight.mul_(4)
    return net


@pytest.mark.parametrize("make", [lambda: net_two_layers(out=CubaLIF),
                                  lambda: dag(**RESIDUAL, recurrent=("A",)), _wavesense])
def test_in_the_loop_replays_the_chip_values_with_exactly_the_qat_gradients(make):
    """Chip in the loop (replay="chip"): every value is the integer simulator's and every
    gradient the QAT model's (the emulator computes what the QAT model computes); the float
    replay's gradients differ (no hop delay, exponential decays)."""
    net = make()
    x = random_raster(30, 4, 16, torch.Generator().manual_seed(21), rate=0.3).float()
    with torch.no_grad():
        chip = net(x, backend="xylo")
    grads = {}
    for name, backend in (("chip", {"name": "xylo"}), ("qat", {"name": "xylo", "mode": "qat"}),
                          ("float", {"name": "xylo", "replay": "float"})):
        net.zero_grad()
        out = net(x, backend=backend)
        for pop in chip:
            for key in ("spikes", "v"):
                ref = getattr(chip[pop], key)
                if ref is not None:
                    assert torch.equal(getattr(out[pop], key).detach(), ref), (name, pop, key)
        (out.output.v.pow(2).sum() + sum(out[p].spikes.sum() for p in chip
                                          if p not in ("input", net.graph.output.name))).backward()
        grads[name] = _grads(net)
    assert grads["chip"].keys() == grads["qat"].keys() and len(grads["chip"]) >= 3
    for k in grads["qat"]:
        assert grads["qat"][k].abs().sum() > 0, k
        torch.testing.assert_close(grads["chip"][k], grads["qat"][k], rtol=1e-6, atol=0)
    assert any(not torch.allclose(grads["float"][k], grads["qat"][k], rtol=0.1)
               for k in grads["qat"])


def test_a_replay_that_misses_the_chips_values_is_an_error():
    """The bridge refuses a chip model whose values are not the observed ones."""
    from spikeloop.backends.inloop import in_the_loop
    from spikeloop.errors import ReplayError
    from spikeloop.observables import Observables

    net = Network({"input": Input(16), "fc": Linear(16, 8), "hidden": CubaLIF(8),
                   "fc2": Linear(8, 2), "out": CubaLI(2)})
    x = random_raster(20, 2, 16, torch.Generator().manual_seed(3), rate=0.3).float()
    with torch.no_grad():
        chip = net(x, backend="xylo")

    def off_by_one(observed):
        return {k: Observables(spikes=o.spikes, v=None if o.v is None else o.v + 1)
                for k, o in observed.items()}

    with pytest.raises(ReplayError, match="population 'hidden' v differs"):
        in_the_loop(net.graph, x, chip, off_by_one)
    assert in_the_loop(net.graph, x, chip, lambda observed: observed)["out"] is not None


def test_replay_evaluates_the_model_at_a_different_chips_states():
    """A chip that differs from the model (here: other biases) is replayed: values are the
    chip's, and since the step's Jacobians do not depend on the bias at fixed states, the
    weight gradients equal the QAT gradients of a model with the chip's biases."""
    from spikeloop.chips.xylo.simulator import config_params
    from spikeloop.dynamics.surrogate import make_surrogate

    config, _ = quantize(dag(**RESIDUAL).graph)
    x = random_raster(25, 3, 16, torch.Generator().manual_seed(22), rate=0.3).double()
    g = torch.Generator().manual_seed(23)
    chip_bias = torch.randint(-400, 400, config.bias.shape, generator=g)
    surrogate = make_surrogate("superspike")

    def run(bias, observed=None):
        p = config_params(XyloConfig(**{**{f: getattr(config, f)
                                           for f in config.__dataclass_fields__},
                                        "bias": bias}))
        weights = [t.clone().requires_grad_() for t in (p.weights_in, p.weights_rec,
                                                         p.weights_out)]
        p = p._replace(weights_in=weights[0], weights_rec=weights[1], weights_out=weights[2])
        state = dynamics.initial_state(3, config.num_hidden, config.num_outputs)
        rec, _ = dynamics.run(x, state, p, surrogate, observed)
        (rec.v_out.pow(2).sum() + rec.z.sum() + rec.v.sum()).backward()
        return rec, [w.grad for w in weights]

    with torch.no_grad():
        chip = dynamics.run(x, dynamics.initial_state(3, config.num_hidden, config.num_outputs),
                            config_params(XyloConfig(**{**{f: getattr(config, f) for f in
                                                           config.__dataclass_fields__},
                                                        "bias": chip_bias})))[0]
    model, _ = run(config.bias)
    assert not torch.equal(model.v.detach(), chip.v)  # the model alone would differ
    replayed, grads = run(config.bias, chip)
    for m, c in zip(replayed, chip, strict=True):
        assert torch.equal(m.detach(), c)
    _, reference = run(chip_bias)
    for got, ref in zip(grads, reference, strict=True):
        assert ref.abs().sum() > 0
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=0)


def test_replay_option_is_checked():
    with pytest.raises(ValueError, match="unknown in-the-loop replay"):
        get_backend({"name": "xylo", "replay": "analog"})


# ----------------------------------------------------------------------------- registers
def test_one_register_list_for_config_tensors_and_step_parameters():
    from dataclasses import fields

    from spikeloop.chips.xylo.dynamics import XyloParams
    from spikeloop.chips.xylo.quantize import ChipTensors, chip_tensors, to_config
    from spikeloop.chips.xylo.registers import ARRAYS, Registers
    from spikeloop.chips.xylo.simulator import register_params

    names = [f.name for f in fields(Registers)]
    for record in (XyloConfig, ChipTensors):
        assert [f.name for f in fields(record)][:len(names)] == names
    assert XyloParams._fields[:len(ARRAYS)] == ARRAYS
    layout = map_graph(dag(**RESIDUAL).graph)
    tensors = chip_tensors(layout)
    config = to_config(tensors)
    assert config == quantize(layout)[0]
    for a, b in zip(register_params(tensors), register_params(config), strict=True):
        assert torch.equal(a.detach(), b) if isinstance(a, torch.Tensor) else a == b
    # every register's shape is checked (from the one list of dimensions)
    for name in ARRAYS:
        bad = {f: getattr(config, f) for f in config.__dataclass_fields__}
        dim = 0 if name == "weights_out" else -1  # (sizes come from weights_in/_rec/_out)
        bad[name] = torch.cat([bad[name], bad[name].narrow(dim, 0, 1)], dim)
        with pytest.raises(MappingError, match=f"XyloConfig.{name} has shape"):
            XyloConfig(**bad).validate()


# ----------------------------------------------------------------------------- two currents
def two_current_net(seed=0, tau_syn2=16e-3, n=12):
    from spikeloop.nn import CubaLIF2

    torch.manual_seed(seed)
    net = Network({
        "input": Input(16), "fc1": Linear(16, 2 * n),
        "hidden": CubaLIF2(n, tau_mem=8e-3, tau_syn=4e-3, tau_syn2=tau_syn2, reset="subtract"),
        "fc2": Linear(n, 4), "output": CubaLI(4, tau_mem=32e-3, tau_syn=4e-3),
    })
    with torch.no_grad():
        net.layers.fc1.weight.mul_(6)
        net.layers.fc1.weight[n:].mul_(0.5)  # the slow current's weights: another range
    return net


def test_two_current_neuron_with_equal_time_constants_is_a_cuba_lif():
    n = 10
    net = two_current_net(tau_syn2=4e-3, n=n)
    ref = Network({"input": Input(16), "fc1": Linear(16, n),
                   "hidden": CubaLIF(n, tau_mem=8e-3, tau_syn=4e-3, reset="subtract"),
                   "fc2": Linear(n, 4), "output": CubaLI(4, tau_mem=32e-3, tau_syn=4e-3)})
    with torch.no_grad():
        w = net.layers.fc1.weight
        ref.layers.fc1.weight.copy_(w[:n] + w[n:])
        ref.layers.fc2.weight.copy_(net.layers.fc2.weight)
    x = random_raster(50, 3, 16, torch.Generator().manual_seed(31), rate=0.3).clamp(max=1).float()
    a, b = net(x), ref(x)
    assert int(a["hidden"].spikes.sum()) > 0
    assert torch.equal(a["hidden"].spikes, b["hidden"].spikes)
    torch.testing.assert_close(a["hidden"].v, b["hidden"].v, rtol=0, atol=1e-5)


def test_second_synaptic_current_is_mapped_bit_exact_with_qat_and_xylosim():
    n = 12
    net = two_current_net(n=n)
    layout = map_graph(net.graph)
    assert [b.synapses for b in layout.projections if b.node.name == "fc1"] == [2]
    config, report = quantize(layout)
    assert config.dash_syn[:, 0].tolist() == [2] * n and config.dash_syn[:, 1].tolist() == [4] * n
    assert (config.weights_in[..., 1] != 0).sum() > 0.9 * 16 * n  # synapse 1 is used
    assert int(config.weights_in.abs().amax((0, 2)).min()) == 127  # σ from both synapses
    assert {t["parameter"] for t in report.time_constants if t["population"] == "hidden"} == {
        "tau_mem", "tau_syn", "tau_syn2"}
    x = random_raster(40, 3, 16, torch.Generator().manual_seed(32), rate=0.3).float()
    run = assert_qat_equals_simulator(layout, config, x)
    assert int(run.i[..., 1].abs().sum()) > 0 and int(run.spikes.sum()) > 0
    # the chip follows the float model for the first steps (dynamics differ by quantisation
    # and the exp vs shift decay); without synapse 1 it would not
    xb = x.clamp(max=1)
    with torch.no_grad():
        sim, chip = net(xb), net(xb, backend="xylo")
        net.layers.fc1.weight[n:].zero_()
        fast_only = net(xb, backend="xylo")
    # (neurons that fired in the first steps are left out: the simulator records v before
    # the reset, the chip after the subtraction)
    quiet = (sim["hidden"].spikes[:3] + chip["hidden"].spikes[:3]).sum(0) == 0
    v_sim = sim["hidden"].v[:3][:, quiet]
    assert quiet.sum() > 20
    assert (v_sim - chip["hidden"].v[:3][:, quiet]).abs().max() < 0.08 * v_sim.abs().max()
    assert (v_sim - fast_only["hidden"].v[:3][:, quiet]).abs().max() > 0.5 * v_sim.abs().max()
    net = two_current_net(n=n)  # QAT and the float in-the-loop replay train both synapses
    for backend in ({"name": "xylo", "mode": "qat"}, {"name": "xylo", "replay": "float"}):
        net.zero_grad()
        net(xb, backend=backend).output.v.pow(2).sum().backward()
        assert net.layers.fc1.weight.grad[n:].abs().sum() > 0, backend
    pytest.importorskip("xylosim")
    ref, _ = xylosim_run(config, x[:, 0].long())
    assert_same(simulate(config, x[:, 0]), ref)


def test_two_current_population_errors():
    from spikeloop.errors import ParameterError, ShapeError
    from spikeloop.nn import CubaLIF2

    with pytest.raises(ParameterError, match="no recurrent projection"):
        CubaLIF2(4, recurrent=True)
    with pytest.raises(ShapeError, match="takes 2 × 4 = 8 inputs"):
        Network({"input": Input(16), "fc": Linear(16, 4), "h": CubaLIF2(4),
                 "fc2": Linear(4, 2), "out": CubaLI(2)})
    with pytest.raises(MappingError, match=r"tau_syn2 = 1.2 ms gives dash 0"):
        quantize(two_current_net(tau_syn2=1.2e-3).graph)


def test_a_deferred_replay_runs_only_in_the_backward_pass_with_the_same_gradients():
    """xylo's in-the-loop replay (a step-by-step integer model) is deferred: a forward pass
    with gradients enabled costs only the chip's run; the backward pass replays and gives the
    gradients of the immediate replay, and checks the replay there."""
    from spikeloop.backends.inloop import in_the_loop
    from spikeloop.errors import ReplayError
    from spikeloop.observables import Observables

    net = Network({"input": Input(16), "fc": Linear(16, 8), "hidden": CubaLIF(8),
                   "fc2": Linear(8, 2), "out": CubaLI(2)})
    x = random_raster(20, 2, 16, torch.Generator().manual_seed(3), rate=0.3).float()
    with torch.no_grad():
        chip = net(x, backend="xylo")
    calls = []

    def replay(observed):  # the model at the chip's values: the simulator's populations
        calls.append(1)
        return dict(in_the_loop(net.graph, x, chip).populations)

    immediate = in_the_loop(net.graph, x, chip, replay)
    assert len(calls) == 1
    deferred = in_the_loop(net.graph, x, chip, replay, deferred=True)
    assert len(calls) == 1  # not replayed in the forward pass
    for name in ("hidden", "out"):
        assert torch.equal(deferred[name].v, chip[name].v)
    params = [p for p in net.parameters()]
    want = torch.autograd.grad(immediate["out"].v.sum() + immediate["hidden"].spikes.sum(),
                               params)
    got = torch.autograd.grad(deferred["out"].v.sum() + deferred["hidden"].spikes.sum(), params)
    assert len(calls) == 2
    for a, b in zip(want, got, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    def off_by_one(observed):
        return {k: Observables(spikes=o.spikes, v=None if o.v is None else o.v + 1)
                for k, o in observed.items()}

    wrong = in_the_loop(net.graph, x, chip, off_by_one, deferred=True)  # no error yet
    with pytest.raises(ReplayError, match="population 'hidden' v differs"):
        wrong["out"].v.sum().backward()
    for p in params:
        p.requires_grad_(False)
    assert in_the_loop(net.graph, x, chip, replay, deferred=True) is chip  # nothing to learn
