"""Fast paths against the reference step functions: fused neuron loops (native C and torch
engines), event-driven projections, sparse (band-limited) backprop — values and gradients."""

import pytest
import torch

from spikeloop.backends import SimBackend
from spikeloop.dynamics import BandLimited, SuperSpike, Triangle
from spikeloop.errors import ArgumentTypeError, ParameterError, ShapeError
from spikeloop.kernels import event_linear, event_weight_grad, native
from spikeloop.network import Network
from spikeloop.nn import IF, LI, LIF, CubaLI, CubaLIF, CubaLIF2, Input, Linear
from spikeloop.observables import Observables

NATIVE = native.library() is not None


def thread_counts(counts=(1, 2)):
    """Yield each of ``counts`` with torch (and the native kernels) set to that many threads;
    the thread count is restored afterwards."""
    threads = torch.get_num_threads()
    try:
        for n in counts:
            torch.set_num_threads(n)
            native.set_threads()
            yield n
    finally:
        torch.set_num_threads(threads)
        native.set_threads()


LEARNABLE = {
    LIF: ("tau_mem", "v_leak", "r", "v_threshold", "v_reset"),
    IF: ("r", "v_threshold", "v_reset"),
    CubaLIF: ("tau_mem", "tau_syn", "v_leak", "r", "v_threshold", "v_reset"),
    LI: ("tau_mem", "v_leak", "r"),
    CubaLI: ("tau_mem", "tau_syn", "v_leak", "r"),
}


def make_population(cls, n, *, recurrent=False, reset="value", t_refrac=0.0, seed=0,
                    surrogate=None):
    torch.manual_seed(seed)
    spiking = cls not in (LI, CubaLI)
    kwargs = {"dt": 1e-3, "learn": LEARNABLE[cls]}
    if cls in (LIF, CubaLIF, LI, CubaLI):
        kwargs["tau_mem"] = 8e-3 + 6e-3 * torch.rand(n)
        kwargs["v_leak"] = 0.1 * torch.randn(n)
    if cls in (CubaLIF, CubaLI):
        kwargs["tau_syn"] = 3e-3 + 4e-3 * torch.rand(n)
    kwargs["r"] = 0.8 + 0.4 * torch.rand(n)
    if spiking:
        kwargs.update(v_threshold=0.8 + 0.4 * torch.rand(n), v_reset=0.1 * torch.randn(n),
                      reset=reset, t_refrac=t_refrac, recurrent=recurrent)
        if surrogate is not None:
            kwargs["surrogate"] = surrogate
    pop = cls(n, **kwargs)
    if recurrent:
        with torch.no_grad():
            pop.recurrent.weight.mul_(3.0)
    return pop


def run_and_grads(pop, x, kernel, state=None, grad_band=None):
    """Observables, final state and gradients of a loss that touches every output."""
    pop.zero_grad()
    x = x.clone().requires_grad_(True)
    obs, st = pop.simulate(x, pop.parameter_record(), state, kernel=kernel, grad_band=grad_band)
    torch.manual_seed(123)
    loss = (torch.randn_like(obs.v) * obs.v).sum() + (obs.v.amax(0) ** 2).sum()
    if obs.spikes is not None:
        loss = loss + (torch.randn_like(obs.spikes) * obs.spikes).sum()
    if obs.i is not None:
        loss = loss + (torch.randn_like(obs.i) * obs.i).sum()
    loss = loss + (torch.randn_like(st.neuron.v) * st.neuron.v).sum()
    loss.backward()
    grads = {"x": x.grad.clone()}
    for name, p in pop.named_parameters():
        grads[name] = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
    return obs, st, grads


def assert_same(ref, fused, *, exact_spikes=True, rtol=1e-4, atol=1e-5):
    (obs_r, st_r, g_r), (obs_f, st_f, g_f) = ref, fused
    if obs_r.spikes is not None:
        if exact_spikes:
            assert torch.equal(obs_r.spikes, obs_f.spikes)
        assert obs_r.spikes.sum() > 0, "test network should spike"
    torch.testing.assert_close(obs_f.v, obs_r.v, rtol=rtol, atol=atol)
    if obs_r.i is not None:
        torch.testing.assert_close(obs_f.i, obs_r.i, rtol=rtol, atol=atol)
    for a, b in zip(st_r.neuron, st_f.neuron, strict=True):
        torch.testing.assert_close(b, a, rtol=rtol, atol=atol)
    assert g_r.keys() == g_f.keys()
    for name in g_r:
        scale = g_r[name].abs().max().clamp(min=1.0)
        torch.testing.assert_close(g_f[name] / scale, g_r[name] / scale, rtol=rtol, atol=atol,
                                   msg=f"gradient of {name}")


CASES = [(cls, reset, t_refrac) for cls in (LIF, IF, CubaLIF)
         for reset, t_refrac in (("value", 0.0), ("subtract", 0.0), ("value", 3e-3))]
CASES += [(LI, "value", 0.0), (CubaLI, "value", 0.0)]  # readouts: no reset, no refractoriness


@pytest.mark.parametrize("cls, reset, t_refrac", CASES)
def test_fused_loop_equals_step_function(engine, cls, reset, t_refrac):
    pop = make_population(cls, 24, reset=reset, t_refrac=t_refrac)
    torch.manual_seed(5)
    x = 0.8 * torch.randn(60, 5, 24) + 1.0
    ref = run_and_grads(pop, x, "reference")
    fused = run_and_grads(pop, x, "fused")
    # feed-forward loops run the same operations in the same order: identical values
    assert torch.equal(fused[0].v, ref[0].v)
    assert_same(ref, fused)
    assert ref[2]["x"].abs().sum() > 0


@pytest.mark.parametrize("cls", [LIF, CubaLIF])
@pytest.mark.parametrize("t_refrac", [0.0, 2e-3])
def test_fused_recurrent_loop_equals_step_function(engine, cls, t_refrac):
    pop = make_population(cls, 32, recurrent=True, t_refrac=t_refrac, reset="subtract")
    torch.manual_seed(6)
    x = 0.8 * torch.randn(50, 4, 32) + 1.0
    ref = run_and_grads(pop, x, "reference")
    fused = run_and_grads(pop, x, "fused")
    assert_same(ref, fused, exact_spikes=False)
    # recurrent sums run in another order (event-driven): allow rare threshold flips
    flips = (ref[0].spikes != fused[0].spikes).float().mean()
    assert flips == 0, f"{flips:.4f} of spikes differ"
    assert fused[2]["recurrent.weight"].abs().sum() > 0


@pytest.mark.parametrize("n, batch", [(70, 6), (128, 9)])
@pytest.mark.parametrize("band", [None, 1.0, 0.1])
def test_recurrent_backward_blocks_equal_the_step_function(engine, n, batch, band):
    """The recurrent spike gradient W_recᵀ·dx of the native backward, in blocks of eight batch
    rows (32 columns at a time in registers where the band leaves at least half of a block's
    entries, dot products over the needed entries of four rows at a time otherwise): widths
    past two and four 32-column blocks, blocks of fewer rows, no band, a wide band (most
    entries needed) and a narrow one (few), on one thread and on two — all equal to the step
    functions'."""
    pop = make_population(CubaLIF, n, recurrent=True, reset="subtract")
    torch.manual_seed(10)
    x = 0.8 * torch.randn(30, batch, n) + 1.0
    ref = run_and_grads(pop, x, "reference", grad_band=band)
    for _k in thread_counts():
        fused = run_and_grads(pop, x, "fused", grad_band=band)
        assert_same(ref, fused, exact_spikes=False)
        assert (ref[0].spikes != fused[0].spikes).sum() == 0
    assert fused[2]["recurrent.weight"].abs().sum() > 0


def test_recurrent_loop_with_dyadic_weights_is_bit_identical(engine):
    """Weights on a 1/64 grid make every sum exact in any order: identical membranes."""
    pop = make_population(CubaLIF, 16, recurrent=True)
    with torch.no_grad():
        pop.recurrent.weight.copy_(torch.round(pop.recurrent.weight * 64) / 64)
    x = torch.round(torch.randn(40, 3, 16) * 64) / 64
    obs_r, _ = pop.simulate(x, pop.parameter_record(), kernel="reference")
    obs_f, _ = pop.simulate(x, pop.parameter_record(), kernel="fused")
    assert torch.equal(obs_r.spikes, obs_f.spikes)
    torch.testing.assert_close(obs_f.v, obs_r.v, rtol=0, atol=1e-6)


