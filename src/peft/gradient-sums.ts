// Running sums of target weight gradients, kept off the engine heap in ordinary Float32Arrays, with
// a bounded window of heap accumulators that the model accumulates into (bounded LoRA-GA
// estimation, estimate.ts). It is the `paramGrads` map handed to model.lossAndGrads.
//
// The model reads a linear layer's weight gradient from paramGrads right before it accumulates into
// it, in that layer's backward (LinearLayer.backward, models/common.ts), and is done with it when the
// layer's backward returns. So get(name) brings the module's running sum onto the heap (a heap
// tensor holding exactly the off-heap values; zeros on first use) and, when the window is full,
// first moves the least recently used other sums back out (copy to their Float32Array, free the
// heap block). Backward visits the layers from the last to the first, so the sums of a finished
// layer leave the heap as the next layers need room. Every gradient is accumulated by the same
// kernel calls on the same values as when all sums stay on the heap: the sums are bitwise those of
// unbounded accumulation, whatever the window.
//
// One exception: a weight that is not its linear layer's own (a tied lm_head multiplies by the
// embedding matrix; its weightName names the embedding, whose gradient the model takes at the start
// of backward and fills at its end) stays on the heap from its first use until finish().
//
// On a deferred engine (webgpu: Kernels.readback) the host cannot read a sum in the middle of
// backward, which only records GPU work: moving a sum out takes a readback of its accumulator at
// that point of the work and frees the heap block at once; the values land in the Float32Array
// when the readback resolves. `settle()`, awaited after each pass, also moves out the unpinned
// sums still on the heap (a bounded window only), so that none is moved out during the next pass
// after its layer took it, and waits for every readback: one per target and pass. A sum brought
// back in is written by the host and uploaded. So the sums are still bitwise those of unbounded
// accumulation on the same engine. This needs every layer's backward to take its gradient once
// per pass (get() throws if a sum moved out is asked for again in the same pass).
//
// Why host memory rather than a temporary file: the estimation's result is one Float32Array per
// target anyway (GradientMap, written to the gradient cache at the end), so keeping the sums there
// costs no host memory beyond the result itself; a file would only add I/O.

import type { Kernels } from "../kernels/kernels.js";
import { formatBytes, type Heap } from "../tensor/heap.js";
import type { Tensor } from "../tensor/tensor.js";

/** One target: its weight's parameter name, stored-layout shape, and heap block size. */
export interface SumTarget {
  readonly path: string;
  readonly weightName: string;
  readonly shape: readonly [number, number];
  /** Heap bytes of its accumulator (f32, rounded up to the heap's alignment). */
  readonly bytes: number;
}

interface Slot {
  readonly target: SumTarget;
  /** The running sum while it is off the heap, (rows * cols) in the stored layout. */
  readonly sum: Float32Array;
  /** The heap accumulator while the sum is on the heap, else null. */
  tensor: Tensor | null;
  /** The sum has been on the heap at least once (before that it is zeros). */
  touched: boolean;
  readonly pinned: boolean;
  /** A readback moving the sum out (deferred engines), until settle() sees it land. */
  leaving: Promise<void> | null;
}

export class GradientSums implements ReadonlyMap<string, Tensor> {
  private readonly kernels: Kernels;
  private readonly heap: Heap;
  private readonly budget: number;
  /** By weight name, the map's keys. */
  private readonly slots = new Map<string, Slot>();
  /** Weight names whose sum is on the heap, least recently used first. */
  private readonly resident: string[] = [];
  private residentBytes = 0;
  /** Most accumulator bytes on the heap at a time. */
  peakResidentBytes = 0;
  /** Bytes moved from the heap to host memory to make room (finish()'s final copy not counted). */
  movedOutBytes = 0;

  /**
   * `budget`: most heap bytes of accumulators at a time (Infinity: no bound). It must hold the
   * pinned targets' accumulators plus the largest other one (checked here, naming the module).
   */
  constructor(kernels: Kernels, targets: readonly SumTarget[], budget: number) {
    this.kernels = kernels;
    this.heap = kernels.heap;
    this.budget = budget;
    // pinned: a weight that is not the layer's own parameter "<path>.weight" (a tied lm_head)
    const pinned = (t: SumTarget) => t.weightName !== `${t.path}.weight`;
    const pinnedBytes = targets.reduce((s, t) => s + (pinned(t) ? t.bytes : 0), 0);
    for (const target of targets) {
      const need = pinned(target) ? pinnedBytes : pinnedBytes + target.bytes;
      if (need > budget) {
        const tied = pinnedBytes > 0 ? ` + ${formatBytes(pinnedBytes)} of tied weights kept` : "";
        throw new Error(
          `estimateGradient: memoryBudget of ${formatBytes(budget)} is smaller than the gradient of ${target.path} ` +
            `(${formatBytes(target.bytes)}${tied}); raise the budget to at least ${formatBytes(need)}`,
        );
      }
      const sum = new Float32Array(target.shape[0] * target.shape[1]);
      const slot = {
        target,
        sum,
        tensor: null,
        touched: false,
        pinned: pinned(target),
        leaving: null,
      };
      this.slots.set(target.weightName, slot);
    }
  }

