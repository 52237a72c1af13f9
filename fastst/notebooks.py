"""Running the project's notebooks in order (the main job), exporting HTML, clearing outputs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from fastst.config import style_configs
from fastst.errors import FaststError
from fastst.io import atomic_path, project_folder
from fastst.plotting import figures_dir
from fastst.recipes import estimate_seconds
from fastst.results import matmul_rate
from fastst.runtime import resolve_device, resolve_precision
from fastst.train_log import TERMINAL_PROGRESS_ENV


def notebooks_dir() -> Path:
    """``$FASTST_NOTEBOOKS``, else ``notebooks/`` of the checkout this package runs from, else ``./notebooks``
    (an installed, non-editable package runs the notebooks of the folder it is called from)."""
    return project_folder("notebooks", "FASTST_NOTEBOOKS")


def notebook_paths() -> list[Path]:
    paths = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FaststError(f"no notebooks found in {notebooks_dir()}")
    return paths


def run(
    preset: str | None = None,
    html: bool = False,
    only: list[str] | None = None,
    timeout: int | None = None,
    out: str | os.PathLike | None = None,
) -> dict[str, float]:
    """Execute the notebooks in order on fresh kernels; executed copies go to ``notebooks/executed``
    (and HTML to ``html/`` with ``html``). Returns seconds per notebook; raises FaststError naming
    the notebook and cell that failed. ``timeout``: the seconds a cell may take (None: no limit, as
    notebook 3's training cell takes as long as the preset asks on this machine)."""
    os.environ.setdefault(TERMINAL_PROGRESS_ENV, "1")  # training in the kernels reports to this terminal
    previous = os.environ.get("FASTST_PRESET")
    if preset:
        os.environ["FASTST_PRESET"] = preset  # the kernels inherit it
    try:
        return _run(html, only, timeout, out)
    finally:
        if preset:
            if previous is None:
                os.environ.pop("FASTST_PRESET", None)
            else:
                os.environ["FASTST_PRESET"] = previous


POLL_SLICE_S = 1.0  # the longest a message that has arrived may wait to be read


def poll_in_slices(channel, slice_s: float = POLL_SLICE_S) -> None:
    """Make an async kernel channel's ``get_msg`` wait in slices of ``slice_s`` seconds up to its timeout
    (or without end), not in one poll. Now and then one poll misses a message that arrives while it waits
    (after a cell that opens ipywidgets, jupyter/nbclient#312) and returns only at its timeout, the cell's
    limit; each new slice sees the message at once."""
    from queue import Empty

    get = channel.get_msg

    async def get_msg(timeout: float | None = None):
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            left = slice_s if end is None else min(slice_s, max(0.0, end - time.monotonic()))
            try:
                return await get(timeout=left)
            except Empty:
                if end is not None and time.monotonic() >= end:
                    raise

    channel.get_msg = get_msg


def _run(html: bool, only, timeout: int | None, out) -> dict[str, float]:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    class Client(NotebookClient):  # its kernel's messages read in slices (poll_in_slices)
        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            for channel in (kc.shell_channel, kc.iopub_channel):
                poll_in_slices(channel)
            return kc

    out = Path(out) if out else notebooks_dir() / "executed"
    out.mkdir(parents=True, exist_ok=True)
    html_dir = notebooks_dir().resolve().parent / "html"
    seconds = {}
    paths = [p for p in notebook_paths() if not only or any(p.name.startswith(o) for o in only)]
    tqdm.write(
        f"figures go to {figures_dir()}, executed notebooks to {out}"
        + (f", HTML to {html_dir}" if html else "")
        + "; meanwhile the shipped styles, any painting and the app work from another terminal"
    )
    if any(p.name.startswith("03") for p in paths):
        tqdm.write(training_estimate())
    for path in tqdm(paths, desc="notebooks", unit="nb"):
        nb = nbformat.read(path, as_version=4)
        # the kernel's own log stays quiet (its unencrypted-TCP notice on every start is noise on localhost)
        client = Client(
            nb,
            timeout=timeout,
            kernel_name="python3",
            extra_arguments=["--log-level=ERROR"],
            resources={"metadata": {"path": str(path.parent)}},
            on_cell_execute=_announce(path.name, nb),
        )
        start = time.perf_counter()
        try:
            client.execute()
        except CellExecutionError as e:
            lines = [line for line in str(e).splitlines() if line.strip()]
            raise FaststError(f"{path.name} failed: {lines[-1] if lines else e}") from None
        except CellTimeoutError:
            raise FaststError(f"{path.name}: a cell ran past the limit of {timeout} s") from None
        except Exception as e:  # nbclient's cleanup after a dead kernel raises its own error on top
            if not any(isinstance(x, DeadKernelError) for x in (e, e.__context__, e.__cause__)):
                raise
            raise FaststError(
                f"{path.name}: the kernel died (out of memory, or a crash in a cell); "
                "run the notebook in JupyterLab to see where"
            ) from None
        finally:
            seconds[path.name] = time.perf_counter() - start
            with atomic_path(out / path.name) as tmp:
                nbformat.write(nb, tmp)
        if html:
            from nbconvert import HTMLExporter

            html_dir.mkdir(exist_ok=True)
            body, _ = HTMLExporter().from_notebook_node(nb)
            with atomic_path(html_dir / path.with_suffix(".html").name) as tmp:
                tmp.write_text(body)
        tqdm.write(f"{path.name}: {seconds[path.name]:.0f} s")
    return seconds


def _announce(name: str, nb):
    """A hook that names each code cell as it starts, so a long job shows where it is."""
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]

    def hook(cell, cell_index):
        first = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""
        tqdm.write(f"{name}: cell {code.index(cell_index) + 1}/{len(code)}  {first}")

    return hook


def training_estimate() -> str:
    """A line saying how long notebook 03's training will take here, measured on the spot."""
    configs = style_configs(os.environ.get("FASTST_PRESET", "auto"))
    todo = [c for c in configs.values() if not (Path(c.out) / "model.pth").exists()]
    if not todo:
        return "training: every style's run is already finished (notebook 03 reuses it)"
    seconds = estimate_seconds(todo[0]) * len(todo)
    precision = resolve_precision(todo[0].precision, resolve_device(todo[0].device))
    rates = f"fp32 matmul {matmul_rate():.0f} GFLOP/s" + (
        f", bf16 {matmul_rate(torch.bfloat16):.0f}" if precision == "bf16" else ""
    )
    return (
        f"training: {len(todo)} style(s) of the {todo[0].preset} preset in {precision}, about "
        f"{seconds / 60:.0f} min on this machine ({torch.get_num_threads()} threads, {rates}), measured now"
    )


def strip(paths: list[Path] | None = None) -> list[Path]:
    """Clear outputs and execution counts (notebooks are committed clean)."""
    import nbformat

    changed = []
    for path in paths or notebook_paths():
        nb = nbformat.read(path, as_version=4)
        dirty = False
        for cell in nb.cells:
            if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None):
                cell.outputs, cell.execution_count, dirty = [], None, True
            if cell.get("metadata", {}).pop("execution", None) is not None:
                dirty = True
        if dirty:
            with atomic_path(path) as tmp:
                nbformat.write(nb, tmp)
            changed.append(path)
    return changed
