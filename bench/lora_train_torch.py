"""PyTorch + PEFT 0.21 side of bench/lora-train.ts: LoRA training steps (r on every linear layer,
AdamW) of a random Llama on CPU, 2 threads. Prints one JSON line {step_s, tokens_per_s, threads}.

Usage: python3 bench/lora_train_torch.py LAYERS BATCH SEQ R STEPS [PROMPT_SHARE [PRECISION]]
PROMPT_SHARE (default 0): the first share of every row's labels are -100 (a masked prompt).
PRECISION: f32 (the default; everything f32), autocast (f32 weights, the forward under bf16
autocast) or bf16-base (the frozen base in bf16, PEFT's adapters in f32 as its
autocast_adapter_dtype default makes them, the forward under bf16 autocast): PyTorch's paths
for bf16 on a CPU that has it.
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
    precision = sys.argv[7] if len(sys.argv) > 7 else "f32"
    if precision not in ("f32", "autocast", "bf16-base"):
        sys.exit(f"PRECISION: expected f32, autocast or bf16-base, got {precision}")
    cpu_setup()
    config = bench_llama_config(layers)
    base = LlamaForCausalLM(config)
    base = base.to(torch.bfloat16) if precision == "bf16-base" else base.float()
    model = get_peft_model(base, LoraConfig(r=r, lora_alpha=16, target_modules=ALL_LINEAR))
    model.train()
    ids = torch.randint(0, config.vocab_size, (batch, seq))
    labels = ids.clone()
    labels[:, : int(seq * prompt_share)] = -100
    step_s = adamw_step_seconds(model, steps, bf16_autocast=precision != "f32", input_ids=ids,
                                labels=labels)
    print(json.dumps({"step_s": step_s, "tokens_per_s": batch * seq / step_s, "threads": THREADS}))


if __name__ == "__main__":
    main()
