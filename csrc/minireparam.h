/*
 * minireparam C core: the public entry points, one prototype each.
 *
 * Dimension legend (used in every shape comment below and in the .c files):
 *   M, N, K  GEMM sizes: op(A) is (M, K), op(B) is (K, N), C is (M, N)
 *   BT       number of matrices in a batched GEMM
 *   BT0, BT1 outer and inner batch sizes of a two-level batched GEMM (BT0 * BT1 matrices)
 *   R        number of rows: of a softmax (every leading axis flattened), or the
 *            examples of a cross-entropy
 *   C        length of a softmax row, or number of classes in cross-entropy
 *
 * Conventions shared by every entry point:
 *   - Outputs come first, then inputs, then sizes, then options (scalars).
 *   - Matrices are row-major with a leading dimension (ld*, in elements): element
 *     (i, j) of a matrix X is X[i * ldx + j]. op(X) is X or its transpose, chosen by
 *     the trans_* flag, so a transposed view reaches the kernel without a copy.
 *   - Sizes, strides and indices are int64_t. Sizes may be 0.
 *   - Every entry point returns an int status (MR_OK on success) and never prints
 *     or exits. The Python side turns a non-zero status into an exception.
 *   - The functions are reentrant. Large calls run on the OpenMP thread pool when
 *     the core was built with OpenMP (see mr_set_num_threads).
 *
 * Everything between the CFFI-DECLARATIONS markers is read verbatim by
 * csrc/build_ccore.py as the cffi cdef, so it must stay plain C declarations:
 * no macros, no #include, no inline bodies.
 */
#ifndef MINIREPARAM_H
#define MINIREPARAM_H

#include <stdint.h>

/* CFFI-DECLARATIONS-BEGIN */

/* Status codes returned by every entry point. */
enum {
    MR_OK = 0,
    MR_ERR_INVALID_ARGUMENT = 1, /* a size is negative, a leading dimension too small, a flag unknown */
    MR_ERR_OUT_OF_MEMORY = 2,    /* a packing buffer could not be allocated */
    MR_ERR_TARGET_RANGE = 3      /* a cross-entropy target is outside [0, C) and not ignore_index */
};

/* GEMM variants: the rungs of the ladder, selectable by number. */
enum {
    MR_GEMM_AUTO = 0,       /* the fastest correct rung for the shape */
    MR_GEMM_NAIVE = 1,      /* triple loop, one dot product per output element */
    MR_GEMM_LOOP_ORDER = 2, /* loops ordered so the innermost access is unit-stride */
    MR_GEMM_BLOCKED = 3,    /* loop order plus cache blocking */
    MR_GEMM_PACKED = 4,     /* packed micro-panels and a register-blocked micro-kernel */
    MR_GEMM_THREADED = 5,   /* packed, split over threads (one parallel region per call) */
    MR_GEMM_SMALL = 6       /* micro-kernel on unpacked operands, for small matrices */
};

/*
 * GEMM, batched: for b in [0, BT):
 *     C_b = alpha * op(A_b) @ op(B_b) + beta * C_b
 * with X_b = X + b * stride_x. A stride of 0 reuses one matrix for the whole batch
 * (broadcasting). Overwrites C when beta == 0, in which case C is never read (it may
 * hold NaN), and accumulates into beta * C otherwise. C must not overlap A or B, and
 * the BT output matrices must not overlap each other (stride_c >= M * ldc, or BT == 1).
 *
 *   c        (BT, M, ldc)     output, row stride ldc >= N
 *   a        (BT, M, lda)     when trans_a == 0, lda >= K
 *            (BT, K, lda)     when trans_a == 1, lda >= M
 *   b        (BT, K, ldb)     when trans_b == 0, ldb >= N
 *            (BT, N, ldb)     when trans_b == 1, ldb >= K
 *   variant  one of MR_GEMM_*
 * Returns MR_ERR_INVALID_ARGUMENT for negative sizes or strides or too small leading
 * dimensions, MR_ERR_OUT_OF_MEMORY when packing buffers cannot be allocated.
 */
