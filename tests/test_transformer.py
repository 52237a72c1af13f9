import copy

import pytest
import torch
import torch.nn.functional as F

from fastst import TransformerNet
from fastst.inference import (
    KeepPrecisionPad,
    SinglePassInstanceNorm,
    SpaceToDepthConv,
    SubPixelUpsample,
    TwoTermInputConv,
    _from_phases,
    _single_pass,
    _to_phases,
    for_inference,
)
from fastst.temporal import FixedNorm, StreamNorm
from fastst.transformer import FoldedNorm, FoldedReflect, InstanceNorm2d, count_parameters, pads_into_convs


def test_default_network_has_johnsons_parameter_count():
    """Counted by hand, layer by layer: every convolution k x k, c_in -> c_out with a bias, every one but
    the last followed by an instance norm with a scale and shift per channel."""

    def conv(k, c_in, c_out, norm=True):
        return k * k * c_in * c_out + c_out + (2 * c_out if norm else 0)

    expected = (
        conv(9, 3, 32)  # 9x9 stride 1
        + conv(3, 32, 64)  # 3x3 stride 2
        + conv(3, 64, 128)  # 3x3 stride 2
        + 5 * 2 * conv(3, 128, 128)  # five residual blocks of two 3x3 convolutions
        + conv(3, 128, 64)  # upsampling x2, 3x3
        + conv(3, 64, 32)  # upsampling x2, 3x3
        + conv(9, 32, 3, norm=False)  # 9x9 to RGB
    )
    assert expected == 1_679_235
    assert count_parameters(TransformerNet()) == expected


def test_half_width_network_is_about_a_quarter_the_size():
    full, half = count_parameters(TransformerNet()), count_parameters(TransformerNet(width=0.5))
    assert 0.24 < half / full < 0.27


@pytest.mark.parametrize("fold", [False, True])
@pytest.mark.parametrize("size", [(1, 1), (3, 7), (5, 5), (17, 31), (64, 64), (33, 2), (4097, 3)])
def test_output_has_the_input_size(size, fold):
    net = TransformerNet(width=0.25, fold=fold).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert 0 <= y.min() and y.max() <= 1


@pytest.mark.parametrize(
    "options", [dict(norm="batch"), dict(upsample="transpose"), dict(width=0.5), dict(shuffle=2)]
)
def test_ablation_variants_keep_the_size(options):
    net = TransformerNet(**options)
    y = net(torch.rand(2, 3, 30, 22))
    assert y.shape == (2, 3, 30, 22)


def test_input_skip_starts_near_the_identity():
    torch.manual_seed(0)
    plain, skip = TransformerNet().eval(), TransformerNet(input_skip=True).eval()
    x = torch.rand(1, 3, 48, 40) * 0.8 + 0.1
    with torch.no_grad():
        assert (skip(x) - x).abs().mean() < 0.1 * (plain(x) - x).abs().mean()


def test_unknown_options_are_refused():
    with pytest.raises(ValueError):
        TransformerNet(norm="layer")
    with pytest.raises(ValueError):
        TransformerNet(upsample="bilinear")
    with pytest.raises(ValueError):
        TransformerNet(shuffle=4)
    with pytest.raises(ValueError):
        TransformerNet(fold=True, shuffle=2)
    with pytest.raises(ValueError):
        TransformerNet(ranks={"residual": [8, 8]})  # factoring takes the folded layout
    with pytest.raises(ValueError):
        TransformerNet(fold=True, ranks={"middle": [8, 8]})
    for bad in ({"residual": [-8, 8]}, {"residual": [8]}, {"up1": [8.5, None]}, {"into": [4, 8]}):
        with pytest.raises(ValueError):
            TransformerNet(fold=True, ranks=bad)


def test_a_folded_network_has_no_convolution_at_full_resolution():
    net = TransformerNet(width=0.5, residual_blocks=3, shuffle=2, input_skip=True)
    sizes = []
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1]))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert net(x).shape == x.shape
    assert max(sizes) == 32 and len(sizes) == 2 + 2 * 3 + 2
    assert net.config["shuffle"] == 2 and "shuffle" not in TransformerNet().config  # old files unchanged
    assert (net.train()(x) - x).abs().mean() < 0.1  # the input skip's small last layer, as unfolded


