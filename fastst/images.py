"""Image files without PyTorch: reading any common image, writing atomically, finding the images of a
folder. :mod:`fastst.io` builds its tensors on these; the quick path (:mod:`fastst.quick`) uses them alone."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from fastst.errors import FaststError

# Clips by their suffix (container format for PyAV), and the image formats that may be animated.
VIDEO_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}
ANIMATED_SUFFIXES = {".gif", ".webp"}
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


def save_array(a: np.ndarray, path: str | os.PathLike, quality: int = 95) -> Path:
    """Write an (H, W, 3) uint8 array to ``path`` atomically; the suffix picks the format."""
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise FaststError(f"unsupported output format {path.suffix!r} for {path} (use .png, .jpg or .webp)")
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    try:
        with atomic_path(path) as tmp:
            Image.fromarray(a, "RGB").save(tmp, format=fmt, **kwargs)
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


def image_inputs(spec: str) -> list[Path]:
    """The images named by ``spec``: the file itself, the images of a folder, or a glob's matches."""
    path = Path(spec)
    if path.is_dir():
        images = list_images(path)
        if not images:
            raise FaststError(f"no images in the folder {spec}")
        return images
    if path.exists():
        return [path]
    if any(ch in spec for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=True) if is_image_file(p))
        if not matches:
            raise FaststError(f"no images match {spec}")
        return matches
    raise FaststError(f"no such file or folder: {spec}")


def output_targets(inputs: list[Path], output: str | os.PathLike, single: bool) -> list[Path]:
    """Where each input is written: ``output`` itself for a single input, else ``output/<name>`` (the
    folder is created)."""
    out = Path(output)
    if single:
        return [out]
    if out.exists() and not out.is_dir():
        raise FaststError(f"output must be a folder for several inputs: {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FaststError(f"cannot create output folder {out}: {e.strerror}") from None
    return [out / p.name for p in inputs]


def fail_or_raise(error: FaststError, single: bool, failures: list[str]) -> None:
    """A bad input: the command's error when it is the only input, else reported in one line and skipped
    (its message added to ``failures``)."""
    if single:
        raise error
    failures.append(str(error))
    warnings.warn(str(error), stacklevel=3)


def outcome_line(kind: str, written: int, failures: list[str], skipped: int, output: str) -> str:
    """What stylizing the inputs came to, in one line."""
    return (
        f"stylized {written} {kind}{'s' if written != 1 else ''} into {output}"
        + (f"; {skipped} skipped (exist; --overwrite to replace)" if skipped else "")
        + (f"; {len(failures)} failed" if failures else "")
    )
