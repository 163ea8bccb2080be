// Causal self-attention, forward and backward, for every architecture: out = softmax(scale * Q K^T
// + causal mask + padding mask) V per head, with grouped-query heads (query head h reads key/value
// head floor(h / g), g = H / Hkv: HF's repeat_kv). Two implementations with the same results:
//
//   "tiled" (default) query-tiled attention (Rabe & Staats 2021, "Self-attention does not need
//           O(n^2) memory", arXiv 2112.05682, section 2). A tile is either Tq query rows of one
//           head, scored against the Tk = i0 + Tq keys those rows can see, or, when they fit,
//           whole heads (g*T rows per key/value head), whose products skip the masked half as the
//           full path's do. Softmax, then P V. A tile holds whole rows, so its softmax is exact (no
//           online rescaling). Nothing (T, T) is kept: backward recomputes each tile's
//           probabilities from Q and K (FlashAttention's recomputation, Dao et al. 2022, section
//           3.1) and runs the softmax backward on the tile. Scratch: three tile buffers of
//           tile * T floats per plan, shared by all layers. Why tiles over the existing kernels
//           rather than a fused kernel: docs/engine-notes.md ("Attention").
//   "full"  the whole (B, H, T, T) probabilities per layer, kept for backward, and two more
//           (B, H, T, T) buffers in backward: memory quadratic in T, kept to compare against.
//
// Both use the Kernels interface (matmul, attentionSoftmax, attentionSoftmaxBackward), so they run
// on every engine; a sliding window masks the raw scores with Kernels.maskOutsideWindow (the rule:
// kernels/ref/columns.ts). Per-layer numbers (the score scale, the window) travel in
// AttentionParams, so an architecture with others (logit soft-capping) extends that object and the
// two implementations, not its callers. Contract: the plan object allocates its buffers once
// (through the caller's plan allocator); forward overwrites `out`, backward overwrites dq, dk and
// dv; nothing else is written. Padding is right padding masked on the key side (keyLengths), as
// HF's eager mask does.
// Legend: B batch, T time, H query heads, Hkv key/value heads, g = H / Hkv, D head dim, Tq query
// rows of a tile, Tk keys a tile sees.

import type { Kernels } from "../kernels/kernels.js";
import type { Tensor } from "../tensor/tensor.js";
import { causalProducts } from "./common.js";

/** How attention is computed: "tiled" (memory linear in T) or "full" ((T, T) per head). */
export type AttentionImpl = "tiled" | "full";

/**
 * Query rows per tile: a number, or "auto": as many rows as fit AUTO_TILE_FLOATS floats of scores
 * (tile buffers of 1 MiB: whole heads at a time for short sequences, row tiles for long ones), at
 * least AUTO_MIN_ROWS (so the tile's products stay large enough for the GEMMs to run fast).
 */
export type AttentionTile = number | "auto";
const AUTO_TILE_FLOATS = 2 ** 18;
const AUTO_MIN_ROWS = 64;

/** Sizes of one attention call. */
interface AttentionDims {
  B: number;
  T: number;
  H: number;
  Hkv: number;
  D: number;
}

/** Per-layer numbers of the attention itself (what differs between architectures and layers). */
interface AttentionParams {
  /** Multiplies Q K^T before the softmax (1/sqrt(D) for most models). */
  scale: number;
  /** Sliding-window layers: the keys a query sees, itself included (absent or null: all). */
  window?: number | null;
}

/** Masks raw scores (M, Tq, Tk) outside the layer's window, if it has one (Kernels.maskOutsideWindow). */
function maskWindow(k: Kernels, scores: Tensor, p: AttentionParams): void {
  if (p.window !== undefined && p.window !== null) k.maskOutsideWindow(scores, p.window);
}

/**
 * Some heads of a (B, N, T, D) tensor: heads first .. first+count-1 of each batch row, count = H
 * for queries and Hkv for keys and values. GPT-2 keeps Q, K and V in one (B, 3H, T, D) tensor
 * (first = 0, H, 2H); the Llama family has a tensor per role (first = 0).
 */
export interface Heads {
  tensor: Tensor;
  first?: number;
}

/** Allocates a plan-owned f32 tensor (the architecture plan's allocator). */
type Allocate = (shape: number[]) => Tensor;

