/* Narrow outputs (contract in gemm.h, dot_fn): C (M x n, n <= NARROW_N) from rows of op(A) that are
 * contiguous in K. Each output is a dot product of a row of A with a column of op(B), so the
 * driver copies op(B)^T (n x K, zero-padded to NARROW_N rows and K to a multiple of 16) once per
 * call part, and the kernel streams A row after row: no packing of A, and a prefetch-friendly
 * read order where register tiles would read a block of rows K apart at once. */
#include <stddef.h>

#include "gemm.h"

static long round_up(long v, long unit) { return (v + unit - 1) / unit * unit; }

int narrow_fits(const ukernel *kernel, const gemm_call *call, long scratch_floats) {
  const gemm_term *t = &call->term[0];
  return kernel->dot != NULL && call->nterms == 1 && call->causal == CAUSAL_NONE &&
         call->n <= NARROW_N && t->cs_a == 1 && t->k >= 32 &&
         NARROW_N * round_up(t->k, 16) <= scratch_floats;
}

void narrow_rows(const ukernel *kernel, const gemm_call *call, long bi, long r0, long r1,
                 float *bt) {
  const gemm_term *t = &call->term[0];
  const float *a = t->a + bi * t->batch_a, *b = t->b + bi * t->batch_b;
  long ldbt = round_up(t->k, 16);
  /* bt[j, p] = op(B)[p, j] (NARROW_N x ldbt) */
  for (long j = 0; j < NARROW_N; j++)
    for (long p = 0; p < ldbt; p++)
      bt[j * ldbt + p] = j < call->n && p < t->k ? b[p * t->rs_b + j * t->cs_b] : 0.0f;
  kernel->dot(t->k, r1 - r0, a + r0 * t->rs_a, t->rs_a, bt, ldbt, (int)call->n, t->alpha,
              call->c + bi * call->batch_c + r0 * call->rs_c, call->rs_c, call->cs_c,
              call->accumulate);
}
