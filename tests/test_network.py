"""Modules, network, graph and the simulated backend."""

import copy
import re

import pytest
import torch
from torch import nn

from spikeloop.backends import BACKENDS, SimBackend, get_backend
from spikeloop.errors import (
    DTypeError,
    NonFiniteError,
    ParameterError,
    ShapeError,
    StateError,
    TimeStepError,
    UnknownNameError,
)
from spikeloop.network import Network
from spikeloop.nn import (
    IF,
    LI,
    LIF,
    AdaptiveLIF,
    Conv1d,
    Conv2d,
    CubaLI,
    CubaLIF,
    Flatten,
    Input,
    Linear,
)


def mixed_net(recurrent=True):
    torch.manual_seed(0)
    net = Network({
        "input": Input(6),
        "fc1": Linear(6, 16),
        "alif": AdaptiveLIF(16, tau_adapt=50e-3, recurrent=recurrent),
        "fc2": Linear(16, 12),
        "lif": LIF(12, t_refrac=2e-3, reset="subtract"),
        "fc3": Linear(12, 10),
        "if": IF(10),
        "fc4": Linear(10, 8),
        "cuba": CubaLIF(8, recurrent=recurrent),
        "fc5": Linear(8, 3),
        "out": LI(3),
    })
    with torch.no_grad():
        for name, gain in (("fc1", 6.0), ("fc2", 40.0), ("fc3", 3.0), ("fc4", 6.0)):
            net.layers[name].weight.mul_(gain)
    return net


def conv_net():
    torch.manual_seed(1)
    return Network([
        Input((2, 9, 9)), Conv2d(2, 3, 3, stride=2), CubaLIF((3, 4, 4)), Flatten(),
        Linear(48, 5), CubaLI(5),
    ])


def spikes(t, b, n, p=0.2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(t, b, *((n,) if isinstance(n, int) else n), generator=g) < p).float()


def test_network_returns_observables_of_every_population():
    net = mixed_net()
    out = net(spikes(50, 4, 6))
    assert list(out) == ["input", "alif", "lif", "if", "cuba", "out"]
    assert out.output is out["out"]
    assert out["alif"].spikes.shape == (50, 4, 16) and out["alif"].i.shape == (50, 4, 16)
    assert out["lif"].i is None and out["out"].spikes is None
    for name in ("alif", "lif", "if", "cuba"):
        assert out[name].spikes.sum() > 0, f"{name} never spiked: the test would be vacuous"
        assert set(out[name].spikes.unique().tolist()) <= {0.0, 1.0}
    assert out.report.backend == "sim" and out.report.wall["run"] > 0


@pytest.mark.parametrize("make", [mixed_net, conv_net])
def test_step_by_step_equals_whole_sequence(make):
    net = make()
    shape = net.graph.input.shape
    x = spikes(40, 3, shape if len(shape) > 1 else shape[0], p=0.3)
    whole = net(x)
    stepped = net(x, backend={"name": "sim", "mode": "step"})
    for name in whole:
        for field, value in whole[name].items():
            other = getattr(stepped[name], field)
            if field == "spikes":
                assert torch.equal(value, other), name
            else:
                torch.testing.assert_close(value, other, rtol=1e-6, atol=1e-6)


def test_streaming_chunks_equal_one_long_call():
    net = mixed_net()
    x = spikes(60, 2, 6, p=0.3)
    whole = net(x)
    first = net(x[:25])
    second = net(x[25:], first.state)
    torch.testing.assert_close(torch.cat([first.output.v, second.output.v]), whole.output.v)
    assert torch.equal(torch.cat([first["cuba"].spikes, second["cuba"].spikes]),
                       whole["cuba"].spikes)


def test_streaming_state_must_match_the_batch():
    net = mixed_net()
    first = net(spikes(5, 4, 6))
    with pytest.raises(StateError, match="B = 4, the input has B = 3"):
        net(spikes(5, 3, 6), first.state)


