/* SGEMM driver (contract in gemm.h): BLIS-style loops around a register-tile micro-kernel.
 *   task   = (batch entry, block of rows, block of columns) of C, computed by one thread from
 *            start to end. Thread t owns a fixed, contiguous range of tasks (the same rows of C
 *            in every call of a shape) and claims from it first, then from the other ranges, so
 *            a thread that never arrives (pool.h) leaves its tasks to the others.
 *   jc loop: nc columns of C;  pc loop (per term): kc steps of the inner dim, packing
 *            op(B)[pc.., jc..] (kc x nc) into NR-wide panels;  ic loop: mc rows, packing
 *            alpha * op(A)[ic.., pc..] (mc x kc) into MR-tall panels;  then MR x NR tiles.
 * Block sizes come from the cache sizes (sysconf) with fallbacks; they and the task grid depend
 * only on the shape, so each element of C sees the same operations whatever the thread count.
 * Partial tiles (edges, or a C whose columns are not contiguous) go through a local MR x NR
 * buffer. Outputs at most NARROW_N columns wide with contiguous rows of op(A) take the
 * dot-product path of narrow.c instead, and other products with K at most SMALL_K the unpacked
 * path of smallk.c (both in tasks of whole rows). Otherwise a call whose padded tile
 * area is smaller when computed transposed (C^T = op(B)^T op(A)^T: narrow outputs, N < NR) is
 * turned around first. A term with a bf16 B (gemm_term.b16) packs both of its operands with
 * bf16.c's routines, in K blocks twice as long, and runs bf16.c's twin of the call's tile; calls
 * with such a term take neither the dot-product nor the small-K path, nor the turn. */
#include "gemm.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_MR 24
#define MAX_NR 32
/* Products below this many FLOPs run on the calling thread alone: waking a parked worker costs
 * about as much as it would save. */
#define SMALL_FLOPS (4.0 * 1024 * 1024)
/* Tasks per thread of a parallel call (plan_tasks). */
#ifndef TASKS_PER_THREAD
#define TASKS_PER_THREAD 2
#endif

/* One thread's home range of tasks [next, end) (claim_task), a cache line each so that claims by
 * different threads do not contend for one line. */
typedef struct {
  _Alignas(64) _Atomic long next;
  long end;
} task_range;

struct gemm_engine {
  ukernel kernel;
  blocking blk; /* of the call being run (it depends on the tile) */
  pool *pool;
  int threads;
  float **pack_a; /* per thread: (mc x kc) in MR-row panels */
  float **pack_b; /* per thread: (kc x nc) in NR-column panels, or op(B)^T for narrow outputs */
  long pack_b_floats;
  /* the job of the call being run: its product, tile, task grid and which operands are read in
   * place (direct) instead of packed */
  const gemm_call *call;
  tile_kernel tile;
  int tile_index; /* of tile in kernel.tiles (its bf16 twin: bf16.tile[tile_index]) */
  int narrow; /* the dot-product path of narrow.c, tasks of rows_per_task rows */
  int smallk; /* the small-K path of smallk.c, tasks of rows_per_task rows */
  long *staged; /* per thread: the batch entry whose op(B) its pack_b holds (small K), or -1 */
  int a_per_tile, direct_a, direct_b;
  long tasks, row_blocks, col_blocks, rows_per_task, cols_per_task;
  int parallel; /* whether the pool's workers take part */
  task_range *ranges; /* per thread: its home range of tasks and the next one to claim */
  bf16_kernels bf16;
  int has_bf16;
};

static long clampl(long v, long lo, long hi) { return v < lo ? lo : v > hi ? hi : v; }
static long minl(long a, long b) { return a < b ? a : b; }
static long round_down(long v, long unit) { return v / unit * unit; }
static long ceil_div(long a, long b) { return (a + b - 1) / b; }

static long cache_bytes(int name, long fallback) {
  long v = sysconf(name);
  return v > 0 ? v : fallback;
}

/* Cache blocks for a tile. kc: its MR-tall panel of A (MR x kc) fills half of L1 (a long kc spreads the
 * tile's load and store of C over more FMAs; see docs/engine-notes.md); mc: the packed A block
 * (mc x kc) about half of L2; nc: the packed B block (kc x nc) a slice of L3, bounded because some
 * virtual machines report the whole socket's L3 (or none). */
