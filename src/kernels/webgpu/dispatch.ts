// Running one WGSL kernel on tensors of the heap mirror. A kernel is declared once (ShaderSpec):
// its buffers, its scalar parameters and the body of its compute entry point, written as if each
// tensor were its own array (`out[p.out_off + i] = ...`). WebGPU rejects two bindings of one
// buffer whose ranges overlap when either is writable, and tensors of the heap sit closer together
// than the 256-byte binding alignment, so a call binds ONE window of the mirror covering all its
// tensors, as array<u32> `mem`, and this module rewrites the body's tensor accesses into
// accessor calls on it (`out_store(i, v)`, `a_load(i)`, with bitcasts for f32 and i32):
//   window start = the lowest tensor byte offset rounded down to minStorageBufferOffsetAlignment,
//   `p.<name>_off` = the tensor's first element inside the window, in 4-byte words.
// The accessor rewrite knows three forms: `name[i] = v;`, `name[i] op= v;` and `name[i]` as a
// value. Scalars go in one uniform struct `p`. The pipeline is compiled once per distinct source.
// Coherence: tensors a kernel reads are uploaded where the heap is newer (Mirror.beforeRead);
// tensors it writes become device-newer (Mirror.afterWrite).

import type { Tensor } from "../../tensor/tensor.js";
import { BUFFER_USAGE } from "./device.js";
import type { Mirror } from "./mirror.js";

export type ScalarType = "u32" | "i32" | "f32";

export interface ShaderSpec {
  /** Distinguishes the pipeline in the cache together with the source; used in error messages. */
  readonly name: string;
  /** Storage buffers, in binding order; each is array<elem>. */
  readonly buffers: readonly { readonly name: string; readonly elem: ScalarType }[];
  /** Scalar parameters, fields of the uniform struct `p` after the buffers' `<name>_off`. */
  readonly params: readonly { readonly name: string; readonly type: ScalarType }[];
  /** WGSL after the header: helpers and `@compute ... fn main(...)`. */
  readonly body: string;
  /** The body uses subgroup built-ins: the module starts with `enable subgroups;`. */
  readonly subgroups?: boolean;
}

/** How a call uses a tensor: read it, write it (every element, old contents unused), or both. */
type Access = "read" | "write" | "readwrite";

export interface BoundTensor {
  readonly tensor: Tensor;
  readonly access: Access;
}

interface Compiled {
  readonly pipeline: GPUComputePipeline;
  readonly layout: GPUBindGroupLayout;
}

function header(spec: ShaderSpec): string {
  const fields = [
    ...spec.buffers.map((b) => `${b.name}_off: u32`),
    ...spec.params.map((p) => `${p.name}: ${p.type}`),
  ];
  const lines = spec.subgroups === true ? ["enable subgroups;"] : [];
  lines.push(`struct Params { ${fields.join(", ")} }`);
  lines.push("@group(0) @binding(0) var<uniform> p: Params;");
  lines.push("@group(0) @binding(1) var<storage, read_write> mem: array<u32>;");
  for (const { name, elem } of spec.buffers) {
    const load = elem === "u32" ? "mem[i]" : `bitcast<${elem}>(mem[i])`;
    const store = elem === "u32" ? "v" : "bitcast<u32>(v)";
    lines.push(`fn ${name}_load(i: u32) -> ${elem} { return ${load}; }`);
    lines.push(`fn ${name}_store(i: u32, v: ${elem}) { mem[i] = ${store}; }`);
  }
  return `${lines.join("\n")}\n`;
}

/** Index of the bracket closing the one at `open`. */
function closing(code: string, open: number): number {
  let depth = 0;
  for (let i = open; i < code.length; i++) {
    if (code[i] === "[") depth++;
    else if (code[i] === "]" && --depth === 0) return i;
  }
  throw new Error(`unbalanced [ in WGSL at ${open}`);
}

/** Rewrites `name[i] = v;`, `name[i] op= v;` and `name[i]` into the accessors of `header`. */
function rewriteAccesses(body: string, names: readonly string[]): string {
  const pattern = new RegExp(`\\b(${names.join("|")})\\[`, "g");
  let out = "";
  let from = 0;
  for (;;) {
    pattern.lastIndex = from;
    const match = pattern.exec(body);
    if (match === null) return out + body.slice(from);
    const name = match[1];
    const open = match.index + name.length;
    const close = closing(body, open);
    const index = rewriteAccesses(body.slice(open + 1, close), names);
    out += body.slice(from, match.index);
    const assign = /^\s*([-+*]?)=(?!=)/.exec(body.slice(close + 1));
    if (assign === null) {
      out += `${name}_load(${index})`;
      from = close + 1;
      continue;
    }
    const valueStart = close + 1 + assign[0].length;
    const end = body.indexOf(";", valueStart);
    const value = rewriteAccesses(body.slice(valueStart, end).trim(), names);
    const op = assign[1];
    out +=
      op === ""
        ? `${name}_store(${index}, ${value})`
        : `${name}_store(${index}, ${name}_load(${index}) ${op} (${value}))`;
    from = end;
  }
}

