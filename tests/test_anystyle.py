import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from fastst.anystyle import (
    MAX_GAIN,
    AnyStyleNet,
    ModulatedInstanceNorm,
    average_predictors,
    cached_statistics,
    colour_moments,
    load_anystyle,
    model_file,
    on_network,
    painting_network,
    painting_statistics,
    palette_map,
    statistics_size,
    with_colour_map,
)
from fastst.errors import FaststError
from fastst.io import atomic_torch_save, load_checkpoint, load_image
from fastst.losses import STYLE_LAYERS
from fastst.transformer import TransformerNet

ROOT = Path(__file__).resolve().parent.parent


def _model(seed=0) -> AnyStyleNet:
    torch.manual_seed(seed)
    model = AnyStyleNet(width=0.25, residual_blocks=1)
    for p in model.parameters():  # a model whose predicted norms differ from painting to painting
        p.data.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_modulated_norm_against_a_hand_computation():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]], [[0.0, 0.0], [4.0, 4.0]]]])  # (1, 2, 2, 2)
    norm = ModulatedInstanceNorm(2, eps=0.0)
    norm.scale, norm.shift = torch.tensor([[2.0, 0.5]]), torch.tensor([[1.0, -1.0]])
    # channel 0: mean 3, population variance (4 + 1 + 0 + 9) / 4 = 3.5; channel 1: mean 2, variance 4
    expected0 = [[2 * (v - 3) / 3.5**0.5 + 1 for v in row] for row in ([1, 2], [3, 6])]
    expected1 = [[0.5 * (v - 2) / 2 - 1 for v in row] for row in ([0, 0], [4, 4])]
    torch.testing.assert_close(norm(x), torch.tensor([[expected0, expected1]]))


def test_statistics_are_each_channels_mean_and_log_spread():
    feats = {name: torch.zeros(1, c, 2, 2) for name, c in zip(STYLE_LAYERS, (64, 128, 256, 512))}
    feats["relu1_2"][0, 0] = torch.tensor([[1.0, 3.0], [5.0, 7.0]])  # mean 4, sample std sqrt(20 / 3)
    stats = painting_statistics(torch.rand(3, 8, 8), vgg=lambda x, layers: feats, size=None)
    assert stats.shape == (1, statistics_size())
    assert stats[0, 0].item() == pytest.approx(4.0)
    assert stats[0, 64].item() == pytest.approx(torch.log(torch.tensor((20 / 3) ** 0.5 + 1e-3)).item())
    assert stats[0, 1].item() == 0 and stats[0, 65].item() == pytest.approx(
        torch.log(torch.tensor(1e-3)).item()
    )


def test_a_paintings_network_computes_what_the_model_computes():
    model, stats = _model(), torch.randn(2, statistics_size())
    photos = torch.rand(2, 3, 36, 44)
    with torch.no_grad():
        together = model(photos, stats).clamp(0, 1)
    for i in range(2):
        alone = model.for_painting(stats[i : i + 1])(photos[i : i + 1])
        torch.testing.assert_close(alone, together[i : i + 1], atol=1e-5, rtol=1e-4)
    # and two paintings give two different pictures
    assert (together[0] - model.for_painting(stats[1:])(photos[:1])[0]).abs().max() > 1e-3


@pytest.mark.parametrize("size", [(17, 29), (33, 65), (101, 57)])
def test_output_size_equals_input_size(size):
    net = _model().for_painting(torch.randn(1, statistics_size()))
    assert net(torch.rand(1, 3, *size)).shape == (1, 3, *size)


def test_model_file_round_trip_in_half_precision(tmp_path):
    model = _model()
    path = tmp_path / "anystyle.pth"
    atomic_torch_save(model_file(model), path)
    loaded = load_anystyle(path)
    stats = torch.randn(1, statistics_size())
    photo = torch.rand(1, 3, 32, 32)
    with torch.no_grad():  # fp16 storage: the same picture within fp16's rounding
        assert (loaded.for_painting(stats)(photo) - model.for_painting(stats)(photo)).abs().max() < 2e-2


def _predictor_run(start: AnyStyleNet, seed: int) -> dict:
    """A one-pass model file: ``start`` with its predictor's weights moved as a run of the predictor alone
    would move them."""
    torch.manual_seed(seed)
    model = AnyStyleNet(width=0.25, residual_blocks=1)
    model.load_state_dict(start.state_dict())
    for name, p in model.predictor.named_parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    return model_file(model, half=False)