/**
 * The attention buffers of one (B, T) plan: each layer's saved state for backward (savedBuffer)
 * and the scratch shared by every layer. forward and backward take the layer's saved state.
 */
export class AttentionPlan {
  readonly impl: AttentionImpl;
  private readonly d: AttentionDims;
  private readonly tile: number;
  private readonly allocate: Allocate;
  // tiled: one tile of probabilities, of their gradient and of the scores' gradient, (tile, T) each
  // full: dProbs and dScores (B, H, T, T); probabilities are the layers' saved state
  private readonly bufA: Tensor;
  private readonly bufB: Tensor;
  private readonly bufC: Tensor | null;

  constructor(
    allocate: Allocate,
    d: AttentionDims,
    impl: AttentionImpl,
    tileOption: AttentionTile,
  ) {
    const tile =
      tileOption === "auto"
        ? Math.max(AUTO_MIN_ROWS, Math.floor(AUTO_TILE_FLOATS / d.T))
        : tileOption;
    if (!(Number.isSafeInteger(tile) && tile > 0)) {
      throw new Error(
        `attention: the tile must be "auto" or a positive integer of query rows, got ${tileOption}`,
      );
    }
    this.impl = impl;
    this.d = d;
    // a tile never holds more rows than one batch row's heads: H*T (g*T per key/value head)
    this.tile = Math.min(tile, d.H * d.T);
    this.allocate = allocate;
    const { B, T, H } = d;
    if (impl === "full") {
      this.bufA = allocate([B, H, T, T]);
      this.bufB = allocate([B, H, T, T]);
      this.bufC = null;
    } else {
      this.bufA = allocate([this.tile * T]);
      this.bufB = allocate([this.tile * T]);
      this.bufC = allocate([this.tile * T]);
    }
  }

  /** A layer's saved state: its (B, H, T, T) probabilities ("full"), or null ("tiled": none). */
  savedBuffer(): Tensor | null {
    const { B, T, H } = this.d;
    return this.impl === "full" ? this.allocate([B, H, T, T]) : null;
  }

  /**
   * out (B, H, T, D) = attention of q (H heads) over k, v (Hkv heads), keys j < keyLengths[b]
   * (B, i32) only. saved: the layer's savedBuffer(), filled for backward.
   */
  forward(
    k: Kernels,
    out: Tensor,
    q: Heads,
    key: Heads,
    value: Heads,
    keyLengths: Tensor,
    saved: Tensor | null,
    p: AttentionParams,
  ): void {
    if (this.impl === "full") this.fullForward(k, out, q, key, value, keyLengths, need(saved), p);
    else this.tiledForward(k, out, q, key, value, keyLengths, p);
  }

  /**
   * Overwrites dq (H heads), dk and dv (Hkv heads) with the gradients of forward's inputs given
   * dOut (B, H, T, D); reads the same q, k, v, keyLengths and saved state as forward.
   */
  backward(
    k: Kernels,
    dq: Heads,
    dk: Heads,
    dv: Heads,
    dOut: Tensor,
    q: Heads,
    key: Heads,
    value: Heads,
    keyLengths: Tensor,
    saved: Tensor | null,
    p: AttentionParams,
  ): void {
    if (this.impl === "full") {
      this.fullBackward(k, dq, dk, dv, dOut, q, key, value, need(saved), p);
    } else {
      this.tiledBackward(k, dq, dk, dv, dOut, q, key, value, keyLengths, p);
    }
  }

  // ---- tiled -------------------------------------------------------------------------------

