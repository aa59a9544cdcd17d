/* The event backend's engine in C: the event-driven simulation of one CUBA LIF population
 * (forward.py `_simulate`, with the grid membrane of backend `_grid_membrane` and the readout
 * peak of readout.py `_peak` computed on the fly instead of from stored snapshots) and its
 * EventProp adjoint (adjoint.py `_adjoint`, with the weight gradients accumulated directly
 * instead of the [B, events, N] buffers). float64, one sample per OpenMP iteration; the
 * algorithm, the tie rules and the crossing search (cuba.py `_first_crossing`, `_extremum`) are
 * the torch code's, tested against it (tests/test_event_native.py).
 *
 * Between events (cuba.py): V(t+s) = v_leak + beta_s (V - v_leak) + r g_s I, I(t+s) = alpha_s I,
 * beta_s = e^{-s/tau_mem}, alpha_s = e^{-s/tau_syn},
 * g_s = (s/tau_mem) beta_s (e^u - 1)/u, u = s (1/tau_mem - 1/tau_syn)  (neurons.py current_gain).
 *
 * One shortcut the torch code does not take, which changes no result: V relaxes towards
 * v_leak + r I(t) and r I(t) lies between 0 and r i, so without input V never exceeds
 * max(v, v_leak + max(r i, 0)); a neuron whose bound is below threshold (by a margin far above
 * rounding) has no crossing in any interval and the crossing search is skipped (the same
 * bound skips a readout's interior extremum that cannot beat the largest value so far). */
#include "sl_native.h"

#define NEWTON_ITERATIONS 100

typedef struct {
    int64_t B, N, C, E;  /* samples, neurons, input channels, input-table length per sample */
    int64_t steps;       /* grid points (k+1) dt of the membrane output (0: none) */
    int64_t max_spikes;  /* per neuron and window; more is an error (-1) */
    int64_t sync;        /* recurrent: a sample's neurons advance together */
    int64_t spiking;
    double t_max, t_refrac, dt;
} EvDims;

typedef struct {
    const double *tm, *ts, *vl, *r, *th, *vr; /* [N] */
} Consts;

typedef struct {
    double tm, ts, s, beta, alpha, gain;
} Coef;

/* beta, alpha and the current gain over s for one neuron's time constants (cached: the
 * neurons of a population usually share them and advance over the same interval) */
INLINE const Coef *coef(Coef *c, double tm, double ts, double s) {
    if (s == c->s && tm == c->tm && ts == c->ts) return c;
    c->tm = tm;
    c->ts = ts;
    c->s = s;
    if (s == 0.0) {
        c->beta = 1.0;
        c->alpha = 1.0;
        c->gain = 0.0;
        return c;
    }
    const double beta = exp(-s / tm);
    const double u = s * (1.0 / tm - 1.0 / ts);
    const double ratio = fabs(u) < 1e-4 ? 1.0 + u / 2 + u * u / 6 : expm1(u) / u;
    c->beta = beta;
    c->alpha = exp(-s / ts);
    c->gain = s / tm * beta * ratio;
    return c;
}

INLINE void coef_reset(Coef *c) { *c = (Coef){NAN, NAN, NAN, 0.0, 0.0, 0.0}; }

INLINE double slope(double v, double i, double tm, double vl, double r) {
    return (vl - v + r * i) / tm;
}

/* free evolution of neuron n over s (cuba.py _advance) */
INLINE void advance(const Consts *k, int64_t n, double v, double i, double s, Coef *c,
                    double *v1, double *i1) {
    const Coef *e = coef(c, k->tm[n], k->ts[n], s);
    *v1 = k->vl[n] + e->beta * (v - k->vl[n]) + k->r[n] * e->gain * i;
    *i1 = e->alpha * i;
}

/* evolution from t0 to t1 with the membrane clamped until rel (cuba.py _advance_clamped) */
INLINE void advance_clamped(const Consts *k, int64_t n, double v, double i, double t0,
                            double t1, double rel, Coef *c, double *v1, double *i1,
                            double *i_mid) {
    double s_ref = rel - t0;
    s_ref = s_ref > 0.0 ? s_ref : 0.0;
    s_ref = s_ref < t1 - t0 ? s_ref : t1 - t0;
    const double im = (s_ref == 0.0 ? 1.0 : exp(-s_ref / k->ts[n])) * i;
    *i_mid = im;
    advance(k, n, v, im, (t1 - t0) - s_ref, c, v1, i1);
}

/* no threshold crossing possible from (v, i) without input (see the header) */
INLINE int cannot_reach(double v, double i, double vl, double r, double level) {
    const double ri = r * i;
    const double top = fmax(v, vl + (ri > 0.0 ? ri : 0.0));
    const double margin = 1e-9 * (fabs(level) + fabs(v) + fabs(vl) + fabs(ri));
    return top < level - margin;
}

/* no crossing within the horizon h from (v, i): besides the bound above, V stays above
 * low = min(v, v_leak + min(r i, 0)), so its slope is at most (v_leak + max(r i, 0) - low)/tau_mem
 * and V(s) <= v + s * that slope */
INLINE int cannot_reach_within(double v, double i, double vl, double r, double tm, double level,
                               double h) {
    const double ri = r * i;
    const double up = vl + (ri > 0.0 ? ri : 0.0), low = fmin(v, vl + (ri < 0.0 ? ri : 0.0));
    double top = fmax(v, up);
    if (h < INFINITY) top = fmin(top, v + h * ((up - low) / tm));
    const double margin = 1e-9 * (fabs(level) + fabs(v) + fabs(vl) + fabs(ri));
    return top < level - margin;
}

/* a time before which V cannot reach threshold from (v, i) at t0 (+inf if it cannot before
 * t1): V stays below max(v, v_leak + max(r i, 0)) and below v + s * slope bound (as in
 * cannot_reach_within), both with the margin of cannot_reach */
