"""A style the recipes were not tuned on: The Great Wave (python -m fastst data fetch --extra), at its
calibrated strength. The cpu preset as it was (now cpu_batch4) from scratch is the reference; against it,
the recipe the cpu preset now is (cpu_batch1_long) and shorter variants of it, the cpu_half preset from
scratch, the finetune preset from the shipped multi-style base (which does not hold this painting) and
from the base shipped before it with the levers tried on that, and the finetune preset as it was before
(half width, a higher peak rate) from the shipped half-width Starry Night network. Writes
results/time_to_quality_great_wave.json.

    python tools/great_wave.py [--train-only] [--skip cpu,...] [--only LABEL,...]
"""

import argparse
import os
import subprocess
from pathlib import Path

from fastst.data import EXTRA_DIR, data_dir
from fastst.io import atomic_path
from fastst.recipes import time_to_quality, time_to_quality_table
from fastst.train import runs_dir

# the finetune preset from the shipped base (fastst/pretrained/base.pth), started as the mean of its styles
BASE = {"preset": "finetune", "from": "base", "style_strength": 1.0}


# the bases shipped before, by the commit that shipped them
SHIPPED = {"base10k": "2b6671b", "base4": "591bfab"}


def shipped_path(label: str) -> str:
    """Where the base shipped as ``label`` is kept: runs/LABEL/model.pth."""
    return os.path.relpath(runs_dir() / label / "model.pth")


def take_shipped(label: str) -> None:
    """The base shipped as ``label``, taken from the project's history, to :func:`shipped_path`."""
    path = shipped_path(label)
    if not Path(path).exists():
        shipped = subprocess.run(
            ["git", "show", f"{SHIPPED[label]}:fastst/pretrained/base.pth"], capture_output=True, check=True
        ).stdout
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(shipped)


