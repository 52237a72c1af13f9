"""Where and how the computation runs: the device, the precision and autocast, the allocator policy of
long runs, and the facts about the environment recorded beside results."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import platform
import subprocess
import sys
from pathlib import Path

import torch

import fastst
from fastst.errors import FaststError
from fastst.host import command_line, cpu_flags, cpu_model


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FaststError("--device cuda asked for, but no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise FaststError("--device mps asked for, but MPS is not available")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise FaststError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None) or getattr(
        torch.cpu, "_is_amx_tile_supported", None
    )
    return bool(check and check())


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if device.type == "cpu" and cpu_has_bf16():
            return "bf16"
        return "fp32"
    if precision not in ("fp32", "bf16", "fp16"):
        raise FaststError(f"unknown precision {precision!r}; choose auto, fp32, bf16 or fp16")
    if precision == "fp16" and device.type == "cpu":
        raise FaststError("fp16 is for GPUs; use --precision bf16 or fp32 on the CPU")
    return precision


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def reuse_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of handing it back to the system.

    The networks allocate and free maps of tens of megabytes at every image or iteration. glibc
    serves each from fresh ``mmap`` pages and unmaps it on free, so every pass pays the page faults
    again, a large share of a plain pass's time (``fastst bench``). With mmap off and trimming
    only above 2 GB, freed blocks are reused. Work of one shape reuses its blocks exactly; when
    shapes change, call :func:`release_freed_memory`, or fragments of the old shapes pile up.
    Process-wide; returns False where libc is not glibc.
    """
    libc = _glibc()
    m_trim_threshold, m_mmap_max = -1, -4  # from malloc.h
    return bool(libc and libc.mallopt(m_mmap_max, 0) and libc.mallopt(m_trim_threshold, 2**31 - 1))


def _restore_malloc_defaults() -> None:
    """glibc's documented defaults for what :func:`reuse_freed_memory` changes (its dynamic mmap
    threshold stays off once a value was set)."""
    libc = _glibc()
    if libc:
        libc.mallopt(-4, 65536)  # M_MMAP_MAX
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD


@contextlib.contextmanager
def process_settings(device: torch.device):
    """What a long run on ``device`` sets for the whole process, for the duration only: glibc's
    reuse of freed memory on a CPU (:func:`reuse_freed_memory`), cuDNN's benchmark mode on a GPU.
    On exit the previous cuDNN mode is back, glibc's defaults are back, and the memory it kept
    is handed back (a notebook's kernel lives on after a call)."""
    reused = device.type == "cpu" and reuse_freed_memory()
    previous = torch.backends.cudnn.benchmark
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # each new shape is timed once, then runs the fastest kernels
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous
        if reused:
            _restore_malloc_defaults()
            release_freed_memory(keep_mb=0)


def release_freed_memory(keep_mb: int = 1024) -> None:
    """Hand the heap's free memory back to the system (glibc ``malloc_trim``) once more than
    ``keep_mb`` of it is kept: call it between work of different shapes, so that memory kept by
    :func:`reuse_freed_memory` stays bounded while small changes of shape still reuse it."""
    libc = _glibc()
    if not libc:
        return
    if hasattr(libc, "mallinfo2"):  # glibc 2.33+: the free bytes of the heap

        class Info(ctypes.Structure):
            _fields_ = [
                (name, ctypes.c_size_t)
                for name in (
                    "arena",
                    "ordblks",
                    "smblks",
                    "hblks",
                    "hblkhd",
                    "usmblks",
                    "fsmblks",
                    "uordblks",
                    "fordblks",
                    "keepcost",
                )
            ]

        libc.mallinfo2.restype = Info
        if libc.mallinfo2().fordblks <= keep_mb * 2**20:
            return
    libc.malloc_trim(0)


def _git(folder: Path, *args: str) -> bytes | None:
    """The output of a read-only git command in ``folder``; None where git, or the checkout, is missing.
    It takes no optional lock (no index refresh), so it never holds up someone else's git in the tree."""
    try:
        out = subprocess.run(
            ["git", "--no-optional-locks", *args], cwd=folder, capture_output=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


# What the project's commands write, not its code: a changed figure or result leaves the code as committed.
OUTPUT_FOLDERS = ("figures", "results")
_CODE = (":(top)", *(f":(top,exclude){name}" for name in OUTPUT_FOLDERS))


def git_state(folder: str | Path | None = None) -> dict:
    """The code a result came from: the checkout's HEAD commit, whether the code differed from it
    (uncommitted changes to tracked files outside :data:`OUTPUT_FOLDERS`, or Python files git does not
    track yet, such as a new study; other untracked files do not count) and, when it did, a short
    sha256 digest of ``git diff HEAD`` of the code and of those new files, which tells two dirty trees
    apart. All None outside a git checkout."""
    folder = Path(folder) if folder is not None else Path(__file__).parent
    head = _git(folder, "rev-parse", "HEAD")
    status = _git(folder, "status", "--porcelain", "--untracked-files=no", "--", *_CODE) if head else None
    new = (
        _git(folder, "ls-files", "-z", "--others", "--exclude-standard", "--full-name", "--", ":(top)*.py")
        if head
        else None
    )
    if not head or status is None or new is None:
        return {"git_commit": None, "git_dirty": None, "git_diff_sha256": None}
    dirty = bool(status.strip() or new.strip())
    digest = None
    if dirty:
        top = Path(_git(folder, "rev-parse", "--show-toplevel").decode().strip())
        digest = hashlib.sha256(_git(folder, "diff", "--no-color", "--no-ext-diff", "HEAD", "--", *_CODE))
        for name in sorted(filter(None, new.decode().split("\0"))):
            digest.update(name.encode() + b"\0" + (top / name).read_bytes())
    return {
        "git_commit": head.decode().strip(),
        "git_dirty": dirty,
        "git_diff_sha256": digest.hexdigest()[:16] if digest is not None else None,
    }


def environment(device: torch.device, precision: str) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return {
        "fastst": fastst.__version__,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "device": str(device),
        "device_name": name,
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "precision": precision,
        "threads": torch.get_num_threads(),
        "command": command_line(),
        **git_state(),
    }
