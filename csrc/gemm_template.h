/*
 * The GEMM ladder for one element type. gemm.c includes this file twice, once with
 * `real` = float and SFX(name) = name##_f32, once with double and _f64, so each rung
 * is written once and a reader can follow it without macros in the way.
 *
 * Every rung computes, on one matrix,
 *     C = alpha * op(A) @ op(B) + beta * C        (see the legend in minireparam.h)
 * and overwrites C when beta == 0 without reading it. The rungs go from the simplest
 * to the fastest; each one opens with a few lines on what it changes and why.
 *
 * Shapes: op(A) is (M, K) and op(B) is (K, N). In memory, with the transpose flags ta
 * and tb:  a (M, lda) if !ta else (K, lda);  b (K, ldb) if !tb else (N, ldb);  c (M, ldc).
 */

/* op(A)(i, p) and op(B)(p, j): the only place where a transpose flag meets an index. */
static inline real SFX(op_a)(const real* a, int64_t lda, int ta, int64_t i, int64_t p)
{
    return ta ? a[p * lda + i] : a[i * lda + p];
}

static inline real SFX(op_b)(const real* b, int64_t ldb, int tb, int64_t p, int64_t j)
{
    return tb ? b[j * ldb + p] : b[p * ldb + j];
}

/* C = beta * C on an (M, N) block, writing zeros without reading C when beta == 0. */
static void SFX(scale_c)(real* c, int64_t ldc, int64_t M, int64_t N, real beta)
{
    if (beta == (real)1) {
        return;
    }
    for (int64_t i = 0; i < M; i++) {
        real* c_row = c + i * ldc;
        for (int64_t j = 0; j < N; j++) {
            c_row[j] = (beta == (real)0) ? (real)0 : beta * c_row[j];
        }
    }
}

/*
 * Rung 1, naive: one dot product per output element,
 *     C[i, j] = sum_p op(A)[i, p] * op(B)[p, j].
 * It is the easiest rung to check and the reference for the others. Its weakness is
 * memory: for op(B) = B the p loop walks down a column of B with stride ldb, so once
 * B outgrows the cache almost every load is a miss.
 */
static void SFX(gemm_naive)(real* c, int64_t ldc, const real* a, int64_t lda, const real* b, int64_t ldb,
                            int64_t M, int64_t N, int64_t K, int ta, int tb, real alpha, real beta)
{
    for (int64_t i = 0; i < M; i++) {
        for (int64_t j = 0; j < N; j++) {
            real acc = 0;
            for (int64_t p = 0; p < K; p++) {
                acc += SFX(op_a)(a, lda, ta, i, p) * SFX(op_b)(b, ldb, tb, p, j);
            }
            real* cij = c + i * ldc + j;
            *cij = (beta == (real)0) ? alpha * acc : alpha * acc + beta * *cij;
        }
    }
}

/*
 * Rung 2, loop order: the same sums, with the three loops ordered so that the
 * innermost loop walks memory with unit stride, which lets the compiler vectorize it
 * and keeps whole cache lines in use. The best order depends on the transposes:
 *   A  B   order   innermost loop
 *   n  n   i p j   C row += A[i, p] * B row p       (C and B unit-stride)
 *   t  n   p i j   C row += A[p, i] * B row p       (C and B unit-stride)
 *   n  t   i j p   dot(A row i, B row j)            (A and B unit-stride)
 *   t  t   j p i   C column += A row p * B[j, p]    (A unit-stride; no order makes all
 *                  three unit-stride, but the C column stays in cache while p runs)
 * This core accumulates: C += alpha * op(A) @ op(B), after beta was applied. Rung 3
 * calls it on sub-blocks.
 */
static void SFX(accumulate_loop_order)(real* c, int64_t ldc, const real* a, int64_t lda, const real* b,
                                       int64_t ldb, int64_t M, int64_t N, int64_t K, int ta, int tb,
                                       real alpha)
{
    if (!ta && !tb) {
        for (int64_t i = 0; i < M; i++) {
            real* c_row = c + i * ldc;
            for (int64_t p = 0; p < K; p++) {
                const real a_ip = alpha * a[i * lda + p];
                const real* b_row = b + p * ldb;
                for (int64_t j = 0; j < N; j++) {
                    c_row[j] += a_ip * b_row[j];
                }
            }
        }
    } else if (ta && !tb) {
        for (int64_t p = 0; p < K; p++) {
            const real* b_row = b + p * ldb;
            for (int64_t i = 0; i < M; i++) {
                const real a_ip = alpha * a[p * lda + i];
                real* c_row = c + i * ldc;
                for (int64_t j = 0; j < N; j++) {
                    c_row[j] += a_ip * b_row[j];
                }
            }
        }
    } else if (!ta && tb) {
        for (int64_t i = 0; i < M; i++) {
            const real* a_row = a + i * lda;
            for (int64_t j = 0; j < N; j++) {
                const real* b_row = b + j * ldb;
                real acc = 0;
                for (int64_t p = 0; p < K; p++) {
                    acc += a_row[p] * b_row[p];
                }
                c[i * ldc + j] += alpha * acc;
            }
        }
    } else {
        for (int64_t j = 0; j < N; j++) {
            const real* b_row = b + j * ldb;
            for (int64_t p = 0; p < K; p++) {
                const real b_pj = alpha * b_row[p];
                const real* a_row = a + p * lda;
                for (int64_t i = 0; i < M; i++) {
                    c[i * ldc + j] += a_row[i] * b_pj;
                }
            }
        }
    }
}

