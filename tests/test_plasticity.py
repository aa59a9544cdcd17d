"""The local-plasticity engine: rules as sums of products of traces, applied online.

Weight changes for hand-placed spikes equal the closed forms of pair and triplet STDP; the
eligibility of ``apply="end"`` rules equals the same sums computed from a recorded simulator
run; memory does not grow with the number of steps; bad rules and backends are refused."""

import math
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest
import torch

from spikeloop.errors import ConfigError, PlasticityBackendError, UnknownTraceError
from spikeloop.network import GraphNetwork, Network
from spikeloop.nn import IF, LIF, Conv2d, Flatten, Input, Linear
from spikeloop.training.plasticity import (
    Factor,
    Plasticity,
    Rule,
    Term,
    chip_support,
    stdp_pair,
    stdp_triplet,
)

DT = 1e-3


def _pair_net(w_pre=0.0, w_drive=5.0, threshold=1.0):
    """Input channel 0 is the presynaptic neuron (too weak to drive the post neuron alone),
    channel 1 a driver whose spike makes the IF post neuron fire at that very step."""
    net = Network({"input": Input(2), "fc": Linear(2, 1),
                   "out": IF(1, dt=DT, v_threshold=threshold)})
    with torch.no_grad():
        net.layers.fc.weight.copy_(torch.tensor([[w_pre, w_drive]]))
    return net


def _spikes(steps, pre, post):
    x = torch.zeros(steps, 1, 2)
    for t in pre:
        x[t, 0, 0] = 1.0
    for t in post:
        x[t, 0, 1] = 1.0
    return x


@pytest.mark.parametrize(("pre", "post"), [(5, 12), (12, 5), (7, 7)])
def test_pair_stdp_equals_its_window(pre, post):
    rule = stdp_pair(a_plus=0.8, a_minus=0.5, tau_plus=10e-3, tau_minus=20e-3, lr=0.1)
    net = _pair_net()
    counts = Plasticity(net, {"fc": rule}).run(_spikes(30, [pre], [post]))
    assert counts["out"].item() == 1.0  # the driver made exactly the one post spike
    lag = (post - pre) * DT
    want = (0.1 * 0.8 * math.exp(-lag / 10e-3) if lag > 0 else
            -0.1 * 0.5 * math.exp(lag / 20e-3) if lag < 0 else 0.0)
    w = net.layers.fc.weight.detach()
    assert w[0, 0].item() == pytest.approx(want, rel=1e-5, abs=1e-9)
    assert w[0, 1].item() == 5.0  # the driver's own pair is simultaneous: no change


def test_triplet_stdp_equals_the_pfister_gerstner_sum():
    p = {"a2_plus": 0.01, "a3_plus": 0.02, "a2_minus": 0.005, "a3_minus": 0.003,
         "tau_plus": 16.8e-3, "tau_minus": 33.7e-3, "tau_x": 101e-3, "tau_y": 125e-3}
    net = _pair_net()
    pre, post = [0, 25], [10, 20]  # pre, post, post, pre
    Plasticity(net, {"fc": stdp_triplet(**p)}).run(_spikes(40, pre, post))

    def e(lag, tau):
        return math.exp(-lag * DT / tau)

    ltp = (e(10, p["tau_plus"]) * p["a2_plus"]  # post at 10: no earlier post in y2
           + e(20, p["tau_plus"]) * (p["a2_plus"] + p["a3_plus"] * e(10, p["tau_y"])))
    ltd = (e(15, p["tau_minus"]) + e(5, p["tau_minus"])) * (  # pre at 25 after posts 10, 20
        p["a2_minus"] + p["a3_minus"] * e(25, p["tau_x"]))
    assert net.layers.fc.weight[0, 0].item() == pytest.approx(ltp - ltd, rel=1e-5)


