// The device mirror of the heap (docs/engine-notes.md, "The WebGPU engine"): one GPU buffer laid
// out like the heap (heap byte p is mirror byte p), and the coherence rule between the two, kept
// as two sets of byte ranges:
//   deviceNewer: what kernels wrote and the heap has not received yet;
//   resident:    what the device holds exactly as the heap does (uploaded, or downloaded, since).
// - before a kernel reads a tensor, the parts of its range in neither set are uploaded from the
//   heap and become resident (`beforeRead`): weights cross once, not once per kernel call;
// - after a kernel writes a tensor, its range is device-newer (`afterWrite`);
// - `download` copies device-newer ranges back into the heap; they become resident;
// - `upload` sends a range from the heap because the host wrote it (with no range: forgets every
//   resident range, so that whatever the host wrote is sent before the next kernel reads it);
// - a heap block allocated or freed is forgotten by both sets (Heap.onBlockChange): a new
//   tensor's contents are the host's, and a dead one's results need no download.
// The host's side of the contract (kernels.ts): it reads results only after a download and calls
// upload after writing a tensor that kernels read before.
// Commands are recorded into one pending encoder (`encoder()`); it is submitted before any queue
// write (queue writes are ordered at call time, ahead of unsubmitted commands) and before reads.
// Ranges are kept in whole 4-byte words (buffer copies and writes need 4-byte multiples).

import type { Heap } from "../../tensor/heap.js";
import { BUFFER_USAGE, type GpuContext, MAP_READ } from "./device.js";
import { type Range, RangeSet } from "./ranges.js";

const MIRROR_USAGE = BUFFER_USAGE.STORAGE | BUFFER_USAGE.COPY_SRC | BUFFER_USAGE.COPY_DST;

function wordFloor(x: number): number {
  return x - (x % 4);
}
function wordCeil(x: number): number {
  return Math.ceil(x / 4) * 4;
}

export class Mirror {
  readonly gpu: GpuContext;
  readonly heap: Heap;
  private buffer: GPUBuffer;
  private readonly deviceNewer = new RangeSet();
  private readonly resident = new RangeSet();
  /**
   * Per download in flight, the ranges it must leave alone when its bytes arrive: rewritten by a
   * kernel recorded during the wait (they stay device-newer) or a heap block allocated or freed
   * (the host owns them now).
   */
  private readonly changedDuringDownload = new Set<{
    rewritten: RangeSet;
    reallocated: RangeSet;
  }>();
  private pending: GPUCommandEncoder | null = null;
  private readonly unsubscribe: () => void;

  constructor(gpu: GpuContext, heap: Heap) {
    this.gpu = gpu;
    this.heap = heap;
    this.buffer = this.createBuffer(heap.byteLength);
    this.unsubscribe = heap.onBlockChange((start, bytes) => this.forget(start, start + bytes));
  }

  /** The mirror buffer, grown first if the heap grew since the last call. */
  current(): GPUBuffer {
    if (this.heap.byteLength > this.buffer.size) {
      const bigger = this.createBuffer(this.heap.byteLength);
      this.encoder().copyBufferToBuffer(this.buffer, 0, bigger, 0, this.buffer.size);
      this.submit();
      this.buffer.destroy(); // freed once the submitted copy has run
      this.buffer = bigger;
    }
    return this.buffer;
  }

  /** The encoder that collects this engine's commands until the next submit. */
  encoder(): GPUCommandEncoder {
    this.pending ??= this.gpu.device.createCommandEncoder();
    return this.pending;
  }

  submit(): void {
    if (this.pending === null) return;
    this.gpu.device.queue.submit([this.pending.finish()]);
    this.pending = null;
  }

  /** Makes the device copy of heap bytes [start, end) current before a kernel reads them. */
  beforeRead(start: number, end: number): void {
    const pieces: Range[] = [];
    for (const [s, e] of this.deviceNewer.outside(wordFloor(start), wordCeil(end)))
      pieces.push(...this.resident.outside(s, e));
    if (pieces.length === 0) return;
    this.write(pieces);
    for (const [s, e] of pieces) this.resident.add(s, e);
  }

  /** Records that a kernel wrote heap bytes [start, end) on the device. */
  afterWrite(start: number, end: number): void {
    const s = wordFloor(start);
    const e = wordCeil(end);
    this.deviceNewer.add(s, e);
    this.resident.remove(s, e);
    for (const changed of this.changedDuringDownload) changed.rewritten.add(s, e);
  }

  /** Sends heap bytes [start, end) to the device, replacing what a kernel wrote there. */
  upload(start: number, end: number): void {
    const s = wordFloor(start);
    const e = wordCeil(end);
    this.write([[s, e]]);
    this.deviceNewer.remove(s, e);
    this.resident.add(s, e);
  }