static void SFX(gemm_loop_order)(real* c, int64_t ldc, const real* a, int64_t lda, const real* b, int64_t ldb,
                                 int64_t M, int64_t N, int64_t K, int ta, int tb, real alpha, real beta)
{
    SFX(scale_c)(c, ldc, M, N, beta);
    SFX(accumulate_loop_order)(c, ldc, a, lda, b, ldb, M, N, K, ta, tb, alpha);
}

/* Pointers to the sub-matrices that start at op(A)[i0, p0] and op(B)[p0, j0]. */
static inline const real* SFX(sub_a)(const real* a, int64_t lda, int ta, int64_t i0, int64_t p0)
{
    return ta ? a + p0 * lda + i0 : a + i0 * lda + p0;
}

static inline const real* SFX(sub_b)(const real* b, int64_t ldb, int tb, int64_t p0, int64_t j0)
{
    return tb ? b + j0 * ldb + p0 : b + p0 * ldb + j0;
}

/*
 * Rung 3, cache blocking: rung 2 streams all of B through the cache once per row of
 * C. Cutting the loops into tiles (BLOCK_K x BLOCK_N of B, a few hundred KiB, kept in
 * L2 while every row block of A passes over it) turns most of those trips to memory
 * into cache hits. Inside a tile the loop order of rung 2 is reused unchanged.
 */
static void SFX(gemm_blocked)(real* c, int64_t ldc, const real* a, int64_t lda, const real* b, int64_t ldb,
                              int64_t M, int64_t N, int64_t K, int ta, int tb, real alpha, real beta)
{
    enum { BLOCK_M = 64, BLOCK_N = 256, BLOCK_K = 128 };

    SFX(scale_c)(c, ldc, M, N, beta);
    for (int64_t j0 = 0; j0 < N; j0 += BLOCK_N) {
        const int64_t nb = MR_MIN(BLOCK_N, N - j0);
        for (int64_t p0 = 0; p0 < K; p0 += BLOCK_K) {
            const int64_t kb = MR_MIN(BLOCK_K, K - p0);
            const real* b_tile = SFX(sub_b)(b, ldb, tb, p0, j0);
            for (int64_t i0 = 0; i0 < M; i0 += BLOCK_M) {
                const int64_t mb = MR_MIN(BLOCK_M, M - i0);
                SFX(accumulate_loop_order)(c + i0 * ldc + j0, ldc, SFX(sub_a)(a, lda, ta, i0, p0), lda, b_tile,
                                           ldb, mb, nb, kb, ta, tb, alpha);
            }
        }
    }
}

/*
 * Packing, used by rungs 4 to 6. pack_a copies op(A)[0:mc, 0:kc] into ceil(mc / mr)
 * micro-panels laid out one after the other; in panel q, element (i, p) of the
 * panel (row q * mr + i of op(A)) sits at p * mr + i. Rows past mc are zero, so the
 * micro-kernel always runs on a full tile. The transpose is absorbed here: the
 * micro-kernel never reads a stride other than mr.
 *   dst  (ceil(mc / mr), kc, mr)
 */
static void SFX(pack_a)(real* dst, const real* a, int64_t lda, int ta, int64_t mc, int64_t kc, int mr)
{
    for (int64_t i0 = 0; i0 < mc; i0 += mr) {
        const int64_t rows = MR_MIN(mr, mc - i0);
        if (ta) {
            /* op(A)[i, p] = a[p, i]: each p gives `rows` contiguous values. */
            for (int64_t p = 0; p < kc; p++) {
                const real* src = a + p * lda + i0;
                real* out = dst + p * mr;
                for (int64_t i = 0; i < rows; i++) {
                    out[i] = src[i];
                }
                for (int64_t i = rows; i < mr; i++) {
                    out[i] = 0;
                }
            }
        } else {
            /* op(A)[i, p] = a[i, p]: read `rows` rows side by side, write interleaved. */
            for (int64_t p = 0; p < kc; p++) {
                real* out = dst + p * mr;
                for (int64_t i = 0; i < rows; i++) {
                    out[i] = a[(i0 + i) * lda + p];
                }
                for (int64_t i = rows; i < mr; i++) {
                    out[i] = 0;
                }
            }
        }
        dst += kc * mr;
    }
}

/*
 * pack_b copies op(B)[0:kc, 0:nc] into ceil(nc / nr) micro-panels; in panel q,
 * element (p, j) (column q * nr + j of op(B)) sits at p * nr + j, zero past nc.
 *   dst  (ceil(nc / nr), kc, nr)
 */
static void SFX(pack_b)(real* dst, const real* b, int64_t ldb, int tb, int64_t kc, int64_t nc, int nr)
{
    for (int64_t j0 = 0; j0 < nc; j0 += nr) {
        const int64_t cols = MR_MIN(nr, nc - j0);
        if (tb) {
            /* op(B)[p, j] = b[j, p]: walk each source row along p. */
            for (int64_t j = 0; j < cols; j++) {
                const real* src = b + (j0 + j) * ldb;
                for (int64_t p = 0; p < kc; p++) {
                    dst[p * nr + j] = src[p];
                }
            }
            for (int64_t j = cols; j < nr; j++) {
                for (int64_t p = 0; p < kc; p++) {
                    dst[p * nr + j] = 0;
                }
            }
        } else {
            /* op(B)[p, j] = b[p, j]: each p gives `cols` contiguous values. */
            for (int64_t p = 0; p < kc; p++) {
                const real* src = b + p * ldb + j0;
                real* out = dst + p * nr;
                for (int64_t j = 0; j < cols; j++) {
                    out[j] = src[j];
                }
                for (int64_t j = cols; j < nr; j++) {
                    out[j] = 0;
                }
            }
        }
        dst += kc * nr;
    }
}

