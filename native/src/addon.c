/* Node-API entry points of the native engine (loaded by src/kernels/native/addon.ts).
 * Contract: the kernels work in place on the engine's heap, a shared WebAssembly.Memory, through
 * its base address, which is read once per engine from a Uint8Array over the memory's buffer
 * (V8 reserves a shared memory's whole maximum up front, so the base never moves when it grows).
 * Every operand arrives as a byte offset with its strides; gemm() checks that each operand lies
 * inside the memory's current length before touching it.
 *   kernels()                          -> names of the micro-kernels this CPU can run, best first
 *   createEngine(u8, threads, kernel?, spinMicros?) -> engine (an external; freed by destroyEngine
 *                                         or by the garbage collector)
 *   engineInfo(engine)                 -> { kernel, mr, nr (its main tile), mc, kc, nc, threads,
 *                                         bf16 (whether gemm takes a bf16 b: AVX512-BF16) }
 *   gemm(engine, params: Float64Array, heapBytes) -> undefined   (params layout: GEMM_PARAMS below,
 *                                         mirrored in src/kernels/native/params.ts)
 *   rowop(engine, params: Float64Array, heapBytes) -> undefined   (one small non-GEMM kernel of
 *                                         rowops.c on the calling thread; params: ROWOP_* below,
 *                                         mirrored in src/kernels/native/rowops.ts)
 *   destroyEngine(engine)
 *   baseAddress(u8)                    -> the address of u8's first byte, as a number (tests) */
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "rowops.h"

/* params: per term (2 terms) TERM_FIELDS numbers, then the call's fields. Offsets and strides are
 * in f32 elements (byte offsets / 4), except those of a term's b when its T_B_BF16 is 1: b is
 * then a bf16 matrix, offset and strides in bf16 elements (byte offsets / 2). */
enum {
  T_A, T_RS_A, T_CS_A, T_BATCH_A, T_B, T_RS_B, T_CS_B, T_BATCH_B, T_K, T_ALPHA, T_B_BF16,
  TERM_FIELDS
};
enum {
  P_C = 2 * TERM_FIELDS, P_RS_C, P_CS_C, P_BATCH_C, P_M, P_N, P_BATCH, P_NTERMS, P_ACCUMULATE,
  P_CAUSAL, P_PERIOD, GEMM_PARAMS
};

typedef struct {
  gemm_engine *gemm;
  uint8_t *base;
} engine;

#define CHECK(env, call)                                                      \
  do {                                                                        \
    if ((call) != napi_ok) {                                                  \
      napi_throw_error((env), NULL, "loraga_native: Node-API call failed: " #call); \
      return NULL;                                                            \
    }                                                                         \
  } while (0)

static napi_value throw_error(napi_env env, const char *message) {
  napi_throw_error(env, NULL, message);
  return NULL;
}

static napi_value get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv,
                           size_t *argc) {
  *argc = want;
  if (napi_get_cb_info(env, info, argc, argv, NULL, NULL) != napi_ok) return NULL;
  return argv[0];
}

static int uint8_base(napi_env env, napi_value value, uint8_t **base) {
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value buffer;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, &buffer, &offset) != napi_ok ||
      type != napi_uint8_array || data == NULL)
    return 0;
  *base = (uint8_t *)data - offset;
  return 1;
}

static napi_value js_kernels(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value list;
  CHECK(env, napi_create_array(env, &list));
  uint32_t n = 0;
  for (int i = 0; i < UKERNEL_COUNT; i++) {
    if (!UKERNELS[i].available()) continue;
    napi_value name;
    CHECK(env, napi_create_string_utf8(env, UKERNELS[i].kernel.name, NAPI_AUTO_LENGTH, &name));
    CHECK(env, napi_set_element(env, list, n++, name));
  }
  return list;
}

static void finalize_engine(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  engine *en = data;
  gemm_engine_destroy(en->gemm);
  free(en);
}

