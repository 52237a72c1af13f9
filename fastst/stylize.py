"""Stylising images with a trained network."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from fastst.errors import FaststError
from fastst.transformer import TransformerNet


def load_checkpoint_file(path: Path, what: str = "checkpoint") -> dict:
    """``torch.load(weights_only=True)`` with one-line errors for files that are not, or no longer,
    checkpoints, and for pickles that would run code."""
    import pickle
    import zipfile
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


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> TransformerNet:
    """A trained network from ``model.pth`` (or a training checkpoint), in eval mode.

    Loaded with ``weights_only=True``: a file that tries to run code is refused.
    """
    path = Path(path)
    if not path.is_file():
        raise FaststError(f"no such model file: {path}" if not path.is_dir() else f"expected a model file, got a folder: {path}")
    saved = load_checkpoint_file(path, "model")
    if not isinstance(saved, dict) or "model" not in saved:
        raise FaststError(f"not a fastst model: {path} (no network weights in it)")
    options = saved.get("net") or {k: saved.get("config", {}).get(k) for k in ("norm", "upsample", "width", "input_skip")}
    try:
        model = TransformerNet(**{k: v for k, v in options.items() if v is not None})
        model.load_state_dict(saved["model"])
    except (RuntimeError, ValueError, TypeError) as e:
        raise FaststError(f"model {path} does not match the network it declares: {str(e).splitlines()[0][:160]}") from None
    return model.eval().to(device)


def runs_precision(precision: str, device: torch.device) -> str:
    """Inference precision: fp32 unless asked (bf16 changes outputs; see the benchmarks)."""
    from fastst.train import resolve_precision
    return "fp32" if precision == "auto" else resolve_precision(precision, device)


@torch.inference_mode()
def stylize(model: TransformerNet, image: torch.Tensor, device: str | torch.device | None = None,
            precision: str = "fp32") -> torch.Tensor:
    """Stylise one (3, H, W) image (or a batch) in [0, 1]; returns the same shape on the CPU."""
    from fastst.train import autocast
    device = torch.device(device) if device is not None else next(model.parameters()).device
    single = image.dim() == 3
    batch = (image.unsqueeze(0) if single else image).to(device)
    with autocast(device, runs_precision(precision, device)):
        out = model(batch)
    out = out.float().clamp(0, 1).cpu()
    return out[0] if single else out


# One pass holds about a dozen 32-channel float maps of the image's size: 4096 x 4096 needs
# roughly 10 GB. Larger images are refused with the limit named (use --max-size).
MAX_PIXELS_ONE_PASS = 4096 * 4096

_RGB_TO_YUV = torch.tensor([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]])


def preserve_color(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance-only transfer (Gatys et al., 2016): the stylised image's luminance (Y) with the
    content's chroma (U, V)."""
    to_yuv = _RGB_TO_YUV.to(stylised)
    ys = torch.einsum("ij,...jhw->...ihw", to_yuv, stylised)
    yc = torch.einsum("ij,...jhw->...ihw", to_yuv, content)
    mixed = torch.cat([ys[..., :1, :, :], yc[..., 1:, :, :]], dim=-3)
    return torch.einsum("ij,...jhw->...ihw", torch.linalg.inv(to_yuv), mixed).clamp(0, 1)


def stylize_image(model: TransformerNet, image: torch.Tensor, strength: float = 1.0,
                  keep_color: bool = False, precision: str = "fp32") -> torch.Tensor:
    """Stylise a (3, H, W) image with the options of the command line."""
    if not 0.0 <= strength <= 1.0:
        raise FaststError(f"strength must be between 0 and 1, not {strength}")
    h, w = image.shape[-2:]
    if h * w > MAX_PIXELS_ONE_PASS:
        raise FaststError(f"image of {w}x{h} is above the one-pass limit of {MAX_PIXELS_ONE_PASS:,} pixels; "
                          "pass --max-size to shrink it")
    out = stylize(model, image, precision=precision)
    if keep_color:
        out = preserve_color(out, image)
    if strength < 1.0:
        out = strength * out + (1 - strength) * image
    return out


def _inputs(spec: str) -> list[Path]:
    import glob
    from fastst.io import is_image_file, list_images
    path = Path(spec)
    if path.is_dir():
        return list_images(path)
    if path.exists():
        return [path]
    if any(ch in spec for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(spec, recursive=True) if is_image_file(p))
        if not matches:
            raise FaststError(f"no images match {spec}")
        return matches
    raise FaststError(f"no such file or folder: {spec}")


def stylize_paths(model_path: str, input_spec: str, output: str, max_size: int | None = None,
                  strength: float = 1.0, keep_color: bool = False, device: str = "auto",
                  precision: str = "fp32", overwrite: bool = False, progress: bool = True) -> tuple[int, list[str]]:
    """Stylise a file, a folder or a glob into a file or a folder; returns (written, failures).

    A bad input file is reported and skipped; the others are still written.
    """
    import warnings

    from tqdm.auto import tqdm

    from fastst.io import load_image, save_image
    from fastst.train import resolve_device
    dev = resolve_device(device)
    model = load_model(model_path, dev)
    inputs = _inputs(input_spec)
    out = Path(output)
    single = len(inputs) == 1 and Path(input_spec).is_file() and out.suffix != ""
    if single:
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise FaststError(f"output must be a folder for several inputs: {out}")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FaststError(f"cannot create output folder {out}: {e.strerror}") from None
        targets = [out / p.name for p in inputs]
    failures, written = [], 0
    for source, target in tqdm(list(zip(inputs, targets)), desc="stylise", unit="img",
                               disable=not progress or single):
        if target.exists() and not overwrite:
            failures.append(f"{target} exists (pass --overwrite to replace it)")
            warnings.warn(failures[-1], stacklevel=2)
            continue
        try:
            image = load_image(source, max_size)
            save_image(stylize_image(model, image, strength, keep_color, precision), target)
            written += 1
        except FaststError as e:
            if single:
                raise
            failures.append(str(e))
            warnings.warn(str(e), stacklevel=2)
    return written, failures
