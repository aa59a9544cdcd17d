"""Learnable delays (DelayedLinear, issue 17): agreement with the fixed Delay + Linear and with
an explicit sum over delayed inputs, the interpolated kernel, streaming, gradients against
finite differences, constraints, bad input, the IR node and the backends that refuse it."""

import math
import re

import pytest
import torch

from spikeloop.backends.executor import ModelHooks, execute
from spikeloop.errors import (
    ArgumentTypeError,
    NIRError,
    ParameterError,
    ShapeError,
    TimeStepError,
)
from spikeloop.kernels import ops
from spikeloop.network import Network
from spikeloop.nn import CubaLI, CubaLIF, Delay, DelayedLinear, Input, Linear

DT = 1e-3


def spikes(t, b, n, p=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(t, b, n, generator=g) < p).float()


def explicit(x, weight, steps, bias=None):
    """``y_k[j] = Σ_i Σ_m W[j, i] max(0, 1 − |m − s[j, i]|) x_{k−m}[i]`` by loops (float64):
    the model's definition, written independently of the kernels."""
    t, b, n_in = x.shape
    n_out = weight.shape[0]
    s = steps.expand(n_out, n_in) if steps.dim() == 1 else steps
    d = max(math.ceil(float(s.max())), 0)
    y = torch.zeros(t, b, n_out, dtype=torch.float64)
    for j in range(n_out):
        for i in range(n_in):
            for m in range(d + 1):
                k = max(0.0, 1.0 - abs(m - float(s[j, i])))
                if k:
                    y[m:, :, j] += float(weight[j, i]) * k * x[: t - m, :, i].double()
    return y if bias is None else y + bias.double()


# ----------------------------------------------------------------------------- equivalences
def test_per_axon_at_whole_steps_equals_delay_then_linear_exactly():
    torch.manual_seed(0)
    steps = torch.tensor([0, 3, 7, 1, 5, 7])
    layer = DelayedLinear(6, 4, 7e-3, dt=DT, per="axon", delay=steps * 1e-3, bias=True)
    line, lin = Delay(steps), Linear(6, 4, bias=True)
    with torch.no_grad():
        lin.weight.copy_(layer.weight)
        lin.bias.copy_(layer.bias)
    x = spikes(30, 3, 6)
    y, state = layer(x)
    want, want_state = line(x)
    assert torch.equal(y, lin(want))  # 7e-3 s / 1e-3 s = 7.0000002 in float32 snaps to 7
    assert torch.equal(state, want_state)


def test_per_synapse_at_whole_steps_equals_the_sum_of_individually_delayed_inputs():
    torch.manual_seed(1)
    steps = torch.randint(0, 9, (5, 4))
    layer = DelayedLinear(4, 5, 8e-3, dt=DT, delay=steps * DT).double()
    x = spikes(40, 2, 4, seed=1).double()
    y, _ = layer(x)
    want = torch.zeros(40, 2, 5, dtype=torch.float64)
    for j in range(5):
        for i in range(4):
            delayed, _ = Delay(int(steps[j, i]))(x[..., i : i + 1])
            want[..., j] += layer.weight[j, i].detach() * delayed[..., 0]
    torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("per", ["synapse", "axon"])
def test_fractional_delays_follow_the_interpolated_kernel(per):
    torch.manual_seed(2)
    layer = DelayedLinear(5, 3, 6e-3, dt=DT, per=per, bias=True).double()
    with torch.no_grad():  # the default draw is uniform in [0, max_delay]; add both ends
        layer.delay.view(-1)[:2] = torch.tensor([0.0, 6e-3])
    x = torch.randn(25, 2, 5, dtype=torch.float64)
    y, _ = layer(x)
    torch.testing.assert_close(
        y, explicit(x, layer.weight.detach(), layer.delay.detach() / DT, layer.bias.detach()))


def test_a_fractional_delay_splits_the_weight_between_the_two_neighbouring_steps():
    layer = DelayedLinear(1, 1, 5e-3, dt=DT, delay=2.25e-3).double()
    with torch.no_grad():  # (float64 values: the float32 2.25e-3 s is 2.2500001 steps)
        layer.weight.fill_(2.0)
        layer.delay.fill_(2.25e-3)
    x = torch.zeros(8, 1, 1, dtype=torch.float64)
    x[0] = 1.0
    y, _ = layer(x)
    torch.testing.assert_close(y[:, 0, 0], torch.tensor([0, 0, 1.5, 0.5, 0, 0, 0, 0],
                                                        dtype=torch.float64))


def test_per_axon_and_per_synapse_kernels_agree_on_shared_delays():
    """The gather-then-GEMM path (per axon) and the conv1d path (per synapse) are one model."""
    torch.manual_seed(3)
    axon = DelayedLinear(7, 4, 10e-3, dt=DT, per="axon").double()
    synapse = DelayedLinear(7, 4, 10e-3, dt=DT, per="synapse").double()
    with torch.no_grad():
        synapse.weight.copy_(axon.weight)
        synapse.delay.copy_(axon.delay.expand(4, 7))
    x = torch.randn(30, 3, 7, dtype=torch.float64)
    torch.testing.assert_close(axon(x)[0], synapse(x)[0])


# ----------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("per", ["synapse", "axon"])
def test_two_windows_equal_one_run(per):
    torch.manual_seed(4)
    layer = DelayedLinear(6, 3, 9e-3, dt=DT, per=per, bias=True)
    x = spikes(50, 4, 6, seed=4)
    whole, state = layer(x)
    first, mid = layer(x[:13])
    second, end = layer(x[13:], mid)
    assert mid.shape == (9, 4, 6)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    torch.testing.assert_close(end, state)


def test_a_network_streams_through_the_delay_line_and_runs_step_by_step():
    torch.manual_seed(5)
    net = Network({"input": Input(6), "fc": DelayedLinear(6, 8, 5e-3, dt=DT),
                   "h": CubaLIF(8, dt=DT), "fc2": Linear(8, 2), "out": CubaLI(2, dt=DT)})
    with torch.no_grad():
        net.layers.fc.weight.normal_(2.0, 0.5)
    x = spikes(40, 3, 6, seed=5)
    whole = net(x)
    assert whole.populations["h"].spikes.sum() > 0
    first = net(x[:17])
    second = net(x[17:], first.state)
    torch.testing.assert_close(
        torch.cat([first.populations["h"].spikes, second.populations["h"].spikes]),
        whole.populations["h"].spikes)
    torch.testing.assert_close(torch.cat([first.output.v, second.output.v]), whole.output.v)
    for backend in ({"name": "sim", "mode": "step"}, {"name": "sim", "checkpoint": 7},
                    {"name": "sim", "kernel": "reference"}):
        torch.testing.assert_close(net(x, backend=backend).output.v, whole.output.v)
    _, states = execute(net.graph, x[:5], ModelHooks())
    assert states["fc"].shape == (5, 3, 6)  # the delay line: the last D = 5 inputs


