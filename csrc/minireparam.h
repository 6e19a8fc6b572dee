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

/*
 * Elementwise activations, forward and backward, over n contiguous elements.
 * Sizes: n elements; every array below is (n,). The backward kernels overwrite
 * (do not accumulate into) dx. An output may be the same buffer as an input
 * (in place), but must not overlap it at a shifted position.
 *   sigmoid:    y = 1 / (1 + e^-x);           dx = dy * y * (1 - y), from y
 *   tanh:       y = tanh(x);                  dx = dy * (1 - y^2), from y
 *   gelu_tanh:  y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3) (PyTorch's
 *               approximate="tanh"), computed as x * sigmoid(2u); dx = dy * y'(x), from x
 * Special values: NaN gives NaN; tanh(+-inf) = +-1 and sigmoid(+-inf) = 1 or 0;
 * tanh(x) is exactly +-1 and sigmoid(x) exactly 1 once the true value is within
 * half an ulp. gelu_tanh(-inf) is NaN (-inf * 0, as in PyTorch); its derivative at
 * +-inf is the limit 1 or 0 (PyTorch gives NaN there).
 * Accuracy against a long double reference (tests/test_kernels_activation.py,
 * test_accuracy_sweep: 400k values of |x| <= 100 per dtype plus subnormals and tails;
 * bound = max measured error over the AVX2 and portable kernels and the numpy
 * backend, plus 25%, rounded up to half a unit). The AVX2 float64 kernels use the
 * vectorized exp_pd / expm1_pd of vecmath_avx2.h, the portable ones scalar libm.
 *   sigmoid     4 ulp   (measured 3.2 float32, 2.3 float64)
 *   tanh        3.5 ulp (measured 2.5 float32, 2.4 float64)
 *   gelu_tanh   3.5 (1 + |2u|) ulp: the rounding of 2u is amplified by |2u| in e^-|2u|
 *               (measured 2.8 float32, 2.4 float64 per unit of 1 + |2u|)
 *   backward    0.5 (sigmoid), 1 (tanh), 3 (gelu_tanh) times eps * |dy| absolute
 *               (measured 0.31, 0.75, 2.2)
 * In the AVX2 kernels e^x flushes to 0 below x = -87.3 (float32) or -708.4 (float64),
 * so sigmoid and gelu_tanh give 0 where the true result is below 2^-126 (2^-1022)
 * times max(1, |x|) instead of a subnormal.
 */
int mr_sigmoid_forward_f32(float* y, const float* x, int64_t n);
int mr_sigmoid_forward_f64(double* y, const double* x, int64_t n);
int mr_sigmoid_backward_f32(float* dx, const float* dy, const float* y, int64_t n);
int mr_sigmoid_backward_f64(double* dx, const double* dy, const double* y, int64_t n);
int mr_tanh_forward_f32(float* y, const float* x, int64_t n);
int mr_tanh_forward_f64(double* y, const double* x, int64_t n);
int mr_tanh_backward_f32(float* dx, const float* dy, const float* y, int64_t n);
int mr_tanh_backward_f64(double* dx, const double* dy, const double* y, int64_t n);
int mr_gelu_tanh_forward_f32(float* y, const float* x, int64_t n);
int mr_gelu_tanh_forward_f64(double* y, const double* x, int64_t n);
int mr_gelu_tanh_backward_f32(float* dx, const float* dy, const float* x, int64_t n);
int mr_gelu_tanh_backward_f64(double* dx, const double* dy, const double* x, int64_t n);

/*
 * LSTM cell, the elementwise part of one step, over B rows of hidden size H. Each
 * operand is a row-major matrix with its own leading dimension (ld*, in elements),
 * so row blocks of larger buffers work without a copy. Gate order i, f, g, o:
 *     i, f, o = sigmoid(pre);  g = tanh(pre);  c = f * c_prev + i * g;  h = o * tanh(c)
 *   gates   (B, ld_gates)   overwritten with the activated gates, ld_gates >= 4H
 *   c       (B, ld_c)       overwritten with the new cell state, ld_c >= H
 *   tanh_c  (B, ld_tanh_c)  overwritten with tanh(c)
 *   h       (B, ld_h)       overwritten with the new hidden state
 *   pre     (B, ld_pre)     pre-activations, blocks i, f, g, o of H columns each, ld_pre >= 4H
 *   c_prev  (B, ld_c_prev)  previous cell state; c may be the same buffer (in place)
 * Returns MR_ERR_INVALID_ARGUMENT for a negative B or H or a too small leading dimension.
 */
int mr_lstm_cell_forward_f32(float* gates, int64_t ld_gates, float* c, int64_t ld_c, float* tanh_c,
                             int64_t ld_tanh_c, float* h, int64_t ld_h, const float* pre, int64_t ld_pre,
                             const float* c_prev, int64_t ld_c_prev, int64_t B, int64_t H);
int mr_lstm_cell_forward_f64(double* gates, int64_t ld_gates, double* c, int64_t ld_c, double* tanh_c,
                             int64_t ld_tanh_c, double* h, int64_t ld_h, const double* pre, int64_t ld_pre,
                             const double* c_prev, int64_t ld_c_prev, int64_t B, int64_t H);

/*
 * LSTM cell backward, from the forward's activated gates, c_prev and tanh(c):
 *     total   = dc + dh * o * (1 - tanh(c)^2)     (the cotangent of c)
 *     d_pre   = blocks [total g i (1 - i), total c_prev f (1 - f),
 *                       total i (1 - g^2), dh tanh(c) o (1 - o)]
 *     dc_prev = total * f,  scratch = total
 *   d_pre    (B, ld_d_pre)    overwritten, ld_d_pre >= 4H
 *   dc_prev  (B, ld_dc_prev)  overwritten; may be the same buffer as dc, so a loop over
 *                             time steps can carry one buffer
 *   scratch  (B, ld_scratch)  overwritten with the total cotangent of c
 *   dh       (B, ld_dh)       cotangent of h
 *   dc       (B, ld_dc)       cotangent of c from everything except h
 *   gates    (B, ld_gates)    from the forward, ld_gates >= 4H
 *   c_prev   (B, ld_c_prev)
 *   tanh_c   (B, ld_tanh_c)   from the forward
 * Returns MR_ERR_INVALID_ARGUMENT for a negative B or H or a too small leading dimension.
 */
int mr_lstm_cell_backward_f32(float* d_pre, int64_t ld_d_pre, float* dc_prev, int64_t ld_dc_prev, float* scratch,
                              int64_t ld_scratch, const float* dh, int64_t ld_dh, const float* dc, int64_t ld_dc,
                              const float* gates, int64_t ld_gates, const float* c_prev, int64_t ld_c_prev,
                              const float* tanh_c, int64_t ld_tanh_c, int64_t B, int64_t H);
int mr_lstm_cell_backward_f64(double* d_pre, int64_t ld_d_pre, double* dc_prev, int64_t ld_dc_prev,
                              double* scratch, int64_t ld_scratch, const double* dh, int64_t ld_dh,
                              const double* dc, int64_t ld_dc, const double* gates, int64_t ld_gates,
                              const double* c_prev, int64_t ld_c_prev, const double* tanh_c, int64_t ld_tanh_c,
                              int64_t B, int64_t H);

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
