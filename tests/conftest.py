"""Fixtures shared by test modules."""

import pytest
import torch

from spikeloop.kernels import native


@pytest.fixture(params=["native", "torch"])
def engine(request, monkeypatch):
    """Run the test with the C kernels and again with the portable torch engine."""
    if request.param == "native":
        if native.library() is None:
            pytest.skip(f"native kernels unavailable: {native.unavailable_reason()}")
    else:
        monkeypatch.setenv("SPIKELOOP_NATIVE", "0")
    return request.param


@pytest.fixture
def one_thread():
    """One torch thread while the test runs, the thread count restored after it: on a machine
    whose cores are busy with other jobs the native loops' OpenMP regions wait for their
    slowest thread, which makes many short calls up to 100× slower with 2 threads (same
    results); benchmarks' ``main()`` set one thread themselves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
