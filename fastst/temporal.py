"""Temporal stability of stylized video, and how flicker is measured.

Frame by frame, a network of this kind flickers for two reasons. It samples its input on a grid of
:data:`fastst.anchor.GRID` pixels, so its texture changes whenever the picture moves by anything else:
:class:`fastst.anchor.GridAnchor` keeps the grid fixed to the scene as the camera moves. And its instance
norms normalise each frame with that frame's own statistics: :class:`StreamNorm` takes them instead from

- ``"frame"``: each frame (the network as trained);
- ``"ema"``: an exponential moving average over the frames so far (one pass, any length);
- ``"clip"``: a sample of frames spread over the whole clip, fixed for every frame (two passes).

:func:`flicker` measures what the motion does not explain, on a clip whose motion is known
(:func:`fastst.clips.make_pan_clip`); ``tools/video_bench.py`` compares the modes.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref

import torch

from fastst.clips import PAN_STEP
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
        return _affine(self, mean, square)


def _affine(norm, mean: torch.Tensor, square: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) per channel, (1, C, 1, 1) each, that normalise by the moments (mean, mean square) and
    then apply ``norm``'s own scale and shift (``weight`` and ``bias``, where it has them)."""
    scale = torch.rsqrt((square - mean * mean).clamp_min(0) + norm.eps)
    shift = -mean * scale
    if norm.weight is not None:
        scale = scale * norm.weight.view(1, -1, 1, 1)
        shift = shift * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
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


class ClipNorm(torch.nn.Module):
    """A norm of :class:`ClipNetwork`: ``x * scale + shift`` per channel, the two set from the graph's input
    before each pass."""

    def __init__(self, channels: int):
        super().__init__()
        self.num_features = channels
        self.scale: torch.Tensor | None = None
        self.shift: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale, shift = (t.reshape(1, -1, 1, 1).to(x.dtype) for t in (self.scale, self.shift))
        return torch.addcmul(shift, x, scale)

    def folded(self, x: torch.Tensor, phases: int) -> torch.Tensor:
        """This norm of a map folded into ``phases`` channels a channel (``FoldedNorm``)."""
        scale, shift = (t.reshape(-1).repeat_interleave(phases) for t in (self.scale, self.shift))
        return torch.addcmul(shift.view(1, -1, 1, 1).to(x.dtype), x, scale.view(1, -1, 1, 1).to(x.dtype))


def _with_norms(model: TransformerNet, make) -> tuple[TransformerNet, list[torch.nn.Module]]:
    """A copy of the one-style ``model``, on the CPU in fp32, whose instance norms are ``make(name, norm)``
    each, and those, in the network's order."""
    net = copy.deepcopy(model).cpu().float().eval()
    for name in ("forward", "one_pass"):  # a compiled forward, a one-pass model's graph: the original's
        vars(net).pop(name, None)
    made = []
    for name in [n for n, m in net.named_modules() if isinstance(m, torch.nn.InstanceNorm2d)]:
        parent, _, child = name.rpartition(".")
        made.append(make(name, net.get_submodule(name)))
        setattr(net.get_submodule(parent), child, made[-1])
    return net, made


