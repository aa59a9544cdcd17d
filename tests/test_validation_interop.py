"""Issue 15: every public entry point of NIR interop, the Xylo mapper/config/quantiser and the
analog mapper/calibration validates its input: a specific spikeloop error naming the argument,
the value and what is allowed; nothing silently accepted; valid edge inputs still work."""

import copy
import itertools
import json

import nir
import numpy as np
import pytest
import torch

from spikeloop.chips.analog.calibration import AnalogChip
from spikeloop.chips.analog.mapper import map_graph as analog_map
from spikeloop.chips.analog.spec import AnalogChipSpec
from spikeloop.chips.xylo import XyloConfig, XyloSpec, chip_tensors, map_graph, quantize
from spikeloop.errors import (
    ArgumentTypeError,
    ConfigError,
    DTypeError,
    MappingError,
    MissingFileError,
    NIRError,
    NonFiniteError,
    ParameterError,
    ShapeError,
    TimeStepError,
)
from spikeloop.interop import from_nir, load_nir, read_nir, save_nir, to_nir
from spikeloop.network import Network
from spikeloop.nn import LIF, CubaLI, CubaLIF, Input, Linear

F32 = np.float32


# ----------------------------------------------------------------------------- NIR helpers
def lif(n=2, **changes):
    """A NIR LIF of ``n`` neurons; ``changes`` are set after construction (as a graph read from
    a file or built by hand may hold them: NIR's constructors would otherwise infer types)."""
    node = nir.LIF(tau=np.full(n, 1e-2, F32), r=np.ones(n, F32), v_leak=np.zeros(n, F32),
                   v_threshold=np.ones(n, F32))
    for key, value in changes.items():
        setattr(node, key, value)
    return node


def linear(n_out=2, n_in=2, **changes):
    node = nir.Linear(weight=np.ones((n_out, n_in), F32))
    for key, value in changes.items():
        setattr(node, key, value)
    return node


def graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def chain(*nodes, n_in=2, n_out=2, in_type=None, out_type=None):
    """input → nodes… → output, named n0, n1, … (types unchecked by NIR)."""
    names = [f"n{k}" for k in range(len(nodes))]
    all_nodes = {"in": nir.Input(input_type=np.array([n_in]) if in_type is None else in_type),
                 **dict(zip(names, nodes, strict=True)),
                 "out": nir.Output(output_type=np.array([n_out]) if out_type is None
                                   else out_type)}
    order = ["in", *names, "out"]
    return graph(all_nodes, list(itertools.pairwise(order)))


def good():
    return chain(linear(), lif())


def test_valid_graph_imports_and_is_reusable_after_errors():
    g = good()
    before = copy.deepcopy(g)
    with pytest.raises(ParameterError, match="method must be one of"):
        from_nir(g, dt=1e-3, method="rk4")
    with pytest.raises(TimeStepError, match="dt must be a finite number > 0 s, got '1ms'"):
        from_nir(g, dt="1ms")
    net = from_nir(g, dt=1e-3)
    assert isinstance(net, Network)
    out = net(torch.ones(5, 1, 2))
    assert out["n1"].spikes.shape == (5, 1, 2)
    # the failed imports left the NIR graph as it was
    assert list(g.nodes) == list(before.nodes) and g.edges == before.edges
    assert np.array_equal(g.nodes["n1"].tau, before.nodes["n1"].tau)


# ----------------------------------------------------------------------------- NIR: arguments
def test_from_nir_argument_types():
    with pytest.raises(ArgumentTypeError, match=r"graph must be a nir\.NIRGraph.*LIF"):
        from_nir(lif(), dt=1e-3)
    with pytest.raises(ParameterError, match=r"method must be one of \['exact', 'euler'\], got 3"):
        from_nir(good(), dt=1e-3, method=3)
    with pytest.raises(TimeStepError, match=r"got -0\.001"):
        from_nir(good(), dt=-1e-3)


def test_to_nir_arguments_and_non_finite_parameters():
    net = Network({"input": Input(2), "fc": Linear(2, 3), "lif": LIF(3)})
    with pytest.raises(ArgumentTypeError, match="model must be a spikeloop Network or Graph, "
                                                "got 'net'"):
        to_nir("net")
    with pytest.raises(TimeStepError, match="got 'x'"):
        to_nir(net, dt="x")
    with torch.no_grad():
        net.layers["fc"].weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="node 'fc' parameter 'weight'"):
        to_nir(net)
    with torch.no_grad():
        net.layers["fc"].weight[0, 0] = 0.0
    assert "fc" in to_nir(net).nodes  # usable after the error