INLINE double crossing_bound(double v, double i, double vl, double r, double inv_tm, double th,
                             double t0, double t1) {
    const double ri = r * i;
    const double up = vl + (ri > 0.0 ? ri : 0.0), lo = vl + (ri < 0.0 ? ri : 0.0);
    const double low = v < lo ? v : lo, top = v > up ? v : up;
    const double av = v < 0.0 ? -v : v, avl = vl < 0.0 ? -vl : vl, ari = ri < 0.0 ? -ri : ri;
    const double ath = th < 0.0 ? -th : th;
    const double level = th - 1e-9 * (ath + av + avl + ari);
    const double s = (level - v) / ((up - low) * inv_tm);
    const double lb = t0 + (s > 0.0 ? s : 0.0); /* NaN (0/0) -> 0 */
    return (top >= level && lb <= t1) ? lb : INFINITY;
}

/* cuba.py _extremum: the stationary point s* after (v0, i0) and whether it lies in (0, len) */
static double extremum(const Consts *k, int64_t n, double v0, double i0, double length,
                       int *interior) {
    const double q = k->r[n] * i0;
    const double kappa = 1.0 / k->tm[n] - 1.0 / k->ts[n];
    const double y = k->ts[n] * (1.0 - (v0 - k->vl[n]) / (q == 0 ? 1.0 : q));
    const double z = kappa * y;
    double ratio;
    if (fabs(z) < 1e-8) {
        ratio = 1.0 - z / 2 + z * z / 3;
    } else {
        const double zc = z > -1.0 + 1e-300 ? z : -1.0 + 1e-300;
        ratio = log1p(zc) / z;
    }
    const double s_star = y * ratio;
    *interior = (q != 0) && (y > 0) && (1.0 + z > 0) && (s_star < length);
    return s_star;
}

/* cuba.py _first_crossing: first s in (0, length] with V(s) = threshold, else +inf */
static double first_crossing(const Consts *k, int64_t n, double v0, double i0, double length) {
    Coef c;
    coef_reset(&c);
    const double th = k->th[n];
    int interior;
    const double s_star = extremum(k, n, v0, i0, length, &interior);
    const double s1 = interior ? s_star : length;
    double v, i;
    advance(k, n, v0, i0, s1, &c, &v, &i);
    const double f1 = v - th;
    advance(k, n, v0, i0, length, &c, &v, &i);
    const double f_end = v - th;
    const int first = f1 >= 0;
    if (!(first || f_end >= 0)) return INFINITY;
    double lo = first ? 0.0 : s1, hi = first ? s1 : length;
    const double f_lo = first ? v0 - th : f1, f_hi = first ? f1 : f_end;
    const double den = f_hi - f_lo > 1e-300 ? f_hi - f_lo : 1e-300;
    double x = lo + (hi - lo) * (-f_lo / den);
    const double scale = fabs(hi) > 1e-12 ? fabs(hi) : 1e-12;
    for (int it = 0; it < NEWTON_ITERATIONS; ++it) {
        double vx, ix;
        advance(k, n, v0, i0, x, &c, &vx, &ix);
        const double f = vx - th;
        if (f < 0) lo = x;
        if (f >= 0) hi = x;
        const double sl = slope(vx, ix, k->tm[n], k->vl[n], k->r[n]);
        const double newton = x - f / (sl > 0 ? sl : 1.0);
        const int ok = (sl > 0) && (newton >= lo) && (newton <= hi);
        double x_new = ok ? newton : 0.5 * (lo + hi);
        if (f == 0) x_new = x;
        const int done = (fabs(f) <= 1e-13 * (fabs(th) + 1))
                         || (fabs(x_new - x) <= 1e-13 * scale + 1e-16)
                         || (hi - lo <= 1e-13 * scale);
        x = x_new;
        if (done) break;
    }
    return x;
}

/* ----------------------------------------------------------------------------- spike lists */
typedef struct {
    int64_t len, cap;
    int32_t *n, *k;
    double *t, *isp, *irel;
} SpikeList;

typedef struct {
    int64_t B, N;
    SpikeList *s;
} Spikes;

static int64_t push(SpikeList *L, int32_t n, int32_t k, double t, double isp) {
    if (L->len == L->cap) {
        const int64_t cap = L->cap ? 2 * L->cap : 256;
        int32_t *nn = realloc(L->n, cap * sizeof *nn);
        if (nn) L->n = nn;
        int32_t *kk = realloc(L->k, cap * sizeof *kk);
        if (kk) L->k = kk;
        double *tt = realloc(L->t, cap * sizeof *tt);
        if (tt) L->t = tt;
        double *ii = realloc(L->isp, cap * sizeof *ii);
        if (ii) L->isp = ii;
        double *rr = realloc(L->irel, cap * sizeof *rr);
        if (rr) L->irel = rr;
        if (!nn || !kk || !tt || !ii || !rr) return -1;
        L->cap = cap;
    }
    L->n[L->len] = n;
    L->k[L->len] = k;
    L->t[L->len] = t;
    L->isp[L->len] = isp;
    L->irel[L->len] = 0.0;
    return L->len++;
}

void sl_event_free(Spikes *h) {
    if (!h) return;
    for (int64_t b = 0; b < h->B; ++b) {
        SpikeList *L = &h->s[b];
        free(L->n);
        free(L->k);
        free(L->t);
        free(L->isp);
        free(L->irel);
    }
    free(h->s);
    free(h);
}

/* order of the spikes of one sample by (time, n K + k): the order of a stable sort of its
 * [N K] spike times (forward.py _next_input) */
static int64_t g_sort_k;
static const SpikeList *g_sort_list;
static int by_time(const void *a, const void *b) {
    const int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    const SpikeList *L = g_sort_list;
    if (L->t[i] != L->t[j]) return L->t[i] < L->t[j] ? -1 : 1;
    const int64_t fi = L->n[i] * g_sort_k + L->k[i], fj = L->n[j] * g_sort_k + L->k[j];
    return (fi > fj) - (fi < fj);
}

