import pytest
import torch

from fastst import TransformerNet
from fastst.transformer import count_parameters


def test_default_network_has_johnsons_parameter_count():
    # 9x9x3x32 conv ... 9x9x32x3 conv with affine instance norms, counted by hand in the docs
    assert count_parameters(TransformerNet()) == 1_679_235


def test_half_width_network_is_about_a_quarter_the_size():
    full, half = count_parameters(TransformerNet()), count_parameters(TransformerNet(width=0.5))
    assert 0.24 < half / full < 0.27


@pytest.mark.parametrize("size", [(1, 1), (3, 7), (5, 5), (17, 31), (64, 64), (33, 2), (4097, 3)])
def test_output_has_the_input_size(size):
    net = TransformerNet(width=0.25).eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert 0 <= y.min() and y.max() <= 1


@pytest.mark.parametrize("options", [dict(norm="batch"), dict(upsample="transpose"), dict(width=0.5)])
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


def test_gradients_reach_every_parameter():
    net = TransformerNet(width=0.25)
    net(torch.rand(2, 3, 16, 16)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
