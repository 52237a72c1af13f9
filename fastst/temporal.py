"""Temporal stability of stylized video, and how flicker is measured.

Frame by frame, a network of this kind flickers for two reasons. It samples its input on a grid of
:data:`GRID` pixels, so its texture changes whenever the picture moves by anything else:
:class:`GridAnchor` keeps the grid fixed to the scene as the camera moves. And its instance norms
normalise each frame with that frame's own statistics: :class:`StreamNorm` takes them instead from

- ``"frame"``: each frame (the network as trained);
- ``"ema"``: an exponential moving average over the frames so far (one pass, any length);
- ``"clip"``: a sample of frames spread over the whole clip, fixed for every frame (two passes).

:func:`flicker` measures what the motion does not explain, on a clip whose motion is known
(:func:`fastst.clips.make_pan_clip`); ``tools/video_bench.py`` compares the modes.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from fastst.errors import FaststError
from fastst.transformer import TransformerNet, replace_modules

TEMPORAL_MODES = ("frame", "ema", "clip")
DEFAULT_TEMPORAL = "clip"
# "ema": the weight of each new frame in the moving average of the statistics.
EMA_WEIGHT = 0.1


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(variance, mean) of each channel of an (N, C, H, W) map, (N, C, 1, 1) each in fp32. On a CPU they are a
    group norm's, one channel a group, which reads a channels-last map as it lies, where ``var_mean`` over its
    last two dimensions (of a bf16 map copied to fp32) took several times longer; a bf16 map's come out
    rounded to bf16."""
    n, c, h, w = x.shape
    if x.device.type != "cpu":
        return torch.var_mean(x.float(), dim=(2, 3), keepdim=True, unbiased=False)
    _, mean, rstd = torch.ops.aten.native_group_norm(x, None, None, n, c, h * w, c, 0.0)
    return rstd.float().pow(-2).view(n, c, 1, 1), mean.float().view(n, c, 1, 1)


class StreamNorm(torch.nn.Module):
    """An instance norm for consecutive frames (a batch in frame order, batch after batch).

    ``mode`` "frame" normalises each frame by its own statistics (exactly ``InstanceNorm2d``);
    "ema" by a moving average of the statistics over the frames so far; "clip" by statistics
    recorded beforehand (``recording``) over a sample of the clip's frames and then fixed. The
    statistics kept are the mean and the mean square per channel.
    """

    def __init__(self, norm: torch.nn.InstanceNorm2d, mode: str, ema_weight: float = EMA_WEIGHT):
        super().__init__()
        if mode not in TEMPORAL_MODES:
            raise FaststError(f"unknown temporal mode {mode!r}: choose from {', '.join(TEMPORAL_MODES)}")
        self.eps, self.weight, self.bias = norm.eps, norm.weight, norm.bias
        self.mode, self.ema_weight = mode, ema_weight
        self.recording = False
        self.reset()

    def reset(self) -> None:
        self.moments: torch.Tensor | None = None  # (2, 1, C, 1, 1): mean and mean square
        self.recorded: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._normed(x, 1)

    def folded(self, x: torch.Tensor, phases: int) -> torch.Tensor:
        """This norm of a map folded into ``phases`` channels a channel (``FoldedNorm``)."""
        return self._normed(x, phases)

    def _normed(self, x: torch.Tensor, phases: int) -> torch.Tensor:
        if self.mode == "clip" and not self.recording:
            if self.moments is None:
                raise RuntimeError("clip statistics were not recorded")
            mean, square = self.moments
        else:
            var, mean = _moments(x)
            square = var + mean * mean
            if phases > 1:  # a channel's moments from its phases', each of as many pixels
                mean, square = (t.unflatten(1, (-1, phases)).mean(2) for t in (mean, square))
            if self.recording:
                self.recorded.append(torch.stack([mean, square]).mean(1, keepdim=True))
                self.moments = torch.stack(self.recorded).mean(0)
            elif self.mode == "ema":
                smoothed = []
                state = self.moments
                for i in range(x.shape[0]):
                    now = torch.stack([mean[i : i + 1], square[i : i + 1]])
                    state = now if state is None else state + self.ema_weight * (now - state)
                    smoothed.append(state)
                self.moments = state
                mean, square = torch.cat(smoothed, dim=1)
        # normalise, scale and shift in one pass over x: x * scale + shift
        scale, shift = (t.repeat_interleave(phases, 1) for t in self.affine(mean, square))
        return torch.addcmul(shift.to(x.dtype), x, scale.to(x.dtype))

    def affine(self, mean: torch.Tensor, square: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) per channel that normalise by these moments (mean, mean square) and then apply the
        norm's own scale and shift."""
        scale = torch.rsqrt((square - mean * mean).clamp_min(0) + self.eps)
        shift = -mean * scale
        if self.weight is not None:
            scale = scale * self.weight.view(1, -1, 1, 1)
            shift = shift * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return scale, shift


