"""Stylizing files, folders and globs, photos and clips: which inputs a spec names, where each output goes,
photos of one size batched together, a bad input reported and skipped while the others are written."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from fastst import runtimes
from fastst.clips import is_video, make_pan_clip
from fastst.config import DEVICES, PRECISIONS, option
from fastst.errors import FaststError
from fastst.host import one_pass_file, pretrained_path
from fastst.images import fail_or_raise, image_inputs, output_targets
from fastst.io import load_image, save_image
from fastst.palette import checked_fraction
from fastst.quick import stylize_quickly
from fastst.runtime import process_settings, release_freed_memory, resolve_device
from fastst.runtimes import DEFAULT_PRECISION, RUNTIMES, check
from fastst.stylize import Stylizer, _finish, load_one_style, pretrained_styles, resolve_shipped_style
from fastst.temporal import DEFAULT_TEMPORAL
from fastst.video import CLIP_SAMPLE, check_video_runtime, clip_note, stylize_video

# Photos of one size are stylized together up to this many pixels a batch.
BATCH_PIXELS = 2048 * 2048
# The made-up photos :func:`prepare` stylizes (width, height): one in each size bucket most photos fall in
# (fastst.quick.size_bucket), the largest being where every larger photo falls, and one in the bucket of
# 512 px whose quarter-resolution pixels are not in fours (fastst.quick.in_fours), which is timed apart
# (at 1024 px that kind is timed when first met: timing it here would add more to every set-up).
PREPARED_SIZES = ((1024, 768), (512, 384), (508, 380), (256, 192))
# And the clips: 360p in the bucket of 512 px, 720p in that of 1024 px, where 1080p falls too.
PREPARED_CLIPS = ((640, 360), (1280, 720))


def parse_scale(text: str) -> float | str:
    """A style scale: a number, or auto."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number or auto, not {text!r}") from None


@dataclass
class StylizeOptions:
    """How ``fastst stylize`` stylizes images and clips alike: its options (made with
    :func:`fastst.config.option`, which the command line reads), given to :func:`stylize_paths` and
    :func:`stylize_video_paths`."""

    style: str | None = option(
        None,
        "a shipped style, no training needed (see fastst styles), or a mix of them "
        '"a:0.5,b:0.5"; with --model, a style or mix of that multi-style model',
    )
    painting: str | None = option(
        None,
        "any painting (an image file) as the style, in one pass, no training: through a shipped "
        "one-pass model, anystyle_fast (or the one-pass model given with --model)",
        flag="--style-image",
        metavar="PAINTING",
    )
    style_scale: float | str | None = option(
        None,
        "the painting's strokes this many times larger on the photo (below 1: smaller), by stylizing "
        "the photo at 1/S of its size and upsampling the result guided by the photo; 'auto' keeps the "
        "strokes' size relative to the photo for any photo size (the default with --style-image; else 1)",
        type=parse_scale,
    )
    palette: float | None = option(
        None,
        "with --style-image: how far the picture's colours move towards the painting's, from 0 (the "
        "one-pass network's own) to 1 (the painting's colour mean and covariance, up to a cap on the "
        "stretch); default: the one-pass model's own fraction; anystyle takes none (refused with --model "
        "anystyle)",
        type=float,
        metavar="F",
    )
    max_size: int | None = option(None, "shrink the longer side to at most this")
    strength: float = option(1.0, "blend with the content, 0..1")
    keep_color: bool = option(
        False, "keep the content's colours", flag="--preserve-color", action="store_true"
    )
    device: str = option("auto", "auto: a CUDA GPU, else MPS, else the CPU", choices=DEVICES)
    precision: str = option(
        DEFAULT_PRECISION,
        "auto: bf16 on a CPU that runs it natively (its PSNR against fp32: fastst bench); "
        "on a GPU fp32, and bf16 with --compile",
        choices=PRECISIONS,
    )
    compile: bool = option(False, "torch.compile the network (for many images)", action="store_true")
    runtime: str = option(
        "auto",
        "what runs the network: auto times the runtimes installed once per machine, network layout and "
        'size on a CPU and keeps the fastest (torch on a GPU); onnxruntime needs "fastst[export]", '
        'openvino "fastst[openvino]"',
        choices=("auto", *RUNTIMES),
    )
    overwrite: bool = option(False, "replace existing output files", action="store_true")

    def __post_init__(self):
        if self.palette is not None:
            if not self.painting:
                raise FaststError("--palette sets a painting's colours: it goes with --style-image")
            checked_fraction(self.palette, "--palette")
        if self.style_scale is None:  # a painting's strokes keep their size relative to the photo
            self.style_scale = "auto" if self.painting else 1.0


