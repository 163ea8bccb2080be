// OLoRA (arXiv 2406.01775), as PEFT's LoraLayer.olora_init: reduced QR of the float32 weight
// W (out, in) = Q R (torch.linalg.qr, Householder as LAPACK geqrf: same signs as linalg/qr.ts),
//   B = Q[:, :r]  (out, r),   A = R[:r, :]  (r, in),   W' = W - s B A.
// Difference from PEFT 0.21: PEFT runs the QR on the STORED weight, which for a GPT-2 Conv1D
// (fan_in_fan_out, stored (in, out)) gives A and B of the wrong shapes; here the QR always runs on
// the (out, in) matrix. For a wide W (out < in), torch's reduced QR has Q (out, out) and
// R = Q^T W (out, in); the reflectors come from the first `out` columns, as computed here.

import { qr } from "../../linalg/qr.js";
import {
  describe,
  type InitContext,
  type InitResult,
  requireWeight,
  roundToAdapterDtype,
  scaledProduct,
} from "./common.js";

export function oloraInit(ctx: InitContext): InitResult {
  const { r, inFeatures: n, outFeatures: m, scaling: s } = ctx;
  const k = Math.min(m, n);
  if (r > k) throw new Error(`${describe(ctx)}: OLoRA needs r <= min(out, in) = ${k}, got r=${r}`);
  const W = requireWeight(ctx, "OLoRA");
  let Q: Float64Array; // (m, k)
  let R: Float64Array; // (k, n)
  if (m >= n) {
    ({ Q, R } = qr(W, m, n));
  } else {
    const left = new Float64Array(m * m); // W[:, :m]
    for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) left[i * m + j] = W[i * n + j];
    Q = qr(left, m, m).Q;
    R = new Float64Array(m * n); // Q^T W
    for (let t = 0; t < m; t++) {
      for (let i = 0; i < m; i++) {
        const q = Q[i * m + t];
        if (q === 0) continue;
        for (let j = 0; j < n; j++) R[t * n + j] += q * W[i * n + j];
      }
    }
  }
  const A = new Float32Array(r * n); // (r, in)
  const B = new Float32Array(m * r); // (out, r)
  for (let t = 0; t < r; t++) for (let j = 0; j < n; j++) A[t * n + j] = R[t * n + j];
  for (let i = 0; i < m; i++) for (let t = 0; t < r; t++) B[i * r + t] = Q[i * k + t];
  roundToAdapterDtype(ctx, A, B);
  return { A, B, baseOffset: scaledProduct(B, A, m, r, n, s, ctx.kernels) };
}
