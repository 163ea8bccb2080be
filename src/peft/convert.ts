// Conversion of a trained adapter whose init moved the base weight (LoRA-GA, PiSSA, OLoRA, or
// LoRA-One with an offset) into a plain LoRA for the ORIGINAL base (docs/lora-ga-spec.md §8; PEFT
// LoraModel.subtract_mutated_init). With W' = W - s B0 A0 and the trained (A1, B1):
//   A' = [A1 ; A0]  (2r, in)      rows: trained first
//   B' = [B1 | -B0] (out, 2r)     columns: trained first, initial negated
//   r' = 2r,  alpha' = 2 alpha (s' = s), or sqrt(2) alpha with rsLoRA (s' = 2a/... = a/sqrt r)
// so W + s' B' A' == W' + s B1 A1 exactly. rank_pattern values are doubled; alpha_pattern values
// are doubled (x sqrt 2 with rsLoRA is refused with patterns, as PEFT refuses it).
// The written config is a plain LoRA: peft_type "LORA", init_lora_weights true.

import { LoraConfig, moduleRankAlpha } from "./config.js";

export interface AdapterPair {
  /** (r, in) */
  A: Float32Array;
  /** (out, r) */
  B: Float32Array;
}

/** Concatenates one module's trained and initial factors (docs/lora-ga-spec.md §8). */
function convertModule(
  path: string,
  trained: AdapterPair,
  initial: AdapterPair,
  r: number,
): AdapterPair {
  if (trained.A.length !== initial.A.length || trained.B.length !== initial.B.length) {
    throw new Error(
      `convert ${path}: trained A/B have ${trained.A.length}/${trained.B.length} values, initial ${initial.A.length}/${initial.B.length}`,
    );
  }
  if (trained.A.length % r !== 0 || trained.B.length % r !== 0) {
    throw new Error(
      `convert ${path}: A/B sizes ${trained.A.length}/${trained.B.length} are not multiples of r=${r}`,
    );
  }
  const n = trained.A.length / r;
  const m = trained.B.length / r;
  const A = new Float32Array(2 * r * n); // (2r, in)
  A.set(trained.A, 0);
  A.set(initial.A, r * n);
  const B = new Float32Array(m * 2 * r); // (out, 2r)
  for (let i = 0; i < m; i++) {
    for (let t = 0; t < r; t++) {
      B[i * 2 * r + t] = trained.B[i * r + t];
      B[i * 2 * r + r + t] = -initial.B[i * r + t];
    }
  }
  return { A, B };
}

/** The converted adapter's config (r' = 2r, alpha' per rsLoRA, patterns doubled, plain LoRA). */
export function convertConfig(config: LoraConfig): LoraConfig {
  const hasPatterns =
    Object.keys(config.rank_pattern).length > 0 || Object.keys(config.alpha_pattern).length > 0;
  if (config.use_rslora && hasPatterns) {
    throw new Error(
      "convert: use_rslora together with rank_pattern/alpha_pattern cannot be converted exactly (PEFT refuses it too)",
    );
  }
  const alphaFactor = config.use_rslora ? Math.SQRT2 : 2;
  const double = (p: Readonly<Record<string, number>>, f: number) =>
    Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v * f]));
  return new LoraConfig({
    ...config.toInit(),
    r: 2 * config.r,
    lora_alpha: config.lora_alpha * alphaFactor,
    rank_pattern: double(config.rank_pattern, 2),
    alpha_pattern: double(config.alpha_pattern, 2),
    init_lora_weights: true,
  });
}

/**
 * Converts a whole adapter: per module path (as in the state dicts), trained and initial factors.
 * Ranks per module come from the (unconverted) config's rank_pattern.
 */
export function convertAdapter(
  config: LoraConfig,
  trained: ReadonlyMap<string, AdapterPair>,
  initial: ReadonlyMap<string, AdapterPair>,
): { config: LoraConfig; weights: Map<string, AdapterPair> } {
  const weights = new Map<string, AdapterPair>();
  for (const [path, t] of trained) {
    const i = initial.get(path);
    if (i === undefined) throw new Error(`convert: module ${path} has no initial adapter weights`);
    weights.set(path, convertModule(path, t, i, moduleRankAlpha(config, path).r));
  }
  for (const path of initial.keys()) {
    if (!trained.has(path))
      throw new Error(`convert: module ${path} has initial but no trained adapter weights`);
  }
  return { config: convertConfig(config), weights };
}