/*
 * The portable micro-kernel: plain C that any compiler vectorizes for its baseline
 * target (SSE2 on x86-64). The 4 x 8 accumulator tile lives in a local array that
 * the compiler keeps in registers; same contract as mr_microkernel_* in internal.h.
 */
enum { SFX(PORTABLE_MR) = 4, SFX(PORTABLE_NR) = 8 };

static void SFX(microkernel_portable)(int64_t k, const real* a, int64_t rsa, int64_t csa, const real* b,
                                      int64_t ldb, real* c, int64_t ldc, real alpha, real beta)
{
    enum { TILE_M = SFX(PORTABLE_MR), TILE_N = SFX(PORTABLE_NR) };
    real acc[TILE_M][TILE_N] = {{0}};
    for (int64_t p = 0; p < k; p++) {
        const real* b_row = b + p * ldb;
        for (int i = 0; i < TILE_M; i++) {
            const real a_ip = a[i * rsa + p * csa];
            for (int j = 0; j < TILE_N; j++) {
                acc[i][j] += a_ip * b_row[j];
            }
        }
    }
    for (int i = 0; i < TILE_M; i++) {
        real* c_row = c + i * ldc;
        for (int j = 0; j < TILE_N; j++) {
            c_row[j] = (beta == (real)0) ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c_row[j];
        }
    }
}

const SFX(mr_gemm_config) SFX(mr_gemm_portable) = {
    .kernel = SFX(microkernel_portable),
    .pack_a = SFX(pack_a),
    .pack_b = SFX(pack_b),
    .mr = SFX(PORTABLE_MR),
    .nr = SFX(PORTABLE_NR),
    .kc = 256,
    .mc = 128,
    .nc = 2048,
};

/*
 * Runs the micro-kernel on one tile of C of which only rows x cols are inside C:
 * the kernel writes a full mr x nr scratch tile, and the valid part is merged into C.
 */
static void SFX(edge_tile)(const SFX(mr_gemm_config)* cfg, int64_t k, const real* a, int64_t rsa, int64_t csa,
                           const real* b, int64_t ldb, real* c, int64_t ldc, int64_t rows, int64_t cols,
                           real alpha, real beta)
{
    real tile[MR_MAX_MR * MR_MAX_NR];
    cfg->kernel(k, a, rsa, csa, b, ldb, tile, cfg->nr, (real)1, (real)0);
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t j = 0; j < cols; j++) {
            real* cij = c + i * ldc + j;
            const real t = alpha * tile[i * cfg->nr + j];
            *cij = (beta == (real)0) ? t : t + beta * *cij;
        }
    }
}

/*
 * Loops 2 and 1 of rung 4 over packed buffers: every mr x nr tile of an mc x nc block
 * of C, each one micro-kernel call over kc.
 *   a_packed  (ceil(mc / mr), kc, mr)
 *   b_packed  (ceil(nc / nr), kc, nr)
 *   c         (mc, ldc)
 */
static void SFX(macro_kernel)(const SFX(mr_gemm_config)* cfg, int64_t mc, int64_t nc, int64_t kc,
                              const real* a_packed, const real* b_packed, real* c, int64_t ldc, real alpha,
                              real beta)
{
    const int mr = cfg->mr, nr = cfg->nr;
    for (int64_t jr = 0; jr < nc; jr += nr) {
        const int64_t cols = MR_MIN(nr, nc - jr);
        const real* b_panel = b_packed + jr * kc;
        for (int64_t ir = 0; ir < mc; ir += mr) {
            const int64_t rows = MR_MIN(mr, mc - ir);
            const real* a_panel = a_packed + ir * kc;
            real* c_tile = c + ir * ldc + jr;
            if (rows == mr && cols == nr) {
                cfg->kernel(kc, a_panel, 1, mr, b_panel, nr, c_tile, ldc, alpha, beta);
            } else {
                SFX(edge_tile)(cfg, kc, a_panel, 1, mr, b_panel, nr, c_tile, ldc, rows, cols, alpha, beta);
            }
        }
    }
}

/*
 * Rung 4, packed micro-panels and a register-blocked micro-kernel (the Goto/BLIS
 * scheme). Rung 3 still reloads each element of C for every p. Here the innermost
 * work is an mr x nr tile of C held in registers for the whole k loop, updated by
 * one rank-1 product per p: mr broadcasts of A times nr values of B, all fused
 * multiply-adds. To feed it at full speed, A and B are copied ("packed") into the
 * exact order the kernel reads them:
 *   loop 5  jc: columns of C in blocks of nc        (op(B) block kc x nc in L3)
 *   loop 4  pc: the K axis in blocks of kc          -> pack op(B)[pc, jc] once
 *   loop 3  ic: rows of C in blocks of mc           -> pack op(A)[ic, pc] (in L2)
 *   loop 2  jr: nr-wide micro-panel of B            (stays in L1)
 *   loop 1  ir: mr-high micro-panel of A            -> micro-kernel on C[ir, jr]
 * Packing costs O(MK + KN) copies and saves O(MNK) cache misses and strided loads.
 * It also zero-pads the edges, so the kernel only ever sees full tiles.
 * When all of M fits one block (M <= mc), loop 3 has one pass: A is packed first and
 * each B micro-panel is packed just before loop 1 uses it, so B goes from its source
 * to L1 without a round trip through a large buffer (the LSTM shapes, M = 32).
 */
