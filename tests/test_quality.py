import dataclasses
import json
from pathlib import Path

import pytest
import torch

from fastst import quality
from fastst.errors import FaststError
from fastst.gatys import gatys, starting_image
from fastst.io import file_digest, load_image
from fastst.losses import PerceptualLoss
from fastst.results import command_line, cpu_flags, cpu_model
from fastst.runs import RunFolder, keep_weights
from fastst.transformer import TransformerNet

ROOT = Path(__file__).resolve().parent.parent


def hand_objective(vgg, image, content, style, content_weight, style_weight, tv_weight):
    """Eq. 1-5 written out again, independently of fastst.losses, for one image."""
    layers = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
    f_img = vgg(image[None], layers)
    f_content = vgg(content[None], ("relu3_3",))["relu3_3"]
    f_style = vgg(style[None], layers)
    c, h, w = f_img["relu3_3"].shape[1:]
    l_content = ((f_img["relu3_3"] - f_content) ** 2).sum() / (c * h * w)
    l_style = 0.0
    for name in layers:
        a, b = f_img[name][0], f_style[name][0]
        ca, ha, wa = a.shape
        cb, hb, wb = b.shape
        g_a = torch.einsum("ihw,jhw->ij", a, a) / (ca * ha * wa)
        g_b = torch.einsum("ihw,jhw->ij", b, b) / (cb * hb * wb)
        l_style = l_style + ((g_a - g_b) ** 2).sum()
    l_tv = sum(((image[:, i + 1, :] - image[:, i, :]) ** 2).sum() for i in range(image.shape[1] - 1)) + sum(
        ((image[:, :, j + 1] - image[:, :, j]) ** 2).sum() for j in range(image.shape[2] - 1)
    )
    return (content_weight * l_content + style_weight * l_style + tv_weight * l_tv).item()


@pytest.fixture
def tiny(data_root, imagenet_vgg, tmp_path, monkeypatch):
    """A tiny protocol on two held-out photos at 40 px, with its curves cached in tmp_path."""
    monkeypatch.setenv(quality.CACHE_ENV, str(tmp_path / "cache"))
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("100007.jpg", "108069.jpg"):
        (photos / name).write_bytes((data_root / "test" / "bsds500_test_subset" / name).read_bytes())
    protocol = quality.Protocol(
        style=str(data_root / "styles" / "starry_night.jpg"),
        style_weight=2.0,
        style_size=64,
        photo_size=40,
        iterations=6,
        noise_iterations=6,
    )
    return protocol, photos


def test_the_network_objective_matches_a_hand_written_eq5(tiny, imagenet_vgg):
    protocol, photos = tiny
    ref = quality.reference(protocol, photos, progress=False)
    torch.manual_seed(0)
    net = TransformerNet(width=0.25).eval()
    photo = next(iter(ref.photos.values()))
    got = quality.network_objective(net, photo, ref.criterion)
    scored = quality.score(net, ref)["photos"][0]["network_objective"]  # with the reference's own features
    with torch.no_grad():
        out = net(photo[None])[0]  # eval mode: clamped to [0, 1]
        want = hand_objective(
            imagenet_vgg,
            out,
            photo,
            load_image(protocol.style, protocol.style_size),
            protocol.content_weight,
            protocol.style_weight,
            protocol.tv_weight,
        )
    assert got == pytest.approx(want, rel=1e-4)
    assert scored == pytest.approx(want, rel=1e-4)


def test_the_lbfgs_curve_starts_at_the_starting_image(tiny, imagenet_vgg):
    protocol, photos = tiny
    path = sorted(photos.iterdir())[0]
    photo = load_image(path, protocol.photo_size)
    style = load_image(protocol.style, protocol.style_size)
    criterion = PerceptualLoss(imagenet_vgg, style, **protocol.weights())
    for init in ("content", "noise"):
        curve = quality.lbfgs_curve(protocol, path, init, 4)
        assert len(curve) == 5
        start = starting_image(photo[None], init).clamp(0, 1)
        with torch.no_grad():
            assert curve[0] == pytest.approx(criterion(start, photo[None]).total.item(), rel=1e-5)
        assert min(curve) < curve[0]


