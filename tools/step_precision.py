"""What precision costs a training step, on a CPU with native bf16 (where "auto" trains in bf16).

The ``cpu_batch4`` preset's training step (128 px, batch 4) timed in interleaved rounds in one process in
three forms: as fastst trains here (bf16 autocast, the Gram matrices and style loss in fp32, because a Gram
is a sum over every pixel of a feature map), with the Gram matrices left to autocast (bf16 products),
and all in fp32 (what a CPU without native bf16 runs); and the objectives of the first two on the same
batch. Writes results/step_precision.json.

    python tools/step_precision.py [--rounds N]
"""

import argparse

import torch

from fastst.config import TrainConfig
from fastst.data import STYLES, data_dir
from fastst.measure import interleaved_medians
from fastst.results import write_result
from fastst.runtime import autocast, resolve_precision
from fastst.step import TRAINING_LAYOUT, build_step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    device = torch.device("cpu")
    precision = resolve_precision("auto", device)
    config = TrainConfig.from_preset("cpu_batch4", style=str(data_dir() / STYLES["starry_night"]))
    # training's step, the same with the Gram matrices left to autocast, and the step all in fp32
    steps = {
        "fp32": build_step(config, device, precision),
        "autocast": build_step(config, device, precision, fp32_gram=False),
        "all_fp32": build_step(config, device, "fp32"),
    }
    batch = torch.rand(config.batch_size, 3, config.image_size, config.image_size).contiguous(
        memory_format=TRAINING_LAYOUT
    )
    times = interleaved_medians(
        {label: lambda s=step: s(batch) for label, step in steps.items()}, args.rounds, device
    )
    with torch.no_grad(), autocast(device, precision):
        out = steps["fp32"].model(batch)
        objectives = {
            label: float(steps[label].criteria[0](out, batch).total) for label in ("fp32", "autocast")
        }
    result = {
        "precision": precision,
        "preset": "cpu_batch4",
        "image_size": config.image_size,
        "batch_size": config.batch_size,
        "step_seconds_fp32_gram": times["fp32"],
        "step_seconds_autocast_gram": times["autocast"],
        "cost_of_fp32_gram": times["fp32"] / times["autocast"] - 1,
        "objective_fp32_gram": objectives["fp32"],
        "objective_autocast_gram": objectives["autocast"],
        "objective_relative_difference": abs(objectives["autocast"] / objectives["fp32"] - 1),
        "step_seconds_all_fp32": times["all_fp32"],
        "fp32_step_over_bf16_step": times["all_fp32"] / times["fp32"],
    }
    print(result)
    write_result("step_precision", result)


if __name__ == "__main__":
    main()
