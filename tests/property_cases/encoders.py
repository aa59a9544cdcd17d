"""Encoder cases: ``latency``, ``log_latency``, ``rate``, ``delta`` and ``make_encoder``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

from bad_inputs import Case
from spikeloop.data.encoders import delta, direct, latency, log_latency, make_encoder, rate

from .common import DT, INF, NAN

X_FEATURES = torch.tensor([[0.0, 0.5, 1.0], [0.25, 1.0, 0.0]])
ENCODER_KW: dict[str, dict[str, Any]] = {
    "latency": {"dt": DT, "duration": 10 * DT, "t_early": 0.0, "t_late": 8 * DT},
    "log_latency": {"dt": DT, "duration": 10 * DT, "tau": 5 * DT, "threshold": 0.2},
    "rate": {"dt": DT, "duration": 10 * DT, "max_rate": 200.0},
    "direct": {"dt": DT, "duration": 10 * DT, "gain": 1.0},
}
ENCODERS = {"latency": latency, "log_latency": log_latency, "rate": rate, "direct": direct}
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
    "gain": [("0", 0.0), ("nan", NAN), ("-1", -1.0), ("'x'", "x")],
}
BAD_FEATURES: list[tuple[str, Callable[[], Any]]] = [
    ("x with nan", lambda: torch.tensor([[0.5, NAN]])),
    ("x with 1.5 (> 1)", lambda: torch.tensor([[0.5, 1.5]])),
    ("x with -0.1", lambda: torch.tensor([[-0.1, 0.5]])),
    ("x rank 1", lambda: torch.tensor([0.5, 0.2])),
    ("x rank 0", lambda: torch.tensor(0.5)),
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
                    _raster_check(2, 3, one_spike=name not in ("rate", "direct")), arg=r"\bx\b")
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
                _raster_check(2, 3, steps, one_spike=name not in ("rate", "direct")))
