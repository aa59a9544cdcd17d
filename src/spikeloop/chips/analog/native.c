/* Native CPU kernels of the emulated analog chip (float32): its column ADC read-out in one pass
 * and the Gaussian noise generator behind its read and PSP noise. Compiled on first use by
 * spikeloop/chips/analog/_native.py with the machinery of spikeloop/kernels/native.py (same
 * flags, cache and fallback) and called through ctypes. sl_native.h comes from
 * spikeloop/kernels (the builder puts that folder on the include path).
 */
#include "sl_native.h" /* standard headers, INLINE, sl_set_threads */

/* ------------------------------------------------------------------ noise */
/* Standard normal numbers (Marsaglia & Tsang's ziggurat, 128 layers) from SplitMix64. The output
 * is cut into chunks of NORMAL_CHUNK numbers; chunk c draws from the stream seeded with
 * (seed, c), so the numbers depend on the seed only, not on the number of threads. The 7 layer
 * bits and the 32 sign/magnitude bits come from different halves of one 64-bit draw (the
 * original SHR3 version reused bits, a known flaw). */
#define NORMAL_CHUNK 4096
static double zig_k[128], zig_w[128], zig_f[128];
static uint32_t zig_ki[128]; /* zig_k as integers for the fast test */
static float zig_wf[128];

__attribute__((constructor)) static void zig_setup(void) { /* at load time */
    const double m1 = 2147483648.0, vn = 9.91256303526217e-3;
    double dn = 3.442619855899, tn = dn;
    const double q = vn / exp(-0.5 * dn * dn);
    zig_k[0] = (dn / q) * m1;
    zig_k[1] = 0.0;
    zig_w[0] = q / m1;
    zig_w[127] = dn / m1;
    zig_f[0] = 1.0;
    zig_f[127] = exp(-0.5 * dn * dn);
    for (int i = 126; i >= 1; --i) {
        dn = sqrt(-2.0 * log(vn / dn + exp(-0.5 * dn * dn)));
        zig_k[i + 1] = (dn / tn) * m1;
        tn = dn;
        zig_f[i] = exp(-0.5 * dn * dn);
        zig_w[i] = dn / m1;
    }
    for (int i = 0; i < 128; ++i) {
        zig_ki[i] = (uint32_t)zig_k[i];
        zig_wf[i] = (float)zig_w[i];
    }
}

INLINE uint64_t splitmix_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

INLINE double uniform_open(uint64_t *state) { /* (0, 1) */
    return ((double)(splitmix_next(state) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static float zig_normal(uint64_t *state) {
    for (;;) {
        const uint64_t r = splitmix_next(state);
        const int32_t hz = (int32_t)(uint32_t)(r >> 32);
        const int iz = (int)(r & 127u);
        const uint32_t mag = hz < 0 ? 0u - (uint32_t)hz : (uint32_t)hz;
        if (mag < zig_ki[iz]) return (float)hz * zig_wf[iz]; /* ~99 % of draws */
        const double x = hz * zig_w[iz];
        if (iz == 0) { /* the tail beyond r = 3.4426 */
            double a, b;
            do {
                a = -log(uniform_open(state)) / 3.442619855899;
                b = -log(uniform_open(state));
            } while (b + b < a * a);
            return (float)(hz > 0 ? 3.442619855899 + a : -3.442619855899 - a);
        }
        if (zig_f[iz] + uniform_open(state) * (zig_f[iz - 1] - zig_f[iz]) < exp(-0.5 * x * x))
            return (float)x;
    }
}

/* out[0..n) = scale * N(0, 1), reproducible per seed. */
void sl_normal(uint64_t seed, int64_t n, float scale, float *out) {
    const int64_t chunks = (n + NORMAL_CHUNK - 1) / NORMAL_CHUNK;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
        uint64_t state = seed ^ ((uint64_t)c * 0xD1B54A32D192ED03ull);
        splitmix_next(&state);
        const int64_t end = (c + 1) * NORMAL_CHUNK < n ? (c + 1) * NORMAL_CHUNK : n;
        for (int64_t j = c * NORMAL_CHUNK; j < end; ++j)
            out[j] = scale * zig_normal(&state);
    }
}

/* ------------------------------------------------------------------ ADC read-out */
/* The analog chip's column ADC in one pass (spikeloop/chips/analog/simulator.py adc_readout is
 * the reference, same operations and rounding): for each run b, sample the membrane v [T, B, N]
 * at steps idx[k, b] (k < K), convert to LSB (leak_lsb + (v - v_leak) * lsb_per_unit), add the
 * read noise [K, B, N] (may be NULL), round half to even, clamp to [0, code_max], convert back,
 * and interpolate linearly onto the grid: out[t, b] = (1 - w1[t, b]) s[k0] + w1[t, b] s[k0 + 1]
 * (k0[t, b] < K - 1; K == 1 holds the one sample). */
void sl_adc_readout(int64_t T, int64_t B, int64_t N, int64_t K, const float *v,
                    const float *v_leak, const int64_t *idx, const int64_t *k0, const float *w1,
                    const float *noise, float leak_lsb, float lsb_per_unit, float code_max,
                    float *out) {
#pragma omp parallel
    {
        float *s = (float *)malloc(sizeof(float) * (size_t)(K * N));
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            for (int64_t k = 0; k < K; ++k) {
                const float *vk = v + (idx[k * B + b] * B + b) * N;
                const float *nk = noise ? noise + (k * B + b) * N : NULL;
                float *sk = s + k * N;
                for (int64_t j = 0; j < N; ++j) {
                    float lsb = leak_lsb + (vk[j] - v_leak[j]) * lsb_per_unit;
                    if (nk) lsb = lsb + nk[j];
                    lsb = nearbyintf(lsb);
                    lsb = lsb < 0.0f ? 0.0f : (lsb > code_max ? code_max : lsb);
                    sk[j] = v_leak[j] + (lsb - leak_lsb) / lsb_per_unit;
                }
            }
            for (int64_t t = 0; t < T; ++t) {
                float *o = out + (t * B + b) * N;
                if (K == 1) {
                    memcpy(o, s, sizeof(float) * (size_t)N);
                    continue;
                }
                const float w = w1[t * B + b], u = 1.0f - w;
                const float *s0 = s + k0[t * B + b] * N, *s1 = s0 + N;
                for (int64_t j = 0; j < N; ++j) o[j] = u * s0[j] + w * s1[j];
            }
        }
        free(s);
    }
}
