"""Reading and writing images and files: any common image in, atomic writes out."""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from fastst.errors import FaststError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
# Refuse images larger than this before decoding them (a decompression bomb declares a huge size
# in a few bytes). 16k x 16k covers every real photograph and painting scan.
MAX_PIXELS = 16384 * 16384
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    An interrupted or failed write leaves the old file, or none, never a half-written one.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FaststError(f"output folder does not exist: {path.parent}")
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=suffix or path.suffix + ".tmp", dir=path.parent
    )
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes, read in blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode ``path`` as an RGB PIL image, EXIF orientation applied."""
    path = Path(path)
    if not path.exists():
        raise FaststError(f"no such file: {path}")
    if path.is_dir():
        raise FaststError(f"expected an image file, got a folder: {path}")
    if path.stat().st_size == 0:
        raise FaststError(f"empty file: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise FaststError(
                        f"image too large: {path} is {im.width}x{im.height}, "
                        f"above the limit of {MAX_PIXELS:,} pixels"
                    )
                im.seek(0)  # first frame of an animation
                im = ImageOps.exif_transpose(im)
                return to_rgb(im)
    except FaststError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise FaststError(f"image too large: {path} exceeds the limit of {MAX_PIXELS:,} pixels") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FaststError(f"cannot read image {path}: {reason}") from None


def to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit (or 32-bit) grayscale: scale to 8 bits rather than clipping at 255.
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / peak * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA"):
        # Composite on white: transparent regions of clip art and logos are meant as background.
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def pil_to_tensor(im: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float32 tensor in [0, 1]."""
    a = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(a.copy()).permute(2, 0, 1).float().div_(255.0).contiguous()


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) tensor in [0, 1] -> RGB PIL image (values clamped)."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected one image, got a batch of {t.shape[0]}")
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(t.shape)}")
    a = t.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
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


def resize_longer_side(im: Image.Image, size: int) -> Image.Image:
    scale = size / max(im.size)
    new = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    return im.resize(new, Image.Resampling.LANCZOS)


_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}


def save_image(t: torch.Tensor, path: str | os.PathLike, quality: int = 95) -> Path:
    """Write a (3, H, W) tensor in [0, 1] to ``path`` atomically; the suffix picks the format."""
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise FaststError(f"unsupported output format {path.suffix!r} for {path} (use .png, .jpg or .webp)")
    im = tensor_to_pil(t)
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    try:
        with atomic_path(path) as tmp:
            im.save(tmp, format=fmt, **kwargs)
    except PermissionError:
        raise FaststError(f"cannot write {path}: permission denied") from None
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """All image files under ``folder`` (recursively), sorted, hidden files skipped."""
    folder = Path(folder)
    if not folder.exists():
        raise FaststError(f"no such folder: {folder}")
    if not folder.is_dir():
        raise FaststError(f"expected a folder of images, got a file: {folder}")
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and is_image_file(p)
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
