"""PyTorch + PEFT 0.21 side of bench/lora-train.ts: LoRA training steps (r on every linear layer,
AdamW) of a random Llama on CPU, 2 threads. Prints one JSON line {step_s, tokens_per_s, threads}.

Usage: python3 bench/lora_train_torch.py LAYERS BATCH SEQ R STEPS [PROMPT_SHARE]
PROMPT_SHARE (default 0): the first share of every row's labels are -100 (a masked prompt).
"""

import json
import sys

import torch
from peft import LoraConfig, get_peft_model
from torch_side import ALL_LINEAR, THREADS, adamw_step_seconds, bench_llama_config, cpu_setup
from transformers import LlamaForCausalLM


def main():
    layers, batch, seq, r, steps = (int(a) for a in sys.argv[1:6])
    prompt_share = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    cpu_setup()
    config = bench_llama_config(layers)
    model = get_peft_model(LlamaForCausalLM(config).float(), LoraConfig(
        r=r, lora_alpha=16, target_modules=ALL_LINEAR))
    model.train()
    ids = torch.randint(0, config.vocab_size, (batch, seq))
    labels = ids.clone()
    labels[:, : int(seq * prompt_share)] = -100
    step_s = adamw_step_seconds(model, steps, input_ids=ids, labels=labels)
    print(json.dumps({"step_s": step_s, "tokens_per_s": batch * seq / step_s, "threads": THREADS}))


if __name__ == "__main__":
    main()
