/*
 * The GEMM ladder, in float32 and float64: rungs naive, loop_order, blocked,
 * packed, threaded and small, written once in gemm_template.h and instantiated
 * here for each element type, plus the GEMM against a B packed ahead of time.
 * The AVX2/FMA micro-kernels live in gemm_avx2.c.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

#define MR_MIN(x, y) ((x) < (y) ? (x) : (y))
#define MR_MAX(x, y) ((x) > (y) ? (x) : (y))
#define MR_ROUND_UP(x, m) ((((x) + (m) - 1) / (m)) * (m))

/*
 * Header of a packed B (mr_gemm_pack_b_*): the facts a later mr_gemm_prepacked_* call
 * checks before it reads the panels, so a buffer packed for another dtype, shape or
 * kernel set (mr_force_portable switches the tile) is rejected instead of misread.
 */
typedef struct {
    int64_t magic;      /* MR_PACKED_B_MAGIC */
    int64_t item_size;  /* sizeof(float) or sizeof(double) */
    int64_t K, N;       /* op(B) is (K, N) */
    int64_t kc, nr;     /* the K block and the micro-panel width the panels were cut for */
    int64_t bytes;      /* header plus panels */
    int64_t reserved;
} mr_packed_b_header;

#define MR_PACKED_B_MAGIC ((int64_t)0x4d52504b44423031)  /* "MRPKDB01" */
#define MR_PACKED_B_HEADER_BYTES 64
#define MR_PACKED_B_ALIGNMENT 64

#define real float
#define SFX(name) name##_f32
#include "gemm_template.h"
#undef real
#undef SFX

#define real double
#define SFX(name) name##_f64
#include "gemm_template.h"
#undef real
#undef SFX