def test_weight_dependence_factors_and_bounds():
    rule = Rule((Term(1.0, ("x1",), ("y0",), weight=lambda w: 1.0 - w),),
                {"x1": 10e-3}, lr=0.5, w_min=0.0, w_max=0.4)
    step = 0.5 * math.exp(-2 * DT / 10e-3) * (1 - 0.2)  # 0.327
    for bounded, want in ((False, 0.2 + step), (True, 0.4)):
        net = _pair_net(w_pre=0.2, w_drive=0.35, threshold=0.3)
        bounds = {} if bounded else {"w_min": None, "w_max": None}
        Plasticity(net, {"fc": replace(rule, **bounds)}).run(_spikes(20, [2], [4]))
        assert net.layers.fc.weight[0, 0].item() == pytest.approx(want, rel=1e-6)
        assert net.layers.fc.weight[0, 1].item() == pytest.approx(0.35)
    # a Factor's function reaches the variable: g(v_post) with v_post after the spike's reset
    seen = []
    rule = Rule((Term(1.0, ("x0",), (Factor("v_post", lambda v: seen.append(v.clone()) or v),)),))
    Plasticity(_pair_net(), {"fc": rule}).run(_spikes(3, [0, 1, 2], [1]))
    # the membrane as run: the driver's 5 at step 1, then the rule's own Δw = x0·v_post = 5
    # (at step 1) drives the pre synapse's spike at step 2 to the same membrane
    assert [float(v) for v in seen] == pytest.approx([0.0, 5.0, 5.0])


def _recorded(net, x):
    """The sim backend's full-sequence run (no plasticity) of ``net`` on ``x``."""
    with torch.no_grad():
        return net(x)


def test_end_rules_keep_an_eligibility_equal_to_the_recorded_sums():
    torch.manual_seed(0)
    net = Network({"input": Input(6), "fc1": Linear(6, 5), "hidden": LIF(5, dt=DT),
                   "fc2": Linear(5, 3), "out": LIF(3, dt=DT)})
    with torch.no_grad():
        net.layers.fc1.weight.uniform_(0.0, 0.6)
        net.layers.fc2.weight.uniform_(0.0, 0.9)
    x = (torch.rand(40, 4, 6) < 0.3).float()
    rec = _recorded(net, x)
    tau = 15e-3
    d = math.exp(-DT / tau)
    pre = rec["hidden"].spikes  # [T, B, 5]
    post = rec["out"].spikes
    trace = torch.zeros(4, 5)
    sum_pre = torch.zeros(4, 5)
    corr = torch.zeros(4, 3, 5)
    for t in range(40):
        trace = trace * d
        sum_pre += trace
        corr += post[t].unsqueeze(2) * trace.unsqueeze(1)
        trace = trace + pre[t]
    r = torch.randn(4, 3)
    want = 0.7 * r.T @ sum_pre - 0.2 * torch.einsum("bj,bji->ji", r, corr)
    rule = Rule((Term(0.7, ("x1",), ("r",)), Term(-0.2, ("x1",), ("r", "y0"))),
                {"x1": tau}, lr=0.5, apply="end")
    w0 = net.layers.fc2.weight.detach().clone()
    engine = Plasticity(net, {"fc2": rule})
    counts = engine.run(x)
    assert torch.equal(counts["out"], post.sum(0))  # the engine ran the same network
    assert torch.equal(net.layers.fc2.weight, w0)  # nothing applied before finish
    with pytest.raises(ConfigError, match=r"reads the third factor r; pass third="):
        engine.finish()
    engine.finish({"fc2": r})
    torch.testing.assert_close(net.layers.fc2.weight - w0, 0.5 * want, rtol=1e-5, atol=1e-6)


def _replay_net() -> Network:
    torch.manual_seed(4)
    net = Network({"input": Input(6), "fc1": Linear(6, 7), "hidden": LIF(7, dt=DT),
                   "fc2": Linear(7, 3), "out": LIF(3, dt=DT)})
    with torch.no_grad():
        net.layers.fc1.weight.uniform_(0.0, 0.6)
        net.layers.fc2.weight.uniform_(-0.2, 0.9)
    return net