def test_averaged_predictors_are_the_mean_of_the_runs_and_the_rest_is_kept(tmp_path):
    start = _model()
    runs = [_predictor_run(start, seed) for seed in (1, 2, 3)]
    averaged = average_predictors(runs)
    for key, value in averaged["model"].items():
        if key.startswith("predictor.embed") or key.startswith("predictor.out"):
            by_hand = (runs[0]["model"][key] + runs[1]["model"][key] + runs[2]["model"][key]) / 3
            torch.testing.assert_close(value, by_hand)
            assert not torch.equal(value, runs[0]["model"][key])
        else:  # the shared network and the statistics' standardisation, as they were
            assert torch.equal(value, start.state_dict()[key])
    atomic_torch_save(averaged, tmp_path / "soup.pth")
    load_anystyle(tmp_path / "soup.pth")  # a model file like any other


def test_the_averaging_tool_answers_a_missing_or_foreign_file_in_one_line(tmp_path):
    start = _model()
    atomic_torch_save(_predictor_run(start, 1), tmp_path / "a.pth")
    atomic_torch_save({"model": {}}, tmp_path / "b.pth")
    for second in ("missing.pth", "b.pth"):
        out = subprocess.run(
            [sys.executable, str(ROOT / "tools" / "average_predictors.py"), str(tmp_path / "a.pth")]
            + [str(tmp_path / second), "--out", str(tmp_path / "soup.pth")],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert second in out.stderr and not (tmp_path / "soup.pth").exists()


def test_averaging_refuses_runs_on_different_shared_networks():
    runs = [_predictor_run(_model(0), 1), _predictor_run(_model(5), 2)]
    with pytest.raises(FaststError, match="share their shared network"):
        average_predictors(runs)
    other = model_file(AnyStyleNet(width=0.25, residual_blocks=2), half=False)
    with pytest.raises(FaststError, match="same network"):
        average_predictors([runs[0], other])


def test_the_palette_map_takes_the_colours_the_asked_fraction_of_the_way():
    g = torch.Generator().manual_seed(0)
    output = torch.rand(3, 24, 20, generator=g)
    painting = (torch.rand(3, 30, 30, generator=g) * torch.tensor([0.4, 0.9, 0.6])[:, None, None]).clamp(
        0, 1
    )  # within the cap
    target = colour_moments(painting)
    mapped = lambda m, b: (m @ output.reshape(3, -1) + b[:, None]).reshape(3, 24, 20)  # noqa: E731
    # all the way: the painting's mean and covariance (up to the eigen-solver's floor)
    mean, cov = colour_moments(mapped(*palette_map(output, target, 1.0)))
    torch.testing.assert_close(mean, target[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(cov, target[1], atol=1e-4, rtol=0)
    # none of the way: the identity; a quarter: a quarter of the full map's move, pixel by pixel
    matrix, shift = palette_map(output, target, 0.0)
    torch.testing.assert_close(matrix, torch.eye(3))
    torch.testing.assert_close(shift, torch.zeros(3))
    full, quarter = mapped(*palette_map(output, target, 1.0)), mapped(*palette_map(output, target, 0.25))
    torch.testing.assert_close(quarter, output + 0.25 * (full - output), atol=1e-5, rtol=0)


def test_the_palette_map_does_not_blow_up_a_picture_of_one_colour():
    g = torch.Generator().manual_seed(1)
    flat = 0.5 + 1e-4 * torch.rand(3, 16, 16, generator=g)  # nearly one colour
    painting = torch.rand(3, 16, 16, generator=g)
    matrix, _ = palette_map(flat, colour_moments(painting), 1.0)
    assert torch.linalg.svdvals(matrix).max() <= MAX_GAIN + 1e-4


@pytest.mark.parametrize(
    "options",
    [{}, {"fold": True}, {"fold": True, "ranks": {"out": [8, None]}}],
    ids=["plain", "folded", "folded and factored"],
)
def test_a_colour_map_folds_into_the_last_convolution(options):
    # a folded network's last convolution writes each colour's four pixel phases
    torch.manual_seed(0)
    net = TransformerNet(width=0.25, residual_blocks=1, input_skip=False, **options).eval()
    for p in net.parameters():  # norms that are not the identity
        p.data.add_(0.1 * torch.randn_like(p))
    photo = torch.rand(1, 3, 40, 36)
    matrix, shift = (
        torch.tensor([[0.8, 0.1, 0.0], [0.0, 1.1, 0.2], [0.1, 0.0, 0.7]]),
        torch.tensor([0.05, -0.1, 0.2]),
    )
    with torch.no_grad():
        raw = net.train()(photo)  # before the clamp
        expected = (torch.einsum("ij,njhw->nihw", matrix, raw) + shift[:, None, None]).clamp(0, 1)
        folded = with_colour_map(net.eval(), matrix, shift)(photo)
    torch.testing.assert_close(folded, expected, atol=1e-5, rtol=0)
    with pytest.raises(FaststError, match="input"):
        with_colour_map(TransformerNet(width=0.25, residual_blocks=1, input_skip=True), matrix, shift)


def test_a_model_with_a_palette_moves_its_pictures_towards_the_painting_s_colours(tmp_path, imagenet_vgg):
    from fastst.scale import to_longer_side

    torch.manual_seed(0)
    model = AnyStyleNet(width=0.25, residual_blocks=1, input_skip=False)
    for p in model.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    with torch.no_grad():  # pictures inside [0, 1], as a trained network's, not clamped
        model.body.last_conv().weight.mul_(0.01)
        model.body.last_conv().bias.fill_(0.5)
    # reddish, each channel varying a little, far from the clamp at 0 and 1
    painting = torch.tensor([0.6, 0.3, 0.4])[:, None, None] + 0.1 * torch.rand(3, 48, 48)
    for fraction in (0.0, 1.0):
        saved = {**model_file(model, half=False), "palette": fraction}
        atomic_torch_save(saved, tmp_path / f"{fraction}.pth")
    plain = painting_network(painting, load_anystyle(tmp_path / "0.0.pth"))
    toward = painting_network(painting, load_anystyle(tmp_path / "1.0.pth"))
    # the map is measured on the network's picture of the painting: all the way, that picture takes the
    # painting's colour mean (the painting at its own size, a little off at the size the map sees)
    small = to_longer_side(painting[None], 256)
    target = colour_moments(painting)[0]
    with torch.no_grad():
        before, after = colour_moments(plain(small)[0])[0], colour_moments(toward(small)[0])[0]
    assert (before - target).abs().max() > 0.1
    torch.testing.assert_close(after, target, atol=0.02, rtol=0)
    # a fraction given for one painting's network decides over the model's, and leaves the model as it was
    model = load_anystyle(tmp_path / "0.0.pth")
    given = painting_network(painting, model, palette=1.0)
    with torch.no_grad():
        torch.testing.assert_close(given(small), toward(small))
    assert model.palette == 0.0
    none = painting_network(painting, load_anystyle(tmp_path / "1.0.pth"), palette=0.0)
    with torch.no_grad():  # an explicit 0 overrides the model's own fraction too
        torch.testing.assert_close(none(small), plain(small))
    with pytest.raises(FaststError, match="between 0 and 1"):
        painting_network(painting, model, palette=1.5)
    skip = AnyStyleNet(width=0.25, residual_blocks=1, input_skip=True)
    atomic_torch_save({**model_file(skip), "palette": 0.5}, tmp_path / "skip.pth")
    with pytest.raises(FaststError, match="input skip"):
        load_anystyle(tmp_path / "skip.pth")


def test_a_file_that_is_not_a_one_pass_model_is_refused(tmp_path):
    path = tmp_path / "x.pth"
    torch.save({"model": {}}, path)
    with pytest.raises(FaststError, match="not a fastst one-pass model"):
        load_anystyle(path)


def test_statistics_are_computed_once_per_painting(tmp_path, imagenet_vgg):
    path = tmp_path / "painting.png"
    Image.new("RGB", (40, 30), (200, 40, 10)).save(path)
    first = cached_statistics(path)
    again = cached_statistics(path)
    assert again is first  # the cache's own tensor, not a second VGG pass
    copy = tmp_path / "copy.png"
    copy.write_bytes(path.read_bytes())
    assert cached_statistics(copy) is first  # keyed by content, not by name
    Image.new("RGB", (40, 30), (10, 40, 200)).save(path)
    assert cached_statistics(path) is not first


def test_bad_painting_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "painting.jpg"
    bad.write_text("not an image")
    with pytest.raises(FaststError, match="painting.jpg"):
        painting_network(bad, _model())


def _stylize_with_painting(tmp_path, painting, photo, *options):
    """``fastst stylize --style-image`` through a small one-pass model, as a person runs it."""
    model = tmp_path / "anystyle.pth"
    atomic_torch_save(model_file(_model()), model)
    return fastst_command("stylize", "--model", model, "--style-image", painting, "--input", photo, *options)


def fastst_command(*command) -> subprocess.CompletedProcess:
    """``python -m fastst COMMAND...`` as a person runs it, in the project's folder, with this environment."""
    return subprocess.run(
        [sys.executable, "-m", "fastst", *map(str, command)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_command_line_bad_painting_one_line_error(tmp_path):
    bad, photo = tmp_path / "painting.jpg", tmp_path / "photo.png"
    bad.write_text("not an image")
    Image.new("RGB", (40, 30), (100, 100, 100)).save(photo)
    r = _stylize_with_painting(tmp_path, bad, photo, "--output", tmp_path / "out.png")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "painting.jpg" in r.stderr and not (tmp_path / "out.png").exists()


def test_command_line_stylizes_with_a_painting(tmp_path):
    painting, photo = tmp_path / "painting.png", tmp_path / "photo.png"
    Image.effect_noise((48, 40), 60).convert("RGB").save(painting)
    Image.new("RGB", (45, 31), (100, 150, 90)).save(photo)
    out = tmp_path / "out.png"
    r = _stylize_with_painting(tmp_path, painting, photo, "--output", out, "--style-scale", "1.5")
    assert r.returncode == 0, r.stderr
    assert Image.open(out).size == (45, 31)


def _folder(root: Path, count: int, size: tuple, seed: int) -> Path:
    root.mkdir()
    g = torch.Generator().manual_seed(seed)
    for i in range(count):
        array = (torch.rand(size[1], size[0], 3, generator=g) * 255).byte().numpy()
        Image.fromarray(array).save(root / f"{i}.png")
    return root


def _tiny_run(root: Path, **settings) -> dict:
    """A one-pass run's settings for seconds of training: three photos, two paintings, tiny crops."""
    return dict(
        data=str(_folder(root / "photos", 3, (40, 36), 0)),
        paintings=str(_folder(root / "paintings", 2, (48, 40), 1)),
        image_size=32,
        batch_size=2,
        width=0.25,
        residual_blocks=1,
        num_workers=0,
        preview_every=10**6,
        **settings,
    )


@pytest.mark.slow
def test_training_resumes_exactly_where_it_stopped(tmp_path, imagenet_vgg):
    from fastst.anystyle_train import AnyStyleConfig, train_anystyle

    common = _tiny_run(tmp_path, warmup=2, checkpoint_every=2, log_every=1)
    straight = train_anystyle(AnyStyleConfig(out=str(tmp_path / "a"), iterations=4, **common), progress=False)
    train_anystyle(AnyStyleConfig(out=str(tmp_path / "b"), iterations=2, **common), progress=False)
    with pytest.raises(FaststError, match="--resume"):
        train_anystyle(AnyStyleConfig(out=str(tmp_path / "b"), iterations=4, **common), progress=False)
    resumed = train_anystyle(
        AnyStyleConfig(out=str(tmp_path / "b"), iterations=4, **common), resume=True, progress=False
    )
    a, b = torch.load(straight, weights_only=True), torch.load(resumed, weights_only=True)
    assert a["iteration"] == b["iteration"] == 4
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key])
    assert (tmp_path / "b" / "losses.csv").read_text().count("\n") == 5  # the header and 4 iterations
    assert load_anystyle(resumed).for_painting(torch.zeros(1, statistics_size())) is not None


@pytest.mark.slow
def test_predictor_only_training_leaves_the_shared_network_as_it_started(tmp_path, imagenet_vgg):
    from fastst.anystyle_train import AnyStyleConfig, starting_model, train_anystyle

    config = AnyStyleConfig(
        out=str(tmp_path / "run"),
        iterations=3,
        init=None,
        **_tiny_run(tmp_path, warmup=1, train_shared=False),
    )
    torch.manual_seed(config.seed)  # the run's own start, drawn the same way
    start = starting_model(config).state_dict()
    trained = load_checkpoint(Path(train_anystyle(config, progress=False)).with_name("checkpoint.pth"))[
        "model"
    ]
    body = [k for k in start if k.startswith("body.")]
    predictor = [k for k in start if k.startswith("predictor.") and not k.endswith(("mean", "std"))]
    assert body and predictor
    for key in body:
        torch.testing.assert_close(trained[key], start[key])
    assert any(not torch.equal(trained[k], start[k]) for k in predictor)


def test_painting_crops_add_paintings_after_each_whole_one(tmp_path, imagenet_vgg):
    from fastst.anystyle_train import painting_targets

    paths = sorted(_folder(tmp_path / "paintings", 2, (64, 48), 3).iterdir())
    whole = painting_targets(paths, 32, tmp_path / "whole.pt", "cpu", progress=False)
    cropped = painting_targets(paths, 32, tmp_path / "whole.pt", "cpu", progress=False, crops=2)
    assert cropped["key"] != whole["key"]  # the cache of the whole paintings is not taken for it
    assert len(whole["names"]) == 2 and len(cropped["names"]) == 6
    assert cropped["names"][0] == paths[0].name and cropped["names"][3] == paths[1].name
    torch.testing.assert_close(cropped["stats"][[0, 3]], whole["stats"])
    for name in STYLE_LAYERS:
        torch.testing.assert_close(cropped["grams"][name][[0, 3]], whole["grams"][name])
    assert not torch.allclose(cropped["stats"][1], cropped["stats"][0])  # a crop describes itself


def test_a_painting_described_in_one_pass_has_the_statistics_the_model_reads(imagenet_vgg):
    from fastst.anystyle import STATS_SIZE
    from fastst.anystyle_train import describe_painting

    painting = torch.rand(3, 300, 200, generator=torch.Generator().manual_seed(5))
    for size in (STATS_SIZE, 64):  # one VGG-16 pass for both, and two
        stats, grams, energy = describe_painting(painting, imagenet_vgg, size)
        torch.testing.assert_close(
            stats, painting_statistics(painting, imagenet_vgg)[0], atol=1e-4, rtol=1e-4
        )
        assert len(grams) == len(STYLE_LAYERS)
        assert energy == pytest.approx(sum(float(g.pow(2).sum()) for g in grams))


def test_a_painting_view_turns_colours_about_the_grey_axis():
    from fastst.anystyle_train import _colour_matrix, painting_view

    # a third of a turn about the grey axis sends red to green, green to blue, blue to red
    turn = _colour_matrix(2 * torch.pi / 3, 1.0)
    torch.testing.assert_close(turn, torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]]), atol=1e-6, rtol=0)
    # no saturation leaves each pixel's grey, the mean of its channels
    pixel = torch.tensor([0.9, 0.3, 0.0])
    torch.testing.assert_close(_colour_matrix(0.7, 0.0) @ pixel, torch.full((3,), 0.4))
    grey = torch.full((3, 40, 30), 0.25)
    draw = torch.Generator().manual_seed(0)
    for _ in range(8):
        view = painting_view(grey, draw)
        assert 20 <= view.shape[1] <= 40 and 15 <= view.shape[2] <= 30
        torch.testing.assert_close(view, torch.full_like(view, 0.25))  # grey stays grey


