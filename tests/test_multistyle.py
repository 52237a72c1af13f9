"""Several styles in one network (conditional instance norm): the network, its training and its use."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastst.data import PhotoDataset, usable_images
from fastst.errors import FaststError
from fastst.io import load_image
from fastst.losses import PerceptualLoss
from fastst.stylize import load_model, parse_style
from fastst.train import TrainConfig, start_style, train
from fastst.transformer import (
    ConditionalInstanceNorm2d,
    TransformerNet,
    count_parameters,
    single_style,
)

ROOT = Path(__file__).resolve().parent.parent


def _randomised(model: TransformerNet, seed: int = 0) -> TransformerNet:
    """Every norm's scale and shift drawn at random, so that styles differ before any training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (ConditionalInstanceNorm2d, torch.nn.InstanceNorm2d)):
                m.weight.copy_(1 + 0.5 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.5 * torch.randn(m.bias.shape, generator=g))
    return model.eval()


def test_one_style_is_todays_network_parameter_for_parameter():
    today, one = TransformerNet(width=0.5), TransformerNet(width=0.5, styles=1)
    assert list(today.state_dict()) == list(one.state_dict())
    assert count_parameters(today) == count_parameters(one)
    assert not any(isinstance(m, ConditionalInstanceNorm2d) for m in one.modules())
    # a style costs two numbers per channel of every norm: 2 x (c1 + c2 + c3 + 10 c3 + c2 + c1)
    three = TransformerNet(width=1.0, styles=3)
    assert count_parameters(three) - count_parameters(TransformerNet(width=1.0)) == 2 * 2 * (
        32 + 64 + 128 * 11 + 64 + 32
    )


def test_the_conditional_norm_with_one_hot_weights_is_the_instance_norm():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 10, 12) * 3 + 1
    plain = torch.nn.InstanceNorm2d(8, affine=True)
    cond = ConditionalInstanceNorm2d(8, 3)
    with torch.no_grad():
        plain.weight.uniform_(0.5, 2)
        plain.bias.uniform_(-1, 1)
        cond.weight[1] = plain.weight
        cond.bias[1] = plain.bias
    cond.mix = torch.tensor([[0.0, 1.0, 0.0]])
    torch.testing.assert_close(cond(x), plain(x), atol=1e-5, rtol=1e-5)


def test_a_style_index_a_one_hot_mix_and_the_single_style_network_agree():
    model = _randomised(TransformerNet(width=0.25, input_skip=True, styles=3))
    x = torch.rand(2, 3, 40, 36)
    by_index = model(x, 2)
    torch.testing.assert_close(model(x, [0.0, 0.0, 1.0]), by_index)
    torch.testing.assert_close(single_style(model, 2)(x), by_index, atol=1e-5, rtol=1e-5)
    assert (model(x, 0) - by_index).abs().max() > 0.05  # the styles differ
    # a batch with a style per image is each image with its own style
    batch = model(x, torch.tensor([0, 2]))
    torch.testing.assert_close(batch[1], by_index[1])
    torch.testing.assert_close(batch[0], model(x, 0)[0])


