// A small WebAssembly binary assembler: enough of the format to emit the engine's kernels from
// TypeScript (no external toolchain, no opaque binaries). It writes one module that imports the
// engine's shared memory as "env"."memory" and exports functions built with FunctionBuilder.
//
// Contract: the emitted bytes follow the WebAssembly 2.0 binary format
// (https://webassembly.github.io/spec/core/binary/) plus the threads proposal (shared memory
// limits, atomics opcodes under prefix 0xFE) and relaxed SIMD (opcodes under prefix 0xFD,
// https://github.com/WebAssembly/relaxed-simd/blob/main/proposals/relaxed-simd/Overview.md).
// It checks nothing beyond what it needs to encode: WebAssembly.validate / new Module is the judge.

const ValType = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b } as const;
export type ValTypeName = keyof typeof ValType;

/** Single-byte opcodes (MVP), by mnemonic. */
const Op = {
  unreachable: 0x00,
  nop: 0x01,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  br_if: 0x0d,
  return: 0x0f,
  call: 0x10,
  drop: 0x1a,
  select: 0x1b,
  "local.get": 0x20,
  "local.set": 0x21,
  "local.tee": 0x22,
  "i32.load": 0x28,
  "f32.load": 0x2a,
  "f64.load": 0x2b,
  "i32.store": 0x36,
  "f32.store": 0x38,
  "f64.store": 0x39,
  "i32.const": 0x41,
  "f32.const": 0x43,
  "i32.eqz": 0x45,
  "i32.eq": 0x46,
  "i32.ne": 0x47,
  "i32.lt_s": 0x48,
  "i32.lt_u": 0x49,
  "i32.gt_s": 0x4a,
  "i32.gt_u": 0x4b,
  "i32.le_s": 0x4c,
  "i32.ge_s": 0x4e,
  "i32.ge_u": 0x4f,
  "i32.add": 0x6a,
  "i32.sub": 0x6b,
  "i32.mul": 0x6c,
  "i32.rem_u": 0x70,
  "i32.and": 0x71,
  "i32.or": 0x72,
  "i32.shl": 0x74,
  "i32.shr_u": 0x76,
  "f32.add": 0x92,
  "f32.sub": 0x93,
  "f32.mul": 0x94,
  "f64.add": 0xa0,
  "f64.sub": 0xa1,
  "f64.mul": 0xa2,
  "f64.div": 0xa3,
  "f64.sqrt": 0x9f,
  "f32.demote_f64": 0xb6,
  "f64.promote_f32": 0xbb,
} as const;
export type OpName = keyof typeof Op;

/** SIMD opcodes (prefix 0xFD, LEB128 sub-opcode), by mnemonic; relaxed SIMD at the end. */
const SimdOp = {
  "v128.load": 0x00,
  "v128.load32_splat": 0x09,
  "v128.store": 0x0b,
  "v128.const": 0x0c,
  "i8x16.shuffle": 0x0d,
  "i32x4.splat": 0x11,
  "f32x4.splat": 0x13,
  "f32x4.extract_lane": 0x1f,
  "f32x4.nearest": 0x6a,
  "i32x4.shl": 0xab,
  "i32x4.add": 0xae,
  "v128.load32_zero": 0x5c,
  "v128.store32_lane": 0x5a,
  "f32x4.neg": 0xe1,
  "f32x4.add": 0xe4,
  "f32x4.sub": 0xe5,
  "f32x4.mul": 0xe6,
  "f32x4.div": 0xe7,
  "f32x4.min": 0xe8,
  "f32x4.max": 0xe9,
  "f32x4.pmin": 0xea,
  "f32x4.pmax": 0xeb,
  "i32x4.trunc_sat_f32x4_s": 0xf8,
  "f64x2.splat": 0x14,
  "f64x2.extract_lane": 0x21,
  "f64x2.add": 0xf0,
  "f64x2.sub": 0xf1,
  "f64x2.mul": 0xf2,
  "f32x4.relaxed_madd": 0x105,
  "f32x4.relaxed_nmadd": 0x106,
} as const;
export type SimdOpName = keyof typeof SimdOp;

