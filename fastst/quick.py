"""``fastst stylize`` without PyTorch, through a runtime the full path has timed for the network.

Importing PyTorch takes longer than stylizing a folder of photos with a small network on a CPU. When
``fastst stylize --runtime auto`` has timed the runtimes for a network on this machine
(:func:`fastst.runtimes.choose`), :func:`remember` notes the network's ONNX export, the fastest exported
runtime (onnxruntime or OpenVINO) at each size with the seconds a pass it gives up against the fastest of
all, and the seconds the full path spent importing. A later call with the same style on the same machine
runs that export with NumPy and Pillow alone (:func:`stylize_quickly`), and gives the same pictures, where
the seconds given up over its images are fewer than the start-up saved. Any painting (``--style-image``,
the ``auto`` style scale) goes the same way once the full path has stylized with one through that one-pass
model: the model's painting side is exported then (:class:`fastst.anystyle.PaintingEncoder`), a painting's
inputs to the shared network (:class:`fastst.anystyle.PaintingInputs`) are computed through it and kept,
and the photo is shrunk to the working size, stylized and brought back with the same guided upsampling
in NumPy (:func:`guided_upsample_array`). Any option this path does not cover, a size never timed, a
changed model file or any other doubt sends the command down the full path instead. :func:`main` is the
command line's entry point.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from fastst import __version__
from fastst.anchor import GridAnchor, cropped, padded, padded_size
from fastst.clips import ClipReader, clip_writer
from fastst.errors import FaststError
from fastst.host import (
    PRETRAINED_DIR,
    cache_folder,
    cpu_flags,
    cpu_model,
    cpu_working_size,
    one_pass_file,
    pretrained_path,
)
from fastst.images import (
    ANIMATED_SUFFIXES,
    VIDEO_FORMATS,
    atomic_path,
    fail_or_raise,
    file_digest,
    image_inputs,
    open_image,
    outcome_line,
    output_targets,
    resize_longer_side,
    save_array,
)
from fastst.palette import colour_moments, palette_map

# Sizes are timed at the longer side rounded to a power of two, within these bounds. Larger images take
# the choice of the largest bucket: timing a larger one would cost more than the choice is worth. The order
# of the runtimes can change between 512 and 1024 px (results/runtime_shapes.json), so 1024 is a bucket.
SMALLEST_BUCKET, LARGEST_BUCKET = 64, 1024
# Seconds this process spent importing the full path of the command line, when :func:`main` sent it there
# (None otherwise): what the quick path would have saved, noted by :func:`remember`.
FULL_PATH_IMPORT_S: float | None = None


def size_bucket(size: int | tuple[int, int]) -> int:
    """The size a choice is timed at: the longer side rounded to a power of two, within the bounds."""
    longer = size if isinstance(size, int) else max(size)
    return min(LARGEST_BUCKET, max(SMALLEST_BUCKET, 2 ** round(math.log2(max(longer, 1)))))


def in_fours(size: int | tuple[int, int]) -> bool:
    """Whether the network's quarter-resolution maps of an image of ``size`` (a side, or (height, width))
    hold their pixels in fours. The network pads each side to a multiple of 4 (16 at least,
    ``fastst.transformer``); OpenVINO ran a folded network much more slowly where the count is not a
    multiple of 4 (tools/runtime_shapes.py), so a choice is timed apart for such sizes."""
    h, w = (size, size) if isinstance(size, int) else size
    return (-(-max(h, 16) // 4) * -(-max(w, 16) // 4)) % 4 == 0


def timed_shape(size: int | tuple[int, int]) -> tuple[int, int]:
    """The (height, width) a choice for ``size`` is timed at: its bucket's square, or where ``size`` is not
    :func:`in_fours`, the square 4 pixels larger (whose quarter-resolution sides are odd)."""
    bucket = size_bucket(size)
    side = bucket if in_fours(size) else bucket + 4
    return side, side


def size_key(size: int | tuple[int, int]) -> str:
    """The key of the choice for ``size``: its bucket, and the shape it is timed at where that differs."""
    h, w = timed_shape(size)
    bucket = size_bucket(size)
    return str(bucket) if (h, w) == (bucket, bucket) else f"{h}x{w}"


def index_file() -> Path:
    return cache_folder() / "quick.json"


# The modules whose source makes PyTorch's path and the exported graphs: the network, its inference form, its
# precision and layout, the clip's graphs, the export.
TORCH_PATH_SOURCES = ("transformer.py", "inference.py", "runtimes.py", "temporal.py", "export.py")


@functools.cache  # the sources do not change while a process runs
def torch_path_version() -> str:
    """A digest of the source of PyTorch's path (:data:`TORCH_PATH_SOURCES`, read as bytes: no PyTorch
    needed), so that a runtime chosen against PyTorch's seconds is chosen again, and a network exported
    again, once that path changes, though fastst's version number has not; fastst's version alone where
    the sources are not at hand."""
    digest = hashlib.sha256(__version__.encode())
    for name in TORCH_PATH_SOURCES:
        try:
            digest.update((Path(__file__).parent / name).read_bytes())
        except OSError:
            return __version__
    return digest.hexdigest()[:12]


def install_stamp(package: str) -> str | None:
    """Where ``package`` is installed and when its entry file was written, without importing it or reading
    its metadata (either costs much of a short process's start-up); None where it is not installed. An
    upgrade or a reinstall gives another value."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    try:
        return f"{spec.origin} {os.stat(spec.origin).st_mtime_ns}"
    except OSError:
        return None


def _key(style: str | None, model_file: Path) -> str:
    where = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpus": os.cpu_count(),
        "fastst": __version__,
        "torch_path": torch_path_version(),
        "runtimes": {name: install_stamp(name) for name in ("onnxruntime", "openvino")},
        "style": style,
        "model": str(Path(model_file).resolve()),
    }
    return hashlib.sha256(json.dumps(where, sort_keys=True).encode()).hexdigest()[:20]