static blocking choose_blocking(const tile_kernel *t) {
  long l1 = clampl(cache_bytes(_SC_LEVEL1_DCACHE_SIZE, 32768), 16384, 131072);
  long l2 = clampl(cache_bytes(_SC_LEVEL2_CACHE_SIZE, 524288), 131072, 4194304);
  long l3 = clampl(cache_bytes(_SC_LEVEL3_CACHE_SIZE, 8388608), 1048576, 33554432);
  blocking b;
  b.kc = clampl(round_down(l1 / 2 / (4 * t->mr), 8), 64, 512);
  b.mc = clampl(round_down(l2 / 2 / (4 * b.kc), t->mr), t->mr, 4096);
  b.nc = clampl(round_down(l3 / 4 / (4 * b.kc), t->nr), t->nr, 8192);
  return b;
}

gemm_engine *gemm_engine_create(const ukernel *kernel, int threads, long long spin_ns) {
  gemm_engine *e = calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  e->kernel = *kernel;
  e->has_bf16 = bf16_kernels_for(kernel, &e->bf16);
  e->threads = threads < 1 ? 1 : threads;
  e->pack_a = calloc((size_t)e->threads, sizeof(float *));
  e->pack_b = calloc((size_t)e->threads, sizeof(float *));
  e->ranges = aligned_alloc(64, (size_t)e->threads * sizeof(task_range));
  e->staged = calloc((size_t)e->threads, sizeof(long));
  int ok = e->pack_a != NULL && e->pack_b != NULL && e->ranges != NULL && e->staged != NULL;
  size_t a_bytes = 0, b_bytes = 0; /* the largest blocks of any tile */
  for (int i = 0; i < kernel->ntiles; i++) {
    blocking b = choose_blocking(&kernel->tiles[i]);
    size_t a = (size_t)(b.mc + MAX_MR) * (size_t)b.kc * sizeof(float);
    size_t bb = (size_t)(b.nc + MAX_NR) * (size_t)b.kc * sizeof(float);
    a_bytes = a > a_bytes ? a : a_bytes;
    b_bytes = bb > b_bytes ? bb : b_bytes;
  }
  e->pack_b_floats = (long)(b_bytes / sizeof(float));
  for (int t = 0; ok && t < e->threads; t++) {
    e->pack_a[t] = aligned_alloc(64, (a_bytes + 63) / 64 * 64);
    e->pack_b[t] = aligned_alloc(64, (b_bytes + 63) / 64 * 64);
    ok = e->pack_a[t] != NULL && e->pack_b[t] != NULL;
  }
  if (ok) e->pool = pool_create(e->threads, spin_ns);
  if (!ok || e->pool == NULL) {
    gemm_engine_destroy(e);
    return NULL;
  }
  return e;
}

void gemm_engine_destroy(gemm_engine *e) {
  if (e == NULL) return;
  pool_destroy(e->pool);
  for (int t = 0; t < e->threads; t++) {
    if (e->pack_a != NULL) free(e->pack_a[t]);
    if (e->pack_b != NULL) free(e->pack_b[t]);
  }
  free(e->pack_a);
  free(e->pack_b);
  free(e->ranges);
  free(e->staged);
  free(e);
}

const ukernel *gemm_engine_kernel(const gemm_engine *e) { return &e->kernel; }
blocking gemm_engine_blocking(const gemm_engine *e) {
  return choose_blocking(&e->kernel.tiles[0]);
}
int gemm_engine_threads(const gemm_engine *e) { return e->threads; }
int gemm_engine_has_bf16(const gemm_engine *e) { return e->has_bf16; }

/* ---- packing ------------------------------------------------------------------------------- */

/* dst (ceil(mc/MR) panels of kc x MR) = alpha * op(A)[i0 + i, p0 + p]; rows past mc are 0.
 * Rows contiguous in p take the kernel's transposing copy when it has one. */
static void pack_a(float *dst, const gemm_term *t, const float *a, long i0, long mc, long p0,
                   long kc, int mr, transpose_fn tr) {
  for (long ip = 0; ip < mc; ip += mr) {
    long rows = mc - ip < mr ? mc - ip : mr;
    const float *src = a + (i0 + ip) * t->rs_a + p0 * t->cs_a;
    if (t->cs_a == 1 && tr != NULL) {
      tr(dst, mr, mr, src, t->rs_a, rows, kc, t->alpha);
      dst += kc * mr;
      continue;
    }
    if (t->cs_a == 1) { /* rows contiguous in p: read each row, write with stride MR */
      for (long r = 0; r < rows; r++)
        for (long p = 0; p < kc; p++) dst[p * mr + r] = t->alpha * src[r * t->rs_a + p];
    } else {
      for (long p = 0; p < kc; p++)
        for (long r = 0; r < rows; r++)
          dst[p * mr + r] = t->alpha * src[r * t->rs_a + p * t->cs_a];
    }
    for (long r = rows; r < mr; r++)
      for (long p = 0; p < kc; p++) dst[p * mr + r] = 0.0f;
    dst += kc * mr;
  }
}

