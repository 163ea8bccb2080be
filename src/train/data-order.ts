// The order in which training data is seen, resumable exactly.
//
// Contract:
// - A BatchSource hands out micro-batches forever (epoch after epoch); state() is a JSON-safe
//   snapshot of its position and restore(state) continues from exactly that position. The trainer
//   stores the state in its checkpoints.
// - ShuffledBatches: examples -> batches of `batchSize` consecutive examples of a per-epoch
//   permutation (Fisher-Yates driven by util/random.ts's Rng, seeded once; the generator's state is
//   part of the snapshot, so a resumed run draws the same permutations). Collation (right padding,
//   truncation) is data/batches.ts's collate().
// - FixedBatches: a fixed list of pre-built batches, cycled in order (fixtures, evaluation).
// - splitHeldOut: a seeded, reproducible train / held-out split.
// - packExamples: concatenates examples (inputs and their labels, -100 masks kept) into blocks of
//   exactly blockSize tokens (transformers' run_clm "group_texts"); examples attend to each other
//   inside a block (no block-diagonal mask), a known property of simple packing.

import { type CollateOptions, collate } from "../data/batches.js";
import type { TokenExample } from "../data/examples.js";
import type { Batch } from "../models/model.js";
import { Rng } from "../util/random.js";

export type DataState = Record<string, unknown>;

export interface BatchSource {
  /** The next micro-batch. */
  next(): Batch;
  /** JSON-safe snapshot of the position (the batch next() will return next). */
  state(): DataState;
  restore(state: DataState): void;
}

function stateError(what: string, detail: string): Error {
  return new Error(`data state (${what}): ${detail}`);
}

/** Cycles through a fixed list of batches in order. */
export class FixedBatches implements BatchSource {
  private readonly batches: readonly Batch[];
  private index = 0;

  constructor(batches: readonly Batch[]) {
    if (batches.length === 0) throw new Error("FixedBatches: no batches");
    this.batches = batches;
  }

  next(): Batch {
    const b = this.batches[this.index % this.batches.length];
    this.index++;
    return b;
  }

  state(): DataState {
    return { kind: "fixed", index: this.index, count: this.batches.length };
  }

  restore(state: DataState): void {
    if (state.kind !== "fixed")
      throw stateError("fixed", `saved by a ${JSON.stringify(state.kind)} source`);
    if (state.count !== this.batches.length)
      throw stateError(
        "fixed",
        `saved for ${String(state.count)} batches, have ${this.batches.length}`,
      );
    const index = state.index;
    if (typeof index !== "number" || !Number.isSafeInteger(index) || index < 0)
      throw stateError("fixed", `bad index ${String(index)}`);
    this.index = index;
  }
}

export interface ShuffledBatchesOptions extends CollateOptions {
  batchSize: number;
  seed: number;
  /** Shuffle every epoch (default true); false keeps file order. */
  shuffle?: boolean;
  /** Drop the last smaller batch of each epoch (default true: every batch has batchSize rows). */
  dropLast?: boolean;
}

/** Per-epoch shuffled batches over a list of token examples. */
export class ShuffledBatches implements BatchSource {
  private readonly examples: readonly TokenExample[];
  private readonly options: ShuffledBatchesOptions;
  private rng: Rng;
  private order: number[] = [];
  private epoch = -1;
  /** Position in `order` of the next batch's first example. */
  private position = 0;

  constructor(examples: readonly TokenExample[], options: ShuffledBatchesOptions) {
    if (!Number.isSafeInteger(options.batchSize) || options.batchSize < 1) {
      throw new Error(
        `ShuffledBatches: batch size must be a positive integer, got ${options.batchSize}`,
      );
    }
    const dropLast = options.dropLast ?? true;
    if (examples.length === 0 || (dropLast && examples.length < options.batchSize)) {
      throw new Error(
        `ShuffledBatches: ${examples.length} examples cannot fill a batch of ${options.batchSize}`,
      );
    }
    this.examples = examples;
    this.options = options;
    this.rng = new Rng(options.seed);
  }

  /** Epoch of the batch next() returns next (0-based; -1 before the first call). */
  get currentEpoch(): number {
    return this.epoch;
  }

  private startEpoch(): void {
    this.order = Array.from({ length: this.examples.length }, (_, i) => i);
    if (this.options.shuffle ?? true) this.rng.shuffle(this.order);
    this.epoch++;
    this.position = 0;
  }

