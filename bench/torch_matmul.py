"""PyTorch CPU matmul beside numpy in `npm run bench -- gemm`: for each [m, n, k], the median time
of torch.matmul on f32 tensors, on bf16 tensors, and on f32 tensors under bf16 autocast (the
paths PyTorch takes for a bf16 base and for mixed precision), so that the bf16 gap shows next to
the f32 numbers of the same run. Prints one JSON object per measurement; exits 1 without torch.

Usage: python3 bench/torch_matmul.py '{"gemm": [[m, n, k], ...], "threads": 2}'
"""
import json
import sys
import time

try:
    import torch
except ImportError:
    sys.exit(1)


def median_time(fn, reps):
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def main():
    task = json.loads(sys.argv[1])
    torch.set_num_threads(int(task.get("threads", 2)))
    torch.manual_seed(0)
    for m, n, k in task["gemm"]:
        a = torch.randn(m, k)
        b = torch.randn(k, n)
        a16, b16 = a.bfloat16(), b.bfloat16()

        def autocast():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return a @ b

        for dtype, fn in (("f32", lambda: a @ b), ("bf16", lambda: a16 @ b16), ("autocast-bf16", autocast)):
            t = median_time(fn, 5)
            print(json.dumps({"kernel": "gemm", "m": m, "n": n, "k": k, "impl": "torch", "dtype": dtype,
                              "ms": t * 1e3, "gflops": 2 * m * n * k / t / 1e9}))


if __name__ == "__main__":
    main()
