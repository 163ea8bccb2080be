"""PyTorch + PEFT 0.21 side of bench/scale.ts: the same LoRA-GA job as `loraga train --method lora-ga`
there, on CPU with 2 threads: preprocess_loraga over the first GA_BATCHES batches of B rows of the
JSONL (every linear but lm_head), get_peft_model (LoRA-GA init, r 8, alpha 16), then STEPS AdamW
steps (lr 1e-4, gradient norm clipped to 1) over the rows in file order, gradient checkpointing on
throughout. Weights load as f32 or bf16 (DTYPE). Prints one JSON line {estimate_s, init_s, step_s
(mean of the steps after the first), first_loss, last_loss, threads}; the caller measures peak RSS.
A partial line {phase, ...} is printed after the estimation and the init, so that a run stopped
early still says how far it got.

Usage: python3 bench/scale_torch.py MODEL_DIR DATA_JSONL GA_BATCHES STEPS BATCH SEQ DTYPE
"""

import json
import sys
import time

import torch
from peft import LoraConfig, LoraGAConfig, get_peft_model, preprocess_loraga
from torch_side import ALL_LINEAR, THREADS, cpu_setup
from transformers import AutoModelForCausalLM


def main():
    model_dir, data = sys.argv[1], sys.argv[2]
    ga_batches, steps, batch, seq = (int(a) for a in sys.argv[3:7])
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[sys.argv[7]]
    cpu_setup()
    with open(data) as f:
        rows = [json.loads(line)["input_ids"][:seq] for line in f if line.strip()]

    def batch_at(i):
        start = (i * batch) % len(rows)
        return torch.tensor([rows[(start + j) % len(rows)] for j in range(batch)])

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    lora = LoraConfig(r=8, lora_alpha=16, init_lora_weights="lora_ga", lora_ga_config=LoraGAConfig(),
                      target_modules=ALL_LINEAR)

    def estimate():
        for i in range(ga_batches):
            ids = batch_at(i)
            model(input_ids=ids, labels=ids).loss.backward()

    t0 = time.perf_counter()
    preprocess_loraga(model, lora, estimate)
    t1 = time.perf_counter()
    print(json.dumps({"phase": "estimated", "estimate_s": t1 - t0, "threads": THREADS}), flush=True)
    peft_model = get_peft_model(model, lora)
    t2 = time.perf_counter()
    print(json.dumps({"phase": "initialised", "estimate_s": t1 - t0, "init_s": t2 - t1, "threads": THREADS}),
          flush=True)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    losses, times = [], []
    for s in range(steps):
        s0 = time.perf_counter()
        ids = batch_at(s)
        loss = peft_model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
        times.append(time.perf_counter() - s0)
    timed = times[1:] if len(times) > 1 else times
    print(json.dumps({"phase": "trained", "estimate_s": t1 - t0, "init_s": t2 - t1, "step_s": sum(timed) / len(timed),
                      "first_loss": losses[0], "last_loss": losses[-1], "threads": THREADS}))


if __name__ == "__main__":
    main()
