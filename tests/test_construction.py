"""Construction of layers and networks validates every argument, and the traced graph never
disagrees with the modules (issue 15)."""

import copy
import pickle

import numpy as np
import pytest
import torch

from spikeloop.errors import (
    ArgumentTypeError,
    NonFiniteError,
    ParameterError,
    ShapeError,
    TimeStepError,
    UnknownNameError,
)
from spikeloop.network import GraphNetwork, Network
from spikeloop.nn import (
    IF,
    LI,
    LIF,
    AdaptiveLIF,
    AdLIF,
    AvgPool2d,
    Conv1d,
    Conv2d,
    CubaLI,
    CubaLIF,
    CubaLIF2,
    Delay,
    Input,
    Integrator,
    Linear,
    Scale,
    SumPool2d,
    Threshold,
)

POPULATION_CLASSES = [LIF, CubaLIF, AdaptiveLIF, AdLIF, IF, LI, CubaLI, CubaLIF2, Integrator]
NAN, INF = float("nan"), float("inf")


def make_net(**hidden) -> Network:
    """The issue's network: 4 → 10 CubaLIF → 3 CubaLI."""
    torch.manual_seed(0)
    return Network({"input": Input(4), "fc1": Linear(4, 10), "hidden": CubaLIF(10, **hidden),
                    "fc2": Linear(10, 3), "output": CubaLI(3)})


def spikes(t: int = 30, b: int = 2, n: int = 4) -> torch.Tensor:
    return (torch.rand(t, b, n, generator=torch.Generator().manual_seed(1)) < 0.3).float()


def run(net: Network, backend: str = "sim", t: int = 30) -> dict[str, torch.Tensor]:
    out = net(spikes(t), backend=backend)
    return {name: out[name].spikes if out[name].spikes is not None else out[name].v
            for name in ("hidden", "output")}


def still_runs(net: Network) -> None:
    """The network (after an error) runs and gives what a fresh one gives."""
    with torch.no_grad():
        expected = run(make_net())
        got = run(net)
    assert all(torch.equal(expected[k], got[k]) for k in expected)


# ----------------------------------------------------------------------------- the cases
@pytest.mark.parametrize(("build", "error", "match"), [
    (lambda: Linear(4, -1), ParameterError, r"Linear out_features must be an integer ≥ 1, got -1"),
    (lambda: Linear(0, 3), ParameterError, r"Linear in_features must be an integer ≥ 1, got 0"),
    (lambda: Linear(4.0, 3), ArgumentTypeError, r"Linear in_features must be an integer, got 4\.0"),
    (lambda: Linear(4, 3, bias=1), ArgumentTypeError, r"Linear bias must be True or False"),
    (lambda: Input(4.0), ArgumentTypeError, r"Input shape must be a positive integer .* got 4\.0"),
    (lambda: Input("16"), ArgumentTypeError, r"Input shape .* got '16' \(str\)"),
    (lambda: CubaLIF("23"), ArgumentTypeError, r"CubaLIF shape .* got '23' \(str\)"),
    (lambda: CubaLIF(10, tau_mem="10ms"), ArgumentTypeError,
     r"CubaLIF tau_mem \(s\) must be a real number or per-neuron values of shape \(10,\), "
     r"got '10ms' \(str\)"),
    (lambda: CubaLIF(10, tau_mem=None), ArgumentTypeError, r"CubaLIF tau_mem .* got None"),
    (lambda: CubaLIF(10, dt=None), TimeStepError, r"CubaLIF dt must be a finite number > 0 s, "
                                                  r"got None"),
    (lambda: CubaLIF(10, surrogate=42), ArgumentTypeError,
     r"CubaLIF surrogate must be a surrogate name \(.*superspike.*\), .* got 42 \(int\)"),
    (lambda: Network(None), ArgumentTypeError, r"layers must be a mapping of layer names to "
                                               r"layers or a list of layers, got None"),
    (lambda: Network({"input": Input(4), "training": Linear(4, 3), "o": CubaLI(3)}),
     ParameterError, r"invalid layer name 'training'"),
    (lambda: Network({"input": Input(4), "_modules": Linear(4, 3), "o": CubaLI(3)}),
     ParameterError, r"invalid layer name '_modules'"),
    (lambda: Network({"input": Input(4), 3: Linear(4, 3), "o": CubaLI(3)}),
     ArgumentTypeError, r"invalid layer name 3: layer names must be strings"),
    (lambda: Network({"input": Input(4), "fc": 3, "o": CubaLI(3)}), ArgumentTypeError,
     r"layer 'fc' must be a layer \(a torch\.nn\.Module .*\), got 3 \(int\)"),
    (lambda: Network("input"), ArgumentTypeError, r"layers must be a mapping"),
    (lambda: GraphNetwork({"i": Input(4), "fc": Linear(4, 3), "o": CubaLI(3)},
                          {"fc": ["nope"], "o": ["fc"]}),
     UnknownNameError, r"inputs\['fc'\] names \['nope'\], which the network does not have; "
                       r"layers: \['i', 'fc', 'o'\]"),
    (lambda: GraphNetwork({"i": Input(4), "fc": Linear(4, 3), "o": CubaLI(3)},
                          {"fc": "i", "o": ["fc"]}),
     ArgumentTypeError, r"inputs\['fc'\] must be a list of names, got 'i' \(str\); write \['i'\]"),
    (lambda: GraphNetwork({"i": Input(4), "fc": Linear(4, 3), "o": CubaLI(3)}, None),
     ArgumentTypeError, r"inputs must be a mapping of layer names to lists of source names"),
    (lambda: GraphNetwork({"i": Input(4), "fc": Linear(4, 3), "o": CubaLI(3)},
                          {"fc": ["i"], "o": ["fc"], "x": ["fc"]}),
     UnknownNameError, r"inputs are given for layers the network does not have: \['x'\]"),
])
def test_bad_construction_raises_a_specific_error(build, error, match):
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize("shape", [np.int64(4), torch.tensor(4), np.array(4), (4,), [4],
                                   torch.Size([4])])