/** Atomic opcodes (prefix 0xFE), by mnemonic. */
const AtomicOp = {
  "memory.atomic.notify": 0x00,
  "memory.atomic.wait32": 0x01,
  "i32.atomic.load": 0x10,
  "i32.atomic.store": 0x17,
  "i32.atomic.rmw.add": 0x1e,
} as const;
export type AtomicOpName = keyof typeof AtomicOp;

const SECTION = { type: 1, import: 2, function: 3, export: 7, code: 10 } as const;
const BLOCK_VOID = 0x40;

/** Natural alignment exponent (log2 bytes) of each memory access, for the memarg. */
/** i8x16.shuffle lane patterns of reduceLanes: swap the 64-bit halves, swap neighbouring lanes. */
const SWAP_HALVES = [8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7];
const SWAP_PAIRS = [4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11];

const NATURAL_ALIGN: { [op: string]: number } = {
  "i32.load": 2,
  "f32.load": 2,
  "i32.store": 2,
  "f32.store": 2,
  "f64.load": 3,
  "f64.store": 3,
  "v128.load": 4,
  "v128.store": 4,
  "v128.load32_splat": 2,
  "v128.load32_zero": 2,
  "v128.store32_lane": 2,
  "i32.atomic.load": 2,
  "i32.atomic.store": 2,
  "i32.atomic.rmw.add": 2,
  "memory.atomic.notify": 2,
  "memory.atomic.wait32": 2,
};

export function unsignedLeb(value: number, out: number[]): void {
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
}

export function signedLeb(value: number, out: number[]): void {
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    const done = (v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return;
  }
}

function encodeString(s: string, out: number[]): void {
  const bytes = new TextEncoder().encode(s);
  unsignedLeb(bytes.length, out);
  for (const b of bytes) out.push(b);
}

/** A local variable or parameter slot. */
export interface Local {
  readonly index: number;
  readonly type: ValTypeName;
}

/** Emits one function body; every method appends instructions and returns `this` for chaining. */
export class FunctionBuilder {
  readonly name: string;
  readonly params: Local[];
  readonly results: ValTypeName[];
  readonly exported: boolean;
  private readonly locals: Local[] = [];
  private readonly code: number[] = [];

  constructor(name: string, params: ValTypeName[], results: ValTypeName[], exported: boolean) {
    this.name = name;
    this.params = params.map((type, index) => ({ index, type }));
    this.results = results;
    this.exported = exported;
  }

  /** Parameter slot `i`. */
  param(i: number): Local {
    return this.params[i];
  }

  /** Declares a fresh local. */
  local(type: ValTypeName): Local {
    const l = { index: this.params.length + this.locals.length, type };
    this.locals.push(l);
    return l;
  }

  op(name: OpName): this {
    this.code.push(Op[name]);
    return this;
  }

  get(l: Local): this {
    this.code.push(Op["local.get"]);
    unsignedLeb(l.index, this.code);
    return this;
  }
  set(l: Local): this {
    this.code.push(Op["local.set"]);
    unsignedLeb(l.index, this.code);
    return this;
  }
  tee(l: Local): this {
    this.code.push(Op["local.tee"]);
    unsignedLeb(l.index, this.code);
    return this;
  }
  i32(value: number): this {
    this.code.push(Op["i32.const"]);
    signedLeb(value, this.code);
    return this;
  }
  /** `local = 0.0` for an f64 local. */
  f64Zero(l: Local): this {
    this.code.push(0x44, 0, 0, 0, 0, 0, 0, 0, 0); // f64.const 0
    return this.set(l);
  }
  f32(value: number): this {
    this.code.push(Op["f32.const"]);
    const bytes = new Uint8Array(new Float32Array([value]).buffer);
    for (const b of bytes) this.code.push(b);
    return this;
  }

