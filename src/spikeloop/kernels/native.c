/* Native CPU kernels of spikeloop (float32): fused neuron time loops and event-driven
 * projections. Compiled on first use by spikeloop/kernels/native.py and called through ctypes.
 *
 * The neuron loop implements, operation for operation and in the same rounding order, the step
 * functions of spikeloop/dynamics/neurons.py (cuba_lif_step / lif_step / if_step / cuba_li_step /
 * li_step with `fire`); tests/test_kernels.py checks it against them. A voltage model is the
 * current-based one with alpha = 0 (then i' = x and gain = x_gain):
 *
 *   i'  = i + x_eff            x_eff = x + W_rec z_prev   (recurrent populations)
 *   u   = beta * v + rest + gain * i'
 *   vt  = refractory ? v_reset : u                       (only with refrac_steps > 0)
 *   z   = vt - thr > 0                                   (spiking populations)
 *   v  <- vt - z * (vt - v_reset)   (reset "value")  |  vt - z * (thr - v_reset)  ("subtract")
 *   i  <- alpha * i'
 *   r  <- z ? refrac_steps : max(r - 1, 0)
 *
 * Build flags include -ffp-contract=off so no multiply-add is fused: results are bit-identical to
 * the element-wise torch reference.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    int64_t T, B, N;
    int spiking;      /* 1: threshold + reset; 0: leaky-integrator readout */
    int reset_mode;   /* 0: value, 1: subtract */
    int refrac_steps; /* 0: no refractoriness */
} Shape;

/* ------------------------------------------------------------------ neuron forward */
/* x [T,B,N]; coefficients [N]; state in/out v,i,r [B,N]; zprev in/out [B,N] (recurrent only);
 * wrec_t [N,N] = W_rec transposed (row j: the weights *from* neuron j), NULL if not recurrent;
 * outputs out_v, out_z, out_i [T,B,N] (out_z NULL for readouts); optional: ip [T,B,N] (i', for
 * time-constant gradients), mask [T,B,N] (1 where the neuron was not refractory). */
void sl_neuron_forward(const Shape *s, const float *x, const float *beta, const float *rest,
                       const float *alpha, const float *gain, const float *thr,
                       const float *vreset, float *v, float *i, float *r, float *zprev,
                       const float *wrec_t, float *out_v, float *out_z, float *out_i, float *ip,
                       uint8_t *mask) {
    const int64_t T = s->T, B = s->B, N = s->N;
#pragma omp parallel
    {
        float *rec = NULL;
        if (wrec_t) rec = (float *)malloc(sizeof(float) * N);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            float *vb = v + b * N, *ib = i + b * N, *rb = r + b * N;
            float *zb = zprev ? zprev + b * N : NULL;
            for (int64_t t = 0; t < T; ++t) {
                const int64_t off = (t * B + b) * N;
                const float *xt = x + off;
                if (rec) {
                    memset(rec, 0, sizeof(float) * N);
                    for (int64_t j = 0; j < N; ++j) {
                        const float zj = zb[j];
                        if (zj == 0.0f) continue;
                        const float *w = wrec_t + j * N;
                        if (zj == 1.0f) {
                            for (int64_t n = 0; n < N; ++n) rec[n] += w[n];
                        } else {
                            for (int64_t n = 0; n < N; ++n) rec[n] += zj * w[n];
                        }
                    }
                }
                for (int64_t n = 0; n < N; ++n) {
                    float xe = xt[n];
                    if (rec) xe = xe + rec[n];
                    const float ipn = ib[n] + xe;
                    const float u = beta[n] * vb[n] + rest[n] + gain[n] * ipn;
                    float vt = u;
                    if (s->spiking) {
                        int active = 1;
                        if (s->refrac_steps) {
                            active = rb[n] <= 0.0f;
                            if (!active) vt = vreset[n];
                            if (mask) mask[off + n] = (uint8_t)active;
                        }
                        const float z = (vt - thr[n]) > 0.0f ? 1.0f : 0.0f;
                        if (s->reset_mode == 0)
                            vb[n] = vt - z * (vt - vreset[n]);
                        else
                            vb[n] = vt - z * (thr[n] - vreset[n]);
                        if (s->refrac_steps) {
                            const float rm = rb[n] - 1.0f;
                            rb[n] = z > 0.0f ? (float)s->refrac_steps : (rm > 0.0f ? rm : 0.0f);
                        }
                        out_z[off + n] = z;
                    } else {
                        vb[n] = vt;
                    }
                    out_v[off + n] = vt;
                    ib[n] = alpha[n] * ipn;
                    if (out_i) out_i[off + n] = ib[n];
                    if (ip) ip[off + n] = ipn;
                }
                if (zb) memcpy(zb, out_z + off, sizeof(float) * N);
            }
        }
        free(rec);
    }
}