def test_lossless_integer_shapes_work(shape):
    net = Network({"input": Input(shape), "fc1": Linear(np.int64(4), torch.tensor(10)),
                   "hidden": CubaLIF(np.int32(10)), "fc2": Linear(10, 3), "output": CubaLI(3)})
    assert net.layers.input.shape == (4,) and net.layers.hidden.shape == (10,)
    assert all(isinstance(s, int) for s in net.layers.input.shape)
    assert net(spikes())["output"].v.shape == (30, 2, 3)


def test_graph_network_must_end_in_a_population():
    layers = {"i": Input(4), "fc": Linear(4, 3)}
    with pytest.raises(ShapeError, match=r"the last layer 'fc' must be a population .*: a "
                                         r"network's output is a population, not a Linear"):
        GraphNetwork(layers, {"fc": ["i"]})
    with pytest.raises(ShapeError, match=r"the last layer 'fc' must be a population"):
        Network(layers)
    net = GraphNetwork({**layers, "o": CubaLI(3)}, {"fc": ["i"], "o": ["fc"]})
    assert net.graph.output.name == "o"  # the same layers with a readout work


def test_graph_network_refuses_a_projection_that_feeds_nothing():
    layers = {"i": Input(4), "fc": Linear(4, 3), "side": Linear(4, 3), "o": CubaLI(3)}
    with pytest.raises(ShapeError, match=r"layers \['side'\] feed no other layer"):
        GraphNetwork(layers, {"fc": ["i"], "side": ["i"], "o": ["fc"]})
    net = GraphNetwork(layers, {"fc": ["i"], "side": ["i"], "o": ["fc", "side"]})
    assert net.graph["o"].inputs == ("fc", "side")


def test_populations_of_one_network_share_one_dt():
    with pytest.raises(TimeStepError, match=r"all populations and delayed projections of a "
                                            r"network must share one dt \(one time grid\), "
                                            r"got hidden 0\.001 s, output 0\.0005 s"):
        Network({"input": Input(4), "fc1": Linear(4, 10), "hidden": CubaLIF(10, dt=1e-3),
                 "fc2": Linear(10, 3), "output": CubaLI(3, dt=0.5e-3)})
    net = make_net()  # changing one population's dt afterwards: refused at the next run
    net.layers.hidden.dt = 0.5e-3
    with pytest.raises(TimeStepError, match=r"got hidden 0\.0005 s, output 0\.001 s"):
        net(spikes())
    net.layers.hidden.dt = 1e-3
    still_runs(net)


