"""tools/distill_base.py: the student starts as the one-style network in every style (or deepened, where
it was), and what it writes is a model file the safe loader reads, with the teacher's styles or one alone."""

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from fastst.stylize import load_model
from fastst.transformer import FoldedReflect, TransformerNet, count_parameters, single_style

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


def test_the_folded_layout_computes_johnsons_network_and_its_reflection_is_the_full_maps():
    torch.manual_seed(0)
    net = TransformerNet(width=0.25, styles=3)
    with torch.no_grad():  # the norms away from the identity, so that every weight shows
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    fold = distill_base.folded(net).eval()
    assert fold.config["fold"] and not any(  # nothing at full resolution but the pixel (un)shuffles
        isinstance(m, torch.nn.Upsample) for m in fold.modules()
    )
    with torch.no_grad():
        for x in (torch.rand(2, 3, 37, 50), torch.rand(1, 3, 16, 16)):
            for style in (0, 2, [0.5, 0.0, 0.5]):
                torch.testing.assert_close(fold(x, style), net.eval()(x, style), atol=1e-4, rtol=0)
    x = torch.rand(1, 2, 12, 10)
    reflected = F.pixel_unshuffle(F.pad(x, (4, 4, 4, 4), mode="reflect"), 2)
    assert torch.equal(FoldedReflect(2)(F.pixel_unshuffle(x, 2)), reflected)


def test_a_factored_network_of_weights_of_that_rank_is_the_network_itself():
    """Truncated HOSVD is exact on weights whose unfoldings have the ranks kept."""
    torch.manual_seed(0)
    fold = TransformerNet(width=0.5, fold=True, styles=2)
    with torch.no_grad():
        for block in fold.residuals:
            for i in (0, 3):
                conv = block.body[i][1]
                core = torch.randn(6, 5, 3, 3) * 0.1
                u, v = torch.randn(conv.out_channels, 6), torch.randn(conv.in_channels, 5)
                conv.weight.copy_(torch.einsum("rskl,or,is->oikl", core, u, v))
    small = distill_base.factorized(fold, {"residual": [5, 6]}).eval()
    assert count_parameters(small) < count_parameters(fold)
    x = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        torch.testing.assert_close(small(x, 1), fold.eval()(x, 1), atol=1e-4, rtol=0)
        lower = distill_base.factorized(fold, {"residual": [3, 3]}).eval()
        assert (lower(x, 1) - fold(x, 1)).abs().max() > 1e-3  # below the weights' rank it is not


def test_a_factored_network_factored_again_starts_from_the_convolutions_it_computes():
    """A layer factored already is factored anew from the one convolution it computes (exact at ranks its
    weights have); the layers not named, or named with their own ranks, are kept as they are."""
    torch.manual_seed(0)
    fold = TransformerNet(width=0.5, fold=True, styles=2, ranks={"residual": [6, 6], "up1": [8, 8]})
    with torch.no_grad():
        for p in fold.parameters():
            p.add_(0.05 * torch.randn_like(p))
    layer = fold.residuals[0].body[0][1]
    x = torch.randn(1, 64, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(distill_base.whole(layer)(x), layer(x), atol=1e-5, rtol=0)
    wider = distill_base.factorized(fold, {"residual": [8, 8]}).eval()
    assert wider.config["ranks"] == {"residual": [8, 8], "up1": [8, 8]}
    image = torch.rand(1, 3, 40, 36)
    with torch.no_grad():
        torch.testing.assert_close(wider(image, 1), fold.eval()(image, 1), atol=1e-4, rtol=0)
    smaller = distill_base.factorized(fold, {"residual": [6, 6], "down2": [8, 8]}).eval()
    ours, theirs = smaller.state_dict(), fold.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in theirs.items() if not k.startswith("encoder.7."))
    assert count_parameters(smaller) < count_parameters(fold)
    # --pad: the same layers and weights, padded with zeros
    zero = distill_base.factorized(fold, fold.config["ranks"], pad="zero").eval()
    assert zero.config["pad"] == "zero" and "pad" not in fold.config
    assert all(torch.equal(zero.state_dict()[k], v) for k, v in fold.state_dict().items())


