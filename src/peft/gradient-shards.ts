// Sharded LoRA-GA gradient estimation: shard i of N (0-based) estimates on a contiguous share of
// the batches and writes a PARTIAL file; reduceShards combines all N partials into the gradient a
// single run over every batch gives.
//
// Shares: the batches [floor(i * n / N), floor((i + 1) * n / N)) of the n batches a single run
// would take (in its order), so the shares are disjoint, cover every batch, and differ in size by
// at most one.
//
// Partial file: the gradient-cache layout (gradient-cache.ts: one F32 tensor per module path, in
// the stored weight layout) holding the SUM of the shard's per-batch gradients, not their mean,
// plus string metadata:
//   loraga_partial  "1" (format version; loadGradients refuses such a file)
//   shard           "i/N"
//   first_batch, batches, total_batches   the share, as batch indices of the single run
//   tokens          counted (learned) tokens of the share
//   losses          JSON array of the share's per-batch losses, in batch order
//   model, data     fingerprints of the model files and of every batch of the single run (the
//                   caller computes them: cli/workflow/shards.ts)
//   weight_dtype    how the frozen weights were held (f32, bf16, f16)
//
// Reduce: the parts must agree on model, data, weight_dtype, N, total batches and modules (names
// and shapes) and be shards 0..N-1 once each; every mismatch is a one-line error naming the file.
// The mean is (sum over parts, in shard order, in f64) / total batches, rounded once to f32, as a
// single run's sum / count (docs/lora-ga-spec.md §4: the mean over batches of each batch's mean-loss
// gradient; unequal shares are weighted by their batch counts, unlike a mean of per-shard means).
// With N = 1 the result is bitwise the single run's; with more shards the f32 sums of the shares
// differ from one running f32 sum by float rounding only. The mean loss sums the per-batch losses
// in the single run's order, so it is exactly the single run's.

import { SafetensorsFile } from "../io/safetensors.js";
import { shapeString } from "../tensor/shape.js";
import { type AccumulateResult, meanGradient, meanLoss } from "./estimate.js";
import { type GradientMap, PARTIAL_KEY, saveGradients } from "./gradient-cache.js";

/** Shard `index` (0-based) of `count`. */
export interface ShardSpec {
  readonly index: number;
  readonly count: number;
}

/** Where a partial came from, beyond its share: what every part of one estimation shares. */
export interface PartialOrigin {
  /** Fingerprint of the model's files. */
  readonly model: string;
  /** Fingerprint of every batch of the single run (token ids, masks, labels, shapes). */
  readonly data: string;
  readonly weightDtype: string;
}

const PARTIAL_VERSION = "1";

/** The batches [start, end) of shard `shard` among `total`. */
export function shardRange(total: number, shard: ShardSpec): { start: number; end: number } {
  const start = Math.floor((shard.index * total) / shard.count);
  const end = Math.floor(((shard.index + 1) * total) / shard.count);
  return { start, end };
}

/** Writes a shard's sums as a partial file (atomically, like every gradient cache). */
export async function savePartial(
  path: string,
  sums: AccumulateResult,
  shard: ShardSpec,
  totalBatches: number,
  origin: PartialOrigin,
): Promise<void> {
  const { start, end } = shardRange(totalBatches, shard);
  if (sums.losses.length !== end - start) {
    throw new Error(
      `savePartial: shard ${shard.index}/${shard.count} of ${totalBatches} batches has ${end - start}, got sums of ${sums.losses.length}`,
    );
  }
  await saveGradients(path, sums.sums, {
    [PARTIAL_KEY]: PARTIAL_VERSION,
    shard: `${shard.index}/${shard.count}`,
    first_batch: String(start),
    batches: String(end - start),
    total_batches: String(totalBatches),
    tokens: String(sums.tokens),
    losses: JSON.stringify(sums.losses),
    model: origin.model,
    data: origin.data,
    weight_dtype: origin.weightDtype,
  });
}

/** A partial file's metadata, parsed and checked against its own share. */
interface Part {
  readonly path: string;
  readonly file: SafetensorsFile;
  readonly shard: ShardSpec;
  readonly totalBatches: number;
  readonly tokens: number;
  readonly losses: readonly number[];
  readonly origin: PartialOrigin;
}

function field(path: string, metadata: Record<string, string>, key: string): string {
  const value = metadata[key];
  if (value === undefined) throw new Error(`${path}: partial metadata has no "${key}"`);
  return value;
}

function count(path: string, metadata: Record<string, string>, key: string): number {
  const text = field(path, metadata, key);
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n))
    throw new Error(`${path}: partial metadata "${key}" is not a count: "${text}"`);
  return n;
}

