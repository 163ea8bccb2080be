// gemma3_text's inputs_embeds is the SCALED embedding, embed_tokens(ids) * sqrt(hidden)
// (Gemma3TextScaledWordEmbedding), and embed_tokens has padding_idx = pad_token_id: so on the
// untied gemma3-bias fixture, sqrt(hidden) * inputsEmbedsGrad scattered over the ids, skipping the
// rows whose id is the pad id, equals PyTorch's embed_tokens gradient (make_tiny_gemma.py puts the
// pad id at a real position of the batch).

import { join } from "node:path";
import { expect, test } from "vitest";
import { createKernels } from "../../src/kernels/index.js";
import { loadModel } from "../../src/models/model.js";
import { Heap } from "../../src/tensor/heap.js";
import { MODEL_FIXTURES, readModelFixture, relErr } from "../helpers/model-fixtures.js";

test("gemma3-bias: sqrt(hidden) x inputsEmbedsGrad scattered over non-pad ids = d embed_tokens", async () => {
  const kernels = await createKernels("ref", { heap: new Heap() });
  const model = await loadModel(join(MODEL_FIXTURES, "gemma3-bias"), { kernels });
  const fixture = await readModelFixture("gemma3-bias");
  const { batch } = fixture;
  const [V, C] = model.params.get("model.embed_tokens.weight")?.shape ?? [0, 0];
  const pad = model.config.raw.pad_token_id;
  expect(pad).toBe(0);
  const ids = batch.inputIds;
  const labels = batch.labels as Int32Array;
  const T = batch.seqLen;
  // the pad id sits at a position whose hidden state reaches a counted loss
  expect(
    ids.some(
      (id, i) =>
        id === pad &&
        labels.some((l, j) => l !== -100 && j > i && Math.floor(j / T) === Math.floor(i / T)),
    ),
  ).toBe(true);
  const grad = kernels.heap.tensor([batch.batchSize, T, C]);
  model.lossAndGrads(batch, { inputsEmbedsGrad: grad });
  const g = grad.toArray();
  const scale = Math.fround(Math.sqrt(C));
  const scattered = new Float64Array(V * C);
  for (let r = 0; r < ids.length; r++) {
    if (ids[r] === pad) continue;
    for (let c = 0; c < C; c++) scattered[ids[r] * C + c] += scale * g[r * C + c];
  }
  const want = fixture.values.get("grad.model.embed_tokens.weight") as Float32Array;
  const { rel, at } = relErr(scattered, want);
  expect(rel, `rel err ${rel} at ${at}`).toBeLessThanOrEqual(1e-4);
  // and without the padding rule the pad row would differ
  const padRow = Array.from({ length: C }, (_, c) => {
    let sum = 0;
    for (let r = 0; r < ids.length; r++) if (ids[r] === pad) sum += scale * g[r * C + c];
    return sum;
  });
  expect(Math.max(...padRow.map(Math.abs))).toBeGreaterThan(1e-3);
  grad.dispose();
  model.dispose();
  await kernels.dispose();
});
