"""The time-to-quality ablation on The Starry Night: the cpu preset as it was against the cpu preset as it
is and the cpu_half preset, on the objective of the cpu preset (lambda_s 2); the other levers are measured
on The Great Wave (tools/great_wave.py). Writes results/time_to_quality_starry_night.json.

    python tools/ablation.py        # trains what is missing (runs/ttq/), then benchmarks and scores
"""

from fastst.data import data_dir
from fastst.recipes import time_to_quality, time_to_quality_table
from fastst.train import runs_dir

RECIPES = {
    # the cpu preset as it was (now cpu_batch4): full width, constant learning rate 1e-3, 2,000 iterations
    # at 128 px on batches of 4 (the reference)
    "cpu": {"preset": "cpu_batch4", "style_weight": 2.0},
    # the cpu preset as it is: one photo a step on a one-cycle rate with the gradient's norm cut, for about
    # the old preset's time (named as on The Great Wave, tools/great_wave.py)
    "cpu_batch1_long": {"preset": "cpu", "style_weight": 2.0},
    # cpu_half: half width, identity start, one-cycle learning rate (peak 3e-3), 1,200 iterations,
    # 64 px crops (at the 128 px scale) for the first 3/4, then 128 px (the shipped starry_night network)
    "half_progressive": {"preset": "cpu_half", "style_weight": 2.0},
}


def table(result: dict) -> list[dict]:
    """The tables of docs/time_to_quality.md made of this study's result."""
    return time_to_quality_table(result)


def main() -> None:
    result = time_to_quality(
        data_dir() / "styles" / "starry_night.jpg",
        RECIPES,
        runs_dir() / "ttq",
        "cpu",
        protocol_overrides={"iterations": 200, "noise_iterations": 200},
        name="starry_night",
    )
    for label, row in result["summary"].items():
        print(label, {k: v for k, v in row.items() if k != "settings"})


if __name__ == "__main__":
    main()