def test_the_curve_counts_iterations_from_zero(data_root, imagenet_vgg):
    """objective[i] is the image after i L-BFGS steps: after one step the image is the start minus the
    gradient scaled by min(1, 1/|g|_1) (L-BFGS's first step, learning rate 1)."""
    content = load_image(data_root / "test" / "demo" / "chicago.jpg", 32)
    style = load_image(data_root / "styles" / "starry_night.jpg", 32)
    result = gatys(content, style, 1, "lbfgs", vgg=imagenet_vgg, progress=False)
    assert len(result.objective) == 2
    criterion = PerceptualLoss(imagenet_vgg, style, 1.0, 2.0, 1e-4)
    x = content[None].clone().requires_grad_(True)
    total = criterion(x.clamp(0, 1), content[None]).total
    (g,) = torch.autograd.grad(total, x)
    x1 = x.detach() - min(1.0, 1.0 / g.abs().sum().item()) * g
    with torch.no_grad():
        assert result.objective[0] == pytest.approx(total.item(), rel=1e-5)
        assert result.objective[1] == pytest.approx(
            criterion(x1.clamp(0, 1), content[None]).total.item(), rel=1e-4
        )


def test_returning_the_photo_scores_worse_than_a_trained_network(tiny):
    protocol, photos = tiny
    ref = quality.reference(protocol, photos, progress=False)
    identity = TransformerNet(width=0.25, input_skip=True)
    torch.nn.init.zeros_(identity.decoder[-1][1].weight)  # output = input exactly
    torch.manual_seed(0)
    trained = TransformerNet(width=0.25, input_skip=True)
    opt = torch.optim.Adam(trained.parameters(), lr=3e-3)
    batch = [p[None] for p in ref.photos.values()]
    for _ in range(40):  # fit the network to the objective on these photos
        opt.zero_grad()
        sum(ref.criterion(trained(x), x).total for x in batch).backward()
        opt.step()
    assert quality.score(identity, ref)["optimality_ratio"] > quality.score(trained, ref)["optimality_ratio"]


def test_curves_are_cached_and_reused(tiny, tmp_path):
    protocol, photos = tiny
    path = sorted(photos.iterdir())[0]
    first = quality.lbfgs_curve(protocol, path, "content", 4)
    files = list((tmp_path / "cache").glob("*.json"))
    assert len(files) == 1
    saved = json.loads(files[0].read_text())
    # the file says where and by what it was computed
    assert (saved["machine"]["cpu"], saved["machine"]["cpu_flags"]) == (cpu_model(), cpu_flags())
    assert saved["machine"]["torch"] == torch.__version__ and "git_dirty" in saved["machine"]
    assert saved["command"] == command_line()
    saved["objective"] = [float(i) for i in range(len(saved["objective"]))]  # a marker only the cache holds
    files[0].write_text(json.dumps(saved))
    assert quality.lbfgs_curve(protocol, path, "content", 3) == [0.0, 1.0, 2.0, 3.0]
    assert first[0] != 0.0