def test_a_mix_interpolates_the_scales_and_shifts():
    model = _randomised(TransformerNet(width=0.25, styles=2))
    half = single_style(model, [0.5, 0.5])
    a, b = single_style(model, 0), single_style(model, 1)
    for (key, mixed), va, vb in zip(
        half.state_dict().items(), a.state_dict().values(), b.state_dict().values()
    ):
        torch.testing.assert_close(mixed, (va + vb) / 2, msg=key)
    with pytest.raises(ValueError, match="2 weights"):
        model(torch.rand(1, 3, 32, 32), [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="needs a style|style"):
        model(torch.rand(1, 3, 32, 32))


def test_style_specs_name_index_and_mix():
    names = ["starry_night", "the_scream", "composition_vii"]
    assert parse_style("the_scream", names) == 1
    assert parse_style("2", names) == 2
    assert parse_style("starry_night:0.25,the_scream:0.75", names) == [0.25, 0.75, 0.0]
    from fastst.errors import FaststError

    with pytest.raises(FaststError, match="unknown style 'mona_lisa'"):
        parse_style("mona_lisa:1", names)
    with pytest.raises(FaststError, match="not a weight"):
        parse_style("starry_night:lots", names)


def _two_styles(tmp_path, data_root, name="two", **kw):
    styles = (str(data_root / "styles" / "starry_night.jpg"), str(data_root / "styles" / "the_scream.jpg"))
    return TrainConfig.from_preset(
        "smoke",
        style=styles,
        data=str(data_root / "train" / "bsds500_trainval"),
        snapshots=str(data_root / "test" / "bsds500_test_subset"),
        out=str(tmp_path / name),
        device="cpu",
        precision="fp32",
        **kw,
    )


def _new_style(tmp_path, data_root, base: Path, **kw):
    """One iteration of a style the two-style ``base`` run does not hold, started from it."""
    return TrainConfig.from_preset(
        "smoke",
        style=str(data_root / "styles" / "composition_vii.jpg"),
        data=str(data_root / "train" / "bsds500_trainval"),
        out=str(tmp_path / "new"),
        device="cpu",
        precision="fp32",
        iterations=1,
        init=str(base / "model.pth"),
        snapshots=str(tmp_path / "none"),
        **kw,
    )


def test_a_two_style_run_learns_two_styles_logs_each_and_loads_by_name(tmp_path, data_root):
    config = _two_styles(tmp_path, data_root, iterations=8, lr=1e-2)
    run = train(config, progress=False).run
    with open(run / "losses.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["iteration"]), r["style_name"]) for r in rows[:4]] == [
        (1, "starry_night"),
        (2, "the_scream"),
        (3, "starry_night"),
        (4, "the_scream"),
    ]
    assert {p.name for p in (run / "snapshots").iterdir()} == {"starry_night", "the_scream"}
    model = load_model(run / "model.pth")
    assert model.styles == 2 and model.style_names == ["starry_night", "the_scream"]
    photo = torch.rand(1, 3, 48, 48)
    outs = [load_model(run / "model.pth", style=name)(photo) for name in model.style_names]
    assert (outs[0] - outs[1]).abs().mean() > 1e-3  # the two styles' networks differ after training
    mix = load_model(run / "model.pth", style="starry_night:1,the_scream:0")(photo)
    torch.testing.assert_close(mix, outs[0])


def test_resuming_a_two_style_run_is_exact(tmp_path, data_root):
    whole = train(_two_styles(tmp_path, data_root, "whole", iterations=8, checkpoint_every=3), progress=False)
    train(_two_styles(tmp_path, data_root, "split", iterations=5, checkpoint_every=3), progress=False)
    train(
        _two_styles(tmp_path, data_root, "split", iterations=8, checkpoint_every=3),
        resume=True,
        progress=False,
    )
    a = torch.load(whole.run / "model.pth", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "model.pth", weights_only=True)["model"]
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-6


def test_a_new_style_starts_from_a_multi_style_model_as_the_mean_of_its_styles(tmp_path, data_root):
    base = train(_two_styles(tmp_path, data_root, "base", iterations=4, lr=1e-2), progress=False).run
    new = load_model(
        train(_new_style(tmp_path, data_root, base, train_only="norms"), progress=False).run / "model.pth"
    )
    start = single_style(load_model(base / "model.pth"), [0.5, 0.5])
    changed = [k for k, v in new.state_dict().items() if not torch.equal(v, start.state_dict()[k])]
    assert new.styles == 1 and changed and all(k.rsplit(".", 1)[-1] in ("weight", "bias") for k in changed)
    norm_keys = {
        f"{n}.{p}"
        for n, m in start.named_modules()
        if isinstance(m, torch.nn.InstanceNorm2d)
        for p in ("weight", "bias")
    }
    assert set(changed) <= norm_keys  # only the scale and shift were trained


def test_a_new_style_starts_where_asked_and_closest_is_the_lowest_scoring_start():
    net = _randomised(TransformerNet(width=0.25, styles=3))
    net.style_names = ["a", "b", "c"]
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert start_style(net, "mean") == [1 / 3] * 3
    assert start_style(net, "b") == 1 and start_style(net, "a:1,c:1") == [1.0, 0.0, 1.0]
    with torch.no_grad():
        for target in (2, [1 / 3] * 3):  # a style, then the mean: the distance to its own output is 0
            wanted = net(x, target)
            assert start_style(net, "closest", lambda m, s: (m(x, s) - wanted).abs().mean()) == target


def test_a_closest_start_records_every_candidates_objective(tmp_path, data_root, imagenet_vgg):
    base = train(_two_styles(tmp_path, data_root, "base", iterations=2, lr=1e-2), progress=False).run
    config = _new_style(tmp_path, data_root, base, init_style="closest")
    run = train(config, progress=False).run
    scores = json.loads((run / "config.json").read_text())["init_style"]["objective"]
    # eq. 5 of the new style (raw weights) on the base network's output at each candidate start, both
    # styles and their mean, recomputed on the run's first photos
    dataset = PhotoDataset(
        usable_images(config.data, warn=False),
        config.image_size,
        config.seed,
        config.crop_steps(),
        config.batch_size,
    )
    photos = torch.stack([dataset[(i, i)] for i in range(config.batch_size)])
    criterion = PerceptualLoss(imagenet_vgg, load_image(config.style, config.style_size), 1.0, 2.0, 1e-4)
    network = load_model(base / "model.pth")
    with torch.no_grad():
        expected = {str(s): criterion(network(photos, s), photos).total.item() for s in (0, 1, [0.5, 0.5])}
    assert scores == pytest.approx(expected, rel=1e-4)
    assert len(set(scores.values())) == 3  # the candidates differ, so the match is no accident
    one_style = _new_style(tmp_path, data_root, run, init_style="closest")  # the new run holds one style
    one_style.out = str(tmp_path / "again")
    with pytest.raises(FaststError, match="multi-style"):
        train(one_style, progress=False)


def test_stylize_command_takes_a_style_of_a_multi_style_model(tmp_path, data_root):
    run = train(_two_styles(tmp_path, data_root, iterations=2), progress=False).run
    photo = next((data_root / "test" / "bsds500_test_subset").glob("*.jpg"))
    cmd = [
        sys.executable,
        "-m",
        "fastst",
        "stylize",
        "--model",
        str(run / "model.pth"),
        "--input",
        str(photo),
    ]
    no_style = subprocess.run(
        [*cmd, "--output", str(tmp_path / "a.png")], capture_output=True, text=True, cwd=ROOT
    )
    assert (
        no_style.returncode != 0
        and "holds 2 styles" in no_style.stderr
        and "Traceback" not in no_style.stderr
    )
    mixed = subprocess.run(
        [*cmd, "--output", str(tmp_path / "b.png"), "--style", "starry_night:0.5,the_scream:0.5"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert mixed.returncode == 0, mixed.stderr
    assert (tmp_path / "b.png").stat().st_size > 0
    listed = subprocess.run(
        [sys.executable, "-m", "fastst", "styles", "--model", str(run / "model.pth")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert listed.stdout.split() == ["starry_night", "the_scream"]


@pytest.mark.parametrize("options", [{"input_skip": True}, {"input_skip": False, "fold": True}])
def test_onnx_export_of_a_multi_style_network_takes_the_mix_as_an_input(tmp_path, options):
    # folded, each norm sees a reshaped map whose channels the exporter cannot tell by itself
    ort = pytest.importorskip("onnxruntime")
    from fastst.export import export_network

    model = _randomised(TransformerNet(width=0.25, styles=3, **options))
    torch.save(
        {"model": model.state_dict(), "net": model.config, "styles": ["a", "b", "c"]}, tmp_path / "m.pth"
    )
    exported = export_network(load_model(tmp_path / "m.pth"), tmp_path / "m.onnx")
    session = ort.InferenceSession(str(exported))
    x = torch.rand(1, 3, 45, 61)
    for mix in ([0.2, 0.5, 0.3], [0.0, 1.0, 0.0]):
        got = session.run(None, {"image": x.numpy(), "mix": torch.tensor([mix]).numpy()})[0]
        assert abs(got - model(x, mix).detach().numpy()).max() <= 1e-4
