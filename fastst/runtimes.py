"""Which runtime runs a one-style network on this machine: PyTorch's eager inference form, or the network
exported to ONNX under onnxruntime or OpenVINO, the fastest of those installed chosen by timing them.

A choice is timed once per machine, network layout (:func:`layout_digest`), size bucket and precision and
remembered in a small file of the user's cache folder, beside the network's ONNX export, so that later runs
start without either.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import fastst
from fastst.anystyle import PaintingEncoder, load_anystyle
from fastst.errors import FaststError
from fastst.export import export_network
from fastst.host import cache_folder, cpu_flags, cpu_model
from fastst.inference import for_inference
from fastst.io import atomic_path, file_digest
from fastst.quick import open_session, size_bucket, size_key, timed_shape, torch_path_version
from fastst.runtime import autocast, resolve_precision
from fastst.temporal import ClipStatistics
from fastst.transformer import _MIN_SIZE, TransformerNet

RUNTIMES = ("torch", "onnxruntime", "openvino")
# The precision every stylizing entry point defaults to, the command line's included: the fastest
# measured path of the device (fast_path); pass "fp32" for exact arithmetic.
DEFAULT_PRECISION = "auto"
# The extra that installs each runtime beside fastst, and the modules it needs (the export needs onnx).
EXTRAS = {"onnxruntime": "export", "openvino": "openvino"}
_MODULES = {"onnxruntime": ("onnx", "onnxruntime"), "openvino": ("onnx", "openvino")}
# Timed passes of each runtime after its warm-up, interleaved; the fastest pass counts.
ROUNDS = 2
# how the runtimes are timed; another value times every choice again (2: onnxruntime's threads no longer
# spin after a run, which slowed the pass of the runtime timed next)
TIMING = 2
# Whether a choice that must be timed says so on a terminal (fastst prepare, which times on purpose, says no).
ANNOUNCE_TIMING = True


def compile_model(model: TransformerNet, dynamic: bool | None = None) -> TransformerNet:
    """Compile ``model``'s forward in place with ``torch.compile``: on the CPU with autotuned kernels,
    on a GPU with CUDA graphs (cuDNN's convolutions, which autotuning would spend minutes to match)."""
    device = next(model.parameters()).device
    mode = "reduce-overhead" if device.type == "cuda" else "max-autotune-no-cudagraphs"
    model.forward = torch.compile(model.forward, dynamic=dynamic, mode=mode)
    return model


def fast_path(precision: str, device: torch.device, compiled: bool = False) -> tuple[str, bool]:
    """(precision, channels-last?) of the fastest path measured on the device (``fastst bench``).

    "auto" is bf16 where the device runs it natively. In eager mode on a GPU it is fp32 instead
    (with cuDNN's TF32 convolutions, PyTorch's default) in contiguous memory: there every extra
    cast and layout change is a kernel launch, and on an H100 fp32 was both faster and closer to
    exact than bf16 (``fastst bench --device cuda``). Channels-last memory pays on the CPU, in fp32 as in
    reduced precision since the inference form keeps it through its phase shuffles
    (``tools/inference_form.py --layouts``), and compiled on either device.
    """
    if precision == "auto" and device.type == "cuda" and not compiled:
        return "fp32", False
    precision = resolve_precision(precision, device)
    return precision, compiled or device.type == "cpu"


def fast_model(
    model: TransformerNet, precision: str = "auto", compiled: bool = False
) -> tuple[TransformerNet, str, torch.memory_format]:
    """The network as the torch runtime runs it on the model's device: its inference form in the
    precision and memory format of :func:`fast_path`. Returns (network, precision, memory format)."""
    precision, channels_last = fast_path(precision, next(model.parameters()).device, compiled)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return for_inference(model).to(memory_format=memory_format), precision, memory_format


@torch.inference_mode()
def eager_pass(network: TransformerNet, batch: torch.Tensor, device: torch.device, precision: str):
    """One eager pass of ``network`` over an (N, 3, H, W) batch under ``precision``'s autocast: the
    output in fp32, clamped to [0, 1], on the CPU."""
    with autocast(device, precision):
        out = network(batch.to(device))
    return out.float().clamp(0, 1).cpu()


def installed() -> list[str]:
    """The runtimes this environment can run, in the order of :data:`RUNTIMES`."""
    return [
        name
        for name in RUNTIMES
        if name == "torch" or all(importlib.util.find_spec(m) is not None for m in _MODULES[name])
    ]


def check(name: str, device: torch.device | None = None, compiled: bool = False) -> str:
    """``name`` if it can run here ("auto" always can), else a one-line FaststError saying why: an
    unknown name, a runtime whose extra is not installed, an exported runtime asked to run off the CPU
    or compiled (``torch.compile`` is the torch runtime's)."""
    if name == "auto" or name == "torch":
        return name
    if name not in RUNTIMES:
        raise FaststError(f"unknown runtime {name!r}; choose auto, {', '.join(RUNTIMES)}")
    if name not in installed():
        raise FaststError(f'the {name} runtime is not installed: pip install "fastst[{EXTRAS[name]}]"')
    if device is not None and device.type != "cpu":
        raise FaststError(f"the {name} runtime runs on the CPU: pass --device cpu, or --runtime torch")
    if compiled:
        raise FaststError(f"--compile compiles the torch runtime, not {name}: drop one of them")
    return name


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def exported_runtimes(
    model: TransformerNet,
    names: list[str] | None = None,
    precision: str | None = None,
    onnx_path: Path | None = None,
) -> dict[str, tuple[Callable, str]]:
    """``{name: (run, precision)}`` for ``names`` (by default every exported runtime installed): ``run``
    maps an NCHW float32 array to the output array of the model exported to ONNX. Each runtime gets all
    its graph optimisations and as many threads as torch uses. OpenVINO runs in ``precision`` ("fp32"
    or "bf16"), by default its own choice on this CPU (bf16 where the CPU has it); onnxruntime in fp32.
    The model is exported once, to ``onnx_path`` where given (kept, and reused if it is there), and each
    session is built once while the model lives. A one-pass painting's network is exported as its
    model's shared network (:class:`fastst.anystyle.SharedNetwork`), once for all its paintings."""
    names = [n for n in installed() if n != "torch"] if names is None else names
    graph = _graph(model)
    sessions = _SESSIONS.setdefault(graph, {})
    missing = [n for n in names if (n, precision) not in sessions]
    if missing:
        with tempfile.TemporaryDirectory() as tmp:
            path = onnx_path or Path(tmp) / "model.onnx"
            if not path.is_file():
                export_network(copy.deepcopy(graph), path)  # it moves the network to the CPU
            for name in missing:
                t0 = time.perf_counter()
                # a path of the caller's is named by the network's content (onnx_file): kept compiled
                kept = onnx_path is not None
                sessions[name, precision] = open_session(name, path, precision, torch.get_num_threads(), kept)
                # what a new process pays before the first pass (the runtime loaded, the graph compiled;
                # the export, made once per machine, left out)
                sessions["opening", name, precision] = time.perf_counter() - t0
    return {n: sessions[n, precision] for n in names}


def _graph_inputs(network: TransformerNet):
    """A network's inputs to a graph it shares with others (:class:`fastst.anystyle.PaintingInputs` for a
    one-pass painting's network, :class:`fastst.temporal.ClipInputs` for a clip's), or None."""
    inputs = getattr(network, "clip_inputs", None)
    return inputs if inputs is not None else getattr(network, "one_pass", None)


def _graph(network: TransformerNet) -> torch.nn.Module:
    """What is exported for ``network``: itself, or the graph it shares with others: for a one-pass
    painting's network, its model's shared network; for a network with a clip's statistics fixed, its
    network's clip graph (:func:`_graph_inputs` are the graph's other inputs)."""
    inputs = _graph_inputs(network)
    return inputs.shared if inputs is not None else network


@dataclasses.dataclass(frozen=True)
class Runtime:
    """A runtime running one network: calling it maps an (N, 3, H, W) float batch in [0, 1] to the
    stylized batch, clamped to [0, 1], on the CPU."""

    name: str
    precision: str
    run: Callable[[torch.Tensor], torch.Tensor]
    opening_s: float = 0.0  # seconds it took to open, the export left out (0 for torch, already running)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.run(batch)


def start_runtime(
    name: str, network: TransformerNet, precision: str = "auto", compile: bool = False
) -> Runtime:
    """The runtime ``name`` running the one-style ``network`` on its device in ``precision`` (torch:
    :func:`fast_model`'s inference form, compiled if asked; the others: the exported network)."""
    device = next(network.parameters()).device
    check(name, device, compile)
    if name == "torch":
        fast, precision, _ = fast_model(network, precision, compile)
        if compile:
            compile_model(fast)
        return Runtime(name, precision, lambda batch: eager_pass(fast, batch, device, precision))
    asked = resolve_precision(precision, device)
    run, precision = exported_runtimes(network, [name], asked, onnx_file(network))[name]
    opening = _SESSIONS[_graph(network)]["opening", name, asked]

    inputs = _graph_inputs(network)
    extra = inputs.arrays() if inputs is not None else ()

    def exported(batch: torch.Tensor) -> torch.Tensor:
        h, w = batch.shape[-2:]
        # the exported graph pads only to a multiple of its downsampling: the smallest images are padded
        # here as the network itself pads them, and cropped back
        x = batch.float().cpu()
        if h < _MIN_SIZE or w < _MIN_SIZE:
            x = F.pad(x, (0, max(0, _MIN_SIZE - w), 0, max(0, _MIN_SIZE - h)), mode="replicate")
        # the crop and clamp in numpy: a parallel torch operation here would leave torch's threads
        # spinning on the cores the runtime's next pass needs, a large part of a small image's pass
        out = run(x.contiguous().numpy(), *extra)
        return torch.from_numpy(np.clip(out[..., :h, :w], 0, 1))

    return Runtime(name, precision, exported, opening)


def cache_file() -> Path:
    """The file that remembers the runtimes chosen on this machine."""
    return cache_folder() / "runtimes.json"


def machine() -> dict:
    """What decides which runtime is fastest, besides the network and the size: the CPU, its vector
    extensions, torch's threads, the versions of fastst and of each runtime installed, and the source of
    the PyTorch path it is timed against (:func:`fastst.quick.torch_path_version`)."""
    versions = {
        "torch": str(torch.__version__),
        "fastst": fastst.__version__,
        "torch_path": torch_path_version(),
    }
    for name in installed()[1:]:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "threads": torch.get_num_threads(), **versions}


def network_digest(network: TransformerNet) -> str:
    """A digest of the network's layout and weights: the same network, whatever object holds it. For a
    one-pass painting's network, its model's shared network's: one export and one choice of runtime
    serve every painting."""
    network = _graph(network)
    h = hashlib.sha256(json.dumps(network.config, sort_keys=True).encode())
    for key, tensor in network.state_dict().items():
        h.update(key.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def layout_digest(network: TransformerNet) -> str:
    """A digest of what a pass's seconds depend on: the network's layout (its options, its tensors' names and
    shapes), not its weights (as :func:`network_digest` for a one-pass painting's network). Networks of one
    layout, a multi-style model's styles or two trainings of one shape, share one timing."""
    network = _graph(network)
    h = hashlib.sha256(json.dumps(network.config, sort_keys=True).encode())
    for key, tensor in network.state_dict().items():
        h.update(f"{key} {tuple(tensor.shape)};".encode())
    return h.hexdigest()[:16]


def _export_path(stem: str) -> Path | None:
    """Where an export named ``stem`` is kept between runs, beside the versions that wrote it (the graph is
    the exporter's and fastst's source's as much as the network's); None where the cache folder cannot be
    made."""
    folder = cache_folder() / "onnx"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    versions = f"{fastst.__version__} {torch.__version__} {torch_path_version()}"
    return folder / f"{stem}-{hashlib.sha256(versions.encode()).hexdigest()[:8]}.onnx"


def onnx_file(network: TransformerNet) -> Path | None:
    """Where the network's export is kept between runs (None where the cache folder cannot be made)."""
    return _export_path(network_digest(network))


def encoder_file(model_file: str | os.PathLike) -> Path | None:
    """The ONNX export of the one-pass model file's painting side (:class:`fastst.anystyle.PaintingEncoder`),
    made once per model file and kept beside the networks' exports; None where it cannot be made."""
    path = _export_path(f"encoder-{file_digest(model_file)[:16]}")
    try:
        if path is not None and not path.is_file():
            export_network(PaintingEncoder(load_anystyle(model_file)), path)
    except Exception:  # best effort: without it, a new painting goes the usual way next time
        return None
    return path


def clip_statistics_file(network: TransformerNet) -> Path | None:
    """The ONNX export of the one-style ``network``'s pass that records a clip's statistics
    (:class:`fastst.temporal.ClipStatistics`), made once per network and kept beside the networks' exports;
    None where it cannot be made."""
    path = _export_path(f"clip-statistics-{network_digest(network)}")
    try:
        if path is not None and not path.is_file():
            export_network(ClipStatistics(network), path)
    except Exception:  # best effort: without it, the next clip goes the usual way
        return None
    return path


def time_runtimes(runtimes: dict[str, Runtime], size: int | tuple[int, int]) -> dict[str, float]:
    """Seconds of the fastest of :data:`ROUNDS` interleaved passes of each runtime over a random image of
    ``size`` (a square's side, or (height, width)), after a warm-up pass of each (the first pass of a shape
    pays for its set-up)."""
    batch = torch.rand(1, 3, *((size, size) if isinstance(size, int) else size))
    for run in runtimes.values():
        run(batch)
    seconds = {name: math.inf for name in runtimes}
    for _ in range(ROUNDS):
        for name, run in runtimes.items():
            t0 = time.perf_counter()
            run(batch)
            seconds[name] = min(seconds[name], time.perf_counter() - t0)
    return seconds


def _read(path: Path) -> dict:
    try:
        choices = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return choices if isinstance(choices, dict) else {}


def _remember(path: Path, key: str, entry: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        choices = _read(path)
        choices[key] = entry
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(choices, indent=1, sort_keys=True) + "\n")
    except (OSError, FaststError):
        pass  # a cache that cannot be written costs a timing next time, nothing more


def _choice(network: TransformerNet, device: torch.device, size, precision: str) -> tuple[dict, str]:
    """What a choice depends on, and its key in :func:`cache_file`."""
    bucket, precision = size_bucket(size), resolve_precision(precision, device)
    where = {
        "machine": machine(),
        "layout": layout_digest(network),
        "size": bucket,
        "precision": precision,
        "timing": TIMING,
    }
    if timed_shape(size) != (bucket, bucket):  # a size whose quarter-resolution pixels are not in fours
        where["shape"] = list(timed_shape(size))
    return where, hashlib.sha256(json.dumps(where, sort_keys=True).encode()).hexdigest()[:20]


def remembered_timing(
    network: TransformerNet, device: str | torch.device, size, precision: str = "auto"
) -> dict:
    """The timing behind :func:`choose`'s remembered choice: {"seconds": each runtime's seconds a pass,
    "opening": its seconds to open}, each where remembered ({} where no choice is)."""
    remembered = _read(cache_file()).get(_choice(network, torch.device(device), size, precision)[1])
    remembered = remembered if isinstance(remembered, dict) else {}
    return {k: remembered[k] for k in ("seconds", "opening") if isinstance(remembered.get(k), dict)}


def timings(network: TransformerNet, device: str | torch.device, size, precision: str = "auto") -> dict:
    """{runtime: seconds} of the timing behind :func:`choose`'s remembered choice ({} where none is)."""
    return remembered_timing(network, device, size, precision).get("seconds", {})


def choose(
    network: TransformerNet,
    device: str | torch.device,
    size: int | tuple[int, int],
    precision: str = "auto",
    verbose: bool = False,
    images: int | None = None,
) -> str:
    """The fastest runtime installed for the one-style ``network`` on ``device`` at ``size`` (a side, or
    (height, width)). On a GPU, "torch". On a CPU, the runtime that ran the size's bucket fastest
    (:func:`time_runtimes` at :func:`fastst.quick.timed_shape`: sizes whose quarter-resolution maps do not
    hold their pixels in fours are timed apart), timed once per machine, network layout, bucket and
    precision and remembered in :func:`cache_file` with the seconds each took to open; a runtime that fails
    to start is left out. With ``images``, how many images of this size the process has to stylize, the
    runtime that finishes them soonest, its opening counted (torch, already running, opens at no cost): for
    a photo or a few, a faster pass may not repay the opening. ``verbose`` prints the timings."""
    device = torch.device(device)
    names = installed()
    if device.type != "cpu" or names == ["torch"]:
        return "torch"
    where, key = _choice(network, device, size, precision)
    shape, precision, path = timed_shape(size), where["precision"], cache_file()
    entry = _read(path).get(key)
    if not (isinstance(entry, dict) and entry.get("runtime") in names):
        if ANNOUNCE_TIMING and sys.stderr.isatty():  # the seconds this takes, once, explained to the person
            print(
                f"fastst: timing the runtimes for this network at {size_key(size)} px, once on this machine "
                "(fastst prepare does it ahead)",
                file=sys.stderr,
            )
        candidates = {}
        for name in names:
            try:
                candidates[name] = start_runtime(name, network, precision)
            except Exception as e:  # an optional runtime that cannot run this network here is no choice
                if name == "torch":
                    raise
                if verbose:
                    print(f"runtime {name} left out: {type(e).__name__}: {e}")
        seconds = time_runtimes(candidates, shape)
        if verbose:
            timed = ", ".join(f"{n} {s:.4f} s" for n, s in seconds.items())
            print(f"runtimes at {size_key(size)} px: {timed}")
        opening = {name: run.opening_s for name, run in candidates.items()}
        entry = {**where, "runtime": min(seconds, key=seconds.get), "seconds": seconds, "opening": opening}
        _remember(path, key, entry)
    return _soonest(entry, names, size, images)


def _soonest(entry: dict, names: list[str], size, images: int | None) -> str:
    """The remembered choice ``entry``'s runtime that stylizes ``images`` images of ``size`` soonest, each
    pass's seconds scaled from the shape timed to the size's pixels; the fastest pass without
    ``images`` (or an entry that did not record the openings)."""
    opening, seconds = entry.get("opening"), entry.get("seconds")
    if images is None or not isinstance(opening, dict) or not isinstance(seconds, dict):
        return entry["runtime"]
    h, w = (size, size) if isinstance(size, int) else size
    scale = h * w / math.prod(entry.get("shape") or (entry["size"], entry["size"]))
    costs = {n: opening.get(n, 0.0) + images * scale * s for n, s in seconds.items() if n in names}
    return min(costs, key=costs.get) if costs else entry["runtime"]