@pytest.mark.parametrize("bounded", [False, True])
def test_replay_of_a_recorded_run_equals_the_step_by_step_engine(bounded: bool) -> None:
    # every kind of variable a spike record gives (x0, two pre traces, y0, a post trace, r, a
    # Factor), terms sharing their postsynaptic factors, a weight dependence; bounds or none
    rule = Rule((Term(0.7, ("x1",), ("r",)), Term(-0.2, ("x0", "x2"), ("y0", "r")),
                 Term(0.4, ("x1",), ("y0", "r")), Term(0.3, (Factor("x0", lambda v: 2 * v),),
                                                       ("y1",), weight=lambda w: 1.0 - w)),
                {"x1": 12e-3, "x2": 30e-3, "y1": 8e-3}, lr=0.05, apply="end",
                w_min=-0.5 if bounded else None, w_max=0.8 if bounded else None)
    x = (torch.rand(30, 4, 6, generator=torch.Generator().manual_seed(5)) < 0.4).float()
    r = {"fc1": torch.randn(4, 7), "fc2": torch.randn(4, 3)}
    stepped, replayed = _replay_net(), _replay_net()
    engine = Plasticity(stepped, {"fc1": rule, "fc2": rule})
    counts = engine.run(x)
    engine.finish(r, scale=0.5)
    rec = _recorded(replayed, x)  # the fused full-sequence run
    assert torch.equal(rec["out"].spikes.sum(0), counts["out"])
    Plasticity(replayed, {"fc1": rule, "fc2": rule}).replay(
        {"input": rec["input"], "hidden": rec["hidden"], "out": rec["out"]}, r, scale=0.5)
    for name in ("fc1", "fc2"):
        w0 = getattr(_replay_net().layers, name).weight
        moved = getattr(stepped.layers, name).weight
        assert not torch.allclose(moved, w0)  # (the rule changed something)
        torch.testing.assert_close(getattr(replayed.layers, name).weight, moved,
                                   rtol=1e-5, atol=1e-6)


def test_replay_refuses_what_a_record_cannot_give() -> None:
    net = _replay_net()
    rec = _recorded(net, (torch.rand(10, 2, 6) < 0.4).float())
    obs = {"input": rec["input"], "hidden": rec["hidden"], "out": rec["out"]}
    with pytest.raises(ConfigError, match=r"applies at every step; replay needs apply='end'"):
        Plasticity(net, {"fc2": stdp_pair()}).replay(obs)
    end = Rule((Term(1.0, ("x0",), ("y0", "r")),), apply="end", name="e")
    with pytest.raises(ConfigError, match=r"reads the third factor r; pass third="):
        Plasticity(net, {"fc2": end}).replay(obs)
    with pytest.raises(ConfigError, match=r"holds no observables of 'hidden'"):
        Plasticity(net, {"fc2": end}).replay({"out": rec["out"]}, {"fc2": torch.ones(2, 3)})
    volt = Rule((Term(1.0, ("x0",), ("v_post",)),), apply="end", name="v")
    no_v = {**obs, "out": replace(rec["out"], v=None)}
    with pytest.raises(ConfigError, match=r"run of 'out' lacks the membrane rule 'v' reads"):
        Plasticity(net, {"fc2": volt}).replay(no_v)


def test_memory_does_not_grow_with_the_number_of_steps():
    code = textwrap.dedent("""
        import resource, sys, torch
        torch.set_num_threads(1)
        from spikeloop.network import Network
        from spikeloop.nn import LIF, Input, Linear
        from spikeloop.training.plasticity import Plasticity, stdp_pair
        steps = int(sys.argv[1])
        net = Network({"input": Input(50), "fc": Linear(50, 2000), "out": LIF(2000)})
        x = torch.zeros(steps, 8, 50, dtype=torch.bool)  # 0.4 kB per step
        x[::7] = True
        Plasticity(net, {"fc": stdp_pair(lr=1e-4)}).run(x.float())
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # kB
    """)

    def peak(steps):
        out = subprocess.run([sys.executable, "-c", code, str(steps)], capture_output=True,
                             text=True, check=True, env={"OMP_NUM_THREADS": "1"})
        return int(out.stdout.split()[-1]) / 1024  # MB

    short, long = peak(200), peak(4000)
    # keeping the spikes and membranes of 2000 neurons × 8 samples per step would take
    # 3800 × 2 × 64 kB ≈ 490 MB more; the input itself takes 3800 × 1.6 kB ≈ 6 MB more
    assert long - short < 60, (short, long)


