import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastst.errors import FaststError
from fastst.gatys import gatys, reconstruct
from fastst.io import load_image

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("optimizer,init", [("lbfgs", "content"), ("adam", "noise")])
def test_the_baseline_lowers_the_objective(data_root, imagenet_vgg, optimizer, init):
    content = load_image(data_root / "test" / "demo" / "chicago.jpg", 64)
    style = load_image(data_root / "styles" / "starry_night.jpg", 64)
    result = gatys(content, style, 15, optimizer, init=init, vgg=imagenet_vgg, progress=False)
    assert len(result.objective) == 16  # the start and each of 15 iterations
    assert result.objective[-1] < 0.7 * result.objective[0]
    assert result.image.shape == content.shape and 0 <= result.image.min() and result.image.max() <= 1


def test_a_content_reconstruction_moves_noise_towards_the_photo(data_root, imagenet_vgg):
    photo = load_image(data_root / "test" / "demo" / "chicago.jpg", 48)
    torch.manual_seed(0)
    noise_error = (torch.rand_like(photo) - photo).abs().mean()
    rebuilt = reconstruct(photo, "relu1_2", "content", iterations=30, vgg=imagenet_vgg, progress=False)
    assert (rebuilt - photo).abs().mean() < 0.6 * noise_error


def test_a_deep_content_reconstruction_recovers_the_layout(data_root, imagenet_vgg):
    """relu3_3 keeps the layout of a photo (Johnson et al.'s Fig. 3): from noise, the reconstruction's
    brightness follows the photo's. Optimising the layer's term alone, with no prior and no scaling, left
    mostly noise (a correlation near 0.24 here)."""
    photo = load_image(data_root / "test" / "demo" / "chicago.jpg", 64)
    rebuilt = reconstruct(photo, "relu3_3", "content", iterations=60, vgg=imagenet_vgg, progress=False)

    def brightness(x):
        x = x.mean(0).flatten()
        x = x - x.mean()
        return x / x.norm()

    assert brightness(rebuilt) @ brightness(photo) > 0.4


def test_bad_options_are_refused(data_root):
    x = torch.rand(3, 8, 8)
    with pytest.raises(FaststError):
        gatys(x, x, 1, "sgd")
    with pytest.raises(FaststError):
        gatys(x, x, 0)


def test_cli_writes_the_image_and_its_objective(tmp_path, data_root):
    out = tmp_path / "g.png"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastst",
            "gatys",
            "--content",
            data_root / "test" / "demo" / "chicago.jpg",
            "--style",
            data_root / "styles" / "starry_night.jpg",
            "--iterations",
            "3",
            "--size",
            "48",
            "--output",
            out,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert (
        out.exists() and len((tmp_path / "g.csv").read_text().splitlines()) == 5
    )  # header, the start, 3 iterations
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastst",
            "gatys",
            "--content",
            tmp_path / "nope.jpg",
            "--style",
            data_root / "styles" / "starry_night.jpg",
            "--output",
            tmp_path / "h.png",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert (
        r.returncode == 1
        and r.stderr.startswith("fastst: error: no such file")
        and "Traceback" not in r.stderr
    )


def test_the_speed_table_runs_affordable_cells_in_full_and_marks_the_rest(imagenet_vgg):
    from fastst.evaluate import speed_table
    from fastst.transformer import TransformerNet

    style, weights = torch.rand(3, 32, 32), {"content_weight": 1, "style_weight": 2, "tv_weight": 1e-4}
    config = {**weights, "content_layer": "relu3_3"}
    model = TransformerNet(width=0.25).eval()
    (estimated,) = speed_table(model, style, config, (32,), (2, 6), measured=2, progress=False)
    (full,) = speed_table(model, style, config, (32,), (2, 6), measured=2, full_seconds=1e6, progress=False)
    # 2 iterations were measured, so only the 6-iteration cell is an estimate unless it is run in full
    assert not estimated["baseline_2_extrapolated"] and estimated["baseline_6_extrapolated"]
    assert not full["baseline_6_extrapolated"]
    assert estimated["baseline_6_s"] == pytest.approx(3 * estimated["baseline_2_s"])
    # a run in full is timed, not multiplied out from the measured iterations
    assert full["baseline_6_s"] != pytest.approx(3 * full["baseline_2_s"], rel=1e-9)
