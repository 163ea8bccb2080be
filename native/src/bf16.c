/* The bf16 path of the GEMM (gemm.h: bf16_kernels): products whose B is a bf16 matrix (a frozen
 * weight), on AVX512-BF16 dot products (vdpbf16ps). Numerics, as PyTorch's bf16 matmul on a CPU:
 * A (f32, times alpha) is rounded to bf16 while it is packed (round to nearest even, as
 * vcvtne2ps2bf16 does), each product of two bf16 values is exact in f32, and the sums are f32.
 * vdpbf16ps adds the two products of a pair of K steps to the accumulator in one instruction, and
 * flushes denormal inputs and results to zero (Intel SDM, VDPBF16PS), so results are not those of
 * the f32 kernels on the rounded values, only close to them.
 *
 * Packed layouts (u32 = one pair of bf16, the even K step in the low half):
 *   A panel (MR rows):    a[q * MR + r] = (A[r, 2q], A[r, 2q + 1])      q < ceil(kc / 2)
 *   B panel (NR columns): b[q * NR + j] = (B[2q, j], B[2q + 1, j])
 * a K block of odd length ends with a pair whose odd half is 0 on both sides. One vdpbf16ps then
 * adds the two steps of a pair for 16 columns: the f32 tiles' register scheme with K halved. */
#include "gemm.h"

#include <string.h>

/* compilers with the AVX512-BF16 intrinsics (GCC 9, clang 9) and a __get_cpuid_count */
#if defined(__x86_64__) && ((defined(__clang__) && __clang_major__ >= 9) || \
                            (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 10))
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_BF16_BUILD 1

#define BF16_TARGET "avx512f,avx512bw,avx512vl,avx512bf16"

/* acc (MR x 16 NV) = sum over kp pairs of a's pair r times b's pairs; then C = or += acc. */
__attribute__((target(BF16_TARGET), always_inline)) static inline void bf16_tile(
    const int mr, const int nv, long kp, const uint32_t *a, const uint32_t *b, float *c, long ldc,
    int accumulate) {
  __m512 acc[24][2];
#pragma GCC unroll 24
  for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++) acc[r][v] = _mm512_setzero_ps();
  for (long q = 0; q < kp; q++) {
    __m512bh bv[2];
#pragma GCC unroll 2
    for (int v = 0; v < nv; v++) bv[v] = (__m512bh)_mm512_loadu_si512(b + 16 * v);
#pragma GCC unroll 24
    for (int r = 0; r < mr; r++) {
      __m512bh ar = (__m512bh)_mm512_set1_epi32((int)a[r]);
#pragma GCC unroll 2
      for (int v = 0; v < nv; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], ar, bv[v]);
    }
    a += mr;
    b += 16 * nv;
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
__attribute__((target(BF16_TARGET))) static void bf16_12x32(long kp, const uint32_t *a,
                                                            const uint32_t *b, float *c, long ldc,
                                                            int accumulate) {
  bf16_tile(12, 2, kp, a, b, c, ldc, accumulate);
}
__attribute__((target(BF16_TARGET))) static void bf16_24x16(long kp, const uint32_t *a,
                                                            const uint32_t *b, float *c, long ldc,
                                                            int accumulate) {
  bf16_tile(24, 1, kp, a, b, c, ldc, accumulate);
}

/* dst[q] = (bf16(x[2q]), bf16(x[2q + 1])) for q < ceil(n / 2), x[n] read as 0 when n is odd. */
__attribute__((target(BF16_TARGET))) static void round_pairs(uint32_t *dst, const float *x,
                                                             long n) {
  for (long p = 0; p < n; p += 32) {
    long left = n - p;
    __mmask16 lo = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
    __mmask16 hi = left >= 32   ? (__mmask16)0xffff
                   : left <= 16 ? (__mmask16)0
                                : (__mmask16)((1u << (left - 16)) - 1);
    __m512 vlo = _mm512_maskz_loadu_ps(lo, x + p);
    __m512 vhi = _mm512_maskz_loadu_ps(hi, x + p + 16);
    __m512i packed = (__m512i)_mm512_cvtne2ps_pbh(vhi, vlo); /* bf16 k order: x[p], x[p+1], .. */
    long pairs = (left < 32 ? left + 1 : 32) / 2;
    _mm512_mask_storeu_epi32(dst + p / 2, (__mmask16)((1u << pairs) - 1), packed);
  }
}

/* gemm.h, bf16_pack_a: A rows of the panel rounded to pairs (one row at a time, through `row`
 * when A must be gathered or scaled first), then transposed into the panel. */