@pytest.mark.slow
def test_training_on_painting_views_resumes_exactly(tmp_path, imagenet_vgg):
    from fastst.anystyle_train import AnyStyleConfig, train_anystyle

    common = _tiny_run(tmp_path, warmup=1, checkpoint_every=1, painting_views=True, init=None)
    straight = train_anystyle(AnyStyleConfig(out=str(tmp_path / "a"), iterations=3, **common), progress=False)
    train_anystyle(AnyStyleConfig(out=str(tmp_path / "b"), iterations=2, **common), progress=False)
    resumed = train_anystyle(
        AnyStyleConfig(out=str(tmp_path / "b"), iterations=3, **common), resume=True, progress=False
    )
    a, b = torch.load(straight, weights_only=True), torch.load(resumed, weights_only=True)
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key])


def test_starting_from_a_trained_network_gives_that_network_for_every_painting():
    from fastst import TransformerNet

    torch.manual_seed(1)
    trained = TransformerNet(width=0.25, residual_blocks=2, input_skip=True)
    for p in trained.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    model = AnyStyleNet(width=0.25, residual_blocks=2, input_skip=True)
    model.start_from(trained.eval())
    photo = torch.rand(1, 3, 40, 36)
    for stats in torch.randn(2, 1, statistics_size()):
        torch.testing.assert_close(model.for_painting(stats)(photo), trained(photo))