/* ------------------------------------------------------------------ neuron backward */
/* Reverse-time adjoint of sl_neuron_forward (reset with detached spikes).
 * Inputs: out_v, out_z (forward outputs), sg [T,B,N] = surrogate derivative at out_v - thr
 * (zero outside the band for sparse backprop), v0 (initial membrane [B,N]), z0 (initial spikes,
 * recurrent), ip (i', NULL if no time-constant gradients), mask (NULL without refractoriness);
 * incoming gradients gv, gz, gi [T,B,N] (each may be NULL), final-state gradients gvT, giT, gzT
 * [B,N] (may be NULL).
 * Outputs: dx [T,B,N]; dv0, di0, dz0 [B,N]; per-neuron coefficient gradients [N] (summed over
 * batch and time) dbeta, drest, dalpha, dgain, dthr, dvreset (dbeta/dalpha/dgain only if ip).
 * For recurrent populations the spike gradient of step k-1 receives W_rec^T dx_k; it is computed
 * only where sg != 0 (event-driven: with a band-limited surrogate this is the sparse backprop
 * of Perez-Nieves & Goodman 2021), and in full for dz0. */
void sl_neuron_backward(const Shape *s, const float *out_v, const float *out_z, const float *sg,
                        const float *v0, const float *ip, const uint8_t *mask,
                        const float *beta, const float *alpha, const float *gain,
                        const float *thr, const float *vreset, const float *wrec_t,
                        const float *gv, const float *gz, const float *gi, const float *gvT,
                        const float *giT, const float *gzT, float *dx, float *dv0, float *di0,
                        float *dz0, float *dbeta, float *drest, float *dalpha, float *dgain,
                        float *dthr, float *dvreset) {
    const int64_t T = s->T, B = s->B, N = s->N;
    const int spiking = s->spiking, subtract = s->reset_mode == 1;
    memset(dbeta, 0, sizeof(float) * N);
    memset(drest, 0, sizeof(float) * N);
    memset(dalpha, 0, sizeof(float) * N);
    memset(dgain, 0, sizeof(float) * N);
    memset(dthr, 0, sizeof(float) * N);
    memset(dvreset, 0, sizeof(float) * N);
#pragma omp parallel
    {
        /* per-thread accumulators of the coefficient gradients (double: sums of T*B terms) */
        double *acc = (double *)calloc(6 * N, sizeof(double));
        double *a_beta = acc, *a_rest = acc + N, *a_alpha = acc + 2 * N, *a_gain = acc + 3 * N,
               *a_thr = acc + 4 * N, *a_vr = acc + 5 * N;
        float *lv = (float *)malloc(sizeof(float) * N);   /* dL/dv_{k+1} */
        float *li = (float *)malloc(sizeof(float) * N);   /* dL/di_{k+1} */
        float *rdz = (float *)malloc(sizeof(float) * N);  /* recurrent dL/dz_k from step k+1 */
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            for (int64_t n = 0; n < N; ++n) {
                lv[n] = gvT ? gvT[b * N + n] : 0.0f;
                li[n] = giT ? giT[b * N + n] : 0.0f;
                rdz[n] = gzT ? gzT[b * N + n] : 0.0f;
            }
            for (int64_t t = T - 1; t >= 0; --t) {
                const int64_t off = (t * B + b) * N;
                const int64_t prev = ((t - 1) * B + b) * N;
                for (int64_t n = 0; n < N; ++n) {
                    float dvt = gv ? gv[off + n] : 0.0f;
                    float du;
                    if (spiking) {
                        const float z = out_z[off + n];
                        const float gzt = (gz ? gz[off + n] : 0.0f) + rdz[n];
                        const float gs = gzt * sg[off + n];
                        dvt += gs;
                        a_thr[n] -= gs;
                        if (subtract) {
                            dvt += lv[n];
                            a_thr[n] -= lv[n] * z;
                        } else {
                            dvt += lv[n] * (1.0f - z);
                        }
                        a_vr[n] += lv[n] * z;
                        if (mask && !mask[off + n]) {
                            a_vr[n] += dvt;
                            du = 0.0f;
                        } else {
                            du = dvt;
                        }
                    } else {
                        du = dvt + lv[n];
                    }
                    const float git = li[n] + (gi ? gi[off + n] : 0.0f);
                    const float dip = gain[n] * du + alpha[n] * git;
                    a_rest[n] += du;
                    if (ip) {
                        float vk;  /* membrane before step t (after the previous reset) */
                        if (t == 0) {
                            vk = v0[b * N + n];
                        } else if (spiking) {
                            const float vp = out_v[prev + n], zp = out_z[prev + n];
                            vk = subtract ? vp - zp * (thr[n] - vreset[n])
                                          : vp - zp * (vp - vreset[n]);
                        } else {
                            vk = out_v[prev + n];
                        }
                        a_beta[n] += (double)du * vk;
                        a_gain[n] += (double)du * ip[off + n];
                        a_alpha[n] += (double)git * ip[off + n];
                    }
                    lv[n] = beta[n] * du;
                    li[n] = dip;
                    dx[off + n] = dip;
                }
                /* recurrent: dL/dz_{t-1}[j] = sum_n W[n, j] dx_t[n] (only where it is used) */
                if (wrec_t) {
                    const float *dxt = dx + off;
                    for (int64_t j = 0; j < N; ++j) {
                        if (t > 0 && sg[prev + j] == 0.0f) {
                            rdz[j] = 0.0f;
                            continue;
                        }
                        const float *w = wrec_t + j * N;
                        float acc_j = 0.0f;
                        for (int64_t n = 0; n < N; ++n) acc_j += w[n] * dxt[n];
                        rdz[j] = acc_j;
                    }
                } else {
                    for (int64_t n = 0; n < N; ++n) rdz[n] = 0.0f;
                }
            }
            for (int64_t n = 0; n < N; ++n) {
                dv0[b * N + n] = lv[n];
                di0[b * N + n] = li[n];
                if (dz0) dz0[b * N + n] = rdz[n];
            }
        }
#pragma omp critical
        {
            for (int64_t n = 0; n < N; ++n) {
                dbeta[n] += (float)a_beta[n];
                drest[n] += (float)a_rest[n];
                dalpha[n] += (float)a_alpha[n];
                dgain[n] += (float)a_gain[n];
                dthr[n] += (float)a_thr[n];
                dvreset[n] += (float)a_vr[n];
            }
        }
        free(acc);
        free(lv);
        free(li);
        free(rdz);
    }
}