  private tiledForward(
    k: Kernels,
    out: Tensor,
    q: Heads,
    key: Heads,
    value: Heads,
    keyLengths: Tensor,
    p: AttentionParams,
  ): void {
    if (this.headsPerTile() > 0) {
      this.headsForward(k, out, q, key, value, keyLengths, p);
      return;
    }
    const { B, T, H, Hkv, D } = this.d;
    const g = H / Hkv;
    for (let b = 0; b < B; b++) {
      const lengths = keyLengths.view([1], b);
      for (let h = 0; h < H; h++) {
        const qAt = headAt(q, this.d, b, h);
        const kAt = headAt(key, this.d, b, Math.floor(h / g));
        const vAt = headAt(value, this.d, b, Math.floor(h / g));
        const oAt = (b * H + h) * T * D;
        for (let i0 = 0; i0 < T; i0 += this.tile) {
          const Tq = Math.min(this.tile, T - i0);
          const Tk = i0 + Tq; // keys 0 .. i0+Tq-1: every key a query of the tile may see
          const probs = this.bufA.view([Tq, Tk]);
          const qTile = qAt.tensor.view([Tq, D], qAt.offset + i0 * D);
          k.matmul(probs, qTile, kAt.tensor.view([Tk, D], kAt.offset), { transB: true }); // raw scores
          maskWindow(k, probs.view([1, Tq, Tk]), p);
          // causal with the KV offset Tk - Tq = i0: row r sees keys j <= i0 + r
          k.attentionSoftmax(probs.view([1, 1, Tq, Tk]), probs.view([1, 1, Tq, Tk]), {
            scale: p.scale,
            causal: true,
            keyLengths: lengths,
          });
          k.matmul(out.view([Tq, D], oAt + i0 * D), probs, vAt.tensor.view([Tk, D], vAt.offset));
        }
      }
    }
  }

  private tiledBackward(
    k: Kernels,
    dq: Heads,
    dk: Heads,
    dv: Heads,
    dOut: Tensor,
    q: Heads,
    key: Heads,
    value: Heads,
    keyLengths: Tensor,
    p: AttentionParams,
  ): void {
    if (this.headsPerTile() > 0) {
      this.headsBackward(k, dq, dk, dv, dOut, q, key, value, keyLengths, p);
      return;
    }
    const { B, T, H, Hkv, D } = this.d;
    const g = H / Hkv;
    const dScores = need(this.bufC);
    const overwrite = { accumulate: false };
    for (let b = 0; b < B; b++) {
      const lengths = keyLengths.view([1], b);
      for (let hk = 0; hk < Hkv; hk++) {
        // dk, dv of a key/value head sum over its g query heads and every tile: zero, then add
        const dkAt = headAt(dk, this.d, b, hk);
        const dvAt = headAt(dv, this.d, b, hk);
        k.fill(dkAt.tensor.view([T * D], dkAt.offset), 0);
        k.fill(dvAt.tensor.view([T * D], dvAt.offset), 0);
      }
      for (let h = 0; h < H; h++) {
        const qAt = headAt(q, this.d, b, h);
        const dqAt = headAt(dq, this.d, b, h);
        const kAt = headAt(key, this.d, b, Math.floor(h / g));
        const vAt = headAt(value, this.d, b, Math.floor(h / g));
        const dkAt = headAt(dk, this.d, b, Math.floor(h / g));
        const dvAt = headAt(dv, this.d, b, Math.floor(h / g));
        const oAt = (b * H + h) * T * D;
        for (let i0 = 0; i0 < T; i0 += this.tile) {
          const Tq = Math.min(this.tile, T - i0);
          const Tk = i0 + Tq;
          const probs = this.bufA.view([Tq, Tk]);
          const dProbs = this.bufB.view([Tq, Tk]);
          const dS = dScores.view([Tq, Tk]);
          const qTile = qAt.tensor.view([Tq, D], qAt.offset + i0 * D);
          const keys = kAt.tensor.view([Tk, D], kAt.offset);
          const values = vAt.tensor.view([Tk, D], vAt.offset);
          const dOutTile = dOut.view([Tq, D], oAt + i0 * D);
          // recompute the tile's probabilities exactly as forward did
          k.matmul(probs, qTile, keys, { transB: true });
          maskWindow(k, probs.view([1, Tq, Tk]), p);
          k.attentionSoftmax(probs.view([1, 1, Tq, Tk]), probs.view([1, 1, Tq, Tk]), {
            scale: p.scale,
            causal: true,
            keyLengths: lengths,
          });
          k.matmul(dProbs, dOutTile, values, { transB: true }); // dP = dO V^T
          k.matmul(dvAt.tensor.view([Tk, D], dvAt.offset), probs, dOutTile, {
            transA: true,
            accumulate: true,
          }); // dV += P^T dO
          k.attentionSoftmaxBackward(dS, probs, dProbs, p.scale, overwrite);
          k.matmul(dqAt.tensor.view([Tq, D], dqAt.offset + i0 * D), dS, keys); // dQ = dS K
          k.matmul(dkAt.tensor.view([Tk, D], dkAt.offset), dS, qTile, {
            transA: true,
            accumulate: true,
          }); // dK += dS^T Q
        }
      }
    }
  }

