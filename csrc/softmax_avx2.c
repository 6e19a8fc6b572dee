/*
 * AVX2/FMA row primitives for softmax, log-softmax and cross-entropy (the table
 * mr_rowops_* of internal.h), with a vectorized exp. Compiled alone with -mavx2
 * -mfma and called only after the run-time CPU check in core.c.
 *
 * Sums and dot products accumulate in float64 lanes (the float32 sum of
 * exponentials in float32 blocks first), so a float32 row of 32768 terms loses no
 * more than a few tens of ulps. Row tails (n not a multiple of the vector width)
 * use masked loads and stores, never reading past the row.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "internal.h"
#include "vecmath_avx2.h"

/* ---- helpers ------------------------------------------------------------------------ */

/* Adds the 8 floats of v to two float64 accumulators. */
static inline void add_ps_to_pd(__m256d* acc_lo, __m256d* acc_hi, __m256 v)
{
    *acc_lo = _mm256_add_pd(*acc_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    *acc_hi = _mm256_add_pd(*acc_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

static inline double hsum_pd(__m256d v)
{
    double lanes[4];
    _mm256_storeu_pd(lanes, v);
    return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

static inline float hmax_ps(__m256 v)
{
    float lanes[8];
    _mm256_storeu_ps(lanes, v);
    float m = lanes[0];
    for (int i = 1; i < 8; i++) {
        m = (lanes[i] > m || lanes[i] != lanes[i]) ? lanes[i] : m;
    }
    return m;
}

static inline double hmax_pd(__m256d v)
{
    double lanes[4];
    _mm256_storeu_pd(lanes, v);
    double m = lanes[0];
    for (int i = 1; i < 4; i++) {
        m = (lanes[i] > m || lanes[i] != lanes[i]) ? lanes[i] : m;
    }
    return m;
}

/* ---- float32 row primitives ------------------------------------------------------------ */

static float row_max_f32(const float* x, int64_t n)
{
    /* max_ps drops a NaN operand in one of its two orders, so NaNs are tracked
     * apart: a row with a NaN has max NaN, as in numpy. */
    __m256 acc = _mm256_set1_ps(-INFINITY);
    __m256 nan_seen = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        acc = _mm256_max_ps(acc, v);
        nan_seen = _mm256_or_ps(nan_seen, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    if (i < n) {
        const __m256i mask = tail_mask_ps(n - i);
        const __m256 v = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_maskload_ps(x + i, mask),
                                          _mm256_castsi256_ps(mask));
        acc = _mm256_max_ps(acc, v);
        nan_seen = _mm256_or_ps(nan_seen, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    if (_mm256_movemask_ps(nan_seen) != 0) {
        return NAN;
    }
    return hmax_ps(acc);
}

static double row_sum_f32(const float* x, int64_t n)
{
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        add_ps_to_pd(&lo, &hi, _mm256_loadu_ps(x + i));
    }
    if (i < n) {
        add_ps_to_pd(&lo, &hi, _mm256_maskload_ps(x + i, tail_mask_ps(n - i)));
    }
    return hsum_pd(_mm256_add_pd(lo, hi));
}

static double row_dot_f32(const float* x, const float* y, int64_t n)
{
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(y + i);
        lo = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a)), _mm256_cvtps_pd(_mm256_castps256_ps128(b)),
                             lo);
        hi = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)), _mm256_cvtps_pd(_mm256_extractf128_ps(b, 1)),
                             hi);
    }
    double s = hsum_pd(_mm256_add_pd(lo, hi));
    for (; i < n; i++) {
        s += (double)x[i] * (double)y[i];
    }
    return s;
}

static double row_exp_shift_sum_f32(float* y, const float* x, int64_t n, float shift)
{
    /* The exponentials are summed in float32 over blocks of 512 elements (two
     * accumulators of 8 lanes, 32 terms each), then each block sum is added in
     * float64: the float32 part stays within about 32 ulps of the block, at a
     * fraction of the cost of widening every vector. */
    const __m256 vs = _mm256_set1_ps(shift);
    __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
    int64_t i = 0;
    while (i + 16 <= n) {
        const int64_t block_end = (n - i) >= 512 ? i + 512 : i + ((n - i) / 16) * 16;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        for (; i < block_end; i += 16) {
            const __m256 e0 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
            const __m256 e1 = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vs));
            if (y != NULL) {
                _mm256_storeu_ps(y + i, e0);
                _mm256_storeu_ps(y + i + 8, e1);
            }
            acc0 = _mm256_add_ps(acc0, e0);
            acc1 = _mm256_add_ps(acc1, e1);
        }
        add_ps_to_pd(&lo, &hi, _mm256_add_ps(acc0, acc1));
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
        if (y != NULL) {
            _mm256_storeu_ps(y + i, e);
        }
        add_ps_to_pd(&lo, &hi, e);
    }
    if (i < n) {
        const __m256i mask = tail_mask_ps(n - i);
        __m256 e = exp_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), vs));
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));
        if (y != NULL) {
            _mm256_maskstore_ps(y + i, mask, e);
        }
        add_ps_to_pd(&lo, &hi, e);
    }
    return hsum_pd(_mm256_add_pd(lo, hi));
}

