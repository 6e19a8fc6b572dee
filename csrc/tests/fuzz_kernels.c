/*
 * Fuzz driver for the C core, meant to run under AddressSanitizer and
 * UndefinedBehaviorSanitizer (tests/test_sanitizers.py builds and runs it).
 *
 * Every case draws random sizes, transposes, leading dimensions, one- and two-level
 * batch strides (including 0 and interleaved matrices) and values. It allocates each
 * operand with exactly the bytes the kernel may touch, so a read or write past the end
 * trips AddressSanitizer, then runs the kernel and compares it with a naive float64
 * reference written here. The GEMM against a pre-packed B is fuzzed the same way.
 * The activations (sigmoid, tanh, GELU) and the LSTM cell, forward and backward, get
 * special values (NaN, +-inf, +-0, subnormals, huge magnitudes), in-place calls and
 * row gaps, and are compared with a long double reference within the bounds of
 * minireparam.h. Both the AVX2 and the portable kernels are exercised.
 *
 * Usage: fuzz_kernels [cases] [seed]      (defaults: 300 cases, seed 1)
 * Exit status 0 when every check passed, 1 otherwise.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../internal.h"
#include "../minireparam.h"

static int64_t g_checks = 0;
static int64_t g_failures = 0;

/* ---- random numbers (xorshift64*, so runs are reproducible from the seed) ---- */

static uint64_t g_rng = 1;

static uint64_t next_u64(void)
{
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ULL;
}

/* Uniform integer in [lo, hi]. */
static int64_t rand_int(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(next_u64() % (uint64_t)(hi - lo + 1));
}

/* Uniform double in [-1, 1). */
static double rand_unit(void)
{
    return (double)(next_u64() >> 11) * (2.0 / 9007199254740992.0) - 1.0;
}

static void check(int ok, const char* what)
{
    g_checks++;
    if (!ok) {
        g_failures++;
        if (g_failures <= 20) {
            fprintf(stderr, "fuzz_kernels: FAILED %s\n", what);
        }
    }
}

/* Exactly `count` elements (at least 1 byte, so malloc never returns a shared NULL). */
static void* alloc_exact(int64_t count, size_t item)
{
    void* p = malloc(count > 0 ? (size_t)count * item : 1);
    if (p == NULL) {
        fprintf(stderr, "fuzz_kernels: out of memory\n");
        exit(2);
    }
    return p;
}

/* ---- GEMM ------------------------------------------------------------------------------ */

/* Size classes of a GEMM case: small ones cover edges and the small-matrix path, the
 * others cross the cache blocks (kc = 256, mc = 96..144, nc = 2048..3072). */
enum { SIZE_SMALL, SIZE_LONG_K, SIZE_WIDE_N };

/* Memory layouts of one operand's batch of (rows, cols) matrices over (BT0, BT1). */
enum {
    BATCH_BACK_TO_BACK,  /* every matrix after the previous one */
    BATCH_INTERLEAVED,   /* the BT1 inner matrices side by side in each row, as attention's heads */
    BATCH_BROADCAST_1,   /* stride 0 on the inner level */
    BATCH_BROADCAST_0,   /* stride 0 on the outer level */
    BATCH_LAYOUTS
};

typedef struct {
    int64_t ld, stride0, stride1;
    int64_t size;  /* elements from the first to one past the last one the kernel may touch */
} batch_layout;

/* Draws a layout; outputs (allow_broadcast == 0) never get a stride of 0, so their
 * matrices never overlap. */
static batch_layout draw_batch_layout(int64_t rows, int64_t cols, int64_t BT0, int64_t BT1, int allow_broadcast)
{
    const int kind = (int)rand_int(0, allow_broadcast ? BATCH_LAYOUTS - 1 : BATCH_INTERLEAVED);
    const int64_t width = cols > 0 ? cols : 1;
    batch_layout layout;
    layout.ld = (kind == BATCH_INTERLEAVED ? BT1 * width : width) + rand_int(0, 3);
    const int64_t matrix = rows > 0 ? (rows - 1) * layout.ld + cols : 0;
    if (kind == BATCH_INTERLEAVED) {
        layout.stride1 = width;
        layout.stride0 = rows * layout.ld + rand_int(0, 2);
    } else {
        layout.stride1 = kind == BATCH_BROADCAST_1 ? 0 : matrix + rand_int(0, 2);
        layout.stride0 = kind == BATCH_BROADCAST_0 ? 0 : (BT1 - 1) * layout.stride1 + matrix + rand_int(0, 2);
    }
    layout.size = matrix > 0 ? (BT0 - 1) * layout.stride0 + (BT1 - 1) * layout.stride1 + matrix : 0;
    return layout;
}

/* Copies float64 values into a new array of the tested dtype (exactly `count` elements). */
static void* to_dtype(const double* values, int64_t count, int is_f64)
{
    void* out = alloc_exact(count, is_f64 ? sizeof(double) : sizeof(float));
    for (int64_t i = 0; i < count; i++) {
        if (is_f64) ((double*)out)[i] = values[i]; else ((float*)out)[i] = (float)values[i];
    }
    return out;
}

static double load(const void* x, int64_t i, int is_f64)
{
    return is_f64 ? ((const double*)x)[i] : (double)((const float*)x)[i];
}

/*
 * Checks one (M, N) output matrix against a float64 triple loop on the operands as
 * rounded to the tested dtype. Bound: a sum of K products in any order is within
 * K * eps * sum |a||b| (plus the alpha/beta rounding), so 2 (K + 2) eps times that sum
 * is allowed. c_in contains C's values before the call (ignored when beta_kind == 0).
 */
static int gemm_matrix_ok(const void* a, int64_t lda, const void* b, int64_t ldb, const void* c, const double* c_in,
                          int64_t ldc, int64_t M, int64_t N, int64_t K, int ta, int tb, double alpha, double beta,
                          int beta_kind, int is_f64)
{
    const double eps = is_f64 ? 2.220446049250313e-16 : 1.1920928955078125e-07;
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            double sum = 0, magnitude = 0;
            for (int64_t p = 0; p < K; p++) {
                const double va = load(a, ta ? p * lda + i : i * lda + p, is_f64);
                const double vb = load(b, tb ? j * ldb + p : p * ldb + j, is_f64);
                sum += va * vb;
                magnitude += fabs(va * vb);
            }
            const double old = beta_kind == 0 ? 0.0 : (is_f64 ? c_in[i * ldc + j] : (double)(float)c_in[i * ldc + j]);
            const double expected = alpha * sum + beta * old;
            const double got = load(c, i * ldc + j, is_f64);
            const double tol = 2.0 * (double)(K + 2) * eps * (fabs(alpha) * magnitude + fabs(beta * old)) + 1e-30;
            if (!(fabs(got - expected) <= tol)) {
                return 0;
            }
        }
    }
    return 1;
}

/*
 * One GEMM case batched over two levels (mr_gemm_batched2), or over one level
 * (mr_gemm_batched) when the outer level has size 1 and a random draw picks it, in the
 * given dtype (is_f64), against a float64 triple loop.
 */
