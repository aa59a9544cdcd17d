/* Native CPU kernels of spikeloop (float32): fused neuron time loops and event-driven
 * projections. Compiled on first use by spikeloop/kernels/native.py and called through ctypes.
 *
 * The neuron loop implements, operation for operation and in the same rounding order, the step
 * functions of spikeloop/dynamics/neurons.py (cuba_lif_step / lif_step / if_step / cuba_li_step /
 * li_step with `fire`, and with adaptation adaptive_lif_step / adlif_step); tests/test_kernels.py
 * and tests/test_fused_adaptive.py check it against them. A voltage model is the
 * current-based one with alpha = 0 (then i' = x and gain = x_gain):
 *
 *   i'  = i + x_eff            x_eff = x + W_rec z_prev   (recurrent populations)
 *   u   = beta * v + rest + gain * i'
 *   u   = u - kappa * w                                  (adaptive populations)
 *   vt  = refractory ? v_reset : u                       (only with refrac_steps > 0)
 *   z   = vt - thr > 0                                   (spiking populations)
 *   v  <- vt - z * (vt - v_reset)   (reset "value")  |  vt - z * (thr - v_reset)  ("subtract")
 *   w  <- rho * w + a * (vt - v_leak) + b * z             (adaptive populations)
 *   i  <- alpha * i'
 *   r  <- z ? refrac_steps : max(r - 1, 0)
 *
 * Adaptation (adaptive_lif_step: a = 0, b = adapt_increment, kappa = r g_adapt; adlif_step:
 * kappa = 1 - beta, coupling a, jump b; see spikeloop/kernels/fused.py) is on when the state w
 * is given (w != NULL); its update is the operations of those step functions in their order.
 *
 * Build flags include -ffp-contract=off so no multiply-add is fused: feed-forward loops without
 * observations are bit-identical to the element-wise torch reference. (Recurrent input sums run
 * in event order, not BLAS order, and a replay takes the observed membrane as is where the
 * reference computes m + (o - m): both agree to float rounding.)
 */
#include "sl_native.h" /* standard headers, INLINE, thread_range, sl_set_threads */

void sl_transpose(int64_t R, int64_t C, const float *src, float *dst);

typedef struct {
    int64_t T, B, N;
    int spiking;      /* 1: threshold + reset; 0: leaky-integrator readout */
    int reset_mode;   /* 0: value, 1: subtract */
    int refrac_steps; /* 0: no refractoriness */
} Shape;

/* ------------------------------------------------------------------ event helpers */
/* Bit j of the mask is set if p[j] != 0 (-0.0 counts as zero), for j < len <= 8. */
#if defined(__AVX__)
#include <immintrin.h>
INLINE unsigned nonzero_mask8(const float *p, int64_t len) {
    if (len == 8) {
        const __m256 nz = _mm256_cmp_ps(_mm256_loadu_ps(p), _mm256_setzero_ps(), _CMP_NEQ_UQ);
        return (unsigned)_mm256_movemask_ps(nz);
    }
    unsigned mask = 0;
    for (int j = 0; j < len; ++j) mask |= (unsigned)(p[j] != 0.0f) << j;
    return mask;
}
#else
INLINE unsigned nonzero_mask8(const float *p, int64_t len) {
    unsigned mask = 0;
    for (int j = 0; j < len; ++j) mask |= (unsigned)(p[j] != 0.0f) << j;
    return mask;
}
#endif

/* Column indices of the non-zero entries of one row into idx (room for K + 8); returns their
 * number. With AVX2 each block of 8 is packed branch-free: its mask selects a permutation from
 * a 256-entry table and all 8 lanes are stored, the cursor advancing by the mask's popcount. */
static int32_t pack_table[256][8];

__attribute__((constructor)) static void build_pack_table(void) {
    for (int m = 0; m < 256; ++m) {
        int n = 0;
        for (int j = 0; j < 8; ++j)
            if (m & (1 << j)) pack_table[m][n++] = j;
        while (n < 8) pack_table[m][n++] = 0;
    }
}

INLINE int64_t row_events(const float *restrict xr, int64_t K, int32_t *restrict idx) {
    int64_t n = 0, k = 0;
#if defined(__AVX2__)
    for (; k + 8 <= K; k += 8) {
        const unsigned mask = nonzero_mask8(xr + k, 8);
        const __m256i perm = _mm256_loadu_si256((const __m256i *)pack_table[mask]);
        _mm256_storeu_si256((__m256i *)(idx + n),
                            _mm256_add_epi32(perm, _mm256_set1_epi32((int)k)));
        n += __builtin_popcount(mask);
    }
#endif
    for (; k < K; ++k)
        if (xr[k] != 0.0f) idx[n++] = (int32_t)k;
    return n;
}

/* yr[0..M) = sum over the n events e of val[e] * w_t[idx[e], :] (val NULL: all 1). Outputs are
 * summed 64 at a time in four 16-float vectors (four AVX-512 registers, eight AVX2 ones), in
 * event order (the same order for every m). */
typedef float v8f __attribute__((vector_size(32), aligned(4)));
typedef float v16f __attribute__((vector_size(64), aligned(4)));

/* Columns [m0, m0 + 64) of the row sum, in four 16-float vectors (the caller ensures they
 * exist). */
INLINE void accumulate_block(int64_t M, int64_t m0, int64_t n, const int32_t *restrict idx,
                             int64_t shift, const float *restrict val,
                             const float *restrict w_t, float *restrict yr) {
    v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    for (int64_t e = 0; e < n; ++e) {
        const v16f *w = (const v16f *)(w_t + ((int64_t)idx[e] + shift) * M + m0);
        if (!val || val[e] == 1.0f) {
            a0 += w[0]; a1 += w[1]; a2 += w[2]; a3 += w[3];
        } else {
            const float a = val[e];
            a0 += a * w[0]; a1 += a * w[1]; a2 += a * w[2]; a3 += a * w[3];
        }
    }
    v16f *out = (v16f *)(yr + m0);
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3;
}

#if defined(__AVX512F__)
/* Columns [m0, m0 + tw) of the row sum for 0 < tw <= 16 * NC, in NC 512-bit registers (masked
 * loads: nothing past the row is read), in event order as accumulate_block. NC is a constant
 * at every call site. */
INLINE void accumulate_masked(const int NC, int64_t M, int64_t m0, int64_t tw, int64_t n,
                              const int32_t *restrict idx, int64_t shift,
                              const float *restrict val, const float *restrict w_t,
                              float *restrict yr) {
    __mmask16 mk[4];
    for (int q = 0; q < 4; ++q) {
        const int64_t left = tw - 16 * q;
        mk[q] = left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
    }
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t e = 0; e < n; ++e) {
        const float *w = w_t + ((int64_t)idx[e] + shift) * M + m0;
        if (!val || val[e] == 1.0f) {
            a0 = _mm512_add_ps(a0, _mm512_maskz_loadu_ps(mk[0], w));
            if (NC > 1) a1 = _mm512_add_ps(a1, _mm512_maskz_loadu_ps(mk[1], w + 16));
            if (NC > 2) a2 = _mm512_add_ps(a2, _mm512_maskz_loadu_ps(mk[2], w + 32));
            if (NC > 3) a3 = _mm512_add_ps(a3, _mm512_maskz_loadu_ps(mk[3], w + 48));
        } else {
            const __m512 a = _mm512_set1_ps(val[e]);
            a0 = _mm512_add_ps(a0, _mm512_mul_ps(a, _mm512_maskz_loadu_ps(mk[0], w)));
            if (NC > 1)
                a1 = _mm512_add_ps(a1, _mm512_mul_ps(a, _mm512_maskz_loadu_ps(mk[1], w + 16)));
            if (NC > 2)
                a2 = _mm512_add_ps(a2, _mm512_mul_ps(a, _mm512_maskz_loadu_ps(mk[2], w + 32)));
            if (NC > 3)
                a3 = _mm512_add_ps(a3, _mm512_mul_ps(a, _mm512_maskz_loadu_ps(mk[3], w + 48)));
        }
    }
    _mm512_mask_storeu_ps(yr + m0, mk[0], a0);
    if (NC > 1) _mm512_mask_storeu_ps(yr + m0 + 16, mk[1], a1);
    if (NC > 2) _mm512_mask_storeu_ps(yr + m0 + 32, mk[2], a2);
    if (NC > 3) _mm512_mask_storeu_ps(yr + m0 + 48, mk[3], a3);
}
#endif

/* Columns [m0, M) (the remainder after the 64-wide blocks, fewer than 64): with AVX-512 in up
 * to four masked registers, else one column at a time; the same sums, in event order. */
INLINE void accumulate_tail(int64_t M, int64_t m0, int64_t n, const int32_t *restrict idx,
                            int64_t shift, const float *restrict val,
                            const float *restrict w_t, float *restrict yr) {
#if defined(__AVX512F__)
    const int64_t tw = M - m0;
    if (tw > 0 && tw <= 64) {
        switch ((tw + 15) / 16) {
        case 1: accumulate_masked(1, M, m0, tw, n, idx, shift, val, w_t, yr); return;
        case 2: accumulate_masked(2, M, m0, tw, n, idx, shift, val, w_t, yr); return;
        case 3: accumulate_masked(3, M, m0, tw, n, idx, shift, val, w_t, yr); return;
        default: accumulate_masked(4, M, m0, tw, n, idx, shift, val, w_t, yr); return;
        }
    }
#endif
    for (int64_t m = m0; m < M; ++m) yr[m] = 0.0f;
    for (int64_t e = 0; e < n && m0 < M; ++e) {
        const float *restrict w = w_t + ((int64_t)idx[e] + shift) * M;
        const float a = val ? val[e] : 1.0f;
        if (a == 1.0f) {
            for (int64_t m = m0; m < M; ++m) yr[m] += w[m];
        } else {
            for (int64_t m = m0; m < M; ++m) yr[m] += a * w[m];
        }
    }
}

/* yr[0..M) = sum over the n events e of val[e] * w_t[idx[e] + shift, :] (val NULL: all 1), in
 * event order for every m. */
INLINE void accumulate_row_at(int64_t M, int64_t n, const int32_t *restrict idx, int64_t shift,
                              const float *restrict val, const float *restrict w_t,
                              float *restrict yr) {
    int64_t m0 = 0;
    for (; m0 + 64 <= M; m0 += 64) accumulate_block(M, m0, n, idx, shift, val, w_t, yr);
    accumulate_tail(M, m0, n, idx, shift, val, w_t, yr);
}

INLINE void accumulate_row(int64_t M, int64_t n, const int32_t *restrict idx,
                           const float *restrict val, const float *restrict w_t,
                           float *restrict yr) {
    accumulate_row_at(M, n, idx, 0, val, w_t, yr);
}

/* Per-thread event lists (defined with the event-driven projection below): a recurrent loop
 * keeps there the spikes its recurrent product finds. */
typedef struct Packed Packed;
static Packed *packed_new(int threads, int64_t chunks, int64_t first);
static void packed_free(Packed *pk);
static int packed_add(Packed *pk, int id, const int32_t *idx, const float *val, int64_t n);
static void packed_chunk_begin(Packed *pk, int64_t c, int id, int64_t first);
static void packed_chunk_end(Packed *pk, int64_t c);
static int64_t packed_finish(Packed *pk, int64_t R, int64_t *row_ptr);

/* ------------------------------------------------------------------ neuron forward */
/* One time step of one batch row. The flags (spiking, subtract, refrac, recurrent) are
 * compile-time constants at every call site, and the loop body has no other branches, so every
 * variant vectorises: optional observations arrive as valid rows (zeros when absent) with a
 * row of switches (use_v[n], use_z[n]: all 1 or all 0) that selects them element by element
 * (gcc does not vectorise two selections on loop-invariant conditions), and optional outputs
 * go to a per-thread scratch row when not wanted. */
