"""Stylizing images with a trained network: loading and validating models (a shipped style, a mix of a
multi-style model, a painting through the one-pass model), and the ``Stylizer``, the network on its fast
path. Large images go in tiles (:mod:`fastst.tiles`); files, folders and globs through
:mod:`fastst.files`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from fastst.anystyle import (
    STATS_SIZE,
    checked_palette,
    load_anystyle,
    painting_network,
    read_one_pass,
    rests_on,
)
from fastst.errors import FaststError
from fastst.host import PRETRAINED_DIR, one_pass_file, pretrained_path
from fastst.inference import for_inference
from fastst.io import file_digest, load_checkpoint
from fastst.quick import (
    ONE_PASS,
    clip_style,
    is_mix,
    keep_painting_inputs,
    remember,
    shipped_files,
    size_key,
    timed_shape,
)
from fastst.runtimes import (
    DEFAULT_PRECISION,
    Runtime,
    check,
    choose,
    compile_model,
    eager_pass,
    encoder_file,
    fast_model,
    fast_path,
    onnx_file,
    remembered_timing,
    start_runtime,
    timings,
)
from fastst.scale import EPS, LUMA, RADIUS, at_scale, auto_scale, network_kind, working_size
from fastst.tiles import MAX_PIXELS_ONE_PASS, in_tiles, stylize_tiled
from fastst.transformer import _MIN_SIZE, TransformerNet, single_style


def _style_names(saved: dict, path: Path) -> list[str]:
    names = saved.get("styles")
    if names:
        return list(names)
    style = (saved.get("config") or {}).get("style")
    if isinstance(style, (list, tuple)):
        return [Path(p).stem for p in style]
    return [Path(style).stem] if isinstance(style, str) and style else [path.stem]


def model_styles(path: str | os.PathLike) -> list[str]:
    """The names of the styles a model file holds (a single-style model: its style image's name; a one-pass
    model, which takes any painting instead: none)."""
    path = pretrained_path(path)
    saved = load_checkpoint(path, "model")
    return _style_names(saved, path) if isinstance(saved, dict) and "anystyle" not in saved else []


def _parameters(path: Path) -> int:
    saved = load_checkpoint(path, "model")
    weights = saved.get("model", {}) if isinstance(saved, dict) else {}
    return sum(t.numel() for t in weights.values() if isinstance(t, torch.Tensor))


def _preferred_first(paths) -> list[Path]:
    """Shipped model files, the one that stylizes a style they share first: a model named after its
    style, then the one with fewer parameters (the faster), then by name."""
    return sorted(paths, key=lambda p: (p.stem not in model_styles(p), _parameters(p), p.name))


def pretrained_styles() -> dict[str, Path]:
    """{style name: shipped model file holding it}. A model named after its style wins over a
    multi-style model that also holds it, and a smaller multi-style model over a larger one."""
    found: dict[str, Path] = {}
    for path in reversed(_preferred_first(PRETRAINED_DIR.glob("*.pth"))):
        for name in model_styles(path):
            found[name] = path
    return dict(sorted(found.items()))


def parse_style(spec: str, names: list[str]) -> int | list[float]:
    """A style of a multi-style network from its name, its index, or a mix written
    ``"name:weight,name:weight"`` (the weights need not sum to 1; missing styles weigh 0)."""
    spec = spec.strip()
    if not is_mix(spec):
        if spec in names:
            return names.index(spec)
        if spec.isdigit() and int(spec) < len(names):
            return int(spec)
        raise FaststError(f"unknown style {spec!r}; this model knows: {', '.join(names)}")
    weights = [0.0] * len(names)
    for part in spec.split(","):
        name, _, value = part.partition(":")
        name = name.strip()
        if name not in names:
            raise FaststError(f"unknown style {name!r} in {spec!r}; this model knows: {', '.join(names)}")
        try:
            weights[names.index(name)] += float(value) if value.strip() else 1.0
        except ValueError:
            raise FaststError(
                f"not a weight: {value!r} in {spec!r} (write name:weight,name:weight)"
            ) from None
    return weights


def resolve_shipped_style(spec: str) -> str:
    """The shipped model file for a style name or a mix of shipped styles (all in one model)."""
    shipped = pretrained_styles()
    names = [part.partition(":")[0].strip() for part in spec.split(",")]
    missing = [n for n in names if n not in shipped]
    if missing:
        raise FaststError(f"no shipped style {missing[0]!r}; shipped: {', '.join(shipped) or 'none'}")
    if len(names) == 1:
        return str(shipped[names[0]])
    holders = [
        p for p in _preferred_first(PRETRAINED_DIR.glob("*.pth")) if set(names) <= set(model_styles(p))
    ]
    if not holders:
        raise FaststError(f"no shipped model holds all of {', '.join(names)}, so they cannot be mixed")
    return str(holders[0])


def load_model(
    path: str | os.PathLike, device: str | torch.device = "cpu", style: str | int | list | None = None
) -> TransformerNet:
    """A trained network from ``model.pth`` (or a training checkpoint), in eval mode.

    For a multi-style model, ``style`` (a name, an index, a mix "a:0.5,b:0.5" or mix weights)
    gives the one-style network of that style or mix (:func:`fastst.transformer.single_style`);
    without it the multi-style network itself is returned. Loaded with ``weights_only=True``: a
    file that tries to run code is refused.
    """
    path = pretrained_path(path)
    if not path.is_file():
        raise FaststError(
            f"no such model file: {path}"
            if not path.is_dir()
            else f"expected a model file, got a folder: {path}"
        )
    saved = load_checkpoint(path, "model")
    if not isinstance(saved, dict) or "model" not in saved:
        raise FaststError(f"not a fastst model: {path} (no network weights in it)")
    options = saved.get("net") or {
        k: saved.get("config", {}).get(k) for k in ("norm", "upsample", "width", "input_skip")
    }
    try:
        model = TransformerNet(**{k: v for k, v in options.items() if v is not None})
    except (ValueError, TypeError) as e:
        raise FaststError(f"model {path} declares an unknown network: {e}") from None
    expected, weights = model.state_dict(), saved["model"]
    if not isinstance(weights, dict) or set(weights) != set(expected):
        raise FaststError(f"model {path} does not hold the weights of the network it declares ({options})")
    for key, tensor in weights.items():
        if not isinstance(tensor, torch.Tensor) or tensor.shape != expected[key].shape:
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise FaststError(
                f"model {path} does not match the network it declares ({options}): "
                f"{key} is {got}, expected {tuple(expected[key].shape)}"
            )
    model.load_state_dict({k: v.float() for k, v in weights.items()})  # shipped models are stored in fp16
    model.style_names = _style_names(saved, path)
    if model.styles > 1 and len(model.style_names) != model.styles:
        raise FaststError(f"model {path} holds {model.styles} styles but names {len(model.style_names)}")
    if style is not None and model.styles > 1:
        names = model.style_names
        chosen = parse_style(style, names) if isinstance(style, str) else style
        model = single_style(model, chosen)
        model.style_names = [style if isinstance(style, str) else str(chosen)]
    elif isinstance(style, str) and style not in model.style_names:
        parse_style(style, model.style_names)  # a one-style model takes only its own name
    return model.eval().to(device)


@torch.inference_mode()
def stylize(
    model: TransformerNet,
    image: torch.Tensor,
    device: str | torch.device | None = None,
    precision: str = DEFAULT_PRECISION,
) -> torch.Tensor:
    """Stylize one (3, H, W) image (or a batch) in [0, 1]; returns the same shape on the CPU.

    ``precision`` "auto" is :func:`fast_path`'s choice for the device. Reduced precision always
    runs the network's inference form (``for_inference``), which keeps the input image exact: the
    PSNR against fp32 over held-out photos is measured by ``fastst bench``.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    precision, _ = fast_path(precision, device)
    if precision != "fp32":
        model = for_inference(model)
    single = image.dim() == 3
    out = eager_pass(model, image.unsqueeze(0) if single else image, device, precision)
    return out[0] if single else out


