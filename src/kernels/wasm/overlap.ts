// Aliasing predicates behind the wasm kernels' fallback rules: a generated kernel runs when its
// outputs and inputs relate in a way its chunked, vectorised passes reproduce exactly; any other
// aliasing goes to the reference kernels.

import type { Tensor } from "../../tensor/tensor.js";

/** True when the two tensors share a byte. */
export function overlaps(a: Tensor, b: Tensor): boolean {
  return (
    a.byteLength > 0 &&
    b.byteLength > 0 &&
    a.ptr < b.ptr + b.byteLength &&
    b.ptr < a.ptr + a.byteLength
  );
}

/** True when every (non-null) output is disjoint from every input and from the other outputs. */
export function outputsDisjoint(outs: (Tensor | null)[], ins: Tensor[]): boolean {
  const o = outs.filter((t): t is Tensor => t !== null);
  return disjoint(o) && o.every((t) => ins.every((i) => !overlaps(t, i)));
}

/** True when no two of the tensors share a byte. */
export function disjoint(tensors: Tensor[]): boolean {
  return tensors.every((t, i) => tensors.every((u, j) => j <= i || !overlaps(t, u)));
}

/**
 * True when every output is either exactly an input's buffer or disjoint from all inputs: then a
 * chunked, vectorised pass gives the reference result. Partial overlaps go to the reference.
 */
export function canRunInPlace(outs: Tensor[], ins: Tensor[]): boolean {
  return outs.every((o) =>
    ins.every((i) => (o.ptr === i.ptr && o.byteLength === i.byteLength) || !overlaps(o, i)),
  );
}
