"""The training step: eq. 5 minimised on one batch of photos (:func:`train_step`), and its set-up from a
:class:`fastst.config.TrainConfig` (:class:`TrainingStep`: the network in training's memory layout, a loss
per style, the run's optimiser and gradient scaler). ``train`` runs a TrainingStep around its run's first
network; the benchmarks and tools time one built by :func:`build_step`, so that what is timed is what trains.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict
from typing import Callable

import torch

from fastst.config import TrainConfig
from fastst.distributed import all_ranks
from fastst.io import load_image
from fastst.losses import LossTerms, PerceptualLoss
from fastst.runtime import autocast
from fastst.strength import calibrated_style_weight
from fastst.transformer import ConditionalInstanceNorm2d, TransformerNet
from fastst.vgg import loss_network

# Training's memory layout, on every device, for the network, its batches and the loss network:
# channels-last. It suits cuDNN on a GPU, and on the CPU the step ran faster in it than in contiguous
# memory at every preset timed (tools/step_layout.py, results/step_layout.json).
TRAINING_LAYOUT = torch.channels_last


def build_model(config: TrainConfig | dict) -> TransformerNet:
    c = config if isinstance(config, dict) else asdict(config)
    styles = 1 if isinstance(c["style"], str) else len(c["style"])
    return TransformerNet(
        norm=c["norm"],
        upsample=c["upsample"],
        width=c["width"],
        input_skip=c["input_skip"],
        residual_blocks=c.get("residual_blocks", 5),
        shuffle=c.get("shuffle", 1),
        styles=styles,
    )


def effective_style_weight(config: TrainConfig, style: torch.Tensor) -> float:
    """lambda_s as trained: the raw ``style_weight``, or the calibrated weight at ``style_strength``."""
    if config.style_strength is None:
        return config.style_weight
    return calibrated_style_weight(style.cpu(), config.style_strength, config.style_layers)


def style_losses(
    config: TrainConfig,
    styles: list[torch.Tensor],
    device: torch.device,
    weights: list[float] | None = None,
    layout: torch.memory_format = TRAINING_LAYOUT,
    fp32_gram: bool = True,
) -> list[PerceptualLoss]:
    """Eq. 5 for each style image, with the config's weights and layers (``weights``: each style's
    lambda_s, where it is not the config's raw one), through the loss network in ``layout``."""
    vgg = loss_network(device=device, memory_format=layout)
    weights = weights or [None] * len(styles)
    return [
        PerceptualLoss.for_config(vgg, image, config, weight, fp32_gram=fp32_gram).to(device)
        for image, weight in zip(styles, weights)
    ]


def _norm_parameters(model: TransformerNet) -> list[torch.nn.Parameter]:
    norms = (torch.nn.InstanceNorm2d, ConditionalInstanceNorm2d)
    return [p for m in model.modules() if isinstance(m, norms) for p in m.parameters()]


def trained_parameters(model: TransformerNet, which: str = "all") -> list[torch.nn.Parameter]:
    """The parameters a run trains: all, or only the instance norms' scale and shift (Dumoulin et al.).
    The others stop asking for gradients, so that the backward pass skips their weight gradients."""
    if which == "all":
        return list(model.parameters())
    trained = _norm_parameters(model)
    model.requires_grad_(False)
    for p in trained:
        p.requires_grad_(True)
    return trained


def parameter_groups(model: TransformerNet, config: TrainConfig) -> list[dict]:
    """The optimiser's parameter groups: the trained parameters at the run's rate, with the instance
    norms' scale and shift in a group of their own at ``config.norm_lr`` where that is set."""
    trained = trained_parameters(model, config.train_only)
    if not config.norm_lr:
        return [{"params": trained, "lr": config.lr}]
    norms = {id(p) for p in _norm_parameters(model)}
    groups = [
        {"params": [p for p in trained if id(p) not in norms], "lr": config.lr},
        {"params": [p for p in trained if id(p) in norms], "lr": config.norm_lr},
    ]
    return [group for group in groups if group["params"]]


def make_optimizer(model: TransformerNet, config: TrainConfig) -> torch.optim.Adam:
    """The run's Adam over ``parameter_groups``, fused: one kernel updates every parameter, where the
    default runs several passes over them per step."""
    return torch.optim.Adam(
        parameter_groups(model, config), betas=(config.adam_beta1, config.adam_beta2), fused=True
    )


