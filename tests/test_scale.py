import pytest
import torch

from fastst import TransformerNet
from fastst.errors import FaststError
from fastst.scale import _luma, at_scale, auto_scale, guided_upsample, resize, to_longer_side
from fastst.stylize import Stylizer


def test_guided_upsampling_reproduces_a_linear_function_of_the_guide():
    # a picture that is, everywhere, 0.7 * the photo's luminance + 0.1 (per channel: other a, b) comes back
    # at full size as exactly that function of the full-size photo, fine detail included
    torch.manual_seed(0)
    photo = torch.rand(1, 3, 64, 80)
    low = resize(photo, (32, 40))
    a, b = torch.tensor([0.7, -0.4, 0.2]).view(1, 3, 1, 1), torch.tensor([0.1, 0.8, 0.3]).view(1, 3, 1, 1)
    out = guided_upsample(a * _luma(low) + b, low, photo, eps=1e-8)
    torch.testing.assert_close(out, (a * _luma(photo) + b).clamp(0, 1), atol=2e-3, rtol=0)


def test_guided_upsampling_is_sharper_than_a_resize():
    # a step edge in the photo stays a step: the guided result is closer to the full-size truth
    photo = torch.zeros(1, 3, 64, 64)
    photo[..., :, 33:] = 1.0
    truth = 1 - photo  # an inverting "style"
    low = resize(photo, (16, 16))
    guided = guided_upsample(1 - low, low, photo)
    plain = resize(1 - low, (64, 64))
    assert (guided - truth).abs().mean() < 0.5 * (plain - truth).abs().mean()


def test_auto_scale_keeps_the_working_size():
    assert auto_scale(300, 200) == 1.0
    assert auto_scale(768, 1024, working_size=512) == 2.0


AMX = ["amx_bf16", "amx_tile", "avx512_bf16"]
FACTORED = {"fold": True, "ranks": {"residual": [8, 8]}, "input_skip": False}


@pytest.mark.parametrize(
    "flags, options, precision, size",
    [
        (["avx2", "avx512_bf16", "avx512f"], {}, "bf16", 256),  # the full-width network without AMX: smaller
        (["avx2"], {}, "fp32", 256),
        (AMX, {}, "bf16", 384),  # with AMX's bf16 tiles it keeps the usual size
        (AMX, {}, "fp32", 256),  # but not in fp32
        (["avx2", "avx512_bf16"], FACTORED, "bf16", 384),  # the base folded and factored keeps it
        (["avx2"], FACTORED, "fp32", 384),  # and in fp32
        (["avx2"], {"width": 0.375}, "fp32", 384),  # a narrower network keeps it everywhere
    ],
)
def test_auto_runs_a_costly_network_smaller_where_it_would_be_slow(
    monkeypatch, flags, options, precision, size
):
    from fastst import host

    monkeypatch.setattr(host, "cpu_flags", lambda: flags)
    seen = []
    net = TransformerNet(**options)
    stylizer = Stylizer(net, precision, style_scale="auto")
    stylizer._pass = lambda x: seen.append(tuple(x.shape[-2:])) or x  # the pass itself is not the point
    out = stylizer.batch(torch.rand(1, 3, 480, 600))
    assert out.shape == (1, 3, 480, 600) and seen == [(round(480 * size / 600), size)]
    assert Stylizer(net, style_scale=2.0).scale_for(480, 600) == 2.0  # a scale given is kept


def test_off_the_cpu_auto_keeps_the_usual_working_size_and_the_shipped_one_pass_networks_differ_in_width(
    monkeypatch,
):
    from fastst import host
    from fastst.anystyle import load_anystyle
    from fastst.scale import WORKING_SIZE, network_kind, working_size

    monkeypatch.setattr(host, "cpu_flags", lambda: ["avx2"])
    assert working_size(TransformerNet().config, "cuda") == WORKING_SIZE  # a GPU: no smaller size
    assert working_size(TransformerNet().config, "cpu", "fp32") < WORKING_SIZE
    assert network_kind(load_anystyle("anystyle_base").net_config) == "full"  # the base's network
    assert network_kind(load_anystyle("anystyle_fast").net_config) == "factored"  # folded and factored
    assert network_kind(load_anystyle("anystyle").net_config) == "narrow"


def test_at_scale_runs_at_the_smaller_size_and_returns_the_full_size():
    seen = []

    def run(x):
        seen.append(tuple(x.shape[-2:]))
        return x

    out = at_scale(run, torch.rand(1, 3, 90, 60), 3.0)
    assert seen == [(30, 20)] and out.shape == (1, 3, 90, 60)
    at_scale(run, torch.rand(1, 3, 40, 20), 0.5)  # smaller strokes: work at twice the size
    assert seen[-1] == (80, 40)


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.5, "auto"])
def test_stylizer_keeps_the_photos_size_at_any_scale(scale):
    torch.manual_seed(0)
    stylizer = Stylizer(TransformerNet(width=0.25).eval(), "fp32", style_scale=scale)
    image = torch.rand(3, 45, 71)
    assert stylizer(image).shape == image.shape
    assert stylizer.batch(image[None]).shape == (1, *image.shape)


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), "big"])
def test_a_bad_scale_is_refused(scale):
    with pytest.raises(FaststError, match="style scale"):
        Stylizer(TransformerNet(width=0.25).eval(), "fp32", style_scale=scale)


def test_to_longer_side_keeps_the_aspect_ratio_and_leaves_a_match_alone():
    x = torch.rand(1, 3, 90, 60)
    assert to_longer_side(x, 90) is x
    assert tuple(to_longer_side(x, 30).shape[-2:]) == (30, 20)
    assert tuple(to_longer_side(x, 180).shape[-2:]) == (180, 120)
