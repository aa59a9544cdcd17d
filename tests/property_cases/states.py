"""State cases: ``net(x, state=...)`` with foreign, malformed or continued states."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from hypothesis import strategies as st

from bad_inputs import Case, map_tensors

from .common import (
    BACKENDS,
    INF,
    NAN,
    net_cuba,
    net_lif,
    net_other,
    run,
    same_as,
    shaped,
    spikes,
    still_works,
)


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
