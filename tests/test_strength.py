import io

import pytest
import torch
from PIL import Image

from fastst.io import load_image, pil_to_tensor
from fastst.losses import DEFAULT_WEIGHTS, PerceptualLoss
from fastst.strength import calibrated_style_weight, style_energy
from fastst.train import TrainConfig, effective_style_weight


def test_strength_one_keeps_the_default_weight_on_the_starry_night(data_root, imagenet_vgg):
    style = load_image(data_root / "styles" / "starry_night.jpg", 256)
    assert calibrated_style_weight(style) == pytest.approx(DEFAULT_WEIGHTS["style_weight"], rel=1e-4)
    assert calibrated_style_weight(style, 0.5) == pytest.approx(0.5 * calibrated_style_weight(style))


def test_the_calibrated_weight_survives_resizing_and_jpeg(data_root, imagenet_vgg):
    """The style image is resized to the training style size before its Grams are taken, so a 2x
    larger copy or a JPEG re-encoding changes the weight only through resampling and quantisation
    noise: within 5% (both are measured far below that; a different painting differs by a factor)."""
    path = data_root / "styles" / "the_scream.jpg"
    with Image.open(path) as im:
        im = im.convert("RGB")
        big = im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=75)
        buffer.seek(0)
        recoded = Image.open(buffer).convert("RGB")

    def weight(image):
        t = pil_to_tensor(image)
        t = torch.nn.functional.interpolate(
            t[None], scale_factor=256 / max(image.size), mode="bilinear", antialias=True, align_corners=False
        )[0]
        return calibrated_style_weight(t.clamp(0, 1))

    original = weight(im)
    assert weight(big) == pytest.approx(original, rel=0.05)
    assert weight(recoded) == pytest.approx(original, rel=0.05)
    other = calibrated_style_weight(load_image(data_root / "styles" / "composition_vii.jpg", 256))
    assert abs(other / original - 1) > 0.5  # the tolerance is far tighter than the differences between styles


def test_the_weight_grows_as_the_style_energy_shrinks(data_root, imagenet_vgg):
    style = load_image(data_root / "styles" / "woman_with_a_parasol.jpg", 256)
    dimmer = style * 0.5
    assert style_energy(dimmer) < style_energy(style)
    assert calibrated_style_weight(dimmer) > calibrated_style_weight(style)


def _eq5_by_hand(vgg, image, content, style, content_weight, style_weight, tv_weight) -> float:
    """The objective of eq. 5 for one image written out again with einsum, apart from fastst.losses:
    the content term, the Grams of the style layers and the squared neighbour differences."""
    layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    with torch.no_grad():
        f_image, f_style = vgg(image, layers), vgg(style[None], layers)
        f_content = vgg(content, ("relu3_3",))["relu3_3"]

    def gram(f):
        c, h, w = f.shape[1:]
        return torch.einsum("bihw,bjhw->bij", f, f)[0] / (c * h * w)

    l_content = (f_image["relu3_3"] - f_content).pow(2).sum() / f_content[0].numel()
    l_style = sum((gram(f_image[k]) - gram(f_style[k])).pow(2).sum() for k in layers)
    img = image[0]
    l_tv = (img[:, 1:, :] - img[:, :-1, :]).pow(2).sum() + (img[:, :, 1:] - img[:, :, :-1]).pow(2).sum()
    return (content_weight * l_content + style_weight * l_style + tv_weight * l_tv).item()


def test_raw_weights_reproduce_the_default_objective_exactly(data_root, imagenet_vgg):
    style = load_image(data_root / "styles" / "the_scream.jpg", 64)
    config = TrainConfig.from_preset("smoke", style="x", data="y")  # no style_strength: raw lambda_s
    assert effective_style_weight(config, style) == config.style_weight == DEFAULT_WEIGHTS["style_weight"]
    photo = load_image(data_root / "test" / "demo" / "chicago.jpg", 48)[None]
    out = torch.rand_like(photo)
    raw = PerceptualLoss.for_config(imagenet_vgg, style, config, effective_style_weight(config, style))
    assert raw(out, photo).total.item() == pytest.approx(
        _eq5_by_hand(imagenet_vgg, out, photo, style, 1.0, 2.0, 1e-4), rel=1e-5
    )
    calibrated = TrainConfig.from_preset("smoke", style="x", data="y", style_strength=1.0)
    assert effective_style_weight(calibrated, style) == pytest.approx(calibrated_style_weight(style))


def test_preview_writes_a_strip_of_strengths(data_root, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "strip.png"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastst",
            "preview",
            "--style",
            data_root / "styles" / "the_scream.jpg",
            "--photos",
            data_root / "test" / "bsds500_test_subset",
            "--count",
            "1",
            "--size",
            "32",
            "--style-size",
            "64",
            "--iterations",
            "2",
            "--strengths",
            "0.5",
            "2",
            "--out",
            out,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size > 0 and out.with_suffix(".json").exists()
    assert "strengths 0.5, 2" in r.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "fastst", "preview", "--style", tmp_path / "missing.jpg", "--out", out],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
