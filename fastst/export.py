"""Exporting a network to ONNX, with dynamic height and width."""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

import torch

from fastst.anystyle import PaintingEncoder, SharedNetwork
from fastst.errors import FaststError
from fastst.io import atomic_path
from fastst.temporal import ClipNetwork, ClipStatistics
from fastst.transformer import TransformerNet, pads_into_convs


class _MixInput(torch.nn.Module):
    """A multi-style network with the mix as the graph's second input."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
        return self.model(image, mix)


def export_network(
    model: TransformerNet | SharedNetwork | PaintingEncoder | ClipNetwork | ClipStatistics,
    onnx_path: str | os.PathLike,
    opset: int = 17,
) -> Path:
    """Write ``model`` as ONNX: input ``image`` (N, 3, H, W) in [0, 1], any N, H, W. A multi-style
    network takes a second input ``mix`` (1 or N, styles): the weight of each style (one-hot for a single
    style), in the order of ``fastst styles --model``. A one-pass model's shared network takes a
    painting's ``norms`` (1, K) and ``colour`` (3, 4) (:class:`fastst.anystyle.SharedNetwork`); its
    painting side (:class:`fastst.anystyle.PaintingEncoder`) maps ``painting`` (1, 3, H, W) to ``norms``.
    A network's clip graph (:class:`fastst.temporal.ClipNetwork`) takes a clip's ``norms`` (1, K), which its
    statistics graph (:class:`fastst.temporal.ClipStatistics`) computes from ``frames`` (N, 3, H, W).
    For a model file: ``export_network(fastst.stylize.load_model(path), onnx_path)``."""
    try:
        import onnx  # noqa: F401  (the exporter needs it; say so in one line, not a traceback)
    except ImportError:
        raise FaststError('ONNX export needs the export extra: pip install "fastst[export]"') from None
    model = model.cpu().eval()
    if any(type(m) is torch.nn.ZeroPad2d for m in model.modules()):
        # zero paddings exported as the convolutions' own (a separate padding is a copy in some runtimes)
        model = pads_into_convs(copy.deepcopy(model))
    onnx_path = Path(onnx_path)
    inputs, names, output = (torch.rand(1, 3, 64, 96),), ["image"], "stylized"
    axes = {"image": {0: "batch", 2: "height", 3: "width"}, "stylized": {0: "batch", 2: "height", 3: "width"}}
    if isinstance(model, PaintingEncoder):
        inputs, names, output = (torch.rand(1, 3, 96, 64),), ["painting"], "norms"
        axes = {"painting": {2: "height", 3: "width"}}
    elif isinstance(model, SharedNetwork):
        k = 2 * sum(norm.num_features for norm in model.norms)
        inputs, names = (*inputs, torch.ones(1, k), torch.eye(3, 4)), [*names, "norms", "colour"]
    elif isinstance(model, ClipStatistics):
        inputs, names, output = (torch.rand(2, 3, 64, 96),), ["frames"], "norms"
        axes = {"frames": {0: "batch", 2: "height", 3: "width"}}
    elif isinstance(model, ClipNetwork):
        k = 2 * sum(norm.num_features for norm in model.norms)
        inputs, names = (*inputs, torch.ones(1, k)), [*names, "norms"]
    elif model.styles > 1:
        model = _MixInput(model)
        inputs, names = (
            (*inputs, torch.full((1, model.model.styles), 1.0 / model.model.styles)),
            [*names, "mix"],
        )
        axes["mix"] = {0: "mix_batch"}
    try:
        with atomic_path(onnx_path) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on constant folding
            torch.onnx.export(
                model,
                inputs,
                str(tmp),
                input_names=names,
                output_names=[output],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
    except ImportError as e:
        raise FaststError(f"ONNX export needs the onnx package ({e.name}): pip install onnx") from None
    return onnx_path
