"""PyTorch + PEFT 0.21 side of bench/lora-train.ts: LoRA training steps (r on every linear layer,
AdamW) of a random Llama on CPU, 2 threads. Prints one JSON line {step_s, tokens_per_s, threads}.

Usage: python3 bench/lora_train_torch.py LAYERS BATCH SEQ R STEPS [PROMPT_SHARE]
PROMPT_SHARE (default 0): the first share of every row's labels are -100 (a masked prompt).
"""

import json
import sys
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM


def main():
    layers, batch, seq, r, steps = (int(a) for a in sys.argv[1:6])
    prompt_share = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    torch.set_num_threads(2)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1376, num_hidden_layers=layers,
                         num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=2048,
                         rms_norm_eps=1e-5, tie_word_embeddings=False)
    model = get_peft_model(LlamaForCausalLM(config).float(), LoraConfig(
        r=r, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (batch, seq))
    labels = ids.clone()
    labels[:, : int(seq * prompt_share)] = -100

    def step():
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    step_s = (time.perf_counter() - t0) / steps
    print(json.dumps({"step_s": step_s, "tokens_per_s": batch * seq / step_s, "threads": 2}))


if __name__ == "__main__":
    main()