  /** Memory access (load/store) with a static byte offset. */
  mem(
    name: "i32.load" | "f32.load" | "f64.load" | "i32.store" | "f32.store" | "f64.store",
    offset = 0,
  ): this {
    this.code.push(Op[name]);
    unsignedLeb(NATURAL_ALIGN[name], this.code);
    unsignedLeb(offset, this.code);
    return this;
  }

  simd(name: SimdOpName): this {
    this.code.push(0xfd);
    unsignedLeb(SimdOp[name], this.code);
    return this;
  }
  /** SIMD memory access with a static byte offset. */
  simdMem(
    name: "v128.load" | "v128.store" | "v128.load32_splat" | "v128.load32_zero",
    offset = 0,
  ): this {
    this.simd(name);
    unsignedLeb(NATURAL_ALIGN[name], this.code);
    unsignedLeb(offset, this.code);
    return this;
  }
  /** Lane access (`v128.store32_lane`, `f32x4.extract_lane`, `f64x2.extract_lane`). */
  simdLane(
    name: "v128.store32_lane" | "f32x4.extract_lane" | "f64x2.extract_lane",
    lane: number,
    offset = 0,
  ): this {
    this.simd(name);
    if (name === "v128.store32_lane") {
      unsignedLeb(NATURAL_ALIGN[name], this.code);
      unsignedLeb(offset, this.code);
    }
    this.code.push(lane);
    return this;
  }
  /** i8x16.shuffle with 16 byte-lane indices (0-15 first operand, 16-31 second). */
  shuffle(lanes: readonly number[]): this {
    if (lanes.length !== 16) throw new Error("asm: i8x16.shuffle takes 16 lane indices");
    this.simd("i8x16.shuffle");
    for (const l of lanes) this.code.push(l);
    return this;
  }
  atomic(name: AtomicOpName, offset = 0): this {
    this.code.push(0xfe);
    unsignedLeb(AtomicOp[name], this.code);
    unsignedLeb(NATURAL_ALIGN[name], this.code);
    unsignedLeb(offset, this.code);
    return this;
  }

  block(): this {
    this.code.push(Op.block, BLOCK_VOID);
    return this;
  }
  loop(): this {
    this.code.push(Op.loop, BLOCK_VOID);
    return this;
  }
  if(): this {
    this.code.push(Op.if, BLOCK_VOID);
    return this;
  }
  else(): this {
    this.code.push(Op.else);
    return this;
  }
  end(): this {
    this.code.push(Op.end);
    return this;
  }
  br(depth: number): this {
    this.code.push(Op.br);
    unsignedLeb(depth, this.code);
    return this;
  }
  brIf(depth: number): this {
    this.code.push(Op.br_if);
    unsignedLeb(depth, this.code);
    return this;
  }
  call(functionIndex: number): this {
    this.code.push(Op.call);
    unsignedLeb(functionIndex, this.code);
    return this;
  }

  /** memory.fill (bulk memory, 0xfc 11) on memory 0: pops (dst, byte value, length). */
  memoryFill(): this {
    this.code.push(0xfc, 0x0b, 0x00);
    return this;
  }

  /**
   * Replaces the f32x4 in local `v` by the reduction `op` of its 4 lanes, in every lane: two
   * rounds of (v op v with 64-bit halves swapped), then neighbouring lanes swapped.
   */
  reduceLanes(v: Local, op: "f32x4.pmax" | "f32x4.add"): this {
    for (const lanes of [SWAP_HALVES, SWAP_PAIRS])
      this.get(v).get(v).get(v).shuffle(lanes).simd(op).set(v);
    return this;
  }

  /** `local += delta` for an i32 local. */
  addTo(l: Local, delta: number | Local): this {
    this.get(l);
    if (typeof delta === "number") this.i32(delta);
    else this.get(delta);
    return this.op("i32.add").set(l);
  }

  /** The function body: local declarations, code, final `end`. */
  encodeBody(): number[] {
    const body: number[] = [];
    // one run-length entry per local (simple, and V8 does not care)
    unsignedLeb(this.locals.length, body);
    for (const l of this.locals) {
      body.push(1, ValType[l.type]);
    }
    body.push(...this.code, Op.end);
    const out: number[] = [];
    unsignedLeb(body.length, out);
    for (const b of body) out.push(b);
    return out;
  }
}

