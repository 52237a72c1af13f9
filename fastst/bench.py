"""Measurements: inference timing (warm-up, then the median of repeats)."""
from __future__ import annotations

import statistics
import time

import torch
from tqdm.auto import tqdm

from fastst.transformer import TransformerNet


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def time_inference(model: TransformerNet, sizes=(256, 512, 1024), repeats: int = 5, warmup: int = 2,
                   precision: str = "fp32", progress: bool = True) -> list[dict]:
    """Seconds per image for square inputs of each size on the model's device: ``warmup`` runs,
    then the median (and min, max) of ``repeats`` timed runs."""
    from fastst.train import autocast
    device = next(model.parameters()).device
    model.eval()
    rows = []
    for size in tqdm(sizes, desc="timing", unit="size", disable=not progress, leave=False):
        x = torch.rand(1, 3, size, size, device=device)
        times = []
        for i in range(warmup + repeats):
            _sync(device)
            t0 = time.perf_counter()
            with autocast(device, precision):
                model(x)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        rows.append({"size": size, "median_s": statistics.median(times), "min_s": min(times),
                     "max_s": max(times), "repeats": repeats, "device": str(device), "precision": precision,
                     "threads": torch.get_num_threads()})
    return rows
