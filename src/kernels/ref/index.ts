// createRefKernels: the reference implementation of the Kernels interface. Each method validates
// its arguments with kernels/validate.ts, takes typed-array views of the tensors at call time (the
// heap may have grown since the last call) and runs the pure function of the op's file.
// Single-threaded; dispose() has nothing to release; upload and download have nothing to do.

import type { Heap } from "../../tensor/heap.js";
import type { Tensor } from "../../tensor/tensor.js";
import type {
  AdamWOptions,
  AttentionSoftmaxOptions,
  CrossEntropyOptions,
  GeluApproximate,
  Kernels,
  MatmulOptions,
  SGDOptions,
} from "../kernels.js";
import * as check from "../validate.js";
import * as act from "./activations.js";
import { adamw } from "./adamw.js";
import { attentionSoftmax, attentionSoftmaxBackward } from "./attention.js";
import { copyColumns, maskOutsideWindow } from "./columns.js";
import { convert } from "./convert.js";
import { crossEntropy } from "./cross-entropy.js";
import * as ew from "./elementwise.js";
import { embedding, embeddingBackward } from "./embedding.js";
import { matmul } from "./matmul.js";
import * as norms from "./norms.js";
import { permute0213 } from "./permute.js";
import * as reduce from "./reduce.js";
import { rope, ropeBackward } from "./rope.js";
import { sgd } from "./sgd.js";

function checkApproximate(op: string, approximate: GeluApproximate): void {
  if (approximate !== "none" && approximate !== "tanh") {
    throw new Error(`${op}: approximate must be "none" or "tanh", got ${String(approximate)}`);
  }
}

function floatView(t: Tensor): Float32Array | Uint16Array {
  return t.dtype === "f32" ? t.f32() : t.u16();
}