@pytest.mark.parametrize("per", ["synapse", "axon"])
def test_ops_delayed_linear_refuses_a_delay_line_state_of_the_wrong_length(per):
    torch.manual_seed(11)
    w = torch.randn(2, 3)
    delay = torch.full((2, 3) if per == "synapse" else (3,), 2.5e-3)
    x = spikes(8, 2, 3, seed=11)
    first, mid = ops.delayed_linear(x[:4], w, delay, DT, 5)
    second, _ = ops.delayed_linear(x[4:], w, delay, DT, 5, state=mid)
    torch.testing.assert_close(torch.cat([first, second]),
                               ops.delayed_linear(x, w, delay, DT, 5)[0])
    for bad in (torch.zeros(7, 2, 3), torch.zeros(4, 2, 3), torch.zeros(5, 1, 3)):
        with pytest.raises(ShapeError, match=r"DelayedLinear: the delay-line state must have "
                                             r"shape \(D, B, \.\.\.\) = \(5, 2, 3\).*got "
                                             + re.escape(str(tuple(bad.shape)))):
            ops.delayed_linear(x, w, delay, DT, 5, state=bad)


@pytest.mark.parametrize("steps", [torch.tensor(3), torch.tensor([0, 3, 1])],
                         ids=["scalar", "per element"])
def test_ops_delay_and_the_delay_layer_refuse_a_state_of_the_wrong_length(steps):
    x = spikes(8, 2, 3, seed=12)
    first, mid = ops.delay(x[:5], steps)
    assert mid.shape == (3, 2, 3)
    torch.testing.assert_close(torch.cat([first, ops.delay(x[5:], steps, mid)[0]]),
                               ops.delay(x, steps)[0])
    for bad in (torch.zeros(7, 2, 3), torch.zeros(2, 2, 3), torch.zeros(3, 2, 4)):
        message = (r"Delay: the delay-line state must have shape \(D, B, \.\.\.\) = "
                   r"\(3, 2, 3\).*got " + re.escape(str(tuple(bad.shape))))
        with pytest.raises(ShapeError, match=message):
            ops.delay(x, steps, bad)
        with pytest.raises(ShapeError, match=message):
            Delay(steps)(x, bad)
        with pytest.raises(ShapeError, match=message):
            ops.delay(x, steps, bad, max_steps=3)


# ----------------------------------------------------------------------------- gradients
def central_difference(loss, tensor, eps):
    grad = torch.zeros_like(tensor)
    flat, out = tensor.view(-1), grad.view(-1)
    with torch.no_grad():
        for k in range(flat.numel()):
            keep = float(flat[k])
            flat[k] = keep + eps
            up = float(loss())
            flat[k] = keep - eps
            down = float(loss())
            flat[k] = keep
            out[k] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("per", ["synapse", "axon"])
def test_delay_and_weight_gradients_equal_finite_differences(per):
    torch.manual_seed(6)
    layer = DelayedLinear(4, 3, 6e-3, dt=DT, per=per, bias=True).double()
    with torch.no_grad():  # away from whole steps, where the model is linear in each delay
        layer.delay.copy_((torch.randint(0, 6, layer.delay.shape) + 0.2
                           + 0.6 * torch.rand(layer.delay.shape)) * DT)
    x = torch.randn(30, 2, 4, dtype=torch.float64)
    r = torch.randn(30, 2, 3, dtype=torch.float64)

    def loss():
        y, _ = layer(x)
        return (torch.tanh(y) * r).sum()

    loss().backward()
    for p, eps in ((layer.delay, 1e-5 * DT), (layer.weight, 1e-6), (layer.bias, 1e-6)):
        fd = central_difference(loss, p.data, eps)
        torch.testing.assert_close(p.grad, fd, rtol=1e-6, atol=1e-8)
    assert layer.delay.grad.abs().min() > 0  # every delay gets a gradient


@pytest.mark.parametrize("per", ["synapse", "axon"])
def test_through_the_network_the_delay_gradient_equals_finite_differences(per):
    """The simulator's graph holds the live delay tensor: autograd through the executor and a
    CubaLI readout equals central differences of the network's output."""
    torch.manual_seed(10)
    net = Network({"input": Input(3), "fc": DelayedLinear(3, 2, 5e-3, dt=DT, per=per),
                   "out": CubaLI(2, dt=DT, tau_mem=10e-3, tau_syn=5e-3)}).double()
    with torch.no_grad():
        net.layers.fc.delay.copy_((torch.randint(0, 5, net.layers.fc.delay.shape) + 0.5) * DT)
    x = spikes(40, 2, 3, p=0.4, seed=10).double()
    r = torch.randn(40, 2, 2, dtype=torch.float64)

    def loss():
        return (net(x).output.v * r).sum()

    loss().backward()
    fd = central_difference(loss, net.layers.fc.delay.data, 1e-5 * DT)
    torch.testing.assert_close(net.layers.fc.delay.grad, fd, rtol=1e-6, atol=1e-8)
    assert net.layers.fc.delay.grad.abs().min() > 0


def test_delay_gradient_at_a_whole_step_is_the_right_derivative():
    layer = DelayedLinear(1, 1, 5e-3, dt=DT, delay=2e-3).double()
    x = torch.randn(20, 1, 1, dtype=torch.float64)
    r = torch.randn(20, 1, 1, dtype=torch.float64)
    (layer(x)[0] * r).sum().backward()
    w = float(layer.weight.detach())
    # y_k = w ((1 − f) x_{k−2} + f x_{k−3}), f = d/dt − 2: ∂y_k/∂d = w (x_{k−3} − x_{k−2}) / dt
    x2 = torch.cat([torch.zeros(2, 1, 1, dtype=torch.float64), x[:-2]])
    x3 = torch.cat([torch.zeros(3, 1, 1, dtype=torch.float64), x[:-3]])
    torch.testing.assert_close(layer.delay.grad, (w * (x3 - x2) * r).sum().reshape(1, 1) / DT)


@pytest.mark.parametrize("per", ["synapse", "axon"])
def test_delay_gradient_at_max_delay_is_the_left_derivative(per):
    """At d = max_delay (where constrain_ puts every clamped delay) the gradient is that of
    the interpolation inside [0, D], the one-sided difference from below, not that of the
    weight fading out beyond D (issue 17)."""
    torch.manual_seed(13)
    layer = DelayedLinear(3, 2, 4e-3, dt=DT, per=per).double()
    with torch.no_grad():
        layer.delay.fill_(4e-3)  # in float64: no float32 rounding above D to snap away
    x = torch.randn(25, 2, 3, dtype=torch.float64)
    r = torch.randn(25, 2, 2, dtype=torch.float64)

    def loss():
        return (layer(x)[0] * r).sum()

    value = float(loss().detach())
    loss().backward()
    eps = 0.25 * DT  # the model is linear in each delay on [D − 1, D]
    left = torch.zeros_like(layer.delay)
    with torch.no_grad():
        for k in range(layer.delay.numel()):
            layer.delay.view(-1)[k] -= eps
            left.view(-1)[k] = (value - float(loss())) / eps
            layer.delay.view(-1)[k] += eps
    torch.testing.assert_close(layer.delay.grad, left, rtol=1e-6, atol=1e-8)
    # the old right derivative: the weight leaves tap D for a tap D + 1 that is dropped
    w = layer.weight.detach()
    x4 = torch.cat([torch.zeros(4, 2, 3, dtype=torch.float64), x[:-4]])
    fading = -torch.einsum("tbj,ji,tbi->ji", r, w, x4) / DT
    right = fading if per == "synapse" else fading.sum(0)
    assert not torch.allclose(layer.delay.grad, right)


