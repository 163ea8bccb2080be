/* Register-tile micro-kernels of the SGEMM (gemm.h: ukernel_fn), one per instruction set, each
 * compiled for its own target with __attribute__((target)) so that one binary runs on any x86-64
 * CPU and picks the best kernel at run time (__builtin_cpu_supports). Operands (gemm.h,
 * ukernel_fn): a[r * a_rs + p * a_ps] and b[p * b_ps + j], packed panels (a_rs 1, a_ps MR,
 * b_ps NR; gemm.c packs them, zero-padded) or the caller's operands in place (gemm.h). */
#include <string.h>

#include "gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* AVX-512F tiles MR x (16 NV): acc[r][v] += a[r] * b[16v ..], one FMA per accumulator per step.
 * 12 x 32 (NV 2): 24 accumulators + 2 for the row of b + 1 for the broadcast a[r] = 27 of 32 zmm.
 * 24 x 16 (NV 1, for outputs 16 or fewer columns wide): 24 accumulators + 1 + 1 = 26 of 32 zmm.
 * Each step of p: NV loads of b, MR broadcasts of a, MR * NV FMAs: enough independent chains to
 * cover the FMA latency on two 512-bit pipes. */
/* The shared body; always inlined into the wrappers below with constant mr and nv, so that the
 * loops over r and v unroll completely and acc lives in registers. */
__attribute__((target("avx512f"), always_inline)) static inline void avx512_tile(
    const int mr, const int nv, long kc, const float *a, long a_rs, long a_ps, const float *b,
    long b_ps, float *c, long ldc, int accumulate) {
  __m512 acc[24][2];
#pragma GCC unroll 24
  for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++) acc[r][v] = _mm512_setzero_ps();
  for (long p = 0; p < kc; p++) {
    __m512 bv[2];
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++) bv[v] = _mm512_loadu_ps(b + 16 * v);
#pragma GCC unroll 24
    for (int r = 0; r < mr; r++) {
      __m512 ar = _mm512_set1_ps(a[r * a_rs]);
#pragma GCC unroll 2
      for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
    }
    a += a_ps;
    b += b_ps;
  }
#pragma GCC unroll 24
  for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++) {
      float *o = c + r * ldc + 16 * v;
      if (accumulate) acc[r][v] = _mm512_add_ps(acc[r][v], _mm512_loadu_ps(o));
      _mm512_storeu_ps(o, acc[r][v]);
    }
}
__attribute__((target("avx512f"))) static void ukernel_avx512_12x32(long kc, const float *a,
                                                                     long a_rs, long a_ps,
                                                                     const float *b, long b_ps,
                                                                     float *c, long ldc,
                                                                     int accumulate) {
  if (a_rs == 1) /* packed a, or A^T in place: a specialised copy with constant offsets */
    avx512_tile(12, 2, kc, a, 1, a_ps, b, b_ps, c, ldc, accumulate);
  else
    avx512_tile(12, 2, kc, a, a_rs, a_ps, b, b_ps, c, ldc, accumulate);
}
__attribute__((target("avx512f"))) static void ukernel_avx512_24x16(long kc, const float *a,
                                                                     long a_rs, long a_ps,
                                                                     const float *b, long b_ps,
                                                                     float *c, long ldc,
                                                                     int accumulate) {
  if (a_rs == 1) /* packed a, or A^T in place: a specialised copy with constant offsets */
    avx512_tile(24, 1, kc, a, 1, a_ps, b, b_ps, c, ldc, accumulate);
  else
    avx512_tile(24, 1, kc, a, a_rs, a_ps, b, b_ps, c, ldc, accumulate);
}
/* AVX-512F dot products for narrow outputs (gemm.h, dot_fn): acc[r][j] (16 lanes) += a[r][p..]
 * * bt[j][p..], 16 steps of K per FMA; then each output is alpha times the sum of its 16 lanes.
 * Blocks of 3 rows x 8 columns (24 accumulators + 3 rows of a + 1 of bt = 28 zmm): 11 loads per
 * 24 FMAs. A row computed alone runs the same operations as in a group of 3, so results do not
 * depend on how rows are grouped. Each step also prefetches its rows DOT_PREFETCH floats ahead: A is
 * read once, and the hardware prefetcher alone did not keep three streams ahead of the FMAs
 * (docs/engine-notes.md). A prefetch past the end of A does not fault. */