static void fuzz_gemm_case(int is_f64, int variant, int size_class, char* label)
{
    const int64_t BT0 = size_class == SIZE_SMALL ? rand_int(1, 3) : 1;
    const int64_t BT1 = size_class == SIZE_SMALL ? rand_int(1, 3) : 1;
    int64_t M = rand_int(0, 40), N = rand_int(0, 40), K = rand_int(0, 40);
    if (size_class == SIZE_LONG_K) {
        M = rand_int(1, 160);
        N = rand_int(1, 40);
        K = rand_int(250, 600);
    } else if (size_class == SIZE_WIDE_N) {
        M = rand_int(1, 13);
        N = rand_int(3073, 3200);
        K = rand_int(1, 12);
    }
    const int ta = (int)rand_int(0, 1), tb = (int)rand_int(0, 1);
    const batch_layout la = draw_batch_layout(ta ? K : M, ta ? M : K, BT0, BT1, 1);
    const batch_layout lb = draw_batch_layout(tb ? N : K, tb ? K : N, BT0, BT1, 1);
    const batch_layout lc = draw_batch_layout(M, N, BT0, BT1, 0);
    const int one_level = BT0 == 1 && rand_int(0, 1);
    const double alpha = rand_int(0, 3) == 0 ? 1.0 : rand_unit() * 2;
    const int beta_kind = (int)rand_int(0, 2); /* 0: beta 0 over NaN, 1: beta 1, 2: random */
    const double beta = beta_kind == 0 ? 0.0 : (beta_kind == 1 ? 1.0 : rand_unit());

    double* a64 = alloc_exact(la.size, sizeof(double));
    double* b64 = alloc_exact(lb.size, sizeof(double));
    double* c64 = alloc_exact(lc.size, sizeof(double));
    for (int64_t i = 0; i < la.size; i++) a64[i] = rand_unit();
    for (int64_t i = 0; i < lb.size; i++) b64[i] = rand_unit();
    for (int64_t i = 0; i < lc.size; i++) c64[i] = beta_kind == 0 ? NAN : rand_unit();
    void* a = to_dtype(a64, la.size, is_f64);
    void* b = to_dtype(b64, lb.size, is_f64);
    void* c = to_dtype(c64, lc.size, is_f64);

    int status;
    if (one_level && is_f64) {
        status = mr_gemm_batched_f64(c, lc.ld, lc.stride1, a, la.ld, la.stride1, b, lb.ld, lb.stride1, BT1, M, N, K,
                                     ta, tb, alpha, beta, variant);
    } else if (one_level) {
        status = mr_gemm_batched_f32(c, lc.ld, lc.stride1, a, la.ld, la.stride1, b, lb.ld, lb.stride1, BT1, M, N, K,
                                     ta, tb, (float)alpha, (float)beta, variant);
    } else if (is_f64) {
        status = mr_gemm_batched2_f64(c, lc.ld, lc.stride0, lc.stride1, a, la.ld, la.stride0, la.stride1, b, lb.ld,
                                      lb.stride0, lb.stride1, BT0, BT1, M, N, K, ta, tb, alpha, beta, variant);
    } else {
        status = mr_gemm_batched2_f32(c, lc.ld, lc.stride0, lc.stride1, a, la.ld, la.stride0, la.stride1, b, lb.ld,
                                      lb.stride0, lb.stride1, BT0, BT1, M, N, K, ta, tb, (float)alpha, (float)beta,
                                      variant);
    }
    snprintf(label + strlen(label), 200, " BT=%lldx%lld%s M=%lld N=%lld K=%lld ta=%d tb=%d", (long long)BT0,
             (long long)BT1, one_level ? " (one level)" : "", (long long)M, (long long)N, (long long)K, ta, tb);
    check(status == MR_OK, label);

    const size_t item = is_f64 ? sizeof(double) : sizeof(float);
    int ok = 1;
    for (int64_t i = 0; i < BT0 && ok; i++) {
        for (int64_t j = 0; j < BT1 && ok; j++) {
            const int64_t oa = i * la.stride0 + j * la.stride1, ob = i * lb.stride0 + j * lb.stride1;
            const int64_t oc = i * lc.stride0 + j * lc.stride1;
            ok = M == 0 || N == 0 ||
                 gemm_matrix_ok((const char*)a + oa * item, la.ld, (const char*)b + ob * item, lb.ld,
                                (const char*)c + oc * item, c64 + oc, lc.ld, M, N, K, ta, tb, alpha, beta, beta_kind,
                                is_f64);
        }
    }
    check(ok, label);
    free(a64);
    free(b64);
    free(c64);
    free(a);
    free(b);
    free(c);
}

/*
 * One GEMM against a pre-packed B: pack op(B) into a buffer of exactly the reported
 * size, then run mr_gemm_prepacked twice on it (the buffer is reused, as in an RNN's
 * time loop) and check both results.
 */
static void fuzz_gemm_prepacked_case(int is_f64, int size_class, char* label)
{
    int64_t M = rand_int(0, 40), N = rand_int(0, 40), K = rand_int(0, 40);
    if (size_class == SIZE_LONG_K) {
        M = rand_int(1, 160);  /* past mc (96 to 144), so several row blocks */
        N = rand_int(1, 40);
        K = rand_int(250, 800);  /* past kc (256 to 384), so several K blocks */
    } else if (size_class == SIZE_WIDE_N) {
        M = rand_int(1, 13);
        N = rand_int(3073, 3200);
        K = rand_int(1, 12);
    }
    const int ta = (int)rand_int(0, 1), tb = (int)rand_int(0, 1);
    const batch_layout la = draw_batch_layout(ta ? K : M, ta ? M : K, 1, 1, 0);
    const batch_layout lb = draw_batch_layout(tb ? N : K, tb ? K : N, 1, 1, 0);
    const batch_layout lc = draw_batch_layout(M, N, 1, 1, 0);
    snprintf(label + strlen(label), 200, " M=%lld N=%lld K=%lld ta=%d tb=%d", (long long)M, (long long)N,
             (long long)K, ta, tb);

    double* b64 = alloc_exact(lb.size, sizeof(double));
    for (int64_t i = 0; i < lb.size; i++) b64[i] = rand_unit();
    void* b = to_dtype(b64, lb.size, is_f64);
    int64_t bytes = -1;
    int status = is_f64 ? mr_gemm_pack_b_bytes_f64(&bytes, K, N) : mr_gemm_pack_b_bytes_f32(&bytes, K, N);
    check(status == MR_OK && bytes >= 64, label);
    void* packed = NULL;
    if (posix_memalign(&packed, 64, (size_t)bytes) != 0) {
        fprintf(stderr, "fuzz_kernels: out of memory\n");
        exit(2);
    }
    status = is_f64 ? mr_gemm_pack_b_f64(packed, bytes, b, lb.ld, K, N, tb)
                    : mr_gemm_pack_b_f32(packed, bytes, b, lb.ld, K, N, tb);
    check(status == MR_OK, label);

    for (int round = 0; round < 2; round++) {
        const double alpha = rand_int(0, 3) == 0 ? 1.0 : rand_unit() * 2;
        const int beta_kind = (int)rand_int(0, 2);
        const double beta = beta_kind == 0 ? 0.0 : (beta_kind == 1 ? 1.0 : rand_unit());
        double* a64 = alloc_exact(la.size, sizeof(double));
        double* c64 = alloc_exact(lc.size, sizeof(double));
        for (int64_t i = 0; i < la.size; i++) a64[i] = rand_unit();
        for (int64_t i = 0; i < lc.size; i++) c64[i] = beta_kind == 0 ? NAN : rand_unit();
        void* a = to_dtype(a64, la.size, is_f64);
        void* c = to_dtype(c64, lc.size, is_f64);
        mr_set_num_threads((int)rand_int(1, 3));
        status = is_f64 ? mr_gemm_prepacked_f64(c, lc.ld, a, la.ld, packed, M, ta, alpha, beta)
                        : mr_gemm_prepacked_f32(c, lc.ld, a, la.ld, packed, M, ta, (float)alpha, (float)beta);
        check(status == MR_OK, label);
        check(M == 0 || N == 0 ||
                  gemm_matrix_ok(a, la.ld, b, lb.ld, c, c64, lc.ld, M, N, K, ta, tb, alpha, beta, beta_kind, is_f64),
              label);
        free(a64);
        free(c64);
        free(a);
        free(c);
    }
    free(b64);
    free(b);
    free(packed);
}

/* The packed-B entry points reject bad sizes and buffers that are too small, misaligned,
 * of the other dtype, corrupted or packed for another kernel set. */
static void fuzz_gemm_prepacked_invalid(void)
{
    enum { K = 5, N = 7 };
    float b[K * N] = {0}, a[2 * K] = {0}, c[2 * N] = {0};
    int64_t bytes = 0;
    check(mr_gemm_pack_b_bytes_f32(&bytes, -1, N) == MR_ERR_INVALID_ARGUMENT, "pack_b_bytes: negative K");
    check(mr_gemm_pack_b_bytes_f32(NULL, K, N) == MR_ERR_INVALID_ARGUMENT, "pack_b_bytes: NULL output");
    check(mr_gemm_pack_b_bytes_f32(&bytes, K, N) == MR_OK, "pack_b_bytes");
    void* packed = NULL;
    if (posix_memalign(&packed, 64, (size_t)bytes + 64) != 0) {
        exit(2);
    }
    check(mr_gemm_pack_b_f32(packed, bytes - 1, b, N, K, N, 0) == MR_ERR_INVALID_ARGUMENT, "pack_b: buffer too small");
    check(mr_gemm_pack_b_f32((char*)packed + 8, bytes, b, N, K, N, 0) == MR_ERR_INVALID_ARGUMENT,
          "pack_b: misaligned buffer");
    check(mr_gemm_pack_b_f32(packed, bytes, b, N - 1, K, N, 0) == MR_ERR_INVALID_ARGUMENT, "pack_b: ldb < N");
    check(mr_gemm_pack_b_f32(packed, bytes, b, N, K, N, 2) == MR_ERR_INVALID_ARGUMENT, "pack_b: trans_b = 2");
    check(mr_gemm_pack_b_f32(packed, bytes, b, N, K, N, 0) == MR_OK, "pack_b");

    check(mr_gemm_prepacked_f32(c, N, a, K, packed, 2, 0, 1, 0) == MR_OK, "prepacked");
    check(mr_gemm_prepacked_f32(c, N - 1, a, K, packed, 2, 0, 1, 0) == MR_ERR_INVALID_ARGUMENT, "prepacked: ldc < N");
    check(mr_gemm_prepacked_f32(c, N, a, K - 1, packed, 2, 0, 1, 0) == MR_ERR_INVALID_ARGUMENT, "prepacked: lda < K");
    check(mr_gemm_prepacked_f32(c, N, a, K, packed, -1, 0, 1, 0) == MR_ERR_INVALID_ARGUMENT, "prepacked: negative M");
    check(mr_gemm_prepacked_f32(c, N, a, K, (char*)packed + 8, 2, 0, 1, 0) == MR_ERR_INVALID_ARGUMENT,
          "prepacked: misaligned buffer");
    check(mr_gemm_prepacked_f64((double*)c, N, (double*)a, K, packed, 1, 0, 1, 0) == MR_ERR_INVALID_ARGUMENT,
          "prepacked: float32 buffer used as float64");
    /* A kernel set with another K block or panel width must not read these panels. */
    const mr_gemm_config_f32* packed_for = mr_gemm_config_get_f32();
    mr_force_portable(1);
    const mr_gemm_config_f32* portable = mr_gemm_config_get_f32();
    const int same_layout = portable->kc == packed_for->kc && portable->nr == packed_for->nr;
    check(mr_gemm_prepacked_f32(c, N, a, K, packed, 2, 0, 1, 0) == (same_layout ? MR_OK : MR_ERR_INVALID_ARGUMENT),
          "prepacked: buffer packed for another kernel set");
    mr_force_portable(0);
    ((unsigned char*)packed)[0] ^= 0xff;
    check(mr_gemm_prepacked_f32(c, N, a, K, packed, 2, 0, 1, 0) == MR_ERR_INVALID_ARGUMENT,
          "prepacked: corrupted header");
    free(packed);
}

