/* Native kernel of the emulated Xylo-like chip: the integer time loop of
 * spikeloop/chips/xylo/dynamics.py (`step`, the one statement of the equations) in int32
 * arithmetic, looping over the time steps of a chunk inside C and writing each step's records into
 * preallocated [T, B, ...] tensors. Compiled on first use by spikeloop/chips/xylo/_native.py with
 * the machinery of spikeloop/kernels/native.py (same flags, cache and fallback) and called through
 * ctypes; tests/test_xylo_long.py checks it bit for bit against `step` and xylosim.
 *
 * One step of network b (the order of dynamics.step):
 *   deliver   input counts min(x, cap_in) of channels 0..Nin-1, then the previous step's emitted
 *             hidden counts z of neurons 0..N-1, to the hidden currents (w_in, w_rec) and z to the
 *             output currents (w_out); each source's c events add c*w with one 16-bit saturation
 *             (c saturating additions of the same w give the same value)
 *   evolve    i <- i - decay(i, dash_syn);  dv = sat(-decay(v, dash_mem) + sum_s i_s)
 *             dv = sat(dv + bias);  v = sat(v + dv)       (-decay wraps 32768 to -32768)
 *   fire      hidden neurons in index order with aliases (see `fire` below), outputs with cap 1
 *
 * Tallies (per network, int64 [B, 5]): input counts above the cap; hidden currents (neuron,
 * synapse) whose delivery clipped at least once in the step; hidden membranes where one of the
 * three saturations clipped; the same two for the output neurons.
 */
#include "sl_native.h" /* standard headers, INLINE, thread_range, sl_set_threads */

#define LO (-32768)
#define HI 32767

typedef struct {
    int64_t T, B, Nin, N, O;
    int64_t per_net; /* 1: every parameter has a leading batch axis (one network per entry) */
    int32_t cap_in, cap_hidden, cap_out;
} XyloShape;

typedef struct { /* one network's parameters (weights already shifted: W * 2^shift) */
    const int32_t *w_in, *w_rec, *w_out;        /* [Nin, 2N], [N, 2N], [N, O] */
    const int32_t *th, *th_out, *bias, *bias_out; /* [N], [O], [N], [O] */
    const int32_t *dm, *dm_out, *ds, *ds_out;   /* [N], [O], [N, 2], [O] */
    const int64_t *alias;                       /* [N], -1: none */
} Params;

/* x - decay_d(x): decay_d(x) = x >> d, or sign(x) where the shift gives 0 */
INLINE int32_t decay_amount(int32_t x, int32_t d) {
    const int32_t s = x >> d;
    return s ? s : (x > 0) - (x < 0);
}

/* clamp to 16 bits; sets *hit when it clipped */
INLINE int32_t sat(int32_t x, int *hit) {
    if (x > HI) { *hit = 1; return HI; }
    if (x < LO) { *hit = 1; return LO; }
    return x;
}

/* The hidden currents after the deliveries of one step: cur [N*2] (post-major, synapse
 * minor), flags in clip [N*2]. */
INLINE void deliver_row(int32_t *restrict cur, uint8_t *restrict clip, const int32_t *restrict w,
                        int64_t K, int32_t c) {
    for (int64_t k = 0; k < K; ++k) {
        const int32_t wk = w[k];
        if (!wk) continue;
        int hit = 0;
        cur[k] = sat(cur[k] + c * wk, &hit);
        clip[k] |= (uint8_t)hit;
    }
}

/* decay the currents, integrate into the membrane; returns whether a membrane saturated */
INLINE int evolve(int32_t *v, const int32_t *cur, int64_t S, int32_t *i_out, const int32_t *ds,
                  int32_t dm, int32_t bias) {
    int32_t isum = 0;
    for (int64_t s = 0; s < S; ++s) {
        const int32_t x = cur[s];
        i_out[s] = x - decay_amount(x, ds[s]);
        isum += i_out[s];
    }
    int32_t leak = -decay_amount(*v, dm);
    if (leak == 32768) leak = LO; /* -decay is a 16-bit value */
    int hit = 0;
    int32_t dv = sat(leak + isum, &hit);
    dv = sat(dv + bias, &hit);
    *v = sat(*v + dv, &hit);
    return hit;
}

/* The spikes of one network's hidden neurons in index order: a neuron starts with the count
 * its aliases already gave it (c0), fires k = min(possible, cap - c0) (>= 0) times and passes
 * c0 + k on to its alias target: into the target's c0 if the target fires later (higher
 * index), else into its emitted count only. Emitted: min(cap, own c0 + k + late additions). */
static void fire_hidden(int64_t N, int32_t cap, int32_t *restrict v, const int32_t *restrict th,
                        const int64_t *restrict alias, int32_t *restrict z,
                        int32_t *restrict c0, int32_t *restrict late) {
    memset(c0, 0, (size_t)N * sizeof(int32_t));
    memset(late, 0, (size_t)N * sizeof(int32_t));
    for (int64_t j = 0; j < N; ++j) {
        const int32_t t = th[j];
        const int32_t possible = v[j] >= t ? (v[j] - t) / t + 1 : 0; /* v - t >= 0: floor */
        int32_t k = cap - c0[j] < possible ? cap - c0[j] : possible;
        if (k < 0) k = 0;
        v[j] -= k * t;
        const int32_t count = c0[j] + k;
        z[j] = count;
        const int64_t a = alias[j];
        if (a > j) {
            const int32_t sum = c0[a] + count;
            c0[a] = sum < cap ? sum : cap;
        } else if (a >= 0) {
            late[a] += count;
        }
    }
    for (int64_t j = 0; j < N; ++j) {
        const int32_t total = z[j] + late[j];
        z[j] = total < cap ? total : cap;
    }
}

