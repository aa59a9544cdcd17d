"""Cases for the property-based suite (tests/test_properties.py): how each outcome is classified.

A :class:`Case` is one call of a public entry point with one bad (or one valid edge) argument.
:func:`classify` runs it and sorts the outcome into

* ``specific`` — a :class:`~spikeloop.errors.SpikeloopError` whose message names the argument
  (good);
* ``correct`` — a valid input returned a result that passes the case's check (good);
* ``raw`` — any other exception (a traceback from torch, numpy, the registry...);
* ``silent`` — a bad input returned normally, or a valid one returned a wrong/NaN result;
* ``vague`` — a specific error whose message does not name the offending argument;
* ``refused`` — a valid edge input raised a spikeloop error;
* ``unusable`` — the object gave another result on a good input after the case;
* ``slow`` — the case took longer than :data:`SLOW_S`.

The first two are good outcomes, the others are defects. The case generators (hypothesis
strategies, one per kind of entry point) live in ``tests/property_cases/``.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import signal
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from spikeloop.errors import SpikeloopError

SLOW_S = 2.0
STOP_S = 2.5  # a case still running after this long is stopped (and counted as slow)
GOOD = ("specific", "correct")
DEFECTS = ("raw", "silent", "vague", "refused", "unusable", "slow")
OUTCOMES = GOOD + DEFECTS

Check = Callable[[Any], "str | None"]


@dataclass
class Case:
    """One call with one bad thing (or one valid edge input).

    Attributes:
        kind: which group of entry points (``construction``, ``forward`` ...).
        what: the call in words, e.g. ``"net(x float16 [2,1,4], backend='sim')"``.
        call: runs the call and returns its result.
        expect: ``"error"`` (a spikeloop error is due), ``"valid"`` (a result is due and must
            pass ``check``) or ``"either"`` (a documented refusal or a correct result).
        check: for a result: ``None`` if right, else what is wrong.
        arg: regular expression (case-insensitive) that a spikeloop error's message must match:
            the offending argument's name. ``None``: not checked.
        after: run after a case that raised: ``None`` if the objects the case touched still
            work as before, else what changed (``always_after``: after every case).
        grad: run with autograd on (default: under ``torch.no_grad``, for speed).
    """

    kind: str
    what: str
    call: Callable[[], Any]
    expect: str = "error"
    check: Check | None = None
    arg: str | None = None
    after: Callable[[], str | None] | None = None
    grad: bool = False
    always_after: bool = False


@dataclass
class Outcome:
    kind: str
    what: str
    outcome: str
    detail: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def defect(self) -> bool:
        return self.outcome in DEFECTS


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def _run_check(check: Check | None, result: Any) -> str | None:
    if check is None:
        return None
    try:
        return check(result)
    except Exception as err:  # a check that cannot read the result: the result is wrong
        return f"the result could not be checked ({_first_line(err)})"


class _Stopped(BaseException):
    """Raised by the timer in a case that runs longer than :data:`STOP_S` (a BaseException,
    so that no ``except Exception`` in the library swallows it)."""


_ARMED = [False]


def _stop(signum: int, frame: Any) -> None:
    if not _ARMED[0]:
        return
    while frame is not None:  # never inside an import (a half-imported module would stay
        if "importlib" in frame.f_code.co_filename:  # broken): the timer fires again
            return
        frame = frame.f_back
    raise _Stopped


def _unraisable(previous: Any) -> Callable[[Any], None]:
    def hook(info: Any) -> None:  # a stop that hit a finaliser: the timer fires again
        if not isinstance(info.exc_value, _Stopped):
            previous(info)
    return hook


def _call(case: Case) -> tuple[Any, BaseException | None]:
    """Run the case with warnings as errors (as under pytest), stopped after ``STOP_S`` (and
    every 0.25 s after that, should a stop land in a finaliser, which cannot raise)."""
    handler = signal.signal(signal.SIGALRM, _stop)
    hook = sys.unraisablehook
    sys.unraisablehook = _unraisable(hook)
    _ARMED[0] = True
    signal.setitimer(signal.ITIMER_REAL, STOP_S, 0.25)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            if case.grad:
                return case.call(), None
            with torch.no_grad():
                return case.call(), None
    except (Exception, _Stopped) as err:
        _ARMED[0] = False
        return None, err
    finally:
        _ARMED[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
        sys.unraisablehook = hook


def classify(case: Case) -> Outcome:
    """Run ``case`` and classify what happened (see the module docstring)."""
    assert case.expect in ("error", "valid", "either"), case.expect
    start = time.perf_counter()
    result, error = _call(case)
    seconds = time.perf_counter() - start
    if isinstance(error, _Stopped):
        out = Outcome(case.kind, case.what, "slow", f"stopped after {STOP_S:g} s (limit "
                      f"{SLOW_S:g} s)", seconds)
    elif isinstance(error, SpikeloopError):
        message = str(error)
        if case.expect == "valid":
            out = Outcome(case.kind, case.what, "refused", _first_line(error))
        elif case.arg is not None and not re.search(case.arg, message, re.IGNORECASE):
            out = Outcome(case.kind, case.what, "vague",
                          f"{_first_line(error)} (does not name {case.arg!r})")
        else:
            out = Outcome(case.kind, case.what, "specific", _first_line(error))
    elif error is not None:
        where = ""
        tb = error.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None:
            where = f" [at {tb.tb_frame.f_code.co_filename.split('/')[-1]}:{tb.tb_lineno}]"
        out = Outcome(case.kind, case.what, "raw", _first_line(error) + where)
    elif case.expect == "error":
        out = Outcome(case.kind, case.what, "silent", f"accepted, returned {_brief(result)}")
    else:
        problem = _run_check(case.check, result)
        out = (Outcome(case.kind, case.what, "correct") if problem is None else
               Outcome(case.kind, case.what, "silent", f"wrong result: {problem}"))
    out.seconds = seconds
    if case.after is not None and (error is not None or case.always_after):
        try:
            with torch.no_grad():
                changed = case.after()
        except Exception as err:
            changed = f"the good input now fails: {_first_line(err)}"
        if changed is not None:
            if out.defect:
                out.notes.append(f"and unusable afterwards: {changed}")
            else:
                out.outcome, out.detail = "unusable", changed
    if seconds > SLOW_S:
        if out.defect:
            out.notes.append(f"and slow: {seconds:.1f} s")
        else:
            out.outcome, out.detail = "slow", f"{seconds:.1f} s > {SLOW_S} s"
    return out


def _brief(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"tensor {tuple(value.shape)} {value.dtype}"
    text = repr(value) if not hasattr(value, "populations") else type(value).__name__
    return text if len(text) < 80 else text[:77] + "..."


# ----------------------------------------------------------------------------- comparisons
def differ(a: Tensor | None, b: Tensor | None, atol: float = 0.0) -> bool:
    """Whether two optional tensors differ (NaN equals NaN; ``atol=0``: bit for bit)."""
    if a is None or b is None:
        return (a is None) != (b is None)
    if a.shape != b.shape:
        return True
    a, b = a.detach().to_dense() if a.is_sparse else a.detach(), b.detach()
    if a.dtype != b.dtype:
        return True
    if not a.is_floating_point():
        return not torch.equal(a, b)
    return not torch.allclose(a, b, rtol=0.0, atol=atol, equal_nan=True)


FIELDS = ("spikes", "v", "i")


def outputs_differ(out: Any, ref: Any, names: tuple[str, ...], atol: float = 0.0) -> str | None:
    """``None`` if two network outputs agree on every population's spikes/v/i, else where."""
    for name in names:
        for f in FIELDS:
            a, b = getattr(out[name], f, None), getattr(ref[name], f, None)
            if differ(a, b, atol):
                return f"{name}.{f} differs from the reference"
    return None


