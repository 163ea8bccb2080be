"""Machine ceiling for `npm run bench`: numpy (OpenBLAS) GEMM GFLOP/s and full-SVD time.

Usage: python3 bench/ceiling.py '{"gemm": [[m, n, k], ...], "svd": [[m, n], ...], "threads": 2}'
Prints one JSON object per measurement. Exits 1 if numpy is missing."""
import json
import sys
import time

try:
    import numpy as np
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
    threads = task.get("threads")
    try:
        from threadpoolctl import threadpool_limits  # optional

        limiter = threadpool_limits(limits=threads) if threads else None
    except ImportError:
        limiter = None
    rng = np.random.default_rng(0)
    for m, n, k in task.get("gemm", []):
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        # as many repetitions as bench/gemm.ts gives loraga's side (~0.3 s of work at 50 GFLOP/s,
        # 5 to 50): a median of 5 sub-millisecond products mostly measures the neighbours
        reps = max(5, min(50, round(1.5e10 / (2 * m * n * k))))
        t = median_time(lambda: a @ b, reps)
        print(json.dumps({"kernel": "gemm", "m": m, "n": n, "k": k, "impl": "numpy", "ms": t * 1e3,
                          "gflops": 2 * m * n * k / t / 1e9}))
    for m, n in task.get("svd", []):
        x = rng.standard_normal((m, n), dtype=np.float32)
        t = median_time(lambda: np.linalg.svd(x, full_matrices=False), 3)
        print(json.dumps({"kernel": "svd_full", "m": m, "n": n, "impl": "numpy", "ms": t * 1e3}))
    del limiter


if __name__ == "__main__":
    main()