def test_fused_streaming_chunks_equal_one_call_with_gradients_across_chunks(engine):
    pop = make_population(CubaLIF, 20, recurrent=True, t_refrac=2e-3)
    torch.manual_seed(7)
    x = 0.8 * torch.randn(48, 3, 20) + 1.0
    whole = run_and_grads(pop, x, "fused")
    pop.zero_grad()
    xs = x.clone().requires_grad_(True)
    state, parts = None, []
    for chunk in xs.split(16):
        obs, state = pop.simulate(chunk, pop.parameter_record(), state, kernel="fused")
        parts.append(obs)
    cat = Observables.cat(parts)
    assert torch.equal(cat.spikes, whole[0].spikes)
    torch.testing.assert_close(cat.v, whole[0].v)
    # a loss on the last chunk only: its gradient reaches the first chunk through the state
    parts[-1].v.sum().backward()
    ref_x = x.clone().requires_grad_(True)
    obs, _ = pop.simulate(ref_x, pop.parameter_record(), kernel="reference")
    obs.v[32:].sum().backward()
    torch.testing.assert_close(xs.grad, ref_x.grad, rtol=1e-4, atol=1e-5)
    assert xs.grad[:16].abs().sum() > 0


def test_float64_runs_the_torch_engine_and_matches_reference():
    pop = make_population(CubaLIF, 12).double()
    x = (0.6 * torch.randn(30, 4, 12) + 0.3).double()
    ref = run_and_grads(pop, x, "reference")
    fused = run_and_grads(pop, x, "fused")
    assert fused[0].v.dtype == torch.float64
    assert_same(ref, fused, rtol=1e-10, atol=1e-12)


def test_multidimensional_population_shape(engine):
    pop = CubaLIF((2, 3, 4), dt=1e-3)
    x = torch.rand(20, 2, 2, 3, 4) * 1.5
    ref = pop.simulate(x, pop.parameter_record(), kernel="reference")[0]
    fused = pop.simulate(x, pop.parameter_record(), kernel="fused")[0]
    assert fused.spikes.shape == (20, 2, 2, 3, 4)
    assert torch.equal(ref.spikes, fused.spikes) and torch.equal(ref.v, fused.v)


REPLAYS = [(cls, rec, t_refrac, parts)
           for cls, rec, t_refrac in ((CubaLIF, False, 0.0), (LIF, True, 2e-3),
                                      (CubaLIF, True, 2e-3))
           for parts in ("v+z", "v", "z")]
REPLAYS.append((CubaLI, False, 0.0, "v"))  # a readout is observed through its membrane only


@pytest.mark.parametrize("cls, recurrent, t_refrac, parts", REPLAYS)
def test_fused_replay_of_observations_equals_the_step_function_bridge(engine, cls, recurrent,
                                                                      t_refrac, parts):
    """In-the-loop replay: values are the observed ones, gradients the model's evaluated there."""
    kwargs = {"recurrent": recurrent, "t_refrac": t_refrac} if cls is not CubaLI else {}
    pop = make_population(cls, 16, **kwargs)
    torch.manual_seed(14)
    x = 0.8 * torch.randn(40, 3, 16) + 1.0
    with torch.no_grad():  # a "device": the same model on a perturbed input, plus read noise
        dev, _ = pop.simulate(x * 1.1 + 0.05, pop.parameter_record(), kernel="reference")
    obs = Observables(v=(dev.v + 0.02 * torch.randn_like(dev.v)) if "v" in parts else None,
                      spikes=dev.spikes if "z" in parts else None)
    results = []
    for kernel in ("reference", "fused"):
        pop.zero_grad()
        xs = x.clone().requires_grad_(True)
        out, _ = pop.simulate(xs, pop.parameter_record(), observed=obs, kernel=kernel)
        torch.manual_seed(15)
        loss = (torch.randn_like(out.v) * out.v).sum()
        if out.spikes is not None:
            loss = loss + (torch.randn_like(out.spikes) * out.spikes).sum()
        loss.backward()
        results.append((out, {"x": xs.grad, **{n: q.grad for n, q in pop.named_parameters()}}))
    (ref, g_ref), (fused, g_fused) = results
    if obs.v is not None:  # the step functions' straight-through m + (o - m) rounds
        torch.testing.assert_close(fused.v, obs.v, rtol=0, atol=1e-6)
    if obs.spikes is not None:
        assert torch.equal(fused.spikes, obs.spikes)
    torch.testing.assert_close(fused.v, ref.v)
    if ref.spikes is not None:
        assert torch.equal(fused.spikes, ref.spikes)
    for name, g in g_ref.items():
        g = torch.zeros_like(g_fused[name]) if g is None else g
        scale = g.abs().max().clamp(min=1.0)
        torch.testing.assert_close(g_fused[name] / scale, g / scale, rtol=1e-4, atol=1e-5,
                                   msg=name)


# ----------------------------------------------------------------------------- sparse backprop
@pytest.mark.parametrize("recurrent", [False, True])
def test_grad_band_equals_reference_with_band_limited_surrogate(engine, recurrent):
    pop = make_population(CubaLIF, 24, recurrent=recurrent)
    torch.manual_seed(8)
    x = 0.8 * torch.randn(40, 4, 24) + 1.0
    banded = run_and_grads(pop, x, "reference", grad_band=0.3)
    fused = run_and_grads(pop, x, "fused", grad_band=0.3)
    assert_same(banded, fused, exact_spikes=not recurrent)
    full = run_and_grads(pop, x, "fused")
    assert not torch.allclose(full[2]["x"], fused[2]["x"]), "the band must change gradients"


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
def test_native_surrogate_pass_equals_each_surrogates_derivative_to_the_bit():
    """The fused backward's one-pass native σ'(v − ϑ) (NativeForm) gives the same bits as the
    surrogate's own derivative_ for every registered surrogate, each inside a band, and at
    0, ±inf, NaN and huge membranes; a subclass with its own derivative_ does not inherit its
    parent's form and takes the torch path."""
    from spikeloop.dynamics import SURROGATES
    from spikeloop.kernels.fused import LoopConfig, _surrogate_grad

    g = torch.Generator().manual_seed(0)
    v = torch.randn(7, 3, 40, generator=g) * 2
    v[0, 0, :6] = torch.tensor([0.0, float("inf"), -float("inf"), float("nan"), 1e30, -1e30])
    thr = torch.rand(40, generator=g) + 0.5
    thr[3] = v[1, 2, 3]  # exactly at threshold
    cases = [SURROGATES.build({"name": name}) for name in SURROGATES.names()]
    cases += [BandLimited(s, band=0.3) for s in list(cases)]
    assert all(s.native_form() is not None for s in cases)
    for s in cases:
        got = _surrogate_grad(LoopConfig(spiking=True, surrogate=s), v, thr)
        want = s.derivative_(v - thr)
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True, msg=str(s))

    class Own(SuperSpike):  # a user's variant: its own derivative_, SuperSpike's form inherited
        def derivative_(self, x):
            return x.abs_().neg_().exp_()

    assert Own().native_form() is None and BandLimited(Own(), band=0.3).native_form() is None
    got = _surrogate_grad(LoopConfig(spiking=True, surrogate=Own()), v, thr)
    torch.testing.assert_close(got, (v - thr).abs().neg().exp(), equal_nan=True)


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
@pytest.mark.parametrize("recurrent", [False, True])
def test_native_backward_computing_the_surrogate_in_its_pass_changes_no_bit(recurrent):
    """The native backward evaluates σ'(v − ϑ) row by row inside its own pass where the
    surrogate has a native form; every gradient is the same, to the bit, as with σ' computed
    ahead of the pass (a subclass without a native form): every registered surrogate, alone and
    inside a band, feed-forward and recurrent, on one and two threads."""
    from spikeloop.dynamics import SURROGATES
    from spikeloop.kernels.fused import LoopConfig, neuron_loop

    def ahead(s):  # the same derivative_, no native form: σ' is computed before the pass
        import dataclasses

        return type("Ahead", (type(s),), {"native_form": lambda self: None})(
            **{f.name: getattr(s, f.name) for f in dataclasses.fields(s) if f.init})

    g = torch.Generator().manual_seed(4)
    t, b, n = 30, 6, 70
    x0 = torch.randn(t, b, n, generator=g) * 0.8 + 0.9
    coefs0 = {"beta": torch.rand(n, generator=g) * 0.3 + 0.6, "rest": torch.zeros(n),
              "alpha": torch.rand(n, generator=g) * 0.3 + 0.5, "gain": torch.ones(n) * 0.5,
              "thr": torch.rand(n, generator=g) * 0.4 + 0.8, "vreset": torch.zeros(n)}
    wrec0 = torch.randn(n, n, generator=g) * 0.2 if recurrent else None
    weights = [torch.randn(t, b, n, generator=g) for _ in range(2)]
    z = torch.zeros(b, n)

    def grads(surrogate):
        x = x0.clone().requires_grad_(True)
        coefs = {k: c.clone().requires_grad_(True) for k, c in coefs0.items()}
        wrec = wrec0.clone().requires_grad_(True) if recurrent else None
        out = neuron_loop(LoopConfig(spiking=True, reset="subtract", surrogate=surrogate,
                                     engine="native"), x, coefs, (z, z, z, None), wrec)
        (weights[0] * out[0]).sum().add((weights[1] * out[1]).sum()).backward()
        return [x.grad, *(c.grad for c in coefs.values()),
                *([wrec.grad] if recurrent else [])]

    cases = [SURROGATES.build({"name": name}) for name in SURROGATES.names()]
    cases += [BandLimited(s, band=0.3) for s in list(cases)]
    for k in thread_counts():
        for s in cases:
            base = s.base if isinstance(s, BandLimited) else s
            other = (BandLimited(ahead(base), band=s.band) if isinstance(s, BandLimited)
                     else ahead(s))
            assert s.native_form() is not None and other.native_form() is None
            for got, want in zip(grads(s), grads(other), strict=True):
                assert torch.equal(got, want), (str(s), k)


