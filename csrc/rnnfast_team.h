/*
 * rnnfast_team.h: what the threads of one OpenMP team need when they split a time loop by hidden units.
 *
 * With the batch split, each thread runs the whole time loop for its rows and never waits for another.
 * When W_hh is too big for one core's L2 cache, the threads split the hidden units instead: each keeps its
 * share of W_hh's columns in its own cache and computes them for every row. Step t + 1 then needs all of
 * h_t, so the team meets at a barrier once per step.
 *
 * An OpenMP barrier under OMP_WAIT_POLICY=PASSIVE (rnnfast's default, so that idle workers sleep) sleeps
 * in the kernel, a wake-up per step that costs more than a small step; this one spins on an atomic counter,
 * then yields the core
 * (sched_yield) if the other threads are slow, so a descheduled peer does not cost a whole time slice.
 *
 *   rf_barrier b;  rf_barrier_init(&b);          (once, before the parallel region)
 *   rf_barrier_wait(&b, team_size);              (every thread, every step)
 *
 * RF_HAVE_BARRIER is 0 where the atomics are not available (not GCC/Clang); callers then keep the batch
 * split.
 */
#ifndef RNNFAST_TEAM_H
#define RNNFAST_TEAM_H

#ifdef _OPENMP
#include <omp.h>
#endif

/* Size of the current team and this thread's number in it (1 and 0 outside a parallel region). */
static inline int rf_team_size(void) {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

static inline int rf_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

#if defined(__GNUC__) || defined(__clang__)
#define RF_HAVE_BARRIER 1
#include <sched.h>

typedef struct { int count; unsigned generation; } rf_barrier;   /* generation wraps harmlessly */

static inline void rf_barrier_init(rf_barrier *b) { b->count = 0; b->generation = 0; }

/* Wait until all n threads have arrived. Everything a thread wrote before it arrived is visible to every
 * thread after it leaves (release by the arrival that completes the count, acquire by the waiters). */
static inline void rf_barrier_wait(rf_barrier *b, int n) {
    unsigned gen = __atomic_load_n(&b->generation, __ATOMIC_ACQUIRE);
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == n) {
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);     /* nobody arrives again before gen moves */
        __atomic_store_n(&b->generation, gen + 1u, __ATOMIC_RELEASE);
        return;
    }
    for (int spins = 0; __atomic_load_n(&b->generation, __ATOMIC_ACQUIRE) == gen; ++spins) {
        if (spins < 4000) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            sched_yield();
        }
    }
}
#else
#define RF_HAVE_BARRIER 0
typedef struct { int count; } rf_barrier;
static inline void rf_barrier_init(rf_barrier *b) { b->count = 0; }
static inline void rf_barrier_wait(rf_barrier *b, int n) { (void)b; (void)n; }   /* never used: see above */
#endif

#endif
