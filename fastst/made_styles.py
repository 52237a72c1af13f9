"""Styles made from the training paintings and photos by plain image operations, so that the one-pass model
also learns kinds of picture its paintings lack: flat colour with or without outlines, mosaics of square
tiles, and collages of several paintings. Each is a style of its own, with its own statistics and targets."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from fastst.images import open_image, resize_longer_side
from fastst.io import pil_to_tensor

KINDS = ("flat", "mosaic", "collage")
SIZE = 256  # each made style's longer side


def flat_colours(image: Image.Image, draw: random.Random) -> Image.Image:
    """The picture in 3 to 8 flat colours (median cut, then each pixel the commonest colour around it),
    one time in two more saturated first, one time in two with dark outlines where the colours meet."""
    if draw.random() < 0.5:
        image = ImageEnhance.Color(image).enhance(draw.uniform(1.2, 2.0))
    flat = image.quantize(colors=draw.randint(3, 8), method=Image.Quantize.MEDIANCUT)
    # on the palette's indices: on RGB the filter takes each channel's commonest value, new colours
    flat = flat.filter(ImageFilter.ModeFilter(draw.choice((3, 5, 7)))).convert("RGB")
    if draw.random() < 0.5:
        edges = flat.convert("L").filter(ImageFilter.FIND_EDGES).point(lambda v: 255 if v > 0 else 0)
        if draw.random() < 0.5:
            edges = edges.filter(ImageFilter.MaxFilter(3))
        flat.paste(tuple(draw.randint(0, 60) for _ in range(3)), mask=edges)
    return flat


def mosaic(image: Image.Image, draw: random.Random) -> Image.Image:
    """The picture as square tiles of one colour each, 8 to 32 along its longer side, one time in two
    with grout lines between them, dark or light."""
    tiles = draw.randint(8, 32)
    scale = tiles / max(image.size)
    small = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BOX)
    out = small.resize(image.size, Image.NEAREST)
    if draw.random() < 0.5:
        grout = (draw.randint(0, 50),) * 3 if draw.random() < 0.5 else (draw.randint(200, 255),) * 3
        pen, step = ImageDraw.Draw(out), image.width / small.width
        for k in range(1, small.width):
            pen.line([(round(k * step), 0), (round(k * step), image.height)], fill=grout, width=2)
        step = image.height / small.height
        for k in range(1, small.height):
            pen.line([(0, round(k * step)), (image.width, round(k * step))], fill=grout, width=2)
    return out


def collage(images: list[Image.Image], draw: random.Random) -> Image.Image:
    """Two to four pictures side by side or in a two-by-two grid, each a random crop filling its cell."""
    cols, rows = draw.choice(((2, 1), (1, 2), (2, 2)))
    cell = SIZE // max(cols, rows)
    out = Image.new("RGB", (cols * cell, rows * cell))
    for k in range(cols * rows):
        image = images[k % len(images)]
        side = round(min(image.size) * draw.uniform(0.5, 1.0))
        left, top = draw.randint(0, image.width - side), draw.randint(0, image.height - side)
        crop = image.crop((left, top, left + side, top + side)).resize((cell, cell), Image.LANCZOS)
        out.paste(crop, ((k % cols) * cell, (k // cols) * cell))
    return out


def made_styles(
    paintings: list[Path], photos: list[Path], count: int, seed: int = 0
) -> Iterator[tuple[str, torch.Tensor]]:
    """``count`` made styles, (name, (3, H, W) image in [0, 1]), the kinds in turn: flat colour and mosaics
    from a painting or a photo (one time in two each), collages of two to four paintings. The same
    arguments give the same styles."""
    draw = random.Random(seed)

    def picture(paths: list[Path]) -> Image.Image:
        return resize_longer_side(open_image(draw.choice(paths)), SIZE)

    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        if kind == "collage":
            image = collage([picture(paintings) for _ in range(draw.randint(2, 4))], draw)
        else:
            source = picture(paintings if draw.random() < 0.5 or not photos else photos)
            image = (flat_colours if kind == "flat" else mosaic)(source, draw)
        yield f"made{i}-{kind}", pil_to_tensor(image)