def test_gradients_reach_every_parameter():
    net = TransformerNet(width=0.25)
    net(torch.rand(2, 3, 16, 16)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"width": 0.5},
        {"upsample": "transpose"},
        {"norm": "batch"},
        {"input_skip": True},
        {"shuffle": 2, "residual_blocks": 3},
        {"fold": True},
        {"fold": True, "width": 0.5, "ranks": {"residual": [8, 8], "into": [None, 8], "out": [8, None]}},
        {
            "fold": True,
            "width": 0.5,
            "ranks": {"down": [8, None], "up1": [8, 8], "up2": [8, 8], "down2": [8, 8]},
        },
        {
            "fold": True,
            "width": 0.5,
            "pad": "zero",
            "ranks": {"residual": [8, 8], "up2": [8, 8], "out": [8, None]},
        },
    ],
)
# not 1x1: padded, it is a constant map, whose instance norm magnifies rounding by 1/sqrt(eps)
@pytest.mark.parametrize("size", [(3, 7), (17, 31), (64, 48)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_inference_form_computes_the_same_function(options, size, memory_format):
    torch.manual_seed(0)
    net = TransformerNet(**options)
    with torch.no_grad():  # perturbed weights (the norms' too), and batch-norm statistics of real use
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
        for m in net.modules():
            m.momentum = None  # a plain average of the batches below
        for _ in range(3):
            net(torch.rand(4, 3, 32, 32))
    net.eval()
    fast = for_inference(net).to(memory_format=memory_format)
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        reference = net(x)
        # channels-last changes the order of the convolutions' sums: the bound is what it changes in the
        # network itself
        same_layout = copy.deepcopy(net).to(memory_format=memory_format)(x.to(memory_format=memory_format))
        bound = 1e-5 + 2 * (same_layout - reference).abs().max()
        assert (fast(x.to(memory_format=memory_format)) - reference).abs().max() < bound
    assert not fast.training and not any(p.requires_grad for p in fast.parameters())


def test_inference_form_replaces_the_full_resolution_layers():
    fast = for_inference(TransformerNet())
    assert isinstance(fast.decoder[0], SubPixelUpsample) and isinstance(fast.decoder[3], SubPixelUpsample)
    assert isinstance(fast.decoder[-1], SpaceToDepthConv)
    assert for_inference(fast) is fast  # already in this form: nothing to redo
    # the upsampling layers: 4x the outputs at a quarter of the pixels, through 2x2 taps instead of 3x3
    assert fast.decoder[0].conv.weight.shape == (4 * 64, 128, 2, 2)
    # no padding left that would turn a bf16 map into an fp32 one under autocast
    assert not any(
        isinstance(m, (torch.nn.ReflectionPad2d, torch.nn.ReplicationPad2d)) for m in fast.modules()
    )
    # the 9x9 convolution becomes 5x5 over 4x the channels on both sides
    assert fast.decoder[-1].conv.weight.shape == (12, 128, 5, 5)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_phase_shuffles_invert_each_other(memory_format):
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).reshape(2, 3, 4, 6).to(memory_format=memory_format)
    phases = _to_phases(x)
    assert phases.shape == (2, 12, 2, 3)
    # channel block (a, b) holds the pixels of row parity a and column parity b
    assert torch.equal(phases[:, 3:6], x[:, :, 0::2, 1::2])
    assert torch.equal(_from_phases(phases), x)
    # the layout is kept, so the next layer reads what it is given without a copy
    for y in (phases, _from_phases(phases)):
        assert y.is_contiguous(memory_format=memory_format)


def test_padding_keeps_a_bf16_map_bf16_under_autocast():
    x = torch.rand(1, 8, 6, 5).to(torch.bfloat16, memory_format=torch.channels_last)
    for pad, mode in ((torch.nn.ReflectionPad2d(2), "reflect"), (torch.nn.ReplicationPad2d(1), "replicate")):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            kept = KeepPrecisionPad(pad)(x)
        assert kept.dtype == torch.bfloat16
        assert torch.equal(kept.float(), F.pad(x.float(), pad.padding, mode=mode))


@pytest.mark.parametrize("shuffle", [1, 2, "fold"])
def test_inference_form_in_bf16_channels_last_stays_close_to_fp32(shuffle):
    """The layout and precision stylizing runs in on a CPU: bf16 autocast, channels-last memory."""
    torch.manual_seed(0)
    if shuffle == "fold":
        net = TransformerNet(
            width=0.5, residual_blocks=2, fold=True, ranks={"into": [None, 8], "up2": [8, 8]}
        )
    else:
        net = TransformerNet(width=0.5, residual_blocks=2, shuffle=shuffle, input_skip=shuffle == 2)
    net.eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    fast = for_inference(net).to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, 34, 46)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = fast(x.to(memory_format=torch.channels_last))
    with torch.no_grad():
        reference = net(x)
    assert y.shape == reference.shape
    # bf16's 8 significant bits through every layer: far from fp32's agreement, close on an image's scale
    assert (y.float() - reference).abs().mean() < 0.01


