"""Facts about this computer and this process that need no PyTorch: the CPU and its vector extensions,
the command running, the user's cache folder, the shipped models' folder."""

from __future__ import annotations

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


SHIPPED_ONE_PASS = ("anystyle", "anystyle_base", "anystyle_fast")
# The shipped one-pass model on the base's full-width network: the one --refine trains a painting's network
# from. It takes a --palette; the smaller one (--model anystyle), which tints the photo, takes none.
ON_THE_BASE = "anystyle_base"
# The one a painting takes when no ``--model`` is named, on every device: anystyle_base's style-prediction
# network, trained further on base_fast's convolutions (the base folded and factored), with the same palette.
DEFAULT_ONE_PASS = "anystyle_fast"
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # a CPU that computes in bf16 natively has one of these


def has_amx() -> bool:
    """Whether the CPU has AMX's bf16 matrix tiles."""
    return "amx_bf16" in cpu_flags()


# The working size (longer side) of the "auto" style scale, the default with a painting: strokes keep the same
# size relative to the photo whatever the photo's size, and a larger photo costs one pass at this size and a
# guided upsampling (tools/any_style.py times both against a pass at the photo's own size).
WORKING_SIZE = 384
# The working size of "auto" on a CPU where a pass at WORKING_SIZE takes longer than the peer's any-style mode
# (tools/peers_speed.py): the strokes come out larger.
SLOW_WORKING_SIZE = 256


def cpu_working_size(kind: str, bf16: bool) -> int:
    """The working size of the "auto" style scale on this CPU for a network of ``kind``
    (:func:`fastst.scale.network_kind`) run in bf16 (``bf16``) or fp32: :data:`WORKING_SIZE` where a pass at
    it is timed faster than the peer's any-style mode: a "narrow" or "factored" network's everywhere, a
    "full" one's in bf16 on AMX's tiles; else :data:`SLOW_WORKING_SIZE`."""
    fast = {"narrow": True, "factored": True, "full": bf16 and has_amx()}[kind]
    return WORKING_SIZE if fast else SLOW_WORKING_SIZE


def one_pass_file(name: str | os.PathLike | None = None) -> Path:
    """The file of the one-pass model ``name`` (a file or a shipped name; None: :data:`DEFAULT_ONE_PASS`),
    a shipped name's in this folder even where that file is missing."""
    name = name if name is not None else DEFAULT_ONE_PASS
    if str(name) in SHIPPED_ONE_PASS and not Path(name).exists():
        return PRETRAINED_DIR / f"{name}.pth"
    return pretrained_path(name)


def command_line() -> str:
    """The command that is running, as a person would type it again in a shell (the program's name, not its
    path; an argument with spaces or quotes quoted)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