/* the spike record [B, N, K] (times +inf padded, currents 0 padded), the spike count of each
 * neuron [B, N] and the spikes of each sample in time order [B, E] as indices n K + k into its
 * [N K] times (then the first not-spike indices: +inf padding, as a stable sort puts them);
 * frees the handle */
void sl_event_collect(Spikes *h, int64_t K, int64_t E, double *times, double *i_spike,
                      double *i_release, int64_t *count, int64_t *order) {
    const int64_t B = h->B, N = h->N;
    for (int64_t j = 0; j < B * N * K; ++j) {
        times[j] = INFINITY;
        i_spike[j] = 0.0;
        i_release[j] = 0.0;
    }
    memset(count, 0, B * N * sizeof *count);
    int64_t *idx = malloc((E > 0 ? E : 1) * sizeof *idx);
    for (int64_t b = 0; b < B; ++b) {
        const SpikeList *L = &h->s[b];
        int sorted = 1;
        for (int64_t j = 0; j < L->len; ++j) {
            const int64_t at = (b * N + L->n[j]) * K + L->k[j];
            times[at] = L->t[j];
            i_spike[at] = L->isp[j];
            i_release[at] = L->irel[j];
            ++count[b * N + L->n[j]];
            idx[j] = j;
            if (j && (L->t[j] < L->t[j - 1]
                      || (L->t[j] == L->t[j - 1]
                          && L->n[j] * K + L->k[j] < L->n[j - 1] * K + L->k[j - 1])))
                sorted = 0;
        }
        if (!sorted) {
            g_sort_k = K;
            g_sort_list = L;
            qsort(idx, L->len, sizeof *idx, by_time);
        }
        int64_t *o = order + b * E, j = 0;
        for (; j < L->len; ++j) o[j] = L->n[idx[j]] * K + L->k[idx[j]];
        for (int64_t n = 0; n < N && j < E; ++n)
            for (int64_t k = count[b * N + n]; k < K && j < E; ++k) o[j++] = n * K + k;
    }
    free(idx);
    sl_event_free(h);
}

/* ----------------------------------------------------------------------------- forward */
typedef struct {
    const EvDims *d;
    const Consts *k;
    const double *t_in, *a_in, *w_t, *wr_t; /* table [E]; weight^T [C, N]; w_rec^T [N, N] */
    const int64_t *s_in;
    double *grid;                  /* [steps, B, N] or NULL */
    double *peak_t;                /* [B, N] time of the readout's maximum, or NULL */
    int64_t *peak_e;               /* [B, N] table event it follows (-1: none) */
    int64_t b;
    SpikeList *L;
} Sample;

/* grid points g in [t, before) of neuron n from its state (t, v, i, rel) */
INLINE void emit(const Sample *S, int64_t n, int64_t *gk, double t, double before, double v,
                 double i, double rel, Coef *c) {
    const EvDims *d = S->d;
    while (*gk < d->steps) {
        const double g = (double)(*gk + 1) * d->dt;
        if (!(g < before)) break;
        double v1, i1, im;
        advance_clamped(S->k, n, v, i, t, g, rel, c, &v1, &i1, &im);
        S->grid[(*gk * d->B + S->b) * d->N + n] = v1;
        ++*gk;
    }
}

typedef struct {
    double sv, sv_t, sv_i, star, star_t;  /* the largest state (time, current before its inputs)
                                            and the largest interior extremum */
    int64_t sv_e;
} Peak;

/* readout peak: the interval [t, target) from (v, i) offers its interior extremum */
INLINE void peak_interval(const Sample *S, int64_t n, Peak *p, double t, double target,
                          double v, double i, Coef *c) {
    const Consts *k = S->k;
    if (cannot_reach(v, i, k->vl[n], k->r[n], p->sv)) return; /* cannot beat the best value */
    int interior;
    const double s_star = extremum(k, n, v, i, target - t, &interior);
    double vs = v, ts = t, i1;
    if (interior) {
        advance(k, n, v, i, s_star, c, &vs, &i1);
        ts = t + s_star;
    }
    if (vs > p->star) {
        p->star = vs;
        p->star_t = ts;
    }
}

INLINE void peak_state(Peak *p, double v, double t, int64_t e, double i_before) {
    if (v > p->sv) {
        p->sv = v;
        p->sv_t = t;
        p->sv_e = e;
        p->sv_i = i_before;
    }
}

/* the next input time after the group of equal times starting at e (the torch engine takes
 * them one by one, the membrane advancing by zero between them: the same state) */
INLINE int64_t group_end(const Sample *S, int64_t e) {
    const double t0 = S->t_in[e];
    int64_t f = e + 1;
    while (f < S->d->E && S->t_in[f] == t0) ++f;
    return f;
}

