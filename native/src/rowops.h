/* Small non-GEMM kernels on the calling thread (rowops.c documents them). Element counts and
 * dims are those of the reference kernels (src/kernels/ref/); outputs may be an input's very
 * buffer where the reference allows it, never a partial overlap. */
#ifndef LORAGA_ROWOPS_H
#define LORAGA_ROWOPS_H

#include <stdint.h>

void rowop_add(float *out, const float *a, const float *b, long n);
void rowop_swiglu(float *out, const float *gate, const float *up, long n);
void rowop_swiglu_backward(float *d_gate, float *d_up, const float *gate, const float *up,
                           const float *d_out, long n, int accumulate);
void rowop_attention_softmax(float *probs, const float *scores, long batch, long heads, long tq,
                             long tk, float scale, int causal, const int32_t *key_lengths);
void rowop_attention_softmax_backward(float *d_scores, const float *probs, const float *d_probs,
                                      float scale, long rows, long cols, int accumulate);
void rowop_rmsnorm(float *out, float *rstd, const float *inp, const float *weight, long rows,
                   long cols, double eps);
void rowop_rope(float *out, const float *inp, const float *cos_t, const float *sin_t, long batch,
                long time, long heads, long dim);
void rowop_rope_backward(float *d_inp, const float *d_out, const float *cos_t, const float *sin_t,
                         long batch, long time, long heads, long dim, int accumulate);
void rowop_rmsnorm_backward(float *d_inp, float *d_weight, const float *d_out, const float *inp,
                            const float *weight, const float *rstd, long rows, long cols,
                            int accumulate);
void rowop_permute0213(float *out, const float *inp, long a, long b, long c, long d);

#endif
