"""The event-driven forward simulation of one population, and event lists."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from spikeloop.backends.event import _native
from spikeloop.backends.event.cuba import (
    _F,
    _INF,
    _adapt,
    _advance_clamped,
    _first_crossing,
    _Neuron,
)
from spikeloop.backends.event.readout import _Peak, _peak
from spikeloop.dynamics.neurons import decay
from spikeloop.errors import ParameterError
from spikeloop.kernels import native
from spikeloop.kernels.fused import Compressed


@dataclass
class _Run:
    """What the forward pass of one population keeps (all O(#spikes + #inputs))."""

    times: Tensor  # [B, N, K] spike times, +inf padded
    i_spike: Tensor  # [B, N, K] synaptic current just before each spike
    i_release: Tensor  # [B, N, K] synaptic current at the end of each refractory period
    snapshots: tuple[Tensor, ...] | None  # [S, B, N] t, v, i, rel (, a) after each iteration
    a_spike: Tensor | None = None  # [B, N, K] AHP current just before each spike (adaptive)


@dataclass
class _Outcome:
    """One population's simulation as the backend uses it."""

    run: _Run  # spike record (no snapshots)
    v_grid: Tensor | None  # [T, B, N] float64 membrane at the ends of the steps (k+1)·dt
    peak: _Peak | None  # where a readout's membrane is largest
    count: Tensor | None = None  # [B, N] spikes per neuron (native engine)
    order: Tensor | None = None  # [B, E] the spikes in time order (native engine, _next_input)
    table: tuple[Tensor, Tensor, Tensor, Tensor] | None = None  # the engine's _input_table


def _population(
    times: Tensor, src: Tensor, amp: Tensor, weight: Tensor, w_rec: Tensor | None,
    c: _Neuron, t_max: float, max_spikes: int, forced: Tensor | None = None,
    grid: tuple[float, int] | None = None, peak: bool = False,
) -> _Outcome:
    """Simulate one population (float64, no autograd) on the native engine where it covers the
    run (:func:`~spikeloop.backends.event._native.engine` decides), else on the torch engine
    :func:`_simulate`; ``grid = (dt, steps)`` also gives
    the membrane on the grid, ``peak`` the time of a readout's maximum
    (:func:`~spikeloop.backends.event.readout._peak`). A run the native engine refuses
    (more than ``max_spikes`` spikes) is re-run by the torch engine, which raises its error."""
    lib = _native.engine(times, weight, w_rec, forced=forced, neuron=c)
    if lib is not None:
        table = _input_table(times, src, amp, t_max)
        out = _native.simulate(lib, *table[:3], weight, w_rec, c, t_max, max_spikes, grid,
                               peak)
        if out is not None:
            spikes, i_spike, i_release, v_grid, where, count, order = out
            return _Outcome(_Run(spikes, i_spike, i_release, None), v_grid,
                            _Peak(*where) if where is not None else None, count, order, table)
    run = _simulate(times, src, amp, weight, w_rec, c, t_max, grid is not None or peak,
                    max_spikes, forced)
    v_grid = _grid_membrane(run.snapshots, *grid, c) if grid is not None else None
    where = _peak(run.snapshots, t_max, c) if peak else None
    return _Outcome(_Run(run.times, run.i_spike, run.i_release, None, run.a_spike), v_grid,
                    where)


def _grid_membrane(snap: tuple[Tensor, ...], dt: float, steps: int, c: _Neuron) -> Tensor:
    """Exact membrane ``[steps, B, N]`` at the ends of the steps ``(k+1)·dt`` from the
    snapshots ``[S, B, N]`` (``t, v, i, rel``, and the AHP current ``a`` of an adaptive
    population): the state of the last snapshot at or before each grid time, evolved to it."""
    st, *rest = (s.permute(1, 2, 0).contiguous() for s in snap)  # [B, N, S]
    batch, n, _ = st.shape
    grid = (torch.arange(1, steps + 1, dtype=_F) * dt).expand(batch, n, steps).contiguous()
    idx = (torch.searchsorted(st, grid, right=True) - 1).clamp(min=0)
    t0, v0, i0, r0, *a0 = (s.gather(2, idx) for s in (st, *rest))
    v, _, _ = _advance_clamped(v0, i0, t0, grid, r0, c.take((None, slice(None), None)),
                               a0[0] if a0 else None)
    return v.permute(2, 0, 1)


def _input_table(times: Tensor, src: Tensor, amp: Tensor, t_max: float):
    """Append the end of the window as a zero-amplitude event; events ≥ t_max are dropped."""
    b, e = times.shape
    early = times < t_max
    t = torch.cat([torch.where(early, times, torch.full_like(times, _INF)),
                   torch.full((b, 1), _INF, dtype=_F)], dim=1)
    a = torch.cat([torch.where(early, amp, torch.zeros_like(amp)),
                   torch.zeros(b, 1, dtype=_F)], dim=1)
    s = torch.cat([src, torch.zeros(b, 1, dtype=torch.long)], dim=1)
    if not e or bool((t[:, 1:e] >= t[:, : e - 1]).all()):
        # already sorted (the backend's event lists are): the p events before t_max come
        # first, then only +inf padding of amplitude 0, so the end marker takes place p and
        # what stood there (padding) moves to the end — a swap instead of a sort
        p = early.sum(1, keepdim=True)
        t.scatter_(1, p, t_max)
        s.scatter_(1, p, 0)
        order = torch.arange(e + 1).expand(b, e + 1).clone()
        order[:, e:] = p
        order.scatter_(1, p, e)
        return t, s, a, order
    t[:, e] = t_max
    order = torch.sort(t, dim=1, stable=True).indices
    return t.gather(1, order), s.gather(1, order), a.gather(1, order), order


def _simulate(
    times: Tensor, src: Tensor, amp: Tensor, weight: Tensor, w_rec: Tensor | None,
    c: _Neuron, t_max: float, snapshots: bool, max_spikes: int,
    forced: Tensor | None = None,
) -> _Run:
    """Event-driven simulation of one population (float64, no autograd).

    Without recurrence every neuron has its own clock and advances to its own next event
    (its next threshold crossing or the next input); with recurrence all neurons of a sample
    advance together to the sample's earliest event. ``forced`` ``[B, N, K]``: spike times
    observed elsewhere (a chip) replace the threshold crossings. An adaptive population
    (``c.adaptive``) also carries the AHP current ``a``: it decays throughout (refractory
    periods included) and jumps by ``b`` at each of the neuron's spikes.
    """
    t_in, s_in, a_in, _ = _input_table(times, src, amp, t_max)
    batch, n = times.shape[0], weight.shape[0]
    sync = w_rec is not None
    w_t = weight.t().contiguous()  # [C, N]
    t = torch.zeros(batch, n, dtype=_F)
    v = c.v_leak.expand(batch, n).clone()
    i = torch.zeros(batch, n, dtype=_F)
    a = torch.zeros(batch, n, dtype=_F) if c.adaptive else None
    rel = torch.full((batch, n), -_INF, dtype=_F)
    ptr = torch.zeros(batch, n, dtype=torch.long)
    done = torch.zeros(batch, n, dtype=torch.bool)
    count = torch.zeros(batch, n, dtype=torch.long)
    cap = 4
    out_t = torch.full((batch, n, cap), _INF, dtype=_F)
    out_i = torch.zeros(batch, n, cap, dtype=_F)
    out_rel = torch.zeros(batch, n, cap, dtype=_F)
    out_a = torch.zeros(batch, n, cap, dtype=_F) if a is not None else None
    snaps: list[tuple[Tensor, ...]] = []
    if snapshots:
        snaps.append(_snapshot(t, v, i, rel, a))
    rows = torch.arange(batch)[:, None].expand(batch, n)
    cols = torch.arange(n)[None, :].expand(batch, n)
    watch = forced is None and c.spiking  # runaway checks (free-running spiking neurons)
    input_ended = False  # some neuron took its last input in the previous iteration
    while not bool(done.all()):
        nxt = t_in.gather(1, ptr)  # next input (or the end of the window) per neuron
        if input_ended:  # check a neuron for runaway once its input ends
            _check_runaway(v, i, t, nxt, t_max, count, c, max_spikes, a)
            input_ended = False
        if c.spiking:
            start = torch.maximum(t, rel).clamp(max=t_max)
            free = (start < nxt) & ~done
            if forced is None:
                i_start = decay(c.tau_syn, start - t, "exact") * i
                cross = torch.full_like(t, _INF)
                if bool(free.any()):
                    m = free.nonzero(as_tuple=True)
                    a_start = _adapt(a, start - t, c)[m] if a is not None else None
                    s = _first_crossing(v[m], i_start[m], (nxt - start)[m], c.take(m[1]),
                                        a_start)
                    cross[m] = start[m] + s
            else:
                k = count.clamp(max=forced.shape[2] - 1).unsqueeze(2)
                cross = forced.gather(2, k).squeeze(2)
                # the device decides when its neurons spike (refractoriness included)
                cross = torch.where((count < forced.shape[2]) & ~done & (cross >= t), cross,
                                    torch.full_like(cross, _INF))
            spike = cross <= nxt
            if sync:  # the sample's earliest spike(s) go first
                first = cross.min(dim=1, keepdim=True).values
                spike = spike & (cross == first)
                any_spike = spike.any(dim=1, keepdim=True)
                target = torch.where(any_spike, first, nxt)
            else:
                any_spike = spike
                target = torch.where(spike, cross, nxt)
        else:
            spike = torch.zeros_like(done)
            any_spike = spike
            target = nxt
        target = torch.where(done, t, target)
        v_new, i_new, i_rel = _advance_clamped(v, i, t, target, rel, c, a)
        a_new = _adapt(a, target - t, c) if a is not None else None
        released = (rel > t) & (rel <= target) & (count > 0)
        if bool(released.any()):
            kk = (count - 1).clamp(min=0)
            out_rel[rows[released], cols[released], kk[released]] = i_rel[released]
        # spikes: record, reset, refractory, recurrent fan-out
        if bool(spike.any()):
            if int(count.max()) >= cap:
                if watch:
                    _check_runaway(v_new, i_new, target, nxt, t_max, count + spike.long(), c,
                                   max_spikes, a_new)
                if cap >= max_spikes:
                    raise ParameterError(
                        f"event backend: a neuron fired more than max_spikes = {max_spikes} "
                        "times in one window (runaway activity?); raise max_spikes or check "
                        "the weights")
                grow = min(cap, max_spikes - cap)
                out_t = torch.cat([out_t, torch.full((batch, n, grow), _INF, dtype=_F)], 2)
                out_i = torch.cat([out_i, torch.zeros(batch, n, grow, dtype=_F)], 2)
                out_rel = torch.cat([out_rel, torch.zeros(batch, n, grow, dtype=_F)], 2)
                if out_a is not None:
                    out_a = torch.cat([out_a, torch.zeros(batch, n, grow, dtype=_F)], 2)
                cap += grow
            b_idx, n_idx = spike.nonzero(as_tuple=True)
            k_idx = count[b_idx, n_idx]
            out_t[b_idx, n_idx, k_idx] = target[b_idx, n_idx]
            out_i[b_idx, n_idx, k_idx] = i_new[b_idx, n_idx]
            if a_new is not None:  # the AHP current jumps by b at the spike
                out_a[b_idx, n_idx, k_idx] = a_new[b_idx, n_idx]
                a_new = torch.where(spike, a_new + c.b, a_new)
            count = count + spike.long()
            v_new = torch.where(spike, c.v_reset.expand_as(v_new), v_new)
            if c.t_refrac > 0:
                rel = torch.where(spike, target + c.t_refrac, rel)
            if sync:
                i_new = i_new + spike.to(_F) @ w_rec.t()
        # inputs: neurons that reached their next input absorb it
        take = ~any_spike & ~done
        if bool(take.any()):
            src_at = s_in.gather(1, ptr)
            jump = a_in.gather(1, ptr) * w_t.gather(0, src_at)
            i_new = torch.where(take, i_new + jump, i_new)
            finished = take & (nxt >= t_max)
            ptr = torch.where(take & ~finished, ptr + 1, ptr)
            done = done | finished
            if watch:  # only the end of the window left: no input can stop a runaway now
                input_ended = bool((take & ~finished & (t_in.gather(1, ptr) >= t_max)).any())
        t, v, i, a = target, v_new, i_new, a_new
        if snapshots:
            snaps.append(_snapshot(t, v, i, rel, a))
    k = max(int(count.max()), 1) if count.numel() else 1
    snap = tuple(torch.stack(s) for s in zip(*snaps, strict=True)) if snapshots else None
    return _Run(out_t[:, :, :k], out_i[:, :, :k], out_rel[:, :, :k], snap,
                out_a[:, :, :k] if out_a is not None else None)


def _snapshot(t: Tensor, v: Tensor, i: Tensor, rel: Tensor,
              a: Tensor | None) -> tuple[Tensor, ...]:
    """The state after an iteration: ``(t, v, i, rel)``, plus ``a`` for an adaptive one."""
    state = (t, v, i, rel) if a is None else (t, v, i, rel, a)
    return tuple(x.clone() for x in state)


def _check_runaway(v: Tensor, i: Tensor, t: Tensor, nxt: Tensor, t_max: float, count: Tensor,
                   c: _Neuron, max_spikes: int, a: Tensor | None = None) -> None:
    r"""Raise at once if a neuron is bound to exceed ``max_spikes`` (instead of simulating its
    spikes one by one up to the limit: thousands of iterations for a huge input). Checked when
    a neuron's input ends and whenever the spike record grows (4, 8, 16 … spikes).

    For a neuron without refractoriness that gets no more input before the window ends
    (``D = t_max − t`` left), its membrane stays ``≤ ϑ`` between spikes, so
    :math:`\dot V ≥ (v_{leak} − ϑ + r I)/τ_{mem}` and over the rest of the window it rises by
    at least :math:`(r I τ_{syn} (1 − e^{−D/τ_{syn}}) − (ϑ − v_{leak}) D)/τ_{mem}`; each spike
    takes ``ϑ − v_reset`` of it, so it spikes at least
    :math:`n ≥ (V + \text{rise} − ϑ)/(ϑ − v_{reset})` more times (``V`` after its last reset).

    With the AHP current ``A`` (adaptive neurons), :math:`A(t') ≤ A e^{-(t'-t)/τ_{adapt}} +
    \max(b, 0)\,n` while those ``n`` spikes happen, so the rise loses at most
    :math:`r (A τ_{adapt}(1 − e^{−D/τ_{adapt}}) + \max(b,0)\,n D)/τ_{mem}` and
    :math:`n ≥ (V + \text{rise} − ϑ)/(ϑ − v_{reset} + r \max(b,0) D/τ_{mem})` (rise with the
    first of those terms).
    """
    if not c.spiking or c.t_refrac > 0:
        return
    quiet = nxt >= t_max  # only the end of the window is left in its input table
    if not bool(quiet.any()):
        return
    d = (t_max - t).clamp(min=0.0)
    charge = c.r * i * c.tau_syn * -torch.expm1(-d / c.tau_syn)
    per_spike = c.v_threshold - c.v_reset
    if a is not None:
        charge = charge - c.r * a * c.tau_adapt * -torch.expm1(-d / c.tau_adapt)
        per_spike = per_spike + c.r * c.b.clamp(min=0.0) * d / c.tau_mem
    rise = (charge - (c.v_threshold - c.v_leak) * d) / c.tau_mem
    more = (v + rise - c.v_threshold) / per_spike
    doomed = quiet & (count + more.floor().clamp(min=0) > max_spikes)
    if bool(doomed.any()):
        b, n = (int(k) for k in doomed.nonzero()[0])
        raise ParameterError(
            f"event backend: a neuron would fire more than max_spikes = {max_spikes} times in "
            f"one window (runaway activity: neuron {n} of batch entry {b} has fired "
            f"{int(count[b, n])} times and its synaptic current {float(i[b, n]):.3g} drives at "
            f"least {float(more[b, n]):.3g} more spikes); raise max_spikes or check the "
            "input's scale and the weights")


def _dense_events(x: Tensor, dt: float) -> tuple[Tensor, Tensor, Tensor]:
    """``[T, B, C]`` → sorted ``(times [B, E], channels [B, E], amplitudes [B, E])``: each
    sample's non-zeros in time order, then channel order; ``E`` the most of a sample (at least
    1), the rest padding (time ``+inf``, channel 0, amplitude 0)."""
    if native.usable(x) and x.dim() == 3:
        return _dense_events_native(x.detach().contiguous(), dt)
    return _dense_events_torch(x, dt)


def _dense_events_torch(x: Tensor, dt: float) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`_dense_events` in torch operations (any device and dtype)."""
    batch = x.shape[1]
    nz = x.detach().permute(1, 0, 2).reshape(batch, -1) != 0  # [B, T·C], time-major order
    per = nz.sum(1)
    e = max(int(per.max()) if batch else 0, 1)
    # the positions of the non-zeros, ascending per sample (0 where a row has fewer: masked)
    rows, pos = nz.nonzero(as_tuple=True)
    first = torch.cumsum(per, 0) - per
    order = torch.zeros(batch, e, dtype=torch.long)
    order[rows, torch.arange(len(rows)) - first[rows]] = pos
    flat = x.detach().permute(1, 0, 2).reshape(batch, -1)
    chan = x.shape[2]
    keep = torch.arange(e)[None, :] < per[:, None]
    times = torch.where(keep, (order // chan).to(_F) * dt, torch.full((batch, e), _INF,
                                                                      dtype=_F))
    src = torch.where(keep, order % chan, torch.zeros_like(order))
    amp = torch.where(keep, flat.gather(1, order).to(_F), torch.zeros(batch, e, dtype=_F))
    return times, src, amp


def _dense_events_native(x: Tensor, dt: float) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`_dense_events` from the rows ``(t, b)`` of ``x`` compressed by the native kernels
    (:class:`~spikeloop.kernels.fused.Compressed`, one pass over the dense input): a sample's
    rows, taken in ``t`` order, already list its events sorted."""
    steps, batch, chan = x.shape
    ev = Compressed(x.reshape(steps * batch, chan))
    per_row = (ev.row_ptr[1:] - ev.row_ptr[:-1]).view(steps, batch)
    per = per_row.sum(0)
    e = max(int(per.max()) if batch else 0, 1)
    times = torch.full((batch, e), _INF, dtype=_F)
    src = torch.zeros(batch, e, dtype=torch.long)
    amp = torch.zeros(batch, e, dtype=_F)
    if ev.nnz:
        # each event's row r = t·B + b, and its place in its sample's list: the events of the
        # sample's earlier steps, then its place within the row
        row = torch.repeat_interleave(torch.arange(steps * batch), per_row.reshape(-1))
        before = (per_row.cumsum(0) - per_row).reshape(-1)
        place = before[row] + torch.arange(ev.nnz) - ev.row_ptr[row]
        b = row % batch
        times[b, place] = (row // batch).to(_F) * dt
        src[b, place] = ev.col.long()
        amp[b, place] = ev.val.to(_F)
    return times, src, amp


def _next_input(times: Tensor, order: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Spike times ``[B, N, K]`` → sorted events ``(times, source neuron, amplitude 1)``;
    ``order`` ``[B, E]``: the order of the stable sort of each sample's ``[N·K]`` times, cut at
    the most spikes of a sample (the native engine gives it), else it is sorted here."""
    batch, n, k = times.shape
    flat = times.reshape(batch, n * k)
    if order is None:
        order = torch.sort(flat.detach(), dim=1, stable=True).indices
        e = max(int(torch.isfinite(flat).sum(1).max()) if batch else 0, 1)
        order = order[:, :e]
    t = flat.gather(1, order)
    amp = torch.isfinite(t).to(_F)
    return t, order // k, amp


def _arrivals(times: Tensor, src: Tensor, amp: Tensor, delay: Tensor,
              t_max: float) -> tuple[Tensor, Tensor, Tensor]:
    r"""Events ``(times, source, amplitude)`` ``[B, E]`` through per-axon delays ``delay``
    ``[C]`` (s): an event at :math:`t_e` on channel :math:`c_e` arrives at

    .. math::
        t^{arr}_e = t_e + d_{c_e}

    exactly (continuous time). The events are sorted by arrival (stable: ties keep their
    order, so all-zero delays leave the list as it was); an arrival at or after ``t_max`` is
    dropped (time ``+inf``, amplitude 0: padding, as the dense simulator drops a delayed input
    beyond the window). Differentiable in ``times`` and ``delay``: since
    :math:`∂t^{arr}_e/∂d_c = [c_e = c]`, autograd sums EventProp's arrival-time gradients per
    channel, :math:`dL/dd_c = \sum_{e:\,c_e = c} dL/dt^{arr}_e`.
    """
    arrive = times + delay.to(_F)[src]
    keep = arrive < t_max  # padding (+inf) is never kept
    arrive = torch.where(keep, arrive, torch.full_like(arrive, _INF))
    amp = torch.where(keep, amp, torch.zeros_like(amp))
    order = torch.sort(arrive.detach(), dim=1, stable=True).indices
    return arrive.gather(1, order), src.gather(1, order), amp.gather(1, order)
