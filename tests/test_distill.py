"""tools/distill_base.py: the student starts as the one-style network in every style (or deepened, where
it was), and what it writes is a model file the safe loader reads, with the teacher's styles or one alone."""

import sys
from pathlib import Path

import torch

from fastst.stylize import load_model
from fastst.transformer import single_style

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import distill_base  # noqa: E402


def test_the_student_starts_as_its_source_in_every_style():
    source = load_model("starry_night")
    student = distill_base.student_from("starry_night", 3).eval()
    x = torch.rand(1, 3, 48, 40)
    with torch.no_grad():
        expected = source(x)
        for style in range(3):
            assert torch.allclose(single_style(student, style)(x), expected, atol=1e-6)


def test_a_distilled_model_loads_through_the_safe_loader_with_the_teachers_styles(tmp_path):
    out = tmp_path / "run"
    distill_base.main(["--iterations", "2", "--batch", "1", "--size", "32", "--out", str(out)])
    model = load_model(out / "model.pth")
    assert model.style_names == load_model("base").style_names
    one = load_model(out / "model.pth", style="the_scream")
    assert one(torch.rand(1, 3, 37, 51)).shape == (1, 3, 37, 51)
    # resumed, it goes on from the checkpoint instead of starting again
    distill_base.main(["--iterations", "3", "--batch", "1", "--size", "32", "--out", str(out)])
    assert torch.load(out / "checkpoint.pth", weights_only=True)["iteration"] == 3


def test_crops_are_the_photos_own_pixels_in_the_unit_range(tmp_path):
    import random

    from PIL import Image

    Image.new("RGB", (200, 150), (255, 128, 0)).save(tmp_path / "orange.png")
    batch = distill_base.crops([tmp_path / "orange.png"], 32, 1, random.Random(0))
    expected = torch.tensor([1.0, 128 / 255, 0.0])[:, None, None].expand(3, 32, 32)
    assert batch.shape == (1, 3, 32, 32)
    torch.testing.assert_close(batch[0], expected, atol=1 / 255, rtol=0)


def test_the_style_term_is_zero_for_the_teachers_own_picture_and_grows_with_its_weight():
    vgg = distill_base.loss_network()
    teacher = torch.rand(1, 3, 48, 48)
    student = (teacher + 0.2 * torch.randn_like(teacher)).clamp(0, 1)
    same = distill_base.distance(teacher, teacher, vgg, 1.0, 1.0)
    assert all(term.item() == 0 for term in same)
    off = [distill_base.distance(student, teacher, vgg, 1.0, w) for w in (0.0, 1.0, 2.0)]
    assert off[0][3].item() == 0 and off[1][3].item() > 0
    torch.testing.assert_close(off[2][0] - off[1][0], off[1][3])  # the total rises by the term per weight


def test_a_deepened_student_starts_where_it_was():
    source = load_model("starry_night")
    deeper = distill_base.deepened(source, 5).eval()
    assert deeper.config["residual_blocks"] == 5 and source.config["residual_blocks"] == 3
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(deeper(x), source(x))


def test_one_style_alone_is_a_one_style_model_file_named_after_it(tmp_path):
    from fastst.stylize import model_styles

    out = tmp_path / "run"
    argv = ["--style", "the_scream", "--student", "base", "--iterations", "1", "--batch", "1", "--size", "32"]
    distill_base.main([*argv, "--lr", "1e-9", "--out", str(out)])
    model = load_model(out / "model.pth")
    assert model.styles == 1 and model_styles(out / "model.pth") == ["the_scream"]
    # a multi-style student starts from its own norms of that style, not another's
    x = torch.rand(1, 3, 33, 47)
    with torch.no_grad():
        gap = {
            s: (model(x) - load_model("base", style=s)(x)).abs().mean()
            for s in ("the_scream", "starry_night")
        }
    assert gap["the_scream"] < 1e-3 < gap["starry_night"]