/* Argument validation: each of these must be rejected without touching memory. */
static void fuzz_gemm_invalid(void)
{
    float x[4] = {0};
    check(mr_gemm_f32(x, 2, x, 2, x, 2, -1, 2, 2, 0, 0, 1, 0, 0) == MR_ERR_INVALID_ARGUMENT, "negative M");
    check(mr_gemm_f32(x, 1, x, 2, x, 2, 2, 2, 2, 0, 0, 1, 0, 0) == MR_ERR_INVALID_ARGUMENT, "ldc < N");
    check(mr_gemm_f32(x, 2, x, 1, x, 2, 2, 2, 2, 0, 0, 1, 0, 0) == MR_ERR_INVALID_ARGUMENT, "lda < K");
    check(mr_gemm_f32(x, 2, x, 2, x, 2, 2, 2, 2, 2, 0, 1, 0, 0) == MR_ERR_INVALID_ARGUMENT, "trans_a = 2");
    check(mr_gemm_f32(x, 2, x, 2, x, 2, 2, 2, 2, 0, 0, 1, 0, 99) == MR_ERR_INVALID_ARGUMENT, "variant 99");
    check(mr_gemm_batched_f32(x, 2, -4, x, 2, 0, x, 2, 0, 2, 2, 2, 2, 0, 0, 1, 0, 0) == MR_ERR_INVALID_ARGUMENT,
          "negative stride");
    check(mr_gemm_batched2_f32(x, 2, 0, 4, x, 2, 0, -4, x, 2, 0, 0, 1, 2, 2, 2, 2, 0, 0, 1, 0, 0) ==
              MR_ERR_INVALID_ARGUMENT, "batched2: negative inner stride");
    check(mr_gemm_batched2_f32(x, 2, 0, 4, x, 2, 0, 0, x, 2, 0, 0, -1, 2, 2, 2, 2, 0, 0, 1, 0, 0) ==
              MR_ERR_INVALID_ARGUMENT, "batched2: negative BT0");
    check(mr_gemm_batched2_f64((double*)x, 2, 0, 0, (double*)x, 2, 0, 0, (double*)x, 2, 0, 0, 1, 1, 2, 2, 2, 0, 0, 1,
                               0, 7) == MR_ERR_INVALID_ARGUMENT, "batched2: variant 7");
    fuzz_gemm_prepacked_invalid();
}

/* ---- softmax family ----------------------------------------------------------------------- */

/* Fills an (R, C) float64 matrix with values, some -inf entries and some rows of only -inf. */
static void fill_logits(double* x, int64_t R, int64_t C)
{
    const double scale = rand_int(0, 4) == 0 ? 1e4 : 5.0;
    for (int64_t r = 0; r < R; r++) {
        const int all_inf = rand_int(0, 6) == 0;
        for (int64_t c = 0; c < C; c++) {
            x[r * C + c] = (all_inf || rand_int(0, 9) == 0) ? -INFINITY : rand_unit() * scale;
        }
    }
}

/* Reference softmax row in float64, with the library's conventions for -inf rows. */
static void softmax_reference(double* y, double* logy, const double* x, int64_t C)
{
    double m = -INFINITY;
    for (int64_t c = 0; c < C; c++) m = x[c] > m ? x[c] : m;
    if (m == -INFINITY) {
        for (int64_t c = 0; c < C; c++) {
            y[c] = 0;
            logy[c] = -INFINITY;
        }
        return;
    }
    double s = 0;
    for (int64_t c = 0; c < C; c++) s += exp(x[c] - m);
    for (int64_t c = 0; c < C; c++) {
        y[c] = exp(x[c] - m) / s;
        logy[c] = x[c] - m - log(s);
    }
}

/* True when got matches expected within atol + rtol |expected| (equal infinities match). */
static int is_close(double got, double expected, double atol, double rtol)
{
    if (isinf(expected) || isinf(got)) {
        return got == expected;
    }
    return fabs(got - expected) <= atol + rtol * fabs(expected);
}

static void fuzz_softmax_case(int is_f64)
{
    const int64_t R = rand_int(0, 6), C = rand_int(0, 70);
    const size_t item = is_f64 ? sizeof(double) : sizeof(float);
    const double eps = is_f64 ? 2.220446049250313e-16 : 1.1920928955078125e-07;
    double* x64 = alloc_exact(R * C, sizeof(double));
    double* dy64 = alloc_exact(R * C, sizeof(double));
    double* y_ref = alloc_exact(C, sizeof(double));
    double* logy_ref = alloc_exact(C, sizeof(double));
    void* x = alloc_exact(R * C, item);
    void* y = alloc_exact(R * C, item);
    void* logy = alloc_exact(R * C, item);
    void* dy = alloc_exact(R * C, item);
    void* dx = alloc_exact(R * C, item);
    void* dlogx = alloc_exact(R * C, item);
    fill_logits(x64, R, C);
    for (int64_t i = 0; i < R * C; i++) {
        dy64[i] = rand_unit();
        if (is_f64) {
            ((double*)x)[i] = x64[i];
            ((double*)dy)[i] = dy64[i];
        } else {
            ((float*)x)[i] = (float)x64[i];
            ((float*)dy)[i] = (float)dy64[i];
            x64[i] = (float)x64[i];
            dy64[i] = (float)dy64[i];
        }
    }
    int s1, s2, s3, s4;
    if (is_f64) {
        s1 = mr_softmax_forward_f64(y, x, R, C);
        s2 = mr_log_softmax_forward_f64(logy, x, R, C);
        s3 = mr_softmax_backward_f64(dx, dy, y, R, C);
        s4 = mr_log_softmax_backward_f64(dlogx, dy, logy, R, C);
    } else {
        s1 = mr_softmax_forward_f32(y, x, R, C);
        s2 = mr_log_softmax_forward_f32(logy, x, R, C);
        s3 = mr_softmax_backward_f32(dx, dy, y, R, C);
        s4 = mr_log_softmax_backward_f32(dlogx, dy, logy, R, C);
    }
    check(s1 == MR_OK && s2 == MR_OK && s3 == MR_OK && s4 == MR_OK, "softmax family status");

    int ok_fwd = 1, ok_bwd = 1;
    for (int64_t r = 0; r < R; r++) {
        const double* xr = x64 + r * C;
        softmax_reference(y_ref, logy_ref, xr, C);
        double dot = 0, sum_dy = 0, xmax = 0;
        for (int64_t c = 0; c < C; c++) {
            dot += dy64[r * C + c] * y_ref[c];
            sum_dy += dy64[r * C + c];
            xmax = isinf(xr[c]) ? xmax : fmax(xmax, fabs(xr[c]));
        }
        for (int64_t c = 0; c < C; c++) {
            const int64_t i = r * C + c;
            const double got_y = is_f64 ? ((double*)y)[i] : ((float*)y)[i];
            const double got_logy = is_f64 ? ((double*)logy)[i] : ((float*)logy)[i];
            const double got_dx = is_f64 ? ((double*)dx)[i] : ((float*)dx)[i];
            const double got_dlogx = is_f64 ? ((double*)dlogx)[i] : ((float*)dlogx)[i];
            /* exp and the float64 sums are a few ulps off; log-softmax inherits the
             * absolute rounding of the row's largest |x|. */
            ok_fwd &= is_close(got_y, y_ref[c], 16 * eps, 64 * eps);
            ok_fwd &= is_close(got_logy, logy_ref[c], 16 * eps * (xmax + log((double)C) + 1), 16 * eps);
            const double dx_ref = y_ref[c] * (dy64[i] - dot);
            const double dlogx_ref = logy_ref[c] == -INFINITY ? 0.0 : dy64[i] - y_ref[c] * sum_dy;
            ok_bwd &= is_close(got_dx, dx_ref, 64 * eps * (1 + fabs(dot)), 64 * eps);
            ok_bwd &= is_close(got_dlogx, dlogx_ref, 64 * eps * (1 + fabs(sum_dy)) * (xmax + 1), 64 * eps);
        }
    }
    check(ok_fwd, is_f64 ? "softmax/log_softmax forward f64" : "softmax/log_softmax forward f32");
    check(ok_bwd, is_f64 ? "softmax/log_softmax backward f64" : "softmax/log_softmax backward f32");
    free(x64);
    free(dy64);
    free(y_ref);
    free(logy_ref);
    free(x);
    free(y);
    free(logy);
    free(dy);
    free(dx);
    free(dlogx);
}

