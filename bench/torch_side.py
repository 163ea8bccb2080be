"""What the PyTorch sides of the benchmarks (bench/*_torch.py, run by bench/torch-side.ts) share:
the CPU setup, the random Llama the Llama suites build, the target list of loraga's all-linear,
and the timing of AdamW training steps. Imported from the scripts' own folder (python3 puts it
first on sys.path).
"""

import time

import torch
from transformers import LlamaConfig

THREADS = 2

# every linear but lm_head, as loraga's all-linear (preprocess_loraga does not expand "all-linear")
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def cpu_setup():
    """THREADS intra-op threads, seed 0."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)


def bench_llama_config(layers):
    """The random Llama of lora-train.ts, lora-ga-init.ts and train-step.ts (src/models/random.ts
    syntheticLlamaConfig with hidden 512, intermediate 1376, 8 heads, vocab 32000)."""
    return LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1376, num_hidden_layers=layers,
                       num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=2048,
                       rms_norm_eps=1e-5, tie_word_embeddings=False)


def adamw_step_seconds(model, steps, bf16_autocast=False, **inputs):
    """Seconds per training step (loss backward, AdamW lr 1e-4 over the trainable parameters) of
    model(**inputs), over `steps` timed steps after one warm-up step. bf16_autocast: the forward
    runs under torch.autocast("cpu", bfloat16) (mixed precision; backward follows its dtypes)."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16_autocast):
            loss = model(**inputs).loss
        loss.backward()
        opt.step()
        opt.zero_grad()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps
