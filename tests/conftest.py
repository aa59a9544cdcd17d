"""Fixtures shared by test modules."""

import pytest

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
