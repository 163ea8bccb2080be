/* Register-tile micro-kernels of the SGEMM (gemm.h: ukernel_fn), one per instruction set, each
 * compiled for its own target with __attribute__((target)) so that one binary runs on any x86-64
 * CPU and picks the best kernel at run time (__builtin_cpu_supports). Packed panels: a holds MR
 * floats per step of p, b holds NR floats per step of p (gemm.c packs them, zero-padded). */
#include <string.h>

#include "gemm.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* AVX-512F, 12 x 32 tile. Register budget (32 zmm): 24 accumulators (12 rows x 2 vectors of 16),
 * 2 for the row of b, 1 for the broadcast a[r]: 27. Each step of p: 2 loads, 12 broadcasts,
 * 24 FMAs, enough independent chains to cover the FMA latency on two 512-bit pipes. */
#define AVX512_MR 12
__attribute__((target("avx512f"))) static void ukernel_avx512_12x32(long kc, const float *a,
                                                                     const float *b, float *c,
                                                                     long ldc, int accumulate) {
  __m512 acc[AVX512_MR][2];
#pragma GCC unroll 12
  for (int r = 0; r < AVX512_MR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (long p = 0; p < kc; p++) {
    __m512 b0 = _mm512_loadu_ps(b);
    __m512 b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
    for (int r = 0; r < AVX512_MR; r++) {
      __m512 ar = _mm512_set1_ps(a[r]);
      acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
    }
    a += AVX512_MR;
    b += 32;
  }
#pragma GCC unroll 12
  for (int r = 0; r < AVX512_MR; r++) {
    float *row = c + r * ldc;
    if (accumulate) {
      acc[r][0] = _mm512_add_ps(acc[r][0], _mm512_loadu_ps(row));
      acc[r][1] = _mm512_add_ps(acc[r][1], _mm512_loadu_ps(row + 16));
    }
    _mm512_storeu_ps(row, acc[r][0]);
    _mm512_storeu_ps(row + 16, acc[r][1]);
  }
}
static int have_avx512(void) { return __builtin_cpu_supports("avx512f"); }

/* AVX2 + FMA, 6 x 16 tile. Register budget (16 ymm): 12 accumulators (6 rows x 2 vectors of 8),
 * 2 for the row of b, 1 for the broadcast a[r]: 15. */
#define AVX2_MR 6
__attribute__((target("avx2,fma"))) static void ukernel_avx2_6x16(long kc, const float *a,
                                                                  const float *b, float *c,
                                                                  long ldc, int accumulate) {
  __m256 acc[AVX2_MR][2];
#pragma GCC unroll 6
  for (int r = 0; r < AVX2_MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (long p = 0; p < kc; p++) {
    __m256 b0 = _mm256_loadu_ps(b);
    __m256 b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int r = 0; r < AVX2_MR; r++) {
      __m256 ar = _mm256_broadcast_ss(a + r);
      acc[r][0] = _mm256_fmadd_ps(ar, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(ar, b1, acc[r][1]);
    }
    a += AVX2_MR;
    b += 16;
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
static void ukernel_generic_4x16(long kc, const float *a, const float *b, float *c, long ldc,
                                 int accumulate) {
  float acc[GENERIC_MR][GENERIC_NR];
  memset(acc, 0, sizeof acc);
  for (long p = 0; p < kc; p++) {
    for (int r = 0; r < GENERIC_MR; r++)
      for (int j = 0; j < GENERIC_NR; j++) acc[r][j] += a[r] * b[j];
    a += GENERIC_MR;
    b += GENERIC_NR;
  }
  for (int r = 0; r < GENERIC_MR; r++)
    for (int j = 0; j < GENERIC_NR; j++)
      c[r * ldc + j] = accumulate ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}
static int always(void) { return 1; }

const ukernel_entry UKERNELS[] = {
#if defined(__x86_64__) || defined(__i386__)
    {{"avx512", AVX512_MR, 32, ukernel_avx512_12x32}, have_avx512},
    {{"avx2", AVX2_MR, 16, ukernel_avx2_6x16}, have_avx2},
#endif
    {{"generic", GENERIC_MR, GENERIC_NR, ukernel_generic_4x16}, always},
};
const int UKERNEL_COUNT = sizeof UKERNELS / sizeof UKERNELS[0];
