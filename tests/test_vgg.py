import io
import pickle

import numpy as np
import pytest
import torch
import torchvision

from fastst.errors import FaststError
from fastst.vgg import (
    LAYERS,
    VGG16Features,
    _NumpyOnlyUnpickler,
    flax_to_torchvision,
    imagenet_state_dict,
)


@pytest.fixture(scope="module")
def state():
    return imagenet_state_dict()


def test_imagenet_weights_match_torchvisions_published_tensors(state):
    # spot values of torchvision's vgg16-397923af.pth (see the weights documentation)
    for key, shape, first, last, total in [
        ("0.weight", (64, 3, 3, 3), -0.5537306, -0.4273236, -3.2429295),
        ("0.bias", (64,), 0.4033880, 0.2108327, -4.1603023),
        ("28.bias", (512,), 0.1229901, 0.3459411, 37.1958842),
    ]:
        t = state[key]
        assert tuple(t.shape) == shape
        assert t.flatten()[0].item() == pytest.approx(first, abs=1e-6)
        assert t.flatten()[-1].item() == pytest.approx(last, abs=1e-6)
        assert t.double().sum().item() == pytest.approx(total, abs=1e-4)
    assert len(state) == 26


def test_state_dict_loads_into_torchvisions_own_vgg16_and_features_agree(state):
    reference = torchvision.models.vgg16().features
    reference.load_state_dict(state)
    ours = VGG16Features(state_dict=state)
    x = torch.rand(1, 3, 48, 48)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = reference[: LAYERS["relu4_3"] + 1]((x - mean) / std)
        got = ours(x)["relu4_3"]
    assert torch.allclose(got, expected, atol=1e-5)


def test_forward_stops_at_the_deepest_layer_asked_for():
    vgg = VGG16Features(weights="random")
    seen = []
    for i, layer in enumerate(vgg.features):
        layer.register_forward_hook(lambda m, a, o, i=i: seen.append(i))
    out = vgg(torch.rand(1, 3, 16, 16), ("relu1_2", "relu2_2"))
    assert set(out) == {"relu1_2", "relu2_2"}
    assert max(seen) == LAYERS["relu2_2"]
    assert out["relu2_2"].shape == (1, 128, 8, 8)


def test_loss_network_is_frozen():
    vgg = VGG16Features(weights="random")
    vgg.train()
    assert not vgg.training
    assert not any(p.requires_grad for p in vgg.parameters())


def test_flax_layout_is_transposed_to_torchvision_layout():
    rng = np.random.default_rng(0)
    tree = {
        "VGG16_0": {
            f"Conv_{i}": {
                "kernel": rng.standard_normal((3, 3, 2, 4)).astype(np.float32),
                "bias": np.arange(4, dtype=np.float32),
            }
            for i in range(13)
        }
    }
    state = flax_to_torchvision(tree)
    k = tree["VGG16_0"]["Conv_0"]["kernel"]
    # weight[out, in, kh, kw] = kernel[kh, kw, in, out]
    assert state["0.weight"][3, 1, 2, 0].item() == pytest.approx(float(k[2, 0, 1, 3]))
    assert list(state)[-1] == "28.bias"


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_restricted_unpickler_refuses_code():
    payload = pickle.dumps({"VGG16_0": _Evil()})
    with pytest.raises(pickle.UnpicklingError):
        _NumpyOnlyUnpickler(io.BytesIO(payload)).load()


def test_restricted_unpickler_reads_numpy_arrays():
    payload = pickle.dumps({"a": np.arange(6, dtype=np.float32).reshape(2, 3)})
    assert _NumpyOnlyUnpickler(io.BytesIO(payload)).load()["a"].sum() == 15


def test_missing_weights_give_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FaststError, match="weights fetch"):
        imagenet_state_dict(allow_download=False)


def test_random_weights_only_when_asked():
    with pytest.raises(ValueError):
        VGG16Features(weights="whatever")