def test_first_layer_keeps_the_input_exact_under_bf16_autocast():
    torch.manual_seed(0)
    layer = TransformerNet().encoder[0]
    two_term = TwoTermInputConv(copy.deepcopy(layer))
    x = torch.rand(1, 3, 40, 40)
    # the exact input against bf16 weights, in fp64, then rounded to bf16 as autocast's output is
    conv = layer[1]
    exact_input = F.conv2d(
        layer[0](x).double(), conv.weight.detach().bfloat16().double(), conv.bias.detach().bfloat16().double()
    ).bfloat16()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        ours, plain = two_term(x), layer(x)
    assert (ours == exact_input).float().mean() > 0.99  # the rest: ties of the fp32 sum's order
    assert (plain == exact_input).float().mean() < 0.8  # the plain layer rounds the image to 8 bits
    with torch.no_grad():  # in fp32 it is the plain layer
        assert torch.equal(two_term(x), layer(x))


def test_a_factored_first_layer_keeps_the_input_exact_under_bf16_autocast():
    """The folded first layer, factored: the image's two terms go through its first convolution, whose
    output the 1x1 after it takes as any other layer's."""
    torch.manual_seed(0)
    layer = TransformerNet(width=0.5, fold=True, ranks={"into": [None, 8]}).encoder[0]
    pad, (first, after) = layer
    x = torch.rand(1, 3, 40, 40)
    exact_input = F.conv2d(pad(x).double(), first.weight.detach().bfloat16().double()).bfloat16()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        ours = TwoTermInputConv(copy.deepcopy(layer)).eval()
        assert (ours._first(pad(x)) == exact_input).float().mean() > 0.99
        assert ours(x).shape == after(first(pad(x))).shape == (1, 64, 20, 20)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), layer(x))


def test_first_layer_keeps_the_input_exact_when_compiled():
    # compiler fusion keeps intermediates in fp32: the split must not rely on a cast pair
    torch.manual_seed(0)
    layer = TransformerNet(width=0.25).encoder[0]
    x = torch.rand(1, 3, 24, 24)
    conv = layer[1]
    exact_input = F.conv2d(
        layer[0](x).double(), conv.weight.detach().bfloat16().double(), conv.bias.detach().bfloat16().double()
    ).bfloat16()
    compiled = torch.compile(TwoTermInputConv(copy.deepcopy(layer)))
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        ours = compiled(x)
    assert (ours == exact_input).float().mean() > 0.99


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_networks_instance_norm_is_torchs_in_value_gradient_and_state(layout):
    torch.manual_seed(0)
    ours, library = InstanceNorm2d(8, affine=True), torch.nn.InstanceNorm2d(8, affine=True)
    with torch.no_grad():
        library.weight.uniform_(0.5, 2)
        library.bias.uniform_(-1, 1)
    ours.load_state_dict(library.state_dict())  # a network saved before loads unchanged
    x = (3 + 2 * torch.randn(2, 8, 13, 17)).contiguous(memory_format=layout)
    xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    outs = [ours(xs[0]), library(xs[1])]
    g = torch.randn(2, 8, 13, 17)
    for out in outs:
        out.backward(g)
    assert (outs[0] - outs[1]).abs().max() < 1e-5
    assert (xs[0].grad - xs[1].grad).abs().max() < 1e-4
    for a, b in zip(ours.parameters(), library.parameters()):
        assert (a.grad - b.grad).abs().max() < 1e-3 * b.grad.abs().max()
    # the layout it was given is the one it hands on: no copy for the next convolution to make
    assert outs[0].is_contiguous(memory_format=layout)