def test_integer_and_bool_input_is_cast_losslessly_and_says_so():
    net = mixed_net()
    x = spikes(5, 2, 6)
    want = net(x)
    for dtype in (torch.long, torch.int32, torch.bool, torch.float16, torch.float64):
        out = net(x.to(dtype))
        assert torch.equal(out.output.v, want.output.v), dtype
        assert out.report.warnings[0] == (f"Input: {dtype} input cast to the network's "
                                          "torch.float32 (no value changed)")
    assert want.report.warnings == []


def test_input_that_a_cast_would_change_is_a_dtype_error():
    x = spikes(5, 2, 6).double()
    x[0, 0, 0] = 0.1  # not a float32 value
    with pytest.raises(DTypeError, match=r"float64 and the network torch.float32; casting "
                                          r"would change values \(e.g. 0.1 →"):
        mixed_net()(x)


def test_constrain_projects_learned_time_constants_above_dt():
    pop = CubaLIF(3, dt=1e-3, learn=("tau_mem", "tau_syn", "v_threshold"))
    with torch.no_grad():
        pop.tau_mem[0] = 0.5e-3
        pop.tau_syn[1] = -1.0
        pop.v_threshold[2] = -5.0
    net = Network({"input": Input(3), "hidden": pop})
    with pytest.raises(TimeStepError, match="tau_mem"):
        net(spikes(2, 1, 3))
    net.constrain_()
    assert pop.tau_mem[0].item() == pytest.approx(2e-3)
    assert pop.tau_syn[1].item() == pytest.approx(2e-3)
    assert pop.v_threshold[2].item() == -5.0  # only time constants are constrained
    net(spikes(2, 1, 3))


def test_gradients_of_smooth_losses_equal_finite_differences():
    torch.manual_seed(3)
    net = Network({
        "input": Input(4), "fc1": Linear(4, 5),
        "li": CubaLI(5, tau_mem=8e-3, tau_syn=3e-3, learn=("tau_mem", "tau_syn", "v_leak")),
        "fc2": Linear(5, 2), "out": LI(2, tau_mem=6e-3, learn=("tau_mem", "r")),
    }).double()
    x = spikes(30, 3, 4, p=0.3).double()

    def loss():
        out = net(x)
        return (out.output.v ** 2).sum() + out["li"].v.pow(3).mean()

    params = dict(net.named_parameters())
    assert set(params) >= {"layers.li.tau_mem", "layers.out.r", "layers.fc1.weight"}
    loss().backward()
    for name, p in params.items():
        for idx in [(0,), (-1,)] if p.dim() == 1 else [(0, 0), (1, 2)]:
            eps = 1e-7 * max(1.0, abs(p[idx].item()))
            with torch.no_grad():
                p[idx] += eps
                up = loss().item()
                p[idx] -= 2 * eps
                down = loss().item()
                p[idx] += eps
            fd = (up - down) / (2 * eps)
            assert p.grad[idx].item() == pytest.approx(fd, rel=1e-5, abs=1e-8), name


def test_surrogate_gradient_reaches_every_trainable_parameter():
    net = mixed_net()
    out = net(spikes(30, 4, 6, p=0.4))
    out.output.v.max(0).values.sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_learnable_parameters_are_per_neuron():
    pop = CubaLIF(7, tau_mem=torch.linspace(5e-3, 20e-3, 7), learn=("tau_mem", "v_threshold"))
    assert isinstance(pop.tau_mem, torch.nn.Parameter) and pop.tau_mem.shape == (7,)
    assert pop.v_threshold.shape == (7,) and pop.tau_syn.requires_grad is False
    with pytest.raises(ParameterError, match="cannot learn"):
        CubaLIF(3, learn=("tau_ahp",))
    with pytest.raises(ParameterError, match="no parameter"):
        CubaLIF(3, tau_membrane=1.0)
    with pytest.raises(ShapeError, match="per-neuron"):
        CubaLIF(3, tau_mem=torch.ones(4))