# ----------------------------------------------------------------------------- NIR: structure
@pytest.mark.parametrize("make,message", [
    (lambda: graph({"in": nir.Input(input_type=np.array([2])), "a": lif(),
                    "out": nir.Output(output_type=np.array([2]))},
                   [("in", "a", "x"), ("a", "out")]),
     r"every edge must be a \(source, destination\) pair of node names, got \('in', 'a', 'x'\)"),
    (lambda: graph({"in": nir.Input(input_type=np.array([2])), "a": lif(),
                    "out": nir.Output(output_type=np.array([2]))}, [("in", "a"), ("a", 3)]),
     r"every edge must be a \(source, destination\) pair of node names, got \('a', 3\)"),
    (lambda: graph({"in": nir.Input(input_type=np.array([2])),
                    "out": nir.Output(output_type=np.array([2]))}, None),
     "edges must be a list of"),
    (lambda: _set(good(), nodes=[lif()]), "nodes must be a dict of node names to NIR nodes"),
    (lambda: _set(good(), nodes={1: lif()}), "node names must be strings, got 1"),
    (lambda: _set(good(), nodes={"a": "lif"}), "node 'a' is a str, not a NIR node"),
    (lambda: graph({"in": nir.Input(input_type=np.array([2])), "a": lif(),
                    "out": nir.Output(output_type=np.array([2]))},
                   [("in", "a"), ("a", "out"), ("a", "zz")]),
     r"edge \('a', 'zz'\) names a node 'zz' that the graph does not have"),
    (lambda: graph({"in": nir.Input(input_type=np.array([2])), "a": lif(), "b": lif(),
                    "out": nir.Output(output_type=np.array([2]))},
                   [("in", "a"), ("a", "out"), ("a", "b")]),
     r"NIR nodes \['b'\] do not lead to the Output node 'out'"),
])
def test_malformed_graph_structure(make, message):
    with pytest.raises(NIRError, match=message):
        from_nir(make(), dt=1e-3)


def _set(obj, **changes):
    for key, value in changes.items():
        setattr(obj, key, value)
    return obj


def test_nested_graph_structure_is_checked_too():
    inner = good()
    inner.edges.append(("n0",))
    outer = graph({"in": nir.Input(input_type=np.array([2])), "sub": inner,
                   "out": nir.Output(output_type=np.array([2]))}, [("in", "sub"), ("sub", "out")])
    with pytest.raises(NIRError, match=r"nested NIR graph 'sub': every edge must be"):
        from_nir(outer, dt=1e-3)


# ----------------------------------------------------------------------------- NIR: parameters
@pytest.mark.parametrize("node,message", [
    (lif(tau=np.array(["a", "b"])), r"LIF node 'n1': parameter 'tau' must be an array of "
                                    r"numbers, got array\(\['a', 'b'\]"),
    (lif(tau="a"), r"parameter 'tau' must be an array of numbers, got 'a'"),
    (lif(tau=None), r"parameter 'tau' is missing"),
    (lif(v_leak=[[0.0], [0.0, 1.0]]), r"parameter 'v_leak' must be an array of numbers.*"
                                      r"inhomogeneous"),
    (lif(v_threshold=np.array([True, True])), r"'v_threshold' must be an array of numbers.*bool"),
    (lif(r=np.array([1.0, np.nan])), r"parameter 'r' holds NaN or inf"),
    (lif(tau=np.array([1e-2, -1e-2])), r"parameter 'tau' must be > 0 s \(a time constant\), "
                                       r"got -0\.01 s"),
    (lif(tau=np.zeros(2)), r"parameter 'tau' must be > 0 s"),
    # an all-equal array of the wrong length is refused, not collapsed to a scalar
    (lif(3), r"parameter 'tau' has 3 values \(shape \(3,\)\) but the node receives input of "
             r"shape \(2,\): give one value or 2"),
    (lif(metadata={"spikeloop_method": "rk4"}), r"unknown discretisation method 'rk4' in its "
                                                r"metadata"),
    (lif(metadata=["exact"]), r"metadata must be a dict, got \['exact'\]"),
])
def test_bad_population_parameters(node, message):
    with pytest.raises(NIRError, match=message):
        from_nir(chain(linear(), node), dt=1e-3)