def test_gradient_descent_learns_a_delay_towards_the_true_one():
    torch.manual_seed(7)
    teacher, _ = Delay(4)(x := torch.randn(200, 8, 1))
    layer = DelayedLinear(1, 1, 8e-3, dt=DT, delay=3.3e-3)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    layer.weight.requires_grad_(False)
    net = Network({"input": Input(1), "fc": layer, "out": CubaLI(1, dt=DT)})
    opt = torch.optim.SGD([layer.delay], lr=1e-7)
    for _ in range(60):
        opt.zero_grad()
        loss = ((layer(x)[0] - teacher) ** 2).mean()
        loss.backward()
        opt.step()
        net.constrain_()
    assert float(layer.delay.detach()) == pytest.approx(4e-3, abs=0.05e-3)


# ----------------------------------------------------------------------------- constraints
def test_constrain_clamps_learned_delays_into_zero_to_max_delay():
    net = Network({"input": Input(3), "fc": DelayedLinear(3, 2, 4e-3, dt=DT),
                   "out": CubaLI(2, dt=DT)})
    with torch.no_grad():
        net.layers.fc.delay.copy_(torch.tensor([[-1e-3, 2e-3, 9e-3], [4e-3, 0.0, 5e-3]]))
    net.constrain_()
    torch.testing.assert_close(net.layers.fc.delay.detach(),
                               torch.tensor([[0.0, 2e-3, 4e-3], [4e-3, 0.0, 4e-3]]))


def test_fixed_delays_are_a_buffer_and_the_default_draw_is_uniform_in_range():
    torch.manual_seed(8)
    fixed = DelayedLinear(50, 40, 25e-3, dt=DT, learn_delay=False)
    assert "delay" in dict(fixed.named_buffers())
    assert {n for n, _ in fixed.named_parameters()} == {"weight"}
    d = fixed.delay
    assert d.shape == (40, 50) and float(d.min()) >= 0 and float(d.max()) <= 25e-3
    assert abs(float(d.mean()) - 12.5e-3) < 0.5e-3  # uniform on [0, 25 ms]: mean 12.5 ms
    assert DelayedLinear(5, 2, 3e-3, dt=DT, per="axon").delay.shape == (5,)
    assert fixed.max_steps == 25


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda: DelayedLinear(3, 2, 5e-3, dt=DT, delay=-1e-3), ParameterError,
     r"delay \(per synapse, seconds\) must lie in \[0, max_delay = 0.005 s\], got -0.001 s"),
    (lambda: DelayedLinear(3, 2, 5e-3, dt=DT, delay=6e-3), ParameterError,
     r"must lie in \[0, max_delay = 0.005 s\], got 0.006 s"),
    (lambda: DelayedLinear(3, 2, 5e-3, dt=DT, per="axon",
                           delay=torch.tensor([1e-3, float("nan"), 2e-3])), ParameterError,
     r"\[0, max_delay = 0.005 s\], got nan s at index \[1\]"),
    (lambda: DelayedLinear(3, 2, 5e-3, dt=DT, delay=float("inf")), ParameterError,
     r"\[0, max_delay = 0.005 s\], got inf s"),
    (lambda: DelayedLinear(3, 2, 5e-3, dt=DT, delay=torch.tensor([[0.0, 1e-3, 2e-3],
                                                                   [3e-3, 7e-3, 0.0]])),
     ParameterError, r"got 0.007 s at index \[1, 1\]"),
    (lambda: DelayedLinear(3, 2, 5e-3, dt=DT, delay=torch.zeros(3)), ShapeError,
     r"must have shape \(2, 3\)"),
    (lambda: DelayedLinear(3, 2, 5e-3, dt=DT, delay="2ms"), ArgumentTypeError, "got '2ms'"),
    (lambda: DelayedLinear(3, 2, -1e-3, dt=DT), ParameterError, r"max_delay \(s\) must be"),
    (lambda: DelayedLinear(3, 2, 2.5e-3, dt=DT), ParameterError,
     "must be a whole number of steps dt = 0.001 s, got 2.5"),
    (lambda: DelayedLinear(3, 2, 5e-3, dt=0.0), TimeStepError, "dt must be a finite number"),
    (lambda: DelayedLinear(3, 2, 5e-3, dt=DT, per="neuron"), ParameterError,
     r"per must be one of \['synapse', 'axon'\]"),
    (lambda: DelayedLinear(0, 2, 5e-3, dt=DT), ParameterError, "in_features"),
])
def test_bad_construction_raises_a_specific_error(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_a_float32_delay_of_max_delay_is_not_refused():
    layer = DelayedLinear(2, 2, 25e-3, dt=DT, delay=torch.full((2, 2), 25e-3))
    assert float(layer.delay.detach().max()) == pytest.approx(25e-3)


@pytest.mark.parametrize("per", ["synapse", "axon"])
def test_forward_refuses_delays_outside_zero_to_max_delay_naming_the_worst(per):
    """A delay trained out of [0, max_delay] without constrain_ would lose its taps: forward
    refuses it, naming the worst; within float32 rounding of max_delay it runs (issue 17)."""
    layer = DelayedLinear(3, 2, 5e-3, dt=DT, per=per, delay=1e-3)
    x = spikes(10, 2, 3)
    good, _ = layer(x)
    at = "[1, 2]" if per == "synapse" else "[2]"
    with torch.no_grad():
        layer.delay.view(-1)[0] = -1e-3
        layer.delay.view(-1)[-1] = 8e-3  # the worst: 3 ms above
    with pytest.raises(ParameterError, match=r"delay \(per " + per + r", seconds\) must lie in "
                                             r"\[0, max_delay = 0\.005 s\], got 0\.008 s at "
                                             r"index " + re.escape(at) + r" \(the worst of 2 "
                                             r"outside\): call constrain_\(\)"):
        layer(x)
    net = Network({"input": Input(3), "fc1": layer, "out": CubaLI(2, dt=DT)})
    with pytest.raises(ParameterError, match=r"got 0\.008 s at index " + re.escape(at)):
        net(x)  # the simulator's path (the graph's node), not only the layer's forward
    with torch.no_grad():
        layer.delay.view(-1)[-1] = float("nan")
    with pytest.raises(ParameterError, match=r"got nan s at index " + re.escape(at)):
        layer(x)
    with torch.no_grad():
        layer.delay.fill_(1e-3)
    torch.testing.assert_close(layer(x)[0], good)
    with torch.no_grad():
        layer.delay.fill_(5e-3 * (1 + 1e-7))  # a rounding above max_delay: the tap at D
    want = explicit(x, layer.weight.detach(), torch.full_like(layer.delay, 5.0))
    torch.testing.assert_close(layer(x)[0].double(), want, rtol=1e-5, atol=1e-6)


def test_initial_delays_keep_float64_in_a_float64_network():
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        for per, given in (("synapse", torch.full((2, 3), 1 / 3 * 1e-2, dtype=torch.float64)),
                           ("axon", [1 / 3 * 1e-2] * 3), ("synapse", 1 / 3 * 1e-2)):
            layer = DelayedLinear(3, 2, 5e-3 * 2, dt=DT, per=per, delay=given)
            assert layer.delay.dtype == torch.float64
            assert torch.all(layer.delay.detach() == 1 / 3 * 1e-2)  # not rounded to float32
    finally:
        torch.set_default_dtype(default)
    layer = DelayedLinear(3, 2, 10e-3, dt=DT, delay=1 / 3 * 1e-2)
    assert layer.delay.dtype == torch.float32
    assert torch.all(layer.delay.detach() == torch.tensor(1 / 3 * 1e-2, dtype=torch.float32))


def test_wrong_input_shapes_and_dt_mismatch_are_refused():
    layer = DelayedLinear(3, 2, 5e-3, dt=DT)
    with pytest.raises(ShapeError, match=r"expected \[T, B, 3\]"):
        layer(torch.zeros(5, 2, 4))
    with pytest.raises(ShapeError, match=r"expects input of shape \(3,\)"):
        _ = Network({"input": Input(4), "fc": layer, "out": CubaLI(2, dt=DT)}).graph
    with pytest.raises(TimeStepError, match=r"all populations and delayed projections of a "
                                            r"network must share one dt .*fc 0\.002 s, out "
                                            r"0\.001 s"):
        _ = Network({"input": Input(3), "fc": DelayedLinear(3, 2, 4e-3, dt=2e-3),
                     "out": CubaLI(2, dt=DT)}).graph


# ----------------------------------------------------------------------------- IR, backends
def test_the_ir_node_holds_the_live_parameters_and_settings():
    net = Network({"input": Input(3), "fc": DelayedLinear(3, 2, 4e-3, dt=DT, per="axon",
                                                          bias=True),
                   "out": CubaLI(2, dt=DT)})
    node = net.graph["fc"]
    assert (node.kind, node.op, node.synapses) == ("projection", "DelayedLinear", 6)
    assert set(node.params) == {"weight", "delay", "bias"}
    assert node.params["delay"] is net.layers.fc.delay
    assert node.settings == {"dt": DT, "max_steps": 4, "per": "axon"}
    assert node.delay_line and not net.graph["out"].delay_line
    assert node.num_parameters == 6 + 3 + 2
    with pytest.raises(AttributeError):  # dt, max_delay and per are fixed at construction
        net.layers.fc.dt = 2e-3


def test_the_event_backend_refuses_per_synapse_delays_by_name():
    """Per-axon delays run on the event backend (tests/test_event_delays.py); a delay per
    synapse is refused, naming the layer and what runs."""
    net = Network({"input": Input(3), "fc": DelayedLinear(3, 2, 4e-3, dt=DT),
                   "h": CubaLIF(2, dt=DT), "fc2": Linear(2, 2), "out": CubaLI(2, dt=DT)})
    with pytest.raises(ParameterError, match=r"layer 'fc' is a DelayedLinear with a delay per "
                                             r"synapse .* runs DelayedLinear with per=\"axon\""):
        net(spikes(10, 1, 3), backend="event")


def _delayed_net(per="axon", bias=True, delay=None):
    torch.manual_seed(4)
    net = Network({"input": Input(6),
                   "fc": DelayedLinear(6, 5, 6e-3, dt=DT, per=per, bias=bias, delay=delay),
                   "h": CubaLIF(5, dt=DT), "fc2": Linear(5, 3), "out": CubaLI(3, dt=DT)})
    with torch.no_grad():
        net.layers.fc.weight.mul_(6.0)
    return net


def _same_layer(a, b):
    """Two DelayedLinear layers with the same settings and (bitwise) parameters."""
    assert (type(b), b.per, b.max_delay, b.dt) == (type(a), a.per, a.max_delay, a.dt)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.delay, b.delay)
    assert (a.bias is None) == (b.bias is None)
    assert a.bias is None or torch.equal(a.bias, b.bias)


