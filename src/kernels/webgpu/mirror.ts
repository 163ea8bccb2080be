// The device mirror of the heap (docs/engine-notes.md, "The WebGPU engine"): one GPU buffer laid
// out like the heap (heap byte p is mirror byte p), and the coherence rule between the two:
// - before a kernel reads a tensor, the parts of its byte range that the device did not write
//   since the last download are uploaded from the heap (`beforeRead`);
// - after a kernel writes a tensor, its range is device-newer (`afterWrite`);
// - `download` copies device-newer ranges back into the heap and forgets them;
// - `upload` sends a range from the heap even where the device wrote it (the host overwrote it).
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
  /** Ranges written while a download was in flight, one set per download. */
  private readonly rewrittenDuringDownload = new Set<RangeSet>();
  private pending: GPUCommandEncoder | null = null;

  constructor(gpu: GpuContext, heap: Heap) {
    this.gpu = gpu;
    this.heap = heap;
    this.buffer = this.createBuffer(heap.byteLength);
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
    const pieces = this.deviceNewer.outside(wordFloor(start), wordCeil(end));
    if (pieces.length > 0) this.write(pieces);
  }

  /** Records that a kernel wrote heap bytes [start, end) on the device. */
  afterWrite(start: number, end: number): void {
    const s = wordFloor(start);
    const e = wordCeil(end);
    this.deviceNewer.add(s, e);
    for (const set of this.rewrittenDuringDownload) set.add(s, e);
  }

  /** Sends heap bytes [start, end) to the device, replacing what a kernel wrote there. */
  upload(start: number, end: number): void {
    const s = wordFloor(start);
    const e = wordCeil(end);
    this.write([[s, e]]);
    this.deviceNewer.remove(s, e);
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
    const rewritten = new RangeSet();
    this.rewrittenDuringDownload.add(rewritten);
    try {
      await staging.mapAsync(MAP_READ);
      const bytes = new Uint8Array(staging.getMappedRange());
      at = 0;
      for (const [s, e] of pieces) {
        this.heap.u8(s, e - s).set(bytes.subarray(at, at + e - s));
        at += e - s;
        // what a kernel recorded during the wait rewrote stays device-newer
        for (const [cs, ce] of rewritten.outside(s, e)) this.deviceNewer.remove(cs, ce);
      }
      staging.unmap();
    } finally {
      this.rewrittenDuringDownload.delete(rewritten);
      staging.destroy();
    }
  }

  destroy(): void {
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