def test_a_factored_student_keeps_the_teachers_norms_and_loads_through_the_safe_loader(tmp_path):
    out = tmp_path / "run"
    ranks = '{"residual": [16, 16], "into": [null, 16], "out": [16, null]}'
    distill_base.main(
        [
            "--ranks",
            ranks,
            "--mix-share",
            "0.5",
            "--iterations",
            "2",
            "--batch",
            "2",
            "--size",
            "32",
            "--out",
            str(out),
        ]
    )
    model, teacher = load_model(out / "model.pth"), load_model("base")
    assert model.style_names == teacher.style_names and model.config["ranks"]["residual"] == [16, 16]
    assert count_parameters(model) < count_parameters(teacher) / 2
    for ours, theirs in zip(model.conditional_norms(), teacher.conditional_norms()):
        assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)
    one = load_model(out / "model.pth", style="the_scream:0.5,starry_night:0.5")
    assert one(torch.rand(1, 3, 37, 51)).shape == (1, 3, 37, 51)
    # and from it, with one layer more factored (--start): its other layers, its norms and styles kept
    again = tmp_path / "again"
    common = ["--iterations", "1", "--batch", "2", "--size", "32"]
    further_ranks = ["--ranks", '{"down2": [16, 16]}', *common, "--out", str(again)]
    distill_base.main(["--start", str(out / "model.pth"), *further_ranks])
    further = load_model(again / "model.pth")
    assert further.config["ranks"] == {**model.config["ranks"], "down2": [16, 16]}
    assert count_parameters(further) < count_parameters(model)
    for ours, theirs in zip(further.conditional_norms(), teacher.conditional_norms()):
        assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)
    with pytest.raises(SystemExit, match="does not hold the teacher's styles"):
        distill_base.main(["--start", "starry_night", *further_ranks])


def test_ranks_start_from_the_whole_teacher_and_refuse_what_would_change_it(tmp_path):
    ranks = '{"residual": [16, 16]}'
    for extra in (["--residual-blocks", "7"], ["--fresh-width", "0.5"], ["--student", "base"]):
        with pytest.raises(SystemExit, match="--ranks starts from the whole teacher"):
            distill_base.main(["--ranks", ranks, *extra, "--iterations", "1", "--out", str(tmp_path / "r")])
    with pytest.raises(SystemExit, match="--ranks: "):
        distill_base.main(
            ["--ranks", '{"residual": [0, 16]}', "--iterations", "1", "--out", str(tmp_path / "r")]
        )
    with pytest.raises(SystemExit, match="--pad goes with --ranks"):
        distill_base.main(["--pad", "zero", "--iterations", "1", "--out", str(tmp_path / "r")])


def test_a_batch_of_styles_is_one_each_or_a_mix_of_two():
    import random

    rng = random.Random(0)
    assert distill_base.style_batch(1, 4, 0.5, rng) is None
    assert distill_base.style_batch(5, 4, 0.0, rng).dtype == torch.int64
    mixes = distill_base.style_batch(5, 200, 0.5, rng)
    torch.testing.assert_close(mixes.sum(1), torch.ones(200))
    several = (mixes > 0).sum(1)
    assert set(several.tolist()) <= {1, 2} and 60 < (several == 2).sum() < 140
    # --draws: a style drawn three times as often as each other one, alone and in mixes
    alone = distill_base.style_batch(5, 3000, 0.0, rng, [1, 1, 3, 1, 1])
    assert 0.35 < (alone == 2).float().mean() < 0.51  # 3 / 7 = 0.43
    only = distill_base.style_batch(5, 50, 0.5, rng, [0, 0, 0, 1, 0])
    assert torch.equal(only[:, 3], torch.ones(50))
