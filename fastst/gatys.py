"""The optimisation-based baseline (Gatys et al., 2015): minimise eq. 5 over the image itself."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from fastst.errors import FaststError
from fastst.losses import DEFAULT_WEIGHTS, STYLE_LAYERS, PerceptualLoss, tv_loss
from fastst.vgg import IMAGENET_MEAN, VGG16Features, loss_network


@dataclass
class GatysResult:
    image: torch.Tensor  # (3, H, W) in [0, 1]
    objective: list = field(default_factory=list)  # eq. 5 of the image after 0, 1, ..., N iterations
    terms: dict = field(default_factory=dict)  # the last weighted terms
    seconds_per_iteration: float = 0.0  # the iterations alone (no set-up, no final evaluation)


INITS = ("content", "noise", "uniform")


def starting_image(content: torch.Tensor, init: str, seed: int = 0) -> torch.Tensor:
    """Where the optimisation starts: the content image; "noise" as Johnson et al.'s
    ``slow_neural_style.lua`` starts (``torch.randn`` in VGG's mean-subtracted 0-255 space, so
    the ImageNet mean colour with noise of one grey level); or uniform noise in [0, 1]."""
    if init == "content":
        return content.clone(memory_format=torch.contiguous_format)
    generator = torch.Generator().manual_seed(seed)
    if init == "noise":
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        noise = mean + torch.randn(content.shape, generator=generator) / 255
    elif init == "uniform":
        noise = torch.rand(content.shape, generator=generator)
    else:
        raise FaststError(f"init must be one of {', '.join(INITS)}, not {init!r}")
    return noise.to(content.device)


def gatys(
    content: torch.Tensor,
    style: torch.Tensor,
    iterations: int = 300,
    optimizer: str = "lbfgs",
    content_weight: float = DEFAULT_WEIGHTS["content_weight"],
    style_weight: float = DEFAULT_WEIGHTS["style_weight"],
    tv_weight: float = DEFAULT_WEIGHTS["tv_weight"],
    content_layer: str = "relu3_3",
    style_layers=STYLE_LAYERS,
    init: str = "content",
    lr: float | None = None,
    vgg: VGG16Features | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    seed: int = 0,
) -> GatysResult:
    """Optimise an image for the objective of eq. 5, the very same loss module the network trains on.

    ``content`` and ``style`` are (3, H, W) tensors in [0, 1]. One iteration is one evaluation of
    the objective and its gradient (L-BFGS without line search, or one Adam step). The objective
    is that of the image clamped to [0, 1], the basis on which a network's output is scored, and
    ``objective[i]`` is its value after ``i`` iterations (``objective[0]``: the starting image).
    """
    if optimizer not in ("lbfgs", "adam"):
        raise FaststError(f"optimizer must be 'lbfgs' or 'adam', not {optimizer!r}")
    if init not in INITS:
        raise FaststError(f"init must be one of {', '.join(INITS)}, not {init!r}")
    if iterations < 1:
        raise FaststError("iterations must be at least 1")
    device = torch.device(device)
    vgg = vgg.to(device) if vgg is not None else loss_network(device=device)
    content = content.to(device).unsqueeze(0)
    criterion = PerceptualLoss(
        vgg, style.to(device), content_weight, style_weight, tv_weight, content_layer, style_layers
    )
    target = criterion.content_features(content)
    image = starting_image(content, init, seed).requires_grad_(True)
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([image], lr=lr or 1.0, max_iter=1, history_size=50)
    else:
        opt = torch.optim.Adam([image], lr=lr or 2e-2)
    result = GatysResult(image=content[0])

    def closure():
        # the clamp is part of the objective: pixels outside [0, 1] score as their clamped value
        opt.zero_grad(set_to_none=True)
        total = criterion(image.clamp(0, 1), content_features=target).total
        total.backward()
        result.objective.append(total.item())  # the objective of the current iterate, before the step
        return total

    t0 = time.perf_counter()
    for _ in tqdm(range(iterations), desc=f"gatys {optimizer}", unit="it", disable=not progress, leave=False):
        opt.step(closure)
        if optimizer == "adam":
            with torch.no_grad():
                image.clamp_(0, 1)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    result.seconds_per_iteration = (time.perf_counter() - t0) / iterations
    with torch.no_grad():  # the image after the last step
        final = criterion(image.clamp(0, 1), content_features=target)
    result.objective.append(final.total.item())
    result.terms = {
        "content": final.content.item(),
        "style": final.style.item(),
        "tv": final.tv.item(),
        "total": final.total.item(),
    }
    result.image = image.detach()[0].clamp(0, 1).cpu()
    return result


def reconstruct(
    target_image: torch.Tensor,
    layer: str,
    kind: str,
    iterations: int = 300,
    vgg: VGG16Features | None = None,
    progress: bool = True,
    seed: int = 0,
    smoothness: float = 0.05,
) -> torch.Tensor:
    """What one VGG layer keeps of an image: optimise uniform noise to match that layer's content
    features (``kind="content"``) or its Gram matrix (``kind="style"``).

    As in Mahendran & Vedaldi's inversions, a small image prior keeps the pixels the layer does not
    determine from staying noise: the squared neighbour differences (eq. 4), weighted by
    ``smoothness`` relative to the target image's own, so that the prior costs ``smoothness`` for an
    image as smooth as the target. The layer's term is divided by its value at the start, which makes
    the objective scale-free for L-BFGS (with a line search) at any depth.
    """
    if kind == "content":
        weights = dict(content_weight=1.0, style_weight=0.0, content_layer=layer)
    elif kind == "style":
        weights = dict(content_weight=0.0, style_weight=1.0, style_layers=(layer,))
    else:
        raise FaststError(f"kind must be 'content' or 'style', not {kind!r}")
    vgg = vgg if vgg is not None else loss_network()
    target = target_image[None].float()
    criterion = PerceptualLoss(vgg, target, tv_weight=0.0, **weights)
    target_features = criterion.content_features(target)
    image = starting_image(target, "uniform", seed).requires_grad_(True)

    def layer_term(x):
        return criterion(x, content_features=target_features).total

    with torch.no_grad():
        scale = 1.0 / max(layer_term(image).item(), 1e-12)
        prior_scale = smoothness / max(tv_loss(target).item(), 1e-12)
    evaluations = iterations * 5 // 4  # L-BFGS's default budget of evaluations for its line searches
    opt = torch.optim.LBFGS(
        [image],
        lr=1.0,
        max_iter=iterations,
        max_eval=evaluations,
        history_size=50,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-12,  # the objective starts near 1 at every layer: run the whole budget
        tolerance_change=1e-12,
    )
    bar = tqdm(total=evaluations, desc=f"reconstruct {kind} {layer}", disable=not progress, leave=False)

    def closure():
        opt.zero_grad(set_to_none=True)
        total = scale * layer_term(image) + prior_scale * tv_loss(image)
        total.backward()
        bar.update(1)
        return total

    opt.step(closure)
    bar.close()
    return image.detach()[0].clamp(0, 1)
