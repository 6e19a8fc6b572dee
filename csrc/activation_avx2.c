/*
 * AVX2/FMA block kernels of the elementwise activations and the LSTM cell (the
 * tables mr_actops_avx2_* of activation_internal.h): activation_vec_template.h on
 * __m256 (8 floats) and __m256d (4 doubles). Compiled alone with -mavx2 -mfma and
 * called only after the run-time CPU check in core.c.
 *
 * exp is exp_ps / exp_pd of vecmath_avx2.h. tanh(x) = -m / (2 + m) with
 * m = expm1(-2|x|), and the sign of x put back, so it does not cancel near 0, is
 * exactly +-1 once e^-2|x| drops below half an ulp of 1, and is exactly odd. Tails
 * use masked loads and stores, never touching memory past the end.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "activation_internal.h"
#include "vecmath_avx2.h"

/* ---- float32: 8 lanes --------------------------------------------------------------- */

static inline __m256 load_ps(const float* p, int64_t rem)
{
    return rem == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail_mask_ps(rem));
}

static inline void store_ps(float* p, __m256 v, int64_t rem)
{
    if (rem == 8) {
        _mm256_storeu_ps(p, v);
    } else {
        _mm256_maskstore_ps(p, tail_mask_ps(rem), v);
    }
}

static inline __m256 abs_ps(__m256 x)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}

/* x clamped to [-b, b]; max and min return their second operand when one is NaN, so NaN passes. */
static inline __m256 clamp_ps(__m256 x, double b)
{
    const __m256 bound = _mm256_set1_ps(b);
    return _mm256_min_ps(bound, _mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), bound), x));
}

static inline __m256 tanh_ps(__m256 x)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 m = expm1_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0f), abs_ps(x)));
    const __m256 magnitude = _mm256_div_ps(_mm256_sub_ps(_mm256_setzero_ps(), m), _mm256_add_ps(_mm256_set1_ps(2.0f), m));
    return _mm256_or_ps(_mm256_andnot_ps(sign, magnitude), _mm256_and_ps(sign, x));
}

#define real float
#define vec __m256
#define vmask __m256
#define VLEN 8
#define SFX(name) name##_f32
#define KFX(name) name##_avx2_f32
#define v_load(p, rem) load_ps(p, rem)
#define v_store(p, v, rem) store_ps(p, v, rem)
#define v_set(a) _mm256_set1_ps((float)(a))
#define v_add _mm256_add_ps
#define v_sub _mm256_sub_ps
#define v_mul _mm256_mul_ps
#define v_div _mm256_div_ps
#define v_fma _mm256_fmadd_ps
#define v_abs abs_ps
#define v_ge_zero(x) _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ)
#define v_select(m, a, b) _mm256_blendv_ps(b, a, m)
#define v_clamp clamp_ps
#define v_exp exp_ps
#define v_tanh tanh_ps
#include "activation_vec_template.h"
#undef real
#undef vec
#undef vmask
#undef VLEN
#undef SFX
#undef KFX
#undef v_load
#undef v_store
#undef v_set
#undef v_add
#undef v_sub
#undef v_mul
#undef v_div
#undef v_fma
#undef v_abs
#undef v_ge_zero
#undef v_select
#undef v_clamp
#undef v_exp
#undef v_tanh

/* ---- float64: 4 lanes --------------------------------------------------------------- */

static inline __m256d load_pd(const double* p, int64_t rem)
{
    return rem == 4 ? _mm256_loadu_pd(p) : _mm256_maskload_pd(p, tail_mask_pd(rem));
}

static inline void store_pd(double* p, __m256d v, int64_t rem)
{
    if (rem == 4) {
        _mm256_storeu_pd(p, v);
    } else {
        _mm256_maskstore_pd(p, tail_mask_pd(rem), v);
    }
}

static inline __m256d abs_pd(__m256d x)
{
    return _mm256_andnot_pd(_mm256_set1_pd(-0.0), x);
}

/* x clamped to [-b, b]; max and min return their second operand when one is NaN, so NaN passes. */
static inline __m256d clamp_pd(__m256d x, double b)
{
    const __m256d bound = _mm256_set1_pd(b);
    return _mm256_min_pd(bound, _mm256_max_pd(_mm256_sub_pd(_mm256_setzero_pd(), bound), x));
}

static inline __m256d tanh_pd(__m256d x)
{
    const __m256d sign = _mm256_set1_pd(-0.0);
    const __m256d m = expm1_pd(_mm256_mul_pd(_mm256_set1_pd(-2.0), abs_pd(x)));
    const __m256d magnitude = _mm256_div_pd(_mm256_sub_pd(_mm256_setzero_pd(), m), _mm256_add_pd(_mm256_set1_pd(2.0), m));
    return _mm256_or_pd(_mm256_andnot_pd(sign, magnitude), _mm256_and_pd(sign, x));
}

#define real double
#define vec __m256d
#define vmask __m256d
#define VLEN 4
#define SFX(name) name##_f64
#define KFX(name) name##_avx2_f64
#define v_load(p, rem) load_pd(p, rem)
#define v_store(p, v, rem) store_pd(p, v, rem)
#define v_set(a) _mm256_set1_pd((double)(a))
#define v_add _mm256_add_pd
#define v_sub _mm256_sub_pd
#define v_mul _mm256_mul_pd
#define v_div _mm256_div_pd
#define v_fma _mm256_fmadd_pd
#define v_abs abs_pd
#define v_ge_zero(x) _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_GE_OQ)
#define v_select(m, a, b) _mm256_blendv_pd(b, a, m)
#define v_clamp clamp_pd
#define v_exp exp_pd
#define v_tanh tanh_pd
#include "activation_vec_template.h"