# ----------------------------------------------------------------------------- neuron parameters
def _tensor_params(cls):
    return cls.description.tensor_names


CASES = [(cls, name) for cls in POPULATION_CLASSES for name in _tensor_params(cls)]


@pytest.mark.parametrize(("cls", "name"), CASES, ids=[f"{c.__name__}.{n}" for c, n in CASES])
def test_every_parameter_of_every_model_is_checked(cls, name):
    who = cls.__name__
    bad_types = ["1", None, True, 1 + 2j, ["a", "b"], [[1.0], [1.0, 2.0]],
                 torch.ones(3, dtype=torch.bool)]
    for value in bad_types:
        with pytest.raises(ArgumentTypeError, match=rf"^{who} {name}( \(s\))? must be a real "
                                                    r"number or per-neuron values of shape \(3,\)"):
            cls(3, **{name: value})
    for value in (NAN, INF, -INF, torch.tensor([0.1, NAN, 0.1]), np.array([0.1, 0.1, INF])):
        with pytest.raises(NonFiniteError, match=rf"^{who} {name}.* must be finite"):
            cls(3, **{name: value})
    with pytest.raises(ShapeError, match=rf"{who} {name}.*: per-neuron values must have shape "
                                         r"\(3,\) \(or be one number\), got shape \(2,\)"):
        cls(3, **{name: torch.full((2,), 0.1)})
    if name.startswith("tau_"):
        for value in (0.0, -1e-3, torch.tensor([0.01, -0.01, 0.01])):
            with pytest.raises(ParameterError, match=rf"{who} {name} \(s\) must be > 0"):
                cls(3, **{name: value})
        good = 20e-3
    else:
        good = 0.5
    default = getattr(cls(3), name)
    for value in (good, np.float32(good), torch.full((3,), good), np.full(3, good),
                  [good] * 3, torch.full((3,), good, dtype=torch.float64)):
        pop = cls(3, **{name: value})
        got = getattr(pop, name)
        assert got.dtype == default.dtype and torch.allclose(got, torch.tensor(good))


@pytest.mark.parametrize("cls", POPULATION_CLASSES)
def test_common_population_arguments_are_checked(cls):
    who = cls.__name__
    with pytest.raises(ParameterError, match=rf"{who} has no parameter \['tau'\]; known:"):
        cls(3, tau=1.0)
    with pytest.raises(ParameterError, match=rf"{who} method must be one of \['exact', 'euler'\]"):
        cls(3, method="rk4")
    with pytest.raises(TimeStepError, match=rf"{who} dt must be a finite number > 0 s, got 'x'"):
        cls(3, dt="x")
    with pytest.raises(TimeStepError, match=rf"{who} dt must be a finite number > 0 s, got nan"):
        cls(3, dt=NAN)
    with pytest.raises(ArgumentTypeError, match=rf"{who} recurrent must be True or False, got 1"):
        cls(3, recurrent=1)
    with pytest.raises(ArgumentTypeError, match=rf"{who} learn must be a list of names, got "
                                                r"'r' \(str\); write \['r'\]"):
        cls(3, learn="r")
    with pytest.raises(ParameterError, match=rf"{who}: cannot learn \['tau'\]; learnable:"):
        cls(3, learn=["tau"])
    with pytest.raises(ArgumentTypeError, match=rf"{who} shape .* got 3\.0"):
        cls(3.0)
    with pytest.raises(ShapeError, match=rf"{who} shape must be positive integers, got 0"):
        cls(0)
    learned = cls(3, learn=["r"])
    assert isinstance(learned.r, torch.nn.Parameter) and learned.r.shape == (3,)


SPIKING = [c for c in POPULATION_CLASSES if c.spiking]


