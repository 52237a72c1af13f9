"""Reading and writing images and files: any common image in, atomic writes out."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fastst.errors import FaststError
from fastst.images import (  # noqa: F401  (the image files' functions, imported from here too)
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    atomic_path,
    file_digest,
    is_image_file,
    list_images,
    open_image,
    resize_longer_side,
    save_array,
    to_rgb,
)


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file and a rename (a full disk keeps the old file)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _is_checkout(folder: Path) -> bool:
    try:
        return 'name = "fastst"' in (folder / "pyproject.toml").read_text()
    except OSError:
        return False


def project_folder(name: str, env: str) -> Path:
    """``$env`` if set, else ``name/`` in the project checkout: the one this package runs from, or (for
    an installed package) the one the working directory is in, such as its ``notebooks/`` folder where
    notebook kernels run; else ``./name``."""
    if os.environ.get(env):
        return Path(os.environ[env])
    checkout = Path(__file__).resolve().parent.parent
    if _is_checkout(checkout):
        return checkout / name
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if _is_checkout(folder):
            return folder / name
    return here / name


def load_checkpoint(path: Path, what: str = "checkpoint") -> dict:
    """``torch.load(weights_only=True)`` with one-line errors for files that are not, or no longer,
    checkpoints, and for pickles that would run code."""
    if not path.is_file():
        raise FaststError(f"no {what} at {path}")
    if path.stat().st_size == 0:
        raise FaststError(f"not a fastst {what}: {path} is empty")
    if not zipfile.is_zipfile(path):
        raise FaststError(f"not a fastst {what}: {path} is not a PyTorch checkpoint (or it is truncated)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise FaststError(f"refusing {path}: it holds objects other than weights (it may run code)") from None
    except Exception as e:
        raise FaststError(f"cannot read {what} {path}: {str(e).splitlines()[0][:160]}") from None


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float32 tensor in [0, 1]."""
    # in numpy, as tensor_to_pil: a parallel torch operation leaves torch's threads spinning on the cores an
    # exported runtime's next pass needs (fastst.runtimes.start_runtime)
    a = np.asarray(im.convert("RGB"), dtype=np.float32) / np.float32(255.0)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) tensor in [0, 1] -> RGB PIL image (values clamped)."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(t.shape)}")
    a = np.clip(t.detach().float().cpu().numpy(), 0, 1) * np.float32(255.0)
    a = np.round(a).astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(a, "RGB")


def load_image(path: str | os.PathLike, max_size: int | None = None) -> torch.Tensor:
    """Load any common image file as a (3, H, W) float tensor in [0, 1].

    JPEG, PNG (8 and 16 bit), WebP, BMP, GIF (first frame), TIFF; modes L, LA, P, RGB, RGBA, CMYK,
    16-bit grayscale. EXIF orientation is applied; transparency is composited on white. With
    ``max_size`` the longer side is shrunk to at most that many pixels.
    """
    im = open_image(path)
    if max_size is not None and max(im.size) > max_size:
        im = resize_longer_side(im, max_size)
    return pil_to_tensor(im)


def save_image(t: torch.Tensor, path: str | os.PathLike, quality: int = 95) -> Path:
    """Write a (3, H, W) tensor in [0, 1] to ``path`` atomically; the suffix picks the format."""
    return save_array(np.asarray(tensor_to_pil(t)), path, quality)
