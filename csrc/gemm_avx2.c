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
    /* Start fetching the C tile now; it is read (or only written) after the k loop. */
    for (int i = 0; i < 6; i++) {
        _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char*)(c + i * ldc + 15), _MM_HINT_T0);
    }
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
    for (int i = 0; i < 6; i++) {
        _mm_prefetch((const char*)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char*)(c + i * ldc + 7), _MM_HINT_T0);
    }
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

/* ---- packing ------------------------------------------------------------------------ */

/*
 * Packing with AVX2 for the 6 x 16 (float32) and 6 x 8 (float64) tiles; contract as
 * pack_a / pack_b in gemm_template.h. The strided cases are transposes of small blocks
 * done in registers (unpack / shuffle / permute), which keeps packing a few percent of
 * the time of a mid-size GEMM instead of a third. Ragged edges take the scalar loops.
 */

/* Transposes 8 rows of 8 floats in place: afterwards v[q] lane i holds old v[i] lane q. */
static inline void transpose_8x8_ps(__m256 v[8])
{
    const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
    const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
    const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
    const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    v[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    v[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    v[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    v[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    v[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    v[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    v[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    v[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Transposes 4 rows of 4 doubles in place. */
static inline void transpose_4x4_pd(__m256d v[4])
{
    const __m256d t0 = _mm256_unpacklo_pd(v[0], v[1]), t1 = _mm256_unpackhi_pd(v[0], v[1]);
    const __m256d t2 = _mm256_unpacklo_pd(v[2], v[3]), t3 = _mm256_unpackhi_pd(v[2], v[3]);
    v[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
    v[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    v[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
    v[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

/* One generic scalar panel, for ragged edges: dst[p * tile + i] = src(i, p), zero past `count`. */
#define PACK_PANEL_SCALAR(dst, src, ld, trans, count, k, tile)                                                      \
    for (int64_t p_ = 0; p_ < (k); p_++) {                                                                          \
        for (int64_t i_ = 0; i_ < (tile); i_++) {                                                                   \
            (dst)[p_ * (tile) + i_] = i_ < (count) ? ((trans) ? (src)[p_ * (ld) + i_] : (src)[i_ * (ld) + p_]) : 0; \
        }                                                                                                           \
    }

/* op(A) panels of 6 rows. ta = 0: rows of A are rows of the panel (a transpose per
 * 8 x 8 block); ta = 1: each p is 6 contiguous values. */
static void pack_a_avx2_f32(float* dst, const float* a, int64_t lda, int ta, int64_t mc, int64_t kc, int mr)
{
    for (int64_t i0 = 0; i0 < mc; i0 += mr, dst += kc * mr) {
        const int64_t rows = mc - i0 < mr ? mc - i0 : mr;
        if (rows < 6 || mr != 6) {
            const float* src = ta ? a + i0 : a + i0 * lda;
            PACK_PANEL_SCALAR(dst, src, lda, ta, rows, kc, mr);
            continue;
        }
        if (ta) {
            for (int64_t p = 0; p < kc; p++) {
                const float* src = a + p * lda + i0;
                _mm_storeu_ps(dst + p * 6, _mm_loadu_ps(src));
                dst[p * 6 + 4] = src[4];
                dst[p * 6 + 5] = src[5];
            }
            continue;
        }
        const float* row = a + i0 * lda;
        int64_t p = 0;
        for (; p + 8 <= kc; p += 8) {
            __m256 v[8];
            for (int i = 0; i < 6; i++) {
                v[i] = _mm256_loadu_ps(row + i * lda + p);
            }
            v[6] = v[7] = _mm256_setzero_ps();
            transpose_8x8_ps(v);
            for (int q = 0; q < 8; q++) {
                float* out = dst + (p + q) * 6;
                _mm_storeu_ps(out, _mm256_castps256_ps128(v[q]));
                _mm_storel_pi((__m64*)(out + 4), _mm256_extractf128_ps(v[q], 1));
            }
        }
        for (; p < kc; p++) {
            for (int i = 0; i < 6; i++) {
                dst[p * 6 + i] = row[i * lda + p];
            }
        }
    }
}

/* op(B) panels of 16 columns. tb = 0: each p is 16 contiguous values; tb = 1: columns
 * of op(B) are rows of B (two 8 x 8 transposes per 8 values of p). */
static void pack_b_avx2_f32(float* dst, const float* b, int64_t ldb, int tb, int64_t kc, int64_t nc, int nr)
{
    for (int64_t j0 = 0; j0 < nc; j0 += nr, dst += kc * nr) {
        const int64_t cols = nc - j0 < nr ? nc - j0 : nr;
        if (cols < 16 || nr != 16) {
            const float* src = tb ? b + j0 * ldb : b + j0;
            PACK_PANEL_SCALAR(dst, src, ldb, !tb, cols, kc, nr);
            continue;
        }
        if (!tb) {
            for (int64_t p = 0; p < kc; p++) {
                const float* src = b + p * ldb + j0;
                _mm256_storeu_ps(dst + p * 16, _mm256_loadu_ps(src));
                _mm256_storeu_ps(dst + p * 16 + 8, _mm256_loadu_ps(src + 8));
            }
            continue;
        }
        const float* row = b + j0 * ldb;
        int64_t p = 0;
        for (; p + 8 <= kc; p += 8) {
            for (int half = 0; half < 2; half++) {
                __m256 v[8];
                for (int j = 0; j < 8; j++) {
                    v[j] = _mm256_loadu_ps(row + (half * 8 + j) * ldb + p);
                }
                transpose_8x8_ps(v);
                for (int q = 0; q < 8; q++) {
                    _mm256_storeu_ps(dst + (p + q) * 16 + half * 8, v[q]);
                }
            }
        }
        for (; p < kc; p++) {
            for (int j = 0; j < 16; j++) {
                dst[p * 16 + j] = row[j * ldb + p];
            }
        }
    }
}

/* float64 op(A) panels of 6 rows: a 4 x 4 transpose for rows 0-3, pairs for rows 4-5. */
static void pack_a_avx2_f64(double* dst, const double* a, int64_t lda, int ta, int64_t mc, int64_t kc, int mr)
{
    for (int64_t i0 = 0; i0 < mc; i0 += mr, dst += kc * mr) {
        const int64_t rows = mc - i0 < mr ? mc - i0 : mr;
        if (rows < 6 || mr != 6) {
            const double* src = ta ? a + i0 : a + i0 * lda;
            PACK_PANEL_SCALAR(dst, src, lda, ta, rows, kc, mr);
            continue;
        }
        if (ta) {
            for (int64_t p = 0; p < kc; p++) {
                const double* src = a + p * lda + i0;
                _mm256_storeu_pd(dst + p * 6, _mm256_loadu_pd(src));
                _mm_storeu_pd(dst + p * 6 + 4, _mm_loadu_pd(src + 4));
            }
            continue;
        }
        const double* row = a + i0 * lda;
        int64_t p = 0;
        for (; p + 4 <= kc; p += 4) {
            __m256d v[4];
            for (int i = 0; i < 4; i++) {
                v[i] = _mm256_loadu_pd(row + i * lda + p);
            }
            transpose_4x4_pd(v);
            const __m256d r4 = _mm256_loadu_pd(row + 4 * lda + p), r5 = _mm256_loadu_pd(row + 5 * lda + p);
            const __m256d even = _mm256_unpacklo_pd(r4, r5), odd = _mm256_unpackhi_pd(r4, r5);
            const __m128d tail[4] = {_mm256_castpd256_pd128(even), _mm256_castpd256_pd128(odd),
                                     _mm256_extractf128_pd(even, 1), _mm256_extractf128_pd(odd, 1)};
            for (int q = 0; q < 4; q++) {
                _mm256_storeu_pd(dst + (p + q) * 6, v[q]);
                _mm_storeu_pd(dst + (p + q) * 6 + 4, tail[q]);
            }
        }
        for (; p < kc; p++) {
            for (int i = 0; i < 6; i++) {
                dst[p * 6 + i] = row[i * lda + p];
            }
        }
    }
}

/* float64 op(B) panels of 8 columns. */
static void pack_b_avx2_f64(double* dst, const double* b, int64_t ldb, int tb, int64_t kc, int64_t nc, int nr)
{
    for (int64_t j0 = 0; j0 < nc; j0 += nr, dst += kc * nr) {
        const int64_t cols = nc - j0 < nr ? nc - j0 : nr;
        if (cols < 8 || nr != 8) {
            const double* src = tb ? b + j0 * ldb : b + j0;
            PACK_PANEL_SCALAR(dst, src, ldb, !tb, cols, kc, nr);
            continue;
        }
        if (!tb) {
            for (int64_t p = 0; p < kc; p++) {
                const double* src = b + p * ldb + j0;
                _mm256_storeu_pd(dst + p * 8, _mm256_loadu_pd(src));
                _mm256_storeu_pd(dst + p * 8 + 4, _mm256_loadu_pd(src + 4));
            }
            continue;
        }
        const double* row = b + j0 * ldb;
        int64_t p = 0;
        for (; p + 4 <= kc; p += 4) {
            for (int half = 0; half < 2; half++) {
                __m256d v[4];
                for (int j = 0; j < 4; j++) {
                    v[j] = _mm256_loadu_pd(row + (half * 4 + j) * ldb + p);
                }
                transpose_4x4_pd(v);
                for (int q = 0; q < 4; q++) {
                    _mm256_storeu_pd(dst + (p + q) * 8 + half * 4, v[q]);
                }
            }
        }
        for (; p < kc; p++) {
            for (int j = 0; j < 8; j++) {
                dst[p * 8 + j] = row[j * ldb + p];
            }
        }
    }
}

/*
 * Cache blocks: a kc x 16 float32 B micro-panel is 24 KiB at kc = 384, most of a
 * 32 KiB L1; the mc x kc A block (float32 144 x 384: 216 KiB, float64 96 x 256:
 * 192 KiB) sits in L2; nc bounds the packed B block for the L3. On the 2-core AMD EPYC
 * (Zen 4) used for benchmarks/RESULTS.md, kc from 256 to 512 and mc from 96 to 240 all
 * measured within a few percent of each other.
 */
#ifndef MR_AVX2_F32_KC
#define MR_AVX2_F32_KC 384
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
    .pack_a = pack_a_avx2_f32,
    .pack_b = pack_b_avx2_f32,
    .mr = 6,
    .nr = 16,
    .kc = MR_AVX2_F32_KC,
    .mc = MR_AVX2_F32_MC,
    .nc = MR_AVX2_F32_NC,
};

const mr_gemm_config_f64 mr_gemm_avx2_f64 = {
    .kernel = microkernel_avx2_f64,
    .pack_a = pack_a_avx2_f64,
    .pack_b = pack_b_avx2_f64,
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