def test_graph_summary_counts():
    net = mixed_net()
    g = net.graph
    assert g.num_neurons == 16 + 12 + 10 + 8 + 3
    assert g.num_synapses == 6 * 16 + 16 * 16 + 16 * 12 + 12 * 10 + 10 * 8 + 8 * 8 + 8 * 3
    assert g.num_parameters == sum(p.numel() for p in net.parameters())
    assert ("alif", "alif.recurrent") in g.edges() and ("alif.recurrent", "alif") in g.edges()
    assert g["cuba"].params["tau_mem"] is net.layers.cuba.tau_mem  # live values
    assert g["lif"].settings["reset"] == "subtract" and g["lif"].settings["dt"] == 1e-3
    text = net.summary()
    assert "total" in text and str(g.num_synapses) in text
    c = conv_net().graph
    assert c["conv2d_1"].shape == (3, 4, 4)
    assert c["conv2d_1"].synapses == 3 * 4 * 4 * 2 * 3 * 3
    assert c["flatten_3"].shape == (48,)


def test_conv1d_network_runs():
    net = Network([Input((2, 10)), Conv1d(2, 4, 3), LIF((4, 8)), Flatten(), Linear(32, 2), LI(2)])
    assert net(spikes(5, 2, (2, 10))).output.v.shape == (5, 2, 2)


def test_shape_errors_name_the_problem():
    net = mixed_net()
    with pytest.raises(ShapeError, match="rank 3"):
        net(torch.zeros(4, 6))
    with pytest.raises(ShapeError, match=r"\[T, B, 6\]"):
        net(torch.zeros(4, 2, 5))
    with pytest.raises(ShapeError, match="time axis"):
        net(torch.zeros(0, 2, 6))
    with pytest.raises(ShapeError, match="Input"):
        Network([Linear(3, 2), LI(2)])
    with pytest.raises(ShapeError, match="input features"):
        Network([Input(3), Linear(4, 2), LI(2)])
    with pytest.raises(ShapeError, match="shape"):
        Network([Input(3), Linear(3, 2), LI(3)])
    with pytest.raises(ShapeError, match="must be a population"):
        Network([Input(3), Linear(3, 2)])
    with pytest.raises(ParameterError, match="invalid layer name 'pop'"):
        Network({"input": Input(3), "pop": LI(3)})
    with pytest.raises(ParameterError, match=r"invalid layer name 'a\.b'"):
        Network({"input": Input(3), "a.b": LI(3)})
    with pytest.raises(ShapeError, match="1-d"):
        LIF((2, 2), recurrent=True)


def test_non_finite_inputs_and_weights_are_errors():
    net = mixed_net()
    x = spikes(5, 2, 6)
    x[2, 1, 3] = float("nan")
    with pytest.raises(NonFiniteError, match="NaN"):
        net(x)
    broken = copy.deepcopy(net)
    with torch.no_grad():
        broken.layers.fc2.weight[0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"fc2\.weight"):
        broken(spikes(5, 2, 6))
    with pytest.raises(NonFiniteError, match="tau_mem"):
        LIF(3, tau_mem=float("nan"))


def test_parameters_set_after_a_run_are_checked_by_the_next():
    """check_parameters keeps its list of tensors between runs: a parameter or buffer set on a
    layer, a layer replaced, and a module, parameter or buffer registered on the network
    itself after a run are each checked (and named) by the next run."""
    x = spikes(5, 2, 6)
    nan = torch.tensor([float("nan")])
    changes = [
        ("layers.fc2.weight", lambda n: setattr(n.layers.fc2, "weight", nn.Parameter(
            torch.full((12, 16), float("nan"))))),
        ("layers.lif.extra", lambda n: n.layers.lif.register_buffer("extra", nan.clone())),
        ("layers.fc5.weight", lambda n: n.layers.__setitem__("fc5", _nan_linear(8, 3))),
        ("extra.weight", lambda n: setattr(n, "extra", _nan_linear(2, 2))),
        ("scale", lambda n: n.register_parameter("scale", nn.Parameter(nan.clone()))),
        ("offset", lambda n: n.register_buffer("offset", nan.clone())),
    ]
    for name, change in changes:
        net = mixed_net()
        net(x)  # lists the tensors
        change(net)
        with pytest.raises(NonFiniteError, match=re.escape(repr(name))):
            net(x)


