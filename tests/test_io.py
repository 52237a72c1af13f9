import stat

import numpy as np
import pytest
import torch
from PIL import Image

from fastst.errors import FaststError
from fastst.io import MAX_PIXELS, load_image, save_image

RED = (200, 30, 10)


def _solid(mode, size=(6, 4)):
    im = Image.new("RGB", size, RED)
    return im.convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else im.convert(mode)


def _check_red(t, tol=3 / 255):
    assert t.shape[0] == 3 and t.dtype == torch.float32
    expected = torch.tensor(RED, dtype=torch.float32).view(3, 1, 1) / 255
    assert (t - expected).abs().max() <= tol


@pytest.mark.parametrize(
    "mode,suffix",
    [
        ("RGB", ".png"),
        ("RGB", ".jpg"),
        ("RGB", ".webp"),
        ("RGB", ".bmp"),
        ("RGBA", ".png"),
        ("P", ".png"),
        ("P", ".gif"),
        ("CMYK", ".jpg"),
    ],
)
def test_colour_modes_load_as_rgb(tmp_path, mode, suffix):
    path = tmp_path / f"im{suffix}"
    im = _solid(mode)
    im.save(path, **({"quality": 100} if suffix in (".jpg", ".webp") else {}))
    t = load_image(path)
    assert t.shape == (3, 4, 6)
    _check_red(t, tol=12 / 255 if suffix in (".jpg", ".webp") else 3 / 255)


def test_grayscale_and_gray_alpha(tmp_path):
    Image.new("L", (5, 3), 128).save(tmp_path / "l.png")
    Image.new("LA", (5, 3), (64, 255)).save(tmp_path / "la.png")
    assert torch.allclose(load_image(tmp_path / "l.png"), torch.full((3, 3, 5), 128 / 255))
    assert torch.allclose(load_image(tmp_path / "la.png"), torch.full((3, 3, 5), 64 / 255))


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    a = np.array([[0, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(a).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    t = load_image(tmp_path / "deep.png")
    assert t.shape == (3, 1, 3)
    assert t[0, 0].tolist() == pytest.approx([0.0, 128 / 255, 1.0], abs=1 / 255)


def test_transparency_is_composited_on_white(tmp_path):
    im = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    im.putpixel((1, 0), (0, 0, 255, 255))
    im.save(tmp_path / "a.png")
    t = load_image(tmp_path / "a.png")
    assert t[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert t[:, 0, 1].tolist() == [0.0, 0.0, 1.0]
    p = Image.new("P", (2, 1))
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.putpixel((0, 0), 0)
    p.putpixel((1, 0), 1)
    p.info["transparency"] = 0
    p.save(tmp_path / "p.png", transparency=0)
    t = load_image(tmp_path / "p.png")
    assert t[:, 0, 0].tolist() == [1.0, 1.0, 1.0]
    assert t[:, 0, 1].tolist() == [0.0, 1.0, 0.0]


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in [(255, 0, 0), (0, 0, 255)]]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert load_image(tmp_path / "anim.gif")[:, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.0], abs=0.02)


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (6, 2), (0, 0, 0))
    im.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    im.save(tmp_path / "rot.jpg", exif=exif, quality=100)
    t = load_image(tmp_path / "rot.jpg")
    assert t.shape == (3, 6, 2)
    assert t[:, 0, 1].mean() > 0.7  # the white corner moved to the top right


@pytest.mark.parametrize("size", [(1, 1), (3, 7), (4097, 3)])
def test_tiny_and_thin_images(tmp_path, size):
    _solid("RGB", size).save(tmp_path / "x.png")
    assert load_image(tmp_path / "x.png").shape == (3, size[1], size[0])


def test_max_size_shrinks_the_longer_side(tmp_path):
    _solid("RGB", (400, 100)).save(tmp_path / "x.png")
    assert load_image(tmp_path / "x.png", max_size=200).shape == (3, 50, 200)


def _bad_files(tmp_path):
    good = tmp_path / "good.jpg"
    _solid("RGB", (64, 64)).save(good)
    Image.new("RGB", (64, 64), RED).save(tmp_path / "good.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image\n")
    (tmp_path / "trunc.jpg").write_bytes(good.read_bytes()[:200])
    (tmp_path / "trunc.png").write_bytes((tmp_path / "good.png").read_bytes()[:60])
    # a small PNG whose header declares 100000 x 100000 pixels
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    (tmp_path / "bomb.png").write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 10))
        + chunk(b"IEND", b"")
    )
    return {
        "missing": tmp_path / "nope.jpg",
        "folder": tmp_path,
        "empty": tmp_path / "empty.jpg",
        "text": tmp_path / "text.jpg",
        "truncated jpeg": tmp_path / "trunc.jpg",
        "truncated png": tmp_path / "trunc.png",
        "bomb": tmp_path / "bomb.png",
    }


@pytest.mark.parametrize(
    "case", ["missing", "folder", "empty", "text", "truncated jpeg", "truncated png", "bomb"]
)
def test_bad_files_raise_one_error_type_with_a_one_line_message(tmp_path, case):
    path = _bad_files(tmp_path)[case]
    with pytest.raises(FaststError) as info:
        load_image(path)
    message = str(info.value)
    assert "\n" not in message and str(path.name) in message
    if case == "bomb":
        assert f"{MAX_PIXELS:,}" in message


def test_save_image_round_trip_and_atomicity(tmp_path):
    t = torch.rand(3, 5, 7)
    path = save_image(t, tmp_path / "out.png")
    assert torch.allclose(load_image(path), t, atol=0.5 / 255 + 1e-6)
    plain = tmp_path / "plain"
    plain.write_bytes(b"")  # a file written the ordinary way gets the umask's permissions
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)  # not mkstemp's 0600
    plain.unlink()
    before = path.read_bytes()
    with pytest.raises(ValueError):
        save_image(torch.rand(4, 5, 7), path)  # a bad tensor: the old file stays
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary file left


def test_save_image_refuses_unknown_formats_and_missing_folders(tmp_path):
    with pytest.raises(FaststError, match="format"):
        save_image(torch.rand(3, 2, 2), tmp_path / "x.xyz")
    with pytest.raises(FaststError, match="does not exist"):
        save_image(torch.rand(3, 2, 2), tmp_path / "no" / "x.png")


def test_an_installed_package_finds_the_checkout_it_is_run_in(tmp_path, monkeypatch):
    # a non-editable install: the package lives elsewhere; a notebook kernel runs in checkout/notebooks
    import fastst.io

    monkeypatch.setattr(fastst.io, "__file__", str(tmp_path / "site-packages" / "fastst" / "io.py"))
    monkeypatch.delenv("FASTST_DATA", raising=False)
    checkout = tmp_path / "clone"
    (checkout / "notebooks").mkdir(parents=True)
    (checkout / "pyproject.toml").write_text('[project]\nname = "fastst"\n')
    monkeypatch.chdir(checkout / "notebooks")
    assert fastst.io.project_folder("data", "FASTST_DATA") == checkout.resolve() / "data"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "pyproject.toml").write_text('[project]\nname = "other"\n')
    monkeypatch.chdir(elsewhere)
    assert fastst.io.project_folder("data", "FASTST_DATA") == elsewhere.resolve() / "data"
