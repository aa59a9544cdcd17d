"""Bit flips (single-event upsets) in an integer chip's memories: the sampler's statistics,
two's complement, and BitFlips on the Xylo-like chip (mapping, semantics, errors)."""

import math
from dataclasses import replace

import pytest
import torch

from spikeloop.chips.xylo import dynamics, map_graph, quantize, simulate
from spikeloop.chips.xylo import faults as xf
from spikeloop.chips.xylo.simulator import config_params
from spikeloop.devices import (
    DEVICE_MODELS,
    BitFlips,
    Devices,
    apply_flips,
    build_device,
    draw_flips,
    flip_bits,
)
from spikeloop.errors import DeviceModelError, ParameterError
from test_chip_xylo import SPEC, dag, net_two_layers, random_raster


def popcount(x: torch.Tensor, bits: int) -> torch.Tensor:
    return sum(((x >> k) & 1) for k in range(bits))


def raster(steps=40, batch=4, seed=2):
    return random_raster(steps, batch, 16, torch.Generator().manual_seed(seed), rate=0.3).float()


# ----------------------------------------------------------------------------- flip_bits
@pytest.mark.parametrize("bits,rate", [(8, 0.1), (16, 0.01), (8, 1e-3)])
def test_flip_fraction_and_every_bit_position_match_the_rate(bits, rate):
    g = torch.Generator().manual_seed(0)
    lo = -(1 << (bits - 1))
    values = torch.randint(lo, -lo, (50_000,), generator=g)
    flipped, count = flip_bits(values, bits, rate, g)
    diff = (values ^ flipped) & ((1 << bits) - 1)  # the flipped bits, as unsigned words
    n = values.numel() * bits
    assert count == int(popcount(diff, bits).sum())
    assert abs(count - n * rate) < 5 * math.sqrt(n * rate * (1 - rate))  # 5σ binomial
    per_bit = torch.tensor([int(((diff >> k) & 1).sum()) for k in range(bits)])
    m = values.numel()
    assert (per_bit - m * rate).abs().max() < 5 * math.sqrt(m * rate * (1 - rate))
    assert flipped.dtype == values.dtype and int(flipped.min()) >= lo and int(flipped.max()) < -lo


def test_draw_flips_is_exact_at_the_ends_and_sorted_distinct():
    assert draw_flips(100, 0.0).numel() == 0
    assert torch.equal(draw_flips(100, 1.0), torch.arange(100))
    where = draw_flips(1_000_000, 0.3, torch.Generator().manual_seed(1))
    assert bool((where.diff() > 0).all()) and int(where[0]) >= 0 and int(where[-1]) < 1_000_000
    # equal halves of the range get equal shares (5σ)
    half = int((where < 500_000).sum())
    assert abs(half - where.numel() / 2) < 5 * math.sqrt(where.numel() / 4)


@pytest.mark.parametrize("rate", [1e-12, 1e-18, 1e-30, 5e-324])
def test_tiny_rates_flip_about_as_often_as_expected(rate):
    """Realistic per-step upset rates: the gaps between flips (~1/rate bits) exceed int64;
    they must not wrap into negative or spurious indices. Expected flips over all seeds:
    seeds · count · rate ≤ 3e-4, so P(any flip) ≤ 3e-4 (binomial; bound: at most 2)."""
    count, seeds = 10**6, 300
    total = 0
    for seed in range(seeds):
        where = draw_flips(count, rate, torch.Generator().manual_seed(seed))
        assert where.dtype == torch.int64 and bool(((where >= 0) & (where < count)).all())
        total += where.numel()
    assert total <= 2, f"{total} flips where {seeds * count * rate:.1e} are expected"
    flipped, n = flip_bits(torch.zeros(10), 8, rate, torch.Generator().manual_seed(0))
    assert n == 0 and torch.equal(flipped, torch.zeros(10))
    huge = draw_flips(2**62, rate, torch.Generator().manual_seed(1))  # 2^62 · 1e-12 ≈ 4.6e6
    assert bool(((huge >= 0) & (huge < 2**62)).all()) and bool((huge.diff() > 0).all())
    if rate == 1e-12:
        assert abs(huge.numel() - 2**62 * rate) < 5 * math.sqrt(2**62 * rate)  # 5σ


@pytest.mark.parametrize("rate", [0.999, 1 - 1e-12, 1 - 2**-53])
def test_rates_near_one_flip_nearly_every_bit(rate):
    count = 200_000
    where = draw_flips(count, rate, torch.Generator().manual_seed(3))
    assert bool((where.diff() > 0).all()) and int(where[0]) >= 0 and int(where[-1]) < count
    missed = count - where.numel()  # binomial(count, 1 − rate)
    assert abs(missed - count * (1 - rate)) < 5 * math.sqrt(count * (1 - rate)) + 1


