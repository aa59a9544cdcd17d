"""Backend-spec cases: bad backend names and options, through ``net(x, backend=...)``,
``get_backend`` and ``Network(..., backend=)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import strategies as st

from bad_inputs import Case
from spikeloop.backends import get_backend
from spikeloop.network import Network

from .common import NAN, _cuba_layers, net_cuba, ref, run, same_as, shaped, spikes, still_works

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