/* ------------------------------------------------------------------ event-driven projection */
/* Compressed rows of a [R, K] input: row_ptr [R+1], col [nnz] (int32), val [nnz]. */
int64_t sl_count_nonzero_rows(int64_t R, int64_t K, const float *x, int64_t *row_ptr) {
    row_ptr[0] = 0;
    for (int64_t r = 0; r < R; ++r) {
        const float *xr = x + r * K;
        int64_t c = 0;
        for (int64_t k = 0; k < K; ++k) c += xr[k] != 0.0f;
        row_ptr[r + 1] = row_ptr[r] + c;
    }
    return row_ptr[R];
}

void sl_compress_rows(int64_t R, int64_t K, const float *x, const int64_t *row_ptr, int32_t *col,
                      float *val) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
        const float *xr = x + r * K;
        int64_t p = row_ptr[r];
        for (int64_t k = 0; k < K; ++k) {
            if (xr[k] != 0.0f) {
                col[p] = (int32_t)k;
                val[p] = xr[k];
                ++p;
            }
        }
    }
}

/* y [R, M] = x [R, K] (compressed) @ w_t [K, M]  (w_t = W^T: row k holds the weights from k) */
void sl_event_matmul(int64_t R, int64_t M, const int64_t *row_ptr, const int32_t *col,
                     const float *val, const float *w_t, float *y) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
        float *yr = y + r * M;
        memset(yr, 0, sizeof(float) * M);
        for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) {
            const float a = val[p];
            const float *w = w_t + (int64_t)col[p] * M;
            if (a == 1.0f) {
                for (int64_t m = 0; m < M; ++m) yr[m] += w[m];
            } else {
                for (int64_t m = 0; m < M; ++m) yr[m] += a * w[m];
            }
        }
    }
}

/* dw_t [K, M] = x^T @ dy  (x compressed [R, K], dy [R, M]); threads split the M columns. */
void sl_event_weight_grad(int64_t R, int64_t K, int64_t M, const int64_t *row_ptr,
                          const int32_t *col, const float *val, const float *dy, float *dw_t) {
    memset(dw_t, 0, sizeof(float) * K * M);
#pragma omp parallel
    {
        int64_t m0 = 0, m1 = M;
#ifdef _OPENMP
        const int nt = omp_get_num_threads(), id = omp_get_thread_num();
        const int64_t chunk = ((M + nt - 1) / nt + 15) / 16 * 16;
        m0 = id * chunk < M ? id * chunk : M;
        m1 = m0 + chunk < M ? m0 + chunk : M;
#endif
        for (int64_t r = 0; r < R; ++r) {
            const float *dyr = dy + r * M;
            for (int64_t p = row_ptr[r]; p < row_ptr[r + 1]; ++p) {
                const float a = val[p];
                float *g = dw_t + (int64_t)col[p] * M;
                if (a == 1.0f) {
                    for (int64_t m = m0; m < m1; ++m) g[m] += dyr[m];
                } else {
                    for (int64_t m = m0; m < m1; ++m) g[m] += a * dyr[m];
                }
            }
        }
    }
}

void sl_set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}
