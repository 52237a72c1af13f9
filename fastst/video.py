"""Stylizing video: clips read and written with PyAV (FFmpeg), animated GIF and WebP with Pillow.

Frames stream through the network in batches; none is kept beyond its batch. The frame rate (each
frame's timestamp), the audio stream and the rotation tag are carried over to the output, which is
written to a temporary file and renamed when complete.
Temporal stability: :mod:`fastst.temporal`.

Longer than most modules: a reader and a writer for each of two libraries (PyAV for clips, Pillow
for animations), the bad clips each refused with its own message, and the test clip.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageSequence
from tqdm.auto import tqdm

from fastst.errors import FaststError
from fastst.io import atomic_path
from fastst.runtime import autocast, process_settings, resolve_device
from fastst.runtimes import check
from fastst.scale import at_scale
from fastst.stylize import (
    DEFAULT_PRECISION,
    Stylizer,
    _finish,
    load_one_style,
    output_targets,
    painting_runtime,
)
from fastst.temporal import (
    DEFAULT_TEMPORAL,
    PAN_STEP,
    TEMPORAL_MODES,
    GridAnchor,
    _cropped,
    _norms,
    _padded,
    stream_network,
)
from fastst.transformer import TransformerNet

VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
ANIMATED_SUFFIXES = {".gif", ".webp"}
# "clip": the statistics come from this many frames spread evenly over the clip.
CLIP_SAMPLE = 4
MIN_SIDE = 16
# Frames go through the network together only while this small: on a CPU a batch of larger frames is
# slower a frame than one frame at a time (its maps no longer fit the caches).
VIDEO_BATCH_PIXELS = 256 * 256


def _av():
    try:
        import av
    except ImportError:
        raise FaststError('video needs PyAV: pip install "fastst[video]"') from None
    return av


def is_video(path: str | os.PathLike) -> bool:
    """A clip by its suffix, or an animated GIF or WebP (more than one frame)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in VIDEO_FORMATS:
        return True
    if suffix in ANIMATED_SUFFIXES and path.is_file():
        try:
            with Image.open(path) as im:
                return getattr(im, "n_frames", 1) > 1
        except (OSError, ValueError):
            return False
    return False


@dataclass
class ClipInfo:
    width: int
    height: int
    rate: Fraction  # frames per second (average)
    frames: int | None  # as declared by the container, if it does
    rotation: int = 0
    audio: bool = False