def test_training_can_go_on_from_a_one_pass_model_file(tmp_path):
    from fastst.anystyle_train import AnyStyleConfig, starting_model

    model = _model()
    path = tmp_path / "anystyle.pth"
    atomic_torch_save(model_file(model), path)
    started = starting_model(AnyStyleConfig(init=str(path)))
    stats, photo = torch.randn(1, statistics_size()), torch.rand(1, 3, 32, 32)
    with torch.no_grad():  # the file's network (fp16-rounded weights), not a fresh one
        assert (started.for_painting(stats)(photo) - model.for_painting(stats)(photo)).abs().max() < 2e-2
    assert started.training


def test_from_a_multi_style_model_every_painting_starts_at_its_mean_style(tmp_path):
    from fastst import TransformerNet
    from fastst.anystyle_train import AnyStyleConfig, starting_model

    torch.manual_seed(2)
    several = TransformerNet(width=0.25, residual_blocks=2, input_skip=True, styles=3)
    for p in several.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    path = tmp_path / "three.pth"
    torch.save({"model": several.state_dict(), "net": several.config, "styles": ["a", "b", "c"]}, path)
    started = starting_model(AnyStyleConfig(init=str(path))).eval()
    photo = torch.rand(1, 3, 36, 44)
    with torch.no_grad():
        mean = several.eval()(photo, torch.full((3,), 1 / 3))
        one = several(photo, 0)
        out = started.for_painting(torch.randn(1, statistics_size()))(photo)
    torch.testing.assert_close(out, mean)
    assert (out - one).abs().max() > 1e-3  # the mean, not the first style