export interface MemoryImport {
  /** Pages the imported memory must have at least (the module's declared minimum). */
  minimumPages: number;
  maximumPages: number;
  shared: boolean;
}

/** A module: an imported memory ("env"."memory") plus functions, in definition order. */
export class ModuleBuilder {
  private readonly functions: FunctionBuilder[] = [];
  private readonly memory: MemoryImport;

  constructor(memory: MemoryImport) {
    this.memory = memory;
  }

  /** Adds a function; its index (for `call`) is the returned builder's position. */
  func(
    name: string,
    params: ValTypeName[],
    results: ValTypeName[],
    exported = true,
  ): FunctionBuilder {
    const f = new FunctionBuilder(name, params, results, exported);
    this.functions.push(f);
    return f;
  }

  indexOf(f: FunctionBuilder): number {
    const i = this.functions.indexOf(f);
    if (i < 0) throw new Error(`asm: function ${f.name} is not part of this module`);
    return i;
  }

  encode(): Uint8Array<ArrayBuffer> {
    const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    const section = (id: number, payload: number[]): void => {
      out.push(id);
      unsignedLeb(payload.length, out);
      for (const b of payload) out.push(b);
    };
    // types: one per function (duplicates are legal)
    const types: number[] = [];
    unsignedLeb(this.functions.length, types);
    for (const f of this.functions) {
      types.push(0x60);
      unsignedLeb(f.params.length, types);
      for (const p of f.params) types.push(ValType[p.type]);
      unsignedLeb(f.results.length, types);
      for (const r of f.results) types.push(ValType[r]);
    }
    section(SECTION.type, types);
    const imports: number[] = [];
    unsignedLeb(1, imports);
    encodeString("env", imports);
    encodeString("memory", imports);
    imports.push(0x02, this.memory.shared ? 0x03 : 0x01); // memory; limits flag (min+max, shared)
    unsignedLeb(this.memory.minimumPages, imports);
    unsignedLeb(this.memory.maximumPages, imports);
    section(SECTION.import, imports);
    const funcs: number[] = [];
    unsignedLeb(this.functions.length, funcs);
    for (let i = 0; i < this.functions.length; i++) unsignedLeb(i, funcs);
    section(SECTION.function, funcs);
    const exported = this.functions.filter((f) => f.exported);
    const exports: number[] = [];
    unsignedLeb(exported.length, exports);
    for (const f of exported) {
      encodeString(f.name, exports);
      exports.push(0x00);
      unsignedLeb(this.functions.indexOf(f), exports);
    }
    section(SECTION.export, exports);
    const code: number[] = [];
    unsignedLeb(this.functions.length, code);
    for (const f of this.functions) for (const b of f.encodeBody()) code.push(b);
    section(SECTION.code, code);
    return new Uint8Array(out);
  }
}

/** True when this runtime validates a module using f32x4.relaxed_madd (relaxed SIMD). */
export function relaxedSimdSupported(): boolean {
  const m = new ModuleBuilder({ minimumPages: 1, maximumPages: 1, shared: true });
  const f = m.func("probe", [], ["v128"]);
  f.f32(1).simd("f32x4.splat").f32(2).simd("f32x4.splat").f32(3).simd("f32x4.splat");
  f.simd("f32x4.relaxed_madd");
  try {
    return WebAssembly.validate(m.encode());
  } catch {
    return false;
  }
}

/** True when this runtime validates a module using SIMD128 with a shared memory. */
export function simdSupported(): boolean {
  const m = new ModuleBuilder({ minimumPages: 1, maximumPages: 1, shared: true });
  const f = m.func("probe", [], ["v128"]);
  f.f32(1).simd("f32x4.splat");
  try {
    return WebAssembly.validate(m.encode());
  } catch {
    return false;
  }
}
