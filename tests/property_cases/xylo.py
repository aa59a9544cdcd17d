"""Xylo cases: ``map_graph``, ``quantize``, ``XyloConfig.from_json`` and ``simulate``."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import strategies as st

from bad_inputs import Case
from spikeloop.chips.xylo import XyloConfig, map_graph, quantize, simulate

from .common import NAN, net_cuba, net_lif, spikes


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
