// Argument layouts of the thread pool's jobs, declared once. A job's arguments travel from the
// calling thread to the workers as i32 slots of the control block (pool.ts); `defineArgs` turns a
// declaration such as { m: "i32", a: "ptr", alpha: "f32", eps: "f64", keyLengths: ["i32", 32768] }
// into slot offsets, and both sides take their offsets from it:
//   - the host writes an object typed from the declaration (writeArgs: TypeScript checks its
//     keys and value types);
//   - the workers receive the layout as data when the pool starts (`rows`, plain arrays) and
//     read the arguments through a view typed from the same declaration (argsView: one getter
//     per field over the control block, built once per job and thread, so a job pays no decode).
// No job body holds a slot offset. test/kernels/wasm-args.test.ts checks that every job reads
// exactly the fields its layout declares and that each layout round-trips.
//
// Field kinds (one i32 slot each unless said otherwise):
//   i32      a signed integer
//   u32      an unsigned integer (byte strides and sizes that may pass 2^31)
//   ptr      a heap byte offset (unsigned, like u32)
//   bool     written 1 / 0, read as `!== 0`
//   f32      a float rounded to f32 (read back as that f32)
//   f32bits  a float rounded to f32, read back as its bit pattern in an i32 (for wasm functions
//            that take a float through an integer parameter, see families/gemm/emit.ts)
//   f64      a float64 in two slots, 8-byte aligned (the control block and `args` start on
//            8-byte boundaries: checked by the pool)
//   ["i32", n]  up to n i32 values; decoded as an Int32Array view of the n slots (no copy)
//
// A view reads the control block when a field is read: a job reads its arguments at its start
// (destructuring them), as they belong to its job only until the job returns.
// Must never: hold state, or reference anything outside its body in argsView (shipped to the
// workers as source text, like the jobs).

/** The kinds of a one-value field (see the header). */
type ArgKind = "i32" | "u32" | "ptr" | "bool" | "f32" | "f32bits" | "f64";
/** A field's declaration: a kind, or ["i32", n] for an array of n i32 slots. */
type ArgField = ArgKind | readonly ["i32", number];
/** A layout declaration: field name -> kind. */
export type ArgSpec = { readonly [name: string]: ArgField };

/**
 * One field as data, shipped to the workers: [name, kind ("i32[]" for arrays), first slot
 * (relative to the layout's base), slots used].
 */
export type ArgRow = readonly [name: string, kind: ArgKind | "i32[]", slot: number, slots: number];

export interface ArgLayout<S extends ArgSpec = ArgSpec> {
  /** The declaration, for types only. */
  readonly spec: S;
  /** Fields in declaration order, with their slots. */
  readonly rows: readonly ArgRow[];
  /** i32 slots the layout spans. */
  readonly slots: number;
  /** Field name -> index in rows (for the host's writer). */
  readonly index: ReadonlyMap<string, number>;
}

/** The arguments a job receives: numbers, booleans, Int32Array views for arrays. */
export type Args<S extends ArgSpec> = {
  readonly [K in keyof S]: S[K] extends readonly ["i32", number]
    ? Int32Array
    : S[K] extends "bool"
      ? boolean
      : number;
};

/** The values the host writes: numbers, booleans, and for arrays the values (null: none). */
export type ArgValues<S extends ArgSpec> = {
  readonly [K in keyof S]: S[K] extends readonly ["i32", number]
    ? ArrayLike<number> | null
    : S[K] extends "bool"
      ? boolean
      : number;
};

/** Views of the control block that the arguments are written through and read from. */
export interface ControlViews {
  readonly i32: Int32Array;
  readonly f32: Float32Array;
  /** Covers the same bytes as i32; f64 slot pairs are read at index (slot / 2). */
  readonly f64: Float64Array;
}

/** Lays out `spec` in declaration order (f64 fields on an even slot). */
export function defineArgs<const S extends ArgSpec>(spec: S): ArgLayout<S> {
  const rows: ArgRow[] = [];
  let slot = 0;
  for (const [name, field] of Object.entries(spec)) {
    if (typeof field !== "string") {
      const n = field[1];
      if (!Number.isInteger(n) || n < 1) throw new Error(`defineArgs: ${name}: bad length ${n}`);
      rows.push([name, "i32[]", slot, n]);
      slot += n;
    } else if (field === "f64") {
      slot += slot % 2;
      rows.push([name, field, slot, 2]);
      slot += 2;
    } else {
      rows.push([name, field, slot, 1]);
      slot += 1;
    }
  }
  return { spec, rows, slots: slot, index: new Map(rows.map((row, i) => [row[0], i])) };
}

/**
 * Writes `values` into the layout's slots from i32 index `base`. Every field must be given (an
 * unknown or missing one throws); an array longer than its field throws; a null array leaves its
 * slots as they are. Why for-in: it reads the properties of the host's object literal in order
 * without a keyed lookup each, and when they come in declaration order (the families' host code
 * writes them so) each field is found without a map lookup; any other order is only slower.
 */
export function writeArgs<S extends ArgSpec>(
  views: ControlViews,
  base: number,
  layout: ArgLayout<S>,
  values: ArgValues<S>,
): void {
  const rows = layout.rows;
  const v = values as { readonly [name: string]: unknown };
  let next = 0;
  let count = 0;
  for (const name in v) {
    const x = v[name];
    const r = next < rows.length && rows[next][0] === name ? next : layout.index.get(name);
    if (r === undefined) throw new Error(`wasm kernels: no argument ${name} in this job`);
    next = r + 1;
    count++;
    const row = rows[r];
    const kind = row[1];
    const i = base + row[2];
    if (kind === "f32" || kind === "f32bits") views.f32[i] = x as number;
    else if (kind === "f64") views.f64[i >> 1] = x as number;
    else if (kind === "bool") views.i32[i] = x === true ? 1 : 0;
    else if (kind === "i32[]") {
      if (x === null) continue;
      const a = x as ArrayLike<number>;
      if (a.length > row[3])
        throw new Error(`wasm kernels: ${name}: ${a.length} > ${row[3]} values`);
      views.i32.set(a, i);
    } else views.i32[i] = x as number;
  }
  if (count !== rows.length) throw new Error("wasm kernels: a job argument is missing");
}

/**
 * A view of a layout's fields (`rows`) from i32 index `base`: one getter per field, reading the
 * control block (see the header for each kind). Built once per job and thread. Self-contained:
 * shipped to the workers as source text.
 */
export function argsView(
  i32: Int32Array,
  f32: Float32Array,
  f64: Float64Array,
  base: number,
  rows: readonly ArgRow[],
): { readonly [name: string]: number | boolean | Int32Array } {
  const view = {};
  for (let r = 0; r < rows.length; r++) {
    const [name, kind, slot, slots] = rows[r];
    const i = base + slot;
    let get: () => number | boolean | Int32Array;
    if (kind === "i32" || kind === "f32bits") get = () => i32[i];
    else if (kind === "u32" || kind === "ptr") get = () => i32[i] >>> 0;
    else if (kind === "bool") get = () => i32[i] !== 0;
    else if (kind === "f32") get = () => f32[i];
    else if (kind === "f64") get = () => f64[i >> 1];
    else {
      const values = i32.subarray(i, i + slots);
      get = () => values;
    }
    Object.defineProperty(view, name, { get, enumerable: true });
  }
  return view;
}
