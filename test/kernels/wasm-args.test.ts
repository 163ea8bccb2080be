// The argument layouts of the wasm engine's pool jobs (src/kernels/wasm/args.ts) tie the host's
// writer to the workers' reader: every job of every family reads exactly the fields its layout
// declares (and only declared thread-scratch fields), every layout round-trips through
// writeArgs / decodeArgs with each kind's encoding, fits the control block with its f64 fields
// aligned, and no two families provide the same Kernels method.

import { describe, expect, test } from "vitest";
import {
  type ArgLayout,
  type ArgSpec,
  type ArgValues,
  argsView,
  defineArgs,
  writeArgs,
} from "../../src/kernels/wasm/args.js";
import { WASM_FAMILIES } from "../../src/kernels/wasm/index.js";
import { CONTROL, SCRATCH_SLOTS } from "../../src/kernels/wasm/pool.js";
import { THREAD_SCRATCH } from "../../src/kernels/wasm/scratch.js";

const jobs = WASM_FAMILIES.flatMap((family) => family.jobs.map((job) => ({ family, job })));

/** An object whose reads are recorded; values: 1, true, or a zeroed Int32Array for arrays. */
function recordingArgs(layout: ArgLayout): { args: object; read: Set<string> } {
  const read = new Set<string>();
  const kinds = new Map(layout.rows.map(([name, kind, , slots]) => [name, { kind, slots }]));
  const args = new Proxy(
    {},
    {
      get(_target, key) {
        if (typeof key !== "string") return undefined;
        read.add(key);
        const field = kinds.get(key);
        if (field?.kind === "i32[]") return new Int32Array(field.slots);
        return field?.kind === "bool" ? true : 1;
      },
    },
  );
  return { args, read };
}

/** Generated functions that do nothing and return 0. */
const noExports = new Proxy({}, { get: () => () => 0 });

/** Values for every field of a layout, different per field, exercising each kind's encoding. */
function sampleValues(layout: ArgLayout): { [name: string]: unknown } {
  const values: { [name: string]: unknown } = {};
  layout.rows.forEach(([name, kind, , slots], i) => {
    if (kind === "i32") values[name] = -1000 - i;
    else if (kind === "u32" || kind === "ptr") values[name] = 0x80000000 + 16 * i;
    else if (kind === "bool") values[name] = i % 2 === 0;
    else if (kind === "f32" || kind === "f32bits") values[name] = 0.1 + i;
    else if (kind === "f64") values[name] = 1e-300 * (i + 1);
    else values[name] = Int32Array.from({ length: Math.min(slots, 5) }, (_, j) => j - 2);
  });
  return values;
}

function controlViews(): { i32: Int32Array; f32: Float32Array; f64: Float64Array } {
  const buffer = new ArrayBuffer(4 * (CONTROL.scratch + SCRATCH_SLOTS * 4));
  return {
    i32: new Int32Array(buffer),
    f32: new Float32Array(buffer),
    f64: new Float64Array(buffer),
  };
}