def test_band_limited_surrogate_is_zero_outside_band():
    s = BandLimited(SuperSpike(beta=5.0), band=0.5)
    x = torch.tensor([-0.6, -0.5, -0.2, 0.0, 0.49, 0.5, 2.0])
    expected = torch.where(x.abs() < 0.5, SuperSpike(beta=5.0).derivative(x), 0.0)
    assert torch.equal(s.derivative(x), expected)
    odd = s.derivative(torch.tensor([float("nan"), float("inf"), -float("inf")]))
    torch.testing.assert_close(odd, torch.tensor([float("nan"), 0.0, 0.0]), equal_nan=True)
    with pytest.raises(ParameterError, match="band"):
        BandLimited(SuperSpike(), band=0.0)
    with pytest.raises(ParameterError, match="base"):
        BandLimited("superspike", band=0.5)


def test_triangle_surrogate_support_makes_recurrent_backward_event_driven(engine):
    """A surrogate with compact support gives zeros the recurrent backward skips; result equal."""
    pop = make_population(CubaLIF, 24, recurrent=True, surrogate=Triangle(beta=4.0))
    torch.manual_seed(9)
    x = 0.8 * torch.randn(40, 4, 24) + 1.0
    assert_same(run_and_grads(pop, x, "reference"), run_and_grads(pop, x, "fused"),
                exact_spikes=False)


# ----------------------------------------------------------------------------- projections
def graph_nodes(y):
    """Names of the autograd nodes that produced ``y``."""
    seen, todo = set(), [y.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and type(node).__name__ not in seen:
            seen.add(type(node).__name__)
            todo.extend(n for n, _ in node.next_functions)
    return seen


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("bias", [False, True])
def test_event_linear_equals_dense(binary, bias):
    if not NATIVE:
        pytest.skip("native kernels unavailable")
    torch.manual_seed(10)
    x = (torch.rand(30, 8, 50) < 0.05).float()
    if not binary:
        x = x * torch.randn_like(x)
    x.requires_grad_(True)
    lin = Linear(50, 17, bias=bias)
    y = event_linear(x, lin.weight, lin.bias)
    y_ref = torch.nn.functional.linear(x, lin.weight, lin.bias)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    assert "_EventLinearBackward" in graph_nodes(y)
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, [x, lin.weight] + ([lin.bias] if bias else []), g)
    want = torch.autograd.grad(y_ref, [x, lin.weight] + ([lin.bias] if bias else []), g)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_event_linear_falls_back_to_dense_for_dense_input():
    x = torch.rand(10, 4, 20) + 0.1  # no zeros
    lin = Linear(20, 5)
    y = event_linear(x, lin.weight)
    assert "_EventLinearBackward" not in graph_nodes(y)
    torch.testing.assert_close(y, torch.nn.functional.linear(x, lin.weight))


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
@pytest.mark.parametrize("case", ["sparse", "graded", "dense", "dense_start", "nan", "empty"])
def test_event_linear_without_gradient_equals_the_event_list_path(case):
    """Without gradient the projection runs in one pass, each row's events summed as found
    (no event list): the same floats as the path through the event list, on one and two
    threads; a dense input, or one dense in its first rows only (the one pass gives up early
    and the event list decides), and NaN with and without check_finite behave alike."""
    import ctypes

    from spikeloop.errors import NonFiniteError

    g = torch.Generator().manual_seed(12)
    x = (torch.rand(40, 9, 70, generator=g) < 0.06).float()
    if case == "graded":
        x = x * torch.randn(x.shape, generator=g)
    elif case == "dense":
        x = torch.rand(40, 9, 70, generator=g) + 0.1
    elif case == "dense_start":  # 13 % overall: the event path, after a dense start
        x[:3] = 1.0
    elif case == "nan":
        x[7, 3, 11] = float("nan")
    elif case == "empty":
        x = x[:0]
    w = torch.randn(33, 70, generator=g)
    b = torch.randn(33, generator=g)
    for _n in thread_counts():
        want = event_linear(x.clone().requires_grad_(True), w, b).detach()  # the event list
        with torch.no_grad():
            got = event_linear(x, w, b)
        assert torch.equal(torch.nan_to_num(got, nan=7.0), torch.nan_to_num(want, nan=7.0))
        if case in ("dense", "dense_start"):  # the one pass gave up, the event list decided
            x2, bad = x.reshape(-1, 70).contiguous(), ctypes.c_int(0)
            assert native.library().sl_event_matmul_dense(
                x2.shape[0], 70, 33, x2.data_ptr(), w.t().contiguous().data_ptr(),
                torch.empty(x2.shape[0], 33).data_ptr(), 0.15, ctypes.byref(bad)) == -1
        if case == "nan":
            assert got.isnan().any()
            with torch.no_grad(), pytest.raises(NonFiniteError, match="fc9: input holds NaN"):
                event_linear(x, w, b, check_finite="fc9")
        else:
            with torch.no_grad():
                assert torch.equal(event_linear(x, w, b, check_finite="fc9"), got)


# ----------------------------------------------------------------------------- networks
def dyadic_net(recurrent):
    torch.manual_seed(11)
    net = Network({"input": Input(40), "fc1": Linear(40, 32),
                   "hidden": CubaLIF(32, recurrent=recurrent, t_refrac=2e-3),
                   "fc2": Linear(32, 16), "lif": LIF(16, reset="subtract"),
                   "fc3": Linear(16, 4), "out": CubaLI(4)})
    with torch.no_grad():  # 1/64 grid: every weighted sum exact in any order
        for name, gain in (("fc1", 6.0), ("fc2", 40.0), ("fc3", 1.0)):
            w = net.layers[name].weight
            w.copy_(torch.round(w * gain * 64) / 64)
        if recurrent:
            w = net.layers["hidden"].recurrent.weight
            w.copy_(torch.round(w * 64) / 64)
    return net


@pytest.mark.parametrize("recurrent", [False, True])
def test_network_auto_kernels_equal_reference(engine, recurrent):
    net = dyadic_net(recurrent)
    torch.manual_seed(12)
    x = (torch.rand(50, 6, 40) < 0.1).float()
    y = torch.randint(0, 4, (6,))
    results = {}
    for kernel in ("reference", "auto"):
        net.zero_grad()
        out = net(x, backend=SimBackend(kernel=kernel))
        loss = torch.nn.functional.cross_entropy(out.output.v.amax(0), y)
        loss.backward()
        results[kernel] = (out, {n: p.grad.clone() for n, p in net.named_parameters()})
    (ref, g_ref), (fast, g_fast) = results["reference"], results["auto"]
    for name in ("hidden", "lif"):
        assert ref[name].spikes.sum() > 0
        assert torch.equal(ref[name].spikes, fast[name].spikes), name
    torch.testing.assert_close(fast.output.v, ref.output.v, rtol=1e-5, atol=1e-6)
    for name in g_ref:
        torch.testing.assert_close(g_fast[name], g_ref[name], rtol=1e-4, atol=1e-6, msg=name)


def test_step_mode_with_fused_kernels_equals_sequence(engine):
    net = dyadic_net(True)
    x = (torch.rand(30, 3, 40) < 0.1).float()
    seq = net(x, backend=SimBackend(mode="sequence"))
    step = net(x, backend=SimBackend(mode="step"))
    for name in ("hidden", "lif"):
        assert torch.equal(seq[name].spikes, step[name].spikes)
    torch.testing.assert_close(step.output.v, seq.output.v)


