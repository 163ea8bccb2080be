// Reading and writing .safetensors files (format: https://github.com/huggingface/safetensors,
// README "Format"): an unsigned 64-bit little-endian header length N, N bytes of UTF-8 JSON
// `{"<name>": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}`, then
// the data section; offsets are relative to the data section, tensors are row-major little-endian.
//
// Contract:
// - Files are untrusted. Opening reads only the header, after bounding its length (<= 100 MB, the
//   limit of the reference Rust reader, and <= file size - 8) and before allocating for it. Every
//   entry is validated (known dtype, shape of non-negative integers, offsets inside the data
//   section and equal to numel x dtype size, no two tensors overlapping, no duplicate keys).
// - Tensor bytes are read on demand with positioned reads, in bounded chunks when converting.
// - Every error is one line naming the file, and the tensor where one is involved.
// - Writing is atomic (atomic-write.ts): a failed write never leaves a partial file behind.
// - Little-endian hosts only (every platform Node and browsers run on in practice); checked once.

import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";
import { f16ToF32, f32ToBf16, f32ToF16 } from "../tensor/dtype.js";
import { shapeString } from "../tensor/shape.js";
import type { Tensor } from "../tensor/tensor.js";
import { writeFileAtomicStreaming } from "./atomic-write.js";
import { isPlainObject, parseJsonStrict } from "./json.js";

type SafetensorsDType =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U8"
  | "BOOL";

const SAFETENSORS_DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export interface TensorEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte offset of the tensor's first byte in `file`. */
  byteOffset: number;
  byteLength: number;
  file: string;
}

/** The reference reader's bound on the header length (safetensors/src/tensor.rs, MAX_HEADER_SIZE). */
export const MAX_HEADER_BYTES = 100_000_000;
/** Bytes read per positioned read when converting (a multiple of every element size). */
const CHUNK_BYTES = 8 * 2 ** 20;
/** Upper bound on a single raw positioned read. */
const MAX_RAW_READ = 2 ** 30;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
function assertLittleEndian(): void {
  if (!LITTLE_ENDIAN) throw new Error("safetensors I/O needs a little-endian host");
}

function isSafetensorsDType(value: unknown): value is SafetensorsDType {
  return typeof value === "string" && Object.hasOwn(SAFETENSORS_DTYPE_BYTES, value);
}

const show = (value: unknown): string => {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
};

/** numel of a validated shape, or -1 when it exceeds Number.MAX_SAFE_INTEGER. */
function safeNumel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (d !== 0 && n > Number.MAX_SAFE_INTEGER / d) return -1;
    n *= d;
  }
  return n;
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

interface ParsedHeader {
  entries: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

/** Validates a parsed header against a data section of `dataLength` bytes starting at `dataStart`. */
function validateHeader(
  file: string,
  header: unknown,
  dataStart: number,
  dataLength: number,
): ParsedHeader {
  if (!isPlainObject(header))
    throw new Error(`${file}: header must be a JSON object, got ${show(header)}`);
  const entries = new Map<string, TensorEntry>();
  const metadata: Record<string, string> = {};
  const spans: { name: string; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isPlainObject(raw))
        throw new Error(`${file}: "__metadata__" must be an object of strings`);
      for (const [key, value] of Object.entries(raw)) {
        if (typeof value !== "string") {
          throw new Error(
            `${file}: "__metadata__" value for ${show(key)} must be a string, got ${show(value)}`,
          );
        }
        Object.defineProperty(metadata, key, { value, enumerable: true });
      }
      continue;
    }
    const where = `${file}: tensor ${show(name)}`;
    if (!isPlainObject(raw)) throw new Error(`${where}: entry must be an object, got ${show(raw)}`);
    const { dtype, shape, data_offsets: offsets } = raw;
    if (!isSafetensorsDType(dtype)) {
      throw new Error(
        `${where}: unknown dtype ${show(dtype)} (known: ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(", ")})`,
      );
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
      throw new Error(
        `${where}: shape must be an array of non-negative integers, got ${show(shape)}`,
      );
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
      throw new Error(
        `${where}: data_offsets must be [begin, end] non-negative integers, got ${show(offsets)}`,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end || end > dataLength) {
      throw new Error(
        `${where}: data_offsets [${begin}, ${end}] lie outside the data section of ${dataLength} bytes`,
      );
    }
    const count = safeNumel(shape);
    const expected = count < 0 ? -1 : count * SAFETENSORS_DTYPE_BYTES[dtype];
    if (expected !== end - begin) {
      const size = expected < 0 ? "too many" : String(expected);
      throw new Error(
        `${where}: data_offsets [${begin}, ${end}] do not match shape ${shapeString(shape)} x ${dtype} (${size} bytes)`,
      );
    }
    entries.set(name, {
      name,
      dtype,
      shape: [...shape],
      byteOffset: dataStart + begin,
      byteLength: end - begin,
      file,
    });
    if (end > begin) spans.push({ name, begin, end });
  }
  spans.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1];
    const cur = spans[i];
    if (cur.begin < prev.end) {
      throw new Error(
        `${file}: tensor ${show(cur.name)}: data_offsets [${cur.begin}, ${cur.end}] overlap tensor ${show(prev.name)} [${prev.begin}, ${prev.end}]`,
      );
    }
  }
  return { entries, metadata };
}

