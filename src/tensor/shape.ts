// Shape helpers shared by every module: element counts and shape assertions whose errors name the
// tensors and shapes involved.

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new RangeError(`invalid dimension ${d} in shape [${shape.join(", ")}]`);
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n)) throw new RangeError(`shape [${shape.join(", ")}] is too large`);
  return n;
}

export function shapeString(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Throws `${what}: expected shape [..], got [..]` unless `actual` equals `expected`. */
export function assertShape(
  what: string,
  actual: readonly number[],
  expected: readonly number[],
): void {
  if (!sameShape(actual, expected)) {
    throw new Error(`${what}: expected shape ${shapeString(expected)}, got ${shapeString(actual)}`);
  }
}
