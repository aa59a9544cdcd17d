"""Property-based suite (issue 15): bad inputs for every public entry point, outcomes classified.

For each kind of entry point a hypothesis strategy (``tests/property_cases/``) draws calls with
one bad argument — or one valid edge input — and ``tests/bad_inputs.py`` classifies what
happened: a specific spikeloop error naming the argument, or a correct result, are good; a raw
exception from torch/numpy/the registry, a silent acceptance (a bad input returning, a valid one
returning a wrong or NaN result), a vague or wrongful refusal, an object left unusable and a
case slower than 2 s are defects. Each kind's test fails listing every defect (the shortest case
of each kind of failure, with the exception text).

The draws are deterministic (``derandomize=True``, no example database). At the end the counts
per kind and outcome are printed (visible with ``-s``) and, if the environment names them,
written to ``$SPIKELOOP_PROPERTY_REPORT`` (JSON) and ``$SPIKELOOP_PROPERTY_DEFECTS`` (the defect
list as text).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bad_inputs import Outcome, classify, format_defects, format_table, summarise
from property_cases import (
    backend_cases,
    checkpoint_cases,
    checkpoint_files,
    construction_cases,
    encoder_cases,
    forward_cases,
    loss_cases,
    nir_cases,
    set_tmp,
    state_cases,
    xylo_cases,
)
from spikeloop.training import Trainer, load_config

# examples per kind: about 600 cases in all, each a few milliseconds
EXAMPLES = {"construction": 140, "forward": 130, "backend": 60, "state": 60, "loss": 80,
            "encoder": 60, "nir": 50, "xylo": 40, "checkpoint": 40}
MIN_CASES = 500

OUTCOMES: list[Outcome] = []


def _run(kind: str, strategy: st.SearchStrategy) -> list[Outcome]:
    collected: list[Outcome] = []

    @settings(max_examples=EXAMPLES[kind], derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def draw(case) -> None:
        assert case.kind == kind
        collected.append(classify(case))

    draw()
    OUTCOMES.extend(collected)
    return collected


def _assert_no_defects(outcomes: list[Outcome]) -> None:
    defects = [o for o in outcomes if o.defect]
    if defects:
        table = format_table(summarise(outcomes))
        pytest.fail(f"{len(defects)} of {len(outcomes)} cases are defects\n{table}\n\n"
                    f"{format_defects(outcomes)}", pytrace=False)


@pytest.fixture(scope="module", autouse=True)
def _report(tmp_path_factory):
    """Prints the counts per kind and outcome after the module; writes the report files."""
    set_tmp(tmp_path_factory.mktemp("property-files"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a thread pool only adds overhead (10x on 2 busy cores)
    # torch's first operation on a meta tensor imports torch._dynamo (seconds): not the library's
    torch.isfinite(torch.zeros(1, device="meta"))
    yield
    torch.set_num_threads(threads)
    if not OUTCOMES:
        return
    table = summarise(OUTCOMES)
    print("\n\nproperty-based suite: outcomes per kind\n" + format_table(table))
    if os.environ.get("SPIKELOOP_PROPERTY_REPORT"):
        Path(os.environ["SPIKELOOP_PROPERTY_REPORT"]).write_text(json.dumps({
            "counts": table,
            "defects": [o.__dict__ for o in OUTCOMES if o.defect],
        }, indent=1, default=str))
    if os.environ.get("SPIKELOOP_PROPERTY_DEFECTS"):
        Path(os.environ["SPIKELOOP_PROPERTY_DEFECTS"]).write_text(
            "property-based suite: outcomes per kind\n" + format_table(table) + "\n\n"
            + format_defects(OUTCOMES) + "\n")


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    """A tiny trainer (a few Yin-Yang samples, 3 hidden neurons) for the checkpoint cases."""
    out = tmp_path_factory.mktemp("runs")
    config = load_config("configs/yinyang.yaml", [
        f"run.out_dir={out}", "run.name=props", "data.train_size=8", "data.val_size=4",
        "data.test_size=4", "model.hidden=[3]", "train.batch_size=4", "train.epochs=1",
        "train.progress=false", "train.backend=sim"])
    trainer = Trainer(config)
    torch.set_num_threads(1)  # the trainer sets its own thread count
    return trainer


def test_construction():
    _assert_no_defects(_run("construction", construction_cases()))


def test_forward_inputs():
    _assert_no_defects(_run("forward", forward_cases()))


def test_backend_specs():
    _assert_no_defects(_run("backend", backend_cases()))


def test_states():
    _assert_no_defects(_run("state", state_cases()))


def test_losses():
    _assert_no_defects(_run("loss", loss_cases()))


def test_encoders():
    _assert_no_defects(_run("encoder", encoder_cases()))


def test_nir():
    _assert_no_defects(_run("nir", nir_cases()))


def test_xylo():
    _assert_no_defects(_run("xylo", xylo_cases()))


def test_checkpoints(trainer, tmp_path_factory):
    files = checkpoint_files(trainer, tmp_path_factory.mktemp("checkpoints"))
    _assert_no_defects(_run("checkpoint", checkpoint_cases(trainer, files)))


def test_enough_cases():
    """The suite draws at least 500 distinct cases over all kinds (when they all ran)."""
    kinds = {o.kind for o in OUTCOMES}
    if kinds != set(EXAMPLES):
        pytest.skip(f"only {sorted(kinds)} ran")
    distinct = len({(o.kind, o.what) for o in OUTCOMES})
    assert distinct >= MIN_CASES, f"{distinct} distinct cases < {MIN_CASES}"
    assert torch.get_default_dtype() == torch.float32
