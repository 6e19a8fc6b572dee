/*
 * Fuzz driver for the C core, meant to run under AddressSanitizer and
 * UndefinedBehaviorSanitizer (tests/test_sanitizers.py builds and runs it).
 *
 * Every case draws random sizes, transposes, leading dimensions, batch strides
 * (including 0) and values, allocates each operand with exactly the bytes the
 * kernel may touch (so a read or write past the end trips AddressSanitizer), runs
 * the kernel and compares it with a naive float64 reference written here. Both
 * the AVX2 and the portable kernels are exercised.
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

/* One batched GEMM case in the given dtype (is_f64), against a float64 triple loop. */
static void fuzz_gemm_case(int is_f64, int variant, int size_class, char* label)
{
    const int64_t BT = size_class == SIZE_SMALL ? rand_int(1, 3) : 1;
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
    const int64_t rows_a = ta ? K : M, cols_a = ta ? M : K;
    const int64_t rows_b = tb ? N : K, cols_b = tb ? K : N;
    const int64_t lda = (cols_a > 0 ? cols_a : 1) + rand_int(0, 3);
    const int64_t ldb = (cols_b > 0 ? cols_b : 1) + rand_int(0, 3);
    const int64_t ldc = (N > 0 ? N : 1) + rand_int(0, 3);
    /* A batch stride of 0 broadcasts one matrix; otherwise matrices sit back to back. */
    const int64_t mat_a = rows_a > 0 ? (rows_a - 1) * lda + cols_a : 0;
    const int64_t mat_b = rows_b > 0 ? (rows_b - 1) * ldb + cols_b : 0;
    const int64_t mat_c = M > 0 ? (M - 1) * ldc + N : 0;
    const int64_t stride_a = rand_int(0, 1) ? 0 : mat_a + rand_int(0, 2);
    const int64_t stride_b = rand_int(0, 1) ? 0 : mat_b + rand_int(0, 2);
    const int64_t stride_c = mat_c + rand_int(0, 2);
    const int64_t size_a = (BT - 1) * stride_a + mat_a;
    const int64_t size_b = (BT - 1) * stride_b + mat_b;
    const int64_t size_c = (BT - 1) * stride_c + mat_c;
    const double alpha = rand_int(0, 3) == 0 ? 1.0 : rand_unit() * 2;
    const int beta_kind = (int)rand_int(0, 2); /* 0: beta 0 over NaN, 1: beta 1, 2: random */
    const double beta = beta_kind == 0 ? 0.0 : (beta_kind == 1 ? 1.0 : rand_unit());
    const size_t item = is_f64 ? sizeof(double) : sizeof(float);

    double* a64 = alloc_exact(size_a, sizeof(double));
    double* b64 = alloc_exact(size_b, sizeof(double));
    double* c64 = alloc_exact(size_c, sizeof(double));
    for (int64_t i = 0; i < size_a; i++) a64[i] = rand_unit();
    for (int64_t i = 0; i < size_b; i++) b64[i] = rand_unit();
    for (int64_t i = 0; i < size_c; i++) c64[i] = beta_kind == 0 ? NAN : rand_unit();

    void* a = alloc_exact(size_a, item);
    void* b = alloc_exact(size_b, item);
    void* c = alloc_exact(size_c, item);
    for (int64_t i = 0; i < size_a; i++) {
        if (is_f64) ((double*)a)[i] = a64[i]; else ((float*)a)[i] = (float)a64[i];
    }
    for (int64_t i = 0; i < size_b; i++) {
        if (is_f64) ((double*)b)[i] = b64[i]; else ((float*)b)[i] = (float)b64[i];
    }
    for (int64_t i = 0; i < size_c; i++) {
        if (is_f64) ((double*)c)[i] = c64[i]; else ((float*)c)[i] = (float)c64[i];
    }

    int status;
    if (is_f64) {
        status = mr_gemm_batched_f64(c, ldc, stride_c, a, lda, stride_a, b, ldb, stride_b, BT, M, N, K, ta, tb,
                                     alpha, beta, variant);
    } else {
        status = mr_gemm_batched_f32(c, ldc, stride_c, a, lda, stride_a, b, ldb, stride_b, BT, M, N, K, ta, tb,
                                     (float)alpha, (float)beta, variant);
    }
    snprintf(label + strlen(label), 200, " BT=%lld M=%lld N=%lld K=%lld ta=%d tb=%d", (long long)BT, (long long)M,
             (long long)N, (long long)K, ta, tb);
    check(status == MR_OK, label);

    /* Reference from the operands as rounded to the tested dtype. Bound: a sum of K
     * products in any order is within K * eps * sum |a||b| (plus the alpha/beta
     * rounding), so the test allows 2 (K + 2) eps times that sum. */
    const double eps = is_f64 ? 2.220446049250313e-16 : 1.1920928955078125e-07;
    int ok = 1;
    for (int64_t bt = 0; bt < BT && ok; bt++) {
        for (int64_t i = 0; i < M && ok; i++) {
            for (int64_t j = 0; j < N; j++) {
                double sum = 0, magnitude = 0;
                for (int64_t p = 0; p < K; p++) {
                    const int64_t ia = bt * stride_a + (ta ? p * lda + i : i * lda + p);
                    const int64_t ib = bt * stride_b + (tb ? j * ldb + p : p * ldb + j);
                    const double va = is_f64 ? ((double*)a)[ia] : ((float*)a)[ia];
                    const double vb = is_f64 ? ((double*)b)[ib] : ((float*)b)[ib];
                    sum += va * vb;
                    magnitude += fabs(va * vb);
                }
                const int64_t ic = bt * stride_c + i * ldc + j;
                const double c_in = beta_kind == 0 ? 0.0 : (is_f64 ? c64[ic] : (double)(float)c64[ic]);
                const double expected = alpha * sum + beta * c_in;
                const double got = is_f64 ? ((double*)c)[ic] : ((float*)c)[ic];
                const double tol = 2.0 * (double)(K + 2) * eps * (fabs(alpha) * magnitude + fabs(beta * c_in)) + 1e-30;
                if (!(fabs(got - expected) <= tol)) {
                    ok = 0;
                }
            }
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