int mr_gemm_batched_f32(float* c, int64_t ldc, int64_t stride_c,
                        const float* a, int64_t lda, int64_t stride_a,
                        const float* b, int64_t ldb, int64_t stride_b,
                        int64_t BT, int64_t M, int64_t N, int64_t K,
                        int trans_a, int trans_b, float alpha, float beta, int variant);
int mr_gemm_batched_f64(double* c, int64_t ldc, int64_t stride_c,
                        const double* a, int64_t lda, int64_t stride_a,
                        const double* b, int64_t ldb, int64_t stride_b,
                        int64_t BT, int64_t M, int64_t N, int64_t K,
                        int trans_a, int trans_b, double alpha, double beta, int variant);

/* GEMM on one matrix: the batched form with BT = 1. Same contract. */
int mr_gemm_f32(float* c, int64_t ldc, const float* a, int64_t lda, const float* b, int64_t ldb,
                int64_t M, int64_t N, int64_t K, int trans_a, int trans_b,
                float alpha, float beta, int variant);
int mr_gemm_f64(double* c, int64_t ldc, const double* a, int64_t lda, const double* b, int64_t ldb,
                int64_t M, int64_t N, int64_t K, int trans_a, int trans_b,
                double alpha, double beta, int variant);

/*
 * GEMM, batched over two levels: for i in [0, BT0) and j in [0, BT1):
 *     C_ij = alpha * op(A_ij) @ op(B_ij) + beta * C_ij
 * with X_ij = X + i * stride_x0 + j * stride_x1, for operands whose two batch axes
 * cannot be merged into one stride (the (batch, heads) views of attention). Every
 * matrix runs in this one call, on the thread team when the whole call has enough work.
 * Same contract as mr_gemm_batched otherwise: strides of 0 broadcast, and the
 * BT0 * BT1 output matrices must not overlap each other, A or B.
 *   c        (BT0, BT1, M, ldc)  at strides (stride_c0, stride_c1)
 *   a        (BT0, BT1, M, lda) or (BT0, BT1, K, lda) when trans_a == 1
 *   b        (BT0, BT1, K, ldb) or (BT0, BT1, N, ldb) when trans_b == 1
 *   variant  one of MR_GEMM_*
 * Returns MR_ERR_INVALID_ARGUMENT for negative sizes or strides or too small leading
 * dimensions, MR_ERR_OUT_OF_MEMORY when packing buffers cannot be allocated.
 */
int mr_gemm_batched2_f32(float* c, int64_t ldc, int64_t stride_c0, int64_t stride_c1,
                         const float* a, int64_t lda, int64_t stride_a0, int64_t stride_a1,
                         const float* b, int64_t ldb, int64_t stride_b0, int64_t stride_b1,
                         int64_t BT0, int64_t BT1, int64_t M, int64_t N, int64_t K,
                         int trans_a, int trans_b, float alpha, float beta, int variant);
int mr_gemm_batched2_f64(double* c, int64_t ldc, int64_t stride_c0, int64_t stride_c1,
                         const double* a, int64_t lda, int64_t stride_a0, int64_t stride_a1,
                         const double* b, int64_t ldb, int64_t stride_b0, int64_t stride_b1,
                         int64_t BT0, int64_t BT1, int64_t M, int64_t N, int64_t K,
                         int trans_a, int trans_b, double alpha, double beta, int variant);