static int SFX(gemm_packed)(real* c, int64_t ldc, const real* a, int64_t lda, const real* b, int64_t ldb,
                            int64_t M, int64_t N, int64_t K, int ta, int tb, real alpha, real beta,
                            const SFX(mr_gemm_config)* cfg)
{
    const int mr = cfg->mr, nr = cfg->nr;
    if (M == 0 || N == 0) {
        return MR_OK;
    }
    if (K == 0 || alpha == (real)0) {
        SFX(scale_c)(c, ldc, M, N, beta);
        return MR_OK;
    }

    /* Buffers sized for the largest blocks this call uses, reused across calls. */
    const int one_row_block = M <= cfg->mc;
    const int64_t kc_max = MR_MIN(cfg->kc, K);
    const int64_t mc_max = MR_MIN(cfg->mc, MR_ROUND_UP(M, mr));
    const int64_t nc_max = one_row_block ? nr : MR_MIN(cfg->nc, MR_ROUND_UP(N, nr));
    real* a_packed = (real*)mr_scratch(0, (size_t)(MR_ROUND_UP(mc_max, mr) * kc_max) * sizeof(real));
    real* b_packed = (real*)mr_scratch(1, (size_t)(MR_ROUND_UP(nc_max, nr) * kc_max) * sizeof(real));
    if (a_packed == NULL || b_packed == NULL) {
        return MR_ERR_OUT_OF_MEMORY;
    }

    for (int64_t jc = 0; jc < N; jc += cfg->nc) {
        const int64_t nc = MR_MIN(cfg->nc, N - jc);
        for (int64_t pc = 0; pc < K; pc += cfg->kc) {
            const int64_t kc = MR_MIN(cfg->kc, K - pc);
            /* The first K block applies the caller's beta; later ones add to it. */
            const real beta_block = (pc == 0) ? beta : (real)1;

            if (one_row_block) {
                cfg->pack_a(a_packed, SFX(sub_a)(a, lda, ta, 0, pc), lda, ta, M, kc, mr);
                for (int64_t jr = 0; jr < nc; jr += nr) {
                    const int64_t cols = MR_MIN(nr, nc - jr);
                    cfg->pack_b(b_packed, SFX(sub_b)(b, ldb, tb, pc, jc + jr), ldb, tb, kc, cols, nr);
                    SFX(macro_kernel)(cfg, M, cols, kc, a_packed, b_packed, c + jc + jr, ldc, alpha, beta_block);
                }
                continue;
            }

            cfg->pack_b(b_packed, SFX(sub_b)(b, ldb, tb, pc, jc), ldb, tb, kc, nc, nr);
            for (int64_t ic = 0; ic < M; ic += cfg->mc) {
                const int64_t mc = MR_MIN(cfg->mc, M - ic);
                cfg->pack_a(a_packed, SFX(sub_a)(a, lda, ta, ic, pc), lda, ta, mc, kc, mr);
                SFX(macro_kernel)(cfg, mc, nc, kc, a_packed, b_packed, c + ic * ldc + jc, ldc, alpha, beta_block);
            }
        }
    }
    return MR_OK;
}

/*
 * Rung 6, small matrices: when few column panels reuse each row of A (small N) or
 * the whole product is small, packing A costs about as much as the arithmetic it
 * speeds up. This path hands the micro-kernel A where it is, through its strides:
 * either transpose works, since the kernel broadcasts one element of A at a time.
 * B is packed whole (K x N values, cheap next to the M x N x K work they feed) unless
 * its rows are contiguous and either at most two row tiles read it or it spans at
 * most 16 KiB: then it is read in place. Ragged right and bottom edges are always packed, so the kernel never reads
 * past the end of an operand. There is no K blocking: callers keep K moderate.
 */
