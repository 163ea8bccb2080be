"""PyTorch + PEFT 0.21 side of bench/t5-train.ts: LoRA training steps (r on q,k,v,o,wi,wo, alpha 16,
AdamW) of a random T5-base-shaped T5ForConditionalGeneration on CPU, 2 threads, dropout off (loraga
has none). Prints one JSON line {step_s, threads}.

Usage: python3 bench/t5_train_torch.py LAYERS BATCH INPUT_LEN TARGET_LEN R STEPS
"""

import json
import sys

import torch
from peft import LoraConfig, get_peft_model
from torch_side import THREADS, adamw_step_seconds, cpu_setup
from transformers import T5Config, T5ForConditionalGeneration


def main():
    layers, batch, input_len, target_len, r, steps = (int(a) for a in sys.argv[1:7])
    cpu_setup()
    config = T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=layers,
                      num_decoder_layers=layers, num_heads=12, feed_forward_proj="relu", dropout_rate=0.0,
                      tie_word_embeddings=True, decoder_start_token_id=0)
    model = get_peft_model(T5ForConditionalGeneration(config).float(), LoraConfig(
        r=r, lora_alpha=16, target_modules=["q", "k", "v", "o", "wi", "wo"]))
    model.train()
    ids = torch.randint(2, config.vocab_size, (batch, input_len))
    labels = torch.randint(0, config.vocab_size, (batch, target_len))
    step_s = adamw_step_seconds(model, steps, input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
    print(json.dumps({"step_s": step_s, "threads": THREADS}))


if __name__ == "__main__":
    main()
