"""The Great Wave on a CPU without native bf16 (training in fp32): the cpu preset as it was (cpu_batch4, the
reference) and the finetune preset from the shipped base, as `python -m fastst time-to-quality --style
data/styles_extra/great_wave.jpg --recipes cpu_batch4 --from base` runs them; and, from scratch, the cpu
preset for a quarter of its iterations, with one lever changed a recipe: a narrower network (Johnson et al.'s
half width, cheaper steps; over the same iterations, and over as many as fit in the full width's time), a
harder cut of the gradient's norm, half and twice the peak learning rate; and on a second seed; and the cpu
preset itself, for all of its iterations, for an eighth and half as many, and for as many as end by
cpu_batch4's time.
Writes results/time_to_quality_great_wave_fp32.json.

    python tools/great_wave_fp32.py [--train-only] [--only LABEL,...]
"""

import argparse

from fastst.data import EXTRA_DIR, data_dir
from fastst.recipes import time_to_quality, time_to_quality_table
from fastst.train import runs_dir

QUARTER = {"preset": "cpu", "iterations": 2200, "style_strength": 1.0}
RECIPES = {
    "cpu_batch4": {"preset": "cpu_batch4", "style_strength": 1.0},
    "finetune": {"preset": "finetune", "from": "base", "style_strength": 1.0},
    "cpu_2200": QUARTER,
    "cpu_2200_half": {**QUARTER, "width": 0.5},
    # more half-width steps, in about the full width's time by a benchmark of the two steps taken before the
    # runs (the result's own benchmark, which its times come from, may find another ratio)
    "cpu_2880_half": {**QUARTER, "width": 0.5, "iterations": 2880},
    # the gradient's norm cut at a tenth of the preset's threshold
    "cpu_2200_clip100": {**QUARTER, "clip": 100.0},
    # the quarter-length cpu preset on another draw of photos and crops: how far apart runs of one recipe end
    "cpu_2200_seed1": {**QUARTER, "seed": 1},
    # half and twice the preset's peak learning rate
    "cpu_2200_lr5e-4": {**QUARTER, "lr": 5e-4},
    "cpu_2200_lr2e-3": {**QUARTER, "lr": 2e-3},
    # the cpu preset as it is, for all its iterations: from scratch, somewhat longer than cpu_batch4
    "cpu": {"preset": "cpu", "style_strength": 1.0},
    # the cpu preset at an eighth and half its length, on its schedule: how its final quality scales with
    # training time (tools/length_scaling.py)
    "cpu_1100": {**QUARTER, "iterations": 1100},
    "cpu_4400": {**QUARTER, "iterations": 4400},
    # the cpu preset on a schedule that ends by cpu_batch4's time (as many steps as cpu_batch4's take by this
    # result's step benchmark, less a margin for the next benchmark's): the two at equal time, each at the end
    # of its own schedule
    "cpu_7100": {**QUARTER, "iterations": 7100},
}


def table(result: dict) -> list[dict]:
    """The tables of docs/time_to_quality.md made of this study's result."""
    return time_to_quality_table(result)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-only", action="store_true", help="train what is missing, then stop")
    parser.add_argument("--only", default="", help="labels to train (or score) alone")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))
    recipes = {label: spec for label, spec in RECIPES.items() if not only or label in only}
    time_to_quality(
        data_dir() / EXTRA_DIR / "great_wave.jpg",
        recipes,
        runs_dir() / "ttq",
        "cpu_batch4",
        protocol_overrides={"iterations": 200, "noise_iterations": 200},
        name="great_wave_fp32",
        train_only=args.train_only,
    )


if __name__ == "__main__":
    main()
