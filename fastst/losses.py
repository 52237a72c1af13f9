"""Perceptual losses: the report's equations 1-5, each averaged over the batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fastst.vgg import VGG16Features

STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
# The loss weights of eq. 5 that every entry point defaults to (the `cpu` preset's, chosen by eye on
# The Starry Night); `calibrated_style_weight` scales lambda_s for other style images.
DEFAULT_WEIGHTS = {"content_weight": 1.0, "style_weight": 2.0, "tv_weight": 1e-4}


def content_loss(f_out: torch.Tensor, f_target: torch.Tensor) -> torch.Tensor:
    """Eq. 1: ||phi_j(y_hat) - phi_j(y_c)||_2^2 / (C_j H_j W_j), averaged over the batch."""
    return (f_out.float() - f_target.float()).pow(2).mean()


def gram_matrix(f: torch.Tensor, fp32: bool = True) -> torch.Tensor:
    """Eq. 2: G_j = phi_j phi_j^T / (C_j H_j W_j), a (B, C, C) batch. In fp32, because it sums over every
    pixel of a feature map; ``fp32=False`` leaves the product to autocast (cheaper, less exact)."""
    b, c, h, w = f.shape
    if not fp32:
        flat = f.reshape(b, c, h * w)
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)
    with torch.autocast(f.device.type, enabled=False):  # autocast would run bmm in bf16 / fp16
        flat = f.float().reshape(b, c, h * w)
        return torch.bmm(flat, flat.transpose(1, 2)) / (c * h * w)


def style_loss(grams_out, grams_target) -> torch.Tensor:
    """Eq. 3: sum over layers of ||G_j(y_hat) - G_j(y_s)||_F^2, averaged over the batch.

    Takes two sequences (or two dicts with the same keys) of Gram batches; a target batch of
    one broadcasts against the output batch.
    """
    if isinstance(grams_out, dict):
        grams_target = [grams_target[k] for k in grams_out]
        grams_out = list(grams_out.values())
    total = 0.0
    for g_out, g_target in zip(grams_out, grams_target, strict=True):
        total = total + (g_out - g_target).pow(2).sum(dim=(1, 2)).mean()
    return total


def tv_loss(img: torch.Tensor) -> torch.Tensor:
    """Eq. 4: sum of squared horizontal and vertical neighbour differences, averaged over the batch."""
    img = img.float()
    dx = (img[..., :, 1:] - img[..., :, :-1]).pow(2).sum(dim=(-3, -2, -1))
    dy = (img[..., 1:, :] - img[..., :-1, :]).pow(2).sum(dim=(-3, -2, -1))
    return (dx + dy).mean()


@dataclass
class LossTerms:
    """The weighted terms of eq. 5 (lambda times each loss) and their sum."""

    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.content + self.style + self.tv


class PerceptualLoss(nn.Module):
    """Eq. 5: lambda_c L_content + lambda_s L_style + lambda_TV L_TV for one style image.

    The style targets' Gram matrices are computed once, here. ``forward(y_hat, y_c)`` returns
    the weighted terms; the content target's VGG pass runs without gradients and only as deep
    as the content layer. ``fp32_gram``: the output's Gram matrices in fp32 (see ``gram_matrix``).
    """

    def __init__(
        self,
        vgg: VGG16Features,
        style_image: torch.Tensor,
        content_weight: float,
        style_weight: float,
        tv_weight: float,
        content_layer: str = "relu3_3",
        style_layers=STYLE_LAYERS,
        fp32_gram: bool = True,
    ):
        super().__init__()
        self.vgg = vgg
        self.content_weight, self.style_weight, self.tv_weight = content_weight, style_weight, tv_weight
        self.content_layer, self.fp32_gram = content_layer, fp32_gram
        self.style_layers = tuple(style_layers)
        self.layers = tuple(dict.fromkeys((*self.style_layers, content_layer)))
        if style_image.dim() == 3:
            style_image = style_image.unsqueeze(0)
        with torch.no_grad():
            feats = vgg(style_image.float(), self.style_layers)
            for name in self.style_layers:
                self.register_buffer(f"gram_{name}", gram_matrix(feats[name]))

    @classmethod
    def for_config(
        cls, vgg: VGG16Features, style_image: torch.Tensor, config, style_weight=None, fp32_gram: bool = True
    ):
        """Eq. 5 with a training config's weights and layers; ``style_weight`` (lambda_s) replaces the
        config's raw one where it is calibrated."""
        return cls(
            vgg,
            style_image,
            config.content_weight,
            config.style_weight if style_weight is None else style_weight,
            config.tv_weight,
            config.content_layer,
            config.style_layers,
            fp32_gram,
        )

    def style_grams(self) -> list[torch.Tensor]:
        return [getattr(self, f"gram_{name}") for name in self.style_layers]

    def content_features(self, content: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.vgg(content, (self.content_layer,))[self.content_layer]

    def forward(
        self,
        y_hat: torch.Tensor,
        content: torch.Tensor | None = None,
        content_features: torch.Tensor | None = None,
    ) -> LossTerms:
        if content_features is None:
            content_features = self.content_features(content)
        feats = self.vgg(y_hat, self.layers)
        grams = [gram_matrix(feats[name], self.fp32_gram) for name in self.style_layers]
        return LossTerms(
            content=self.content_weight * content_loss(feats[self.content_layer], content_features),
            style=self.style_weight * style_loss(grams, self.style_grams()),
            tv=self.tv_weight * tv_loss(y_hat),
        )
