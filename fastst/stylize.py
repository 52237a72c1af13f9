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