  /**
   * Key/value heads whose g*T query rows fit in one tile together (0 when even one does not):
   * then a tile is whole heads, and the products skip the masked half as the full path's do.
   */
  private headsPerTile(): number {
    const { T, H, Hkv } = this.d;
    return Math.min(Hkv, Math.floor(this.tile / ((H / Hkv) * T)));
  }

  /** tiledForward when whole heads fit in a tile: n key/value heads of one batch row per step. */
  private headsForward(
    k: Kernels,
    out: Tensor,
    q: Heads,
    key: Heads,
    value: Heads,
    keyLengths: Tensor,
    p: AttentionParams,
  ): void {
    const { maskOut, lowerA } = causalProducts(this.d.T);
    for (const t of this.headTiles(keyLengths)) {
      const probs = t.scores(this.bufA);
      k.matmul(probs, t.q(q), t.kv(key), { transB: true, causal: maskOut }); // raw scores
      maskWindow(k, t.headRows(probs), p);
      k.attentionSoftmax(t.heads4(probs), t.heads4(probs), t.softmax(p.scale));
      k.matmul(t.out(out), probs, t.kv(value), { causal: lowerA });
    }
  }

  /** tiledBackward when whole heads fit in a tile; a step owns its key/value heads' dk, dv. */
  private headsBackward(
    k: Kernels,
    dq: Heads,
    dk: Heads,
    dv: Heads,
    dOut: Tensor,
    q: Heads,
    key: Heads,
    value: Heads,
    keyLengths: Tensor,
    p: AttentionParams,
  ): void {
    const { maskOut, lowerA, upperA } = causalProducts(this.d.T);
    for (const t of this.headTiles(keyLengths)) {
      const probs = t.scores(this.bufA);
      const dProbs = t.scores(this.bufB);
      const dScores = t.scores(need(this.bufC));
      // recompute the probabilities exactly as forward did
      k.matmul(probs, t.q(q), t.kv(key), { transB: true, causal: maskOut });
      maskWindow(k, t.headRows(probs), p);
      k.attentionSoftmax(t.heads4(probs), t.heads4(probs), t.softmax(p.scale));
      k.matmul(dProbs, t.out(dOut), t.kv(value), { transB: true, causal: maskOut }); // dO V^T
      // P^T dO, summing the g query heads of each key/value head
      k.matmul(t.kv(dv), probs, t.out(dOut), { transA: true, causal: upperA });
      k.attentionSoftmaxBackward(dScores, probs, dProbs, p.scale, { accumulate: false });
      k.matmul(t.q(dq), dScores, t.kv(key), { causal: lowerA }); // dS K
      k.matmul(t.kv(dk), dScores, t.q(q), { transA: true, causal: upperA }); // dS^T Q
    }
  }

  /**
   * The steps of headsForward / headsBackward: per batch row b, n key/value heads hk0.. at a time
   * (fewer in the last step), as views: queries (n, g*T, D), keys/values (n, T, D), scores
   * (n, g*T, T) in a tile buffer, and the softmax over them with row b's key length.
   */
  private *headTiles(keyLengths: Tensor) {
    const { B, T, H, Hkv, D } = this.d;
    const g = H / Hkv;
    const perTile = this.headsPerTile();
    for (let b = 0; b < B; b++) {
      for (let hk0 = 0; hk0 < Hkv; hk0 += perTile) {
        const n = Math.min(perTile, Hkv - hk0);
        const d = this.d;
        yield {
          q: (x: Heads) => x.tensor.view([n, g * T, D], headAt(x, d, b, hk0 * g).offset),
          kv: (x: Heads) => x.tensor.view([n, T, D], headAt(x, d, b, hk0).offset),
          out: (x: Tensor) => x.view([n, g * T, D], (b * H + hk0 * g) * T * D), // (B, H, T, D)
          scores: (buf: Tensor) => buf.view([n, g * T, T]),
          heads4: (scores: Tensor) => scores.view([1, n * g, T, T]),
          headRows: (scores: Tensor) => scores.view([n * g, T, T]),
          softmax: (scale: number) => ({
            scale,
            causal: true,
            keyLengths: keyLengths.view([1], b),
          }),
        };
      }
    }
  }