INLINE void forward_row(const int64_t N, const int spiking, const int subtract, const int refrac,
                        const int recurrent, const int adaptive, const float *restrict rho,
                        const float *restrict kappa, const float *restrict acoup,
                        const float *restrict bjump, const float *restrict vleak,
                        float *restrict wb, float *restrict ow,
                        const float *restrict xt, const float *restrict rec,
                        const float *restrict beta, const float *restrict rest,
                        const float *restrict alpha, const float *restrict gain,
                        const float *restrict thr, const float *restrict vreset,
                        float *restrict vb, float *restrict ib, float *restrict rb,
                        const float refrac_steps, const float *restrict use_v,
                        const float *restrict obs_v, const float *restrict use_z,
                        const float *restrict obs_z, float *restrict ov,
                        float *restrict oz, float *restrict oi, float *restrict oip,
                        uint8_t *restrict om) {
#pragma omp simd
    for (int64_t n = 0; n < N; ++n) {
        const float xe = recurrent ? xt[n] + rec[n] : xt[n];
        const float ipn = ib[n] + xe;
        float u = beta[n] * vb[n] + rest[n] + gain[n] * ipn;
        const float wn = adaptive ? wb[n] : 0.0f;
        if (adaptive) {
            u = u - kappa[n] * wn;
            ow[n] = wn;
        }
        const float seen_v = obs_v[n];
        float vt = u;
        if (spiking) {
            if (refrac) {
                const int active = rb[n] <= 0.0f;
                vt = active ? u : vreset[n];
                om[n] = (uint8_t)active;
            }
            vt = use_v[n] != 0.0f ? seen_v : vt;
            const float seen_z = obs_z[n];
            const float fired = (vt - thr[n]) > 0.0f ? 1.0f : 0.0f;
            const float z = use_z[n] != 0.0f ? seen_z : fired;
            vb[n] = subtract ? vt - z * (thr[n] - vreset[n]) : vt - z * (vt - vreset[n]);
            if (refrac) {
                const float rm = rb[n] - 1.0f;
                rb[n] = z > 0.0f ? refrac_steps : (rm > 0.0f ? rm : 0.0f);
            }
            oz[n] = z;
            if (adaptive) wb[n] = rho[n] * wn + acoup[n] * (vt - vleak[n]) + bjump[n] * z;
        } else {
            vt = use_v[n] != 0.0f ? seen_v : vt;
            vb[n] = vt;
        }
        ov[n] = vt;
        const float inext = alpha[n] * ipn;
        ib[n] = inext;
        oi[n] = inext;
        oip[n] = ipn;
    }
}

#define FORWARD_ROW(SP, SU, RF, RC, AD)                                                       \
    forward_row(N, SP, SU, RF, RC, AD, rho, kappa, acoup, bjump, vleak, wb,                     \
                out_w ? out_w + off : sink + 4 * N,                                             \
                x + off, rec, beta, rest, alpha, gain, thr, vreset, vb, ib,                     \
                rb, (float)s->refrac_steps, obs_v ? ones : zeros, obs_v ? obs_v + off : zeros, \
                (SP && obs_z) ? ones : zeros, (SP && obs_z) ? obs_z + off : zeros,             \
                out_v ? out_v + off : sink, (SP && out_z) ? out_z + off : sink + N,            \
                out_i ? out_i + off : sink + 2 * N, ip ? ip + off : sink + 3 * N,              \
                mask ? mask + off : sink_mask)

#define FORWARD_ROW_RC(SP, SU, RF, AD) \
    do { if (rec) FORWARD_ROW(SP, SU, RF, 1, AD); else FORWARD_ROW(SP, SU, RF, 0, AD); } while (0)

/* the four spiking variants (reset mode x refractoriness) */
#define FORWARD_SPIKING(AD)                                                                   \
    do {                                                                                      \
        if (!subtract && !refrac) FORWARD_ROW_RC(1, 0, 0, AD);                                \
        else if (subtract && !refrac) FORWARD_ROW_RC(1, 1, 0, AD);                            \
        else if (!subtract && refrac) FORWARD_ROW_RC(1, 0, 1, AD);                            \
        else FORWARD_ROW_RC(1, 1, 1, AD);                                                     \
    } while (0)

/* x [T,B,N]; coefficients [N]; state in/out v,i,r [B,N]; zprev in/out [B,N] (recurrent only);
 * wrec_t [N,N] = W_rec transposed (row j: the weights *from* neuron j), NULL if not recurrent;
 * outputs out_v, out_z, out_i [T,B,N] (out_z NULL for readouts); optional: ip [T,B,N] (i', for
 * time-constant gradients), mask [T,B,N] (1 where the neuron was not refractory).
 * In-the-loop replay: obs_v / obs_z [T,B,N] (each may be NULL) replace the membrane compared
 * with the threshold and the spikes by what a device observed; reset, refractoriness and the
 * recorded outputs then follow the observation (the synaptic current stays the model's).
 * Any of out_v, out_z, out_i may be NULL: that recording is skipped (written to a scratch row).
 * Adaptation (spiking populations only): w [B,N] in/out (NULL: none) with coefficients rho,
 * kappa, acoup, bjump, vleak [N]; out_w [T,B,N] (may be NULL) receives w before each step.
 * Spike list (ev_row_ptr non-NULL, recurrent and spiking with out_z): the recurrent product
 * finds the spikes of each row of the previous step anyway; they are kept in per-thread buffers
 * (the last step's rows listed at the end), the same CSR arrays as sl_compress_begin on out_z;
 * ev_row_ptr [T*B+1] receives the offsets and *ev_handle the handle for sl_compress_end (NULL
 * if memory ran out: no list). */
void sl_neuron_forward(const Shape *s, const float *x, const float *beta, const float *rest,
                       const float *alpha, const float *gain, const float *thr,
                       const float *vreset, float *v, float *i, float *r, float *zprev,
                       const float *wrec_t, const float *obs_v, const float *obs_z, float *out_v,
                       float *out_z, float *out_i, float *ip, uint8_t *mask, const float *rho,
                       const float *kappa, const float *acoup, const float *bjump,
                       const float *vleak, float *w, float *out_w, int64_t *ev_row_ptr,
                       void **ev_handle) {
    const int64_t T = s->T, B = s->B, N = s->N;
    const int spiking = s->spiking, subtract = s->reset_mode == 1, refrac = s->refrac_steps > 0;
    const int adaptive = spiking && w != NULL;
    int most = 1;
#ifdef _OPENMP
    most = omp_get_max_threads();
#endif
    /* chunk t * most + thread: a thread's rows of step t (a first guess of 1/16 spiking) */
    Packed *pk = ev_row_ptr && spiking && out_z && wrec_t
                     ? packed_new(most, T * most, (B / most + 1) * T * N / 16 + N + 16)
                     : NULL;
    int unlisted = 0;
#pragma omp parallel num_threads(most) reduction(| : unlisted)
    {
        /* each thread owns a contiguous range of batch rows and walks time outside, so that
         * it streams through [t, b0:b1, :] blocks that lie contiguously in memory */
        int64_t b0, b1;
        thread_range(B, &b0, &b1);
        int id = 0;
#ifdef _OPENMP
        id = omp_get_thread_num();
#endif
        float *rec = NULL, *val = NULL;
        int32_t *idx = NULL;
        if (wrec_t) {
            rec = (float *)malloc(sizeof(float) * N);
            val = (float *)malloc(sizeof(float) * (N + 8));
            idx = (int32_t *)malloc(sizeof(int32_t) * (N + 8));
        }
        /* stand-ins for absent inputs (zeros) and outputs (sinks) */
        float *zeros = (float *)calloc(N + 1, sizeof(float));
        float *ones = (float *)malloc(sizeof(float) * (N + 1));
        for (int64_t n = 0; n < N; ++n) ones[n] = 1.0f;
        float *sink = (float *)malloc(sizeof(float) * (5 * N + 1));
        uint8_t *sink_mask = (uint8_t *)malloc(N + 1);
        for (int64_t t = 0; t < T; ++t) {
            if (pk && t > 0) packed_chunk_begin(pk, (t - 1) * most + id, id, (t - 1) * B + b0);
            for (int64_t b = b0; b < b1; ++b) {
                const int64_t off = (t * B + b) * N;
                float *vb = v + b * N, *ib = i + b * N, *rb = r + b * N;
                float *wb = adaptive ? w + b * N : NULL;
                float *zb = zprev ? zprev + b * N : NULL;
                if (rec) { /* W_rec z_prev from the neurons that spiked */
                    const int64_t n = row_events(zb, N, idx);
                    for (int64_t e = 0; e < n; ++e) val[e] = zb[idx[e]];
                    accumulate_row(N, n, idx, val, wrec_t, rec);
                    if (pk && t > 0 && !unlisted) { /* zb: the spikes of step t - 1 */
                        if (packed_add(pk, id, idx, val, n))
                            unlisted = 1;
                        else
                            ev_row_ptr[(t - 1) * B + b + 1] = n;
                    }
                }
                if (!spiking)
                    FORWARD_ROW_RC(0, 0, 0, 0);
                else if (adaptive)
                    FORWARD_SPIKING(1);
                else
                    FORWARD_SPIKING(0);
                if (zb) memcpy(zb, (out_z ? out_z : obs_z) + off, sizeof(float) * N);
            }
            if (pk && t > 0) packed_chunk_end(pk, (t - 1) * most + id);
        }
        if (pk && T > 0) { /* the last step's spikes: no next step lists them */
            packed_chunk_begin(pk, (T - 1) * most + id, id, (T - 1) * B + b0);
            for (int64_t b = b0; b < b1 && !unlisted; ++b) {
                const float *zb = zprev + b * N;
                const int64_t n = row_events(zb, N, idx);
                for (int64_t e = 0; e < n; ++e) val[e] = zb[idx[e]];
                if (packed_add(pk, id, idx, val, n))
                    unlisted = 1;
                else
                    ev_row_ptr[(T - 1) * B + b + 1] = n;
            }
            packed_chunk_end(pk, (T - 1) * most + id);
        }
        free(rec);
        free(val);
        free(idx);
        free(zeros);
        free(ones);
        free(sink);
        free(sink_mask);
    }
    if (ev_handle) *ev_handle = NULL;
    if (pk && unlisted) {
        packed_free(pk);
    } else if (pk) {
        packed_finish(pk, T * B, ev_row_ptr);
        if (ev_handle) *ev_handle = pk;
    }
}

/* ------------------------------------------------------------------ neuron backward */
/* One reverse step of one batch row (flags constant at each call site, see forward_row).
 * lv, li: adjoints of v and i after the step (updated in place to before the step); rdz: extra
 * spike gradient from the recurrent projection of the next step; vprev/zprev: recorded values
 * of the previous step (for the membrane before this step; NULL at t = 0, then v0). The fa_*
 * accumulators sum this batch row's coefficient gradients over time. */
INLINE void backward_row(const int64_t N, const int spiking, const int subtract, const int refrac,
                         const int want_ip, const int adaptive, const int want_w,
                         const float *restrict rho, const float *restrict kappa,
                         const float *restrict acoup, const float *restrict bjump,
                         const float *restrict vleak, const float *restrict wr,
                         float *restrict lw, float *restrict fa_rho, float *restrict fa_kappa,
                         float *restrict fa_a, float *restrict fa_b, float *restrict fa_lw,
                         const float *restrict ov, const float *restrict oz,
                         const float *restrict sg, const uint8_t *restrict mk,
                         const float *restrict ipr, const float *restrict vprev,
                         const float *restrict zprev, const float *restrict v0,
                         const float *restrict beta, const float *restrict alpha,
                         const float *restrict gain, const float *restrict thr,
                         const float *restrict vreset, const float *restrict gvr,
                         const float *restrict gzr, const float *restrict gir,
                         float *restrict lv, float *restrict li, const float *restrict rdz,
                         float *restrict dxr, float *restrict fa_beta, float *restrict fa_rest,
                         float *restrict fa_alpha, float *restrict fa_gain,
                         float *restrict fa_thr, float *restrict fa_vr) {
#pragma omp simd
    for (int64_t n = 0; n < N; ++n) {
        float dvt = gvr[n];
        float du;
        float lwn = 0.0f;
        if (spiking) {
            const float z = oz[n];
            float dz = gzr[n] + rdz[n];
            if (adaptive) { /* w_{k+1} = rho w_k + a (vt - v_leak) + b z */
                lwn = lw[n];
                dz += bjump[n] * lwn;
                dvt += acoup[n] * lwn;
                fa_a[n] += lwn * (ov[n] - vleak[n]);
                fa_b[n] += lwn * z;
                fa_lw[n] += lwn;
            }
            const float gs = dz * sg[n];
            dvt += gs;
            float dthr = -gs;
            if (subtract) {
                dvt += lv[n];
                dthr -= lv[n] * z;
            } else {
                dvt += lv[n] * (1.0f - z);
            }
            fa_thr[n] += dthr;
            float dvr = lv[n] * z;
            if (refrac) {
                const int active = mk[n] != 0;
                dvr += active ? 0.0f : dvt;
                du = active ? dvt : 0.0f;
            } else {
                du = dvt;
            }
            fa_vr[n] += dvr;
        } else {
            du = dvt + lv[n];
        }
        const float git = li[n] + gir[n];
        const float dip = gain[n] * du + alpha[n] * git;
        fa_rest[n] += du;
        if (want_ip) { /* the membrane before this step (at t = 0: v0, with zprev = 0) */
            float vk;
            if (!spiking)
                vk = vprev[n];
            else if (subtract)
                vk = vprev[n] - zprev[n] * (thr[n] - vreset[n]);
            else
                vk = vprev[n] - zprev[n] * (vprev[n] - vreset[n]);
            fa_beta[n] += du * vk;
            fa_gain[n] += du * ipr[n];
            fa_alpha[n] += git * ipr[n];
        }
        if (adaptive) {
            if (want_w) {
                fa_rho[n] += lwn * wr[n];
                fa_kappa[n] -= du * wr[n];
            }
            lw[n] = rho[n] * lwn - kappa[n] * du;
        }
        lv[n] = beta[n] * du;
        li[n] = dip;
        dxr[n] = dip;
    }
}

