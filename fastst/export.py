"""Exporting a trained network to ONNX, with dynamic height and width."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from fastst.errors import FaststError
from fastst.io import atomic_path
from fastst.stylize import load_model


def export_onnx(model_path: str | os.PathLike, onnx_path: str | os.PathLike, opset: int = 17) -> Path:
    """Write ``model_path``'s network as ONNX: input ``image`` (N, 3, H, W) in [0, 1], any N, H, W."""
    try:
        import onnx  # noqa: F401  (the exporter needs it; say so in one line, not a traceback)
    except ImportError:
        raise FaststError('ONNX export needs the export extra: pip install "fastst[export]"') from None
    model = load_model(model_path)
    onnx_path = Path(onnx_path)
    example = torch.rand(1, 3, 64, 96)
    try:
        with atomic_path(onnx_path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on constant folding
            torch.onnx.export(model, (example,), str(tmp), input_names=["image"], output_names=["stylised"],
                              dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                            "stylised": {0: "batch", 2: "height", 3: "width"}},
                              opset_version=opset, dynamo=False)
    except ImportError as e:
        raise FaststError(f"ONNX export needs the onnx package ({e.name}): pip install onnx") from None
    return onnx_path