describe("wasm job argument layouts", () => {
  test("the families' jobs are all there, with distinct names", () => {
    const names = jobs.map(({ job }) => job.name);
    expect(names).toEqual([
      "gemm",
      "elementwise",
      "attentionSoftmax",
      "crossEntropy",
      "norm",
      "rope",
      "permute0213",
    ]);
  });

  test.each(jobs.map(({ family, job }) => ({ name: `${family.name}/${job.name}`, job })))(
    "$name reads exactly its declared fields",
    ({ job }) => {
      const a = recordingArgs(job.args);
      const s = recordingArgs(THREAD_SCRATCH);
      const run = job.run as (...params: unknown[]) => void;
      // one chunk (chunk 0) with every field 1: reads inside the chunk body count too
      const forEachChunk = (work: (chunk: number) => void): void => work(0);
      run(
        noExports,
        new Int32Array(0),
        new Float32Array(0),
        CONTROL,
        0,
        forEachChunk,
        a.args,
        s.args,
      );
      expect([...a.read].sort()).toEqual(Object.keys(job.args.spec).sort());
      const scratchNames = Object.keys(THREAD_SCRATCH.spec);
      expect([...s.read].filter((n) => !scratchNames.includes(n))).toEqual([]);
    },
  );

  test.each([
    ...jobs.map(({ job }) => ({ name: job.name, layout: job.args as ArgLayout })),
    { name: "thread scratch", layout: THREAD_SCRATCH as ArgLayout },
  ])("$name round-trips, fits the control block, f64 aligned", ({ name, layout }) => {
    const base = name === "thread scratch" ? CONTROL.scratch + SCRATCH_SLOTS : CONTROL.args;
    const limit = name === "thread scratch" ? SCRATCH_SLOTS : CONTROL.scratch - CONTROL.args;
    expect(layout.slots).toBeLessThanOrEqual(limit);
    const owner = new Map<number, string>();
    const shared: string[] = [];
    for (const [field, kind, slot, slots] of layout.rows) {
      if (kind === "f64") expect((base + slot) % 2).toBe(0);
      for (let i = slot; i < slot + slots; i++) {
        if (owner.has(i)) shared.push(`${owner.get(i)}/${field}`);
        owner.set(i, field);
      }
    }
    expect(shared).toEqual([]);
    const views = controlViews();
    const values = sampleValues(layout);
    writeArgs(views, base, layout, values as ArgValues<ArgSpec>);
    const decoded = { ...argsView(views.i32, views.f32, views.f64, base, layout.rows) };
    expect(Object.keys(decoded).sort()).toEqual(Object.keys(layout.spec).sort());
    for (const [field, kind] of layout.rows) {
      const v = values[field];
      const d = decoded[field];
      if (kind === "f32") expect(d).toBe(Math.fround(v as number));
      else if (kind === "f32bits")
        expect(d).toBe(new Int32Array(Float32Array.of(v as number).buffer)[0]);
      else if (kind === "i32[]") {
        const a = v as Int32Array;
        expect(Array.from((d as Int32Array).subarray(0, a.length))).toEqual(Array.from(a));
      } else expect(d).toBe(v);
    }
  });

  test("encodings: unsigned pointers, booleans, f64; any key order; bad values throw", () => {
    const layout = defineArgs({ p: "ptr", n: "i32", b: "bool", x: "f64", list: ["i32", 3] });
    expect(layout.rows.map((r) => r[2])).toEqual([0, 1, 2, 4, 6]); // x on an even slot
    const views = controlViews();
    const read = () => ({
      ...argsView(views.i32, views.f32, views.f64, CONTROL.args, layout.rows),
    });
    writeArgs(views, CONTROL.args, layout, { p: 0xfffffff0, n: -5, b: true, x: 0.1, list: null });
    expect(read()).toEqual({ p: 0xfffffff0, n: -5, b: true, x: 0.1, list: new Int32Array(3) });
    // keys in another order than declared
    writeArgs(views, CONTROL.args, layout, { list: [7, 8], x: -2, b: false, n: 3, p: 64 });
    expect(read()).toEqual({ p: 64, n: 3, b: false, x: -2, list: Int32Array.of(7, 8, 0) });
    const bad = (values: object) => () =>
      writeArgs(views, CONTROL.args, layout, values as ArgValues<typeof layout.spec>);
    expect(bad({ p: 0, n: 0, b: false, x: 0, list: [1, 2, 3, 4] })).toThrow(/4 > 3/);
    expect(bad({ p: 0, n: 0, b: false, x: 0 })).toThrow(/missing/);
    expect(bad({ p: 0, n: 0, b: false, x: 0, list: null, extra: 1 })).toThrow(/no argument extra/);
  });

  test("no Kernels method is provided by two families", () => {
    const provided = WASM_FAMILIES.flatMap((family) => family.provides);
    expect(new Set(provided).size).toBe(provided.length);
  });
});