#define DOT_PREFETCH 512
/* Rows are taken in bands of about this many bytes of A (at most 96 rows, at least one group of
 * 3), and each band is run once per 8 columns: the 8 rows of bt (8 x K floats) then serve the
 * whole band from L1, and the band's rows of A (L2-sized: every AVX-512 CPU has >= 1 MiB of L2
 * per core) are read from L2 on the second pass. Without bands, every group of 3 rows streamed
 * all NARROW_N rows of bt from L2 (docs/engine-notes.md, "Narrow outputs"). */
#define DOT_BAND_BYTES (192 * 1024)
__attribute__((target("avx512f"), always_inline)) static inline void avx512_dot_rows(
    const int rows, const int nj, long k, const float *a, long lda, const float *bt, long ldbt,
    int n, float alpha, float *c, long rs_c, long cs_c, int accumulate) {
  __m512 acc[3][8];
#pragma GCC unroll 3
  for (int r = 0; r < rows; r++)
#pragma GCC unroll 8
    for (int j = 0; j < nj; j++) acc[r][j] = _mm512_setzero_ps();
  for (long p = 0; p < k; p += 16) {
    __mmask16 keep = k - p >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - p)) - 1);
    __m512 av[3];
#pragma GCC unroll 3
    for (int r = 0; r < rows; r++) {
      _mm_prefetch((const char *)(a + r * lda + p + DOT_PREFETCH), _MM_HINT_T0);
      av[r] = _mm512_maskz_loadu_ps(keep, a + r * lda + p);
    }
#pragma GCC unroll 8
    for (int j = 0; j < nj; j++) {
      __m512 bv = _mm512_loadu_ps(bt + j * ldbt + p);
      /* bv in a register, loaded once: without this GCC folds the load into each of the rows'
       * FMAs, 3 loads of bt per value instead of 1, and the loop waits on the loads */
      __asm__("" : "+v"(bv));
#pragma GCC unroll 3
      for (int r = 0; r < rows; r++) acc[r][j] = _mm512_fmadd_ps(av[r], bv, acc[r][j]);
    }
  }
#pragma GCC unroll 3
  for (int r = 0; r < rows; r++) {
    float sum[8]; /* constant indices into acc keep it in registers */
#pragma GCC unroll 8
    for (int j = 0; j < nj; j++) sum[j] = _mm512_reduce_add_ps(acc[r][j]);
    for (int j = 0; j < n; j++) {
      float *o = c + r * rs_c + j * cs_c;
      *o = accumulate ? *o + alpha * sum[j] : alpha * sum[j];
    }
  }
}
__attribute__((target("avx512f"))) static void dot_avx512(long k, long rows, const float *a,
                                                           long lda, const float *bt, long ldbt,
                                                           int n, float alpha, float *c, long rs_c,
                                                           long cs_c, int accumulate) {
  long band_rows = DOT_BAND_BYTES / (4 * k) / 3 * 3;
  band_rows = band_rows < 3 ? 3 : band_rows > 96 ? 96 : band_rows;
  for (long band = 0; band < rows; band += band_rows) {
    long band_end = rows - band < band_rows ? rows : band + band_rows;
    for (int j = 0; j < n; j += 8) { /* 8 columns of bt at a time, over the band's rows */
      const float *bj = bt + j * ldbt;
      int nj = n - j < 8 ? n - j : 8;
      for (long r = band; r < band_end; r += 3) {
        float *cj = c + r * rs_c + j * cs_c;
        if (band_end - r >= 3)
          avx512_dot_rows(3, 8, k, a + r * lda, lda, bj, ldbt, nj, alpha, cj, rs_c, cs_c,
                          accumulate);
        else
          for (long i = r; i < band_end; i++)
            avx512_dot_rows(1, 8, k, a + i * lda, lda, bj, ldbt, nj, alpha, cj + (i - r) * rs_c,
                            rs_c, cs_c, accumulate);
      }
    }
  }
}
/* AVX-512F transposing copy (gemm.h, transpose_fn) in 16 x 16 blocks: 16 rows of src (16 values
 * of p each, masked at the end of kc; rows past cols are zeros) are loaded, transposed in
 * registers (pairs of rows interleaved, then pairs of pairs, then 128-bit lanes twice) and stored
 * as 16 rows of dst (masked to the panel's width). Values are copied (times alpha) exactly. */
