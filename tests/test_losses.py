import pytest
import torch

from fastst.losses import PerceptualLoss, content_loss, gram_matrix, style_loss, tv_loss
from fastst.vgg import VGG16Features


def test_content_loss_is_squared_distance_over_chw_averaged_over_batch():
    a = torch.zeros(2, 2, 1, 2)
    b = torch.zeros(2, 2, 1, 2)
    b[0, 0, 0, 0] = 2.0  # image 0: squared distance 4, over C*H*W = 4 -> 1
    b[1, 1, 0, 1] = 1.0  # image 1: 1 / 4
    assert content_loss(a, b).item() == pytest.approx((1.0 + 0.25) / 2)


def test_gram_matrix_by_hand():
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, -1.0]]]])  # B=1, C=2, H=1, W=2
    # phi phi^T = [[1+4, 3-2], [3-2, 9+1]] = [[5, 1], [1, 10]], divided by C*H*W = 4
    expected = torch.tensor([[[5.0, 1.0], [1.0, 10.0]]]) / 4
    assert torch.allclose(gram_matrix(f), expected)


def test_gram_matrix_is_symmetric_and_batched():
    g = gram_matrix(torch.randn(3, 5, 4, 6))
    assert g.shape == (3, 5, 5)
    assert torch.allclose(g, g.transpose(1, 2))


def test_style_loss_sums_layers_of_squared_frobenius_norms_and_broadcasts_the_target():
    out = [torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]), torch.zeros(2, 1, 1)]
    target = [torch.zeros(1, 2, 2), torch.full((1, 1, 1), 3.0)]
    # layer 1: image 0 -> 2, image 1 -> 0, mean 1; layer 2: 9 for both images
    assert style_loss(out, target).item() == pytest.approx(1.0 + 9.0)
    assert style_loss(dict(a=out[0], b=out[1]), dict(b=target[1], a=target[0])).item() == pytest.approx(10.0)


def test_tv_loss_by_hand():
    img = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # horizontal: (1-0)^2 + (4-2)^2 = 5; vertical: (2-0)^2 + (4-1)^2 = 13
    assert tv_loss(img).item() == pytest.approx(18.0)
    assert tv_loss(torch.ones(2, 3, 5, 5)).item() == 0.0
    assert tv_loss(torch.cat([img, 2 * img])).item() == pytest.approx((18.0 + 72.0) / 2)


def test_perceptual_loss_weights_each_equation():
    torch.manual_seed(0)
    vgg = VGG16Features(weights="random")
    style, content, y_hat = torch.rand(3, 32, 32), torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    unit = PerceptualLoss(vgg, style, 1.0, 1.0, 1.0, content_layer="relu2_2")
    weighted = PerceptualLoss(vgg, style, 2.0, 3.0, 5.0, content_layer="relu2_2")
    a, b = unit(y_hat, content), weighted(y_hat, content)
    assert b.content.item() == pytest.approx(2 * a.content.item(), rel=1e-5)
    assert b.style.item() == pytest.approx(3 * a.style.item(), rel=1e-5)
    assert b.tv.item() == pytest.approx(5 * a.tv.item(), rel=1e-5)
    assert b.total.item() == pytest.approx(b.content.item() + b.style.item() + b.tv.item(), rel=1e-6)
    # each term against the plain functions
    f = vgg(y_hat)
    fc = vgg(content)
    assert a.content.item() == pytest.approx(content_loss(f["relu2_2"], fc["relu2_2"]).item(), rel=1e-5)
    grams_s = [gram_matrix(v) for v in vgg(style[None]).values()]
    assert a.style.item() == pytest.approx(
        style_loss([gram_matrix(v) for v in f.values()], grams_s).item(), rel=1e-5
    )


def test_a_perfect_output_has_no_content_loss():
    vgg = VGG16Features(weights="random")
    loss = PerceptualLoss(vgg, torch.rand(3, 16, 16), 1.0, 1.0, 0.0)
    x = torch.rand(1, 3, 16, 16)
    assert loss(x, x).content.item() == 0.0


def test_gram_matrices_stay_fp32_under_autocast():
    """Autocast runs bmm in bf16 where the CPU has it; the Gram matrices and the style loss must not."""
    from fastst.losses import gram_matrix

    torch.manual_seed(0)
    f = torch.rand(2, 16, 24, 24) + 1.0  # far from zero: bf16's 8 bits would show
    exact = torch.einsum("bchw,bdhw->bcd", f.double(), f.double()) / (16 * 24 * 24)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = gram_matrix(f)
    assert g.dtype == torch.float32
    assert torch.allclose(g.double(), exact, rtol=1e-5)
