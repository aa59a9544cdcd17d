"""Hypothesis strategies of bad (and valid edge) inputs, one per kind of public entry point.

Each strategy draws a :class:`bad_inputs.Case`. Networks are tiny (4 inputs, 6 hidden, 3
outputs, a few time steps) and built once, so each case runs in milliseconds.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from torch import Tensor

from bad_inputs import Case, differ, map_tensors, outputs_differ
from spikeloop.backends import get_backend
from spikeloop.backends.event import SpikeEvents
from spikeloop.chips.xylo import XyloConfig, map_graph, quantize, simulate
from spikeloop.data.encoders import delta, latency, log_latency, make_encoder, rate
from spikeloop.interop import from_nir, read_nir, to_nir
from spikeloop.network import GraphNetwork, Network
from spikeloop.nn import (
    LI,
    LIF,
    POPULATIONS,
    Conv1d,
    Conv2d,
    CubaLI,
    CubaLIF,
    Input,
    Linear,
)
from spikeloop.training.losses import FiringRateRegularizer, make_loss

DT = 1e-3
BACKENDS = ("sim", "event", "chip", "xylo")
COMPARED = ("hidden", "output")  # populations whose spikes/v/i are compared
NAN, INF = math.nan, math.inf


# ----------------------------------------------------------------------------- shared objects
def _cuba_layers(n_in: int = 4, n: int = 6, names: tuple[str, ...] = ("input", "fc1", "hidden",
                                                                       "fc2", "output")) -> dict:
    return dict(zip(names, (Input(n_in), Linear(n_in, n), CubaLIF(n, dt=DT), Linear(n, 3),
                            CubaLI(3, dt=DT)), strict=True))


@functools.cache
def net_cuba() -> Network:
    """4 → 6 CubaLIF → 3 CubaLI: runs on every backend; shared by the forward/state cases."""
    torch.manual_seed(0)
    net = Network(_cuba_layers())
    with torch.no_grad():
        net.layers.fc1.weight.mul_(8)
    return net


@functools.cache
def net_lif() -> Network:
    """The same names with other neuron types (LIF, LI): its states are not net_cuba's."""
    torch.manual_seed(1)
    return Network({"input": Input(4), "fc1": Linear(4, 6), "hidden": LIF(6, dt=DT),
                    "fc2": Linear(6, 3), "output": LI(3, dt=DT)})


@functools.cache
def net_other() -> Network:
    """net_cuba's architecture under other names."""
    torch.manual_seed(2)
    return Network(_cuba_layers(names=("inp", "a", "h", "b", "out")))


@functools.cache
def net_double() -> Network:
    """A float64 copy of net_cuba."""
    net = Network(_cuba_layers())
    net.load_state_dict(net_cuba().state_dict())
    return net.double()


def spikes(steps: int, batch: int, seed: int = 0, n: int = 4) -> Tensor:
    g = torch.Generator().manual_seed(1000 * steps + 10 * batch + seed)
    return (torch.rand(steps, batch, n, generator=g) < 0.4).float()


def run(net: Network, x: Any, backend: Any, state: Any = None) -> Any:
    return net(x, state, backend=backend)


@functools.cache
def ref(backend: str, steps: int = 3, batch: int = 2, seed: int = 0) -> Any:
    with torch.no_grad():
        return run(net_cuba(), spikes(steps, batch, seed), backend)


def still_works(backend: str) -> Callable[[], str | None]:
    """After a case: net_cuba gives exactly its reference output on a good input."""
    def after() -> str | None:
        problem = outputs_differ(run(net_cuba(), spikes(3, 2), backend), ref(backend), COMPARED)
        return None if problem is None else f"good input afterwards: {problem}"
    return after


def same_as(expected: Callable[[], Any], names: tuple[str, ...] = COMPARED,
            atol: float = 0.0) -> Callable[[Any], str | None]:
    """Check: the result equals (bit for bit, or within ``atol``) ``expected()``."""
    def check(out: Any) -> str | None:
        return outputs_differ(out, expected(), names, atol)
    return check


def shaped(steps: int, batch: int, finite: bool = True) -> Callable[[Any], str | None]:
    """Check: every compared population has [T, B, n] outputs, all finite."""
    def check(out: Any) -> str | None:
        for name, n in (("hidden", 6), ("output", 3)):
            obs = out[name]
            for f in ("spikes", "v"):
                t = getattr(obs, f, None)
                if t is None:
                    continue
                if tuple(t.shape) != (steps, batch, n):
                    return f"{name}.{f} has shape {tuple(t.shape)}, not {(steps, batch, n)}"
                if finite and not bool(torch.isfinite(t).all()):
                    return f"{name}.{f} holds NaN or inf"
        return None
    return check


