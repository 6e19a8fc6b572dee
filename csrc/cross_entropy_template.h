/*
 * Fused cross-entropy forward and backward for one element type; cross_entropy.c
 * includes this file twice (real = float / double, SFX(name) = name##_f32 / _f64).
 *
 * Fused means the log-softmax is never stored. The forward reads each row of
 * logits from memory once (the passes after the first hit L1 or L2) and writes one
 * loss and one log-sum-exp per row. The backward rebuilds the softmax from the saved
 * log-sum-exp and writes the gradient in the same pass.
 *
 * Conventions (shared with the numpy backend):
 *   - a row whose target is ignore_index has loss 0, gradient 0 and is not counted;
 *   - a row of only -inf logits has lse = -inf, loss +inf (its log-softmax is -inf)
 *     and gradient 0 (its softmax is all zeros).
 */

/*
 * Forward, one row. Returns the loss and stores the row's log-sum-exp.
 *   row  (C,)
 */
static double SFX(cross_entropy_row)(const SFX(mr_rowops)* ops, real* lse_out, const real* row, int64_t C,
                                     int64_t target, double eps)
{
    /* Phase 1: the max, held constant. */
    const real m = ops->max(row, C);
    if (m == -(real)INFINITY) {
        *lse_out = -(real)INFINITY;
        return INFINITY;
    }
    /* Phase 2: log-sum-exp, computed once per row and saved for the backward. */
    const double lse = (double)m + log(ops->exp_shift_sum(NULL, row, C, m));
    *lse_out = (real)lse;
    /* Phase 3: the loss, -log_softmax at the target, blended with the uniform
     * target when smoothing: eps * (lse - mean_c row[c]). */
    double loss = (1.0 - eps) * (lse - (double)row[target]);
    if (eps != 0.0) {
        loss += eps * (lse - ops->sum(row, C) / (double)C);
    }
    return loss;
}

int SFX(mr_cross_entropy_forward)(real* losses, real* lse, int64_t* n_valid, int64_t* bad_row, const real* logits,
                                  const int64_t* targets, int64_t R, int64_t C, int64_t ignore_index,
                                  double label_smoothing)
{
    if (R < 0 || C < 1 || !(label_smoothing >= 0.0 && label_smoothing <= 1.0)) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    /* Phase 0: every target must be a class or ignore_index; checked before any work. */
    *bad_row = -1;
    for (int64_t r = 0; r < R; r++) {
        const int64_t t = targets[r];
        if (t != ignore_index && (t < 0 || t >= C)) {
            *bad_row = r;
            return MR_ERR_TARGET_RANGE;
        }
    }

    const SFX(mr_rowops)* ops = SFX(mr_rowops_get)();
    const int threads = mr_threads_for(R * C);
    int64_t count = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : count) if (threads > 1)
#endif
    for (int64_t r = 0; r < R; r++) {
        const real* row = logits + r * C;
        const int64_t t = targets[r];
        if (t == ignore_index) {
            losses[r] = 0;
            lse[r] = 0;
            continue;
        }
        losses[r] = (real)SFX(cross_entropy_row)(ops, lse + r, row, C, t, label_smoothing);
        count += 1;
    }
    (void)threads;
    *n_valid = count;
    return MR_OK;
}

/*
 * Backward. With p = softmax(row) = exp(row - lse) and the smoothed target
 * q = (1 - eps) onehot(t) + eps / C, d loss / d row = p - q; times the upstream
 * gradient of this row's loss:
 *     dlogits[r, :] = (exp(row - lse) - eps / C) * scale  -  (1 - eps) * scale at t.
 * Mirrors the forward: phase 3 (the loss) gives -q, phase 2 (lse) gives +p.
 */
int SFX(mr_cross_entropy_backward)(real* dlogits, const real* dlosses, int64_t dlosses_stride, const real* logits,
                                   const int64_t* targets, const real* lse, int64_t R, int64_t C,
                                   int64_t ignore_index, double label_smoothing)
{
    if (R < 0 || C < 1 || dlosses_stride < 0 || !(label_smoothing >= 0.0 && label_smoothing <= 1.0)) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    for (int64_t r = 0; r < R; r++) {
        const int64_t t = targets[r];
        if (t != ignore_index && (t < 0 || t >= C)) {
            return MR_ERR_TARGET_RANGE;
        }
    }

    const SFX(mr_rowops)* ops = SFX(mr_rowops_get)();
    const double eps = label_smoothing;
    const int threads = mr_threads_for(R * C);
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
#endif
    for (int64_t r = 0; r < R; r++) {
        real* drow = dlogits + r * C;
        const int64_t t = targets[r];
        if (t == ignore_index || lse[r] == -(real)INFINITY) {
            for (int64_t c = 0; c < C; c++) {
                drow[c] = 0;
            }
            continue;
        }
        const real scale = dlosses[r * dlosses_stride];
        /* Backward of phase 2 and the uniform part of phase 3, in one pass. */
        ops->exp_shift_affine(drow, logits + r * C, C, lse[r], (real)(eps / (double)C), scale);
        /* Backward of phase 3 at the target. */
        drow[t] -= (real)(1.0 - eps) * scale;
    }
    (void)threads;
    return MR_OK;
}
