"""What defines a training run: :class:`TrainConfig` (built from a preset of :mod:`fastst.presets`), and
where runs live."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from fastst.data import STYLES, TRAIN_DIR, data_dir
from fastst.errors import FaststError
from fastst.io import project_folder
from fastst.losses import STYLE_LAYERS
from fastst.presets import PRESET_NAMES, PRESETS
from fastst.vgg import LAYERS

LR_SCHEDULES = ("constant", "cosine", "onecycle")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def option(default, help: str, flag: str | None = None, **keywords) -> dataclasses.Field:
    """A dataclass field that is also a command-line option, so that an option is written once: its help,
    its ``flag`` (default: the field's name with dashes) and any other keyword of argparse's
    ``add_argument`` (choices, metavar, type, required, action). :class:`TrainConfig`'s are the options of
    ``fastst train``."""
    return field(default=default, metadata={"help": help, "flag": flag, **keywords})


def option_fields(options) -> list[dataclasses.Field]:
    """The fields of the dataclass ``options`` made with :func:`option`."""
    return [f for f in dataclasses.fields(options) if "help" in f.metadata]


def parse_crop_schedule(text: str) -> tuple:
    """``"0:64,0.4:128"`` as ``((0.0, 64), (0.4, 128))``, the form of ``crop_schedule``."""
    try:
        return tuple((float(f), int(size)) for f, size in (item.split(":") for item in text.split(",")))
    except ValueError:
        raise ValueError(f"expected FRACTION:SIZE,... such as 0:64,0.4:128, not {text!r}") from None


@dataclass
class TrainConfig:
    """Everything that defines a training run. Build with :meth:`from_preset`.

    The fields made with :func:`option` are the options of ``fastst train``; an option the command line
    does not give keeps the preset's value.
    """

    style: str | tuple = option(
        "",
        "style image y_s; repeat it to train one network on several styles (one scale and shift per style "
        "in every instance norm)",
        required=True,
        action="append",
    )
    data: str = option("", "folder of training photos (searched recursively)", required=True)
    out: str = option("runs/run", "run folder", required=True)
    preset: str = option(
        "cpu",
        "the named settings the other options change; auto (the default): report on a GPU, cpu otherwise",
        choices=PRESET_NAMES,
    )
    iterations: int = option(2000, "training iterations")
    image_size: int = option(128, "side of the square training crops")
    batch_size: int = option(4, "photos a step")
    lr: float = option(1e-3, "Adam's learning rate (the peak, with a schedule)")
    lr_schedule: str = option(
        "constant", "onecycle: a warm-up, then cosine to 0; cosine: from the start", choices=LR_SCHEDULES
    )
    warmup: float = option(0.0, "onecycle: fraction of the iterations spent warming up")
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    crop_schedule: tuple = option(
        (),
        "progressive crops, e.g. 0:64,0.4:128 (64 px from the start, 128 px from 40% of the iterations)",
        type=parse_crop_schedule,
        metavar="F:SIZE,...",
    )
    init: str | None = option(
        None, "start from this trained model instead of random weights", flag="--from", metavar="MODEL"
    )
    init_style: str = option(
        "mean",
        "with a multi-style --from: start from the mean of its styles (mean), a style or mix by name "
        "(name or name:w,name:w), or the one scoring lowest on this run's objective (closest)",
        flag="--from-style",
        metavar="STYLE",
    )
    train_only: str = option(
        "all", "norms: train only the instance norms' scale and shift", choices=("all", "norms")
    )
    average: float = option(
        0.0,
        "keep, snapshot and save an exponential moving average of the weights with this decay "
        "(0: the weights as trained)",
        metavar="DECAY",
    )
    clip: float = option(0.0, "cut the gradient's norm to at most NORM (0: not cut)", metavar="NORM")
    norm_lr: float = option(
        0.0,
        "the peak learning rate of the instance norms' scale and shift, on the run's schedule (0: --lr)",
        metavar="LR",
    )
    style_strength: float | None = option(
        None,
        "stylization strength, comparable across style images: lambda_s is the style's calibrated weight "
        "times this (default 1 unless --style-weight is given; see fastst preview)",
    )
    # Loss scale. These weights multiply the report's own equations (1-4) on RGB images in
    # [0, 1]: eq. 1 and eq. 2 divide by C*H*W, eq. 3 sums squared Frobenius norms over the four
    # style layers. The report's total loss "near 0.9e6" (its section 4) is on a scale it does not
    # define, and it does not say which code it ran. Weights of that order appear in pytorch/examples'
    # fast_neural_style (content 1e5, style 1e10 by default), whose style term also divides each
    # layer's Gram difference differently; so the report's figure is not comparable with the losses
    # printed here term by term: the loss curves' shape, not their height, is what reproduces Fig. 2.
    #
    # Loss weights, chosen with the real VGG-16 on The Starry Night (128 px crops, 400 iterations,
    # held-out photos compared by eye): lambda_s / lambda_c = 10 or 3 paints the texture over the
    # photos (content loss rising as training goes on); 1 keeps the objects recognisable under
    # strong brushwork; 2 sits between. TV is kept small: at 1e-4 it is below 1% of the total and
    # only damps single-pixel noise.
    content_weight: float = option(1.0, "lambda_c of eq. 5")
    style_weight: float = option(2.0, "lambda_s of eq. 5, raw (instead of --style-strength)")
    # eq. 4 sums over pixels, so at 256 px crops the same weight weighs 4x what it does at 128 px
    tv_weight: float = option(1e-4, "lambda_TV of eq. 5 (not normalised by the image size)")
    content_layer: str = option(
        "relu3_3",
        "layer of the content loss: relu3_3 is the report's; relu2_2 keeps more detail",
        choices=tuple(LAYERS),
    )
    style_layers: tuple = STYLE_LAYERS
    style_size: int | None = option(256, "longer side of the style image")  # None: as it is
    width: float = option(1.0, "channel multiplier (0.5: Johnson et al.'s half-width network)")
    norm: str = "instance"
    upsample: str = "resize"
    input_skip: bool = option(
        False, "add the input to the output (identity at the start; see TransformerNet)"
    )
    residual_blocks: int = option(5, "residual blocks of the network")
    shuffle: int = option(
        1, "2: the image folded into channels, no layer at full resolution (faster on a CPU)", choices=(1, 2)
    )
    seed: int = option(0, "seed of the weights and of the data order")
    device: str = option("auto", "auto: a CUDA GPU, else MPS, else the CPU", choices=DEVICES)
    precision: str = option(
        "auto",
        "auto: bf16 where the device runs it natively (fp16 on a GPU without it), else fp32",
        choices=PRECISIONS,
    )
    num_workers: int = option(1, "data-loading processes")
    log_every: int = option(
        10, "a row of losses.csv (the mean of the steps since the last) every N iterations"
    )
    checkpoint_every: int = option(100, "a checkpoint every N iterations")
    snapshots: str | None = option(
        None, "held-out photos to stylize during training, for the Fig. 3 grids (default: data/test)"
    )
    snapshot_count: int = 4
    snapshot_size: int = 256
    snapshot_iterations: tuple | None = None  # default: 0, 50, 100, 200, 500, 1000, ... and the last
    keep_weights_every: int = option(
        0, "also keep the network's weights every N iterations, in weights/ (for quality curves)"
    )

    @staticmethod
    def resolve_preset(preset: str = "auto") -> str:
        """The concrete preset: "auto" is "report" on a CUDA GPU and "cpu" otherwise."""
        if preset == "auto":
            return "report" if torch.cuda.is_available() else "cpu"
        if preset not in PRESETS:
            raise FaststError(f"unknown preset {preset!r}; choose from {', '.join(PRESET_NAMES)}")
        return preset

    @classmethod
    def from_preset(cls, preset: str = "auto", **overrides) -> "TrainConfig":
        preset = cls.resolve_preset(preset)
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown TrainConfig fields: {sorted(unknown)}")
        values = {**PRESETS[preset], **overrides}  # None is a value too (style_size=None: as it is)
        return cls(preset=preset, **values)

    @classmethod
    def from_saved(cls, saved: dict, **overrides) -> "TrainConfig":
        """The config a run saved (its config.json's, or a model file's "config"); fields it has that this
        version lacks are left out."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: as_tuples(v) for k, v in {**saved, **overrides}.items() if k in fields})

    def style_paths(self) -> list[str]:
        """The style images, one or several."""
        return [self.style] if isinstance(self.style, str) else [str(p) for p in self.style]

    def style_names(self) -> list[str]:
        return [Path(p).stem for p in self.style_paths()]

    def crop_steps(self) -> tuple:
        """((first iteration, crop size), ...) of the progressive crops."""
        return tuple((int(fraction * self.iterations), size) for fraction, size in self.crop_schedule)

    def depends_on_length(self) -> bool:
        """Whether the schedule is laid over ``iterations`` (so a resumed run cannot change them)."""
        return self.lr_schedule != "constant" or bool(self.crop_schedule)

    def schedule(self) -> list[int]:
        if self.snapshot_iterations is not None:
            return sorted(
                {i for i in self.snapshot_iterations if 0 <= i <= self.iterations} | {self.iterations}
            )
        steps, k = {0, self.iterations}, 1
        while k * 50 < self.iterations:
            steps |= {k * 50, k * 100, k * 250}
            k *= 10
        return sorted(s for s in steps if s <= self.iterations)

    def validate(self) -> None:
        names = self.style_names()
        if len(names) > 1 and self.norm != "instance":
            raise FaststError("several styles need --norm instance (a scale and shift per style)")
        if len(set(names)) != len(names):
            raise FaststError(f"two style images have the same name: {', '.join(names)}")
        if self.content_layer not in LAYERS:
            raise FaststError(
                f"unknown content layer {self.content_layer!r}; choose from {', '.join(LAYERS)}"
            )
        for name in self.style_layers:
            if name not in LAYERS:
                raise FaststError(f"unknown style layer {name!r}; choose from {', '.join(LAYERS)}")
        for name in ("iterations", "image_size", "batch_size", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise FaststError(f"{name.replace('_', '-')} must be at least 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise FaststError("lr must be a positive number")
        if self.lr_schedule not in LR_SCHEDULES:
            raise FaststError(
                f"lr schedule must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_schedule!r}"
            )
        if not 0 <= self.warmup < 1:
            raise FaststError("warmup must be a fraction of the iterations, in [0, 1)")
        if not (self.clip >= 0 and math.isfinite(self.clip)):
            raise FaststError("clip must be a non-negative number")
        if not 0 <= self.average < 1:
            raise FaststError("average must be a decay in [0, 1)")
        if not (self.norm_lr >= 0 and math.isfinite(self.norm_lr)):
            raise FaststError("norm-lr must be a non-negative number")
        if self.train_only not in ("all", "norms"):
            raise FaststError(f"train-only must be 'all' or 'norms', not {self.train_only!r}")
        for fraction, size in self.crop_schedule:
            if not 0 <= fraction < 1 or size < 16:
                raise FaststError(
                    f"crop schedule entries are (fraction in [0, 1), size >= 16), not {(fraction, size)}"
                )
        if self.style_strength is not None and not (
            self.style_strength > 0 and math.isfinite(self.style_strength)
        ):
            raise FaststError("style-strength must be a positive number")
        for name in ("content_weight", "style_weight", "tv_weight"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise FaststError(f"{name.replace('_', '-')} must be a non-negative number")

    # fields that may change between a run and its resumption
    RESUMABLE_CHANGES = (
        "iterations",
        "device",
        "precision",
        "num_workers",
        "out",
        "log_every",
        "checkpoint_every",
        "snapshot_iterations",
        "preset",
        "keep_weights_every",
    )


def normalise(value):
    return [normalise(v) for v in value] if isinstance(value, (tuple, list)) else value


def as_tuples(value):
    """The inverse of ``normalise``: JSON's lists back as the config's tuples."""
    return tuple(as_tuples(v) for v in value) if isinstance(value, (tuple, list)) else value


def runs_dir() -> Path:
    """``$FASTST_RUNS``, else ``runs/`` of the project checkout, else ``./runs``."""
    return project_folder("runs", "FASTST_RUNS")


def config_digest(config: TrainConfig) -> str:
    """Eight hex digits that change with every setting that changes the trained weights."""

    settings = {k: normalise(v) for k, v in asdict(config).items() if k not in TrainConfig.RESUMABLE_CHANGES}
    settings["style"] = (
        [Path(p).name for p in config.style_paths()]
        if len(config.style_paths()) > 1
        else Path(config.style).name
    )
    settings["data"] = Path(settings["data"]).name
    if not config.init:  # where a fine-tuned run starts in its init has no meaning without one
        settings.pop("init_style")
    for name in ("average", "clip", "norm_lr"):  # runs from before these settings keep their folders
        if not getattr(config, name):
            settings.pop(name)
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]


def style_configs(preset: str = "auto", **overrides) -> dict[str, TrainConfig]:
    """One config per style of the report, on the project's data, with the given preset.

    Each run folder is ``runs/<preset>/<style>-<digest>``: a finished run with the same settings is
    reused, and changed settings train a new run instead of colliding with the old one.
    """
    preset = TrainConfig.resolve_preset(preset)
    root = data_dir()
    configs = {}
    for name, path in STYLES.items():
        config = TrainConfig.from_preset(
            preset, style=str(root / path), data=str(root / TRAIN_DIR), **overrides
        )
        config.out = str(runs_dir() / preset / f"{name}-{config_digest(config)}")
        configs[name] = config
    return configs


def preset_digest(preset: str) -> str:
    """Eight hex digits naming what the main job trains with ``preset``: the digests of the report's two
    style runs. A figure drawn from those runs records it, and a changed preset no longer produces it."""
    preset = TrainConfig.resolve_preset(preset)
    runs = {name: Path(config.out).name for name, config in style_configs(preset).items()}
    return hashlib.sha256(json.dumps(runs, sort_keys=True).encode()).hexdigest()[:8]
