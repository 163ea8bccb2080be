import { createKernels } from "../src/kernels/index.js";
import type { MatmulOptions } from "../src/kernels/kernels.js";
import { createLlama, llamaParamSpecs } from "../src/models/llama.js";
import type { Batch } from "../src/models/model.js";
import { randomCheckpoint, syntheticLlamaConfig } from "../src/models/random.js";
import { LoraConfig } from "../src/peft/config.js";
import { getPeftModel } from "../src/peft/peft-model.js";
import { Heap } from "../src/tensor/heap.js";
import type { Tensor } from "../src/tensor/tensor.js";
import { FixedBatches } from "../src/train/data-order.js";
import { loraTrainableOf, train } from "../src/train/trainer.js";
import { Rng } from "../src/util/random.js";
const ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];
const config = syntheticLlamaConfig({ layers: 8, hidden: 512, intermediate: 1376, heads: 8, vocab: 32000 });
const heap = new Heap();
const kernels = await createKernels("wasm", { heap, threads: 2 });
const model = await createLlama(config, randomCheckpoint(llamaParamSpecs(config), 1), kernels, "(random)");
const rng = new Rng(2);
const inputIds = Int32Array.from({ length: 1024 }, () => rng.below(32000));
const batch: Batch = { batchSize: 4, seqLen: 256, inputIds, labels: inputIds.slice() };
const peft = getPeftModel(model, new LoraConfig({ r: 8, lora_alpha: 16, target_modules: ALL }), { seed: 0 });
const trainable = loraTrainableOf(model, peft.config, new Map(peft.adapters), peft.rng);
const data = new FixedBatches([batch]);
const step = () => train(model, trainable, data, { steps: 1, lr: 1e-4 });
await step();
const orig = kernels.matmul.bind(kernels);
const calls: { args: [Tensor, Tensor, Tensor, MatmulOptions | undefined]; ms: number }[] = [];
(kernels as { matmul: unknown }).matmul = (o: Tensor, a: Tensor, b: Tensor, opt?: MatmulOptions) => {
  const t0 = performance.now(); orig(o, a, b, opt); calls.push({ args: [o, a, b, opt], ms: performance.now() - t0 });
};
for (let i = 0; i < 3; i++) { calls.length = 0; const t0 = performance.now(); await step(); console.log(`step ${(performance.now() - t0).toFixed(1)} ms`); }
(kernels as { matmul: unknown }).matmul = orig;
const big = (c: (typeof calls)[0]) => c.args[0].size * (c.args[3]?.transA ? c.args[1].shape[0] : c.args[1].shape[c.args[1].rank - 1]) > 1e8;
const inStep = calls.filter(big).reduce((s, c) => s + c.ms, 0);
for (let rep = 0; rep < 3; rep++) {
  let seq = 0, hot = 0;
  for (const c of calls) { if (!big(c)) continue; const t0 = performance.now(); orig(...c.args); seq += performance.now() - t0; }
  for (const c of calls) { if (!big(c)) continue; orig(...c.args); const t0 = performance.now(); orig(...c.args); hot += performance.now() - t0; }
  console.log(`big GEMMs: in step ${inStep.toFixed(1)} ms; replayed in sequence ${seq.toFixed(1)}; each replayed hot ${hot.toFixed(1)}`);
}
const key = (c: (typeof calls)[0]) => `${c.args[0].shape.join("x")} a${c.args[1].shape.join("x")} ${c.args[3]?.transA ? "TA" : ""}${c.args[3]?.transB ? "TB" : ""}${c.args[3]?.accumulate ? "+=" : ""}${c.args[3]?.plus ? "+plus" : ""}`;
const groups = new Map<string, (typeof calls)>();
for (const c of calls) if (big(c)) groups.set(key(c), [...(groups.get(key(c)) ?? []), c]);
for (const [k, cs] of groups) {
  const c0 = cs[0];
  // fresh tensors of the same shapes
  const fresh = c0.args.slice(0, 3).map((t) => { const f = heap.tensor((t as Tensor).shape); f.f32().forEach((_, i, a) => { a[i] = Math.sin(i); }); return f; }) as Tensor[];
  const opt = c0.args[3] === undefined ? undefined : { ...c0.args[3] };
  if (opt?.plus) opt.plus = { ...opt.plus, a: heap.tensor(opt.plus.a.shape), b: heap.tensor(opt.plus.b.shape) };
  const tIso: number[] = [], tHot: number[] = [];
  for (let r = 0; r < 7; r++) { const t0 = performance.now(); orig(fresh[0], fresh[1], fresh[2], opt); tIso.push(performance.now() - t0); }
  for (let r = 0; r < 7; r++) { const t0 = performance.now(); orig(...c0.args); tHot.push(performance.now() - t0); }
  const med = (a: number[]) => a.sort((x, y) => x - y)[3];
  const inStepAvg = cs.reduce((s, c) => s + c.ms, 0) / cs.length;
  console.log(`${k.padEnd(50)} n=${cs.length} in-step ${inStepAvg.toFixed(2)} model-tensors ${med(tHot).toFixed(2)} fresh ${med(tIso).toFixed(2)} ms`);
}
await kernels.dispose();
