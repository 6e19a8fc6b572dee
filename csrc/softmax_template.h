/*
 * Softmax and log-softmax, forward and backward, for one element type; softmax.c
 * includes this file twice (real = float / double, SFX(name) = name##_f32 / _f64).
 *
 * Each kernel works one row at a time, and each phase below is one pass over the
 * row. A row of C elements (4 KiB at C = 1024 float32, 128 KiB at C = 32768) stays
 * in L1 or L2 between the passes, so each input comes from main memory once and
 * each output goes back once. The vector math of each pass sits behind the row-primitive
 * table (rowops): AVX2 in softmax_avx2.c, the portable loops below otherwise.
 */

/* ---- portable row primitives (scalar libm exp) ------------------------------- */

static real SFX(row_max_portable)(const real* x, int64_t n)
{
    real m = -(real)INFINITY;
    for (int64_t i = 0; i < n; i++) {
        m = (x[i] > m || x[i] != x[i]) ? x[i] : m; /* keeps a NaN once seen */
        if (m != m) {
            return m;
        }
    }
    return m;
}

static double SFX(row_sum_portable)(const real* x, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        s += x[i];
    }
    return s;
}

static double SFX(row_dot_portable)(const real* x, const real* y, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        s += (double)x[i] * (double)y[i];
    }
    return s;
}

static double SFX(row_exp_shift_sum_portable)(real* y, const real* x, int64_t n, real shift)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        const real e = SFX(exp_scalar)(x[i] - shift);
        if (y != NULL) {
            y[i] = e;
        }
        s += e;
    }
    return s;
}

static void SFX(row_scale_portable)(real* y, const real* x, int64_t n, real scale)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = x[i] * scale;
    }
}

static void SFX(row_sub_portable)(real* y, const real* x, int64_t n, real shift)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = x[i] - shift;
    }
}

static void SFX(row_softmax_bwd_portable)(real* dx, const real* dy, const real* y, int64_t n, real s)
{
    for (int64_t i = 0; i < n; i++) {
        dx[i] = y[i] * (dy[i] - s);
    }
}

static void SFX(row_log_softmax_bwd_portable)(real* dx, const real* dy, const real* y, int64_t n, real s)
{
    for (int64_t i = 0; i < n; i++) {
        dx[i] = (y[i] == -(real)INFINITY) ? (real)0 : dy[i] - SFX(exp_scalar)(y[i]) * s;
    }
}

static void SFX(row_exp_shift_affine_portable)(real* y, const real* x, int64_t n, real shift, real offset,
                                               real scale)
{
    for (int64_t i = 0; i < n; i++) {
        y[i] = (SFX(exp_scalar)(x[i] - shift) - offset) * scale;
    }
}

const SFX(mr_rowops) SFX(mr_rowops_portable) = {
    .max = SFX(row_max_portable),
    .sum = SFX(row_sum_portable),
    .dot = SFX(row_dot_portable),
    .exp_shift_sum = SFX(row_exp_shift_sum_portable),
    .scale = SFX(row_scale_portable),
    .sub = SFX(row_sub_portable),
    .softmax_bwd = SFX(row_softmax_bwd_portable),
    .log_softmax_bwd = SFX(row_log_softmax_bwd_portable),
    .exp_shift_affine = SFX(row_exp_shift_affine_portable),
};

/* ---- kernels -------------------------------------------------------------------- */

/*
 * Softmax forward, one row: out = exp(inp - max) / sum(exp(inp - max)).
 *   out  (C,)  overwritten; may alias inp
 *   inp  (C,)
 */
static void SFX(softmax_row)(const SFX(mr_rowops)* ops, real* out, const real* inp, int64_t C)
{
    /* Phase 1: the max, held constant so exp never overflows. */
    const real m = ops->max(inp, C);
    if (m == -(real)INFINITY) {
        /* A row of only -inf: every probability is 0 by convention (not 0/0). */
        for (int64_t c = 0; c < C; c++) {
            out[c] = 0;
        }
        return;
    }
    /* Phase 2: out = exp(inp - m) and its sum (sum >= 1, from the max itself). */
    const double s = ops->exp_shift_sum(out, inp, C, m);
    /* Phase 3: normalize. */
    ops->scale(out, out, C, (real)(1.0 / s));
}