def map_tensors(obj: Any, fn: Callable[[Tensor], Tensor], first_only: bool = False,
                floating_only: bool = True) -> Any:
    """A copy of a nested state (dicts, named tuples, dataclasses, lists) with ``fn`` applied
    to its floating-point tensors (``floating_only=False``: to all of them; ``first_only``: to
    the first one only)."""
    done = [False]

    def go(o: Any) -> Any:
        if isinstance(o, Tensor):
            if (o.is_floating_point() or not floating_only) and not (first_only and done[0]):
                done[0] = True
                return fn(o.detach().clone())
            return o
        if isinstance(o, Mapping):  # a NetworkState too: copied into a plain mapping
            return {k: go(v) for k, v in o.items()}
        if isinstance(o, tuple) and hasattr(o, "_fields"):
            return type(o)(*(go(v) for v in o))
        if isinstance(o, list | tuple):
            return type(o)(go(v) for v in o)
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.replace(o, **{f.name: go(getattr(o, f.name))
                                             for f in dataclasses.fields(o) if f.init})
        return copy.copy(o)

    return go(obj)


def summarise(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    """Counts per kind and outcome (and per kind: cases run, distinct cases)."""
    table: dict[str, dict[str, int]] = {}
    for o in outcomes:
        row = table.setdefault(o.kind, dict.fromkeys(("cases", "distinct", *OUTCOMES,
                                                      "seconds"), 0))
        row[o.outcome] += 1
        row["cases"] += 1
        row["seconds"] += o.seconds
    for kind, row in table.items():
        row["distinct"] = len({o.what for o in outcomes if o.kind == kind})
    return table


def format_table(table: dict[str, dict[str, int]]) -> str:
    cols = ("cases", "distinct", *OUTCOMES, "seconds")

    def cell(value: float) -> str:
        return f"{value:>9.1f}" if isinstance(value, float) else f"{value:>9}"
    lines = [f"{'kind':<13}" + "".join(f"{c:>9}" for c in cols)]
    total = dict.fromkeys(cols, 0)
    for kind, row in table.items():
        lines.append(f"{kind:<13}" + "".join(cell(row[c]) for c in cols))
        for c in cols:
            total[c] += row[c]
    lines.append(f"{'total':<13}" + "".join(cell(total[c]) for c in cols))
    return "\n".join(lines)


def unique_defects(outcomes: list[Outcome]) -> list[Outcome]:
    """One defect per (kind, outcome, what is wrong): the shortest case that shows it (the
    minimal example), with the number of cases that show the same. Raw and vague errors are
    grouped by exception and place, the other defects by the case (sizes and indices aside)."""
    groups: dict[tuple[str, str, str], list[Outcome]] = {}
    for o in outcomes:
        if o.defect:
            # a raw or vague error: one per exception and place; the others (a silent
            # acceptance, a wrongful refusal...): one per case up to its sizes and indices
            text = o.detail if o.outcome in ("raw", "vague") else o.what
            signature = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "#", text)
            groups.setdefault((o.kind, o.outcome, signature), []).append(o)
    out = []
    for group in groups.values():
        best = min(group, key=lambda o: (len(o.what), o.what))
        best = dataclasses.replace(best, notes=[*best.notes, f"{len(group)} case(s) like it"])
        out.append(best)
    return sorted(out, key=lambda o: (o.kind, o.outcome, o.what))


def format_defects(outcomes: list[Outcome]) -> str:
    """The defect list, grouped by kind: minimal example, outcome and what happened."""
    lines: list[str] = []
    kind = None
    for o in unique_defects(outcomes):
        if o.kind != kind:
            kind = o.kind
            lines.append(f"\n== {kind} ==")
        lines.append(f"[{o.outcome}] {o.what}\n    -> {o.detail}"
                     + "".join(f"\n       {n}" for n in o.notes))
    return "\n".join(lines).lstrip("\n")