def test_draw_flips_refuses_counts_beyond_int64():
    with pytest.raises(ParameterError, match="count"):
        draw_flips(2**62 + 1, 1e-3)


def test_apply_flips_takes_the_indices_in_any_order_and_refuses_repeats_and_strays():
    v = torch.zeros(4, dtype=torch.int64)
    assert apply_flips(v, 8, torch.tensor([8, 31, 9])).tolist() == [0, 3, 0, -128]
    g = torch.Generator().manual_seed(0)
    values = torch.randint(-128, 128, (1000,), generator=g)
    where = draw_flips(values.numel() * 8, 0.2, g)
    shuffled = where[torch.randperm(where.numel(), generator=g)]
    assert torch.equal(apply_flips(values, 8, shuffled), apply_flips(values, 8, where))
    with pytest.raises(ParameterError, match="repeat"):
        apply_flips(v, 8, torch.tensor([9, 3, 9]))
    with pytest.raises(ParameterError, match=r"0\.\.31"):
        apply_flips(v, 8, torch.tensor([-1]))
    with pytest.raises(ParameterError, match=r"0\.\.31"):
        apply_flips(v, 8, torch.tensor([32]))


@pytest.mark.parametrize("bits", [8, 16])
def test_twos_complement_of_the_sign_bit_and_the_whole_word(bits):
    top = 1 << (bits - 1)
    v = torch.tensor([3, -1, -top, top - 1, 0])
    sign = apply_flips(v, bits, torch.arange(v.numel()) * bits + bits - 1)
    assert sign.tolist() == [3 - top, top - 1, 0, -1, -top]  # 3 → −125 in int8
    assert torch.equal(apply_flips(sign, bits, torch.arange(v.numel()) * bits + bits - 1), v)
    every, count = flip_bits(v, bits, 1.0)
    assert torch.equal(every, -v - 1) and count == v.numel() * bits  # ~v = −v − 1
    low = apply_flips(v.double(), bits, torch.tensor([0, bits + 1]))  # bit 0 of 3, bit 1 of −1
    assert low.tolist() == [2, -3, -top, top - 1, 0] and low.dtype == torch.float64


def test_flip_bits_refuses_values_that_are_not_words_of_the_width():
    with pytest.raises(ParameterError, match="8-bit"):
        apply_flips(torch.tensor([200]), 8, torch.tensor([0]))
    with pytest.raises(ParameterError, match="8-bit"):
        apply_flips(torch.tensor([0.5]), 8, torch.tensor([0]))
    with pytest.raises(ParameterError):
        flip_bits(torch.tensor([1]), 8, 1.5)


