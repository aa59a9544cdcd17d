"""Every run goes through one guard (spikeloop.backends.guard.run_checked): the same input
rule on every backend, typed states checked against network and backend, backend options
checked, overflowing membranes refused. Each case of issue 15 that concerns inputs, states and
backend options has its error type and message here; after every error the network still
gives the same result on a good input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeloop.backends import SimBackend, SpikeEvents, get_backend
from spikeloop.chips.xylo.dynamics import XyloState
from spikeloop.errors import (
    ArgumentTypeError,
    DeviceError,
    DTypeError,
    NonFiniteError,
    ShapeError,
    StateError,
)
from spikeloop.network import Network
from spikeloop.nn import LIF, CubaLI, CubaLIF, Delay, DelayedLinear, Input, Linear
from spikeloop.observables import NetworkState

BACKENDS = ["sim", "event", "chip", "xylo"]


def make_net(hidden=CubaLIF, recurrent=False) -> Network:
    torch.manual_seed(0)
    pop = hidden(10, recurrent=True) if recurrent else hidden(10)
    return Network({"input": Input(4), "fc1": Linear(4, 10, bias=False), "hidden": pop,
                    "fc2": Linear(10, 3, bias=False), "output": CubaLI(3)})


@pytest.fixture(scope="module")
def net() -> Network:
    return make_net()


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    torch.manual_seed(1)
    return (torch.rand(20, 2, 4) < 0.3).float()


def run(net, x, backend, state=None):
    with torch.no_grad():
        return net(x, state, backend=backend)


@pytest.fixture(scope="module")
def reference(net, x):
    return {b: run(net, x, b).output.v for b in ("sim", "event", "xylo")}


def still_works(net, x, reference, backend="sim"):
    if backend in reference:
        torch.testing.assert_close(run(net, x, backend).output.v, reference[backend],
                                   rtol=0, atol=0)


BAD_INPUTS = [
    ("numpy", lambda x: x.numpy(), ArgumentTypeError,
     r"Input: expected a torch.Tensor \[T, B, 4\], got ndarray \(convert it with torch.as_tensor"),
    ("list", lambda x: x.tolist(), ArgumentTypeError, "got list"),
    ("0-d", lambda x: torch.tensor(1.0), ShapeError, "of rank 3, got rank 0"),
    ("rank 2", lambda x: x[0], ShapeError, "of rank 3, got rank 2"),
    ("features", lambda x: x[..., :3], ShapeError, r"expected \[T, B, 4\], got \(20, 2, 3\)"),
    ("T = 0", lambda x: x[:0], ShapeError, "time axis"),
    ("batch 0", lambda x: x[:, :0], ShapeError, "batch axis .* is empty"),
    ("meta", lambda x: x.to("meta"), DeviceError, "meta tensor"),
    ("sparse", lambda x: x.to_sparse(), ArgumentTypeError, r"layout torch.sparse_coo .*to_dense"),
    ("complex", lambda x: x.to(torch.complex64), DTypeError, "complex"),
    ("lossy float64", lambda x: x.double() * 0.1, DTypeError,
     "float64 and the network torch.float32; casting would change values"),
    ("counts beyond float32", lambda x: x.long() * ((1 << 40) + 1), DTypeError,
     "would change values"),
    ("NaN", lambda x: x.masked_fill(x > 0, float("nan")), NonFiniteError, "NaN"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("case", "make", "error", "message"), BAD_INPUTS,
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_raise_the_same_error_on_every_backend(net, x, reference, backend, case, make,
                                                          error, message):
    with pytest.raises(error, match=message):
        run(net, make(x), backend)
    still_works(net, x, reference, backend)


@pytest.mark.parametrize("backend", ["sim", "event", "xylo"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64, torch.int64,
                                   torch.int32, torch.bool])
def test_lossless_dtypes_are_cast_on_every_backend_and_the_run_says_so(net, x, reference,
                                                                       backend, dtype):
    out = run(net, x.to(dtype), backend)
    torch.testing.assert_close(out.output.v, reference[backend], rtol=0, atol=0)
    assert out.report.warnings[0] == (f"Input: {dtype} input cast to the network's "
                                      "torch.float32 (no value changed)")


def test_the_chip_applies_the_same_dtype_rule(net, x):
    with torch.no_grad():
        out = net(x.half(), backend={"name": "chip", "noise": False})
        same = net(x, backend={"name": "chip", "noise": False})
    torch.testing.assert_close(out.output.v, same.output.v, rtol=0, atol=0)
    assert "cast to the network's torch.float32" in out.report.warnings[0]
    assert not any("cast" in w for w in same.report.warnings)


def test_a_float64_network_takes_float32_input():
    net = make_net().double()
    x = (torch.rand(10, 2, 4) < 0.3).float()
    out = run(net, x, "sim")
    assert out.output.v.dtype == torch.float64
    torch.testing.assert_close(out.output.v, run(net, x.double(), "sim").output.v, rtol=0, atol=0)


def test_a_network_of_mixed_dtypes_is_refused(x):
    net = make_net()
    net.layers["fc2"].double()
    with pytest.raises(DTypeError, match=r"mix dtypes .*net.float\(\) or net.double\(\)"):
        run(net, x, "sim")


def test_spike_events_are_refused_where_only_dense_input_runs(net, reference, x):
    events = SpikeEvents(torch.tensor([[0.001, 0.002]]), torch.tensor([[0, 1]]), 0.02)
    with pytest.raises(ArgumentTypeError, match="sim backend takes a dense input tensor "
                                                r"\[T, B, 4\]; SpikeEvents run on the event"):
        run(net, events, "sim")
    assert run(net, events, "event").output.v is not None
    still_works(net, x, reference)


def test_overflowing_membranes_are_an_error_not_inf(net, x, reference):
    with pytest.raises(NonFiniteError, match=r"population 'hidden': the membrane became NaN or "
                                             r"infinite .*\|x\| = 3e\+38.*overflow torch.float32"):
        run(net, x * 3e38, "sim")
    still_works(net, x, reference)


@pytest.mark.parametrize(("spec", "error", "message"), [
    (123, ArgumentTypeError, r"backend must be a name \(.*sim.*\), a backend instance .*got 123"),
    ({"seed": 1}, ArgumentTypeError, "needs a 'name' string"),
    ({"name": "chip", "seed": 1.5}, ArgumentTypeError, "chip backend: seed must be an integer, "
                                                       r"got 1.5 \(float\)"),
    ({"name": "chip", "seed": -1}, Exception, "seed must be an integer ≥ 0, got -1"),
    ({"name": "chip", "noise": 1}, ArgumentTypeError, "noise must be True or False, got 1"),
    ({"name": "chip", "weight_scale": 0}, Exception, "weight_scale .* must be a finite number "
                                                     "> 0, got 0"),
    ({"name": "chip", "dense": "hidden"}, ArgumentTypeError, r"dense must be \(population name"),
    ({"name": "sim", "checkpoint": True}, ArgumentTypeError,
     r"checkpoint \(steps per window, or None\) must be an integer, got True"),
    ({"name": "sim", "grad_band": float("nan")}, Exception, "grad_band .* got nan"),
    ({"name": "sim", "mode": "fast"}, Exception, r"mode must be one of \['sequence', 'step'\]"),
    ({"name": "event", "max_spikes": 2.0}, ArgumentTypeError, "max_spikes must be an integer"),
    ({"name": "event", "grid": "yes"}, ArgumentTypeError, "grid must be True or False"),
])
def test_backend_specs_and_options_are_checked(net, x, reference, spec, error, message):
    with pytest.raises(error, match=message) as caught:
        run(net, x, spec)
    assert type(caught.value).__module__ == "spikeloop.errors"
    still_works(net, x, reference)


# ------------------------------------------------------------------------------------- states
@pytest.fixture(scope="module")
def sim_state(net, x):
    return run(net, x, "sim").state


def test_a_state_is_typed_and_continues_the_run(net, x, sim_state):
    assert isinstance(sim_state, NetworkState)
    assert (sim_state.backend, sim_state.batch, sim_state.dtype) == ("sim", 2, torch.float32)
    whole = run(net, torch.cat([x, x]), "sim")
    torch.testing.assert_close(run(net, x, "sim", sim_state).output.v, whole.output.v[20:])


def bad_states(net, x, sim_state):
    lif_state = run(make_net(LIF), x, "sim").state
    xylo_state = run(net, x, "xylo").state
    nan = dict(sim_state)
    neuron = nan["hidden"].neuron
    nan["hidden"] = nan["hidden"]._replace(neuron=neuron._replace(v=torch.full_like(neuron.v,
                                                                                    float("inf"))))
    return [
        ("a tensor", torch.zeros(3), "must be the .state of a previous run .*got tensor"),
        ("a string", "state", r"got 'state' \(str\)"),
        ("a list", [sim_state], r"\(list\)"),
        ("bare tensors", {"input": None, "hidden": torch.zeros(2, 10), "output": torch.zeros(2, 3)},
         r"state\['hidden'\] must be the PopulationState of a CubaLIF population"),
        ("another neuron type's record", dict(lif_state),
         r"state\['hidden'\] holds a LIFState; a CubaLIF population's state is a CubaLIFState"),
        ("another network's state", lif_state, "comes from another network .*'LIF'"),
        ("unknown names", {**dict(sim_state), "nope": None},
         r"holds \['nope'\], which are not stateful nodes"),
        ("a missing population", {k: v for k, v in sim_state.items() if k != "output"},
         r"lacks \['output'\]"),
        ("a xylo state on sim", xylo_state, "comes from a 'xylo' run; it continues only a run on "
                                            "that backend, not on 'sim'"),
        ("inf in the state", nan, r"state\['hidden'\].neuron.v holds NaN or infinite"),
        ("another batch", sim_state, "batch size B = 2, the input has B = 1"),
    ]


def test_a_state_that_does_not_belong_is_an_error_not_a_restart(net, x, reference, sim_state):
    for case, state, message in bad_states(net, x, sim_state):
        data = x[:, :1] if case == "another batch" else x
        with pytest.raises(StateError, match=message), torch.no_grad():
            net(data, state, backend={"name": "sim", "kernel": "reference"})
    still_works(net, x, reference)


def test_a_recurrent_state_of_another_batch_is_an_error(x):
    net = make_net(recurrent=True)
    state = dict(run(net, x, "sim").state)  # a plain mapping: checked entry by entry
    with pytest.raises(StateError, match=r"state\['hidden'\].neuron.v has shape \(2, 10\), this "
                                         r"network and input need \(1, 10\)"):
        run(net, x[:, :1], "sim", state)
    state["hidden"] = state["hidden"]._replace(z=state["hidden"].z[:1])
    with pytest.raises(StateError, match=r"state\['hidden'\].z has shape \(1, 10\): not a state "
                                         "for batch size B = 2"):
        run(net, x, "sim", state)


@pytest.mark.parametrize(("line", "want"), [
    (lambda: Delay(torch.tensor([0, 2, 5, 1])), (5, 2, 4)),
    (lambda: DelayedLinear(4, 10, 5e-3, dt=1e-3, per="synapse"), (5, 2, 4)),
    (lambda: DelayedLinear(4, 10, 5e-3, dt=1e-3, per="axon"), (5, 2, 4)),
], ids=["Delay", "DelayedLinear per synapse", "DelayedLinear per axon"])
def test_a_delay_line_state_of_the_wrong_length_is_an_error(x, line, want):
    """A delay line's state is its last max_steps inputs, (max_steps, B, *input shape): one of
    another length (or input shape) is refused by name, never run (issue 17)."""
    torch.manual_seed(2)
    layers = {"input": Input(4), "line": line()}
    if isinstance(layers["line"], Delay):
        layers["fc1"] = Linear(4, 10, bias=False)
    net = Network({**layers, "hidden": CubaLIF(10), "fc2": Linear(10, 3, bias=False),
                   "output": CubaLI(3)})
    state = dict(run(net, x, "sim").state)
    assert tuple(state["line"].shape) == want
    whole = run(net, torch.cat([x, x]), "sim").output.v
    torch.testing.assert_close(run(net, x, "sim", state).output.v, whole[20:])
    for bad in (torch.zeros(7, 2, 4), torch.zeros(3, 2, 4), torch.zeros(5, 2, 2, 2)):
        state["line"] = bad
        with pytest.raises(StateError, match=rf"state\['line'\] has shape "
                                             rf"\({', '.join(map(str, bad.shape))}\), this "
                                             rf"network and input need \(5, 2, 4\)"):
            run(net, x, "sim", state)


def test_xylo_states_are_checked_by_the_chip(net, x, reference, sim_state):
    state = run(net, x, "xylo").state
    registers = state["xylo"]
    cases = [
        (sim_state, "comes from a 'sim' run; it continues only a run on that backend, not on "
                    "'xylo'"),
        ({"xylo": XyloState(*(t.float() for t in registers))},
         r"state\['xylo'\].v is torch.float32; the chip's registers are whole numbers"),
        ({"xylo": registers._replace(v=registers.v + 0.5)}, "not whole numbers"),
        ({"xylo": registers._replace(v=registers.v + 1e6)}, "outside the chip's range"),
        ({"xylo": registers, "hidden": None}, r"a xylo state is \{'xylo': XyloState\}"),
        ({"xylo": tuple(registers)}, "must be the XyloState of a previous xylo run"),
    ]
    for state_, message in cases:
        with pytest.raises(StateError, match=message):
            run(net, x, "xylo", state_)
    still_works(net, x, reference, "xylo")
    torch.testing.assert_close(run(net, x, "xylo", state).output.v,
                               run(net, torch.cat([x, x]), "xylo").output.v[20:], rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["event", "chip"])
def test_backends_that_cannot_stream_refuse_any_state(net, x, sim_state, backend):
    with pytest.raises(StateError, match=f"the {backend} backend cannot continue from a state"):
        run(net, x, backend, sim_state)


def test_numpy_scalars_and_arrays_are_not_inputs_but_give_a_hint(net):
    with pytest.raises(ArgumentTypeError, match=r"torch\.as_tensor"):
        run(net, np.zeros((5, 1, 4), dtype=np.float32), "sim")
    for spec in (1.0, None, ["sim"], b"sim", object()):
        with pytest.raises(ArgumentTypeError, match=r"backend must be a name"):
            get_backend(spec)
    with pytest.raises(ArgumentTypeError, match=r"got the class SimBackend; pass an instance"):
        get_backend(SimBackend)
