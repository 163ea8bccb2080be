/* Thread pool (see pool.h for the contract). One atomic word describes the current job:
 *   state = gen << 32 | CLOSED? | inside   (gen: the job's number; inside: workers running fn)
 *   caller: fn, arg = job; state = (gen + 1) << 32 (release); if any worker sleeps, broadcast
 *           under the mutex; run fn itself; set CLOSED; spin until inside == 0.
 *   worker: spin until gen differs from the last job it saw (for spin_ns), else sleep on the
 *           condition variable, checking gen under the mutex (the caller changes state before it
 *           takes the mutex, so a wake-up cannot be lost); enter with a compare-and-swap that
 *           fails once the job is closed or replaced (a late worker then skips that job); run
 *           fn; inside -= 1.
 * `stop` makes the workers leave their loop at the next job. */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define CLOSED ((uint64_t)1 << 31)
#define INSIDE_MASK (CLOSED - 1)
#define GEN(state) ((uint32_t)((state) >> 32))

struct pool {
  int n;
  long long spin_ns;
  pthread_t *threads;
  pthread_mutex_t mutex;
  pthread_cond_t wake;
  _Atomic uint64_t state;
  _Atomic int sleepers;
  _Atomic int stop;
  pool_fn fn;
  void *arg;
};

struct worker_start {
  pool *p;
  int index;
};

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Waits until the job number differs from `seen`: spins for spin_ns, then sleeps. Returns the
 * new number. */
static uint32_t wait_for_job(pool *p, uint32_t seen) {
  long long start = now_ns();
  for (unsigned spins = 1;; spins++) {
    uint32_t g = GEN(atomic_load_explicit(&p->state, memory_order_acquire));
    if (g != seen) return g;
    CPU_RELAX();
    if ((spins & 1023) == 0 && now_ns() - start > p->spin_ns) break;
  }
  pthread_mutex_lock(&p->mutex);
  atomic_fetch_add(&p->sleepers, 1);
  uint32_t g;
  while ((g = GEN(atomic_load_explicit(&p->state, memory_order_acquire))) == seen)
    pthread_cond_wait(&p->wake, &p->mutex);
  atomic_fetch_sub(&p->sleepers, 1);
  pthread_mutex_unlock(&p->mutex);
  return g;
}

/* Enters job `gen` if it is still open: returns whether the worker may run fn. */
static int enter(pool *p, uint32_t gen) {
  uint64_t s = atomic_load_explicit(&p->state, memory_order_acquire);
  while (GEN(s) == gen && (s & CLOSED) == 0) {
    if (atomic_compare_exchange_weak_explicit(&p->state, &s, s + 1, memory_order_acquire,
                                              memory_order_acquire))
      return 1;
  }
  return 0;
}

static void *worker_main(void *raw) {
  struct worker_start start = *(struct worker_start *)raw;
  free(raw);
  pool *p = start.p;
  uint32_t seen = 0;
  for (;;) {
    seen = wait_for_job(p, seen);
    if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
    if (!enter(p, seen)) continue;
    p->fn(p->arg, start.index, p->n);
    atomic_fetch_sub_explicit(&p->state, 1, memory_order_release);
  }
}

pool *pool_create(int nthreads, long long spin_ns) {
  if (nthreads < 1) nthreads = 1;
  pool *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  p->n = nthreads;
  p->spin_ns = spin_ns;
  pthread_mutex_init(&p->mutex, NULL);
  pthread_cond_init(&p->wake, NULL);
  p->threads = calloc((size_t)nthreads, sizeof *p->threads);
  if (p->threads == NULL) {
    free(p);
    return NULL;
  }
  for (int t = 1; t < nthreads; t++) {
    struct worker_start *s = malloc(sizeof *s);
    int started = 0;
    if (s != NULL) {
      s->p = p;
      s->index = t;
      started = pthread_create(&p->threads[t], NULL, worker_main, s) == 0;
    }
    if (!started) {
      free(s);
      p->n = t; /* pool_destroy stops the workers started so far */
      pool_destroy(p);
      return NULL;
    }
  }
  return p;
}

int pool_threads(const pool *p) { return p->n; }

/* Opens the next job (no worker inside) and wakes the sleepers. */
static void publish(pool *p) {
  uint32_t gen = GEN(atomic_load_explicit(&p->state, memory_order_relaxed)) + 1;
  atomic_store_explicit(&p->state, (uint64_t)gen << 32, memory_order_release);
  if (atomic_load(&p->sleepers) > 0) {
    pthread_mutex_lock(&p->mutex);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mutex);
  }
}

void pool_run(pool *p, pool_fn fn, void *arg) {
  if (p->n == 1) {
    fn(arg, 0, 1);
    return;
  }
  p->fn = fn;
  p->arg = arg;
  publish(p);
  fn(arg, 0, p->n);
  atomic_fetch_or_explicit(&p->state, CLOSED, memory_order_acq_rel);
  for (unsigned spins = 1;
       (atomic_load_explicit(&p->state, memory_order_acquire) & INSIDE_MASK) != 0; spins++) {
    CPU_RELAX();
    if ((spins & 4095) == 0) sched_yield(); /* a worker may be descheduled on a busy machine */
  }
}

void pool_destroy(pool *p) {
  if (p == NULL) return;
  atomic_store_explicit(&p->stop, 1, memory_order_release);
  publish(p);
  for (int t = 1; t < p->n; t++) pthread_join(p->threads[t], NULL);
  pthread_mutex_destroy(&p->mutex);
  pthread_cond_destroy(&p->wake);
  free(p->threads);
  free(p);
}