/* Run T steps of each network b from its state (v, i, z, v_out, i_out: updated in place).
 * x [T, B, Nin] float64 counts (integers >= 0). Records [T, B, ...] (int32) may be NULL. */
void xylo_run(const XyloShape *sh, const double *x,
              const int32_t *w_in, const int32_t *w_rec, const int32_t *w_out,
              const int32_t *th, const int32_t *th_out, const int32_t *bias,
              const int32_t *bias_out, const int32_t *dm, const int32_t *dm_out,
              const int32_t *ds, const int32_t *ds_out, const int64_t *alias,
              int32_t *v, int32_t *i, int32_t *z, int32_t *v_out, int32_t *i_out,
              int32_t *rec_z, int32_t *rec_v, int32_t *rec_i, int32_t *rec_zo, int32_t *rec_vo,
              int32_t *rec_io, int64_t *tally) {
    const int64_t T = sh->T, B = sh->B, Nin = sh->Nin, N = sh->N, O = sh->O, N2 = 2 * N;
#pragma omp parallel
    {
        int64_t lo, hi;
        thread_range(B, &lo, &hi);
        int32_t *scratch = malloc((size_t)(2 * N2 + 2 * O) * sizeof(int32_t));
        uint8_t *clip = malloc((size_t)(N2 + O));
        int32_t *cur = scratch, *c0 = scratch + N2, *late = c0 + N, *cur_out = late + N,
                *zo = cur_out + O;
        for (int64_t b = lo; b < hi && scratch && clip; ++b) {
            const int64_t pb = sh->per_net ? b : 0;
            const Params p = {w_in + pb * Nin * N2, w_rec + pb * N * N2, w_out + pb * N * O,
                              th + pb * N, th_out + pb * O, bias + pb * N, bias_out + pb * O,
                              dm + pb * N, dm_out + pb * O, ds + pb * N2, ds_out + pb * O,
                              alias + pb * N};
            int32_t *vb = v + b * N, *ib = i + b * N2, *zb = z + b * N, *vob = v_out + b * O,
                    *iob = i_out + b * O;
            int64_t n_in = 0, n_cur = 0, n_mem = 0, n_cur_out = 0, n_mem_out = 0;
            for (int64_t t = 0; t < T; ++t) {
                const double *xt = x + (t * B + b) * Nin;
                memcpy(cur, ib, (size_t)N2 * sizeof(int32_t));
                memcpy(cur_out, iob, (size_t)O * sizeof(int32_t));
                memset(clip, 0, (size_t)(N2 + O));
                for (int64_t c = 0; c < Nin; ++c) { /* input events, capped */
                    const double xc = xt[c];
                    if (xc <= 0.0) continue;
                    int32_t count = (int32_t)sh->cap_in;
                    if (xc > (double)sh->cap_in) ++n_in;
                    else count = (int32_t)xc;
                    deliver_row(cur, clip, p.w_in + c * N2, N2, count);
                }
                for (int64_t j = 0; j < N; ++j) { /* last step's hidden spikes */
                    const int32_t count = zb[j];
                    if (!count) continue;
                    deliver_row(cur, clip, p.w_rec + j * N2, N2, count);
                    deliver_row(cur_out, clip + N2, p.w_out + j * O, O, count);
                }
                for (int64_t k = 0; k < N2; ++k) n_cur += clip[k];
                for (int64_t o = 0; o < O; ++o) n_cur_out += clip[N2 + o];
                for (int64_t j = 0; j < N; ++j)
                    n_mem += evolve(vb + j, cur + 2 * j, 2, ib + 2 * j, p.ds + 2 * j, p.dm[j],
                                    p.bias[j]);
                for (int64_t o = 0; o < O; ++o)
                    n_mem_out += evolve(vob + o, cur_out + o, 1, iob + o, p.ds_out + o,
                                        p.dm_out[o], p.bias_out[o]);
                fire_hidden(N, sh->cap_hidden, vb, p.th, p.alias, zb, c0, late);
                for (int64_t o = 0; o < O; ++o) {
                    const int32_t t_o = p.th_out[o];
                    const int32_t possible = vob[o] >= t_o ? (vob[o] - t_o) / t_o + 1 : 0;
                    const int32_t k = possible < sh->cap_out ? possible : sh->cap_out;
                    vob[o] -= k * t_o;
                    zo[o] = k;
                }
                const int64_t rh = (t * B + b) * N, ro = (t * B + b) * O;
                if (rec_z) memcpy(rec_z + rh, zb, (size_t)N * sizeof(int32_t));
                if (rec_v) memcpy(rec_v + rh, vb, (size_t)N * sizeof(int32_t));
                if (rec_i) memcpy(rec_i + 2 * rh, ib, (size_t)N2 * sizeof(int32_t));
                if (rec_zo) memcpy(rec_zo + ro, zo, (size_t)O * sizeof(int32_t));
                if (rec_vo) memcpy(rec_vo + ro, vob, (size_t)O * sizeof(int32_t));
                if (rec_io) memcpy(rec_io + ro, iob, (size_t)O * sizeof(int32_t));
            }
            int64_t *tb = tally + 5 * b;
            tb[0] += n_in;
            tb[1] += n_cur;
            tb[2] += n_mem;
            tb[3] += n_cur_out;
            tb[4] += n_mem_out;
        }
        if (!(scratch && clip) && lo < hi) tally[5 * lo] = -1; /* out of memory: caller raises */
        free(scratch);
        free(clip);
    }
}
