/*
 * Run-time pieces shared by every kernel: the choice between the AVX2 and the
 * portable kernels, the thread count, per-thread packing buffers, build facts and
 * the measured FMA peak.
 */
/* clock_gettime, CLOCK_THREAD_CPUTIME_ID and pthread keys are POSIX: request them,
 * since -std=c11 alone hides them. */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

/* ---- SIMD dispatch ------------------------------------------------------------ */

/* -1: not decided yet; 0: portable; 1: AVX2. Decided once, on the first call. */
static int g_use_avx2 = -1;
static int g_force_portable = 0;

static int cpu_has_avx2_fma(void)
{
#if defined(MR_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int mr_use_avx2(void)
{
    if (g_use_avx2 < 0) {
        g_use_avx2 = cpu_has_avx2_fma();
    }
    return g_use_avx2 && !g_force_portable;
}

void mr_force_portable(int force)
{
    g_force_portable = force != 0;
}

const mr_gemm_config_f32* mr_gemm_config_get_f32(void)
{
#ifdef MR_HAVE_AVX2
    if (mr_use_avx2()) {
        return &mr_gemm_avx2_f32;
    }
#endif
    return &mr_gemm_portable_f32;
}

const mr_gemm_config_f64* mr_gemm_config_get_f64(void)
{
#ifdef MR_HAVE_AVX2
    if (mr_use_avx2()) {
        return &mr_gemm_avx2_f64;
    }
#endif
    return &mr_gemm_portable_f64;
}

const mr_rowops_f32* mr_rowops_get_f32(void)
{
#ifdef MR_HAVE_AVX2
    if (mr_use_avx2()) {
        return &mr_rowops_avx2_f32;
    }
#endif
    return &mr_rowops_portable_f32;
}

const mr_rowops_f64* mr_rowops_get_f64(void)
{
#ifdef MR_HAVE_AVX2
    if (mr_use_avx2()) {
        return &mr_rowops_avx2_f64;
    }
#endif
    return &mr_rowops_portable_f64;
}

int mr_gemm_micro_tile(int is_f64, int* mr, int* nr)
{
    if (is_f64) {
        const mr_gemm_config_f64* cfg = mr_gemm_config_get_f64();
        *mr = cfg->mr;
        *nr = cfg->nr;
    } else {
        const mr_gemm_config_f32* cfg = mr_gemm_config_get_f32();
        *mr = cfg->mr;
        *nr = cfg->nr;
    }
    return MR_OK;
}

/* ---- threads ------------------------------------------------------------------ */

/* 0 means "every core"; set by mr_set_num_threads. */
static int g_num_threads = 0;

void mr_set_num_threads(int n)
{
    g_num_threads = n < 1 ? 0 : n;
}

int mr_max_threads(void)
{
#ifdef _OPENMP
    return g_num_threads > 0 ? g_num_threads : omp_get_num_procs();
#else
    return 1;
#endif
}

int mr_get_num_threads(void)
{
    return mr_max_threads();
}

/* Elements a thread should get at least before a row kernel is split: below this a
 * parallel region costs more (a few microseconds) than the work it shares. */
#define MR_ROW_ELEMENTS_PER_THREAD ((int64_t)1 << 15)

int mr_threads_for(int64_t work)
{
    const int64_t by_work = work / MR_ROW_ELEMENTS_PER_THREAD;
    const int64_t cap = mr_max_threads();
    if (by_work < 2) {
        return 1;
    }
    return (int)(by_work < cap ? by_work : cap);
}

/* ---- per-thread scratch ---------------------------------------------------------- */

/* Packing buffers grow to the largest request seen on the thread and stay for later
 * calls, so a training loop does not map fresh pages on every GEMM. They hang off a
 * pthread key whose destructor frees them when the thread exits, because OpenMP
 * retires worker threads when the team shrinks (mr_set_num_threads). */
typedef struct {
    void* buffer[2];
    size_t bytes[2];
} scratch_set;

static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;

static void scratch_destroy(void* pointer)
{
    scratch_set* set = (scratch_set*)pointer;
    free(set->buffer[0]);
    free(set->buffer[1]);
    free(set);
}

static void scratch_key_create(void)
{
    pthread_key_create(&g_scratch_key, scratch_destroy);
}

void* mr_scratch(int slot, size_t bytes)
{
    pthread_once(&g_scratch_once, scratch_key_create);
    scratch_set* set = (scratch_set*)pthread_getspecific(g_scratch_key);
    if (set == NULL) {
        set = (scratch_set*)calloc(1, sizeof(scratch_set));
        if (set == NULL || pthread_setspecific(g_scratch_key, set) != 0) {
            free(set);
            return NULL;
        }
    }
    if (bytes == 0) {
        bytes = 64;
    }
    if (set->bytes[slot] >= bytes) {
        return set->buffer[slot];
    }
    free(set->buffer[slot]);
    set->buffer[slot] = NULL;
    set->bytes[slot] = 0;
    /* aligned_alloc wants a size that is a multiple of the alignment. */
    const size_t rounded = (bytes + 63) & ~(size_t)63;
    void* p = aligned_alloc(64, rounded);
    if (p == NULL) {
        return NULL;
    }
    set->buffer[slot] = p;
    set->bytes[slot] = rounded;
    return p;
}

void mr_release_scratch(void)
{
    pthread_once(&g_scratch_once, scratch_key_create);
    scratch_set* set = (scratch_set*)pthread_getspecific(g_scratch_key);
    if (set != NULL) {
        pthread_setspecific(g_scratch_key, NULL);
        scratch_destroy(set);
    }
}

/* ---- build facts ------------------------------------------------------------------ */

#ifndef MR_BUILD_FLAGS
#define MR_BUILD_FLAGS "unknown"
#endif

const char* mr_build_compiler(void)
{
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "gcc " __VERSION__;
#else
    return "unknown";
#endif
}

const char* mr_build_flags(void)
{
    return MR_BUILD_FLAGS;
}

const char* mr_simd_level(void)
{
    return mr_use_avx2() ? "avx2+fma" : "portable";
}

int mr_simd_compiled(void)
{
#ifdef MR_HAVE_AVX2
    return 1;
#else
    return 0;
#endif
}

int mr_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

/* ---- FMA peak ------------------------------------------------------------------- */

/* CPU time of the calling thread: on a shared machine it counts only the time the
 * loop actually ran, so other processes do not lower the measured peak. */
static double thread_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Sink for the loop results, so the compiler keeps every measured loop. */
static volatile double g_fma_sink;

/* GFLOP/s of one thread running the FMA loop for about `seconds`: the best of 20 runs,
 * because on a virtual machine the thread's CPU clock also counts time the host gave
 * to others, and only the best run is free of that. */
static double fma_peak_one_thread(int is_f64, double seconds)
{
#ifdef MR_HAVE_AVX2
    const int lanes = is_f64 ? 4 : 8;
    const int runs = 20;
    int64_t iterations = 1 << 12;
    /* Grow the iteration count until one run takes its share of the budget. */
    for (;;) {
        const double t0 = thread_seconds();
        g_fma_sink = mr_fma_loop_avx2(is_f64, iterations);
        const double elapsed = thread_seconds() - t0;
        if (elapsed > seconds / runs || iterations > ((int64_t)1 << 40)) {
            break;
        }
        iterations *= 2;
    }
    double best = 0;
    for (int run = 0; run < runs; run++) {
        const double t0 = thread_seconds();
        g_fma_sink = mr_fma_loop_avx2(is_f64, iterations);
        const double elapsed = thread_seconds() - t0;
        const double gflops = 2.0 * 12 * lanes * (double)iterations / elapsed * 1e-9;
        if (gflops > best) {
            best = gflops;
        }
    }
    return best;
#else
    (void)is_f64;
    (void)seconds;
    return 0;
#endif
}

double mr_measure_fma_peak(int is_f64, int threads, double seconds)
{
    if (!mr_use_avx2() || threads < 1) {
        return 0;
    }
    double total = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+ : total)
    total += fma_peak_one_thread(is_f64, seconds);
#else
    (void)threads;
    total = fma_peak_one_thread(is_f64, seconds);
#endif
    return total;
}
