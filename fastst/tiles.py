"""Stylizing images too large for one pass, in overlapping tiles whose instance norms share the
statistics of one pass over the image shrunk (``TileNorm``), so that no seam shows where tiles meet."""

from __future__ import annotations

import copy
import weakref

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from fastst.inference import for_inference
from fastst.runtime import autocast
from fastst.runtimes import DEFAULT_PRECISION, compile_model, fast_path
from fastst.transformer import TransformerNet, replace_modules

# Above this many pixels an image is stylized in overlapping tiles: one pass holds about a dozen
# 32-channel float maps of the image's size (about 0.6 GB per megapixel), tiles hold one tile's.
MAX_PIXELS_ONE_PASS = 2048 * 2048
# The instance-norm statistics of tiles come from one pass over the image shrunk to STATS_SIZE on its
# longer side: no larger than the largest single pass, and the closer to the image's own size the
# closer to the untiled result (tools/tiling_accuracy.py, results/tiling_accuracy.json).
TILE, OVERLAP = 1024, 128
STATS_SIZE = 2048


class TileNorm(torch.nn.Module):
    """An instance norm for stylizing in tiles. While ``recording`` it normalises with its input's
    statistics and keeps them (a pass over the whole image, shrunk); afterwards every tile is
    normalised with the kept statistics, so that tiles agree and no seam shows where they meet."""

    def __init__(self, norm: torch.nn.InstanceNorm2d):
        super().__init__()
        self.eps, self.weight, self.bias = norm.eps, norm.weight, norm.bias
        self.register_buffer("mean", None)
        self.register_buffer("var", None)
        self.recording = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()  # in fp32 from fp32 statistics; under autocast the next convolution rounds it
        if self.recording:
            self.mean = xf.mean(dim=(2, 3), keepdim=True)
            self.var = xf.var(dim=(2, 3), keepdim=True, unbiased=False)
        scale = torch.rsqrt(self.var + self.eps) * self.weight.view(1, -1, 1, 1)
        return ((xf - self.mean) * scale + self.bias.view(1, -1, 1, 1)).to(x.dtype)


_TILERS: "weakref.WeakKeyDictionary[TransformerNet, TransformerNet]" = weakref.WeakKeyDictionary()


def tiling_network(model: TransformerNet) -> TransformerNet:
    """A copy of ``model`` whose instance norms are :class:`TileNorm`; compiled too if ``model`` is
    (:func:`compile_model`). Made once per model and kept while the model lives."""
    if model in _TILERS:
        return _TILERS[model]
    compiled = vars(model).pop("forward", None)  # copy the module, not its compiled forward
    try:
        tiler = copy.deepcopy(model)
    finally:
        if compiled is not None:
            model.forward = compiled
    replace_modules(tiler, lambda m: isinstance(m, torch.nn.InstanceNorm2d), TileNorm)
    if compiled is not None:
        compile_model(tiler)
    _TILERS[model] = tiler
    return tiler


def _record_statistics(tiler: TransformerNet, image: torch.Tensor) -> None:
    norms = [m for m in tiler.modules() if isinstance(m, TileNorm)]
    for m in norms:
        m.recording = True
    try:
        type(tiler).forward(tiler, image)  # eagerly: the compiled forward is for the tiles
    finally:
        for m in norms:
            m.recording = False


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    w = torch.ones(length)
    if overlap and not at_start:
        w[:overlap] = torch.linspace(0, 1, overlap + 2)[1:-1]
    if overlap and not at_end:
        w[-overlap:] = torch.minimum(w[-overlap:], torch.linspace(1, 0, overlap + 2)[1:-1])
    return w


@torch.inference_mode()
def stylize_tiled(
    model: TransformerNet,
    image: torch.Tensor,
    tile: int = TILE,
    overlap: int = OVERLAP,
    stats_size: int = STATS_SIZE,
    progress: bool = False,
    precision: str = DEFAULT_PRECISION,
) -> torch.Tensor:
    """Stylize a (3, H, W) image of any size in overlapping tiles blended with linear ramps.

    Instance-norm statistics come from the whole image shrunk to at most ``stats_size`` pixels on
    its longer side (exact for images no larger), so the tiles agree with each other.
    """
    device = next(model.parameters()).device
    precision, _ = fast_path(precision, device)
    if precision != "fp32":
        model = for_inference(model)  # keeps the input exact, as in stylize
    h, w = image.shape[-2:]
    scale = min(1.0, stats_size / max(h, w))
    small = image[None] if scale == 1.0 else F.interpolate(image[None], scale_factor=scale, mode="area")
    tiler = tiling_network(model)
    with autocast(device, precision):
        _record_statistics(tiler, small.to(device))
    out = torch.zeros(3, h, w)
    weight = torch.zeros(1, h, w)
    step = tile - overlap
    tops = list(range(0, max(h - overlap, 1), step))
    lefts = list(range(0, max(w - overlap, 1), step))
    with autocast(device, precision):
        for top, left in tqdm(
            [(t, l) for t in tops for l in lefts], desc="tiles", disable=not progress, leave=False
        ):
            bottom, right = min(top + tile, h), min(left + tile, w)
            piece = tiler(image[None, :, top:bottom, left:right].to(device))[0].float().cpu()
            ramp = (
                _ramp(bottom - top, overlap, top == 0, bottom == h)[:, None]
                * _ramp(right - left, overlap, left == 0, right == w)[None, :]
            )
            out[:, top:bottom, left:right] += piece * ramp
            weight[:, top:bottom, left:right] += ramp
    return (out / weight.clamp_min(1e-8)).clamp(0, 1)


def in_tiles(model: TransformerNet, height: int, width: int) -> bool:
    """Whether an image of this size is stylized in tiles (instance norms need the whole image's
    statistics, which :class:`TileNorm` carries from a shrunk pass)."""
    norms = any(isinstance(m, torch.nn.InstanceNorm2d) for m in model.modules())
    return height * width > MAX_PIXELS_ONE_PASS and norms
