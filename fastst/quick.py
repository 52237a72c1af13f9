"""``fastst stylize`` without PyTorch, through a runtime the full path has timed for the network.

Importing PyTorch takes longer than stylizing a folder of photos with a small network on a CPU. When
``fastst stylize --runtime auto`` has timed the runtimes for a network on this machine
(:func:`fastst.runtimes.choose`), :func:`remember` notes the network's ONNX export, the fastest exported
runtime (onnxruntime or OpenVINO) at each size with the seconds a pass it gives up against the fastest of
all, and the seconds the full path spent importing. A later call with the same style on the same machine
runs that export with NumPy and Pillow alone (:func:`stylize_quickly`), and gives the same pictures, where
the seconds given up over its images are fewer than the start-up saved. Any option this path does not
cover, a size never timed, a changed model file or any other doubt sends the command down the full path
instead. :func:`main` is the command line's entry point.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from fastst import __version__
from fastst.errors import FaststError
from fastst.host import PRETRAINED_DIR, cache_folder, cpu_flags, cpu_model, pretrained_path
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

# Sizes are timed at the longer side rounded to a power of two, within these bounds. Larger images take
# the choice of the largest bucket: a pass over a larger one costs more than the choice is worth, and the
# runtimes' order holds as the size grows (results/inference_paths.json).
SMALLEST_BUCKET, LARGEST_BUCKET = 64, 512
# Seconds this process spent importing the full path of the command line, when :func:`main` sent it there
# (None otherwise): what the quick path would have saved, noted by :func:`remember`.
FULL_PATH_IMPORT_S: float | None = None


def size_bucket(size: int | tuple[int, int]) -> int:
    """The size a choice is timed at: the longer side rounded to a power of two, within the bounds."""
    longer = size if isinstance(size, int) else max(size)
    return min(LARGEST_BUCKET, max(SMALLEST_BUCKET, 2 ** round(math.log2(max(longer, 1)))))


def index_file() -> Path:
    return cache_folder() / "quick.json"


def _key(style: str | None, model_file: Path) -> str:
    try:
        onnxruntime = importlib.metadata.version("onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        onnxruntime = None
    where = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpus": os.cpu_count(),
        "fastst": __version__,
        "onnxruntime": onnxruntime,
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
    sizes: dict[int, dict],
    precision: str,
    threads: int,
    network: dict,
) -> None:
    """Note what ``fastst stylize --runtime auto`` measured for ``model_file`` (with ``style``) on this
    machine: ``sizes`` maps a size bucket to {"runtime": the fastest exported runtime, "extra_s": the seconds
    a pass it gives up against the fastest of all}; ``onnx_file`` runs in ``precision`` on ``threads``
    threads; ``network`` gives the export's smallest side and the most pixels it takes in one pass
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
            "sizes": {**known, **{str(bucket): size for bucket, size in sizes.items()}},
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


