"""Measuring primitives: timing in interleaved rounds, the machine's matmul rate, PSNR and peak
memory. The benchmark suite (``fastst.bench``) and every result file build on them."""

from __future__ import annotations

import statistics
import threading
import time

import psutil
import torch

CPU = torch.device("cpu")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------- the benchmark suite
# Every figure is printed beside a plain baseline measured in the same run: eager, fp32,
# contiguous tensors, the content target through the full VGG forward, Gram targets recomputed.


def matmul_gflops(dtype: torch.dtype, sizes=None, repeats: int = 15, device: torch.device = CPU) -> float:
    """Dense square matrix-multiply throughput (GFLOP/s), the best over ``sizes`` and ``repeats``:
    the machine's practical limit (PyTorch's defaults: no TF32 for fp32 products)."""
    sizes = sizes or ((4096, 8192) if device.type == "cuda" else (1024, 2048, 4096))
    best_rate = 0.0
    for n in sizes:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        for _ in range(2):
            a @ b
        for _ in range(repeats):
            sync(device)
            t0 = time.perf_counter()
            a @ b
            sync(device)
            best_rate = max(best_rate, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
    return best_rate


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()


def interleaved_medians(fns: dict, rounds: int, device: torch.device, slice_s: float = 0.25) -> dict:
    """Median seconds per call of each function, timed in interleaved rounds (each function for
    about ``slice_s`` a round), so a slow spell of a shared machine falls on all of them alike."""
    estimate = {}
    for name, fn in fns.items():
        fn()  # warm-up
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        estimate[name] = time.perf_counter() - t0
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(max(1, int(slice_s / estimate[name]))):
                sync(device)
                t0 = time.perf_counter()
                fn()
                sync(device)
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def peak_memory_mb(fn, device: torch.device = CPU) -> float:
    """Peak memory growth of ``fn`` on ``device`` (CPU: sampled RSS; CUDA: the allocator's peak)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    proc = psutil.Process()
    base = proc.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.005)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        fn()
    finally:
        done.set()
        t.join()
    return (peak[0] - base) / 2**20
