"""A style the recipes were not tuned on: The Great Wave (python -m fastst data fetch --extra), at its
calibrated strength: the cpu preset (the reference), the cpu_half preset from scratch, and the finetune
preset from the shipped multi-style base and from the cpu_half recipe's Starry Night network (shipped as
starry_night).
Writes results/time_to_quality_great_wave.json.

    python tools/great_wave.py [STARRY_NIGHT_MODEL] [--train-only] [--skip cpu]
"""

import sys

from fastst.data import EXTRA_DIR, data_dir
from fastst.recipes import time_to_quality
from fastst.train import runs_dir

base = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "starry_night"
train_only = "--train-only" in sys.argv
# --skip cpu: leave out the cpu preset (52 minutes here), and read the targets against cpu_half instead
skipped = set(sys.argv[sys.argv.index("--skip") + 1].split(",")) if "--skip" in sys.argv else set()
recipes = {
    # the multi-style base (fastst/pretrained/base.pth), started as the mean of its styles: only the
    # norms' scale and shift (a higher learning rate, as for Dumoulin et al.'s new styles), or all weights
    "base_norms": {
        "preset": "finetune",
        "from": "base",
        "style_strength": 1.0,
        "train_only": "norms",
        "lr": 1e-2,
    },
    "base_all": {"preset": "finetune", "from": "base", "style_strength": 1.0},
    # the shipped Starry Night network (cpu_half recipe), all weights
    "finetune": {"preset": "finetune", "from": base, "style_strength": 1.0},
    # the same start, one lever changed: a higher peak learning rate, a heavier training style weight
    # (the evaluation's weight stays at strength 1), twice the iterations
    "finetune_lr5e-3": {"preset": "finetune", "from": base, "style_strength": 1.0, "lr": 5e-3},
    "finetune_lr1e-2": {"preset": "finetune", "from": base, "style_strength": 1.0, "lr": 1e-2},
    "finetune_strength2": {"preset": "finetune", "from": base, "style_strength": 2.0},
    "finetune_300": {"preset": "finetune", "from": base, "style_strength": 1.0, "iterations": 300},
    # from scratch: cpu_half, and the cpu preset (the reference)
    "half": {"preset": "cpu_half", "style_strength": 1.0},
    "cpu": {"preset": "cpu", "style_strength": 1.0},
}
recipes = {label: spec for label, spec in recipes.items() if label not in skipped}
reference = "cpu" if "cpu" in recipes else "half"
result = time_to_quality(
    data_dir() / EXTRA_DIR / "great_wave.jpg",
    recipes,
    runs_dir() / "ttq",
    reference,
    photos_count=3,
    protocol_overrides={"iterations": 200, "noise_iterations": 200},
    name="great_wave",
    train_only=train_only,
)
if train_only:
    sys.exit()
for label, rows in result["curves"].items():
    for row in rows:
        print(
            label,
            row["iteration"],
            round(row["seconds"], 1),
            round(row["optimality_ratio"], 3),
            row["lbfgs_equivalent"],
        )