def test_bad_rules_are_refused_naming_the_variable():
    with pytest.raises(UnknownTraceError, match=r"term 0 reads presynaptic variable 'z1', which "
                                                r"does not exist; presynaptic variables: x0, x1"):
        Rule((Term(1.0, ("z1",), ("y0",)),))
    with pytest.raises(UnknownTraceError, match=r"reads presynaptic variable 'y1', which does "
                                                r"not exist; 'y1' is a postsynaptic variable"):
        Rule((Term(1.0, ("y1",), ("y0",)),))
    with pytest.raises(UnknownTraceError, match=r"term 1 reads trace 'y2', which the rule does "
                                                r"not declare \(declared traces: x1\)"):
        Rule((Term(1.0, ("x1",), ("y0",)), Term(1.0, ("x0",), ("y2",))), {"x1": 0.01})
    with pytest.raises(UnknownTraceError, match=r"taus names 'x3', which is no trace"):
        Rule((Term(1.0, ("x0",), ("y0",)),), {"x3": 0.01})
    with pytest.raises(ConfigError, match=r"time constant of x1 must be a finite number > 0"):
        Rule((Term(1.0, ("x1",), ("y0",)),), {"x1": -1.0})
    with pytest.raises(UnknownTraceError, match=r"reads v_pre, but its presynaptic node 'input' "
                                                r"is an Input \(no membrane\)"):
        Plasticity(_pair_net(), {"fc": Rule((Term(1.0, ("v_pre",), ("y0",)),))})
    with pytest.raises(ConfigError, match=r"the network has no layer 'fc9'"):
        Plasticity(_pair_net(), {"fc9": stdp_pair()})
    with pytest.raises(ConfigError, match=r"local rules change feed-forward Linear"):
        Plasticity(_pair_net(), {"out": stdp_pair()})
    conv = Network({"input": Input((1, 4, 4)), "conv": Conv2d(1, 2, 3), "c": LIF((2, 2, 2)),
                    "flat": Flatten(), "fc": Linear(8, 2), "out": LIF(2)})
    Plasticity(conv, {"fc": stdp_pair()})  # pre through a Flatten: the conv population
    with pytest.raises(ConfigError, match=r"rule 'stdp_pair' is for 'conv', a Conv2d node"):
        Plasticity(conv, {"conv": stdp_pair()})


def test_backends_that_cannot_run_rules_are_refused_saying_what_the_chip_could_do():
    net = _pair_net()
    with pytest.raises(PlasticityBackendError, match=r"not on backend 'event': the event "
                                                     r"backend integrates"):
        Plasticity(net, {"fc": stdp_pair()}, backend="event")
    with pytest.raises(PlasticityBackendError, match=r"not on backend 'xylo': Xylo has no "
                                                     r"on-chip learning"):
        Plasticity(net, {"fc": stdp_pair()}, backend={"name": "xylo"})
    with pytest.raises(PlasticityBackendError, match=r"BrainScaleS-2 .* \(rule 'stdp_pair' on "
                                                     r"'fc': could run on the chip\)"):
        Plasticity(net, {"fc": stdp_pair()}, backend="chip")
    support = chip_support(stdp_triplet())
    assert support["loihi"][0] and not support["analog"][0] and not support["xylo"][0]
    assert "lacks x2, y2" in support["analog"][1]
    membrane = Rule((Term(1.0, ("x1",), (Factor("v_post"),)),), {"x1": 0.01})
    assert chip_support(membrane)["analog"][0] and not chip_support(membrane)["loihi"][0]


def test_a_rule_with_r_needs_it_and_takes_it_per_step():
    net = GraphNetwork({"input": Input(2), "fc": Linear(2, 1), "out": IF(1, dt=DT)},
                       {"fc": ["input"], "out": ["fc"]})
    rule = Rule((Term(1.0, ("x0",), ("r",)),), lr=1.0)
    with pytest.raises(ConfigError, match=r"reads the third factor r; pass third=\{'fc'"):
        Plasticity(net, {"fc": rule}).run(torch.ones(3, 1, 2))
    w0 = net.layers.fc.weight.detach().clone()
    r = torch.tensor([1.0, -2.0, 0.5]).reshape(3, 1, 1)
    Plasticity(net, {"fc": rule}).run(torch.ones(3, 1, 2), third={"fc": r})
    torch.testing.assert_close(net.layers.fc.weight - w0, torch.full((1, 2), -0.5))