def test_cuba_time_constants_must_be_positive():
    cuba = nir.CubaLIF(tau_syn=np.full(2, 4e-3), tau_mem=np.full(2, 1e-2), r=np.ones(2),
                       v_leak=np.zeros(2), v_threshold=np.ones(2), w_in=np.ones(2))
    cuba.tau_syn = np.array([4e-3, 0.0])
    with pytest.raises(NIRError, match=r"CubaLIF node 'n1': parameter 'tau_syn' must be > 0 s"):
        from_nir(chain(linear(), cuba), dt=1e-3)


@pytest.mark.parametrize("node,message", [
    (linear(weight=np.array([["a", "b"], ["c", "d"]])), r"Linear node 'n0': parameter 'weight' "
                                                        r"must be an array of numbers"),
    (linear(weight=np.full((2, 2), np.inf)), r"parameter 'weight' holds NaN or inf"),
    (nir.Affine(weight=np.ones((2, 2), F32), bias=np.ones(3, F32)),
     r"Affine node 'n0': bias has 3 values for 2 outputs"),
    (nir.Delay(delay=np.array([1e-3, 2e-3, 3e-3])), r"Delay node 'n0': parameter 'delay' has 3 "
                                                    r"values"),
    (nir.Scale(scale=np.array([1.0, 2.0, 3.0])), r"Scale node 'n0': parameter 'scale' has 3 "
                                                 r"values"),
    (nir.Threshold(threshold=np.array([1.0, 1.0, 1.0])), r"Threshold node 'n0': parameter "
                                                         r"'threshold' has 3 values"),
])
def test_bad_projection_and_layer_parameters(node, message):
    with pytest.raises(NIRError, match=message):
        from_nir(chain(node, linear(), lif()), dt=1e-3)


def _conv(**changes):
    node = nir.Conv1d(input_shape=6, weight=np.ones((2, 2, 3), F32), stride=1, padding=0,
                      dilation=1, groups=1, bias=np.zeros(2, F32))
    return _set(node, **changes)


@pytest.mark.parametrize("changes,message", [
    ({"stride": "x"}, r"Conv1d node 'n0': stride must be whole numbers, got 'x'"),
    ({"padding": "full"}, r"padding must be whole numbers or 'same'/'valid', got 'full'"),
    ({"dilation": 1.5}, r"dilation must hold whole numbers, got 1\.5"),
    ({"stride": 0}, r"stride must hold whole numbers ≥ 1, got 0"),
    ({"groups": 3}, r"groups must be one whole number ≥ 1 that divides the 2 output channels"),
    ({"bias": np.zeros(5)}, r"bias has 5 values for 2 output channels"),
])
def test_bad_convolution_arguments(changes, message):
    def conv_graph(conv):
        flat = nir.Flatten(input_type={"input": np.array([2, 4])}, start_dim=0)
        return chain(conv, flat, linear(2, 8), lif(), in_type=np.array([2, 6]))

    with pytest.raises(NIRError, match=message):
        from_nir(conv_graph(_conv(**changes)), dt=1e-3)
    assert isinstance(from_nir(conv_graph(_conv()), dt=1e-3), Network)


def test_bad_pool_and_flatten_arguments():
    def pool_graph(**changes):
        pool = _set(nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                  padding=np.array([0, 0])), **changes)
        flat = nir.Flatten(input_type={"input": np.array([1, 2, 2])}, start_dim=0)
        return chain(pool, flat, linear(2, 4), lif(), in_type=np.array([1, 4, 4]))

    assert isinstance(from_nir(pool_graph(), dt=1e-3), Network)
    with pytest.raises(NIRError, match=r"SumPool2d node 'n0': kernel_size must hold whole "
                                       r"numbers, got array\(\[1\.5, 2\. *\]\)"):
        from_nir(pool_graph(kernel_size=np.array([1.5, 2])), dt=1e-3)
    with pytest.raises(NIRError, match=r"padding must be one or two whole numbers"):
        from_nir(pool_graph(padding=np.array([0, 0, 0])), dt=1e-3)
    flat = nir.Flatten(input_type={"input": np.array([1, 4, 4])}, start_dim=0)
    flat.start_dim = "first"
    g = chain(flat, linear(2, 16), lif(), in_type=np.array([1, 4, 4]))
    with pytest.raises(NIRError, match=r"Flatten node 'n0': start_dim must be an array of "
                                       r"numbers, got 'first'"):
        from_nir(g, dt=1e-3)


