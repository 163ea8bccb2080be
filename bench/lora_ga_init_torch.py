"""PyTorch + PEFT 0.21 side of bench/lora-ga-init.ts: preprocess_loraga (gradient estimation over
the batches) and get_peft_model (the LoRA-GA SVD init) of a random Llama, 2 CPU threads.
Prints one JSON line {estimate_s, init_s, threads}.

Usage: python3 bench/lora_ga_init_torch.py LAYERS BATCHES BATCH SEQ R
"""

import json
import sys
import time

import torch
from peft import LoraConfig, LoraGAConfig, get_peft_model, preprocess_loraga
from torch_side import ALL_LINEAR, THREADS, bench_llama_config, cpu_setup
from transformers import LlamaForCausalLM


def main():
    layers, n_batches, batch, seq, r = (int(a) for a in sys.argv[1:6])
    cpu_setup()
    config = bench_llama_config(layers)
    model = LlamaForCausalLM(config).float()
    batches = [torch.randint(0, config.vocab_size, (batch, seq)) for _ in range(n_batches)]
    lora = LoraConfig(r=r, lora_alpha=16, init_lora_weights="lora_ga", lora_ga_config=LoraGAConfig(),
                      target_modules=ALL_LINEAR)

    def train_step():
        for ids in batches:
            model(input_ids=ids, labels=ids).loss.backward()

    t0 = time.perf_counter()
    preprocess_loraga(model, lora, train_step)
    t1 = time.perf_counter()
    get_peft_model(model, lora)
    t2 = time.perf_counter()
    print(json.dumps({"estimate_s": t1 - t0, "init_s": t2 - t1, "threads": THREADS}))


if __name__ == "__main__":
    main()
