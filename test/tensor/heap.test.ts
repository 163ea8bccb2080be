// The engine heap: aligned blocks, deterministic reuse, coalescing, growth and the exhaustion error.
import { describe, expect, test } from "vitest";
import { ALIGN_BYTES, Heap, HeapExhaustedError, RESERVED_BYTES } from "../../src/tensor/heap.js";

describe("Heap", () => {
  test("blocks are aligned, never in the reserved region, and do not overlap", () => {
    const heap = new Heap({ initialBytes: 1 << 20 });
    const sizes = [1, 63, 64, 65, 1000, 4096, 7];
    const blocks = sizes.map((n) => ({ ptr: heap.alloc(n), n }));
    for (const { ptr } of blocks) {
      expect(ptr % ALIGN_BYTES).toBe(0);
      expect(ptr).toBeGreaterThanOrEqual(RESERVED_BYTES);
    }
    const sorted = [...blocks].sort((a, b) => a.ptr - b.ptr);
    for (let i = 1; i < sorted.length; i++)
      expect(sorted[i].ptr).toBeGreaterThanOrEqual(sorted[i - 1].ptr + sorted[i - 1].n);
  });

  test("freed blocks coalesce and are reused; bytesInUse and peakBytes track allocations", () => {
    const heap = new Heap({ initialBytes: 1 << 20 });
    const a = heap.alloc(1000); // 1024 after alignment
    const b = heap.alloc(1000);
    const c = heap.alloc(1000);
    expect(heap.bytesInUse).toBe(3 * 1024);
    heap.free(a);
    heap.free(b); // a and b merge into one 2048-byte hole
    expect(heap.bytesInUse).toBe(1024);
    expect(heap.peakBytes).toBe(3 * 1024);
    expect(heap.alloc(2000)).toBe(a); // fits only in the merged hole
    heap.free(c);
    heap.resetPeak();
    expect(heap.peakBytes).toBe(heap.bytesInUse);
  });

  test("double free and foreign pointers throw", () => {
    const heap = new Heap();
    const p = heap.alloc(10);
    heap.free(p);
    expect(() => heap.free(p)).toThrow(/is not a live allocation/);
    expect(() => heap.free(RESERVED_BYTES + 12345)).toThrow(/is not a live allocation/);
    expect(() => heap.alloc(-1)).toThrow(/non-negative integer/);
    expect(() => heap.alloc(1.5)).toThrow(/non-negative integer/);
  });

  test("grows on demand and states the bytes asked for when the limit is reached", () => {
    const heap = new Heap({ initialBytes: 1 << 20, maxBytes: 8 << 20 });
    const big = heap.alloc(5 << 20); // beyond the initial mapping: the memory grows
    expect(heap.byteLength).toBeGreaterThanOrEqual(big + (5 << 20));
    const view = heap.f32(big, 4);
    view[3] = 2.5;
    expect(heap.f32(big, 4)[3]).toBe(2.5);
    let error: unknown;
    try {
      heap.alloc(6 << 20);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(HeapExhaustedError);
    expect((error as HeapExhaustedError).requestedBytes).toBe(6 << 20);
    expect(String((error as Error).message)).toMatch(
      /asked for 6291456 bytes \(6\.00 MiB\) with 5\.00 MiB in use and a limit of 8\.00 MiB/,
    );
  });

  test("tensors: zeros, fromArray, views, reshape, dispose", () => {
    const heap = new Heap();
    const t = heap.zeros([2, 3]);
    expect([...t.f32()]).toEqual([0, 0, 0, 0, 0, 0]);
    const u = heap.fromArray([1, 2, 3, 4, 5, 6], [2, 3]);
    const row = u.view([3], 3);
    expect([...row.f32()]).toEqual([4, 5, 6]);
    expect(() => u.view([4], 3)).toThrow(/exceeds tensor \[2, 3\]/);
    expect(u.reshape([3, 2]).shape).toEqual([3, 2]);
    expect(() => u.reshape([4])).toThrow(/cannot reshape \[2, 3\] to \[4\]/);
    const ids = heap.fromArray(Int32Array.from([7, 8]));
    expect(ids.dtype).toBe("i32");
    const inUse = heap.bytesInUse;
    u.dispose();
    expect(heap.bytesInUse).toBeLessThan(inUse);
    expect(() => u.f32()).toThrow(/use of disposed Tensor\(f32, \[2, 3\]\)/);
    expect(() => t.i32()).toThrow(/is not i32/);
  });

  test("zero clears exactly the given byte range (also after growth) and rejects ranges outside memory", () => {
    const heap = new Heap({ initialBytes: RESERVED_BYTES + 65536 });
    const t = heap.fromArray(Float32Array.from({ length: 64 }, (_, i) => i + 1));
    heap.zero(t.ptr + 8, 16); // elements 2..5
    expect([...t.f32().subarray(0, 8)]).toEqual([1, 2, 0, 0, 0, 0, 7, 8]);
    const big = heap.alloc(4 * 65536); // forces growth: the zeroing module must see the new pages
    new Uint8Array(heap.buffer, big, 4 * 65536).fill(7);
    heap.zero(big + 3, 4 * 65536 - 6);
    const bytes = new Uint8Array(heap.buffer, big, 4 * 65536);
    expect([
      bytes[0],
      bytes[2],
      bytes[3],
      bytes[4 * 65536 - 4],
      bytes[4 * 65536 - 3],
      bytes[4 * 65536 - 1],
    ]).toEqual([7, 7, 0, 0, 7, 7]);
    t.fill(0);
    expect(t.f32().every((x) => x === 0)).toBe(true);
    expect(() => heap.zero(heap.byteLength - 4, 8)).toThrow(/outside the \d+-byte memory/);
    expect(() => heap.zero(-1, 4)).toThrow(RangeError);
  });
});
