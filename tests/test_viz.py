"""Tests of spikeloop.viz: plotted data, saved files and input validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from spikeloop.errors import NonFiniteError, ShapeError, TimeStepError
from spikeloop.observables import ReadoutRange
from spikeloop.viz import (
    compare_traces,
    membrane_traces,
    raster_panel,
    spike_raster,
    timed_traces,
    training_curves,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DT = 1e-3  # 1 ms per step


def assert_png(path: Path) -> None:
    assert path.is_file()
    data = path.read_bytes()
    assert len(data) > 100
    assert data.startswith(PNG_MAGIC)


def offsets(ax, gid: str) -> np.ndarray:
    (coll,) = [c for c in ax.collections if c.get_gid() == gid]
    return np.asarray(coll.get_offsets())


def traces(ax) -> list:
    return [line for line in ax.get_lines() if line.get_gid() == "trace"]


def hand_spikes() -> np.ndarray:
    """[T=5, B=2, N=3]; sample 1 spikes at (t=0, n=2), (t=1, n=0), (t=3, n=0), (t=3, n=1)."""
    s = np.zeros((5, 2, 3), dtype=np.float32)
    s[0, 0, 0] = 1.0  # sample 0 only
    s[0, 1, 2] = 1.0
    s[1, 1, 0] = 1.0
    s[3, 1, 0] = 1.0
    s[3, 1, 1] = 1.0
    return s


# ---------------------------------------------------------------------------------------------
# spike_raster
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_torch", [False, True])
def test_spike_raster_offsets_and_png(tmp_path: Path, as_torch: bool) -> None:
    spikes = hand_spikes()
    data = torch.from_numpy(spikes) if as_torch else spikes
    out = tmp_path / "sub" / "dir" / "raster.png"
    fig = spike_raster(data, 2e-3, sample=1, title="hidden", path=out)
    assert isinstance(fig, Figure)
    assert_png(out)
    (ax,) = fig.axes
    expected = np.array([[2.0, 2], [4.0, 0], [8.0, 0], [8.0, 1]])  # ((t + 1) * 2 ms, neuron)
    np.testing.assert_allclose(offsets(ax, "spikes_pos"), expected)
    assert ax.get_title() == "hidden"
    assert ax.get_xlabel() == "time (ms)"
    assert not [c for c in ax.collections if c.get_gid() == "spikes_neg"]


def test_spike_raster_timing() -> None:
    """A population's spikes of step k happen at its end, (k+1)·dt; inputs at its start."""
    spikes = hand_spikes()
    end = offsets(spike_raster(spikes, DT, sample=1).axes[0], "spikes_pos")
    start = offsets(spike_raster(spikes, DT, sample=1, timing="start").axes[0], "spikes_pos")
    np.testing.assert_allclose(start[:, 0], [0.0, 1.0, 3.0, 3.0])
    np.testing.assert_allclose(end[:, 0], start[:, 0] + 1.0)
    with pytest.raises(ValueError, match="timing"):
        spike_raster(spikes, DT, timing="middle")


def test_spike_raster_accepts_single_sample_and_bool() -> None:
    spikes = torch.from_numpy(hand_spikes()[:, 0, :] > 0)  # [T, N] bool
    fig = spike_raster(spikes, DT)
    np.testing.assert_allclose(offsets(fig.axes[0], "spikes_pos"), [[1.0, 0.0]])


def test_spike_raster_ternary_two_colours() -> None:
    s = np.zeros((4, 1, 2))
    s[1, 0, 0] = 1.0
    s[2, 0, 1] = -1.0
    s[3, 0, 0] = -1.0
    fig = spike_raster(s, DT)
    ax = fig.axes[0]
    np.testing.assert_allclose(offsets(ax, "spikes_pos"), [[2.0, 0.0]])
    np.testing.assert_allclose(offsets(ax, "spikes_neg"), [[3.0, 1.0], [4.0, 0.0]])
    pos = next(c for c in ax.collections if c.get_gid() == "spikes_pos")
    neg = next(c for c in ax.collections if c.get_gid() == "spikes_neg")
    assert not np.allclose(pos.get_edgecolor(), neg.get_edgecolor())


def test_spike_raster_draws_into_given_axes() -> None:
    fig = Figure()
    ax = fig.add_subplot()
    assert spike_raster(hand_spikes(), DT, ax=ax) is fig
    assert len(offsets(ax, "spikes_pos")) == 1


@pytest.mark.parametrize("shape", [(5,), (5, 2, 3, 1), ()])
def test_spike_raster_bad_rank(shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError, match=r"\[T, B, N\]"):
        spike_raster(np.zeros(shape), DT)


