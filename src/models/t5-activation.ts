// T5's feed-forward activations (transformers' ACT2FN names): "gelu_new" (tanh approximation, T5
// v1.1's gated-gelu), "gelu" (exact erf), through the gelu kernels, and "relu" (T5 v1.0), which
// the CPU engines have no kernel for: there it runs on the host over the tensors' f32 views (a
// single pass of compares, negligible beside the FFN's matmuls); an engine whose tensors live on
// a device (webgpu) has Kernels.relu / reluBackward and runs it there.
// Contract: forward overwrites out; backward overwrites dInp (never reads it); ReLU's derivative
// at 0 is 0, as PyTorch's.

import type { T5Activation } from "../io/hf-config.js";
import type { Kernels } from "../kernels/kernels.js";
import type { Tensor } from "../tensor/tensor.js";

/** out = act(inp), same size. */
export function activationForward(k: Kernels, act: T5Activation, out: Tensor, inp: Tensor): void {
  if (act === "relu" && k.relu !== undefined) k.relu(out, inp);
  else if (act === "relu") {
    const o = out.f32();
    const x = inp.f32();
    for (let i = 0; i < x.length; i++) o[i] = Math.max(x[i], 0);
  } else k.gelu(out, inp, act === "gelu_new" ? "tanh" : "none");
}

/** dInp = dOut * act'(inp). */
export function activationBackward(
  k: Kernels,
  act: T5Activation,
  dInp: Tensor,
  inp: Tensor,
  dOut: Tensor,
): void {
  if (act === "relu" && k.reluBackward !== undefined) k.reluBackward(dInp, inp, dOut);
  else if (act === "relu") {
    const dx = dInp.f32();
    const x = inp.f32();
    const dy = dOut.f32();
    for (let i = 0; i < x.length; i++) dx[i] = x[i] > 0 ? dy[i] : 0;
  } else
    k.geluBackward(dInp, inp, dOut, act === "gelu_new" ? "tanh" : "none", { accumulate: false });
}