static void row_scale_f32(float* y, const float* x, int64_t n, float scale)
{
    const __m256 vs = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
    }
    for (; i < n; i++) {
        y[i] = x[i] * scale;
    }
}

static void row_sub_f32(float* y, const float* x, int64_t n, float shift)
{
    const __m256 vs = _mm256_set1_ps(shift);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        _mm256_storeu_ps(y + i, _mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
    }
    for (; i < n; i++) {
        y[i] = x[i] - shift;
    }
}

static void row_softmax_bwd_f32(float* dx, const float* dy, const float* y, int64_t n, float s)
{
    const __m256 vs = _mm256_set1_ps(s);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_sub_ps(_mm256_loadu_ps(dy + i), vs);
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(y + i), g));
    }
    for (; i < n; i++) {
        dx[i] = y[i] * (dy[i] - s);
    }
}

/* dx = dy - exp(y) * s, and 0 where y = -inf. */
static void row_log_softmax_bwd_f32(float* dx, const float* dy, const float* y, int64_t n, float s)
{
    const __m256 vs = _mm256_set1_ps(s), minus_inf = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 yv = _mm256_loadu_ps(y + i);
        const __m256 g = _mm256_fnmadd_ps(exp_ps(yv), vs, _mm256_loadu_ps(dy + i));
        _mm256_storeu_ps(dx + i, _mm256_andnot_ps(_mm256_cmp_ps(yv, minus_inf, _CMP_EQ_OQ), g));
    }
    if (i < n) {
        const __m256i mask = tail_mask_ps(n - i);
        const __m256 yv = _mm256_maskload_ps(y + i, mask);
        const __m256 g = _mm256_fnmadd_ps(exp_ps(yv), vs, _mm256_maskload_ps(dy + i, mask));
        _mm256_maskstore_ps(dx + i, mask, _mm256_andnot_ps(_mm256_cmp_ps(yv, minus_inf, _CMP_EQ_OQ), g));
    }
}

static void row_exp_shift_affine_f32(float* y, const float* x, int64_t n, float shift, float offset, float scale)
{
    const __m256 vshift = _mm256_set1_ps(shift), voffset = _mm256_set1_ps(offset), vscale = _mm256_set1_ps(scale);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vshift));
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_sub_ps(e, voffset), vscale));
    }
    if (i < n) {
        const __m256i mask = tail_mask_ps(n - i);
        const __m256 e = exp_ps(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), vshift));
        _mm256_maskstore_ps(y + i, mask, _mm256_mul_ps(_mm256_sub_ps(e, voffset), vscale));
    }
}

const mr_rowops_f32 mr_rowops_avx2_f32 = {
    .max = row_max_f32,
    .sum = row_sum_f32,
    .dot = row_dot_f32,
    .exp_shift_sum = row_exp_shift_sum_f32,
    .scale = row_scale_f32,
    .sub = row_sub_f32,
    .softmax_bwd = row_softmax_bwd_f32,
    .log_softmax_bwd = row_log_softmax_bwd_f32,
    .exp_shift_affine = row_exp_shift_affine_f32,
};

/* ---- float64 row primitives ------------------------------------------------------------ */

static double row_max_f64(const double* x, int64_t n)
{
    __m256d acc = _mm256_set1_pd(-INFINITY);
    __m256d nan_seen = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d v = _mm256_loadu_pd(x + i);
        acc = _mm256_max_pd(acc, v);
        nan_seen = _mm256_or_pd(nan_seen, _mm256_cmp_pd(v, v, _CMP_UNORD_Q));
    }
    if (i < n) {
        const __m256i mask = tail_mask_pd(n - i);
        const __m256d v = _mm256_blendv_pd(_mm256_set1_pd(-INFINITY), _mm256_maskload_pd(x + i, mask),
                                           _mm256_castsi256_pd(mask));
        acc = _mm256_max_pd(acc, v);
        nan_seen = _mm256_or_pd(nan_seen, _mm256_cmp_pd(v, v, _CMP_UNORD_Q));
    }
    if (_mm256_movemask_pd(nan_seen) != 0) {
        return NAN;
    }
    return hmax_pd(acc);
}

static double row_sum_f64(const double* x, int64_t n)
{
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        acc0 = _mm256_add_pd(acc0, _mm256_loadu_pd(x + i));
        acc1 = _mm256_add_pd(acc1, _mm256_loadu_pd(x + i + 4));
    }
    double s = hsum_pd(_mm256_add_pd(acc0, acc1));
    for (; i < n; i++) {
        s += x[i];
    }
    return s;
}

