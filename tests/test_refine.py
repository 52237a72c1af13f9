"""`fastst stylize --style-image P --refine N`: the painting's own network, trained from the one-pass model's
network for it, kept and reused; clear errors when it cannot be trained."""

import subprocess
from pathlib import Path

import pytest
import torch
from PIL import Image
from test_anystyle import _model, fastst_command

from fastst.anystyle import load_anystyle, model_file, painting_network
from fastst.errors import FaststError
from fastst.io import atomic_torch_save
from fastst.refine import refine_painting, refined_folder
from fastst.stylize import load_model

ROOT = Path(__file__).resolve().parent.parent


def _images(folder: Path, count: int, size: tuple, seed: int) -> list[Path]:
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(seed)
    paths = []
    for i in range(count):
        array = (torch.rand(size[1], size[0], 3, generator=g) * 255).byte().numpy()
        Image.fromarray(array).save(folder / f"{i}.png")
        paths.append(folder / f"{i}.png")
    return paths


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Training photos, a painting and a small one-pass model, with the runs in a folder of the test."""
    _images(tmp_path / "data" / "train", 3, (300, 280), 0)
    painting = _images(tmp_path / "paintings", 1, (64, 48), 1)[0]
    one_pass = tmp_path / "anystyle.pth"
    atomic_torch_save(model_file(_model(), half=False), one_pass)
    monkeypatch.setenv("FASTST_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("FASTST_RUNS", str(tmp_path / "runs"))
    return tmp_path, painting, one_pass


def test_a_refined_network_starts_at_the_one_pass_network_moves_from_it_and_is_reused(world, imagenet_vgg):
    tmp_path, painting, one_pass = world
    path = refine_painting(painting, 2, one_pass, progress=False)
    assert (
        path.parent == refined_folder(painting, 2, one_pass)
        and path.parent.parent == tmp_path / "runs" / "refined"
    )
    refined = load_model(path)  # a plain one-style model file, through the safe loader
    start = painting_network(painting, _model())
    moved = [
        (refined.state_dict()[k].float() - v.float()).abs().max().item()
        for k, v in start.state_dict().items()
    ]
    assert refined.styles == 1 and refined.config == start.config
    assert 0 < max(moved) < 0.1  # two small steps from the painting's one-pass network
    stamp = path.stat().st_mtime_ns
    assert (
        refine_painting(painting, 2, one_pass, progress=False) == path
    )  # asked again: reused, not retrained
    assert path.stat().st_mtime_ns == stamp
    assert refined_folder(painting, 3, one_pass) != path.parent  # more steps: another network


def test_by_default_a_painting_is_refined_from_its_network_of_the_one_pass_model_on_the_base(
    world, imagenet_vgg
):
    _, painting, _ = world
    path = refine_painting(painting, 1, progress=False)
    # named by the shipped one-pass model on the base's network, not by the small one or the base
    assert path.parent == refined_folder(painting, 1, "anystyle_base")
    assert path.parent not in (refined_folder(painting, 1, "base"), refined_folder(painting, 1, "anystyle"))
    refined, base = load_model(path), load_model("base")
    assert refined.styles == 1 and {**refined.config, "styles": base.styles} == base.config
    # one small step from the painting's network of that model (its norms and its colour map), not from the
    # base's mean style
    start = painting_network(painting, load_anystyle("anystyle_base")).state_dict()
    gap = lambda net: max(  # noqa: E731
        (net.state_dict()[k].float() - v.float()).abs().max().item() for k, v in start.items()
    )
    from_mean_style = load_model(refine_painting(painting, 1, "base", progress=False))
    assert gap(refined) < 0.05 < gap(from_mean_style), (gap(refined), gap(from_mean_style))


def test_refining_without_training_photos_says_how_to_get_them(world, monkeypatch):
    tmp_path, painting, one_pass = world
    monkeypatch.setenv("FASTST_DATA", str(tmp_path / "empty"))
    with pytest.raises(FaststError, match="data fetch"):
        refine_painting(painting, 2, one_pass, progress=False)
    with pytest.raises(FaststError, match="at least 1"):
        refine_painting(painting, 0, one_pass, progress=False)


def _stylize(world, *options) -> subprocess.CompletedProcess:
    tmp_path, _, one_pass = world
    photo = tmp_path / "photo.png"
    Image.new("RGB", (45, 31), (100, 150, 90)).save(photo)
    return fastst_command(
        "stylize", "--model", one_pass, "--input", photo, "--output", tmp_path / "out.png", *options
    )


def test_command_line_refines_then_stylizes_and_errors_in_one_line(world):
    tmp_path, painting, _ = world
    r = _stylize(world, "--style-image", painting, "--refine", "2")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "out.png").size == (45, 31)
    assert (refined_folder(painting, 2, tmp_path / "anystyle.pth") / "model.pth").is_file()
    r = _stylize(world, "--refine", "2", "--overwrite")  # no painting to refine
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "--style-image" in r.stderr, r.stderr
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    r = _stylize(world, "--style-image", bad, "--refine", "2", "--overwrite")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "bad.jpg" in r.stderr