def both(*checks: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def check(out: Any) -> str | None:
        for c in checks:
            problem = c(out)
            if problem is not None:
                return problem
        return None
    return check


X_ARG = r"\bx\b|input|raster"


# ----------------------------------------------------------------------------- construction
BAD_SHAPES: list[tuple[str, Any]] = [
    ("0", 0), ("-1", -1), ("4.0", 4.0), ("2.5", 2.5), ("'16'", "16"), ("'23'", "23"),
    ("None", None), ("True", True), ("[]", []), ("(2, 0)", (2, 0)), ("[2, -1]", [2, -1]),
    ("[2.0, 3]", [2.0, 3]), ("nan", NAN), ("object()", object()), ("{'a': 1}", {"a": 1}),
    ("b'4'", b"4"), ("tensor([2, 3])", torch.tensor([2, 3])), ("1j", 1j),
]
GOOD_SHAPES: list[tuple[str, Any, tuple[int, ...]]] = [
    ("4", 4, (4,)), ("np.int64(4)", np.int64(4), (4,)), ("tensor(4)", torch.tensor(4), (4,)),
    ("(2, 3)", (2, 3), (2, 3)), ("[5]", [5], (5,)), ("torch.Size([3])", torch.Size([3]), (3,)),
]
BAD_NUMBERS: list[tuple[str, Any]] = [
    ("'10ms'", "10ms"), ("None", None), ("nan", NAN), ("inf", INF), ("-inf", -INF),
    ("True", True), ("1j", 1j), ("[1, 2]", [1, 2]), ("tensor nan", torch.tensor(NAN)),
    ("object()", object()),
]
BAD_TAUS: list[tuple[str, Any]] = [("0", 0.0), ("-1e-3", -1e-3),
                                   ("tensor(-1.)", torch.tensor(-1.0))]
BAD_DTS: list[tuple[str, Any]] = [
    ("None", None), ("0", 0.0), ("-1e-3", -1e-3), ("nan", NAN), ("inf", INF), ("'1ms'", "1ms"),
    ("True", True),
]
BAD_SETTINGS: dict[str, list[tuple[str, Any]]] = {
    "reset": [("'bogus'", "bogus"), ("3", 3), ("None", None)],
    "t_refrac": [("-1", -1.0), ("nan", NAN), ("'x'", "x"), ("None", None)],
    "detach_reset": [("'yes'", "yes"), ("2", 2), ("None", None)],
}


def _population_case(cls_name: str, arg: str, label: str, value: Any) -> Case:
    cls = POPULATIONS.get(cls_name)
    return Case("construction", f"{cls.__name__}(3, {arg}={label})",
                lambda: cls(3, **{arg: value}), arg=re.escape(arg))


def _population_valid(cls_name: str, arg: str, kind: str) -> Case:
    cls = POPULATIONS.get(cls_name)
    default = getattr(cls.params_cls(), arg)
    value: Any
    if kind == "per-neuron":
        value = torch.full((3,), float(default) * (1.5 if arg.startswith("tau") else 1.0) + (
            0.0 if arg.startswith("tau") or arg == "r" else 0.25 if arg != "v_reset" else -0.25))
        label = "per-neuron tensor"
    elif kind == "numpy":
        value = np.float64(default)
        label = f"np.float64({default!r})"
    else:
        value = int(default) if float(default) == int(default) else default
        label = repr(value)

    def check(pop: Any) -> str | None:
        got = getattr(pop, arg)
        want = torch.as_tensor(value, dtype=torch.float32)
        if got.dtype != torch.float32 or differ(got.expand(3), want.expand(3)):
            return f"{arg} is {got!r}, not {want!r}"
        return None
    return Case("construction", f"{cls.__name__}(3, {arg}={label})",
                lambda: cls(3, **{arg: value}), expect="valid", check=check)


@st.composite
def population_cases(draw: Any) -> Case:
    name = draw(st.sampled_from(sorted(POPULATIONS.names())))
    cls = POPULATIONS.get(name)
    d = cls.description
    what = draw(st.sampled_from(("tensor-param", "tau", "setting", "dt", "method", "surrogate",
                                 "recurrent", "learn", "unknown", "shape", "valid",
                                 "wrong-shape-tensor")))
    tensors = list(d.tensor_names)
    if what == "tensor-param":
        arg = draw(st.sampled_from(tensors))
        label, value = draw(st.sampled_from(BAD_NUMBERS))
        return _population_case(name, arg, label, value)
    if what == "tau":
        taus = [t for t in tensors if t.startswith("tau")] or ["dt"]
        arg = draw(st.sampled_from(taus))
        label, value = draw(st.sampled_from(BAD_TAUS if arg != "dt" else BAD_DTS))
        return _population_case(name, arg, label, value)
    if what == "setting":
        settings = [s for s in BAD_SETTINGS if s in d.param_names] or ["method"]
        arg = draw(st.sampled_from(settings))
        label, value = draw(st.sampled_from(BAD_SETTINGS.get(arg, [("'rk4'", "rk4")])))
        return _population_case(name, arg, label, value)
    if what == "dt":
        label, value = draw(st.sampled_from(BAD_DTS))
        return _population_case(name, "dt", label, value)
    if what == "method":
        label, value = draw(st.sampled_from([("'rk4'", "rk4"), ("None", None), ("3", 3),
                                             ("'EXACT'", "EXACT")]))
        return _population_case(name, "method", label, value)
    if what == "surrogate":
        label, value = draw(st.sampled_from([
            ("42", 42), ("'nope'", "nope"), ("{'name': 'nope'}", {"name": "nope"}),
            ("{'alpha': 2}", {"alpha": 2}), ("None", None),
            ("{'name': 'superspike', 'alpha': 'x'}", {"name": "superspike", "alpha": "x"}),
            ("{'name': 'superspike', 'nope': 1}", {"name": "superspike", "nope": 1})]))
        return _population_case(name, "surrogate", label, value)
    if what == "recurrent":
        label, value = draw(st.sampled_from([("'yes'", "yes"), ("2", 2), ("None", None)]))
        return _population_case(name, "recurrent", label, value)
    if what == "learn":
        label, value = draw(st.sampled_from([("'tau_mem'", "tau_mem"), ("['nope']", ["nope"]),
                                             ("42", 42), ("[1]", [1])]))
        return _population_case(name, "learn", label, value)
    if what == "unknown":
        return Case("construction", f"{cls.__name__}(3, tau_foo=1.0)",
                    lambda: cls(3, tau_foo=1.0), arg="tau_foo")
    if what == "shape":
        label, value = draw(st.sampled_from(BAD_SHAPES))
        return Case("construction", f"{cls.__name__}({label})", lambda: cls(value), arg="shape")
    if what == "wrong-shape-tensor":
        arg = draw(st.sampled_from(tensors))
        n = draw(st.sampled_from((2, 4)))
        default = float(getattr(cls.params_cls(), arg))
        value = torch.full((n,), default)
        return Case("construction", f"{cls.__name__}(3, {arg}=tensor of {n} equal values)",
                    lambda: cls(3, **{arg: value}), arg=re.escape(arg))
    arg = draw(st.sampled_from(tensors))
    kind = draw(st.sampled_from(("per-neuron", "numpy", "int")))
    return _population_valid(name, arg, kind)


def _shape_check(expected: tuple[int, ...]) -> Callable[[Any], str | None]:
    def check(layer: Any) -> str | None:
        return None if tuple(layer.shape) == expected else f"shape {layer.shape} != {expected}"
    return check


@st.composite
def layer_cases(draw: Any) -> Case:
    what = draw(st.sampled_from(("input-bad", "input-good", "linear", "linear-good", "conv",
                                 "conv-good")))
    if what == "input-bad":
        label, value = draw(st.sampled_from(BAD_SHAPES))
        return Case("construction", f"Input({label})", lambda: Input(value), arg="shape")
    if what == "input-good":
        label, value, expected = draw(st.sampled_from(GOOD_SHAPES))
        return Case("construction", f"Input({label})", lambda: Input(value), expect="valid",
                    check=_shape_check(expected))
    if what == "linear":
        slot = draw(st.sampled_from(("in_features", "out_features", "bias")))
        if slot == "bias":
            label, value = draw(st.sampled_from([("'yes'", "yes"), ("1.5", 1.5), ("None", None),
                                                 ("2", 2)]))
            return Case("construction", f"Linear(4, 3, bias={label})",
                        lambda: Linear(4, 3, bias=value), arg="bias")
        label, value = draw(st.sampled_from(BAD_SHAPES[:9]))
        args = (value, 3) if slot == "in_features" else (4, value)
        text = f"Linear({label}, 3)" if slot == "in_features" else f"Linear(4, {label})"
        return Case("construction", text, lambda: Linear(*args), arg=slot)
    if what == "linear-good":
        n_in, n_out = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        n_in_v: Any = draw(st.sampled_from((n_in, np.int64(n_in))))

        def check(layer: Any) -> str | None:
            return (None if tuple(layer.weight.shape) == (n_out, n_in) and layer.bias is None
                    else f"weight {tuple(layer.weight.shape)}")
        return Case("construction", f"Linear({n_in_v!r}, {n_out})",
                    lambda: Linear(n_in_v, n_out), expect="valid", check=check)
    if what == "conv":
        cls = draw(st.sampled_from((Conv1d, Conv2d)))
        slot = draw(st.sampled_from(("in_channels", "out_channels", "kernel_size", "stride",
                                     "padding", "bias")))
        label, value = draw(st.sampled_from(
            [("0", 0), ("-1", -1), ("2.5", 2.5), ("'3'", "3"), ("None", None)]
            if slot != "bias" else [("'yes'", "yes"), ("1.5", 1.5)]))
        kw: dict[str, Any] = {"in_channels": 2, "out_channels": 3, "kernel_size": 3}
        kw[slot] = value
        if slot == "padding" and value in (0, None):  # 0 is a valid padding
            kw[slot], label = -2, "-2"
        return Case("construction", f"{cls.__name__}({slot}={label}, ...)",
                    lambda: cls(**kw), arg=slot)
    cls = draw(st.sampled_from((Conv1d, Conv2d)))
    k = draw(st.integers(1, 3))

    def check(layer: Any) -> str | None:
        want = (3, 2, k) if cls is Conv1d else (3, 2, k, k)
        return None if tuple(layer.weight.shape) == want else f"weight {tuple(layer.weight.shape)}"
    return Case("construction", f"{cls.__name__}(2, 3, {k})", lambda: cls(2, 3, k),
                expect="valid", check=check)


def _runs_on_sim(steps: int = 2) -> Callable[[Any], str | None]:
    def check(net: Any) -> str | None:
        out = net(torch.zeros(steps, 1, 4))
        v = out.output.v
        if v is None or not bool(torch.isfinite(v).all()):
            return "the network's output is missing or not finite"
        return None
    return check


@st.composite
def network_cases(draw: Any) -> Case:
    what = draw(st.sampled_from(("layers", "names", "graph", "valid", "mixed-dt")))
    if what == "layers":
        label, make = draw(st.sampled_from([
            ("None", lambda: None), ("42", lambda: 42), ("'abc'", lambda: "abc"),
            ("[]", list), ("{}", dict),
            ("{'input': Input(4), 'fc': 'notamodule'}", lambda: {"input": Input(4), "fc": "x"}),
            ("[Linear(4, 3), CubaLI(3)] (no Input)", lambda: [Linear(4, 3), CubaLI(3)]),
            ("Input(4) → Linear(5, 3) → CubaLI(3)", lambda: [Input(4), Linear(5, 3), CubaLI(3)]),
            ("Input(4) → Linear(4, 3) → CubaLI(4)", lambda: [Input(4), Linear(4, 3), CubaLI(4)]),
            ("Input(4) → Linear(4, 3) (no population)", lambda: [Input(4), Linear(4, 3)]),
        ]))
        return Case("construction", f"Network({label})", lambda: Network(make()),
                    arg=r"layer|network|input|shape|linear|population|module|features")
    if what == "names":
        bad = draw(st.sampled_from(["training", "_modules", "", "a.b", 1, "forward", "pop",
                                    "keys", None]))
        layers = {"input": Input(4), "fc": Linear(4, 3)}

        def make() -> Network:
            return Network({**{("input" if k == "input" else bad): v for k, v in layers.items()},
                            "output": CubaLI(3)})
        return Case("construction", f"Network with a layer named {bad!r}", make,
                    arg=r"name")
    if what == "graph":
        label, inputs = draw(st.sampled_from([
            ("inputs={'fc': ['nope']}", {"fc": ["nope"], "out": ["fc"]}),
            ("inputs={'fc': 'input'} (a string)", {"fc": "input", "out": ["fc"]}),
            ("inputs=None", None),
            ("inputs={'fc': ['out'], 'out': ['fc']} (a cycle)", {"fc": ["out"], "out": ["fc"]}),
            ("inputs without 'out'", {"fc": ["input"]}),
            ("inputs={'fc': [], 'out': ['fc']}", {"fc": [], "out": ["fc"]}),
            ("inputs={'nope': ['input'], ...}", {"fc": ["input"], "out": ["fc"],
                                                 "nope": ["input"]}),
            ("inputs={'fc': [1], ...}", {"fc": [1], "out": ["fc"]}),
        ]))
        return Case("construction", f"GraphNetwork(Input-fc-out, {label})",
                    lambda: GraphNetwork({"input": Input(4), "fc": Linear(4, 3),
                                          "out": CubaLI(3)}, inputs),
                    arg=r"input|fc|out|nope|cycle|name")
    if what == "mixed-dt":
        dt2 = draw(st.sampled_from((2e-3, 5e-4)))
        return Case("construction",
                    f"Network(CubaLIF(dt=1e-3) → CubaLI(dt={dt2:g})) run on sim",
                    lambda: Network([Input(4), Linear(4, 3), CubaLIF(3, dt=DT), Linear(3, 2),
                                     CubaLI(2, dt=dt2)])(torch.zeros(2, 1, 4)), arg=r"\bdt\b")
    sizes = draw(st.integers(1, 4))
    graph = draw(st.booleans())
    if graph:
        def make() -> Network:
            return GraphNetwork({"input": Input(4), "fc": Linear(4, sizes), "h": CubaLIF(sizes),
                                 "skip": Linear(4, 3), "fc2": Linear(sizes, 3),
                                 "out": CubaLI(3)},
                                {"fc": ["input"], "h": ["fc"], "skip": ["input"],
                                 "fc2": ["h"], "out": ["fc2", "skip"]})
        label = f"GraphNetwork with a skip connection, {sizes} hidden"
    else:
        def make() -> Network:
            return Network([Input(4), Linear(4, sizes), CubaLIF(sizes), Linear(sizes, 3),
                            CubaLI(3)])
        label = f"Network(list of layers, {sizes} hidden)"
    return Case("construction", label, make, expect="valid", check=_runs_on_sim())


def construction_cases() -> st.SearchStrategy[Case]:
    return st.one_of(population_cases(), layer_cases(), network_cases())


# ----------------------------------------------------------------------------- forward inputs
@st.composite
def forward_cases(draw: Any) -> Case:
    backend = draw(st.sampled_from(BACKENDS))
    steps, batch = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    x = spikes(steps, batch)
    net = net_cuba()
    what = draw(st.sampled_from((
        "valid", "numpy", "list", "scalar", "rank", "features", "dtype", "complex", "nonfinite",
        "huge", "empty", "meta", "sparse", "strided", "events", "counts", "negative",
        "fraction", "double-net")))
    after = still_works(backend)

    def case(label: str, make: Callable[[], Any], expect: str = "error",
             check: Callable[[Any], str | None] | None = None, arg: str | None = X_ARG) -> Case:
        return Case("forward", f"net(x={label}, backend={backend!r})",
                    lambda: run(net, make(), backend), expect, check, arg, after)

    exact = same_as(lambda: ref(backend, steps, batch))
    shape = f"[{steps},{batch},4]"
    spiking_only = backend in ("chip", "xylo")  # chips take spike events (counts) only
    analog = "either" if spiking_only else "valid"
    if what == "valid":
        scale = draw(st.sampled_from((1.0, 0.5, 2.0)))
        return case(f"{scale:g}·spikes {shape}", lambda: x * scale,
                    "valid" if scale == 1.0 else analog, shaped(steps, batch))
    if what == "numpy":
        dtype = draw(st.sampled_from((np.float32, np.float64, np.int64)))
        return case(f"np.ndarray {np.dtype(dtype).name} {shape}",
                    lambda: x.numpy().astype(dtype), "either", exact)
    if what == "list":
        return case(f"nested list {shape}", x.tolist, "either", exact)
    if what == "scalar":
        label, value = draw(st.sampled_from([("tensor(1.)", torch.tensor(1.0)), ("1.0", 1.0),
                                             ("'x'", "x"), ("None", None), ("{}", {})]))
        return case(label, lambda: value)
    if what == "rank":
        label, make = draw(st.sampled_from([
            ("x[:, 0, 0] (rank 1)", lambda: x[:, 0, 0]), ("x[:, 0] (rank 2)", lambda: x[:, 0]),
            ("x[..., None] (rank 4)", lambda: x[..., None]),
            ("x[None] (rank 4)", lambda: x[None])]))
        return case(f"{label} of {shape}", make)
    if what == "features":
        n = draw(st.sampled_from((1, 3, 5, 8)))
        return case(f"{shape[:-2]}{n}] (features {n} != 4)", lambda: spikes(steps, batch, n=n))
    if what == "dtype":
        dtype = draw(st.sampled_from((torch.float16, torch.bfloat16, torch.float64, torch.int64,
                                      torch.int32, torch.uint8, torch.bool)))
        return case(f"{shape} {dtype}", lambda: x.to(dtype), "either", exact)
    if what == "complex":
        return case(f"{shape} complex64", lambda: x.to(torch.complex64))
    if what == "nonfinite":
        value = draw(st.sampled_from((NAN, INF, -INF)))
        t, b, f = draw(st.integers(0, steps - 1)), draw(st.integers(0, batch - 1)), draw(
            st.integers(0, 3))

        def make() -> Tensor:
            y = x.clone()
            y[t, b, f] = value
            return y
        return case(f"{shape} with {value} at [{t},{b},{f}]", make)
    if what == "huge":
        value = draw(st.sampled_from((3e38, -3e38, 1e30)))
        return case(f"{shape} · {value:g}", lambda: x * value + value, "either",
                    shaped(steps, batch))
    if what == "empty":
        which = draw(st.sampled_from(("batch", "time")))
        if which == "batch":
            return case(f"[{steps},0,4] (batch 0)", lambda: torch.zeros(steps, 0, 4), "either",
                        shaped(steps, 0))
        return case(f"[0,{batch},4] (T=0)", lambda: torch.zeros(0, batch, 4), "either",
                    shaped(0, batch))
    if what == "meta":
        return case(f"{shape} on the meta device", lambda: x.to("meta"))
    if what == "sparse":
        return case(f"{shape} sparse COO", x.to_sparse, "either", exact)
    if what == "strided":
        return case(f"{shape} non-contiguous", lambda: x.transpose(0, 1).contiguous()
                    .transpose(0, 1), "valid", exact)
    if what == "events":
        times = torch.full((batch, 1), 0.5 * DT)
        channels = torch.zeros(batch, 1, dtype=torch.long)

        def make() -> SpikeEvents:
            return SpikeEvents(times, channels, steps * DT)
        if backend == "event":
            def check(out: Any) -> str | None:
                v = out.output.v
                return (None if v is not None and bool(torch.isfinite(v).all())
                        else "no finite output membrane")
            return case(f"SpikeEvents (B={batch}, one event)", make, "valid", check)
        return case(f"SpikeEvents (B={batch}, one event)", make)
    if what == "counts":
        n = draw(st.sampled_from((16, 20, 255)))
        if backend == "xylo":
            def check(out: Any) -> str | None:
                text = " ".join(str(w) for w in out.report.warnings)
                return (None if re.search(r"15|cap|clip|saturat", text) else
                        f"input counts of {n} (the chip caps at 15) leave no warning: "
                        f"{out.report.warnings!r}")
            return case(f"spikes·{n} {shape} (counts over the input cap)", lambda: x * n,
                        "either", check)
        if backend == "event":  # exact spike times cost one iteration per spike: a budget
            budget = {"name": "event", "max_spikes": 100}
            return Case("forward", f"net(x=spikes·{n} {shape}, backend={budget!r})",
                        lambda: run(net, x * n, budget), "either", shaped(steps, batch),
                        r"max_spikes", after)
        return case(f"spikes·{n} {shape}", lambda: x * n, analog, shaped(steps, batch))
    if what == "negative":
        if backend == "xylo":
            return case(f"-spikes {shape} (negative counts)", lambda: -x - 1)
        return case(f"-spikes {shape}", lambda: -x, analog, shaped(steps, batch))
    if what == "fraction":
        if backend == "xylo":
            return case(f"0.5 + spikes {shape} (not counts)", lambda: x + 0.5)
        return case(f"0.5 + spikes {shape}", lambda: x + 0.5, analog, shaped(steps, batch))
    # a float64 network: float64 input is its own dtype; float32 input follows the rule
    dtype = draw(st.sampled_from((torch.float64, torch.float32)))
    net64 = net_double()
    expected = (lambda: run(net64, x.double(), backend)) if dtype == torch.float32 else None
    return Case("forward", f"net.double()(x={shape} {dtype}, backend={backend!r})",
                lambda: run(net64, x.to(dtype), backend),
                "either" if dtype == torch.float32 else "valid",
                both(shaped(steps, batch), same_as(expected)) if expected else
                shaped(steps, batch), X_ARG, after)


# ----------------------------------------------------------------------------- backend specs
BAD_OPTIONS: dict[str, dict[str, list[tuple[str, Any]]]] = {
    "sim": {
        "mode": [("'nope'", "nope"), ("3", 3)], "kernel": [("'nope'", "nope"), ("3", 3)],
        "grad_band": [("'x'", "x"), ("nan", NAN), ("-1", -1.0)],
        "checkpoint": [("True", True), ("1.5", 1.5), ("0", 0), ("-1", -1), ("'2'", "2")],
        "record": [("'v'", "v"), ("42", 42), ("('nope',)", ("nope",))],
        "differentiable": [("'yes'", "yes"), ("2", 2)],
    },
    "event": {
        "grid": [("'yes'", "yes")], "membrane": [("2", 2)],
        "max_spikes": [("1.5", 1.5), ("0", 0), ("-1", -1), ("True", True)],
        "observe": [("42", 42), ("'nope'", "nope")],
        "differentiable": [("'yes'", "yes")],
    },
    "chip": {
        "seed": [("1.5", 1.5), ("'x'", "x"), ("True", True), ("None", None)],
        "mismatch": [("'yes'", "yes")], "noise": [("2", 2)], "calibrate": [("None", None)],
        "clip_weights": [("'no'", "no")],
        "adc": [("'perfect'", "perfect"), ("3", 3)],
        "weight_scale": [("'x'", "x"), ("nan", NAN), ("-1", -1.0), ("0", 0.0)],
        "dense": [("'x'", "x"), ("('nope', 0)", ("nope", 0)), ("('hidden', 99)", ("hidden", 99))],
        "spec": [("'x'", "x"), ("object()", object())],
    },
    "xylo": {
        "mode": [("'fpga'", "fpga"), ("1", 1)], "method": [("'per_tensor'", "per_tensor")],
        "spec": [("'x'", "x"), ("42", 42)], "replay": [("'analog'", "analog"), ("None", None)],
    },
}
GOOD_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("sim", {}), ("sim", {"kernel": "reference"}), ("sim", {"checkpoint": 2}),
    ("sim", {"mode": "step"}), ("event", {}), ("event", {"grid": True}),
    ("chip", {}), ("chip", {"seed": 3}), ("chip", {"seed": np.int64(3)}), ("xylo", {}),
    ("xylo", {"mode": "qat"}), ("analog", {}),
]


