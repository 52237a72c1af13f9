"""tools/distill_base.py: the student starts as the one-style network in every style, and what it writes
is a model file the safe loader reads, with the teacher's styles."""

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