  /** The host may have written any tensor: each is sent again before a kernel next reads it. */
  uploadAll(): void {
    this.resident.clear();
  }

  /** Heap bytes [start, end) were allocated or freed: nothing known about them holds any more. */
  private forget(start: number, end: number): void {
    const s = wordFloor(start);
    const e = wordCeil(end);
    this.deviceNewer.remove(s, e);
    this.resident.remove(s, e);
    for (const changed of this.changedDuringDownload) changed.reallocated.add(s, e);
  }

  /** Whether any of heap bytes [start, end) is newer on the device than in the heap. */
  isDeviceNewer(start: number, end: number): boolean {
    return this.deviceNewer.inside(wordFloor(start), wordCeil(end)).length > 0;
  }

  /**
   * Copies the device-newer parts of the given byte ranges (all of them when `ranges` is null)
   * into the heap, after every kernel recorded so far.
   */
  async download(ranges: readonly Range[] | null): Promise<void> {
    const buffer = this.current();
    const pieces: Range[] = [];
    if (ranges === null) pieces.push(...this.deviceNewer.all());
    else
      for (const [s, e] of ranges)
        pieces.push(...this.deviceNewer.inside(wordFloor(s), wordCeil(e)));
    if (pieces.length === 0) return;
    let total = 0;
    for (const [s, e] of pieces) total += e - s;
    const staging = this.gpu.device.createBuffer({
      size: total,
      usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST,
    });
    const encoder = this.encoder();
    let at = 0;
    for (const [s, e] of pieces) {
      encoder.copyBufferToBuffer(buffer, s, staging, at, e - s);
      at += e - s;
    }
    this.submit();
    const changed = { rewritten: new RangeSet(), reallocated: new RangeSet() };
    this.changedDuringDownload.add(changed);
    try {
      await staging.mapAsync(MAP_READ);
      const bytes = new Uint8Array(staging.getMappedRange());
      at = 0;
      for (const [s, e] of pieces) {
        // a block allocated or freed during the wait is the host's: its bytes are not copied
        for (const [cs, ce] of changed.reallocated.outside(s, e)) {
          this.heap.u8(cs, ce - cs).set(bytes.subarray(at + cs - s, at + ce - s));
          // what a kernel recorded during the wait rewrote stays device-newer
          for (const [ks, ke] of changed.rewritten.outside(cs, ce)) {
            this.deviceNewer.remove(ks, ke);
            this.resident.add(ks, ke);
          }
        }
        at += e - s;
      }
      staging.unmap();
    } finally {
      this.changedDuringDownload.delete(changed);
      staging.destroy();
    }
  }

  /**
   * The bytes [start, end) as the kernels recorded so far leave them, copied on the device now
   * (so later kernels, or a free and reuse of the block, do not change them) and delivered to
   * the caller rather than the heap; the mirror's records are unchanged. start and end are
   * 4-byte aligned.
   */
  async snapshot(start: number, end: number): Promise<Uint8Array> {
    this.beforeRead(start, end);
    const buffer = this.current();
    const bytes = end - start;
    const staging = this.gpu.device.createBuffer({
      size: Math.max(4, bytes),
      usage: BUFFER_USAGE.MAP_READ | BUFFER_USAGE.COPY_DST,
    });
    if (bytes > 0) this.encoder().copyBufferToBuffer(buffer, start, staging, 0, bytes);
    this.submit();
    try {
      await staging.mapAsync(MAP_READ);
      return new Uint8Array(staging.getMappedRange(0, bytes)).slice();
    } finally {
      staging.destroy();
    }
  }

  destroy(): void {
    this.unsubscribe();
    this.submit();
    this.buffer.destroy();
  }

  private write(pieces: readonly Range[]): void {
    const buffer = this.current();
    this.submit();
    const queue = this.gpu.device.queue;
    for (const [s, e] of pieces) {
      // through an unshared copy: Dawn for Node rejects a SharedArrayBuffer source and crashes on
      // a view of one
      const bytes = new Uint8Array(e - s);
      bytes.set(this.heap.u8(s, e - s));
      queue.writeBuffer(buffer, s, bytes);
    }
  }

  private createBuffer(bytes: number): GPUBuffer {
    const max = this.gpu.limits.maxBufferSize;
    if (bytes > max) {
      throw new Error(
        `webgpu: the heap (${bytes} bytes) exceeds this device's largest buffer (${max} bytes)`,
      );
    }
    return this.gpu.device.createBuffer({ size: wordCeil(bytes), usage: MIRROR_USAGE });
  }
}