@st.composite
def backend_cases(draw: Any) -> Case:
    what = draw(st.sampled_from(("spec", "option", "option", "valid", "default")))
    net, x = net_cuba(), spikes(3, 2)
    via = draw(st.sampled_from(("net(x, backend=...)", "get_backend", "Network(..., backend=)")))

    def call(spec: Any) -> Callable[[], Any]:
        if via == "get_backend":
            return lambda: get_backend(spec).run(net.graph, x)
        if via == "Network(..., backend=)":
            return lambda: Network(_cuba_layers(), backend=spec)
        return lambda: run(net, x, spec)

    if what == "spec":
        label, spec = draw(st.sampled_from([
            ("123", 123), ("1.5", 1.5), ("'nope'", "nope"), ("''", ""), ("'SIM'", "SIM"),
            ("['sim']", ["sim"]), ("object()", object()), ("{}", {}), ("{'name': 42}",
                                                                        {"name": 42}),
            ("{'name': 'nope'}", {"name": "nope"}), ("True", True), ("b'sim'", b"sim"),
            ("SimBackend (the class)", type(get_backend("sim"))),
        ]))
        return Case("backend", f"{via} with backend {label}", call(spec),
                    arg=r"backend|name", after=still_works("sim"))
    if what == "option":
        name = draw(st.sampled_from(sorted(BAD_OPTIONS)))
        option = draw(st.sampled_from(sorted(BAD_OPTIONS[name])))
        label, value = draw(st.sampled_from(BAD_OPTIONS[name][option]))
        if via == "Network(..., backend=)":
            via = "net(x, backend=...)"
        spec = {"name": name, option: value}
        return Case("backend", f"{via} with {{'name': {name!r}, {option!r}: {label}}}",
                    call(spec), arg=re.escape(option), after=still_works("sim"))
    if what == "default":
        return Case("backend", "net(x, backend=None) (the network's default)",
                    lambda: run(net, x, None), "valid", same_as(lambda: ref("sim")))
    name, options = draw(st.sampled_from(GOOD_OPTIONS))
    spec = {"name": name, **options}
    return Case("backend", f"net(x, backend={spec!r})", lambda: run(net, x, spec), "valid",
                shaped(3, 2))


