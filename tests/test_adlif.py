"""The adLIF neuron (spikeloop.dynamics.adlif): a model added as one registered description,
checked against its equations, the LIF it reduces to, and the capabilities it declares."""

from __future__ import annotations

import math

import pytest
import torch

from spikeloop.dynamics import MODELS
from spikeloop.errors import MappingError, ParameterError
from spikeloop.network import Network
from spikeloop.nn import LIF, POPULATIONS, AdLIF, CubaLI, Input, Linear

DT = 1e-3


def reference(x, tau_mem, tau_adapt, a, b, thr, v_leak=0.0, r=1.0):
    """The module docstring's recursion, in float64 Python scalars."""
    beta, rho = math.exp(-DT / tau_mem), math.exp(-DT / tau_adapt)
    v, w, vs, zs, ws = v_leak, 0.0, [], [], []
    for xk in x:
        v = beta * v + (1 - beta) * v_leak + (1 - beta) * (r * xk - w)
        z = 1.0 if v - thr >= 0 else 0.0
        w = rho * w + a * (v - v_leak) + b * z
        vs.append(v)
        zs.append(z)
        ws.append(w)
        v = v - z * (thr - 0.0)  # subtractive reset to v_reset = 0
    return vs, zs, ws


def test_trajectory_follows_the_equations():
    torch.manual_seed(0)
    x = (torch.rand(200) * 6.0).tolist()
    pop = AdLIF(1, tau_mem=20e-3, tau_adapt=80e-3, a=0.01, b=0.4, v_threshold=1.0)
    obs, state = pop(torch.tensor(x, dtype=torch.float64)[:, None, None].float())
    vs, zs, ws = reference(x, 20e-3, 80e-3, 0.01, 0.4, 1.0)
    assert sum(zs) > 5  # the neuron fires: reset and the spike-triggered jump are exercised
    assert obs.spikes[:, 0, 0].tolist() == zs
    torch.testing.assert_close(obs.v[:, 0, 0].double(), torch.tensor(vs, dtype=torch.float64),
                               rtol=1e-4, atol=1e-4)
    assert state.neuron.w.item() == pytest.approx(ws[-1], rel=1e-4, abs=1e-4)


def test_without_adaptation_it_is_the_lif_with_subtractive_reset():
    x = torch.rand(100, 3, 5) * 3.0
    adlif, _ = AdLIF(5, tau_mem=15e-3, a=0.0, b=0.0)(x)
    lif, _ = LIF(5, tau_mem=15e-3, reset="subtract")(x)
    assert torch.equal(adlif.spikes, lif.spikes)
    torch.testing.assert_close(adlif.v, lif.v)


def test_spike_triggered_adaptation_lengthens_the_intervals():
    x = torch.full((400, 1, 1), 3.0)
    obs, _ = AdLIF(1, tau_mem=10e-3, tau_adapt=100e-3, a=0.0, b=0.3)(x)
    times = obs.spikes[:, 0, 0].nonzero().squeeze(-1)
    isi = times.diff().float()
    assert len(isi) > 5 and isi[-1] > isi[0]  # the rate adapts
    free, _ = AdLIF(1, tau_mem=10e-3, a=0.0, b=0.0)(x)
    assert free.spikes.sum() > obs.spikes.sum()


def test_subthreshold_coupling_settles_where_the_fixed_point_says():
    """Without spikes the discrete map has the fixed point
    ``(v − v_leak)(1 + a/(1 − ρ)) = r x`` (and ``w = a (v − v_leak)/(1 − ρ)``)."""
    a, tau_adapt, x0 = 0.02, 50e-3, 2.0
    pop = AdLIF(1, tau_mem=10e-3, tau_adapt=tau_adapt, a=a, b=0.0, v_threshold=100.0,
                v_leak=-0.5)
    obs, state = pop(torch.full((3000, 1, 1), x0, dtype=torch.float32))
    rho = math.exp(-DT / tau_adapt)
    v_star = -0.5 + x0 / (1 + a / (1 - rho))
    assert obs.v[-1].item() == pytest.approx(v_star, rel=1e-4)
    assert state.neuron.w.item() == pytest.approx(a * (v_star + 0.5) / (1 - rho), rel=1e-3)


def test_runs_in_a_network_with_gradients_and_in_the_loop_replay():
    torch.manual_seed(1)
    net = Network({"input": Input(6), "fc": Linear(6, 8), "hidden": AdLIF(8, learn=("a", "b")),
                   "fc2": Linear(8, 2), "out": CubaLI(2)})
    with torch.no_grad():
        net.layers.fc.weight.normal_(1.0, 0.5)
    x = (torch.rand(50, 4, 6) < 0.3).float()
    out = net(x)
    assert out["hidden"].spikes.sum() > 0
    out.output.v.sum().backward()
    hidden = net.layers.hidden
    assert hidden.a.grad is not None and hidden.a.grad.abs().sum() > 0
    assert net.layers.fc.weight.grad.abs().sum() > 0
    from spikeloop.backends import in_the_loop

    with torch.no_grad():
        seen = net(x)
    replay = in_the_loop(net.graph, x, seen)  # the model replayed at its own observations
    assert torch.equal(replay["hidden"].spikes, seen["hidden"].spikes)


def test_the_description_says_who_runs_it():
    model = MODELS.get("AdLIF")
    assert POPULATIONS.get("adlif") is AdLIF and AdLIF.description is model
    assert model.spiking and model.currents == 0 and model.engines == {"reference", "fused"}
    net = Network({"input": Input(3), "fc": Linear(3, 4), "hidden": AdLIF(4),
                   "fc2": Linear(4, 2), "out": CubaLI(2)})
    assert net.graph["hidden"].model is model
    with pytest.raises(MappingError, match="AdLIF; the analog chip runs current-based"):
        net(torch.zeros(10, 1, 3), backend="chip")
    with pytest.raises(ParameterError, match=r"AdLIF, which the event backend cannot run"):
        net(torch.zeros(10, 1, 3), backend="event")
    x = (torch.rand(30, 1, 3, generator=torch.Generator().manual_seed(0)) < 0.5) * 30.0
    fused = net(x, backend={"name": "sim", "kernel": "fused"})  # issue 17: it fuses
    ref = net(x, backend={"name": "sim", "kernel": "reference"})
    assert ref["hidden"].spikes.sum() > 0
    assert torch.equal(fused["hidden"].spikes, ref["hidden"].spikes)
    torch.testing.assert_close(fused["hidden"].v, ref["hidden"].v)