/* ---- cross-entropy ----------------------------------------------------------------------------- */

static void fuzz_cross_entropy_case(int is_f64)
{
    const int64_t R = rand_int(0, 8), C = rand_int(1, 70);
    const int64_t ignore_index = rand_int(0, 1) ? -100 : rand_int(0, C - 1);
    const double eps_smooth = rand_int(0, 1) ? 0.0 : rand_unit() * 0.5 + 0.5;
    const size_t item = is_f64 ? sizeof(double) : sizeof(float);
    const double eps = is_f64 ? 2.220446049250313e-16 : 1.1920928955078125e-07;
    double* x64 = alloc_exact(R * C, sizeof(double));
    double* dl64 = alloc_exact(R, sizeof(double));
    int64_t* targets = alloc_exact(R, sizeof(int64_t));
    void* x = alloc_exact(R * C, item);
    void* losses = alloc_exact(R, item);
    void* lse = alloc_exact(R, item);
    void* dlosses = alloc_exact(R, item);
    void* dx = alloc_exact(R * C, item);
    for (int64_t i = 0; i < R * C; i++) {
        x64[i] = rand_unit() * 5;
        if (rand_int(0, 15) == 0) x64[i] = -INFINITY;
        if (is_f64) ((double*)x)[i] = x64[i]; else { ((float*)x)[i] = (float)x64[i]; x64[i] = (float)x64[i]; }
    }
    for (int64_t r = 0; r < R; r++) {
        targets[r] = rand_int(0, 4) == 0 ? ignore_index : rand_int(0, C - 1);
        dl64[r] = rand_unit();
        if (is_f64) ((double*)dlosses)[r] = dl64[r]; else { ((float*)dlosses)[r] = (float)dl64[r]; dl64[r] = (float)dl64[r]; }
    }
    int64_t n_valid = -1, bad_row = -2;
    int status = is_f64 ? mr_cross_entropy_forward_f64(losses, lse, &n_valid, &bad_row, x, targets, R, C, ignore_index,
                                                       eps_smooth)
                        : mr_cross_entropy_forward_f32(losses, lse, &n_valid, &bad_row, x, targets, R, C, ignore_index,
                                                       eps_smooth);
    check(status == MR_OK && bad_row == -1, "cross-entropy forward status");
    status = is_f64 ? mr_cross_entropy_backward_f64(dx, dlosses, 1, x, targets, lse, R, C, ignore_index, eps_smooth)
                    : mr_cross_entropy_backward_f32(dx, dlosses, 1, x, targets, lse, R, C, ignore_index, eps_smooth);
    check(status == MR_OK, "cross-entropy backward status");

    int64_t count = 0;
    int ok = 1;
    for (int64_t r = 0; r < R; r++) {
        const double* xr = x64 + r * C;
        const int ignored = targets[r] == ignore_index;
        count += !ignored;
        double m = -INFINITY, s = 0, sum_x = 0;
        for (int64_t c = 0; c < C; c++) m = xr[c] > m ? xr[c] : m;
        for (int64_t c = 0; c < C; c++) {
            s += m == -INFINITY ? 0 : exp(xr[c] - m);
            sum_x += xr[c];
        }
        const double lse_ref = m == -INFINITY ? -INFINITY : m + log(s);
        double loss_ref = 0;
        if (!ignored) {
            loss_ref = lse_ref == -INFINITY ? INFINITY : (1 - eps_smooth) * (lse_ref - xr[targets[r]]);
            if (eps_smooth != 0 && lse_ref != -INFINITY) loss_ref += eps_smooth * (lse_ref - sum_x / (double)C);
        }
        const double got_loss = is_f64 ? ((double*)losses)[r] : ((float*)losses)[r];
        ok &= is_close(got_loss, loss_ref, 64 * eps * (fabs(lse_ref) + 6), 64 * eps);
        for (int64_t c = 0; c < C; c++) {
            double ref = 0;
            if (!ignored && lse_ref != -INFINITY) {
                ref = (exp(xr[c] - lse_ref) - eps_smooth / (double)C - (c == targets[r] ? 1 - eps_smooth : 0)) * dl64[r];
            }
            const double got = is_f64 ? ((double*)dx)[r * C + c] : ((float*)dx)[r * C + c];
            ok &= is_close(got, ref, 64 * eps, 64 * eps);
        }
    }
    check(n_valid == count, "cross-entropy n_valid");
    check(ok, is_f64 ? "cross-entropy values f64" : "cross-entropy values f32");

    /* An out-of-range target is reported with its row. */
    if (R > 0) {
        const int64_t row = rand_int(0, R - 1);
        const int64_t saved = targets[row];
        targets[row] = rand_int(0, 1) ? C : -1; /* ignore_index is -100 or a class, never these */
        if (targets[row] != ignore_index) {
            status = is_f64 ? mr_cross_entropy_forward_f64(losses, lse, &n_valid, &bad_row, x, targets, R, C,
                                                           ignore_index, eps_smooth)
                            : mr_cross_entropy_forward_f32(losses, lse, &n_valid, &bad_row, x, targets, R, C,
                                                           ignore_index, eps_smooth);
            check(status == MR_ERR_TARGET_RANGE && bad_row == row, "cross-entropy bad target detected");
        }
        targets[row] = saved;
    }
    free(x64);
    free(dl64);
    free(targets);
    free(x);
    free(losses);
    free(lse);
    free(dlosses);
    free(dx);
}

/* ---- elementwise activations ------------------------------------------------------------- */

/*
 * The activation cases check every output element against a long double reference
 * written here, with the accuracy bounds stated in minireparam.h. They run under both
 * kernel sets (main switches mr_force_portable), so a wrong value fails as well as a
 * bad memory access.
 */

enum { ACT_SIGMOID, ACT_TANH, ACT_GELU_TANH, ACT_KINDS };
static const char* const act_names[ACT_KINDS] = {"sigmoid", "tanh", "gelu_tanh"};
/* Bounds of minireparam.h: forward in ulps (for GELU per unit of 1 + |2u|), backward
 * as an absolute error in units of eps * |dy|. */
static const double act_forward_ulps[ACT_KINDS] = {4.0, 3.5, 3.5};
static const double act_backward_eps_dy[ACT_KINDS] = {0.5, 1.0, 3.0};

#define FUZZ_GELU_K 0.7978845608028654L /* sqrt(2 / pi) */
#define FUZZ_GELU_A 0.044715L

/* Written to every element a kernel must not touch (row gaps, unwritten outputs). */
#define SENTINEL (-7777.0)

/* How a forward result below the smallest normal number is judged. */
enum {
    FLUSH_NONE,      /* no flush allowed: subnormal results must be within the ulp bound */
    FLUSH_VALUE,     /* sigmoid: 0 allowed where |y| < tiny * max(1, |x|) */
    FLUSH_BY_SIGMA   /* gelu: 0 allowed where sigmoid(2u) = |y / x| < tiny */
};

typedef struct {
    int is_f64;
    double eps, tiny, denorm, max;
} dtype_info;

static dtype_info dtype_of(int is_f64)
{
    dtype_info t;
    t.is_f64 = is_f64;
    t.eps = is_f64 ? DBL_EPSILON : FLT_EPSILON;
    t.tiny = is_f64 ? DBL_MIN : FLT_MIN;
    t.denorm = is_f64 ? DBL_TRUE_MIN : FLT_TRUE_MIN;
    t.max = is_f64 ? DBL_MAX : FLT_MAX;
    return t;
}

