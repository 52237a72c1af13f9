"""A painting's own network in seconds rather than minutes (``fastst stylize --style-image P --refine``): the
``finetune`` preset for a few dozen steps, by default from the painting's network of the shipped one-pass
model on the base's network (``anystyle_base``: the base's convolutions, the painting's predicted norms), as
``fastst train --preset finetune --from base`` does for its full length from the base's mean style. Which
start and how few steps already pay is measured in docs/any_painting.md ("A few seconds of training",
``tools/any_style.py --refine``, ``tools/one_pass_refine.py``): from the small one-pass model's network the
picture stays near the photo; from the base's mean style it takes longer than from ``anystyle_base``.

The run goes to ``runs/refined/``, named by the painting's content, the starting model's and the number of
steps, so the same painting asked for again (a folder later, a clip) reuses its network, and a run
stopped part way resumes.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastst.config import TrainConfig, runs_dir
from fastst.data import TRAIN_DIR, data_dir
from fastst.errors import FaststError
from fastst.host import pretrained_path
from fastst.images import file_digest
from fastst.presets import REFINE_ITERATIONS, REFINE_START
from fastst.train import train


def refined_folder(
    painting: str | os.PathLike, iterations: int, start: str | os.PathLike = REFINE_START
) -> Path:
    """Where the refined network of ``painting`` lives: one folder per painting content, starting model
    and number of steps."""
    model = pretrained_path(start)
    try:
        painting_digest = file_digest(painting)[:12]
    except OSError as e:
        raise FaststError(f"cannot read the painting {painting}: {e.strerror}") from None
    try:
        model_digest = file_digest(model)[:8]
    except OSError:
        raise FaststError(f"no model to refine from at {model}") from None
    return runs_dir() / "refined" / f"{painting_digest}-{model_digest}-{iterations}"


def refine_painting(
    painting: str | os.PathLike,
    iterations: int = REFINE_ITERATIONS,
    start: str | os.PathLike = REFINE_START,
    progress: bool = True,
) -> Path:
    """The model file of ``painting``'s own network after ``iterations`` steps of the ``finetune`` preset
    on the training photos from ``start`` (a one-pass model, its network for the painting, by default the
    shipped ``anystyle_base``; or a multi-style model, its mean style); trained once, then reused."""
    if iterations < 1:
        raise FaststError(f"--refine takes a number of steps of at least 1, not {iterations}")
    photos = data_dir() / TRAIN_DIR
    if not photos.is_dir():  # training itself refuses a folder without usable images
        raise FaststError(
            f"--refine trains on the training photos and {photos} has none: run `python -m fastst data fetch`"
        )
    out = refined_folder(painting, iterations, start)
    config = TrainConfig.from_preset(
        "finetune", style=str(painting), data=str(photos), out=str(out), iterations=iterations
    )
    config.init = str(start)
    config.snapshot_count = 0  # no held-out photos drawn along the way: the user's own photos follow
    return train(config, resume=True, progress=progress).run / "model.pth"