static napi_value js_create_engine(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  size_t argc;
  get_args(env, info, 4, argv, &argc);
  uint8_t *base;
  int32_t threads;
  if (argc < 2 || !uint8_base(env, argv[0], &base) ||
      napi_get_value_int32(env, argv[1], &threads) != napi_ok || threads < 1 || threads > 1024)
    return throw_error(env, "createEngine(u8: Uint8Array, threads: 1..1024, kernel?, spinMicros?)");
  const ukernel *kernel = NULL;
  char name[32] = "";
  napi_valuetype kind = napi_undefined;
  if (argc >= 3) napi_typeof(env, argv[2], &kind);
  if (kind == napi_string) {
    size_t len;
    CHECK(env, napi_get_value_string_utf8(env, argv[2], name, sizeof name, &len));
  }
  for (int i = 0; i < UKERNEL_COUNT && kernel == NULL; i++) {
    if (!UKERNELS[i].available()) continue;
    if (name[0] == '\0' || strcmp(name, UKERNELS[i].kernel.name) == 0) kernel = &UKERNELS[i].kernel;
  }
  if (kernel == NULL) return throw_error(env, "createEngine: this CPU cannot run that kernel");
  double spin_us = 200;
  if (argc >= 4) {
    napi_typeof(env, argv[3], &kind);
    if (kind == napi_number) CHECK(env, napi_get_value_double(env, argv[3], &spin_us));
  }
  engine *en = malloc(sizeof *en);
  if (en == NULL) return throw_error(env, "createEngine: out of memory");
  en->base = base;
  en->gemm = gemm_engine_create(kernel, threads, (long long)(spin_us * 1000));
  if (en->gemm == NULL) {
    free(en);
    return throw_error(env, "createEngine: cannot allocate packing buffers or start threads");
  }
  napi_value result;
  if (napi_create_external(env, en, finalize_engine, NULL, &result) != napi_ok) {
    finalize_engine(env, en, NULL);
    return throw_error(env, "createEngine: napi_create_external failed");
  }
  return result;
}

static engine *get_engine(napi_env env, napi_value value) {
  void *data = NULL;
  if (napi_get_value_external(env, value, &data) != napi_ok) return NULL;
  engine *en = data;
  return en != NULL && en->gemm != NULL ? en : NULL;
}

static napi_value set_number(napi_env env, napi_value obj, const char *key, double v) {
  napi_value n;
  if (napi_create_double(env, v, &n) != napi_ok) return NULL;
  if (napi_set_named_property(env, obj, key, n) != napi_ok) return NULL;
  return obj;
}

static napi_value js_engine_info(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  get_args(env, info, 1, argv, &argc);
  engine *en = argc < 1 ? NULL : get_engine(env, argv[0]);
  if (en == NULL) return throw_error(env, "engineInfo: not a live engine");
  const ukernel *k = gemm_engine_kernel(en->gemm);
  blocking b = gemm_engine_blocking(en->gemm);
  napi_value obj, name;
  CHECK(env, napi_create_object(env, &obj));
  CHECK(env, napi_create_string_utf8(env, k->name, NAPI_AUTO_LENGTH, &name));
  CHECK(env, napi_set_named_property(env, obj, "kernel", name));
  if (!set_number(env, obj, "mr", k->tiles[0].mr) || !set_number(env, obj, "nr", k->tiles[0].nr) ||
      !set_number(env, obj, "mc", (double)b.mc) || !set_number(env, obj, "kc", (double)b.kc) ||
      !set_number(env, obj, "nc", (double)b.nc) ||
      !set_number(env, obj, "threads", gemm_engine_threads(en->gemm)))
    return throw_error(env, "engineInfo: cannot build the result");
  napi_value bf16;
  CHECK(env, napi_get_boolean(env, gemm_engine_has_bf16(en->gemm), &bf16));
  CHECK(env, napi_set_named_property(env, obj, "bf16", bf16));
  return obj;
}

/* Largest element index an operand of `rows` x `cols` (strides rs, cs) repeated `batch` times
 * reaches, from element offset `off`; -1 for an empty operand. Strides are never negative. */
static double last_index(double off, double rows, double cols, double rs, double cs, double batch,
                         double bstride) {
  if (rows <= 0 || cols <= 0 || batch <= 0) return -1;
  return off + (batch - 1) * bstride + (rows - 1) * rs + (cols - 1) * cs;
}

/* Throws "<name><what>" (a call's own name, then the problem) and returns 0, for read_call. */
static int fail_call(napi_env env, const char *name, const char *what) {
  char message[96];
  snprintf(message, sizeof message, "%s%s", name, what);
  throw_error(env, message);
  return 0;
}