export function createRefKernels(heap: Heap): Kernels {
  const kernels: Kernels = {
    name: "ref",
    threads: 1,
    heap,

    matmul(out: Tensor, a: Tensor, b: Tensor, options: MatmulOptions = {}): void {
      const dims = check.checkMatmul(out, a, b, options);
      matmul(out.f32(), a.f32(), b.f32(), {
        ...dims,
        transA: options.transA === true,
        transB: options.transB === true,
        accumulate: options.accumulate === true,
        alpha: options.alpha ?? 1,
        ...(options.causal !== undefined && { causal: options.causal }),
      });
      const plus = options.plus;
      if (plus !== undefined) {
        // one non-batched product (checkMatmul): the term adds onto all rows of out
        const rows = dims.batch * dims.m;
        matmul(out.f32(), plus.a.f32(), plus.b.f32(), {
          batch: 1,
          m: rows,
          n: dims.n,
          k: dims.k2,
          bBatched: false,
          transA: plus.transA === true,
          transB: plus.transB === true,
          accumulate: true,
          alpha: plus.alpha ?? 1,
        });
      }
    },

    add(out, a, b) {
      check.checkElementwise("add", { out, a, b });
      ew.add(out.f32(), a.f32(), b.f32());
    },
    mul(out, a, b) {
      check.checkElementwise("mul", { out, a, b });
      ew.mul(out.f32(), a.f32(), b.f32());
    },
    scale(out, a, alpha) {
      check.checkElementwise("scale", { out, a });
      check.checkScalar("scale", "alpha", alpha);
      ew.scale(out.f32(), a.f32(), alpha);
    },
    axpy(out, a, alpha) {
      check.checkElementwise("axpy", { out, a });
      check.checkScalar("axpy", "alpha", alpha);
      ew.axpy(out.f32(), a.f32(), alpha);
    },
    addBias(out, bias) {
      const { rows, cols } = check.checkBias("addBias", "out", out, "bias", bias);
      ew.addBias(out.f32(), bias.f32(), rows, cols);
    },
    biasBackward(dBias, dOut) {
      const { rows, cols } = check.checkBias("biasBackward", "dOut", dOut, "dBias", dBias);
      ew.biasBackward(dBias.f32(), dOut.f32(), rows, cols);
    },

    silu(out, inp) {
      check.checkElementwise("silu", { out, inp });
      act.silu(out.f32(), inp.f32());
    },
    siluBackward(dInp, inp, dOut, options) {
      check.checkElementwise("siluBackward", { dInp, inp, dOut });
      const accumulate = check.checkBackwardOptions("siluBackward", options);
      act.siluBackward(dInp.f32(), inp.f32(), dOut.f32(), accumulate);
    },
    swiglu(out, gate, up) {
      check.checkElementwise("swiglu", { out, gate, up });
      act.swiglu(out.f32(), gate.f32(), up.f32());
    },
    swigluBackward(dGate, dUp, gate, up, dOut, options) {
      check.checkElementwise("swigluBackward", { dGate, dUp, gate, up, dOut });
      const accumulate = check.checkBackwardOptions("swigluBackward", options);
      act.swigluBackward(dGate.f32(), dUp.f32(), gate.f32(), up.f32(), dOut.f32(), accumulate);
    },
    gelu(out, inp, approximate) {
      check.checkElementwise("gelu", { out, inp });
      checkApproximate("gelu", approximate);
      act.gelu(out.f32(), inp.f32(), approximate);
    },
    geluBackward(dInp, inp, dOut, approximate, options) {
      check.checkElementwise("geluBackward", { dInp, inp, dOut });
      checkApproximate("geluBackward", approximate);
      const accumulate = check.checkBackwardOptions("geluBackward", options);
      act.geluBackward(dInp.f32(), inp.f32(), dOut.f32(), approximate, accumulate);
    },

    rmsnorm(out, rstd, inp, weight, eps) {
      const { rows, cols } = check.checkNorm("rmsnorm", inp, { out }, { weight }, { rstd });
      check.checkEps("rmsnorm", eps);
      norms.rmsnorm(out.f32(), rstd.f32(), inp.f32(), weight.f32(), eps, rows, cols);
    },
    rmsnormBackward(dInp, dWeight, dOut, inp, weight, rstd, options) {
      const { rows, cols } = check.checkNorm(
        "rmsnormBackward",
        inp,
        { dInp, dOut },
        { weight, dWeight },
        { rstd },
      );
      const accumulate = check.checkBackwardOptions("rmsnormBackward", options);
      const dW = dWeight === null ? null : dWeight.f32();
      norms.rmsnormBackward(
        dInp.f32(),
        dW,
        dOut.f32(),
        inp.f32(),
        weight.f32(),
        rstd.f32(),
        rows,
        cols,
        accumulate,
      );
    },
    layernorm(out, mean, rstd, inp, weight, bias, eps) {
      const { rows, cols } = check.checkNorm(
        "layernorm",
        inp,
        { out },
        { weight, bias },
        { mean, rstd },
      );
      check.checkEps("layernorm", eps);
      norms.layernorm(
        out.f32(),
        mean.f32(),
        rstd.f32(),
        inp.f32(),
        weight.f32(),
        bias.f32(),
        eps,
        rows,
        cols,
      );
    },
    layernormBackward(dInp, dWeight, dBias, dOut, inp, weight, mean, rstd, options) {
      const { rows, cols } = check.checkNorm(
        "layernormBackward",
        inp,
        { dInp, dOut },
        { weight, dWeight, dBias },
        { mean, rstd },
      );
      const accumulate = check.checkBackwardOptions("layernormBackward", options);
      norms.layernormBackward(
        dInp.f32(),
        dWeight === null ? null : dWeight.f32(),
        dBias === null ? null : dBias.f32(),
        dOut.f32(),
        inp.f32(),
        weight.f32(),
        mean.f32(),
        rstd.f32(),
        rows,
        cols,
        accumulate,
      );
    },

    attentionSoftmax(probs, scores, options: AttentionSoftmaxOptions) {
      const dims = check.checkAttentionSoftmax(probs, scores, options.scale, options.keyLengths);
      const keyLengths = options.keyLengths === undefined ? null : options.keyLengths.i32();
      attentionSoftmax(
        probs.f32(),
        scores.f32(),
        dims,
        options.scale,
        options.causal === true,
        keyLengths,
      );
    },
    attentionSoftmaxBackward(dScores, probs, dProbs, scale, options) {
      const { rows, cols } = check.checkAttentionSoftmaxBackward(dScores, probs, dProbs, scale);
      const accumulate = check.checkBackwardOptions("attentionSoftmaxBackward", options);
      attentionSoftmaxBackward(
        dScores.f32(),
        probs.f32(),
        dProbs.f32(),
        scale,
        rows,
        cols,
        accumulate,
      );
    },
    rope(out, inp, cos, sin) {
      const dims = check.checkRope("rope", "out", out, "inp", inp, cos, sin);
      rope(out.f32(), inp.f32(), cos.f32(), sin.f32(), dims);
    },
    ropeBackward(dInp, dOut, cos, sin, options) {
      const dims = check.checkRope("ropeBackward", "dInp", dInp, "dOut", dOut, cos, sin);
      const accumulate = check.checkBackwardOptions("ropeBackward", options);
      ropeBackward(dInp.f32(), dOut.f32(), cos.f32(), sin.f32(), dims, accumulate);
    },
    permute0213(out, inp) {
      const dims = check.checkPermute0213(out, inp);
      permute0213(out.f32(), inp.f32(), dims);
    },

    embedding(out, table, ids) {
      const { vocab, cols } = check.checkEmbedding("embedding", "out", out, "table", table, ids);
      embedding(out.f32(), table.f32(), ids.i32(), vocab, cols);
    },
    embeddingBackward(dTable, dOut, ids) {
      const { vocab, cols } = check.checkEmbedding(
        "embeddingBackward",
        "dOut",
        dOut,
        "dTable",
        dTable,
        ids,
      );
      embeddingBackward(dTable.f32(), dOut.f32(), ids.i32(), vocab, cols);
    },
    crossEntropy(losses, dLogits, logits, targets, options: CrossEntropyOptions = {}) {
      const ignoreIndex = options.ignoreIndex ?? -100;
      const gradScale = options.gradScale ?? 1;
      const { vocab } = check.checkCrossEntropy(
        losses,
        dLogits,
        logits,
        targets,
        ignoreIndex,
        gradScale,
      );
      const dL = dLogits === null ? null : dLogits.f32();
      return crossEntropy(
        losses.f32(),
        dL,
        logits.f32(),
        targets.i32(),
        vocab,
        ignoreIndex,
        gradScale,
      );
    },

    sum(a) {
      check.checkReduce("sum", a);
      return reduce.sum(a.f32());
    },
    max(a) {
      check.checkReduce("max", a);
      return reduce.max(a.f32());
    },
    sumSquares(a) {
      check.checkReduce("sumSquares", a);
      return reduce.sumSquares(a.f32());
    },
    sumInto(out, a) {
      check.checkReduceInto("sumInto", out, a);
      out.f32()[0] = reduce.sum(a.f32());
    },
    sumSquaresInto(out, a) {
      check.checkReduceInto("sumSquaresInto", out, a);
      out.f32()[0] = reduce.sumSquares(a.f32());
    },

    adamw(param, grad, m, v, options: AdamWOptions) {
      check.checkAdamW(param, grad, m, v, options);
      adamw(param.f32(), grad.f32(), m.f32(), v.f32(), options);
    },
    sgd(param, grad, momentumBuf, options: SGDOptions) {
      check.checkSGD(param, grad, momentumBuf, options);
      sgd(param.f32(), grad.f32(), momentumBuf === null ? null : momentumBuf.f32(), options);
    },
    convert(out, inp) {
      check.checkConvert(out, inp);
      convert(
        floatView(out),
        out.dtype as "f32" | "f16" | "bf16",
        floatView(inp),
        inp.dtype as "f32" | "f16" | "bf16",
      );
    },
    copyColumns(out, outCol, inp, inpCol, width) {
      const d = check.checkCopyColumns(out, outCol, inp, inpCol, width);
      copyColumns(out.f32(), d.outCols, outCol, inp.f32(), d.inpCols, inpCol, d.rows, width);
    },
    maskOutsideWindow(scores, window) {
      const d = check.checkMaskOutsideWindow(scores, window);
      maskOutsideWindow(scores.f32(), d.m, d.tq, d.tk, window);
    },
    copy(out, inp) {
      check.checkCopy(out, inp);
      out.u8().set(inp.u8());
    },
    fill(out, value) {
      check.checkFill(out, value);
      out.fill(value);
    },

    // the heap is the only copy of every tensor: nothing to send or fetch
    deferred: false,
    upload() {},
    download() {
      return Promise.resolve();
    },

    dispose(): Promise<void> {
      return Promise.resolve();
    },
  };
  return kernels;
}