def _same_run(a_net, b_net, x):
    a, b = a_net(x), b_net(x)
    assert a["h"].spikes.sum() > 10
    for name in ("h", "out"):
        assert torch.equal(a[name].v, b[name].v), name
    assert torch.equal(a["h"].spikes, b["h"].spikes)


@pytest.mark.parametrize("bias", [True, False])
def test_nir_round_trip_of_per_axon_delays_is_exact(tmp_path, bias):
    """Per-axon delays at whole steps export as NIR Delay → Linear/Affine; the file loads back
    as the same DelayedLinear (per axon, same parameters and max_delay) with the same spikes
    and membranes in every population."""
    import nir

    from spikeloop.interop import load_nir, save_nir, to_nir

    net = _delayed_net(bias=bias, delay=torch.tensor([0, 6, 2, 3, 1, 6]) * DT)
    g = to_nir(net)
    assert isinstance(g.nodes["fc_delay"], nir.Delay)
    assert isinstance(g.nodes["fc"], nir.Affine if bias else nir.Linear)
    assert ("input", "fc_delay") in g.edges and ("fc_delay", "fc") in g.edges
    assert ("fc", "h") in g.edges
    assert list(g.nodes["fc_delay"].delay) == pytest.approx([0, 6e-3, 2e-3, 3e-3, 1e-3, 6e-3])
    save_nir(net, tmp_path / "d.nir")
    back = load_nir(tmp_path / "d.nir", dt=DT)
    assert [(n.name, n.op) for n in back.graph][:3] == [
        ("input", "Input"), ("fc", "DelayedLinear"), ("h", "CubaLIF")]
    _same_layer(net.layers.fc, back.layers.fc)
    _same_run(net, back, spikes(40, 2, 6, p=0.4, seed=5))
    assert to_nir(back).nodes["fc_delay"].delay.tolist() == g.nodes["fc_delay"].delay.tolist()


