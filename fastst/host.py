"""Facts about this computer and this process that need no PyTorch: the CPU and its vector extensions,
the command running, the user's cache folder, the shipped models' folder; and glibc's policy for freed
memory, which the quick path sets too."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import shlex
import sys
from pathlib import Path

PRETRAINED_DIR = Path(__file__).parent / "pretrained"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The vector extensions that decide the CPU's speed in fp32 and bf16."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return sorted(
        f for f in set(flags) if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma")
    )


def cache_folder() -> Path:
    """``$FASTST_CACHE``, else ``fastst`` in the user's cache folder (``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    if os.environ.get("FASTST_CACHE"):
        return Path(os.environ["FASTST_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastst"


def pretrained_path(name: str | os.PathLike) -> Path:
    """A shipped model's file for its style name (``fastst/pretrained/NAME.pth``); any other path as it is."""
    candidate = PRETRAINED_DIR / f"{name}.pth"
    return candidate if not Path(name).exists() and candidate.exists() else Path(name)


SHIPPED_ONE_PASS = ("anystyle", "anystyle_base")
ON_THE_BASE = "anystyle_base"  # the shipped one-pass model on the base's network, which takes a palette
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # a CPU that computes in bf16 natively has one of these


def has_amx() -> bool:
    """Whether the CPU has AMX's bf16 matrix tiles."""
    return "amx_bf16" in cpu_flags()


# The working size (longer side) of the "auto" style scale, the default with a painting: strokes keep the same
# size relative to the photo whatever the photo's size, and a larger photo costs one pass at this size and a
# guided upsampling (tools/any_style.py times both against a pass at the photo's own size).
WORKING_SIZE = 384
# The working size of "auto" for a full-width network on a CPU without AMX, where a pass at WORKING_SIZE
# takes longer than the peer's any-style mode (tools/peers_speed.py): the strokes come out larger.
SLOW_WORKING_SIZE = 256


def cpu_working_size(full_width: bool) -> int:
    """The working size of the "auto" style scale on this CPU for a full-width network or a narrower one:
    :data:`SLOW_WORKING_SIZE` for a full-width one without AMX, else :data:`WORKING_SIZE`."""
    return SLOW_WORKING_SIZE if full_width and not has_amx() else WORKING_SIZE


def default_one_pass() -> str:
    """The shipped one-pass model that takes a painting when none is named (``--model``): the one on the
    base's full-width network, on every device (without AMX at a smaller working size,
    :func:`cpu_working_size`), where ``tools/peers_speed.py``'s tables have it faster than the peer's
    any-style mode at the usual photo sizes, in bf16 and in fp32 (timed on AVX-512; untimed on a CPU of
    AVX2 only); it takes a ``--palette``, and the smaller one (``--model anystyle``), which tints the
    photo, takes none."""
    return ON_THE_BASE


def one_pass_file(name: str | os.PathLike | None = None) -> Path:
    """The file of the one-pass model ``name`` (a file or a shipped name; None: :func:`default_one_pass`),
    a shipped name's in this folder even where that file is missing."""
    name = name if name is not None else default_one_pass()
    if str(name) in SHIPPED_ONE_PASS and not Path(name).exists():
        return PRETRAINED_DIR / f"{name}.pth"
    return pretrained_path(name)


def command_line() -> str:
    """The command that is running, as a person would type it again in a shell (the program's name, not its
    path; an argument with spaces or quotes quoted)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


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


@contextlib.contextmanager
def freed_memory_reused():
    """:func:`reuse_freed_memory` for the duration only: on exit glibc's defaults are back and the memory it
    kept is handed back (a notebook's kernel, or a test's process, lives on after a call)."""
    reused = reuse_freed_memory()
    try:
        yield
    finally:
        if reused:
            _restore_malloc_defaults()
            release_freed_memory(keep_mb=0)