def test_single_pass_instance_norm_compiled_is_exact_also_far_from_zero():
    torch.manual_seed(0)
    norm = torch.nn.InstanceNorm2d(8, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    ours = torch.compile(_single_pass(norm))
    # a mean 10^5 times the spread: plain sums of x would cancel to noise, the shifted ones do not
    x = 1000 + 0.01 * torch.randn(2, 8, 13, 17)
    with torch.no_grad():
        exact = copy.deepcopy(norm).double()(x.double())
        assert (ours(x).double() - exact).abs().max() < 1e-4
        y = torch.randn(2, 8, 13, 17)  # and as close as the library on centred data
        assert (ours(y) - norm(y)).abs().max() < 1e-5
    assert isinstance(_single_pass(norm), SinglePassInstanceNorm)


@pytest.mark.parametrize("shuffle, input_skip", [(1, False), (2, True)])  # the base's kind, the small kind
def test_compiled_inference_form_computes_the_same_function(shuffle, input_skip):
    """Compiled as ``--compile`` runs it: channels-last memory, through the phase interleaving's strided
    views."""
    torch._dynamo.reset()  # compiled from scratch: after other tests' shapes it would compile for any shape
    torch.manual_seed(0)
    # one residual block: compiling takes time per layer, and the blocks are alike
    net = TransformerNet(width=0.5, input_skip=input_skip, residual_blocks=1, shuffle=shuffle)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    net.eval()
    compiled = torch.compile(for_inference(net).to(memory_format=torch.channels_last))
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        assert (compiled(x.to(memory_format=torch.channels_last)) - net(x)).abs().max() < 2e-4


def test_the_small_preset_trains_the_folded_network_the_shipped_style_is():
    from fastst.config import TrainConfig
    from fastst.step import build_model
    from fastst.stylize import load_model

    config = TrainConfig.from_preset("cpu_small", style="s.jpg", data="d")
    shipped = load_model("starry_night")
    assert build_model(config).config == shipped.config
    assert shipped.config["shuffle"] == 2


def _full_resolution(norm, x):
    """``norm`` of the full-resolution map whose folded map is ``x``: unfolded, normed, folded again."""
    return F.pixel_unshuffle(norm(F.pixel_shuffle(x, 2)), 2)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_a_folded_norm_is_the_full_maps_norm_in_value_and_gradient_and_keeps_the_layout(layout):
    torch.manual_seed(0)
    norm = InstanceNorm2d(6, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    x = (2 + torch.randn(2, 24, 7, 9)).contiguous(memory_format=layout)
    xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    ours, full = FoldedNorm(norm)(xs[0]), _full_resolution(norm, xs[1])
    torch.testing.assert_close(ours, full, atol=1e-5, rtol=0)
    g = torch.randn_like(full)
    (ours * g).sum().backward()
    grads = [p.grad.clone() for p in (xs[0], norm.weight, norm.bias)]
    norm.zero_grad()
    (full * g).sum().backward()
    for a, b in zip(grads, (xs[1].grad, norm.weight.grad, norm.bias.grad)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert ours.is_contiguous(memory_format=layout)  # no copy for the next convolution to make
    # a video's norms: frame by frame, smoothed, a clip's recorded statistics and the network fixed by them
    with torch.no_grad():
        for mode in ("frame", "ema", "clip"):
            folded, full = StreamNorm(norm, mode), StreamNorm(norm, mode)
            for stream in (folded, full):
                stream.recording = mode == "clip"
            torch.testing.assert_close(FoldedNorm(folded)(x), _full_resolution(full, x), atol=1e-5, rtol=0)
            torch.testing.assert_close(folded.moments, full.moments, atol=1e-5, rtol=1e-5)
        folded.recording = full.recording = False
        torch.testing.assert_close(FoldedNorm(folded)(x), _full_resolution(full, x), atol=1e-5, rtol=0)
        fixed = FixedNorm(full)
        torch.testing.assert_close(FoldedNorm(fixed)(x), _full_resolution(fixed, x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_a_folded_reflection_is_the_full_maps_in_one_layout(layout):
    x = torch.rand(2, 2, 12, 10, requires_grad=True)  # reflected by 4 pixels: 2 blocks of the folded map
    folded = F.pixel_unshuffle(x, 2).contiguous(memory_format=layout)
    reflected = FoldedReflect(2)(folded)
    full = F.pixel_unshuffle(F.pad(x, (4, 4, 4, 4), mode="reflect"), 2)
    assert torch.equal(reflected, full)
    assert reflected.is_contiguous(memory_format=layout)
    g = torch.randn_like(full)  # and the gradient a training step takes through it
    torch.testing.assert_close(*(torch.autograd.grad((y * g).sum(), x)[0] for y in (reflected, full)))


def test_the_inference_form_pads_after_a_factored_layers_first_1x1_convolution():
    ranks = {"residual": [8, 8], "down": [8, None], "down2": [8, 8], "up1": [8, 8]}
    fast = for_inference(TransformerNet(fold=True, width=0.5, ranks=ranks))
    pads = [
        (seq, i)
        for seq in fast.modules()
        if isinstance(seq, torch.nn.Sequential)
        for i, m in enumerate(seq)
        if isinstance(m, KeepPrecisionPad)
    ]
    # each residual convolution, the factored downsamplings and upsampling pad 8 channels, not their input's
    after = [seq[i + 1] for seq, i in pads]
    assert sum(isinstance(m, torch.nn.Conv2d) and m.in_channels == 8 for m in after) == 2 * 5 + 3
    assert not any(isinstance(m, torch.nn.Sequential) for m in after)


def test_zero_padding_pads_every_map_but_the_image_and_goes_into_the_convolutions():
    net = TransformerNet(fold=True, width=0.5, pad="zero", ranks={"residual": [8, 8], "down2": [8, 8]})
    pads = [m for m in net.modules() if isinstance(m, (torch.nn.ReflectionPad2d, torch.nn.ZeroPad2d))]
    assert isinstance(pads[0], torch.nn.ReflectionPad2d) and pads[0] in list(net.encoder[0].modules())
    assert all(type(m) is torch.nn.ZeroPad2d for m in pads[1:]) and net.config["pad"] == "zero"
    assert "pad" not in TransformerNet(fold=True).config  # the files of reflection networks unchanged
    absorbed = pads_into_convs(copy.deepcopy(net))
    # only the padding wider on one side (before the stride-2 layer's 2x2 form) stays a layer of its own
    left = [m for m in absorbed.modules() if type(m) is torch.nn.ZeroPad2d]
    assert [m.padding for m in left] == [(1, 0, 1, 0)]
    padded = [m for m in absorbed.modules() if isinstance(m, torch.nn.Conv2d) and m.padding != (0, 0)]
    assert all(m.kernel_size != (1, 1) for m in padded) and len(padded) == len(pads) - 2
    with pytest.raises(ValueError, match="fold"):
        TransformerNet(pad="zero")
    with pytest.raises(ValueError, match="pad"):
        TransformerNet(fold=True, pad="mirror")