@pytest.mark.parametrize("bias", [True, False])
def test_nir_round_trip_of_per_synapse_delays_is_exact(tmp_path, bias):
    """Per-synapse delays at whole steps export as one branch Delay → Linear per distinct
    delay, summed into the population (the bias on the shortest branch only); the file, written
    and read by nir.write / nir.read, loads back as one DelayedLinear per synapse with the same
    parameters and max_delay, and the same spikes and membranes."""
    import nir

    from spikeloop.interop import from_nir, to_nir

    steps = torch.tensor([[0, 6, 2, 3, 1, 6], [2, 2, 2, 0, 3, 1], [3, 3, 6, 6, 0, 1],
                          [1, 2, 3, 0, 6, 2], [0, 0, 1, 3, 3, 2]])  # 4 and 5 unused
    net = _delayed_net(per="synapse", bias=bias, delay=steps.double() * DT)
    g = to_nir(net)
    branches = [0, 1, 2, 3, 6]
    assert [k for k in g.nodes if k.startswith("fc_")] == [
        n for d in branches for n in (f"fc_d{d}_delay", f"fc_d{d}")]
    w = net.layers.fc.weight.detach().numpy()
    total = 0
    for d in branches:
        delay, proj = g.nodes[f"fc_d{d}_delay"], g.nodes[f"fc_d{d}"]
        assert delay.delay.tolist() == [d * DT] * 6
        assert ("input", f"fc_d{d}_delay") in g.edges and (f"fc_d{d}_delay", f"fc_d{d}") in g.edges
        assert (f"fc_d{d}", "h") in g.edges
        assert isinstance(proj, nir.Affine if bias and d == 0 else nir.Linear)
        mask = (steps == d).numpy()
        assert (proj.weight[mask] == w[mask]).all() and (proj.weight[~mask] == 0).all()
        total += proj.weight
    assert (total == w).all()
    if bias:
        assert (g.nodes["fc_d0"].bias == net.layers.fc.bias.detach().numpy()).all()
    nir.write(tmp_path / "s.nir", g)
    back = from_nir(nir.read(tmp_path / "s.nir"), dt=DT)
    assert [(n.name, n.op) for n in back.graph][:3] == [
        ("input", "Input"), ("fc", "DelayedLinear"), ("h", "CubaLIF")]
    _same_layer(net.layers.fc, back.layers.fc)
    _same_run(net, back, spikes(40, 2, 6, p=0.4, seed=5))
    assert list(to_nir(back).nodes) == list(g.nodes)


def test_nir_per_synapse_delays_all_equal_export_as_one_branch():
    """Equal delays on every synapse: one Delay → Linear branch, which the metadata marks as a
    per-synapse layer, so it loads back as one (max_delay kept although no delay reaches it)."""
    from spikeloop.interop import from_nir, to_nir

    net = _delayed_net(per="synapse", bias=False, delay=2e-3)
    g = to_nir(net)
    assert [k for k in g.nodes if k.startswith("fc_")] == ["fc_d2_delay", "fc_d2"]
    assert ("fc_d2", "h") in g.edges
    back = from_nir(g, dt=DT)
    _same_layer(net.layers.fc, back.layers.fc)
    assert back.layers.fc.max_delay == 6e-3
    _same_run(net, back, spikes(40, 2, 6, p=0.4, seed=6))


def test_nir_export_refuses_per_synapse_delays_between_steps_by_name():
    from spikeloop.interop import to_nir

    delay = torch.full((5, 6), 2.0)
    delay[1, 4], delay[3, 2] = 2.3, 4.45
    net = _delayed_net(per="synapse", delay=delay.double() * DT)
    with pytest.raises(NIRError, match=r"'fc': DelayedLinear delays must be whole steps.*got "
                                       r"0\.00445 s = 4\.45 steps at synapse \[3, 2\] \(out, in\) "
                                       r"\(2 off a whole step\): call round_delays_\(\)"):
        to_nir(net)
    net.layers.fc.round_delays_()
    assert [k for k in to_nir(net).nodes if k.startswith("fc_")] == [
        "fc_d2_delay", "fc_d2", "fc_d4_delay", "fc_d4"]


