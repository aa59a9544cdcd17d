"""The PCM preset of :class:`spikeloop.devices.Crossbar` against IBM aihwkit's
``PCMLikeNoiseModel`` on the same weights: drift of the mean weight and the weight error over
time, with and without global drift compensation; and the preset's constants recomputed from
aihwkit's fitted curves (quoted in :meth:`Crossbar.pcm`).

aihwkit (1.2.0 on PyPI) is a source distribution whose C++ simulator needs OpenBLAS and a
compiler; its noise model is pure Python, so this script imports it from a source checkout
(``--aihwkit-src``: the ``src`` folder of github IBM/aihwkit; nothing is installed). Without
it, only spikeloop's side is printed.

Times: aihwkit's ``t_inference`` counts from its ``t_0`` = 20 s; spikeloop's ``t`` counts from
programming, so ``t = t_inference + 20 s``.

Usage (``AIHWKIT`` a checkout of github IBM/aihwkit; the results in
``benchmarks/results/crossbar_vs_aihwkit.{json,md}`` were made at its commit
``4545f11b5214c5e3c6b9d293053bbf8baf74e110``)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/crossbar_vs_aihwkit.py \\
        --aihwkit-src $AIHWKIT/src --n 256 --out benchmarks/results/crossbar_vs_aihwkit
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from pathlib import Path

import torch

from spikeloop.devices import Crossbar, Devices


def preset_constants() -> dict[str, float]:
    """The preset's constants as averages over u = G/g_max uniform on (0, 1] of aihwkit's
    fitted curves (formulas from its pcm.py, evaluated here)."""
    u = (torch.arange(1, 100_001, dtype=torch.float64) - 0.5) / 100_000
    sigma_prog = (0.26348 + 1.9650 * u - 1.1731 * u**2) / 25.0  # µS / g_max
    mu_nu = (-0.0155 * torch.log(u) + 0.0244).clamp(0.049, 0.1)
    sd_nu = (-0.0125 * torch.log(u) - 0.0059).clamp(0.008, 0.045)
    q_s = (0.0088 / (u**0.65).clamp(min=1e-3)).clamp(max=0.2)
    t, t_read = 20.0, 250e-9
    read = u * q_s * math.sqrt(math.log((t + t_read) / (2 * t_read)))
    return {"program_std": float(sigma_prog.mean()), "nu": float(mu_nu.mean()),
            "nu_std": float(sd_nu.mean()), "read_std (rms)": float(read.pow(2).mean().sqrt())}


def ours(w: torch.Tensor, t_inf: float, compensate: bool, seed: int) -> torch.Tensor:
    model = Crossbar.pcm(drift_compensation=compensate)
    devices = Devices(instance=seed, t=t_inf + model.t0, seed=seed)
    return model.weights(w, devices.context("fc"))


def theirs(w: torch.Tensor, t_inf: float, compensate: bool, seed: int) -> torch.Tensor:
    from aihwkit.inference.noise.pcm import PCMLikeNoiseModel

    torch.manual_seed(seed)
    model = PCMLikeNoiseModel(g_max=25.0)
    g_target, params = model.g_converter.convert_to_conductances(w)
    g_prog = [model.apply_programming_noise_to_conductance(g) for g in g_target]
    nu = [model.generate_drift_coefficients(g) for g in g_target]
    at = [model.apply_drift_noise_to_conductance(g, n, t_inf) for g, n in zip(g_prog, nu,
                                                                            strict=True)]
    w_t = model.g_converter.convert_back_to_weights(at, params)
    if compensate:  # global: mean |w| read at t_inference = 0 over mean |w| now
        ref = [model.apply_drift_noise_to_conductance(g, n, 0.0) for g, n in zip(g_prog, nu,
                                                                               strict=True)]
        w_0 = model.g_converter.convert_back_to_weights(ref, params)
        w_t = w_t * w_0.abs().mean() / w_t.abs().mean()
    return w_t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aihwkit-src", default=None)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    if args.aihwkit_src:
        sys.path.insert(0, args.aihwkit_src)
    constants = preset_constants()
    print("preset constants from aihwkit's curves:", {k: round(v, 4) for k, v in constants.items()})
    rows = []
    gen = torch.Generator().manual_seed(args.seed + 12345)  # not the devices' read stream
    w = torch.randn(args.n, args.n, generator=gen) * 0.1
    w_max = float(w.abs().max())
    models = {"spikeloop": ours} | ({"aihwkit": theirs} if args.aihwkit_src else {})
    print("t_inference (s) | model | comp | mean|w~|/mean|w| | rms(w~ - w)/w_max | "
          "rms(w~ - a w)/w_max (a: best scale)")
    for t_inf in (0.0, 3600.0, 86400.0, 3.15e7):
        for comp in (False, True):
            for name, fn in models.items():
                w_t = fn(w, t_inf, comp, args.seed).detach()
                ratio = float(w_t.abs().mean() / w.abs().mean())
                err = float((w_t - w).pow(2).mean().sqrt()) / w_max
                a = float((w_t * w).sum() / (w * w).sum())
                err_a = float((w_t - a * w).pow(2).mean().sqrt()) / w_max
                print(f"{t_inf:10.3g} | {name:9} | {comp!s:5} | {ratio:.4f} | {err:.4f} | "
                      f"{err_a:.4f}")
                rows.append({"t_inference": t_inf, "model": name, "compensated": comp,
                             "mean_ratio": ratio, "rms_error": err, "rms_error_scaled": err_a})
    if args.out is not None:
        shown = shlex.join(sys.argv[1:]).replace(shlex.quote(args.aihwkit_src or "\0"),
                                                 "$AIHWKIT/src")
        result = {"command": f"python benchmarks/crossbar_vs_aihwkit.py {shown}",
                  "date": time.strftime("%Y-%m-%d"), "n": args.n, "seed": args.seed,
                  "preset": {k: getattr(Crossbar.pcm(), k) for k in
                             ("program_std", "read_std", "nu", "nu_std", "t0", "g_max")},
                  "aihwkit_curve_means": constants, "rows": rows}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(table(result))


def table(result: dict) -> str:
    """The markdown table of ``result`` (what docs/devices.md includes)."""
    lines = ["| t_inference | compensated | " + " | ".join(
        f"{m}: {q}" for m in ("spikeloop", "aihwkit")
        for q in ("mean \\|w̃\\| / mean \\|w\\|", "rms(w̃ − w) / w_max")) + " |",
             "|---:|---|---:|---:|---:|---:|"]
    by = {(r["t_inference"], r["compensated"], r["model"]): r for r in result["rows"]}
    for t, comp in sorted({(r["t_inference"], r["compensated"]) for r in result["rows"]}):
        cells = []
        for m in ("spikeloop", "aihwkit"):
            r = by.get((t, comp, m))
            cells += (["–", "–"] if r is None
                      else [f"{r['mean_ratio']:.3f}", f"{r['rms_error']:.3f}"])
        lines.append(f"| {t:g} s | {'yes' if comp else 'no'} | " + " | ".join(cells) + " |")
    p = result["preset"]
    lines += ["", f"{result['n']} × {result['n']} weights N(0, 0.1²); `Crossbar.pcm()`: "
              f"program_std {p['program_std']:g}, read_std {p['read_std']:g}, ν {p['nu']:g} ± "
              f"{p['nu_std']:g}, t0 {p['t0']:g} s, g_max {p['g_max']:g} µS. Command: "
              f"`{result['command']}` ({result['date']})."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
