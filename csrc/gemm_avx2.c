/*
 * AVX2/FMA micro-kernels for the packed GEMM, and the FMA loop that measures the
 * machine's peak. This file alone is compiled with -mavx2 -mfma; core.c calls into
 * it only after __builtin_cpu_supports("avx2") and ("fma") both return true.
 *
 * Micro-tiles: float32 6 x 16 and float64 6 x 8, that is 6 rows by two 256-bit
 * vectors. The 12 accumulators, the two B vectors and one broadcast of A take 15
 * of the 16 ymm registers, and each step p does 12 FMAs for 8 loads, which keeps
 * both FMA pipes busy on recent x86 cores.
 */
#include <immintrin.h>
#include <stdint.h>

#include "internal.h"

/*
 * C[0:6, 0:16] = alpha * sum_p A(i, p) B(p, :) + beta * C, float32.
 *   a  A(i, p) = a[i * rsa + p * csa]     (packed: rsa = 1, csa = 6)
 *   b  (k, ldb), 16 used columns          (packed: ldb = 16)
 *   c  (6, ldc)
 * always_inline lets the packed wrapper below specialize the strides to constants.
 */
static inline __attribute__((always_inline)) void kernel_6x16_f32(int64_t k, const float* a, int64_t rsa,
                                                                  int64_t csa, const float* b, int64_t ldb,
                                                                  float* c, int64_t ldc, float alpha, float beta)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();

    /* Phase 1: k rank-1 updates, all in registers. */
#pragma GCC unroll 4
    for (int64_t p = 0; p < k; p++) {
        const __m256 b0 = _mm256_loadu_ps(b);
        const __m256 b1 = _mm256_loadu_ps(b + 8);
        __m256 ai;
        ai = _mm256_broadcast_ss(a);
        c00 = _mm256_fmadd_ps(ai, b0, c00);
        c01 = _mm256_fmadd_ps(ai, b1, c01);
        ai = _mm256_broadcast_ss(a + rsa);
        c10 = _mm256_fmadd_ps(ai, b0, c10);
        c11 = _mm256_fmadd_ps(ai, b1, c11);
        ai = _mm256_broadcast_ss(a + 2 * rsa);
        c20 = _mm256_fmadd_ps(ai, b0, c20);
        c21 = _mm256_fmadd_ps(ai, b1, c21);
        ai = _mm256_broadcast_ss(a + 3 * rsa);
        c30 = _mm256_fmadd_ps(ai, b0, c30);
        c31 = _mm256_fmadd_ps(ai, b1, c31);
        ai = _mm256_broadcast_ss(a + 4 * rsa);
        c40 = _mm256_fmadd_ps(ai, b0, c40);
        c41 = _mm256_fmadd_ps(ai, b1, c41);
        ai = _mm256_broadcast_ss(a + 5 * rsa);
        c50 = _mm256_fmadd_ps(ai, b0, c50);
        c51 = _mm256_fmadd_ps(ai, b1, c51);
        a += csa;
        b += ldb;
    }

    /* Phase 2: scale by alpha and merge into C (C is not read when beta == 0). */
    const __m256 va = _mm256_set1_ps(alpha);
    __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    if (beta == 0.0f) {
        for (int i = 0; i < 6; i++) {
            _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, acc[2 * i]));
            _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, acc[2 * i + 1]));
        }
    } else {
        const __m256 vb = _mm256_set1_ps(beta);
        for (int i = 0; i < 6; i++) {
            float* row = c + i * ldc;
            _mm256_storeu_ps(row, _mm256_fmadd_ps(va, acc[2 * i], _mm256_mul_ps(vb, _mm256_loadu_ps(row))));
            _mm256_storeu_ps(row + 8,
                             _mm256_fmadd_ps(va, acc[2 * i + 1], _mm256_mul_ps(vb, _mm256_loadu_ps(row + 8))));
        }
    }
}

