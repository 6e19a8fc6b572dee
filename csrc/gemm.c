/*
 * The GEMM ladder, in float32 and float64: rungs naive, loop_order, blocked,
 * packed, threaded and small, written once in gemm_template.h and instantiated
 * here for each element type. The AVX2/FMA micro-kernels live in gemm_avx2.c.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

#define MR_MIN(x, y) ((x) < (y) ? (x) : (y))
#define MR_MAX(x, y) ((x) > (y) ? (x) : (y))
#define MR_ROUND_UP(x, m) ((((x) + (m) - 1) / (m)) * (m))

#define real float
#define SFX(name) name##_f32
#include "gemm_template.h"
#undef real
#undef SFX

#define real double
#define SFX(name) name##_f64
#include "gemm_template.h"
#undef real
#undef SFX
