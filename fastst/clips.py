"""Clips in and out: video read and written with PyAV (FFmpeg), animated GIF and WebP with Pillow, each
bad clip refused with its own message; and the test clip, a camera panning across a photo.

A reader and a writer for each of the two libraries: a clip's frames stream as (H, W, 3) uint8 arrays with
their time in seconds (``ClipReader``), and go out with the source's timestamps, rotation and audio
(``clip_writer``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from fastst.errors import FaststError
from fastst.images import ANIMATED_SUFFIXES, VIDEO_FORMATS, atomic_path

MIN_SIDE = 16
PAN_STEP = (2, 1)  # the test clip's pixels a frame, right and down: whole pixels, so frames align exactly


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


class ClipReader:
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

    def sample(self, count: int) -> list[np.ndarray]:
        """``count`` frames (RGB arrays) spread evenly over the clip (all of them if it has fewer): the
        frames whose statistics stand for the clip's."""
        total = self.info.frames or sum(1 for _ in self.frames())
        n = min(count, total)
        picks = {int(i * total / n) for i in range(n)}
        return [rgb for i, (rgb, _) in enumerate(self.frames()) if i in picks]


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


class _VideoWriter:
    """H.264 (VP9 for .webm) in 4:2:0, with the source's timestamps, rotation and audio."""

    def __init__(self, path: Path, fmt: str, source: ClipReader):
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

    def add_audio(self, source: ClipReader) -> None:
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

    def __init__(self, path: Path, source: ClipReader):
        av = _av()
        self.av = av
        self.container = av.open(str(path), "w", format="gif")
        width, height = source.size
        self.stream = self.container.add_stream("gif", rate=100)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "pal8"
        self.stream.codec_context.time_base = Fraction(1, 100)
        self.frame_period = 1 / float(source.info.rate)
        self.last = None

    def add_audio(self, source: ClipReader) -> None:
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


def clip_writer(path: Path, source: ClipReader):
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return _GifWriter(path, source)
    if suffix in VIDEO_FORMATS:
        return _VideoWriter(path, VIDEO_FORMATS[suffix], source)
    raise FaststError(
        f"cannot write video as {path.suffix or 'a file without a suffix'}: "
        f"use {', '.join(sorted(VIDEO_FORMATS))} or .gif"
    )


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