static double round_to(long double v, int is_f64)
{
    return is_f64 ? (double)v : (double)(float)v;
}

static void store(void* x, int64_t i, double v, int is_f64)
{
    if (is_f64) ((double*)x)[i] = v; else ((float*)x)[i] = (float)v;
}

/* The spacing of the dtype's numbers at |v| (the smallest subnormal below the normal range). */
static double ulp_of(double v, const dtype_info* t)
{
    v = fabs(v);
    if (v < t->tiny) {
        return t->denorm;
    }
    int exponent;
    frexp(v, &exponent);
    return ldexp(1.0, exponent - (t->is_f64 ? 53 : 24));
}

/*
 * One input value, rounded to the dtype: mostly of ordinary size, with NaN, +-inf, +-0,
 * subnormals, values of magnitude up to `huge` and values past the exp underflow
 * thresholds mixed in (about one in `special_every`).
 */
static double draw_value(const dtype_info* t, double huge, int special_every)
{
    static const double scales[5] = {1e-4, 0.1, 1.0, 5.0, 20.0};
    const double sign = rand_int(0, 1) ? 1.0 : -1.0;
    double v;
    if (rand_int(1, special_every) != 1) {
        v = rand_unit() * scales[rand_int(0, 4)];
        return round_to(v, t->is_f64);
    }
    switch (rand_int(0, 9)) {
    case 0: v = NAN; break;
    case 1: v = INFINITY; break;
    case 2: v = -INFINITY; break;
    case 3: v = 0.0; break;
    case 4: v = -0.0; break;
    case 5: v = sign * t->denorm * (double)rand_int(1, 1000); break;
    case 6: v = t->tiny * rand_unit(); break;
    case 7: v = sign * huge * (0.5 + 0.5 * fabs(rand_unit())); break;
    case 8: v = sign * huge; break;
    default: v = rand_unit() * 1000; break; /* past e^x's flush to 0 (x < -87.3 or -708.4) */
    }
    return round_to(v, t->is_f64);
}

/* A new array of `count` drawn values (exact size), in the dtype. */
static void* draw_array(int64_t count, const dtype_info* t, double huge, int special_every)
{
    void* x = alloc_exact(count, t->is_f64 ? sizeof(double) : sizeof(float));
    for (int64_t i = 0; i < count; i++) store(x, i, draw_value(t, huge, special_every), t->is_f64);
    return x;
}

static void* copy_array(const void* x, int64_t count, int is_f64)
{
    const size_t item = is_f64 ? sizeof(double) : sizeof(float);
    void* out = alloc_exact(count, item);
    if (count > 0) memcpy(out, x, (size_t)count * item);
    return out;
}

/*
 * An array of `count` elements that ends exactly at a page boundary, with an
 * inaccessible page after it. GCC's AddressSanitizer does not check AVX2 masked loads
 * and stores, so a tail access with one lane too many is caught here instead: the
 * lane lands in the protected page and the run dies with SIGSEGV. Free it with
 * free_guarded.
 */
static void* alloc_guarded(int64_t count, size_t item)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t bytes = (size_t)count * item;
    const size_t data_pages = (bytes + page - 1) / page;
    char* base = mmap(NULL, (data_pages + 1) * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED || mprotect(base + data_pages * page, page, PROT_NONE) != 0) {
        fprintf(stderr, "fuzz_kernels: mmap or mprotect failed\n");
        exit(2);
    }
    return base + data_pages * page - bytes;
}

static void free_guarded(void* p, int64_t count, size_t item)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t bytes = (size_t)count * item;
    const size_t data_pages = (bytes + page - 1) / page;
    munmap((char*)p + bytes - data_pages * page, (data_pages + 1) * page);
}

/* Moves a malloc'ed array into a new guarded one. */
static void* move_to_guarded(void* heap, int64_t count, size_t item)
{
    void* guarded = alloc_guarded(count, item);
    if (count > 0) memcpy(guarded, heap, (size_t)count * item);
    free(heap);
    return guarded;
}

/* sigmoid(x) in long double, from e^-|x| so that neither branch overflows. */
static long double sigmoid_ref(long double x)
{
    const long double e = expl(-fabsl(x));
    return (x >= 0 ? 1.0L : e) / (1.0L + e);
}

static long double gelu_two_u(long double x)
{
    return 2 * FUZZ_GELU_K * (x + FUZZ_GELU_A * x * x * x);
}

/* 0.5 x (1 + tanh(u)) = x sigmoid(2u); gives NaN at -inf (-inf * 0), as the contract states. */
static long double gelu_ref(long double x)
{
    return x * sigmoid_ref(gelu_two_u(x));
}

/* d/dx [x sigmoid(2u)] = s + x 2u' s (1 - s), with the limit s at |x| > 1000: there
 * s (1 - s) has underflowed even in long double, and x 2u' * 0 would be NaN at +-inf. */
static long double gelu_slope_ref(long double x)
{
    const long double two_u = gelu_two_u(x);
    const long double s = sigmoid_ref(two_u);
    if (fabsl(x) > 1000) {
        return s;
    }
    const long double e = expl(-fabsl(two_u));
    return s + x * 2 * FUZZ_GELU_K * (1 + 3 * FUZZ_GELU_A * x * x) * e / ((1 + e) * (1 + e));
}

/*
 * True when a forward result is within `ulps` ulps of the reference (in the dtype's
 * ulps at the rounded reference), or is a permitted flush of a result below the
 * normal range (see the FLUSH_* kinds). NaN must give NaN and an infinite result
 * must match exactly.
 */
static int forward_close(double got, long double ref, double x, double ulps, int flush, const dtype_info* t)
{
    if (isnan(ref)) {
        return isnan(got);
    }
    const double rounded = round_to(ref, t->is_f64);
    if (isinf(rounded)) {
        return got == rounded;
    }
    const long double magnitude = flush == FLUSH_BY_SIGMA && x != 0 ? fabsl(ref / x) : fabsl(ref);
    if (flush != FLUSH_NONE && magnitude < t->tiny) {
        return fabsl(got - ref) <= t->tiny * fmax(1.0, fabs(x));
    }
    return fabsl(got - ref) <= ulps * ulp_of(rounded, t);
}

/*
 * True when a backward result dy * slope is within k eps |dy| of the reference (plus
 * one subnormal step for the rounding of a result below the normal range). For an
 * infinite dy that bound is infinite. Then only a slope clearly away from 0 fixes the
 * result, an infinity of the right sign. Near 0 the kernel may give inf or NaN.
 */
static int backward_close(double got, double dy, long double slope, double k, const dtype_info* t)
{
    const long double ref = dy * slope;
    if (isnan(ref)) {
        return isnan(got);
    }
    if (isinf(dy)) {
        return fabsl(slope) > k * t->eps ? got == ref : (isnan(got) || isinf(got));
    }
    return fabsl(got - ref) <= k * t->eps * fabs(dy) + t->denorm;
}

/* True when got is within the absolute tolerance tol of ref; NaN and infinities must match. */
static int close_abs(double got, long double ref, long double tol)
{
    if (isnan(ref)) {
        return isnan(got);
    }
    if (isinf(ref) || !isfinite(tol)) {
        return got == ref;
    }
    return fabsl(got - ref) <= tol;
}

static int act_forward(int kind, int is_f64, void* y, const void* x, int64_t n)
{
    if (is_f64) {
        if (kind == ACT_SIGMOID) return mr_sigmoid_forward_f64(y, x, n);
        if (kind == ACT_TANH) return mr_tanh_forward_f64(y, x, n);
        return mr_gelu_tanh_forward_f64(y, x, n);
    }
    if (kind == ACT_SIGMOID) return mr_sigmoid_forward_f32(y, x, n);
    if (kind == ACT_TANH) return mr_tanh_forward_f32(y, x, n);
    return mr_gelu_tanh_forward_f32(y, x, n);
}

static int act_backward(int kind, int is_f64, void* dx, const void* dy, const void* saved, int64_t n)
{
    if (is_f64) {
        if (kind == ACT_SIGMOID) return mr_sigmoid_backward_f64(dx, dy, saved, n);
        if (kind == ACT_TANH) return mr_tanh_backward_f64(dx, dy, saved, n);
        return mr_gelu_tanh_backward_f64(dx, dy, saved, n);
    }
    if (kind == ACT_SIGMOID) return mr_sigmoid_backward_f32(dx, dy, saved, n);
    if (kind == ACT_TANH) return mr_tanh_backward_f32(dx, dy, saved, n);
    return mr_gelu_tanh_backward_f32(dx, dy, saved, n);
}