# ----------------------------------------------------------------------------- states
@functools.cache
def state_of(which: str, backend: str, batch: int = 2) -> Any:
    net = {"cuba": net_cuba, "lif": net_lif, "other": net_other}[which]()
    with torch.no_grad():
        return run(net, spikes(3, batch, seed=5), backend).state


@st.composite
def state_cases(draw: Any) -> Case:
    backend = draw(st.sampled_from(BACKENDS))
    net, x = net_cuba(), spikes(draw(st.integers(1, 3)), 2)
    after = still_works(backend)
    own_backend = backend if backend in ("sim", "xylo") else "sim"
    own = state_of("cuba", own_backend)

    def case(label: str, make: Callable[[], Any], expect: str = "error",
             check: Callable[[Any], str | None] | None = None) -> Case:
        return Case("state", f"net(x, state={label}, backend={backend!r})",
                    lambda: run(net, x, backend, make()), expect, check, r"\bstate\b", after)

    what = draw(st.sampled_from((
        "type", "bare", "other-type", "other-names", "unknown-key", "missing-key", "batch",
        "nonfinite", "dtype", "cross-backend", "valid", "empty")))
    if what == "type":
        label, value = draw(st.sampled_from([("tensor", torch.zeros(2, 6)), ("'state'", "state"),
                                             ("['hidden']", ["hidden"]), ("42", 42)]))
        return case(label, lambda: value)
    if what == "bare":
        key = "xylo" if backend == "xylo" else "hidden"
        return case(f"{{{key!r}: tensor [2, 6]}}", lambda: {**own, key: torch.zeros(2, 6)})
    if what == "other-type":
        if backend == "xylo":
            return case("a sim run's state", lambda: state_of("cuba", "sim"))
        return case("the state of a LIF/LI network with the same names",
                    lambda: state_of("lif", "sim"))
    if what == "other-names":
        return case("another network's state (other names)",
                    lambda: state_of("other", own_backend))
    if what == "unknown-key":
        return case("own state + {'nope': ...}", lambda: {**own, "nope": None})
    if what == "missing-key" and backend == "xylo":  # its one key: {} is the "empty" case
        return case("{'xylo': None} (from reset)", lambda: {"xylo": None}, "either",
                    shaped(x.shape[0], 2))
    if what == "missing-key":
        key = next(k for k, v in own.items() if v is not None)
        return case(f"own state without {key!r}",
                    lambda: {k: v for k, v in own.items() if k != key})
    if what == "batch":
        b = draw(st.sampled_from((1, 3)))
        return case(f"a state of batch {b} (x has batch 2)",
                    lambda: state_of("cuba", own_backend, b))
    if what == "nonfinite":
        value = draw(st.sampled_from((NAN, INF)))
        return case(f"own state with {value}",
                    lambda: map_tensors(own, lambda t: t.fill_(value), first_only=True))
    if what == "dtype":
        dtype = draw(st.sampled_from((torch.float64, torch.float16)))
        return case(f"own state cast to {dtype}", lambda: map_tensors(own, lambda t: t.to(dtype)))
    if what == "cross-backend":
        if backend == "xylo":
            return case("xylo state cast to float", lambda: _xylo_float(own))
        return case("a xylo run's state", lambda: state_of("cuba", "xylo"))
    if what == "empty":
        return case("{}", dict, "either", shaped(x.shape[0], 2))
    # valid: continue a run; equals the second half of one long run
    if backend not in ("sim", "xylo"):
        return case("a sim run's state (this backend keeps no state)", lambda: own)
    first, second = spikes(3, 2, seed=5), x

    def expected() -> Any:
        whole = run(net, torch.cat([first, second]), backend)
        return _tail(whole, first.shape[0])
    return case("the state after a previous run", lambda: own, "valid",
                same_as(expected, atol=1e-6))


def _xylo_float(own: Any) -> dict:
    return {"xylo": map_tensors(own["xylo"], lambda t: t.float(), floating_only=False)}