_RGB_TO_YUV = torch.tensor([[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]])


def preserve_color(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance-only transfer (Gatys et al., 2016): the stylized image's luminance (Y) with the
    content's chroma (U, V)."""
    to_yuv = _RGB_TO_YUV.to(stylized)
    ys = torch.einsum("ij,...jhw->...ihw", to_yuv, stylized)
    yc = torch.einsum("ij,...jhw->...ihw", to_yuv, content)
    mixed = torch.cat([ys[..., :1, :, :], yc[..., 1:, :, :]], dim=-3)
    return torch.einsum("ij,...jhw->...ihw", torch.linalg.inv(to_yuv), mixed).clamp(0, 1)


def stylize_image(
    model: TransformerNet,
    image: torch.Tensor,
    strength: float = 1.0,
    keep_color: bool = False,
    precision: str = DEFAULT_PRECISION,
) -> torch.Tensor:
    """Stylize a (3, H, W) image with the options of the command line."""
    if not 0.0 <= strength <= 1.0:
        raise FaststError(f"strength must be between 0 and 1, not {strength}")
    if in_tiles(model, *image.shape[-2:]):
        out = stylize_tiled(model, image, precision=precision)
    else:
        out = stylize(model, image, precision=precision)
    return _finish(out, image, strength, keep_color)


def _finish(out: torch.Tensor, image: torch.Tensor, strength: float, keep_color: bool) -> torch.Tensor:
    if keep_color:
        out = preserve_color(out, image)
    if strength < 1.0:
        out = strength * out + (1 - strength) * image
    return out


class Stylizer:
    """A trained one-style network ready to stylize on its device, by the runtime asked for or, with
    "auto", the fastest installed for each size (:func:`fastst.runtimes.choose`). The torch runtime is
    the network's inference form in the precision and memory format of :func:`fast_path`, compiled if
    asked (:func:`compile_model`); it also stylizes the tiles of large images. The file driver, the app
    and video all stylize through one.

    Calling it stylizes one (3, H, W) image in [0, 1] with the command line's options (tiles above
    :data:`MAX_PIXELS_ONE_PASS`); :meth:`batch` stylizes a batch of one size.
    """

    def __init__(
        self,
        model: TransformerNet,
        precision: str = DEFAULT_PRECISION,
        compile: bool = False,
        style_scale: float | str = 1.0,
        runtime: str = "torch",
    ):
        if style_scale != "auto" and not (isinstance(style_scale, (int, float)) and 0 < style_scale < 64):
            raise FaststError(
                f"style scale must be a number above 0 and below 64, or auto, not {style_scale}"
            )
        self.style_scale = style_scale
        if model.styles > 1:
            names = ", ".join(getattr(model, "style_names", None) or [])
            raise FaststError(
                f"the network holds {model.styles} styles: choose one or a mix"
                + (f" ({names})" if names else "")
            )
        self.device = next(model.parameters()).device
        self.runtime = check(runtime, self.device, compile)
        self.model = model  # what the other runtimes export, and what their choice is remembered by
        self.network, self.precision, self.memory_format = fast_model(model, precision, compile)
        # the "auto" style scale's
        self.working_size = working_size(model.config, self.device, self.precision)
        self.compiled = compile
        if compile:  # pays off for many images or large ones: the first of each size compiles
            compile_model(self.network)
        self._chosen: dict[tuple[int, int], str] = {}  # by the shape timed (fastst.quick.timed_shape)
        self._runtimes: dict[str, Runtime] = {}
        # how many images the caller will stylize (the file driver knows): with "auto", a runtime whose
        # opening a few images would not repay is not chosen; None: many (video, the app)
        self.images: int | None = None

    def scale_for(self, height: int, width: int) -> float:
        """The style scale of a photo of this size (``auto``: :func:`fastst.scale.auto_scale` at the
        network's working size on this device, :func:`fastst.scale.working_size`)."""
        if self.style_scale == "auto":
            return auto_scale(height, width, self.working_size)
        return float(self.style_scale)

    def runtime_for(self, height: int, width: int) -> str:
        """The runtime of one pass of this size: the one asked for; with "auto", torch when compiled or
        off the CPU, else the fastest installed for the size (chosen once for each shape
        :func:`fastst.quick.timed_shape` times)."""
        if self.runtime != "auto":
            return self.runtime
        if self.compiled or self.device.type != "cpu":
            return "torch"
        shape = timed_shape((height, width))
        if shape not in self._chosen:
            size = (height, width) if self.images is not None else shape
            self._chosen[shape] = choose(self.model, self.device, size, self.precision, images=self.images)
        return self._chosen[shape]

    def chosen(self) -> dict[str, dict]:
        """For each size this stylizer ran, by :func:`fastst.quick.size_key`: the runtime it chose and, where
        it timed them, the seconds a pass and to open of each runtime
        (:func:`fastst.runtimes.remembered_timing`)."""
        return {
            size_key(shape): {
                "runtime": name,
                **remembered_timing(self.model, self.device, shape, self.precision),
            }
            for shape, name in self._chosen.items()
        }

    def _pass(self, images: torch.Tensor) -> torch.Tensor:
        name = self.runtime_for(*images.shape[-2:])
        if name == "torch":
            return stylize(self.network, images, precision=self.precision)
        if name not in self._runtimes:
            self._runtimes[name] = start_runtime(name, self.model, self.precision)
        return self._runtimes[name](images)

    def _one(self, image: torch.Tensor) -> torch.Tensor:
        if in_tiles(self.network, *image.shape[-2:]):
            return stylize_tiled(self.network, image, precision=self.precision)
        return self._pass(image[None])[0]

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] -> the same, stylized, on the CPU."""
        return at_scale(self._pass, images, self.scale_for(*images.shape[-2:]))

    def remember_quick(
        self,
        model_file: str | os.PathLike,
        style: str | None,
        painting: str | os.PathLike | None = None,
        clip: dict | None = None,
    ) -> None:
        """Note, for each size this stylizer ran, the fastest exported runtime and the seconds a pass it
        gives up against the fastest of all (both from :func:`fastst.runtimes.choose`'s timing), so that
        ``fastst stylize`` with ``model_file`` and ``style`` can run without PyTorch next time where the
        start-up saved outweighs them (:mod:`fastst.quick`). With ``painting`` (a file, stylized through
        the one-pass model ``model_file`` at the ``auto`` style scale), the painting's inputs to the model's
        shared network are kept for that path too. With ``clip`` (this stylizer ran a clip's frames with the
        clip's statistics fixed, :func:`fastst.video.stylize_video`), the note is for clips with ``style``,
        and holds ``clip`` too (:func:`fastst.video.clip_note`). Call it only for the default precision and
        a style scale of 1 or, with a painting, ``auto``: the only settings that path takes."""
        sizes = {}
        for shape in self._chosen:
            seconds = timings(self.model, self.device, shape, self.precision)
            exported = {name: s for name, s in seconds.items() if name != "torch"}
            if exported:
                name = min(exported, key=exported.get)
                sizes[size_key(shape)] = {"runtime": name, "extra_s": exported[name] - min(seconds.values())}
        if self.runtime != "auto" or not sizes or is_mix(style):
            return  # a mix goes the full path, which folds it (fastst.quick)
        for name in {size["runtime"] for size in sizes.values()} - set(self._runtimes):
            try:  # this network's export, and its graph compiled, kept for the quick path (the timing may
                # have been another network's of the same layout, which opened neither for this one)
                self._runtimes[name] = start_runtime(name, self.model, self.precision)
            except Exception:
                return
        exported_file = onnx_file(self.model)
        if exported_file is None or not exported_file.is_file():
            return
        network = {"min_size": _MIN_SIZE, "max_pixels": MAX_PIXELS_ONE_PASS}
        if style is not None and painting is None:  # whether the full path takes this file for the style
            by_style = pretrained_styles().get(style)
            network |= {
                "by_style": by_style is not None and Path(by_style).resolve() == Path(model_file).resolve(),
                "shipped": [f.name for f in shipped_files()],
            }
        if clip is not None:
            if painting is not None:
                return  # a painting's clip goes the full path
            network |= clip
            style = clip_style(style)
        if painting is not None:
            inputs = getattr(self.model, "one_pass", None)
            if inputs is None or self.style_scale != "auto":
                return
            saved = read_one_pass(pretrained_path(model_file))
            rests = {str(f): file_digest(f) for f in rests_on(saved)}
            norms, colour = inputs.norms.numpy(), inputs.colour.numpy()
            keep_painting_inputs(painting, model_file, file_digest(model_file), rests, norms, colour)
            style, encoder = ONE_PASS, encoder_file(model_file)
            network |= {
                "working_size": self.working_size,
                "network_kind": network_kind(self.model.config),  # what the working size follows on a CPU
                "guide": {"radius": RADIUS, "eps": EPS, "luma": list(LUMA)},
                "rests_on": rests,
                "stats_size": STATS_SIZE,
                "palette": float(saved.get("palette", 0.0)),
                **({"encoder": str(encoder)} if encoder is not None else {}),
            }
        remember(
            style, Path(model_file), exported_file, sizes, self.precision, torch.get_num_threads(), network
        )

    def __call__(self, image: torch.Tensor, strength: float = 1.0, keep_color: bool = False) -> torch.Tensor:
        if not 0.0 <= strength <= 1.0:
            raise FaststError(f"strength must be between 0 and 1, not {strength}")
        scale = self.scale_for(*image.shape[-2:])
        if scale == 1:
            out = self._one(image)
        else:
            out = at_scale(lambda x: self._one(x[0])[None], image[None], scale)[0]
        return _finish(out, image, strength, keep_color)


def load_one_style(
    model_path: str | os.PathLike | None,
    device,
    style: str | None = None,
    painting: str | None = None,
    palette: float | None = None,
) -> TransformerNet:
    """:func:`load_model`, refusing a multi-style model unless ``style`` picks one style or mix of it;
    with ``painting``, that painting's network from the one-pass model ``model_path`` (default: the
    shipped one, :func:`fastst.host.one_pass_file`), at its palette fraction or ``palette``."""
    if painting is not None:
        path = one_pass_file(model_path)
        model = load_anystyle(path)
        if palette is not None:
            try:
                checked_palette(model, palette)
            except FaststError as e:
                raise FaststError(f"--palette with {path.stem}: {e}") from None
        return painting_network(painting, model, device, palette)
    model = load_model(model_path, device, style)
    if model.styles > 1:
        raise FaststError(
            f"{model_path} holds {model.styles} styles: choose one or a mix with --style "
            f"({', '.join(model.style_names)})"
        )
    return model