# ----------------------------------------------------------------------------- errors
def test_fused_kernel_errors_name_the_reason():
    two = CubaLIF2(8)
    x = torch.rand(10, 2, 8)
    with pytest.raises(ParameterError, match="CubaLIF2 model"):
        two.simulate(torch.rand(10, 2, 16), two.parameter_record(), kernel="fused")
    two.simulate(torch.rand(10, 2, 16), two.parameter_record(), kernel="auto")  # falls back
    lif = CubaLIF(8, detach_reset=False)
    with pytest.raises(ParameterError, match="detach_reset"):
        lif.simulate(x, lif.parameter_record(), kernel="fused")
    lif = CubaLIF(8)
    with pytest.raises(ParameterError, match="unknown kernel"):
        lif.simulate(x, lif.parameter_record(), kernel="cuda")
    with pytest.raises(ParameterError, match=r"kernel must be one of \['auto', 'fused', "
                                             r"'reference'\], got 'fast'"):
        SimBackend(kernel="fast")
    with pytest.raises(ParameterError, match="grad_band"):
        SimBackend(grad_band=-1.0)


def test_native_request_without_library_is_an_error(monkeypatch):
    from spikeloop.kernels.fused import LoopConfig, neuron_loop

    monkeypatch.setenv("SPIKELOOP_NATIVE", "0")
    cfg = LoopConfig(spiking=True, surrogate=SuperSpike(), engine="native")
    z = torch.zeros(2, 3)
    with pytest.raises(RuntimeError, match="SPIKELOOP_NATIVE=0"):
        neuron_loop(cfg, torch.zeros(4, 2, 3), dict.fromkeys(
            ("beta", "rest", "alpha", "gain", "thr", "vreset"), 0.5), (z, z, z, None))


def test_native_switch_is_read_at_every_call(monkeypatch):
    """SPIKELOOP_NATIVE set, changed and removed at run time takes effect at the next call, also
    where os.environ is replaced by another mapping."""
    import os

    for value, off in (("0", True), ("1", False), ("0", True)):
        monkeypatch.setenv("SPIKELOOP_NATIVE", value)
        assert native.disabled() is off and (native.library() is None) == (off or not NATIVE)
    monkeypatch.delenv("SPIKELOOP_NATIVE")
    assert not native.disabled()
    monkeypatch.setattr(os, "environ", {"SPIKELOOP_NATIVE": "0"})
    assert native.disabled()
    os.environ["SPIKELOOP_NATIVE"] = "1"
    assert not native.disabled()


def test_thread_count_reaches_a_library_once_per_count_and_thread():
    """set_threads calls the library's sl_set_threads when torch's thread count differs from
    what this OS thread last set in it (OpenMP keeps the count per thread), else not."""
    import threading

    calls = []

    class Fake:
        def sl_set_threads(self, n):
            calls.append((threading.get_ident(), n))

    lib, before = Fake(), torch.get_num_threads()
    try:
        for n in (1, 1, 2, 2, 1):
            torch.set_num_threads(n)
            native.set_threads(lib)
        assert [n for _, n in calls] == [1, 2, 1]
        other = threading.Thread(target=native.set_threads, args=(lib,))
        other.start()
        other.join()
        native.set_threads(lib)
        assert len(calls) == 4 and calls[-1][0] != threading.get_ident()
        native.set_threads(Fake())  # another library: its own call
        assert len(calls) == 5
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- memory option
@pytest.mark.parametrize("kernel", ["auto", "reference"])
def test_checkpointed_windows_give_the_same_outputs_and_gradients(kernel):
    net = dyadic_net(True)
    torch.manual_seed(13)
    x = (torch.rand(64, 3, 40) < 0.1).float()
    grads = []
    for backend in (SimBackend(kernel=kernel),
                    SimBackend(kernel=kernel, checkpoint=10, record=("out",))):
        net.zero_grad()
        out = net(x, backend=backend)
        out.output.v.amax(0).sum().backward()
        grads.append((out, {n: p.grad.clone() for n, p in net.named_parameters()}))
    (full, g_full), (ckpt, g_ckpt) = grads
    assert list(ckpt) == ["out"] and "hidden" in full
    assert torch.equal(ckpt.output.v, full.output.v)
    for name in g_full:
        torch.testing.assert_close(g_ckpt[name], g_full[name], msg=name)
    # without gradients the windows run plainly, state carried across them
    with torch.no_grad():
        plain = net(x, backend=SimBackend(checkpoint=7))
    assert torch.equal(plain["hidden"].spikes, full["hidden"].spikes)


@pytest.mark.parametrize("kernel", ["auto", "reference"])
def test_recording_selected_fields_changes_no_value(kernel, engine):
    """record={name: fields}: the chosen observables equal the full run's, the others are None;
    under no_grad a spiking population's membrane is not written (neuron_loop returns it empty),
    with gradients the gradients are those of the full run."""
    from spikeloop.kernels.fused import LoopConfig, neuron_loop

    net = dyadic_net(True)
    torch.manual_seed(14)
    x = (torch.rand(30, 3, 40) < 0.2).float()
    full = net(x, backend=SimBackend(kernel=kernel))
    full.output.v.amax(0).sum().backward()
    g_full = {n: p.grad.clone() for n, p in net.named_parameters()}
    chosen = SimBackend(kernel=kernel, record={"hidden": ["spikes"], "out": ["v", "i"]})
    with torch.no_grad():
        out = net(x, backend=chosen)
    assert list(out) == ["hidden", "out"]
    assert out["hidden"].v is None and out["hidden"].i is None
    assert torch.equal(out["hidden"].spikes, full["hidden"].spikes)
    assert torch.equal(out.output.v, full.output.v) and torch.equal(out.output.i, full.output.i)
    net.zero_grad()
    out = net(x, backend=chosen)
    out.output.v.amax(0).sum().backward()
    assert out["hidden"].v is None
    for name, g in g_full.items():
        torch.testing.assert_close(dict(net.named_parameters())[name].grad, g, msg=name)
    # the loop itself: no membrane written without a gradient, recorded regardless with one
    cfg = LoopConfig(spiking=True, surrogate=SuperSpike())
    coef = dict(zip(("beta", "rest", "alpha", "gain", "thr", "vreset"),
                    (0.9, 0.0, 0.8, 0.5, 1.0, 0.0), strict=True))
    z = torch.zeros(3, 4)
    xs = torch.rand(6, 3, 4) * 2
    ref = neuron_loop(cfg, xs, coef, (z, z, z, None))
    with torch.no_grad():
        lean = neuron_loop(cfg, xs, coef, (z, z, z, None), record_v=False, record_current=False)
    assert lean[0].numel() == 0 and lean[2].numel() == 0 and torch.equal(lean[1], ref[1])
    with_grad = neuron_loop(cfg, xs.requires_grad_(), coef, (z, z, z, None), record_v=False)
    torch.testing.assert_close(with_grad[0], ref[0])


def test_checkpoint_and_record_errors():
    with pytest.raises(ParameterError, match=r"checkpoint \(steps per window, or None\) must "
                                             r"be an integer ≥ 1, got 0"):
        SimBackend(checkpoint=0)
    with pytest.raises(ArgumentTypeError, match=r"checkpoint .* must be an integer, got True"):
        SimBackend(checkpoint=True)
    with pytest.raises(ParameterError, match="mode='sequence'"):
        SimBackend(checkpoint=10, mode="step")
    with pytest.raises(ParameterError, match="record must be a list"):
        SimBackend(record="out")
    with pytest.raises(ParameterError, match=r"record\['out'\]: no field \['w'\]"):
        SimBackend(record={"out": ["v", "w"]})
    with pytest.raises(ParameterError, match="map population names to lists of fields"):
        SimBackend(record={"out": "v"})
    with pytest.raises(ParameterError, match="map population names to lists of fields"):
        SimBackend(record={"out": None})
    with pytest.raises(ParameterError, match=r"record\['out'\]: a CubaLI has no \['spikes'\]"):
        dyadic_net(False)(torch.zeros(5, 1, 40), backend=SimBackend(record={"out": ["spikes"]}))
    with pytest.raises(ParameterError, match=r"record\['lif'\]: a LIF has no \['i'\]"):
        dyadic_net(False)(torch.zeros(5, 1, 40),
                          backend=SimBackend(record={"lif": ["i"], "out": ["v"]}))
    with pytest.raises(ParameterError, match=r"record\['out'\] is empty"):
        dyadic_net(False)(torch.zeros(5, 1, 40), backend=SimBackend(record={"out": []}))
    frozen = SimBackend(record={"out": ["v"]})
    assert hash(frozen) == hash(SimBackend(record={"out": ("v",)}))
    assert frozen == SimBackend(record={"out": ("v",)})
    with pytest.raises(TypeError):
        frozen.record["out"] = ("i",)  # read-only: validated once
    import copy
    import pickle

    assert copy.deepcopy(frozen) == frozen and pickle.loads(pickle.dumps(frozen)) == frozen
    with pytest.raises(ParameterError, match="must include the output population"):
        dyadic_net(False)(torch.zeros(5, 1, 40), backend=SimBackend(record={"hidden": ["v"]}))
    with pytest.raises(ParameterError, match=r"record: no population \['nope'\]"):
        dyadic_net(False)(torch.zeros(5, 1, 40), backend=SimBackend(record=("nope",)))