#define BACKWARD_ROW(SP, SU, RF, IP, AD)                                                      \
    backward_row(N, SP, SU, RF, IP, AD, want_w, rho, kappa, acoup, bjump, vleak,                \
                 (AD && want_w) ? ws + off : NULL, AD ? lwq : NULL, faq + 6 * N, faq + 7 * N,   \
                 faq + 8 * N, faq + 9 * N, faq + 10 * N,                                        \
                 out_v + off, SP ? out_z + off : NULL, SP ? sgr : NULL,                         \
                 RF ? mask + off : NULL, IP ? ip + off : NULL, t ? out_v + prev : v0 + b * N,    \
                 (SP && t) ? out_z + prev : zero, v0 + b * N, beta, alpha, gain, thr, vreset,   \
                 gv ? gv + off : zero, gz ? gz + off : zero, gi ? gi + off : zero, lvq, liq,     \
                 rdzq, dx + off, faq, faq + N, faq + 2 * N, faq + 3 * N, faq + 4 * N,            \
                 faq + 5 * N)

/* the spiking variants (reset mode x refractoriness x time-constant gradients) */
#define BACKWARD_SPIKING(AD)                                                                  \
    do {                                                                                      \
        if (!subtract && !refrac) {                                                           \
            if (want_ip) BACKWARD_ROW(1, 0, 0, 1, AD); else BACKWARD_ROW(1, 0, 0, 0, AD);     \
        } else if (subtract && !refrac) {                                                     \
            if (want_ip) BACKWARD_ROW(1, 1, 0, 1, AD); else BACKWARD_ROW(1, 1, 0, 0, AD);     \
        } else if (!subtract && refrac) {                                                     \
            if (want_ip) BACKWARD_ROW(1, 0, 1, 1, AD); else BACKWARD_ROW(1, 0, 1, 0, AD);     \
        } else {                                                                              \
            if (want_ip) BACKWARD_ROW(1, 1, 1, 1, AD); else BACKWARD_ROW(1, 1, 1, 0, AD);     \
        }                                                                                     \
    } while (0)

/* ------------------------------------------------------------------ finiteness */
/* 1 if none of the n floats at x is NaN or +-inf (exponent bits all ones), else 0: one pass,
 * no early exit (branch-free, so the loop vectorises); above 64 K floats the threads take
 * contiguous halves (a weight an optimiser step just wrote in halves is read where it lies). */
int sl_finite(int64_t n, const float *x) {
    const uint32_t *restrict u = (const uint32_t *)x;
    uint32_t bad = 0;
#pragma omp parallel for simd schedule(static) reduction(| : bad) if (n >= 65536)
    for (int64_t k = 0; k < n; ++k) bad |= (uint32_t)((u[k] & 0x7f800000u) == 0x7f800000u);
    return !bad;
}

/* ------------------------------------------------------------------ surrogate derivative */
/* o [N] = sigma'(v - thr[n]) for one row, the operations in the order of the surrogate's
 * derivative_ in spikeloop/dynamics/surrogate.py (NativeForm): kind 1: c * 1/(a|x| + 1)^2,
 * kind 2: c * 1/((a x)^2 + 1), kind 3: c * max(0, -a|x| + 1) (NaN stays NaN); times [|x| < band]
 * when band > 0. */
INLINE void surrogate_row(int64_t N, const float *restrict vr, const float *restrict thr,
                          int kind, float a, float c, float band, float *restrict o) {
    if (kind == 1) {
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) {
            float y = fabsf(vr[n] - thr[n]) * a + 1.0f;
            o[n] = (1.0f / (y * y)) * c;
        }
    } else if (kind == 2) {
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) {
            float y = (vr[n] - thr[n]) * a;
            o[n] = (1.0f / (y * y + 1.0f)) * c;
        }
    } else {
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) {
            float y = fabsf(vr[n] - thr[n]) * -a + 1.0f;
            o[n] = (y < 0.0f ? 0.0f : y) * c;
        }
    }
    if (band > 0.0f) {
#pragma omp simd
        for (int64_t n = 0; n < N; ++n) o[n] *= fabsf(vr[n] - thr[n]) < band ? 1.0f : 0.0f;
    }
}

/* ------------------------------------------------------------------ recurrent spike gradient */
#define BB 8 /* batch rows per block: the recurrent backward reads W once per block */

#if defined(__AVX512F__)
/* out[q, j] = sum_n d_q[n] W[n, j] for the block's rows q < nb (d_q = zero rows beyond), W
 * row-major [N, N]: 32 columns at a time, the eight rows' sums in 16 512-bit registers while
 * the rows of W stream by (each W[n, j:j+32] loaded once per block, eight multiply-adds per
 * load), summed over n in ascending order with one rounding per step (fma). */
static void recurrent_block_gemm(const int64_t N, const int nb, const float *restrict w,
                                 const float *const *d, float *restrict out) {
    for (int64_t j = 0; j < N; j += 32) {
        const int64_t l0 = N - j, l1 = N - j - 16;
        const __mmask16 m0 = l0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << l0) - 1);
        const __mmask16 m1 = l1 >= 16 ? (__mmask16)0xFFFF
                             : l1 > 0  ? (__mmask16)((1u << l1) - 1)
                                       : (__mmask16)0;
        __m512 c[BB][2];
        for (int q = 0; q < BB; ++q) c[q][0] = c[q][1] = _mm512_setzero_ps();
        for (int64_t n = 0; n < N; ++n) {
            const float *wn = w + n * N + j;
            const __m512 w0 = _mm512_maskz_loadu_ps(m0, wn);
            const __m512 w1 = _mm512_maskz_loadu_ps(m1, wn + 16);
            for (int q = 0; q < BB; ++q) { /* unrolled: the sums stay in registers */
                const __m512 a = _mm512_set1_ps(d[q][n]);
                c[q][0] = _mm512_fmadd_ps(a, w0, c[q][0]);
                c[q][1] = _mm512_fmadd_ps(a, w1, c[q][1]);
            }
        }
        for (int q = 0; q < nb; ++q) {
            _mm512_mask_storeu_ps(out + q * N + j, m0, c[q][0]);
            _mm512_mask_storeu_ps(out + q * N + j + 16, m1, c[q][1]);
        }
    }
}
#endif

/* rdz[q] = W^T d_q for up to four rows q < nb by dot products over the rows of wrec_t, each
 * only where sp[q] (the row's surrogate derivative at step t-1; NULL: everywhere) is not 0. */
static void recurrent_dots(const int64_t N, const int64_t nb, const float *restrict wrec_t,
                           const float *const *d, const float *const *sp,
                           float *restrict rdz) {
    const float *restrict d0 = d[0], *restrict d1 = d[1], *restrict d2 = d[2], *restrict d3 = d[3];
    const unsigned all = (1u << nb) - 1u;
    for (int64_t j = 0; j < N; ++j) {
        unsigned used = all;
        if (sp[0]) {
            used = 0;
            for (int q = 0; q < nb; ++q) used |= (unsigned)(sp[q][j] != 0.0f) << q;
        }
        const float *restrict w = wrec_t + j * N;
        if (used == 0) { /* no row needs it */
            for (int q = 0; q < nb; ++q) rdz[q * N + j] = 0.0f;
            continue;
        }
        if (used & (used - 1)) { /* two or more rows: one pass over w for the four, the rows
                                  * that do not need it set to 0 afterwards */
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
            for (int64_t n = 0; n < N; ++n) {
                a0 = fmaf(w[n], d0[n], a0);
                a1 = fmaf(w[n], d1[n], a1);
                a2 = fmaf(w[n], d2[n], a2);
                a3 = fmaf(w[n], d3[n], a3);
            }
            const float a[4] = {a0, a1, a2, a3};
            for (int q = 0; q < nb; ++q) rdz[q * N + j] = (used >> q) & 1u ? a[q] : 0.0f;
            continue;
        }
        for (int q = 0; q < nb; ++q) { /* the one row where the neuron is in the band */
            float acc = 0.0f;
            if (used & (1u << q)) {
                const float *restrict dq = d[q];
#pragma omp simd reduction(+ : acc)
                for (int64_t n = 0; n < N; ++n) acc = fmaf(w[n], dq[n], acc);
            }
            rdz[q * N + j] = acc;
        }
    }
}

/* rdz[q] = W^T dx_t[b0 + q] for the nb <= BB rows of a block (fused multiply-add: a gradient,
 * not a forward value), 0 where the surrogate derivative at step t-1 (sgp: the block's rows
 * of it, consecutive) is 0; at t = 0 in full (dz0). With AVX-512 one register-blocked product
 * (W row-major: wrec) unless the dot products over the needed entries alone (four rows at a
 * time) would take less time, the entries not needed set to 0 afterwards; else (or a narrow
 * band) those dot products. */
static void recurrent_block(const int64_t N, const int64_t nb, const int64_t t, const int64_t B,
                            const int64_t b0, const float *restrict wrec_t,
                            const float *restrict wrec, const float *restrict dx,
                            const float *restrict sgp, const float *restrict zero,
                            float *restrict rdz) {
    const float *d[BB];
    const float *sp[BB];
    for (int q = 0; q < BB; ++q) {
        d[q] = q < nb ? dx + (t * B + b0 + q) * N : zero;
        sp[q] = (q < nb && t > 0) ? sgp + q * N : NULL;
    }
#if defined(__AVX512F__)
    if (wrec) {
        /* the entries the dot products would compute (a neuron needed by two or more of four
         * rows: all four), against the product's BB N: the product is about three times as
         * fast per entry (2.6 against 8.1 ms for 32 rows x 256 x 256 x 100 steps), and on the
         * speed bench's rec and shd_scale rows with bands of 0.1 to 1 the dot products paid
         * only below about a sixth */
        int64_t work = t > 0 ? 0 : BB * N, needed = t > 0 ? 0 : nb * N;
        if (t > 0)
            for (int q0 = 0; q0 < nb; q0 += 4) { /* rows beyond nb: the zero row (unused) */
                const float *restrict s0 = sp[q0], *restrict s1 = q0 + 1 < nb ? sp[q0 + 1] : zero,
                                      *restrict s2 = q0 + 2 < nb ? sp[q0 + 2] : zero,
                                      *restrict s3 = q0 + 3 < nb ? sp[q0 + 3] : zero;
                int64_t nd = 0, wk = 0;
#pragma omp simd reduction(+ : nd, wk)
                for (int64_t j = 0; j < N; ++j) {
                    const int used = (s0[j] != 0.0f) + (s1[j] != 0.0f) + (s2[j] != 0.0f) +
                                     (s3[j] != 0.0f);
                    nd += used;
                    wk += used >= 2 ? 4 : used;
                }
                needed += nd;
                work += wk;
            }
        if (6 * work >= BB * N) {
            recurrent_block_gemm(N, (int)nb, wrec, d, rdz);
            if (needed < nb * N) /* a band left some out: they are 0 */
                for (int q = 0; q < nb; ++q) {
                    const float *restrict sq = sp[q];
                    float *restrict rq = rdz + q * N;
#pragma omp simd
                    for (int64_t j = 0; j < N; ++j) rq[j] = sq[j] == 0.0f ? 0.0f : rq[j];
                }
            return;
        }
    }
#else
    (void)wrec;
#endif
    for (int64_t q0 = 0; q0 < nb; q0 += 4)
        recurrent_dots(N, nb - q0 < 4 ? nb - q0 : 4, wrec_t, d + q0, sp + q0, rdz + q0 * N);
}

/* Reverse-time adjoint of sl_neuron_forward (reset with detached spikes).
 * Inputs: out_v, out_z (forward outputs), sg [T,B,N] = surrogate derivative at out_v - thr
 * (zero outside the band for sparse backprop; NULL for a spiking population: computed here,
 * row by row by surrogate_row from sg_kind, sg_a, sg_c, sg_band), v0 (initial membrane [B,N]),
 * ip (i', NULL if no time-constant gradients), mask (NULL without refractoriness); incoming
 * gradients gv, gz, gi [T,B,N] (each may be NULL), final-state gradients gvT, giT, gzT [B,N]
 * (may be NULL).
 * Outputs: dx [T,B,N]; dv0, di0, dz0 [B,N]; per-neuron coefficient gradients [N] (summed over
 * batch and time) dbeta, drest, dalpha, dgain, dthr, dvreset (dbeta/dalpha/dgain only if ip).
 * For recurrent populations (wrec_t = W_rec^T and wrec = W_rec, both row-major; wrec may be
 * NULL: the dot products alone) the spike gradient of step k-1 receives W_rec^T dx_k; it is
 * computed only where sg != 0 (event-driven: with a band-limited surrogate this is the sparse
 * backprop of Perez-Nieves & Goodman 2021), and in full for dz0.
 * Adaptation (dw0 != NULL; spiking only): coefficients rho, kappa, acoup, bjump, vleak [N], ws
 * [T,B,N] = w before each step (NULL: no rho/kappa gradients), gwT [B,N] (may be NULL); outputs
 * dw0 [B,N] and per-neuron drho, dkappa, dacoup, dbjump and dlw = sum of the adjoints of w after
 * each step (the v_leak gradient is -acoup * dlw). */
