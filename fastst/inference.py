"""The inference form of the image transformation network: the same function, re-expressed for speed.

Two layers of the decoder do their work at full resolution in a form that is slow on a CPU: the
nearest upsampling writes a 4x larger map only for the next convolution to read it, and the last
9x9 convolution has 3 output channels, too few to fill the vector units. Both are exactly
re-expressed at half resolution, where each output pixel phase (row parity a, column parity b)
becomes its own output channel, then the phases are interleaved back into one map. The outputs agree with
the original's to floating-point rounding (tests/test_transformer.py).

Under reduced-precision autocast on a CPU, torch pads in fp32: each padding would write its bf16 input
back as an fp32 map, twice the bytes, only for the next convolution to round it again. The inference
form pads in the input's own precision (:class:`KeepPrecisionPad`), and the phase shuffles keep a
channels-last input channels-last, so no layer after them reads or writes the slower layout.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from fastst.transformer import (
    ConvLayer,
    InstanceNorm2d,
    TransformerNet,
    UpsampleLayer,
    is_pointwise,
    pads_into_convs,
    replace_modules,
)


def _to_phases(x: torch.Tensor) -> torch.Tensor:
    """(N, C, 2h, 2w) -> (N, 4C, h, w), channels ordered (row phase, column phase, channel): in
    channels-last memory each pixel's channels stay contiguous, so the copy vectorises (unlike
    ``pixel_unshuffle``'s channel-major order). One copy, into the input's memory format."""
    n, c, h2, w2 = x.shape
    if x.is_contiguous(memory_format=torch.channels_last):
        pixels = x.permute(0, 2, 3, 1).reshape(n, h2 // 2, 2, w2 // 2, 2, c)
        return pixels.permute(0, 1, 3, 2, 4, 5).reshape(n, h2 // 2, w2 // 2, 4 * c).permute(0, 3, 1, 2)
    return (
        x.reshape(n, c, h2 // 2, 2, w2 // 2, 2).permute(0, 3, 5, 1, 2, 4).reshape(n, 4 * c, h2 // 2, w2 // 2)
    )


def _interleave(y: torch.Tensor, h: int, w: int, shift: int) -> torch.Tensor:
    """The (N, C, 2h, 2w) map whose pixel (2i + a, 2j + b) is channel (a, b, c) of ``y`` (N, 4C, h', w')
    at (i + shift * a, j + shift * b): a strided view of ``y`` copied into ``y``'s memory format.
    ``shift`` 0 is the inverse of ``_to_phases``; 1 reads each phase one pixel further on per parity."""
    n, c4, rows, columns = y.shape
    if c4 % 4 or rows < h + shift or columns < w + shift:  # a view past the map would read other memory
        raise ValueError(f"cannot interleave {tuple(y.shape)} into {h} x {w} phases, shifted by {shift}")
    c = c4 // 4
    sn, sc, sh, sw = y.stride()
    offset = y.storage_offset()
    if y.is_contiguous(memory_format=torch.channels_last):
        # (n, i, a, j, b, c): rows, then columns, then channels, as channels-last memory stores them
        view = y.as_strided(
            (n, h, 2, w, 2, c), (sn, sh, 2 * c * sc + shift * sh, sw, c * sc + shift * sw, sc), offset
        )
        return view.reshape(n, 2 * h, 2 * w, c).permute(0, 3, 1, 2)
    view = y.as_strided(
        (n, c, h, 2, w, 2), (sn, sc, sh, 2 * c * sc + shift * sh, sw, c * sc + shift * sw), offset
    )
    return view.reshape(n, c, 2 * h, 2 * w)


def _from_phases(y: torch.Tensor) -> torch.Tensor:
    """The inverse of ``_to_phases``."""
    return _interleave(y, y.shape[2], y.shape[3], 0)


class KeepPrecisionPad(nn.Module):
    """A reflection or replication padding that keeps its input's precision under autocast (where torch
    would pad a bf16 map into an fp32 one): the same values, half the bytes written and read."""

    def __init__(self, pad: nn.ReflectionPad2d | nn.ReplicationPad2d):
        super().__init__()
        self.padding = tuple(pad.padding)
        self.mode = "reflect" if isinstance(pad, nn.ReflectionPad2d) else "replicate"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return F.pad(x, self.padding, mode=self.mode)


class SubPixelUpsample(nn.Module):
    """``UpsampleLayer("resize")`` computed at the input resolution, with fewer multiply-adds.

    Nearest x2 upsampling then reflection padding by 1 reads the same pixels as replication
    padding by 1 at the low resolution, and each output phase (row parity a, column parity b) of the
    3x3 convolution reads only 2 of the low-resolution rows and 2 of its columns: rows i and i + 1 of the
    padded map for a = 0, rows i + 1 and i + 2 for a = 1. So one 2x2 convolution of the padded map,
    with 4 outputs per channel (one per phase), holds every phase, each one pixel further on for parity
    1; :func:`_interleave` reads them out. 4 taps where the upsampled map's convolution has 9.
    """

    def __init__(self, layer: UpsampleLayer):
        super().__init__()
        conv = layer[1][1]
        # output row 2i + a, tap t reads upsampled row 2i + a + t - 1, which is low-resolution row
        # i + (a + t - 1) // 2: row i + a + q of the padded map, tap q = (a + t - 1) // 2 + 1 - a
        m = torch.zeros(2, 2, 3)  # (a, q, t)
        for a in range(2):
            for t in range(3):
                m[a, (a + t - 1) // 2 + 1 - a, t] = 1
        w = torch.einsum("aqy,brx,ocyx->abocqr", m, m, conv.weight.detach().float())
        self.pad = nn.ReplicationPad2d(1)
        self.conv = nn.Conv2d(conv.in_channels, 4 * conv.out_channels, 2)
        with torch.no_grad():
            self.conv.weight.copy_(w.reshape(self.conv.weight.shape))
            self.conv.bias.copy_(conv.bias.repeat(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _interleave(self.conv(self.pad(x)), x.shape[2], x.shape[3], 1)


def phase_taps(kernel: int) -> torch.Tensor:
    """m[a, p, q, t] = 1 where tap t of a stride-1 ``kernel`` convolution's output phase a (row 2i + a) reads
    phase p of the padded map's 2-pixel blocks at tap q: row 2i + a + t = 2(i + q) + p. The same along
    columns; a convolution of the phases with ``kernel // 2 + 1`` taps holds the original's."""
    m = torch.zeros(2, 2, kernel // 2 + 1, kernel)
    for a in range(2):
        for t in range(kernel):
            m[a, (a + t) % 2, (a + t) // 2, t] = 1
    return m


class SpaceToDepthConv(nn.Module):
    """A reflection-padded stride-1 ``ConvLayer`` on an even-sized map, computed at half resolution:
    the padded input is split into its 4 pixel phases (pixel unshuffle), a convolution with
    k // 2 + 1 taps maps them to the 4 output phases, and a pixel shuffle interleaves them. With
    4x the channels on both sides it runs 3x faster for the 3-channel output layer."""

    def __init__(self, layer: ConvLayer):
        super().__init__()
        pad, conv = layer
        k = conv.kernel_size[0]
        taps = k // 2 + 1
        m = phase_taps(k)
        w = torch.einsum("apqy,brsx,ocyx->aboprcqs", m, m, conv.weight.detach().float())
        self.pad = nn.ReflectionPad2d(pad.padding)
        self.conv = nn.Conv2d(4 * conv.in_channels, 4 * conv.out_channels, taps)
        with torch.no_grad():
            self.conv.weight.copy_(w.reshape(self.conv.weight.shape))
            self.conv.bias.copy_(conv.bias.repeat(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _from_phases(self.conv(_to_phases(self.pad(x))))


class TwoTermInputConv(nn.Module):
    """The first ``ConvLayer``, keeping the image's precision under bf16/fp16 autocast.

    Rounding the input image to bf16 (8 significant bits) is the one rounding the network cannot
    absorb: it amplifies the rounding pattern like fine texture, far below the PSNR of the rest
    on smooth photos at 1024 px, while rounding every other layer's input costs little. So the
    image is carried as two reduced-precision terms, x = hi + lo, stacked as 6 channels against the
    weights stacked twice: twice the cost of this layer (5% of the network) instead of computing
    it in fp32. For images in [0, 1]; in fp32 it is the plain layer.
    """

    def __init__(self, layer: ConvLayer):
        super().__init__()
        self.pad, conv = layer
        # a factored first layer (``ranks``): the image's two terms through its first convolution only
        self.conv, self.rest = (
            (conv[0], conv[1:]) if isinstance(conv, nn.Sequential) else (conv, nn.Identity())
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self._first(self.pad(x)))

    def _first(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            return self.conv(x)
        # hi: x in [0, 1] to 8 bits, exact in bf16 and fp16; lo = x - hi < 2^-8 keeps 8 more. The
        # rounding is explicit arithmetic: a cast pair (x -> bf16 -> fp32) would be removed by
        # compiler fusion, which keeps intermediate values in fp32.
        hi = torch.floor(x.float() * 256) / 256
        pair = torch.cat([hi, x - hi], dim=1).to(torch.get_autocast_dtype(x.device.type))
        return F.conv2d(pair, self.conv.weight.repeat(1, 2, 1, 1), self.conv.bias)


class SinglePassInstanceNorm(InstanceNorm2d):
    """Instance norm whose statistics, compiled for a CPU, come from one pass of plain sums.

    The mean and the mean square of x - x[..., :1, :1] (the shift by one pixel of the channel keeps
    the difference well conditioned) give the mean and variance. For torch's instance norm (the form
    this was measured against), Inductor generates a Welford reduction, whose divisions cost more on a
    CPU and which it does not split over threads for 32 channels. This form cut the time of the compiled
    network's fused kernels noticeably at 256 and 512 px (torch.profiler), and it stays exact where the
    mean is far from zero (tests). In eager mode and on a GPU it is :class:`InstanceNorm2d`, unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            not torch.compiler.is_compiling()
            or x.device.type != "cpu"
            or self.track_running_stats
            or not self.affine
        ):
            return super().forward(x)
        xf = x.float()
        origin = xf[:, :, :1, :1]
        d = xf - origin
        mean = d.mean((2, 3), keepdim=True)
        var = ((d * d).mean((2, 3), keepdim=True) - mean * mean).clamp_min(0)
        scale = self.weight.view(1, -1, 1, 1) * torch.rsqrt(var + self.eps)
        return ((d - mean) * scale + self.bias.view(1, -1, 1, 1)).to(x.dtype)


def _single_pass(norm: nn.InstanceNorm2d) -> SinglePassInstanceNorm:
    new = SinglePassInstanceNorm(
        norm.num_features, eps=norm.eps, affine=norm.affine, track_running_stats=norm.track_running_stats
    )
    new.load_state_dict(norm.state_dict())
    return new


def for_inference(model: TransformerNet) -> TransformerNet:
    """An eval-mode copy of ``model`` computing the same function faster: the upsampling layers and the last
    convolution re-expressed at half resolution (see above; a ``shuffle`` network has only its upsampling to
    re-express), the image kept exact under reduced precision (``TwoTermInputConv``), paddings in their
    input's precision (``KeepPrecisionPad``), a padding that feeds a factored convolution moved after its
    first 1x1 convolution (to the narrower map), zero paddings taken into their convolutions
    (:func:`fastst.transformer.pads_into_convs`), and instance norms that compile to one pass
    (``SinglePassInstanceNorm``). For stylizing only: its weights are derived, not trained, and it is not
    saved. A model already in this form is returned as it is."""
    if any(isinstance(m, TwoTermInputConv) for m in model.encoder):
        return model
    device = next(model.parameters()).device
    fast = copy.deepcopy(model).cpu().eval().requires_grad_(False)  # derived on the CPU, then moved back
    first = next(i for i, m in enumerate(fast.encoder) if isinstance(m, ConvLayer))  # reads the image
    fast.encoder[first] = TwoTermInputConv(fast.encoder[first])
    if model.config["upsample"] == "resize":
        for i, layer in enumerate(fast.decoder):
            if isinstance(layer, UpsampleLayer):
                fast.decoder[i] = SubPixelUpsample(layer)
    if isinstance(fast.decoder[-1], ConvLayer):  # a full-resolution last layer (not a pixel shuffle)
        fast.decoder[-1] = SpaceToDepthConv(fast.decoder[-1])
    replace_modules(fast, lambda m: type(m) in (nn.InstanceNorm2d, InstanceNorm2d), _single_pass)
    replace_modules(fast, lambda m: type(m) in (nn.ReflectionPad2d, nn.ReplicationPad2d), KeepPrecisionPad)
    _pad_after_pointwise(fast)
    pads_into_convs(fast)
    return fast.requires_grad_(False).to(device)


def _pad_after_pointwise(model: nn.Module) -> None:
    """Where a padding feeds a factored convolution (:func:`fastst.transformer.factored`) that starts with a
    1x1 convolution, the 1x1 convolution goes first: a reflection or replication padding copies pixels,
    which a pixel-wise map commutes with, and the padding then copies the 1x1 convolution's narrower map."""
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        for i in range(len(seq) - 1):
            pad, conv = seq[i], seq[i + 1]
            if (
                isinstance(pad, KeepPrecisionPad)
                and isinstance(conv, nn.Sequential)
                and len(conv) > 1
                and is_pointwise(conv[0])
            ):
                seq[i], seq[i + 1] = conv[0], nn.Sequential(pad, *conv[1:])