class FixedNorm(torch.nn.Module):
    """An instance norm whose statistics were fixed over a clip (a recorded :class:`StreamNorm` of mode
    "clip"): ``x * scale + shift`` per channel, as that norm computes it, the two kept as buffers, so that a
    network of them exports as a plain graph and is told apart from another clip's by its weights."""

    def __init__(self, norm: StreamNorm):
        super().__init__()
        if norm.moments is None:
            raise RuntimeError("clip statistics were not recorded")
        scale, shift = norm.affine(*norm.moments.float())  # the clip's moments, (1, C, 1, 1) each
        self.register_buffer("scale", scale.detach().float().cpu().clone())
        self.register_buffer("shift", shift.detach().float().cpu().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift.to(x.dtype), x, self.scale.to(x.dtype))

    def folded(self, x: torch.Tensor, phases: int) -> torch.Tensor:
        """This norm of a map folded into ``phases`` channels a channel (``FoldedNorm``)."""
        scale, shift = (t.repeat_interleave(phases, 1).to(x.dtype) for t in (self.scale, self.shift))
        return torch.addcmul(shift, x, scale)


def fixed_network(model: TransformerNet, stream: torch.nn.Module) -> TransformerNet:
    """A copy of the one-style ``model``, on the CPU in fp32, whose instance norms are :class:`FixedNorm` of
    the statistics that ``stream`` (a stream network of ``model`` or of its inference form, mode "clip")
    recorded, norm by norm by name: a plain network, which the exported runtimes run. A painting's network
    of a one-pass model loses its model's shared graph, whose norms are the painting's own."""
    net = copy.deepcopy(model).cpu().float().eval()
    for name in ("forward", "one_pass"):  # a compiled forward, a one-pass model's graph: the original's
        vars(net).pop(name, None)
    for name in [n for n, m in net.named_modules() if isinstance(m, torch.nn.InstanceNorm2d)]:
        parent, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent), child, FixedNorm(stream.get_submodule(name)))
    return net


def stream_network(model: TransformerNet, mode: str = DEFAULT_TEMPORAL) -> TransformerNet:
    """A copy of ``model`` (a one-style network, any form) whose instance norms are
    :class:`StreamNorm` of ``mode``. One network serves one clip."""
    net = copy.deepcopy(model)
    vars(net).pop("forward", None)  # a compiled forward belongs to the original
    return replace_modules(
        net, lambda m: isinstance(m, torch.nn.InstanceNorm2d), lambda m: StreamNorm(m, mode)
    )


def _norms(net: torch.nn.Module) -> list[StreamNorm]:
    return [m for m in net.modules() if isinstance(m, StreamNorm)]


# The network samples its input on a grid of this many pixels (two stride-2 convolutions): its output
# for a picture moved by other than a multiple of it differs in texture, not just in place.
GRID = 4