  // ---- full --------------------------------------------------------------------------------

  private fullForward(
    k: Kernels,
    out: Tensor,
    q: Heads,
    key: Heads,
    value: Heads,
    keyLengths: Tensor,
    probs: Tensor,
    p: AttentionParams,
  ): void {
    const { maskOut, lowerA } = causalProducts(this.d.T);
    for (const r of this.rowGroups([q], [key, value])) {
      k.matmul(r.scores(probs), r.q(q), r.kv(key), { transB: true, causal: maskOut }); // raw scores
    }
    const { B, T, H } = this.d;
    maskWindow(k, probs.view([B * H, T, T]), p);
    k.attentionSoftmax(probs, probs, { scale: p.scale, causal: true, keyLengths });
    for (const r of this.rowGroups([q], [key, value]))
      k.matmul(r.out(out), r.scores(probs), r.kv(value), { causal: lowerA });
  }

  private fullBackward(
    k: Kernels,
    dq: Heads,
    dk: Heads,
    dv: Heads,
    dOut: Tensor,
    q: Heads,
    key: Heads,
    value: Heads,
    probs: Tensor,
    p: AttentionParams,
  ): void {
    const { maskOut, lowerA, upperA } = causalProducts(this.d.T);
    const dProbs = this.bufA;
    const dScores = this.bufB;
    for (const r of this.rowGroups([q, dq], [key, value, dk, dv])) {
      k.matmul(r.scores(dProbs), r.out(dOut), r.kv(value), { transB: true, causal: maskOut });
      // sums the g query heads of each key/value head
      k.matmul(r.kv(dv), r.scores(probs), r.out(dOut), { transA: true, causal: upperA });
    }
    k.attentionSoftmaxBackward(dScores, probs, dProbs, p.scale, { accumulate: false });
    for (const r of this.rowGroups([q, dq], [key, value, dk, dv])) {
      k.matmul(r.q(dq), r.scores(dScores), r.kv(key), { causal: lowerA });
      k.matmul(r.kv(dk), r.scores(dScores), r.q(q), { transA: true, causal: upperA });
    }
  }

  /**
   * Grouped-query views for the full products, as few calls as the layouts allow: queries
   * (n*Hkv, g*T, D) against keys/values (n*Hkv, T, D) and scores (n*Hkv, g*T, T), over all B rows
   * at once (n = B) when every tensor holds only its own heads, else one batch row at a time (n = 1).
   */
  private rowGroups(queries: Heads[], keysValues: Heads[]) {
    const { B, T, H, Hkv, D } = this.d;
    const g = H / Hkv;
    const own = (x: Heads, count: number) =>
      (x.first ?? 0) === 0 && headsPerRow(x, this.d) === count;
    const whole = queries.every((x) => own(x, H)) && keysValues.every((x) => own(x, Hkv));
    const n = whole ? B : 1;
    const groups = [];
    for (let b = 0; b < B; b += n) {
      const start = (x: Heads) => (b * headsPerRow(x, this.d) + (x.first ?? 0)) * T * D;
      groups.push({
        q: (x: Heads) => x.tensor.view([n * Hkv, g * T, D], start(x)),
        kv: (x: Heads) => x.tensor.view([n * Hkv, T, D], start(x)),
        out: (x: Tensor) => x.view([n * Hkv, g * T, D], b * H * T * D), // (B, H, T, D) tensors
        scores: (x: Tensor) => x.view([n * Hkv, g * T, T], b * H * T * T), // (B, H, T, T) tensors
      });
    }
    return groups;
  }
}

/** N of a Heads' (B, N, T, D) tensor. */
function headsPerRow(x: Heads, d: AttentionDims): number {
  return x.tensor.size / (d.B * d.T * d.D);
}

/** Head h of batch row b of x: its (T, D) block starts `offset` elements into x.tensor. */
function headAt(x: Heads, d: AttentionDims, b: number, h: number) {
  const offset = (b * headsPerRow(x, d) + (x.first ?? 0) + h) * d.T * d.D;
  return { tensor: x.tensor, offset };
}

function need(saved: Tensor | null): Tensor {
  if (saved === null) throw new Error("internal: full attention without saved probabilities");
  return saved;
}