__attribute__((target(BF16_TARGET))) static void pack_a_bf16(uint32_t *dst, const gemm_term *t,
                                                             const float *a, long i0, long mc,
                                                             long p0, long kc, int mr,
                                                             transpose_fn tr) {
  long kp = (kc + 1) / 2;
  uint32_t rows_buf[24 * (BF16_MAX_KC / 2)]; /* (MR, kp) pairs of one panel */
  float row[BF16_MAX_KC];
  for (long ip = 0; ip < mc; ip += mr) {
    long rows = mc - ip < mr ? mc - ip : mr;
    for (long r = 0; r < rows; r++) {
      const float *src = a + (i0 + ip + r) * t->rs_a + p0 * t->cs_a;
      if (t->cs_a != 1 || t->alpha != 1.0f) {
        for (long p = 0; p < kc; p++) row[p] = t->alpha * src[p * t->cs_a];
        src = row;
      }
      round_pairs(rows_buf + r * kp, src, kc);
    }
    /* the pairs are 32-bit units that the transposing copy moves unchanged (alpha 1) */
    tr((float *)dst, mr, mr, (const float *)rows_buf, kp, rows, kp, 1.0f);
    dst += kp * mr;
  }
}

/* gemm.h, bf16_pack_b. Three layouts of op(B): columns contiguous in K (a weight (N, K) used
 * transposed), whose pairs are already 32-bit units (a transposing copy, when aligned); rows
 * contiguous in N (a weight (K, N)), two rows interleaved 16 columns at a time; anything else
 * element by element. */
__attribute__((target(BF16_TARGET))) static void pack_b_bf16(uint32_t *dst, const gemm_term *t,
                                                             long p0, long kc, long j0, long nc,
                                                             int nr, transpose_fn tr) {
  long kp = (kc + 1) / 2, even = kc / 2;
  for (long jp = 0; jp < nc; jp += nr) {
    long cols = nc - jp < nr ? nc - jp : nr;
    const uint16_t *src = t->b16 + p0 * t->rs_b + (j0 + jp) * t->cs_b;
    if (t->rs_b == 1 && t->cs_b % 2 == 0 && ((uintptr_t)src & 3) == 0) {
      if (even > 0) tr((float *)dst, nr, nr, (const float *)src, t->cs_b / 2, cols, even, 1.0f);
      if (kp > even)
        for (long j = 0; j < nr; j++) dst[even * nr + j] = j < cols ? src[j * t->cs_b + kc - 1] : 0;
    } else if (t->cs_b == 1) {
      __mmask16 lo = cols >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1);
      __mmask16 hi = cols >= 32   ? (__mmask16)0xffff
                     : cols <= 16 ? (__mmask16)0
                                  : (__mmask16)((1u << (cols - 16)) - 1);
      for (long q = 0; q < kp; q++) {
        const uint16_t *r0 = src + 2 * q * t->rs_b, *r1 = r0 + t->rs_b;
        int has_r1 = 2 * q + 1 < kc;
        for (int j = 0; j < nr; j += 16) {
          __mmask16 m = j == 0 ? lo : hi;
          __m512i e = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, r0 + j));
          __m512i o = has_r1 ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, r1 + j))
                             : _mm512_setzero_si512();
          _mm512_storeu_si512(dst + q * nr + j, _mm512_or_si512(e, _mm512_slli_epi32(o, 16)));
        }
      }
    } else {
      for (long q = 0; q < kp; q++)
        for (long j = 0; j < nr; j++) {
          uint32_t lo = 0, hi = 0;
          if (j < cols) {
            lo = src[2 * q * t->rs_b + j * t->cs_b];
            if (2 * q + 1 < kc) hi = src[(2 * q + 1) * t->rs_b + j * t->cs_b];
          }
          dst[q * nr + j] = lo | hi << 16;
        }
    }
    dst += kp * nr;
  }
}

/* AVX512-BF16 is cpuid leaf 7, sub-leaf 1, EAX bit 5 (Intel SDM vol. 2, CPUID), read directly
 * because older compilers' __builtin_cpu_supports does not know its name; the AVX-512 checks
 * before it also cover the operating system's support for the zmm state. */
static int have_bf16(void) {
  unsigned eax, ebx, ecx, edx;
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) &&
         (eax >> 5 & 1) != 0;
}
#endif

int bf16_kernels_for(const ukernel *kernel, bf16_kernels *out) {
  memset(out, 0, sizeof *out);
#ifdef HAVE_BF16_BUILD
  /* the AVX-512 kernel's tiles, whose transposing copy the packing uses */
  if (strcmp(kernel->name, "avx512") != 0 || kernel->transpose == NULL || !have_bf16()) return 0;
  for (int i = 0; i < kernel->ntiles; i++) {
    const tile_kernel *t = &kernel->tiles[i];
    if (t->mr == 12 && t->nr == 32) out->tile[i] = bf16_12x32;
    else if (t->mr == 24 && t->nr == 16) out->tile[i] = bf16_24x16;
    else return 0;
  }
  out->pack_a = pack_a_bf16;
  out->pack_b = pack_b_bf16;
  return 1;
#else
  (void)kernel;
  return 0;
#endif
}
