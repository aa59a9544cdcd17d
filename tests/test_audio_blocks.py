"""Audio models for the Xylo-like chip: WaveSense, the SynNet pyramid, the recurrent LIF
baseline, their chip mapping (alias chains for nested residual sums), resources and configs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeloop.chips.xylo import dynamics, map_graph, qat_run, quantize, resource_use, simulate
from spikeloop.chips.xylo.config import XyloConfig
from spikeloop.errors import ArgumentTypeError, ConfigError, MappingError, ParameterError
from spikeloop.network.audio_blocks import recurrent_lif, wavesense, wavesense_neurons
from spikeloop.network.blocks import multi_time_scale_taus, pyramid_taus, synnet
from spikeloop.nn import CubaLI, CubaLIF, CubaLIF2, Linear
from spikeloop.training import Trainer, build_network, load_config
from spikeloop.training.experiment import DATASETS
from test_chip_xylo import assert_same, xylosim_run  # the reference simulator's harness

ROOT = Path(__file__).resolve().parents[1]


def raster(T, B, seed, rate=0.3):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, 16, generator=g) < rate).float()


def small(dilations=(2, 4, 8), gain=4.0, seed=0, **kw):
    torch.manual_seed(seed)
    net = wavesense(16, 8, dilations, 6, 5, **kw)
    with torch.no_grad():
        for m in net.layers.values():
            if isinstance(m, Linear):
                m.weight.mul_(gain)
    return net


# ----------------------------------------------------------------------------- structure
def test_wavesense_layers_shapes_and_counts():
    net = small()
    assert list(net.layers) == [
        "input", "fc_in", "hidden",
        "dil1", "wave1", "res_fc1", "res1", "skip_fc1", "skip1",
        "dil2", "wave2", "res_fc2", "res2", "skip_fc2", "skip2",
        "dil3", "wave3", "skip_fc3", "skip3", "readout_fc", "readout"]
    assert net.inputs["dil3"] == ("hidden", "res1", "res2")  # x₃ = z_hidden + z_res1 + z_res2
    assert net.inputs["readout_fc"] == ("skip1", "skip2", "skip3")
    assert isinstance(net.layers.wave2, CubaLIF2) and isinstance(net.layers.readout, CubaLI)
    assert net.layers.dil2.weight.shape == (16, 8)  # C → 2C: current 0 and current 1
    out = net(raster(12, 3, 0))
    assert out.output.v.shape == (12, 3, 5)
    for name, size in (("hidden", 8), ("wave1", 8), ("res2", 8), ("skip3", 6)):
        assert out[name].spikes.shape == (12, 3, size), name
    assert out["hidden"].spikes.sum() > 0 and out["wave3"].spikes.sum() > 0
    n = sum(m.num_neurons for m in net.graph.nodes if m.kind == "population") - 5
    assert n == wavesense_neurons(8, 3, 6) == 8 + 3 * (16 + 6) - 8
    # parameters: in·C + n(2C² + C·S) + (n − 1)C² + S·O
    assert sum(p.numel() for p in net.parameters()) == 16 * 8 + 3 * (128 + 48) + 2 * 64 + 30
    assert isinstance(small(readout="lif").layers.readout, CubaLIF)


def test_each_dilation_has_two_exact_power_of_two_time_constants():
    dt = 10e-3
    net = wavesense(16, 4, (1, 2, 8, 32), 4, 3, dt=dt, tau_syn=4 * dt)
    for k, d in enumerate((1, 2, 8, 32), start=1):
        wave = net.layers[f"wave{k}"]
        tau0, tau1 = float(wave.tau_syn.unique()), float(wave.tau_syn2.unique())
        assert tau0 == pytest.approx(4 * dt, rel=1e-7) and tau1 == pytest.approx(4 * d * dt,
                                                                                 rel=1e-7)
        for tau in (tau0, tau1):
            assert math.log2(tau / dt) == pytest.approx(round(math.log2(tau / dt)), abs=1e-6)
    layout = map_graph(net.graph)
    config, report = quantize(layout)
    for h in layout.hidden:
        if h.node.name.startswith("wave"):
            d = (1, 2, 8, 32)[int(h.node.name[4:]) - 1]
            dash = config.dash_syn[h.offset:h.offset + h.size]
            assert dash[:, 0].unique().tolist() == [2]
            assert dash[:, 1].unique().tolist() == [2 + int(math.log2(d))]
    assert all(t["max_rel_error"] < 1e-6 for t in report.time_constants)  # float32 τ


# ----------------------------------------------------------------------------- chip
def test_wavesense_maps_with_alias_chains_and_qat_equals_the_integer_simulator():
    net = small()
    layout = map_graph(net.graph)
    assert layout.num_hidden == 8 + 3 * 22 - 8
    assert [(a.source, a.target) for a in layout.aliases] == [
        ("hidden", "res1"), ("res1", "res2"), ("skip1", "skip3"), ("skip2", "skip3")]
    assert layout.hops["readout"] == (3, 7)
    config, _ = quantize(layout)
    x = raster(40, 3, 1)
    run = simulate(config, x)
    rec, _, _ = qat_run(layout, x)
    for name, ref in (("z", run.spikes), ("v", run.v), ("i", run.i), ("z_out", run.spikes_out),
                      ("v_out", run.v_out), ("i_out", run.i_out)):
        assert torch.equal(rec._asdict()[name].detach().long(), ref), name
    offs = {h.node.name: h.offset for h in layout.hidden}
    own = dynamics.own_counts(run.spikes, config.aliases)
    for name in ("hidden", "res1", "res2", "skip1", "skip2", "skip3"):  # every link is used
        assert int(own[..., offs[name]:offs[name] + 6].sum()) > 0, name
    # the chain computes x₃ = z_hidden + z_res1 + z_res2: the same run as res2's weights copied
    # into res1's and hidden's rows (and res1's into hidden's, skip3's into the skips')
    rec_w, out_w = config.weights_rec.clone(), config.weights_out.clone()
    C, S = 8, 6
    for tgt, srcs in (("res1", ("hidden",)), ("res2", ("hidden", "res1"))):
        for s in srcs:
            rec_w[offs[s]:offs[s] + C] += config.weights_rec[offs[tgt]:offs[tgt] + C]
    for s in ("skip1", "skip2"):
        out_w[offs[s]:offs[s] + S] += config.weights_out[offs["skip3"]:offs["skip3"] + S]
    fields = {f: getattr(config, f) for f in config.__dataclass_fields__}
    copied = XyloConfig(**fields | {"weights_rec": rec_w, "weights_out": out_w,
                                    "aliases": torch.full_like(config.aliases, -1)})
    ref = simulate(copied, x)
    for name in ("v", "i", "v_out", "i_out"):
        assert torch.equal(getattr(run, name), getattr(ref, name)), name
    assert torch.equal(dynamics.own_counts(run.spikes, config.aliases), ref.spikes)
    with torch.no_grad():  # the backend: chip forward == QAT forward, own spike counts
        chip = net(x, backend="xylo")
        qat = net(x, backend={"name": "xylo", "mode": "qat"})
    for name in ("hidden", "res1", "res2", "skip3", "readout"):
        assert torch.equal(chip[name].v, qat[name].v), name
    assert torch.equal(chip["res1"].spikes, ref.spikes[..., offs["res1"]:offs["res1"] + C].float())
    pytest.importorskip("xylosim")  # the independent reference runs the chain the same way
    ref, _ = xylosim_run(config, x[:, 0].long())
    assert_same(simulate(config, x[:, 0]), ref)


def test_qat_gradient_reaches_the_start_of_an_alias_chain():
    """Only the chain carries ``hidden``'s spikes to block 3: with block 1 and 2 silenced,
    ``fc_in`` still gets a gradient through ``hidden → res1 → res2 → dil3``."""
    net = small()
    with torch.no_grad():
        for name in ("dil1", "dil2"):
            net.layers[name].weight.zero_()
    out = net(raster(30, 2, 2), backend={"name": "xylo", "mode": "qat"})
    assert int(out["res1"].spikes.sum()) == 0 and int(out["res2"].spikes.sum()) == 0
    assert int(out["wave3"].spikes.sum()) > 0
    out.output.v.sum().backward()
    assert net.layers.fc_in.weight.grad.abs().sum() > 0


def test_a_wavesense_over_1000_hidden_neurons_names_the_limit():
    net = wavesense(16, 64, (2, 4, 8, 16, 32), 64, 5)  # 64 + 5·192 − 64 = 960: fits
    assert map_graph(net.graph).num_hidden == 960
    big = wavesense(16, 64, (2, 4, 8, 16, 32), 80, 5)  # 64 + 5·208 − 64 = 1040
    with pytest.raises(MappingError, match="1040 hidden neurons exceed the chip's 1000"):
        map_graph(big.graph)


def test_nested_sums_that_are_not_chains_are_refused():
    # res1's readers must read its whole sum: a projection reading res1 + res2 without hidden
    net = small(dilations=(2, 4, 8))
    net.inputs["dil3"] = ("res1", "res2")
    with pytest.raises(MappingError, match=r"chained aliases .* only when the outer sum"):
        map_graph(net.graph)


def test_resource_use_counts_neurons_currents_weights_and_aliases():
    net = wavesense(16, 16, (2, 4, 8, 16), 32, 5)
    config, report = quantize(net.graph)
    use = resource_use(config)
    assert use["hidden"] == 256 and use["outputs"] == 5 and use["inputs"] == 16
    assert use["synapses"] == {"none": 0, "one": 256 - 64, "two": 64}  # the four wave layers
    assert use["aliases"] == 3 * 16 + 3 * 32  # hidden → res1 → res2 → res3; skip1–3 → skip4
    # every float weight is non-zero: the matrices hold the 5280 parameters, less those that
    # quantisation rounded to 0
    m = report.matrices
    assert [int(m[k]["nonzero"]) for k in ("weights_in", "weights_rec", "weights_out")] == [
        16 * 16, 5280 - 16 * 16 - 32 * 5, 32 * 5]
    kept = {k: int(m[f"weights_{k}"]["nonzero"] - m[f"weights_{k}"]["zeroed"])
            for k in ("in", "rec", "out")}
    assert use["weights"] == kept | {"total": sum(kept.values())}
    assert 0 < sum(int(m[k]["zeroed"]) for k in m) < 100
    assert use["fan_in_max"] == 32  # a skip neuron (or the wave neurons' two currents): 2C
    lif = recurrent_lif(16, 256, 5)
    assert map_graph(lif.graph).num_hidden == 256
    assert resource_use(quantize(lif.graph)[0])["synapses"]["two"] == 0


# ----------------------------------------------------------------------------- learning
def order_task(n, seed, T=16, gap=6):
    """Two classes with the same events in a different order: a burst on channels 0–7 then,
    ``gap`` steps later, on 8–15 (class 0), or the reverse (class 1); plus background
    events."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = (torch.rand(T, n, 16, generator=g) < 0.03).float()
    first = torch.where(y[:, None] == 0, torch.arange(16) < 8, torch.arange(16) >= 8).float()
    t0 = torch.randint(1, 4, (n,), generator=g)
    for i in range(n):
        burst = (torch.rand(2, 3, 16, generator=g) < 0.6).float()
        x[t0[i]:t0[i] + 3, i] += burst[0] * first[i]
        x[t0[i] + gap:t0[i] + gap + 3, i] += burst[1] * (1 - first[i])
    return x.clamp(max=1), y