/* feed-forward: every neuron runs on its own clock through the same input table */
static int run_async(const Sample *S, double *v, double *i, double *t, double *rel,
                     int64_t *cnt, int64_t *last, int64_t *gk, Peak *pk) {
    const EvDims *d = S->d;
    const Consts *k = S->k;
    const int64_t N = d->N;
    Coef c;
    coef_reset(&c);
    for (int64_t e = 0; e < d->E;) {
        const double nxt = S->t_in[e];
        const int64_t f = group_end(S, e);
        for (int64_t n = 0; n < N; ++n) {
            for (;;) {
                double cross = INFINITY;
                if (d->spiking) {
                    double start = fmax(t[n], rel[n]);
                    start = start < d->t_max ? start : d->t_max;
                    if (start < nxt) {
                        const double is =
                            (start - t[n] == 0.0 ? 1.0 : exp(-(start - t[n]) / k->ts[n])) * i[n];
                        if (!cannot_reach_within(v[n], is, k->vl[n], k->r[n], k->tm[n], k->th[n],
                                                 nxt - start))
                            cross = start + first_crossing(k, n, v[n], is, nxt - start);
                    }
                }
                const int spike = cross <= nxt;
                const double target = spike ? cross : nxt;
                if (S->grid) emit(S, n, &gk[n], t[n], target, v[n], i[n], rel[n], &c);
                if (pk) peak_interval(S, n, &pk[n], t[n], target, v[n], i[n], &c);
                double v1, i1, im;
                advance_clamped(k, n, v[n], i[n], t[n], target, rel[n], &c, &v1, &i1, &im);
                if (rel[n] > t[n] && rel[n] <= target && cnt[n] > 0) S->L->irel[last[n]] = im;
                t[n] = target;
                if (spike) {
                    if (cnt[n] >= d->max_spikes) return -1;
                    last[n] = push(S->L, (int32_t)n, (int32_t)cnt[n], target, i1);
                    if (last[n] < 0) return -2;
                    ++cnt[n];
                    v[n] = k->vr[n];
                    i[n] = i1;
                    if (d->t_refrac > 0) rel[n] = target + d->t_refrac;
                    continue;
                }
                v[n] = v1;
                const double i_before = i1;
                for (int64_t q = e; q < f; ++q) i1 = i1 + S->a_in[q] * S->w_t[S->s_in[q] * N + n];
                i[n] = i1;
                if (pk) peak_state(&pk[n], v[n], t[n], e, i_before); /* V: the same after each */
                break;
            }
        }
        if (nxt >= d->t_max) break;
        e = f;
    }
    return 0;
}

/* recurrent: a sample's neurons advance together to its earliest event. Only the earliest
 * crossings matter: a neuron whose bound excludes a crossing before the earliest one found so
 * far is not searched (the neuron with the smallest slope bound is searched first). */
static int run_sync(const Sample *S, double *v, double *i, double *rel, int64_t *cnt,
                    int64_t *last, double *cr, int64_t *idx, int64_t *hit, double *tp,
                    double *lb, int64_t *gk, int uniform) {
    const EvDims *d = S->d;
    const Consts *k = S->k;
    const int64_t N = d->N;
    Coef c;
    coef_reset(&c);
    double t = 0.0;
    for (int64_t e = 0; e < d->E;) {
        const double nxt = S->t_in[e];
        const int64_t f = group_end(S, e);
        for (;;) {
            double first = INFINITY;
            /* pass 1: a lower bound lb of each neuron's crossing (+inf: none before nxt) */
            if (uniform) { /* every start is t (no refractoriness): branch-free, vectorised */
                const double vl = k->vl[0], r = k->r[0], th = k->th[0], inv = 1.0 / k->tm[0];
                const double *restrict vv = v, *restrict ii = i;
                double *restrict out = lb;
                for (int64_t n = 0; n < N; ++n)
                    out[n] = crossing_bound(vv[n], ii[n], vl, r, inv, th, t, nxt);
            } else {
                for (int64_t n = 0; n < N; ++n) {
                    double start = fmax(t, rel[n]);
                    start = start < d->t_max ? start : d->t_max;
                    tp[n] = (start - t == 0.0 ? 1.0 : exp(-(start - t) / k->ts[n])) * i[n];
                    lb[n] = start < nxt ? crossing_bound(v[n], tp[n], k->vl[n], k->r[n], 1.0 / k->tm[n],
                                                         k->th[n], start, nxt)
                                        : INFINITY;
                }
            }
            /* pass 2: the exact searches that can still give the earliest crossing (a bound
             * above the earliest crossing found so far excludes it), the likeliest first */
            double m4[4] = {INFINITY, INFINITY, INFINITY, INFINITY};
            int64_t b4[4] = {0, 0, 0, 0}, n4 = 0;
            for (; n4 + 4 <= N; n4 += 4)
                for (int j = 0; j < 4; ++j) {
                    const int less = lb[n4 + j] < m4[j];
                    m4[j] = less ? lb[n4 + j] : m4[j];
                    b4[j] = less ? n4 + j : b4[j];
                }
            for (; n4 < N; ++n4)
                if (lb[n4] < m4[0]) {
                    m4[0] = lb[n4];
                    b4[0] = n4;
                }
            int64_t best = b4[0];
            double mn = m4[0];
            for (int j = 1; j < 4; ++j)
                if (m4[j] < mn) {
                    mn = m4[j];
                    best = b4[j];
                }
            int64_t m = 0; /* the searched neurons hit[0 .. m) and their crossings cr[] */
            if (mn < INFINITY) {
                /* the likeliest first; then the others whose bound admits a crossing before
                 * it (counted first: usually none) */
                int64_t nc = 0;
                {
                    double start = fmax(t, rel[best]);
                    start = start < d->t_max ? start : d->t_max;
                    const double is = uniform ? i[best] : tp[best];
                    const double x = start + first_crossing(k, best, v[best], is, nxt - start);
                    first = x;
                    hit[m] = best;
                    cr[m++] = x;
                    const double cut = first < nxt ? first : nxt;
                    int64_t more = 0;
                    for (int64_t n = 0; n < N; ++n) more += lb[n] <= cut;
                    if (more > 1)
                        for (int64_t n = 0; n < N; ++n) {
                            idx[nc] = n;
                            nc += (lb[n] <= cut) & (n != best);
                        }
                }
                for (int64_t q = 0; q < nc; ++q) {
                    const int64_t n = idx[q];
                    if (!(lb[n] <= first)) continue;
                    double start = fmax(t, rel[n]);
                    start = start < d->t_max ? start : d->t_max;
                    const double is = uniform ? i[n] : tp[n];
                    const double x = start + first_crossing(k, n, v[n], is, nxt - start);
                    if (x < first) first = x;
                    hit[m] = n;
                    cr[m++] = x;
                }
            }
            const int any = first <= nxt;
            const double target = any ? first : nxt;
            if (S->grid && *gk < d->steps && (double)(*gk + 1) * d->dt < target) {
                int64_t g = *gk;
                for (int64_t n = 0; n < N; ++n) {
                    g = *gk;
                    emit(S, n, &g, t, target, v[n], i[n], rel[n], &c);
                }
                *gk = g;
            }
            if (uniform && target > t) {
                const Coef *q = coef(&c, k->tm[0], k->ts[0], target - t);
                const double vl = k->vl[0], rg = k->r[0] * q->gain, be = q->beta, al = q->alpha;
                for (int64_t n = 0; n < N; ++n) {
                    v[n] = vl + be * (v[n] - vl) + rg * i[n];
                    i[n] = al * i[n];
                }
            } else if (target > t) {
                for (int64_t n = 0; n < N; ++n) {
                    double im;
                    advance_clamped(k, n, v[n], i[n], t, target, rel[n], &c, &v[n], &i[n], &im);
                    if (rel[n] > t && rel[n] <= target && cnt[n] > 0) S->L->irel[last[n]] = im;
                }
            }
            t = target;
            if (any) {
                int64_t ns = 0; /* the spiking neurons: idx[0 .. ns), ascending */
                for (int64_t q = 0; q < m; ++q)
                    if (cr[q] == first) idx[ns++] = hit[q];
                for (int64_t a = 1; a < ns; ++a) /* insertion sort: ties are rare */
                    for (int64_t b2 = a; b2 > 0 && idx[b2 - 1] > idx[b2]; --b2) {
                        const int64_t x = idx[b2];
                        idx[b2] = idx[b2 - 1];
                        idx[b2 - 1] = x;
                    }
                for (int64_t q = 0; q < ns; ++q) {
                    const int64_t n = idx[q];
                    if (cnt[n] >= d->max_spikes) return -1;
                    last[n] = push(S->L, (int32_t)n, (int32_t)cnt[n], target, i[n]);
                    if (last[n] < 0) return -2;
                    ++cnt[n];
                    v[n] = k->vr[n];
                    if (d->t_refrac > 0) rel[n] = target + d->t_refrac;
                }
                if (ns == 1) {
                    const double *w = S->wr_t + idx[0] * N;
                    for (int64_t j = 0; j < N; ++j) i[j] += w[j];
                } else {
                    for (int64_t j = 0; j < N; ++j) tp[j] = 0.0;
                    for (int64_t q = 0; q < ns; ++q) {
                        const double *w = S->wr_t + idx[q] * N;
                        for (int64_t j = 0; j < N; ++j) tp[j] += w[j];
                    }
                    for (int64_t j = 0; j < N; ++j) i[j] += tp[j];
                }
                continue;
            }
            for (int64_t q = e; q < f; ++q) {
                const double *w = S->w_t + S->s_in[q] * N;
                const double a = S->a_in[q];
                for (int64_t n = 0; n < N; ++n) i[n] += a * w[n];
            }
            break;
        }
        if (nxt >= d->t_max) break;
        e = f;
    }
    if (S->grid) {
        for (int64_t n = 0; n < N; ++n) {
            int64_t g = *gk;
            emit(S, n, &g, t, INFINITY, v[n], i[n], rel[n], &c);
        }
    }
    return 0;
}