/* Index of the first forward output outside the bound, or -1. */
static int64_t act_forward_first_bad(int kind, const void* y, const void* x, int64_t n, const dtype_info* t)
{
    for (int64_t i = 0; i < n; i++) {
        const double xv = load(x, i, t->is_f64), got = load(y, i, t->is_f64);
        int ok;
        if (kind == ACT_SIGMOID) {
            ok = forward_close(got, sigmoid_ref(xv), xv, act_forward_ulps[kind], FLUSH_VALUE, t);
        } else if (kind == ACT_TANH) {
            ok = forward_close(got, tanhl(xv), xv, act_forward_ulps[kind], FLUSH_NONE, t);
        } else {
            const double scale = 1.0 + fabs((double)gelu_two_u(xv)); /* inf for huge x: then any finite error passes */
            ok = forward_close(got, gelu_ref(xv), xv, act_forward_ulps[kind] * scale, FLUSH_BY_SIGMA, t);
        }
        if (!ok) return i;
    }
    return -1;
}

/* Index of the first backward output outside the bound, or -1. `saved` is y for
 * sigmoid and tanh, x for GELU. */
static int64_t act_backward_first_bad(int kind, const void* dx, const void* dy, const void* saved, int64_t n,
                                      const dtype_info* t)
{
    for (int64_t i = 0; i < n; i++) {
        const long double s = load(saved, i, t->is_f64);
        long double slope;
        if (kind == ACT_SIGMOID) {
            slope = s * (1 - s);
        } else if (kind == ACT_TANH) {
            slope = 1 - s * s;
        } else {
            slope = gelu_slope_ref(s);
        }
        if (!backward_close(load(dx, i, t->is_f64), load(dy, i, t->is_f64), slope, act_backward_eps_dy[kind], t)) {
            return i;
        }
    }
    return -1;
}

/* Length of an activation case: mostly short (0, 1 and odd lengths hit the vector tails),
 * sometimes past one block (4096 elements), rarely big enough for two threads. */
static int64_t draw_activation_length(int64_t case_index)
{
    if (case_index % 200 == 11) return rand_int(65537, 66000);
    if (case_index % 20 == 5) return rand_int(4097, 9000);
    return rand_int(0, 3) == 0 ? rand_int(0, 3) : rand_int(0, 70);
}

/*
 * One activation, forward then backward, on n drawn values (with special values). The
 * forward runs in place (y == x) one time in three; the backward writes into dy or
 * into its saved input one time in three each. The backward takes y from this
 * forward (sigmoid, tanh) or x (GELU), as the autodiff layer does.
 */
static void fuzz_activation_case(int is_f64, int kind, int64_t case_index, const char* set)
{
    const dtype_info t = dtype_of(is_f64);
    const int64_t n = draw_activation_length(case_index);
    const int forward_in_place = rand_int(0, 2) == 0;
    const int backward_alias = (int)rand_int(0, 2); /* 0: none, 1: dx == dy, 2: dx == saved */
    const size_t item = is_f64 ? sizeof(double) : sizeof(float);
    char label[256];

    void* x = move_to_guarded(draw_array(n, &t, t.max, 6), n, item);
    void* x_in = move_to_guarded(copy_array(x, n, is_f64), n, item); /* the values before an in-place call */
    void* y = forward_in_place ? x : alloc_guarded(n, item);
    int status = act_forward(kind, is_f64, y, x, n);
    int64_t bad = act_forward_first_bad(kind, y, x_in, n, &t);
    snprintf(label, sizeof label, "%s forward %s %s n=%lld%s", act_names[kind], is_f64 ? "f64" : "f32", set,
             (long long)n, forward_in_place ? " in place" : "");
    check(status == MR_OK, label);
    if (bad >= 0) {
        snprintf(label + strlen(label), 120, ": x[%lld] = %.17g gives %.17g", (long long)bad,
                 load(x_in, bad, is_f64), load(y, bad, is_f64));
    }
    check(bad < 0, label);

    void* saved = kind == ACT_GELU_TANH ? x_in : y;
    /* dy up to max / 4, so dy * slope stays finite (the slopes are at most 1.2). */
    void* dy = move_to_guarded(draw_array(n, &t, t.max / 4, 6), n, item);
    void* dy_in = copy_array(dy, n, is_f64);
    void* saved_in = copy_array(saved, n, is_f64);
    void* dx = backward_alias == 1 ? dy : (backward_alias == 2 ? saved : alloc_guarded(n, item));
    status = act_backward(kind, is_f64, dx, dy, saved, n);
    bad = act_backward_first_bad(kind, dx, dy_in, saved_in, n, &t);
    snprintf(label, sizeof label, "%s backward %s %s n=%lld%s", act_names[kind], is_f64 ? "f64" : "f32", set,
             (long long)n, backward_alias == 1 ? " dx == dy" : (backward_alias == 2 ? " dx == saved" : ""));
    check(status == MR_OK, label);
    if (bad >= 0) {
        snprintf(label + strlen(label), 120, ": dy[%lld] = %.17g, saved %.17g gives %.17g", (long long)bad,
                 load(dy_in, bad, is_f64), load(saved_in, bad, is_f64), load(dx, bad, is_f64));
    }
    check(bad < 0, label);

    if (backward_alias == 0) free_guarded(dx, n, item);
    if (!forward_in_place) free_guarded(y, n, item);
    free_guarded(x, n, item);
    free_guarded(x_in, n, item);
    free_guarded(dy, n, item);
    free(dy_in);
    free(saved_in);
}

/* ---- LSTM cell ------------------------------------------------------------------------------ */

/* A (B, width) row-major operand: its leading dimension and its exact element count. */
typedef struct {
    int64_t ld, size;
} row_layout;

/* Half of the operands get a leading dimension past the row length. */
static row_layout draw_rows(int64_t B, int64_t width)
{
    row_layout layout;
    layout.ld = width + (rand_int(0, 1) ? rand_int(1, 5) : 0);
    layout.size = B > 0 ? (B - 1) * layout.ld + width : 0;
    return layout;
}

/* An operand of drawn values with SENTINEL in the row gaps, or all SENTINEL (huge == 0,
 * for outputs, so an element the kernel skips fails the value check). */
static void* make_rows(row_layout layout, int64_t width, const dtype_info* t, double huge)
{
    void* x = alloc_exact(layout.size, t->is_f64 ? sizeof(double) : sizeof(float));
    for (int64_t i = 0; i < layout.size; i++) {
        const int in_row = layout.ld == 0 || i % layout.ld < width;
        store(x, i, in_row && huge > 0 ? draw_value(t, huge, 6) : SENTINEL, t->is_f64);
    }
    return x;
}

/* True when every element between the rows (columns width..ld-1) still contains SENTINEL. */
static int gaps_intact(const void* x, row_layout layout, int64_t width, int is_f64)
{
    for (int64_t i = 0; i < layout.size; i++) {
        if (layout.ld > 0 && i % layout.ld >= width && load(x, i, is_f64) != SENTINEL) {
            return 0;
        }
    }
    return 1;
}

/* Sizes of an LSTM case, mostly small and odd. Sometimes H is past one block (4096), so
 * a row splits into blocks, and rarely B * 4H is past 2^16, so the rows run on two threads. */
static void draw_lstm_sizes(int64_t case_index, int64_t* B, int64_t* H)
{
    if (case_index % 100 == 17) {
        *B = rand_int(16, 18);
        *H = rand_int(1025, 1100);
    } else if (case_index % 50 == 29) {
        *B = rand_int(1, 3);
        *H = rand_int(4097, 4200);
    } else {
        *B = rand_int(0, 5);
        *H = rand_int(0, 3) == 0 ? rand_int(0, 3) : rand_int(0, 40);
    }
}

typedef struct {
    row_layout gates, c, tanh_c, h, pre, c_prev;
} lstm_forward_layouts;

/* Index (r * H + j) of the first column whose forward outputs are off, or -1. Gates,
 * tanh(c) and h are checked against the kernel's own c and gates, so each error is
 * judged by the bound of its own step: c = f c_prev + i g has at most three roundings. */
