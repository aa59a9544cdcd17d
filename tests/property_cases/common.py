"""Shared by the case modules: constants, the tiny networks (4 inputs, 6 hidden, 3 outputs),
built once, their reference runs and the checks several kinds use."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from bad_inputs import outputs_differ
from spikeloop.network import Network
from spikeloop.nn import LI, LIF, CubaLI, CubaLIF, Input, Linear

DT = 1e-3
BACKENDS = ("sim", "event", "chip", "xylo")
COMPARED = ("hidden", "output")  # populations whose spikes/v/i are compared
NAN, INF = math.nan, math.inf


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

# bad dt values: the construction and NIR cases
BAD_DTS: list[tuple[str, Any]] = [
    ("None", None), ("0", 0.0), ("-1e-3", -1e-3), ("nan", NAN), ("inf", INF), ("'1ms'", "1ms"),
    ("True", True),
]
