/*
 * Vector math shared by the AVX2 kernels (softmax_avx2.c, activation_avx2.c): exp and
 * expm1 for 8 floats or 4 doubles, and the lane masks of a row tail. Include it only
 * from files compiled with -mavx2 -mfma; every function is static inline.
 */
#ifndef MINIREPARAM_VECMATH_AVX2_H
#define MINIREPARAM_VECMATH_AVX2_H

#include <immintrin.h>
#include <stdint.h>

/* ---- vector exp ------------------------------------------------------------------ */

/*
 * exp(x) for 8 floats, for x <= 88.37 (every caller passes x <= 0: x - max, a log-
 * probability, x - lse, or -|x| in the activations). Write x = n ln2 + r with n = round(x / ln2), so
 * |r| <= ln2 / 2 and exp(x) = 2^n exp(r). Steps:
 *   - n comes from one FMA with a "magic" constant 1.5 * 2^23 + 127. The sum has a
 *     unit in the last place of 1, so the FMA's rounding rounds x / ln2 to an integer.
 *     The low mantissa bits then hold n + 127, the biased exponent of 2^n;
 *   - ln2 is split in two (Cody-Waite) so that n * LN2_HI is exact and r keeps its bits;
 *   - exp(r) is 1 + r + c2 r^2 + ... + c5 r^5, with c2..c5 fitted to minimize the
 *     maximum relative error on [-ln2/2, ln2/2] (iteratively reweighted least squares
 *     in float64): 1.05e-7 in exact arithmetic, 1.8e-7 (1.5 ulp) evaluated in float32,
 *     two FMAs fewer than the degree-7 Taylor series of the same accuracy.
 * x < ln(2^-126) gives 0 (so -inf gives exactly 0, not a denormal), and NaN stays NaN.
 */
static inline __m256 exp_ps(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.33654475f);
    const __m256 magic = _mm256_set1_ps(12582912.0f + 127.0f);
    /* max(lo, x) returns its second operand for NaN, so NaN passes through. */
    const __m256 xc = _mm256_max_ps(lo, x);
    const __m256 t = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), magic);
    const __m256 n = _mm256_sub_ps(t, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);

    __m256 p = _mm256_set1_ps(8.312518449e-03f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.189010980e-02f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.666711451e-01f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.999923182e-01f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));

    const __m256 two_to_n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
    const __m256 y = _mm256_mul_ps(p, two_to_n);
    /* Below lo (and at -inf) the result is 0; the compare is false for NaN, so NaN
     * needs the or: keep y where x >= lo or x is NaN. */
    const __m256 keep = _mm256_cmp_ps(x, lo, _CMP_NLT_UQ);
    return _mm256_and_ps(y, keep);
}

/*
 * exp(x) for 4 doubles, x <= 709.7, by the same scheme: magic 1.5 * 2^52 + 1023 and a
 * degree-13 Taylor polynomial (truncation error 0.347^14 / 14! < 5e-18).
 * x < ln(2^-1022) gives 0 and NaN stays NaN.
 */
static inline __m256d exp_pd(__m256d x)
{
    const __m256d lo = _mm256_set1_pd(-708.3964185322641);
    const __m256d magic = _mm256_set1_pd(6755399441055744.0 + 1023.0);
    const __m256d xc = _mm256_max_pd(lo, x);
    const __m256d t = _mm256_fmadd_pd(xc, _mm256_set1_pd(1.4426950408889634), magic);
    const __m256d n = _mm256_sub_pd(t, magic);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93145751953125e-1), xc);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.42860682030941723212e-6), r);

    static const double inverse_factorials[14] = {
        1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
        1.0 / 40320.0,      1.0 / 5040.0,      1.0 / 720.0,      1.0 / 120.0,     1.0 / 24.0,
        1.0 / 6.0,          0.5,               1.0,              1.0,
    };
    __m256d p = _mm256_set1_pd(inverse_factorials[0]);
    for (int i = 1; i < 14; i++) {
        p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(inverse_factorials[i]));
    }

    const __m256d two_to_n = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 52));
    const __m256d y = _mm256_mul_pd(p, two_to_n);
    return _mm256_and_pd(y, _mm256_cmp_pd(x, lo, _CMP_NLT_UQ));
}

