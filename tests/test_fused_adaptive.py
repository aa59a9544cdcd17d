"""Adaptive neurons in the fused kernel (issue 17): AdaptiveLIF (CUBA LIF + AHP current) and
AdLIF (voltage LIF + adaptation with subthreshold coupling) through
:func:`spikeloop.kernels.neuron_loop`, against the reference step loop under autograd —
spikes, membranes, final state and the gradients of the input, the recurrent weight and every
learnable parameter, with observations (in the loop), both resets, refractoriness, the
band-limited surrogate and a state carried over windows. float32 tests run the native C engine
and the torch engine (``engine`` fixture); float64 tests run the torch engine."""

from __future__ import annotations

import pytest
import torch

from spikeloop.backends import SimBackend
from spikeloop.dynamics import MODELS
from spikeloop.errors import ParameterError, ShapeError
from spikeloop.kernels import LoopConfig, native, neuron_loop
from spikeloop.network import Network
from spikeloop.nn import AdaptiveLIF, AdLIF, CubaLI, Input, Linear
from spikeloop.observables import Observables

NATIVE = native.library() is not None

LEARN = {
    AdLIF: ("tau_mem", "tau_adapt", "a", "b", "v_leak", "r", "v_threshold", "v_reset"),
    AdaptiveLIF: ("tau_mem", "tau_syn", "tau_adapt", "adapt_increment", "v_leak", "r",
                  "v_threshold", "v_reset"),
}
DRIVE = {AdLIF: 4.0, AdaptiveLIF: 3.0}  # input amplitude that makes both spike and adapt
F64 = {"rtol": 1e-8, "atol": 1e-10}
F32 = {"rtol": 1e-4, "atol": 1e-5}




def make(cls, n=12, *, reset="subtract", t_refrac=0.0, recurrent=False, seed=0):
    torch.manual_seed(seed)
    kw = {"dt": 1e-3, "learn": LEARN[cls], "reset": reset, "t_refrac": t_refrac,
          "recurrent": recurrent, "tau_mem": 8e-3 + 8e-3 * torch.rand(n),
          "tau_adapt": 30e-3 + 60e-3 * torch.rand(n), "v_leak": 0.1 * torch.randn(n),
          "r": 0.8 + 0.4 * torch.rand(n), "v_threshold": 0.8 + 0.4 * torch.rand(n),
          "v_reset": 0.1 * torch.randn(n)}
    if cls is AdLIF:
        kw.update(a=-0.1 + 0.4 * torch.rand(n), b=0.1 + 0.4 * torch.rand(n))
    else:
        kw.update(tau_syn=3e-3 + 4e-3 * torch.rand(n), adapt_increment=0.2 + 0.5 * torch.rand(n))
    pop = cls(n, **kw)
    if recurrent:
        with torch.no_grad():
            pop.recurrent.weight.mul_(3.0)
    return pop


def drive(cls, steps=100, batch=3, n=12, dtype=torch.float32, seed=1):
    torch.manual_seed(seed)
    return (torch.rand(steps, batch, n) * DRIVE[cls]).to(dtype)


def adaptation(st):
    """The adaptation variable of a final state (``w`` of AdLIF, ``a`` of AdaptiveLIF)."""
    return st.neuron.w if hasattr(st.neuron, "w") else st.neuron.a


def run_and_grads(pop, x, kernel, state=None, observed=None, grad_band=None):
    """Observables, final state and gradients of a loss that touches every output."""
    pop.zero_grad()
    x = x.clone().requires_grad_(True)
    obs, st = pop.simulate(x, pop.parameter_record(), state, observed, kernel=kernel,
                           grad_band=grad_band)
    gen = torch.Generator().manual_seed(123)

    def noise(t):
        return torch.randn(t.shape, generator=gen, dtype=t.dtype).to(t.device)

    loss = (noise(obs.v) * obs.v).sum() + (noise(obs.spikes) * obs.spikes).sum()
    if obs.i is not None:
        loss = loss + (noise(obs.i) * obs.i).sum()
    w = adaptation(st)
    loss = loss + (noise(st.neuron.v) * st.neuron.v).sum() + (noise(w) * w).sum()
    loss.backward()
    grads = {"x": x.grad.clone()}
    for name, p in pop.named_parameters():
        grads[name] = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
    return obs, st, grads