__attribute__((target("avx512f"))) static void transpose_avx512(float *dst, long ld_dst, int width,
                                                                 const float *src, long ld_src,
                                                                 long cols, long kc, float alpha) {
  const __m512 scale = _mm512_set1_ps(alpha);
  for (long p0 = 0; p0 < kc; p0 += 16) {
    long np = kc - p0 < 16 ? kc - p0 : 16;
    __mmask16 keep = (__mmask16)((1u << np) - 1);
    for (int j0 = 0; j0 < width; j0 += 16) {
      __m512 r[16], t[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; i++)
        r[i] = j0 + i < cols ? _mm512_maskz_loadu_ps(keep, src + (j0 + i) * ld_src + p0)
                             : _mm512_setzero_ps();
      if (alpha != 1.0f)
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) r[i] = _mm512_mul_ps(r[i], scale);
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
      }
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
      }
#pragma GCC unroll 4
      for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
      }
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
      }
      int lanes = width - j0 < 16 ? width - j0 : 16; /* r[i]: column p0 + i of the block */
      __mmask16 store = (__mmask16)((1u << lanes) - 1);
#pragma GCC unroll 16 /* constant indices into r keep it in registers */
      for (int i = 0; i < 16; i++)
        if (i < np) _mm512_mask_storeu_ps(dst + (p0 + i) * ld_dst + j0, store, r[i]);
    }
  }
}
/* AVX-512F small-K rows (gemm.h, smallk_fn): tiles of 8 rows x 32 columns, acc[r][v] (16 lanes)
 * += a[r, p] * b[p, 16v ..] over the k steps (16 accumulators, 2 rows of b, 1 broadcast a[r, p]
 * = 19 zmm), then C = alpha * acc, or C += alpha * acc. Rows go 8 at a time, each block's columns
 * in 32-wide chunks (the last one masked), so a block of C is written in one pass; op(B)'s k rows
 * stay in L1. Each element's operations do not depend on how rows are grouped. */
#define SMALLK_MR 8
__attribute__((target("avx512f"), always_inline)) static inline void avx512_smallk_tile(
    const int mr, const int nv, long k, const float *a, long rs_a, long cs_a, const float *b,
    long ldb, __mmask16 last, float alpha, float *c, long rs_c, int accumulate) {
  __m512 acc[SMALLK_MR][2];
#pragma GCC unroll 8
  for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++) acc[r][v] = _mm512_setzero_ps();
  for (long p = 0; p < k; p++) {
    __m512 bv[2];
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++)
      bv[v] = _mm512_maskz_loadu_ps(v == nv - 1 ? last : (__mmask16)0xffff, b + p * ldb + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++) {
      __m512 ar = _mm512_set1_ps(a[r * rs_a + p * cs_a]);
#pragma GCC unroll 2
      for (int v = 0; v < nv; v++) acc[r][v] = _mm512_fmadd_ps(ar, bv[v], acc[r][v]);
    }
  }
  const __m512 scale = _mm512_set1_ps(alpha);
#pragma GCC unroll 8
  for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++) {
      __mmask16 keep = v == nv - 1 ? last : (__mmask16)0xffff;
      float *o = c + r * rs_c + 16 * v;
      __m512 out = alpha == 1.0f ? acc[r][v] : _mm512_mul_ps(scale, acc[r][v]);
      if (accumulate) out = _mm512_add_ps(_mm512_maskz_loadu_ps(keep, o), out);
      _mm512_mask_storeu_ps(o, keep, out);
    }
}
/* One block of mr rows (SMALLK_MR, or 1 for the rows left over) across all n columns. */
__attribute__((target("avx512f"), always_inline)) static inline void avx512_smallk_block(
    const int mr, long k, long n, const float *a, long rs_a, long cs_a, const float *b, long ldb,
    float alpha, float *c, long rs_c, int accumulate) {
  long j = 0;
  for (; j + 32 <= n; j += 32)
    avx512_smallk_tile(mr, 2, k, a, rs_a, cs_a, b + j, ldb, 0xffff, alpha, c + j, rs_c,
                       accumulate);
  if (j < n) {
    long left = n - j; /* 1..31 columns */
    __mmask16 last = (__mmask16)((1u << (left > 16 ? left - 16 : left)) - 1);
    if (left > 16)
      avx512_smallk_tile(mr, 2, k, a, rs_a, cs_a, b + j, ldb, last, alpha, c + j, rs_c,
                         accumulate);
    else
      avx512_smallk_tile(mr, 1, k, a, rs_a, cs_a, b + j, ldb, last, alpha, c + j, rs_c,
                         accumulate);
  }
}
__attribute__((target("avx512f"))) static void smallk_avx512(long k, long rows, long n,
                                                              const float *a, long rs_a,
                                                              long cs_a, const float *b, long ldb,
                                                              float alpha, float *c, long rs_c,
                                                              int accumulate) {
  long r = 0;
  for (; r + SMALLK_MR <= rows; r += SMALLK_MR)
    avx512_smallk_block(SMALLK_MR, k, n, a + r * rs_a, rs_a, cs_a, b, ldb, alpha, c + r * rs_c,
                        rs_c, accumulate);
  for (; r < rows; r++)
    avx512_smallk_block(1, k, n, a + r * rs_a, rs_a, cs_a, b, ldb, alpha, c + r * rs_c, rs_c,
                        accumulate);
}
static int have_avx512(void) { return __builtin_cpu_supports("avx512f"); }