def test_strength_moves_the_norms_along_the_line_from_the_average_painting():
    model = _model()
    model.predictor.mean.normal_()
    model.predictor.std.uniform_(0.5, 2.0)
    stats = torch.randn(1, statistics_size())
    at = {s: torch.cat([torch.cat(p, 1) for p in model.norm_parameters(stats, s)], 1) for s in (0, 1, 2)}
    # strength 0 is the average training painting: statistics equal to the predictor's mean
    average = torch.cat([torch.cat(p, 1) for p in model.norm_parameters(model.predictor.mean[None])], 1)
    torch.testing.assert_close(at[0], average)
    torch.testing.assert_close(at[1], torch.cat([torch.cat(p, 1) for p in model.norm_parameters(stats)], 1))
    torch.testing.assert_close(at[2] - at[1], at[1] - at[0])  # the output layer is linear in the embedding
    assert not torch.allclose(at[0], at[1])


def test_a_style_run_from_a_one_pass_model_starts_at_that_paintings_network(tmp_path, imagenet_vgg):
    from fastst.config import TrainConfig
    from fastst.train import initial_model

    model = _model()
    atomic_torch_save(model_file(model, half=False), tmp_path / "anystyle.pth")
    painting = tmp_path / "painting.png"
    Image.fromarray((torch.rand(48, 40, 3) * 255).byte().numpy()).save(painting)
    config = TrainConfig.from_preset("smoke", style=str(painting), out=str(tmp_path / "run"))
    config.init = str(tmp_path / "anystyle.pth")
    started = initial_model(config)
    photo = torch.rand(1, 3, 32, 32)
    with torch.no_grad():  # the painting's own network, computed independently, in training mode
        expected = model.for_painting(painting_statistics(load_image(painting)))
        torch.testing.assert_close(started.eval()(photo), expected(photo))
    assert started.one_pass is None  # trained, it no longer computes the painting's shared graph
    other = tmp_path / "other.png"
    Image.fromarray((torch.rand(40, 40, 3) * 255).byte().numpy()).save(other)
    config.style = [str(painting), str(other)]
    with pytest.raises(FaststError, match="one-pass model"):
        initial_model(config)