/* dst (ceil(nc/NR) panels of kc x NR) = op(B)[p0 + p, j0 + j]; columns past nc are 0. Columns
 * contiguous in p (op(B) = B^T) take the kernel's transposing copy when it has one. */
static void pack_b(float *dst, const gemm_term *t, const float *b, long p0, long kc, long j0,
                   long nc, int nr, transpose_fn tr) {
  for (long jp = 0; jp < nc; jp += nr) {
    long cols = nc - jp < nr ? nc - jp : nr;
    const float *src = b + p0 * t->rs_b + (j0 + jp) * t->cs_b;
    if (t->cs_b == 1) {
      for (long p = 0; p < kc; p++) {
        memcpy(dst + p * nr, src + p * t->rs_b, (size_t)cols * sizeof(float));
        for (long j = cols; j < nr; j++) dst[p * nr + j] = 0.0f;
      }
    } else if (t->rs_b == 1 && tr != NULL) {
      tr(dst, nr, nr, src, t->cs_b, cols, kc, 1.0f);
    } else {
      for (long j = 0; j < cols; j++)
        for (long p = 0; p < kc; p++) dst[p * nr + j] = src[p * t->rs_b + j * t->cs_b];
      for (long j = cols; j < nr; j++)
        for (long p = 0; p < kc; p++) dst[p * nr + j] = 0.0f;
    }
    dst += kc * nr;
  }
}

/* ---- causal structure ---------------------------------------------------------------------- */

/* Largest and smallest i mod period over rows [i0, i1). */
static long max_q(long i0, long i1, long period) {
  return i0 / period == (i1 - 1) / period ? (i1 - 1) % period : period - 1;
}
static long min_q(long i0, long i1, long period) {
  return i0 / period == (i1 - 1) / period ? i0 % period : 0;
}

/* The steps [*from, *to) of the K block [p0, p0 + kc) that tile rows [i0, i1) need: LOWER_A
 * needs p <= i mod period (K == period), UPPER_A needs p mod period >= i mod period (computed
 * only when the block lies within one period; else the whole block, whose extra terms are 0). */
static void causal_k_range(const gemm_call *call, long i0, long i1, long p0, long kc, long *from,
                           long *to) {
  *from = 0;
  *to = kc;
  if (call->causal == CAUSAL_LOWER_A) {
    long end = max_q(i0, i1, call->period) + 1 - p0;
    *to = clampl(end, 0, kc);
  } else if (call->causal == CAUSAL_UPPER_A) {
    long seg = p0 / call->period;
    if (seg == (p0 + kc - 1) / call->period) {
      long start = seg * call->period + min_q(i0, i1, call->period) - p0;
      *from = clampl(start, 0, kc);
    }
  }
}

/* ---- one task ------------------------------------------------------------------------------ */

/* The K block [p0, p0 + kc) of one term: A rows i0.. and B columns j0... A is packed in pa (the
 * block's MR-tall panels; with a_per_tile one tile's panel at a time, and with direct_a too only
 * partial tiles, full ones read in place); B is packed in pb (its NR-wide panels; with direct_b
 * only the last partial one, the others read in place). */
typedef struct {
  const gemm_term *t;
  const float *a, *b; /* this batch entry's operands */
  long i0, mc, j0, nc, p0, kc;
  float *pa, *pb;
  long ks; /* floats (or bf16 pairs) per K step of a packed panel's row: kc, or ceil(kc / 2) */
} k_block;

/* Packs the A rows [i0, i0 + mc) of a K block into pa, f32 or bf16 pairs by the term's kind. */
static void pack_a_block(const gemm_engine *e, float *pa, const gemm_term *t, const float *a,
                         long i0, long mc, long p0, long kc) {
  if (t->b16 != NULL)
    e->bf16.pack_a((uint32_t *)pa, t, a, i0, mc, p0, kc, e->tile.mr, e->kernel.transpose);
  else
    pack_a(pa, t, a, i0, mc, p0, kc, e->tile.mr, e->kernel.transpose);
}