def _read() -> dict:
    try:
        index = json.loads(index_file().read_text())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def remember(
    style: str | None,
    model_file: Path,
    onnx_file: Path,
    sizes: dict[str, dict],
    precision: str,
    threads: int,
    network: dict,
) -> None:
    """Note what ``fastst stylize --runtime auto`` measured for ``model_file`` (with ``style``) on this
    machine: ``sizes`` maps a size's :func:`size_key` to {"runtime": the fastest exported runtime, "extra_s":
    the seconds a pass it gives up against the fastest of all}; ``onnx_file`` runs in ``precision`` on
    ``threads`` threads; ``network`` gives the export's smallest side and the most pixels it takes in one pass
    ({"min_size", "max_pixels"}); and the seconds this process spent importing the full path
    (:data:`FULL_PATH_IMPORT_S`), what the quick path saves."""
    try:
        index, key = _read(), _key(style, model_file)
        digest = file_digest(model_file)
        entry = index.get(key) if isinstance(index.get(key), dict) else {}
        same = entry.get("digest") == digest and entry.get("precision") == precision
        known = entry.get("sizes", {}) if same else {}
        index[key] = {
            "model": str(model_file),
            "digest": digest,
            "onnx": str(onnx_file),
            "sizes": {**known, **sizes},
            "precision": precision,
            "threads": threads,
            "startup_s": FULL_PATH_IMPORT_S if FULL_PATH_IMPORT_S is not None else entry.get("startup_s"),
            **network,
        }
        index_file().parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(index_file()) as tmp:
            tmp.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    except (OSError, FaststError):
        pass  # a note that cannot be written costs the full path next time, nothing more


# The style of a one-pass model's note: every painting through that model.
ONE_PASS = "one-pass"


def clip_style(style: str | None) -> str:
    """The style of the note for clips with ``style`` (None: a model file's one style): the plain network
    of a clip's statistics, run by its clip graph (:class:`fastst.temporal.ClipNetwork`)."""
    return f"clip {style or ''}".rstrip()