def test_wavesense_learns_a_temporal_order_task_and_keeps_it_on_the_chip():
    torch.manual_seed(0)
    net = wavesense(16, 8, (2, 4), 8, 2)
    with torch.no_grad():
        for m in net.layers.values():
            if isinstance(m, Linear):
                m.weight.mul_(4)
    x, y = order_task(64, 0)
    xt, yt = order_task(128, 1)
    opt = torch.optim.Adam(net.parameters(), lr=4e-2)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(net(x).output.v[-8:].mean(0) * 5, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-3:]) / 3 < 0.3 * losses[0]  # measured: 0.97 → 0.09 (last three)
    with torch.no_grad():
        acc = float((net(xt).output.v[-8:].mean(0).argmax(-1) == yt).float().mean())
        chip = net(xt, backend="xylo").output.v[-8:].mean(0).argmax(-1)
    assert acc > 0.85  # measured 0.98; chance 0.5 (the classes' event counts are the same)
    assert float((chip == yt).float().mean()) > 0.8  # measured 0.90: quantised, hop delays


# ----------------------------------------------------------------------------- SynNet
def test_synnet_pyramid_in_physical_units():
    assert pyramid_taus(10e-3, 4) == pytest.approx((0.02, 0.04, 0.08, 0.16))
    assert pyramid_taus(1e-3, 4) == pytest.approx((2e-3, 4e-3, 8e-3, 16e-3))  # 2^j ms, j = 1…4
    taus = multi_time_scale_taus(8, 10e-3, taus=[0.02, 0.08])
    assert taus.tolist() == pytest.approx([0.02] * 4 + [0.08] * 4)
    net = synnet(16, (32,), 5, dt=10e-3, taus=[0.02, 0.04, 0.08, 0.16])
    config, report = quantize(net.graph)
    assert config.dash_syn[:32, 0].tolist() == [1] * 8 + [2] * 8 + [3] * 8 + [4] * 8
    assert all(t["max_rel_error"] < 1e-6 for t in report.time_constants)
    old = synnet(16, (32,), 5, dt=10e-3)  # scales = 4, base = 2: the same pyramid
    assert torch.equal(old.layers.hidden0.tau_syn, net.layers.hidden0.tau_syn)
    with pytest.raises(ParameterError, match=r"taus\[1\] = 30 ms is not a power of two"):
        synnet(16, (32,), 5, dt=10e-3, taus=[0.02, 0.03])
    with pytest.raises(ParameterError, match=r"taus\[0\] = 10 ms is 2\^0·dt; the chip needs"):
        synnet(16, (32,), 5, dt=10e-3, taus=[0.01])
    with pytest.raises(ParameterError, match="scales = 3 but 2 taus"):
        synnet(16, (32,), 5, dt=10e-3, taus=[0.02, 0.04], scales=3)
    with pytest.raises(ArgumentTypeError, match="taus must be a non-empty list"):
        synnet(16, (32,), 5, dt=10e-3, taus=0.02)


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name,kind,params", [("wavesense", CubaLIF2, 5280),
                                              ("synnet", CubaLIF, 16 * 128 + 128 * 128 + 640),
                                              ("lif", CubaLIF, 16 * 256 + 256 * 256 + 1280)])