export class Dispatcher {
  private readonly mirror: Mirror;
  private readonly cache = new Map<string, Compiled>();

  constructor(mirror: Mirror) {
    this.mirror = mirror;
  }

  /**
   * Records spec over the tensors (one per spec buffer, same order) with the scalar parameters
   * (one per spec param, same order) on `groups` workgroups (x, y, z).
   */
  run(
    spec: ShaderSpec,
    tensors: readonly BoundTensor[],
    params: readonly number[],
    groups: readonly [number, number, number],
  ): void {
    if (tensors.length !== spec.buffers.length || params.length !== spec.params.length) {
      throw new Error(`webgpu ${spec.name}: wrong number of tensors or parameters`);
    }
    if (groups[0] === 0 || groups[1] === 0 || groups[2] === 0) return;
    const compiled = this.compile(spec);
    const device = this.mirror.gpu.device;
    const limits = this.mirror.gpu.limits;
    const align = limits.minStorageBufferOffsetAlignment;
    for (const { tensor, access } of tensors) {
      if (access !== "write") this.mirror.beforeRead(tensor.ptr, tensor.ptr + tensor.byteLength);
    }
    const buffer = this.mirror.current();

    // uniform: the window offsets, then the parameters, all 4-byte scalars, padded to 16 bytes
    const words = spec.buffers.length + spec.params.length;
    const uniformBytes = Math.max(16, Math.ceil((words * 4) / 16) * 16);
    const uniform = device.createBuffer({
      size: uniformBytes,
      usage: BUFFER_USAGE.UNIFORM,
      mappedAtCreation: true,
    });
    const mapped = uniform.getMappedRange();
    const u32 = new Uint32Array(mapped);
    const i32 = new Int32Array(mapped);
    const f32 = new Float32Array(mapped);
    let low = Number.POSITIVE_INFINITY;
    let high = 0;
    for (const { tensor } of tensors) {
      if (tensor.heap !== this.mirror.heap) {
        throw new Error(`webgpu ${spec.name}: ${tensor.toString()} is not in this engine's heap`);
      }
      if (tensor.ptr % 4 !== 0) {
        throw new Error(
          `webgpu ${spec.name}: ${tensor.toString()} starts at byte ${tensor.ptr}, not a 4-byte boundary`,
        );
      }
      low = Math.min(low, tensor.ptr);
      high = Math.max(high, tensor.ptr + tensor.byteLength);
    }
    const start = low - (low % align);
    const size = Math.max(4, Math.ceil((high - start) / 4) * 4);
    if (size > limits.maxStorageBufferBindingSize) {
      throw new Error(
        `webgpu ${spec.name}: the tensors span ${size} bytes of the heap, more than this device's ` +
          `largest storage binding (${limits.maxStorageBufferBindingSize} bytes)`,
      );
    }
    tensors.forEach(({ tensor }, i) => {
      u32[i] = (tensor.ptr - start) / 4;
    });
    const entries: GPUBindGroupEntry[] = [
      { binding: 0, resource: { buffer: uniform } },
      { binding: 1, resource: { buffer, offset: start, size } },
    ];
    spec.params.forEach(({ type }, j) => {
      const at = spec.buffers.length + j;
      const value = params[j];
      if (type === "f32") f32[at] = value;
      else if (type === "i32") i32[at] = value;
      else u32[at] = value;
    });
    uniform.unmap();

    const pass = this.mirror.encoder().beginComputePass();
    pass.setPipeline(compiled.pipeline);
    pass.setBindGroup(0, device.createBindGroup({ layout: compiled.layout, entries }));
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    pass.end();
    for (const { tensor, access } of tensors) {
      if (access !== "read") this.mirror.afterWrite(tensor.ptr, tensor.ptr + tensor.byteLength);
    }
  }

  private compile(spec: ShaderSpec): Compiled {
    const code =
      header(spec) +
      rewriteAccesses(
        spec.body,
        spec.buffers.map((b) => b.name),
      );
    const key = `${spec.name}\n${code}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    const device = this.mirror.gpu.device;
    const layout = device.createBindGroupLayout({
      entries: [
        { binding: 0, visibility: 4 /* GPUShaderStage.COMPUTE */, buffer: { type: "uniform" } },
        { binding: 1, visibility: 4 /* GPUShaderStage.COMPUTE */, buffer: { type: "storage" } },
      ],
    });
    const module = device.createShaderModule({ label: spec.name, code });
    const pipeline = device.createComputePipeline({
      label: spec.name,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    });
    const compiled = { pipeline, layout };
    this.cache.set(key, compiled);
    return compiled;
  }
}
