"""PyTorch + PEFT 0.21 side of bench/real-size.ts: preprocess_loraga (LoRA-GA gradient estimation
of every linear but lm_head) over one random batch on a checkpoint directory, with the weights
loaded as f32, 2 CPU threads. Prints one JSON line {load_s, estimate_s, threads}.

Usage: python3 bench/real_size_torch.py MODEL_DIR BATCH SEQ
"""

import json
import sys
import time

import torch
from peft import LoraConfig, LoraGAConfig, preprocess_loraga
from torch_side import ALL_LINEAR, THREADS, cpu_setup
from transformers import AutoModelForCausalLM


def main():
    model_dir = sys.argv[1]
    batch, seq = int(sys.argv[2]), int(sys.argv[3])
    cpu_setup()
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    t1 = time.perf_counter()
    ids = torch.randint(0, model.config.vocab_size, (batch, seq))
    lora = LoraConfig(r=8, lora_alpha=16, init_lora_weights="lora_ga", lora_ga_config=LoraGAConfig(),
                      target_modules=ALL_LINEAR)

    def train_step():
        model(input_ids=ids, labels=ids).loss.backward()

    t2 = time.perf_counter()
    preprocess_loraga(model, lora, train_step)
    t3 = time.perf_counter()
    print(json.dumps({"load_s": t1 - t0, "estimate_s": t3 - t2, "threads": THREADS}))


if __name__ == "__main__":
    main()