def test_without_a_compiler_the_torch_engine_runs(monkeypatch):
    """No C compiler: the library reports why, and populations still run (torch engine)."""
    monkeypatch.setattr(native, "_compiler", lambda: None)
    monkeypatch.setattr(native, "_LIBRARY", native.LazyLibrary(
        "native", [native._SOURCE], native._declare, "using the torch engine"))
    assert native.library() is None
    assert "no C compiler" in native.unavailable_reason()
    pop = make_population(CubaLIF, 8)
    x = 0.8 * torch.randn(20, 2, 8) + 1.0
    ref = pop.simulate(x, pop.parameter_record(), kernel="reference")[0]
    fused = pop.simulate(x, pop.parameter_record(), kernel="fused")[0]
    assert torch.equal(ref.spikes, fused.spikes)
    torch.testing.assert_close(fused.v, ref.v)


def test_bad_loop_inputs_give_specific_errors():
    from spikeloop.kernels.fused import LoopConfig, neuron_loop

    cfg = LoopConfig(spiking=True, surrogate=SuperSpike())
    coefs = dict.fromkeys(("beta", "rest", "alpha", "gain", "thr", "vreset"), 0.5)
    z = torch.zeros(2, 3)
    with pytest.raises(ShapeError, match=r"state v must be \[2, 3\]"):
        neuron_loop(cfg, torch.zeros(4, 2, 3), coefs, (torch.zeros(1, 3), z, z, None))
    with pytest.raises(ShapeError, match="T ≥ 1"):
        neuron_loop(cfg, torch.zeros(0, 2, 3), coefs, (z, z, z, None))
    with pytest.raises(ParameterError, match=r"needs cfg\.surrogate"):
        neuron_loop(LoopConfig(spiking=True), torch.zeros(4, 2, 3), coefs, (z, z, z, None))
    with pytest.raises(ParameterError, match="only spiking"):
        neuron_loop(LoopConfig(spiking=False), torch.zeros(4, 2, 3), coefs, (z, z, z, None),
                    wrec=torch.zeros(3, 3))
    with pytest.raises(ShapeError, match="observed v"):
        neuron_loop(cfg, torch.zeros(4, 2, 3), coefs, (z, z, z, None),
                    observed=(torch.zeros(3, 2, 3), None))
    # a float64 state with float32 input is converted, not reinterpreted
    v0 = torch.full((2, 3), 0.25, dtype=torch.float64)
    v = neuron_loop(cfg, torch.zeros(4, 2, 3), coefs, (v0, z, z, None))[0]
    torch.testing.assert_close(v[0], torch.full((2, 3), 0.5 * 0.25 + 0.5))
    with pytest.raises(ParameterError, match="does not spike"):
        LI(4, recurrent=True)
    with pytest.raises(RuntimeError):  # F.linear's own shape error, not an out-of-bounds read
        event_linear(torch.zeros(5, 4), torch.zeros(3, 6))
    with pytest.raises(ParameterError, match="must include the output population 'out'"):
        dyadic_net(False)(torch.zeros(5, 1, 40), backend=SimBackend(record=("hidden",)))


def test_native_kernels_build_where_a_compiler_exists():
    """A broken build must not hide behind the torch fallback (the native tests would skip)."""
    if native._compiler() is None:
        pytest.skip("no C compiler on this machine")
    assert native.library() is not None, native.unavailable_reason()


# ----------------------------------------------------------------------------- recording, runtime
@pytest.mark.parametrize("kernel", ["fused", "reference"])
def test_record_current_false_changes_nothing_but_i(engine, kernel):
    pop = make_population(CubaLIF, 12, t_refrac=2e-3)
    torch.manual_seed(3)
    x = 0.8 * torch.randn(30, 3, 12) + 1.0
    full = run_and_grads(pop, x, kernel)
    pop.zero_grad()
    xs = x.clone().requires_grad_(True)
    obs, st = pop.simulate(xs, pop.parameter_record(), kernel=kernel, record_current=False)
    assert obs.i is None and full[0].i is not None
    assert torch.equal(obs.spikes, full[0].spikes)
    torch.testing.assert_close(obs.v, full[0].v, rtol=0, atol=0)
    for a, b in zip(st.neuron, full[1].neuron, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # gradients of a loss that does not read i are the same with and without recording it
    grads = []
    for record in (True, False):
        pop.zero_grad()
        xs = x.clone().requires_grad_(True)
        o, s = pop.simulate(xs, pop.parameter_record(), kernel=kernel, record_current=record)
        (o.v.square().sum() + o.spikes.sum() + s.neuron.v.sum()).backward()
        grads.append([xs.grad, *(q.grad for q in pop.parameters())])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_gradient_reaching_an_unrecorded_current_is_ignored(engine):
    from spikeloop.kernels import LoopConfig, neuron_loop

    x = (0.8 * torch.randn(12, 2, 5) + 1.0).requires_grad_(True)
    z = torch.zeros(2, 5)
    cfg = LoopConfig(spiking=True, surrogate=SuperSpike(10.0))
    coef = dict(beta=0.9, rest=0.0, alpha=0.8, gain=0.3, thr=1.0, vreset=0.0)
    res = neuron_loop(cfg, x, coef, (z, z, z, None), record_current=False)
    assert res[2].numel() == 0
    (res[0].sum() + res[2].sum()).backward()  # the empty i gets an (empty) gradient
    assert torch.isfinite(x.grad).all()


def test_a_full_replay_reports_no_synaptic_current(engine):
    """A device observes membrane and spikes; the replay does not invent its current."""
    pop = make_population(CubaLIF, 8)
    x = 0.8 * torch.randn(20, 2, 8) + 1.0
    with torch.no_grad():
        dev, _ = pop.simulate(x, pop.parameter_record())
    for kernel in ("fused", "reference"):
        both, _ = pop.simulate(x, pop.parameter_record(), observed=dev, kernel=kernel)
        only_v, _ = pop.simulate(x, pop.parameter_record(), kernel=kernel,
                                 observed=Observables(v=dev.v))
        assert both.i is None and only_v.i is not None
        assert torch.equal(both.v, dev.v) and torch.equal(both.spikes, dev.spikes)
        # the replay's outputs are its own tensors: changing them leaves the observation alone
        with torch.no_grad():
            before = dev.v.clone()
            both.v.zero_()
        assert torch.equal(dev.v, before)


def test_coefficient_cache_survives_inference_mode_then_training():
    pop = make_population(CubaLIF, 6)
    for p in pop.parameters():
        p.requires_grad_(False)
    x = 0.8 * torch.randn(10, 2, 6) + 1.0
    with torch.inference_mode():
        pop.simulate(x, pop.parameter_record())
    for kernel in ("auto", "reference"):
        xs = x.clone().requires_grad_(True)
        obs, _ = pop.simulate(xs, pop.parameter_record(), kernel=kernel)
        obs.v.sum().backward()  # no "inference tensors cannot be saved for backward"
        assert xs.grad is not None


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
def test_recurrent_loop_lists_its_spikes_for_its_weight_gradient_and_their_reader(monkeypatch):
    """With a gradient, a recurrent loop keeps the list of its spikes that its recurrent product
    finds anyway; the projection reading the spikes and the loop's weight gradient take it: no
    pass over the spikes (the input is compressed, and the initial state for the first step's
    term), the same gradients to the bit as with the projection compressing them itself."""
    from spikeloop.kernels import fused

    x = (torch.rand(40, 4, 6) < 0.3).float()
    grads, made = [], []
    for listed in (True, False):
        net = Network({"input": Input(6), "fc1": Linear(6, 32),
                       "hidden": CubaLIF(32, recurrent=True), "fc2": Linear(32, 3),
                       "out": CubaLI(3)})
        torch.manual_seed(3)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn_like(p))
        if not listed:
            monkeypatch.setattr(fused, "_spike_slot", lambda t: None)
        real = fused.Compressed.__init__
        count = [0]

        def counting(self, t, *rest, real=real, count=count):
            count[0] += 1
            real(self, t, *rest)

        monkeypatch.setattr(fused.Compressed, "__init__", counting)
        out = net(x)
        assert out["hidden"].spikes.sum() > 0
        out.output.v.square().sum().backward()
        grads.append([p.grad.clone() for p in net.parameters()])
        made.append(count[0])
        monkeypatch.undo()
    assert made == [2, 3]
    for a, b in zip(*grads, strict=True):
        assert torch.equal(a, b)


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
@pytest.mark.parametrize(("steps", "batch"), [(1, 1), (7, 5), (40, 4)])
def test_recurrent_loops_spike_list_is_the_compression_of_its_spikes(steps, batch):
    """The list a recurrent loop keeps (rows of every step, each thread's share of the batch,
    the last step's rows listed at the end) has the CSR arrays of a compression of its spikes,
    observed non-binary spikes included, on one thread and on two; without a gradient there is
    none; a projection reading the spikes gives the floats and gradients of one reading a copy,
    and after the spikes are changed in place it reads them, not the stale list (every input
    density taken by the event path: max_density = 1)."""
    from spikeloop.kernels import Compressed, fused
    from spikeloop.kernels.fused import LoopConfig, neuron_loop

    n = 9
    g = torch.Generator().manual_seed(steps * 10 + batch)
    x = 1.5 * torch.rand(steps, batch, n, generator=g)
    wrec = (0.5 * torch.randn(n, n, generator=g)).requires_grad_(True)
    w = torch.randn(3, n, generator=g, requires_grad=True)
    coef = {"beta": 0.9, "rest": 0.0, "alpha": 0.8, "gain": 1.0, "thr": 1.0, "vreset": 0.0}
    state = tuple(torch.zeros(batch, n) for _ in range(4))
    cfg = LoopConfig(spiking=True, surrogate=SuperSpike(10.0))
    seen = (torch.rand(steps, batch, n, generator=g) < 0.3) * 0.5
    for _threads in thread_counts():
        for observed in ((None, None), (None, seen)):
            z = neuron_loop(cfg, x, coef, state, wrec, observed)[1]
            listed = getattr(z, fused._SPIKE_SLOT)[0]
            plain = Compressed(z.detach().reshape(-1, n).contiguous())
            for name in ("row_ptr", "col", "val"):
                assert torch.equal(getattr(listed, name), getattr(plain, name)), name
            y = event_linear(z, w, max_density=1.0)  # from the list
            y_copy = event_linear(z.detach().clone().requires_grad_(True), w,
                                  max_density=1.0)
            assert torch.equal(y, y_copy)
            (gw,) = torch.autograd.grad(y.square().sum(), w)
            (gw_copy,) = torch.autograd.grad(y_copy.square().sum(), w)
            assert torch.equal(gw, gw_copy)
        with torch.no_grad():
            z = neuron_loop(cfg, x, coef, state, wrec)[1]
            assert getattr(z, fused._SPIKE_SLOT) == []
        z = neuron_loop(cfg, x, coef, state, wrec)[1]
        with torch.no_grad():
            z.mul_(2.0)  # (after the list was made)
        fresh = event_linear(z.detach().clone(), w, max_density=1.0)
        assert torch.equal(event_linear(z, w, max_density=1.0), fresh)


