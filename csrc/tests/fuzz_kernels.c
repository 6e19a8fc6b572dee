/*
 * Fuzz driver for the C core, meant to run under AddressSanitizer and
 * UndefinedBehaviorSanitizer (tests/test_sanitizers.py builds and runs it).
 *
 * Every case draws random sizes, transposes, leading dimensions, one- and two-level
 * batch strides (including 0 and interleaved matrices) and values. It allocates each
 * operand with exactly the bytes the kernel may touch, so a read or write past the end
 * trips AddressSanitizer, then runs the kernel and compares it with a naive float64
 * reference written here. The GEMM against a pre-packed B is fuzzed the same way.
 * Both the AVX2 and the portable kernels are exercised.
 *
 * Usage: fuzz_kernels [cases] [seed]      (defaults: 300 cases, seed 1)
 * Exit status 0 when every check passed, 1 otherwise.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char** argv)
{
    const int64_t cases = argc > 1 ? atoll(argv[1]) : 300;
    g_rng = argc > 2 ? (uint64_t)atoll(argv[2]) * 0x9E3779B97F4A7C15ULL + 1 : 0x9E3779B97F4A7C16ULL;
    static const char* variant_names[] = {"auto", "naive", "loop_order", "blocked", "packed", "threaded", "small"};

    fuzz_gemm_invalid();
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
        }
    }
    mr_force_portable(0);
    mr_release_scratch();
    printf("fuzz_kernels: %lld passed, %lld failed (simd compiled: %d, openmp: %d)\n",
           (long long)(g_checks - g_failures), (long long)g_failures, mr_simd_compiled(), mr_openmp_enabled());
    fflush(stdout); /* LeakSanitizer reports at exit and may skip stdio's final flush */
    return g_failures == 0 ? 0 : 1;
}
