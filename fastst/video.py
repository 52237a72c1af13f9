"""Stylizing video: frames stream from a clip (:mod:`fastst.clips`) through the network in batches and
back out; none is kept beyond its batch. The frame rate (each frame's timestamp), the audio stream and
the rotation tag are carried over to the output, which is written to a temporary file and renamed when
complete. Temporal stability: :mod:`fastst.temporal`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fastst.anchor import GridAnchor, cropped, padded
from fastst.clips import ClipReader, clip_writer
from fastst.errors import FaststError
from fastst.io import atomic_path
from fastst.runtime import autocast
from fastst.runtimes import clip_statistics_file
from fastst.scale import at_scale
from fastst.stylize import DEFAULT_PRECISION, Stylizer, _finish
from fastst.temporal import DEFAULT_TEMPORAL, TEMPORAL_MODES, _norms, fixed_network, stream_network
from fastst.transformer import TransformerNet

# "clip": the statistics come from this many frames spread evenly over the clip.
CLIP_SAMPLE = 4
# Frames go through the network together only while this small: on a CPU a batch of larger frames is
# slower a frame than one frame at a time (its maps no longer fit the caches).
VIDEO_BATCH_PIXELS = 256 * 256


@dataclass
class VideoResult:
    frames: int
    seconds: float
    # with the clip's statistics fixed on a CPU, what ran the frames: its runtime choice is the one the quick
    # path takes up (:meth:`fastst.stylize.Stylizer.remember_quick`); None otherwise
    stylizer: Stylizer | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else float("nan")


def frames_to_tensor(arrays: list[np.ndarray]) -> torch.Tensor:
    """(H, W, 3) uint8 frames as an (N, 3, H, W) batch in [0, 1]."""
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255)


def frame_to_array(frame: torch.Tensor) -> np.ndarray:
    """A (3, H, W) frame in [0, 1] as an (H, W, 3) uint8 array."""
    return frame.mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def read_frames(path: str | os.PathLike, max_size: int | None = None) -> torch.Tensor:
    """All frames of a short clip as a (T, 3, H, W) tensor in [0, 1] (for measuring; not streamed)."""
    src = ClipReader(Path(path), max_size)
    return frames_to_tensor([rgb for rgb, _ in src.frames()])


def _batches(frames, size: tuple[int, int]):
    per_batch = max(1, VIDEO_BATCH_PIXELS // (size[0] * size[1]))
    batch = []
    for item in frames:
        batch.append(item)
        if len(batch) == per_batch:
            yield batch
            batch = []
    if batch:
        yield batch


def _record_clip_statistics(net, source: ClipReader, device, precision) -> None:
    sample = source.sample(CLIP_SAMPLE)
    norms = _norms(net)
    for m in norms:
        m.recording = True
    try:
        with autocast(device, precision):
            for i in range(0, len(sample), 4):
                net(frames_to_tensor(sample[i : i + 4]).to(device))
    finally:
        for m in norms:
            m.recording = False


def clip_note(model: TransformerNet) -> dict | None:
    """What the quick path needs besides a clip's plain network to stylize a clip with ``model`` as
    :func:`stylize_video` does with its defaults: the export of the pass that records the clip's statistics
    and how many frames it reads (:meth:`fastst.stylize.Stylizer.remember_quick`); None where that export
    cannot be made."""
    path = clip_statistics_file(model)
    return {"clip_statistics": str(path), "clip_sample": CLIP_SAMPLE} if path is not None else None


def check_video_runtime(runtime: str, temporal: str) -> None:
    if temporal == "ema" and runtime not in ("auto", "torch"):
        raise FaststError(
            f"--runtime {runtime} stylizes video frame by frame or with the clip's statistics only: add "
            "--temporal frame or clip, or --runtime torch"
        )


@torch.inference_mode()
def stylize_video(
    model: TransformerNet,
    source: str | os.PathLike,
    output: str | os.PathLike,
    max_size: int | None = None,
    strength: float = 1.0,
    keep_color: bool = False,
    temporal: str = DEFAULT_TEMPORAL,
    anchor: bool = True,
    precision: str = DEFAULT_PRECISION,
    compile: bool = False,
    progress: bool = True,
    style_scale: float | str = 1.0,
    runtime: str = "auto",
) -> VideoResult:
    """Stylize the clip ``source`` into ``output`` (.mp4, .mov, .mkv, .webm or .gif) with a one-style
    ``model`` on its device. ``temporal`` picks where the instance norms' statistics come from, and
    ``anchor`` keeps the network's grid fixed to the scene (:class:`GridAnchor`); see the module's
    docstring. Frames are batched; the output appears only once complete. Frame by frame, and on a CPU
    with the clip's statistics (fixed once recorded: :func:`fastst.temporal.fixed_network`), ``runtime``
    is :class:`fastst.stylize.Stylizer`'s; "ema" changes the torch network's norms frame by frame, so it
    runs that."""
    if not 0.0 <= strength <= 1.0:
        raise FaststError(f"strength must be between 0 and 1, not {strength}")
    if temporal not in TEMPORAL_MODES:
        raise FaststError(f"unknown temporal mode {temporal!r}: choose from {', '.join(TEMPORAL_MODES)}")
    device = next(model.parameters()).device
    src = ClipReader(Path(source), max_size)
    check_video_runtime(runtime, temporal)
    # per-frame statistics are the network's own instance norms, which compile and export; the others not
    per_frame = temporal == "frame"
    stylizer = Stylizer(
        model, precision, compile and per_frame, style_scale, runtime if per_frame else "torch"
    )
    precision, memory_format = stylizer.precision, stylizer.memory_format
    net = None if per_frame else stream_network(stylizer.network, temporal)
    start, count, fixed = time.perf_counter(), 0, None  # the time includes the clip statistics' pass
    if temporal == "clip":
        _record_clip_statistics(net, src, device, precision)
        if device.type == "cpu" and runtime != "torch" and not compile:
            # the statistics fixed, a plain network: any runtime runs it, "auto" the fastest for the frames
            with torch.inference_mode(False):
                fixed = fixed_network(model, net)
            stylizer = Stylizer(fixed, precision, False, style_scale, runtime)
            stylizer.images = src.info.frames or None
            per_frame = True
    output = Path(output)
    with atomic_path(output, suffix=".tmp" + output.suffix) as tmp:
        writer = clip_writer(tmp, src)
        try:
            if src.info.audio:
                writer.add_audio(src)
            bar = tqdm(
                total=src.info.frames, desc=f"stylize {src.path.name}", unit="frame", disable=not progress
            )
            grid = GridAnchor() if anchor else None
            h, w = src.size[1], src.size[0]
            for batch in _batches(src.frames(), src.size):
                frames = frames_to_tensor([rgb for rgb, _ in batch])
                offsets = grid.offsets(frames) if grid else None
                inputs = torch.from_numpy(padded(frames.numpy(), offsets)) if grid else frames
                if per_frame:
                    out = stylizer.batch(inputs)
                else:
                    with autocast(device, precision):
                        run = lambda x: (
                            net(x.to(device, memory_format=memory_format)).float().clamp(0, 1).cpu()
                        )
                        out = at_scale(run, inputs, stylizer.scale_for(*inputs.shape[-2:]))
                if grid:
                    out = cropped(out, offsets, h, w)
                for (_, seconds), image, styled in zip(batch, frames, out):
                    writer.write(frame_to_array(_finish(styled, image, strength, keep_color)), seconds)
                count += len(batch)
                bar.update(len(batch))
            bar.close()
        finally:
            src.audio_sink = None
            writer.close()
    return VideoResult(count, time.perf_counter() - start, stylizer if fixed is not None else None)
