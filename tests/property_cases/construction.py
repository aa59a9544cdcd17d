"""Construction cases: populations, layers and networks built with bad (or valid edge)
arguments.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

from bad_inputs import Case, differ
from spikeloop.network import GraphNetwork, Network
from spikeloop.nn import POPULATIONS, Conv1d, Conv2d, CubaLI, CubaLIF, Input, Linear

from .common import BAD_DTS, DT, INF, NAN

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
