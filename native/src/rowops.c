/* Small non-GEMM kernels of the native engine, run on the calling thread: add, SwiGLU, the
 * attention softmax, RMSNorm and RoPE with their backwards, permute0213. The engine calls them
 * for tensors small enough that handing the op to a pool costs more than the op itself (the demo
 * model's activations); larger ones stay on the wasm kernels' pool (src/kernels/native/ops.ts).
 * Semantics are those of the reference kernels (src/kernels/ref/: elementwise.ts, activations.ts,
 * attention.ts, norms.ts, rope.ts, permute.ts), whose comments give the formulas.
 * Each kernel is compiled for AVX-512F, AVX2+FMA and baseline x86-64 (GCC/Clang target_clones on
 * x86-64 Linux; elsewhere once, for the build's target), and the loader picks the best the CPU
 * runs, so the loops are vectorised at the CPU's width. The choice depends on the CPU only, never
 * on the thread count. Pointers are checked by the caller (addon.c, js_rowop). */
#include "rowops.h"

#include <math.h>
#include <stddef.h>

#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif
#define INLINE static inline __attribute__((always_inline))

/* exp(x) in f32 without a library call, so that loops over it vectorise. Cody-Waite reduction
 * x = n ln2 + r, |r| <= ln2 / 2 (ln2 split in a high part exact in f32 and a low part; Cody &
 * Waite, "Software Manual for the Elementary Functions", 1980), exp(r) by its Taylor series to
 * r^7 (truncation below 2^-27 relative for |r| <= 0.35), times 2^n built in the exponent bits.
 * Inputs are clamped to [-87.3, 88.3] (so that n <= 127 and 2^n is finite): results below the
 * smallest normal f32 are flushed to 0, and x > 88.3 gives about 2e38 instead of infinity
 * (softmax arguments are <= 0; a sigmoid's 1 / (1 + 2e38) is 0 as with infinity). */
INLINE float fast_expf(float x) {
  const float log2e = 1.44269504088896341f, ln2_hi = 0.693145751953125f,
              ln2_lo = 1.42860682030941723e-6f;
  int underflow = x < -87.3f;
  x = x > 88.3f ? 88.3f : x;
  x = x < -87.3f ? -87.3f : x;
  float n = __builtin_roundevenf(x * log2e);
  float r = (x - n * ln2_hi) - n * ln2_lo;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  union {
    int i;
    float f;
  } scale = {.i = ((int)n + 127) << 23};
  return underflow ? 0.0f : p * scale.f;
}

INLINE float sigmoidf(float x) { return 1.0f / (1.0f + fast_expf(-x)); }

CLONES void rowop_add(float *out, const float *a, const float *b, long n) {
  for (long i = 0; i < n; i++) out[i] = a[i] + b[i];
}

CLONES void rowop_swiglu(float *out, const float *gate, const float *up, long n) {
  for (long i = 0; i < n; i++) {
    float g = gate[i];
    out[i] = g * sigmoidf(g) * up[i];
  }
}

/* dGate, dUp (+)= the gradients of out = silu(gate) * up: silu'(g) = s (1 + g (1 - s)). */
CLONES void rowop_swiglu_backward(float *d_gate, float *d_up, const float *gate, const float *up,
                                  const float *d_out, long n, int accumulate) {
  for (long i = 0; i < n; i++) {
    float g = gate[i], u = up[i], d = d_out[i];
    float s = sigmoidf(g);
    float dg = d * u * s * (1.0f + g * (1.0f - s));
    float du = d * g * s;
    d_gate[i] = accumulate ? d_gate[i] + dg : dg;
    d_up[i] = accumulate ? d_up[i] + du : du;
  }
}

/* probs (batch, heads, tq, tk) = softmax(scale * scores + mask) per row; probs may be scores.
 * Row i of batch entry b sees keys j < visible = min(key_limit, i + tk - tq + 1) when causal,
 * key_limit = key_lengths[b] clamped to [0, tk] (tk when key_lengths is NULL). */
CLONES void rowop_attention_softmax(float *probs, const float *scores, long batch, long heads,
                                    long tq, long tk, float scale, int causal,
                                    const int32_t *key_lengths) {
  long offset = tk - tq;
  for (long b = 0; b < batch; b++) {
    long limit = tk;
    if (key_lengths != NULL) {
      limit = key_lengths[b];
      limit = limit < 0 ? 0 : limit > tk ? tk : limit;
    }
    for (long h = 0; h < heads; h++)
      for (long i = 0; i < tq; i++) {
        long row = ((b * heads + h) * tq + i) * tk;
        long visible = limit;
        if (causal) {
          long seen = i + offset + 1;
          visible = seen < 0 ? 0 : seen < limit ? seen : limit;
        }
        const float *s = scores + row;
        float *p = probs + row;
        /* the scaled scores are stored first, so that the max and the exponents see the same
         * rounded values (a fused multiply-add in one loop only could put an argument above 0) */
        for (long j = 0; j < visible; j++) p[j] = scale * s[j];
        float max = -INFINITY;
        for (long j = 0; j < visible; j++) max = fmaxf(max, p[j]);
        for (long j = 0; j < visible; j++) p[j] = fast_expf(p[j] - max);
        float sum = 0.0f; /* a separate loop, so that the one above vectorises */
        for (long j = 0; j < visible; j++) sum += p[j];
        float inv = visible > 0 ? 1.0f / sum : 0.0f;
        for (long j = 0; j < visible; j++) p[j] *= inv;
        for (long j = visible; j < tk; j++) p[j] = 0.0f;
      }
  }
}