def _foreign_branches(w1, w2, s1, s2, b1=None):
    """A NIR graph as another writer would give it (no spikeloop metadata): input(3) → Delay
    s1·dt → W1 and → Delay s2·dt → W2, summed into a CubaLIF(2) read out by an LI."""
    import nir
    import numpy as np

    def proj(w, b):
        w = np.array(w, dtype=np.float32)
        return nir.Linear(weight=w) if b is None else nir.Affine(
            weight=w, bias=np.array(b, dtype=np.float32))

    cuba = {k: np.full(2, v, dtype=np.float32) for k, v in (
        ("tau_syn", 5e-3), ("tau_mem", 10e-3), ("r", 1.0), ("v_leak", 0.0),
        ("v_threshold", 1.0), ("v_reset", 0.0))}
    nodes = {"in": nir.Input(input_type=np.array([3])),
             "a_delay": nir.Delay(delay=np.array(s1, dtype=np.float64) * DT),
             "a": proj(w1, b1),
             "b_delay": nir.Delay(delay=np.array(s2, dtype=np.float64) * DT), "b": proj(w2, None),
             "h": nir.CubaLIF(w_in=cuba["tau_syn"] / DT, **cuba),
             "ro": nir.Linear(weight=np.eye(2, dtype=np.float32)),
             "out": nir.LI(tau=np.full(2, 10e-3), r=np.ones(2), v_leak=np.zeros(2)),
             "o": nir.Output(output_type=np.array([2]))}
    edges = [("in", "a_delay"), ("a_delay", "a"), ("a", "h"), ("in", "b_delay"),
             ("b_delay", "b"), ("b", "h"), ("h", "ro"), ("ro", "out"), ("out", "o")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def test_nir_import_fuses_unmarked_disjoint_branches_into_one_per_synapse_layer():
    """Branches from another writer (no metadata, delays that differ per input) whose weights
    never share a synapse import as one DelayedLinear per synapse: d[j, i] is the delay of input
    i in the branch holding W[j, i]; a synapse zero in both branches takes its input's shortest
    delay; max_delay is the largest delay. Checked against the definition by explicit loops."""
    from spikeloop.interop import from_nir

    w1, w2 = [[2.0, 0.0, 1.5], [0.0, 0.0, 0.0]], [[0.0, 3.0, 0.0], [2.5, 0.0, 0.0]]
    s1, s2 = [1, 2, 3], [4, 0, 2]
    net = from_nir(_foreign_branches(w1, w2, s1, s2, b1=[0.0, 0.5]), dt=DT)
    fc = net.layers.a
    assert isinstance(fc, DelayedLinear) and fc.per == "synapse" and "b" not in net.layers
    assert fc.max_delay == pytest.approx(4e-3)
    # [1, 1] and [1, 2] are zero in both branches: min(2, 0) and min(3, 2)
    want = torch.tensor([[1, 0, 3], [4, 0, 2]], dtype=torch.float64)
    assert torch.equal(fc.delay, (want * DT).float())
    assert torch.equal(fc.weight, torch.tensor([[2.0, 3.0, 1.5], [2.5, 0.0, 0.0]]))
    assert torch.equal(fc.bias, torch.tensor([0.0, 0.5]))
    x = spikes(30, 2, 3, p=0.4, seed=7)
    y, _ = fc(x)
    ref = (explicit(x, torch.tensor(w1), torch.tensor(s1, dtype=torch.float64),
                    torch.tensor([0.0, 0.5]))
           + explicit(x, torch.tensor(w2), torch.tensor(s2, dtype=torch.float64)))
    torch.testing.assert_close(y.double(), ref, rtol=0, atol=1e-6)


def test_nir_import_keeps_overlapping_branches_as_summed_delay_and_linear_layers():
    """Two branches that weight the same synapse cannot be one DelayedLinear (one delay per
    synapse): they import as Delay + Linear layers summed into the population (GraphNetwork),
    the same model; one unmarked branch stays Delay + Linear as well."""
    from spikeloop.interop import from_nir
    from spikeloop.network import GraphNetwork

    w1, w2 = [[2.0, 0.0, 1.5], [0.0, 1.0, 0.0]], [[0.0, 3.0, 0.5], [2.5, 0.0, 0.0]]
    s1, s2 = [1, 2, 3], [4, 0, 2]  # synapse [0, 2] in both, at 3 and 2 steps
    net = from_nir(_foreign_branches(w1, w2, s1, s2), dt=DT)
    assert isinstance(net, GraphNetwork)
    assert sorted((n.name, n.op) for n in net.graph)[:4] == [
        ("a", "Linear"), ("a_delay", "Delay"), ("b", "Linear"), ("b_delay", "Delay")]
    x = spikes(30, 2, 3, p=0.4, seed=8)
    ref = (explicit(x, torch.tensor(w1), torch.tensor(s1, dtype=torch.float64))
           + explicit(x, torch.tensor(w2), torch.tensor(s2, dtype=torch.float64)))
    h = net(x)["h"]  # its population, driven by the summed branches of the definition:
    alone, _ = net.layers.h(ref.float())
    assert float(h.spikes.detach().sum()) > 5
    assert torch.equal(h.spikes, alone.spikes)
    torch.testing.assert_close(h.v, alone.v, rtol=0, atol=1e-6)
    one = from_nir(_foreign_branches(w1, [[0.0] * 3] * 2, s1, s2), dt=DT)  # w2 = 0: disjoint
    assert isinstance(one.layers.a, DelayedLinear) and "b" not in one.layers
    g = _foreign_branches(w1, w2, s1, s2)
    del g.nodes["b_delay"], g.nodes["b"]
    g.edges[:] = [e for e in g.edges if "b" not in e and "b_delay" not in e]
    assert [(n.name, n.op) for n in from_nir(g, dt=DT).graph][1:3] == [
        ("a_delay", "Delay"), ("a", "Linear")]


def test_nir_import_refuses_malformed_delay_metadata():
    from spikeloop.interop import from_nir, to_nir

    g = to_nir(_delayed_net(per="synapse", bias=False, delay=2e-3))
    g.nodes["fc_d2"].metadata["spikeloop_delay_per"] = "dendrite"
    with pytest.raises(NIRError, match=r"NIR Linear node 'fc_d2': metadata "
                                       r"'spikeloop_delay_layer' = 'fc' and "
                                       r"'spikeloop_delay_per' = 'dendrite'"):
        from_nir(g, dt=DT)


def test_round_delays_moves_delays_to_whole_steps_and_then_they_export():
    from spikeloop.interop import to_nir

    net = _delayed_net(delay=torch.tensor([0.2, 5.7, 2.4, 3.49, 1.0, 6.0]) * DT)
    with pytest.raises(NIRError, match=r"whole steps.*0\.00349 s = 3\.49 steps at input 3 "
                                       r"\(4 off a whole step\): call round_delays_\(\)"):
        to_nir(net)
    net.layers.fc.round_delays_()
    steps = net.layers.fc.delay.double() / DT
    assert torch.allclose(steps, torch.tensor([0, 6, 2, 3, 1, 6.0], dtype=torch.float64),
                          atol=1e-5)
    assert to_nir(net).nodes["fc_delay"].delay.tolist() == pytest.approx(
        [0, 6e-3, 2e-3, 3e-3, 1e-3, 6e-3])
    net.layers.fc.delay.data[1] = 7e-3  # beyond max_delay: refused, not hidden by rounding
    with pytest.raises(ParameterError, match="must lie in"):
        net.layers.fc.round_delays_()


def test_ops_delayed_linear_with_no_delay_line_is_a_linear():
    torch.manual_seed(9)
    w = torch.randn(3, 4)
    x = torch.randn(6, 2, 4)
    y, state = ops.delayed_linear(x, w, torch.zeros(3, 4), DT, 0)
    torch.testing.assert_close(y, ops.linear(x, w))
    assert state.shape == (0, 2, 4)


@pytest.mark.parametrize("per", ["synapse", "axon"])
@pytest.mark.parametrize("hidden", ["CubaLIF", "AdLIF"])
def test_a_delayed_network_spikes_the_same_on_the_fused_kernel_and_the_reference_loop(
        per, hidden):
    """The dense simulator's two engines (fused neuron loop, reference step loop) give the
    same spikes for a delayed network, and the same delay and weight gradients."""
    from spikeloop.nn import AdLIF

    torch.manual_seed(21)
    pop = (CubaLIF(8, dt=DT, recurrent=True) if hidden == "CubaLIF"
           else AdLIF(8, dt=DT, recurrent=True, learn=("a", "b")))
    net = Network({"input": Input(6), "fc": DelayedLinear(6, 8, 6e-3, dt=DT, per=per),
                   "h": pop, "fc2": Linear(8, 3), "out": CubaLI(3, dt=DT)})
    with torch.no_grad():
        net.layers.fc.weight.normal_(0.6 if hidden == "CubaLIF" else 3.5, 0.5)
    x = spikes(60, 4, 6, p=0.4, seed=22)
    runs = {}
    for kernel in ("fused", "reference"):
        net.zero_grad()
        out = net(x, backend={"name": "sim", "kernel": kernel})
        (out.output.v.amax(0).sum() + out["h"].spikes.sum()).backward()
        runs[kernel] = (out["h"].spikes, out.output.v, net.layers.fc.delay.grad.clone(),
                        net.layers.fc.weight.grad.clone())
    fused, ref = runs["fused"], runs["reference"]
    assert 0.03 < float(fused[0].detach().mean()) < 0.8  # spiking, not saturated
    assert torch.equal(fused[0], ref[0])
    torch.testing.assert_close(fused[1], ref[1], rtol=1e-5, atol=1e-5)
    assert float(ref[2].abs().max()) > 0
    for a, b in zip(fused[2:], ref[2:], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))


def test_nir_export_refuses_delays_outside_the_range():
    from spikeloop.interop import to_nir

    net = _delayed_net(delay=torch.tensor([0, 1, 2, 3, 4, 5]) * DT)
    net.layers.fc.delay.data[2] = -2e-3  # set behind the layer's back: never exported
    with pytest.raises(ParameterError, match=r"must lie in \[0, max_delay = 0\.006 s\], got "
                                             r"-0\.002 s at index \[2\].*NIR export"):
        to_nir(net)


def test_per_axon_delays_of_another_dtype_than_the_input():
    """float64 inputs and weights with float32 delays (and bfloat16 ones) run per axon as per
    synapse does, with the same values."""
    torch.manual_seed(31)
    x, w = spikes(12, 2, 3, seed=31).double(), torch.randn(4, 3, dtype=torch.float64)
    d = torch.tensor([1e-3, 2.5e-3, 0.0])
    y, _ = ops.delayed_linear(x, w, d, DT, 3)
    want, _ = ops.delayed_linear(x, w, d.expand(4, 3), DT, 3)  # the same float32 fractions
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, want)
    yb, _ = ops.delayed_linear(x.bfloat16(), w.bfloat16(), d, DT, 3)
    assert yb.dtype == torch.bfloat16
    torch.testing.assert_close(yb.double(), want, rtol=2e-2, atol=5e-2)