void sl_neuron_backward(const Shape *s, const float *out_v, const float *out_z, const float *sg,
                        const float *v0, const float *ip, const uint8_t *mask,
                        const float *beta, const float *alpha, const float *gain,
                        const float *thr, const float *vreset, const float *wrec_t,
                        const float *gv, const float *gz, const float *gi, const float *gvT,
                        const float *giT, const float *gzT, float *dx, float *dv0, float *di0,
                        float *dz0, float *dbeta, float *drest, float *dalpha, float *dgain,
                        float *dthr, float *dvreset, const float *rho, const float *kappa,
                        const float *acoup, const float *bjump, const float *vleak,
                        const float *ws, const float *gwT, float *dw0, float *drho,
                        float *dkappa, float *dacoup, float *dbjump, float *dlw, int sg_kind,
                        float sg_a, float sg_c, float sg_band, const float *wrec) {
    const int64_t T = s->T, B = s->B, N = s->N;
    const int spiking = s->spiking, subtract = s->reset_mode == 1;
    const int refrac = spiking && mask != NULL, want_ip = ip != NULL;
    const int adaptive = spiking && dw0 != NULL, want_w = adaptive && ws != NULL;
    enum { NC = 11 }; /* coefficient gradients: 6 of the neuron, 5 of the adaptation */
    float *out[NC] = {dbeta, drest, dalpha, dgain, dthr, dvreset,
                      drho, dkappa, dacoup, dbjump, dlw};
    const int nout = adaptive ? NC : 6;
    for (int k = 0; k < nout; ++k) memset(out[k], 0, sizeof(float) * N);
    float *zero = (float *)calloc(N, sizeof(float));
    int slots = 1;
#ifdef _OPENMP
    slots = omp_get_max_threads();
#endif
    /* per-thread sums of the coefficient gradients, reduced in thread order afterwards (the
     * result does not depend on which thread finishes first) */
    double *partial = (double *)calloc((size_t)slots * NC * N, sizeof(double));
#pragma omp parallel num_threads(slots)
    {
        /* a contiguous range of batch rows per thread, time outside (see the forward pass) */
        int64_t b0, b1;
        thread_range(B, &b0, &b1);
        const int64_t rows = b1 - b0 > 0 ? b1 - b0 : 0;
        float *fa = (float *)calloc(rows * NC * N + 1, sizeof(float)); /* per row, over time */
        float *lv = (float *)malloc(sizeof(float) * (rows * N + 1));  /* dL/dv after the step */
        float *li = (float *)malloc(sizeof(float) * (rows * N + 1));  /* dL/di after the step */
        float *rdz = (float *)malloc(sizeof(float) * (rows * N + 1)); /* recurrent dL/dz */
        float *lw = (float *)malloc(sizeof(float) * (rows * N + 1));  /* dL/dw after the step */
        /* sg == NULL: this thread's rows of sg at step t (cur) and, for the recurrent spike
         * gradient, at step t - 1 (nxt, which becomes cur at the next step) */
        const int own_sg = spiking && !sg;
        float *cur = own_sg ? (float *)malloc(sizeof(float) * (rows * N + 1)) : NULL;
        float *nxt = own_sg && wrec_t ? (float *)malloc(sizeof(float) * (rows * N + 1)) : NULL;
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t q = b - b0;
            for (int64_t n = 0; n < N; ++n) {
                lv[q * N + n] = gvT ? gvT[b * N + n] : 0.0f;
                li[q * N + n] = giT ? giT[b * N + n] : 0.0f;
                rdz[q * N + n] = gzT ? gzT[b * N + n] : 0.0f;
                lw[q * N + n] = gwT ? gwT[b * N + n] : 0.0f;
            }
        }
        for (int64_t t = T - 1; t >= 0; --t) {
            for (int64_t bb = b0; bb < b1; bb += BB) {
                const int64_t nb = b1 - bb < BB ? b1 - bb : BB;
                for (int64_t b = bb; b < bb + nb; ++b) {
                    const int64_t q = b - b0;
                    const int64_t off = (t * B + b) * N;
                    const int64_t prev = ((t - 1) * B + b) * N;
                    float *lvq = lv + q * N, *liq = li + q * N, *rdzq = rdz + q * N;
                    float *lwq = lw + q * N;
                    float *faq = fa + q * NC * N;
                    const float *sgr = NULL; /* sg of this row and step */
                    if (own_sg) {
                        if (!wrec_t || t == T - 1) /* (recurrent: computed at step t + 1) */
                            surrogate_row(N, out_v + off, thr, sg_kind, sg_a, sg_c, sg_band,
                                          cur + q * N);
                        sgr = cur + q * N;
                    } else if (spiking) {
                        sgr = sg + off;
                    }
                    if (!spiking) {
                        if (want_ip) BACKWARD_ROW(0, 0, 0, 1, 0); else BACKWARD_ROW(0, 0, 0, 0, 0);
                    } else if (adaptive) {
                        BACKWARD_SPIKING(1);
                    } else {
                        BACKWARD_SPIKING(0);
                    }
                }
                /* recurrent: dL/dz_{t-1}[j] = sum_n W[n, j] dx_t[n], only where it is used */
                float *rdz_block = rdz + (bb - b0) * N;
                const float *sgp = NULL; /* sg of the block's rows at step t - 1 */
                if (wrec_t && t > 0) {
                    if (own_sg) {
                        for (int64_t b = bb; b < bb + nb; ++b)
                            surrogate_row(N, out_v + ((t - 1) * B + b) * N, thr, sg_kind, sg_a,
                                          sg_c, sg_band, nxt + (b - b0) * N);
                        sgp = nxt + (bb - b0) * N;
                    } else {
                        sgp = sg + ((t - 1) * B + bb) * N;
                    }
                }
                if (wrec_t)
                    recurrent_block(N, nb, t, B, bb, wrec_t, wrec, dx, sgp, zero, rdz_block);
                else if (t == T - 1)
                    memset(rdz_block, 0, sizeof(float) * nb * N);
            }
            if (nxt) { /* step t - 1's rows become the current ones */
                float *swap = cur;
                cur = nxt;
                nxt = swap;
            }
        }
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        double *acc = partial + (size_t)tid * NC * N; /* this thread's rows */
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t q = b - b0;
            for (int64_t k = 0; k < NC * N; ++k) acc[k] += fa[q * NC * N + k];
            for (int64_t n = 0; n < N; ++n) {
                dv0[b * N + n] = lv[q * N + n];
                di0[b * N + n] = li[q * N + n];
                if (dz0) dz0[b * N + n] = rdz[q * N + n];
                if (adaptive) dw0[b * N + n] = lw[q * N + n];
            }
        }
        free(fa);
        free(lv);
        free(li);
        free(rdz);
        free(lw);
        free(cur);
        free(nxt);
    }
    for (int k = 0; k < nout; ++k) {
        for (int64_t n = 0; n < N; ++n) {
            double sum = 0.0;
            for (int th = 0; th < slots; ++th) sum += partial[((size_t)th * NC + k) * N + n];
            out[k][n] = (float)sum;
        }
    }
    free(partial);
    free(zero);
}

/* ------------------------------------------------------------------ EventProp on the grid */
/* The backward pass of a CUBA-LIF loop by EventProp on the time grid (kernels/eventprop.py has
 * the equations and the torch reference, _adjoint_torch). Recorded u (membrane before reset), z,
 * i (current after the step) [T,B,N]; gz/gv/gi: gradients arriving at z, u, i ([T,B,N] or
 * NULL); wt = W_rec^T [N,N] or NULL; per neuron beta, alpha, gain (r g),
 * thr, vreset, vleak, r, tm, ts. Output dx [T,B,N] = dL/dx (the input current of each step).
 * Backwards in time:
 *   delta = a p_v + b (gz_{t+1} - gz_t) + c R_t (+ gv), dx = gain delta + alpha (p_i + gi),
 *   p_v = beta delta, p_i = dx,
 * with the jump's factors (a, b, c) at spikes ((1, 0, 0) elsewhere) and, for a spike of step
 * t, R_t = sum_m W_rec[m, n] (dx_{t+1}[m] / ts_m - r_m p_v[m] / tm_m) at the arrival of its
 * recurrent spikes (formed after step t + 1, one dot product per spike of step t: EventProp
 * couples the neurons at spikes only). Batch rows are independent (threads take ranges). */

/* one reverse step of one batch row (the flags constant at each call site: the loop
 * vectorises without branches) */
INLINE void grid_adjoint_row(int64_t N, const int has_gv, const int has_gi, const int rec,
                             const float *restrict fa, const float *restrict fb,
                             const float *restrict fc, const float *restrict rr,
                             const float *restrict gv, const float *restrict gi,
                             const float *restrict beta, const float *restrict alpha,
                             const float *restrict gain, float *restrict pv, float *restrict pi,
                             const float *restrict g, float *restrict gn, float *restrict d) {
#pragma omp simd
    for (int64_t n = 0; n < N; ++n) {
        float delta = fa[n] * pv[n] + fb[n] * (gn[n] - g[n]);
        if (rec) delta = delta + fc[n] * rr[n];
        if (has_gv) delta = delta + gv[n];
        float p = pi[n];
        if (has_gi) p = p + gi[n];
        const float x = gain[n] * delta + alpha[n] * p;
        d[n] = x;
        pv[n] = beta[n] * delta;
        pi[n] = x;
        gn[n] = g[n];
    }
}

/* out[idx[e]] = sum_m d[m] wt[idx[e] N + m] for the n listed neurons: four dot products at a
 * time (four independent sums sharing the loads of d) */
INLINE void listed_dots(int64_t N, const float *restrict d, const float *restrict wt,
                        const int32_t *restrict idx, int64_t n, float *restrict out) {
    int64_t e = 0;
#if defined(__AVX512F__)
    if (N % 16 == 0) /* 512-bit registers: four sums of 16 lanes, one rounding per step (fma) */
        for (; e + 4 <= n; e += 4) {
            const float *w0 = wt + (int64_t)idx[e] * N, *w1 = wt + (int64_t)idx[e + 1] * N;
            const float *w2 = wt + (int64_t)idx[e + 2] * N, *w3 = wt + (int64_t)idx[e + 3] * N;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t m = 0; m < N; m += 16) {
                const __m512 x = _mm512_loadu_ps(d + m);
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + m), x, a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + m), x, a1);
                a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + m), x, a2);
                a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + m), x, a3);
            }
            out[idx[e]] = _mm512_reduce_add_ps(a0);
            out[idx[e + 1]] = _mm512_reduce_add_ps(a1);
            out[idx[e + 2]] = _mm512_reduce_add_ps(a2);
            out[idx[e + 3]] = _mm512_reduce_add_ps(a3);
        }
#endif
    for (; e + 4 <= n; e += 4) {
        const float *restrict w0 = wt + (int64_t)idx[e] * N;
        const float *restrict w1 = wt + (int64_t)idx[e + 1] * N;
        const float *restrict w2 = wt + (int64_t)idx[e + 2] * N;
        const float *restrict w3 = wt + (int64_t)idx[e + 3] * N;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
        for (int64_t m = 0; m < N; ++m) {
            a0 = fmaf(w0[m], d[m], a0);
            a1 = fmaf(w1[m], d[m], a1);
            a2 = fmaf(w2[m], d[m], a2);
            a3 = fmaf(w3[m], d[m], a3);
        }
        out[idx[e]] = a0;
        out[idx[e + 1]] = a1;
        out[idx[e + 2]] = a2;
        out[idx[e + 3]] = a3;
    }
    for (; e < n; ++e) {
        const float *restrict w0 = wt + (int64_t)idx[e] * N;
        float a0 = 0.0f;
#pragma omp simd reduction(+ : a0)
        for (int64_t m = 0; m < N; ++m) a0 = fmaf(w0[m], d[m], a0);
        out[idx[e]] = a0;
    }
}

#define GRID_ROW(GV, GI, REC)                                                                 \
    grid_adjoint_row(N, GV, GI, REC, fa, fb, fc, rr + q * N, GV ? gv + off : NULL,              \
                     GI ? gi + off : NULL, beta, alpha, gain, pv + q * N, pi + q * N, g,        \
                     gn + q * N, dx + off)