static int SFX(gemm_small)(real* c, int64_t ldc, const real* a, int64_t lda, const real* b, int64_t ldb,
                           int64_t M, int64_t N, int64_t K, int ta, int tb, real alpha, real beta,
                           const SFX(mr_gemm_config)* cfg)
{
    const int mr = cfg->mr, nr = cfg->nr;
    if (M == 0 || N == 0) {
        return MR_OK;
    }
    if (K == 0 || alpha == (real)0) {
        SFX(scale_c)(c, ldc, M, N, beta);
        return MR_OK;
    }

    /* Strides of A(i, p) for the kernel: op(A)[i, p] = a[i * rsa + p * csa]. */
    const int64_t rsa = ta ? 1 : lda, csa = ta ? lda : 1;
    const int64_t m_full = (M / mr) * mr, n_full = (N / nr) * nr;
    /* In place when few row tiles read B or all of B spans at most 16 KiB (half an L1,
     * so its rows cannot evict each other whatever ldb is). */
    const int b_in_place = !tb && (M <= 2 * mr || K * ldb * (int64_t)sizeof(real) <= 16384);
    real* a_edge = (real*)mr_scratch(0, (size_t)(mr * K) * sizeof(real));
    real* b_buffer = (real*)mr_scratch(1, (size_t)(MR_ROUND_UP(N, nr) * K) * sizeof(real));
    if (a_edge == NULL || b_buffer == NULL) {
        return MR_ERR_OUT_OF_MEMORY;
    }
    if (!b_in_place) {
        cfg->pack_b(b_buffer, b, ldb, tb, K, N, nr);
    } else if (n_full < N) {
        cfg->pack_b(b_buffer, b + n_full, ldb, tb, K, N - n_full, nr);
    }

    for (int64_t j0 = 0; j0 < N; j0 += nr) {
        const int64_t cols = MR_MIN(nr, N - j0);
        /* This column panel of B as (pointer, row stride). */
        const real* b_panel = b_buffer + j0 * K;
        int64_t b_panel_ld = nr;
        if (b_in_place) {
            b_panel = (j0 < n_full) ? b + j0 : b_buffer;
            b_panel_ld = (j0 < n_full) ? ldb : nr;
        }
        for (int64_t i0 = 0; i0 < m_full; i0 += mr) {
            real* c_tile = c + i0 * ldc + j0;
            const real* a_rows = SFX(sub_a)(a, lda, ta, i0, 0);
            if (cols == nr) {
                cfg->kernel(K, a_rows, rsa, csa, b_panel, b_panel_ld, c_tile, ldc, alpha, beta);
            } else {
                SFX(edge_tile)(cfg, K, a_rows, rsa, csa, b_panel, b_panel_ld, c_tile, ldc, mr, cols, alpha, beta);
            }
        }
        if (m_full < M) {
            /* The last M % mr rows: packed once per call, on the first column panel. */
            if (j0 == 0) {
                cfg->pack_a(a_edge, SFX(sub_a)(a, lda, ta, m_full, 0), lda, ta, M - m_full, K, mr);
            }
            SFX(edge_tile)(cfg, K, a_edge, 1, mr, b_panel, b_panel_ld, c + m_full * ldc + j0, ldc, M - m_full,
                           cols, alpha, beta);
        }
    }
    return MR_OK;
}

/* True when the small path (A unpacked) beats rung 4 for this shape on one thread:
 * a small product, a narrow B (at most 4 column panels, so packed A would be reused
 * at most 4 times), or at most two row tiles. K is bounded because the small path
 * has no K blocking. Thresholds measured with benchmarks/bench_kernels.py. */
static int SFX(prefers_small)(int64_t M, int64_t N, int64_t K, const SFX(mr_gemm_config)* cfg)
{
    if (K > 512) {
        return 0;
    }
    return M * N * K <= (int64_t)64 * 64 * 64 || N <= 4 * (int64_t)cfg->nr || M <= 2 * (int64_t)cfg->mr;
}

/* One matrix on the calling thread with the best single-threaded rung. */
static int SFX(gemm_one)(real* c, int64_t ldc, const real* a, int64_t lda, const real* b, int64_t ldb,
                         int64_t M, int64_t N, int64_t K, int ta, int tb, real alpha, real beta, int variant,
                         const SFX(mr_gemm_config)* cfg)
{
    switch (variant) {
    case MR_GEMM_NAIVE:
        SFX(gemm_naive)(c, ldc, a, lda, b, ldb, M, N, K, ta, tb, alpha, beta);
        return MR_OK;
    case MR_GEMM_LOOP_ORDER:
        SFX(gemm_loop_order)(c, ldc, a, lda, b, ldb, M, N, K, ta, tb, alpha, beta);
        return MR_OK;
    case MR_GEMM_BLOCKED:
        SFX(gemm_blocked)(c, ldc, a, lda, b, ldb, M, N, K, ta, tb, alpha, beta);
        return MR_OK;
    case MR_GEMM_SMALL:
        return SFX(gemm_small)(c, ldc, a, lda, b, ldb, M, N, K, ta, tb, alpha, beta, cfg);
    case MR_GEMM_PACKED:
    case MR_GEMM_THREADED:
        return SFX(gemm_packed)(c, ldc, a, lda, b, ldb, M, N, K, ta, tb, alpha, beta, cfg);
    default: /* MR_GEMM_AUTO */
        if (SFX(prefers_small)(M, N, K, cfg)) {
            return SFX(gemm_small)(c, ldc, a, lda, b, ldb, M, N, K, ta, tb, alpha, beta, cfg);
        }
        return SFX(gemm_packed)(c, ldc, a, lda, b, ldb, M, N, K, ta, tb, alpha, beta, cfg);
    }
}

/* Offset of matrix `index` of a two-level batch in one operand. The batch is walked
 * row-major over (BT0, BT1), so index = i * BT1 + j starts at i * stride0 + j * stride1. */
static inline int64_t SFX(batch_offset)(int64_t index, int64_t BT1, int64_t stride0, int64_t stride1)
{
    return (index / BT1) * stride0 + (index % BT1) * stride1;
}