/* The simulation of every sample; returns a handle to the spikes (sl_event_collect) and the
 * largest spike count of a neuron in *max_count, or NULL with *max_count = -1 when a neuron
 * fired more than max_spikes times (-2: out of memory). */
Spikes *sl_event_forward(const EvDims *d, const double *tm, const double *ts, const double *vl,
                         const double *r, const double *th, const double *vr,
                         const double *t_in, const int64_t *s_in, const double *a_in,
                         const double *w_t, const double *wr_t, double *grid, double *peak_t,
                         int64_t *peak_e, double *peak_v, double *peak_i, int64_t *max_count,
                         int64_t *max_total) {
    const Consts k = {tm, ts, vl, r, th, vr};
    const int64_t B = d->B, N = d->N;
    Spikes *h = calloc(1, sizeof *h);
    if (!h) {
        *max_count = -2;
        return NULL;
    }
    h->B = B;
    h->N = N;
    h->s = calloc(B > 0 ? B : 1, sizeof *h->s);
    if (!h->s) {
        free(h);
        *max_count = -2;
        return NULL;
    }
    int uniform = d->t_refrac == 0;  /* one set of constants: one advance for all neurons */
    for (int64_t n = 1; n < N; ++n)
        uniform = uniform && tm[n] == tm[0] && ts[n] == ts[0] && vl[n] == vl[0] && r[n] == r[0]
                  && th[n] == th[0];
    int64_t status = 0, most = 0, total = 0;
#pragma omp parallel reduction(min : status) reduction(max : most, total)
    {
        double *v = malloc(N * sizeof *v), *i = malloc(N * sizeof *i);
        double *t = malloc(N * sizeof *t), *rel = malloc(N * sizeof *rel);
        double *cross = malloc(N * sizeof *cross), *tp = malloc(N * sizeof *tp);
        double *lb = malloc(N * sizeof *lb);
        int64_t *cnt = malloc(N * sizeof *cnt), *last = malloc(N * sizeof *last);
        int64_t *idx = malloc(N * sizeof *idx), *hit = malloc(N * sizeof *hit);
        int64_t *gk = malloc(N * sizeof *gk);
        Peak *pk = peak_t ? malloc(N * sizeof *pk) : NULL;
        const int ok = v && i && t && rel && cross && tp && lb && cnt && last && idx && hit && gk
                       && (pk || !peak_t);
#pragma omp for schedule(dynamic, 1)
        for (int64_t b = 0; b < B; ++b) {
            if (!ok) {
                status = -2;
                continue;
            }
            const Sample S = {.d = d, .k = &k, .t_in = t_in + b * d->E, .a_in = a_in + b * d->E,
                              .w_t = w_t, .wr_t = wr_t, .s_in = s_in + b * d->E, .grid = grid,
                              .peak_t = peak_t, .peak_e = peak_e, .b = b, .L = &h->s[b]};
            for (int64_t n = 0; n < N; ++n) {
                v[n] = vl[n];
                i[n] = 0.0;
                t[n] = 0.0;
                rel[n] = -INFINITY;
                cnt[n] = 0;
                last[n] = -1;
                gk[n] = 0;
                if (pk) pk[n] = (Peak){vl[n], 0.0, 0.0, -INFINITY, 0.0, -1};
            }
            int rc = d->sync ? run_sync(&S, v, i, rel, cnt, last, cross, idx, hit, tp, lb, gk,
                                        uniform)
                             : run_async(&S, v, i, t, rel, cnt, last, gk, pk);
            if (rc < 0) {
                status = rc < status ? rc : status;
                continue;
            }
            Coef c0;
            coef_reset(&c0);
            for (int64_t n = 0; n < N; ++n) {
                if (!d->sync && S.grid) emit(&S, n, &gk[n], t[n], INFINITY, v[n], i[n], rel[n], &c0);
                if (cnt[n] > most) most = cnt[n];
                if (n == 0 && h->s[b].len > total) total = h->s[b].len;
                if (pk) {
                    /* torch argmax order: every state, then every extremum, then the end */
                    Coef c;
                    coef_reset(&c);
                    double v_end, i_end;
                    advance(&k, n, v[n], i[n], d->t_max - t[n], &c, &v_end, &i_end);
                    double best = pk[n].sv, bt = pk[n].sv_t;
                    int64_t be = pk[n].sv_e;
                    if (pk[n].star > best) {
                        best = pk[n].star;
                        bt = pk[n].star_t;
                        be = -1;
                    }
                    if (v_end > best) {
                        best = v_end;
                        bt = d->t_max;
                        be = -1;
                    }
                    peak_t[b * N + n] = bt;
                    peak_e[b * N + n] = be;
                    peak_v[b * N + n] = best;
                    peak_i[b * N + n] = be >= 0 ? pk[n].sv_i : 0.0;
                }
            }
        }
        free(v);
        free(i);
        free(t);
        free(rel);
        free(cross);
        free(tp);
        free(lb);
        free(cnt);
        free(last);
        free(idx);
        free(hit);
        free(gk);
        free(pk);
    }
    if (status < 0) {
        sl_event_free(h);
        *max_count = status;
        return NULL;
    }
    *max_count = most;
    *max_total = total;
    return h;
}

