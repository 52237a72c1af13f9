"""The image transformation network f_W of Johnson et al. (2016), Fig. 2 / supplementary Table 1."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Downsampling by 4 needs sizes divisible by 4; the reflection padding of the 9x9 convolution
# needs at least 5 pixels. Inputs are padded up to this and cropped back.
_MULTIPLE = 4
_MIN_SIZE = 16
SKIP_INIT_SCALE = 0.1  # the last layer's default initialisation, scaled down


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"norm must be 'instance' or 'batch', not {kind!r}")


class ConvLayer(nn.Sequential):
    """Reflection padding, then a convolution (padding keeps the size at stride 1)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(nn.ReflectionPad2d(kernel // 2), nn.Conv2d(c_in, c_out, kernel, stride))


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with normalisation and a skip (He et al., as in Johnson et al.)."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            ConvLayer(channels, channels, 3), _norm(norm, channels), nn.ReLU(inplace=True),
            ConvLayer(channels, channels, 3), _norm(norm, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UpsampleLayer(nn.Sequential):
    """x2 upsampling: nearest resize + 3x3 conv (no checkerboard), or a transposed convolution."""

    def __init__(self, c_in: int, c_out: int, mode: str):
        if mode == "resize":
            super().__init__(nn.Upsample(scale_factor=2, mode="nearest"), ConvLayer(c_in, c_out, 3))
        elif mode == "transpose":
            super().__init__(nn.ConvTranspose2d(c_in, c_out, 3, stride=2, padding=1, output_padding=1))
        else:
            raise ValueError(f"upsample must be 'resize' or 'transpose', not {mode!r}")


class TransformerNet(nn.Module):
    """Feed-forward style network: RGB batch in [0, 1] -> RGB batch in [0, 1] of the same size.

    Args:
        norm: ``"instance"`` (Ulyanov et al., the default) or ``"batch"`` (the paper's original).
        upsample: ``"resize"`` (nearest x2 then conv) or ``"transpose"`` (fractionally strided conv).
        width: channel multiplier; 0.5 is Johnson et al.'s half-width model.
        input_skip: add the input to the output, with the last convolution starting at zero, so the
            untrained network is the identity instead of a black image (faster start of training).

    Training uses the unclamped output (so gradients do not vanish at the range's edges); in eval
    mode the output is clamped to [0, 1].
    """

    def __init__(self, norm: str = "instance", upsample: str = "resize", width: float = 1.0,
                 input_skip: bool = False, residual_blocks: int = 5):
        super().__init__()
        c1, c2, c3 = (max(1, round(c * width)) for c in (32, 64, 128))
        self.config = {"norm": norm, "upsample": upsample, "width": width,
                       "input_skip": input_skip, "residual_blocks": residual_blocks}
        self.input_skip = input_skip
        self.encoder = nn.Sequential(
            ConvLayer(3, c1, 9), _norm(norm, c1), nn.ReLU(inplace=True),
            ConvLayer(c1, c2, 3, stride=2), _norm(norm, c2), nn.ReLU(inplace=True),
            ConvLayer(c2, c3, 3, stride=2), _norm(norm, c3), nn.ReLU(inplace=True))
        self.residuals = nn.Sequential(*(ResidualBlock(c3, norm) for _ in range(residual_blocks)))
        self.decoder = nn.Sequential(
            UpsampleLayer(c3, c2, upsample), _norm(norm, c2), nn.ReLU(inplace=True),
            UpsampleLayer(c2, c1, upsample), _norm(norm, c1), nn.ReLU(inplace=True),
            ConvLayer(c1, 3, 9))
        if input_skip:
            # start near the identity; a small (not zero) last layer lets gradients reach every layer
            # from the first iteration
            with torch.no_grad():
                self.decoder[-1][1].weight.mul_(SKIP_INIT_SCALE)
            nn.init.zeros_(self.decoder[-1][1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if torch.onnx.is_in_onnx_export():
            # traced: padding must stay arithmetic on the (symbolic) size, not a constant
            ph, pw = (_MULTIPLE - h % _MULTIPLE) % _MULTIPLE, (_MULTIPLE - w % _MULTIPLE) % _MULTIPLE
            padded = F.pad(x, (0, pw, 0, ph), mode="replicate")
        else:
            ph = max(_MIN_SIZE, -(-h // _MULTIPLE) * _MULTIPLE) - h
            pw = max(_MIN_SIZE, -(-w // _MULTIPLE) * _MULTIPLE) - w
            padded = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        y = self.decoder(self.residuals(self.encoder(padded)))[..., :h, :w]
        if self.input_skip:
            y = y + x
        return y if self.training else y.clamp(0, 1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