class _Tail:
    """The last steps of a network output (for comparing a continued run)."""

    def __init__(self, out: Any, start: int) -> None:
        self.out, self.start = out, start

    def __getitem__(self, name: str) -> Any:
        obs = self.out[name]

        class View:
            pass
        view = View()
        for f in ("spikes", "v", "i"):
            t = getattr(obs, f, None)
            setattr(view, f, None if t is None else t[self.start:])
        return view


def _tail(out: Any, start: int) -> _Tail:
    return _Tail(out, start)


# ----------------------------------------------------------------------------- losses
@functools.cache
def loss_output(backend: str = "sim", batch: int = 2) -> Any:
    with torch.no_grad():
        return run(net_cuba(), spikes(3, batch, seed=7), backend)


LOSS_NAMES = ("max_membrane_ce", "first_spike_ce", "spike_count_ce", "exp_membrane_ce")
BAD_LOSS_PARAMS: dict[str, dict[str, list[tuple[str, Any]]]] = {
    "max_membrane_ce": {"scale": [("0", 0.0), ("nan", NAN), ("inf", INF), ("-1", -1.0),
                                  ("'x'", "x")],
                        "bounds": [("(2, 1)", (2.0, 1.0)), ("('a', 'b')", ("a", "b")),
                                   ("(1,)", (1.0,)), ("(nan, 1)", (NAN, 1.0))],
                        "bounds_strength": [("nan", NAN), ("-1", -1.0), ("inf", INF)]},
    "first_spike_ce": {"tau0": [("inf", INF), ("0", 0.0), ("nan", NAN)],
                       "tau1": [("-1", -1.0), ("inf", INF)], "dt": [("0", 0.0), ("nan", NAN)],
                       "alpha": [("nan", NAN), ("-1", -1.0), ("'x'", "x")]},
    "spike_count_ce": {"scale": [("0", 0.0), ("nan", NAN), ("inf", INF), ("-1", -1.0)]},
    "exp_membrane_ce": {"tau": [("0", 0.0), ("inf", INF)], "scale": [("nan", NAN)],
                        "dt": [("-1", -1.0), ("'x'", "x")]},
}
BAD_TARGETS: list[tuple[str, Callable[[int], Any]]] = [
    ("tensor([0., 2.]) (float)", lambda n: torch.tensor([0.0, 2.0])),
    ("tensor([True, False])", lambda n: torch.tensor([True, False])),
    ("tensor([nan, 1.])", lambda n: torch.tensor([NAN, 1.0])),
    ("tensor([0, n]) (class n of n)", lambda n: torch.tensor([0, n])),
    ("tensor([-1, 0])", lambda n: torch.tensor([-1, 0])),
    ("tensor([[0], [2]])", lambda n: torch.tensor([[0], [2]])),
    ("tensor([0, 1, 2]) (batch 3)", lambda n: torch.tensor([0, 1, 2])),
    ("tensor(0) (0-d)", lambda n: torch.tensor(0)),
    ("'0'", lambda n: "0"), ("None", lambda n: None),
]
EITHER_TARGETS: list[tuple[str, Callable[[], Any]]] = [
    ("[0, 2] (list)", lambda: [0, 2]),
    ("tensor([0, 2], int32)", lambda: torch.tensor([0, 2], dtype=torch.int32)),
    ("np.array([0, 2])", lambda: np.array([0, 2])),
    ("tensor([0, 2], uint8)", lambda: torch.tensor([0, 2], dtype=torch.uint8)),
]


SPIKE_LOSSES = ("first_spike_ce", "spike_count_ce")  # these read a spiking population


def loss_spec(name: str, **params: Any) -> dict[str, Any]:
    """The loss ``name`` on the population it can read: spike losses on "hidden" (6 classes),
    membrane losses on the readout (3 classes)."""
    return {"name": name, **({"population": "hidden"} if name in SPIKE_LOSSES else {}), **params}


def _finite_scalar(value: Any) -> str | None:
    if not isinstance(value, Tensor) or value.dim() != 0:
        return f"not a scalar tensor: {value!r}"
    return None if bool(torch.isfinite(value)) else f"the loss is {float(value)}"


@st.composite
def loss_cases(draw: Any) -> Case:
    backend = draw(st.sampled_from(("sim", "event")))
    name = draw(st.sampled_from(LOSS_NAMES))
    out = loss_output(backend)
    good = torch.tensor([0, 2])
    n_classes = 6 if name in SPIKE_LOSSES else 3
    what = draw(st.sampled_from(("param", "target", "either-target", "make", "population",
                                 "output", "empty", "valid", "regulariser", "regulariser")))
    if what == "param":
        param = draw(st.sampled_from(sorted(BAD_LOSS_PARAMS[name])))
        label, value = draw(st.sampled_from(BAD_LOSS_PARAMS[name][param]))
        return Case("loss", f"make_loss({{'name': {name!r}, {param!r}: {label}}})(out, y)",
                    lambda: make_loss(loss_spec(name, **{param: value}), dt=DT)(out, good),
                    arg=re.escape(param))
    if what == "target":
        label, make = draw(st.sampled_from(BAD_TARGETS))
        return Case("loss", f"{name}(out[{backend}], target={label})",
                    lambda: make_loss(loss_spec(name), dt=DT)(out, make(n_classes)), arg="target")
    if what == "either-target":
        label, make = draw(st.sampled_from(EITHER_TARGETS))
        loss = make_loss(loss_spec(name), dt=DT)

        def check(value: Any) -> str | None:
            want = loss(out, good)
            return None if not differ(value, want) else f"{value} != {want} with long labels"
        return Case("loss", f"{name}(out[{backend}], target={label})",
                    lambda: loss(out, make()), "either", check, arg="target")
    if what == "make":
        label, spec = draw(st.sampled_from([
            ("42", 42), ("'nope'", "nope"), ("{'name': 'nope'}", {"name": "nope"}), ("{}", {}),
            ("None", None), (f"{{'name': {name!r}, 'nope': 1}}", {"name": name, "nope": 1}),
            ("['max_membrane_ce']", ["max_membrane_ce"])]))
        return Case("loss", f"make_loss({label})", lambda: make_loss(spec, dt=DT),
                    arg=r"loss|name|nope")
    if what == "population":
        label, pop = draw(st.sampled_from([("'nope'", "nope"), ("42", 42), ("'input'", "input"),
                                           ("'fc1'", "fc1")]))
        return Case("loss", f"make_loss({{'name': {name!r}, 'population': {label}}})(out, y)",
                    lambda: make_loss(loss_spec(name, population=pop), dt=DT)(out, good),
                    "either" if pop == "input" and name in SPIKE_LOSSES
                    else "error", _finite_scalar, arg=r"population|nope|input|fc1|42")
    if what == "output":
        label, value = draw(st.sampled_from([("a tensor", torch.zeros(3, 2, 3)), ("None", None),
                                             ("{'output': ...}", {"output": None})]))
        return Case("loss", f"{name}(output={label}, y)",
                    lambda: make_loss(loss_spec(name), dt=DT)(value, good), arg="output")
    if what == "empty":  # an output of batch 0 (from the sim backend) and no targets
        return Case("loss", f"{name}(out of batch 0, target=[])",
                    lambda: make_loss(loss_spec(name), dt=DT)(loss_output("sim", 0),
                                                              torch.zeros(0, dtype=torch.long)),
                    "either", _finite_scalar, arg=r"batch|empty|target")
    if what == "regulariser":
        label, kw = draw(st.sampled_from([
            ("populations='hidden'", {"populations": "hidden"}),
            ("populations=['nope']", {"populations": ["nope"]}),
            ("populations=[42]", {"populations": [42]}),
            ("populations=['output'] (does not spike)", {"populations": ["output"]}),
            ("dt=0", {"populations": ["hidden"], "dt": 0.0}),
            ("dt=nan", {"populations": ["hidden"], "dt": NAN}),
            ("low=50, high=10", {"populations": ["hidden"], "low": 50.0, "high": 10.0}),
            ("strength=nan", {"populations": ["hidden"], "strength": NAN}),
            ("strength=-1", {"populations": ["hidden"], "strength": -1.0}),
            ("strength=inf", {"populations": ["hidden"], "strength": INF}),
            ("high='x'", {"populations": ["hidden"], "high": "x"}),
        ]))
        param = next(iter(k for k in kw if k != "populations"), "populations")
        return Case("loss", f"FiringRateRegularizer({label})(out[{backend}])",
                    lambda: FiringRateRegularizer(**kw)(out),
                    arg=re.escape(param) + ("|nope|hidden|output|42" if param == "populations"
                                            else "|low|high" if param in ("low", "high")
                                            else ""))
    if draw(st.booleans()):
        return Case("loss", f"FiringRateRegularizer(['hidden'])(out[{backend}])",
                    lambda: FiringRateRegularizer(["hidden"], dt=DT)(out), "valid",
                    _finite_scalar)
    return Case("loss", f"{name}(out[{backend}], tensor([0, 2]))",
                lambda: make_loss(loss_spec(name), dt=DT)(out, good), "valid", _finite_scalar)


