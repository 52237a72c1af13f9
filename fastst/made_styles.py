"""Styles made from the training paintings and photos by plain image operations, so that the one-pass model
also learns kinds of picture its paintings lack: flat colour with or without outlines, mosaics of square
tiles, collages of several paintings, and shapes (blocks, scattered figures, bands) in a picture's palette.
Each is a style of its own, with its own statistics and targets."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from fastst.images import open_image, resize_longer_side
from fastst.io import pil_to_tensor

KINDS = ("flat", "mosaic", "collage", "shapes")
DEFAULT_KINDS = KINDS[:3]  # what runs made before the shapes used, in turn
SIZE = 256  # each made style's longer side


def _quantized(image: Image.Image, draw: random.Random) -> Image.Image:
    """The picture in 3 to 8 of its colours (median cut, a palette image), one time in two more saturated
    first."""
    if draw.random() < 0.5:
        image = ImageEnhance.Color(image).enhance(draw.uniform(1.2, 2.0))
    return image.quantize(colors=draw.randint(3, 8), method=Image.Quantize.MEDIANCUT)


def flat_colours(image: Image.Image, draw: random.Random) -> Image.Image:
    """The picture in 3 to 8 flat colours (median cut, then each pixel the commonest colour around it),
    one time in two more saturated first, one time in two with dark outlines where the colours meet."""
    flat = _quantized(image, draw)
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


def _palette(image: Image.Image, draw: random.Random) -> list[tuple[int, int, int]]:
    """The colours of :func:`_quantized`."""
    flat = _quantized(image, draw)
    rgb = flat.getpalette()[: 3 * len(flat.getcolors())]
    return [tuple(rgb[k : k + 3]) for k in range(0, len(rgb), 3)]


def _blocks(pen: ImageDraw.ImageDraw, box, depth: int, colours, ink, line: int, draw: random.Random):
    """The box cut in two across its longer side, again and again down to ``depth``, each leaf one colour."""
    left, top, right, bottom = box
    long_side = max(right - left, bottom - top)
    if depth == 0 or long_side < 4 * line + 8 or (depth < 3 and draw.random() < 0.25):
        pen.rectangle(box, fill=draw.choice(colours), outline=ink, width=line)
        return
    cut = draw.uniform(0.2, 0.8)
    if right - left >= bottom - top:
        middle = round(left + cut * (right - left))
        halves = ((left, top, middle, bottom), (middle, top, right, bottom))
    else:
        middle = round(top + cut * (bottom - top))
        halves = ((left, top, right, middle), (left, middle, right, bottom))
    for half in halves:
        _blocks(pen, half, depth - 1, colours, ink, line, draw)


def shapes(image: Image.Image, draw: random.Random) -> Image.Image:
    """A picture of the same size in 3 to 8 of the picture's colours, in turn at random: blocks (the
    canvas cut into rectangles), scattered figures (rectangles, ellipses, triangles) on a ground, or bands
    across it at any angle; one time in two with dark outlines."""
    colours = _palette(image, draw)
    width, height = image.size
    ink = tuple(draw.randint(0, 60) for _ in range(3)) if draw.random() < 0.5 else None
    line = draw.randint(1, max(1, min(width, height) // 40)) if ink else 0
    out = Image.new("RGB", image.size, draw.choice(colours))
    pen = ImageDraw.Draw(out)
    layout = draw.choice(("blocks", "figures", "bands"))
    if layout == "blocks":
        _blocks(pen, (0, 0, width - 1, height - 1), draw.randint(2, 7), colours, ink, line, draw)
    elif layout == "figures":
        for _ in range(draw.randint(4, 40)):
            w, h = (round(side * draw.uniform(0.05, 0.5)) for side in image.size)
            x, y = draw.randint(-w // 2, width - w // 2), draw.randint(-h // 2, height - h // 2)
            figure, fill = draw.choice(("rectangle", "ellipse", "triangle")), draw.choice(colours)
            if figure == "triangle":
                points = [(x + draw.randint(0, w), y + draw.randint(0, h)) for _ in range(3)]
                pen.polygon(points, fill=fill, outline=ink, width=line)
            else:
                getattr(pen, figure)((x, y, x + w, y + h), fill=fill, outline=ink, width=line)
    else:
        band = round(max(image.size) * draw.uniform(0.03, 0.2))
        bands = Image.new("RGB", (2 * max(image.size),) * 2)
        stripes = ImageDraw.Draw(bands)
        for k in range(0, bands.width, band):
            stripes.rectangle((k, 0, k + band, bands.height), fill=draw.choice(colours))
            if ink:
                stripes.line([(k, 0), (k, bands.height)], fill=ink, width=line)
        turned = bands.rotate(draw.uniform(0, 180), resample=Image.NEAREST, center=(bands.width / 2,) * 2)
        left, top = (bands.width - width) // 2, (bands.height - height) // 2
        out = turned.crop((left, top, left + width, top + height))
    return out


def check_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """``kinds`` where each is one of KINDS (and there is one), else a ValueError naming them."""
    if not kinds or not set(kinds) <= set(KINDS):
        raise ValueError(f"made style kinds are {', '.join(KINDS)}, not {', '.join(kinds) or 'none'}")
    return kinds


def made_styles(
    paintings: list[Path],
    photos: list[Path],
    count: int,
    seed: int = 0,
    kinds: tuple[str, ...] = DEFAULT_KINDS,
) -> Iterator[tuple[str, torch.Tensor]]:
    """``count`` made styles, (name, (3, H, W) image in [0, 1]), ``kinds`` in turn: flat colour, mosaics and
    shapes from a painting or a photo (one time in two each), collages of two to four paintings. The same
    arguments give the same styles."""
    check_kinds(kinds)
    draw = random.Random(seed)
    makers = {"flat": flat_colours, "mosaic": mosaic, "shapes": shapes}

    def picture(paths: list[Path]) -> Image.Image:
        return resize_longer_side(open_image(draw.choice(paths)), SIZE)

    for i in range(count):
        kind = kinds[i % len(kinds)]
        if kind == "collage":
            image = collage([picture(paintings) for _ in range(draw.randint(2, 4))], draw)
        else:
            source = picture(paintings if draw.random() < 0.5 or not photos else photos)
            image = makers[kind](source, draw)
        yield f"made{i}-{kind}", pil_to_tensor(image)
