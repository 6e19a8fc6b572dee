/*
 * Softmax and log-softmax over the last axis, forward and backward, in float32 and
 * float64: the row kernels in softmax_template.h, instantiated here for each type,
 * and the portable row primitives. The AVX2 primitives live in softmax_avx2.c.
 */
#include <math.h>
#include <stdint.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

#define real float
#define SFX(name) name##_f32
#define exp_scalar_f32 expf
#include "softmax_template.h"
#undef real
#undef SFX

#define real double
#define SFX(name) name##_f64
#define exp_scalar_f64 exp
#include "softmax_template.h"
#undef real
#undef SFX