@pytest.mark.parametrize("cls", SPIKING)
def test_spiking_settings_are_checked(cls):
    who = cls.__name__
    with pytest.raises(ParameterError, match=rf"{who} reset must be one of \['value', "
                                             r"'subtract'\], got 'zero'"):
        cls(3, reset="zero")
    with pytest.raises(ArgumentTypeError, match=rf"{who} t_refrac \(s\) must be a real number, "
                                                r"got '1'"):
        cls(3, t_refrac="1")
    with pytest.raises(ParameterError, match=rf"{who} t_refrac \(s\) must be a finite number ≥ "
                                             r"0, got -0\.001"):
        cls(3, t_refrac=-1e-3)
    with pytest.raises(ParameterError, match=rf"{who} t_refrac \(s\) must be a finite number"):
        cls(3, t_refrac=NAN)
    with pytest.raises(ArgumentTypeError, match=rf"{who} detach_reset must be True or False"):
        cls(3, detach_reset=1)
    pop = cls(3, reset="subtract", t_refrac=np.float64(2e-3), detach_reset=False)
    assert pop.settings == {"reset": "subtract", "t_refrac": 2e-3, "detach_reset": False}


def test_surrogate_specs_are_checked():
    with pytest.raises(ArgumentTypeError, match=r"surrogate 'superspike': beta must be a real "
                                                r"number, got True"):
        CubaLIF(3, surrogate={"name": "superspike", "beta": True})
    with pytest.raises(ArgumentTypeError, match=r"surrogate 'superspike': beta must be a real "
                                                r"number, got '10'"):
        CubaLIF(3, surrogate={"name": "superspike", "beta": "10"})
    with pytest.raises(ParameterError, match=r"surrogate 'arctan': alpha must be a finite number "
                                             r"> 0, got nan"):
        CubaLIF(3, surrogate={"name": "arctan", "alpha": NAN})
    with pytest.raises(UnknownNameError, match=r"unknown surrogate 'nope'"):
        CubaLIF(3, surrogate="nope")
    assert CubaLIF(3, surrogate={"name": "superspike", "beta": np.float32(4)}).surrogate.beta == 4


def test_recurrent_and_shapes_edge_cases():
    assert CubaLIF(1, recurrent=True).recurrent.weight.shape == (1, 1)
    assert CubaLIF((2, 3)).shape == (2, 3) and LI((1,)).size == 1
    with pytest.raises(ShapeError, match="recurrent populations must be 1-d"):
        CubaLIF((2, 3), recurrent=True)


