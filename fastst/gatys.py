"""The optimisation-based baseline (Gatys et al., 2015): minimise eq. 5 over the image itself."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from fastst.errors import FaststError
from fastst.losses import STYLE_LAYERS, PerceptualLoss
from fastst.vgg import VGG16Features, loss_network


@dataclass
class GatysResult:
    image: torch.Tensor                           # (3, H, W) in [0, 1]
    objective: list = field(default_factory=list)  # eq. 5 after each iteration
    terms: dict = field(default_factory=dict)      # the last weighted terms


def gatys(content: torch.Tensor, style: torch.Tensor, iterations: int = 300, optimizer: str = "lbfgs",
          content_weight: float = 1.0, style_weight: float = 50.0, tv_weight: float = 1e-4,
          content_layer: str = "relu3_3", style_layers=STYLE_LAYERS, init: str = "content",
          lr: float | None = None, vgg: VGG16Features | None = None, device: str | torch.device = "cpu",
          progress: bool = True, seed: int = 0) -> GatysResult:
    """Optimise an image for the objective of eq. 5, the very same loss module the network trains on.

    ``content`` and ``style`` are (3, H, W) tensors in [0, 1]. One iteration is one evaluation of
    the objective and its gradient (L-BFGS without line search, or one Adam step).
    """
    if optimizer not in ("lbfgs", "adam"):
        raise FaststError(f"optimizer must be 'lbfgs' or 'adam', not {optimizer!r}")
    if init not in ("content", "noise"):
        raise FaststError(f"init must be 'content' or 'noise', not {init!r}")
    if iterations < 1:
        raise FaststError("iterations must be at least 1")
    device = torch.device(device)
    vgg = (vgg or loss_network()).to(device)
    content = content.to(device).unsqueeze(0)
    criterion = PerceptualLoss(vgg, style.to(device), content_weight, style_weight, tv_weight,
                               content_layer, style_layers)
    target = criterion.content_features(content)
    generator = torch.Generator().manual_seed(seed)
    start = content.clone(memory_format=torch.contiguous_format) if init == "content" else torch.rand(content.shape, generator=generator).to(device)
    image = start.requires_grad_(True)
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([image], lr=lr or 1.0, max_iter=1, history_size=50)
    else:
        opt = torch.optim.Adam([image], lr=lr or 2e-2)
    result = GatysResult(image=content[0])
    last = {}

    def closure():
        opt.zero_grad(set_to_none=True)
        terms = criterion(image, content_features=target)
        total = terms.total
        total.backward()
        last.update(content=terms.content.item(), style=terms.style.item(), tv=terms.tv.item(), total=total.item())
        return total

    for _ in tqdm(range(iterations), desc=f"gatys {optimizer}", unit="it", disable=not progress, leave=False):
        opt.step(closure)
        if optimizer == "adam":  # L-BFGS is left unconstrained: clamping would break its curvature pairs
            with torch.no_grad():
                image.clamp_(0, 1)
        result.objective.append(last["total"])
    with torch.no_grad():  # the terms of the image as returned, in [0, 1]
        final = criterion(image.clamp(0, 1), content_features=target)
    result.terms = {"content": final.content.item(), "style": final.style.item(), "tv": final.tv.item(),
                    "total": final.total.item()}
    result.image = image.detach()[0].clamp(0, 1).cpu()
    return result


def reconstruct(target_image: torch.Tensor, layer: str, kind: str, iterations: int = 100,
                vgg: VGG16Features | None = None, progress: bool = True, seed: int = 0) -> torch.Tensor:
    """What one VGG layer keeps of an image: optimise noise to match that layer's content features
    (``kind="content"``) or its Gram matrix (``kind="style"``)."""
    if kind == "content":
        weights = dict(content_weight=1.0, style_weight=0.0, content_layer=layer)
    elif kind == "style":
        weights = dict(content_weight=0.0, style_weight=1.0, style_layers=(layer,))
    else:
        raise FaststError(f"kind must be 'content' or 'style', not {kind!r}")
    result = gatys(target_image, target_image, iterations, "lbfgs", tv_weight=0.0, init="noise", vgg=vgg,
                   progress=progress, seed=seed, **weights)
    return result.image
