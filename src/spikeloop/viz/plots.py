"""Plots of spiking activity, membrane potentials and training progress.

All functions take time-major tensors ``[T, B, N]`` (``torch.Tensor`` or ``numpy.ndarray``; a
single sample ``[T, N]`` is accepted too), pick one batch element with ``sample`` and put time on
the x axis in milliseconds, at the times the discrete-time model gives its values: step ``k``
advances the state from ``k·dt`` to ``(k+1)·dt``, so membrane sample ``k`` and a population's
spikes of step ``k`` are drawn at the end of the step, ``(k+1)·dt``; input spikes of step ``k``
are delivered at its start and drawn at ``k·dt`` (``timing="start"`` / ``inputs=``).

Membrane potentials are in the model's units (those of ``v_threshold``), labelled so; a chip's
read-out is labelled with what it is (``readout=``: its description, unit and limits). Samples
are joined by straight lines; a spike's reset is drawn as a vertical drop at the spike time from
the value compared with the threshold to the value after the reset (``reset=``), or, when that
value is not given, as a break in the line — never as a slanted line into the next sample.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas directly, never
through ``pyplot``, so no global figure state is created or leaked and nothing is ever shown.
Every function returns the figure it drew on and, when ``path`` is given, also saves it there
(PNG unless the file suffix names another format matplotlib can write; parent directories are
created).
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from spikeloop.checks import check_dt
from spikeloop.errors import NonFiniteError, ShapeError
from spikeloop.observables import ReadoutRange

if TYPE_CHECKING:
    import torch

    ArrayLike: TypeAlias = torch.Tensor | np.ndarray
else:
    ArrayLike: TypeAlias = Any

PathLike: TypeAlias = str | os.PathLike[str]

__all__ = [
    "compare_traces",
    "membrane_traces",
    "raster_panel",
    "spike_raster",
    "timed_traces",
    "training_curves",
]

_POS_COLOR = "black"
_NEG_COLOR = "tab:red"
_THRESHOLD_COLOR = "0.4"
_MEMBRANE_LABEL = "membrane potential (model units)"
Timing: TypeAlias = Literal["end", "start"]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """Convert a torch tensor / numpy array / nested sequence to a float64 numpy array."""
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor, without importing torch
        x = x.detach().cpu().double().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a tensor or array of numbers, got {type(x)!r}") from exc
    return arr




def _batch_size(arr: np.ndarray, name: str) -> int:
    """Batch size of a ``[T, B, N]`` (B) or ``[T, N]`` (1) array; ShapeError for other ranks."""
    if arr.ndim == 3:
        return arr.shape[1]
    if arr.ndim == 2:
        return 1
    raise ShapeError(
        f"{name} must have shape [T, B, N] or [T, N] (time-major), "
        f"got rank {arr.ndim} shape {tuple(arr.shape)}"
    )


def _check_sample(sample: int, batch: int, name: str) -> int:
    try:
        index = operator.index(sample)
    except TypeError as exc:
        raise TypeError(f"sample must be an int, got {sample!r}") from exc
    if not 0 <= index < batch:
        raise ShapeError(
            f"sample {index} is out of range for {name} with batch size {batch} "
            f"(valid: 0..{batch - 1})"
            if batch > 0
            else f"sample {index} is out of range: {name} has an empty batch (B = 0)"
        )
    return index


def _select(x: ArrayLike, name: str, sample: int) -> np.ndarray:
    """Return the ``[T, N]`` slice of batch element ``sample`` as float64 numpy."""
    arr = _to_numpy(x, name)
    batch = _batch_size(arr, name)
    index = _check_sample(sample, batch, name)
    return arr[:, index, :] if arr.ndim == 3 else arr


def _times_ms(steps: int, dt: float, timing: Timing = "end") -> np.ndarray:
    """Times (ms) of steps ``0..steps-1``: their ends ``(k+1)·dt`` or starts ``k·dt``."""
    if timing not in ("end", "start"):
        raise ValueError(f"timing must be 'end' or 'start', got {timing!r}")
    first = 1 if timing == "end" else 0
    return np.arange(first, steps + first, dtype=np.float64) * dt * 1e3


def _new_figure(figsize: tuple[float, float]) -> Figure:
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _root_figure(ax: Axes) -> Figure:
    fig: Any = ax.figure
    while not isinstance(fig, Figure):  # SubFigure -> parent
        fig = fig.figure
    return fig


def _save(fig: Figure, path: PathLike | None) -> None:
    if path is None:
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fmt = target.suffix[1:].lower() if target.suffix else "png"
    fig.savefig(target, format=fmt)


def _set_time_limits(ax: Axes, steps: int, dt: float) -> None:
    """The simulated window ``[0, T·dt]`` with half a step to spare on either side."""
    if steps > 0:
        ax.set_xlim(-0.5 * dt * 1e3, (steps + 0.5) * dt * 1e3)


def _with_resets(
    t: np.ndarray, v: np.ndarray, fired: np.ndarray, after: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y of a sampled trace whose resets are drawn vertically, and where its samples are.

    After each sample ``k`` where the neuron fired, a point ``(t_k, after_k)`` is inserted: the
    line drops at the spike time from the value compared with the threshold to the value after
    the reset, then runs on to the next sample. ``after=None`` (unknown) inserts NaN instead: the
    line breaks at the spike. The third array holds the positions of the original samples.
    """
    (idx,) = np.nonzero(fired)
    positions = np.arange(t.shape[0])
    if idx.size == 0:
        return t, v, positions
    value = np.full(idx.shape, np.nan) if after is None else after[idx]
    positions = positions + np.searchsorted(idx, positions, side="left")
    return np.insert(t, idx + 1, t[idx]), np.insert(v, idx + 1, value), positions


