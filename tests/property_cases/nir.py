"""NIR cases: ``from_nir`` on altered graphs, ``to_nir`` and ``read_nir``; ``set_tmp`` names
the folder for the files it writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from bad_inputs import Case, outputs_differ
from spikeloop.interop import from_nir, read_nir, to_nir
from spikeloop.network import Network
from spikeloop.nn import LI, LIF, Input, Linear

from .common import BAD_DTS, COMPARED, DT, INF, NAN, net_cuba, run, spikes


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