/* ct (rows x cols, C's strides) = or += tile (rows NR apart). */
static void store_partial(const gemm_call *call, float *ct, const float *tile, long rows,
                          long cols, int nr, int accumulate) {
  for (long r = 0; r < rows; r++)
    for (long j = 0; j < cols; j++) {
      float *o = ct + r * call->rs_c + j * call->cs_c;
      *o = accumulate ? *o + tile[r * nr + j] : tile[r * nr + j];
    }
}

/* One MR x NR tile of C (+)= its part of the K block; a_panel: the tile's packed A panel (unused
 * when the tile reads A in place). */
static void compute_tile(const gemm_engine *e, const gemm_call *call, float *c, const k_block *kb,
                         long ir, long jr, const float *a_panel, int accumulate) {
  const int mr = e->tile.mr, nr = e->tile.nr;
  long rows = kb->mc - ir < mr ? kb->mc - ir : mr;
  long cols = kb->nc - jr < nr ? kb->nc - jr : nr;
  long gi = kb->i0 + ir, gj = kb->j0 + jr;
  if (call->causal == CAUSAL_MASK_OUT && gj > max_q(gi, gi + rows, call->period))
    return; /* every element of this tile is masked; the mask pass writes its zeros */
  long from = 0, to = kb->kc;
  if (call->causal != CAUSAL_NONE) causal_k_range(call, gi, gi + rows, kb->p0, kb->kc, &from, &to);
  if (from >= to) return;
  float *ct = c + gi * call->rs_c + gj * call->cs_c;
  if (kb->t->b16 != NULL) { /* bf16: both operands packed, no causal kind */
    const uint32_t *ap = (const uint32_t *)a_panel, *bp = (const uint32_t *)kb->pb + jr * kb->ks;
    bf16_tile_fn fn = e->bf16.tile[e->tile_index];
    if (rows == mr && cols == nr && call->cs_c == 1) {
      fn(kb->ks, ap, bp, ct, call->rs_c, accumulate);
    } else {
      float tile[MAX_MR * MAX_NR];
      fn(kb->ks, ap, bp, tile, nr, 0);
      store_partial(call, ct, tile, rows, cols, nr, accumulate);
    }
    return;
  }
  const float *a = a_panel + from * mr;
  long a_rs = 1, a_ps = mr;
  if (e->direct_a && rows == mr) {
    a = kb->a + gi * kb->t->rs_a + (kb->p0 + from) * kb->t->cs_a;
    a_rs = kb->t->rs_a;
    a_ps = kb->t->cs_a;
  }
  const float *b;
  long b_ps;
  if (e->direct_b && cols == nr) {
    b = kb->b + (kb->p0 + from) * kb->t->rs_b + gj;
    b_ps = kb->t->rs_b;
  } else {
    b = kb->pb + (e->direct_b ? 0 : jr * kb->kc) + from * nr;
    b_ps = nr;
  }
  if (rows == mr && cols == nr && call->cs_c == 1) {
    e->tile.fn(to - from, a, a_rs, a_ps, b, b_ps, ct, call->rs_c, accumulate);
  } else {
    float tile[MAX_MR * MAX_NR];
    e->tile.fn(to - from, a, a_rs, a_ps, b, b_ps, tile, nr, 0);
    store_partial(call, ct, tile, rows, cols, nr, accumulate);
  }
}

/* C[i0.., j0..] (mc x nc block) (+)= the K block's product. Packed A: B panels outside, so each
 * stays in L1 while every A panel passes it. a_per_tile: A tiles outside, each packed once just
 * before the few B panels it meets. */
static void macro_kernel(const gemm_engine *e, const gemm_call *call, float *c, const k_block *kb,
                         int accumulate) {
  const int mr = e->tile.mr, nr = e->tile.nr;
  if (e->a_per_tile) {
    for (long ir = 0; ir < kb->mc; ir += mr) {
      long rows = kb->mc - ir < mr ? kb->mc - ir : mr;
      if (!e->direct_a || rows < mr)
        pack_a_block(e, kb->pa, kb->t, kb->a, kb->i0 + ir, rows, kb->p0, kb->kc);
      for (long jr = 0; jr < kb->nc; jr += nr) compute_tile(e, call, c, kb, ir, jr, kb->pa, accumulate);
    }
  } else {
    for (long jr = 0; jr < kb->nc; jr += nr)
      for (long ir = 0; ir < kb->mc; ir += mr)
        compute_tile(e, call, c, kb, ir, jr, kb->pa + ir * kb->ks, accumulate);
  }
}

