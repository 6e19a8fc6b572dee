/*
 * Entry points of the activations and the LSTM cell for one element type;
 * activation.c includes this file twice (real = float / double, SFX(name) =
 * name##_f32 / _f64). Each entry point checks its sizes and picks the block-kernel
 * table (AVX2 when available, see activation_internal.h). It then cuts the work into
 * blocks of at most MR_ACT_BLOCK elements. When the call is large enough, the blocks
 * are spread over the OpenMP threads (mr_threads_for, the rule the softmax kernels use).
 */

/* Elements per block: 16 KiB of float32, big enough to hide the loop overhead and
 * small enough that a (B, H) call with a few rows still splits over two threads. */
#ifndef MR_ACT_BLOCK
#define MR_ACT_BLOCK ((int64_t)4096)
#endif

static const SFX(mr_actops)* SFX(actops_get)(void)
{
#ifdef MR_HAVE_AVX2
    if (mr_use_avx2()) {
        return &SFX(mr_actops_avx2);
    }
#endif
    return &SFX(mr_actops_portable);
}

/* Runs a one-input elementwise block kernel over n elements. */
static int SFX(run_unary)(void (*block)(real*, const real*, int64_t), real* out, const real* x, int64_t n)
{
    if (n < 0) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    const int64_t blocks = (n + MR_ACT_BLOCK - 1) / MR_ACT_BLOCK;
    const int threads = mr_threads_for(n);
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t start = b * MR_ACT_BLOCK;
        const int64_t length = n - start < MR_ACT_BLOCK ? n - start : MR_ACT_BLOCK;
        block(out + start, x + start, length);
    }
    (void)threads;
    return MR_OK;
}

/* Runs a two-input elementwise block kernel (a backward: dy and a saved array) over n elements. */
static int SFX(run_binary)(void (*block)(real*, const real*, const real*, int64_t), real* out, const real* a,
                           const real* b_array, int64_t n)
{
    if (n < 0) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    const int64_t blocks = (n + MR_ACT_BLOCK - 1) / MR_ACT_BLOCK;
    const int threads = mr_threads_for(n);
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int64_t b = 0; b < blocks; b++) {
        const int64_t start = b * MR_ACT_BLOCK;
        const int64_t length = n - start < MR_ACT_BLOCK ? n - start : MR_ACT_BLOCK;
        block(out + start, a + start, b_array + start, length);
    }
    (void)threads;
    return MR_OK;
}

int SFX(mr_sigmoid_forward)(real* y, const real* x, int64_t n)
{
    return SFX(run_unary)(SFX(actops_get)()->sigmoid, y, x, n);
}

int SFX(mr_sigmoid_backward)(real* dx, const real* dy, const real* y, int64_t n)
{
    return SFX(run_binary)(SFX(actops_get)()->sigmoid_backward, dx, dy, y, n);
}

int SFX(mr_tanh_forward)(real* y, const real* x, int64_t n)
{
    return SFX(run_unary)(SFX(actops_get)()->tanh, y, x, n);
}

int SFX(mr_tanh_backward)(real* dx, const real* dy, const real* y, int64_t n)
{
    return SFX(run_binary)(SFX(actops_get)()->tanh_backward, dx, dy, y, n);
}

int SFX(mr_gelu_tanh_forward)(real* y, const real* x, int64_t n)
{
    return SFX(run_unary)(SFX(actops_get)()->gelu_tanh, y, x, n);
}

int SFX(mr_gelu_tanh_backward)(real* dx, const real* dy, const real* x, int64_t n)
{
    return SFX(run_binary)(SFX(actops_get)()->gelu_tanh_backward, dx, dy, x, n);
}

/* True when B, H and the leading dimensions describe valid (B, width) row layouts. */
static int SFX(lstm_layout_ok)(int64_t B, int64_t H, const int64_t* wide_lds, int n_wide, const int64_t* lds,
                               int n_lds)
{
    if (B < 0 || H < 0) {
        return 0;
    }
    for (int k = 0; k < n_wide; k++) {
        if (wide_lds[k] < 4 * H) {
            return 0;
        }
    }
    for (int k = 0; k < n_lds; k++) {
        if (lds[k] < H) {
            return 0;
        }
    }
    return 1;
}

int SFX(mr_lstm_cell_forward)(real* gates, int64_t ld_gates, real* c, int64_t ld_c, real* tanh_c, int64_t ld_tanh_c,
                              real* h, int64_t ld_h, const real* pre, int64_t ld_pre, const real* c_prev,
                              int64_t ld_c_prev, int64_t B, int64_t H)
{
    const int64_t wide[2] = {ld_gates, ld_pre};
    const int64_t narrow[4] = {ld_c, ld_tanh_c, ld_h, ld_c_prev};
    if (!SFX(lstm_layout_ok)(B, H, wide, 2, narrow, 4)) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    const SFX(mr_actops)* ops = SFX(actops_get)();
    /* One task is one block of columns of one row. */
    const int64_t blocks_per_row = (H + MR_ACT_BLOCK - 1) / MR_ACT_BLOCK;
    const int64_t tasks = B * blocks_per_row;
    const int threads = mr_threads_for(B * 4 * H);
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int64_t t = 0; t < tasks; t++) {
        const int64_t r = t / blocks_per_row;
        const int64_t j0 = (t % blocks_per_row) * MR_ACT_BLOCK;
        const int64_t length = H - j0 < MR_ACT_BLOCK ? H - j0 : MR_ACT_BLOCK;
        ops->lstm_forward(gates + r * ld_gates + j0, c + r * ld_c + j0, tanh_c + r * ld_tanh_c + j0,
                          h + r * ld_h + j0, pre + r * ld_pre + j0, c_prev + r * ld_c_prev + j0, H, length);
    }
    (void)threads;
    return MR_OK;
}

int SFX(mr_lstm_cell_backward)(real* d_pre, int64_t ld_d_pre, real* dc_prev, int64_t ld_dc_prev, real* scratch,
                               int64_t ld_scratch, const real* dh, int64_t ld_dh, const real* dc, int64_t ld_dc,
                               const real* gates, int64_t ld_gates, const real* c_prev, int64_t ld_c_prev,
                               const real* tanh_c, int64_t ld_tanh_c, int64_t B, int64_t H)
{
    const int64_t wide[2] = {ld_d_pre, ld_gates};
    const int64_t narrow[6] = {ld_dc_prev, ld_scratch, ld_dh, ld_dc, ld_c_prev, ld_tanh_c};
    if (!SFX(lstm_layout_ok)(B, H, wide, 2, narrow, 6)) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    const SFX(mr_actops)* ops = SFX(actops_get)();
    const int64_t blocks_per_row = (H + MR_ACT_BLOCK - 1) / MR_ACT_BLOCK;
    const int64_t tasks = B * blocks_per_row;
    const int threads = mr_threads_for(B * 4 * H);
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int64_t t = 0; t < tasks; t++) {
        const int64_t r = t / blocks_per_row;
        const int64_t j0 = (t % blocks_per_row) * MR_ACT_BLOCK;
        const int64_t length = H - j0 < MR_ACT_BLOCK ? H - j0 : MR_ACT_BLOCK;
        ops->lstm_backward(d_pre + r * ld_d_pre + j0, dc_prev + r * ld_dc_prev + j0, scratch + r * ld_scratch + j0,
                           dh + r * ld_dh + j0, dc + r * ld_dc + j0, gates + r * ld_gates + j0,
                           c_prev + r * ld_c_prev + j0, tanh_c + r * ld_tanh_c + j0, H, length);
    }
    (void)threads;
    return MR_OK;
}