@pytest.mark.parametrize("sample", [2, -1, 10])
def test_spike_raster_sample_out_of_range(sample: int) -> None:
    with pytest.raises(ShapeError, match="batch size 2"):
        spike_raster(hand_spikes(), DT, sample=sample)


def test_spike_raster_single_sample_only_sample_zero() -> None:
    with pytest.raises(ShapeError, match="out of range"):
        spike_raster(np.zeros((5, 3)), DT, sample=1)


@pytest.mark.parametrize("dt", [0.0, -1e-3, float("nan")])
def test_bad_dt(dt: float) -> None:
    with pytest.raises(TimeStepError, match="dt"):
        spike_raster(hand_spikes(), dt)


def test_spike_raster_non_finite() -> None:
    s = hand_spikes()
    s[0, 0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        spike_raster(s, DT)


# ---------------------------------------------------------------------------------------------
# raster_panel
# ---------------------------------------------------------------------------------------------


def test_raster_panel(tmp_path: Path) -> None:
    inp = np.zeros((5, 2, 4))
    inp[2, 1, 3] = 1.0
    hidden = torch.from_numpy(hand_spikes())
    out = tmp_path / "panel.png"
    fig = raster_panel({"input": inp, "hidden": hidden}, DT, sample=1, inputs=["input"],
                       title="net", path=out)
    assert isinstance(fig, Figure)
    assert_png(out)
    assert fig.get_suptitle() == "net"
    ax_in, ax_hid = fig.axes
    assert [ax_in.get_ylabel(), ax_hid.get_ylabel()] == ["input", "hidden"]
    np.testing.assert_allclose(offsets(ax_in, "spikes_pos"), [[2.0, 3.0]])  # start of step 2
    np.testing.assert_allclose(
        offsets(ax_hid, "spikes_pos"), [[1.0, 2], [2.0, 0], [4.0, 0], [4.0, 1]]  # step ends
    )
    assert ax_in.get_shared_x_axes().joined(ax_in, ax_hid)
    assert ax_hid.get_xlabel() == "time (ms)"


def test_raster_panel_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        raster_panel({}, DT)
    with pytest.raises(ShapeError, match="T = 4"):
        raster_panel({"a": np.zeros((5, 1, 2)), "b": np.zeros((4, 1, 2))}, DT)
    with pytest.raises(ShapeError, match="'b'"):
        raster_panel({"a": np.zeros((5, 3, 2)), "b": np.zeros((5, 1, 2))}, DT, sample=2)
    with pytest.raises(ShapeError, match="rank 1"):
        raster_panel({"a": np.zeros(5)}, DT)
    with pytest.raises(ValueError, match="'x'"):
        raster_panel({"a": np.zeros((5, 1, 2))}, DT, inputs=["x"])


# ---------------------------------------------------------------------------------------------
# membrane_traces / compare_traces
# ---------------------------------------------------------------------------------------------


def test_membrane_traces(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(0)
    v = torch.rand(6, 3, 4, generator=gen)
    spikes = torch.zeros(6, 3, 4)
    spikes[2, 1, 3] = 1.0
    spikes[4, 1, 3] = 1.0
    spikes[5, 1, 0] = 1.0
    out = tmp_path / "v.png"
    fig = membrane_traces(
        v, 0.5e-3, sample=1, neurons=[3, 0], threshold=0.8, spikes=spikes, title="LIF", path=out
    )
    assert isinstance(fig, Figure)
    assert_png(out)
    ax = fig.axes[0]
    assert ax.get_title() == "LIF"
    assert ax.get_xlabel() == "time (ms)"
    assert ax.get_ylabel() == "membrane potential (model units)"
    lines = traces(ax)
    assert len(lines) == 2
    # sample k at the end of its step, (k+1)·dt; without a reset value the line breaks (NaN)
    # right after each spike instead of sloping into the next sample
    v3, v0 = v[:, 1, 3].double().numpy(), v[:, 1, 0].double().numpy()
    np.testing.assert_allclose(lines[0].get_xdata(), [0.5, 1.0, 1.5, 1.5, 2.0, 2.5, 2.5, 3.0])
    np.testing.assert_allclose(
        lines[0].get_ydata(), [v3[0], v3[1], v3[2], np.nan, v3[3], v3[4], np.nan, v3[5]]
    )
    np.testing.assert_allclose(lines[1].get_xdata(), [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0])
    np.testing.assert_allclose(lines[1].get_ydata(), [*v0, np.nan])
    (thr,) = [line for line in ax.get_lines() if line.get_gid() == "threshold"]
    np.testing.assert_allclose(thr.get_ydata(), [0.8, 0.8])
    assert thr.get_linestyle() == "--"
    marks = [np.asarray(c.get_offsets()) for c in ax.collections if c.get_gid() == "spikes"]
    np.testing.assert_allclose(marks[0], [[1.5, v3[2]], [2.5, v3[4]]])
    np.testing.assert_allclose(marks[1], [[3.0, v0[5]]])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:2] == ["neuron 3", "neuron 0"]
    assert "threshold" in legend


def lif_trace() -> tuple[np.ndarray, np.ndarray]:
    """[T=6, N=2] membranes (value compared with the threshold 1.0) and spikes of two neurons."""
    v = np.array([[0.4, 0.2], [0.8, 0.5], [1.1, 0.9], [0.5, 1.3], [0.9, 0.3], [1.2, 0.6]])
    return v, (v >= 1.0).astype(np.float64)


@pytest.mark.parametrize(
    "reset, after",
    [
        (0.1, [[0.1, 0.1]] * 6),  # reset to a value, one for all
        (np.array([0.0, -0.2]), [[0.0, -0.2]] * 6),  # one per neuron
        (np.array([[0.0, 0.0], [0.0, 0.0], [0.1, 0.0], [0.0, 0.3], [0.0, 0.0], [0.2, 0.0]]),
         None),  # time-varying (a subtractive reset: v − ϑ), taken as given
    ],
)
def test_membrane_traces_resets_are_vertical(reset, after) -> None:
    v, spikes = lif_trace()
    expected_after = np.asarray(reset) if after is None else np.asarray(after)
    fig = membrane_traces(v, DT, threshold=1.0, spikes=spikes, reset=reset)
    for n, line in enumerate(traces(fig.axes[0])):
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
        (steps,) = np.nonzero(spikes[:, n])
        assert len(x) == 6 + len(steps)
        for j, k in enumerate(steps):
            i = k + j  # position of sample k after j inserted points
            t_spike = (k + 1) * 1.0  # end of step k, ms
            assert x[i] == x[i + 1] == t_spike  # the drop is vertical, at the spike time
            assert y[i] == v[k, n] and y[i + 1] == expected_after[k, n]
        samples = np.delete(np.arange(len(x)), [k + j + 1 for j, k in enumerate(steps)])
        np.testing.assert_allclose(x[samples], np.arange(1, 7))
        np.testing.assert_allclose(y[samples], v[:, n])


def test_membrane_traces_without_spikes_are_plain_lines() -> None:
    v, _ = lif_trace()
    (line, _) = traces(membrane_traces(v, DT, reset=0.0).axes[0])
    np.testing.assert_allclose(line.get_xdata(), np.arange(1, 7))
    np.testing.assert_allclose(line.get_ydata(), v[:, 0])


def chip_readout(n: int = 2, spread: float = 0.0) -> ReadoutRange:
    leak = torch.arange(n, dtype=torch.float64) * spread
    return ReadoutRange(low=leak - 1.6, high=leak + 3.5, resolution=0.02,
                        description="chip 8-bit ADC read-out",
                        unit="model units = (ADC code − 80) / 50 + leak")


def test_membrane_traces_of_a_chip_readout_say_so() -> None:
    v, _ = lif_trace()
    fig = membrane_traces(v, DT, labels=["class 0", "class 1"], readout=chip_readout(),
                          title="demo [chip]: readout")
    ax = fig.axes[0]
    assert ax.get_title() == "demo [chip]: readout"
    assert ax.get_ylabel() == "membrane potential\n(model units = (ADC code − 80) / 50 + leak)"
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "chip 8-bit ADC read-out"
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["class 0", "class 1", "read-out floor", "read-out ceiling"]
    # the two neurons' limits are the same code: one grey line each
    (floor,) = [line for line in ax.get_lines() if line.get_gid() == "readout_floor"]
    (ceiling,) = [line for line in ax.get_lines() if line.get_gid() == "readout_ceiling"]
    np.testing.assert_allclose(floor.get_ydata(), [-1.6, -1.6])
    np.testing.assert_allclose(ceiling.get_ydata(), [3.5, 3.5])
    assert ceiling.get_linestyle() == ":"
    # limits a code or more apart: one line per neuron, in its trace's colour
    fig = membrane_traces(v, DT, readout=chip_readout(spread=0.05))
    ax = fig.axes[0]
    ceilings = [line for line in ax.get_lines() if line.get_gid() == "readout_ceiling"]
    assert [c.get_ydata()[0] for c in ceilings] == pytest.approx([3.5, 3.55])
    assert [c.get_color() for c in ceilings] == [t.get_color() for t in traces(ax)]
    with pytest.raises(ShapeError, match=r"readout\.low"):
        membrane_traces(v, DT, readout=chip_readout(n=3))


def test_membrane_traces_per_neuron_and_time_varying_threshold() -> None:
    v = np.linspace(0.0, 1.0, 12).reshape(4, 3)  # [T, N]
    fig = membrane_traces(v, DT, threshold=np.array([0.1, 0.2, 0.3]), labels=["a", "b", "c"])
    ax = fig.axes[0]
    thr = [line.get_ydata()[0] for line in ax.get_lines() if line.get_gid() == "threshold"]
    np.testing.assert_allclose(thr, [0.1, 0.2, 0.3])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b", "c"]

    theta = v + 0.5
    fig = membrane_traces(v, DT, neurons=[1], threshold=torch.from_numpy(theta))
    (thr_line,) = [line for line in fig.axes[0].get_lines() if line.get_gid() == "threshold"]
    np.testing.assert_allclose(thr_line.get_ydata(), theta[:, 1])


def test_membrane_traces_errors() -> None:
    v = np.zeros((5, 2, 3))
    with pytest.raises(ShapeError, match="N = 3"):
        membrane_traces(v, DT, neurons=[3])
    with pytest.raises(ShapeError, match="batch size 2"):
        membrane_traces(v, DT, sample=2)
    with pytest.raises(ShapeError, match="rank 4"):
        membrane_traces(np.zeros((5, 2, 3, 1)), DT)
    with pytest.raises(ShapeError, match="spikes shape"):
        membrane_traces(v, DT, spikes=np.zeros((4, 2, 3)))
    with pytest.raises(ShapeError, match="threshold"):
        membrane_traces(v, DT, threshold=np.zeros(2))
    with pytest.raises(ShapeError, match="reset"):
        membrane_traces(v, DT, spikes=np.zeros_like(v), reset=np.zeros(2))
    with pytest.raises(ShapeError, match="labels"):
        membrane_traces(v, DT, neurons=[0, 1], labels=["a"])
    with pytest.raises(ValueError, match="empty"):
        membrane_traces(v, DT, neurons=[])


def test_compare_traces(tmp_path: Path) -> None:
    sim = torch.linspace(0, 1, 20).reshape(5, 2, 2)
    chip = sim.numpy() + 0.05
    out = tmp_path / "cmp.png"
    fig = compare_traces({"simulator": sim, "chip": chip}, DT, sample=1, neuron=1, path=out,
                         ylabel="membrane potential (model units)")
    assert isinstance(fig, Figure)
    assert_png(out)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "membrane potential (model units)"
    assert ax.get_title() == "neuron 1, sample 1"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["simulator", "chip"]
    sim_line, chip_line = traces(ax)
    np.testing.assert_allclose(sim_line.get_ydata(), sim[:, 1, 1].double().numpy())
    np.testing.assert_allclose(chip_line.get_ydata(), chip[:, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(chip_line.get_xdata(), np.arange(1.0, 6.0))  # ends of steps


def test_compare_traces_errors() -> None:
    a = np.zeros((5, 2, 3))
    with pytest.raises(ValueError, match="empty"):
        compare_traces({}, DT)
    with pytest.raises(ShapeError, match=r"\(5, 2, 2\)"):
        compare_traces({"a": a, "b": np.zeros((5, 2, 2))}, DT)
    with pytest.raises(ShapeError, match="N = 3"):
        compare_traces({"a": a}, DT, neuron=3)
    with pytest.raises(ShapeError, match="batch size 2"):
        compare_traces({"a": a, "b": a}, DT, sample=5)


# ---------------------------------------------------------------------------------------------
# timed_traces
# ---------------------------------------------------------------------------------------------


def test_timed_traces_draw_the_simulator_reset_vertically(tmp_path: Path) -> None:
    v, spikes = lif_trace()
    t_sim = np.arange(1, 7) * 1e-3  # ends of the steps, s
    t_dense = np.linspace(0.0, 6e-3, 61)
    out = tmp_path / "dense.png"
    fig = timed_traces(
        {"chip (dense ADC recording)": (t_dense, np.sin(t_dense)),
         "simulator": (t_sim, v[:, 0], spikes[:, 0])},
        threshold=1.0, reset=0.0, title="run [chip]: hidden1 neuron 0", path=out,
    )
    assert_png(out)
    ax = fig.axes[0]
    assert ax.get_title() == "run [chip]: hidden1 neuron 0"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("time (ms)", "membrane potential (model units)")
    dense, sim = traces(ax)
    np.testing.assert_allclose(dense.get_xdata(), t_dense * 1e3)  # no spikes given: as sampled
    x, y = np.asarray(sim.get_xdata()), np.asarray(sim.get_ydata())
    # spikes at steps 2 and 5 (3 ms, 6 ms): a drop to 0 at the same time, then on
    np.testing.assert_allclose(x, [1, 2, 3, 3, 4, 5, 6, 6])
    np.testing.assert_allclose(y, [0.4, 0.8, 1.1, 0.0, 0.5, 0.9, 1.2, 0.0])
    assert sim.get_markevery() == [0, 1, 2, 4, 5, 6]  # dots on the samples only
    # without a reset value: a break
    fig = timed_traces({"simulator": (t_sim, v[:, 0], spikes[:, 0])})
    (sim,) = traces(fig.axes[0])
    np.testing.assert_allclose(sim.get_ydata(), [0.4, 0.8, 1.1, np.nan, 0.5, 0.9, 1.2, np.nan])


def test_timed_traces_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        timed_traces({})
    with pytest.raises(ShapeError, match="equal length"):
        timed_traces({"a": (np.arange(3), np.arange(3), np.zeros(2))})
    with pytest.raises(ShapeError, match="expected"):
        timed_traces({"a": (np.arange(3),)})


# ---------------------------------------------------------------------------------------------
# training_curves
# ---------------------------------------------------------------------------------------------


def test_training_curves(tmp_path: Path) -> None:
    history = [
        {"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "train_acc": 0.5, "val_acc": 0.4},
        {"epoch": 2, "train_loss": 0.6, "val_loss": 0.9, "train_acc": 0.7, "val_acc": 0.6},
        {"epoch": 3, "train_loss": torch.tensor(0.4), "train_acc": 0.8, "lr": 1e-3},
    ]
    out = tmp_path / "curves.png"
    fig = training_curves(history, path=out)
    assert isinstance(fig, Figure)
    assert_png(out)
    loss_ax, acc_ax = fig.axes
    loss = {line.get_label(): line for line in loss_ax.get_lines()}
    acc = {line.get_label(): line for line in acc_ax.get_lines()}
    assert list(loss) == ["train_loss", "val_loss"]
    assert list(acc) == ["train_acc", "val_acc"]
    np.testing.assert_allclose(loss["train_loss"].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(loss["train_loss"].get_ydata(), [1.0, 0.6, 0.4])
    np.testing.assert_allclose(loss["val_loss"].get_ydata(), [1.2, 0.9, np.nan])
    np.testing.assert_allclose(acc["train_acc"].get_ydata(), [0.5, 0.7, 0.8])
    np.testing.assert_allclose(acc["val_acc"].get_ydata(), [0.4, 0.6, np.nan])


def test_training_curves_mark_the_tested_epoch() -> None:
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_acc": a}
               for e, a in ((1, 0.5), (2, 0.8), (3, 0.7))]
    fig = training_curves(history, mark_epoch=2, mark_label="tested: best val_acc",
                          title="demo [chip (seed=0)]: training curves")
    assert fig.get_suptitle() == "demo [chip (seed=0)]: training curves"
    for ax in fig.axes:
        (mark,) = [line for line in ax.get_lines() if line.get_gid() == "marked_epoch"]
        np.testing.assert_allclose(mark.get_xdata(), [2, 2])
        assert "tested: best val_acc (2)" in [t.get_text() for t in ax.get_legend().get_texts()]
        assert ax.get_xlabel() == "epoch"
    assert not [line for ax in training_curves(history).axes for line in ax.get_lines()
                if line.get_gid() == "marked_epoch"]


def test_training_curves_without_epoch_or_acc() -> None:
    fig = training_curves([{"loss": 2.0}, {"loss": 1.0}])
    loss_ax, acc_ax = fig.axes
    (line,) = loss_ax.get_lines()
    np.testing.assert_allclose(line.get_xdata(), [1, 2])
    assert not acc_ax.get_lines()
    assert "acc" in acc_ax.texts[0].get_text()


def test_training_curves_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        training_curves([])
    with pytest.raises(ValueError, match="'loss' or 'acc'"):
        training_curves([{"epoch": 1, "lr": 0.1}])
    with pytest.raises(ValueError, match="epoch"):
        training_curves([{"epoch": 1, "loss": 1.0}, {"loss": 0.5}])
    with pytest.raises(ValueError, match="not a number"):
        training_curves([{"loss": "high"}])


def test_no_pyplot_figures_leak(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    spike_raster(hand_spikes(), DT, path=tmp_path / "a.png")
    membrane_traces(hand_spikes(), DT)
    training_curves([{"loss": 1.0}])
    assert plt.get_fignums() == before
