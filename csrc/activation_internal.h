/*
 * Declarations shared by activation.c and activation_avx2.c: the table of block
 * kernels for the elementwise activations and the LSTM cell, one table per dtype
 * and instruction set. activation.c picks the AVX2 table after the run-time CPU
 * check of core.c (mr_use_avx2) and the portable one otherwise.
 *
 * A block kernel processes `n` consecutive elements (any n >= 0, tails included)
 * on one thread; the entry points of activation_template.h split the work into
 * blocks and the blocks over threads.
 */
#ifndef MINIREPARAM_ACTIVATION_INTERNAL_H
#define MINIREPARAM_ACTIVATION_INTERNAL_H

#include <stdint.h>

#include "internal.h"

/*
 * Block kernels for one dtype. The LSTM kernels read and write one row of each
 * operand from column j0 on: `pre`, `gates` and `d_pre` point at column j0 of the
 * gate block i, and gate block k (i, f, g, o = 0..3) starts H elements after block
 * k - 1. Every other pointer is at column j0 of its (H,) row.
 */
typedef struct {
    void (*sigmoid)(float* y, const float* x, int64_t n);
    void (*sigmoid_backward)(float* dx, const float* dy, const float* y, int64_t n);
    void (*tanh)(float* y, const float* x, int64_t n);
    void (*tanh_backward)(float* dx, const float* dy, const float* y, int64_t n);
    void (*gelu_tanh)(float* y, const float* x, int64_t n);
    void (*gelu_tanh_backward)(float* dx, const float* dy, const float* x, int64_t n);
    void (*lstm_forward)(float* gates, float* c, float* tanh_c, float* h, const float* pre, const float* c_prev,
                         int64_t H, int64_t n);
    void (*lstm_backward)(float* d_pre, float* dc_prev, float* scratch, const float* dh, const float* dc,
                          const float* gates, const float* c_prev, const float* tanh_c, int64_t H, int64_t n);
} mr_actops_f32;

typedef struct {
    void (*sigmoid)(double* y, const double* x, int64_t n);
    void (*sigmoid_backward)(double* dx, const double* dy, const double* y, int64_t n);
    void (*tanh)(double* y, const double* x, int64_t n);
    void (*tanh_backward)(double* dx, const double* dy, const double* y, int64_t n);
    void (*gelu_tanh)(double* y, const double* x, int64_t n);
    void (*gelu_tanh_backward)(double* dx, const double* dy, const double* x, int64_t n);
    void (*lstm_forward)(double* gates, double* c, double* tanh_c, double* h, const double* pre,
                         const double* c_prev, int64_t H, int64_t n);
    void (*lstm_backward)(double* d_pre, double* dc_prev, double* scratch, const double* dh, const double* dc,
                          const double* gates, const double* c_prev, const double* tanh_c, int64_t H, int64_t n);
} mr_actops_f64;

/* Portable tables (scalar libm), defined in activation.c. */
extern const mr_actops_f32 mr_actops_portable_f32;
extern const mr_actops_f64 mr_actops_portable_f64;

#ifdef MR_HAVE_AVX2
/* AVX2/FMA tables, defined in activation_avx2.c. */
extern const mr_actops_f32 mr_actops_avx2_f32;
extern const mr_actops_f64 mr_actops_avx2_f64;
#endif

#endif /* MINIREPARAM_ACTIVATION_INTERNAL_H */
