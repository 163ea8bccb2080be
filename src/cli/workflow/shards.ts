// What tells the parts of a sharded estimation apart (peft/gradient-shards.ts): fingerprints of
// the model's files and of the batches, recorded in every partial file and compared by
// `loraga reduce`. SHA-256 over the bytes, so copies of the model or data on other machines give
// the same fingerprint, and any changed weight, row, tokenizer or batch flag gives another.

import { createHash, type Hash } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Batch } from "../../models/model.js";

/** The shard index of a multi-file checkpoint (its weight_map names the files). */
const INDEX = "model.safetensors.index.json";

/** Feeds `name`, then the file's bytes, into `hash`. */
async function hashFile(hash: Hash, dir: string, name: string): Promise<void> {
  hash.update(`${name}\0`);
  for await (const chunk of createReadStream(join(dir, name))) hash.update(chunk as Buffer);
  hash.update("\0");
}

/**
 * "sha256:<hex>" of a model directory's config.json and the weight files its checkpoint reads
 * (model.safetensors, or the shard index and every file it names, in name order; other files,
 * such as partial sums written there, do not count): reads the weights once more, at disk speed.
 */
export async function modelFingerprint(dir: string): Promise<string> {
  const hash = createHash("sha256");
  let weights = ["model.safetensors"];
  if (existsSync(join(dir, INDEX))) {
    const index = JSON.parse(readFileSync(join(dir, INDEX), "utf8")) as {
      weight_map?: Record<string, string>;
    };
    weights = [INDEX, ...[...new Set(Object.values(index.weight_map ?? {}))].sort()];
  }
  for (const name of ["config.json", ...weights]) await hashFile(hash, dir, name);
  return `sha256:${hash.digest("hex")}`;
}

/** "sha256:<hex>" of the batches, in order: shapes, token ids, attention masks and labels. */
export function batchesFingerprint(batches: readonly Batch[]): string {
  const hash = createHash("sha256");
  const bytes = (a: Int32Array | undefined) =>
    a === undefined ? new Uint8Array(0) : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  for (const b of batches) {
    hash.update(`${b.batchSize}x${b.seqLen}:`);
    hash.update(bytes(b.inputIds));
    hash.update(b.attentionMask === undefined ? "no mask" : "mask");
    hash.update(bytes(b.attentionMask));
    hash.update(b.labels === undefined ? "no labels" : "labels");
    hash.update(bytes(b.labels));
  }
  return `sha256:${hash.digest("hex")}`;
}
