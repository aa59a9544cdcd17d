"""Loss cases: ``make_loss`` specs and parameters, targets, outputs and the firing-rate
regulariser.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from torch import Tensor

from bad_inputs import Case, differ
from spikeloop.training.losses import FiringRateRegularizer, make_loss

from .common import DT, INF, NAN, net_cuba, run, spikes


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