def test_kws_configs_build_equal_sized_chip_models(name, kind, params):
    cfg = load_config(ROOT / "configs" / f"kws_{name}.yaml")
    assert cfg.data.dataset == "keywords" and cfg.data.dt == 10e-3
    net = build_network(cfg.model, 16, 5, cfg.data.dt, torch.Generator().manual_seed(0))
    assert any(isinstance(m, kind) for m in net.layers.values())
    assert sum(p.numel() for p in net.parameters()) == params
    layout = map_graph(net.graph)
    assert layout.num_hidden == 256 and layout.num_outputs == 5
    # front-end-like input: Poisson counts per 10 ms bin, one event per bin and channel on
    # average (a spoken word's bins; the front end gives 5 per bin at −26 dBFS in band)
    x = torch.poisson(torch.ones(30, 4, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(x)
    assert out.output.v.shape == (30, 4, 5)
    silent = [h.node.name for h in layout.hidden if out[h.node.name].spikes.sum() == 0]
    assert not silent  # the configs' init: every population spikes on such input


def _fake_keywords(cfg):
    """16 features in [0, 1] whose class (of 5) is a strong channel; rate-coded by the config."""
    rng = np.random.default_rng(0)
    out = {}
    for split, n in (("train", cfg.train_size), ("val", cfg.val_size), ("test", cfg.test_size)):
        y = rng.integers(0, 5, n)
        x = rng.random((n, 16)) * 0.2
        x[np.arange(n), 3 * y] = 0.9
        out[split] = (x, y)
    return out


def test_kws_wavesense_config_trains_on_the_chip_model_through_the_trainer(tmp_path):
    if "fake_keywords16" not in DATASETS.names():
        DATASETS.add("fake_keywords16", _fake_keywords)
    cfg = load_config(ROOT / "configs" / "kws_wavesense.yaml", [
        f"run.out_dir={tmp_path}", "train.progress=false", "run.threads=1",
        "data.dataset=fake_keywords16", "data.encoder={name: rate, max_rate: 50.0}",
        "data.train_size=32", "data.val_size=16", "data.test_size=16", "data.duration=0.1",
        "train.epochs=1", "train.batch_size=32", "train.backend={name: xylo, mode: qat}",
        # larger first weights: the rate-coded fake data has one event per bin at most
        "model.init.input_std=1.0", "model.init.hidden_std=0.6"])
    summary = Trainer(cfg).fit()
    assert summary["parameters"] == 5280 and summary["backend"] == {"name": "xylo", "mode": "qat"}
    assert summary["rates_hz"]["skip4"] > 0 and np.isfinite(summary["test_loss"])


@pytest.mark.parametrize("block,message", [
    ({"name": "wavenet"}, "model.block.name must be one of synnet, wavesense, lif"),
    ({"name": "wavesense", "channels": 8, "dilations": [2], "skip_channels": 4, "chanels": 3},
     r"unknown model.block keys \['chanels'\] for wavesense"),
    ({"name": "wavesense", "channels": 8, "dilations": [3], "skip_channels": 4},
     r"model.block \(wavesense\): dilations\[0\] = 3 is not a power of two"),
    ({"name": "wavesense", "channels": 8}, "needs dilations, skip_channels"),
    ({"name": "lif", "hidden": 0}, r"model.block \(lif\): hidden must be"),
    ({"name": "synnet", "hidden": [8], "taus": [0.025]}, "is not a power of two times dt"),
])
def test_bad_model_block_raises_config_error(block, message):
    cfg = load_config(ROOT / "configs" / "kws_wavesense.yaml", [f"model.block={block}"])
    with pytest.raises(ConfigError, match=message):
        build_network(cfg.model, 16, 5, cfg.data.dt)


# ----------------------------------------------------------------------------- arguments
@pytest.mark.parametrize("kwargs,error,message", [
    ({"dilations": (2, 3)}, ParameterError, r"dilations\[1\] = 3 is not a power of two"),
    ({"dilations": ()}, ParameterError, "dilations must hold at least one entry"),
    ({"dilations": 2}, ArgumentTypeError, "dilations must be a list of integers"),
    ({"dilations": (0,)}, ParameterError, r"dilations\[0\] must be"),
    ({"channels": 0}, ParameterError, "channels must be"),
    ({"skip_channels": 2.0}, ArgumentTypeError, "skip_channels"),
    ({"tau_syn": 30e-3}, ParameterError, "tau_syn = 30 ms is not a power of two times dt"),
    ({"tau_syn": 10e-3}, ParameterError, r"tau_syn = 10 ms is 2\^0·dt; the chip needs 2\^1"),
    ({"tau_mem": -1.0}, ParameterError, "tau_mem must be"),
    ({"dilations": (2, 2**15)}, ParameterError, r"d·tau_syn = 2\^16·dt exceeds"),
    ({"readout": "lstm"}, ParameterError, "readout must be one of"),
    ({"dt": 0.0}, ValueError, "dt"),
])
def test_bad_wavesense_arguments_raise_specific_errors(kwargs, error, message):
    args = {"inputs": 16, "channels": 8, "dilations": (2, 4), "skip_channels": 4,
            "outputs": 5} | kwargs
    with pytest.raises(error, match=message):
        wavesense(**args)


def test_bad_baseline_arguments():
    with pytest.raises(ParameterError, match="hidden must be"):
        recurrent_lif(16, 0, 5)
    with pytest.raises(ParameterError, match="readout_tau_mem = 150 ms is not a power of two"):
        recurrent_lif(16, 8, 5, readout_tau_mem=0.15)


@pytest.mark.parametrize("build", [
    lambda m: synnet(13, [8], 5, dt=10e-3, taus=[0.02, 0.04], method=m),
    lambda m: wavesense(13, 4, [2, 4], 4, 5, dt=10e-3, method=m),
    lambda m: recurrent_lif(13, 8, 5, dt=10e-3, method=m)])
def test_blocks_integrate_every_population_with_the_method_given(build):
    for method in ("exact", "euler"):
        pops = [m for m in build(method).layers.values() if hasattr(m, "method")]
        assert pops and {p.method for p in pops} == {method}
    with pytest.raises(ParameterError, match="method"):
        build("rk4")