/* The arguments of gemm() and rowop(): (engine, params: Float64Array of at least `count` numbers,
 * heapBytes). Checks each of the first `count` params is finite and within +-1e18 (so that every
 * conversion to an integer is defined) before any is used; on failure throws a message that
 * starts with `name` and returns 0. */
static int read_call(napi_env env, napi_callback_info info, const char *name, size_t count,
                     engine **en, const double **params, double *heap_bytes) {
  napi_value argv[3];
  size_t argc;
  get_args(env, info, 3, argv, &argc);
  *en = argc < 3 ? NULL : get_engine(env, argv[0]);
  if (*en == NULL) return fail_call(env, name, ": not a live engine");
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value buffer;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &data, &buffer, &offset) != napi_ok ||
      type != napi_float64_array || length < count ||
      napi_get_value_double(env, argv[2], heap_bytes) != napi_ok)
    return fail_call(env, name, "(engine, params: Float64Array, heapBytes)");
  const double *p = data;
  for (size_t i = 0; i < count; i++)
    if (!(p[i] >= -1e18 && p[i] <= 1e18)) return fail_call(env, name, ": non-finite parameter");
  *params = p;
  return 1;
}

static napi_value js_gemm(napi_env env, napi_callback_info info) {
  engine *en;
  const double *p;
  double heap_bytes;
  if (!read_call(env, info, "gemm", GEMM_PARAMS, &en, &p, &heap_bytes)) return NULL;
  double limit = heap_bytes / 4; /* elements */
  gemm_call call;
  memset(&call, 0, sizeof call);
  call.m = (long)p[P_M];
  call.n = (long)p[P_N];
  call.batch = (long)p[P_BATCH];
  call.nterms = (int)p[P_NTERMS];
  if (call.nterms < 1 || call.nterms > 2 || call.m < 0 || call.n < 0 || call.batch < 0)
    return throw_error(env, "gemm: bad dims");
  float *heap = (float *)en->base;
  if (last_index(p[P_C], p[P_M], p[P_N], p[P_RS_C], p[P_CS_C], p[P_BATCH], p[P_BATCH_C]) >= limit ||
      p[P_C] < 0)
    return throw_error(env, "gemm: out lies outside the heap");
  call.c = heap + (long)p[P_C];
  call.rs_c = (long)p[P_RS_C];
  call.cs_c = (long)p[P_CS_C];
  call.batch_c = (long)p[P_BATCH_C];
  for (int t = 0; t < call.nterms; t++) {
    const double *q = p + t * TERM_FIELDS;
    int b_bf16 = q[T_B_BF16] != 0;
    double b_limit = b_bf16 ? heap_bytes / 2 : limit; /* in b's elements */
    if (q[T_K] < 0 || q[T_A] < 0 || q[T_B] < 0 ||
        last_index(q[T_A], p[P_M], q[T_K], q[T_RS_A], q[T_CS_A], p[P_BATCH], q[T_BATCH_A]) >= limit ||
        last_index(q[T_B], q[T_K], p[P_N], q[T_RS_B], q[T_CS_B], p[P_BATCH], q[T_BATCH_B]) >= b_limit)
      return throw_error(env, "gemm: an operand lies outside the heap");
    if (b_bf16 && !gemm_engine_has_bf16(en->gemm))
      return throw_error(env, "gemm: a bf16 b needs the AVX512-BF16 kernels, which this engine lacks");
    if (b_bf16 && ((p[P_BATCH] > 1 && q[T_BATCH_B] != 0) || p[P_CAUSAL] != CAUSAL_NONE))
      return throw_error(env, "gemm: a bf16 b must be shared by the batch, with no causal kind");
    gemm_term *g = &call.term[t];
    g->a = heap + (long)q[T_A];
    g->rs_a = (long)q[T_RS_A];
    g->cs_a = (long)q[T_CS_A];
    g->batch_a = (long)q[T_BATCH_A];
    g->b = b_bf16 ? NULL : heap + (long)q[T_B];
    g->b16 = b_bf16 ? (const uint16_t *)en->base + (long)q[T_B] : NULL;
    g->rs_b = (long)q[T_RS_B];
    g->cs_b = (long)q[T_CS_B];
    g->batch_b = (long)q[T_BATCH_B];
    g->k = (long)q[T_K];
    g->alpha = (float)q[T_ALPHA];
  }
  call.accumulate = p[P_ACCUMULATE] != 0;
  call.causal = (int)p[P_CAUSAL];
  call.period = (long)p[P_PERIOD];
  if (call.causal < CAUSAL_NONE || call.causal > CAUSAL_UPPER_A ||
      (call.causal != CAUSAL_NONE && call.period < 1))
    return throw_error(env, "gemm: bad causal kind or period");
  if (call.nterms == 2 && call.batch != 1) return throw_error(env, "gemm: a second term needs batch 1");
  gemm_run(en->gemm, &call);
  return NULL;
}