/* dScores (+)= scale * probs * (dProbs - rowsum(probs * dProbs)), rows of cols. */
CLONES void rowop_attention_softmax_backward(float *d_scores, const float *probs,
                                             const float *d_probs, float scale, long rows,
                                             long cols, int accumulate) {
  for (long r = 0; r < rows; r++) {
    const float *p = probs + r * cols, *dp = d_probs + r * cols;
    float *ds = d_scores + r * cols;
    float dot = 0.0f;
    for (long j = 0; j < cols; j++) dot += p[j] * dp[j];
    for (long j = 0; j < cols; j++) {
      float d = scale * p[j] * (dp[j] - dot);
      ds[j] = accumulate ? ds[j] + d : d;
    }
  }
}

/* out = inp * rstd * weight per row, rstd = 1 / sqrt(mean(inp^2) + eps) (sum in double, as the
 * reference's). */
CLONES void rowop_rmsnorm(float *out, float *rstd, const float *inp, const float *weight,
                          long rows, long cols, double eps) {
  for (long r = 0; r < rows; r++) {
    const float *x = inp + r * cols;
    float *y = out + r * cols;
    double ss = 0.0;
    for (long c = 0; c < cols; c++) ss += (double)x[c] * x[c];
    double s = 1.0 / sqrt(ss / (double)cols + eps);
    for (long c = 0; c < cols; c++) y[c] = (float)((double)x[c] * s * weight[c]);
    rstd[r] = (float)s;
  }
}

/* out (a, c, b, d) = inp (a, b, c, d) with axes 1 and 2 swapped; no overlap. */
CLONES void rowop_permute0213(float *out, const float *inp, long a, long b, long c, long d) {
  for (long ia = 0; ia < a; ia++)
    for (long ib = 0; ib < b; ib++)
      for (long ic = 0; ic < c; ic++) {
        const float *src = inp + ((ia * b + ib) * c + ic) * d;
        float *dst = out + ((ia * c + ic) * b + ib) * d;
        for (long id = 0; id < d; id++) dst[id] = src[id];
      }
}

/* Rotary embedding on x (batch, time, heads, dim), rotate-half pairs (i, i + dim/2), cos and sin
 * (time, dim/2): each pair (x1, x2) turns by theta (sign 1: y1 = x1 cos - x2 sin, y2 = x2 cos +
 * x1 sin) or by -theta (sign -1, the backward: a rotation's gradient is its inverse applied to
 * dOut). out (+)= y; out may be x when not accumulating. */
INLINE void rotate_pairs(float *out, const float *x, const float *cos_t, const float *sin_t,
                         long batch, long time, long heads, long dim, float sign, int accumulate) {
  long half = dim / 2;
  for (long b = 0; b < batch; b++)
    for (long t = 0; t < time; t++) {
      const float *c = cos_t + t * half, *s = sin_t + t * half;
      for (long h = 0; h < heads; h++) {
        long base = ((b * time + t) * heads + h) * dim;
        const float *x1 = x + base, *x2 = x + base + half;
        float *o1 = out + base, *o2 = out + base + half;
        for (long i = 0; i < half; i++) {
          float a = x1[i], z = x2[i], sn = sign * s[i];
          float y1 = a * c[i] - z * sn, y2 = z * c[i] + a * sn;
          o1[i] = accumulate ? o1[i] + y1 : y1;
          o2[i] = accumulate ? o2[i] + y2 : y2;
        }
      }
    }
}

CLONES void rowop_rope(float *out, const float *inp, const float *cos_t, const float *sin_t,
                       long batch, long time, long heads, long dim) {
  rotate_pairs(out, inp, cos_t, sin_t, batch, time, heads, dim, 1.0f, 0);
}

/* dInp (+)= the rotation by -theta of dOut (same layout as rowop_rope). */
CLONES void rowop_rope_backward(float *d_inp, const float *d_out, const float *cos_t,
                                const float *sin_t, long batch, long time, long heads, long dim,
                                int accumulate) {
  rotate_pairs(d_inp, d_out, cos_t, sin_t, batch, time, heads, dim, -1.0f, accumulate);
}

/* RMSNorm backward, per row r with s = rstd[r]: dInp (+)= s w dy - s^3 x mean(w dy x);
 * dWeight (NULL: frozen) += dy x s, rows in order (so the sum's order is fixed). */
CLONES void rowop_rmsnorm_backward(float *d_inp, float *d_weight, const float *d_out,
                                   const float *inp, const float *weight, const float *rstd,
                                   long rows, long cols, int accumulate) {
  for (long r = 0; r < rows; r++) {
    const float *dy = d_out + r * cols, *x = inp + r * cols;
    float *dx = d_inp + r * cols;
    double s = rstd[r], dot = 0.0;
    for (long c = 0; c < cols; c++) dot += (double)weight[c] * dy[c] * x[c];
    double coef = s * s * s * dot / (double)cols;
    for (long c = 0; c < cols; c++) {
      float d = (float)(s * weight[c] * dy[c] - coef * x[c]);
      dx[c] = accumulate ? dx[c] + d : d;
    }
    if (d_weight != NULL)
      for (long c = 0; c < cols; c++) d_weight[c] += (float)((double)dy[c] * x[c] * s);
  }
}