class ClipNetwork(torch.nn.Module):
    """A one-style network as one graph for every clip: ``(image, norms)`` -> the stylized batch, where
    ``norms`` (1, K) holds each instance norm's scale and shift, norm by norm, as :class:`FixedNorm` computes
    them from a clip's statistics (:attr:`ClipInputs.norms`). The exported runtimes run it, so that a new clip
    needs no export of its own, only its statistics."""

    def __init__(self, model: TransformerNet):
        super().__init__()
        self.body, self.norms = _with_norms(model, lambda name, norm: ClipNorm(norm.num_features))
        self.config = {**model.config, "inputs": "clip norms"}  # what runtimes' digests read

    def forward(self, image: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
        start = 0
        for norm in self.norms:
            c = norm.num_features
            norm.scale, norm.shift = norms[:, start : start + c], norms[:, start + c : start + 2 * c]
            start += 2 * c
        return self.body(image)


class _MomentsNorm(torch.nn.Module):
    """An instance norm that keeps the moments of its input, each channel's mean and mean square over the
    batch (:class:`ClipStatistics`)."""

    def __init__(self, norm: torch.nn.InstanceNorm2d):
        super().__init__()
        self.num_features, self.eps, self.weight, self.bias = (
            norm.num_features,
            norm.eps,
            norm.weight,
            norm.bias,
        )
        self.moments: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the mean square as a norm's square: one reduction (ReduceL2) where the runtimes keep precision and
        # time, where the squared map in bf16 lost both
        mean = x.mean((2, 3), keepdim=True)
        square = torch.linalg.vector_norm(x, 2, dim=(2, 3), keepdim=True).square() / (x.shape[2] * x.shape[3])
        self.moments = mean.mean(0, keepdim=True), square.mean(0, keepdim=True)
        scale, shift = _affine(self, mean, square)
        return x * scale + shift


class ClipStatistics(torch.nn.Module):
    """A one-style network's pass that records a clip's statistics as one graph: frames (N, 3, H, W) in
    [0, 1], a sample of the clip, -> the :class:`ClipNetwork`'s ``norms`` (1, K) for the clip: each norm's
    scale and shift from the moments of its input averaged over the frames, each frame normalised by its own
    on the way, as a stream network of mode "clip" records them. The quick path runs it, exported."""

    def __init__(self, model: TransformerNet):
        super().__init__()
        self.body, self.norms = _with_norms(model, lambda name, norm: _MomentsNorm(norm))
        self.config = {**model.config, "outputs": "clip norms"}

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        self.body(frames)
        pairs = [_affine(norm, *norm.moments) for norm in self.norms]
        return torch.cat([t.reshape(-1) for pair in pairs for t in pair])[None]


@dataclasses.dataclass(frozen=True, eq=False)
class ClipInputs:
    """A clip's network as its one-style network's :class:`ClipNetwork` and the clip's inputs to it:
    ``shared(image, norms)`` is what the network with the clip's statistics fixed computes. Set by
    :func:`fixed_network` as the network's ``clip_inputs``."""

    shared: ClipNetwork
    norms: torch.Tensor

    def __deepcopy__(self, memo):  # immutable; a copied network shares its clip's inputs
        return self

    def arrays(self) -> tuple:
        """The graph's inputs after the image, as arrays: the clip's norms."""
        return (self.norms.numpy(),)


_CLIP_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _versions(model: torch.nn.Module) -> tuple[int, ...]:
    """Counts of in-place changes to the model's weights."""
    return tuple(p._version for p in model.parameters())


def fixed_network(model: TransformerNet, stream: torch.nn.Module) -> TransformerNet:
    """A copy of the one-style ``model``, on the CPU in fp32, whose instance norms are :class:`FixedNorm` of
    the statistics that ``stream`` (a stream network of ``model`` or of its inference form, mode "clip")
    recorded, norm by norm by name: a plain network. Its ``clip_inputs`` (:class:`ClipInputs`) are what the
    exported runtimes run instead: ``model``'s :class:`ClipNetwork`, one graph for every clip, with these
    statistics as its input. A painting's network of a one-pass model loses its model's shared graph, whose
    norms are the painting's own."""
    net, fixed = _with_norms(model, lambda name, norm: FixedNorm(stream.get_submodule(name)))
    shared, versions = _CLIP_GRAPHS.get(model, (None, None))
    if shared is None or versions != _versions(model):  # made anew for a model changed in place
        shared = ClipNetwork(model)
        _CLIP_GRAPHS[model] = shared, _versions(model)
    norms = torch.cat([t.reshape(-1) for m in fixed for t in (m.scale, m.shift)])[None]
    net.clip_inputs = ClipInputs(shared, norms)
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


def flicker(outputs: torch.Tensor, inputs: torch.Tensor, step: tuple[int, int] = (0, 0)) -> float:
    """Flicker of a stylized clip: its :func:`warped_error` over the input clip's ((T, 3, H, W) each,
    in [0, 1]; ``step`` the camera's motion a frame, known for :func:`make_pan_clip`'s clips and
    (0, 0) for a still camera). 1 means frames change only as the input does; higher means the
    network adds change of its own from frame to frame."""
    return warped_error(outputs, step) / max(warped_error(inputs, step), 1e-8)


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
