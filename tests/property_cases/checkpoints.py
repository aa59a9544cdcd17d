"""Checkpoint cases: ``Trainer`` save/load of checkpoint files and ``load_state_dict``."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hypothesis import strategies as st
from torch import Tensor

from bad_inputs import Case, differ, outputs_differ
from spikeloop.network import Network

from .common import COMPARED, NAN, net_cuba, ref, run, spikes


def _snapshot(trainer: Any) -> tuple[dict, dict]:
    return ({k: v.clone() for k, v in trainer.network.state_dict().items()},
            json.loads(json.dumps(_plain(trainer.optimizer.state_dict()))))


def _plain(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.tolist()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj


def trainer_unchanged(trainer: Any, before: tuple[dict, dict]) -> Callable[[], str | None]:
    def after() -> str | None:
        weights, opt = before
        now = trainer.network.state_dict()
        for k, v in weights.items():
            if differ(now[k], v):
                return f"network tensor {k!r} changed"
        if json.loads(json.dumps(_plain(trainer.optimizer.state_dict()))) != opt:
            return "the optimiser state changed"
        return None
    return after


def net_unchanged(net: Network) -> Callable[[], str | None]:
    """After a failed load: ``net`` holds the same tensors and gives the same output."""
    before = {k: v.clone() for k, v in net.state_dict().items()}

    def after() -> str | None:
        now = net.state_dict()
        for k, v in before.items():
            if differ(now[k], v):
                return f"network tensor {k!r} changed"
        return outputs_differ(run(net, spikes(3, 2), "sim"), ref("sim"), COMPARED)
    return after


def checkpoint_files(trainer: Any, folder: Path) -> dict[str, Path]:
    """Files for the checkpoint cases, written once."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.pt"
    trainer.save_checkpoint(good)
    state = torch.load(good, weights_only=False)
    files: dict[str, Path] = {"a good checkpoint": good}

    def put(label: str, obj: Any = None, raw: bytes | None = None) -> None:
        path = folder / f"{len(files)}.pt"
        if raw is not None:
            path.write_bytes(raw)
        else:
            torch.save(obj, path)
        files[label] = path

    put("a tensor", torch.zeros(3))
    put("a dict without 'model'", {"weights": state["model"]})
    put("a list", [1, 2])
    put("garbage bytes", raw=b"\x00not a checkpoint")
    put("an empty file", raw=b"")
    model = dict(state["model"])
    key = next(k for k, v in model.items() if v.dim() == 2)
    bad = {**state, "model": {**model, key: torch.zeros(model[key].shape[0] + 1,
                                                        model[key].shape[1])}}
    put(f"'model' with {key} of the wrong shape", bad)
    put("'model' with an extra key", {**state, "model": {**model, "nope.weight":
                                                         torch.zeros(2)}})
    missing = {k: v for k, v in model.items() if k != key}
    put(f"'model' without {key}", {**state, "model": missing})
    opt = state["optimizer"]
    put("an optimiser with an extra param group",
        {**state, "optimizer": {**opt, "param_groups": [*opt["param_groups"],
                                                        dict(opt["param_groups"][0])]}})
    group = dict(opt["param_groups"][0])
    group["params"] = group["params"][:-1]
    put("an optimiser group missing a parameter",
        {**state, "optimizer": {**opt, "param_groups": [group, *opt["param_groups"][1:]]}})
    put("'model' holding a string", {**state, "model": "weights"})
    files["a folder"] = folder
    files["a missing file"] = folder / "missing.pt"
    return files


@st.composite
def checkpoint_cases(draw: Any, trainer: Any, files: dict[str, Path]) -> Case:
    what = draw(st.sampled_from(("load_weights", "load_checkpoint", "save", "state_dict",
                                 "state_dict")))
    before = _snapshot(trainer)
    unchanged = trainer_unchanged(trainer, before)
    if what in ("load_weights", "load_checkpoint"):
        label = draw(st.sampled_from(sorted(files)))
        as_str = draw(st.booleans())
        path: Any = str(files[label]) if as_str else files[label]
        fn = getattr(trainer, what)
        text = f"trainer.{what}({'str' if as_str else 'Path'} of {label})"
        ignored = what == "load_weights" and "optimiser" in label  # weights only: valid
        if label == "a good checkpoint" or ignored:
            return Case("checkpoint", text, lambda: fn(path), "valid", None, after=unchanged)
        return Case("checkpoint", text, lambda: fn(path), arg=r"checkpoint|init_from|model|"
                    r"optimi[sz]er|path|file", after=unchanged)
    if what == "save":
        label, value = draw(st.sampled_from([
            ("a str path", "str"), ("42", 42), ("None", None),
            ("a path in a missing folder", "missing"),
            ("an existing folder", files["a folder"])]))
        if value in ("str", "missing"):
            target = str(files["a folder"] / "saved-as-str.pt") if value == "str" else \
                files["a folder"] / "no" / "x.pt"

            def save() -> Any:
                trainer.save_checkpoint(target)
                return torch.load(target, weights_only=False)

            def check(state: Any) -> str | None:
                return None if isinstance(state, dict) and "model" in state else "not written"
            return Case("checkpoint", f"trainer.save_checkpoint({label})", save,
                        "valid" if value == "str" else "either", check,
                        arg=r"path|checkpoint|folder|file", after=unchanged)
        return Case("checkpoint", f"trainer.save_checkpoint({label})",
                    lambda: trainer.save_checkpoint(value), arg=r"path|checkpoint|folder|file",
                    after=unchanged)
    net = copy.deepcopy(net_cuba())  # a load that is accepted changes it
    own = {k: v.clone() for k, v in net.state_dict().items()}
    key = "layers.fc1.weight"
    label, make, expect = draw(st.sampled_from([
        ("a tensor", lambda: torch.zeros(3), "error"), ("'weights.pt'", lambda: "weights.pt",
                                                          "error"),
        ("None", lambda: None, "error"), ("[1, 2]", lambda: [1, 2], "error"),
        (f"{key} of the wrong shape", lambda: {**own, key: torch.zeros(7, 4)}, "error"),
        ("an extra key", lambda: {**own, "nope": torch.zeros(1)}, "error"),
        (f"without {key}", lambda: {k: v for k, v in own.items() if k != key}, "error"),
        (f"{key} = 'x'", lambda: {**own, key: "x"}, "error"),
        (f"{key} = a list", lambda: {**own, key: own[key].tolist()}, "error"),
        (f"{key} with nan", lambda: {**own, key: torch.full_like(own[key], NAN)}, "either"),
        (f"{key} float64", lambda: {**own, key: own[key].double()}, "either"),
        ("its own state dict", lambda: own, "valid"),
    ]))
    return Case("checkpoint", f"net.load_state_dict({label})",
                lambda: net.load_state_dict(make()), expect, None,
                arg=r"state dict|state_dict|key|fc1|shape|nan|tensor",
                after=net_unchanged(net) if expect == "error" else None)
