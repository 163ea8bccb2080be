/* Thread pool contract: a fixed set of pthreads that run one job at a time together with the
 * calling thread. pool_run(pool, fn, arg) calls fn(arg, t, n) once on every thread t in 0..n-1
 * (t = 0 is the caller) and returns when all have returned. Between jobs a worker spins on the
 * job counter for a short while (a step of a training loop issues jobs back to back), then parks
 * on a condition variable so an idle engine costs no CPU. One pool_run at a time per pool. */
#ifndef LORAGA_POOL_H
#define LORAGA_POOL_H

typedef void (*pool_fn)(void *arg, int thread, int nthreads);
typedef struct pool pool;

/* Starts nthreads - 1 workers (nthreads >= 1); spin_ns: how long an idle worker spins before it
 * parks. Returns NULL when a thread cannot be started. */
pool *pool_create(int nthreads, long long spin_ns);
int pool_threads(const pool *p);
void pool_run(pool *p, pool_fn fn, void *arg);
/* Stops and joins the workers, frees the pool. */
void pool_destroy(pool *p);

#endif
