"""Stylising images with a trained network."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from fastst.errors import FaststError
from fastst.transformer import TransformerNet


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> TransformerNet:
    """A trained network from ``model.pth`` (or a training checkpoint), in eval mode.

    Loaded with ``weights_only=True``: a file that tries to run code is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise FaststError(f"no such model file: {path}" if not path.is_dir() else f"expected a model file, got a folder: {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise FaststError(f"not a fastst model: {path} ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(saved, dict) or "model" not in saved:
        raise FaststError(f"not a fastst model: {path} (no network weights in it)")
    options = saved.get("net") or {k: saved.get("config", {}).get(k) for k in ("norm", "upsample", "width", "input_skip")}
    try:
        model = TransformerNet(**{k: v for k, v in options.items() if v is not None})
        model.load_state_dict(saved["model"])
    except (RuntimeError, ValueError, TypeError) as e:
        raise FaststError(f"model {path} does not match the network it declares: {str(e).splitlines()[0][:160]}") from None
    return model.eval().to(device)


def runs_precision(precision: str, device: torch.device) -> str:
    """Inference precision: fp32 unless asked (bf16 changes outputs; see the benchmarks)."""
    from fastst.train import resolve_precision
    return "fp32" if precision == "auto" else resolve_precision(precision, device)


@torch.inference_mode()
def stylize(model: TransformerNet, image: torch.Tensor, device: str | torch.device | None = None,
            precision: str = "fp32") -> torch.Tensor:
    """Stylise one (3, H, W) image (or a batch) in [0, 1]; returns the same shape on the CPU."""
    from fastst.train import autocast
    device = torch.device(device) if device is not None else next(model.parameters()).device
    single = image.dim() == 3
    batch = (image.unsqueeze(0) if single else image).to(device)
    with autocast(device, runs_precision(precision, device)):
        out = model(batch)
    out = out.float().clamp(0, 1).cpu()
    return out[0] if single else out
