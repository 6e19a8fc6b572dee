/*
 * Block kernels of the elementwise activations and the LSTM cell, written once over
 * a small vector interface and included four times: by activation.c with scalar
 * "vectors" (VLEN = 1, libm) for float32 and float64, and by activation_avx2.c with
 * __m256 / __m256d (VLEN = 8 / 4).
 *
 * The including file defines:
 *   real, vec, vmask, VLEN       element type, vector type, lane-mask type, lanes
 *   KFX(name)                    the name with its suffix (name##_avx2_f32 ...)
 *   SFX(name)                    the name with its dtype suffix (name##_f32 ...)
 *   v_load(p, rem), v_store(p, v, rem)   rem = lanes to touch (VLEN, or fewer in a tail)
 *   v_set(a), v_add, v_sub, v_mul, v_div, v_fma(a, b, c) = a * b + c, v_abs
 *   v_ge_zero(x)                 lane mask of x >= 0 (false for NaN)
 *   v_select(m, a, b)            a where m is set, b elsewhere
 *   v_clamp(x, b)                x clamped to [-b, b] (NaN stays NaN)
 *   v_exp(x)                     e^x for x <= 0 (NaN stays NaN)
 *   v_tanh(x)                    tanh(x)
 *
 * Each kernel reads its inputs at an index before it writes its outputs at that
 * index, so an output may be the same buffer as an input (y = x, dx = dy or y,
 * dc_prev = dc), but must not overlap one at a shifted position.
 */

/* GELU (tanh approximation) constants: sqrt(2 / pi) and the cubic coefficient. */
#define MR_GELU_K 0.7978845608028654
#define MR_GELU_A 0.044715

/*
 * sigma(x) = 1 / (1 + e^-x) without overflow: with e = e^-|x| in (0, 1],
 * sigma(x) = 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0. Neither branch
 * cancels, so the relative error stays a few ulps for every x.
 */
static inline vec KFX(sigmoid_vec)(vec x)
{
    const vec e = v_exp(v_sub(v_set(0), v_abs(x)));
    const vec numerator = v_select(v_ge_zero(x), v_set(1), e);
    return v_div(numerator, v_add(v_set(1), e));
}

static void KFX(sigmoid_block)(real* y, const real* x, int64_t n)
{
    for (int64_t j = 0; j < n; j += VLEN) {
        const int64_t rem = n - j < VLEN ? n - j : VLEN;
        v_store(y + j, KFX(sigmoid_vec)(v_load(x + j, rem)), rem);
    }
}

/* dx = dy * y * (1 - y), from the forward's output y. */
static void KFX(sigmoid_backward_block)(real* dx, const real* dy, const real* y, int64_t n)
{
    for (int64_t j = 0; j < n; j += VLEN) {
        const int64_t rem = n - j < VLEN ? n - j : VLEN;
        const vec yv = v_load(y + j, rem);
        const vec slope = v_mul(yv, v_sub(v_set(1), yv));
        v_store(dx + j, v_mul(v_load(dy + j, rem), slope), rem);
    }
}

static void KFX(tanh_block)(real* y, const real* x, int64_t n)
{
    for (int64_t j = 0; j < n; j += VLEN) {
        const int64_t rem = n - j < VLEN ? n - j : VLEN;
        v_store(y + j, v_tanh(v_load(x + j, rem)), rem);
    }
}

/* dx = dy * (1 - y^2), from the forward's output y; 1 - y^2 is one FMA in the AVX2 build. */
static void KFX(tanh_backward_block)(real* dx, const real* dy, const real* y, int64_t n)
{
    for (int64_t j = 0; j < n; j += VLEN) {
        const int64_t rem = n - j < VLEN ? n - j : VLEN;
        const vec yv = v_load(y + j, rem);
        const vec slope = v_fma(v_sub(v_set(0), yv), yv, v_set(1));
        v_store(dx + j, v_mul(v_load(dy + j, rem), slope), rem);
    }
}

/*
 * GELU, tanh approximation: 0.5 x (1 + tanh(u)) with u = K (x + A x^3). Since
 * 0.5 (1 + tanh(u)) = sigma(2u), the kernel computes x * sigma(2u), which does not
 * cancel for negative x where 1 + tanh(u) would. The sigmoid pieces come back
 * separately for the backward: e = e^-|2u|, q = 1 / (1 + e) and s = sigma(2u).
 */
static inline vec KFX(gelu_parts)(vec x, vec* e, vec* q)
{
    const vec x2 = v_mul(x, x);
    const vec two_u = v_mul(x, v_fma(v_set((real)(2 * MR_GELU_K * MR_GELU_A)), x2, v_set((real)(2 * MR_GELU_K))));
    *e = v_exp(v_sub(v_set(0), v_abs(two_u)));
    *q = v_div(v_set(1), v_add(v_set(1), *e));
    /* 2u has the sign of x, because K + K A x^2 > 0. */
    return v_mul(v_select(v_ge_zero(x), v_set(1), *e), *q);
}

static void KFX(gelu_tanh_block)(real* y, const real* x, int64_t n)
{
    for (int64_t j = 0; j < n; j += VLEN) {
        const int64_t rem = n - j < VLEN ? n - j : VLEN;
        const vec xv = v_load(x + j, rem);
        vec e, q;
        const vec s = KFX(gelu_parts)(xv, &e, &q);
        v_store(y + j, v_mul(xv, s), rem);
    }
}

