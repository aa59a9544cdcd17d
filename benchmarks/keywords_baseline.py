"""How hard the synthesised keyword clips and ambient scenes are: two non-spiking baselines on
the files of ``make keywords`` / ``make ambient`` (docs/keywords.md), test accuracy.

    python benchmarks/keywords_baseline.py [--set keywords|ambient] [--dir DIR]
                                           [--out benchmarks/results]

Features: the power spectrum of 25 ms Hann frames every 10 ms, summed into 32 mel-spaced
bands from 100 Hz to 7.6 kHz, ``log(1e-8 + band power)``.

1. *mean spectrum, nearest centroid*: each clip's log band energies averaged over its frames
   (32 numbers, standardised), assigned to the class with the nearest mean — a detector of
   long-term spectral colour that ignores timing.
2. *spectrogram, logistic regression*: the log band energies in ten 100 ms bins (320 numbers,
   standardised), multinomial logistic regression (Adam, lr 0.01, 500 full-batch steps,
   weight decay 1e-3, torch seed 0).

Writes ``{set}_baseline.{json,md}``: accuracy overall and per condition (keywords: SNR and
noise kind; ambient: with and without a distractor, and per class).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from spikeloop.data import ambient, keywords

N_BANDS = 32
F_LO, F_HI = 100.0, 7600.0


def band_energies(audio: np.ndarray, fs: int) -> np.ndarray:
    """``log(1e-8 + power)`` in 32 mel bands of 25 ms Hann frames every 10 ms: ``[N, T, 32]``."""
    win, hop = int(0.025 * fs), int(0.010 * fs)
    n_frames = 1 + (audio.shape[1] - win) // hop
    idx = np.arange(win)[None, :] + hop * np.arange(n_frames)[:, None]
    frames = audio[:, idx] * np.hanning(win)
    power = np.abs(np.fft.rfft(frames, 512, axis=-1)) ** 2
    freqs = np.fft.rfftfreq(512, 1 / fs)
    mel = 2595 * np.log10(1 + freqs / 700)
    edges = np.linspace(2595 * np.log10(1 + F_LO / 700), 2595 * np.log10(1 + F_HI / 700),
                        N_BANDS + 1)
    band = np.digitize(mel, edges) - 1
    out = np.zeros((*power.shape[:2], N_BANDS))
    for b in range(N_BANDS):
        out[..., b] = power[..., band == b].sum(-1)
    return np.log(1e-8 + out)


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = train.mean(0), train.std(0) + 1e-6
    return (train - mu) / sd, (test - mu) / sd


def nearest_centroid(xtr, ytr, xte) -> np.ndarray:
    """The class whose mean training feature vector is nearest (Euclidean)."""
    centroids = np.stack([xtr[ytr == k].mean(0) for k in range(int(ytr.max()) + 1)])
    return np.argmin(((xte[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)


def logistic(xtr, ytr, xte, steps: int = 500) -> np.ndarray:
    """Multinomial logistic regression, Adam (lr 0.01, weight decay 1e-3), full batch."""
    torch.manual_seed(0)
    x, y = torch.tensor(xtr, dtype=torch.float32), torch.tensor(ytr, dtype=torch.int64)
    model = torch.nn.Linear(x.shape[1], int(ytr.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        return model(torch.tensor(xte, dtype=torch.float32)).argmax(1).numpy()


def main(argv: list[str] | None = None) -> int:
    """Read the files, fit both baselines, write the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", choices=("keywords", "ambient"), default="keywords",
                        help="which data set (default keywords)")
    parser.add_argument("--dir", default=None,
                        help="folder of the files (default: the data set's default folder)")
    parser.add_argument("--out", default="benchmarks/results", help="where the tables go")
    args = parser.parse_args(argv)
    module = keywords if args.set == "keywords" else ambient
    read = keywords.read_keywords if args.set == "keywords" else ambient.read_ambient
    folder = Path(args.dir) if args.dir else module.default_dir()
    train = read(folder / module.file_name("train"))
    test = read(folder / module.file_name("test"))
    etr, ete = band_energies(train.clips, train.fs), band_energies(test.clips, test.fs)
    mean_tr, mean_te = _standardise(etr.mean(1), ete.mean(1))
    t_bins = 10
    step = etr.shape[1] // t_bins
    spec_tr, spec_te = _standardise(
        etr[:, :step * t_bins].reshape(len(etr), t_bins, step, N_BANDS).mean(2).reshape(
            len(etr), -1),
        ete[:, :step * t_bins].reshape(len(ete), t_bins, step, N_BANDS).mean(2).reshape(
            len(ete), -1))
    preds = {"mean spectrum, nearest centroid": nearest_centroid(mean_tr, train.labels, mean_te),
             "spectrogram, logistic regression": logistic(spec_tr, train.labels, spec_te)}
    groups = {"all": np.ones(len(test.labels), bool)}
    if args.set == "keywords":
        snr = test.clip_meta["snr_db"]
        groups["clean"] = np.isnan(snr)
        for s in (20.0, 10.0, 5.0, 0.0):
            groups[f"{s:g} dB"] = snr == s
        for k, name in enumerate(test.noise_kinds):
            groups[name] = test.clip_meta["noise"] == k
    else:
        groups["no distractor"] = test.clip_meta["distractor"] < 0
        groups["distractor"] = test.clip_meta["distractor"] >= 0
        for k, name in enumerate(test.keys):
            groups[name] = test.labels == k
    result = {"train_clips": len(train.labels), "test_clips": len(test.labels),
              "chance": 1 / len(test.keys),
              "accuracy": {m: {g: float(np.mean(p[sel] == test.labels[sel]))
                               for g, sel in groups.items()} for m, p in preds.items()},
              "test_clips_per_group": {g: int(sel.sum()) for g, sel in groups.items()}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.set}_baseline.json").write_text(json.dumps(result, indent=2) + "\n")
    head = "| baseline | " + " | ".join(f"{g} ({result['test_clips_per_group'][g]})"
                                         for g in groups) + " |"
    rows = [head, "|---" * (len(groups) + 1) + "|"]
    for m, acc in result["accuracy"].items():
        rows.append(f"| {m} | " + " | ".join(f"{100 * a:.1f} %" for a in acc.values()) + " |")
    text = "\n".join(rows) + "\n"
    (out / f"{args.set}_baseline.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