/* rowop params: [0] the op, then its fields in the order of the kernel's arguments (rowops.h);
 * tensors as element offsets into the heap (f32, or i32 for key lengths; -1: none). */
enum {
  ROWOP_ADD = 1,                /* out, a, b, n */
  ROWOP_SWIGLU,                 /* out, gate, up, n */
  ROWOP_SWIGLU_BACKWARD,        /* dGate, dUp, gate, up, dOut, n, accumulate */
  ROWOP_SOFTMAX,                /* probs, scores, batch, heads, tq, tk, scale, causal, keyLengths */
  ROWOP_SOFTMAX_BACKWARD,       /* dScores, probs, dProbs, scale, rows, cols, accumulate */
  ROWOP_RMSNORM,                /* out, rstd, inp, weight, rows, cols, eps */
  ROWOP_PERMUTE0213,            /* out, inp, a, b, c, d */
  ROWOP_ROPE,                   /* out, inp, cos, sin, batch, time, heads, dim */
  ROWOP_ROPE_BACKWARD,          /* dInp, dOut, cos, sin, batch, time, heads, dim, accumulate */
  ROWOP_RMSNORM_BACKWARD,       /* dInp, dWeight (-1: none), dOut, inp, weight, rstd, rows, cols,
                                   accumulate */
  ROWOP_PARAMS = 10
};

/* Whether p[from..to] are all >= 0 (counts and dims). */
static int counts_ok(const double *p, int from, int to) {
  for (int i = from; i <= to; i++)
    if (p[i] < 0) return 0;
  return 1;
}

/* Whether elements [off, off + count) lie inside a heap of `limit` elements. */
static int inside(double off, double count, double limit) {
  return off >= 0 && count >= 0 && off + count <= limit;
}