def _event_and_dense_paths(x, state, delay, d, n_out, seed):
    """``ops.delayed_linear`` with ``event=True`` and ``False`` on the same input, weights
    (``[n_out, in]`` from ``seed``), bias and output gradient: both runs' outputs, state and
    weight, delay and bias gradients agree (float32 sums in another order); returns them."""
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(n_out, x.shape[-1], generator=g)
    b0 = torch.randn(n_out, generator=g)
    r = torch.randn(x.shape[0], x.shape[1], n_out, generator=g)
    runs = []
    for event in (True, False):
        w, dl, bias = (p.clone().requires_grad_() for p in (w0, delay, b0))
        y, new_state = ops.delayed_linear(x, w, dl, DT, d, bias, state, event=event)
        (y * r).sum().backward()
        runs.append((y, new_state, w.grad, dl.grad, bias.grad))
    for got, want in zip(*runs, strict=True):
        scale = float(want.detach().abs().max()) if want.numel() else 0.0
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * scale)
    return runs, w0


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("max_steps", [0, 1, 7])
def test_per_axon_from_events_equals_the_dense_per_axon_path(with_state, max_steps):
    """The event path of per-axon delays (native: each input event becomes two delayed events;
    the backward pass reads dy only where they land) gives the dense path's outputs, state and
    weight, delay and bias gradients, on delays at 0, at whole steps, between steps and at
    max_delay."""
    from spikeloop.kernels import native
    from spikeloop.kernels.fused import event_delay_axon

    if native.library() is None:
        pytest.skip(f"native kernels unavailable: {native.unavailable_reason()}")
    t, b, n_in, n_out, d = 40, 3, 24, 70, max_steps  # 70 outputs: a 64-wide block and a tail
    x = spikes(t, b, n_in, p=0.08, seed=40)
    state = spikes(d, b, n_in, p=0.08, seed=41) if with_state else None
    g = torch.Generator().manual_seed(42)
    delay = torch.rand(n_in, generator=g) * d * DT
    delay[:4] = torch.tensor([0.0, d, d // 2, max(d - 0.5, 0)]) * DT
    runs, w0 = _event_and_dense_paths(x, state, delay, d, n_out, seed=43)
    if d:
        assert float(runs[1][3].abs().max()) > 0  # the delays do get a gradient
    lo, frac = ops.delay_taps(delay, DT, d)  # the event path did run
    assert event_delay_axon(x, state, w0, lo, frac, None, d) is not None


@pytest.mark.parametrize("threads", [1, 2])
def test_per_axon_events_on_a_larger_layer_take_the_blocked_gradient_on_any_thread_count(
        threads):
    """A layer large enough for the blocked weight gradient (in × out > 8192) with enough events
    to share among threads: the event path's two passes over the lo taps' rows (the hi taps'
    rows are the same rows one step earlier) still give the dense path's output and gradients
    (with state, delays between and at whole steps)."""
    from spikeloop.kernels import native

    if native.library() is None:
        pytest.skip(f"native kernels unavailable: {native.unavailable_reason()}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        d = 5
        x = spikes(60, 8, 150, p=0.08, seed=60)
        state = spikes(d, 8, 150, p=0.08, seed=61)
        delay = torch.rand(150, generator=torch.Generator().manual_seed(62)) * d * DT
        delay[:2] = torch.tensor([2.0, float(d)]) * DT
        runs, _ = _event_and_dense_paths(x, state, delay, d, 70, seed=63)
        assert float(runs[0][3].abs().max()) > 0
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(("n_out", "n_in"), [(70, 24), (256, 700), (17, 33)])
def test_per_axon_weight_and_delay_gradients_from_both_taps_in_one_native_pass(n_out, n_in):
    """From the taps' sums ``A_lo``, ``A_hi`` the native pass gives the weight gradient
    ``(1 − f) ⊙ A_lo + f ⊙ A_hi`` bit for bit as autograd forms it from the split weights
    ``[(1 − f) ⊙ W, f ⊙ W]``, in W's layout, and the fraction's ``Σ_m (A_hi − A_lo) W`` (float
    sums in another order); small and large shapes (threads start at 64 K entries), one thread
    and two."""
    from spikeloop.kernels import native

    lib = native.library()
    if lib is None:
        pytest.skip(f"native kernels unavailable: {native.unavailable_reason()}")
    g = torch.Generator().manual_seed(n_in)
    w = torch.randn(n_out, n_in, generator=g)
    f = torch.rand(n_in, generator=g)
    f[:3] = torch.tensor([0.0, 1.0, 0.5])
    a_lo, a_hi = (torch.randn(n_in, n_out, generator=g) for _ in range(2))
    threads = torch.get_num_threads()
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            native.set_threads()
            dw, df = torch.full_like(w, float("nan")), torch.full_like(f, float("nan"))
            tmp = torch.empty(2 * w.numel())
            lib.sl_delay_axon_grads(n_out, n_in, a_lo.data_ptr(), a_hi.data_ptr(), w.data_ptr(),
                                    f.data_ptr(), dw.data_ptr(), df.data_ptr(), tmp.data_ptr())
            assert torch.equal(dw, a_lo.t() * (1 - f) + a_hi.t() * f)
            want = ((a_hi - a_lo).t().double() * w.double()).sum(0).float()
            torch.testing.assert_close(df, want, rtol=1e-5, atol=1e-4)
    finally:
        torch.set_num_threads(threads)
        native.set_threads()


def test_per_axon_events_fall_back_to_the_dense_path_where_they_do_not_apply():
    """An input that needs a gradient (a delay line fed by a hidden layer), a dense input and a
    float64 one take the dense path, which also gives the input's gradient."""
    from spikeloop.kernels.fused import event_delay_axon

    x = spikes(10, 2, 5, p=0.05, seed=50)
    lo, frac = ops.delay_taps(torch.full((5,), 1.5e-3), DT, 3)
    w = torch.randn(4, 5)
    assert event_delay_axon(x.clone().requires_grad_(), None, w, lo, frac, None, 3) is None
    dense = spikes(10, 2, 5, p=0.5, seed=51)
    assert event_delay_axon(dense, None, w, lo, frac, None, 3) is None
    assert event_delay_axon(x.double(), None, w.double(), lo, frac.double(), None, 3) is None
    xg = x.clone().requires_grad_()
    y, _ = ops.delayed_linear(xg, w, torch.full((5,), 1.5e-3), DT, 3, event=True)
    y.sum().backward()
    assert xg.grad is not None and float(xg.grad.abs().sum()) > 0


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("max_steps", [0, 1, 7])
def test_per_synapse_from_events_equals_the_dense_per_synapse_path(with_state, max_steps):
    """The event path of per-synapse delays (native: each input event is scattered to its two
    taps for every output; the backward pass reads dy only where they land) gives the dense
    convolution's outputs, state and weight, delay and bias gradients, on delays at 0, at whole
    steps, between steps and at max_delay, with more than 64 outputs, for spikes (value 1) and
    graded events."""
    from spikeloop.kernels import native
    from spikeloop.kernels.fused import event_delay_synapse

    if native.library() is None:
        pytest.skip(f"native kernels unavailable: {native.unavailable_reason()}")
    t, b, n_in, n_out, d = 40, 3, 24, 70, max_steps  # 70 outputs: no multiple of 4, 8 or 64
    x = spikes(t, b, n_in, p=0.08, seed=60)
    x[:, :, ::2] *= torch.rand(t, b, n_in // 2, generator=torch.Generator().manual_seed(63)) + 0.5
    state = spikes(d, b, n_in, p=0.08, seed=61) if with_state else None
    g = torch.Generator().manual_seed(62)
    delay = torch.rand(n_out, n_in, generator=g) * d * DT
    delay[:4, :4] = torch.tensor([0.0, d, d // 2, max(d - 0.5, 0)]) * DT  # along each row
    delay[4:8, :4] = delay[:4, :4].t()  # and along each column
    runs, w0 = _event_and_dense_paths(x, state, delay, d, n_out, seed=64)
    assert float(runs[1][3].abs().max()) > 0  # the delays do get a gradient
    lo, frac = ops.delay_taps(delay, DT, d)  # the event path did run
    assert event_delay_synapse(x, state, w0, lo, frac, None, d) is not None


@pytest.mark.parametrize("threads", [1, 2])
def test_per_synapse_events_on_a_wide_layer_on_any_thread_count(threads):
    """205 outputs: the backward pass's sums of each input's events in three 64-wide blocks of
    registers, one 8-wide and a tail of five; batch rows shared among the threads, each row's
    events taken input by input (with repeated inputs per row: several events per sum), graded
    events, state, delays between and at whole steps: the dense path's output and gradients."""
    from spikeloop.kernels import native
    from spikeloop.kernels.fused import event_delay_synapse

    if native.library() is None:
        pytest.skip(f"native kernels unavailable: {native.unavailable_reason()}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        d, n_in, n_out = 6, 9, 205
        x = spikes(50, 5, n_in, p=0.1, seed=80)  # ~5 events per input and row
        x[:, :, 1] *= 2.0  # graded
        state = spikes(d, 5, n_in, p=0.1, seed=81)
        delay = torch.rand(n_out, n_in, generator=torch.Generator().manual_seed(82)) * d * DT
        delay[::3, 0] = torch.arange(0, n_out, 3) % (d + 1) * DT  # whole steps, 0 and max
        runs, w0 = _event_and_dense_paths(x, state, delay, d, n_out, seed=83)
        assert float(runs[0][3].abs().max()) > 0
        lo, frac = ops.delay_taps(delay, DT, d)
        assert event_delay_synapse(x, state, w0, lo, frac, None, d) is not None
    finally:
        torch.set_num_threads(before)


def test_per_synapse_events_fall_back_to_the_dense_path_where_they_do_not_apply():
    """An input that needs a gradient (a delay line fed by a hidden layer), a dense input and a
    float64 one take the dense convolution, which also gives the input's gradient."""
    from spikeloop.kernels.fused import event_delay_synapse

    x = spikes(10, 2, 5, p=0.05, seed=70)
    delay = torch.full((4, 5), 1.5e-3)
    lo, frac = ops.delay_taps(delay, DT, 3)
    w = torch.randn(4, 5)
    assert event_delay_synapse(x.clone().requires_grad_(), None, w, lo, frac, None, 3) is None
    dense = spikes(10, 2, 5, p=0.5, seed=71)
    assert event_delay_synapse(dense, None, w, lo, frac, None, 3) is None
    assert event_delay_synapse(x.double(), None, w.double(), lo, frac.double(), None,
                               3) is None
    xg = x.clone().requires_grad_()
    y, _ = ops.delayed_linear(xg, w, delay, DT, 3, event=True)
    y.sum().backward()
    assert xg.grad is not None and float(xg.grad.abs().sum()) > 0


@pytest.mark.parametrize("per", ["axon", "synapse"])
@pytest.mark.parametrize("kernel", ["auto", "reference"])
@pytest.mark.parametrize("density", [0.05, 0.5])  # event path / dense fallback
@pytest.mark.parametrize("where", [0, -1])  # first and last entry
def test_non_finite_input_read_by_a_delayed_projection_is_named(per, kernel, density, where):
    """A DelayedLinear reading the input checks it on the delay line's events (not in a pass
    over all of it) where its event path runs, and the whole input where it takes the dense
    path: NaN or inf anywhere gives the Input's error either way."""
    from spikeloop.errors import NonFiniteError
    from spikeloop.kernels import native
    from test_network import finite_check_sizes

    torch.manual_seed(3)
    net = Network({"input": Input(30), "fc1": DelayedLinear(30, 12, 5e-3, dt=DT, per=per),
                   "hidden": CubaLIF(12), "fc2": Linear(12, 3), "out": CubaLI(3)})
    x = spikes(20, 3, 30, p=density, seed=5)
    for bad in (float("nan"), float("inf")):
        x.view(-1)[where] = bad
        with pytest.raises(NonFiniteError, match=r"^Input: input holds NaN or infinite values"):
            net(x, backend={"name": "sim", "kernel": kernel})
    x.view(-1)[where] = 1.0  # finite again: runs
    seen = finite_check_sizes(lambda: net(x, backend={"name": "sim", "kernel": kernel}))
    events = kernel == "auto" and density < 0.15 and native.library() is not None
    assert (x.numel() in seen) != events  # the event path never reads all of x for the check


@pytest.mark.parametrize("per", ["axon", "synapse"])
def test_delay_line_events_from_state_and_input_equal_the_written_out_line(per):
    """The event paths take the delay line's events from the state and the input without
    writing the line out: the same output and next state as the dense path over the written-out
    line, for a state shorter and longer than the input (T < D and T > D)."""
    from spikeloop.kernels import native

    if native.library() is None:
        pytest.skip(f"native kernels unavailable: {native.unavailable_reason()}")
    d, n_in, n_out = 6, 9, 5
    g = torch.Generator().manual_seed(8)
    w = torch.randn(n_out, n_in, generator=g)
    delay = (torch.rand(n_in if per == "axon" else (n_out, n_in), generator=g) * d) * DT
    for t in (3, 15):
        x = spikes(t, 2, n_in, p=0.1, seed=t)
        state = spikes(d, 2, n_in, p=0.1, seed=t + 1)
        y_e, s_e = ops.delayed_linear(x, w, delay, DT, d, state=state, event=True)
        y_d, s_d = ops.delayed_linear(x, w, delay, DT, d, state=state, event=False)
        torch.testing.assert_close(y_e, y_d, rtol=1e-5, atol=1e-6)
        assert torch.equal(s_e, s_d)
        assert s_e.data_ptr() != x.data_ptr()  # a tensor of its own, not a view of x