async function readExactly(
  handle: FileHandle,
  target: Uint8Array,
  position: number,
  what: string,
): Promise<void> {
  let done = 0;
  while (done < target.byteLength) {
    const length = Math.min(target.byteLength - done, MAX_RAW_READ);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0)
      throw new Error(`${what}: unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
}

// f16 -> f32 through a 65536-entry table (256 KiB), built on first use: one load per element.
let f16Table: Float32Array | undefined;
function f16ToF32Table(): Float32Array {
  if (f16Table === undefined) {
    const table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) table[bits] = f16ToF32(bits);
    f16Table = table;
  }
  return f16Table;
}

type Converter = (
  src: Uint8Array,
  count: number,
  dst: Tensor | Float32Array,
  dstElement: number,
  where: string,
) => void;

function f32View(dst: Tensor | Float32Array): Float32Array {
  return dst instanceof Float32Array ? dst : dst.f32();
}

const CONVERT_TO_F32: Partial<Record<SafetensorsDType, Converter>> = {
  F16: (src, count, dst, at) => {
    const bits = new Uint16Array(src.buffer, src.byteOffset, count);
    const out = f32View(dst);
    const table = f16ToF32Table();
    for (let i = 0; i < count; i++) out[at + i] = table[bits[i]];
  },
  BF16: (src, count, dst, at) => {
    // bf16 is the top half of a binary32: shifting the bits up gives the exact f32 (see dtype.ts)
    const bits = new Uint16Array(src.buffer, src.byteOffset, count);
    const out = f32View(dst);
    const outBits = new Uint32Array(out.buffer, out.byteOffset + at * 4, count);
    for (let i = 0; i < count; i++) outBits[i] = bits[i] << 16;
  },
  F64: (src, count, dst, at) => {
    f32View(dst).set(new Float64Array(src.buffer, src.byteOffset, count), at);
  },
};

const I64_TO_I32: Converter = (src, count, dst, at, where) => {
  const words = new Int32Array(src.buffer, src.byteOffset, count * 2); // (lo, hi) pairs, little-endian
  const out = (dst as Tensor).i32();
  for (let i = 0; i < count; i++) {
    const lo = words[2 * i];
    const hi = words[2 * i + 1];
    if (hi !== lo >> 31) {
      const value = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
      throw new Error(`${where}: I64 value ${value} at element ${at + i} does not fit in int32`);
    }
    out[at + i] = lo;
  }
};

/** How a source dtype is read into each engine dtype: "raw" copies bytes, a function converts. */
const READ_PLAN: Readonly<Record<string, "raw" | Converter>> = {
  "F32->f32": "raw",
  "F16->f16": "raw",
  "BF16->bf16": "raw",
  "I32->i32": "raw",
  "U8->u8": "raw",
  "BOOL->u8": "raw",
  "F16->f32": CONVERT_TO_F32.F16 as Converter,
  "BF16->f32": CONVERT_TO_F32.BF16 as Converter,
  "F64->f32": CONVERT_TO_F32.F64 as Converter,
  "I64->i32": I64_TO_I32,
};

/** One .safetensors file: header parsed at open, tensor bytes read on demand. */
export class SafetensorsFile {
  readonly path: string;
  readonly entries: ReadonlyMap<string, TensorEntry>;
  readonly metadata: Readonly<Record<string, string>>;
  private readonly handle: FileHandle;
  private closed = false;

  private constructor(path: string, handle: FileHandle, parsed: ParsedHeader) {
    this.path = path;
    this.handle = handle;
    this.entries = parsed.entries;
    this.metadata = Object.freeze(parsed.metadata);
  }

  /** Opens `path` and validates its header; no tensor bytes are read. */
  static async open(path: string): Promise<SafetensorsFile> {
    assertLittleEndian();
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
    } catch (error) {
      throw new Error(`${path}: cannot open: ${(error as Error).message}`);
    }
    try {
      const parsed = await SafetensorsFile.readHeader(path, handle);
      return new SafetensorsFile(path, handle, parsed);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  private static async readHeader(path: string, handle: FileHandle): Promise<ParsedHeader> {
    const fileSize = (await handle.stat()).size;
    if (fileSize < 8)
      throw new Error(`${path}: file is ${fileSize} bytes, too short for a safetensors header`);
    const prefix = new Uint8Array(8);
    await readExactly(handle, prefix, 0, path);
    const declared = new DataView(prefix.buffer).getBigUint64(0, true);
    if (declared > BigInt(Math.min(MAX_HEADER_BYTES, fileSize - 8))) {
      throw new Error(
        `${path}: header length ${declared} exceeds ${declared > BigInt(MAX_HEADER_BYTES) ? `the ${MAX_HEADER_BYTES}-byte limit` : `the ${fileSize - 8} bytes after the length field`}`,
      );
    }
    const headerLength = Number(declared);
    if (headerLength < 2)
      throw new Error(`${path}: header length ${headerLength} is too small for a JSON object`);
    const headerBytes = new Uint8Array(headerLength);
    await readExactly(handle, headerBytes, 8, path);
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
    } catch {
      throw new Error(`${path}: header is not valid UTF-8`);
    }
    const header = parseJsonStrict(text, `${path} header`);
    const dataStart = 8 + headerLength;
    return validateHeader(path, header, dataStart, fileSize - dataStart);
  }

  private entry(name: string): TensorEntry {
    if (this.closed) throw new Error(`${this.path}: file is closed (reading tensor ${show(name)})`);
    const entry = this.entries.get(name);
    if (entry === undefined)
      throw new Error(
        `${this.path}: tensor ${show(name)} not found (${this.entries.size} tensors in file)`,
      );
    return entry;
  }

  /** Reads `entry`'s bytes in chunks of whole elements and hands each chunk to `convert`. */
  private async readConverted(
    entry: TensorEntry,
    convert: Converter,
    dst: Tensor | Float32Array,
  ): Promise<void> {
    const where = `${this.path}: tensor ${show(entry.name)}`;
    const elementBytes = SAFETENSORS_DTYPE_BYTES[entry.dtype];
    const scratch = new Uint8Array(Math.min(CHUNK_BYTES, entry.byteLength));
    for (let done = 0; done < entry.byteLength; ) {
      const length = Math.min(scratch.byteLength, entry.byteLength - done);
      const chunk = scratch.subarray(0, length);
      await readExactly(this.handle, chunk, entry.byteOffset + done, where);
      convert(chunk, length / elementBytes, dst, done / elementBytes, where);
      done += length;
    }
  }

  /**
   * Reads tensor `name` into the engine tensor `target`, whose shape must equal the stored shape.
   * F32/F16/BF16/F64 -> f32 converts; F16 -> f16, BF16 -> bf16, I32 -> i32, U8/BOOL -> u8 copy the
   * bytes; I64 -> i32 checks that every value fits.
   */
  async readInto(name: string, target: Tensor): Promise<void> {
    const entry = this.entry(name);
    const where = `${this.path}: tensor ${show(name)}`;
    if (target.disposed) throw new Error(`${where}: target tensor is disposed`);
    if (
      target.shape.length !== entry.shape.length ||
      target.shape.some((d, i) => d !== entry.shape[i])
    ) {
      throw new Error(
        `${where}: stored shape ${shapeString(entry.shape)} does not match the target's ${shapeString(target.shape)}`,
      );
    }
    const plan = READ_PLAN[`${entry.dtype}->${target.dtype}`];
    if (plan === undefined) {
      const supported = Object.keys(READ_PLAN).filter((k) => k.startsWith(`${entry.dtype}->`));
      const options =
        supported.length > 0 ? supported.map((k) => k.split("->")[1]).join(", ") : "none";
      throw new Error(
        `${where}: cannot read ${entry.dtype} into a ${target.dtype} tensor (supported targets: ${options})`,
      );
    }
    if (plan === "raw") {
      const bytes = target.heap.u8(target.ptr, target.byteLength);
      await readExactly(this.handle, bytes, entry.byteOffset, where);
    } else {
      await this.readConverted(entry, plan, target);
    }
  }

  /** Reads tensor `name`'s stored bytes as they are (little-endian elements of its dtype). */
  async readBytes(name: string): Promise<Uint8Array> {
    const entry = this.entry(name);
    const out = new Uint8Array(entry.byteLength);
    await readExactly(this.handle, out, entry.byteOffset, `${this.path}: tensor ${show(name)}`);
    return out;
  }

  /** Reads a floating-point tensor (F32, F16, BF16, F64) as a new Float32Array. */
  async readF32(name: string): Promise<Float32Array> {
    const entry = this.entry(name);
    const count = entry.byteLength / SAFETENSORS_DTYPE_BYTES[entry.dtype];
    const out = new Float32Array(count);
    if (entry.dtype === "F32") {
      await readExactly(
        this.handle,
        new Uint8Array(out.buffer),
        entry.byteOffset,
        `${this.path}: tensor ${show(name)}`,
      );
      return out;
    }
    const convert = CONVERT_TO_F32[entry.dtype];
    if (convert === undefined) {
      throw new Error(
        `${this.path}: tensor ${show(name)}: readF32 needs a float tensor, got ${entry.dtype}`,
      );
    }
    await this.readConverted(entry, convert, out);
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoint directories (transformers' save_pretrained layout)

export interface Checkpoint {
  dir: string;
  entries: ReadonlyMap<string, TensorEntry>;
  readInto(name: string, target: Tensor): Promise<void>;
  readF32(name: string): Promise<Float32Array>;
  readBytes(name: string): Promise<Uint8Array>;
  close(): Promise<void>;
}

const SINGLE_FILE_NAME = "model.safetensors";
const INDEX_FILE_NAME = "model.safetensors.index.json";

/** A shard name from an index must be a plain file name inside the checkpoint directory. */
function isPlainFileName(name: string): boolean {
  return name.length > 0 && name !== "." && name !== ".." && !/[/\\:\0]/.test(name);
}

class CheckpointFiles implements Checkpoint {
  readonly dir: string;
  readonly entries: ReadonlyMap<string, TensorEntry>;
  private readonly fileOf: ReadonlyMap<string, SafetensorsFile>;
  private readonly files: readonly SafetensorsFile[];

  constructor(
    dir: string,
    files: readonly SafetensorsFile[],
    fileOf: Map<string, SafetensorsFile>,
  ) {
    this.dir = dir;
    this.files = files;
    this.fileOf = fileOf;
    const entries = new Map<string, TensorEntry>();
    for (const [name, file] of fileOf) entries.set(name, file.entries.get(name) as TensorEntry);
    this.entries = entries;
  }

  private file(name: string): SafetensorsFile {
    const file = this.fileOf.get(name);
    if (file === undefined)
      throw new Error(
        `${this.dir}: tensor ${show(name)} not found in the checkpoint (${this.fileOf.size} tensors)`,
      );
    return file;
  }
  readInto(name: string, target: Tensor): Promise<void> {
    return this.file(name).readInto(name, target);
  }
  readF32(name: string): Promise<Float32Array> {
    return this.file(name).readF32(name);
  }
  readBytes(name: string): Promise<Uint8Array> {
    return this.file(name).readBytes(name);
  }
  async close(): Promise<void> {
    await Promise.all(this.files.map((f) => f.close()));
  }
}

async function readTextIfExists(path: string): Promise<string | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`${path}: cannot open: ${(error as Error).message}`);
  }
  try {
    const size = (await handle.stat()).size;
    if (size > MAX_HEADER_BYTES)
      throw new Error(`${path}: ${size} bytes is too large for an index file`);
    return await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
}