def _even(n: float) -> int:
    return max(2, int(n // 2) * 2)


def _target_size(width: int, height: int, max_size: int | None) -> tuple[int, int]:
    if not max_size or max(width, height) <= max_size:
        return width, height
    scale = max_size / max(width, height)
    return _even(width * scale), _even(height * scale)


class _Source:
    """Frames of a clip as (H, W, 3) uint8 arrays with their time in seconds, streamed."""

    def __init__(self, path: Path, max_size: int | None):
        self.path, self.max_size = path, max_size
        if not path.is_file():
            raise FaststError(f"no such video: {path}")
        if path.stat().st_size == 0:
            raise FaststError(f"{path} is empty (0 bytes)")
        self.animated = path.suffix.lower() in ANIMATED_SUFFIXES
        self.info = self._probe()
        if min(self.info.width, self.info.height) < MIN_SIDE:
            raise FaststError(
                f"{path}: frames of {self.info.width}x{self.info.height} are too small "
                f"(at least {MIN_SIDE} px a side)"
            )
        self.size = _target_size(self.info.width, self.info.height, max_size)

    def _probe(self) -> ClipInfo:
        if self.animated:
            try:
                with Image.open(self.path) as im:
                    frames = getattr(im, "n_frames", 1)
                    durations = []
                    for frame in ImageSequence.Iterator(im):
                        durations.append(frame.info.get("duration", 100) or 100)
                    width, height = im.size
            except (OSError, ValueError) as e:
                raise FaststError(f"not a readable animation: {self.path} ({e})") from None
            rate = Fraction(1000 * len(durations), max(1, int(sum(durations)))).limit_denominator(1001)
            return ClipInfo(width, height, rate, frames)
        av = _av()
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise FaststError(f"{self.path} has no video stream")
                stream = container.streams.video[0]
                if stream.codec_context is None or stream.codec_context.codec is None:
                    raise FaststError(f"{self.path}: its video codec is not supported")
                rate = stream.average_rate or stream.guessed_rate or Fraction(25)
                width, height = stream.codec_context.width, stream.codec_context.height
                rotation = 0
                for frame in container.decode(stream):
                    rotation = int(round(frame.rotation or 0))
                    width, height = frame.width, frame.height
                    break
                else:
                    raise FaststError(f"{self.path} holds no video frames")
                return ClipInfo(
                    width,
                    height,
                    Fraction(rate),
                    stream.frames or None,
                    rotation,
                    bool(container.streams.audio),
                )
        except av.error.EOFError:
            raise FaststError(f"{self.path} ends before its first video frame (empty or cut short)") from None
        except av.error.FFmpegError as e:
            raise FaststError(f"not a readable video: {self.path} ({_reason(e)})") from None

    def frames(self):
        """Yield (array, seconds) per frame; with ``audio`` set to a callback, audio packets go to it."""
        width, height = self.size
        if self.animated:
            with Image.open(self.path) as im:
                t = 0.0
                for frame in ImageSequence.Iterator(im):
                    rgb = frame.convert("RGB")
                    if rgb.size != (width, height):
                        rgb = rgb.resize((width, height), Image.Resampling.LANCZOS)
                    yield np.asarray(rgb), t
                    t += (frame.info.get("duration", 100) or 100) / 1000
            return
        av = _av()
        count = 0
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                streams = [stream] + ([container.streams.audio[0]] if self.audio_sink else [])
                for packet in container.demux(*streams):
                    if packet.stream.type == "audio":
                        if packet.dts is not None:
                            self.audio_sink(packet)
                        continue
                    for frame in packet.decode():
                        if (frame.width, frame.height) != (width, height) or frame.format.name != "rgb24":
                            frame = frame.reformat(width, height, "rgb24")
                        seconds = float(frame.pts * frame.time_base) if frame.pts is not None else None
                        count += 1
                        yield frame.to_ndarray(), seconds
        except av.error.FFmpegError as e:
            raise FaststError(
                f"{self.path}: the video is damaged after {count} frames ({_reason(e)})"
            ) from None
        if count == 0:
            raise FaststError(f"{self.path} holds no video frames")
        if self.info.frames and count < self.info.frames:
            raise FaststError(f"{self.path} is truncated: {count} of its {self.info.frames} frames decode")

    audio_sink = None


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


class _VideoWriter:
    """H.264 (VP9 for .webm) in 4:2:0, with the source's timestamps, rotation and audio."""

    def __init__(self, path: Path, fmt: str, source: _Source):
        av = _av()
        width, height = source.size
        if width % 2 or height % 2:
            raise FaststError(
                f"{source.path}: frames of {width}x{height} have an odd side, which 4:2:0 video cannot "
                "hold; pass --max-size (sizes are then rounded to even)"
            )
        self.container = av.open(str(path), "w", format=fmt)
        codec = "libvpx-vp9" if fmt == "webm" else "libx264"
        rate = source.info.rate.limit_denominator(100000)
        self.stream = self.container.add_stream(codec, rate=rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.time_base = Fraction(1, 90000) if not source.animated else Fraction(1, 1000)
        self.stream.codec_context.time_base = self.time_base
        self.stream.time_base = self.time_base
        if codec == "libx264":
            self.stream.options = {"crf": "18", "preset": "fast"}
        if source.info.rotation:
            self.stream.set_display_rotation(source.info.rotation)
        self.audio = None
        self.av = av
        self.frame_period = 1 / float(rate)
        self.last = None

    def add_audio(self, source: _Source) -> None:
        with self.av.open(str(source.path)) as container:
            template = container.streams.audio[0]
            if template.codec_context.name not in self.container.supported_codecs:
                warnings.warn(
                    f"{source.path}: {template.codec_context.name} audio cannot go into "
                    f"{self.container.format.name}; the output has no sound",
                    stacklevel=3,
                )
                return
            self.audio = self.container.add_stream_from_template(template)
        source.audio_sink = self._mux_audio

    def _mux_audio(self, packet) -> None:
        packet.stream = self.audio
        self.container.mux(packet)

    def write(self, rgb: np.ndarray, seconds: float | None) -> None:
        if seconds is None:
            seconds = 0.0 if self.last is None else self.last + self.frame_period
        self.last = seconds
        frame = self.av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = int(round(seconds / self.time_base))
        frame.time_base = self.time_base
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.container.mux(self.stream.encode())
        self.container.close()


class _GifWriter:
    """An animated GIF: each frame with its own 256-colour palette, timed in hundredths of seconds."""

    def __init__(self, path: Path, source: _Source):
        av = _av()
        self.av = av
        self.container = av.open(str(path), "w", format="gif")
        width, height = source.size
        self.stream = self.container.add_stream("gif", rate=100)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "pal8"
        self.stream.codec_context.time_base = Fraction(1, 100)
        self.frame_period = 1 / float(source.info.rate)
        self.last = None

    def add_audio(self, source: _Source) -> None:
        pass  # a GIF has no sound

    def write(self, rgb: np.ndarray, seconds: float | None) -> None:
        if seconds is None:
            seconds = 0.0 if self.last is None else self.last + self.frame_period
        self.last = seconds
        quantized = Image.fromarray(rgb).quantize(256, dither=Image.Dither.FLOYDSTEINBERG)
        palette = np.zeros((256, 4), np.uint8)
        colours = np.array(quantized.getpalette()[: 3 * 256], np.uint8).reshape(-1, 3)
        palette[: len(colours), :3], palette[:, 3] = colours, 255
        frame = self.av.VideoFrame.from_ndarray((np.asarray(quantized), palette), format="pal8")
        frame.pts = int(round(seconds * 100))
        frame.time_base = Fraction(1, 100)
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.container.mux(self.stream.encode())
        self.container.close()


def _writer(path: Path, source: _Source):
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return _GifWriter(path, source)
    if suffix in VIDEO_FORMATS:
        return _VideoWriter(path, VIDEO_FORMATS[suffix], source)
    raise FaststError(
        f"cannot write video as {path.suffix or 'a file without a suffix'}: "
        f"use {', '.join(sorted(VIDEO_FORMATS))} or .gif"
    )


@dataclass
class VideoResult:
    frames: int
    seconds: float

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else float("nan")


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


def _to_tensor(arrays: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255)


def _to_array(frame: torch.Tensor) -> np.ndarray:
    return frame.mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def _record_clip_statistics(net, source: _Source, device, precision) -> None:
    total = source.info.frames
    if not total:
        total = sum(1 for _ in source.frames())
    n = min(CLIP_SAMPLE, total)
    picks = {int(i * total / n) for i in range(n)}  # spread evenly over the clip
    sample = [rgb for i, (rgb, _) in enumerate(source.frames()) if i in picks]
    norms = _norms(net)
    for m in norms:
        m.recording = True
    try:
        with autocast(device, precision):
            for i in range(0, len(sample), 4):
                net(_to_tensor(sample[i : i + 4]).to(device))
    finally:
        for m in norms:
            m.recording = False


def _check_runtime(runtime: str, temporal: str) -> None:
    if temporal != "frame" and runtime not in ("auto", "torch"):
        raise FaststError(
            f"--runtime {runtime} stylizes video frame by frame only: add --temporal frame, "
            "or --runtime torch"
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
    docstring. Frames are batched; the output appears only once complete. Frame by frame, ``runtime``
    is :class:`fastst.stylize.Stylizer`'s; the other modes change the torch network's norms, so they
    run it."""
    if not 0.0 <= strength <= 1.0:
        raise FaststError(f"strength must be between 0 and 1, not {strength}")
    if temporal not in TEMPORAL_MODES:
        raise FaststError(f"unknown temporal mode {temporal!r}: choose from {', '.join(TEMPORAL_MODES)}")
    device = next(model.parameters()).device
    src = _Source(Path(source), max_size)
    _check_runtime(runtime, temporal)
    # per-frame statistics are the network's own instance norms, which compile and export; the others not
    per_frame = temporal == "frame"
    stylizer = Stylizer(
        model, precision, compile and per_frame, style_scale, runtime if per_frame else "torch"
    )
    precision, memory_format = stylizer.precision, stylizer.memory_format
    net = None if per_frame else stream_network(stylizer.network, temporal)
    start, count = time.perf_counter(), 0  # the time includes the clip statistics' pass
    if temporal == "clip":
        _record_clip_statistics(net, src, device, precision)
    output = Path(output)
    with atomic_path(output, suffix=".tmp" + output.suffix) as tmp:
        writer = _writer(tmp, src)
        try:
            if src.info.audio:
                writer.add_audio(src)
            bar = tqdm(
                total=src.info.frames, desc=f"stylize {src.path.name}", unit="frame", disable=not progress
            )
            grid = GridAnchor() if anchor else None
            h, w = src.size[1], src.size[0]
            for batch in _batches(src.frames(), src.size):
                frames = _to_tensor([rgb for rgb, _ in batch])
                offsets = grid.offsets(frames) if grid else None
                inputs = _padded(frames, offsets) if grid else frames
                if per_frame:
                    out = stylizer.batch(inputs)
                else:
                    with autocast(device, precision):
                        run = lambda x: (
                            net(x.to(device, memory_format=memory_format)).float().clamp(0, 1).cpu()
                        )
                        out = at_scale(run, inputs, stylizer.scale_for(*inputs.shape[-2:]))
                if grid:
                    out = _cropped(out, offsets, h, w)
                for (_, seconds), image, styled in zip(batch, frames, out):
                    writer.write(_to_array(_finish(styled, image, strength, keep_color)), seconds)
                count += len(batch)
                bar.update(len(batch))
            bar.close()
        finally:
            src.audio_sink = None
            writer.close()
    return VideoResult(count, time.perf_counter() - start)


def video_inputs(spec: str) -> list[Path]:
    """The clips named by ``spec``: the file itself, or the clips in a folder."""
    path = Path(spec)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and is_video(p))
    return [path] if path.is_file() and is_video(path) else []


def stylize_video_paths(
    model_path: str,
    input_spec: str,
    output: str,
    max_size: int | None = None,
    strength: float = 1.0,
    keep_color: bool = False,
    device: str = "auto",
    precision: str = DEFAULT_PRECISION,
    overwrite: bool = False,
    progress: bool = True,
    compile: bool = False,
    style: str | None = None,
    temporal: str = DEFAULT_TEMPORAL,
    anchor: bool = True,
    painting: str | None = None,
    style_scale: float | str = 1.0,
    runtime: str = "auto",
) -> tuple[int, list[str], int]:
    """Stylize a clip into a file, or the clips of a folder into a folder (same names); returns
    (written, failures, skipped) as :func:`fastst.stylize.stylize_paths` does."""
    dev = resolve_device(device)
    _check_runtime(check(runtime, dev, compile and temporal == "frame"), temporal)  # once, not per clip
    clips = video_inputs(input_spec)
    if not clips:
        raise FaststError(f"no video clips in {input_spec}")
    single = Path(input_spec).is_file()
    targets = output_targets(clips, output, single)
    model = load_one_style(model_path, dev, style, painting)
    runtime = painting_runtime(runtime, painting)
    written, failures, skipped = 0, [], 0
    with process_settings(dev):
        for clip, target in zip(clips, targets):
            if target.exists() and not overwrite:
                if single:
                    raise FaststError(f"{target} exists (pass --overwrite to replace it)")
                skipped += 1
                continue
            try:
                stylize_video(
                    model,
                    clip,
                    target,
                    max_size,
                    strength,
                    keep_color,
                    temporal,
                    anchor,
                    precision,
                    compile,
                    progress,
                    style_scale,
                    runtime,
                )
                written += 1
            except FaststError as e:
                if single:
                    raise
                failures.append(str(e))
                warnings.warn(str(e), stacklevel=2)
    return written, failures, skipped


def make_pan_clip(
    photo: str | os.PathLike,
    output: str | os.PathLike,
    frames: int = 48,
    size: tuple[int, int] = (320, 240),
    fps: int = 24,
    audio: bool = True,
    noise: float = 2.0,
    step: tuple[int, int] = PAN_STEP,
    seed: int = 0,
) -> Path:
    """A test clip: a camera panning across ``photo`` by ``step`` = (dx, dy) whole pixels a frame
    (``size`` = width, height), with sensor-like noise of ``noise`` grey levels and, if ``audio``, a
    440 Hz tone. Written as H.264 + AAC (or as ``output``'s suffix says)."""
    av = _av()
    width, height = size
    dx, dy = step
    im = Image.open(photo).convert("RGB")
    need_w, need_h = width + dx * (frames - 1), height + dy * (frames - 1)
    scale = max(need_w / im.width, need_h / im.height)
    im = im.resize(
        (max(need_w, round(im.width * scale)), max(need_h, round(im.height * scale))),
        Image.Resampling.LANCZOS,
    )
    rng = np.random.default_rng(seed)
    pixels = np.asarray(im).astype(np.float32)
    output = Path(output)
    with atomic_path(output, suffix=".tmp" + output.suffix) as tmp:
        with av.open(str(tmp), "w", format=VIDEO_FORMATS.get(output.suffix.lower(), "mp4")) as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"crf": "12"}
            tone = None
            if audio:
                tone = container.add_stream("aac", rate=44100)
                tone.layout = "mono"
            for i in range(frames):
                window = pixels[dy * i : dy * i + height, dx * i : dx * i + width]
                rgb = window + rng.normal(0, noise, window.shape)
                frame = av.VideoFrame.from_ndarray(np.clip(rgb, 0, 255).astype(np.uint8), format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
            if tone is not None:
                samples = int(44100 * frames / fps)
                wave = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 44100)).astype(np.float32)
                for start in range(0, samples, 1024):
                    chunk = av.AudioFrame.from_ndarray(
                        wave[None, start : start + 1024], format="fltp", layout="mono"
                    )
                    chunk.sample_rate, chunk.pts = 44100, start
                    container.mux(tone.encode(chunk))
                container.mux(tone.encode())
    return output


def read_frames(path: str | os.PathLike, max_size: int | None = None) -> torch.Tensor:
    """All frames of a short clip as a (T, 3, H, W) tensor in [0, 1] (for measuring; not streamed)."""
    src = _Source(Path(path), max_size)
    return _to_tensor([rgb for rgb, _ in src.frames()])