static napi_value js_rowop(napi_env env, napi_callback_info info) {
  engine *en;
  const double *p;
  double heap_bytes;
  if (!read_call(env, info, "rowop", ROWOP_PARAMS, &en, &p, &heap_bytes)) return NULL;
  double limit = heap_bytes / 4; /* elements */
  float *f = (float *)en->base;
  const char *bad = "rowop: an operand lies outside the heap";
#define F(i) (f + (long)p[i])
  switch ((int)p[0]) {
    case ROWOP_ADD:
    case ROWOP_SWIGLU:
      if (!inside(p[1], p[4], limit) || !inside(p[2], p[4], limit) ||
          !inside(p[3], p[4], limit))
        return throw_error(env, bad);
      if ((int)p[0] == ROWOP_ADD)
        rowop_add(F(1), F(2), F(3), (long)p[4]);
      else
        rowop_swiglu(F(1), F(2), F(3), (long)p[4]);
      return NULL;
    case ROWOP_SWIGLU_BACKWARD:
      for (int i = 1; i <= 5; i++)
        if (!inside(p[i], p[6], limit)) return throw_error(env, bad);
      rowop_swiglu_backward(F(1), F(2), F(3), F(4), F(5), (long)p[6], p[7] != 0);
      return NULL;
    case ROWOP_SOFTMAX: {
      double n = p[3] * p[4] * p[5] * p[6];
      if (!counts_ok(p, 3, 6) || !inside(p[1], n, limit) || !inside(p[2], n, limit) ||
          (p[9] >= 0 && !inside(p[9], p[3], limit)))
        return throw_error(env, bad);
      const int32_t *key_lengths = p[9] >= 0 ? (const int32_t *)en->base + (long)p[9] : NULL;
      rowop_attention_softmax(F(1), F(2), (long)p[3], (long)p[4], (long)p[5], (long)p[6],
                              (float)p[7], p[8] != 0, key_lengths);
      return NULL;
    }
    case ROWOP_SOFTMAX_BACKWARD: {
      double n = p[5] * p[6];
      if (!counts_ok(p, 5, 6) || !inside(p[1], n, limit) || !inside(p[2], n, limit) ||
          !inside(p[3], n, limit))
        return throw_error(env, bad);
      rowop_attention_softmax_backward(F(1), F(2), F(3), (float)p[4], (long)p[5], (long)p[6],
                                       p[7] != 0);
      return NULL;
    }
    case ROWOP_RMSNORM: {
      double n = p[5] * p[6];
      if (!counts_ok(p, 5, 6) || !inside(p[1], n, limit) || !inside(p[2], p[5], limit) ||
          !inside(p[3], n, limit) || !inside(p[4], p[6], limit))
        return throw_error(env, bad);
      rowop_rmsnorm(F(1), F(2), F(3), F(4), (long)p[5], (long)p[6], p[7]);
      return NULL;
    }
    case ROWOP_PERMUTE0213: {
      double n = p[3] * p[4] * p[5] * p[6];
      if (!counts_ok(p, 3, 6) || !inside(p[1], n, limit) || !inside(p[2], n, limit))
        return throw_error(env, bad);
      rowop_permute0213(F(1), F(2), (long)p[3], (long)p[4], (long)p[5], (long)p[6]);
      return NULL;
    }
    case ROWOP_ROPE:
    case ROWOP_ROPE_BACKWARD: {
      double n = p[5] * p[6] * p[7] * p[8], table = p[6] * p[8] / 2;
      if (!counts_ok(p, 5, 8) || !inside(p[1], n, limit) || !inside(p[2], n, limit) ||
          !inside(p[3], table, limit) || !inside(p[4], table, limit))
        return throw_error(env, bad);
      if ((int)p[0] == ROWOP_ROPE)
        rowop_rope(F(1), F(2), F(3), F(4), (long)p[5], (long)p[6], (long)p[7], (long)p[8]);
      else
        rowop_rope_backward(F(1), F(2), F(3), F(4), (long)p[5], (long)p[6], (long)p[7],
                            (long)p[8], p[9] != 0);
      return NULL;
    }
    case ROWOP_RMSNORM_BACKWARD: {
      double n = p[7] * p[8];
      if (!counts_ok(p, 7, 8) || !inside(p[1], n, limit) ||
          (p[2] >= 0 && !inside(p[2], p[8], limit)) || !inside(p[3], n, limit) ||
          !inside(p[4], n, limit) || !inside(p[5], p[8], limit) || !inside(p[6], p[7], limit))
        return throw_error(env, bad);
      rowop_rmsnorm_backward(F(1), p[2] >= 0 ? F(2) : NULL, F(3), F(4), F(5), F(6), (long)p[7],
                             (long)p[8], p[9] != 0);
      return NULL;
    }
    default:
      return throw_error(env, "rowop: unknown op");
  }
#undef F
}

static napi_value js_destroy_engine(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  get_args(env, info, 1, argv, &argc);
  engine *en = argc < 1 ? NULL : get_engine(env, argv[0]);
  if (en == NULL) return NULL; /* already destroyed: nothing to do */
  gemm_engine_destroy(en->gemm);
  en->gemm = NULL; /* the external keeps `en` until it is collected */
  return NULL;
}

static napi_value js_base_address(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc;
  get_args(env, info, 1, argv, &argc);
  uint8_t *base;
  if (argc < 1 || !uint8_base(env, argv[0], &base)) return throw_error(env, "baseAddress(u8)");
  napi_value result;
  CHECK(env, napi_create_double(env, (double)(uintptr_t)base, &result));
  return result;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"kernels", NULL, js_kernels, NULL, NULL, NULL, napi_enumerable, NULL},
      {"createEngine", NULL, js_create_engine, NULL, NULL, NULL, napi_enumerable, NULL},
      {"engineInfo", NULL, js_engine_info, NULL, NULL, NULL, napi_enumerable, NULL},
      {"gemm", NULL, js_gemm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rowop", NULL, js_rowop, NULL, NULL, NULL, napi_enumerable, NULL},
      {"destroyEngine", NULL, js_destroy_engine, NULL, NULL, NULL, napi_enumerable, NULL},
      {"baseAddress", NULL, js_base_address, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