static void run_task(gemm_engine *e, int thread, long task) {
  const gemm_call *call = e->call;
  long per_entry = e->row_blocks * e->col_blocks;
  long bi = task / per_entry, rest = task % per_entry;
  long r0 = rest / e->col_blocks * e->rows_per_task;
  long c0 = rest % e->col_blocks * e->cols_per_task;
  long r1 = r0 + e->rows_per_task < call->m ? r0 + e->rows_per_task : call->m;
  long c1 = c0 + e->cols_per_task < call->n ? c0 + e->cols_per_task : call->n;
  if (e->narrow) {
    narrow_rows(&e->kernel, call, bi, r0, r1, e->pack_b[thread]);
    return;
  }
  if (e->smallk) {
    smallk_rows(&e->kernel, call, bi, r0, r1, e->pack_b[thread], e->staged[thread] == bi);
    e->staged[thread] = bi;
    return;
  }
  float *c = call->c + bi * call->batch_c;
  const blocking *blk = &e->blk;
  float *pa = e->pack_a[thread], *pb = e->pack_b[thread];
  for (long jc = c0; jc < c1; jc += blk->nc) {
    long nc = c1 - jc < blk->nc ? c1 - jc : blk->nc;
    int written = call->accumulate; /* whether this block of C already holds a value to add to */
    for (int ti = 0; ti < call->nterms; ti++) {
      const gemm_term *t = &call->term[ti];
      const float *a = t->a + bi * t->batch_a;
      const float *b = t->b == NULL ? NULL : t->b + bi * t->batch_b; /* NULL: bf16, in t->b16 */
      /* a bf16 K block is twice as long: its packed pairs take the bytes of kc floats */
      long kc_max = t->b16 != NULL ? 2 * blk->kc : blk->kc;
      for (long pc = 0; pc < t->k; pc += kc_max) {
        long kc = t->k - pc < kc_max ? t->k - pc : kc_max;
        long ks = t->b16 != NULL ? (kc + 1) / 2 : kc;
        const int nr = e->tile.nr;
        if (t->b16 != NULL) {
          e->bf16.pack_b((uint32_t *)pb, t, pc, kc, jc, nc, nr, e->kernel.transpose);
        } else {
          long b_from = e->direct_b ? nc / nr * nr : 0; /* direct: pack only the partial panel */
          pack_b(pb, t, b, pc, kc, jc + b_from, nc - b_from, nr, e->kernel.transpose);
        }
        for (long ic = r0; ic < r1; ic += blk->mc) {
          long mc = r1 - ic < blk->mc ? r1 - ic : blk->mc;
          if (!e->a_per_tile) pack_a_block(e, pa, t, a, ic, mc, pc, kc);
          k_block kb = {t, a, b, ic, mc, jc, nc, pc, kc, pa, pb, ks};
          macro_kernel(e, call, c, &kb, written);
        }
        written = 1;
      }
    }
  }
  if (call->causal == CAUSAL_MASK_OUT) {
    for (long i = r0; i < r1; i++)
      for (long j = i % call->period + 1 > c0 ? i % call->period + 1 : c0; j < c1; j++)
        c[i * call->rs_c + j * call->cs_c] = 0.0f;
  }
}

/* The next unclaimed task, from the thread's own range first, then from the others' in turn;
 * -1 when every task is claimed. */
static long claim_task(gemm_engine *e, int thread) {
  for (int i = 0; i < e->threads; i++) {
    task_range *r = &e->ranges[(thread + i) % e->threads];
    if (atomic_load_explicit(&r->next, memory_order_relaxed) >= r->end) continue;
    long task = atomic_fetch_add_explicit(&r->next, 1, memory_order_relaxed);
    if (task < r->end) return task;
  }
  return -1;
}

static void worker(void *arg, int thread, int nthreads) {
  (void)nthreads;
  gemm_engine *e = arg;
  for (long task; (task = claim_task(e, thread)) >= 0;) run_task(e, thread, task);
}

/* ---- planning ------------------------------------------------------------------------------ */