def test_parameters_changed_in_place_reach_the_fused_loop_between_runs():
    """The fused loop keeps its expanded coefficients between runs only while the parameters
    hold the same values: a threshold or time constant changed in place (as an optimiser or
    ``load_state_dict`` does) gives the run of a population built with the new values."""
    x = 0.8 * torch.randn(30, 2, 6) + 1.0
    pop = make_population(CubaLIF, 6)
    for p in pop.parameters():
        p.requires_grad_(False)
    runs = [pop.simulate(x, pop.parameter_record())[0] for _ in range(3)]  # kept from run 2
    assert torch.equal(runs[0].v, runs[2].v) and runs[0].spikes.sum() > 0
    for name, value in (("v_threshold", 0.7), ("tau_mem", 0.05)):
        with torch.no_grad():
            getattr(pop, name).fill_(value)
        changed, _ = pop.simulate(x, pop.parameter_record())
        fresh = make_population(CubaLIF, 6)
        fresh.load_state_dict(pop.state_dict())
        want, _ = fresh.simulate(x, fresh.parameter_record())
        assert not torch.equal(changed.v, runs[0].v)
        assert torch.equal(changed.v, want.v) and torch.equal(changed.spikes, want.spikes)


@pytest.mark.parametrize("native_engine", ["1", "0"])
def test_allocator_tuning_follows_the_first_cpu_loop_and_can_be_turned_off(native_engine):
    import platform
    import subprocess
    import sys

    code = ("import spikeloop._runtime as r, spikeloop, torch; before = r._applied; "
            "from spikeloop.kernels import native; native.library(); loaded = r._applied; "
            "from spikeloop.nn import LIF; LIF(3)(torch.zeros(4, 2, 3)); "
            "print(before, loaded, r._applied)")
    results = {}
    for value in ("1", "0"):
        env = {**__import__("os").environ, "SPIKELOOP_MALLOC": value,
               "SPIKELOOP_NATIVE": native_engine}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
        results[value] = out.stdout.split()
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    # importing spikeloop, even loading the kernels, leaves the allocator alone; the first
    # time loop on the CPU tunes it, with the native kernels or the torch engine
    assert results["1"] == ["None", "None", str(glibc)]
    assert results["0"][2] == "False"


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
def test_compression_of_sparse_and_dense_rows_equals_dense_product():
    """Rows with none, few (set-bit path) and many (packed path) events in one matrix."""
    torch.manual_seed(21)
    x = torch.zeros(8, 1000)
    for row, count in enumerate((0, 1, 3, 16, 17, 40, 120, 0)):
        x[row, torch.randperm(1000)[:count]] = torch.randn(count)
    w = torch.randn(33, 1000)
    y = event_linear(x, w, max_density=1.0)
    torch.testing.assert_close(y, x @ w.T, rtol=1e-5, atol=1e-5)
    from spikeloop.kernels import Compressed

    c = Compressed(x)
    assert c.nnz == int((x != 0).sum())
    assert torch.equal(c.active_rows(), torch.tensor([1, 2, 3, 4, 5, 6]))


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
@pytest.mark.parametrize("k", [7, 90, 700])
def test_compressed_rows_equal_the_nonzero_entries_on_any_thread_count(k):
    """The one-pass compression (each thread its rows into its own growing buffer, copied out in
    row order) gives the CSR arrays of torch's nonzero: empty, sparse (<= 16 events), dense and
    full rows, widths that are not a multiple of 8, -0.0 as zero; dense enough that the buffers
    outgrow their first guess (1/16 of the share)."""
    from spikeloop.kernels import Compressed

    g = torch.Generator().manual_seed(k)
    density = torch.rand(1500, 1, generator=g) ** 2  # rows from nearly empty to nearly full
    x = (torch.rand(1500, k, generator=g) < density).float() * torch.randn(1500, k, generator=g)
    x[10:20] = 0.0
    x[30] = 1.0
    x[40, ::2] = -0.0
    x[40, 1::4] = 2.5
    rows, cols = (x != 0).nonzero(as_tuple=True)  # row-major order
    ptr = torch.zeros(1501, dtype=torch.int64)
    ptr[1:] = torch.bincount(rows, minlength=1500).cumsum(0)
    w_t = torch.randn(k, 70, generator=g)
    for _n in thread_counts():
        c = Compressed(x)
        assert c.nnz == rows.numel()
        assert torch.equal(c.row_ptr, ptr)
        assert torch.equal(c.col, cols.to(torch.int32))
        assert torch.equal(c.val, x[rows, cols])
        # the same pass summing each row's events: the same lists, the product's floats
        both = Compressed(x, w_t, max_density=1.0)
        assert c.product is None and both.product is not None
        for name in ("row_ptr", "col", "val"):
            assert torch.equal(getattr(both, name), getattr(c, name)), name
        assert torch.equal(both.product, c.matmul(w_t))


NARROWER = (["-mno-avx512f"], ["-mno-avx"])  # the AVX2 and the plain-C paths


