// Reference axis swap: out (A, C, B, D) = inp (A, B, C, D) with axes 1 and 2 exchanged — the
// (B, T, H, D) <-> (B, H, T, D) reshuffle around attention. out must not overlap inp.
// It is its own adjoint: the backward of permute0213 on (A, B, C, D) is permute0213 on (A, C, B, D).

import type { Floats } from "./types.js";

export interface Permute0213Dims {
  a: number;
  b: number;
  c: number;
  d: number;
}

export function permute0213(out: Floats, inp: Floats, dims: Permute0213Dims): void {
  const { a, b, c, d } = dims;
  for (let ia = 0; ia < a; ia++) {
    for (let ib = 0; ib < b; ib++) {
      for (let ic = 0; ic < c; ic++) {
        const src = ((ia * b + ib) * c + ic) * d; // inp[ia, ib, ic, :]
        const dst = ((ia * c + ic) * b + ib) * d; // out[ia, ic, ib, :]
        for (let id = 0; id < d; id++) out[dst + id] = inp[src + id];
      }
    }
  }
}