def load_optimizer(optimizer: torch.optim.Adam, state: dict) -> None:
    """Load a checkpoint's optimiser ``state`` into ``make_optimizer``'s Adam. torch takes each group's
    settings from the state, so a checkpoint written before Adam was fused would resume unfused: the
    state's groups keep the optimiser's own implementation."""
    implementation = {k: optimizer.defaults[k] for k in ("fused", "foreach")}
    optimizer.load_state_dict(
        {**state, "param_groups": [{**group, **implementation} for group in state["param_groups"]]}
    )


def lr_factor(config: TrainConfig, step: int) -> float:
    """The learning rate at ``step`` as a fraction of ``config.lr``."""
    n = config.iterations
    if config.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step, n) / n))
    if config.lr_schedule == "onecycle":
        warm = max(1, int(config.warmup * n))
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(step - warm, n - warm) / max(1, n - warm)))
    return 1.0


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    """The run's learning-rate schedule (``lr_factor``) over ``optimizer``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, config))


class NonFiniteLoss(ArithmeticError):
    """The objective became infinite or NaN (its value is the message)."""


def train_step(
    net: torch.nn.Module,
    criterion: PerceptualLoss,
    batch: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    precision: str,
    style: int | None = None,
    clip: float = 0.0,
) -> LossTerms:
    """One iteration of eq. 5's minimisation on a batch of photos; returns the weighted terms.
    The content target runs only as deep as its layer and without gradients. ``style`` is the
    style's index in a multi-style network (``criterion`` holds that style's targets); with ``clip``
    the gradient's norm is cut to at most that."""
    with autocast(device, precision):
        content_features = criterion.content_features(batch)
        y_hat = net(batch) if style is None else net(batch, style)
        terms = criterion(y_hat, content_features=content_features)
        total = terms.total
    finite = bool(torch.isfinite(total))
    if not all_ranks(finite):  # every rank raises together, or the others would wait in backward's all-reduce
        raise NonFiniteLoss(total.item() if not finite else "non-finite on another process")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    if clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], clip)
    scaler.step(optimizer)
    scaler.update()
    return terms


class TrainingStep:
    """A config's training step, ready to run on a batch: ``model`` in ``layout`` with its optimiser
    (``optimizer_for(model, config)``, the run's own by default) and gradient scaler, and a loss per
    style (``criteria``). ``net`` is what runs the forward pass: the model, or a wrapper of it (DDP,
    ``torch.compile``)."""

    def __init__(
        self,
        config: TrainConfig,
        model: TransformerNet,
        criteria: list[PerceptualLoss],
        device: torch.device,
        precision: str,
        layout: torch.memory_format = TRAINING_LAYOUT,
        optimizer_for: Callable = make_optimizer,
    ):
        self.config, self.criteria, self.device, self.precision = config, criteria, device, precision
        self.optimizer = optimizer_for(model, config)
        self.model = self.net = model.to(memory_format=layout)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")

    def __call__(self, batch: torch.Tensor, style: int = 0) -> LossTerms:
        """One step on ``batch`` (in the step's layout) towards style ``style``'s targets."""
        return train_step(
            self.net,
            self.criteria[style],
            batch,
            self.optimizer,
            self.scaler,
            self.device,
            self.precision,
            style if self.model.styles > 1 else None,
            self.config.clip,
        )


def build_step(
    config: TrainConfig,
    device: torch.device,
    precision: str,
    layout: torch.memory_format = TRAINING_LAYOUT,
    build: Callable[[TrainConfig], TransformerNet] = build_model,
    optimizer_for: Callable = make_optimizer,
    fp32_gram: bool = True,
) -> TrainingStep:
    """``config``'s step on a new network (``build(config)`` after seeding with the config's seed) towards
    its first style at the raw style weight (each style's step costs the same); ``layout``, ``build``,
    ``optimizer_for`` and ``fp32_gram`` (:class:`fastst.losses.PerceptualLoss`) are training's own by
    default, and other values make the variants that the benchmarks compare with it."""
    style = load_image(config.style_paths()[0], config.style_size).to(device)
    criteria = style_losses(config, [style], device, layout=layout, fp32_gram=fp32_gram)
    torch.manual_seed(config.seed)
    model = build(config).to(device).train()
    return TrainingStep(config, model, criteria, device, precision, layout, optimizer_for)