# ----------------------------------------------------------------------------- the model
@pytest.mark.parametrize("kwargs,message", [
    ({"rate": -0.1}, "rate"), ({"rate": 1.5}, "rate"), ({"rate": float("nan")}, "rate"),
    ({"rate": 0.1, "per": "epoch"}, "per"), ({"rate": 0.1, "state": ("u",)}, "state"),
    ({"rate": 0.1, "state": ()}, "state"),
])
def test_bit_flips_options_are_checked(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        BitFlips(**kwargs)


def test_bit_flips_is_registered_and_built_from_a_config():
    assert DEVICE_MODELS.get("bit_flips") is BitFlips
    m = build_device({"name": "bit_flips", "rate": 1e-3, "per": "step", "state": ["v"]})
    assert m == BitFlips(1e-3, "step", ("v",)) and BitFlips(0.1, state="i").state == ("i",)


@pytest.mark.parametrize("backend", ["sim", "event", "chip"])
def test_backends_without_integer_memories_refuse(backend):
    net = net_two_layers()
    net.devices = Devices({"fc1": BitFlips(0.01)})
    with pytest.raises(DeviceModelError, match="integer memories"):
        net(raster(), backend=backend)


def test_qat_mode_refuses_and_the_input_is_no_memory():
    net = net_two_layers()
    net.devices = Devices({"hidden": BitFlips(0.01)})
    with pytest.raises(DeviceModelError, match=r"'xylo' \(mode 'qat'\) backend: it needs a "
                       "backend that holds weights and neuron states in integer memories"):
        net(raster(), backend={"name": "xylo", "mode": "qat"})
    net.devices = Devices({"input": BitFlips(0.01)})
    with pytest.raises(DeviceModelError, match="input"):
        net(raster(), backend="xylo")


def test_projections_that_share_the_chips_memory_are_refused_by_name():
    net = dag({"A": 8, "B": 6, "out": 4},
              {"A": ["fc_in_A"], "fc_in_A": ["input"], "B": ["fc_A_B", "fc_A_B2"],
               "fc_A_B": ["A"], "fc_A_B2": ["A"], "out": ["fc_B_out"], "fc_B_out": ["B"]})
    assert "fc_A_B" not in xf.memories(net.graph) and "fc_in_A" in xf.memories(net.graph)
    net.devices = Devices({"fc_A_B": BitFlips(0.01)})
    with pytest.raises(DeviceModelError, match=r"'fc_A_B'.*overlaps 'fc_A_B2'"), torch.no_grad():
        net(raster(), backend="xylo")


def test_memories_follow_the_mappers_layout():
    mems = xf.memories(net_two_layers().graph)
    assert mems["fc1"]["weights"] == xf.Memory("weights_in", 8, 16 * 40 * 2)
    assert mems["fc2"]["weights"] == xf.Memory("weights_rec", 8, 40 * 30 * 2)
    assert mems["hidden.recurrent"]["weights"] == xf.Memory("weights_rec", 8, 40 * 40 * 2)
    assert mems["fc3"]["weights"] == xf.Memory("weights_out", 8, 30 * 4)
    assert mems["h2"] == {"v": xf.Memory("v", 16, 30), "i": xf.Memory("i", 16, 60)}
    assert mems["output"] == {"v": xf.Memory("v_out", 16, 4), "i": xf.Memory("i_out", 16, 4)}


# ----------------------------------------------------------------------------- on the chip
def run(net, x, devices=None):
    net.devices = devices
    with torch.no_grad():
        return net(x, backend="xylo")


@pytest.mark.parametrize("per", ["inference", "step"])
def test_rate_zero_is_bit_identical_to_the_ideal_chip(per):
    net, x = net_two_layers(), raster()
    ideal = run(net, x)
    zero = run(net, x, Devices({n: BitFlips(0.0, per) for n in ("fc1", "fc2", "hidden.recurrent",
                                                                  "fc3", "hidden", "output")}))
    for name in ("hidden", "h2", "output"):
        assert torch.equal(zero[name].v, ideal[name].v)
    assert torch.equal(zero["h2"].spikes, ideal["h2"].spikes)
    assert torch.equal(zero.state["xylo"].i, ideal.state["xylo"].i)
    assert zero.report.resources["bit_flips"]["hidden"] == {"v": 0, "i": 0}


def test_a_realistic_upset_rate_leaves_the_chip_ideal():
    """1e-18 per bit and step: ~2e-11 flips expected over all memories of this run, so none;
    the int64 gaps once wrapped around into dozens of flips per run."""
    net, x = net_two_layers(), raster()
    ideal = run(net, x)
    nodes = ("fc1", "fc2", "hidden.recurrent", "fc3", "hidden", "h2", "output")
    out = run(net, x, Devices({n: BitFlips(1e-18, "step") for n in nodes}, seed=0))
    assert torch.equal(out.output.v, ideal.output.v)
    assert all(c == 0 for mems in out.report.resources["bit_flips"].values()
               for c in mems.values())


def test_rate_one_complements_every_weight_of_the_memory():
    net, x = net_two_layers(), raster(batch=3)
    out = run(net, x, Devices({"fc1": BitFlips(1.0)}))
    config, _ = quantize(net.graph)
    # fc1's block of weights_in [16, 70, 2]: 16 inputs × its 40 neurons × 2 synapses; each
    # int8 W there becomes ~W = −W − 1 (h2's 30 columns are not fc1's memory)
    w = config.weights_in.clone()
    w[:, :40] = -w[:, :40] - 1
    assert w[0, 0, 1] == -1 and (w[:, 40:] == 0).all()
    hand = simulate(replace(config, weights_in=w), x)
    assert torch.equal(out["hidden"].spikes, hand.spikes[..., :40].float())
    assert torch.equal(out["h2"].spikes, hand.spikes[..., 40:].float())
    scale_out = quantize(net.graph)[1].scale_out.float()
    assert torch.equal(out.output.v, hand.v_out.float() / scale_out)
    assert out.report.resources["bit_flips"] == {"fc1": {"weights": 3 * 16 * 40 * 2 * 8}}
    assert not torch.equal(out.output.v, run(net, x).output.v)


def test_segments_apply_each_flip_before_its_step_exactly():
    """A hand-made plan: sign bit of hidden membrane 3 (sample 1) before step 7, bit 6 of the
    input weight W[2 → neuron 5, synapse 0] (sample 0) before step 12; against simulate()
    continued by hand."""
    net, x = net_two_layers(), raster(steps=30, batch=2)
    layout = map_graph(net.graph)
    config, _ = quantize(net.graph)
    regions, _ = xf._regions(layout, SPEC)
    v_reg, w_reg = regions["hidden"]["v"][0], regions["fc1"]["weights"][0]
    v_bit = (1 * 40 + 3) * 16 + 15  # [sample, neuron] of the region [B, 40], 16 bits each
    w_bit = (0 * 16 * 80 + 2 * 80 + 5 * 2 + 0) * 8 + 6  # [sample, pre, post · 2 + syn]
    plan = xf.FlipPlan(events={7: [(v_reg, torch.tensor([v_bit]))],
                               12: [(w_reg, torch.tensor([w_bit]))]},
                       shifts={"weights_in": config.shift_in, "weights_rec": config.shift_rec,
                               "weights_out": config.shift_out})
    start = dynamics.initial_state(2, 70, 4)
    records, _, _ = xf.run(x, start, config_params(config), plan)

    first = simulate(config, x[:7])
    v = first.state.v.clone()
    v[1, 3] += -32768 if v[1, 3] >= 0 else 32768
    second = simulate(config, x[7:12], first.state._replace(v=v))
    w = config.weights_in.clone()
    w[2, 5, 0] ^= 64
    flipped = replace(config, weights_in=w)
    third0 = simulate(flipped, x[12:, :1], sample(second.state, 0))  # sample 0: new weight
    third1 = simulate(config, x[12:, 1:], sample(second.state, 1))
    want = torch.cat([first.v, second.v, torch.cat([third0.v, third1.v], 1)])
    assert torch.equal(records["v"].long(), want)
    assert not torch.equal(records["v"].long(), simulate(config, x).v)


def sample(state, b):
    """Sample ``b`` of a batched chip state."""
    return type(state)(*(t[b:b + 1] for t in state))


def test_per_step_state_flips_change_the_output_and_are_counted():
    net, x = net_two_layers(), raster(steps=50, batch=8)
    ideal = run(net, x)
    rate = 2e-4
    out = run(net, x, Devices({"hidden": BitFlips(rate, "step", state=("v",))}, seed=3))
    count = out.report.resources["bit_flips"]["hidden"]["v"]
    n = 50 * 8 * 40 * 16  # steps × samples × neurons × bits
    assert count > 0 and abs(count - n * rate) < 5 * math.sqrt(n * rate)
    assert not torch.equal(out["hidden"].v, ideal["hidden"].v)
    assert not torch.equal(out.output.v, ideal.output.v)
    assert set(out.report.resources["bit_flips"]) == {"hidden"}


def test_the_same_seed_gives_the_same_flips_and_each_run_draws_new_ones():
    net, x = net_two_layers(), raster()

    def devices(seed):
        return Devices({"fc1": BitFlips(1e-3), "h2": BitFlips(1e-3, "step")}, seed=seed)

    a, b, c = run(net, x, devices(5)), run(net, x, devices(5)), run(net, x, devices(6))
    assert torch.equal(a.output.v, b.output.v)
    assert a.report.resources["bit_flips"] == b.report.resources["bit_flips"]
    assert not torch.equal(a.output.v, c.output.v)
    d = devices(5)
    first, second = run(net, x, d), run(net, x, d)  # the read stream runs on
    assert torch.equal(first.output.v, a.output.v) and not torch.equal(second.output.v, a.output.v)


def test_in_the_loop_replay_sees_the_same_flipped_memories():
    net, x = net_two_layers(), raster()
    chosen = {"fc1": BitFlips(1e-3, "step"), "hidden": BitFlips(1e-3, "step")}
    observed = run(net, x, Devices(chosen, seed=4))
    net.devices = Devices(chosen, seed=4)
    out = net(x, backend="xylo")  # gradients on: values from the chip, replay in backward
    assert torch.equal(out.output.v.detach(), observed.output.v)
    out.output.v.sum().backward()  # a replay without the flips would raise ReplayError
    grad = net.layers.fc1.weight.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_sensitivity_lists_every_memory_and_rate():
    net, x = net_two_layers(), raster(steps=20, batch=2)
    ideal = run(net, x).output.v

    def change(devices):
        return float((run(net, x, devices).output.v - ideal).abs().mean())

    table = xf.sensitivity(change, net.graph, [0.0, 0.05])
    assert set(table) == set(xf.memories(net.graph))
    assert table["hidden"].keys() == {"v", "i"} and table["fc1"].keys() == {"weights"}
    assert all(row[0] == 0.0 for mems in table.values() for row in mems.values())
    assert table["fc3"]["weights"][1] > 0
