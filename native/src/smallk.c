/* Small inner dims (contract in gemm.h, smallk_fn): C (M x N) (+)= alpha op(A) op(B) with K at
 * most SMALL_K, as in LoRA's up products (the rank r is the inner dim). With so few steps of K
 * per output, packing A costs about as much as the product itself, so the kernel reads op(A) in
 * place (one broadcast per element, any strides) and op(B)'s K rows, which stay in L1, and writes
 * each block of C rows once. op(B) is read in place when its rows are contiguous, else copied
 * (K x N) into the thread's scratch once per batch entry. */
#include <stddef.h>

#include "gemm.h"

int smallk_fits(const ukernel *kernel, const gemm_call *call, long scratch_floats) {
  const gemm_term *t = &call->term[0];
  return kernel->smallk != NULL && call->nterms == 1 && call->causal == CAUSAL_NONE &&
         t->b16 == NULL && t->k >= 1 && t->k <= SMALL_K && call->cs_c == 1 &&
         call->n >= 16 && (t->cs_b == 1 || t->k * call->n <= scratch_floats);
}

void smallk_rows(const ukernel *kernel, const gemm_call *call, long bi, long r0, long r1,
                 float *bt, int staged) {
  const gemm_term *t = &call->term[0];
  const float *a = t->a + bi * t->batch_a, *b = t->b + bi * t->batch_b;
  long ldb = t->rs_b;
  if (t->cs_b != 1) { /* bt[p, j] = op(B)[p, j] (K x N) */
    if (!staged) {
      if (t->rs_b == 1 && kernel->transpose != NULL)
        kernel->transpose(bt, call->n, (int)call->n, b, t->cs_b, call->n, t->k, 1.0f);
      else
        for (long p = 0; p < t->k; p++)
          for (long j = 0; j < call->n; j++) bt[p * call->n + j] = b[p * t->rs_b + j * t->cs_b];
    }
    b = bt;
    ldb = call->n;
  }
  kernel->smallk(t->k, r1 - r0, call->n, a + r0 * t->rs_a, t->rs_a, t->cs_a, b, ldb, t->alpha,
                 call->c + bi * call->batch_c + r0 * call->rs_c, call->rs_c, call->accumulate);
}