/*
 * dx = dy * d/dx [x sigma(2u)] = dy * (s + x * sigma'(2u) * 2u'), where
 * sigma'(2u) = s (1 - s) = e q^2 (no cancellation at either end) and
 * 2u' = 2K (1 + 3 A x^2). The second term takes x clamped to [-1000, 1000]: it is
 * exactly 0 there already (e underflows once |x| > 22), and the clamp keeps x 2u'
 * finite, so a huge finite x (or +-inf) gives the limit 1 or 0, not inf * 0 = NaN.
 */
static void KFX(gelu_tanh_backward_block)(real* dx, const real* dy, const real* x, int64_t n)
{
    const vec slope_a = v_set((real)(6 * MR_GELU_K * MR_GELU_A));
    const vec slope_b = v_set((real)(2 * MR_GELU_K));
    for (int64_t j = 0; j < n; j += VLEN) {
        const int64_t rem = n - j < VLEN ? n - j : VLEN;
        const vec xv = v_load(x + j, rem);
        vec e, q;
        const vec s = KFX(gelu_parts)(xv, &e, &q);
        const vec xc = v_clamp(xv, 1000);
        const vec two_u_prime = v_fma(slope_a, v_mul(xc, xc), slope_b);
        const vec sigma_prime = v_mul(e, v_mul(q, q));
        const vec derivative = v_fma(v_mul(xc, two_u_prime), sigma_prime, s);
        v_store(dx + j, v_mul(v_load(dy + j, rem), derivative), rem);
    }
}

/*
 * LSTM cell forward over n columns of one row (gate order i, f, g, o):
 *     i, f, o = sigma(pre);  g = tanh(pre);  c = f c_prev + i g;  h = o tanh(c)
 *   gates, pre  (4, H) gate blocks of the row, from column j0
 *   c, tanh_c, h, c_prev  (H,) from column j0
 */
static void KFX(lstm_forward_block)(real* gates, real* c, real* tanh_c, real* h, const real* pre,
                                    const real* c_prev, int64_t H, int64_t n)
{
    for (int64_t j = 0; j < n; j += VLEN) {
        const int64_t rem = n - j < VLEN ? n - j : VLEN;
        const vec i = KFX(sigmoid_vec)(v_load(pre + j, rem));
        const vec f = KFX(sigmoid_vec)(v_load(pre + H + j, rem));
        const vec g = v_tanh(v_load(pre + 2 * H + j, rem));
        const vec o = KFX(sigmoid_vec)(v_load(pre + 3 * H + j, rem));
        const vec c_new = v_fma(f, v_load(c_prev + j, rem), v_mul(i, g));
        const vec tc = v_tanh(c_new);

        v_store(gates + j, i, rem);
        v_store(gates + H + j, f, rem);
        v_store(gates + 2 * H + j, g, rem);
        v_store(gates + 3 * H + j, o, rem);
        v_store(c + j, c_new, rem);
        v_store(tanh_c + j, tc, rem);
        v_store(h + j, v_mul(o, tc), rem);
    }
}

/*
 * LSTM cell backward over n columns of one row, from the forward's activated gates:
 *     total   = dc + dh o (1 - tanh(c)^2)          cotangent of c
 *     d_o     = dh tanh(c) o (1 - o)
 *     d_i     = total g i (1 - i)
 *     d_f     = total c_prev f (1 - f)
 *     d_g     = total i (1 - g^2)
 *     dc_prev = total f,  scratch = total
 *   d_pre, gates  (4, H) gate blocks of the row, from column j0
 *   dc_prev, scratch, dh, dc, c_prev, tanh_c  (H,) from column j0
 */
static void KFX(lstm_backward_block)(real* d_pre, real* dc_prev, real* scratch, const real* dh, const real* dc,
                                     const real* gates, const real* c_prev, const real* tanh_c, int64_t H,
                                     int64_t n)
{
    const vec one = v_set(1);
    for (int64_t j = 0; j < n; j += VLEN) {
        const int64_t rem = n - j < VLEN ? n - j : VLEN;
        const vec i = v_load(gates + j, rem);
        const vec f = v_load(gates + H + j, rem);
        const vec g = v_load(gates + 2 * H + j, rem);
        const vec o = v_load(gates + 3 * H + j, rem);
        const vec tc = v_load(tanh_c + j, rem);
        const vec dhv = v_load(dh + j, rem);
        const vec total = v_fma(v_mul(dhv, o), v_fma(v_sub(v_set(0), tc), tc, one), v_load(dc + j, rem));

        const vec d_o = v_mul(v_mul(dhv, tc), v_mul(o, v_sub(one, o)));
        const vec d_i = v_mul(v_mul(total, g), v_mul(i, v_sub(one, i)));
        const vec d_f = v_mul(v_mul(total, v_load(c_prev + j, rem)), v_mul(f, v_sub(one, f)));
        const vec d_g = v_mul(v_mul(total, i), v_fma(v_sub(v_set(0), g), g, one));

        v_store(d_pre + j, d_i, rem);
        v_store(d_pre + H + j, d_f, rem);
        v_store(d_pre + 2 * H + j, d_g, rem);
        v_store(d_pre + 3 * H + j, d_o, rem);
        v_store(scratch + j, total, rem);
        v_store(dc_prev + j, v_mul(total, f), rem);
    }
}

const SFX(mr_actops) KFX(mr_actops) = {
    .sigmoid = KFX(sigmoid_block),
    .sigmoid_backward = KFX(sigmoid_backward_block),
    .tanh = KFX(tanh_block),
    .tanh_backward = KFX(tanh_backward_block),
    .gelu_tanh = KFX(gelu_tanh_block),
    .gelu_tanh_backward = KFX(gelu_tanh_backward_block),
    .lstm_forward = KFX(lstm_forward_block),
    .lstm_backward = KFX(lstm_backward_block),
};