def _same_weights(a, b) -> bool:
    a, b = a.state_dict(), b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_default_one_pass_model_is_anystyle_fast():
    from fastst.anystyle import is_one_pass

    assert all(map(is_one_pass, ("anystyle", "anystyle_base", "anystyle_fast")))
    assert not is_one_pass("starry_night")
    assert _same_weights(load_anystyle(), load_anystyle("anystyle_fast"))  # found by name as a style is
    assert not _same_weights(load_anystyle(), load_anystyle("anystyle"))
    assert not _same_weights(load_anystyle(), load_anystyle("anystyle_base"))


def test_a_palette_goes_through_the_default_one_pass_model_and_the_small_one_refuses_it(imagenet_vgg):
    from fastst.stylize import load_one_style

    painting = torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(0))
    net = load_one_style(None, "cpu", painting=painting, palette=1.0)
    default = load_anystyle("anystyle_fast")
    assert not net.input_skip and net.config == default.for_painting(cached_statistics(painting)).config
    with pytest.raises(FaststError, match="--palette with anystyle: .*anystyle_base"):
        load_one_style("anystyle", "cpu", painting=painting, palette=1.0)  # named: no other model


def test_a_missing_shipped_one_pass_model_says_how_to_train_it(tmp_path, monkeypatch):
    from fastst import host

    monkeypatch.setattr(host, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(FaststError, match="make anystyle-fast"):
        load_anystyle()
    with pytest.raises(FaststError, match="make anystyle`"):
        load_anystyle("anystyle")
    with pytest.raises(
        FaststError, match=f"{tmp_path / 'anystyle_base.pth'}: train one with `make anystyle-base`"
    ):
        load_anystyle("anystyle_base")  # named, not the default
    with pytest.raises(FaststError, match="no one-pass model at elsewhere.pth$"):
        load_anystyle("elsewhere.pth")  # a file of one's own: no make target


def test_the_apps_list_of_trained_styles_leaves_out_one_pass_runs(tmp_path, monkeypatch):
    from fastst.app import model_choices
    from fastst.host import pretrained_path

    monkeypatch.setenv("FASTST_RUNS", str(tmp_path))
    (tmp_path / "painted").mkdir()
    (tmp_path / "one_pass").mkdir()
    (tmp_path / "painted" / "model.pth").write_bytes(pretrained_path("starry_night").read_bytes())
    atomic_torch_save(model_file(_model()), tmp_path / "one_pass" / "model.pth")
    trained = [label for label in model_choices() if label.startswith("trained: ")]
    assert trained == ["trained: painted"]


def test_a_one_pass_file_without_the_shared_networks_weights_loads_them_from_that_network(tmp_path):
    from fastst.anystyle import without_shared_convolutions
    from fastst.transformer import TransformerNet

    torch.manual_seed(3)
    net = TransformerNet(width=0.25, residual_blocks=1, input_skip=True)
    torch.save({"model": net.state_dict(), "net": net.config}, tmp_path / "net.pth")
    model = _model()
    model.start_from(net)  # its convolutions are the network's, its predictor its own
    full = model_file(model, half=False)
    slim = without_shared_convolutions(full, str(tmp_path / "net.pth"))
    assert slim["body_from"] == str(tmp_path / "net.pth")
    assert not any(k.startswith("body.") for k in slim["model"])
    atomic_torch_save(slim, tmp_path / "slim.pth")
    loaded = load_anystyle(tmp_path / "slim.pth")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)

    # a network whose convolutions differ keeps its own
    model.body.encoder[0][1].weight.data.add_(1)
    assert "body_from" not in without_shared_convolutions(model_file(model), str(tmp_path / "net.pth"))

    # the network changed since: a one-line error, not another model
    torch.save(
        {
            "model": TransformerNet(width=0.25, residual_blocks=1, input_skip=True).state_dict(),
            "net": net.config,
        },
        tmp_path / "net.pth",
    )
    with pytest.raises(FaststError, match="another"):
        load_anystyle(tmp_path / "slim.pth")


