"""Result files: every measured number the project quotes lives in ``results/<name>.json``, written
by the command that measured it, beside the command line, the machine and the code: the git commit and
whether (and how) the working tree differed from it."""

from __future__ import annotations

import datetime
import functools
import json
import os
import platform
from pathlib import Path

import torch

from fastst.host import command_line, cpu_flags, cpu_model
from fastst.io import atomic_path, project_folder
from fastst.measure import matmul_gflops
from fastst.runtime import git_state

RESULTS_ENV = "FASTST_RESULTS"


def results_dir() -> Path:
    """``$FASTST_RESULTS``, else ``results/`` of the project checkout, else ``./results``."""
    return project_folder("results", RESULTS_ENV)


@functools.lru_cache(maxsize=None)
def matmul_rate(dtype: torch.dtype = torch.float32) -> float:
    """The fp32 (or ``dtype``) matmul rate to record beside any absolute time (``measure.matmul_gflops``:
    the best over two sizes and a few repeats, once per process), so that times from other machines can
    be scaled. Every record and every share of the rate in one process uses this one measurement."""
    return matmul_gflops(dtype, sizes=(512, 1024), repeats=5)


def machine(measure: bool = True) -> dict:
    """What a result depends on: CPU, threads, vector extensions, matmul rates, GPU, versions, and the
    code (the commit, and whether and how the working tree differed from it)."""
    info = {
        "cpu": cpu_model(),
        "cpu_flags": cpu_flags(),
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        **git_state(),
    }
    if measure:
        info["matmul_fp32_gflops"] = round(matmul_rate(torch.float32), 1)
        info["matmul_bf16_gflops"] = round(matmul_rate(torch.bfloat16), 1)
    return info


def timestamp() -> str:
    """Now, in UTC to the second, as results record their date."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def write_result(
    name: str, data: dict, folder: str | os.PathLike | None = None, machine_info: dict | None = None
) -> Path:
    """Write ``results/<name>.json`` atomically with the command, machine and date around ``data``."""
    folder = Path(folder) if folder is not None else results_dir()
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "name": name,
        "command": command_line(),
        "date": timestamp(),
        "machine": machine_info if machine_info is not None else machine(),
        **data,
    }
    path = folder / f"{name}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path


def read_result(name: str, folder: str | os.PathLike | None = None) -> dict:
    folder = Path(folder) if folder is not None else results_dir()
    return json.loads((folder / f"{name}.json").read_text())
