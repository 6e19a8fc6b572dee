/*
 * Elementwise activations (sigmoid, tanh, GELU with the tanh approximation, forward
 * and backward) and the fused LSTM cell, in float32 and float64. This file compiles the
 * entry points of activation_template.h and the portable block kernels. Those are the
 * kernels of activation_vec_template.h on one-lane "vectors", with libm's exp and tanh.
 * The AVX2 block kernels live in activation_avx2.c.
 */
#include <math.h>
#include <stdint.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "activation_internal.h"

/* ---- portable block kernels: one lane, libm ---------------------------------------- */

#define VLEN 1
#define v_load(p, rem) ((void)(rem), *(p))
#define v_store(p, v, rem) ((void)(rem), *(p) = (v))
#define v_set(a) ((real)(a))
#define v_add(a, b) ((a) + (b))
#define v_sub(a, b) ((a) - (b))
#define v_mul(a, b) ((a) * (b))
#define v_div(a, b) ((a) / (b))
#define v_fma(a, b, c) ((a) * (b) + (c)) /* two roundings: -std=c11 does not contract it */
#define v_ge_zero(x) ((x) >= 0)
#define v_select(m, a, b) ((m) ? (a) : (b))
/* Comparisons with NaN are false, so NaN falls through to x. */
#define v_clamp(x, b) ((x) < -(real)(b) ? -(real)(b) : ((x) > (real)(b) ? (real)(b) : (x)))

#define real float
#define vec float
#define vmask int
#define SFX(name) name##_f32
#define KFX(name) name##_portable_f32
#define v_abs(x) fabsf(x)
#define v_exp(x) expf(x)
#define v_tanh(x) tanhf(x)
#include "activation_vec_template.h"
#undef real
#undef vec
#undef vmask
#undef SFX
#undef KFX
#undef v_abs
#undef v_exp
#undef v_tanh

#define real double
#define vec double
#define vmask int
#define SFX(name) name##_f64
#define KFX(name) name##_portable_f64
#define v_abs(x) fabs(x)
#define v_exp(x) exp(x)
#define v_tanh(x) tanh(x)
#include "activation_vec_template.h"
#undef real
#undef vec
#undef vmask
#undef SFX
#undef KFX
#undef v_abs
#undef v_exp
#undef v_tanh

/* ---- entry points ----------------------------------------------------------------- */

#define real float
#define SFX(name) name##_f32
#include "activation_template.h"
#undef real
#undef SFX

#define real double
#define SFX(name) name##_f64
#include "activation_template.h"
#undef real
#undef SFX