def stylize_paths(
    model_path: str | None,
    input_spec: str,
    output: str,
    options: StylizeOptions | None = None,
    progress: bool = True,
) -> tuple[int, list[str], int]:
    """Stylize a file, a folder or a glob into a file or a folder; returns (written, failures, skipped).

    A bad input file is reported and skipped; the others are still written. Outputs that exist are
    kept and counted as skipped unless ``options.overwrite``. ``options.style`` picks a style or mix of
    a multi-style model (see :func:`load_model`); ``options.painting`` makes that painting the style,
    through the one-pass model (``model_path``, or when None the shipped default,
    :func:`fastst.host.one_pass_file`), its network computed once
    for all the inputs.
    """
    o = options or StylizeOptions()
    dev = resolve_device(o.device)
    with process_settings(dev):
        network = load_one_style(model_path, dev, o.style, o.painting, o.palette)
        stylizer = Stylizer(network, o.precision, o.compile, o.style_scale, o.runtime)
        counts = _stylize_paths(
            stylizer, input_spec, output, o.max_size, o.strength, o.keep_color, o.overwrite, progress
        )
        plain = o.precision == DEFAULT_PRECISION  # what the quick path runs
        if o.painting is None and o.style_scale == 1 and plain:
            stylizer.remember_quick(pretrained_path(model_path), o.style)
        # and a painting at its model's own palette fraction only
        elif o.painting and o.palette is None and o.style_scale == "auto" and plain:
            stylizer.remember_quick(one_pass_file(model_path), None, o.painting)
        return counts


def _stylize_paths(
    stylizer: Stylizer, input_spec, output, max_size, strength, keep_color, overwrite, progress
) -> tuple[int, list[str], int]:
    inputs = image_inputs(input_spec)
    stylizer.images = len(inputs)  # the runtime chosen for them counts its opening against them
    single = len(inputs) == 1 and Path(input_spec).is_file() and Path(output).suffix != ""
    targets = output_targets(inputs, output, single)
    failures, written, skipped = [], 0, 0
    pending: dict[tuple, list] = {}  # images of one size wait to be stylized as a batch

    last_shape = [None]

    def new_shape(shape) -> None:  # same-shape work reuses freed memory; other shapes would fragment it
        if shape != last_shape[0]:
            release_freed_memory()
            last_shape[0] = shape

    def flush(shape) -> int:
        group = pending.pop(shape)
        new_shape((len(group), *shape))
        outs = stylizer.batch(torch.stack([image for image, _ in group]))
        done = 0
        for (image, target), out in zip(group, outs):
            try:
                save_image(_finish(out, image, strength, keep_color), target)
                done += 1
            except FaststError as e:
                fail_or_raise(e, False, failures)  # a batch is of several inputs
        return done

    for source, target in tqdm(
        list(zip(inputs, targets)), desc="stylize", unit="img", disable=not progress or single
    ):
        if target.exists() and not overwrite:
            if single:
                raise FaststError(f"{target} exists (pass --overwrite to replace it)")
            skipped += 1
            continue
        try:
            image = load_image(source, max_size)
        except FaststError as e:
            fail_or_raise(e, single, failures)
            continue
        h, w = image.shape[-2:]
        if h * w > BATCH_PIXELS or single:
            new_shape(tuple(image.shape))
            try:
                save_image(stylizer(image, strength, keep_color), target)
                written += 1
            except FaststError as e:
                fail_or_raise(e, single, failures)
            continue
        group = pending.setdefault(tuple(image.shape), [])
        group.append((image, target))
        if len(group) * h * w > BATCH_PIXELS - h * w:  # the next one would not fit
            written += flush(tuple(image.shape))
    for shape in list(pending):
        written += flush(shape)
    return written, failures, skipped


