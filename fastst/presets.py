"""The named presets of :class:`fastst.config.TrainConfig`: the settings each one fills, and why."""

from __future__ import annotations

from fastst.host import ON_THE_BASE

# Each preset fills every field it names; explicit arguments override it.
#
# What every CPU preset shares: 128 px crops (4x cheaper than 256 px) with the style image scaled to match
# them, a log line every 10 iterations, 256 px snapshots, one data-loading worker.
_CPU = dict(image_size=128, style_size=256, log_every=10, snapshot_size=256, num_workers=1)

# The settings of "cpu_half" (below), on which "cpu_small" builds.
_CPU_HALF = dict(
    **_CPU,
    iterations=1200,
    batch_size=4,
    lr=3e-3,
    lr_schedule="onecycle",
    warmup=0.05,
    width=0.5,
    input_skip=True,
    crop_schedule=((0.0, 64), (0.75, 128)),
    checkpoint_every=100,
)

PRESETS: dict[str, dict] = {
    # The GPU setup: 256 px crops, batch 4, Adam 1e-3, 40,000 iterations, on this project's photos
    # (data/train, or MS-COCO with `data fetch --coco`). The report trained on a 50,000-image ImageNet
    # subset (its section 3.2) for at least 80,000 iterations (section 4 speaks of the first 20,000
    # and the last 60,000); Johnson et al.'s own setup is in their paper, not restated here.
    "report": dict(
        iterations=40_000,
        image_size=256,
        batch_size=4,
        lr=1e-3,
        width=1.0,
        input_skip=False,
        style_size=512,
        log_every=50,
        checkpoint_every=1000,
        snapshot_size=256,
        num_workers=4,
    ),
    # The best from-scratch recipe measured on a CPU (README, "Time to quality on a CPU"): one photo a
    # step (more steps in the same time beat bigger batches) on a one-cycle learning rate, the gradient's
    # norm cut as in "finetune" (without it a long run collapsed).
    "cpu": dict(
        **_CPU,
        iterations=8800,
        batch_size=1,
        lr=1e-3,
        lr_schedule="onecycle",
        warmup=0.05,
        clip=1000.0,
        width=1.0,
        input_skip=False,
        checkpoint_every=200,
    ),
    # The cpu preset before it took one photo a step: batches of 4 at a constant rate for 2,000 iterations,
    # in about the same time; the reference of the time-to-quality results.
    "cpu_batch4": dict(
        **_CPU, iterations=2000, batch_size=4, lr=1e-3, width=1.0, input_skip=False, checkpoint_every=100
    ),
    # A half-width network that starts as the identity, a one-cycle learning rate with a higher peak,
    # and 64 px crops (at the scale of 128 px) for the first three quarters: cheaper steps, ahead of
    # "cpu_batch4" at its own short training time but short of its final quality (README).
    "cpu_half": _CPU_HALF,
    # The shipped Starry Night's recipe: "cpu_half" twice as long, on a network whose input and output
    # are folded 2x2 into channels (no layer at full resolution) with three residual blocks: faster to run on
    # a CPU, at the quality of the longer network (docs/performance.md, "Smaller networks").
    "cpu_small": {**_CPU_HALF, "iterations": 2400, "residual_blocks": 3, "shuffle": 2},
    # A new style from a trained network (--from base; the width and input skip are the network's): all
    # weights, a one-cycle schedule with a low peak and a long warm-up. A higher peak first undoes what the
    # network knew, and a network whose output adds its input settles on the tinted photo; one photo a
    # step (more steps in the same time) does better than batches of 2 or 4; and the gradient's norm is
    # cut, since a rare outsized step at the peak rate can leave a network that paints flat colour and
    # never recovers (README).
    "finetune": dict(
        **_CPU,
        iterations=720,
        batch_size=1,
        lr=5e-4,
        clip=1000.0,
        lr_schedule="onecycle",
        warmup=0.3,
        width=1.0,
        input_skip=False,
        checkpoint_every=50,
    ),
    # Seconds: for tests and CI.
    "smoke": dict(
        iterations=6,
        image_size=32,
        batch_size=2,
        lr=1e-3,
        width=0.25,
        input_skip=True,
        style_size=64,
        log_every=1,
        checkpoint_every=3,
        snapshot_size=48,
        snapshot_count=2,
        num_workers=0,
    ),
}

PRESET_NAMES = ("auto", *PRESETS)
# `fastst stylize --style-image P --refine` with no number: the finetune preset's steps, from the painting's
# network of the one-pass model on the shipped base's network (fastst/refine.py; docs/any_painting.md,
# "A few seconds of training")
REFINE_ITERATIONS = 60
REFINE_START = ON_THE_BASE
