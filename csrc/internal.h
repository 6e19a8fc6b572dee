/*
 * Declarations shared by the C files of the core but not exported to Python:
 * the SIMD kernel tables, chosen once at run time, and the thread helpers.
 *
 * The AVX2 files (*_avx2.c) are compiled on their own with -mavx2 -mfma and define
 * MR_HAVE_AVX2 kernels; every other file is compiled for the baseline x86-64 (or any
 * other) target, so the module loads on CPUs without AVX2 and only calls an AVX2
 * function after __builtin_cpu_supports has returned true for avx2 and fma.
 */
#ifndef MINIREPARAM_INTERNAL_H
#define MINIREPARAM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "minireparam.h"

/* Largest micro-tile of any kernel below, for stack buffers of edge tiles. */
#define MR_MAX_MR 8
#define MR_MAX_NR 16

/*
 * Micro-kernel contract (both dtypes, every implementation):
 *     C[i, j] = alpha * sum_p A(i, p) * B(p, j) + beta * C[i, j]
 * for the full mr x nr tile, 0 <= i < mr, 0 <= j < nr, 0 <= p < k, where
 *     A(i, p) = a[i * rsa + p * csa]   (packed micro-panel: rsa = 1, csa = mr)
 *     B(p, j) = b[p * ldb + j]         (packed micro-panel: ldb = nr)
 * Overwrites C when beta == 0 (C is not read), accumulates otherwise.
 *   c  (mr, ldc)
 */
typedef void (*mr_microkernel_f32)(int64_t k, const float* a, int64_t rsa, int64_t csa,
                                   const float* b, int64_t ldb, float* c, int64_t ldc,
                                   float alpha, float beta);
typedef void (*mr_microkernel_f64)(int64_t k, const double* a, int64_t rsa, int64_t csa,
                                   const double* b, int64_t ldb, double* c, int64_t ldc,
                                   double alpha, double beta);

/*
 * Packing routines (contract of pack_a / pack_b in gemm_template.h): copy op(A)[0:mc,
 * 0:kc] into ceil(mc / mr) zero-padded micro-panels laid out (kc, mr), or op(B)[0:kc,
 * 0:nc] into ceil(nc / nr) micro-panels laid out (kc, nr). The transpose flag says
 * how op() reads the source.
 *   dst  (ceil(mc / mr), kc, mr) or (ceil(nc / nr), kc, nr)
 */
typedef void (*mr_pack_f32)(float* dst, const float* src, int64_t ld, int trans, int64_t rows_or_k,
                            int64_t k_or_cols, int tile);
typedef void (*mr_pack_f64)(double* dst, const double* src, int64_t ld, int trans, int64_t rows_or_k,
                            int64_t k_or_cols, int tile);

/* One GEMM kernel set: the micro-kernel, its packing routines, its tile and the cache
 * blocks sized for it. */
typedef struct {
    mr_microkernel_f32 kernel;
    mr_pack_f32 pack_a;    /* arguments (dst, a, lda, ta, mc, kc, mr) */
    mr_pack_f32 pack_b;    /* arguments (dst, b, ldb, tb, kc, nc, nr) */
    int mr, nr;            /* micro-tile rows (of A) and columns (of B) */
    int64_t kc, mc, nc;    /* cache blocks: kc x nr B panel in L1, mc x kc A block in L2 */
} mr_gemm_config_f32;

typedef struct {
    mr_microkernel_f64 kernel;
    mr_pack_f64 pack_a;
    mr_pack_f64 pack_b;
    int mr, nr;
    int64_t kc, mc, nc;
} mr_gemm_config_f64;

/*
 * Row primitives for softmax and cross-entropy, one set per dtype. Each streams
 * over one row of n elements that is expected to sit in L1 or L2 between calls.
 */
typedef struct {
    float (*max)(const float* x, int64_t n);
    double (*sum)(const float* x, int64_t n);
    double (*dot)(const float* x, const float* y, int64_t n);
    /* y = exp(x - shift), returns sum(y); y may be NULL to only sum */
    double (*exp_shift_sum)(float* y, const float* x, int64_t n, float shift);
    /* y = x * scale, in place allowed */
    void (*scale)(float* y, const float* x, int64_t n, float scale);
    /* y = x - shift */
    void (*sub)(float* y, const float* x, int64_t n, float shift);
    /* dx = y * (dy - s) */
    void (*softmax_bwd)(float* dx, const float* dy, const float* y, int64_t n, float s);
    /* dx = dy - exp(y) * s, and 0 where y = -inf */
    void (*log_softmax_bwd)(float* dx, const float* dy, const float* y, int64_t n, float s);
    /* y = (exp(x - shift) - offset) * scale */
    void (*exp_shift_affine)(float* y, const float* x, int64_t n, float shift, float offset, float scale);
} mr_rowops_f32;

typedef struct {
    double (*max)(const double* x, int64_t n);
    double (*sum)(const double* x, int64_t n);
    double (*dot)(const double* x, const double* y, int64_t n);
    double (*exp_shift_sum)(double* y, const double* x, int64_t n, double shift);
    void (*scale)(double* y, const double* x, int64_t n, double scale);
    void (*sub)(double* y, const double* x, int64_t n, double shift);
    void (*softmax_bwd)(double* dx, const double* dy, const double* y, int64_t n, double s);
    void (*log_softmax_bwd)(double* dx, const double* dy, const double* y, int64_t n, double s);
    void (*exp_shift_affine)(double* y, const double* x, int64_t n, double shift, double offset, double scale);
} mr_rowops_f64;

/* The active kernel sets (AVX2 when the CPU has it and it was compiled in). */
const mr_gemm_config_f32* mr_gemm_config_get_f32(void);
const mr_gemm_config_f64* mr_gemm_config_get_f64(void);
const mr_rowops_f32* mr_rowops_get_f32(void);
const mr_rowops_f64* mr_rowops_get_f64(void);
int mr_use_avx2(void);

/* Portable kernels, defined in gemm.c and softmax.c. */
extern const mr_gemm_config_f32 mr_gemm_portable_f32;
extern const mr_gemm_config_f64 mr_gemm_portable_f64;
extern const mr_rowops_f32 mr_rowops_portable_f32;
extern const mr_rowops_f64 mr_rowops_portable_f64;

#ifdef MR_HAVE_AVX2
/* AVX2/FMA kernels, defined in gemm_avx2.c and softmax_avx2.c. */
extern const mr_gemm_config_f32 mr_gemm_avx2_f32;
extern const mr_gemm_config_f64 mr_gemm_avx2_f64;
extern const mr_rowops_f32 mr_rowops_avx2_f32;
extern const mr_rowops_f64 mr_rowops_avx2_f64;
double mr_fma_loop_avx2(int is_f64, int64_t iterations);
#endif

/* Thread count for a call with `work` independent units (0 or 1 means run serially). */
int mr_threads_for(int64_t work);
int mr_max_threads(void);

/* Per-thread scratch buffer of at least `bytes`, 64-byte aligned, reused across calls
 * on the same thread (slot 0 packs A, slot 1 packs B). NULL when allocation fails. */
void* mr_scratch(int slot, size_t bytes);

/* Frees the calling thread's scratch buffers (for leak checkers; the next call
 * allocates them again). */
void mr_release_scratch(void);

#endif /* MINIREPARAM_INTERNAL_H */