def global_shift(before: torch.Tensor, now: torch.Tensor) -> tuple[int, int]:
    """The whole-pixel translation (dx, dy) of the camera between two frames ((3, H, W) each), by
    phase correlation: ``now`` at p shows what ``before`` showed at p + (dx, dy)."""
    a, b = before.float().mean(0), now.float().mean(0)
    fa, fb = torch.fft.rfft2(a - a.mean()), torch.fft.rfft2(b - b.mean())
    cross = fb * fa.conj()
    peak = int(torch.fft.irfft2(cross / cross.abs().clamp_min(1e-12), s=a.shape).argmax())
    h, w = a.shape
    y, x = divmod(peak, w)
    return -(x - w if x > w // 2 else x), -(y - h if y > h // 2 else y)


class GridAnchor:
    """Keeps the network's sampling grid fixed to the scene as the camera moves: each frame is padded
    by the camera's travel so far, modulo :data:`GRID`, before the network, and cropped after. Under a
    pure translation, the network then sees the same pixels on the same grid in every frame."""

    def __init__(self):
        self.previous: torch.Tensor | None = None
        self.x = self.y = 0

    def offsets(self, frames: torch.Tensor) -> list[tuple[int, int]]:
        out = []
        for frame in frames:
            if self.previous is not None:
                dx, dy = global_shift(self.previous, frame)
                self.x, self.y = self.x + dx, self.y + dy
            self.previous = frame
            out.append((self.x % GRID, self.y % GRID))
        return out


# Padded frames are made a multiple of this many pixels: OpenVINO's pass of a folded network at a size whose
# quarter-resolution maps have an odd side (a 720p frame padded by GRID - 1) took far longer than at the next
# multiple of 8.
PADDED_MULTIPLE = 8


def _padded(frames: torch.Tensor, offsets: list[tuple[int, int]]) -> torch.Tensor:
    """Each frame reflected by its offset (a, b) on the left and top and by :data:`GRID` - 1 - a (- b) on the
    right and bottom, the same size for every frame, then replicated on the right and bottom to a multiple of
    :data:`PADDED_MULTIPLE`."""
    h, w = frames.shape[-2:]
    ph, pw = ((-(n + GRID - 1)) % PADDED_MULTIPLE for n in (h, w))
    padded = torch.cat(
        [
            F.pad(f[None], (a, GRID - 1 - a, b, GRID - 1 - b), mode="reflect")
            for f, (a, b) in zip(frames, offsets)
        ]
    )
    return F.pad(padded, (0, pw, 0, ph), mode="replicate") if ph or pw else padded


def _cropped(out: torch.Tensor, offsets: list[tuple[int, int]], h: int, w: int) -> torch.Tensor:
    return torch.stack([o[:, b : b + h, a : a + w] for o, (a, b) in zip(out, offsets)])


def flicker(outputs: torch.Tensor, inputs: torch.Tensor, step: tuple[int, int] = (0, 0)) -> float:
    """Flicker of a stylized clip: its :func:`warped_error` over the input clip's ((T, 3, H, W) each,
    in [0, 1]; ``step`` the camera's motion a frame, known for :func:`make_pan_clip`'s clips and
    (0, 0) for a still camera). 1 means frames change only as the input does; higher means the
    network adds change of its own from frame to frame."""
    return warped_error(outputs, step) / max(warped_error(inputs, step), 1e-8)


PAN_STEP = (2, 1)  # pixels a frame, right and down: whole pixels, so frames can be aligned exactly


def warped_errors(frames: torch.Tensor, step: tuple[int, int] = PAN_STEP) -> torch.Tensor:
    """Mean absolute difference between each frame of a pan by ``step`` and the previous frame moved
    by the same step, over the part both see ((T, 3, H, W) in [0, 1]; one value per pair). With the
    motion known exactly, what remains is the change that motion does not explain: noise in the
    input, flicker in the output."""
    dx, dy = step
    h, w = frames.shape[-2:]
    now = frames[1:, :, : h - dy, : w - dx]
    before = frames[:-1, :, dy:, dx:]
    return (now - before).abs().mean((1, 2, 3))


def warped_error(frames: torch.Tensor, step: tuple[int, int] = PAN_STEP) -> float:
    """:func:`warped_errors` averaged over the clip."""
    return float(warped_errors(frames, step).mean())
