"""Stylizing files, folders and globs, photos and clips: which inputs a spec names, where each output goes,
photos of one size batched together, a bad input reported and skipped while the others are written."""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from fastst.clips import is_video
from fastst.errors import FaststError
from fastst.host import pretrained_path
from fastst.images import fail_or_raise, image_inputs, output_targets
from fastst.io import load_image, save_image
from fastst.runtime import process_settings, release_freed_memory, resolve_device
from fastst.runtimes import DEFAULT_PRECISION, check
from fastst.stylize import Stylizer, _finish, load_one_style, painting_runtime
from fastst.temporal import DEFAULT_TEMPORAL
from fastst.video import check_video_runtime, stylize_video

# Photos of one size are stylized together up to this many pixels a batch.
BATCH_PIXELS = 2048 * 2048


def stylize_paths(
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
    painting: str | None = None,
    style_scale: float | str = 1.0,
    runtime: str = "auto",
) -> tuple[int, list[str], int]:
    """Stylize a file, a folder or a glob into a file or a folder; returns (written, failures, skipped).

    A bad input file is reported and skipped; the others are still written. Outputs that exist are
    kept and counted as skipped unless ``overwrite``. ``style`` picks a style or mix of a multi-style
    model (see :func:`load_model`); ``painting`` makes that painting the style, through the one-pass
    model (``model_path``, or the shipped one when None), its network computed once for all the inputs.
    ``style_scale`` and ``runtime`` are :class:`Stylizer`'s.
    """
    dev = resolve_device(device)
    with process_settings(dev):
        network = load_one_style(model_path, dev, style, painting)
        stylizer = Stylizer(network, precision, compile, style_scale, painting_runtime(runtime, painting))
        counts = _stylize_paths(
            stylizer, input_spec, output, max_size, strength, keep_color, overwrite, progress
        )
        if painting is None and style_scale == 1 and precision == DEFAULT_PRECISION:
            stylizer.remember_quick(pretrained_path(model_path), style)
        return counts


def _stylize_paths(
    stylizer: Stylizer, input_spec, output, max_size, strength, keep_color, overwrite, progress
) -> tuple[int, list[str], int]:
    inputs = image_inputs(input_spec)
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
    (written, failures, skipped) as :func:`stylize_paths` does."""
    dev = resolve_device(device)
    check_video_runtime(check(runtime, dev, compile and temporal == "frame"), temporal)  # once, not per clip
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
                    max_size=max_size,
                    strength=strength,
                    keep_color=keep_color,
                    temporal=temporal,
                    anchor=anchor,
                    precision=precision,
                    compile=compile,
                    progress=progress,
                    style_scale=style_scale,
                    runtime=runtime,
                )
                written += 1
            except FaststError as e:
                fail_or_raise(e, single, failures)
    return written, failures, skipped
