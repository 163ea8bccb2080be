"""PyTorch CPU side of bench/train-step.ts: one training step (forward + backward of the causal-LM
loss, all weight gradients off, activation gradients on) of a random Llama with the config of
train-step.ts, on 2 threads. Prints one JSON line {step_ms, tokens_per_s, threads} (median of reps).

Usage: python3 bench/train_step_torch.py LAYERS BATCH SEQ REPS
"""

import json
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    layers, batch, seq, reps = (int(a) for a in sys.argv[1:5])
    threads = 2
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=512,
        intermediate_size=1376,
        num_hidden_layers=layers,
        num_attention_heads=8,
        num_key_value_heads=8,
        max_position_embeddings=2048,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    )
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
    print(json.dumps({"step_ms": ms, "tokens_per_s": batch * seq / (ms / 1000), "threads": threads}))


if __name__ == "__main__":
    main()