# ----------------------------------------------------------------------------- encoders
X_FEATURES = torch.tensor([[0.0, 0.5, 1.0], [0.25, 1.0, 0.0]])
ENCODER_KW: dict[str, dict[str, Any]] = {
    "latency": {"dt": DT, "duration": 10 * DT, "t_early": 0.0, "t_late": 8 * DT},
    "log_latency": {"dt": DT, "duration": 10 * DT, "tau": 5 * DT, "threshold": 0.2},
    "rate": {"dt": DT, "duration": 10 * DT, "max_rate": 200.0},
}
ENCODERS = {"latency": latency, "log_latency": log_latency, "rate": rate}
BAD_ENCODER_PARAMS: dict[str, list[tuple[str, Any]]] = {
    "dt": [("0", 0.0), ("nan", NAN), ("-1e-3", -1e-3), ("'x'", "x"), ("True", True),
           ("None", None)],
    "duration": [("0", 0.0), ("inf", INF), ("1e-4 (< dt)", 1e-4)],
    "t_early": [("nan", NAN), ("-1e-3", -1e-3), ("0.009 (> t_late)", 9e-3)],
    "t_late": [("0.02 (> duration)", 0.02), ("'x'", "x")],
    "tau": [("0", 0.0), ("-1", -1.0), ("inf", INF)],
    "threshold": [("nan", NAN), ("-0.5", -0.5), ("1.5", 1.5), ("0", 0.0)],
    "max_rate": [("-1", -1.0), ("nan", NAN), ("2000 (·dt > 1)", 2000.0), ("'x'", "x")],
    "mode": [("'nope'", "nope"), ("3", 3)],
    "generator": [("'x'", "x"), ("42", 42)],
}
BAD_FEATURES: list[tuple[str, Callable[[], Any]]] = [
    ("x with nan", lambda: torch.tensor([[0.5, NAN]])),
    ("x with 1.5 (> 1)", lambda: torch.tensor([[0.5, 1.5]])),
    ("x with -0.1", lambda: torch.tensor([[-0.1, 0.5]])),
    ("x rank 1", lambda: torch.tensor([0.5, 0.2])),
    ("x rank 3", lambda: torch.zeros(1, 2, 2)),
    ("x = 'abc'", lambda: "abc"), ("x = None", lambda: None),
    ("x complex", lambda: torch.zeros(1, 2, dtype=torch.complex64)),
    ("x on meta", lambda: torch.zeros(1, 2, device="meta")),
]


def _raster_check(batch: int, features: int, steps: int = 10,
                  one_spike: bool = False) -> Callable[[Any], str | None]:
    def check(out: Any) -> str | None:
        if not isinstance(out, Tensor) or tuple(out.shape) != (steps, batch, features):
            return f"raster {getattr(out, 'shape', out)} is not [{steps}, {batch}, {features}]"
        if not bool(torch.isfinite(out).all()) or bool((out < 0).any()):
            return "the raster holds negative or non-finite counts"
        if one_spike and bool((out.sum(0) > 1).any()):
            return "more than one spike per feature"
        return None
    return check


@st.composite
def encoder_cases(draw: Any) -> Case:
    name = draw(st.sampled_from(sorted(ENCODERS)))
    fn, kw = ENCODERS[name], ENCODER_KW[name]
    what = draw(st.sampled_from(("param", "param", "x", "valid", "empty", "delta", "make",
                                 "either-x")))
    if what == "param":
        params = [p for p in BAD_ENCODER_PARAMS if p in kw or (name == "rate" and p in (
            "mode", "generator"))]
        param = draw(st.sampled_from(params))
        label, value = draw(st.sampled_from(BAD_ENCODER_PARAMS[param]))
        return Case("encoder", f"{name}(x, {param}={label})",
                    lambda: fn(X_FEATURES, **{**kw, param: value}),
                    arg=re.escape(param) + (r"|t_late|t_early" if param.startswith("t_") else
                                            r"|dt" if param == "max_rate" else
                                            r"|dt" if param == "duration" else ""))
    if what == "x":
        label, make = draw(st.sampled_from(BAD_FEATURES))
        return Case("encoder", f"{name}({label})", lambda: fn(make(), **kw), arg=r"\bx\b")
    if what == "either-x":
        label, make = draw(st.sampled_from([
            ("x as a list", X_FEATURES.tolist), ("x float64", X_FEATURES.double),
            ("x as np.ndarray", X_FEATURES.numpy), ("x int64 0/1", lambda: X_FEATURES.round()
                                                   .long()),
            ("x bool", lambda: X_FEATURES > 0.5)]))
        kwargs = {**kw, **({"generator": torch.Generator().manual_seed(0)} if name == "rate"
                           else {})}
        return Case("encoder", f"{name}({label})", lambda: fn(make(), **kwargs), "either",
                    _raster_check(2, 3, one_spike=name != "rate"), arg=r"\bx\b")
    if what == "empty":
        return Case("encoder", f"{name}(x of batch 0)", lambda: fn(torch.zeros(0, 3), **kw),
                    "valid", _raster_check(0, 3))
    if what == "delta":
        label, args = draw(st.sampled_from([
            ("threshold=0", (torch.zeros(4, 1, 2), {"threshold": 0.0})),
            ("threshold=nan", (torch.zeros(4, 1, 2), {"threshold": NAN})),
            ("threshold=-1", (torch.zeros(4, 1, 2), {"threshold": -1.0})),
            ("signal rank 2", (torch.zeros(4, 2), {"threshold": 0.1})),
            ("signal with nan", (torch.full((4, 1, 2), NAN), {"threshold": 0.1})),
            ("split='yes'", (torch.zeros(4, 1, 2), {"threshold": 0.1, "split": "yes"})),
            ("signal='x'", ("x", {"threshold": 0.1})),
        ]))
        arg = "threshold" if "threshold=" in label else "split" if "split" in label else "signal"
        return Case("encoder", f"delta({label})", lambda: delta(args[0], **args[1]), arg=arg)
    if what == "make":
        label, call = draw(st.sampled_from([
            ("make_encoder('nope')", lambda: make_encoder("nope")),
            ("make_encoder(42)", lambda: make_encoder(42)),
            (f"make_encoder({name!r}, nope=1, ...)", lambda: make_encoder(name, nope=1, **kw)),
            (f"make_encoder({name!r}) (missing parameters)", lambda: make_encoder(name)),
            (f"make_encoder({name!r}, dt=0, ...)",
             lambda: make_encoder(name, **{**kw, "dt": 0.0})(X_FEATURES)),
        ]))
        return Case("encoder", label, call, arg=r"encoder|nope|dt|parameter|name")
    steps = draw(st.integers(1, 12))
    kwargs = {**kw, "duration": steps * DT}
    if name == "latency":
        kwargs["t_late"] = (steps - 1) * DT
    if name == "rate":
        kwargs["generator"] = torch.Generator().manual_seed(steps)
    return Case("encoder", f"{name}(x [2, 3], duration={steps} steps)",
                lambda: fn(X_FEATURES, **kwargs), "valid",
                _raster_check(2, 3, steps, one_spike=name != "rate"))


# ----------------------------------------------------------------------------- NIR
def _nir_with(change: Callable[[Any], None]) -> Any:
    graph = to_nir(net_cuba())
    change(graph)
    return graph


def _set(node: str, attr: str, value: Any) -> Callable[[Any], None]:
    def change(graph: Any) -> None:
        setattr(graph.nodes[node], attr, value)
    return change