def test_painting_views_refuse_crops_and_made_styles(tmp_path):
    from fastst.anystyle_train import AnyStyleConfig, train_anystyle

    # the views are drawn per painting file: a crop or a made style has none to draw from
    for k, extra in enumerate(({"painting_crops": 1}, {"made_styles": 1})):
        (tmp_path / str(k)).mkdir()
        settings = _tiny_run(tmp_path / str(k), painting_views=True, **extra)
        with pytest.raises(FaststError, match="views"):
            train_anystyle(AnyStyleConfig(out=str(tmp_path / str(k) / "run"), **settings), progress=False)


def test_a_new_predictor_takes_the_paintings_standardisation_and_a_trained_one_keeps_its_own(tmp_path):
    from fastst.anystyle_train import AnyStyleConfig, starting_model

    stats = torch.randn(5, statistics_size(), generator=torch.Generator().manual_seed(2))
    new = starting_model(AnyStyleConfig(init=None, width=0.25, residual_blocks=1), stats)
    torch.testing.assert_close(new.predictor.mean, stats.mean(0))
    torch.testing.assert_close(new.predictor.std, stats.std(0).clamp_min(1e-3))
    trained = _model()
    trained.predictor.mean.fill_(0.5)
    trained.predictor.std.fill_(2.0)
    atomic_torch_save(model_file(trained), tmp_path / "anystyle.pth")
    kept = starting_model(AnyStyleConfig(init=str(tmp_path / "anystyle.pth")), stats)
    assert torch.all(kept.predictor.mean == 0.5) and torch.all(kept.predictor.std == 2.0)


def test_the_shipped_one_pass_model_on_the_base_takes_the_base_s_network_and_a_palette(imagenet_vgg):
    from fastst.host import PRETRAINED_DIR

    saved = load_checkpoint(PRETRAINED_DIR / "anystyle_base.pth", "model")
    # its file holds the predictor alone and names the base, whose convolutions the loader checks by digest
    assert saved["body_from"] == "base" and not any(k.startswith("body.") for k in saved["model"])
    model = load_anystyle("anystyle_base")
    assert model.palette > 0 and not model.net_config["input_skip"]
    g = torch.Generator().manual_seed(0)
    painting = (
        torch.tensor([0.8, 0.5, 0.2])[:, None, None] + 0.15 * torch.rand(3, 64, 64, generator=g)
    ).clamp(0, 1)
    plain = model.for_painting(cached_statistics(painting))
    with_palette = painting_network(painting, model)
    photo = torch.rand(1, 3, 64, 64, generator=g)
    with torch.no_grad():
        before, after = plain(photo)[0], with_palette(photo)[0]
    target = colour_moments(painting)[0]
    gap = lambda out: (colour_moments(out)[0] - target).abs().sum()  # noqa: E731
    assert gap(after) < gap(before)