# ----------------------------------------------------------------------------- NIR: shapes
def test_input_and_output_shapes_are_checked():
    with pytest.raises(NIRError, match=r"Input node 'in': input_type\['input'\] must hold whole "
                                       r"numbers, got array\(\[4\.7\]\)"):
        from_nir(chain(linear(2, 4), lif(), n_in=4.7), dt=1e-3)
    with pytest.raises(NIRError, match=r"input_type\['input'\] must hold whole numbers ≥ 1, "
                                       r"got array\(\[-2\]\)"):
        from_nir(chain(linear(), lif(), n_in=-2), dt=1e-3)
    with pytest.raises(NIRError, match=r"input_type\['input'\] must be an array of numbers"):
        from_nir(chain(linear(), lif(), in_type=np.array(["a"])), dt=1e-3)
    with pytest.raises(NIRError, match=r"Input node 'in' declares no input shape"):
        from_nir(chain(linear(), lif(), in_type=np.array([])), dt=1e-3)
    with pytest.raises(NIRError, match=r"Output node 'out' declares shape \(5,\), but its "
                                       r"source 'n1' produces \(2,\)"):
        from_nir(chain(linear(), lif(), n_out=5), dt=1e-3)
    # valid edges: a whole-number float size, a single value for every neuron
    net = from_nir(chain(linear(2, 4), lif(2, tau=np.array([2e-2])), n_in=4.0, n_out=2.0),
                   dt=1e-3)
    assert net.graph.nodes[0].shape == (4,)
    assert net.graph["n1"].params["tau_mem"].numel() == 1
    assert float(net.graph["n1"].params["tau_mem"]) == pytest.approx(2e-2)


# ----------------------------------------------------------------------------- NIR: files
def _net():
    torch.manual_seed(0)
    return Network({"input": Input(3), "fc": Linear(3, 4), "lif": LIF(4)})


