/* SGEMM contract: C = sum over terms t of alpha_t op(A_t) op(B_t)  (+ C when accumulate), f32,
 * row-major buffers addressed by element strides, so every transpose is a choice of strides:
 *   op(A_t)[i, p] = a[i * rs_a + p * cs_a]   (M x K_t)
 *   op(B_t)[p, j] = b[p * rs_b + j * cs_b]   (K_t x N)
 *   C[i, j]       = c[i * rs_c + j * cs_c]   (M x N)
 * batch > 1 repeats the product with each pointer advanced by its batch stride (0 for a shared
 * operand). A second term (MatmulOptions.plus in src/kernels/kernels.ts) is allowed only with
 * batch == 1. Causal kinds are those of MatmulCausal (kernels.ts): MASK_OUT writes 0 where
 * j > i mod period; LOWER_A / UPPER_A promise zeros in op(A) that the kernel may skip.
 * C must not overlap any input. Determinism: each element of C is computed by one thread with
 * the same sequence of operations whatever the thread count, so results do not depend on it. */
#ifndef LORAGA_GEMM_H
#define LORAGA_GEMM_H

#include <stdint.h>

#include "pool.h"

enum { CAUSAL_NONE = 0, CAUSAL_MASK_OUT = 1, CAUSAL_LOWER_A = 2, CAUSAL_UPPER_A = 3 };

/* A term whose b16 is not NULL reads op(B) from that bf16 matrix (same strides, in bf16 elements)
 * instead of b, and runs on the bf16 kernels (bf16.c): needs the engine's bf16 support, batch 1
 * or a shared B, no causal kind. */
typedef struct {
  const float *a;
  long rs_a, cs_a, batch_a;
  const float *b;
  const uint16_t *b16;
  long rs_b, cs_b, batch_b;
  long k;
  float alpha;
} gemm_term;

typedef struct {
  float *c;
  long rs_c, cs_c, batch_c;
  long m, n, batch;
  gemm_term term[2];
  int nterms;
  int accumulate;
  int causal;
  long period;
} gemm_call;

/* One register tile kernel: acc (MR x NR) = sum_{p<kc} a[r*a_rs + p*a_ps] * b[p*b_ps + c]; then
 * C = acc (accumulate 0) or C += acc, C rows ldc apart, columns contiguous. a and b are packed
 * panels (a_rs 1, a_ps MR; b_ps NR) or the operands themselves (op(A)'s strides, with rows or
 * columns contiguous; b_ps the row stride of B, its rows contiguous). */
typedef void (*ukernel_fn)(long kc, const float *a, long a_rs, long a_ps, const float *b, long b_ps,
                           float *c, long ldc, int accumulate);

typedef struct {
  int mr, nr;
  ukernel_fn fn;
} tile_kernel;

/* Outputs at most NARROW_N columns wide whose rows of op(A) are contiguous: dot products along K,
 * which read A row after row (narrow.c), instead of register tiles. */
#define NARROW_N 16
/* For rows r < rows and columns j < n (n <= NARROW_N): C[r, j] = alpha * sum_{p<k} a[r * lda + p]
 * * bt[j * ldbt + p] (accumulate 0) or C[r, j] += that, C[r, j] at c[r * rs_c + j * cs_c]. bt
 * holds NARROW_N rows, zero past n and from k up to k rounded up to 16. */
typedef void (*dot_fn)(long k, long rows, const float *a, long lda, const float *bt, long ldbt,
                       int n, float alpha, float *c, long rs_c, long cs_c, int accumulate);

/* Products whose inner dim is at most SMALL_K (LoRA's up products, rank r inside) and whose C
 * rows are contiguous: no packing, rows of C computed straight from op(A) and op(B) (smallk.c). */
#ifndef SMALL_K
#define SMALL_K 32
#endif
/* For rows r < rows and columns j < n: C[r, j] = alpha * sum_{p<k} a[r * rs_a + p * cs_a] *
 * b[p * ldb + j] (accumulate 0) or C[r, j] += that, C[r, j] at c[r * rs_c + j]; k <= SMALL_K. */
typedef void (*smallk_fn)(long k, long rows, long n, const float *a, long rs_a, long cs_a,
                          const float *b, long ldb, float alpha, float *c, long rs_c,
                          int accumulate);