# ----------------------------------------------------------------------------- projections, layers
@pytest.mark.parametrize(("build", "error", "match"), [
    (lambda: Conv2d(2, 3, 0), ParameterError, r"Conv2d kernel_size must be an integer ≥ 1, got 0"),
    (lambda: Conv2d(2, 3, "3"), ArgumentTypeError, r"Conv2d kernel_size must be an integer or 2 "
                                                   r"integers, got '3'"),
    (lambda: Conv2d(2, 3, (3, 3, 3)), ParameterError, r"Conv2d kernel_size must be one integer "
                                                      r"or 2 integers"),
    (lambda: Conv1d(2.0, 3, 3), ArgumentTypeError, r"Conv1d in_channels must be an integer"),
    (lambda: Conv1d(2, -3, 3), ParameterError, r"Conv1d out_channels must be an integer ≥ 1"),
    (lambda: Conv1d(2, 3, 3, stride=0), ParameterError, r"Conv1d stride must be an integer ≥ 1"),
    (lambda: Conv1d(2, 3, 3, padding=-1), ParameterError, r"Conv1d padding must be an integer "
                                                          r"≥ 0"),
    (lambda: Conv1d(2, 3, 3, padding="full"), ParameterError, r"Conv1d padding must be one of "
                                                              r"\['same', 'valid'\]"),
    (lambda: Conv1d(2, 3, 3, stride=2, padding="same"), ParameterError, r"padding='same' needs "
                                                                        r"stride 1"),
    (lambda: Conv1d(2, 3, 3, dilation=0), ParameterError, r"Conv1d dilation must be"),
    (lambda: Conv1d(2, 3, 3, groups=2), ParameterError, r"Conv1d out_channels \(3\) must be "
                                                        r"divisible by groups \(2\)"),
    (lambda: Conv1d(2, 4, 3, bias=None), ArgumentTypeError, r"Conv1d bias must be True or False"),
    (lambda: Conv1d(2, 4, 3, padding_mode="mirror"), ParameterError, r"Conv1d padding_mode"),
    (lambda: SumPool2d(0), ParameterError, r"SumPool2d kernel_size must be an integer ≥ 1, got 0"),
    (lambda: AvgPool2d("2"), ArgumentTypeError, r"AvgPool2d kernel_size must be an integer or 2"),
    (lambda: AvgPool2d(2, stride=1.5), ArgumentTypeError, r"AvgPool2d stride must be an integer"),
    (lambda: AvgPool2d(2, padding=-1), ParameterError, r"AvgPool2d padding must be an integer ≥ 0"),
    (lambda: Scale(torch.tensor([1.0, NAN])), NonFiniteError, r"Scale scale must be finite"),
    (lambda: Scale("2"), ArgumentTypeError, r"Scale scale must be a real number or an array"),
    (lambda: Threshold(NAN), NonFiniteError, r"Threshold threshold must be finite"),
    (lambda: Threshold(None), ArgumentTypeError, r"Threshold threshold must be a real number"),
    (lambda: Threshold(1.0, surrogate=3), ArgumentTypeError, r"Threshold surrogate must be"),
    (lambda: Delay("3"), ArgumentTypeError, r"Delay steps must be an integer, got '3'"),
    (lambda: Delay(-1), ParameterError, r"Delay steps must be an integer ≥ 0, got -1"),
    (lambda: Delay(torch.tensor([1.0, NAN])), NonFiniteError, r"Delay steps must be finite"),
    (lambda: Delay(torch.tensor([1.0, 1.5])), ParameterError, r"Delay steps must be whole"),
])
def test_bad_layer_arguments(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_valid_layer_edge_cases():
    assert Conv2d(np.int64(2), 3, (3, 1), padding="same").kernel_size == (3, 1)
    assert Conv1d(4, 4, np.array([3]), groups=2, bias=True).bias.shape == (4,)
    assert SumPool2d(np.array([2, 2])).kernel_size == (2, 2)
    assert AvgPool2d((2, 3), stride=torch.tensor([1, 2])).stride == (1, 2)
    assert Delay(np.int64(2)).max_steps == 2 and Delay(torch.tensor([0.0, 2.0])).max_steps == 2
    assert Scale([1, 2]).scale.dtype == torch.float32
    assert Linear(1, 1, bias=np.bool_(True)).bias.shape == (1,)


def test_a_replaced_weight_of_another_shape_is_named_at_the_next_run():
    net = make_net()
    net.layers.fc1.weight = torch.nn.Parameter(torch.zeros(10, 5))
    with pytest.raises(ShapeError, match=r"layer 'fc1': weight has shape \(10, 5\), the layer's "
                                         r"sizes need \(10, 4\)"):
        net(spikes())
    net.layers.fc1.weight = torch.nn.Parameter(make_net().layers.fc1.weight.detach().clone())
    still_runs(net)


# ----------------------------------------------------------------------------- backend default
def test_the_default_backend_is_checked_when_set():
    with pytest.raises(ArgumentTypeError, match=r"backend must be a name \(.*sim.*\), a backend "
                                                r"instance or \{'name': \.\.\., option: "
                                                r"value\}, got 123 \(int\)"):
        Network(dict(make_net().layers), backend=123)
    with pytest.raises(UnknownNameError, match=r"unknown backend 'nope'; known: .*sim"):
        Network(dict(make_net().layers), backend="nope")
    net = make_net()
    with pytest.raises(UnknownNameError, match="nope"):
        net.backend = "nope"
    assert net.backend == "sim"
    still_runs(net)
    net.backend = {"name": "sim"}
    still_runs(net)


# ----------------------------------------------------------------------------- after construction
def test_values_set_after_construction_are_checked_and_the_network_stays_usable():
    net = make_net()
    pop = net.layers.hidden
    with pytest.raises(ArgumentTypeError, match=r"CubaLIF tau_mem \(s\) must be a real number"):
        pop.tau_mem = "10ms"
    with pytest.raises(NonFiniteError, match=r"CubaLIF v_threshold must be finite"):
        pop.v_threshold = torch.full((10,), NAN)
    with pytest.raises(ShapeError, match=r"CubaLIF v_leak: per-neuron values must have shape"):
        pop.v_leak = torch.zeros(9)
    with pytest.raises(NonFiniteError, match=r"CubaLIF r must be finite"):
        pop.register_buffer("r", torch.tensor(NAN))
    with pytest.raises(TimeStepError, match=r"CubaLIF dt must be a finite number > 0 s"):
        pop.dt = None
    with pytest.raises(ParameterError, match=r"CubaLIF method must be one of"):
        pop.method = "rk4"
    with pytest.raises(ArgumentTypeError, match=r"CubaLIF surrogate must be"):
        pop.surrogate = 42
    with pytest.raises(ParameterError, match=r"a population's settings are read-only"):
        pop.settings["reset"] = "subtract"
    with pytest.raises(ParameterError, match=r"CubaLIF has no setting \['tau_mem'\]"):
        pop.settings = {"tau_mem": 1.0}
    with pytest.raises(ParameterError, match=r"CubaLIF reset must be one of"):
        pop.settings = {"reset": "zero"}
    still_runs(net)
    learned = CubaLIF(10, learn=["tau_mem"])
    with pytest.raises(ArgumentTypeError, match=r"CubaLIF tau_mem is learned \(an nn\.Parameter"):
        learned.tau_mem = torch.full((10,), 0.02)
    with pytest.raises(ShapeError, match=r"the new nn\.Parameter must have shape \(10,\)"):
        learned.tau_mem = torch.nn.Parameter(torch.tensor(0.02))
    learned.tau_mem = torch.nn.Parameter(torch.full((10,), 0.02))
    assert isinstance(learned.tau_mem, torch.nn.Parameter)


def test_non_finite_values_set_in_place_are_refused_on_every_backend():
    net = make_net()
    with torch.no_grad():
        net.layers.hidden.tau_syn.fill_(NAN)  # a buffer, not a parameter
    for backend in ("sim", "event", "xylo"):
        with pytest.raises(NonFiniteError, match=r"buffer 'layers\.hidden\.tau_syn' holds NaN"):
            net(spikes(), backend=backend)


def test_networks_copy_and_pickle_with_their_settings():
    net = make_net(reset="subtract")
    for other in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert other.layers.hidden.settings == net.layers.hidden.settings
        with pytest.raises(ParameterError, match="read-only"):
            other.layers.hidden.settings["reset"] = "value"
        assert torch.equal(run(other)["hidden"], run(net)["hidden"])


# ----------------------------------------------------------------------------- the graph follows
def _threshold(value: float) -> torch.Tensor:
    return torch.full((10,), value)


def _new_fc1() -> Linear:
    torch.manual_seed(5)
    layer = Linear(4, 10)
    with torch.no_grad():
        layer.weight.mul_(4)
    return layer


def _set_item(net, layer):
    net.layers["fc1"] = layer


def _set_attr(net, layer):
    net.layers.fc1 = layer


def _set_via_add_module(net, layer):
    net.layers.add_module("fc1", layer)


def _set_via_update(net, layer):
    net.layers.update({"fc1": layer})


@pytest.mark.parametrize("replace", [_set_item, _set_attr, _set_via_add_module, _set_via_update])
@pytest.mark.parametrize("backend", ["sim", "event", "xylo"])
def test_a_replaced_layer_is_used_on_every_backend(replace, backend):
    layer = _new_fc1()  # built before the network runs: its construction moves no counter
    net = make_net()
    assert net.graph["fc1"].params["weight"] is net.layers.fc1.weight  # traced before
    replace(net, layer)
    expected = make_net()
    expected.layers.fc1.load_state_dict(layer.state_dict())
    got, want = run(net, backend, t=12), run(expected, backend, t=12)
    assert got["hidden"].any()  # something to compare
    assert all(torch.equal(got[k], want[k]) for k in got)
    assert net.graph["fc1"].params["weight"] is layer.weight


def _buffer_attr(pop):
    pop.v_threshold = _threshold(0.5)


def _buffer_register(pop):
    pop.register_buffer("v_threshold", _threshold(0.5))


def _buffer_data(pop):
    pop.v_threshold.data = _threshold(0.5)


def _buffer_in_place(pop):
    with torch.no_grad():
        pop.v_threshold.fill_(0.5)


def _settings(pop):
    pop.settings = {"reset": "subtract"}


def _surrogate(pop):  # no effect on the forward pass, but the graph must hold the new one
    pop.surrogate = "arctan"


@pytest.mark.parametrize("change", [_buffer_attr, _buffer_register,
                                    _buffer_data, _buffer_in_place, _settings, _surrogate])
@pytest.mark.parametrize("backend", ["sim", "event", "xylo"])
def test_a_changed_population_is_used_on_every_backend(change, backend):
    net = make_net()
    with torch.no_grad():
        net.layers.fc1.weight.mul_(3)
    assert net.graph["hidden"].settings["reset"] == "value"  # traced before the change
    change(net.layers.hidden)
    expected = make_net(**({"reset": "subtract"} if change is _settings else
                           {"surrogate": "arctan"} if change is _surrogate else
                           {"v_threshold": 0.5}))
    with torch.no_grad():
        expected.layers.fc1.weight.mul_(3)
    got, want = run(net, backend, t=12), run(expected, backend, t=12)
    assert got["hidden"].any()  # something to compare
    assert all(torch.equal(got[k], want[k]) for k in got)
    node = net.graph["hidden"]
    assert node.settings["surrogate"] == expected.graph["hidden"].settings["surrogate"]
    assert node.settings["reset"] == expected.graph["hidden"].settings["reset"]
    assert torch.equal(node.params["v_threshold"].expand(10),
                       expected.graph["hidden"].params["v_threshold"].expand(10))


def test_graph_network_wiring_changes_retrace():
    torch.manual_seed(0)
    net = GraphNetwork({"i": Input(4), "a": Linear(4, 3), "b": Linear(4, 3), "o": CubaLI(3)},
                       {"a": ["i"], "b": ["i"], "o": ["a", "b"]})
    assert net.graph["o"].inputs == ("a", "b")
    net.inputs = {"a": ["i"], "b": ["i"], "o": ["b", "a"]}
    assert net.graph["o"].inputs == ("b", "a")
    net.inputs = {"a": ["i"], "b": ["i"], "o": "a"}  # checked at the next trace
    with pytest.raises(ArgumentTypeError, match=r"inputs\['o'\] must be a list of names"):
        net.graph  # noqa: B018


# ----------------------------------------------------------------------------- records and blocks
def test_parameter_records_refuse_values_that_are_not_numbers():
    from spikeloop.dynamics import CubaLIFParameters, LIFParameters

    with pytest.raises(ArgumentTypeError, match=r"CubaLIFParameters\.tau_mem must be a real "
                                                r"number or a tensor, got '10ms' \(str\)"):
        CubaLIFParameters(tau_mem="10ms").coefficients(1e-3)
    with pytest.raises(ArgumentTypeError, match=r"LIFParameters\.detach_reset must be True or "
                                                r"False, got 1"):
        LIFParameters(detach_reset=1).coefficients(1e-3)
    with pytest.raises(ArgumentTypeError, match=r"t_refrac \(s\) must be a real number, got '1'"):
        LIFParameters(t_refrac="1").coefficients(1e-3)
    c = CubaLIFParameters(tau_mem=np.float32(20e-3)).coefficients(1e-3)
    assert float(c.beta) == pytest.approx(np.exp(-1 / 20))


def test_synnet_arguments_are_checked():
    from spikeloop.network.blocks import multi_time_scale_taus, synnet

    with pytest.raises(ArgumentTypeError, match=r"hidden must be a list of layer sizes, got 8"):
        synnet(4, 8, 2)
    with pytest.raises(ArgumentTypeError, match=r"hidden\[0\] must be an integer, got '8'"):
        synnet(4, ["8"], 2)
    with pytest.raises(ArgumentTypeError, match=r"size must be an integer, got 4\.0"):
        multi_time_scale_taus(4.0, 1e-3, 2)
    with pytest.raises(TimeStepError, match=r"dt must be a finite number > 0 s, got None"):
        synnet(4, [8], 2, dt=None)
    with pytest.raises(ParameterError, match=r"need 1 ≤ scales ≤ size"):
        multi_time_scale_taus(2, 1e-3, 4)
    assert synnet(np.int64(4), (8,), 2).graph.num_neurons == 10