def test_the_app_takes_another_one_pass_model_and_refuses_a_missing_one_in_one_line():
    from fastst.app import Stylist, _model_palette

    chosen, small = Stylist(one_pass="anystyle_base").anystyle(), Stylist(one_pass="anystyle").anystyle()
    assert chosen.palette > 0 and small.palette == 0.0
    assert chosen.net_config != small.net_config  # the base's full-width network, not the small one
    # the colours slider: set to the model's own fraction, and fixed where the model takes none
    assert _model_palette(Stylist()) == (chosen.palette, True)  # the default is the base's model
    assert _model_palette(Stylist(one_pass="anystyle")) == (0.0, False)
    r = subprocess.run(
        [sys.executable, "-m", "fastst", "app", "--one-pass", "no_such_model"], capture_output=True, text=True
    )
    assert r.returncode != 0 and "no_such_model" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_the_app_s_refine_button_starts_from_its_one_pass_model_as_the_command_line_s_model_does(
    tmp_path, monkeypatch
):
    from fastst import app
    from fastst.presets import REFINE_START

    started = []
    monkeypatch.setattr(
        app, "refine_painting", lambda painting, steps, start: started.append(start) or tmp_path / "m.pth"
    )
    painting = tmp_path / "painting.png"
    Image.effect_noise((40, 30), 80).convert("RGB").save(painting)
    app.Stylist(one_pass="anystyle").refine(str(painting))
    app.Stylist().refine(str(painting))
    assert started == ["anystyle", REFINE_START]


def test_a_predictor_moved_onto_a_distilled_network_takes_its_convolutions_and_keeps_its_norms(data_root):
    from fastst.anystyle_train import AnyStyleConfig, starting_model
    from fastst.stylize import load_model

    base = load_anystyle("anystyle_base")
    fast = on_network(base, "base_fast")
    assert _same_weights(fast.predictor, base.predictor) and fast.palette == base.palette
    shipped = load_model("base_fast").state_dict()
    assert all(torch.equal(v, shipped[k].float()) for k, v in fast.body.state_dict().items())
    # base_fast was distilled from the base with the base's norms kept, so a painting's norms predicted for
    # the base give nearly the base's picture through base_fast's convolutions
    noise = torch.randn(1, statistics_size(), generator=torch.Generator().manual_seed(0))
    stats = base.predictor.mean[None] + 0.5 * base.predictor.std[None] * noise
    photo = load_image(sorted((data_root / "test" / "bsds500_test_subset").glob("*.jpg"))[0], 128)[None]
    with torch.no_grad():
        a, b = base.for_painting(stats)(photo), fast.for_painting(stats)(photo)
    assert 10 * torch.log10(1 / ((a - b) ** 2).mean()) > 24
    # onto base_lite, which pads with zeros: its padding comes along with its convolutions (a painting's
    # network pads as base_lite does), and its picture stays near the base's
    lite = on_network(base, "base_lite")
    assert lite.net_config["pad"] == "zero" == load_model("base_lite").config["pad"]
    painting_net = lite.for_painting(stats)
    assert painting_net.config["pad"] == "zero"
    assert sum(type(m) is torch.nn.ZeroPad2d for m in painting_net.modules()) == sum(
        type(m) is torch.nn.ZeroPad2d for m in load_model("base_lite").modules()
    )
    with torch.no_grad():
        c = painting_net(photo)
    assert 10 * torch.log10(1 / ((a - c) ** 2).mean()) > 20
    with pytest.raises(FaststError, match="norms of base_fast"):
        on_network(load_anystyle("anystyle"), "base_fast")  # the small model's norms are not the base's
    with pytest.raises(FaststError, match="--body goes with --from a one-pass model"):
        starting_model(AnyStyleConfig(init="starry_night", body="base_fast"))


def test_the_default_one_pass_model_is_anystyle_base_s_predictor_on_base_fast(imagenet_vgg):
    from fastst.host import PRETRAINED_DIR

    saved = load_checkpoint(PRETRAINED_DIR / "anystyle_fast.pth", "model")
    assert saved["body_from"] == "base_fast" and not any(k.startswith("body.") for k in saved["model"])
    assert saved["config"]["init"] == "anystyle_base" and saved["config"]["body"] == "base_fast"
    model = load_anystyle()
    assert model.net_config["fold"] and model.net_config["ranks"]
    assert model.palette == load_anystyle("anystyle_base").palette
    # a painting's network, its colour map folded into the folded last layer, keeps odd sizes
    painting = torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(1))
    net = painting_network(painting, model)
    with torch.no_grad():
        for size in [(37, 53), (17, 9)]:
            assert net(torch.rand(1, 3, *size)).shape == (1, 3, *size)