void sl_grid_adjoint(int64_t T, int64_t B, int64_t N, const float *u, const float *z,
                     const float *i, const float *gz, const float *gv, const float *gi,
                     const float *wt, const float *beta, const float *alpha, const float *gain,
                     const float *thr, const float *vreset, const float *vleak, const float *r,
                     const float *tm, const float *ts, float dt, float floor_, int subtract,
                     float *dx) {
#pragma omp parallel
    {
        /* a contiguous range of batch rows per thread, time outside (the rows of a step lie
         * together in memory) */
        int64_t b0, b1;
        thread_range(B, &b0, &b1);
        const int64_t rows = b1 > b0 ? b1 - b0 : 0;
        /* per row: p_v, p_i, gz_{t+1}, R; per step: gz_t, the jump's factors, h, 1/ts, r/tm */
        float *pv = (float *)calloc(4 * rows * N + 7 * N + 1, sizeof(float));
        float *pi = pv + rows * N, *gn = pi + rows * N, *rr = gn + rows * N;
        float *g = rr + rows * N, *fa = g + N, *fb = fa + N, *fc = fb + N, *h = fc + N;
        float *its = h + N, *rtm = its + N;
        int32_t *idx = (int32_t *)malloc(sizeof(int32_t) * (N + 8));
        const int rec = wt != NULL;
        for (int64_t n = 0; n < N; ++n) {
            fa[n] = 1.0f;
            its[n] = 1.0f / ts[n];
            rtm[n] = r[n] / tm[n];
        }
        for (int64_t t = T - 1; t >= 0; --t) {
            for (int64_t b = b0; b < b1; ++b) {
                const int64_t q = b - b0, off = (t * B + b) * N, prev = ((t - 1) * B + b) * N;
                if (gz)
                    memcpy(g, gz + off, sizeof(float) * N);
                else
                    memset(g, 0, sizeof(float) * N);
                const int64_t np = row_events(z + off, N, idx);
                for (int64_t e = 0; e < np; ++e) { /* the jump (eventprop.py jump_factors) */
                    const int64_t n = idx[e];
                    float before = t ? u[prev + n] : vleak[n];
                    if (t && z[prev + n] != 0.0f)
                        before = subtract ? before - (thr[n] - vreset[n]) : vreset[n];
                    if (!(before < thr[n])) continue; /* left above by a subtract reset */
                    const float rise = u[off + n] - before;
                    float frac = rise > 0.0f ? (thr[n] - before) / rise : 1.0f;
                    frac = frac < 0.0f ? 0.0f : (frac > 1.0f ? 1.0f : frac);
                    const float cur = i[off + n] / alpha[n] * (1.0f - frac * (1.0f - alpha[n]));
                    const float sm = (vleak[n] - thr[n] + r[n] * cur) / tm[n];
                    const float sp = (vleak[n] - vreset[n] + r[n] * cur) / tm[n];
                    const float mean = rise / dt; /* the membrane's mean slope over the step */
                    float fl = sm > mean ? sm : mean;
                    fl = fl > floor_ ? fl : floor_;
                    fa[n] = subtract ? 1.0f - (sm - sp) / fl : sp / fl;
                    fb[n] = -1.0f / (dt * fl);
                    fc[n] = -1.0f / fl;
                }
                if (gv && gi) {
                    if (rec) GRID_ROW(1, 1, 1); else GRID_ROW(1, 1, 0);
                } else if (gv) {
                    if (rec) GRID_ROW(1, 0, 1); else GRID_ROW(1, 0, 0);
                } else if (gi) {
                    if (rec) GRID_ROW(0, 1, 1); else GRID_ROW(0, 1, 0);
                } else {
                    if (rec) GRID_ROW(0, 0, 1); else GRID_ROW(0, 0, 0);
                }
                for (int64_t e = 0; e < np; ++e) {
                    fa[idx[e]] = 1.0f;
                    fb[idx[e]] = 0.0f;
                    fc[idx[e]] = 0.0f;
                }
                if (rec && t > 0) { /* R for the spikes of step t - 1 (only those read it) */
                    const int64_t nq = row_events(z + prev, N, idx);
                    if (nq) {
                        const float *restrict dq = dx + off, *restrict pq = pv + q * N;
#pragma omp simd
                        for (int64_t m = 0; m < N; ++m) h[m] = dq[m] * its[m] - rtm[m] * pq[m];
                        listed_dots(N, h, wt, idx, nq, rr + q * N);
                    }
                }
            }
        }
        free(pv);
        free(idx);
    }
}

#undef GRID_ROW

/* ------------------------------------------------------------------ surrogate derivative */
/* out [R, N] = sigma'(v - thr[n]) in one pass (surrogate_row for each row). */
void sl_surrogate_grad(int64_t R, int64_t N, const float *v, const float *thr, int kind,
                       float a, float c, float band, float *out) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; ++r)
        surrogate_row(N, v + r * N, thr, kind, a, c, band, out + r * N);
}

/* ------------------------------------------------------------------ event-driven projection */
/* Compressed rows of a [R, K] input: row_ptr [R+1], col [nnz] (int32), val [nnz].
 * Each block of 8 entries gives a bit mask of its non-zeros (one vector compare with AVX).
 * One pass over the input: each thread compresses the chunks of rows it takes into its own
 * growing buffer, row by row (with AVX-512 in one sweep per row, compress_row16; else a row is
 * counted, then read again from L1 while it is compressed);
 * sl_compress_begin returns them with the row counts summed into row_ptr, the caller allocates
 * col/val of the returned size and sl_compress_end copies the threads' buffers into them, in row
 * order, and frees them. */
INLINE int64_t count_row(const float *restrict xr, int64_t K) {
    int64_t c = 0;
    for (int64_t k = 0; k < K; k += 8) c += __builtin_popcount(nonzero_mask8(xr + k, K - k < 8 ? K - k : 8));
    return c;
}

/* The count entries of one row into col/val: few events set bit by set bit (the packed path's
 * 32-byte stores and reloads cost more there, up to 4x in some heap layouts), else packed into
 * col (which has room for K + 8) and gathered. */
INLINE void compress_row(const float *restrict xr, int64_t K, int64_t count, int32_t *restrict col,
                         float *restrict val) {
    if (count <= 16) {
        int64_t p = 0;
        for (int64_t k = 0; k < K; k += 8) {
            unsigned mask = nonzero_mask8(xr + k, K - k < 8 ? K - k : 8);
            while (mask) {
                const int j = __builtin_ctz(mask);
                col[p] = (int32_t)(k + j);
                val[p] = xr[k + j];
                ++p;
                mask &= mask - 1;
            }
        }
        return;
    }
    const int64_t n = row_events(xr, K, col);
    for (int64_t e = 0; e < n; ++e) val[e] = xr[col[e]];
}

#if defined(__AVX512F__)
/* One pass: each block of 16 entries is compared with zero into a mask that compresses its
 * column indices and its values into 16-lane stores, the cursor advancing by its popcount
 * (col and val need room for K + 16). Returns the row's count. */
