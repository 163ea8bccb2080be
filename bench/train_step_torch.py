"""PyTorch CPU side of bench/train-step.ts: one training step (forward + backward of the causal-LM
loss, all weight gradients off, activation gradients on) of a random Llama with the config of
train-step.ts, on 2 threads. Prints one JSON line {step_ms, tokens_per_s, threads} (median of reps).

Usage: python3 bench/train_step_torch.py LAYERS BATCH SEQ REPS
"""

import json
import sys
import time

import torch
from torch_side import THREADS, bench_llama_config, cpu_setup
from transformers import LlamaForCausalLM


def main():
    layers, batch, seq, reps = (int(a) for a in sys.argv[1:5])
    cpu_setup()
    config = bench_llama_config(layers)
    model = LlamaForCausalLM(config).float().train()
    for p in model.parameters():
        p.requires_grad_(False)
    ids = torch.randint(0, config.vocab_size, (batch, seq))
    embed = model.get_input_embeddings()

    def step():
        # gradients flow through every activation (as for adapters) but into no weight
        inputs = embed(ids).detach().requires_grad_(True)
        out = model(inputs_embeds=inputs, labels=ids)
        out.loss.backward()

    step()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    ms = times[len(times) // 2]
    print(json.dumps({"step_ms": ms, "tokens_per_s": batch * seq / (ms / 1000), "threads": THREADS}))


if __name__ == "__main__":
    main()