def _nan_linear(n_in, n_out):
    layer = Linear(n_in, n_out)
    with torch.no_grad():
        layer.weight.fill_(float("nan"))
    return layer


def test_finite_flags_name_each_non_finite_tensor():
    """finite_flags (check_parameters' one-synchronisation check) against all_finite per tensor:
    matrices through their aminmax ends (-inf and +inf together, NaN, huge finite ends whose sum
    would overflow), single entries, empty, half and double, complex and integer tensors."""
    from spikeloop.checks import all_finite, finite_flags

    nan, inf = float("nan"), float("inf")
    tensors = [torch.randn(3, 4), torch.tensor(1.0), torch.tensor([nan]), torch.tensor([1.0, inf]),
               torch.tensor([-inf, 0.0, inf]), torch.tensor([[0.0, nan], [1.0, 2.0]]),
               torch.empty(0), torch.tensor([3.4e38, 3.4e38]), torch.randn(5).half(),
               torch.tensor([1.0, -inf]).half(), torch.randn(4, dtype=torch.float64),
               torch.tensor([1 + 2j, complex(inf, 0)]), torch.tensor([1 + 1j]), torch.arange(3)]
    want = [all_finite(t) for t in tensors]
    assert want == [True, True, False, False, False, False, True, True, True, False, True, False,
                    True, True]
    assert finite_flags(tensors) == want
    assert finite_flags([]) == []


def test_native_finite_scan_agrees_with_the_torch_check(monkeypatch):
    """kernels.native.finite_flags (the scan check_parameters and the membrane check use) against
    checks.finite_flags: a non-finite value at every position of every length up to 40 (the
    vectorised loop and its remainder), NaN with either sign and another payload, ±inf, the
    largest finite float, subnormals and -0.0, transposed matrices (scanned as one block), a
    column slice and a double tensor (torch path), mixed in one call in order; and the same
    flags without the native library."""
    import struct

    from spikeloop.checks import finite_flags as torch_flags
    from spikeloop.kernels import native

    nan, inf = float("nan"), float("inf")
    payload = struct.unpack("f", struct.pack("I", 0xFFC00123))[0]  # NaN, sign bit set
    specials = [nan, -nan, payload, inf, -inf]
    tensors = []
    for n in range(1, 41):
        for at in range(n):
            t = torch.randn(n)
            t[at] = specials[(n + at) % len(specials)]
            tensors.append(t)
        tensors.append(torch.randn(n))
    edge = torch.tensor([3.4028235e38, -3.4028235e38, 1e-45, -1e-45, -0.0, 0.0])
    strided = torch.randn(6, 4).t()
    strided[1, 2] = nan
    tensors += [edge, torch.tensor(inf), torch.tensor(2.0), torch.empty(0), strided,
                torch.tensor([1.0, inf], dtype=torch.float64), strided.t().contiguous()[:, :1],
                strided.t()]
    want = torch_flags(tensors)
    assert want.count(True) == 40 + 4 and not want[-4] and not want[-3] and want[-2]
    assert not want[-1]  # (a matrix stored transposed: scanned as one block)
    assert native.finite_flags(tensors) == want
    monkeypatch.setenv("SPIKELOOP_NATIVE", "0")
    assert native.library() is None and native.finite_flags(tensors) == want


