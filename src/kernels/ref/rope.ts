// Reference rotary position embedding (RoPE, Su et al. 2021, arXiv 2104.09864) in Hugging Face's
// rotate-half layout, its backward, and the cos/sin tables the models feed it.
//
// Legend: B batch, T time, H heads, D head dim (even), D/2 rotation pairs (i, i + D/2).
// x, out, dOut, dInp: (B, T, H, D); cos, sin: (T, D/2).
//   out[i]       = x[i] cos[t,i] - x[i+D/2] sin[t,i]
//   out[i+D/2]   = x[i+D/2] cos[t,i] + x[i] sin[t,i]
// The backward is the transposed rotation (rotation by -theta), accumulated into dInp (or written
// over it, without reading it, when `accumulate` is false).
//
// ropeTables reproduces Hugging Face transformers' inverse frequencies for rope_type "default",
// "linear", "llama3" and "longrope" (modeling_rope_utils.py: _compute_default_rope_parameters,
// _compute_linear_scaling_rope_parameters, _compute_llama3_parameters,
// _compute_longrope_parameters with longrope_frequency_update: the long factors when the call's
// largest position + 1 exceeds original_max_position_embeddings, cos/sin times attention_factor)
// and LlamaRotaryEmbedding's cos/sin, rounding every intermediate to float32 as PyTorch does, so tables agree to the ulp
// level with transformers' (they are checked against a torch fixture).

import type { Floats } from "./types.js";

export interface RopeDims {
  batch: number;
  time: number;
  heads: number;
  headDim: number;
}

export function rope(out: Floats, inp: Floats, cos: Floats, sin: Floats, dims: RopeDims): void {
  const { batch, time, heads, headDim } = dims;
  const half = headDim >> 1;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < time; t++) {
      const table = t * half;
      for (let h = 0; h < heads; h++) {
        const base = ((b * time + t) * heads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const c = cos[table + i];
          const s = sin[table + i];
          const x1 = inp[base + i];
          const x2 = inp[base + i + half];
          out[base + i] = x1 * c - x2 * s;
          out[base + i + half] = x2 * c + x1 * s;
        }
      }
    }
  }
}

/** dInp += R(-theta) dOut  (dInp = R(-theta) dOut when !accumulate) */
export function ropeBackward(
  dInp: Floats,
  dOut: Floats,
  cos: Floats,
  sin: Floats,
  dims: RopeDims,
  accumulate = true,
): void {
  const { batch, time, heads, headDim } = dims;
  const half = headDim >> 1;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < time; t++) {
      const table = t * half;
      for (let h = 0; h < heads; h++) {
        const base = ((b * time + t) * heads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const c = cos[table + i];
          const s = sin[table + i];
          const d1 = dOut[base + i];
          const d2 = dOut[base + i + half];
          const y1 = d1 * c + d2 * s;
          const y2 = d2 * c - d1 * s;
          dInp[base + i] = accumulate ? dInp[base + i] + y1 : y1;
          dInp[base + i + half] = accumulate ? dInp[base + i + half] + y2 : y2;
        }
      }
    }
  }
}

/** rope_scaling as transformers' config.json spells it, with camelCase field names. */
export type RopeScaling =
  | { type: "linear"; factor: number }
  | {
      type: "llama3";
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    }
  | {
      type: "longrope";
      shortFactor: readonly number[];
      longFactor: readonly number[];
      originalMaxPositionEmbeddings: number;
      attentionFactor: number;
    };

export interface RopeTableConfig {
  /** rope_theta (the base of the geometric frequency ladder). */
  theta: number;
  /** Absent: rope_type "default". */
  scaling?: RopeScaling;
}

const f32 = Math.fround;

/** float32 `scalar / tensor` as torch computes it: reciprocal, then multiply. */
function scalarDiv(scalar: number, value: number): number {
  return f32(f32(1 / value) * f32(scalar));
}

/** float32 `tensor / scalar` as torch computes it on the CPU. */
function divScalar(value: number, scalar: number): number {
  return f32(value / f32(scalar));
}

/**
 * Inverse frequencies (D/2) in float32, as transformers computes them. seqLen (largest position
 * + 1) only matters to longrope.
 */
