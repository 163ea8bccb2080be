"""CUDA side of the WebGPU engine's comparison (issue 17): PyTorch GEMM TFLOP/s and a PEFT LoRA
training step on a CUDA GPU, for the same machine's `npm run bench -- gemm-webgpu` (Chrome or Node
+ Dawn on that GPU). One short script: about a minute on a datacenter GPU, no downloads (the model
is a randomly initialised Qwen2-0.5B-shaped Llama built from its config).

Prints JSON lines:
  {"what": "gemm", "dtype", "tf32", "m", "n", "k", "ms", "tflops"}   square and LoRA-step shapes;
      f32 with TF32 off is the comparison for a WGSL f32 GEMM (WebGPU has no tensor cores), f32
      with TF32 and bf16 show the tensor-core ceiling.
  {"what": "lora_step", "dtype", "batch", "seq", "r", "step_ms", "tokens_per_s"}   LoRA r on every
      linear layer, AdamW, f32 and bf16 autocast.
  {"what": "rows", "kernel", "rows", "cols", "ms"}   f32 rmsnorm, causal attention softmax and
      cross-entropy with its gradient on the shapes of gemm-webgpu's "rows" records (ROW_SHAPES in
      bench/gemm-webgpu.ts, without --quick).

The WebGPU side, on the same machine: `npm run bench -- gemm-webgpu` prints each GEMM and row
kernel twice where the adapter has subgroups: impl "webgpu subgroups" (the default kernels) and
"webgpu" (the workgroup-memory kernels, WebGpuOptions.subgroups false).

Usage: python3 bench/webgpu_torch_cuda.py [--quick]
"""

import json
import sys
import time

import torch


def timed_ms(fn, reps):
    fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / reps


def gemm(quick):
    sizes = [(1024, 1024, 1024), (4096, 4096, 4096)] if quick else [
        (1024, 1024, 1024), (2048, 2048, 2048), (4096, 4096, 4096), (8192, 8192, 8192),
        # a LoRA step's products on 4 x 512 tokens of a 0.5B model: projections, MLP, lm_head
        (2048, 896, 896), (2048, 4864, 896), (2048, 896, 4864), (2048, 151936, 896)]
    for dtype, tf32 in [(torch.float32, False), (torch.float32, True), (torch.bfloat16, False)]:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        for m, n, k in sizes:
            a = torch.randn(m, k, device="cuda", dtype=dtype)
            b = torch.randn(k, n, device="cuda", dtype=dtype)
            ms = timed_ms(lambda: a @ b, 5 if m * n * k > 2**33 else 20)
            print(json.dumps({"what": "gemm", "dtype": str(dtype).removeprefix("torch."), "tf32": tf32,
                              "m": m, "n": n, "k": k, "ms": round(ms, 4),
                              "tflops": round(2 * m * n * k / ms / 1e9, 2)}), flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False


def rows():
    """The row kernels of gemm-webgpu's ROW_SHAPES, f32, as PyTorch runs them (eager)."""
    torch.manual_seed(0)
    x = torch.randn(2048, 896, device="cuda")
    w = torch.randn(896, device="cuda")
    ms = timed_ms(lambda: torch.nn.functional.rms_norm(x, (896,), w, 1e-6), 20)
    print(json.dumps({"what": "rows", "kernel": "rmsnorm", "rows": 2048, "cols": 896,
                      "ms": round(ms, 4)}), flush=True)
    scores = torch.randn(1, 14, 512, 512, device="cuda")
    mask = torch.ones(512, 512, device="cuda", dtype=torch.bool).tril()
    ms = timed_ms(lambda: torch.softmax((0.125 * scores).masked_fill(~mask, float("-inf")), -1), 20)
    print(json.dumps({"what": "rows", "kernel": "attentionSoftmax causal", "rows": 14 * 512,
                      "cols": 512, "ms": round(ms, 4)}), flush=True)
    logits = torch.randn(256, 32000, device="cuda", requires_grad=True)
    targets = torch.randint(0, 32000, (256,), device="cuda")

    def cross_entropy():
        loss = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
        (grad,) = torch.autograd.grad(loss, logits)
        return grad

    ms = timed_ms(cross_entropy, 20)
    print(json.dumps({"what": "rows", "kernel": "crossEntropy+grad", "rows": 256, "cols": 32000,
                      "ms": round(ms, 4)}), flush=True)


def lora_step(quick):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    batch, seq, r = 4, 512, 8
    config = LlamaConfig(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=4 if quick else 24, num_attention_heads=14,
                         num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6,
                         tie_word_embeddings=True)
    for dtype in [torch.float32, torch.bfloat16]:
        torch.manual_seed(0)
        model = get_peft_model(LlamaForCausalLM(config).cuda(), LoraConfig(
            r=r, lora_alpha=16,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        ids = torch.randint(0, config.vocab_size, (batch, seq), device="cuda")

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            opt.step()
            opt.zero_grad()

        ms = timed_ms(step, 3 if quick else 10)
        print(json.dumps({"what": "lora_step", "dtype": str(dtype).removeprefix("torch."),
                          "layers": config.num_hidden_layers, "batch": batch, "seq": seq, "r": r,
                          "step_ms": round(ms, 2), "tokens_per_s": round(batch * seq / ms * 1e3)}),
              flush=True)
        del model, opt
        torch.cuda.empty_cache()


def main():
    if not torch.cuda.is_available():
        sys.exit("webgpu_torch_cuda.py: no CUDA device")
    quick = "--quick" in sys.argv[1:]
    print(json.dumps({"what": "device", "name": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}), flush=True)
    gemm(quick)
    rows()
    lora_step(quick)


if __name__ == "__main__":
    main()