/*
 * Rung 5, threads: the batch and the matrices are cut into independent work items,
 * each a block of C that one thread computes with the single-threaded rung above,
 * using its own packing buffers, so no thread waits for another inside the call.
 * Threads take the next free item when they finish one (dynamic scheduling).
 * Within a matrix the cut runs along the longer side of C, on micro-tile
 * boundaries: splitting N shares A (read by every thread from the shared L3), and
 * splitting M shares B. The number of pieces per matrix is chosen so the item count
 * is a multiple of the thread count. One OpenMP parallel region per call, for all
 * BT0 * BT1 matrices of a two-level batch.
 */
static int SFX(gemm_threaded)(real* c, int64_t ldc, int64_t stride_c0, int64_t stride_c1, const real* a,
                              int64_t lda, int64_t stride_a0, int64_t stride_a1, const real* b, int64_t ldb,
                              int64_t stride_b0, int64_t stride_b1, int64_t BT0, int64_t BT1, int64_t M, int64_t N,
                              int64_t K, int ta, int tb, real alpha, real beta, int variant, int threads,
                              const SFX(mr_gemm_config)* cfg)
{
    /* Pieces per matrix: threads / gcd(BT, threads), so BT * pieces divides evenly. */
    const int64_t BT = BT0 * BT1;
    int64_t g = threads, r = BT;
    while (r != 0) {
        const int64_t t = g % r;
        g = r;
        r = t;
    }
    const int64_t pieces = threads / g;
    const int split_n = N >= M;
    const int64_t tile = split_n ? cfg->nr : cfg->mr;
    const int64_t extent = split_n ? N : M;
    const int64_t chunk = MR_ROUND_UP((extent + pieces - 1) / pieces, tile);
    const int64_t items = BT * pieces;
    /* Inside a piece, threads always run a single-threaded rung. */
    const int inner = (variant == MR_GEMM_THREADED) ? MR_GEMM_PACKED : variant;
    int status = MR_OK;

#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        int my_status = MR_OK;
        /* Items are handed out one at a time, so a thread that the OS preempts (a busy
         * machine) does not hold back the others until it catches up. */
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t item = 0; item < items; item++) {
            const int64_t bt = item / pieces, piece = item % pieces;
            const int64_t start = piece * chunk;
            if (start >= extent) {
                continue;
            }
            const int64_t len = MR_MIN(chunk, extent - start);
            real* c_b = c + SFX(batch_offset)(bt, BT1, stride_c0, stride_c1);
            const real* a_b = a + SFX(batch_offset)(bt, BT1, stride_a0, stride_a1);
            const real* b_b = b + SFX(batch_offset)(bt, BT1, stride_b0, stride_b1);
            int s;
            if (split_n) {
                s = SFX(gemm_one)(c_b + start, ldc, a_b, lda, SFX(sub_b)(b_b, ldb, tb, 0, start), ldb, M, len, K, ta,
                                  tb, alpha, beta, inner, cfg);
            } else {
                s = SFX(gemm_one)(c_b + start * ldc, ldc, SFX(sub_a)(a_b, lda, ta, start, 0), lda, b_b, ldb, len, N,
                                  K, ta, tb, alpha, beta, inner, cfg);
            }
            if (s != MR_OK) {
                my_status = s;
            }
        }
        if (my_status != MR_OK) {
#ifdef _OPENMP
#pragma omp critical(mr_gemm_status)
#endif
            status = my_status;
        }
    }
    return status;
}

/* Flops below which a thread team costs more than it saves: waking the workers takes
 * microseconds, about the time of a 128^3 product on one core. */
#define MR_GEMM_THREAD_MIN_FLOPS (2.0 * 128 * 128 * 128)

/* Thread count for a call of `flops` on `variant`: only the threaded and auto variants
 * use more than one, and auto only when the whole call has enough work. */
static int SFX(gemm_threads)(int variant, double flops)
{
    if (variant == MR_GEMM_THREADED || (variant == MR_GEMM_AUTO && flops >= MR_GEMM_THREAD_MIN_FLOPS)) {
        return mr_max_threads();
    }
    return 1;
}

int SFX(mr_gemm_batched2)(real* c, int64_t ldc, int64_t stride_c0, int64_t stride_c1, const real* a, int64_t lda,
                          int64_t stride_a0, int64_t stride_a1, const real* b, int64_t ldb, int64_t stride_b0,
                          int64_t stride_b1, int64_t BT0, int64_t BT1, int64_t M, int64_t N, int64_t K, int trans_a,
                          int trans_b, real alpha, real beta, int variant)
{
    /* Phase 1: validate sizes, strides and leading dimensions. */
    if (BT0 < 0 || BT1 < 0 || M < 0 || N < 0 || K < 0) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    if (stride_a0 < 0 || stride_a1 < 0 || stride_b0 < 0 || stride_b1 < 0 || stride_c0 < 0 || stride_c1 < 0) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    if ((trans_a != 0 && trans_a != 1) || (trans_b != 0 && trans_b != 1)) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    if (variant < MR_GEMM_AUTO || variant > MR_GEMM_SMALL) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    if (ldc < MR_MAX(N, 1) || lda < MR_MAX(trans_a ? M : K, 1) || ldb < MR_MAX(trans_b ? K : N, 1)) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    if (BT0 == 0 || BT1 == 0 || M == 0 || N == 0) {
        return MR_OK;
    }
    const SFX(mr_gemm_config)* cfg = SFX(mr_gemm_config_get)();

    /* Phase 2: pick the thread count from the work of the whole call. */
    const double flops = 2.0 * (double)BT0 * (double)BT1 * (double)M * (double)N * (double)K;
    const int threads = SFX(gemm_threads)(variant, flops);

    /* Phase 3: run. */
    if (threads > 1) {
        return SFX(gemm_threaded)(c, ldc, stride_c0, stride_c1, a, lda, stride_a0, stride_a1, b, ldb, stride_b0,
                                  stride_b1, BT0, BT1, M, N, K, trans_a, trans_b, alpha, beta, variant, threads, cfg);
    }
    for (int64_t i = 0; i < BT0; i++) {
        for (int64_t j = 0; j < BT1; j++) {
            const int s = SFX(gemm_one)(c + i * stride_c0 + j * stride_c1, ldc, a + i * stride_a0 + j * stride_a1,
                                        lda, b + i * stride_b0 + j * stride_b1, ldb, M, N, K, trans_a, trans_b, alpha,
                                        beta, variant, cfg);
            if (s != MR_OK) {
                return s;
            }
        }
    }
    return MR_OK;
}

int SFX(mr_gemm_batched)(real* c, int64_t ldc, int64_t stride_c, const real* a, int64_t lda, int64_t stride_a,
                         const real* b, int64_t ldb, int64_t stride_b, int64_t BT, int64_t M, int64_t N, int64_t K,
                         int trans_a, int trans_b, real alpha, real beta, int variant)
{
    return SFX(mr_gemm_batched2)(c, ldc, 0, stride_c, a, lda, 0, stride_a, b, ldb, 0, stride_b, 1, BT, M, N, K,
                                 trans_a, trans_b, alpha, beta, variant);
}

int SFX(mr_gemm)(real* c, int64_t ldc, const real* a, int64_t lda, const real* b, int64_t ldb, int64_t M, int64_t N,
                 int64_t K, int trans_a, int trans_b, real alpha, real beta, int variant)
{
    return SFX(mr_gemm_batched)(c, ldc, 0, a, lda, 0, b, ldb, 0, 1, M, N, K, trans_a, trans_b, alpha, beta, variant);
}

/*
 * GEMM against a pre-packed op(B). A B that many calls share (an RNN's recurrent
 * weight over its time steps) is packed once into the micro-panels of rung 4, and each
 * call then packs only A. The packed buffer starts with an mr_packed_b_header (see
 * gemm.c), and the panels follow it. The K blocks of kc rows come one after the other.
 * Each block contains ceil(N / nr) panels of (kc, nr), zero-padded past N:
 *   panels  (ceil(K / kc), ceil(N / nr), kc, nr)    the last K block has K % kc rows
 */

/* Bytes of a packed (K, N) operand for the kernel set `cfg`: the header, then the panels. */
static int64_t SFX(packed_b_bytes)(int64_t K, int64_t N, const SFX(mr_gemm_config)* cfg)
{
    return MR_PACKED_B_HEADER_BYTES + MR_ROUND_UP(N, cfg->nr) * K * (int64_t)sizeof(real);
}

int SFX(mr_gemm_pack_b_bytes)(int64_t* bytes, int64_t K, int64_t N)
{
    if (bytes == NULL || K < 0 || N < 0) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    *bytes = SFX(packed_b_bytes)(K, N, SFX(mr_gemm_config_get)());
    return MR_OK;
}

int SFX(mr_gemm_pack_b)(void* packed, int64_t packed_bytes, const real* b, int64_t ldb, int64_t K, int64_t N,
                        int trans_b)
{
    const SFX(mr_gemm_config)* cfg = SFX(mr_gemm_config_get)();
    if (packed == NULL || (uintptr_t)packed % MR_PACKED_B_ALIGNMENT != 0 || K < 0 || N < 0) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    if ((trans_b != 0 && trans_b != 1) || ldb < MR_MAX(trans_b ? K : N, 1)) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    const int64_t bytes = SFX(packed_b_bytes)(K, N, cfg);
    if (packed_bytes < bytes) {
        return MR_ERR_INVALID_ARGUMENT;
    }

    const mr_packed_b_header header = {
        .magic = MR_PACKED_B_MAGIC, .item_size = (int64_t)sizeof(real), .K = K, .N = N,
        .kc = cfg->kc, .nr = cfg->nr, .bytes = bytes, .reserved = 0,
    };
    memcpy(packed, &header, sizeof(header));
    real* panels = (real*)((char*)packed + MR_PACKED_B_HEADER_BYTES);
    const int64_t width = MR_ROUND_UP(N, cfg->nr);
    for (int64_t pc = 0; pc < K && N > 0; pc += cfg->kc) {
        const int64_t kc = MR_MIN(cfg->kc, K - pc);
        cfg->pack_b(panels + pc * width, SFX(sub_b)(b, ldb, trans_b, pc, 0), ldb, trans_b, kc, N, cfg->nr);
    }
    return MR_OK;
}

/*
 * Computes columns [j0, j0 + cols) of C = alpha * op(A) @ B + beta * C on the calling
 * thread, with B pre-packed: loops 5 to 1 of rung 4, without packing B. j0 is a
 * multiple of nr.
 *   c       (M, ldc), columns j0 .. j0 + cols - 1 written
 *   panels  the packed B of a (K, N) operand
 */