/* ----------------------------------------------------------------------------- adjoint */
/* sum_j a_j b_j in eight interleaved partial sums (vectorised; the torch engine's sums are in
 * its own order too) */
INLINE double dot(const double *restrict a, const double *restrict b, int64_t n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int q = 0; q < 8; ++q) acc[q] += a[j + q] * b[j + q];
    for (; j < n; ++j) acc[0] += a[j] * b[j];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

typedef struct {
    const EvDims *d;
    const Consts *k;
    const double *times, *isp, *irel, *grad; /* [N, K] of this sample */
    int64_t K;
} Record;

/* backward evolution of neuron n from t to target (adjoint.py: clamped before release) */
INLINE void back(const Record *R, int64_t n, int64_t sp, double t, double target, double *pv,
                 double *pi, double *reset, Coef *c) {
    const Consts *k = R->k;
    const double t_sp = sp >= 0 ? R->times[n * R->K + sp] : -INFINITY;
    const double rel = (R->d->t_refrac > 0 && sp >= 0) ? t_sp + R->d->t_refrac : -INFINITY;
    double s_free = t - fmax(rel, target);
    s_free = s_free > 0.0 ? s_free : 0.0;
    const double s_ref = (t - target) - s_free;
    const Coef *e = coef(c, k->tm[n], k->ts[n], s_free);
    *pi = e->alpha * *pi + k->r[n] * e->gain * *pv;
    *pv = e->beta * *pv;
    if (rel > target && rel <= t && sp >= 0) {
        const double vdot = slope(k->vr[n], R->irel[n * R->K + sp], k->tm[n], k->vl[n], k->r[n]);
        *reset = *reset - vdot * *pv;
    }
    if (s_ref > 0) *pv = 0.0;
    *pi = (s_ref == 0.0 ? 1.0 : exp(-s_ref / k->ts[n])) * *pi;
}

/* back() for every neuron of a recurrent sample (shared clock); with one set of constants
 * and no refractoriness a single set of coefficients */
INLINE void back_all(const Record *R, const int64_t *sp, double t, double target, double *pv,
                     double *pi, double *reset, Coef *c, int uniform) {
    const int64_t N = R->d->N;
    if (!(t > target)) return; /* zero length: the identity */
    if (uniform) {
        const Consts *k = R->k;
        const Coef *e = coef(c, k->tm[0], k->ts[0], t - target);
        const double al = e->alpha, rg = k->r[0] * e->gain, be = e->beta;
        for (int64_t n = 0; n < N; ++n) {
            pi[n] = al * pi[n] + rg * pv[n];
            pv[n] = be * pv[n];
        }
        return;
    }
    for (int64_t n = 0; n < N; ++n) back(R, n, sp[n], t, target, &pv[n], &pi[n], &reset[n], c);
}

/* the bracket of the co-state jump at neuron n's spike sp, without the recurrent term */
INLINE double bracket(const Record *R, int64_t n, int64_t sp, double pv, double reset,
                      double w_self, double *vdm) {
    const Consts *k = R->k;
    const double i_minus = R->isp[n * R->K + sp];
    const double v_dot = slope(k->th[n], i_minus, k->tm[n], k->vl[n], k->r[n]);
    *vdm = v_dot;
    const double g = R->grad[n * R->K + sp];
    double br = (isfinite(g) ? g : 0.0) + reset; /* a non-finite loss gradient counts as 0 */
    if (R->d->t_refrac == 0) br = br - slope(k->vr[n], i_minus + w_self, k->tm[n], k->vl[n],
                                             k->r[n]) * pv;
    return br;
}