@st.composite
def nir_cases(draw: Any) -> Case:
    what = draw(st.sampled_from(("param", "length", "edge", "types", "dt", "not-graph",
                                 "export", "file", "valid")))
    if what == "param":
        node, attr = draw(st.sampled_from([("hidden", "tau_mem"), ("hidden", "tau_syn"),
                                           ("hidden", "v_threshold"), ("output", "r"),
                                           ("output", "tau_mem"), ("fc1", "weight")]))
        label, value = draw(st.sampled_from([
            ("'x'", "x"), ("array of str", np.array(["a"] * 6)), ("None", None),
            ("nan", np.full(6, NAN)), ("-1", np.full(6, -1.0)), ("0", np.zeros(6)),
        ]))
        if attr == "weight" and label in ("-1", "0"):
            label, value = "inf", np.full((6, 4), INF)
        if attr in ("v_threshold", "r") and label in ("-1",):
            label, value = "inf", np.full(6, INF)
        if attr == "v_threshold" and label == "0":
            label, value = "complex", np.full(6, 1j)
        return Case("nir", f"from_nir(graph with {node}.{attr}={label})",
                    lambda: from_nir(_nir_with(_set(node, attr, value)), DT),
                    arg=re.escape(attr) + "|" + node)
    if what == "length":
        node, attr, n = draw(st.sampled_from([("hidden", "tau_mem", 6), ("hidden", "v_leak", 6),
                                              ("output", "tau_syn", 3), ("hidden", "r", 6)]))
        m = draw(st.sampled_from((n - 1, n + 2, 1)))
        equal = draw(st.booleans())
        base = float(np.asarray(getattr(to_nir(net_cuba()).nodes[node], attr)).flat[0])
        value = (np.full(m, base) if equal else base * (1 + np.arange(m) / 10)) if m > 1 else \
            np.full((n, 1), base)
        label = (f"{m} {'equal ' if equal else ''}values" if m > 1 else
                 f"shape ({n}, 1) (rank 2)")
        return Case("nir", f"from_nir(graph with {node}.{attr} of {label} for {n} neurons)",
                    lambda: from_nir(_nir_with(_set(node, attr, value)), DT),
                    arg=re.escape(attr) + "|" + node)
    if what == "edge":
        label, change = draw(st.sampled_from([
            ("a 3-tuple edge", lambda g: g.edges.append(("input", "fc1", "x"))),
            ("an edge to 'nope'", lambda g: g.edges.append(("hidden", "nope"))),
            ("an edge from 'nope'", lambda g: g.edges.append(("nope", "fc2"))),
            ("no edges", lambda g: g.edges.clear()),
            ("edges=None", lambda g: setattr(g, "edges", None)),
            ("a dangling fc2 (edge fc2→output removed)",
             lambda g: g.edges.remove(("fc2", "output"))),
            ("no Output node", lambda g: (g.nodes.pop("output_"),
                                          g.edges.remove(("output", "output_")))),
            ("an edge [1, 2]", lambda g: g.edges.append((1, 2))),
        ]))
        return Case("nir", f"from_nir(graph with {label})",
                    lambda: from_nir(_nir_with(change), DT), arg=r"edge|node|nope|output|fc2")
    if what == "types":
        label, change = draw(st.sampled_from([
            ("input_type 4.7", _set("input", "input_type", {"input": np.array([4.7])})),
            ("Output of 5 (the network has 3)", _set("output_", "output_type",
                                                     {"output": np.array([5])})),
            ("input_type 'x'", _set("input", "input_type", {"input": "x"})),
            ("input_type -4", _set("input", "input_type", {"input": np.array([-4])})),
        ]))
        return Case("nir", f"from_nir(graph with {label})",
                    lambda: from_nir(_nir_with(change), DT), arg=r"input|output|type|shape")
    if what == "dt":
        label, value = draw(st.sampled_from([*BAD_DTS, ("2e-2 (> tau)", 2e-2)]))
        method = draw(st.sampled_from((None, "rk4", 42)))
        if method is None:
            return Case("nir", f"from_nir(graph, dt={label})",
                        lambda: from_nir(to_nir(net_cuba()), value), arg=r"\bdt\b|tau")
        return Case("nir", f"from_nir(graph, dt=1e-3, method={method!r})",
                    lambda: from_nir(to_nir(net_cuba()), DT, method=method), arg="method")
    if what == "not-graph":
        label, value = draw(st.sampled_from([("42", 42), ("a Network", net_cuba()),
                                             ("{'nodes': {}}", {"nodes": {}}), ("None", None)]))
        return Case("nir", f"from_nir({label}, dt=1e-3)", lambda: from_nir(value, DT),
                    arg=r"graph|NIR")
    if what == "export":
        label, call = draw(st.sampled_from([
            ("to_nir(42)", lambda: to_nir(42)), ("to_nir(None)", lambda: to_nir(None)),
            ("to_nir(net, dt='x')", lambda: to_nir(net_cuba(), dt="x")),
            ("to_nir(net, dt=0)", lambda: to_nir(net_cuba(), dt=0.0)),
            ("to_nir(net, dt=5e-4) (net runs at 1e-3)", lambda: to_nir(net_cuba(), dt=5e-4)),
            ("to_nir(LIF net with reset='subtract')", lambda: to_nir(Network(
                [Input(2), Linear(2, 2), LIF(2, reset="subtract"), Linear(2, 1), LI(1)]))),
        ]))
        return Case("nir", label, call, arg=r"model|network|graph|\bdt\b|reset")
    if what == "file":
        label, content = draw(st.sampled_from([("garbage bytes", b"not hdf5"), ("empty", b""),
                                               ("a JSON file", b"{}")]))
        return Case("nir", f"read_nir(a file holding {label})",
                    lambda: read_nir(_tmp_file(f"nir-{len(content)}.nir", content)),
                    arg=r"nir|file")
    steps = draw(st.integers(1, 4))
    x = spikes(steps, 2, seed=3)

    def check(net2: Any) -> str | None:
        return outputs_differ(net2(x), run(net_cuba(), x, "sim"), COMPARED, atol=1e-5)
    return Case("nir", f"from_nir(to_nir(net), dt=1e-3) on {steps} steps (round trip)",
                lambda: from_nir(to_nir(net_cuba()), DT), "valid", check)


_TMP: list[Path] = []


def set_tmp(path: Path) -> None:
    _TMP[:] = [path]


def _tmp_file(name: str, content: bytes) -> Path:
    path = _TMP[0] / name
    path.write_bytes(content)
    return path


# ----------------------------------------------------------------------------- xylo
@functools.cache
def xylo_config() -> XyloConfig:
    return quantize(net_cuba().graph)[0]


def _config_json(change: Callable[[dict], None]) -> str:
    data = json.loads(xylo_config().to_json())
    change(data)
    return json.dumps(data)


def _set_key(key: str, value: Any) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data[key] = value
    return change


@st.composite
def xylo_cases(draw: Any) -> Case:
    what = draw(st.sampled_from(("map", "quantize", "json", "json", "raster", "config",
                                 "valid")))
    if what == "map":
        label, call = draw(st.sampled_from([
            ("map_graph(net) (the Network, not its graph)", lambda: map_graph(net_cuba())),
            ("map_graph(42)", lambda: map_graph(42)),
            ("map_graph(graph, spec='x')", lambda: map_graph(net_cuba().graph, "x")),
            ("map_graph(LIF/LI network)", lambda: map_graph(net_lif().graph)),
            ("map_graph(None)", lambda: map_graph(None)),
        ]))
        return Case("xylo", label, call, arg=r"graph|spec|LIF|LI|model|neuron|network")
    if what == "quantize":
        label, value = draw(st.sampled_from([("'nope'", "nope"), ("3", 3), ("None", None)]))
        return Case("xylo", f"quantize(graph, method={label})",
                    lambda: quantize(net_cuba().graph, value), arg="method")
    if what == "json":
        label, make = draw(st.sampled_from([
            ("'[1, 2]'", lambda: "[1, 2]"), ("'{}'", lambda: "{}"), ("'{bad'", lambda: "{bad"),
            ("'null'", lambda: "null"), ("'42'", lambda: "42"), ("''", lambda: ""),
            ("42 (not a str)", lambda: 42), ("None", lambda: None),
            ("weights_in with a wrong shape", lambda: _config_json(
                lambda d: d["shapes"].__setitem__("weights_in", [3, 6, 2]))),
            ("ragged weights_out", lambda: _config_json(
                lambda d: d["weights_out"].__setitem__(0, [1]))),
            ("1.5 in threshold", lambda: _config_json(
                lambda d: d["threshold"].__setitem__(0, 1.5))),
            ("shift_in 'x'", lambda: _config_json(_set_key("shift_in", "x"))),
            ("shift_in 1.5", lambda: _config_json(_set_key("shift_in", 1.5))),
            ("format 'nope'", lambda: _config_json(_set_key("format", "nope"))),
            ("without threshold", lambda: _config_json(lambda d: d.pop("threshold"))),
            ("dt 'x'", lambda: _config_json(_set_key("dt", "x"))),
            ("threshold 'x'", lambda: _config_json(_set_key("threshold", "x"))),
            ("shapes 'x'", lambda: _config_json(_set_key("shapes", "x"))),
        ]))
        return Case("xylo", f"XyloConfig.from_json({label})",
                    lambda: XyloConfig.from_json(make()),
                    arg=r"json|config|shape|weights|threshold|shift|format|dt|record|text")
    if what == "raster":
        label, make = draw(st.sampled_from([
            ("float 0.5", lambda: torch.full((3, 4), 0.5)),
            ("negative", lambda: -torch.ones(3, 4)),
            ("nan", lambda: torch.full((3, 4), NAN)),
            ("5 channels", lambda: torch.ones(3, 5, dtype=torch.long)),
            ("rank 1", lambda: torch.ones(4, dtype=torch.long)),
            ("rank 4", lambda: torch.ones(3, 1, 1, 4, dtype=torch.long)),
            ("a list", lambda: [[1, 0, 0, 1]] * 3),
            ("a string", lambda: "x"),
        ]))
        return Case("xylo", f"simulate(config, raster {label})",
                    lambda: simulate(xylo_config(), make()), arg=r"\bx\b|input|raster")
    if what == "config":
        label, kw = draw(st.sampled_from([
            ("weights_in='x'", {"weights_in": "x"}),
            ("threshold with nan", {"threshold": torch.full((6,), NAN)}),
            ("weights_in 1000 (> 127)", {"weights_in": torch.full((4, 6, 2), 1000)}),
            ("shift_out=-1", {"shift_out": -1}),
            ("dt=0", {"dt": 0.0}),
            ("dt='x'", {"dt": "x"}),
            ("dash_mem=99", {"dash_mem": torch.full((6,), 99)}),
        ]))

        def make() -> Any:
            import dataclasses
            config = dataclasses.replace(xylo_config(), **kw)
            return simulate(config, torch.ones(2, 4, dtype=torch.long))
        return Case("xylo", f"simulate(XyloConfig with {label}, raster)", make,
                    arg=r"weights_in|threshold|shift_out|\bdt\b|dash_mem")
    steps = draw(st.integers(1, 4))
    if draw(st.booleans()):
        def roundtrip() -> Any:
            return XyloConfig.from_json(xylo_config().to_json())
        return Case("xylo", "XyloConfig.from_json(config.to_json()) (round trip)", roundtrip,
                    "valid", lambda c: None if c == xylo_config() else "the config changed")
    raster = spikes(steps, 1, seed=9)[:, 0].long()

    def check(run_: Any) -> str | None:
        first = simulate(xylo_config(), raster)
        return None if torch.equal(run_.spikes, first.spikes) else "two runs differ"
    return Case("xylo", f"simulate(config, int raster [{steps}, 4])",
                lambda: simulate(xylo_config(), raster), "valid", check)