static int64_t lstm_forward_first_bad(const void* gates, const void* c, const void* tanh_c, const void* h,
                                      const void* pre, const void* c_prev, const lstm_forward_layouts* l, int64_t B,
                                      int64_t H, const dtype_info* t)
{
    const int f64 = t->is_f64;
    for (int64_t r = 0; r < B; r++) {
        for (int64_t j = 0; j < H; j++) {
            const int64_t gi = r * l->gates.ld + j, pi = r * l->pre.ld + j;
            const double p[4] = {load(pre, pi, f64), load(pre, pi + H, f64), load(pre, pi + 2 * H, f64),
                                 load(pre, pi + 3 * H, f64)};
            const double i = load(gates, gi, f64), f = load(gates, gi + H, f64);
            const double g = load(gates, gi + 2 * H, f64), o = load(gates, gi + 3 * H, f64);
            const double cp = load(c_prev, r * l->c_prev.ld + j, f64);
            const double cv = load(c, r * l->c.ld + j, f64);
            const double tc = load(tanh_c, r * l->tanh_c.ld + j, f64);
            const long double c_ref = (long double)f * cp + (long double)i * g;
            const long double c_tol = 2 * t->eps * (fabsl((long double)f * cp) + fabsl((long double)i * g)) + t->denorm;
            int ok = forward_close(i, sigmoid_ref(p[0]), p[0], act_forward_ulps[ACT_SIGMOID], FLUSH_VALUE, t);
            ok &= forward_close(f, sigmoid_ref(p[1]), p[1], act_forward_ulps[ACT_SIGMOID], FLUSH_VALUE, t);
            ok &= forward_close(g, tanhl(p[2]), p[2], act_forward_ulps[ACT_TANH], FLUSH_NONE, t);
            ok &= forward_close(o, sigmoid_ref(p[3]), p[3], act_forward_ulps[ACT_SIGMOID], FLUSH_VALUE, t);
            ok &= close_abs(cv, c_ref, c_tol);
            ok &= forward_close(tc, tanhl(cv), cv, act_forward_ulps[ACT_TANH], FLUSH_NONE, t);
            ok &= forward_close(load(h, r * l->h.ld + j, f64), (long double)o * tc, 0, 1.0, FLUSH_NONE, t);
            if (!ok) return r * H + j;
        }
    }
    return -1;
}

typedef struct {
    row_layout d_pre, dc_prev, scratch, dh, dc;
} lstm_backward_layouts;

/*
 * Index (r * H + j) of the first column whose backward outputs are off, or -1. The
 * total cotangent of c (scratch) is checked against its formula, the rest against the
 * kernel's total. Products are allowed 4 eps relative (a few roundings); the two terms
 * with 1 - t^2 are judged relative to |1 - t^2| + t^2, because without an FMA the
 * rounding of t^2 is amplified where t is near +-1. Two subnormal steps cover
 * intermediate products that fall below the normal range.
 */
static int64_t lstm_backward_first_bad(const void* d_pre, const void* dc_prev, const void* scratch, const void* dh,
                                       const void* dc, const void* gates, const void* c_prev, const void* tanh_c,
                                       const lstm_forward_layouts* fl, const lstm_backward_layouts* l, int64_t B,
                                       int64_t H, const dtype_info* t)
{
    const int f64 = t->is_f64;
    const long double small = 2 * t->denorm;
    for (int64_t r = 0; r < B; r++) {
        for (int64_t j = 0; j < H; j++) {
            const int64_t gi = r * fl->gates.ld + j, di = r * l->d_pre.ld + j;
            const long double i = load(gates, gi, f64), f = load(gates, gi + H, f64);
            const long double g = load(gates, gi + 2 * H, f64), o = load(gates, gi + 3 * H, f64);
            const long double tc = load(tanh_c, r * fl->tanh_c.ld + j, f64);
            const long double cp = load(c_prev, r * fl->c_prev.ld + j, f64);
            const long double dhv = load(dh, r * l->dh.ld + j, f64), dcv = load(dc, r * l->dc.ld + j, f64);
            const double total = load(scratch, r * l->scratch.ld + j, f64);

            const long double total_ref = dcv + dhv * o * (1 - tc * tc);
            const long double total_size = fabsl(dcv) + fabsl(dhv * o) * (1 + tc * tc);
            const long double d_i = total * g * (i * (1 - i));
            const long double d_f = total * cp * (f * (1 - f));
            const long double d_g = total * i * (1 - g * g);
            const long double d_o = dhv * tc * (o * (1 - o));
            const long double d_g_size = fabsl(total * i) * (fabsl(1 - g * g) + g * g);
            int ok = close_abs(total, total_ref, 4 * t->eps * total_size + small);
            ok &= close_abs(load(dc_prev, r * l->dc_prev.ld + j, f64), total * f, t->eps * fabsl(total * f) + small);
            ok &= close_abs(load(d_pre, di, f64), d_i, 4 * t->eps * fabsl(d_i) + small);
            ok &= close_abs(load(d_pre, di + H, f64), d_f, 4 * t->eps * fabsl(d_f) + small);
            ok &= close_abs(load(d_pre, di + 2 * H, f64), d_g, 4 * t->eps * d_g_size + small);
            ok &= close_abs(load(d_pre, di + 3 * H, f64), d_o, 4 * t->eps * fabsl(d_o) + small);
            if (!ok) return r * H + j;
        }
    }
    return -1;
}

static int lstm_forward_call(const lstm_forward_layouts* l, void* gates, void* c, void* tanh_c, void* h,
                             const void* pre, const void* c_prev, int64_t B, int64_t H, int is_f64)
{
    if (is_f64) {
        return mr_lstm_cell_forward_f64(gates, l->gates.ld, c, l->c.ld, tanh_c, l->tanh_c.ld, h, l->h.ld, pre,
                                        l->pre.ld, c_prev, l->c_prev.ld, B, H);
    }
    return mr_lstm_cell_forward_f32(gates, l->gates.ld, c, l->c.ld, tanh_c, l->tanh_c.ld, h, l->h.ld, pre, l->pre.ld,
                                    c_prev, l->c_prev.ld, B, H);
}

static int lstm_backward_call(const lstm_forward_layouts* fl, const lstm_backward_layouts* l, void* d_pre,
                              void* dc_prev, void* scratch, const void* dh, const void* dc, const void* gates,
                              const void* c_prev, const void* tanh_c, int64_t B, int64_t H, int is_f64)
{
    if (is_f64) {
        return mr_lstm_cell_backward_f64(d_pre, l->d_pre.ld, dc_prev, l->dc_prev.ld, scratch, l->scratch.ld, dh,
                                         l->dh.ld, dc, l->dc.ld, gates, fl->gates.ld, c_prev, fl->c_prev.ld, tanh_c,
                                         fl->tanh_c.ld, B, H);
    }
    return mr_lstm_cell_backward_f32(d_pre, l->d_pre.ld, dc_prev, l->dc_prev.ld, scratch, l->scratch.ld, dh, l->dh.ld,
                                     dc, l->dc.ld, gates, fl->gates.ld, c_prev, fl->c_prev.ld, tanh_c, fl->tanh_c.ld, B,
                                     H);
}

/*
 * One LSTM step, forward then backward, with every operand in its own exact-size buffer
 * and drawn leading dimension. The forward writes c over c_prev one time in three, the
 * backward dc_prev over dc one time in three, as the contract allows. c_prev, dh and
 * dc stay below 1e15 (1e150 in float64), because the long double reference would not
 * reproduce the overflow of a product of two of them. pre takes the full range.
 */