def test_chips_and_event_backend_load_when_first_named():
    """Importing spikeloop loads neither the chips nor the event backend, and builds or loads no
    native library (memory, import time; the time loop itself lives in spikeloop.kernels and
    imports with the populations); naming a backend imports and registers it (the chips
    through their entry points); a lazy entry whose module registers nothing is an error that
    names the module."""
    import subprocess
    import sys

    from spikeloop.registry import Registry

    code = ("import sys, spikeloop; from spikeloop.backends import BACKENDS; "
            "heavy = ('spikeloop.chips', 'spikeloop.backends.event'); "
            "from spikeloop.kernels import native; "
            "print(sorted(m for m in sys.modules if m.startswith(heavy)), native._LIBRARY._tried); "
            "print(BACKENDS.names()); print(type(BACKENDS.build('xylo')).__name__, "
            "type(BACKENDS.build({'name': 'chip', 'seed': 1})).__name__); "
            "from spikeloop.backends import EventBackend; print(EventBackend.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == "[] False"
    assert out[1] == str(["analog", "chip", "event", "sim", "xylo"])
    assert out[2:] == ["XyloBackend AnalogChipBackend", "EventBackend"]
    registry: Registry[object] = Registry("thing")
    registry.add_lazy("ghost", "spikeloop.errors")
    assert "ghost" in registry and registry.names() == ["ghost"]
    with pytest.raises(UnknownNameError, match=r"importing spikeloop\.errors did not register"):
        registry.get("ghost")
    with pytest.raises(ValueError, match="already registered"):
        registry.add_lazy("ghost", "spikeloop.errors")


def finite_check_sizes(run) -> list[int]:
    """The sizes of the tensors :func:`spikeloop.checks.all_finite` checks while ``run()``
    runs (which must succeed)."""
    import spikeloop.checks as pops

    seen: list[int] = []
    real = pops.all_finite
    try:
        pops.all_finite = lambda t: seen.append(t.numel()) or real(t)
        run()
    finally:
        pops.all_finite = real
    return seen


@pytest.mark.parametrize("kernel", ["auto", "reference"])
@pytest.mark.parametrize("density", [0.05, 0.5])  # event path / dense fallback of fc1
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_is_named_whichever_path_checks_it(kernel, density, bad):
    """With event-driven input projections the input is checked on its events, not in a pass
    of its own: NaN and ±inf anywhere (here the last entry) still give the Input's error."""
    torch.manual_seed(2)
    net = Network({"input": Input(40), "fc1": Linear(40, 16), "hidden": CubaLIF(16),
                   "fc2": Linear(16, 3), "out": CubaLI(3)})
    x = (torch.rand(20, 3, 40) < density).float()
    x[-1, -1, -1] = bad
    with pytest.raises(NonFiniteError, match=r"^Input: input holds NaN or infinite values"):
        net(x, backend={"name": "sim", "kernel": kernel})
    x[-1, -1, -1] = 1.0
    from spikeloop.kernels import native

    seen = finite_check_sizes(lambda: net(x, backend={"name": "sim", "kernel": kernel}))
    events = kernel == "auto" and native.library() is not None
    assert (x.numel() in seen) != events  # the event path never reads all of x for the check


def test_a_backend_must_say_its_readout_range():
    class Partial:  # all of the protocol but readout_range
        name, differentiable = "partial", True

        def run(self, graph, x, state=None): ...
        def get_rng_state(self): ...
        def set_rng_state(self, state): ...
        def with_dense(self, population, neuron): ...

    with pytest.raises(ParameterError, match=r"\['readout_range'\]"):
        get_backend(Partial())
    net = mixed_net()
    assert get_backend("sim").readout_range(net.graph, net.graph.output.name) is None

    class Named(SimBackend):  # a complete class whose instances may lack the name
        def __init__(self, name=None):
            if name is not None:
                object.__setattr__(self, "named", name)

        def __getattribute__(self, key):
            if key == "name" and "named" not in vars(self):
                raise AttributeError(key)
            return object.__getattribute__(self, key)

    whole = Named("whole")
    assert get_backend(whole) is whole and get_backend(whole) is whole  # (the class known)
    with pytest.raises(ParameterError, match=r"\['name'\]"):
        get_backend(Named())  # checked per instance, not taken from the class's first pass


def test_unknown_backend_and_time_step_errors():
    with pytest.raises(UnknownNameError, match="chipz"):
        mixed_net()(spikes(3, 1, 6), backend="chipz")
    with pytest.raises(ParameterError, match="mode"):
        get_backend({"name": "sim", "mode": "fast"})
    assert "sim" in BACKENDS and isinstance(get_backend("sim"), SimBackend)
    with pytest.raises(TimeStepError, match="tau_syn"):
        CubaLIF(3, dt=1e-3, tau_syn=1e-3)
    with pytest.raises(ParameterError, match="method"):
        LIF(3, method="rk4")