export function ropeInverseFrequencies(
  headDim: number,
  config: RopeTableConfig,
  seqLen = 0,
): Float32Array {
  if (!Number.isInteger(headDim) || headDim <= 0 || headDim % 2 !== 0) {
    throw new Error(`ropeTables: head dim must be a positive even integer, got ${headDim}`);
  }
  if (!(config.theta > 0))
    throw new Error(`ropeTables: theta must be positive, got ${config.theta}`);
  const half = headDim / 2;
  const invFreq = new Float32Array(half);
  // default: inv_freq = 1 / theta^(arange(0, D, 2) / D), each op in float32
  for (let i = 0; i < half; i++) invFreq[i] = f32(1 / f32(config.theta ** f32((2 * i) / headDim)));
  // (torch evaluates `scalar / tensor` as reciprocal(tensor) * scalar (Tensor.__rdiv__) and
  // `tensor / scalar` as a float32 division; the helpers below follow that.)
  const scaling = config.scaling;
  if (scaling === undefined) return invFreq;
  if (scaling.type === "longrope") {
    // inv_freq = 1 / (ext_factors * theta^(arange(0, D, 2) / D)), ext = long or short factors
    const ext =
      seqLen > scaling.originalMaxPositionEmbeddings ? scaling.longFactor : scaling.shortFactor;
    if (ext.length !== half)
      throw new Error(`ropeTables: longrope factors have ${ext.length} entries, need ${half}`);
    for (let i = 0; i < half; i++) {
      const power = f32(config.theta ** f32((2 * i) / headDim));
      invFreq[i] = f32(1 / f32(f32(ext[i]) * power));
    }
    return invFreq;
  }
  if (!(scaling.factor > 0)) {
    throw new Error(`ropeTables: rope scaling factor must be positive, got ${scaling.factor}`);
  }
  if (scaling.type === "linear") {
    // linear (position interpolation): inv_freq / factor
    for (let i = 0; i < half; i++) invFreq[i] = divScalar(invFreq[i], scaling.factor);
    return invFreq;
  }
  // llama3: long wavelengths divided by factor, short ones kept, a smooth blend in between.
  const {
    factor,
    lowFreqFactor,
    highFreqFactor,
    originalMaxPositionEmbeddings: oldContext,
  } = scaling;
  if (!(highFreqFactor > lowFreqFactor)) {
    throw new Error(
      `ropeTables: llama3 high_freq_factor (${highFreqFactor}) must exceed low_freq_factor (${lowFreqFactor})`,
    );
  }
  const lowFreqWavelen = oldContext / lowFreqFactor; // Python floats (double)
  const highFreqWavelen = oldContext / highFreqFactor;
  for (let i = 0; i < half; i++) {
    const inv = invFreq[i];
    const wavelen = scalarDiv(2 * Math.PI, inv);
    const base = wavelen > lowFreqWavelen ? divScalar(inv, factor) : inv;
    if (wavelen < highFreqWavelen || wavelen > lowFreqWavelen) {
      invFreq[i] = base;
    } else {
      const ratio = scalarDiv(oldContext, wavelen);
      const smooth = divScalar(f32(ratio - lowFreqFactor), highFreqFactor - lowFreqFactor);
      invFreq[i] = f32(divScalar(f32(f32(1 - smooth) * base), factor) + f32(smooth * base));
    }
  }
  return invFreq;
}

/**
 * cos, sin (T, D/2) for the given positions: angle[t, i] = position[t] * inv_freq[i] (float32),
 * as LlamaRotaryEmbedding.forward computes them (its emb repeats these halves twice).
 */
export function ropeTables(
  headDim: number,
  positions: readonly number[] | Int32Array,
  config: RopeTableConfig,
): { cos: Float32Array; sin: Float32Array } {
  let seqLen = 0;
  for (const p of positions) seqLen = Math.max(seqLen, p + 1);
  const invFreq = ropeInverseFrequencies(headDim, config, seqLen);
  // longrope scales cos and sin (attention_factor); 1 for every other type
  const scale = config.scaling?.type === "longrope" ? f32(config.scaling.attentionFactor) : 1;
  const half = headDim / 2;
  const cos = new Float32Array(positions.length * half); // (T, D/2)
  const sin = new Float32Array(positions.length * half); // (T, D/2)
  for (let t = 0; t < positions.length; t++) {
    const p = f32(positions[t]);
    for (let i = 0; i < half; i++) {
      const angle = f32(invFreq[i] * p);
      cos[t * half + i] = scale === 1 ? Math.cos(angle) : f32(Math.cos(angle)) * scale;
      sin[t * half + i] = scale === 1 ? Math.sin(angle) : f32(Math.sin(angle)) * scale;
    }
  }
  return { cos, sin };
}