/*
 * GEMM against a B packed once and reused by many calls (an RNN's recurrent weight
 * over its time steps), so each call packs only A:
 *     mr_gemm_pack_b_bytes  writes the size of the packed form of a (K, N) op(B);
 *     mr_gemm_pack_b        packs op(B) into a caller-owned buffer of that size;
 *     mr_gemm_prepacked     C = alpha * op(A) @ op(B) + beta * C with that buffer.
 * The packed form is a snapshot: a later change to B needs a new mr_gemm_pack_b. It
 * depends on the active kernel set, so pack after any mr_force_portable call: a buffer
 * packed for another dtype or kernel set is rejected (MR_ERR_INVALID_ARGUMENT), never
 * misread. The buffer must start on a 64-byte boundary. mr_gemm_prepacked uses the
 * thread team as the auto variant does. Other conventions as in mr_gemm.
 *   bytes   (1,)            overwritten with the packed size in bytes
 *   packed  (packed_bytes,) opaque; written by mr_gemm_pack_b, read by mr_gemm_prepacked
 *   b       (K, ldb) when trans_b == 0, ldb >= N;  (N, ldb) when trans_b == 1, ldb >= K
 *   c       (M, ldc)        ldc >= N, with K and N from the packed buffer
 *   a       (M, lda) when trans_a == 0, lda >= K;  (K, lda) when trans_a == 1, lda >= M
 * Returns MR_ERR_INVALID_ARGUMENT for negative sizes, too small leading dimensions or
 * buffers, a misaligned or foreign packed buffer, MR_ERR_OUT_OF_MEMORY when the buffer
 * for packing A cannot be allocated.
 */
int mr_gemm_pack_b_bytes_f32(int64_t* bytes, int64_t K, int64_t N);
int mr_gemm_pack_b_bytes_f64(int64_t* bytes, int64_t K, int64_t N);
int mr_gemm_pack_b_f32(void* packed, int64_t packed_bytes, const float* b, int64_t ldb,
                       int64_t K, int64_t N, int trans_b);
int mr_gemm_pack_b_f64(void* packed, int64_t packed_bytes, const double* b, int64_t ldb,
                       int64_t K, int64_t N, int trans_b);
int mr_gemm_prepacked_f32(float* c, int64_t ldc, const float* a, int64_t lda, const void* packed,
                          int64_t M, int trans_a, float alpha, float beta);
int mr_gemm_prepacked_f64(double* c, int64_t ldc, const double* a, int64_t lda, const void* packed,
                          int64_t M, int trans_a, double alpha, double beta);

/*
 * Softmax and log-softmax over each row of a contiguous (R, C) array.
 *   out  (R, C)  overwritten; may be the same buffer as inp (in place)
 *   inp  (R, C)
 * A row of only -inf gives zeros (softmax) or -inf (log_softmax).
 */
int mr_softmax_forward_f32(float* out, const float* inp, int64_t R, int64_t C);
int mr_softmax_forward_f64(double* out, const double* inp, int64_t R, int64_t C);
int mr_log_softmax_forward_f32(float* out, const float* inp, int64_t R, int64_t C);
int mr_log_softmax_forward_f64(double* out, const double* inp, int64_t R, int64_t C);

/*
 * Backward of softmax and log-softmax, from the forward's output.
 *   dinp  (R, C)  overwritten (not accumulated); may be the same buffer as dout
 *   dout  (R, C)  upstream gradient
 *   out   (R, C)  the forward's output: softmax probabilities, or log-probabilities
 * softmax:     dinp = out * (dout - sum_c(dout * out))
 * log_softmax: dinp = dout - exp(out) * sum_c(dout), and 0 where out = -inf
 */
int mr_softmax_backward_f32(float* dinp, const float* dout, const float* out, int64_t R, int64_t C);
int mr_softmax_backward_f64(double* dinp, const double* dout, const double* out, int64_t R, int64_t C);
int mr_log_softmax_backward_f32(float* dinp, const float* dout, const float* out, int64_t R, int64_t C);
int mr_log_softmax_backward_f64(double* dinp, const double* dout, const double* out, int64_t R, int64_t C);