def assert_grads_close(fast, ref, rtol, atol):
    """Every gradient non-zero and close (``atol`` relative to the largest entry when that is
    above 1: sums of large terms that cancel keep only their rounding)."""
    assert fast.keys() == ref.keys()
    for name in ref:
        scale = ref[name].abs().max().item()
        assert scale > 0, f"{name}: no gradient reaches it"
        torch.testing.assert_close(fast[name], ref[name], msg=name, rtol=rtol,
                                   atol=atol * max(1.0, scale))


CASES = [(cls, reset, t_refrac, recurrent)
         for cls in (AdLIF, AdaptiveLIF)
         for reset in ("subtract", "value")
         for t_refrac in (0.0, 2e-3)
         for recurrent in (False, True)]
IDS = [f"{c.__name__}-{r}-refrac{int(t * 1e3)}-{'rec' if rc else 'ff'}"
       for c, r, t, rc in CASES]


# ----------------------------------------------------------------------------- capabilities
@pytest.mark.parametrize("name", ["AdLIF", "AdaptiveLIF"])
def test_adaptive_models_declare_the_fused_engine(name):
    model = MODELS.get(name)
    assert model.runs_on("fused") and model.adaptation is not None


# ----------------------------------------------------------------------------- forward
@pytest.mark.parametrize(("cls", "reset", "t_refrac", "recurrent"), CASES, ids=IDS)
def test_forward_equals_the_reference_loop(engine, cls, reset, t_refrac, recurrent):
    """float32, T = 100: the same spikes, membranes and final state to float32 rounding
    (without recurrence bit for bit: the same operations in the same order)."""
    pop = make(cls, reset=reset, t_refrac=t_refrac, recurrent=recurrent)
    x = drive(cls)
    with torch.no_grad():
        ref, st_ref = pop.simulate(x, pop.parameter_record(), kernel="reference")
        fast, st_fast = pop.simulate(x, pop.parameter_record(), kernel="fused")
    rate = ref.spikes.mean().item()
    assert 0.02 < rate < 0.6, rate  # it spikes, and not at every step
    assert adaptation(st_ref).abs().max() > 0.05  # and it adapts
    assert torch.equal(fast.spikes, ref.spikes)
    torch.testing.assert_close(fast.v, ref.v, rtol=1e-6, atol=1e-6)
    if not recurrent:
        assert torch.equal(fast.v, ref.v)
        assert torch.equal(adaptation(st_fast), adaptation(st_ref))
    if ref.i is not None:
        torch.testing.assert_close(fast.i, ref.i)
    for a, b in zip(st_fast.neuron, st_ref.neuron, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    if recurrent:
        assert torch.equal(st_fast.z, st_ref.z)


def test_adaptation_changes_the_spikes_it_is_compared_against():
    """The comparison is not vacuous: without adaptation the spikes differ."""
    pop = make(AdLIF)
    x = drive(AdLIF)
    with torch.no_grad():
        adapted, _ = pop.simulate(x, pop.parameter_record(), kernel="fused")
        p = pop.parameter_record()
        free, _ = pop.simulate(x, type(p)(**{**p.__dict__, "a": 0.0, "b": 0.0}), kernel="fused")
    assert free.spikes.sum() > adapted.spikes.sum()


# ----------------------------------------------------------------------------- backward
@pytest.mark.parametrize(("cls", "reset", "t_refrac", "recurrent"), CASES, ids=IDS)
def test_gradients_equal_the_reference_loop(cls, reset, t_refrac, recurrent):
    """float64: gradients of x, the recurrent weight and every learned parameter."""
    pop = make(cls, reset=reset, t_refrac=t_refrac, recurrent=recurrent).double()
    x = drive(cls, steps=60, dtype=torch.float64)
    ref, st_ref, g_ref = run_and_grads(pop, x, "reference")
    fast, st_fast, g_fast = run_and_grads(pop, x, "fused")
    assert ref.spikes.sum() > 0 and torch.equal(fast.spikes, ref.spikes)
    torch.testing.assert_close(fast.v, ref.v, **F64)
    for a, b in zip(st_fast.neuron, st_ref.neuron, strict=True):
        torch.testing.assert_close(a, b, **F64)
    assert set(LEARN[cls]) <= g_ref.keys()
    assert ("recurrent.weight" in g_ref) == recurrent
    assert_grads_close(g_fast, g_ref, **F64)


@pytest.mark.parametrize(("cls", "reset", "t_refrac", "recurrent"), CASES, ids=IDS)
def test_gradients_in_float32(engine, cls, reset, t_refrac, recurrent):
    """The training dtype (native engine on the CPU): gradients agree to float32 rounding."""
    pop = make(cls, reset=reset, t_refrac=t_refrac, recurrent=recurrent)
    x = drive(cls, steps=60)
    ref, _, g_ref = run_and_grads(pop, x, "reference")
    fast, _, g_fast = run_and_grads(pop, x, "fused")
    assert torch.equal(fast.spikes, ref.spikes)
    assert_grads_close(g_fast, g_ref, **F32)


@pytest.mark.parametrize("cls", [AdLIF, AdaptiveLIF])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_band_limited_surrogate_gradients(engine, cls, dtype):
    pop = make(cls, recurrent=True).to(dtype)
    x = drive(cls, steps=60, dtype=dtype)
    _, _, g_ref = run_and_grads(pop, x, "reference", grad_band=0.4)
    _, _, g_fast = run_and_grads(pop, x, "fused", grad_band=0.4)
    _, _, g_full = run_and_grads(pop, x, "fused")
    assert not torch.allclose(g_fast["x"], g_full["x"])  # the band matters here
    assert_grads_close(g_fast, g_ref, **(F64 if dtype == torch.float64 else F32))


@pytest.mark.parametrize("cls", [AdLIF, AdaptiveLIF])
@pytest.mark.parametrize("seen", ["both", "v", "spikes"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_observed_membrane_and_spikes_in_the_loop(engine, cls, seen, dtype):
    """A device (here: the model with other thresholds and a noisy membrane) is observed; the
    fused replay takes its values and the model's gradients there, as the reference does."""
    tol = F64 if dtype == torch.float64 else F32
    pop = make(cls, recurrent=True, t_refrac=2e-3).to(dtype)
    x = drive(cls, steps=60, dtype=dtype)
    device = make(cls, recurrent=True, t_refrac=2e-3).to(dtype)
    with torch.no_grad():
        device.v_threshold.mul_(0.9)
        dev, _ = device.simulate(x, device.parameter_record(), kernel="reference")
    torch.manual_seed(5)
    observed = Observables(
        v=dev.v + 0.02 * torch.randn_like(dev.v) if seen != "spikes" else None,
        spikes=dev.spikes if seen != "v" else None)
    ref, st_ref, g_ref = run_and_grads(pop, x, "reference", observed=observed)
    fast, st_fast, g_fast = run_and_grads(pop, x, "fused", observed=observed)
    assert torch.equal(fast.spikes, ref.spikes)
    if seen != "v":
        assert torch.equal(fast.spikes, dev.spikes)
    if seen != "spikes":
        assert torch.equal(fast.v, observed.v)
    torch.testing.assert_close(fast.v, ref.v, **tol)
    torch.testing.assert_close(adaptation(st_fast), adaptation(st_ref), **tol)
    assert_grads_close(g_fast, g_ref, **tol)


# ----------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("cls", [AdLIF, AdaptiveLIF])
def test_state_carried_over_two_windows_equals_one_run(cls):
    pop = make(cls, recurrent=True, t_refrac=2e-3).double()
    x = drive(cls, steps=80, dtype=torch.float64).requires_grad_(True)
    one, st_one = pop.simulate(x, pop.parameter_record(), kernel="fused")
    first, st = pop.simulate(x[:40], pop.parameter_record(), kernel="fused")
    assert adaptation(st).abs().max() > 0.05  # the carried state holds adaptation
    second, st_two = pop.simulate(x[40:], pop.parameter_record(), st, kernel="fused")
    assert torch.equal(torch.cat([first.spikes, second.spikes]), one.spikes)
    torch.testing.assert_close(torch.cat([first.v, second.v]), one.v, **F64)
    for a, b in zip(st_two.neuron, st_one.neuron, strict=True):
        torch.testing.assert_close(a, b, **F64)
    # gradients flow back through the carried state (w, v, i, last spikes) into window 1
    weight = torch.randn_like(one.v)
    (g_one,) = torch.autograd.grad((weight * one.v).sum(), x)
    (g_two,) = torch.autograd.grad((weight * torch.cat([first.v, second.v])).sum(), x)
    assert g_two[:40].abs().sum() > 0
    torch.testing.assert_close(g_two, g_one, **F64)


# ----------------------------------------------------------------------------- networks
@pytest.mark.parametrize("cls", [AdLIF, AdaptiveLIF])
def test_a_network_trains_with_kernel_fused(engine, cls):
    torch.manual_seed(3)
    learn = ("tau_adapt", "a", "b") if cls is AdLIF else ("tau_adapt", "adapt_increment")
    net = Network({"input": Input(6), "fc": Linear(6, 16),
                   "hidden": cls(16, recurrent=True, learn=learn),
                   "fc2": Linear(16, 3), "out": CubaLI(3)})
    with torch.no_grad():
        net.layers.fc.weight.normal_(1.5, 0.5)
    x = (torch.rand(50, 4, 6) < 0.4).float()
    results = {}
    for kernel in ("reference", "fused"):
        net.zero_grad()
        out = net(x, backend=SimBackend(kernel=kernel))
        out.output.v.pow(2).sum().backward()
        results[kernel] = (out, {n: p.grad.clone() for n, p in net.named_parameters()})
    (ref, g_ref), (fast, g_fast) = results["reference"], results["fused"]
    assert ref["hidden"].spikes.sum() > 0
    assert torch.equal(fast["hidden"].spikes, ref["hidden"].spikes)
    torch.testing.assert_close(fast.output.v, ref.output.v, rtol=1e-5, atol=1e-6)
    for name in learn:
        assert g_ref[f"layers.hidden.{name}"].abs().sum() > 0
    for name in g_ref:
        torch.testing.assert_close(g_fast[name], g_ref[name], rtol=1e-4, atol=1e-6, msg=name)


# ----------------------------------------------------------------------------- engines, errors
def coefficients(**extra):
    base = dict(beta=0.9, rest=0.0, alpha=0.0, gain=0.3, thr=1.0, vreset=0.0)
    return {**base, **extra}


ADAPT = dict(rho=0.95, kappa=0.1, a=0.2, b=0.3, vleak=0.0)


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
@pytest.mark.parametrize("reset", ["value", "subtract"])
@pytest.mark.parametrize("refrac", [0, 2])
@pytest.mark.parametrize("recurrent", [False, True])
def test_native_and_torch_engines_agree(reset, refrac, recurrent):
    """neuron_loop directly, with a current (α > 0) and a subthreshold coupling at once (a case
    no registered model has), an initial w and every coefficient learned: the native engine's
    forward equals the torch engine's (bit for bit without recurrence), its gradients (w0 and
    ρ, κ, a_c, b, v_leak included) agree to float32 rounding."""
    torch.manual_seed(0)
    steps, batch, n = 80, 5, 37
    ranges = dict(beta=(0.85, 0.1), rest=(0.0, 0.02), alpha=(0.7, 0.2), gain=(0.3, 0.3),
                  thr=(0.8, 0.4), vreset=(0.0, 0.1), rho=(0.93, 0.05), kappa=(0.05, 0.1),
                  a=(-0.1, 0.3), b=(0.1, 0.3), vleak=(0.0, 0.1))
    coef = {k: lo + span * torch.rand(n) for k, (lo, span) in ranges.items()}
    x = torch.rand(steps, batch, n) * 3
    w0 = torch.rand(batch, n) * 0.1
    wrec = 0.3 * torch.randn(n, n) if recurrent else None
    z = torch.zeros(batch, n)
    results = {}
    for eng in ("native", "torch"):
        leaves = [t.clone().requires_grad_() for t in (x, w0, *coef.values())]
        w = wrec.clone().requires_grad_() if recurrent else None
        cfg = LoopConfig(spiking=True, reset=reset, refrac_steps=refrac,
                         surrogate=pop_surrogate(), engine=eng, adaptive=True)
        out = neuron_loop(cfg, leaves[0], dict(zip(coef, leaves[2:], strict=True)),
                          (z, z, z, z if recurrent else None, leaves[1]), w)
        gen = torch.Generator().manual_seed(7)
        loss = sum((torch.randn(t.shape, generator=gen) * t).sum()
                   for k, t in enumerate(out) if k != 5 and t.numel())
        results[eng] = out, torch.autograd.grad(loss, leaves + ([w] if recurrent else []))
    (out_n, g_n), (out_t, g_t) = results["native"], results["torch"]
    assert out_t[1].sum() > 0 and torch.equal(out_n[1], out_t[1])
    for a, b in zip(out_n, out_t, strict=True):
        if recurrent:  # recurrent input sums in event order, not BLAS order
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        else:
            assert torch.equal(a, b)
    for a, b in zip(g_n, g_t, strict=True):
        assert b.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
def test_non_adaptive_loops_return_no_adaptation_state():
    z = torch.zeros(2, 3)
    x = torch.rand(10, 2, 3) * 4
    cfg = LoopConfig(spiking=True, surrogate=pop_surrogate(), engine="native")
    out = neuron_loop(cfg, x, coefficients(), (z, z, z, None))
    assert out[7].numel() == 0


def test_adaptive_loop_errors():
    z = torch.zeros(2, 3)
    x = torch.rand(4, 2, 3)
    cfg = LoopConfig(spiking=True, surrogate=pop_surrogate(), adaptive=True)
    with pytest.raises(ParameterError, match="only spiking populations can be adaptive"):
        neuron_loop(LoopConfig(spiking=False, adaptive=True), x, coefficients(**ADAPT),
                    (z, z, z, None, z))
    with pytest.raises(ParameterError, match=r"needs the coefficients \['b'\]"):
        neuron_loop(cfg, x, coefficients(**{k: v for k, v in ADAPT.items() if k != "b"}),
                    (z, z, z, None, z))
    with pytest.raises(ShapeError, match=r"state must be \(v, i, refrac, z_prev, w\)"):
        neuron_loop(cfg, x, coefficients(**ADAPT), (z, z, z, None))
    with pytest.raises(ShapeError, match=r"state w must be \[2, 3\]"):
        neuron_loop(cfg, x, coefficients(**ADAPT), (z, z, z, None, torch.zeros(1, 3)))


def pop_surrogate():
    return AdLIF(1).surrogate


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("cls", [AdLIF, AdaptiveLIF])
def test_fused_on_cuda_equals_the_cpu_reference(cls):
    """On a GPU the adaptive loop runs the torch engine: the same spikes as the CPU reference,
    membranes and gradients to float32 rounding."""
    pop = make(cls, recurrent=True, t_refrac=2e-3)
    x = drive(cls, steps=60)
    ref, _, g_ref = run_and_grads(pop, x, "reference")
    pop = pop.cuda()
    fast, _, g_fast = run_and_grads(pop, x.cuda(), "fused")
    assert torch.equal(fast.spikes.cpu(), ref.spikes)
    torch.testing.assert_close(fast.v.cpu(), ref.v, rtol=1e-5, atol=1e-5)
    assert_grads_close({k: v.cpu() for k, v in g_fast.items()}, g_ref, **F32)