def painting_inputs_file(
    painting: str | os.PathLike, model_file: str | os.PathLike, model_digest: str, rests_on: dict
) -> Path:
    """Where a painting's inputs to the one-pass model ``model_file``'s shared network are kept: by the
    painting's content (a renamed or copied painting is the same), the model file's (``model_digest``)
    and those of the files it takes weights from (``rests_on``: {file: digest}), so that a model changed
    in place is another model."""
    key = {"painting": file_digest(painting), "model": model_digest, **rests_on}
    style = json.dumps(key, sort_keys=True)
    return cache_folder() / "paintings" / f"{_key(style, Path(model_file))}.npz"


def keep_painting_inputs(
    painting: str | os.PathLike,
    model_file: str | os.PathLike,
    model_digest: str,
    rests_on: dict,
    norms: np.ndarray,
    colour: np.ndarray,
) -> None:
    """Keep a painting's inputs to its one-pass model's shared network (``norms`` and ``colour``, as
    :class:`fastst.anystyle.PaintingInputs` holds them) for the quick path; a file that cannot be written
    costs the painting's statistics next time, nothing more."""
    try:
        path = painting_inputs_file(painting, model_file, model_digest, rests_on)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, norms=norms.astype(np.float32), colour=colour.astype(np.float32))
    except (OSError, FaststError):
        pass