@pytest.fixture(scope="module")
def narrow_libs(tmp_path_factory):
    """native.c compiled again with AVX-512 (resp. AVX) switched off, one thread: the paths a
    CPU without those instruction sets takes."""
    import ctypes
    import subprocess

    tmp = tmp_path_factory.mktemp("narrow")
    cc = native._compiler()
    libs = []
    for k, extra in enumerate(NARROWER):
        out = tmp / f"narrow{k}.so"
        flags = [{"-O3": "-O1"}.get(f, f) for f in native._FLAGS if f != "-fopenmp"]  # one thread
        subprocess.run([cc, *flags, *extra, f"-I{native.INCLUDE_DIR}", str(native._SOURCE),
                        str(native._RUNTIME), "-o", str(out)], check=True)
        lib = ctypes.CDLL(str(out))
        native._declare(lib)
        libs.append((extra, lib))
    return libs


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
def test_compression_paths_of_narrower_instruction_sets_agree(narrow_libs):
    """The compression's AVX2 and plain-C paths (taken on CPUs without AVX-512, resp. AVX) give
    the same CSR arrays as the path this machine's build takes."""
    import ctypes

    from spikeloop.kernels import Compressed

    g = torch.Generator().manual_seed(3)
    x = (torch.rand(700, 45, generator=g) < torch.rand(700, 1, generator=g) ** 2).float()
    x[5] = 1.0
    x[9, ::3] = -0.0
    want = Compressed(x)
    for extra, lib in narrow_libs:
        row_ptr = torch.empty(701, dtype=torch.int64)
        nnz = ctypes.c_int64(0)
        handle = lib.sl_compress_begin(700, 45, x.data_ptr(), row_ptr.data_ptr(),
                                       ctypes.byref(nnz))
        col = torch.empty(nnz.value, dtype=torch.int32)
        val = torch.empty(nnz.value, dtype=torch.float32)
        lib.sl_compress_end(handle, col.data_ptr(), val.data_ptr())
        assert torch.equal(row_ptr, want.row_ptr), extra
        assert torch.equal(col, want.col), extra
        assert torch.equal(val, want.val), extra
        # the pass that also sums the product: the same lists and the same floats
        w_t = torch.randn(45, 70, generator=g)
        y, done = torch.full((700, 70), float("nan")), ctypes.c_int(0)
        handle = lib.sl_compress_product_begin(
            700, 45, x.data_ptr(), row_ptr.data_ptr(), ctypes.byref(nnz), 70, w_t.data_ptr(),
            y.data_ptr(), 1.0, ctypes.byref(done))
        lib.sl_compress_end(handle, col.data_ptr(), val.data_ptr())
        assert done.value == 1, extra
        assert torch.equal(row_ptr, want.row_ptr) and torch.equal(col, want.col), extra
        assert torch.equal(y, want.matmul(w_t)), extra


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
@pytest.mark.parametrize("m", [1, 7, 16, 20, 33, 48, 63, 64, 70, 100, 128, 150])
def test_event_matmul_equals_narrower_instruction_sets_and_the_dense_product(narrow_libs, m):
    """The event-driven product y = x W_tᵀ for output widths below, at and past the 64-wide
    blocks (the remainder in masked AVX-512 registers where the build has them): the same
    floats as the AVX2 and plain-C builds (every output summed in event order), close to the
    dense product; graded and unit events, empty rows, on one thread and on two."""
    from spikeloop.kernels import Compressed

    g = torch.Generator().manual_seed(m)
    x = (torch.rand(500, 90, generator=g) < 0.1).float()
    x[::7] *= torch.randn(x[::7].shape, generator=g)  # graded events in some rows
    x[5:9] = 0.0
    w_t = torch.randn(90, m, generator=g)
    c = Compressed(x)
    for n in thread_counts():
        got = c.matmul(w_t)
        torch.testing.assert_close(got, (x.double() @ w_t.double()).float(), rtol=1e-5,
                                   atol=1e-5)
        for extra, lib in narrow_libs:
            y = torch.full((500, m), float("nan"))
            lib.sl_event_matmul(500, m, c.row_ptr.data_ptr(), c.col.data_ptr(),
                                c.val.data_ptr(), w_t.data_ptr(), y.data_ptr())
            assert torch.equal(y, got), (extra, n)


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
@pytest.mark.parametrize("where", ["first", "last", "middle", "none"])
def test_event_products_with_clustered_events_cover_every_row(where):
    """Threads share the rows of an event matrix by events (and rows), not by rows alone: with
    every event in a tenth of the rows (at the start, the end or the middle, or no events at
    all) each output row is still written exactly once — the product's empty rows are zeros,
    not leftovers — and both products equal the dense ones on one thread and on two."""
    from spikeloop.kernels import Compressed

    g = torch.Generator().manual_seed(11)
    x = torch.zeros(2000, 60)
    rows = {"first": slice(0, 200), "last": slice(1800, 2000), "middle": slice(900, 1100),
            "none": slice(0, 0)}[where]
    x[rows] = (torch.rand(x[rows].shape, generator=g) < 0.3).float()
    x[rows][::5] *= 2.5  # graded events too
    w_t = torch.randn(60, 40, generator=g)
    dy = torch.randn(2000, 40, generator=g)
    lib = native.library()
    for _n in thread_counts():
        c = Compressed(x)
        y = torch.full((2000, 40), float("nan"))
        lib.sl_event_matmul(2000, 40, c.row_ptr.data_ptr(), c.col.data_ptr(),
                            c.val.data_ptr(), w_t.data_ptr(), y.data_ptr())
        torch.testing.assert_close(y, (x.double() @ w_t.double()).float(), rtol=1e-5,
                                   atol=1e-5)
        both = Compressed(x, w_t, max_density=1.0)  # chunks of rows as threads finish
        assert torch.equal(both.product, y) and torch.equal(both.col, c.col)
        got = c.weight_grad(dy)
        torch.testing.assert_close(got, (x.double().T @ dy.double()).float(), rtol=1e-5,
                                   atol=1e-4)
        assert torch.equal(c.weight_grad(dy), got)


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
@pytest.mark.parametrize("burst", [64, 2000])
def test_compression_drops_the_product_of_rows_far_denser_than_the_limit(burst):
    """The pass that lists the events and sums the product stops summing once a thread's rows
    are more than twice as dense as ``max_density`` (a dense burst of 64 rows, or all rows): the
    product is dropped, the event list is still whole, and ``event_linear`` (with gradient)
    gives the event product's floats where the input as a whole is sparse enough, the dense
    product where it is not."""
    from spikeloop.kernels import Compressed

    g = torch.Generator().manual_seed(burst)
    x = (torch.rand(2000, 90, generator=g) < 0.05).float()
    x[:burst] = torch.randn(burst, 90, generator=g)  # every entry an event
    w = torch.randn(40, 90, generator=g, requires_grad=True)
    plain = Compressed(x)
    for _n in thread_counts():
        both = Compressed(x, w.detach().t().contiguous(), max_density=0.15)
        assert both.product is None
        for name in ("row_ptr", "col", "val"):
            assert torch.equal(getattr(both, name), getattr(plain, name)), name
        y = event_linear(x, w, max_density=0.15)
        if burst < 2000:  # 7.8 % of the entries: the event product's floats
            assert torch.equal(y.detach(), plain.matmul(w.detach().t().contiguous()))
        else:
            torch.testing.assert_close(y, x @ w.T)
        y.sum().backward()
        torch.testing.assert_close(w.grad, torch.ones(2000, 40).T @ x, rtol=1e-5, atol=1e-4)
        w.grad = None


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
@pytest.mark.parametrize(("k", "m"), [(90, 20), (90, 64), (90, 70), (90, 256), (90, 300),
                                      (400, 40), (700, 512)])