def test_save_and_read_arguments(tmp_path):
    net = _net()
    with pytest.raises(ArgumentTypeError, match=r"path must be a path \(a str or pathlib.Path\), "
                                                r"got 5 \(int\)"):
        save_nir(net, 5)
    with pytest.raises(ArgumentTypeError, match="path must be a path"):
        read_nir(None)
    with pytest.raises(ParameterError, match="path must be a path, got an empty string"):
        read_nir("")
    with pytest.raises(NIRError, match="cannot write the NIR file"):
        save_nir(net, tmp_path / "no" / "such" / "m.nir")
    assert not (tmp_path / "no").exists()
    with pytest.raises(MissingFileError, match="no NIR file"):
        read_nir(tmp_path)  # a folder
    # a model that cannot be exported writes nothing
    bad = Network({"input": Input(3), "fc": Linear(3, 4), "lif": LIF(4, reset="subtract")})
    with pytest.raises(NIRError, match="reset='subtract'"):
        save_nir(bad, tmp_path / "bad.nir")
    assert list(tmp_path.iterdir()) == []
    # valid: str and Path, and the round trip
    save_nir(net, str(tmp_path / "m.nir"))
    back = load_nir(tmp_path / "m.nir", dt=1e-3)
    x = (torch.rand(10, 2, 3) < 0.5).float()
    assert torch.equal(back(x)["lif"].spikes, net(x)["lif"].spikes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.nir"]  # no temporary left


def test_file_with_string_parameters(tmp_path):
    g = good()
    nir.write(tmp_path / "s.nir", g)
    import h5py

    with h5py.File(tmp_path / "s.nir", "r+") as f:
        node = f["node/nodes/n1"]
        del node["tau"]
        node.create_dataset("tau", data=np.array([b"a", b"b"]))
    with pytest.raises(NIRError, match=r"parameter 'tau' must be an array of numbers"):
        load_nir(tmp_path / "s.nir", dt=1e-3)


# ----------------------------------------------------------------------------- Xylo
def xylo_net():
    torch.manual_seed(0)
    return Network({
        "input": Input(4), "fc": Linear(4, 10),
        "h": CubaLIF(10, tau_mem=16e-3, tau_syn=4e-3, v_leak=0.0, v_reset=0.0),
        "fc2": Linear(10, 3), "out": CubaLI(3, tau_mem=32e-3, tau_syn=4e-3)})


@pytest.fixture(scope="module")
def config():
    return quantize(xylo_net().graph)[0]


def test_xylo_mapper_and_quantizer_arguments():
    net = xylo_net()
    with pytest.raises(ArgumentTypeError, match=r"graph must be a spikeloop Graph, got a Network: "
                                                r"pass net\.graph"):
        map_graph(net)
    with pytest.raises(ArgumentTypeError, match=r"pass net\.graph"):
        quantize(net)
    with pytest.raises(ArgumentTypeError, match=r"graph must be a spikeloop Graph \(net\.graph\), "
                                                r"got 'net'"):
        map_graph("net")
    with pytest.raises(ArgumentTypeError, match="spec must be a XyloSpec or None, got 'x'"):
        map_graph(net.graph, spec="x")
    with pytest.raises(ParameterError, match=r"method must be one of \['per_channel', 'global'\], "
                                             r"got 'per_tensor'"):
        quantize(net.graph, method="per_tensor")
    with pytest.raises(ArgumentTypeError, match="shifts must be True or False, got 'no'"):
        quantize(net.graph, shifts="no")
    with pytest.raises(ArgumentTypeError, match=r"layout must be a XyloLayout \(from map_graph\)"):
        chip_tensors(net.graph)
    with pytest.raises(ArgumentTypeError, match="report must be a QuantizationReport"):
        chip_tensors(map_graph(net.graph), report={})
    # valid: a layout and a graph give the same config, either method
    for method in ("per_channel", "global"):
        assert quantize(map_graph(net.graph), method)[0] == quantize(net.graph, method)[0]


def test_xylo_spec_limits_are_checked():
    with pytest.raises(ArgumentTypeError, match=r"XyloSpec\.inputs must be an integer, got 2\.5"):
        XyloSpec(inputs=2.5)
    with pytest.raises(ParameterError, match=r"XyloSpec\.hidden_max must be an integer ≥ 1, got 0"):
        XyloSpec(hidden_max=0)
    assert XyloSpec(weight_shift_max=0, inputs=np.int64(8)).inputs == 8


def test_xylo_config_json_round_trip_and_text_or_path_rule(config, tmp_path):
    assert XyloConfig.from_json(config.to_json()) == config
    assert XyloConfig.from_json("  \n" + config.to_json()) == config  # blanks before '{'
    assert XyloConfig.from_dict(config.to_dict()) == config
    path = tmp_path / "c.json"
    assert config.to_json(path) == path.read_text()
    assert XyloConfig.from_json(path) == config
    assert XyloConfig.from_json(str(path)) == config
    with pytest.raises(ConfigError, match=r"Xylo config JSON holds a JSON array; a Xylo config "
                                          r"is a JSON object"):
        XyloConfig.from_json("[1, 2]")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"Xylo config file '.*list\.json' holds a JSON array"):
        XyloConfig.from_json(tmp_path / "list.json")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ConfigError, match=r"malformed Xylo config file '.*bad\.json'"):
        XyloConfig.from_json(tmp_path / "bad.json")
    with pytest.raises(MissingFileError, match=r"no Xylo config file 'nope\.json' \(.*starts "
                                               r"with '\{' as JSON text"):
        XyloConfig.from_json("nope.json")
    assert issubclass(MissingFileError, FileNotFoundError)
    with pytest.raises(ParameterError, match="text_or_path must be a path, got an empty string"):
        XyloConfig.from_json("")
    with pytest.raises(ArgumentTypeError, match=r"text_or_path must be JSON text .* got 5"):
        XyloConfig.from_json(5)
    with pytest.raises(ArgumentTypeError, match=r"path must be a file path .* got 5"):
        config.to_json(5)


def _record(config, **changes):
    data = json.loads(json.dumps(config.to_dict()))
    data.update(changes)
    return data


