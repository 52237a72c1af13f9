import random

import pytest
import torch
from PIL import Image

from fastst.losses import STYLE_LAYERS
from fastst.made_styles import DEFAULT_KINDS, KINDS, SIZE, flat_colours, made_styles, mosaic, shapes


def _noise(size=(96, 64), seed=0) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    return Image.fromarray((torch.rand(size[1], size[0], 3, generator=g) * 255).byte().numpy())


def _folder(root, count, seed):
    root.mkdir()
    for i in range(count):
        _noise((80 + 8 * i, 60), seed + i).save(root / f"{i}.png")
    return sorted(root.iterdir())


@pytest.mark.parametrize("seed", range(6))
def test_flat_colour_has_at_most_eight_colours_and_an_ink(seed):
    noise = _noise(seed=seed)  # thousands of colours
    assert len(noise.getcolors(1 << 16)) > 1000
    flat = flat_colours(noise, random.Random(seed))
    assert flat.size == noise.size
    assert len(flat.getcolors(1 << 16)) <= 9


@pytest.mark.parametrize("seed", range(6))
def test_a_mosaic_has_no_more_colours_than_tiles_and_a_grout(seed):
    noise = _noise(seed=seed)
    out = mosaic(noise, random.Random(seed))
    assert out.size == noise.size
    tiles = 32 * round(32 * 64 / 96)  # at most 32 tiles along the longer side
    assert len(out.getcolors(1 << 16)) <= tiles + 1


@pytest.mark.parametrize("seed", range(12))
def test_shapes_keep_the_size_and_take_few_colours_from_the_picture(seed):
    noise = _noise(seed=seed)
    out = shapes(noise, random.Random(seed))
    assert out.size == noise.size
    colours = [c for _, c in out.getcolors(1 << 16)]
    assert len(colours) <= 9  # at most 8 of the picture's colours and an ink
    # drawn from the picture: a plain grey picture gives greys (and perhaps a dark ink) only
    grey = shapes(Image.new("RGB", noise.size, (120, 120, 120)), random.Random(seed))
    assert all(max(c) - min(c) <= 60 for _, c in grey.getcolors(1 << 16))


def test_made_styles_take_the_kinds_asked_for_and_refuse_others(tmp_path):
    paintings = _folder(tmp_path / "paintings", 3, 0)
    names = [name for name, _ in made_styles(paintings, [], 4, kinds=("shapes", "flat"))]
    assert names == ["made0-shapes", "made1-flat", "made2-shapes", "made3-flat"]
    with pytest.raises(ValueError, match="spirals"):
        next(made_styles(paintings, [], 1, kinds=("spirals",)))


def test_made_styles_are_the_same_for_the_same_seed_and_take_the_kinds_in_turn(tmp_path):
    paintings = _folder(tmp_path / "paintings", 3, 0)
    photos = _folder(tmp_path / "photos", 2, 10)
    first = list(made_styles(paintings, photos, 6, seed=1))
    again = list(made_styles(paintings, photos, 6, seed=1))
    other = list(made_styles(paintings, photos, 6, seed=2))
    assert [name for name, _ in first] == [f"made{i}-{DEFAULT_KINDS[i % 3]}" for i in range(6)]
    assert set(DEFAULT_KINDS) < set(KINDS)
    for (_, a), (_, b) in zip(first, again):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(a.shape != b.shape or not torch.equal(a, b) for (_, a), (_, b) in zip(first, other))
    for _, image in first:
        assert image.shape[0] == 3 and max(image.shape[1:]) == SIZE
        assert 0 <= image.min() and image.max() <= 1


def test_made_styles_come_after_the_paintings_whose_targets_stay_the_same(tmp_path, imagenet_vgg):
    from fastst.anystyle_train import painting_targets

    paintings = _folder(tmp_path / "paintings", 2, 0)
    photos = _folder(tmp_path / "photos", 2, 10)
    whole = painting_targets(paintings, 32, tmp_path / "cache.pt", "cpu", progress=False)
    more = painting_targets(
        paintings, 32, tmp_path / "cache.pt", "cpu", progress=False, made=3, photos=photos
    )
    other = painting_targets(
        paintings, 32, tmp_path / "other.pt", "cpu", False, made=3, photos=photos, kinds=("shapes",)
    )
    assert more["key"] != whole["key"] and other["key"] not in (whole["key"], more["key"])
    assert other["names"][2:] == [f"made{i}-shapes" for i in range(3)]
    assert more["names"][:2] == whole["names"] and len(more["names"]) == 5
    torch.testing.assert_close(more["stats"][:2], whole["stats"])
    for name in STYLE_LAYERS:
        torch.testing.assert_close(more["grams"][name][:2], whole["grams"][name])
        assert more["grams"][name].shape[0] == 5