/* ---- tail masks ------------------------------------------------------------------ */

/* Lane masks for a row tail of `rem` elements (1 <= rem < vector width). */
static inline __m256i tail_mask_ps(int64_t rem)
{
    static const int32_t table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i*)(table + 8 - rem));
}

static inline __m256i tail_mask_pd(int64_t rem)
{
    static const int64_t table[8] = {-1, -1, -1, -1, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i*)(table + 4 - rem));
}

/* ---- vector expm1 ------------------------------------------------------------------ */

/*
 * expm1(x) = exp(x) - 1 for 8 floats with x <= 0, accurate in relative terms near 0,
 * where exp(x) - 1 would cancel. The argument is reduced as in exp_ps, x = n ln2 + r
 * with |r| <= ln2 / 2, and then
 *     expm1(x) = 2^n expm1(r) + (2^n - 1),
 * one FMA whose second term is exact for the n that matter (n = 0 near x = 0 gives
 * expm1(r) itself). expm1(r) is r + r^2 (1/2! + r/3! + ... + r^6/8!), the Taylor
 * series to degree 8 (truncation below 0.347^8 / 9! < 6e-10 relative).
 * x below -80 is clamped there, where the result rounds to -1 (e^-80 < 2^-115), and
 * NaN stays NaN. Positive x up to 88 also works, but no caller needs it.
 */
static inline __m256 expm1_ps(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-80.0f);
    const __m256 magic = _mm256_set1_ps(12582912.0f + 127.0f);
    /* max(lo, x) returns its second operand for NaN, so NaN passes through. */
    const __m256 xc = _mm256_max_ps(lo, x);
    const __m256 t = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), magic);
    const __m256 n = _mm256_sub_ps(t, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);

    __m256 p = _mm256_set1_ps(1.0f / 40320.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 5040.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    const __m256 expm1_r = _mm256_fmadd_ps(_mm256_mul_ps(r, r), p, r);

    const __m256 two_to_n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23));
    return _mm256_fmadd_ps(two_to_n, expm1_r, _mm256_sub_ps(two_to_n, _mm256_set1_ps(1.0f)));
}

/*
 * expm1(x) for 4 doubles with x <= 0, by the same scheme as expm1_ps: the Taylor
 * series of expm1(r) to degree 14 (truncation below 0.347^14 / 15! < 3e-19 relative),
 * x clamped at -700 (the result rounds to -1 long before), NaN stays NaN.
 */
static inline __m256d expm1_pd(__m256d x)
{
    const __m256d lo = _mm256_set1_pd(-700.0);
    const __m256d magic = _mm256_set1_pd(6755399441055744.0 + 1023.0);
    const __m256d xc = _mm256_max_pd(lo, x);
    const __m256d t = _mm256_fmadd_pd(xc, _mm256_set1_pd(1.4426950408889634), magic);
    const __m256d n = _mm256_sub_pd(t, magic);
    __m256d r = _mm256_fnmadd_pd(n, _mm256_set1_pd(6.93145751953125e-1), xc);
    r = _mm256_fnmadd_pd(n, _mm256_set1_pd(1.42860682030941723212e-6), r);

    /* 1/14!, 1/13!, ..., 1/2!: the coefficients of r^2 (1/2! + r/3! + ...). */
    static const double inverse_factorials[13] = {
        1.0 / 87178291200.0, 1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
        1.0 / 362880.0,      1.0 / 40320.0,      1.0 / 5040.0,      1.0 / 720.0,      1.0 / 120.0,
        1.0 / 24.0,          1.0 / 6.0,          0.5,
    };
    __m256d p = _mm256_set1_pd(inverse_factorials[0]);
    for (int i = 1; i < 13; i++) {
        p = _mm256_fmadd_pd(p, r, _mm256_set1_pd(inverse_factorials[i]));
    }
    const __m256d expm1_r = _mm256_fmadd_pd(_mm256_mul_pd(r, r), p, r);

    const __m256d two_to_n = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 52));
    return _mm256_fmadd_pd(two_to_n, expm1_r, _mm256_sub_pd(two_to_n, _mm256_set1_pd(1.0)));
}

#endif /* MINIREPARAM_VECMATH_AVX2_H */