/* EventProp over every sample. g_t [B, E] (table order), g_w_t [C, N] and g_rec_t [N, N]
 * (the transposes of dL/dW and dL/dW_rec) are overwritten; scratch holds nthreads * (C N + N N)
 * doubles (one accumulator per thread, summed in thread order: deterministic). */
void sl_event_adjoint(const EvDims *d, const double *tm, const double *ts, const double *vl,
                      const double *r, const double *th, const double *vr, double vdm_min,
                      const double *t_in, const int64_t *s_in, const double *a_in,
                      const int64_t *n_valid, const double *w_t, const double *wr_t,
                      const double *times, const double *isp, const double *irel,
                      const double *grad, const int64_t *count, int64_t K, double *g_t,
                      double *g_w_t, double *g_rec_t, double *scratch, int64_t nthreads) {
    const Consts k = {tm, ts, vl, r, th, vr};
    const int64_t B = d->B, N = d->N, C = d->C, E = d->E;
    const int64_t per = C * N + (wr_t ? N * N : 0);
    memset(scratch, 0, nthreads * per * sizeof *scratch);
    memset(g_t, 0, B * E * sizeof *g_t);
    int uniform = d->t_refrac == 0;
    for (int64_t n = 1; n < N; ++n)
        uniform = uniform && tm[n] == tm[0] && ts[n] == ts[0] && r[n] == r[0];
#pragma omp parallel num_threads(nthreads)
    {
        int64_t id = 0;
#ifdef _OPENMP
        id = omp_get_thread_num();
#endif
        double *gw = scratch + id * per, *gr = gw + C * N;
        double *pv = calloc(N, sizeof *pv), *pi = calloc(N, sizeof *pi);
        double *reset = calloc(N, sizeof *reset), *tn = calloc(N, sizeof *tn);
        double *cpl = calloc(N, sizeof *cpl), *jump = calloc(N, sizeof *jump);
        double *nts = calloc(N, sizeof *nts), *cv_k = calloc(N, sizeof *cv_k);
        double *ci_k = calloc(N, sizeof *ci_k);
        int64_t *sp = calloc(N, sizeof *sp), *who = calloc(N, sizeof *who);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (!(pv && pi && reset && tn && cpl && jump && nts && cv_k && ci_k && sp && who))
                continue;
            const Record R = {d, &k, times + b * N * K, isp + b * N * K, irel + b * N * K,
                              grad + b * N * K, K};
            const double *tin = t_in + b * E, *ain = a_in + b * E;
            const int64_t *sin = s_in + b * E;
            double *gt = g_t + b * E;
            Coef c;
            coef_reset(&c);
            for (int64_t n = 0; n < N; ++n) {
                pv[n] = pi[n] = reset[n] = 0.0;
                tn[n] = d->t_max;
                sp[n] = count[b * N + n] - 1;
                nts[n] = sp[n] >= 0 ? R.times[n * K + sp[n]] : -INFINITY;
                cv_k[n] = -r[n] / tm[n]; /* the coupling -r p_V/tau_mem + p_I/tau_syn */
                ci_k[n] = 1.0 / ts[n];
            }
            for (int64_t e = n_valid[b] - 1; e >= -1;) {
                const double te = e >= 0 ? tin[e] : -INFINITY;
                int64_t f = e; /* the group of inputs at te: f + 1 .. e */
                while (f >= 0 && tin[f] == te) --f;
                if (d->sync) {
                    /* the sample's spikes after this input, latest first */
                    for (;;) {
                        double m4[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
                        int64_t b4[4] = {0, 0, 0, 0}, n4 = 0;
                        for (; n4 + 4 <= N; n4 += 4)
                            for (int j = 0; j < 4; ++j) {
                                const int more = nts[n4 + j] > m4[j];
                                m4[j] = more ? nts[n4 + j] : m4[j];
                                b4[j] = more ? n4 + j : b4[j];
                            }
                        for (; n4 < N; ++n4)
                            if (nts[n4] > m4[0]) {
                                m4[0] = nts[n4];
                                b4[0] = n4;
                            }
                        double ts_max = m4[0];
                        int64_t top = b4[0];
                        for (int j = 1; j < 4; ++j)
                            if (m4[j] > ts_max) {
                                ts_max = m4[j];
                                top = b4[j];
                            }
                        if (!(ts_max > te)) break;
                        back_all(&R, sp, tn[0], ts_max, pv, pi, reset, &c, uniform);
                        tn[0] = ts_max;
                        int64_t m = 0, ties = 0;
                        for (int64_t n = 0; n < N; ++n) {
                            cpl[n] = cv_k[n] * pv[n] + pi[n] * ci_k[n];
                            ties += nts[n] == ts_max;
                        }
                        if (ties == 1) {
                            who[m++] = top;
                        } else {
                            for (int64_t n = 0; n < N; ++n) {
                                who[m] = n;
                                m += nts[n] == ts_max;
                            }
                        }
                        for (int64_t q = 0; q < m; ++q) { /* every jump from the values before */
                            const int64_t n = who[q];
                            const double *w = wr_t + n * N;
                            const double dt_ = dot(cpl, w, N);
                            const double cv = -r[n] * pv[n] / tm[n];
                            double vdm;
                            double br = bracket(&R, n, sp[n], pv[n], reset[n], w[n], &vdm);
                            br = br + dt_ - w[n] * cv;
                            jump[q] = -br / (vdm > vdm_min ? vdm : vdm_min);
                            double *g = gr + n * N;
                            for (int64_t j = 0; j < N; ++j) g[j] += pi[j];
                        }
                        for (int64_t q = 0; q < m; ++q) {
                            const int64_t n = who[q];
                            pv[n] = jump[q];
                            reset[n] = 0.0;
                            --sp[n];
                            nts[n] = sp[n] >= 0 ? R.times[n * K + sp[n]] : -INFINITY;
                        }
                    }
                    if (e < 0) break;
                    back_all(&R, sp, tn[0], te, pv, pi, reset, &c, uniform);
                    tn[0] = te;
                } else {
                    for (int64_t n = 0; n < N; ++n) {
                        while (sp[n] >= 0 && R.times[n * K + sp[n]] > te) {
                            const double t_sp = R.times[n * K + sp[n]];
                            back(&R, n, sp[n], tn[n], t_sp, &pv[n], &pi[n], &reset[n], &c);
                            tn[n] = t_sp;
                            double vdm;
                            const double br = bracket(&R, n, sp[n], pv[n], reset[n], 0.0, &vdm);
                            pv[n] = -br / (vdm > vdm_min ? vdm : vdm_min);
                            reset[n] = 0.0;
                            --sp[n];
                        }
                        if (e >= 0) {
                            back(&R, n, sp[n], tn[n], te, &pv[n], &pi[n], &reset[n], &c);
                            tn[n] = te;
                        }
                    }
                    if (e < 0) break;
                }
                /* the inputs at te (the co-state is the same at each of them):
                 * dL/dW[n, c_e] += a_e p_I,n; dL/dt_e = a_e sum_n W[n, c_e] (-r p_V/tau_mem + p_I/tau_syn) */
                for (int64_t n = 0; n < N; ++n) cpl[n] = cv_k[n] * pv[n] + pi[n] * ci_k[n];
                for (int64_t q = e; q > f; --q) {
                    const double a = ain[q];
                    const double *w = w_t + sin[q] * N;
                    double *g = gw + sin[q] * N;
                    for (int64_t n = 0; n < N; ++n) g[n] += a * pi[n];
                    gt[q] = a * dot(w, cpl, N);
                }
                e = f;
            }
        }
        free(pv);
        free(pi);
        free(reset);
        free(tn);
        free(cpl);
        free(jump);
        free(nts);
        free(cv_k);
        free(ci_k);
        free(sp);
        free(who);
    }
    for (int64_t j = 0; j < C * N; ++j) {
        double s = 0.0;
        for (int64_t id = 0; id < nthreads; ++id) s += scratch[id * per + j];
        g_w_t[j] = s;
    }
    if (wr_t) {
        for (int64_t j = 0; j < N * N; ++j) {
            double s = 0.0;
            for (int64_t id = 0; id < nthreads; ++id) s += scratch[id * per + C * N + j];
            g_rec_t[j] = s;
        }
    }
}