static double row_dot_f64(const double* x, const double* y, int64_t n)
{
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        acc0 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i), _mm256_loadu_pd(y + i), acc0);
        acc1 = _mm256_fmadd_pd(_mm256_loadu_pd(x + i + 4), _mm256_loadu_pd(y + i + 4), acc1);
    }
    double s = hsum_pd(_mm256_add_pd(acc0, acc1));
    for (; i < n; i++) {
        s += x[i] * y[i];
    }
    return s;
}

static double row_exp_shift_sum_f64(double* y, const double* x, int64_t n, double shift)
{
    const __m256d vs = _mm256_set1_pd(shift);
    __m256d acc = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d e = exp_pd(_mm256_sub_pd(_mm256_loadu_pd(x + i), vs));
        if (y != NULL) {
            _mm256_storeu_pd(y + i, e);
        }
        acc = _mm256_add_pd(acc, e);
    }
    if (i < n) {
        const __m256i mask = tail_mask_pd(n - i);
        __m256d e = exp_pd(_mm256_sub_pd(_mm256_maskload_pd(x + i, mask), vs));
        e = _mm256_and_pd(e, _mm256_castsi256_pd(mask));
        if (y != NULL) {
            _mm256_maskstore_pd(y + i, mask, e);
        }
        acc = _mm256_add_pd(acc, e);
    }
    return hsum_pd(acc);
}

static void row_scale_f64(double* y, const double* x, int64_t n, double scale)
{
    const __m256d vs = _mm256_set1_pd(scale);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        _mm256_storeu_pd(y + i, _mm256_mul_pd(_mm256_loadu_pd(x + i), vs));
    }
    for (; i < n; i++) {
        y[i] = x[i] * scale;
    }
}

static void row_sub_f64(double* y, const double* x, int64_t n, double shift)
{
    const __m256d vs = _mm256_set1_pd(shift);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        _mm256_storeu_pd(y + i, _mm256_sub_pd(_mm256_loadu_pd(x + i), vs));
    }
    for (; i < n; i++) {
        y[i] = x[i] - shift;
    }
}

static void row_softmax_bwd_f64(double* dx, const double* dy, const double* y, int64_t n, double s)
{
    const __m256d vs = _mm256_set1_pd(s);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d g = _mm256_sub_pd(_mm256_loadu_pd(dy + i), vs);
        _mm256_storeu_pd(dx + i, _mm256_mul_pd(_mm256_loadu_pd(y + i), g));
    }
    for (; i < n; i++) {
        dx[i] = y[i] * (dy[i] - s);
    }
}

static void row_log_softmax_bwd_f64(double* dx, const double* dy, const double* y, int64_t n, double s)
{
    const __m256d vs = _mm256_set1_pd(s), minus_inf = _mm256_set1_pd(-INFINITY);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d yv = _mm256_loadu_pd(y + i);
        const __m256d g = _mm256_fnmadd_pd(exp_pd(yv), vs, _mm256_loadu_pd(dy + i));
        _mm256_storeu_pd(dx + i, _mm256_andnot_pd(_mm256_cmp_pd(yv, minus_inf, _CMP_EQ_OQ), g));
    }
    if (i < n) {
        const __m256i mask = tail_mask_pd(n - i);
        const __m256d yv = _mm256_maskload_pd(y + i, mask);
        const __m256d g = _mm256_fnmadd_pd(exp_pd(yv), vs, _mm256_maskload_pd(dy + i, mask));
        _mm256_maskstore_pd(dx + i, mask, _mm256_andnot_pd(_mm256_cmp_pd(yv, minus_inf, _CMP_EQ_OQ), g));
    }
}

static void row_exp_shift_affine_f64(double* y, const double* x, int64_t n, double shift, double offset,
                                     double scale)
{
    const __m256d vshift = _mm256_set1_pd(shift), voffset = _mm256_set1_pd(offset), vscale = _mm256_set1_pd(scale);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d e = exp_pd(_mm256_sub_pd(_mm256_loadu_pd(x + i), vshift));
        _mm256_storeu_pd(y + i, _mm256_mul_pd(_mm256_sub_pd(e, voffset), vscale));
    }
    if (i < n) {
        const __m256i mask = tail_mask_pd(n - i);
        const __m256d e = exp_pd(_mm256_sub_pd(_mm256_maskload_pd(x + i, mask), vshift));
        _mm256_maskstore_pd(y + i, mask, _mm256_mul_pd(_mm256_sub_pd(e, voffset), vscale));
    }
}

const mr_rowops_f64 mr_rowops_avx2_f64 = {
    .max = row_max_f64,
    .sum = row_sum_f64,
    .dot = row_dot_f64,
    .exp_shift_sum = row_exp_shift_sum_f64,
    .scale = row_scale_f64,
    .sub = row_sub_f64,
    .softmax_bwd = row_softmax_bwd_f64,
    .log_softmax_bwd = row_log_softmax_bwd_f64,
    .exp_shift_affine = row_exp_shift_affine_f64,
};
