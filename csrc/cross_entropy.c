/*
 * Fused cross-entropy over the last axis with int64 targets, forward and backward,
 * in float32 and float64: the kernels in cross_entropy_template.h, instantiated
 * here for each type. They run on the row primitives of softmax.c / softmax_avx2.c.
 */
#include <math.h>
#include <stdint.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

#define real float
#define SFX(name) name##_f32
#include "cross_entropy_template.h"
#undef real
#undef SFX

#define real double
#define SFX(name) name##_f64
#include "cross_entropy_template.h"
#undef real
#undef SFX