@pytest.mark.parametrize("changes,error,message", [
    ({"weights_in": [[1, 2], [3]]}, ShapeError, r"XyloConfig\.weights_in is a ragged nested list"),
    ({"bias": [1.5] * 10}, DTypeError, r"XyloConfig\.bias must hold integers, got 1\.5"),
    ({"bias": [True] * 10}, DTypeError, r"XyloConfig\.bias must hold integers, got an array of "
                                        r"dtype bool"),
    ({"bias": ["a"] * 10}, DTypeError, r"XyloConfig\.bias must hold integers, got an array of "
                                       r"dtype <U1"),
    ({"bias": [2**70] * 10}, ParameterError, r"XyloConfig\.bias holds 1180591620717411303424, "
                                             r"beyond the int64 range"),
    ({"bias": "0"}, ArgumentTypeError, r"XyloConfig\.bias must be an integer tensor, NumPy array "
                                       r"or nested list, got '0'"),
    ({"dt": "1ms"}, TimeStepError, r"XyloConfig\.dt must be a finite number > 0 s, got '1ms'"),
    ({"shift_in": "1"}, ArgumentTypeError, r"XyloConfig\.shift_in must be an integer, got '1'"),
    ({"shift_in": 1.5}, ArgumentTypeError, r"XyloConfig\.shift_in must be an integer, got 1\.5"),
    ({"foo": 1}, ConfigError, r"unknown keys \['foo'\]"),
    ({"shapes": 5}, ConfigError, r"'shapes' must map register names to lists of sizes, got 5"),
    ({"format": "other/1"}, ConfigError, r"not a Xylo config record \(format 'other/1'"),
])
def test_xylo_config_record_errors(config, changes, error, message):
    data = _record(config, **changes)
    if "bias" in changes or "weights_in" in changes:
        data["shapes"].pop("bias" if "bias" in changes else "weights_in")
    snapshot = copy.deepcopy(data)
    with pytest.raises(error, match=message):
        XyloConfig.from_dict(data)
    assert data == snapshot  # the record is not changed by a failed load


def test_xylo_config_shapes(config):
    data = _record(config)
    data["shapes"]["weights_in"] = [3, 3, 3]
    with pytest.raises(ShapeError, match=r"weights_in has 80 values, which do not fill the "
                                         r"recorded shape \[3, 3, 3\]"):
        XyloConfig.from_dict(data)
    data = _record(config)
    data["shapes"]["bias"] = [2, 5]
    with pytest.raises(ShapeError, match=r"XyloConfig\.bias must have shape \[hidden\] \(rank 1\), "
                                         r"got \(2, 5\)"):
        XyloConfig.from_dict(data)
    data = _record(config, bias=[0] * 9)
    data["shapes"]["bias"] = [9]
    with pytest.raises(MappingError, match=r"XyloConfig\.bias has shape \(9,\), expected \(10,\)"):
        XyloConfig.from_dict(data).validate()
    with pytest.raises(ConfigError, match=r"a Xylo config record is a JSON object"):
        XyloConfig.from_dict([1, 2])
    with pytest.raises(ArgumentTypeError, match="spec must be a XyloSpec or None, got 'x'"):
        config.validate("x")
    assert config.validate() is config


def test_xylo_config_constructor_casts_only_without_loss(config):
    fields = {k: getattr(config, k) for k in config.__dataclass_fields__}
    as_float = XyloConfig(**{**fields, "bias": config.bias.double()})
    assert as_float == config and as_float.bias.dtype == torch.int64
    as_numpy = XyloConfig(**{**fields, "weights_out": config.weights_out.numpy().astype(np.int16)})
    assert as_numpy == config
    with pytest.raises(ParameterError, match=r"XyloConfig\.bias holds 1e\+30, beyond the int64"):
        XyloConfig(**{**fields, "bias": torch.full((10,), 1e30)})
    with pytest.raises(DTypeError, match=r"XyloConfig\.bias must hold integers, got nan"):
        XyloConfig(**{**fields, "bias": torch.full((10,), float("nan"))})
    with pytest.raises(DTypeError, match=r"XyloConfig\.aliases must hold integers, got a "
                                         r"torch\.bool tensor"):
        XyloConfig(**{**fields, "aliases": torch.zeros(10, dtype=torch.bool)})


# ----------------------------------------------------------------------------- analog
SPEC = AnalogChipSpec()


def analog_net():
    torch.manual_seed(0)
    return Network({"input": Input(4), "fc": Linear(4, 10), "h": CubaLIF(10),
                    "fc2": Linear(10, 3), "out": CubaLI(3)})


