"""A run folder: ``config.json``, ``losses.csv``, ``snapshots/``, ``weights/``, ``checkpoint.pth`` and
``model.pth``; how each is written, read and checked, so that a run can stop and resume anywhere."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch

from fastst.config import TrainConfig, normalise
from fastst.errors import FaststError
from fastst.io import atomic_path, atomic_torch_save, load_checkpoint, save_image
from fastst.transformer import TransformerNet

CSV_FIELDS = ["iteration", "style_name", "content", "style", "tv", "total", "lr", "images_per_s", "elapsed_s"]


class RunFolder:
    def __init__(self, out: str | os.PathLike):
        self.root = Path(out)
        self.config = self.root / "config.json"
        self.losses = self.root / "losses.csv"
        self.checkpoint = self.root / "checkpoint.pth"
        self.model = self.root / "model.pth"
        self.snapshots = self.root / "snapshots"
        self.weights = self.root / "weights"

    def create(self) -> None:
        try:
            self.snapshots.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FaststError(f"cannot create run folder {self.root}: {e.strerror}") from None
        if not os.access(self.root, os.W_OK):
            raise FaststError(f"run folder is not writable: {self.root}")

    def write_json(self, path: Path, data: dict) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")

    def truncate_losses(self, iteration: int) -> None:
        """Keep the rows up to ``iteration`` (a resumed run rewrites what came after)."""
        rows = []
        if self.losses.exists():
            with open(self.losses, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= iteration]
        with atomic_path(self.losses) as tmp:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, CSV_FIELDS)
                writer.writeheader()
                writer.writerows(rows)

    def append_loss(self, row: dict) -> None:
        with open(self.losses, "a", newline="") as f:
            csv.DictWriter(f, CSV_FIELDS).writerow(row)


def load_losses(run: str | os.PathLike):
    """``losses.csv`` of a run as a pandas DataFrame."""
    import pandas as pd

    return pd.read_csv(RunFolder(run).losses)


def load_training_checkpoint(path: Path) -> dict:
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not {"model", "optimizer", "iteration", "config"} <= set(state):
        raise FaststError(f"not a fastst training checkpoint: {path}")
    return state


def check_same_run(saved: dict, config: TrainConfig) -> None:
    current = asdict(config)
    # a run saved before a field existed ran with that field's default
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}

    def same_files(a, b) -> bool:  # the same files, named relatively or absolutely
        a, b = ([a] if isinstance(a, str) else list(a)), ([b] if isinstance(b, str) else list(b))
        return len(a) == len(b) and all(Path(x).resolve() == Path(y).resolve() for x, y in zip(a, b))

    for k in ("style", "data"):
        if saved.get(k) and current[k] and same_files(saved[k], current[k]):
            current[k] = saved[k]
    differ = [
        k
        for k in current
        if k not in TrainConfig.RESUMABLE_CHANGES
        and normalise(saved.get(k, defaults[k])) != normalise(current[k])
    ]
    if config.depends_on_length() and saved.get("iterations") != config.iterations:
        raise FaststError(
            f"cannot resume with --iterations {config.iterations}: this run's learning-rate or crop "
            f"schedule is laid over its {saved.get('iterations')} iterations"
        )
    if differ:
        k = differ[0]
        raise FaststError(
            f"cannot resume: {k} was {saved.get(k)!r} and is now {current[k]!r} "
            f"(choose another --out for a different run)"
        )


def resumed_state(run: RunFolder, config: TrainConfig, resume: bool, main: bool) -> dict | None:
    """The checkpoint to continue from (checked to be of this run), or None for a new run."""
    state = None
    if run.checkpoint.exists():
        if not resume:
            raise FaststError(
                f"{run.root} already holds a run; pass --resume to continue it or choose another --out"
            )
        state = load_training_checkpoint(run.checkpoint)
        check_same_run(state["config"], config)
    elif run.model.exists() and resume:
        raise FaststError(f"{run.root} has a model but no checkpoint to resume from")
    if main:
        run.create()
    return state


def last_row(run: RunFolder) -> dict:
    if not run.losses.exists():
        return {}
    with open(run.losses, newline="") as f:
        rows = list(csv.DictReader(f))
    return (
        {k: (v if k == "style_name" else float(v)) for k, v in rows[-1].items() if v not in ("", None)}
        if rows
        else {}
    )


def write_model(
    run: RunFolder,
    state_dict: dict,
    net: dict,
    config: dict,
    style_weight,
    iteration: int,
    environment: dict,
    styles: list[str],
) -> None:
    """The finished run's ``model.pth``: the weights, what built and trained them, and its styles' names."""
    atomic_torch_save(
        {
            "model": state_dict,
            "net": net,
            "config": config,
            "style_weight": style_weight,
            "iteration": iteration,
            "environment": environment,
            "styles": styles,
        },
        run.model,
    )


def keep_weights(
    model: TransformerNet, run: RunFolder, iteration: int, elapsed: float, styles: list[str]
) -> None:
    """The network at ``iteration``, with the training seconds spent to reach it (for quality curves)."""
    run.weights.mkdir(exist_ok=True)
    atomic_torch_save(
        {
            "model": model.state_dict(),
            "net": model.config,
            "iteration": iteration,
            "elapsed_s": elapsed,
            "styles": styles,
        },
        run.weights / f"{iteration:06d}.pth",
    )


@torch.inference_mode()
def write_snapshots(
    model: TransformerNet,
    photos: dict,
    run: RunFolder,
    iteration: int,
    device: torch.device,
    styles: list[str],
) -> None:
    """The held-out photos at ``iteration``: ``snapshots/<iteration>/``, or per style
    ``snapshots/<style>/<iteration>/`` for a multi-style network."""
    if not photos:
        return
    was_training = model.training
    model.eval()
    for k, name in enumerate(styles):
        folder = run.snapshots / (f"{iteration:06d}" if len(styles) == 1 else f"{name}/{iteration:06d}")
        folder.mkdir(parents=True, exist_ok=True)
        for stem, photo in photos.items():
            out = (
                model(photo.unsqueeze(0).to(device), k)
                if len(styles) > 1
                else model(photo.unsqueeze(0).to(device))
            )
            save_image(out[0].float().cpu(), folder / f"{stem}.jpg")
    model.train(was_training)


def snapshot_table(run: str | os.PathLike, style: str | None = None) -> dict[int, dict[str, Path]]:
    """{iteration: {photo stem: snapshot path}} of a run, for the Fig. 3 grids (of ``style`` in a
    multi-style run)."""
    folder = RunFolder(run).snapshots / (style or "")
    table = {}
    for sub in sorted(folder.iterdir()) if folder.exists() else []:
        if sub.is_dir() and sub.name.isdigit():
            table[int(sub.name)] = {p.stem: p for p in sorted(sub.glob("*.jpg"))}
    return table
