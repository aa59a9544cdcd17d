"""Tests of spikeloop.viz: plotted data, saved files and input validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from spikeloop.errors import NonFiniteError, ShapeError, TimeStepError
from spikeloop.viz import (
    compare_traces,
    membrane_traces,
    raster_panel,
    spike_raster,
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
    expected = np.array([[0.0, 2], [2.0, 0], [6.0, 0], [6.0, 1]])  # (t * 2 ms, neuron)
    np.testing.assert_allclose(offsets(ax, "spikes_pos"), expected)
    assert ax.get_title() == "hidden"
    assert ax.get_xlabel() == "time (ms)"
    assert not [c for c in ax.collections if c.get_gid() == "spikes_neg"]


def test_spike_raster_accepts_single_sample_and_bool() -> None:
    spikes = torch.from_numpy(hand_spikes()[:, 0, :] > 0)  # [T, N] bool
    fig = spike_raster(spikes, DT)
    np.testing.assert_allclose(offsets(fig.axes[0], "spikes_pos"), [[0.0, 0.0]])


def test_spike_raster_ternary_two_colours() -> None:
    s = np.zeros((4, 1, 2))
    s[1, 0, 0] = 1.0
    s[2, 0, 1] = -1.0
    s[3, 0, 0] = -1.0
    fig = spike_raster(s, DT)
    ax = fig.axes[0]
    np.testing.assert_allclose(offsets(ax, "spikes_pos"), [[1.0, 0.0]])
    np.testing.assert_allclose(offsets(ax, "spikes_neg"), [[2.0, 1.0], [3.0, 0.0]])
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
    fig = raster_panel({"input": inp, "hidden": hidden}, DT, sample=1, title="net", path=out)
    assert isinstance(fig, Figure)
    assert_png(out)
    ax_in, ax_hid = fig.axes
    assert [ax_in.get_ylabel(), ax_hid.get_ylabel()] == ["input", "hidden"]
    np.testing.assert_allclose(offsets(ax_in, "spikes_pos"), [[2.0, 3.0]])
    np.testing.assert_allclose(
        offsets(ax_hid, "spikes_pos"), [[0.0, 2], [1.0, 0], [3.0, 0], [3.0, 1]]
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
    lines = traces(ax)
    assert len(lines) == 2
    np.testing.assert_allclose(lines[0].get_xdata(), np.arange(6) * 0.5)
    np.testing.assert_allclose(lines[0].get_ydata(), v[:, 1, 3].double().numpy())
    np.testing.assert_allclose(lines[1].get_ydata(), v[:, 1, 0].double().numpy())
    (thr,) = [line for line in ax.get_lines() if line.get_gid() == "threshold"]
    np.testing.assert_allclose(thr.get_ydata(), [0.8, 0.8])
    assert thr.get_linestyle() == "--"
    marks = [np.asarray(c.get_offsets()) for c in ax.collections if c.get_gid() == "spikes"]
    np.testing.assert_allclose(marks[0], [[1.0, float(v[2, 1, 3])], [2.0, float(v[4, 1, 3])]])
    np.testing.assert_allclose(marks[1], [[2.5, float(v[5, 1, 0])]])
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:2] == ["neuron 3", "neuron 0"]
    assert "threshold" in legend


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
    with pytest.raises(ShapeError, match="labels"):
        membrane_traces(v, DT, neurons=[0, 1], labels=["a"])
    with pytest.raises(ValueError, match="empty"):
        membrane_traces(v, DT, neurons=[])


def test_compare_traces(tmp_path: Path) -> None:
    sim = torch.linspace(0, 1, 20).reshape(5, 2, 2)
    chip = sim.numpy() + 0.05
    out = tmp_path / "cmp.png"
    fig = compare_traces({"simulator": sim, "chip": chip}, DT, sample=1, neuron=1, path=out)
    assert isinstance(fig, Figure)
    assert_png(out)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["simulator", "chip"]
    sim_line, chip_line = traces(ax)
    np.testing.assert_allclose(sim_line.get_ydata(), sim[:, 1, 1].double().numpy())
    np.testing.assert_allclose(chip_line.get_ydata(), chip[:, 1, 1], rtol=1e-6)
    np.testing.assert_allclose(chip_line.get_xdata(), np.arange(5.0))


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