# ----------------------------------------------------------------------------- checkpoints
def _snapshot(trainer: Any) -> tuple[dict, dict]:
    return ({k: v.clone() for k, v in trainer.network.state_dict().items()},
            json.loads(json.dumps(_plain(trainer.optimizer.state_dict()))))


def _plain(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.tolist()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def trainer_unchanged(trainer: Any, before: tuple[dict, dict]) -> Callable[[], str | None]:
    def after() -> str | None:
        weights, opt = before
        now = trainer.network.state_dict()
        for k, v in weights.items():
            if differ(now[k], v):
                return f"network tensor {k!r} changed"
        if json.loads(json.dumps(_plain(trainer.optimizer.state_dict()))) != opt:
            return "the optimiser state changed"
        return None
    return after


def net_unchanged(net: Network) -> Callable[[], str | None]:
    """After a failed load: ``net`` holds the same tensors and gives the same output."""
    before = {k: v.clone() for k, v in net.state_dict().items()}

    def after() -> str | None:
        now = net.state_dict()
        for k, v in before.items():
            if differ(now[k], v):
                return f"network tensor {k!r} changed"
        return outputs_differ(run(net, spikes(3, 2), "sim"), ref("sim"), COMPARED)
    return after


def checkpoint_files(trainer: Any, folder: Path) -> dict[str, Path]:
    """Files for the checkpoint cases, written once."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.pt"
    trainer.save_checkpoint(good)
    state = torch.load(good, weights_only=False)
    files: dict[str, Path] = {"a good checkpoint": good}

    def put(label: str, obj: Any = None, raw: bytes | None = None) -> None:
        path = folder / f"{len(files)}.pt"
        if raw is not None:
            path.write_bytes(raw)
        else:
            torch.save(obj, path)
        files[label] = path

    put("a tensor", torch.zeros(3))
    put("a dict without 'model'", {"weights": state["model"]})
    put("a list", [1, 2])
    put("garbage bytes", raw=b"\x00not a checkpoint")
    put("an empty file", raw=b"")
    model = dict(state["model"])
    key = next(k for k, v in model.items() if v.dim() == 2)
    bad = {**state, "model": {**model, key: torch.zeros(model[key].shape[0] + 1,
                                                        model[key].shape[1])}}
    put(f"'model' with {key} of the wrong shape", bad)
    put("'model' with an extra key", {**state, "model": {**model, "nope.weight":
                                                         torch.zeros(2)}})
    missing = {k: v for k, v in model.items() if k != key}
    put(f"'model' without {key}", {**state, "model": missing})
    opt = state["optimizer"]
    put("an optimiser with an extra param group",
        {**state, "optimizer": {**opt, "param_groups": [*opt["param_groups"],
                                                        dict(opt["param_groups"][0])]}})
    group = dict(opt["param_groups"][0])
    group["params"] = group["params"][:-1]
    put("an optimiser group missing a parameter",
        {**state, "optimizer": {**opt, "param_groups": [group, *opt["param_groups"][1:]]}})
    put("'model' holding a string", {**state, "model": "weights"})
    files["a folder"] = folder
    files["a missing file"] = folder / "missing.pt"
    return files


@st.composite
def checkpoint_cases(draw: Any, trainer: Any, files: dict[str, Path]) -> Case:
    what = draw(st.sampled_from(("load_weights", "load_checkpoint", "save", "state_dict",
                                 "state_dict")))
    before = _snapshot(trainer)
    unchanged = trainer_unchanged(trainer, before)
    if what in ("load_weights", "load_checkpoint"):
        label = draw(st.sampled_from(sorted(files)))
        as_str = draw(st.booleans())
        path: Any = str(files[label]) if as_str else files[label]
        fn = getattr(trainer, what)
        text = f"trainer.{what}({'str' if as_str else 'Path'} of {label})"
        ignored = what == "load_weights" and "optimiser" in label  # weights only: valid
        if label == "a good checkpoint" or ignored:
            return Case("checkpoint", text, lambda: fn(path), "valid", None, after=unchanged)
        return Case("checkpoint", text, lambda: fn(path), arg=r"checkpoint|init_from|model|"
                    r"optimi[sz]er|path|file", after=unchanged)
    if what == "save":
        label, value = draw(st.sampled_from([
            ("a str path", "str"), ("42", 42), ("None", None),
            ("a path in a missing folder", "missing"),
            ("an existing folder", files["a folder"])]))
        if value in ("str", "missing"):
            target = str(files["a folder"] / "saved-as-str.pt") if value == "str" else \
                files["a folder"] / "no" / "x.pt"

            def save() -> Any:
                trainer.save_checkpoint(target)
                return torch.load(target, weights_only=False)

            def check(state: Any) -> str | None:
                return None if isinstance(state, dict) and "model" in state else "not written"
            return Case("checkpoint", f"trainer.save_checkpoint({label})", save,
                        "valid" if value == "str" else "either", check,
                        arg=r"path|checkpoint|folder|file", after=unchanged)
        return Case("checkpoint", f"trainer.save_checkpoint({label})",
                    lambda: trainer.save_checkpoint(value), arg=r"path|checkpoint|folder|file",
                    after=unchanged)
    net = copy.deepcopy(net_cuba())  # a load that is accepted changes it
    own = {k: v.clone() for k, v in net.state_dict().items()}
    key = "layers.fc1.weight"
    label, make, expect = draw(st.sampled_from([
        ("a tensor", lambda: torch.zeros(3), "error"), ("'weights.pt'", lambda: "weights.pt",
                                                          "error"),
        ("None", lambda: None, "error"), ("[1, 2]", lambda: [1, 2], "error"),
        (f"{key} of the wrong shape", lambda: {**own, key: torch.zeros(7, 4)}, "error"),
        ("an extra key", lambda: {**own, "nope": torch.zeros(1)}, "error"),
        (f"without {key}", lambda: {k: v for k, v in own.items() if k != key}, "error"),
        (f"{key} = 'x'", lambda: {**own, key: "x"}, "error"),
        (f"{key} = a list", lambda: {**own, key: own[key].tolist()}, "error"),
        (f"{key} with nan", lambda: {**own, key: torch.full_like(own[key], NAN)}, "either"),
        (f"{key} float64", lambda: {**own, key: own[key].double()}, "either"),
        ("its own state dict", lambda: own, "valid"),
    ]))
    return Case("checkpoint", f"net.load_state_dict({label})",
                lambda: net.load_state_dict(make()), expect, None,
                arg=r"state dict|state_dict|key|fc1|shape|nan|tensor",
                after=net_unchanged(net) if expect == "error" else None)