/* ----------------------------------------------------------------------------- readout peak */
/* The gradient of a readout's maximum V_n(t*_n) = v_leak + sum_{t_e < t*_n} a_e W[n, c_e] r g(t*_n - t_e)
 * (readout.py _Readout.membrane at the peak time, held fixed) with respect to W and the event
 * times, by the co-state recursion backwards from each t*_n (the adjoint above without
 * spikes): p = dL/d(V, I), p_V(t*) = dL/dV_n, p_I(t*) = 0; at each earlier event
 * dL/dW[n, c_e] += a_e p_I,n and dL/dt_e += a_e sum_n W[n, c_e] (-r p_V,n/tau_mem + p_I,n/tau_syn).
 * g_t [B, E] (table order) and g_w_t [C, N] are overwritten (scratch: nthreads * C N). */
void sl_event_peak_grad(const EvDims *d, const double *tm, const double *ts, const double *vl,
                        const double *r, const double *th, const double *vr, const double *t_in,
                        const int64_t *s_in, const double *a_in, const int64_t *n_valid,
                        const double *w_t, const double *t_star, const double *g_v, double *g_t,
                        double *g_w_t, double *scratch, int64_t nthreads) {
    (void)vl;
    (void)th;
    (void)vr;
    const int64_t B = d->B, N = d->N, C = d->C, E = d->E;
    memset(scratch, 0, nthreads * C * N * sizeof *scratch);
    memset(g_t, 0, B * E * sizeof *g_t);
#pragma omp parallel num_threads(nthreads)
    {
        int64_t id = 0;
#ifdef _OPENMP
        id = omp_get_thread_num();
#endif
        double *gw = scratch + id * C * N;
        double *pv = calloc(N, sizeof *pv), *pi = calloc(N, sizeof *pi);
        double *tn = calloc(N, sizeof *tn);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (!(pv && pi && tn)) continue;
            const double *tin = t_in + b * E, *ain = a_in + b * E, *tst = t_star + b * N;
            const double *gv = g_v + b * N;
            const int64_t *sin = s_in + b * E;
            Coef c;
            coef_reset(&c);
            for (int64_t n = 0; n < N; ++n) {
                pv[n] = pi[n] = 0.0;
                tn[n] = NAN; /* not reached yet */
            }
            for (int64_t e = n_valid[b] - 1; e >= 0; --e) {
                const double te = tin[e];
                for (int64_t n = 0; n < N; ++n) {
                    if (!(tst[n] > te)) continue;
                    if (tn[n] != tn[n]) {
                        pv[n] = gv[n];
                        tn[n] = tst[n];
                    }
                    const Coef *q = coef(&c, tm[n], ts[n], tn[n] - te);
                    pi[n] = q->alpha * pi[n] + r[n] * q->gain * pv[n];
                    pv[n] = q->beta * pv[n];
                    tn[n] = te;
                }
                const double a = ain[e];
                const double *w = w_t + sin[e] * N;
                double *g = gw + sin[e] * N;
                double acc = 0.0;
                for (int64_t n = 0; n < N; ++n) {
                    g[n] += a * pi[n];
                    acc += w[n] * (-r[n] * pv[n] / tm[n] + pi[n] / ts[n]);
                }
                g_t[b * E + e] = a * acc;
            }
        }
        free(pv);
        free(pi);
        free(tn);
    }
    for (int64_t j = 0; j < C * N; ++j) {
        double s = 0.0;
        for (int64_t id = 0; id < nthreads; ++id) s += scratch[id * C * N + j];
        g_w_t[j] = s;
    }
}
