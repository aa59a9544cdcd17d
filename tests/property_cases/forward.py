"""Forward-input cases: ``net(x, backend=...)`` with bad (or valid edge) inputs ``x`` on
every backend.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from torch import Tensor

from bad_inputs import Case
from spikeloop.backends.event import SpikeEvents

from .common import (
    BACKENDS,
    DT,
    INF,
    NAN,
    X_ARG,
    both,
    net_cuba,
    net_double,
    ref,
    run,
    same_as,
    shaped,
    spikes,
    still_works,
)


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
