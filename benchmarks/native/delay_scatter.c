/* The bare memory accesses of per-synapse delays (benchmarks/delay_scatter.py): every input
 * event of a batch row touches, for each of its M synapses, the two adjacent time slots of that
 * synapse's own delay in the row's output-major buffer [M, P] (slot j P + u + lo[i, j]) - one
 * scattered 8-byte update forward (the weights' pair added), one scattered 8-byte read backward
 * (added into the synapse's sums). Nothing else of a training step is done here, so the times
 * are what the accesses alone cost on this machine, in each formulation.
 *
 * Events: per batch row b the events e in [ptr[b], ptr[b + 1]) in time order, step u[e] (of
 * the delay line), input i[e]. off [K, M] (int32) = j P + lo[i, j]; w2 [K, M, 2] the pairs.
 * One thread (the caller sets none): the rates of one core. */
#include "sl_native.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

typedef float v2f __attribute__((vector_size(8), aligned(4)));

static inline v2f load2(const float *p) {
    v2f r;
    memcpy(&r, p, sizeof r);
    return r;
}

static inline void store2(float *p, v2f v) { memcpy(p, &v, sizeof v); }

/* 1 if this build has the AVX-512 formulations (variant 1 of each), else 0 */
int ds_has_avx512(void) {
#if defined(__AVX512F__)
    return 1;
#else
    return 0;
#endif
}

/* Forward accesses. variant 0: 8-byte scalar read-modify-write of each pair in buf [M, P];
 * variant 1: eight pairs per AVX-512 gather and scatter of 64-bit lanes (same buffer, same
 * additions in the same order: the same floats); variant 2: the time-major ring [Q, M] of
 * Q = D + 2 slots (Q M floats: in L1 for M = 256, D = 25), two 4-byte read-modify-writes per
 * synapse at slots (u + lo) mod Q and (u + lo + 1) mod Q, the slot of step u cleared after its
 * events. buf receives the last batch row's buffer (variants 0 and 1: [M, P]; variant 2: the
 * ring). Returns 0, or -1 for a variant this build lacks. */
int ds_update(int variant, int64_t B, int64_t K, int64_t M, int64_t P, int64_t D,
              const int64_t *ptr, const int32_t *u, const int32_t *in, const int32_t *off,
              const int32_t *lo, const float *w2, float *buf) {
    (void)K;
    if (variant == 1 && !ds_has_avx512()) return -1;
    if (variant < 0 || variant > 2) return -1;
    const int64_t Q = D + 2;
    for (int64_t b = 0; b < B; ++b) {
        memset(buf, 0, sizeof(float) * (size_t)(variant == 2 ? Q * M : M * P));
        int64_t done = 0; /* variant 2: the ring's slots cleared up to this step */
        for (int64_t e = ptr[b]; e < ptr[b + 1]; ++e) {
            const int64_t i = in[e];
            const float *restrict w = w2 + i * 2 * M;
            if (variant == 0) {
                float *restrict at = buf + u[e];
                const int32_t *restrict o = off + i * M;
                for (int64_t j = 0; j < M; ++j) store2(at + o[j], load2(at + o[j]) + load2(w + 2 * j));
            } else if (variant == 1) {
#if defined(__AVX512F__)
                float *restrict at = buf + u[e];
                const int32_t *restrict o = off + i * M;
                int64_t j = 0;
                for (; j + 8 <= M; j += 8) {
                    const __m256i ix = _mm256_loadu_si256((const __m256i *)(o + j));
                    const __m512 g = _mm512_castpd_ps(_mm512_i32gather_pd(ix, (const void *)at, 4));
                    const __m512 s = _mm512_add_ps(g, _mm512_loadu_ps(w + 2 * j));
                    _mm512_i32scatter_pd((void *)at, ix, _mm512_castps_pd(s), 4);
                }
                for (; j < M; ++j) store2(at + o[j], load2(at + o[j]) + load2(w + 2 * j));
#endif
            } else {
                /* the slots of the steps before u[e] are complete (an implementation would
                 * hand them out here) and are cleared for the steps Q later */
                if (u[e] - done > Q) done = u[e] - Q;
                for (; done < u[e]; ++done) memset(buf + (done % Q) * M, 0, sizeof(float) * (size_t)M);
                const int32_t *restrict l = lo + i * M;
                const int64_t now = u[e] % Q; /* (lo < Q - 1: no division per synapse) */
                for (int64_t j = 0; j < M; ++j) {
                    const int64_t s = now + l[j] - (now + l[j] >= Q ? Q : 0);
                    const int64_t t = s + 1 == Q ? 0 : s + 1;
                    buf[s * M + j] += w[2 * j];
                    buf[t * M + j] += w[2 * j + 1];
                }
            }
        }
    }
    return 0;
}