  get size(): number {
    return this.slots.size;
  }

  has(name: string): boolean {
    return this.slots.has(name);
  }

  keys(): MapIterator<string> {
    return this.slots.keys();
  }

  /** The heap accumulator of `name`, holding its running sum (brought in if needed). */
  get(name: string): Tensor | undefined {
    const slot = this.slots.get(name);
    if (slot === undefined) return undefined;
    if (slot.tensor !== null) {
      const at = this.resident.indexOf(name);
      this.resident.splice(at, 1);
      this.resident.push(name);
      return slot.tensor;
    }
    if (slot.leaving !== null) {
      throw new Error(
        `internal: the gradient of ${slot.target.path} was moved off the heap earlier in this pass`,
      );
    }
    const bytes = slot.target.bytes;
    // make room, least recently used first, skipping the pinned sums (the constructor checked
    // that the unpinned ones free enough)
    let at = 0;
    while (this.residentBytes + bytes > this.budget) {
      const victim = this.slots.get(this.resident[at]) as Slot;
      if (victim.pinned) {
        at++;
        continue;
      }
      this.moveOut(victim, at);
      this.movedOutBytes += victim.sum.byteLength;
    }
    const tensor = slot.touched
      ? this.heap.tensor(slot.target.shape)
      : this.heap.zeros(slot.target.shape);
    if (slot.touched) {
      tensor.f32().set(slot.sum);
      this.kernels.upload(tensor);
    }
    slot.tensor = tensor;
    slot.touched = true;
    this.resident.push(name);
    this.residentBytes += bytes;
    this.peakResidentBytes = Math.max(this.peakResidentBytes, this.residentBytes);
    return tensor;
  }

  /**
   * Deferred engines, after each pass: with a bounded window, moves the unpinned sums off the
   * heap; resolves when every sum moved out has landed in host memory.
   */
  async settle(): Promise<void> {
    for (let at = 0; Number.isFinite(this.budget) && at < this.resident.length; ) {
      const slot = this.slots.get(this.resident[at]) as Slot;
      if (slot.pinned) at++;
      else {
        this.moveOut(slot, at);
        this.movedOutBytes += slot.sum.byteLength;
      }
    }
    for (const slot of this.slots.values()) {
      await slot.leaving;
      slot.leaving = null;
    }
  }

  /**
   * Moves every sum off the heap and returns them by module path, in the targets' order (the
   * Float32Arrays themselves: the caller owns them; this object is spent). On a deferred engine,
   * after settle() and a download of the heap.
   */
  finish(): Map<string, Float32Array> {
    for (const slot of this.slots.values())
      if (slot.leaving !== null) throw new Error("internal: GradientSums.finish before settle()");
    while (this.resident.length > 0) this.copyOut(this.slots.get(this.resident[0]) as Slot, 0);
    return new Map([...this.slots.values()].map((s) => [s.target.path, s.sum]));
  }

  /** Frees the heap accumulators (after finish, or when estimation failed). */
  dispose(): void {
    for (const slot of this.slots.values()) slot.tensor?.dispose();
    for (const slot of this.slots.values()) slot.tensor = null;
    this.resident.length = 0;
    this.residentBytes = 0;
  }

  /** Moves a sum off the heap in the middle of the kernels' work (a readback where deferred). */
  private moveOut(slot: Slot, at: number): void {
    if (!this.kernels.deferred) {
      this.copyOut(slot, at);
      return;
    }
    const readback = this.kernels.readback;
    if (readback === undefined)
      throw new Error(`internal: the ${this.kernels.name} engine has no readback`);
    const tensor = slot.tensor as Tensor;
    slot.leaving = readback.call(this.kernels, tensor).then((values) => slot.sum.set(values));
    // settle() reports a failure; until then it must not be an unhandled rejection
    slot.leaving.catch(() => {});
    this.free(slot, at);
  }

  /** Moves a sum off the heap by a host copy (its values are on the heap). */
  private copyOut(slot: Slot, at: number): void {
    slot.sum.set((slot.tensor as Tensor).f32());
    this.free(slot, at);
  }

  private free(slot: Slot, at: number): void {
    const tensor = slot.tensor as Tensor;
    tensor.dispose();
    slot.tensor = null;
    this.resident.splice(at, 1);
    this.residentBytes -= slot.target.bytes;
  }

  // the rest of ReadonlyMap: the model only calls get, has and keys; iterating values would bring
  // every sum onto the heap at once, which is what this class exists to avoid
  entries(): MapIterator<[string, Tensor]> {
    throw new Error("GradientSums: iterate keys() and get() one at a time");
  }
  values(): MapIterator<Tensor> {
    throw new Error("GradientSums: iterate keys() and get() one at a time");
  }
  forEach(): void {
    throw new Error("GradientSums: iterate keys() and get() one at a time");
  }
  [Symbol.iterator](): MapIterator<[string, Tensor]> {
    return this.entries();
  }
}