/* Padded tile area of an m x n output: the work the micro-kernel does. */
static double padded_area(const tile_kernel *k, long m, long n) {
  return (double)ceil_div(m, k->mr) * k->mr * (double)ceil_div(n, k->nr) * k->nr;
}

/* The index of the tile (of the engine's kernel) that wastes least on an m x n output; the first
 * on a tie. */
static int best_tile(const gemm_engine *e, long m, long n) {
  int best = 0;
  for (int i = 1; i < e->kernel.ntiles; i++)
    if (padded_area(&e->kernel.tiles[i], m, n) < padded_area(&e->kernel.tiles[best], m, n))
      best = i;
  return best;
}

/* The same product with C transposed: C^T = op(B)^T op(A)^T. */
static gemm_call transposed(const gemm_call *call) {
  gemm_call t = *call;
  t.m = call->n;
  t.n = call->m;
  t.rs_c = call->cs_c;
  t.cs_c = call->rs_c;
  for (int i = 0; i < call->nterms; i++) {
    const gemm_term *s = &call->term[i];
    gemm_term *d = &t.term[i];
    d->a = s->b;
    d->rs_a = s->cs_b;
    d->cs_a = s->rs_b;
    d->batch_a = s->batch_b;
    d->b = s->a;
    d->rs_b = s->cs_a;
    d->cs_b = s->rs_a;
    d->batch_b = s->batch_a;
  }
  return t;
}

/* Task grid: a few tasks per thread (a thread that runs late claims fewer), in whole tiles. A task
 * packs its rows of A and its columns of B, so a grid of rb x cb blocks packs cb * M + rb * N
 * values per step of K: among the grids with enough tasks, take the one that packs least (blocks
 * near square in elements), with at least 4 row tiles and 2 column tiles per block. The grid
 * depends on the shape and the thread count, and no element's operations depend on it (tiles
 * stay aligned to multiples of MR and NR). */
/* Whether the pool's workers take part: products under SMALL_FLOPS run on the caller alone. */
static int worth_parallel(const gemm_engine *e, const gemm_call *call) {
  double k = 0;
  for (int i = 0; i < call->nterms; i++) k += (double)call->term[i].k;
  double flops = 2.0 * (double)call->batch * (double)call->m * (double)call->n * k;
  return e->threads > 1 && flops >= SMALL_FLOPS;
}

static void plan_tasks(gemm_engine *e, const gemm_call *call) {
  e->parallel = worth_parallel(e, call);
  long want = ceil_div(e->parallel ? TASKS_PER_THREAD * e->threads : 1, call->batch);
  long row_tiles = ceil_div(call->m, e->tile.mr), col_tiles = ceil_div(call->n, e->tile.nr);
  long max_rb = clampl(row_tiles / 4, 1, want), max_cb = clampl(col_tiles / 2, 1, want);
  /* the best grid so far: tasks that keep a thread busy (at most want), then least packing */
  long best_rows = 0, best_cols = 0, best_useful = 0;
  double best_cost = 0;
  for (long rb = 1; rb <= max_rb; rb++) {
    long cb = minl(ceil_div(want, rb), max_cb);
    long rows = ceil_div(row_tiles, rb) * e->tile.mr, cols = ceil_div(col_tiles, cb) * e->tile.nr;
    long useful = minl(ceil_div(call->m, rows) * ceil_div(call->n, cols), want);
    double cost = (double)cb * (double)call->m + (double)rb * (double)call->n;
    if (useful > best_useful || (useful == best_useful && cost < best_cost)) {
      best_rows = rows;
      best_cols = cols;
      best_useful = useful;
      best_cost = cost;
    }
  }
  e->rows_per_task = best_rows;
  e->cols_per_task = best_cols;
  e->row_blocks = ceil_div(call->m, e->rows_per_task);
  e->col_blocks = ceil_div(call->n, e->cols_per_task);
  e->tasks = call->batch * e->row_blocks * e->col_blocks;
}

/* Narrow outputs and small inner dims: tasks of whole rows (multiples of `unit`: 3, the dot
 * kernel's row group; 16, two of the small-K kernel's), a few per thread. */
static void plan_rows(gemm_engine *e, const gemm_call *call, long unit) {
  e->parallel = worth_parallel(e, call);
  long want = ceil_div(e->parallel ? TASKS_PER_THREAD * e->threads : 1, call->batch);
  e->rows_per_task = ceil_div(ceil_div(call->m, want), unit) * unit;
  e->cols_per_task = call->n;
  e->row_blocks = ceil_div(call->m, e->rows_per_task);
  e->col_blocks = 1;
  e->tasks = call->batch * e->row_blocks;
}