/* A transposing copy for packing: dst[p * ld_dst + j] = alpha * src[j * ld_src + p] for j < cols,
 * p < kc, and 0 for cols <= j < width (the panel's padding). */
typedef void (*transpose_fn)(float *dst, long ld_dst, int width, const float *src, long ld_src,
                             long cols, long kc, float alpha);

/* One instruction set's tile kernels; each call uses the tile that wastes least on its shape. */
typedef struct {
  const char *name;
  tile_kernel tiles[2];
  int ntiles;
  dot_fn dot;             /* NULL: narrow outputs use the tiles too */
  transpose_fn transpose; /* NULL: packing transposes with scalar loops */
  smallk_fn smallk;       /* NULL: small inner dims use the tiles too */
} ukernel;

/* The kernels this build contains, best first; available() says whether this CPU runs it. */
typedef struct {
  ukernel kernel;
  int (*available)(void);
} ukernel_entry;
extern const ukernel_entry UKERNELS[];
extern const int UKERNEL_COUNT;

/* The bf16 path (bf16.c): register tiles parallel to a ukernel's tiles (same MR x NR), on A and B
 * packed as pairs of bf16 in u32 (layouts in bf16.c), kp = ceil(kc / 2) pairs per K block. */
typedef void (*bf16_tile_fn)(long kp, const uint32_t *a, const uint32_t *b, float *c, long ldc,
                             int accumulate);
/* dst: ceil(mc / MR) A panels of alpha * op(A)[i0.., p0..] (mc x kc) rounded to bf16. */
typedef void (*bf16_pack_a_fn)(uint32_t *dst, const gemm_term *t, const float *a, long i0, long mc,
                               long p0, long kc, int mr, transpose_fn tr);
/* dst: ceil(nc / NR) B panels of op(B)[p0.., j0..] (kc x nc) from t->b16. */
typedef void (*bf16_pack_b_fn)(uint32_t *dst, const gemm_term *t, long p0, long kc, long j0,
                               long nc, int nr, transpose_fn tr);
typedef struct {
  bf16_tile_fn tile[2]; /* tile[i] computes kernel->tiles[i]'s shape */
  bf16_pack_a_fn pack_a;
  bf16_pack_b_fn pack_b;
} bf16_kernels;
/* Longest K block of a bf16 term (its packing keeps a panel's rows on the stack). */
#define BF16_MAX_KC 1024
/* Fills `out` and returns 1 when this build and CPU run the bf16 path beside `kernel`; else 0. */
int bf16_kernels_for(const ukernel *kernel, bf16_kernels *out);

/* Cache blocking: kc inner-dim block, mc rows of packed A, nc columns of packed B. */
typedef struct {
  long mc, kc, nc;
} blocking;

typedef struct gemm_engine gemm_engine;

/* narrow.c: whether `call` takes the dot-product path, and its part for rows [r0, r1) of batch
 * entry bi; bt: scratch of at least NARROW_N * (k rounded up to 16) floats. */
int narrow_fits(const ukernel *kernel, const gemm_call *call, long scratch_floats);
void narrow_rows(const ukernel *kernel, const gemm_call *call, long bi, long r0, long r1,
                 float *bt);

/* smallk.c: whether `call` takes the small-K path, and its part for rows [r0, r1) of batch entry
 * bi. bt: scratch of at least SMALL_K * n floats for op(B) when its rows are not contiguous;
 * staged: whether bt already holds this batch entry's op(B) (an earlier part on this thread). */
int smallk_fits(const ukernel *kernel, const gemm_call *call, long scratch_floats);
void smallk_rows(const ukernel *kernel, const gemm_call *call, long bi, long r0, long r1,
                 float *bt, int staged);

/* kernel: an entry of UKERNELS; threads >= 1. NULL when out of memory or threads. */
gemm_engine *gemm_engine_create(const ukernel *kernel, int threads, long long spin_ns);
void gemm_engine_destroy(gemm_engine *e);
const ukernel *gemm_engine_kernel(const gemm_engine *e);
blocking gemm_engine_blocking(const gemm_engine *e);
int gemm_engine_threads(const gemm_engine *e);
/* Whether the engine runs terms with a bf16 B (gemm_term.b16). */
int gemm_engine_has_bf16(const gemm_engine *e);
void gemm_run(gemm_engine *e, const gemm_call *call);

#endif