/*
 * Log-softmax forward, one row: out = inp - (max + log(sum(exp(inp - max)))).
 * A row of only -inf gives -inf everywhere.
 */
static void SFX(log_softmax_row)(const SFX(mr_rowops)* ops, real* out, const real* inp, int64_t C)
{
    /* Phase 1: the max. */
    const real m = ops->max(inp, C);
    if (m == -(real)INFINITY) {
        for (int64_t c = 0; c < C; c++) {
            out[c] = -(real)INFINITY;
        }
        return;
    }
    /* Phase 2: log-sum-exp, without storing the exponentials. */
    const double s = ops->exp_shift_sum(NULL, inp, C, m);
    const real lse = (real)((double)m + log(s));
    /* Phase 3: shift. */
    ops->sub(out, inp, C, lse);
}

int SFX(mr_softmax_forward)(real* out, const real* inp, int64_t R, int64_t C)
{
    if (R < 0 || C < 0) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    const SFX(mr_rowops)* ops = SFX(mr_rowops_get)();
    const int threads = mr_threads_for(R * C);
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int64_t r = 0; r < R; r++) {
        SFX(softmax_row)(ops, out + r * C, inp + r * C, C);
    }
    (void)threads;
    return MR_OK;
}

int SFX(mr_log_softmax_forward)(real* out, const real* inp, int64_t R, int64_t C)
{
    if (R < 0 || C < 0) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    const SFX(mr_rowops)* ops = SFX(mr_rowops_get)();
    const int threads = mr_threads_for(R * C);
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int64_t r = 0; r < R; r++) {
        SFX(log_softmax_row)(ops, out + r * C, inp + r * C, C);
    }
    (void)threads;
    return MR_OK;
}

/*
 * Softmax backward. With y = softmax(x), dy/dx is diag(y) - y y^T, so
 *     dinp = y * (dout - sum_c(dout * y)).
 * Phases mirror the forward in reverse: phase 3 (normalize) and phase 2 (exp) are
 * folded into the saved y, so what is left is one reduction and one elementwise pass.
 * Entries with y = 0 (inputs of -inf, or a row of only -inf) get exactly 0.
 *   dinp  (R, C)  overwritten; may alias dout
 */
int SFX(mr_softmax_backward)(real* dinp, const real* dout, const real* out, int64_t R, int64_t C)
{
    if (R < 0 || C < 0) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    const SFX(mr_rowops)* ops = SFX(mr_rowops_get)();
    const int threads = mr_threads_for(R * C);
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int64_t r = 0; r < R; r++) {
        const real* y = out + r * C;
        const real* dy = dout + r * C;
        /* Backward of phases 3 and 2: the projection sum_c dy * y. */
        const double s = ops->dot(dy, y, C);
        ops->softmax_bwd(dinp + r * C, dy, y, C, (real)s);
    }
    (void)threads;
    return MR_OK;
}

/*
 * Log-softmax backward. With y = x - lse(x), dy/dx = I - softmax(x) 1^T, so
 *     dinp = dout - exp(y) * sum_c(dout).
 * An entry with y = -inf (an input of -inf, which no finite step can move) gets 0,
 * and so does every entry of a row of only -inf, matching its softmax of zeros.
 */
int SFX(mr_log_softmax_backward)(real* dinp, const real* dout, const real* out, int64_t R, int64_t C)
{
    if (R < 0 || C < 0) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    const SFX(mr_rowops)* ops = SFX(mr_rowops_get)();
    const int threads = mr_threads_for(R * C);
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int64_t r = 0; r < R; r++) {
        const real* dy = dout + r * C;
        /* Backward of phase 3 (shift by lse): sum_c dout; phase 1 has no gradient. */
        const double s = ops->sum(dy, C);
        /* Backward of phase 2: exp(y) is the softmax. */
        ops->log_softmax_bwd(dinp + r * C, dy, out + r * C, C, (real)s);
    }
    (void)threads;
    return MR_OK;
}
