"""The CUDA paths: the same networks on a GPU give what they give on the CPU.

Skipped where no CUDA device is present (CI has none); run on a GPU machine with
``pytest tests/test_cuda.py``. On the GPU the fused loops run their torch engine and the
projections the dense product, so these tests compare those paths, on the device, with the
CPU's native kernels and event-driven projections.
"""

from __future__ import annotations

import pytest
import torch

from spikeloop.backends import SimBackend
from spikeloop.network import Network
from spikeloop.nn import CubaLI, CubaLIF, Input, Linear
from test_event_grid import grid_net  # weights on a 1/64 grid, as dyadic_net
from test_kernels import dyadic_net  # weights on a 1/64 grid: spikes agree across devices

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = torch.device("cuda")


def run(net: Network, x: torch.Tensor, backend: SimBackend) -> tuple[dict, dict]:
    net.zero_grad()
    out = net(x, backend=backend)
    out.output.v.amax(0).pow(2).sum().backward()
    values = {name: {k: v.detach().cpu() for k, v in obs.items()} for name, obs in out.items()}
    grads = {n: p.grad.detach().cpu().clone() for n, p in net.named_parameters()}
    return values, grads


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("kernel", ["auto", "reference"])
def test_sim_backend_on_cuda_equals_cpu(recurrent, kernel):
    torch.manual_seed(4)
    x = (torch.rand(60, 5, 40) < 0.15).float()
    net = dyadic_net(recurrent)
    cpu_values, cpu_grads = run(net, x, SimBackend())
    gpu_values, gpu_grads = run(net.to(CUDA), x.to(CUDA), SimBackend(kernel=kernel))
    assert cpu_values.keys() == gpu_values.keys()
    for name, fields in cpu_values.items():
        for field, value in fields.items():
            if field == "spikes":
                assert torch.equal(gpu_values[name][field], value), name
            else:
                torch.testing.assert_close(gpu_values[name][field], value, atol=1e-5,
                                           rtol=1e-5, msg=f"{name}.{field}")
    for name, g in cpu_grads.items():
        torch.testing.assert_close(gpu_grads[name], g, atol=1e-5, rtol=1e-4, msg=name)


def test_streaming_checkpoint_and_recording_on_cuda():
    torch.manual_seed(5)
    x = (torch.rand(40, 3, 40) < 0.15).float().to(CUDA)
    net = dyadic_net(True).to(CUDA)
    with torch.no_grad():
        whole = net(x)
        first = net(x[:17])
        rest = net(x[17:], first.state)
        lean = net(x, backend=SimBackend(record={"hidden": ["spikes"], "out": ["v"]}))
    assert torch.equal(torch.cat([first["hidden"].spikes, rest["hidden"].spikes]),
                       whole["hidden"].spikes)
    assert lean["hidden"].v is None and torch.equal(lean.output.v, whole.output.v)
    _, full = run(net, x, SimBackend())
    _, ckpt = run(net, x, SimBackend(checkpoint=10, record=("out",)))
    for name, g in full.items():
        torch.testing.assert_close(ckpt[name], g, msg=name)


def test_learned_time_constants_train_on_cuda():
    torch.manual_seed(6)
    net = Network({"input": Input(20), "fc": Linear(20, 8),
                   "hidden": CubaLIF(8, learn=("tau_mem", "tau_syn", "v_threshold")),
                   "fc2": Linear(8, 3), "out": CubaLI(3, learn=("tau_mem",))})
    with torch.no_grad():
        net.layers["fc"].weight.mul_(4)
    x = (torch.rand(30, 4, 20) < 0.3).float()
    _, cpu = run(net, x, SimBackend())
    _, gpu = run(net.to(CUDA), x.to(CUDA), SimBackend())
    for name, g in cpu.items():
        torch.testing.assert_close(gpu[name], g, atol=1e-5, rtol=1e-4, msg=name)


def test_event_backend_on_cuda_equals_cpu():
    """Exact event simulation and EventProp gradients (of the exact membrane maximum)."""
    from spikeloop.backends import EventBackend

    torch.manual_seed(7)
    net = Network({"input": Input(6), "fc": Linear(6, 10), "hidden": CubaLIF(10),
                   "fc2": Linear(10, 3), "out": CubaLI(3)})
    with torch.no_grad():
        net.layers["fc"].weight.mul_(3)
    x = (torch.rand(50, 2, 6) < 0.2).float()
    cpu = net(x, backend=EventBackend())
    cpu.output.v_max.sum().backward()
    g_cpu = {n: p.grad.clone() for n, p in net.named_parameters()}
    net.zero_grad()
    net.to(CUDA)
    gpu = net(x.to(CUDA), backend=EventBackend())
    gpu.output.v_max.sum().backward()
    assert torch.equal(gpu["hidden"].spikes.cpu(), cpu["hidden"].spikes)
    torch.testing.assert_close(gpu.output.v_max.cpu(), cpu.output.v_max)
    for name, p in net.named_parameters():
        torch.testing.assert_close(p.grad.cpu(), g_cpu[name], msg=name)


def test_grid_eventprop_on_cuda_equals_cpu():
    """EventProp on the grid (event backend, engine="grid"): the torch engine of the loop and
    of its adjoint on the GPU against the native ones on the CPU (the dyadic network's spikes
    agree exactly, so the jumps fall on the same steps)."""
    from spikeloop.backends import EventBackend

    grid = EventBackend(engine="grid")
    net = grid_net()
    x = (torch.rand(40, 3, 40, generator=torch.Generator().manual_seed(3)) < 0.3).float()
    cpu_values, cpu_grads = run(net, x, grid)
    net.to(CUDA)
    gpu_values, gpu_grads = run(net, x.to(CUDA), grid)
    for name, obs in cpu_values.items():
        for k, v in obs.items():
            if k == "spikes":
                assert torch.equal(gpu_values[name][k], v), (name, k)
            else:
                torch.testing.assert_close(gpu_values[name][k], v, msg=f"{name}.{k}")
    for name, g in cpu_grads.items():
        torch.testing.assert_close(gpu_grads[name], g, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("backend", ["chip", "xylo"])
def test_chip_backends_refuse_a_network_on_the_gpu(backend):
    """The chip emulators stand for devices on the host: a GPU network gets a DeviceError that
    says what to do, and runs after net.cpu()."""
    from spikeloop.errors import DeviceError

    torch.manual_seed(9)
    net = Network({"input": Input(8), "fc": Linear(8, 12), "hidden": CubaLIF(12),
                   "fc2": Linear(12, 3), "out": CubaLI(3)}).to(CUDA)
    x = (torch.rand(40, 2, 8) < 0.3).float()
    with pytest.raises(DeviceError, match=r"net\.cpu\(\)"):
        net(x.to(CUDA), backend=backend)
    with pytest.raises(DeviceError, match="cuda"):
        net(x, backend=backend)  # input on the host, network still on the GPU
    with torch.no_grad():
        assert net.cpu()(x, backend=backend).output.v.shape == (40, 2, 3)


def test_make_encoder_takes_a_cuda_generator():
    """make_encoder checks its parameters on an empty batch on the generator's device."""
    from spikeloop.data.encoders import make_encoder

    g = torch.Generator("cuda").manual_seed(0)
    encode = make_encoder("rate", duration=0.01, dt=1e-3, max_rate=100.0, generator=g)
    assert encode(torch.rand(2, 3, device="cuda")).device.type == "cuda"
