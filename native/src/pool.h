/* Thread pool contract: a fixed set of pthreads that help the calling thread with one job at a
 * time. pool_run(pool, fn, arg) calls fn(arg, t, n) on the caller (t = 0) and on each worker t in
 * 1..n-1 that arrives while the job is open; the job closes when the caller's fn returns, and
 * pool_run returns once no worker is still inside fn. So fn must claim its work dynamically (a
 * worker may never run it: one that a busy machine has descheduled is not waited for), and every
 * piece of work is done by whichever thread claims it. Between jobs a worker spins on the job
 * counter for a short while (a step of a training loop issues jobs back to back), then parks on a
 * condition variable so an idle engine costs no CPU. One pool_run at a time per pool. */
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