/* The same tile in float64: 6 rows by 8 columns (two vectors of 4). */
static inline __attribute__((always_inline)) void kernel_6x8_f64(int64_t k, const double* a, int64_t rsa,
                                                                 int64_t csa, const double* b, int64_t ldb,
                                                                 double* c, int64_t ldc, double alpha, double beta)
{
    __m256d c00 = _mm256_setzero_pd(), c01 = _mm256_setzero_pd();
    __m256d c10 = _mm256_setzero_pd(), c11 = _mm256_setzero_pd();
    __m256d c20 = _mm256_setzero_pd(), c21 = _mm256_setzero_pd();
    __m256d c30 = _mm256_setzero_pd(), c31 = _mm256_setzero_pd();
    __m256d c40 = _mm256_setzero_pd(), c41 = _mm256_setzero_pd();
    __m256d c50 = _mm256_setzero_pd(), c51 = _mm256_setzero_pd();

    /* Phase 1: k rank-1 updates, all in registers. */
#pragma GCC unroll 4
    for (int64_t p = 0; p < k; p++) {
        const __m256d b0 = _mm256_loadu_pd(b);
        const __m256d b1 = _mm256_loadu_pd(b + 4);
        __m256d ai;
        ai = _mm256_broadcast_sd(a);
        c00 = _mm256_fmadd_pd(ai, b0, c00);
        c01 = _mm256_fmadd_pd(ai, b1, c01);
        ai = _mm256_broadcast_sd(a + rsa);
        c10 = _mm256_fmadd_pd(ai, b0, c10);
        c11 = _mm256_fmadd_pd(ai, b1, c11);
        ai = _mm256_broadcast_sd(a + 2 * rsa);
        c20 = _mm256_fmadd_pd(ai, b0, c20);
        c21 = _mm256_fmadd_pd(ai, b1, c21);
        ai = _mm256_broadcast_sd(a + 3 * rsa);
        c30 = _mm256_fmadd_pd(ai, b0, c30);
        c31 = _mm256_fmadd_pd(ai, b1, c31);
        ai = _mm256_broadcast_sd(a + 4 * rsa);
        c40 = _mm256_fmadd_pd(ai, b0, c40);
        c41 = _mm256_fmadd_pd(ai, b1, c41);
        ai = _mm256_broadcast_sd(a + 5 * rsa);
        c50 = _mm256_fmadd_pd(ai, b0, c50);
        c51 = _mm256_fmadd_pd(ai, b1, c51);
        a += csa;
        b += ldb;
    }

    /* Phase 2: scale by alpha and merge into C (C is not read when beta == 0). */
    const __m256d va = _mm256_set1_pd(alpha);
    __m256d acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    if (beta == 0.0) {
        for (int i = 0; i < 6; i++) {
            _mm256_storeu_pd(c + i * ldc, _mm256_mul_pd(va, acc[2 * i]));
            _mm256_storeu_pd(c + i * ldc + 4, _mm256_mul_pd(va, acc[2 * i + 1]));
        }
    } else {
        const __m256d vb = _mm256_set1_pd(beta);
        for (int i = 0; i < 6; i++) {
            double* row = c + i * ldc;
            _mm256_storeu_pd(row, _mm256_fmadd_pd(va, acc[2 * i], _mm256_mul_pd(vb, _mm256_loadu_pd(row))));
            _mm256_storeu_pd(row + 4,
                             _mm256_fmadd_pd(va, acc[2 * i + 1], _mm256_mul_pd(vb, _mm256_loadu_pd(row + 4))));
        }
    }
}

/*
 * Entry point with the micro-kernel signature. Packed panels (the hot path) get a
 * copy of the loop with constant strides; other strides (the small-matrix path)
 * take the general copy.
 */