/* How operands are staged. When a task's packed A block would serve few column panels, A is
 * handled one tile at a time: read in place if its rows or its columns are contiguous (op(A) = A
 * or A^T) and unscaled (alpha folds into packing), else packed just before use. A tile that reads
 * A^T in place takes MR consecutive values per step, which the prefetcher follows, where packing
 * it first was a separate pass over lines 4 KiB apart (engine-notes.md). op(B) is read in place
 * when its rows are contiguous and a packed panel would serve few row tiles. Packing copies values
 * exactly, so staging never changes a result. */
static void plan_staging(gemm_engine *e, const gemm_call *call) {
  int a_direct = 1, b_rows = 1;
  for (int i = 0; i < call->nterms; i++) {
    const gemm_term *t = &call->term[i];
    int bf16 = t->b16 != NULL; /* a bf16 term packs (rounds, pairs) both operands */
    a_direct = a_direct && !bf16 && (t->cs_a == 1 || t->rs_a == 1) && t->alpha == 1.0f;
    b_rows = b_rows && !bf16 && t->cs_b == 1;
  }
  e->a_per_tile = e->cols_per_task <= 2 * e->tile.nr;
  e->direct_a = e->a_per_tile && a_direct;
  e->direct_b = b_rows && e->rows_per_task <= 2 * e->tile.mr;
}

/* Runs the planned tasks of `call`, on the pool when the plan says so. */
static void run(gemm_engine *e, const gemm_call *call) {
  e->call = call;
  for (int t = 0; t < e->threads; t++) e->staged[t] = -1;
  /* home ranges: thread t < owners owns tasks [t * tasks / owners, (t + 1) * tasks / owners) */
  int owners = e->parallel ? e->threads : 1;
  for (int t = 0; t < e->threads; t++) {
    task_range *r = &e->ranges[t];
    r->end = t < owners ? e->tasks * (t + 1) / owners : e->tasks;
    atomic_store_explicit(&r->next, t < owners ? e->tasks * t / owners : e->tasks,
                          memory_order_relaxed);
  }
  if (!e->parallel || e->tasks == 1) worker(e, 0, 1);
  else pool_run(e->pool, worker, e);
  e->call = NULL;
}

void gemm_run(gemm_engine *e, const gemm_call *in) {
  if (in->m <= 0 || in->n <= 0 || in->batch <= 0) return;
  gemm_call call = *in;
  /* An overwrite whose first block may be skipped (UPPER_A) or absent (K == 0) starts from 0. */
  if (!call.accumulate && (call.causal == CAUSAL_UPPER_A || call.term[0].k == 0)) {
    for (long bi = 0; bi < call.batch; bi++)
      for (long i = 0; i < call.m; i++)
        for (long j = 0; j < call.n; j++)
          call.c[bi * call.batch_c + i * call.rs_c + j * call.cs_c] = 0.0f;
    call.accumulate = 1;
  }
  int bf16 = 0; /* bf16 terms keep B as B: no dot-product path, no turning around */
  for (int i = 0; i < call.nterms; i++) bf16 = bf16 || call.term[i].b16 != NULL;
  e->narrow = !bf16 && narrow_fits(&e->kernel, &call, e->pack_b_floats);
  e->smallk = !bf16 && !e->narrow && smallk_fits(&e->kernel, &call, e->pack_b_floats);
  if (e->narrow || e->smallk) {
    plan_rows(e, &call, e->narrow ? 3 : 16);
    run(e, &call);
    return;
  }
  /* Narrow outputs (a tile at least 1.5 times as wasteful) run transposed. */
  int straight = best_tile(e, call.m, call.n), turned = best_tile(e, call.n, call.m);
  const tile_kernel *tiles = e->kernel.tiles;
  if (call.causal == CAUSAL_NONE && !bf16 &&
      1.5 * padded_area(&tiles[turned], call.n, call.m) <
          padded_area(&tiles[straight], call.m, call.n)) {
    call = transposed(&call);
    straight = turned;
  }
  e->tile_index = straight;
  e->tile = tiles[straight];
  e->blk = choose_blocking(&e->tile);
  plan_tasks(e, &call);
  plan_staging(e, &call);
  run(e, &call);
}