/** Parses and validates an index.json; returns tensor name -> shard file name. */
function parseIndex(path: string, text: string): Map<string, string> {
  const index = parseJsonStrict(text, path);
  if (!isPlainObject(index)) throw new Error(`${path}: must be a JSON object`);
  const weightMap = index.weight_map;
  if (!isPlainObject(weightMap))
    throw new Error(`${path}: "weight_map" must be an object of tensor name -> file name`);
  const shardOf = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== "string" || !isPlainFileName(shard)) {
      throw new Error(
        `${path}: tensor ${show(name)}: shard ${show(shard)} must be a plain file name inside the checkpoint directory`,
      );
    }
    shardOf.set(name, shard);
  }
  if (shardOf.size === 0) throw new Error(`${path}: "weight_map" is empty`);
  return shardOf;
}

/**
 * Opens a model directory: `model.safetensors.index.json` (sharded; every listed tensor must be in
 * its shard) or else `model.safetensors`. Only headers are read.
 */
export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  const indexPath = join(dir, INDEX_FILE_NAME);
  const indexText = await readTextIfExists(indexPath);
  if (indexText === undefined) {
    const singlePath = join(dir, SINGLE_FILE_NAME);
    const single = await SafetensorsFile.open(singlePath).catch((error: Error) => {
      if (error.message.includes("ENOENT")) {
        throw new Error(
          `${dir}: no ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME} in the directory (only safetensors checkpoints are supported)`,
        );
      }
      throw error;
    });
    return new CheckpointFiles(
      dir,
      [single],
      new Map([...single.entries.keys()].map((n) => [n, single])),
    );
  }
  const shardOf = parseIndex(indexPath, indexText);
  const shards = new Map<string, SafetensorsFile>();
  try {
    for (const shardName of new Set(shardOf.values())) {
      shards.set(shardName, await SafetensorsFile.open(join(dir, shardName)));
    }
    const fileOf = new Map<string, SafetensorsFile>();
    for (const [name, shardName] of shardOf) {
      const file = shards.get(shardName) as SafetensorsFile;
      if (!file.entries.has(name)) {
        throw new Error(
          `${file.path}: tensor ${show(name)} listed in ${INDEX_FILE_NAME} is missing from the shard`,
        );
      }
      fileOf.set(name, file);
    }
    return new CheckpointFiles(dir, [...shards.values()], fileOf);
  } catch (error) {
    await Promise.all([...shards.values()].map((f) => f.close().catch(() => undefined)));
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface TensorToWrite {
  name: string;
  dtype: "F32" | "F16" | "BF16" | "I32" | "I64" | "U8";
  shape: number[];
  data: Float32Array | Uint16Array | Int32Array | Uint8Array | BigInt64Array;
}

function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Which data arrays each written dtype accepts (Float32Array for F16/BF16 is converted). */
function checkWritable(t: TensorToWrite, path: string): void {
  const where = `${path}: tensor ${show(t.name)}`;
  const ok =
    (t.dtype === "F32" && t.data instanceof Float32Array) ||
    ((t.dtype === "F16" || t.dtype === "BF16") &&
      (t.data instanceof Float32Array || t.data instanceof Uint16Array)) ||
    (t.dtype === "I32" && t.data instanceof Int32Array) ||
    (t.dtype === "I64" && (t.data instanceof BigInt64Array || t.data instanceof Int32Array)) ||
    (t.dtype === "U8" && t.data instanceof Uint8Array);
  if (!ok)
    throw new Error(`${where}: ${t.data.constructor.name} data cannot be written as ${t.dtype}`);
  if (!Array.isArray(t.shape) || !t.shape.every(isNonNegativeInteger)) {
    throw new Error(`${where}: shape must be non-negative integers, got ${show(t.shape)}`);
  }
  const count = safeNumel(t.shape);
  if (count !== t.data.length) {
    throw new Error(`${where}: ${t.data.length} values do not fill shape ${shapeString(t.shape)}`);
  }
}

/** Streams one tensor's stored bytes, converting in bounded chunks where needed. */
async function writeTensorData(
  t: TensorToWrite,
  write: (bytes: Uint8Array) => Promise<void>,
): Promise<void> {
  const data = t.data;
  const needsConversion = (t.dtype === "F16" || t.dtype === "BF16") && data instanceof Float32Array;
  if (needsConversion) {
    const toBits = t.dtype === "F16" ? f32ToF16 : f32ToBf16;
    const chunk = new Uint16Array(Math.min(CHUNK_BYTES / 2, data.length));
    for (let start = 0; start < data.length; start += chunk.length) {
      const n = Math.min(chunk.length, data.length - start);
      for (let i = 0; i < n; i++) chunk[i] = toBits(data[start + i]);
      await write(bytesOf(chunk.subarray(0, n)));
    }
  } else if (t.dtype === "I64" && data instanceof Int32Array) {
    const chunk = new BigInt64Array(Math.min(CHUNK_BYTES / 8, data.length));
    for (let start = 0; start < data.length; start += chunk.length) {
      const n = Math.min(chunk.length, data.length - start);
      for (let i = 0; i < n; i++) chunk[i] = BigInt(data[start + i]);
      await write(bytesOf(chunk.subarray(0, n)));
    }
  } else if (data.byteLength > 0) {
    await write(bytesOf(data));
  }
}

/**
 * The reference writer's layout order (safetensors/src/tensor.rs, `prepare`): dtype descending in
 * its Dtype enum order, then name. Sizes are non-increasing along it, so with the 8-byte padded
 * header every tensor starts aligned to its element size.
 */
const LAYOUT_RANK: Readonly<Record<TensorToWrite["dtype"], number>> = {
  I64: 5,
  F32: 4,
  I32: 3,
  BF16: 2,
  F16: 1,
  U8: 0,
};

/**
 * Writes a .safetensors file atomically, byte for byte as the reference Python/Rust writer does:
 * compact JSON header with `__metadata__` first (when given, keys sorted), then tensors in layout
 * order (LAYOUT_RANK, then name), padded with spaces to a multiple of 8 bytes. F32 data may be
 * stored as F16/BF16 (rounded to nearest even); Int32Array data may be stored as I64.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorToWrite[],
  metadata?: Record<string, string>,
): Promise<void> {
  assertLittleEndian();
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === "__metadata__")
      throw new Error(`${path}: "__metadata__" cannot be a tensor name`);
    if (seen.has(t.name)) throw new Error(`${path}: tensor ${show(t.name)} given twice`);
    seen.add(t.name);
    checkWritable(t, path);
  }
  const size = (t: TensorToWrite) => SAFETENSORS_DTYPE_BYTES[t.dtype];
  const byName = (a: TensorToWrite, b: TensorToWrite) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  const layout = [...tensors].sort(
    (a, b) => LAYOUT_RANK[b.dtype] - LAYOUT_RANK[a.dtype] || byName(a, b),
  );
  const offsets = new Map<string, [number, number]>();
  let cursor = 0;
  for (const t of layout) {
    const bytes = t.data.length * size(t);
    offsets.set(t.name, [cursor, cursor + bytes]);
    cursor += bytes;
  }
  const parts: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort();
    for (const k of keys) {
      if (typeof metadata[k] !== "string")
        throw new Error(`${path}: metadata value for ${show(k)} must be a string`);
    }
    parts.push(
      `"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(",")}}`,
    );
  }
  for (const t of layout) {
    const entry = { dtype: t.dtype, shape: t.shape, data_offsets: offsets.get(t.name) };
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify(entry)}`);
  }
  const json = new TextEncoder().encode(`{${parts.join(",")}}`);
  const headerLength = Math.ceil(json.byteLength / 8) * 8;
  const head = new Uint8Array(8 + headerLength).fill(0x20);
  new DataView(head.buffer).setBigUint64(0, BigInt(headerLength), true);
  head.set(json, 8);
  await writeFileAtomicStreaming(path, async (write) => {
    await write(head);
    for (const t of layout) await writeTensorData(t, write);
  });
}