def test_a_curve_cached_before_the_machine_was_recorded_is_still_found(data_root, tmp_path):
    """The committed curves record no machine or command: the key and the file name stayed as they were,
    so scoring finds each one where it lies instead of running L-BFGS again."""
    for committed in sorted((ROOT / "results" / "lbfgs").glob("*.json")):
        saved = json.loads(committed.read_text())
        style = data_root / "styles" / saved["style"]
        photo = data_root / "test" / "bsds500_test_subset" / saved["photo"]
        if style.is_file() and photo.is_file():
            if (file_digest(style), file_digest(photo)) == (saved["style_sha256"], saved["photo_sha256"]):
                break
    else:
        pytest.skip("no committed curve of the fetched styles and photos")
    cache = tmp_path / "cache"
    cache.mkdir()
    copy = cache / committed.name
    copy.write_bytes(committed.read_bytes())
    fields = {f.name for f in dataclasses.fields(quality.Protocol)} - {
        "style",
        "iterations",
        "noise_iterations",
    }
    settings = {k: tuple(saved[k]) if k == "style_layers" else saved[k] for k in fields}
    protocol = quality.Protocol(style=str(style), **settings)
    # a few iterations first: were the file missed, they alone would be computed, and in seconds
    assert quality.lbfgs_curve(protocol, photo, saved["init"], 3, cache, False) == saved["objective"][:4]
    assert [p.name for p in cache.iterdir()] == [committed.name]
    assert copy.read_bytes() == committed.read_bytes()
    whole = len(saved["objective"]) - 1
    assert quality.lbfgs_curve(protocol, photo, saved["init"], whole, cache, False) == saved["objective"]


def test_a_run_is_scored_once_per_reference_and_again_where_its_weights_change(tiny, tmp_path, monkeypatch):
    protocol, photos = tiny
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    torch.manual_seed(0)
    for iteration in (0, 10):
        keep_weights(TransformerNet(width=0.25), run, iteration, float(iteration), [])
    ref = quality.reference(protocol, photos, progress=False)
    first = quality.curve(run.root, ref, progress=False)
    assert [r["iteration"] for r in first] == [0, 10]

    scored = []
    real = quality.score_file
    monkeypatch.setattr(quality, "score_file", lambda path, *a: scored.append(path.name) or real(path, *a))
    assert quality.curve(run.root, ref, progress=False) == first  # nothing new: nothing scored
    assert scored == []

    keep_weights(TransformerNet(width=0.25), run, 10, 10.0, [])  # other weights under the same name
    keep_weights(TransformerNet(width=0.25), run, 20, 20.0, [])
    again = quality.curve(run.root, ref, progress=False)
    assert scored == ["000010.pth", "000020.pth"]
    assert again[0] == first[0] and again[1]["optimality_ratio"] != first[1]["optimality_ratio"]

    scored.clear()
    fewer = quality.reference(protocol, photos, count=1, progress=False)  # another reference: scored anew
    quality.curve(run.root, fewer, progress=False)
    assert scored == ["000000.pth", "000010.pth", "000020.pth"]


def test_a_damaged_kept_weights_file_is_a_one_line_error(tiny, tmp_path):
    protocol, photos = tiny
    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    keep_weights(TransformerNet(width=0.25), run, 0, 0.0, [])
    (run.weights / "000000.pth").write_bytes(b"cut short")
    ref = quality.reference(protocol, photos, progress=False)
    with pytest.raises(FaststError, match="not a fastst kept weights"):
        quality.curve(run.root, ref, progress=False)


def test_the_fig5_threshold_is_the_ratio_at_which_the_count_changes(tiny):
    protocol, photos = tiny
    ref = quality.reference(protocol, photos, progress=False)
    for k in range(1, protocol.noise_iterations + 1):
        alone = []
        for stem in ref.photos:
            one = dataclasses.replace(ref, photos={stem: ref.photos[stem]})
            threshold, best = quality.fig5_threshold(one, k), min(ref.content_curves[stem])
            # a network just below the threshold matches at least k iterations, one just above fewer
            assert quality.first_at_or_below(ref.noise_curves[stem], threshold * best * 0.999) in (
                *range(k, protocol.noise_iterations + 1),
                None,
            )
            assert quality.first_at_or_below(ref.noise_curves[stem], threshold * best * 1.001) < k
            alone.append(threshold)
        assert quality.fig5_threshold(ref, k) == pytest.approx(sum(alone) / 2)  # the median of two
    with pytest.raises(FaststError, match="Fig. 5 counts"):
        quality.fig5_threshold(ref, protocol.noise_iterations + 1)
