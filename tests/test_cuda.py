"""The GPU paths: skipped where there is no CUDA device."""

import pytest
import torch

from fastst.inference import for_inference
from fastst.io import load_image
from fastst.measure import psnr
from fastst.stylize import stylize
from fastst.transformer import TransformerNet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def true_fp32():
    """The GPU reference without TF32 (PyTorch's default for cuDNN convolutions)."""
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = saved


def _trained_like() -> TransformerNet:
    torch.manual_seed(0)
    net = TransformerNet()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return net.eval()


def test_inference_form_of_a_gpu_model_stays_on_the_gpu_and_matches_the_cpu(true_fp32):
    net = _trained_like()
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        expected = net(x)
        fast = for_inference(net.cuda())
        assert all(p.is_cuda for p in fast.parameters())
        assert (fast(x.cuda()).cpu() - expected).abs().max() < 1e-4


def test_bf16_on_the_gpu_is_as_close_to_fp32_as_bf16_on_the_cpu(data_root, true_fp32):
    photos = sorted((data_root / "test" / "bsds500_test_subset").glob("*.jpg"))[:3]
    net = _trained_like()
    for path in photos:
        image = load_image(path, 256)
        reference = stylize(net, image, precision="fp32")
        on_cpu = psnr(stylize(net, image, precision="bf16"), reference)
        on_gpu = psnr(stylize(net.cuda(), image, precision="bf16"), reference)
        net.cpu()
        assert on_gpu > on_cpu - 3, (path.name, on_gpu, on_cpu)


def test_training_on_the_gpu_logs_finite_losses_and_resumes(tmp_path, data_root):
    from fastst.train import TrainConfig, load_losses, train

    config = TrainConfig.from_preset(
        "smoke",
        style=str(data_root / "styles" / "starry_night.jpg"),
        data=str(data_root / "train"),
        out=str(tmp_path / "run"),
        device="cuda",
        iterations=4,
    )
    train(config, progress=False)
    config.iterations = 6
    result = train(config, resume=True, progress=False)
    losses = load_losses(result.run)
    assert list(losses["iteration"]) == [1, 2, 3, 4, 5, 6]
    assert losses["total"].notna().all() and (losses["total"] > 0).all()
