"""The painting's scale on the photo: stylize at another size, and come back to the photo's own size
sharp, by a guided upsampling (the fast guided filter of He & Sun, 2015) with the photo as the guide.

A feed-forward network paints strokes of a fixed size in pixels, so on a large photo a style becomes a
fine texture. Stylizing the photo shrunk by ``style_scale`` makes the strokes that many times larger
relative to the photo; the guided upsampling fits, in each small window, the stylized picture as a
linear function of the photo's luminance, and applies those fits at full size, so that the photo's
edges come back sharp where a plain resize would blur them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fastst.host import WORKING_SIZE, cpu_working_size
from fastst.runtime import resolve_precision

RADIUS, EPS = 2, 1e-3  # the guided filter's window radius (at the small size) and regulariser

LUMA = (0.299, 0.587, 0.114)


def network_kind(config: dict) -> str:
    """How much a pass of a TransformerNet of ``config`` (its ``config``, a one-pass model's ``net_config``)
    costs, as the working size on a CPU follows it: "narrow" (narrower than Johnson et al.'s), "factored"
    (their width, its convolutions factored: ``ranks``) or "full"."""
    if config.get("width", 1.0) < 1:
        return "narrow"
    return "factored" if config.get("ranks") else "full"


def working_size(config: dict, device, precision: str = "auto") -> int:
    """The working size of the "auto" style scale for a TransformerNet of ``config`` on ``device`` in
    ``precision`` ("auto": the device's own): :data:`WORKING_SIZE` off the CPU, else
    :func:`fastst.host.cpu_working_size`'s."""
    device = torch.device(device)
    if device.type != "cpu":
        return WORKING_SIZE
    return cpu_working_size(network_kind(config), resolve_precision(precision, device) == "bf16")


def auto_scale(height: int, width: int, working_size: int = WORKING_SIZE) -> float:
    """The style scale that brings the longer side down to ``working_size`` (1 for smaller photos)."""
    return max(1.0, max(height, width) / working_size)


def _luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    return F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A (N, C, H, W) batch resized to ``size``, antialiased when shrinking."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def to_longer_side(x: torch.Tensor, size: int) -> torch.Tensor:
    """A (N, C, H, W) batch with its longer side brought to ``size``, the aspect ratio kept."""
    scale = size / max(x.shape[-2:])
    return resize(x, tuple(max(1, round(s * scale)) for s in x.shape[-2:]))


def guided_upsample(
    low_out: torch.Tensor, low_guide: torch.Tensor, guide: torch.Tensor, r: int = RADIUS, eps: float = EPS
) -> torch.Tensor:
    """``low_out`` (N, C, h, w), computed from ``low_guide`` (N, 3, h, w), brought to ``guide``'s size
    (N, 3, H, W): per window, ``low_out ~ a * luma(low_guide) + b``; the fits' averages, upsampled, are
    applied to ``luma(guide)``."""
    i_low = _luma(low_guide.float())
    p = low_out.float()
    mean_i, mean_p = _box(i_low, r), _box(p, r)
    cov = _box(i_low * p, r) - mean_i * mean_p
    var = _box(i_low * i_low, r) - mean_i * mean_i
    a = cov / (var + eps)
    b = mean_p - a * mean_i
    size = tuple(guide.shape[-2:])
    c = a.shape[1]
    ab = resize(torch.cat([_box(a, r), _box(b, r)], 1), size)  # one pass over the full size for both
    # in place: every full-size map is fresh memory
    return torch.addcmul(ab[:, c:], ab[:, :c], _luma(guide.float())).clamp_(0, 1)


def at_scale(run, images: torch.Tensor, style_scale: float) -> torch.Tensor:
    """``run`` (a stylizing function of a (N, 3, h, w) batch) applied at ``1 / style_scale`` of the
    batch's size and brought back to its size: guided upsampling when the work was smaller, an
    antialiased resize when it was larger."""
    if style_scale == 1:
        return run(images)
    h, w = images.shape[-2:]
    small = (max(16, round(h / style_scale)), max(16, round(w / style_scale)))
    low = resize(images.float(), small)
    out = run(low).float()
    if small[0] < h:
        return guided_upsample(out, low, images)
    return resize(out, (h, w)).clamp(0, 1)