def prepare(styles: list[str] | None = None, one_pass: bool = True, progress: bool = True) -> list[str]:
    """Do ahead what ``fastst stylize`` does the first time it meets a network on a machine: export it and
    time the installed runtimes (:func:`fastst.runtimes.choose`) at the sizes most photos fall in, and note
    the result for the quick path (:mod:`fastst.quick`), so that a later command starts without PyTorch.
    For each shipped style of ``styles`` (default: every one) and, with ``one_pass``, for the one-pass model
    a painting takes on this machine (its painting side exported too); with PyAV, each style's clips too. It
    stylizes made-up images and clips in a temporary folder; returns the names of what it prepared."""
    styles = list(pretrained_styles()) if styles is None else styles
    models = {name: resolve_shipped_style(name) for name in styles}  # an unknown name: one-line error
    if one_pass:
        models[f"any painting ({one_pass_file(None).stem})"] = None
    with tempfile.TemporaryDirectory(prefix="fastst-prepare-") as tmp:
        photos, out = Path(tmp) / "photos", Path(tmp) / "out"
        photos.mkdir()
        for seed, (w, h) in enumerate(PREPARED_SIZES):
            _made_up_image(photos / f"{w}.png", w, h, seed)
        painting = _made_up_image(Path(tmp) / "painting.png", 256, 256, len(PREPARED_SIZES))
        clips = Path(tmp) / "clips" if importlib.util.find_spec("av") is not None else None
        if clips:
            clips.mkdir()
            scene = _made_up_image(Path(tmp) / "scene.png", 1400, 800, len(PREPARED_SIZES) + 2)
            for size in PREPARED_CLIPS:
                make_pan_clip(scene, clips / f"{size[0]}.mp4", frames=CLIP_SAMPLE, size=size, audio=False)
        announce, runtimes.ANNOUNCE_TIMING = runtimes.ANNOUNCE_TIMING, False  # the timing is the point here
        try:
            for name, model in tqdm(models.items(), desc="prepare", unit="network", disable=not progress):
                if model:
                    options = StylizeOptions(style=name, overwrite=True)
                else:
                    options = StylizeOptions(painting=str(painting), overwrite=True)
                stylize_paths(model, str(photos), str(out), options, progress=False)
                if model and clips:
                    stylize_video_paths(model, str(clips), str(out), options, progress=False)
        finally:
            runtimes.ANNOUNCE_TIMING = announce
        if one_pass:  # a new painting once on the quick path, which keeps its painting side's graphs compiled
            again = _made_up_image(Path(tmp) / "painting2.png", 256, 256, len(PREPARED_SIZES) + 1)
            command = ["stylize", "--style-image", str(again), "--input", str(photos), "--output", str(out)]
            with contextlib.redirect_stdout(io.StringIO()):
                stylize_quickly([*command, "--overwrite"])
    return list(models)


def _made_up_image(path: Path, width: int, height: int, seed: int) -> Path:
    """A smooth random colour image (coarse noise enlarged), written to ``path``."""
    coarse = np.random.default_rng(seed).integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
    Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC).save(path)
    return path


def video_inputs(spec: str) -> list[Path]:
    """The clips named by ``spec``: the file itself, or the clips in a folder."""
    path = Path(spec)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.is_file() and is_video(p))
    return [path] if path.is_file() and is_video(path) else []


def stylize_video_paths(
    model_path: str | None,
    input_spec: str,
    output: str,
    options: StylizeOptions | None = None,
    temporal: str = DEFAULT_TEMPORAL,
    anchor: bool = True,
    progress: bool = True,
) -> tuple[int, list[str], int]:
    """Stylize a clip into a file, or the clips of a folder into a folder (same names); returns
    (written, failures, skipped) as :func:`stylize_paths` does. ``temporal`` and ``anchor`` are
    :func:`fastst.video.stylize_video`'s."""
    o = options or StylizeOptions()
    dev = resolve_device(o.device)
    check_video_runtime(check(o.runtime, dev, o.compile and temporal == "frame"), temporal)  # once
    clips = video_inputs(input_spec)
    if not clips:
        raise FaststError(f"no video clips in {input_spec}")
    single = Path(input_spec).is_file()
    targets = output_targets(clips, output, single)
    model = load_one_style(model_path, dev, o.style, o.painting, o.palette)
    written, failures, skipped = 0, [], 0
    with process_settings(dev):
        for clip, target in zip(clips, targets):
            if target.exists() and not o.overwrite:
                if single:
                    raise FaststError(f"{target} exists (pass --overwrite to replace it)")
                skipped += 1
                continue
            try:
                result = stylize_video(
                    model,
                    clip,
                    target,
                    max_size=o.max_size,
                    strength=o.strength,
                    keep_color=o.keep_color,
                    temporal=temporal,
                    anchor=anchor,
                    precision=o.precision,
                    compile=o.compile,
                    progress=progress,
                    style_scale=o.style_scale,
                    runtime=o.runtime,
                )
                written += 1
            except FaststError as e:
                fail_or_raise(e, single, failures)
                continue
            # what the quick path runs: a style's clip with the defaults of its statistics and grid
            plain = o.precision == DEFAULT_PRECISION and o.style_scale == 1 and o.painting is None
            if result.stylizer is not None and plain and temporal == "clip" and anchor:
                note = clip_note(model)
                if note is not None:
                    result.stylizer.remember_quick(pretrained_path(model_path), o.style, clip=note)
    return written, failures, skipped