INLINE int64_t compress_row16(const float *restrict xr, int64_t K, int32_t *restrict col,
                              float *restrict val) {
    int64_t n = 0, k = 0;
    __m512i idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    for (; k < K; k += 16) {
        const __mmask16 in = K - k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (K - k)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(in, xr + k);
        const __mmask16 m = _mm512_mask_cmp_ps_mask(in, v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        _mm512_storeu_si512((void *)(col + n), _mm512_maskz_compress_epi32(m, idx));
        _mm512_storeu_ps(val + n, _mm512_maskz_compress_ps(m, v));
        n += __builtin_popcount((unsigned)m);
        idx = _mm512_add_epi32(idx, step);
    }
    return n;
}
#endif

/* The non-zero entries of one row into col/val (room for K + 16); returns their number. */
INLINE int64_t compress_one_row(const float *restrict xr, int64_t K, int32_t *restrict col,
                                float *restrict val) {
#if defined(__AVX512F__)
    return compress_row16(xr, K, col, val);
#else
    const int64_t count = count_row(xr, K);
    if (count) compress_row(xr, K, count, col, val);
    return count;
#endif
}

struct Packed {
    int threads;    /* buffers in use */
    int32_t **col;  /* [threads] */
    float **val;    /* [threads] */
    int64_t *fill;  /* [threads] entries in each buffer */
    int64_t *cap;   /* [threads] room in each buffer */
    int64_t chunks; /* row chunks, each listed by one thread */
    int *owner;     /* [chunks] the thread whose buffer holds the chunk's entries */
    int64_t *from;  /* [chunks] where they start in that buffer */
    int64_t *to;    /* [chunks] the chunk's first row, then (packed_finish) where its entries
                     * start in col/val (row_ptr at that row) */
    int64_t *count; /* [chunks] how many */
};

static void packed_free(Packed *pk) {
    if (!pk) return;
    for (int t = 0; t < pk->threads; ++t) {
        free(pk->col ? pk->col[t] : NULL);
        free(pk->val ? pk->val[t] : NULL);
    }
    free(pk->col);
    free(pk->val);
    free(pk->fill);
    free(pk->cap);
    free(pk->owner);
    free(pk->from);
    free(pk->to);
    free(pk->count);
    free(pk);
}

/* Buffers for `threads` threads (each with room for `first` entries, grown as needed) and
 * `chunks` chunks (empty until listed); NULL if memory ran out. */
static Packed *packed_new(int threads, int64_t chunks, int64_t first) {
    const size_t nc = (size_t)(chunks > 0 ? chunks : 1), nt = (size_t)threads;
    Packed *pk = (Packed *)calloc(1, sizeof(Packed));
    if (!pk) return NULL;
    pk->threads = threads;
    pk->chunks = chunks;
    pk->col = (int32_t **)calloc(nt, sizeof(int32_t *));
    pk->val = (float **)calloc(nt, sizeof(float *));
    pk->fill = (int64_t *)calloc(nt, sizeof(int64_t));
    pk->cap = (int64_t *)calloc(nt, sizeof(int64_t));
    pk->owner = (int *)calloc(nc, sizeof(int));
    pk->from = (int64_t *)calloc(nc, sizeof(int64_t));
    pk->to = (int64_t *)calloc(nc, sizeof(int64_t));
    pk->count = (int64_t *)calloc(nc, sizeof(int64_t));
    int bad = !pk->col || !pk->val || !pk->fill || !pk->cap || !pk->owner || !pk->from ||
              !pk->to || !pk->count;
    for (int t = 0; t < threads && !bad; ++t) {
        pk->col[t] = (int32_t *)malloc(sizeof(int32_t) * (size_t)first);
        pk->val[t] = (float *)malloc(sizeof(float) * (size_t)first);
        pk->cap[t] = first;
        bad = !pk->col[t] || !pk->val[t];
    }
    if (bad) {
        packed_free(pk);
        return NULL;
    }
    return pk;
}

/* Room for `room` more entries in thread id's buffer (grown to twice its size plus that);
 * 0, or -1 if memory ran out. */
static int packed_reserve(Packed *pk, int id, int64_t room) {
    if (pk->fill[id] + room <= pk->cap[id]) return 0;
    const int64_t cap = 2 * pk->cap[id] + room;
    int32_t *c2 = (int32_t *)realloc(pk->col[id], sizeof(int32_t) * (size_t)cap);
    if (c2) pk->col[id] = c2;
    float *v2 = (float *)realloc(pk->val[id], sizeof(float) * (size_t)cap);
    if (v2) pk->val[id] = v2;
    if (!c2 || !v2) return -1;
    pk->cap[id] = cap;
    return 0;
}

/* The non-zero entries of one row (K floats) appended to thread id's buffer (room for K + 16:
 * the packed paths store 8 or 16 lanes at a time); returns their number, or -1 if memory ran
 * out. */
static int64_t packed_append(Packed *pk, int id, const float *row, int64_t K) {
    if (packed_reserve(pk, id, K + 16)) return -1;
    const int64_t n = pk->fill[id];
    const int64_t count = compress_one_row(row, K, pk->col[id] + n, pk->val[id] + n);
    pk->fill[id] = n + count;
    return count;
}

/* n events (idx, val) appended to thread id's buffer; 0, or -1 if memory ran out. */
static int packed_add(Packed *pk, int id, const int32_t *idx, const float *val, int64_t n) {
    if (packed_reserve(pk, id, n)) return -1;
    const int64_t at = pk->fill[id];
    memcpy(pk->col[id] + at, idx, sizeof(int32_t) * (size_t)n);
    memcpy(pk->val[id] + at, val, sizeof(float) * (size_t)n);
    pk->fill[id] = at + n;
    return 0;
}

/* Chunk c starts at row `first` and is listed by thread id from its buffer's current fill on;
 * packed_chunk_end closes it. */
static void packed_chunk_begin(Packed *pk, int64_t c, int id, int64_t first) {
    pk->owner[c] = id;
    pk->from[c] = pk->fill[id];
    pk->to[c] = first;
}

static void packed_chunk_end(Packed *pk, int64_t c) {
    pk->count[c] = pk->fill[pk->owner[c]] - pk->from[c];
}

/* row_ptr [R+1] holds each row's count at r + 1: summed into the CSR offsets, and each chunk's
 * first row turned into where its entries start; returns the total. */
static int64_t packed_finish(Packed *pk, int64_t R, int64_t *row_ptr) {
    row_ptr[0] = 0;
    for (int64_t r = 0; r < R; ++r) row_ptr[r + 1] += row_ptr[r];
    for (int64_t c = 0; c < pk->chunks; ++c) pk->to[c] = row_ptr[pk->to[c]];
    return row_ptr[R];
}

/* Rows per chunk of the compression's dynamic schedule (events cluster in time, so equal shares
 * of rows are not equal shares of work when each row's events are also summed). */
#define COMPRESS_CHUNK 32

/* Compress x [R, K] into per-thread buffers, chunks of COMPRESS_CHUNK rows handed out as threads
 * finish; row_ptr [R+1] receives the CSR offsets and *nnz the total. With w_t (non-NULL) each
 * row's events are also summed into y [R, M] = x @ w_t as sl_event_matmul sums them (the same
 * floats) while the row is in cache, until a thread's rows so far hold more than twice `density`
 * K per row (plus 16 rows' worth, as sl_event_matmul_dense): then *product = 0 and y is
 * incomplete (the compression goes on), else *product = 1. Returns the handle for
 * sl_compress_end (NULL if memory ran out: *nnz = -1). */
static void *compress_rows(int64_t R, int64_t K, const float *x, int64_t *row_ptr, int64_t *nnz,
                           int64_t M, const float *w_t, float *y, double density, int *product) {
    int most = 1;
#ifdef _OPENMP
    most = omp_get_max_threads();
#endif
    const int64_t chunks = (R + COMPRESS_CHUNK - 1) / COMPRESS_CHUNK;
    /* a first guess of 1/16 of an equal share of the entries, doubled as needed */
    Packed *pk = packed_new(most, chunks, (R / most + 1) * K / 16 + K + 16);
    if (!pk) {
        *nnz = -1;
        return NULL;
    }
    int failed = 0, over = 0;
#pragma omp parallel num_threads(most) reduction(| : failed, over)
    {
        int id = 0;
#ifdef _OPENMP
        id = omp_get_thread_num();
#endif
        int64_t rows = 0;
        int sum = w_t != NULL;
#pragma omp for schedule(dynamic, 1)
        for (int64_t c = 0; c < chunks; ++c) {
            const int64_t r0 = c * COMPRESS_CHUNK;
            const int64_t r1 = r0 + COMPRESS_CHUNK < R ? r0 + COMPRESS_CHUNK : R;
            packed_chunk_begin(pk, c, id, r0);
            for (int64_t r = r0; r < r1 && !failed; ++r) {
                const int64_t count = packed_append(pk, id, x + r * K, K);
                if (count < 0) {
                    failed = 1;
                    break;
                }
                row_ptr[r + 1] = count;
                if (sum) {
                    ++rows;
                    const double most_events = 2.0 * density * (double)(K * rows) + 16.0 * K;
                    if ((double)pk->fill[id] > most_events) {
                        sum = 0;
                        over = 1;
                    } else {
                        const int64_t at = pk->fill[id] - count;
                        accumulate_row(M, count, pk->col[id] + at, pk->val[id] + at, w_t,
                                       y + r * M);
                    }
                }
            }
            packed_chunk_end(pk, c);
        }
    }
    if (failed) {
        packed_free(pk);
        *nnz = -1;
        return NULL;
    }
    *nnz = packed_finish(pk, R, row_ptr);
    if (product) *product = w_t != NULL && !over;
    return pk;
}

/* The events of x [R, K]: row_ptr [R+1] receives the CSR offsets and *nnz the total. Returns the
 * handle for sl_compress_end (NULL if memory ran out: *nnz = -1). */
void *sl_compress_begin(int64_t R, int64_t K, const float *x, int64_t *row_ptr, int64_t *nnz) {
    return compress_rows(R, K, x, row_ptr, nnz, 0, NULL, NULL, 0.0, NULL);
}

/* sl_compress_begin and y [R, M] = x @ w_t [K, M] in the same pass over x (compress_rows:
 * *product = 0 when the rows were too dense for the product to be finished). */
void *sl_compress_product_begin(int64_t R, int64_t K, const float *x, int64_t *row_ptr,
                                int64_t *nnz, int64_t M, const float *w_t, float *y,
                                double density, int *product) {
    return compress_rows(R, K, x, row_ptr, nnz, M, w_t, y, density, product);
}

/* Copy the buffers of sl_compress_begin into col/val [nnz], in row order, and free them (col or
 * val NULL: only free them). */
void sl_compress_end(void *handle, int32_t *col, float *val) {
    Packed *pk = (Packed *)handle;
    if (!pk) return;
    if (col && val) {
#pragma omp parallel for schedule(static) num_threads(pk->threads)
        for (int64_t c = 0; c < pk->chunks; ++c) {
            const int t = pk->owner[c];
            const size_t n = (size_t)pk->count[c];
            memcpy(col + pk->to[c], pk->col[t] + pk->from[c], sizeof(int32_t) * n);
            memcpy(val + pk->to[c], pk->val[t] + pk->from[c], sizeof(float) * n);
        }
    }
    packed_free(pk);
}

/* y [R, M] = x [R, K] (compressed) @ w_t [K, M]  (w_t = W^T: row k holds the weights from k) */
/* [r0, r1): this OpenMP thread's contiguous share of the R rows of an event matrix (CSR
 * row_ptr), balanced by events and rows together (each row counts as one event more), not by
 * rows alone: events cluster in time (speech in the middle of a recording), and a share of the
 * rows can hold most of them. The shares depend only on row_ptr and the thread count. */
INLINE int64_t event_split(const int64_t *row_ptr, int64_t R, int64_t k, int64_t nt) {
    if (k <= 0) return 0;
    if (k >= nt) return R;
    const int64_t base = row_ptr[0]; /* (row_ptr may be a slice of a larger matrix's) */
    const int64_t target = (row_ptr[R] - base + R) * k / nt;
    int64_t lo = 0, hi = R; /* the first r with row_ptr[r] - base + r >= target */
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (row_ptr[mid] - base + mid < target)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

INLINE void thread_event_rows(const int64_t *row_ptr, int64_t R, int64_t *r0, int64_t *r1) {
    *r0 = 0;
    *r1 = R;
#ifdef _OPENMP
    const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
    *r0 = event_split(row_ptr, R, id, nt);
    *r1 = event_split(row_ptr, R, id + 1, nt);
#endif
}

void sl_event_matmul(int64_t R, int64_t M, const int64_t *row_ptr, const int32_t *col,
                     const float *val, const float *w_t, float *y) {
#pragma omp parallel
    {
        int64_t r0, r1;
        thread_event_rows(row_ptr, R, &r0, &r1);
        /* 64 output columns at a time over all of this thread's rows: that slice of w_t
         * (K x 64 floats) stays in cache while the rows go by */
        int64_t m0 = 0;
        for (; m0 + 64 <= M; m0 += 64)
            for (int64_t r = r0; r < r1; ++r)
                accumulate_block(M, m0, row_ptr[r + 1] - row_ptr[r], col + row_ptr[r], 0,
                                 val + row_ptr[r], w_t, y + r * M);
        for (int64_t r = r0; r < r1; ++r)
            accumulate_tail(M, m0, row_ptr[r + 1] - row_ptr[r], col + row_ptr[r], 0,
                            val + row_ptr[r], w_t, y + r * M);
    }
}

/* y [R, M] = x [R, K] @ w_t [K, M] from x's non-zero entries without writing them out (the
 * product without gradient): each thread compresses one row at a time (chunks of rows handed
 * out as threads finish) into a small buffer and sums it as sl_event_matmul does, in column
 * order (the same floats). Returns the number of non-zero entries, or -1 as soon as a
 * thread's rows so far hold more than twice `density` K per row (plus 16 rows' worth: spike
 * data can be denser than average for a while): y is then incomplete, and the caller decides
 * from the whole input (a dense input stops after a few rows). *nonfinite is set to 1 if an
 * entry is NaN or infinite (those are non-zero, so every one is seen). */
int64_t sl_event_matmul_dense(int64_t R, int64_t K, int64_t M, const float *x,
                              const float *w_t, float *y, double density, int *nonfinite) {
    int64_t total = 0;
    int over = 0, bad = 0;
#pragma omp parallel reduction(+ : total) reduction(| : over, bad)
    {
        int32_t *idx = (int32_t *)malloc(sizeof(int32_t) * (size_t)(K + 16));
        float *val = (float *)malloc(sizeof(float) * (size_t)(K + 16));
        over = !idx || !val; /* no memory: the caller takes the other path */
        int64_t rows = 0;    /* this thread's rows so far (their events: total) */
        /* chunks of rows handed out as threads finish: events cluster in time */
#pragma omp for schedule(dynamic, 32)
        for (int64_t r = 0; r < R; ++r) {
            if (over) continue;
            const float *restrict xr = x + r * K;
            const int64_t n = compress_one_row(xr, K, idx, val);
            total += n;
            ++rows;
            if ((double)total > 2.0 * density * (double)(K * rows) + 16.0 * (double)K) {
                over = 1;
                continue;
            }
            for (int64_t e = 0; e < n; ++e) bad |= !isfinite(val[e]);
            accumulate_row(M, n, idx, val, w_t, y + r * M);
        }
        free(idx);
        free(val);
    }
    *nonfinite = bad;
    return over ? -1 : total;
}

/* The events of the rows first, first + stride, ..., first + (count - 1) stride of a CSR
 * matrix sorted by column (a stable counting sort: within a column in that order of rows):
 * column c's events are start[c] .. start[c + 1] (start: K + 1 entries), each with its row's
 * ordinal k (0 .. count - 1) in ord and its value in vals. */
INLINE void sort_events_by_column(int64_t K, const int64_t *restrict row_ptr,
                                  const int32_t *restrict col, const float *restrict val,
                                  int64_t first, int64_t stride, int64_t count,
                                  int64_t *restrict start, int32_t *restrict ord,
                                  float *restrict vals) {
    memset(start, 0, sizeof(int64_t) * (size_t)(K + 1));
    for (int64_t k = 0; k < count; ++k) {
        const int64_t r = first + k * stride;
        for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) ++start[col[p] + 1];
    }
    for (int64_t c = 0; c < K; ++c) start[c + 1] += start[c];
    for (int64_t k = 0; k < count; ++k) {
        const int64_t r = first + k * stride;
        for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) {
            const int64_t at = start[col[p]]++;
            ord[at] = (int32_t)k;
            vals[at] = val[p];
        }
    }
    /* start[c] is now the end of column c's events: shift back to their starts */
    for (int64_t c = K; c > 0; --c) start[c] = start[c - 1];
    start[0] = 0;
}

/* The blocked weight gradient's row blocks hold WG_BLOCK_BYTES of dy (they stay in L2 while
 * their events are summed) and at least 16 rows. */
#define WG_BLOCK_BYTES (256 * 1024)

/* acc[k, :] += sum over this block's events of input k (ascending rows) of val * dy[row, :],
 * the sum of each input's events formed in registers (16 vectors of 16 floats = 256 columns
 * at a time) and added into acc once: acc is read and written once per input and block, not
 * once per event. rows/vals: the block's events sorted by input (start[k] .. start[k + 1]),
 * rows counted from dy's first row (sort_events_by_column). */
INLINE void weight_grad_sum(const int NV, int64_t M, int64_t m0, int64_t s, int64_t e,
                            const int32_t *restrict rows, const float *restrict vals,
                            const float *restrict dy, float *restrict w) {
    v16f a[16];
    for (int q = 0; q < NV; ++q) a[q] = (v16f){0};
    for (int64_t j = s; j < e; ++j) {
        const v16f *restrict d = (const v16f *)(dy + (int64_t)rows[j] * M + m0);
        const float v = vals[j];
        if (v == 1.0f) {
            for (int q = 0; q < NV; ++q) a[q] += d[q];
        } else {
            for (int q = 0; q < NV; ++q) a[q] += v * d[q];
        }
    }
    v16f *restrict out = (v16f *)(w + m0);
    for (int q = 0; q < NV; ++q) out[q] += a[q];
}

INLINE void weight_grad_block(int64_t K, int64_t M, const int64_t *restrict start,
                              const int32_t *restrict rows, const float *restrict vals,
                              const float *restrict dy, float *restrict acc) {
    const int64_t M16 = M - M % 16;
    for (int64_t k = 0; k < K; ++k) {
        const int64_t s = start[k], e = start[k + 1];
        if (s == e) continue;
        float *restrict w = acc + k * M;
        int64_t m0 = 0;
        for (; m0 + 256 <= M16; m0 += 256) /* NV constant: the sums stay in registers */
            weight_grad_sum(16, M, m0, s, e, rows, vals, dy, w);
        for (; m0 < M16; m0 += 16)
            weight_grad_sum(1, M, m0, s, e, rows, vals, dy, w);
        for (int64_t m = M16; m < M; ++m) {
            float a = 0.0f;
            for (int64_t j = s; j < e; ++j) a += vals[j] * dy[(int64_t)rows[j] * M + m];
            w[m] += a;
        }
    }
}