def test_event_weight_grad_equals_the_dense_product_on_any_thread_count(k, m):
    """xᵀ·dy from the row-wise events: graded and unit events, empty rows, narrow and wide
    outputs; a small result (k·m ≤ 8192) takes each event's dy row directly, a larger one goes
    by blocks of rows sorted by input (several blocks here; 256-column register sums, single
    16-column ones and scalar tail columns: m = 300, 40, 512); on one thread and on two (each
    its own range of rows, added in thread order: the same floats on every run)."""
    from spikeloop.kernels import Compressed

    g = torch.Generator().manual_seed(m)
    x = (torch.rand(3000, k, generator=g) < 0.1).float()  # enough events to share
    x[::7] *= torch.randn(x[::7].shape, generator=g)  # graded events in some rows
    x[5:9] = 0.0
    dy = torch.randn(3000, m, generator=g)
    want = (x.double().T @ dy.double()).float()
    for _n in thread_counts():
        got = Compressed(x).weight_grad(dy)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
        assert torch.equal(Compressed(x).weight_grad(dy), got)  # deterministic
        assert torch.equal(event_weight_grad(x, dy), got)  # the public entry point
        none = Compressed(torch.zeros(300, k)).weight_grad(dy[:300])
        assert torch.equal(none, torch.zeros(k, m))  # no events: zeros, not leftovers


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
@pytest.mark.parametrize("m", [1, 7, 16, 20, 33, 64])
def test_narrow_event_weight_grad_equals_narrower_instruction_sets(narrow_libs, m):
    """A narrow weight gradient (a readout's: dy rows in masked AVX-512 registers where the
    build has them) gives the same floats as the AVX2 and plain-C builds: each entry summed in
    event order, graded and unit events."""
    from spikeloop.kernels import Compressed

    g = torch.Generator().manual_seed(m)
    x = (torch.rand(600, 50, generator=g) < 0.2).float()
    x[::5] *= torch.randn(x[::5].shape, generator=g)
    dy = torch.randn(600, m, generator=g)
    c = Compressed(x)
    for _n in thread_counts():
        got = c.weight_grad(dy)
        for extra, lib in narrow_libs:
            out = torch.full((50, m), float("nan"))
            assert lib.sl_event_weight_grad_rows(600, 50, m, c.row_ptr.data_ptr(),
                                                 c.col.data_ptr(), c.val.data_ptr(),
                                                 dy.data_ptr(), out.data_ptr()) == 0
            assert torch.equal(out, got), (extra, m)


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
@pytest.mark.parametrize("d", [0, 1, 4])
def test_per_synapse_delay_backward_equals_narrower_instruction_sets(narrow_libs, d):
    """The per-synapse delays' backward pass (each batch row's events taken input by input,
    each input's sums over them in 512-bit registers of eight tap pairs where the build has
    them) gives the same floats as the AVX2 and plain-C builds on one thread: every sum in
    event order, added once per row; 70 outputs (a 64-wide block, a tail of six), graded and
    unit events, several events per input and row, D = 0 (one tap) and D >= 1."""
    from spikeloop.kernels import Compressed

    g = torch.Generator().manual_seed(90 + d)
    t, b, k, m = 30, 3, 11, 70
    length, slots = t + d, t + 2 * d + 2
    line = (torch.rand(length * b, k, generator=g) < 0.3).float()
    line[::4] *= torch.rand(line[::4].shape, generator=g) + 0.5
    c = Compressed(line)
    lo = torch.randint(0, max(d, 1), (k, m), generator=g, dtype=torch.int32)
    off_t = (lo + torch.arange(m, dtype=torch.int32) * slots).contiguous()
    f_t = torch.rand(k, m, generator=g) if d else torch.zeros(k, m)
    w_t = torch.randn(k, m, generator=g)
    dy = torch.randn(t * b, m, generator=g)

    def run(lib):
        dw, df = torch.full((k, m), float("nan")), torch.full((k, m), float("nan"))
        assert lib.sl_delay_synapse_backward(
            length, b, t, d, k, m, c.row_ptr.data_ptr(), c.col.data_ptr(), c.val.data_ptr(),
            off_t.data_ptr(), f_t.data_ptr(), w_t.data_ptr(), dy.data_ptr(), dw.data_ptr(),
            df.data_ptr()) == 0
        return dw, df

    for _n in thread_counts((1,)):
        dw, df = run(native.library())
    for extra, lib in narrow_libs:
        got = run(lib)
        assert torch.equal(got[0], dw) and torch.equal(got[1], df), extra
    # against the sums written out: A_lo, A_hi per synapse over the events
    a_lo, a_hi = torch.zeros(k, m, dtype=torch.float64), torch.zeros(k, m, dtype=torch.float64)
    pad = torch.zeros(b, m, slots, dtype=torch.float64)
    pad[:, :, d:d + t] = dy.double().view(t, b, m).permute(1, 2, 0)
    for r in range(length * b):
        u, row = divmod(r, b)
        for p in range(int(c.row_ptr[r]), int(c.row_ptr[r + 1])):
            i, v = int(c.col[p]), float(c.val[p])
            at = u + lo[i].long()
            a_lo[i] += v * pad[row, torch.arange(m), at]
            if d:
                a_hi[i] += v * pad[row, torch.arange(m), at + 1]
    f64, w64 = f_t.double(), w_t.double()
    torch.testing.assert_close(dw.double(), (1 - f64) * a_lo + f64 * a_hi, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(df.double(), (a_hi - a_lo) * w64, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (16, 16), (17, 33), (31, 16), (16, 31),
                                   (20, 256), (256, 700), (700, 256), (257, 300)])
def test_native_transpose_equals_torch_on_every_path(narrow_libs, shape):
    """``transposed(w)`` equals ``w.t().contiguous()`` bit for bit: full 16 x 16 register tiles,
    partial tiles at the right and bottom edges, matrices below and above the size at which
    threads start (64 K entries), on one thread and on two, and in the AVX2 and plain-C builds
    (element-wise tiles); a non-contiguous or float64 matrix, or one autograd tracks, goes to
    torch (the same values)."""
    from spikeloop.kernels.fused import transposed

    g = torch.Generator().manual_seed(shape[0] * 1000 + shape[1])
    w = torch.randn(shape, generator=g)
    want = w.t().contiguous()
    for _n in thread_counts():
        got = transposed(w)
        assert got.is_contiguous() and torch.equal(got, want)
    for extra, lib in narrow_libs:
        out = torch.full(want.shape, float("nan"))
        lib.sl_transpose(shape[0], shape[1], w.data_ptr(), out.data_ptr())
        assert torch.equal(out, want), extra
    assert torch.equal(transposed(w.t()), w)  # non-contiguous input
    assert torch.equal(transposed(w.double()), want.double())
    tracked = transposed(w.clone().requires_grad_())  # autograd tracks it: torch's copy
    assert tracked.grad_fn is not None and torch.equal(tracked, want)


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
def test_event_projection_gradients_land_in_the_weights_layout():
    """The event paths hand autograd their weight gradients in the weight's own (row-major)
    layout — input projection and recurrent weights — so autograd stores them as they are
    instead of copying a transposed view into that layout (what a hook sees is what the
    kernel returned); the values equal the dense reference."""
    g = torch.Generator().manual_seed(4)
    x = (torch.rand(20, 8, 70, generator=g) < 0.1).float()
    w = (torch.randn(48, 70, generator=g) * 0.3).requires_grad_()
    seen = []
    w.register_hook(seen.append)
    y = event_linear(x, w)
    dy = torch.randn(y.shape, generator=g)
    (y * dy).sum().backward()
    assert seen[0].stride() == w.stride()
    torch.testing.assert_close(w.grad, dy.reshape(-1, 48).T @ x.reshape(-1, 70))

    net = Network({"input": Input(70), "fc": Linear(70, 48),
                   "hidden": CubaLIF(48, recurrent=True, dt=1e-3, tau_mem=5e-3,
                                     tau_syn=2e-3)}, backend=SimBackend())
    with torch.no_grad():
        net.layers.hidden.recurrent.weight.normal_(0.0, 0.3, generator=g)
    wrec = net.layers.hidden.recurrent.weight
    seen = []
    wrec.register_hook(seen.append)
    xr = (torch.rand(30, 4, 70, generator=g) < 0.3).float() * 2
    net(xr)["hidden"].v.sum().backward()
    assert seen[0].stride() == wrec.stride() and float(seen[0].abs().sum()) > 0


@pytest.mark.skipif(not NATIVE, reason="native kernels unavailable")
def test_event_kernels_take_a_slice_of_a_larger_event_list():
    """``Compressed.from_csr`` on a slice of a larger matrix's ``row_ptr`` (offsets not
    starting at 0, as the per-axon delays' hi taps use): the product and the weight gradient
    of those rows equal the rows compressed on their own bit for bit, on one thread and on two
    (the threads split the rows by events counted from the slice's first offset, as they split
    the rows on their own)."""
    from spikeloop.kernels import Compressed

    g = torch.Generator().manual_seed(7)
    x = (torch.rand(3000, 90, generator=g) < 0.1).float()
    x[::5] *= torch.randn(x[::5].shape, generator=g)
    w_t = torch.randn(90, 300, generator=g)
    dy = torch.randn(2000, 300, generator=g)
    whole = Compressed(x)
    part = Compressed.from_csr(90, whole.row_ptr[1000:], whole.col, whole.val)
    alone = Compressed(x[1000:].contiguous())
    assert part.nnz == alone.nnz
    for _n in thread_counts():
        assert torch.equal(part.matmul(w_t), alone.matmul(w_t))
        assert torch.equal(part.weight_grad(dy), alone.weight_grad(dy))  # the same split

def check_ctypes_signatures(declare, source: str) -> set[str]:
    """Every function ``declare(lib)`` declares has as many ctypes argument types as its C
    definition in ``source`` has parameters (a missing one makes ctypes pass a pointer as a
    32-bit int); returns the declared names. Shared with the event engine's test."""
    import re

    class Fake:
        def __init__(self):
            self.functions = {}

        def __getattr__(self, name):
            return self.functions.setdefault(name, type("F", (), {})())

    lib = Fake()
    declare(lib)
    for name, fn in lib.functions.items():
        found = re.search(rf"\b[\w\s\*]*?\b{name}\s*\(([^)]*)\)\s*\{{", source)
        assert found, name
        params = [p for p in found.group(1).split(",") if p.strip()]
        assert len(fn.argtypes) == len(params), (name, len(fn.argtypes), len(params))
    return set(lib.functions)


def test_native_ctypes_signatures_match_the_c_functions():
    """native.py's declarations against native.c."""
    from pathlib import Path

    source = (Path(native.__file__).with_name("native.c")).read_text()
    assert {"sl_neuron_forward", "sl_neuron_backward"} <= check_ctypes_signatures(
        native._declare, source)