/* AVX2 + FMA, 6 x 16 tile. Register budget (16 ymm): 12 accumulators (6 rows x 2 vectors of 8),
 * 2 for the row of b, 1 for the broadcast a[r]: 15. */
#define AVX2_MR 6
__attribute__((target("avx2,fma"))) static void ukernel_avx2_6x16(long kc, const float *a,
                                                                  long a_rs, long a_ps,
                                                                  const float *b, long b_ps,
                                                                  float *c, long ldc,
                                                                  int accumulate) {
  __m256 acc[AVX2_MR][2];
#pragma GCC unroll 6
  for (int r = 0; r < AVX2_MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (long p = 0; p < kc; p++) {
    __m256 b0 = _mm256_loadu_ps(b);
    __m256 b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int r = 0; r < AVX2_MR; r++) {
      __m256 ar = _mm256_broadcast_ss(a + r * a_rs);
      acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
    }
    a += a_ps;
    b += b_ps;
  }
#pragma GCC unroll 6
  for (int r = 0; r < AVX2_MR; r++) {
    float *row = c + r * ldc;
    if (accumulate) {
      acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_loadu_ps(row));
      acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_loadu_ps(row + 8));
    }
    _mm256_storeu_ps(row, acc[r][0]);
    _mm256_storeu_ps(row + 8, acc[r][1]);
  }
}
static int have_avx2(void) {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

/* Portable C, 4 x 16 tile: plain loops over a local accumulator array that the compiler keeps in
 * vector registers (16 floats per row: four SSE or two AVX vectors) and vectorises over c. Its
 * sums use separate multiply and add, so results may differ from the FMA kernels in the last bit. */
#define GENERIC_MR 4
#define GENERIC_NR 16
static void ukernel_generic_4x16(long kc, const float *a, long a_rs, long a_ps, const float *b,
                                 long b_ps, float *c, long ldc, int accumulate) {
  float acc[GENERIC_MR][GENERIC_NR];
  memset(acc, 0, sizeof acc);
  for (long p = 0; p < kc; p++) {
    for (int r = 0; r < GENERIC_MR; r++)
      for (int j = 0; j < GENERIC_NR; j++) acc[r][j] += a[r * a_rs] * b[j];
    a += a_ps;
    b += b_ps;
  }
  for (int r = 0; r < GENERIC_MR; r++)
    for (int j = 0; j < GENERIC_NR; j++)
      c[r * ldc + j] = accumulate ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}
static int always(void) { return 1; }

const ukernel_entry UKERNELS[] = {
#if defined(__x86_64__) || defined(__i386__)
    {{"avx512", {{12, 32, ukernel_avx512_12x32}, {24, 16, ukernel_avx512_24x16}}, 2, dot_avx512,
      transpose_avx512, smallk_avx512},
     have_avx512},
    {{"avx2", {{AVX2_MR, 16, ukernel_avx2_6x16}}, 1, NULL, NULL, NULL}, have_avx2},
#endif
    {{"generic", {{GENERIC_MR, GENERIC_NR, ukernel_generic_4x16}}, 1, NULL, NULL, NULL}, always},
};
const int UKERNEL_COUNT = sizeof UKERNELS / sizeof UKERNELS[0];