function parsePart(path: string, file: SafetensorsFile): Part {
  const m = file.metadata;
  if (m[PARTIAL_KEY] === undefined) {
    throw new Error(
      `${path} is not a partial gradient sum of \`loraga estimate --shard\` (no shard metadata)`,
    );
  }
  if (m[PARTIAL_KEY] !== PARTIAL_VERSION)
    throw new Error(`${path}: partial format version "${m[PARTIAL_KEY]}" is not supported`);
  const shardText = field(path, m, "shard");
  const s = /^(\d+)\/(\d+)$/.exec(shardText);
  const shard = s === null ? null : { index: Number(s[1]), count: Number(s[2]) };
  if (shard === null || !(shard.count >= 1 && shard.index < shard.count))
    throw new Error(`${path}: partial metadata "shard" is not i/N: "${shardText}"`);
  const totalBatches = count(path, m, "total_batches");
  const { start, end } = shardRange(totalBatches, shard);
  const first = count(path, m, "first_batch");
  const batches = count(path, m, "batches");
  if (first !== start || batches !== end - start) {
    throw new Error(
      `${path}: shard ${shardText} of ${totalBatches} batches should hold batches ${start}..${end - 1}, ` +
        `its metadata says ${first}..${first + batches - 1}`,
    );
  }
  let losses: unknown;
  try {
    losses = JSON.parse(field(path, m, "losses"));
  } catch {
    losses = null;
  }
  if (
    !Array.isArray(losses) ||
    losses.length !== batches ||
    !losses.every((l) => typeof l === "number" && Number.isFinite(l))
  ) {
    throw new Error(`${path}: partial metadata "losses" is not a list of ${batches} numbers`);
  }
  const origin = {
    model: field(path, m, "model"),
    data: field(path, m, "data"),
    weightDtype: field(path, m, "weight_dtype"),
  };
  return {
    path,
    file,
    shard,
    totalBatches,
    tokens: count(path, m, "tokens"),
    losses,
    origin,
  };
}

/** Checks that the parts belong to one estimation and cover it once; returns them in shard order. */
function checkParts(parts: readonly Part[]): Part[] {
  const first = parts[0];
  const n = first.shard.count;
  for (const p of parts.slice(1)) {
    const differ = (what: string, a: string | number, b: string | number) =>
      new Error(
        `${p.path}: ${what} ${b} differs from ${first.path}'s ${a}; the parts are not of one estimation`,
      );
    if (p.origin.model !== first.origin.model)
      throw new Error(
        `${p.path} was estimated on another model than ${first.path} (model files differ)`,
      );
    if (p.origin.data !== first.origin.data)
      throw new Error(
        `${p.path} was estimated on other batches than ${first.path} (data, tokenizer or batch flags differ)`,
      );
    if (p.origin.weightDtype !== first.origin.weightDtype)
      throw differ("weight dtype", first.origin.weightDtype, p.origin.weightDtype);
    if (p.shard.count !== n) throw differ("shard count", n, p.shard.count);
    if (p.totalBatches !== first.totalBatches)
      throw differ("total batches", first.totalBatches, p.totalBatches);
    const names = [...p.file.entries.keys()];
    const want = [...first.file.entries.keys()];
    const missing = want.find((name) => !p.file.entries.has(name));
    const extra = names.find((name) => !first.file.entries.has(name));
    if (missing !== undefined || extra !== undefined) {
      throw new Error(
        `${p.path} has gradients for other modules than ${first.path} ` +
          (missing !== undefined ? `(no ${missing})` : `(${extra} is extra)`),
      );
    }
    for (const [name, entry] of p.file.entries) {
      const shape = (first.file.entries.get(name) as { shape: readonly number[] }).shape;
      if (shapeString(entry.shape) !== shapeString(shape))
        throw new Error(
          `${p.path}: gradient of ${name} is ${shapeString(entry.shape)}, ${shapeString(shape)} in ${first.path}`,
        );
    }
  }
  const byIndex = new Map<number, Part>();
  for (const p of parts) {
    const twin = byIndex.get(p.shard.index);
    if (twin !== undefined)
      throw new Error(`${p.path} and ${twin.path} are both shard ${p.shard.index}/${n}`);
    byIndex.set(p.shard.index, p);
  }
  const missing: number[] = [];
  for (let i = 0; i < n; i++) if (!byIndex.has(i)) missing.push(i);
  if (missing.length > 0) {
    throw new Error(
      `shard${missing.length > 1 ? "s" : ""} ${missing.map((i) => `${i}/${n}`).join(", ")} missing: ` +
        `give all ${n} parts of the estimation (given: ${parts.map((p) => p.path).join(", ")})`,
    );
  }
  return [...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([, p]) => p);
}

export interface Reduced {
  /** Mean gradients by module path, in the first part's order: the single run's gradient cache. */
  grads: GradientMap;
  /** Batches of the whole estimation, and the mean of their losses. */
  batches: number;
  meanLoss: number;
  tokens: number;
  shards: number;
}

/** Combines the partial files of one sharded estimation (see the file header). */
export async function reduceShards(paths: readonly string[]): Promise<Reduced> {
  if (paths.length === 0) throw new Error("reduceShards: no parts");
  const opened: SafetensorsFile[] = [];
  try {
    const parts: Part[] = [];
    for (const path of paths) {
      const file = await SafetensorsFile.open(path);
      opened.push(file);
      parts.push(parsePart(path, file));
    }
    const ordered = checkParts(parts);
    const total = ordered[0].totalBatches;
    const grads: GradientMap = new Map();
    for (const [name, entry] of ordered[0].file.entries) {
      if (entry.shape.length !== 2)
        throw new Error(
          `${ordered[0].path}: gradient of ${name} is not 2-D: ${shapeString(entry.shape)}`,
        );
      const sum = new Float64Array(entry.shape[0] * entry.shape[1]); // summed in shard order
      for (const part of ordered) {
        const data = await part.file.readF32(name);
        for (let i = 0; i < data.length; i++) sum[i] += data[i];
      }
      const shape: [number, number] = [entry.shape[0], entry.shape[1]];
      grads.set(name, { shape, data: meanGradient(name, sum, total) });
    }
    return {
      grads,
      batches: total,
      meanLoss: meanLoss(ordered.flatMap((p) => p.losses)),
      tokens: ordered.reduce((s, p) => s + p.tokens, 0),
      shards: ordered.length,
    };
  } finally {
    await Promise.all(opened.map((f) => f.close()));
  }
}