  next(): Batch {
    const n = this.examples.length;
    const bs = this.options.batchSize;
    const dropLast = this.options.dropLast ?? true;
    if (this.epoch < 0 || this.position >= n || (dropLast && this.position + bs > n))
      this.startEpoch();
    const ids = this.order.slice(this.position, Math.min(n, this.position + bs));
    this.position += ids.length;
    return collate(
      ids.map((i) => this.examples[i]),
      this.options,
    );
  }

  state(): DataState {
    return {
      kind: "shuffled",
      count: this.examples.length,
      epoch: this.epoch,
      position: this.position,
      order: [...this.order],
      rng: this.rng.state(),
    };
  }

  restore(state: DataState): void {
    if (state.kind !== "shuffled")
      throw stateError("shuffled", `saved by a ${JSON.stringify(state.kind)} source`);
    const n = this.examples.length;
    if (state.count !== n)
      throw stateError("shuffled", `saved for ${String(state.count)} examples, have ${n}`);
    const { epoch, position, order } = state;
    if (typeof epoch !== "number" || !Number.isSafeInteger(epoch) || epoch < -1)
      throw stateError("shuffled", `bad epoch ${String(epoch)}`);
    if (
      typeof position !== "number" ||
      !Number.isSafeInteger(position) ||
      position < 0 ||
      position > n
    ) {
      throw stateError("shuffled", `bad position ${String(position)}`);
    }
    const ok =
      Array.isArray(order) &&
      (order.length === n || (epoch === -1 && order.length === 0)) &&
      new Set(order).size === order.length &&
      order.every((i) => Number.isSafeInteger(i) && i >= 0 && i < n);
    if (!ok) throw stateError("shuffled", "order is not a permutation of the examples");
    this.rng = Rng.fromState(state.rng as number[]);
    this.epoch = epoch;
    this.position = position;
    this.order = [...(order as number[])];
  }
}

/** Reproducible split: a seeded permutation, the first `heldOut` items go to the held-out set. */
export function splitHeldOut<T>(
  items: readonly T[],
  heldOut: number,
  seed: number,
): { train: T[]; heldOut: T[] } {
  const count =
    heldOut > 0 && heldOut < 1 ? Math.max(1, Math.round(items.length * heldOut)) : heldOut;
  if (!Number.isSafeInteger(count) || count < 0 || count >= items.length) {
    throw new Error(
      `splitHeldOut: held-out size ${heldOut} must be a fraction in (0, 1) or an integer in [0, ${items.length})`,
    );
  }
  const order = new Rng(seed).shuffle(Array.from({ length: items.length }, (_, i) => i));
  const held = new Set(order.slice(0, count));
  return {
    train: items.filter((_, i) => !held.has(i)),
    heldOut: order.slice(0, count).map((i) => items[i]),
  };
}

export interface PackOptions {
  blockSize: number;
  /** Appended after each example (learned) when the example does not already end with it. */
  separatorTokenId?: number;
  /** Keep the last, shorter block (default false, as run_clm's group_texts drops it). */
  keepRemainder?: boolean;
}

/** Concatenates examples into blocks of blockSize tokens. */
export function packExamples(
  examples: readonly TokenExample[],
  options: PackOptions,
): TokenExample[] {
  const { blockSize } = options;
  if (!Number.isSafeInteger(blockSize) || blockSize < 2)
    throw new Error(`packExamples: block size must be an integer >= 2, got ${blockSize}`);
  const ids: number[] = [];
  const labels: number[] = [];
  for (const e of examples) {
    for (let i = 0; i < e.inputIds.length; i++) {
      ids.push(e.inputIds[i]);
      labels.push(e.labels[i]);
    }
    const sep = options.separatorTokenId;
    if (sep !== undefined && e.inputIds[e.inputIds.length - 1] !== sep) {
      ids.push(sep);
      labels.push(sep);
    }
  }
  const blocks: TokenExample[] = [];
  for (let start = 0; start < ids.length; start += blockSize) {
    const end = Math.min(ids.length, start + blockSize);
    if (end - start < blockSize && !(options.keepRemainder ?? false)) break;
    blocks.push({
      inputIds: ids.slice(start, end),
      labels: labels.slice(start, end),
      source: `packed block ${blocks.length}`,
    });
  }
  return blocks;
}