@pytest.mark.parametrize("kwargs,error,message", [
    ({"weight_scale": "big"}, ParameterError, r"weight_scale must be one of \['auto'\], got 'big'"),
    ({"weight_scale": True}, ArgumentTypeError, r"weight_scale must be a real number, got True"),
    ({"weight_scale": float("nan")}, ParameterError, r"weight_scale must be a finite number > 0, "
                                                     r"got nan"),
    ({"weight_scale": 0}, ParameterError, r"weight_scale must be a finite number > 0, got 0"),
    ({"clip_weights": 1}, ArgumentTypeError, r"clip_weights must be True or False, got 1"),
    ({"layouts": []}, ArgumentTypeError, r"layouts must be a dict \(a layout cache\) or None"),
])
def test_analog_mapper_arguments(kwargs, error, message):
    net = analog_net()
    with pytest.raises(error, match=message):
        analog_map(net.graph, SPEC, **kwargs)
    assert analog_map(net.graph, SPEC).circuits_used == 13


def test_analog_mapper_graph_and_spec():
    net = analog_net()
    with pytest.raises(ArgumentTypeError, match=r"got a Network: pass net\.graph"):
        analog_map(net, SPEC)
    with pytest.raises(ArgumentTypeError, match="spec must be an AnalogChipSpec, got None"):
        analog_map(net.graph, None)
    placement = analog_map(net.graph, SPEC, weight_scale=np.float64(0.1), clip_weights=True)
    assert placement.projections["fc"].scale == pytest.approx(0.1)


def test_analog_spec_fields():
    with pytest.raises(ArgumentTypeError, match=r"AnalogChipSpec\.halves must be an integer, got "
                                                r"2\.5"):
        AnalogChipSpec(halves=2.5)
    with pytest.raises(ParameterError, match=r"AnalogChipSpec\.clock must be a finite number > 0"):
        AnalogChipSpec(clock=0)
    with pytest.raises(ParameterError, match=r"tau_mem_range must be \(low, high\) with low < "
                                             r"high"):
        AnalogChipSpec(tau_mem_range=(1e-6, 1e-7))
    with pytest.raises(ParameterError, match=r"AnalogChipSpec\.psp_noise must be a finite number "
                                             r"≥ 0, got -1"):
        AnalogChipSpec(psp_noise=-1)
    with pytest.raises(ParameterError, match=r"refrac_range must be a \(low, high\) pair"):
        AnalogChipSpec(refrac_range=(1e-6,))
    spec = AnalogChipSpec(tau_mem_range=[1e-6, 5e-5], psp_noise=0)  # a list is read as a pair
    assert spec.tau_mem_range == (1e-6, 5e-5) and hash(spec)


def test_analog_calibration_arguments():
    with pytest.raises(ArgumentTypeError, match=r"seed must be an integer, got 1\.5"):
        AnalogChip(SPEC, 1.5)
    with pytest.raises(ArgumentTypeError, match="mismatch must be True or False, got 'no'"):
        AnalogChip(SPEC, 0, mismatch="no")
    with pytest.raises(ArgumentTypeError, match="spec must be an AnalogChipSpec"):
        AnalogChip("spec", 0)
    chip = AnalogChip(SPEC, 0)
    circuits, tau = torch.arange(3), torch.full((3,), 1e-5)
    cases = [
        (("tau", circuits, tau), ParameterError, r"param must be one of \['tau_mem'"),
        (("tau_mem", [0, 1, 2], tau), ArgumentTypeError, r"circuits must be a 1-d integer tensor"),
        (("tau_mem", circuits.float(), tau), DTypeError, r"circuits must be an integer tensor"),
        (("tau_mem", torch.tensor([0, 600, 1]), tau), ParameterError,
         r"circuits must be indices 0\.\.511, got 600"),
        (("tau_mem", circuits, torch.full((2,), 1e-5)), ShapeError,
         r"targets of the same shape, got \(3,\) and \(2,\)"),
        (("v_leak", circuits, torch.tensor([1.0, float("nan"), 2.0])), NonFiniteError,
         r"calibrate\('v_leak'\) targets"),
        (("tau_syn", circuits, torch.tensor([1e-6, -1.0, 1e-6])), ParameterError,
         r"targets of tau_syn must be > 0 s"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            chip.calibrate(*args)
    result = chip.calibrate("tau_mem", circuits, tau)  # usable after the errors
    assert result.codes.shape == (3,) and result.spread_after < result.spread_before