/* dw_t [K, M] = x^T @ dy from the row-wise events (CSR). With several threads each takes a
 * contiguous range of rows (thread_event_rows: balanced by events) into its own copy of dw_t
 * (thread 0 into dw_t itself), and the copies are added in thread order at the end.
 * A small dw_t (at most 8192 floats: it stays in L1) takes the events in row order, each adding
 * its dy row into its input's row of dw_t. A larger one goes by blocks of rows (WG_BLOCK_BYTES
 * of dy): the block's events are sorted by input (a counting sort) and each input's events are
 * summed in registers and added into dw_t once per block, so that dw_t is not read and written
 * once per event (it lies in L2, where that doubled the time).
 * Every entry is then a sum in a fixed order (rows ascending within an input and block, blocks
 * and thread ranges in order): a thread count gives the same floats every run. Returns 0, or -1
 * if memory for a block's sorted events ran out (dw_t is then incomplete). */
int sl_event_weight_grad_rows(int64_t R, int64_t K, int64_t M, const int64_t *row_ptr,
                              const int32_t *col, const float *val, const float *dy,
                              float *dw_t) {
    const int64_t KM = K * M;
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
    if (row_ptr[R] - row_ptr[0] < 4096 || KM < 4096) nt = 1; /* too little work to share */
#endif
    const int blocked = KM > 8192;
    int64_t rb = WG_BLOCK_BYTES / (4 * (M > 0 ? M : 1));
    if (rb < 16) rb = 16;
    float *extra = nt > 1 ? (float *)malloc(sizeof(float) * (size_t)(nt - 1) * KM) : NULL;
    if (nt > 1 && !extra) nt = 1;
    int failed = 0;
#pragma omp parallel num_threads(nt) reduction(| : failed)
    {
        int id = 0;
#ifdef _OPENMP
        id = omp_get_thread_num();
#endif
        float *restrict acc = id == 0 ? dw_t : extra + (int64_t)(id - 1) * KM;
        memset(acc, 0, sizeof(float) * KM);
        int64_t r0, r1;
        thread_event_rows(row_ptr, R, &r0, &r1);
        const int64_t M16 = M - M % 16;
        int64_t *start = NULL;
        int32_t *rows = NULL;
        float *vals = NULL;
        if (blocked) {
            int64_t most = 0; /* the most events in one of this thread's blocks */
            for (int64_t q0 = r0; q0 < r1; q0 += rb) {
                const int64_t q1 = q0 + rb < r1 ? q0 + rb : r1;
                if (row_ptr[q1] - row_ptr[q0] > most) most = row_ptr[q1] - row_ptr[q0];
            }
            start = (int64_t *)malloc(sizeof(int64_t) * (size_t)(K + 1));
            rows = (int32_t *)malloc(sizeof(int32_t) * (size_t)(most + 1));
            vals = (float *)malloc(sizeof(float) * (size_t)(most + 1));
            failed = !start || !rows || !vals;
        }
        if (blocked && !failed) {
            for (int64_t q0 = r0; q0 < r1; q0 += rb) {
                const int64_t q1 = q0 + rb < r1 ? q0 + rb : r1;
                if (row_ptr[q1] == row_ptr[q0]) continue;
                /* ascending rows within each input; rows[] holds r - q0 */
                sort_events_by_column(K, row_ptr, col, val, q0, 1, q1 - q0, start, rows, vals);
                weight_grad_block(K, M, start, rows, vals, dy + q0 * M, acc);
            }
        } else if (!blocked) {
#if defined(__AVX512F__)
            if (M <= 64) { /* a narrow result (a readout): each row of dy in up to four
                            * masked registers, added into each event's row of acc */
                __mmask16 mk[4];
                for (int q = 0; q < 4; ++q) {
                    const int64_t left = M - 16 * q;
                    mk[q] = left >= 16 ? (__mmask16)0xFFFF
                                       : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
                }
                const int nv = (int)((M + 15) / 16);
                for (int64_t r = r0; r < r1; ++r) {
                    __m512 d[4];
                    for (int q = 0; q < nv; ++q)
                        d[q] = _mm512_maskz_loadu_ps(mk[q], dy + r * M + 16 * q);
                    for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) {
                        float *restrict w = acc + (int64_t)col[p] * M;
                        const float a = val[p];
                        for (int q = 0; q < nv; ++q) {
                            const __m512 old = _mm512_maskz_loadu_ps(mk[q], w + 16 * q);
                            const __m512 add = a == 1.0f ? d[q]
                                                         : _mm512_mul_ps(_mm512_set1_ps(a), d[q]);
                            _mm512_mask_storeu_ps(w + 16 * q, mk[q], _mm512_add_ps(old, add));
                        }
                    }
                }
                r0 = r1; /* (done) */
            }
#endif
            for (int64_t r = r0; r < r1; ++r) {
                const float *restrict d = dy + r * M;
                for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) {
                    float *restrict w = acc + (int64_t)col[p] * M;
                    const float a = val[p];
                    /* 16 floats per step (one AVX-512 register where the build has them) */
                    if (a == 1.0f) {
                        for (int64_t m = 0; m < M16; m += 16)
                            *(v16f *)(w + m) += *(const v16f *)(d + m);
                        for (int64_t m = M16; m < M; ++m) w[m] += d[m];
                    } else {
                        for (int64_t m = 0; m < M16; m += 16)
                            *(v16f *)(w + m) += a * *(const v16f *)(d + m);
                        for (int64_t m = M16; m < M; ++m) w[m] += a * d[m];
                    }
                }
            }
        }
        free(start);
        free(rows);
        free(vals);
        if (nt > 1) {
#pragma omp barrier
            int64_t e0, e1;
            thread_range(KM, &e0, &e1);
            for (int k = 1; k < nt; ++k) {
                const float *restrict src = extra + (int64_t)(k - 1) * KM;
#pragma omp simd
                for (int64_t e = e0; e < e1; ++e) dw_t[e] += src[e];
            }
        }
    }
    free(extra);
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------------ per-axon delays */
/* The events of a delay line buf [L, B, K] (CSR over its L*B rows), each input k delayed by
 * its two whole-step taps lo[k] and hi[k] = lo[k] + s (s = 1, or 0 where D = 0): the event
 * (u, b, k, v) of buf step u reaches output step t = u - D + lo[k] with weight (1 - f[k]) and
 * t + s with weight f[k] (targets outside [0, T) dropped).
 * The lo taps are placed once, by a counting sort, into the rows t = -s .. T - 1 (row
 * (t + s) B + b, value v, in the order of buf's rows): lo_row_ptr [(T + s) B + 1], lo_col and
 * lo_val (room for nnz). The hi taps of output step t are the lo taps of step t - s, so the
 * weight gradient takes both taps' sums from these rows (rows s B .. for the lo taps, rows 0 ..
 * for the hi taps). The projection's events are written per output row r = t B + b: lo row t
 * with values v (1 - f[k]), then (s = 1) lo row t - 1 with values v f[k], all in column k:
 * out_row_ptr [T*B+1], out_col and out_val (room for 2 nnz), to be projected with W itself.
 * Returns the number of projection events, or -1 if memory ran out. */
int64_t sl_delay_axon_events(int64_t L, int64_t B, int64_t T, int64_t D, int64_t K,
                             const int64_t *row_ptr, const int32_t *col, const float *val,
                             const int64_t *lo, const float *f, int64_t s, int64_t *lo_row_ptr,
                             int32_t *lo_col, float *lo_val, int64_t *out_row_ptr,
                             int32_t *out_col, float *out_val) {
    const int64_t R = T * B, S = (T + s) * B;
    int64_t *next = (int64_t *)malloc(sizeof(int64_t) * (size_t)(S + 1));
    if (!next) return -1;
    (void)K;
    memset(lo_row_ptr, 0, sizeof(int64_t) * (size_t)(S + 1));
    /* lo row of buf row u: t + s = u - D + s + lo[k], kept where 0 <= t + s < T + s. Each
     * thread counts and places the events of its own batch rows b (the rows (t + s) B + b it
     * touches are its own). */
#pragma omp parallel
    {
        int64_t b0, b1;
        thread_range(B, &b0, &b1);
        for (int64_t u = 0; u < L; ++u)
            for (int64_t b = b0; b < b1; ++b)
                for (int64_t p = row_ptr[u * B + b]; p < row_ptr[u * B + b + 1]; ++p) {
                    const int64_t ts = u - D + s + lo[col[p]];
                    if (ts >= 0 && ts < T + s) ++lo_row_ptr[ts * B + b + 1];
                }
#pragma omp barrier
#pragma omp single
        {
            for (int64_t q = 0; q < S; ++q) lo_row_ptr[q + 1] += lo_row_ptr[q];
            memcpy(next, lo_row_ptr, sizeof(int64_t) * (size_t)(S + 1));
        }
        for (int64_t u = 0; u < L; ++u)
            for (int64_t b = b0; b < b1; ++b)
                for (int64_t p = row_ptr[u * B + b]; p < row_ptr[u * B + b + 1]; ++p) {
                    const int32_t k = col[p];
                    const int64_t ts = u - D + s + lo[k];
                    if (ts < 0 || ts >= T + s) continue;
                    const int64_t q = next[ts * B + b]++;
                    lo_col[q] = k;
                    lo_val[q] = val[p];
                }
    }
    free(next);
    /* output row r = t B + b: lo row t (at r + s B), then lo row t - s (at r) when s = 1 */
    out_row_ptr[0] = 0;
    for (int64_t r = 0; r < R; ++r)
        out_row_ptr[r + 1] = out_row_ptr[r] + (lo_row_ptr[r + s * B + 1] - lo_row_ptr[r + s * B]) +
                             (s ? lo_row_ptr[r + 1] - lo_row_ptr[r] : 0);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
        int64_t o = out_row_ptr[r];
        for (int64_t q = lo_row_ptr[r + s * B]; q < lo_row_ptr[r + s * B + 1]; ++q, ++o) {
            out_col[o] = lo_col[q];
            out_val[o] = lo_val[q] * (1.0f - f[lo_col[q]]);
        }
        if (s)
            for (int64_t q = lo_row_ptr[r]; q < lo_row_ptr[r + 1]; ++q, ++o) {
                out_col[o] = lo_col[q];
                out_val[o] = lo_val[q] * f[lo_col[q]];
            }
    }
    return out_row_ptr[R];
}

/* The gradients of W [M, K] and f [K] from the taps' sums a_lo, a_hi [K, M] (the weight
 * gradients of the lo and the hi taps):
 *   dw [M, K] = ((1 - f_k) a_lo[k, m] + f_k a_hi[k, m]) (in W's layout),
 *   df [K]    = sum_m (a_hi[k, m] - a_lo[k, m]) W[m, k].
 * tmp: room for 2 K M floats. */
void sl_delay_axon_grads(int64_t M, int64_t K, const float *a_lo, const float *a_hi,
                         const float *w, const float *f, float *dw, float *df, float *tmp) {
    float *w_t = tmp, *d_t = tmp + K * M;
    sl_transpose(M, K, w, w_t);
#pragma omp parallel for schedule(static) if (M * K >= 65536)
    for (int64_t k = 0; k < K; ++k) {
        const float a = 1.0f - f[k], c = f[k];
        const float *restrict lo = a_lo + k * M, *restrict hi = a_hi + k * M;
        const float *restrict wk = w_t + k * M;
        float *restrict dk = d_t + k * M;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t m = 0; m < M; ++m) {
            dk[m] = lo[m] * a + hi[m] * c;
            sum += (hi[m] - lo[m]) * wk[m];
        }
        df[k] = sum;
    }
    sl_transpose(K, M, d_t, dw);
}

/* ------------------------------------------------------------------ per-synapse delays */
/* Per synapse (j, i) the weight W[j, i] is split between the whole-step taps lo[j, i] (weight
 * w_lo = (1 - f) W) and lo + 1 (w_hi = f W); the event of the delay line buf [L, B, K] at step
 * u, row b, input i, value v adds v w_lo[j, i] to y[u - D + lo, b, j] and v w_hi[j, i] to
 * y[u - D + lo + 1, b, j] for every output j (targets outside [0, T) dropped, L = T + D).
 * Contract (as delay_taps gives): 0 <= lo <= D - 1 for D >= 1; lo = 0 for D = 0 (where the tap
 * lo + 1 lies beyond D and is dropped, w_hi = 0).
 * Each batch row b is worked in a zero-padded buffer [M, P] (output-major, P = L + D + 2 time
 * slots, slot p = u + lo is output step p - D), so the inner loops need no range test, the two
 * taps of a synapse are adjacent floats (one 8-byte access for both) and the buffer stays in
 * cache while the events of that row b are scattered into it. Arrays by input, the inner loops
 * over the outputs j: off_t [K, M] (int32) = j P + lo[j, i]; w2_t [K, M, 2] = (w_lo, w_hi). */

typedef float v2f __attribute__((vector_size(8), aligned(4)));

INLINE v2f load2(const float *p) {
    v2f r;
    memcpy(&r, p, sizeof r);
    return r;
}

INLINE void store2(float *p, v2f v) { memcpy(p, &v, sizeof v); }

#if defined(__AVX__)
/* (p[0], p[1], 0, 0), p not necessarily 8-byte aligned */
INLINE __m128 load_pair(const float *p) {
    double d;
    memcpy(&d, p, sizeof d);
    return _mm_castpd_ps(_mm_set_sd(d));
}