static void microkernel_avx2_f32(int64_t k, const float* a, int64_t rsa, int64_t csa, const float* b, int64_t ldb,
                                 float* c, int64_t ldc, float alpha, float beta)
{
    if (rsa == 1 && csa == 6 && ldb == 16) {
        kernel_6x16_f32(k, a, 1, 6, b, 16, c, ldc, alpha, beta);
    } else {
        kernel_6x16_f32(k, a, rsa, csa, b, ldb, c, ldc, alpha, beta);
    }
}

static void microkernel_avx2_f64(int64_t k, const double* a, int64_t rsa, int64_t csa, const double* b,
                                 int64_t ldb, double* c, int64_t ldc, double alpha, double beta)
{
    if (rsa == 1 && csa == 6 && ldb == 8) {
        kernel_6x8_f64(k, a, 1, 6, b, 8, c, ldc, alpha, beta);
    } else {
        kernel_6x8_f64(k, a, rsa, csa, b, ldb, c, ldc, alpha, beta);
    }
}

/*
 * Cache blocks: a kc x 16 float32 B micro-panel is 16 KiB at kc = 256, half of a
 * 32 KiB L1; the mc x kc A block (mc = 144: 144 KiB) sits in L2; nc bounds the
 * packed B block for the L3. Tuned with benchmarks/bench_kernels.py.
 */
#ifndef MR_AVX2_F32_KC
#define MR_AVX2_F32_KC 256
#define MR_AVX2_F32_MC 144
#define MR_AVX2_F32_NC 3072
#endif
#ifndef MR_AVX2_F64_KC
#define MR_AVX2_F64_KC 256
#define MR_AVX2_F64_MC 96
#define MR_AVX2_F64_NC 3072
#endif

const mr_gemm_config_f32 mr_gemm_avx2_f32 = {
    .kernel = microkernel_avx2_f32,
    .mr = 6,
    .nr = 16,
    .kc = MR_AVX2_F32_KC,
    .mc = MR_AVX2_F32_MC,
    .nc = MR_AVX2_F32_NC,
};

const mr_gemm_config_f64 mr_gemm_avx2_f64 = {
    .kernel = microkernel_avx2_f64,
    .mr = 6,
    .nr = 8,
    .kc = MR_AVX2_F64_KC,
    .mc = MR_AVX2_F64_MC,
    .nc = MR_AVX2_F64_NC,
};

/*
 * The FMA loop behind the roofline: 12 independent accumulator chains (enough to
 * cover the FMA latency on two pipes), `iterations` rounds of 12 vector FMAs each.
 * Returns a sum of the accumulators so the compiler cannot drop the loop.
 */
double mr_fma_loop_avx2(int is_f64, int64_t iterations)
{
    if (is_f64) {
        __m256d x[12];
        const __m256d m = _mm256_set1_pd(0.999999), d = _mm256_set1_pd(1e-7);
        for (int i = 0; i < 12; i++) {
            x[i] = _mm256_set1_pd((double)i);
        }
        for (int64_t it = 0; it < iterations; it++) {
#pragma GCC unroll 12
            for (int i = 0; i < 12; i++) {
                x[i] = _mm256_fmadd_pd(x[i], m, d);
            }
        }
        __m256d s = x[0];
        for (int i = 1; i < 12; i++) {
            s = _mm256_add_pd(s, x[i]);
        }
        double out[4];
        _mm256_storeu_pd(out, s);
        return out[0] + out[1] + out[2] + out[3];
    }
    __m256 x[12];
    const __m256 m = _mm256_set1_ps(0.9999f), d = _mm256_set1_ps(1e-4f);
    for (int i = 0; i < 12; i++) {
        x[i] = _mm256_set1_ps((float)i);
    }
    for (int64_t it = 0; it < iterations; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            x[i] = _mm256_fmadd_ps(x[i], m, d);
        }
    }
    __m256 s = x[0];
    for (int i = 1; i < 12; i++) {
        s = _mm256_add_ps(s, x[i]);
    }
    float out[8];
    _mm256_storeu_ps(out, s);
    double total = 0;
    for (int i = 0; i < 8; i++) {
        total += out[i];
    }
    return total;
}
