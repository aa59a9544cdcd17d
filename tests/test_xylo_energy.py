"""The first-order energy estimate of a Xylo run: operation counts against a brute-force
count over events and weights, and the energy arithmetic."""

from __future__ import annotations

import pytest
import torch

from spikeloop.chips.xylo import map_graph, quantize, simulate
from spikeloop.chips.xylo.energy import LOIHI_PROXY, EnergyModel, count_ops, estimate
from spikeloop.errors import ParameterError, ShapeError
from spikeloop.network.blocks import synnet


@pytest.fixture(scope="module")
def chip_run():
    torch.manual_seed(0)
    net = synnet(16, (12, 8), 3, dt=1e-2, scales=2, recurrent=True)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)
    config, _ = quantize(map_graph(net.graph))
    x = torch.poisson(torch.full((40, 3, 16), 0.8))
    return config, x, simulate(config, x)


def test_counts_match_brute_force(chip_run):
    config, x, run = chip_run
    assert run.spikes.sum() > 0  # the network is active: the hidden term is exercised
    expected_in = expected_hidden = 0
    for t in range(x.shape[0]):
        for b in range(x.shape[1]):
            for i in range(16):
                expected_in += int(x[t, b, i]) * int((config.weights_in[i] != 0).sum())
            for j in range(config.num_hidden):
                fan = int((config.weights_rec[j] != 0).sum() + (config.weights_out[j] != 0).sum())
                expected_hidden += int(run.spikes[t, b, j]) * fan
    c = count_ops(config, x, run)
    assert (c.sops_input, c.sops_hidden) == (expected_in, expected_hidden)
    assert c.updates == 40 * 3 * (config.num_hidden + config.num_outputs)
    assert (c.steps, c.samples) == (40, 3)


def test_energy_arithmetic(chip_run):
    config, x, run = chip_run
    c = count_ops(config, x, run)
    model = EnergyModel(synop_j=2e-12, update_j=5e-12, idle_w=1e-4, source="test")
    e = estimate(c, 1e-2, model)
    assert e.duration_s == pytest.approx(0.4)
    assert e.dynamic_j == pytest.approx((2e-12 * c.sops + 5e-12 * c.updates) / 3)
    assert e.idle_j == pytest.approx(1e-4 * 0.4)
    assert e.total_j == pytest.approx(e.dynamic_j + e.idle_j)
    assert e.dynamic_power_w == pytest.approx(e.dynamic_j / 0.4)
    # silence costs neuron updates and idle power only
    quiet = torch.zeros(40, 1, 16)
    cq = count_ops(config, quiet, simulate(config, quiet))
    assert cq.sops_input == 0
    assert estimate(cq, 1e-2).dynamic_j == pytest.approx(
        LOIHI_PROXY.update_j * 40 * (config.num_hidden + config.num_outputs)
        + LOIHI_PROXY.synop_j * cq.sops_hidden)


def test_bad_input(chip_run):
    config, x, run = chip_run
    with pytest.raises(ShapeError, match=r"\[T, B\]"):
        count_ops(config, x[:10], run)
    with pytest.raises(ParameterError, match="synop_j"):
        EnergyModel(synop_j=-1.0, update_j=0.0, idle_w=0.0, source="")


def test_chunked_counts_add_up_to_one_run(chip_run):
    config, x, run = chip_run
    from spikeloop.chips.xylo import XyloStream

    stream = XyloStream(config)
    parts = [(c, stream(c)) for c in x.split(7)]
    summed = count_ops(config, *parts[0])
    for chunk, part in parts[1:]:
        summed = summed + count_ops(config, chunk, part)
    assert summed == count_ops(config, x, run)
    with pytest.raises(ShapeError, match="same samples"):
        summed + count_ops(config, x[:, :1], simulate(config, x[:, :1]))