def _draw_raster(
    ax: Axes, spikes: np.ndarray, dt: float, name: str, timing: Timing = "end"
) -> None:
    """Draw a ``[T, N]`` spike array on ``ax``: +1 (any positive) and -1 (any negative)."""
    if not np.all(np.isfinite(spikes)):
        raise NonFiniteError(f"{name} holds NaN or infinite values")
    steps, neurons = spikes.shape
    t_ms = _times_ms(steps, dt, timing)
    size = 30.0 if neurons <= 40 else max(2.0, 1200.0 / neurons)

    t_pos, n_pos = np.nonzero(spikes > 0)
    ax.scatter(
        t_ms[t_pos], n_pos, s=size, marker="|", color=_POS_COLOR, linewidths=1.0, label="+1"
    ).set_gid("spikes_pos")
    t_neg, n_neg = np.nonzero(spikes < 0)
    if t_neg.size:
        ax.scatter(
            t_ms[t_neg], n_neg, s=size, marker="|", color=_NEG_COLOR, linewidths=1.0, label="-1"
        ).set_gid("spikes_neg")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small", markerscale=1.5)

    _set_time_limits(ax, steps, dt)
    if neurons > 0:
        ax.set_ylim(-0.5, neurons - 0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _resolve_level(
    value: float | ArrayLike, v_arr: np.ndarray, sample: int, name: str
) -> np.ndarray:
    """A level (threshold, reset value, read-out limit) as a 2-D array broadcastable to the
    ``[T, N]`` trace slice.

    Accepted: a scalar (-> ``[1, 1]``), one value per neuron ``[N]`` (-> ``[1, N]``) or a
    time-varying level of exactly the trace's shape (-> ``[T, N]``).
    """
    arr = _to_numpy(value, name)
    steps, neurons = v_arr.shape[0], v_arr.shape[-1]
    if arr.size == 1:
        return arr.reshape(1, 1)
    if arr.ndim == 1 and arr.shape[0] == neurons:
        return arr.reshape(1, neurons)
    if arr.shape == v_arr.shape:
        return arr[:, sample, :] if arr.ndim == 3 else arr
    raise ShapeError(
        f"{name} must be a scalar, one value per neuron [N] = [{neurons}] or the trace shape "
        f"{tuple(v_arr.shape)} (T = {steps}), got shape {tuple(arr.shape)}"
    )


def _draw_threshold(
    ax: Axes, thr: np.ndarray, neuron: int, t_ms: np.ndarray, color: str, label: str,
    gid: str = "threshold", linestyle: str = "--",
) -> None:
    column = thr[:, neuron if thr.shape[1] > 1 else 0]
    if column.shape[0] == 1:
        line = ax.axhline(float(column[0]), color=color, linestyle=linestyle, linewidth=1.0,
                          label=label)
    else:
        (line,) = ax.plot(t_ms, column, color=color, linestyle=linestyle, linewidth=1.0,
                          label=label)
    line.set_gid(gid)


# --------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------


def spike_raster(
    spikes: ArrayLike,
    dt: float,
    *,
    sample: int = 0,
    timing: Timing = "end",
    title: str | None = None,
    path: PathLike | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Raster plot of one sample's spikes: a dot at (time in ms, neuron index) per spike.

    Args:
        spikes: ``[T, B, N]`` or ``[T, N]`` spikes (0/1; ternary -1/0/+1 allowed), torch or numpy.
        dt: Simulation step in seconds.
        sample: Batch element to draw (``0 <= sample < B``).
        timing: ``"end"``: spikes of step ``k`` are drawn at ``(k+1)·dt`` ms, when a population
            of the model emits them; ``"start"``: at ``k·dt``, when input spikes are delivered.
        title: Optional axes title.
        path: If given, save the figure there (PNG by default, parent dirs created).
        ax: Draw into this axes instead of a new figure.

    Returns:
        The figure holding the plot (``ax``'s figure when ``ax`` is given). Positive spikes
        form one scatter collection (gid ``"spikes_pos"``); negative spikes, if any, a second
        one in another colour (gid ``"spikes_neg"``) with a legend.

    Raises:
        ShapeError: wrong rank or ``sample`` out of range.
        TimeStepError: ``dt`` not positive.
        NonFiniteError: spikes hold NaN/inf.
    """
    dt = check_dt(dt)
    arr = _select(spikes, "spikes", sample)
    if ax is None:
        fig = _new_figure((8.0, 1.5 + min(4.0, 0.05 * arr.shape[1] + 1.0)))
        ax = fig.add_subplot()
    else:
        fig = _root_figure(ax)
    _draw_raster(ax, arr, dt, "spikes", timing)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("neuron")
    if title is not None:
        ax.set_title(title)
    _save(fig, path)
    return fig


def raster_panel(
    populations: Mapping[str, ArrayLike],
    dt: float,
    *,
    sample: int = 0,
    inputs: Collection[str] = (),
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """Stacked rasters, one subplot per population, sharing the time axis.

    Args:
        populations: Name -> ``[T, B, N]`` (or ``[T, N]``) spikes, e.g. a network's observables.
            All must have the same number of time steps ``T``; ``N`` may differ.
        dt: Simulation step in seconds.
        sample: Batch element to draw from every population.
        inputs: Names of input populations: their spikes of step ``k`` are drawn at its start,
            ``k·dt``, the others' at its end, ``(k+1)·dt`` (see :func:`spike_raster`).
        title: Optional figure title.
        path: If given, save the figure there.

    Returns:
        The figure; its axes are in the mapping's order, each labelled with the population name.

    Raises:
        ValueError: ``populations`` is empty.
        ShapeError: a wrong rank, mismatched ``T`` or ``sample`` out of range.
    """
    dt = check_dt(dt)
    if not populations:
        raise ValueError("populations is empty: pass at least one name -> spikes entry")
    arrays: dict[str, np.ndarray] = {}
    for name, spikes in populations.items():
        arrays[name] = _select(spikes, f"population {name!r}", sample)
    first_name, first = next(iter(arrays.items()))
    for name, arr in arrays.items():
        if arr.shape[0] != first.shape[0]:
            raise ShapeError(
                f"population {name!r} has T = {arr.shape[0]} time steps but {first_name!r} has "
                f"T = {first.shape[0]}: all populations must share the time axis"
            )
    unknown = sorted(set(inputs) - set(arrays))
    if unknown:
        raise ValueError(f"inputs names {unknown}, which are not among the populations "
                         f"{list(arrays)}")

    sizes = [arr.shape[1] for arr in arrays.values()]
    floor = max(1.0, 0.25 * max(sizes))
    ratios = [max(float(n), floor) for n in sizes]
    fig = _new_figure((8.0, 1.0 + 1.6 * len(arrays)))
    axes = fig.subplots(
        len(arrays), 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": ratios}
    )[:, 0]
    for ax, (name, arr) in zip(axes, arrays.items(), strict=True):
        _draw_raster(ax, arr, dt, f"population {name!r}", "start" if name in inputs else "end")
        ax.set_ylabel(name)
    axes[-1].set_xlabel("time (ms)")
    if title is not None:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def membrane_traces(
    v: ArrayLike,
    dt: float,
    *,
    sample: int = 0,
    neurons: Sequence[int] | None = None,
    threshold: float | ArrayLike | None = None,
    spikes: ArrayLike | None = None,
    reset: float | ArrayLike | None = None,
    readout: ReadoutRange | None = None,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    path: PathLike | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Membrane potential over time (ms) for selected neurons of one sample.

    Sample ``k`` is drawn at the end of its step, ``(k+1)·dt``.

    Args:
        v: ``[T, B, N]`` or ``[T, N]`` membrane potentials (model units).
        dt: Simulation step in seconds.
        sample: Batch element to draw.
        neurons: Neuron indices to draw (default: all ``N``; keep it small for readability).
        threshold: Dashed threshold line(s): a scalar (one grey line), one value per neuron
            ``[N]`` (one line per drawn neuron, in its colour) or a time-varying threshold of
            ``v``'s shape. Lines have gid ``"threshold"``.
        spikes: Optional spikes of ``v``'s shape; each nonzero entry is marked on the trace at
            ``(t_ms, v[t, n])`` (one scatter collection per neuron, gid ``"spikes"``) and the
            trace drops there vertically to ``reset`` (or breaks, without ``reset``).
        reset: The membrane right after a spike: a scalar (``v_reset`` of a reset to a value),
            one value per neuron ``[N]``, or ``v``'s shape (e.g. ``v − (ϑ − v_reset)`` of a
            subtractive reset). ``None``: unknown, the line breaks at each spike.
        readout: What read the membrane out, when it is a device with limits (a backend's
            :meth:`~spikeloop.backends.Backend.readout_range`): its floor and ceiling are drawn
            as dotted lines (gids ``"readout_floor"``, ``"readout_ceiling"``; one grey line
            each where the drawn neurons' limits lie within half a code of each other, else
            one per neuron in its colour), its description titles the legend and its unit
            labels the y axis.
        labels: Legend labels, one per drawn neuron (default ``"neuron {n}"``).
        title: Optional axes title.
        path: If given, save the figure there.
        ax: Draw into this axes instead of a new figure.

    Returns:
        The figure. The traces are the first lines of the axes (gid ``"trace"``), in ``neurons``
        order; with spikes, each trace holds one extra point per spike, right after it.

    Raises:
        ShapeError: wrong rank, ``sample``/neuron index out of range, ``spikes``/``threshold``/
            ``reset``/``readout`` shape mismatching ``v`` or ``labels`` length differing from
            ``neurons``.
        ValueError: ``neurons`` is empty.
    """
    dt = check_dt(dt)
    v_arr = _to_numpy(v, "v")
    trace = _select(v_arr, "v", sample)
    steps, n_total = trace.shape
    if neurons is None:
        chosen = list(range(n_total))
    else:
        chosen = [operator.index(n) for n in neurons]
        if not chosen:
            raise ValueError("neurons is empty: pass at least one neuron index (or None for all)")
    for n in chosen:
        if not 0 <= n < n_total:
            raise ShapeError(
                f"neuron index {n} is out of range for v with N = {n_total} neurons "
                f"(valid: 0..{n_total - 1})"
            )
    if labels is not None and len(labels) != len(chosen):
        raise ShapeError(f"labels has {len(labels)} entries but {len(chosen)} neurons are drawn")
    spike_arr: np.ndarray | None = None
    if spikes is not None:
        full = _to_numpy(spikes, "spikes")
        if full.shape != v_arr.shape:
            raise ShapeError(
                f"spikes shape {tuple(full.shape)} does not match v shape {tuple(v_arr.shape)}"
            )
        spike_arr = _select(full, "spikes", sample)
    thr = None if threshold is None else _resolve_level(threshold, v_arr, sample, "threshold")
    after = None if reset is None else _resolve_level(reset, v_arr, sample, "reset")
    limits = None
    if readout is not None:
        limits = tuple(_resolve_level(x, v_arr, sample, f"readout.{name}")
                       for name, x in (("low", readout.low), ("high", readout.high)))

    if ax is None:
        fig = _new_figure((8.0, 4.0))
        ax = fig.add_subplot()
    else:
        fig = _root_figure(ax)
    t_ms = _times_ms(steps, dt)
    names = list(labels) if labels is not None else [f"neuron {n}" for n in chosen]
    lines = []
    for n, name in zip(chosen, names, strict=True):
        x, y = t_ms, trace[:, n]
        if spike_arr is not None:
            column = None if after is None else np.broadcast_to(
                after[:, n if after.shape[1] > 1 else 0], (steps,))
            x, y, _ = _with_resets(x, y, spike_arr[:, n], column)
        (line,) = ax.plot(x, y, linewidth=1.2, label=name)
        line.set_gid("trace")
        lines.append(line)
    if thr is not None:
        if thr.shape[1] == 1:  # one threshold shared by all neurons
            _draw_threshold(ax, thr, 0, t_ms, _THRESHOLD_COLOR, "threshold")
        else:
            for i, (n, line) in enumerate(zip(chosen, lines, strict=True)):
                label = "threshold" if i == 0 and len(chosen) == 1 else "_threshold"
                _draw_threshold(ax, thr, n, t_ms, line.get_color(), label)
    if limits is not None:
        for level, which in zip(limits, ("floor", "ceiling"), strict=True):
            drawn = level if level.shape[1] == 1 else level[:, chosen]
            if np.ptp(drawn) <= readout.resolution / 2:  # the same code for all: one line
                level = np.full((1, 1), float(drawn.mean()))
            shared = level.shape[1] == 1  # one line for all neurons, else one per neuron
            for i, (n, line) in enumerate(zip(chosen, lines, strict=True)):
                if shared and i:
                    break
                _draw_threshold(ax, level, n, t_ms,
                                _THRESHOLD_COLOR if shared else line.get_color(),
                                f"read-out {which}" if i == 0 else f"_read-out {which}",
                                gid=f"readout_{which}", linestyle=":")
    if spike_arr is not None:
        for n, line in zip(chosen, lines, strict=True):
            (idx,) = np.nonzero(spike_arr[:, n])
            ax.scatter(
                t_ms[idx],
                trace[idx, n],
                s=18,
                marker="o",
                facecolors="none",
                edgecolors=line.get_color(),
                linewidths=1.0,
                zorder=3,
                label="_spikes",
            ).set_gid("spikes")

    _set_time_limits(ax, steps, dt)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(_MEMBRANE_LABEL if readout is None
                  else f"membrane potential\n({readout.unit})")
    if title is not None:
        ax.set_title(title)
    if labels is not None or len(chosen) <= 10 or readout is not None:
        ax.legend(loc="best", fontsize="small",
                  title=None if readout is None else readout.description,
                  title_fontsize="small")
    _save(fig, path)
    return fig


def compare_traces(
    traces: Mapping[str, ArrayLike],
    dt: float,
    *,
    sample: int = 0,
    neuron: int = 0,
    threshold: float | ArrayLike | None = None,
    ylabel: str = _MEMBRANE_LABEL,
    title: str | None = None,
    path: PathLike | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Overlay one neuron's membrane trace from several sources (e.g. chip vs simulator).

    Sample ``k`` is drawn at the end of its step, ``(k+1)·dt``.

    Args:
        traces: Source name -> ``[T, B, N]`` (or ``[T, N]``) potentials, all of the same shape.
        dt: Simulation step in seconds.
        sample: Batch element to draw.
        neuron: Neuron index to draw.
        threshold: Optional dashed threshold, as in :func:`membrane_traces`.
        ylabel: y-axis label: what the values are and their unit.
        title: Optional axes title (default ``"neuron {neuron}, sample {sample}"``).
        path: If given, save the figure there.
        ax: Draw into this axes instead of a new figure.

    Returns:
        The figure; one line per source in mapping order, with a legend of the source names.

    Raises:
        ValueError: ``traces`` is empty.
        ShapeError: wrong rank, shapes differing between sources, ``sample`` or ``neuron``
            out of range.
    """
    dt = check_dt(dt)
    if not traces:
        raise ValueError("traces is empty: pass at least one name -> membrane potential entry")
    arrays = {name: _to_numpy(v, f"trace {name!r}") for name, v in traces.items()}
    first_name, first = next(iter(arrays.items()))
    for name, arr in arrays.items():
        if arr.shape != first.shape:
            raise ShapeError(
                f"trace {name!r} has shape {tuple(arr.shape)} but {first_name!r} has shape "
                f"{tuple(first.shape)}: all sources must have the same shape"
            )
    slices = {name: _select(arr, f"trace {name!r}", sample) for name, arr in arrays.items()}
    steps, n_total = first.shape[0], first.shape[-1]
    try:
        neuron = operator.index(neuron)
    except TypeError as exc:
        raise TypeError(f"neuron must be an int, got {neuron!r}") from exc
    if not 0 <= neuron < n_total:
        raise ShapeError(
            f"neuron index {neuron} is out of range for traces with N = {n_total} neurons "
            f"(valid: 0..{n_total - 1})"
        )
    thr = None if threshold is None else _resolve_level(threshold, first, sample, "threshold")

    if ax is None:
        fig = _new_figure((8.0, 4.0))
        ax = fig.add_subplot()
    else:
        fig = _root_figure(ax)
    t_ms = _times_ms(steps, dt)
    for i, (name, trace) in enumerate(slices.items()):
        (line,) = ax.plot(
            t_ms,
            trace[:, neuron],
            linewidth=2.2 if i == 0 else 1.2,
            alpha=0.8 if i == 0 else 1.0,
            label=name,
            zorder=2 + i,
        )
        line.set_gid("trace")
    if thr is not None:
        _draw_threshold(ax, thr, neuron, t_ms, _THRESHOLD_COLOR, "threshold")
    _set_time_limits(ax, steps, dt)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(ylabel)
    ax.set_title(title if title is not None else f"neuron {neuron}, sample {sample}")
    ax.legend(loc="best", fontsize="small")
    _save(fig, path)
    return fig


def timed_traces(
    series: Mapping[str, tuple[ArrayLike, ArrayLike] | tuple[ArrayLike, ArrayLike, ArrayLike]],
    *,
    threshold: float | None = None,
    reset: float | None = None,
    ylabel: str = _MEMBRANE_LABEL,
    title: str | None = None,
    path: PathLike | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Overlay 1-d membrane traces that each have their own sample times.

    For sources sampled on different grids, e.g. a chip's fast 10-bit ADC (tens of MSample/s)
    against the simulator's time steps.

    Args:
        series: name -> ``(t, v)`` or ``(t, v, spikes)`` with times in seconds, potentials and
            (optionally) whether the neuron fired at each sample (its value being the one
            compared with the threshold), all 1-d and equally long. A series with spikes drops
            vertically to ``reset`` at each spike's time (or breaks there, without ``reset``);
            give spikes for a trace sampled once per step, whose reset would otherwise be drawn
            as a slanted line into the next sample.
        threshold: optional dashed threshold line.
        reset: the membrane right after a spike (``v_reset``); ``None``: unknown.
        ylabel: y-axis label: what the values are and their unit.
        title: Optional axes title.
        path: If given, save the figure there (PNG by default, parent dirs created).
        ax: Draw into this axes instead of a new figure.

    Returns:
        The figure; one line per series (gid ``"trace"``), in mapping order.

    Raises:
        ValueError: ``series`` is empty. ShapeError: a series is not 1-d of one length.
    """
    if not series:
        raise ValueError("series is empty: pass at least one name -> (t, v) entry")
    arrays = []
    for name, entry in series.items():
        if len(entry) not in (2, 3):
            raise ShapeError(f"series {name!r}: expected (t, v) or (t, v, spikes), got "
                             f"{len(entry)} items")
        parts = [_to_numpy(x, f"{name} {what}")
                 for x, what in zip(entry, ("times", "values", "spikes"), strict=False)]
        if any(x.ndim != 1 or x.shape != parts[0].shape for x in parts):
            raise ShapeError(
                f"series {name!r}: t, v (and spikes) must be 1-d of equal length, got "
                f"{', '.join(str(x.shape) for x in parts)}"
            )
        t_arr, v_arr = parts[0] * 1e3, parts[1]
        samples = np.arange(t_arr.shape[0])
        if len(parts) == 3:
            after = None if reset is None else np.full(v_arr.shape, float(reset))
            t_arr, v_arr, samples = _with_resets(t_arr, v_arr, parts[2], after)
        arrays.append((name, t_arr, v_arr, samples))
    if ax is None:
        fig = _new_figure((8.0, 4.0))
        ax = fig.add_subplot()
    else:
        fig = _root_figure(ax)
    for i, (name, t_arr, v_arr, samples) in enumerate(arrays):
        (line,) = ax.plot(t_arr, v_arr, label=name, linewidth=1.0 if i == 0 else 1.6,
                          marker=None if i == 0 else ".", markersize=3, zorder=2 + i,
                          markevery=list(samples))  # dots on samples, not on reset points
        line.set_gid("trace")
    if threshold is not None:
        ax.axhline(float(threshold), color=_THRESHOLD_COLOR, linestyle="--", linewidth=1.0,
                   label="threshold", gid="threshold")
    ax.set_xlabel("time (ms)")
    ax.set_ylabel(ylabel)
    if title is not None:
        ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    _save(fig, path)
    return fig


def _is_acc_key(key: str) -> bool:
    return key.endswith("acc") or key.endswith("accuracy")


def training_curves(
    history: Sequence[Mapping[str, float]],
    *,
    mark_epoch: float | None = None,
    mark_label: str = "tested epoch",
    title: str | None = None,
    path: PathLike | None = None,
) -> Figure:
    """Loss (left panel) and accuracy (right panel) per epoch.

    Every key ending in ``"loss"`` is drawn on the left and every key ending in ``"acc"`` (or
    ``"accuracy"``) on the right, labelled with the key, in order of first appearance. The x
    axis is each entry's ``"epoch"`` (required in all entries if present in any), else
    ``1..len(history)``. A key missing from (or ``None`` in) an entry leaves a gap (NaN).

    Args:
        history: Per-epoch dicts, e.g. ``{"epoch": 1, "train_loss": 0.7, "val_acc": 0.6}``.
            Values may be floats, ints or 0-d tensors.
        mark_epoch: An epoch to mark on both panels with a vertical line (gid
            ``"marked_epoch"``), e.g. the one whose weights were tested.
        mark_label: Its legend label (the epoch is appended: ``"tested epoch (12)"``).
        title: Optional figure title.
        path: If given, save the figure there.

    Returns:
        The figure with two axes ``[loss, accuracy]``; a panel with no matching keys shows a
        note instead of lines.

    Raises:
        ValueError: empty history, no loss/acc keys at all, ``epoch`` missing from some
            entries, or a non-numeric value.
    """
    if len(history) == 0:
        raise ValueError("history is empty: pass at least one per-epoch dict of metrics")
    keys: list[str] = []
    for i, entry in enumerate(history):
        if not isinstance(entry, Mapping):
            raise TypeError(f"history[{i}] must be a mapping of metric -> value, got {entry!r}")
        keys.extend(k for k in entry if k not in keys)
    loss_keys = [k for k in keys if k.endswith("loss")]
    acc_keys = [k for k in keys if _is_acc_key(k)]
    if not loss_keys and not acc_keys:
        raise ValueError(f"history has no keys ending in 'loss' or 'acc' (keys: {sorted(keys)})")

    def value(i: int, key: str) -> float:
        raw = history[i].get(key)
        if raw is None:
            return math.nan
        if hasattr(raw, "item"):
            raw = raw.item()
        try:
            return float(raw)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"history[{i}][{key!r}] is not a number: {raw!r}") from exc

    with_epoch = [i for i, entry in enumerate(history) if "epoch" in entry]
    if with_epoch and len(with_epoch) != len(history):
        missing = next(i for i in range(len(history)) if "epoch" not in history[i])
        raise ValueError(
            f"history[{missing}] has no 'epoch' key but other entries do: give it in all or none"
        )
    x = (
        np.array([value(i, "epoch") for i in range(len(history))])
        if with_epoch
        else np.arange(1, len(history) + 1, dtype=np.float64)
    )

    fig = _new_figure((10.0, 4.0))
    loss_ax, acc_ax = fig.subplots(1, 2)
    marker = "o" if len(history) <= 30 else None
    for ax, panel_keys, ylabel, pattern in (
        (loss_ax, loss_keys, "loss", "'*loss'"),
        (acc_ax, acc_keys, "accuracy", "'*acc'"),
    ):
        for key in panel_keys:
            y = np.array([value(i, key) for i in range(len(history))])
            ax.plot(x, y, marker=marker, markersize=3, label=key)
        if mark_epoch is not None:
            ax.axvline(float(mark_epoch), color=_THRESHOLD_COLOR, linestyle="--", linewidth=1.0,
                       label=f"{mark_label} ({mark_epoch:g})", gid="marked_epoch")
        if panel_keys:
            ax.legend(loc="best", fontsize="small")
        else:
            ax.text(
                0.5,
                0.5,
                f"no {pattern} keys in history",
                transform=ax.transAxes,
                ha="center",
                va="center",
                color="0.4",
            )
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    if title is not None:
        fig.suptitle(title)
    _save(fig, path)
    return fig