class _Refused(Exception):
    """An argument list the quick path does not take as it is."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Refused(message)


def _parse(argv: list[str]) -> argparse.Namespace | None:
    parser = _Parser(add_help=False, allow_abbrev=False)
    parser.add_argument("command", choices=["stylize"])
    for flag in ("--model", "--style", "--input", "--output"):
        parser.add_argument(flag)
    parser.add_argument("--max-size", type=int)
    parser.add_argument("--runtime", choices=["auto", "onnxruntime", "openvino"], default="auto")
    parser.add_argument("--device", choices=["auto", "cpu"], default="auto")
    parser.add_argument("--overwrite", action="store_true")
    try:
        args, rest = parser.parse_known_args(argv)
    except _Refused:
        return None
    if rest or not args.input or not args.output or not (args.style or args.model):
        return None
    return args


def _may_have_gpu() -> bool:
    """Whether ``--device auto`` might mean a GPU here (a CUDA device node, or a Mac's MPS)."""
    return sys.platform == "darwin" or any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/nvidia0"))


def _entry(args) -> dict | None:
    """The note for these arguments, if one is here and the model file is the one it was made for."""
    if args.model:
        files = [pretrained_path(args.model)]
    elif "," in args.style or ":" in args.style:
        return None  # a mix: the full path folds it
    else:  # the full path's first rule: the shipped file named after the style stylizes it
        named = PRETRAINED_DIR / f"{args.style}.pth"
        files = [named] if named.is_file() else sorted(PRETRAINED_DIR.glob("*.pth"))
    index = _read()
    found = [(f, index.get(_key(args.style, f))) for f in files]
    found = [(f, e) for f, e in found if isinstance(e, dict)]
    if len(found) != 1:
        return None
    model_file, entry = found[0]
    if not Path(entry.get("onnx", "")).is_file() or file_digest(model_file) != entry.get("digest"):
        return None
    return entry


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
        bucket = size_bucket((h, w))
        size = entry["sizes"].get(str(bucket), {})
        name = size.get("runtime")
        if name not in ("onnxruntime", "openvino") or importlib.util.find_spec(name) is None:
            return None
        if h * w > entry["max_pixels"] or (args.runtime != "auto" and name != args.runtime):
            return None
        runtimes.append(name)
        if args.runtime == "auto":  # seconds given up against the fastest runtime, by the image's pixels
            given_up += size["extra_s"] * h * w / bucket**2
    if given_up > (entry.get("startup_s") or 0.0):
        return None  # the full path's start-up costs less than the exported runtime would lose
    return list(zip(inputs, output_targets(inputs, args.output, single), runtimes))


def open_session(name: str, path: str | os.PathLike, precision: str | None, threads: int):
    """(run, precision): ``run`` maps an NCHW float32 array (and the graph's other inputs, in its order,
    where it has more) to the output array of the ONNX file ``path`` under the runtime ``name``
    ("onnxruntime" or "openvino"), with all its graph optimisations, on ``threads`` threads. OpenVINO runs
    in ``precision`` ("fp32" or "bf16"), by default (None) its own choice on this CPU (bf16 where the CPU
    has it); onnxruntime in fp32."""
    if name == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return (lambda *arrays: session.run(None, dict(zip(names, arrays)))[0]), "fp32"
    import openvino as ov

    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = {"fp32": "f32", "bf16": "bf16"}[precision]
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    hint = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()  # e.g. <Type: 'bfloat16'>
    chosen = "bf16" if "bf" in hint else "fp16" if "16" in hint else "fp32"
    return (lambda *arrays: compiled(list(arrays))[0]), chosen


def stylize_array(run, image: np.ndarray, min_size: int) -> np.ndarray:
    """An (H, W, 3) uint8 image through ``run`` (an NCHW float32 array in [0, 1] to the stylized one):
    the stylized (H, W, 3) uint8 image, rounded as :func:`fastst.io.tensor_to_pil` rounds."""
    h, w = image.shape[:2]
    x = (image.astype(np.float32) / np.float32(255.0)).transpose(2, 0, 1)[None]
    if h < min_size or w < min_size:  # as the network pads the smallest images
        x = np.pad(x, ((0, 0), (0, 0), (0, max(0, min_size - h)), (0, max(0, min_size - w))), mode="edge")
    out = run(np.ascontiguousarray(x))[0, :, :h, :w]
    return np.round(np.clip(out, 0, 1) * np.float32(255.0)).astype(np.uint8).transpose(1, 2, 0)


def stylize_quickly(argv: list[str]) -> int | None:
    """Run ``fastst stylize`` on the quick path: its exit code, or None where the full path must run it."""
    args = _parse(argv)
    if args is None or (args.device == "auto" and _may_have_gpu()):
        return None
    try:
        entry = _entry(args)
        pairs = _plan(args, entry) if entry is not None else None
    except (OSError, FaststError, KeyError, TypeError):
        return None
    if pairs is None:
        return None
    try:  # a runtime that cannot load the export here: the full path, which reports why
        sessions = {
            name: open_session(name, entry["onnx"], entry["precision"], entry["threads"])[0]
            for name in {name for _, _, name in pairs if name is not None}
        }
    except Exception:
        return None
    from tqdm.auto import tqdm

    written, skipped, failures = 0, 0, []
    single = len(pairs) == 1 and Path(args.output).suffix != "" and Path(args.input).is_file()
    for source, target, name in tqdm(pairs, desc="stylize", unit="img", disable=single):
        if target.exists() and not args.overwrite:
            skipped += 1
            continue
        try:
            im = open_image(source)
            if args.max_size is not None and max(im.size) > args.max_size:
                im = resize_longer_side(im, args.max_size)
            if name is None:  # its header could not be read, yet it decoded: its size was never planned
                raise FaststError(f"cannot read image {source}: its size changed while it was read")
            save_array(stylize_array(sessions[name], np.asarray(im), entry["min_size"]), target)
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