/* Backward accesses: for each event and synapse the pair at buf [M, P] added into the
 * synapse's two sums. variant 0: events in time order, 8-byte scalar loads, the sums in
 * acc [K, M, 2] (the event's input's 2 M floats read and written per event); variant 1: the
 * same with eight pairs per AVX-512 gather; variant 2: the row's events taken input by input
 * (sorted by input, a counting sort, once per row), each input's sums over its events formed
 * in registers (eight pairs per gather; scalar without AVX-512) and added into acc once per
 * row. buf is read as it is (the caller fills it); acc receives the sums over all rows.
 * Returns 0, or -1 for a variant this build lacks or if memory ran out. */
int ds_read(int variant, int64_t B, int64_t K, int64_t M, const int64_t *ptr,
            const int32_t *u, const int32_t *in, const int32_t *off, const float *buf,
            float *acc) {
    if (variant == 1 && !ds_has_avx512()) return -1;
    if (variant < 0 || variant > 2) return -1;
    memset(acc, 0, sizeof(float) * (size_t)(2 * K * M));
    int64_t most = 0;
    for (int64_t b = 0; b < B; ++b)
        if (ptr[b + 1] - ptr[b] > most) most = ptr[b + 1] - ptr[b];
    int64_t *start = variant == 2 ? (int64_t *)malloc(sizeof(int64_t) * (size_t)(K + 1)) : NULL;
    int32_t *su = variant == 2 ? (int32_t *)malloc(sizeof(int32_t) * (size_t)(most + 1)) : NULL;
    if (variant == 2 && (!start || !su)) {
        free(start);
        free(su);
        return -1;
    }
    for (int64_t b = 0; b < B; ++b) {
        if (variant == 2) {
            memset(start, 0, sizeof(int64_t) * (size_t)(K + 1));
            for (int64_t e = ptr[b]; e < ptr[b + 1]; ++e) ++start[in[e] + 1];
            for (int64_t k = 0; k < K; ++k) start[k + 1] += start[k];
            for (int64_t e = ptr[b]; e < ptr[b + 1]; ++e) su[start[in[e]]++] = u[e];
            for (int64_t k = K; k > 0; --k) start[k] = start[k - 1];
            start[0] = 0;
            for (int64_t i = 0; i < K; ++i) {
                if (start[i] == start[i + 1]) continue;
                const int32_t *restrict o = off + i * M;
                float *restrict a = acc + i * 2 * M;
                int64_t j = 0;
#if defined(__AVX512F__)
                for (; j + 64 <= M; j += 64) { /* eight registers of sums */
                    __m512 s[8];
                    __m256i ix[8];
                    for (int q = 0; q < 8; ++q) {
                        s[q] = _mm512_setzero_ps();
                        ix[q] = _mm256_loadu_si256((const __m256i *)(o + j + 8 * q));
                    }
                    for (int64_t e = start[i]; e < start[i + 1]; ++e) {
                        const float *at = buf + su[e];
                        for (int q = 0; q < 8; ++q)
                            s[q] = _mm512_add_ps(s[q], _mm512_castpd_ps(_mm512_i32gather_pd(
                                                           ix[q], (const void *)at, 4)));
                    }
                    for (int q = 0; q < 8; ++q)
                        _mm512_storeu_ps(a + 2 * j + 16 * q,
                                         _mm512_add_ps(_mm512_loadu_ps(a + 2 * j + 16 * q), s[q]));
                }
#endif
                for (; j < M; ++j) {
                    v2f s = {0.0f, 0.0f};
                    for (int64_t e = start[i]; e < start[i + 1]; ++e) s += load2(buf + su[e] + o[j]);
                    store2(a + 2 * j, load2(a + 2 * j) + s);
                }
            }
            continue;
        }
        for (int64_t e = ptr[b]; e < ptr[b + 1]; ++e) {
            const int64_t i = in[e];
            const float *restrict at = buf + u[e];
            const int32_t *restrict o = off + i * M;
            float *restrict a = acc + i * 2 * M;
            int64_t j = 0;
#if defined(__AVX512F__)
            if (variant == 1)
                for (; j + 8 <= M; j += 8) {
                    const __m256i ix = _mm256_loadu_si256((const __m256i *)(o + j));
                    const __m512 g = _mm512_castpd_ps(_mm512_i32gather_pd(ix, (const void *)at, 4));
                    _mm512_storeu_ps(a + 2 * j, _mm512_add_ps(_mm512_loadu_ps(a + 2 * j), g));
                }
#endif
            for (; j < M; ++j) store2(a + 2 * j, load2(a + 2 * j) + load2(at + o[j]));
        }
    }
    free(start);
    free(su);
    return 0;
}