# the same from the bases shipped before: trained on the cpu preset for half as many iterations (10,500),
# and before that on batches of 4 (`make base` then), which the levers below were tried on
BASE10K = {**BASE, "from": shipped_path("base10k")}
OLD_BASE = {**BASE, "from": shipped_path("base4")}
# the same without the cut in the gradient's norm, and from there its batches before they were made single
# photos: 2 or 4, for as many photos in all
NO_CLIP = {**OLD_BASE, "clip": 0.0}
BASE2 = {**NO_CLIP, "batch_size": 2, "iterations": 360}
BASE4 = {**NO_CLIP, "batch_size": 4, "iterations": 180}
# the finetune preset's settings before the gentle rate, from the shipped half-width starry_night network
SN_HALF = {
    **BASE,
    "from": "starry_night",
    "iterations": 150,
    "batch_size": 4,
    "lr": 2e-3,
    "warmup": 0.1,
    "width": 0.5,
    "input_skip": True,
    "clip": 0.0,
}
# from scratch on fewer photos a step, with a one-cycle rate, for a quarter of the cpu preset's time; and on
# single photos for about all of its time, with the finetune preset's cut in the gradient's norm
FROM_SCRATCH = {"preset": "cpu_batch4", "style_strength": 1.0, "lr_schedule": "onecycle", "warmup": 0.05}
CPU_LONG = {**FROM_SCRATCH, "batch_size": 1, "iterations": 8800, "clip": 1000.0}
RECIPES = {
    # the shipped base: the finetune preset, on five draws of photos and crops (how far apart runs of one
    # recipe end), and for half as many iterations again
    "base": BASE,
    "base_seed1": {**BASE, "seed": 1},
    "base_seed2": {**BASE, "seed": 2},
    "base_seed3": {**BASE, "seed": 3},
    "base_seed4": {**BASE, "seed": 4},
    "base_1080": {**BASE, "iterations": 1080},
    # the base shipped before (10,500 iterations): the finetune preset, and from there half as many
    # iterations again; twice its peak rate; a schedule of about two minutes (at its rate and at twice it);
    # the norms' scale and shift at a higher peak rate than the rest
    "base10k": BASE10K,
    "base10k_1080": {**BASE10K, "iterations": 1080},
    "base10k_lr1e-3": {**BASE10K, "lr": 1e-3},
    "base10k_600": {**BASE10K, "iterations": 600},
    "base10k_600_lr1e-3": {**BASE10K, "iterations": 600, "lr": 1e-3},
    "base10k_normlr2e-3": {**BASE10K, "norm_lr": 2e-3},
    "base10k_normlr5e-3": {**BASE10K, "norm_lr": 5e-3},
    # the base's style (or mean) that scores lowest on this painting's objective as the start; Adam's second
    # moment averaged over fewer steps (beta2 0.99), to follow a new style's gradients sooner
    "base10k_closest": {**BASE10K, "init_style": "closest"},
    "base10k_beta2_0.99": {**BASE10K, "adam_beta2": 0.99},
    # the same recipe on other draws of photos and crops: how far apart runs of one recipe end
    "base10k_seed1": {**BASE10K, "seed": 1},
    "base10k_seed2": {**BASE10K, "seed": 2},
    # 96 px crops (at the scale of 128 px): cheaper steps, more of them in about the same two minutes; and
    # 128 px crops again for the last 30%
    "base10k_96": {**BASE10K, "iterations": 1150, "crop_schedule": ((0.0, 96),)},
    "base10k_96_128": {**BASE10K, "iterations": 1000, "crop_schedule": ((0.0, 96), (0.7, 128))},
    # the same at twice the peak rate; 80 px crops
    "base10k_96_lr1e-3": {**BASE10K, "iterations": 1150, "crop_schedule": ((0.0, 96),), "lr": 1e-3},
    "base10k_80": {**BASE10K, "iterations": 1500, "crop_schedule": ((0.0, 80),)},
    # the finetune preset for as many iterations as the cpu preset (about its time): whether the base still
    # helps at equal time
    "base10k_8800": {**BASE10K, "iterations": 8800},
    # the same at the cpu preset's peak rate and warm-up
    "base10k_8800_lr1e-3": {**BASE10K, "iterations": 8800, "lr": 1e-3, "warmup": 0.05},
    # the base shipped before that (batches of 4): the finetune preset, and from there: half as many
    # iterations again; 128 px crops of photos scaled to 171 px (the scale of the scored photos) or 256 px
    "base4": OLD_BASE,
    "base4_1080": {**OLD_BASE, "iterations": 1080},
    "base4_scale171": {**OLD_BASE, "image_size": 171, "crop_schedule": ((0.0, 128),)},
    "base4_scale256": {**OLD_BASE, "image_size": 256, "crop_schedule": ((0.0, 128),)},
    # without the cut in the gradient's norm, and from there one change: half as many iterations again; a
    # lower or higher peak rate; the weights' moving average kept instead of the weights
    "base4_noclip": NO_CLIP,
    "base4_noclip_1080": {**NO_CLIP, "iterations": 1080},
    "base4_noclip_lr3e-4": {**NO_CLIP, "lr": 3e-4},
    "base4_noclip_lr7e-4": {**NO_CLIP, "lr": 7e-4},
    "base4_noclip_avg0.98": {**NO_CLIP, "average": 0.98},
    "base4_noclip_avg0.95": {**NO_CLIP, "average": 0.95},
    # batches of 2, and from there twice the peak rate, or Adam's beta1 at 0.5
    "base4_batch2": BASE2,
    "base4_batch2_lr1e-3": {**BASE2, "lr": 1e-3},
    "base4_batch2_beta0.5": {**BASE2, "adam_beta1": 0.5},
    # batches of 4, and from there: twice the peak rate; the base's style (or mean) that scores lowest on
    # this painting's objective as the start; 64 px crops at the 128 px scale for most of a longer run; only
    # the norms' scale and shift (at a higher rate, as for Dumoulin et al.'s new styles)
    "base4_batch4": BASE4,
    "base4_batch4_lr1e-3": {**BASE4, "lr": 1e-3},
    "base4_batch4_closest": {**BASE4, "init_style": "closest"},
    "base4_batch4_64": {**BASE4, "iterations": 400, "crop_schedule": ((0.0, 64), (0.7, 128))},
    "base4_batch4_norms": {**BASE4, "train_only": "norms", "lr": 1e-2},
    # the half-width Starry Night network at the earlier settings, then one of them changed: a higher peak
    # rate, a heavier training style weight (the evaluation's stays at strength 1), twice the iterations
    "sn_half": SN_HALF,
    "sn_half_lr5e-3": {**SN_HALF, "lr": 5e-3},
    "sn_half_lr1e-2": {**SN_HALF, "lr": 1e-2},
    "sn_half_strength2": {**SN_HALF, "style_strength": 2.0},
    "sn_half_300": {**SN_HALF, "iterations": 300},
    # from scratch: cpu_half, and the cpu preset as it was (now cpu_batch4; the reference)
    "half": {"preset": "cpu_half", "style_strength": 1.0},
    "cpu_batch1": {**FROM_SCRATCH, "batch_size": 1, "iterations": 2200},
    "cpu_batch2": {**FROM_SCRATCH, "batch_size": 2, "iterations": 1100},
    "cpu_batch1_long": CPU_LONG,
    # the same at twice the peak rate
    "cpu_batch1_long_lr2e-3": {**CPU_LONG, "lr": 2e-3},
    # the same with its last 15% of iterations on 256 px crops (the scored photos' size), fewer iterations
    # in about the same time
    "cpu_batch1_long_256": {**CPU_LONG, "iterations": 6270, "crop_schedule": ((0.0, 128), (0.85, 256))},
    "cpu": {"preset": "cpu_batch4", "style_strength": 1.0},
}


def table(result: dict) -> list[dict]:
    """The tables of docs/time_to_quality.md made of this study's result."""
    return time_to_quality_table(result)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-only", action="store_true", help="train what is missing, then stop")
    parser.add_argument(
        "--skip", default="", help="labels to leave out; without cpu the targets are read against half"
    )
    parser.add_argument("--only", default="", help="labels to train (or score) alone")
    args = parser.parse_args()
    skipped, only = set(filter(None, args.skip.split(","))), set(filter(None, args.only.split(",")))
    for label in SHIPPED:
        take_shipped(label)
    recipes = {
        label: spec for label, spec in RECIPES.items() if label not in skipped and (not only or label in only)
    }
    reference = "cpu" if "cpu" in recipes else "half"
    result = time_to_quality(
        data_dir() / EXTRA_DIR / "great_wave.jpg",
        recipes,
        runs_dir() / "ttq",
        reference,
        protocol_overrides={"iterations": 200, "noise_iterations": 200},
        name="great_wave",
        train_only=args.train_only,
    )
    if args.train_only:
        return
    for label, rows in result["curves"].items():
        for row in rows:
            print(
                label,
                row["iteration"],
                round(row["seconds"], 1),
                round(row["optimality_ratio"], 3),
                row["lbfgs_equivalent"],
            )


if __name__ == "__main__":
    main()