class _Refused(Exception):
    """An argument list the quick path does not take as it is."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Refused(message)


def _parse(argv: list[str]) -> argparse.Namespace | None:
    parser = _Parser(add_help=False, allow_abbrev=False)
    parser.add_argument("command", choices=["stylize"])
    for flag in ("--model", "--style", "--style-image", "--input", "--output"):
        parser.add_argument(flag)
    parser.add_argument("--max-size", type=int)
    parser.add_argument("--runtime", choices=["auto", "onnxruntime", "openvino"], default="auto")
    parser.add_argument("--device", choices=["auto", "cpu"], default="auto")
    parser.add_argument("--overwrite", action="store_true")
    try:
        args, rest = parser.parse_known_args(argv)
    except _Refused:
        return None
    if rest or not args.input or not args.output or not (args.style or args.model or args.style_image):
        return None
    if args.style_image and args.style:
        return None  # the full path's error
    return args


def is_mix(style: str | None) -> bool:
    """Whether ``--style`` names a mix of styles (``"a:0.5,b:0.5"``) rather than one style."""
    return style is not None and ("," in style or ":" in style)


def _may_have_gpu() -> bool:
    """Whether ``--device auto`` might mean a GPU here (a CUDA device node, or a Mac's MPS)."""
    return sys.platform == "darwin" or any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/nvidia0"))


def shipped_files() -> list[Path]:
    """The shipped model files, by name."""
    return sorted(PRETRAINED_DIR.glob("*.pth"))


def _entry(args, clip: bool = False) -> dict | None:
    """The note for these arguments (with ``clip``, for a clip), if one is here and the model file (and the
    files it rests on) are the ones it was made for."""
    style, by_style = args.style, False
    if args.style_image and clip:
        return None  # a painting's clip goes the full path
    if args.style_image:  # the one-pass model given, or the shipped default
        style, files = ONE_PASS, [one_pass_file(args.model)]
    elif args.model:
        files = [pretrained_path(args.model)]
    elif is_mix(args.style):
        return None  # a mix: the full path folds it
    else:  # the full path's first rule: the shipped file named after the style stylizes it
        named = PRETRAINED_DIR / f"{args.style}.pth"
        by_style = not named.is_file()
        files = [named] if named.is_file() else shipped_files()
    index, style = _read(), clip_style(style) if clip else style
    found = [(f, index.get(_key(style, f))) for f in files]
    found = [(f, e) for f, e in found if isinstance(e, dict)]
    if by_style:  # no file named after the style: the one the full path took for it (its second rule, the
        # fewest parameters, reads the files), noted among the same shipped files
        names = [f.name for f in files]
        found = [(f, e) for f, e in found if e.get("by_style") and e.get("shipped") == names]
    if len(found) != 1:
        return None
    model_file, entry = found[0]
    if not Path(entry.get("onnx", "")).is_file() or file_digest(model_file) != entry.get("digest"):
        return None
    if any(file_digest(f) != d for f, d in entry.get("rests_on", {}).items()):
        return None  # a file the model takes weights from has changed
    kind = entry.get("network_kind") or ("full" if entry.get("full_width", True) else "narrow")
    bf16 = entry.get("precision") == "bf16"
    if "working_size" in entry and entry["working_size"] != cpu_working_size(kind, bf16):
        # noted at another working size of the "auto" scale (an older fastst; a note without the network's
        # kind is taken for a full-width one: at worst the full path stylizes once and notes it again)
        return None
    return entry


def pass_size(h: int, w: int, entry: dict) -> tuple[int, int]:
    """The size a (h, w) image is stylized at: its own, or with a working size (a painting's ``auto``
    style scale, :func:`fastst.scale.at_scale`), the longer side brought down to it."""
    scale = max(1.0, max(h, w) / entry.get("working_size", math.inf))
    return (h, w) if scale == 1 else (max(16, round(h / scale)), max(16, round(w / scale)))


def _plan(args, entry: dict) -> list[tuple[Path, Path, str]] | None:
    """(input, output, runtime) of each input, if the quick path covers every input as it is."""
    source = Path(args.input)
    if source.is_dir() and any(
        p.suffix.lower() in (*VIDEO_FORMATS, *ANIMATED_SUFFIXES) for p in source.iterdir()
    ):
        return None  # clips, or images that may be animated: the full path tells them apart
    inputs = image_inputs(args.input)
    single = len(inputs) == 1 and source.is_file() and Path(args.output).suffix != ""
    if any(p.suffix.lower() in (*VIDEO_FORMATS, *ANIMATED_SUFFIXES) for p in inputs):
        return None
    if single and Path(args.output).exists() and not args.overwrite:
        return None  # the full path's error
    from PIL import Image

    runtimes, given_up = [], 0.0
    for path in inputs:
        try:
            with Image.open(path) as im:
                w, h = im.size
        except Exception:
            runtimes.append(None)  # reported in turn, as the full path reports it
            continue
        if args.max_size and max(w, h) > args.max_size:
            scale = args.max_size / max(w, h)
            w, h = max(1, round(w * scale)), max(1, round(h * scale))
        h, w = pass_size(h, w, entry)
        size = entry["sizes"].get(size_key((h, w)), {})
        name = size.get("runtime")
        if name not in ("onnxruntime", "openvino") or importlib.util.find_spec(name) is None:
            return None
        if h * w > entry["max_pixels"] or (args.runtime != "auto" and name != args.runtime):
            return None
        runtimes.append(name)
        if args.runtime == "auto":  # seconds given up against the fastest runtime, by the image's pixels
            given_up += size["extra_s"] * h * w / math.prod(timed_shape((h, w)))
    if given_up > (entry.get("startup_s") or 0.0):
        return None  # the full path's start-up costs less than the exported runtime would lose
    return list(zip(inputs, output_targets(inputs, args.output, single), runtimes))


def _openvino():
    """OpenVINO's runtime, imported without its model conversion tools (``openvino.tools.ovc``), which the
    package imports only to offer ``convert_model`` where they can be imported; this project hands it ONNX
    files, and those tools start a usage-telemetry client on import, much of a short process's start-up."""
    if "openvino" not in sys.modules:
        tools = "openvino.tools.ovc"
        unset = tools not in sys.modules
        if unset:
            sys.modules[tools] = None  # an import of it raises ImportError
        try:
            import openvino  # noqa: F401
        finally:
            if unset and sys.modules.get(tools, 0) is None:
                del sys.modules[tools]
    return sys.modules["openvino"]


def open_session(
    name: str,
    path: str | os.PathLike,
    precision: str | None,
    threads: int,
    keep_compiled: bool = False,
    fixed: dict[str, np.ndarray] | None = None,
):
    """(run, precision): ``run`` maps an NCHW float32 array (and the graph's other inputs, in its order,
    where it has more) to the output array of the ONNX file ``path`` under the runtime ``name``
    ("onnxruntime" or "openvino"), with all its graph optimisations, on ``threads`` threads. OpenVINO runs
    in ``precision`` ("fp32" or "bf16"), by default (None) its own choice on this CPU (bf16 where the CPU
    has it), and with ``keep_compiled`` (only for a file named by its content: OpenVINO's cache goes by the
    path) keeps the compiled graph in the cache folder for the next process; onnxruntime in fp32.
    ``fixed`` ({input name: array}) gives graph inputs that stay the same for the session's life (``run``
    then takes the others). OpenVINO, in a process without PyTorch, makes them constants of the graph before
    it compiles it, so that a clip's norms fold into its convolutions (:func:`_folded_session`)."""
    fixed = fixed or {}
    if name == "openvino" and fixed and "torch" not in sys.modules:
        return _folded_session(path, precision, threads, fixed)
    if name == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        # no busy-waiting after a run: its threads would spin on the cores the next pass of another runtime
        # needs (timed right after it, OpenVINO's passes were much slower)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs() if i.name not in fixed]
        return (lambda *arrays: session.run(None, {**dict(zip(names, arrays)), **fixed})[0]), "fp32"
    ov = _openvino()
    config = _openvino_config(precision, threads)
    compiled_cache = cache_folder() / "openvino"  # the compiled graph kept: a later process opens it sooner
    try:
        if keep_compiled:
            compiled_cache.mkdir(parents=True, exist_ok=True)
            config["CACHE_DIR"] = str(compiled_cache)
    except OSError:
        pass
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    if not fixed:
        return (lambda *arrays: compiled(list(arrays))[0]), _chosen(compiled)
    names = [i.get_any_name() for i in compiled.inputs if i.get_any_name() not in fixed]
    return (lambda *arrays: compiled({**dict(zip(names, arrays)), **fixed})[0]), _chosen(compiled)


def _openvino_config(precision: str | None, threads: int) -> dict:
    """OpenVINO's settings for one pass at a time on ``threads`` threads in ``precision`` (None: its own
    choice)."""
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = {"fp32": "f32", "bf16": "bf16"}[precision]
    return config


def _chosen(compiled) -> str:
    """The precision an OpenVINO compiled graph runs in: "bf16", "fp16" or "fp32"."""
    hint = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()  # e.g. <Type: 'bfloat16'>
    return "bf16" if "bf" in hint else "fp16" if "16" in hint else "fp32"


def _folded_session(
    path: str | os.PathLike, precision: str | None, threads: int, fixed: dict[str, np.ndarray]
):
    """:func:`open_session` of OpenVINO with the inputs ``fixed`` made constants of the graph before it is
    compiled: a clip's norms fold into the convolutions, and its passes run faster than with the norms an
    input. The edited graph is not validated from Python: that corrupted the heap (glibc's heap checks,
    ``tools/openvino_folding.py``); the compiler checks it. Only where PyTorch is not loaded: in a process
    with PyTorch, those checks also caught the folded graph without that validation, now and then, and
    never with the norms an input."""
    core = _openvino().Core()
    compiled = core.compile_model(
        with_constants(core, path, fixed), "CPU", _openvino_config(precision, threads)
    )
    return (lambda *arrays: compiled(list(arrays))[0]), _chosen(compiled)


def with_constants(core, path: str | os.PathLike, fixed: dict[str, np.ndarray]):
    """The ONNX graph ``path`` read by OpenVINO's ``core``, its inputs named in ``fixed`` made constants of
    those values (copies the graph owns), not validated (:func:`_folded_session`)."""
    ov = _openvino()
    graph = core.read_model(str(path))
    for parameter in list(graph.get_parameters()):
        value = fixed.get(parameter.get_friendly_name())
        if value is not None:
            constant = ov.op.Constant(np.array(value, dtype=np.float32))
            for target in list(parameter.output(0).get_target_inputs()):
                target.replace_source_output(constant.output(0))
            graph.remove_parameter(parameter)
    return graph


def run_array(run, x: np.ndarray, min_size: int) -> np.ndarray:
    """A (3, H, W) float32 array in [0, 1] through ``run`` (an NCHW float32 array in [0, 1] to the stylized
    one), padded as the network pads the smallest images: the stylized (3, H, W) array, in [0, 1]."""
    h, w = x.shape[-2:]
    x = x[None]
    if h < min_size or w < min_size:  # as the network pads the smallest images
        x = np.pad(x, ((0, 0), (0, 0), (0, max(0, min_size - h)), (0, max(0, min_size - w))), mode="edge")
    return np.clip(run(np.ascontiguousarray(x))[0, :, :h, :w], 0, 1)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """A (3, H, W) array in [0, 1] as an (H, W, 3) uint8 image, rounded as :func:`fastst.io.tensor_to_pil`
    rounds."""
    scaled = x * np.float32(255.0)
    return np.round(scaled, out=scaled).astype(np.uint8).transpose(1, 2, 0)


def stylize_array(run, image: np.ndarray, min_size: int) -> np.ndarray:
    """An (H, W, 3) uint8 image through ``run`` (an NCHW float32 array in [0, 1] to the stylized one):
    the stylized (H, W, 3) uint8 image."""
    x = (image.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1)
    return _to_uint8(run_array(run, x, min_size))


def _painting_inputs(painting: str, entry: dict, runtime: str) -> tuple[np.ndarray, np.ndarray]:
    """A painting's (norms, colour) for the one-pass model of ``entry``: kept from before, or computed
    as :func:`fastst.anystyle.painting_network` computes them, through the model's exported painting side
    and its shared network under ``runtime`` (then kept)."""
    digests = entry["digest"], entry.get("rests_on", {})  # checked against the files by _entry
    kept = painting_inputs_file(painting, entry["model"], *digests)
    if kept.is_file():
        with np.load(kept) as saved:
            return saved["norms"], saved["colour"]
    encode = open_session(runtime, entry["encoder"], "fp32", entry["threads"], keep_compiled=True)[0]
    image = np.asarray(open_image(painting), np.float32).transpose(2, 0, 1) / np.float32(255.0)
    scale = entry["stats_size"] / max(image.shape[-2:])
    small = _resize_array(image, tuple(max(1, round(n * scale)) for n in image.shape[-2:]))
    norms = encode(np.ascontiguousarray(small[None]))
    colour = np.eye(3, 4, dtype=np.float32)
    if entry["palette"]:  # measured on the network's picture of the painting itself, in fp32 as the full path
        shared = open_session(runtime, entry["onnx"], "fp32", entry["threads"], keep_compiled=True)[0]
        own = run_array(lambda a: shared(a, norms, colour), small, entry["min_size"])
        matrix, shift = palette_map(colour_moments(own), colour_moments(image), entry["palette"])
        colour = np.concatenate([matrix, shift[:, None]], 1)
    keep_painting_inputs(painting, entry["model"], *digests, norms, colour)
    return norms, colour


def _resize_array(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (C, H, W) float32 array resized to ``size`` (h, w), bilinear (antialiased when shrinking): Pillow's
    filter, which PyTorch's antialiased bilinear resize (:func:`fastst.scale.resize`) reproduces."""
    return np.stack([_resize_plane(c, size) for c in x])


def _resize_plane(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`_resize_array` of one (H, W) float32 plane."""
    h, w = size
    return np.asarray(Image.fromarray(x, "F").resize((w, h), Image.Resampling.BILINEAR))


def _box_array(x: np.ndarray, r: int) -> np.ndarray:
    """The mean over each (2r+1)-square window of a (C, H, W) array, the window cut at the edges (as
    :func:`fastst.scale._box`): the window's entries added along each axis in turn."""
    out = x.astype(np.float32)
    for axis in (1, 2):
        n = out.shape[axis]
        pad = [(0, 0)] * 3
        pad[axis] = (r, r)
        padded = np.pad(out, pad)
        window = [slice(None)] * 3
        total = np.zeros_like(out)
        for k in range(2 * r + 1):
            window[axis] = slice(k, k + n)
            total += padded[tuple(window)]
        counts = np.minimum(np.arange(n) + r + 1, n) - np.maximum(np.arange(n) - r, 0)
        out = total / counts.reshape([n if a == axis else 1 for a in range(3)]).astype(np.float32)
    return out


def guided_upsample_array(
    low_out: np.ndarray, low_guide: np.ndarray, guide: np.ndarray, g: dict
) -> np.ndarray:
    """:func:`fastst.scale.guided_upsample` of (3, h, w) arrays to the (3, H, W) ``guide``'s size, with
    its window radius, regulariser and luminance weights from ``g`` (``{"radius", "eps", "luma"}``)."""
    luma = np.asarray(g["luma"], np.float32)[:, None, None]
    r = g["radius"]
    i_low = (low_guide * luma).sum(0, keepdims=True)
    mean_i, mean_p = _box_array(i_low, r), _box_array(low_out, r)
    cov = _box_array(i_low * low_out, r) - mean_i * mean_p
    var = _box_array(i_low * i_low, r) - mean_i * mean_i
    a = cov / (var + np.float32(g["eps"]))
    b = mean_p - a * mean_i
    size = guide.shape[-2:]
    a, b = _box_array(a, r), _box_array(b, r)
    i_full = np.tensordot(luma[:, 0, 0], guide, axes=1)
    out = np.empty((len(a), *size), np.float32)
    for c in range(len(a)):  # a plane at a time, in place: each full-size map costs fresh memory
        np.multiply(_resize_plane(a[c], size), i_full, out=out[c])
        out[c] += _resize_plane(b[c], size)
    return np.clip(out, 0, 1, out=out)


def stylize_at_working_size(run, image: np.ndarray, entry: dict) -> np.ndarray:
    """An (H, W, 3) uint8 image through ``run`` at :func:`pass_size`, brought back to its size by the
    guided upsampling: the stylized (H, W, 3) uint8 image."""
    h, w = image.shape[:2]
    small = pass_size(h, w, entry)
    if small == (h, w):
        return stylize_array(run, image, entry["min_size"])
    x = (image.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1)
    low = _resize_array(x, small)
    out = run_array(run, low, entry["min_size"])
    if small[0] >= h:  # as fastst.scale.at_scale: a picture made no shorter comes back by a plain resize
        return _to_uint8(np.clip(_resize_array(out, (h, w)), 0, 1))
    return _to_uint8(guided_upsample_array(out, low, x, entry["guide"]))


def _sample(reader: ClipReader, count: int) -> np.ndarray:
    """:meth:`fastst.clips.ClipReader.sample` (as :func:`fastst.video.stylize_video` takes the clip's
    statistics) as an (N, 3, H, W) float32 batch in [0, 1]."""
    return np.stack(reader.sample(count)).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)


def stylize_clip_quickly(args) -> int | None:
    """Stylize the clip ``args.input`` into ``args.output`` on the quick path: the exit code, or None where
    the full path must."""
    entry = _entry(args, clip=True)
    if entry is None or not Path(entry.get("clip_statistics", "")).is_file():
        return None
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        return None  # the full path's error
    try:
        reader = ClipReader(Path(args.input), args.max_size)
    except Exception:
        return None  # the full path's error
    (w, h), frames = reader.size, reader.info.frames
    shape = padded_size(h, w)
    size = entry["sizes"].get(size_key(shape), {})
    name = size.get("runtime")
    if not frames or name not in ("onnxruntime", "openvino") or importlib.util.find_spec(name) is None:
        return None
    if args.runtime != "auto" and name != args.runtime:
        return None
    # the seconds given up against the fastest runtime of all, over the clip's frames, against the start-up
    if size["extra_s"] * frames * math.prod(shape) / math.prod(timed_shape(shape)) > (
        entry.get("startup_s") or 0
    ):
        return None
    try:
        statistics = open_session(
            name, entry["clip_statistics"], entry["precision"], entry["threads"], keep_compiled=True
        )[0]
    except Exception:
        return None
    try:
        norms = statistics(_sample(reader, entry["clip_sample"]))
        # the clip's network: its norms folded in where the runtime can
        run, _ = open_session(
            name, entry["onnx"], entry["precision"], entry["threads"], fixed={"norms": norms}
        )
        with atomic_path(output, suffix=".tmp" + output.suffix) as tmp:
            writer = clip_writer(tmp, reader)
            try:
                if reader.info.audio:
                    writer.add_audio(reader)
                from tqdm import tqdm  # as for a folder of photos

                grid = GridAnchor()
                bar = tqdm(reader.frames(), total=frames, desc=f"stylize {reader.path.name}", unit="frame")
                for rgb, seconds in bar:
                    x = rgb.transpose(2, 0, 1)[None].astype(np.float32) / np.float32(255.0)
                    offsets = grid.offsets(x)
                    out = cropped(run(np.ascontiguousarray(padded(x, offsets))), offsets, h, w)[0]
                    writer.write(_to_uint8(np.clip(out, 0, 1)), seconds)
            finally:
                reader.audio_sink = None
                writer.close()
    except KeyboardInterrupt:
        raise
    except Exception:
        return None  # nothing written: the full path stylizes it, or says what is wrong with the clip
    print(outcome_line("clip", 1, [], 0, args.output))
    return 0


def stylize_quickly(argv: list[str]) -> int | None:
    """Run ``fastst stylize`` on the quick path: its exit code, or None where the full path must run it."""
    args = _parse(argv)
    if args is None or (args.device == "auto" and _may_have_gpu()):
        return None
    source = Path(args.input)
    if source.suffix.lower() in VIDEO_FORMATS and Path(args.output).suffix.lower() in VIDEO_FORMATS:
        try:
            return stylize_clip_quickly(args) if source.is_file() else None
        except (OSError, FaststError, KeyError, TypeError):
            return None
    try:
        entry = _entry(args)
        pairs = _plan(args, entry) if entry is not None else None
    except (OSError, FaststError, KeyError, TypeError):
        return None
    if pairs is None:
        return None
    try:  # a runtime that cannot load the export here, or a painting it cannot read: the full path
        sessions = {
            name: open_session(name, entry["onnx"], entry["precision"], entry["threads"], keep_compiled=True)[
                0
            ]
            for name in {name for _, _, name in pairs if name is not None}
        }
        inputs = ()
        if args.style_image:  # the painting's norms and colour map: the shared network's other inputs
            inputs = _painting_inputs(args.style_image, entry, next(iter(sessions)))
    except Exception:
        return None
    written, skipped, failures = 0, 0, []
    single = len(pairs) == 1 and Path(args.output).suffix != "" and Path(args.input).is_file()
    if not single:  # a bar for a folder; for one image, importing it costs more than the bar is worth
        from tqdm import tqdm

        pairs = tqdm(pairs, desc="stylize", unit="img")
    for source, target, name in pairs:
        if target.exists() and not args.overwrite:
            skipped += 1
            continue
        try:
            im = open_image(source)
            if args.max_size is not None and max(im.size) > args.max_size:
                im = resize_longer_side(im, args.max_size)
            if name is None:  # its header could not be read, yet it decoded: its size was never planned
                raise FaststError(f"cannot read image {source}: its size changed while it was read")
            run = sessions[name]
            save_array(stylize_at_working_size(lambda a: run(a, *inputs), np.asarray(im), entry), target)
            written += 1
        except FaststError as e:
            fail_or_raise(e, single, failures)
    print(outcome_line("image", written, failures, skipped, args.output))
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """The command line: ``fastst stylize`` on the quick path where it can, else the full command line."""
    argv = sys.argv[1:] if argv is None else argv
    warnings.formatwarning = lambda message, category, *rest: f"fastst: warning: {message}\n"
    try:
        code = stylize_quickly(argv)
    except FaststError as e:
        print(f"fastst: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastst: interrupted", file=sys.stderr)
        return 130
    if code is not None:
        return code
    global FULL_PATH_IMPORT_S
    start = time.perf_counter()
    from fastst.cli import main as full
    from fastst.files import stylize_paths  # noqa: F401  (what stylizing imports: PyTorch, the network)

    FULL_PATH_IMPORT_S = time.perf_counter() - start
    return full(argv)