static int SFX(gemm_prepacked_block)(real* c, int64_t ldc, const real* a, int64_t lda, int ta, const real* panels,
                                     int64_t M, int64_t N, int64_t K, int64_t j0, int64_t cols, real alpha,
                                     real beta, const SFX(mr_gemm_config)* cfg)
{
    const int mr = cfg->mr;
    const int64_t width = MR_ROUND_UP(N, cfg->nr);
    const int64_t kc_max = MR_MIN(cfg->kc, K);
    const int64_t mc_max = MR_MIN(cfg->mc, MR_ROUND_UP(M, mr));
    real* a_packed = (real*)mr_scratch(0, (size_t)(MR_ROUND_UP(mc_max, mr) * kc_max) * sizeof(real));
    if (a_packed == NULL) {
        return MR_ERR_OUT_OF_MEMORY;
    }

    for (int64_t jc = j0; jc < j0 + cols; jc += cfg->nc) {
        const int64_t nc = MR_MIN(cfg->nc, j0 + cols - jc);
        for (int64_t pc = 0; pc < K; pc += cfg->kc) {
            const int64_t kc = MR_MIN(cfg->kc, K - pc);
            const real beta_block = (pc == 0) ? beta : (real)1;
            /* Panel jc / nr of K block pc: the earlier blocks contain pc rows of `width`
             * columns, and each earlier panel of this block contains kc * nr values. */
            const real* b_block = panels + pc * width + jc * kc;
            for (int64_t ic = 0; ic < M; ic += cfg->mc) {
                const int64_t mc = MR_MIN(cfg->mc, M - ic);
                cfg->pack_a(a_packed, SFX(sub_a)(a, lda, ta, ic, pc), lda, ta, mc, kc, mr);
                SFX(macro_kernel)(cfg, mc, nc, kc, a_packed, b_block, c + ic * ldc + jc, ldc, alpha, beta_block);
            }
        }
    }
    return MR_OK;
}

/* The threaded form of gemm_prepacked_block over all of C: as rung 5, C is cut along its
 * longer side on micro-tile boundaries, one piece per thread. */
static int SFX(gemm_prepacked_threaded)(real* c, int64_t ldc, const real* a, int64_t lda, int ta,
                                        const real* panels, int64_t M, int64_t N, int64_t K, real alpha, real beta,
                                        int threads, const SFX(mr_gemm_config)* cfg)
{
    const int split_n = N >= M;
    const int64_t tile = split_n ? cfg->nr : cfg->mr;
    const int64_t extent = split_n ? N : M;
    const int64_t chunk = MR_ROUND_UP((extent + threads - 1) / threads, tile);
    int status = MR_OK;

#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
    {
        int my_status = MR_OK;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t piece = 0; piece < threads; piece++) {
            const int64_t start = piece * chunk;
            if (start >= extent) {
                continue;
            }
            const int64_t len = MR_MIN(chunk, extent - start);
            int s;
            if (split_n) {
                s = SFX(gemm_prepacked_block)(c, ldc, a, lda, ta, panels, M, N, K, start, len, alpha, beta, cfg);
            } else {
                s = SFX(gemm_prepacked_block)(c + start * ldc, ldc, SFX(sub_a)(a, lda, ta, start, 0), lda, ta,
                                              panels, len, N, K, 0, N, alpha, beta, cfg);
            }
            if (s != MR_OK) {
                my_status = s;
            }
        }
        if (my_status != MR_OK) {
#ifdef _OPENMP
#pragma omp critical(mr_gemm_status)
#endif
            status = my_status;
        }
    }
    return status;
}

int SFX(mr_gemm_prepacked)(real* c, int64_t ldc, const real* a, int64_t lda, const void* packed, int64_t M,
                           int trans_a, real alpha, real beta)
{
    /* Phase 1: validate the packed operand against the active kernel set, then the rest. */
    const SFX(mr_gemm_config)* cfg = SFX(mr_gemm_config_get)();
    if (packed == NULL || (uintptr_t)packed % MR_PACKED_B_ALIGNMENT != 0) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    mr_packed_b_header header;
    memcpy(&header, packed, sizeof(header));
    if (header.magic != MR_PACKED_B_MAGIC || header.item_size != (int64_t)sizeof(real) || header.K < 0 ||
        header.N < 0 || header.kc != cfg->kc || header.nr != cfg->nr ||
        header.bytes != SFX(packed_b_bytes)(header.K, header.N, cfg)) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    const int64_t K = header.K, N = header.N;
    if (M < 0 || (trans_a != 0 && trans_a != 1)) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    if (ldc < MR_MAX(N, 1) || lda < MR_MAX(trans_a ? M : K, 1)) {
        return MR_ERR_INVALID_ARGUMENT;
    }
    if (M == 0 || N == 0) {
        return MR_OK;
    }
    if (K == 0 || alpha == (real)0) {
        SFX(scale_c)(c, ldc, M, N, beta);
        return MR_OK;
    }

    /* Phase 2: run, on threads when the product has enough work (as the auto variant). */
    const real* panels = (const real*)((const char*)packed + MR_PACKED_B_HEADER_BYTES);
    const int threads = SFX(gemm_threads)(MR_GEMM_AUTO, 2.0 * (double)M * (double)N * (double)K);
    if (threads > 1) {
        return SFX(gemm_prepacked_threaded)(c, ldc, a, lda, trans_a, panels, M, N, K, alpha, beta, threads, cfg);
    }
    return SFX(gemm_prepacked_block)(c, ldc, a, lda, trans_a, panels, M, N, K, 0, N, alpha, beta, cfg);
}