static void fuzz_lstm_case(int is_f64, int64_t case_index, const char* set)
{
    const dtype_info t = dtype_of(is_f64);
    const double state_huge = is_f64 ? 1e150 : 1e15;
    int64_t B, H;
    draw_lstm_sizes(case_index, &B, &H);
    const int c_in_place = rand_int(0, 2) == 0, dc_in_place = rand_int(0, 2) == 0;
    char label[300];

    lstm_forward_layouts fl;
    fl.pre = draw_rows(B, 4 * H);
    fl.gates = draw_rows(B, 4 * H);
    fl.c_prev = draw_rows(B, H);
    fl.c = c_in_place ? fl.c_prev : draw_rows(B, H);
    fl.tanh_c = draw_rows(B, H);
    fl.h = draw_rows(B, H);
    void* pre = make_rows(fl.pre, 4 * H, &t, t.max);
    void* c_prev = make_rows(fl.c_prev, H, &t, state_huge);
    void* c_prev_in = copy_array(c_prev, fl.c_prev.size, is_f64);
    void* gates = make_rows(fl.gates, 4 * H, &t, 0);
    void* c = c_in_place ? c_prev : make_rows(fl.c, H, &t, 0);
    void* tanh_c = make_rows(fl.tanh_c, H, &t, 0);
    void* h = make_rows(fl.h, H, &t, 0);

    int status = lstm_forward_call(&fl, gates, c, tanh_c, h, pre, c_prev, B, H, is_f64);
    snprintf(label, sizeof label, "lstm_cell_forward %s %s B=%lld H=%lld%s", is_f64 ? "f64" : "f32", set,
             (long long)B, (long long)H, c_in_place ? " c == c_prev" : "");
    check(status == MR_OK, label);
    int64_t bad = lstm_forward_first_bad(gates, c, tanh_c, h, pre, c_prev_in, &fl, B, H, &t);
    if (bad >= 0) {
        snprintf(label + strlen(label), 80, ": row %lld column %lld", (long long)(bad / H), (long long)(bad % H));
    }
    check(bad < 0, label);
    check(gaps_intact(gates, fl.gates, 4 * H, is_f64) && gaps_intact(c, fl.c, H, is_f64) &&
              gaps_intact(tanh_c, fl.tanh_c, H, is_f64) && gaps_intact(h, fl.h, H, is_f64),
          "lstm_cell_forward wrote between rows");

    lstm_backward_layouts bl;
    bl.d_pre = draw_rows(B, 4 * H);
    bl.dh = draw_rows(B, H);
    bl.dc = draw_rows(B, H);
    bl.dc_prev = dc_in_place ? bl.dc : draw_rows(B, H);
    bl.scratch = draw_rows(B, H);
    void* dh = make_rows(bl.dh, H, &t, state_huge);
    void* dc = make_rows(bl.dc, H, &t, state_huge);
    void* dc_in = copy_array(dc, bl.dc.size, is_f64);
    void* d_pre = make_rows(bl.d_pre, 4 * H, &t, 0);
    void* dc_prev = dc_in_place ? dc : make_rows(bl.dc_prev, H, &t, 0);
    void* scratch = make_rows(bl.scratch, H, &t, 0);

    /* c_prev_in: after an in-place forward, the c_prev buffer contains c. */
    status = lstm_backward_call(&fl, &bl, d_pre, dc_prev, scratch, dh, dc, gates, c_prev_in, tanh_c, B, H, is_f64);
    snprintf(label, sizeof label, "lstm_cell_backward %s %s B=%lld H=%lld%s", is_f64 ? "f64" : "f32", set,
             (long long)B, (long long)H, dc_in_place ? " dc_prev == dc" : "");
    check(status == MR_OK, label);
    bad = lstm_backward_first_bad(d_pre, dc_prev, scratch, dh, dc_in, gates, c_prev_in, tanh_c, &fl, &bl, B, H, &t);
    if (bad >= 0) {
        snprintf(label + strlen(label), 80, ": row %lld column %lld", (long long)(bad / H), (long long)(bad % H));
    }
    check(bad < 0, label);
    check(gaps_intact(d_pre, bl.d_pre, 4 * H, is_f64) && gaps_intact(dc_prev, bl.dc_prev, H, is_f64) &&
              gaps_intact(scratch, bl.scratch, H, is_f64),
          "lstm_cell_backward wrote between rows");

    free(pre);
    free(c_prev);
    free(c_prev_in);
    free(gates);
    if (!c_in_place) free(c);
    free(tanh_c);
    free(h);
    free(dh);
    free(dc);
    free(dc_in);
    free(d_pre);
    if (!dc_in_place) free(dc_prev);
    free(scratch);
}

/*
 * Argument checks of the activation and LSTM entry points. The rejected calls get NULL
 * pointers, so one that touched memory before checking would crash the run. Each LSTM
 * case lowers one leading dimension of a valid (B, H) = (2, 3) layout by one.
 */
static void fuzz_activation_invalid(void)
{
    char label[120];
    for (int is_f64 = 0; is_f64 <= 1; is_f64++) {
        for (int kind = 0; kind < ACT_KINDS; kind++) {
            snprintf(label, sizeof label, "%s %s: negative n", act_names[kind], is_f64 ? "f64" : "f32");
            check(act_forward(kind, is_f64, NULL, NULL, -1) == MR_ERR_INVALID_ARGUMENT, label);
            snprintf(label, sizeof label, "%s backward %s: negative n", act_names[kind], is_f64 ? "f64" : "f32");
            check(act_backward(kind, is_f64, NULL, NULL, NULL, -1) == MR_ERR_INVALID_ARGUMENT, label);
        }
    }

    enum { B = 2, H = 3 };
    static const char* const forward_names[6] = {"ld_gates", "ld_c", "ld_tanh_c", "ld_h", "ld_pre", "ld_c_prev"};
    static const int64_t forward_lds[6] = {4 * H, H, H, H, 4 * H, H};
    static const char* const backward_names[8] = {"ld_d_pre", "ld_dc_prev", "ld_scratch", "ld_dh",
                                                  "ld_dc",    "ld_gates",   "ld_c_prev",  "ld_tanh_c"};
    static const int64_t backward_lds[8] = {4 * H, H, H, H, H, 4 * H, H, H};
    for (int is_f64 = 0; is_f64 <= 1; is_f64++) {
        for (int k = -2; k < 6; k++) {
            lstm_forward_layouts l;
            int64_t lds[6];
            memcpy(lds, forward_lds, sizeof lds);
            if (k >= 0) lds[k]--;
            l.gates.ld = lds[0], l.c.ld = lds[1], l.tanh_c.ld = lds[2], l.h.ld = lds[3], l.pre.ld = lds[4];
            l.c_prev.ld = lds[5];
            const int64_t rows = k == -2 ? -1 : B, hidden = k == -1 ? -1 : H;
            snprintf(label, sizeof label, "lstm_cell_forward %s: %s", is_f64 ? "f64" : "f32",
                     k == -2 ? "negative B" : (k == -1 ? "negative H" : forward_names[k]));
            check(lstm_forward_call(&l, NULL, NULL, NULL, NULL, NULL, NULL, rows, hidden, is_f64) ==
                      MR_ERR_INVALID_ARGUMENT, label);
        }
        for (int k = -2; k < 8; k++) {
            lstm_forward_layouts fl;
            lstm_backward_layouts l;
            int64_t lds[8];
            memcpy(lds, backward_lds, sizeof lds);
            if (k >= 0) lds[k]--;
            l.d_pre.ld = lds[0], l.dc_prev.ld = lds[1], l.scratch.ld = lds[2], l.dh.ld = lds[3], l.dc.ld = lds[4];
            fl.gates.ld = lds[5], fl.c_prev.ld = lds[6], fl.tanh_c.ld = lds[7];
            const int64_t rows = k == -2 ? -1 : B, hidden = k == -1 ? -1 : H;
            snprintf(label, sizeof label, "lstm_cell_backward %s: %s", is_f64 ? "f64" : "f32",
                     k == -2 ? "negative B" : (k == -1 ? "negative H" : backward_names[k]));
            check(lstm_backward_call(&fl, &l, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, rows, hidden, is_f64) ==
                      MR_ERR_INVALID_ARGUMENT, label);
        }
    }
}

int main(int argc, char** argv)
{
    const int64_t cases = argc > 1 ? atoll(argv[1]) : 300;
    g_rng = argc > 2 ? (uint64_t)atoll(argv[2]) * 0x9E3779B97F4A7C15ULL + 1 : 0x9E3779B97F4A7C16ULL;
    static const char* variant_names[] = {"auto", "naive", "loop_order", "blocked", "packed", "threaded", "small"};

    fuzz_gemm_invalid();
    fuzz_activation_invalid();
    for (int portable = 0; portable <= 1; portable++) {
        mr_force_portable(portable);
        for (int64_t i = 0; i < cases; i++) {
            const int is_f64 = (int)(i & 1);
            const int variant = (int)(i % 7);
            char label[256];
            snprintf(label, sizeof label, "gemm %s %s %s", is_f64 ? "f64" : "f32", variant_names[variant],
                     portable ? "portable" : "simd");
            mr_set_num_threads((int)rand_int(1, 3));
            const int size_class = i % 50 == 7 ? SIZE_WIDE_N : (i % 10 == 3 ? SIZE_LONG_K : SIZE_SMALL);
            fuzz_gemm_case(is_f64, variant, size_class, label);
            if (i % 2 == 0) {
                /* Every other case, with the dtype and size class counted over those cases. */
                const int64_t n = i / 2;
                const int packed_class = n % 50 == 7 ? SIZE_WIDE_N : (n % 10 == 3 ? SIZE_LONG_K : SIZE_SMALL);
                const int packed_f64 = (int)rand_int(0, 1);
                snprintf(label, sizeof label, "gemm_prepacked %s %s", packed_f64 ? "f64" : "f32",
                         portable ? "portable" : "simd");
                fuzz_gemm_prepacked_case(packed_f64, packed_class, label);
            }
            fuzz_softmax_case(is_f64);
            fuzz_cross_entropy_case(is_f64);
            fuzz_activation_case(is_f64, (int)(i % ACT_KINDS), i, portable ? "portable" : "simd");
            fuzz_lstm_case(is_f64, i, portable ? "portable" : "simd");
        }
    }
    mr_force_portable(0);
    mr_release_scratch();
    printf("fuzz_kernels: %lld passed, %lld failed (simd compiled: %d, openmp: %d)\n",
           (long long)(g_checks - g_failures), (long long)g_failures, mr_simd_compiled(), mr_openmp_enabled());
    fflush(stdout); /* LeakSanitizer reports at exit and may skip stdio's final flush */
    return g_failures == 0 ? 0 : 1;
}