/* the pairs (at[off[k]], at[off[k] + 1]) for k = 0..3, in one 256-bit vector */
INLINE __m256 gather4_pairs(const float *at, const int32_t *off) {
    __m128 p01 = load_pair(at + off[0]);
    p01 = _mm_loadh_pi(p01, (const __m64 *)(at + off[1]));
    __m128 p23 = load_pair(at + off[2]);
    p23 = _mm_loadh_pi(p23, (const __m64 *)(at + off[3]));
    return _mm256_insertf128_ps(_mm256_castps128_ps256(p01), p23, 1);
}
#endif

/* (at[off[j]], at[off[j] + 1]) += (v, v) * (w2[2j], w2[2j + 1]) for j in [0, M) (v = NULL: 1);
 * the targets of different j must not overlap (they lie in different rows j). */
INLINE void add_pairs_scattered(int64_t M, float *restrict at, const int32_t *restrict off,
                                const float *restrict w2, const float *v) {
    int64_t j = 0;
#if defined(__AVX__)
    /* four pairs per 256-bit vector: gathered and scattered back by 8-byte accesses */
    const __m256 vv = _mm256_set1_ps(v ? v[0] : 1.0f);
    for (; j + 4 <= M; j += 4) {
        float *t0 = at + off[j], *t1 = at + off[j + 1], *t2 = at + off[j + 2],
              *t3 = at + off[j + 3];
        __m256 w = _mm256_loadu_ps(w2 + 2 * j);
        if (v) w = _mm256_mul_ps(vv, w);
        const __m256 s = _mm256_add_ps(gather4_pairs(at, off + j), w);
        const __m128 s01 = _mm256_castps256_ps128(s), s23 = _mm256_extractf128_ps(s, 1);
        _mm_storel_pi((__m64 *)t0, s01);
        _mm_storeh_pi((__m64 *)t1, s01);
        _mm_storel_pi((__m64 *)t2, s23);
        _mm_storeh_pi((__m64 *)t3, s23);
    }
#endif
    for (; j < M; ++j) {
        const v2f w = load2(w2 + 2 * j);
        store2(at + off[j], load2(at + off[j]) + (v ? (v2f){v[0], v[0]} * w : w));
    }
}

/* y [T*B, M] = sum over the events (CSR over the L*B rows of buf) as above. */
void sl_delay_synapse_forward(int64_t L, int64_t B, int64_t T, int64_t D, int64_t K, int64_t M,
                              const int64_t *row_ptr, const int32_t *col, const float *val,
                              const int32_t *off_t, const float *w2_t, float *y) {
    const int64_t P = L + D + 2;
    (void)K;
#pragma omp parallel
    {
        float *buf = (float *)malloc(sizeof(float) * P * M);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            memset(buf, 0, sizeof(float) * P * M);
            for (int64_t u = 0; u < L; ++u) {
                const int64_t r = u * B + b;
                float *restrict at = buf + u;
                for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) {
                    const int64_t i = col[p];
                    /* a spike (value 1) needs no product */
                    add_pairs_scattered(M, at, off_t + i * M, w2_t + i * 2 * M,
                                        val[p] == 1.0f ? NULL : val + p);
                }
            }
            for (int64_t t = 0; t < T; ++t) {
                float *restrict yr = y + (t * B + b) * M;
                for (int64_t j = 0; j < M; ++j) yr[j] = buf[j * P + t + D];
            }
        }
        free(buf);
    }
}

#if defined(__AVX512F__)
/* (a[2j], a[2j + 1]) += sum over the n events e of one input of v[e] (at[off[j]],
 * at[off[j] + 1]) with at = buf + u[e], for j in [j0, j0 + 8 NV): the sums in NV 512-bit
 * registers of eight pairs (one gather of 64-bit lanes per register and event), in event
 * order, added into a once. */
INLINE void gather_pair_sums(const int NV, int64_t j0, const int32_t *restrict off, int64_t n,
                             const int32_t *restrict u, const float *restrict v,
                             const float *restrict buf, float *restrict a) {
    __m256i ix[8];
    __m512 s[8];
    for (int q = 0; q < NV; ++q) {
        ix[q] = _mm256_loadu_si256((const __m256i *)(off + j0 + 8 * q));
        s[q] = _mm512_setzero_ps();
    }
    for (int64_t e = 0; e < n; ++e) {
        const float *at = buf + u[e];
        if (v[e] == 1.0f) { /* a spike needs no product */
            for (int q = 0; q < NV; ++q)
                s[q] = _mm512_add_ps(
                    s[q], _mm512_castpd_ps(_mm512_i32gather_pd(ix[q], (const void *)at, 4)));
        } else {
            const __m512 vv = _mm512_set1_ps(v[e]);
            for (int q = 0; q < NV; ++q)
                s[q] = _mm512_add_ps(s[q], _mm512_mul_ps(vv, _mm512_castpd_ps(_mm512_i32gather_pd(
                                                                 ix[q], (const void *)at, 4))));
        }
    }
    for (int q = 0; q < NV; ++q) {
        float *to = a + 2 * (j0 + 8 * q);
        _mm512_storeu_ps(to, _mm512_add_ps(_mm512_loadu_ps(to), s[q]));
    }
}
#endif

/* The backward pass of sl_delay_synapse_forward for dy [T*B, M]: for each synapse (j, i),
 * A_lo = sum over input i's events (u, b, v) of v dy[u - D + lo, b, j] (0 outside [0, T)) and
 * A_hi likewise at lo + 1 (0 for D = 0); then dw_t[i, j] = (1 - f) A_lo + f A_hi (the weight
 * gradient) and g_t[i, j] = (A_hi - A_lo) w_t[i, j] (the gradient with respect to f[j, i]).
 * Worked by batch row b as the forward pass (dy of row b copied into a zero-padded [M, P]
 * buffer that stays in cache); the row's events are taken input by input (a counting sort),
 * each input's sums over them formed in registers and added once into the thread's [K, M, 2]
 * sums (those lie in L2: not read and written per event); the threads' sums are added at the
 * end. Returns 0, or -1 if memory ran out (dw_t and g_t are then not written). */
int sl_delay_synapse_backward(int64_t L, int64_t B, int64_t T, int64_t D, int64_t K, int64_t M,
                              const int64_t *row_ptr, const int32_t *col, const float *val,
                              const int32_t *off_t, const float *f_t, const float *w_t,
                              const float *dy, float *dw_t, float *g_t) {
    const int64_t P = L + D + 2, KM = K * M;
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    int64_t most = 0; /* the most events of one batch row */
    for (int64_t b = 0; b < B; ++b) {
        int64_t n = 0;
        for (int64_t u = 0; u < L; ++u) n += row_ptr[u * B + b + 1] - row_ptr[u * B + b];
        if (n > most) most = n;
    }
    float *acc = (float *)calloc((size_t)nt * 2 * KM, sizeof(float));
    if (!acc) return -1;
    int failed = 0;
#pragma omp parallel num_threads(nt) reduction(| : failed)
    {
        int id = 0;
#ifdef _OPENMP
        id = omp_get_thread_num();
#endif
        float *a2 = acc + (int64_t)id * 2 * KM;
        float *buf = (float *)calloc((size_t)P * M, sizeof(float));
        int64_t *start = (int64_t *)malloc(sizeof(int64_t) * (size_t)(K + 1));
        int32_t *su = (int32_t *)malloc(sizeof(int32_t) * (size_t)(most + 1));
        float *sv = (float *)malloc(sizeof(float) * (size_t)(most + 1));
        failed = !buf || !start || !su || !sv;
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (failed) continue;
            for (int64_t t = 0; t < T; ++t) {
                const float *restrict dr = dy + (t * B + b) * M;
                for (int64_t j = 0; j < M; ++j) buf[j * P + t + D] = dr[j];
            }
            /* the row's events (rows u B + b of the line) by input, steps u ascending */
            sort_events_by_column(K, row_ptr, col, val, b, B, L, start, su, sv);
            for (int64_t i = 0; i < K; ++i) {
                const int64_t s = start[i], e = start[i + 1], n = e - s;
                if (n == 0) continue;
                const int32_t *restrict off = off_t + i * M;
                float *restrict ai = a2 + i * 2 * M;
                int64_t j = 0;
                if (D == 0) { /* the tap lo + 1 is dropped: A_hi stays 0 */
                    for (; j < M; ++j) {
                        float sum = 0.0f;
                        for (int64_t x = s; x < e; ++x) sum += sv[x] * buf[su[x] + off[j]];
                        ai[2 * j] += sum;
                    }
                    continue;
                }
#if defined(__AVX512F__)
                for (; j + 64 <= M; j += 64) /* NV constant: the sums stay in registers */
                    gather_pair_sums(8, j, off, n, su + s, sv + s, buf, ai);
                for (; j + 8 <= M; j += 8)
                    gather_pair_sums(1, j, off, n, su + s, sv + s, buf, ai);
#endif
                for (; j < M; ++j) {
                    v2f sum = {0.0f, 0.0f};
                    for (int64_t x = s; x < e; ++x)
                        sum += (v2f){sv[x], sv[x]} * load2(buf + su[x] + off[j]);
                    store2(ai + 2 * j, load2(ai + 2 * j) + sum);
                }
            }
        }
        free(buf);
        free(start);
        free(su);
        free(sv);
#pragma omp barrier
        int64_t e0, e1;
        thread_range(KM, &e0, &e1);
        for (int64_t e = e0; e < e1; ++e) {
            float lo_sum = 0.0f, hi_sum = 0.0f;
            for (int k = 0; k < nt; ++k) {
                lo_sum += acc[(int64_t)k * 2 * KM + 2 * e];
                hi_sum += acc[(int64_t)k * 2 * KM + 2 * e + 1];
            }
            dw_t[e] = (1.0f - f_t[e]) * lo_sum + f_t[e] * hi_sum;
            g_t[e] = (hi_sum - lo_sum) * w_t[e];
        }
    }
    free(acc);
    return failed ? -1 : 0;
}

/* ------------------------------------------------------------------ transpose */
#if defined(__AVX512F__)
/* dst[c, r] = src[r, c] for one full 16 x 16 tile (rows ld_s apart in src, ld_d in dst):
 * 32-bit, 64-bit and two 128-bit lane shuffles. */
INLINE void transpose16(const float *restrict src, int64_t ld_s, float *restrict dst,
                        int64_t ld_d) {
    __m512 r[16], t[16];
    for (int j = 0; j < 16; ++j) r[j] = _mm512_loadu_ps(src + j * ld_s);
    for (int j = 0; j < 16; j += 2) {
        t[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
    }
    for (int j = 0; j < 16; j += 4)
        for (int q = 0; q < 2; ++q) {
            const __m512d a = _mm512_castps_pd(t[j + q]), b = _mm512_castps_pd(t[j + q + 2]);
            r[j + q] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
            r[j + q + 2] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        }
    for (int j = 0; j < 16; j += 8)
        for (int q = 0; q < 4; ++q) {
            t[j + q] = _mm512_shuffle_f32x4(r[j + q], r[j + q + 4], 0x88);
            t[j + q + 4] = _mm512_shuffle_f32x4(r[j + q], r[j + q + 4], 0xdd);
        }
    for (int q = 0; q < 8; ++q) {
        r[q] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0x88);
        r[q + 8] = _mm512_shuffle_f32x4(t[q], t[q + 8], 0xdd);
    }
    /* r[k] now holds column k of the tile, except that the second and third of each group of
     * four are swapped (the 64-bit step pairs rows 0/2 and 1/3) */
    static const int held[16] = {0, 2, 1, 3, 4, 6, 5, 7, 8, 10, 9, 11, 12, 14, 13, 15};
    for (int c = 0; c < 16; ++c) _mm512_storeu_ps(dst + c * ld_d, r[held[c]]);
}
#endif

/* dst [C, R] = src [R, C] transposed (both row-major): 16 x 16 tiles (in registers with
 * AVX-512, else element by element within the tile), rows of tiles shared among the threads
 * (one thread below 64 K entries, where starting them costs more than they save). */
void sl_transpose(int64_t R, int64_t C, const float *src, float *dst) {
    const int64_t tiles = (R + 15) / 16;
#pragma omp parallel for schedule(static) if (R * C >= 65536)
    for (int64_t tr = 0; tr < tiles; ++tr) {
        const int64_t r0 = tr * 16, r1 = r0 + 16 < R ? r0 + 16 : R;
        int64_t c0 = 0;
#if defined(__AVX512F__)
        if (r1 - r0 == 16)
            for (; c0 + 16 <= C; c0 += 16) transpose16(src + r0 * C + c0, C, dst + c0 * R + r0, R);
#endif
        for (; c0 < C; c0 += 16) {
            const int64_t c1 = c0 + 16 < C ? c0 + 16 : C;
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t c = c0; c < c1; ++c) dst[c * R + r] = src[r * C + c];
        }
    }
}