/*
 * Fused cross-entropy forward over contiguous (R, C) logits with int64 targets.
 * Per row r with t = targets[r] and smoothing eps:
 *     lse[r]    = log(sum_c exp(logits[r, c]))
 *     losses[r] = (1 - eps) * (lse[r] - logits[r, t]) + eps * (lse[r] - mean_c logits[r, c])
 * A row whose target equals ignore_index gets losses[r] = 0 and is left out of the
 * count. The reduction is done by the caller from losses and the returned count.
 *   losses     (R,)  overwritten
 *   lse        (R,)  overwritten, saved for the backward; 0 on ignored rows
 *   n_valid    (1,)    overwritten with the number of rows not ignored
 *   bad_row    (1,)    overwritten with the first row whose target is out of range, or -1
 *   logits     (R, C)
 *   targets    (R,)
 * Returns MR_ERR_TARGET_RANGE when a target is outside [0, C) and not ignore_index.
 */
int mr_cross_entropy_forward_f32(float* losses, float* lse, int64_t* n_valid, int64_t* bad_row,
                                 const float* logits, const int64_t* targets,
                                 int64_t R, int64_t C, int64_t ignore_index, double label_smoothing);
int mr_cross_entropy_forward_f64(double* losses, double* lse, int64_t* n_valid, int64_t* bad_row,
                                 const double* logits, const int64_t* targets,
                                 int64_t R, int64_t C, int64_t ignore_index, double label_smoothing);

/*
 * Fused cross-entropy backward:
 *     dlogits[r, :] = (softmax(logits[r]) - (1 - eps) * onehot(t) - eps / C) * scale[r]
 * where softmax comes from the saved lse and scale[r] = dlosses[r * dlosses_stride]
 * (stride 0 broadcasts one scale, e.g. grad_loss / n_valid for a mean). Ignored rows
 * get 0. Overwrites dlogits.
 *   dlogits  (R, C)  overwritten
 *   dlosses  (R,) when dlosses_stride == 1, (1,) when it is 0
 *   logits   (R, C)
 *   targets  (R,)
 *   lse      (R,)    from the forward
 */
int mr_cross_entropy_backward_f32(float* dlogits, const float* dlosses, int64_t dlosses_stride,
                                  const float* logits, const int64_t* targets, const float* lse,
                                  int64_t R, int64_t C, int64_t ignore_index, double label_smoothing);
int mr_cross_entropy_backward_f64(double* dlogits, const double* dlosses, int64_t dlosses_stride,
                                  const double* logits, const int64_t* targets, const double* lse,
                                  int64_t R, int64_t C, int64_t ignore_index, double label_smoothing);

/* Threads used by the threaded GEMM rung and by large softmax and cross-entropy calls.
 * n < 1 means every core. Without OpenMP the count is always 1. */
void mr_set_num_threads(int n);
int mr_get_num_threads(void);

/* Build facts for minireparam.kernels.info(): static strings, never freed. */
const char* mr_build_compiler(void);   /* e.g. "gcc 12.2.0" */
const char* mr_build_flags(void);      /* the flags the core was compiled with */
const char* mr_simd_level(void);       /* "avx2+fma" when the AVX2 kernels run, else "portable" */
int mr_simd_compiled(void);            /* 1 when the AVX2 kernels were compiled in */
int mr_openmp_enabled(void);           /* 1 when built with OpenMP */
int mr_gemm_micro_tile(int is_f64, int* mr, int* nr);  /* the active micro-tile, MR x NR */

/* Runs a register-resident FMA loop for about `seconds` on `threads` threads and
 * returns the measured GFLOP/s (2 flops per FMA lane), or 0 when not measurable. */
double mr_measure_fma_peak(int is_f64, int threads, double seconds);

/* Forces the portable kernels (force = 1) or the best available (force = 0).
 * For tests that compare the two paths; not thread-safe with running kernels. */
void mr_force_portable(int force);

/* CFFI-DECLARATIONS-END */

#endif /* MINIREPARAM_H */
