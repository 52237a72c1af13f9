"""Training the transformation network for one style: eq. 5 minimised over a photo set.

One config object (:class:`TrainConfig`, with named presets) and one function (:func:`train`)
that the command line and the notebooks share. A run folder holds everything the figures need:
``config.json``, ``losses.csv``, ``snapshots/``, ``checkpoint.pth`` and ``model.pth``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import math
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from fastst.data import (
    STYLES,
    TEST_DIR,
    TRAIN_DIR,
    PhotoDataset,
    ResumableBatchSampler,
    data_dir,
    test_photos,
    usable_images,
)
from fastst.errors import FaststError
from fastst.io import (
    atomic_path,
    atomic_torch_save,
    load_checkpoint,
    load_image,
    project_folder,
    save_image,
)
from fastst.losses import STYLE_LAYERS, PerceptualLoss
from fastst.runtime import (
    autocast,
    environment,
    process_settings,
    release_freed_memory,
    resolve_device,
    resolve_precision,
)
from fastst.strength import calibrated_style_weight
from fastst.stylize import load_model
from fastst.transformer import ConditionalInstanceNorm2d, TransformerNet, single_style
from fastst.vgg import LAYERS, loss_network

# Each preset fills every field it names; explicit arguments override it.
#
# Loss scale. The weights below multiply the report's own equations (1-4) on RGB images in
# [0, 1]: eq. 1 and eq. 2 divide by C*H*W, eq. 3 sums squared Frobenius norms over the four
# style layers. The report's total loss "near 0.9e6" (its section 4) is on a scale it does not
# define, and it does not say which code it ran. Weights of that order appear in pytorch/examples'
# fast_neural_style (content 1e5, style 1e10 by default), whose style term also divides each
# layer's Gram difference differently; so the report's figure is not comparable with the losses
# printed here term by term: the loss curves' shape, not their height, is what reproduces Fig. 2.
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
    # The best from-scratch recipe measured on a CPU (README, "Time to quality on a CPU"): 128 px
    # crops (4x cheaper than 256 px) and a style image scaled to match them, 2,000 iterations at a
    # constant learning rate.
    "cpu": dict(
        iterations=2000,
        image_size=128,
        batch_size=4,
        lr=1e-3,
        width=1.0,
        input_skip=False,
        style_size=256,
        log_every=10,
        checkpoint_every=100,
        snapshot_size=256,
        num_workers=1,
    ),
    # A half-width network that starts as the identity, a one-cycle learning rate with a higher peak,
    # and 64 px crops (at the scale of 128 px) for the first three quarters: cheaper steps, but lower
    # quality than "cpu" at equal time (README); kept as the base that fine-tuning starts from.
    "cpu_half": dict(
        iterations=1200,
        image_size=128,
        batch_size=4,
        lr=3e-3,
        lr_schedule="onecycle",
        warmup=0.05,
        width=0.5,
        input_skip=True,
        crop_schedule=((0.0, 64), (0.75, 128)),
        style_size=256,
        log_every=10,
        checkpoint_every=100,
        snapshot_size=256,
        num_workers=1,
    ),
    # A new style from a trained network (--from): all weights, a short one-cycle schedule.
    "finetune": dict(
        iterations=150,
        image_size=128,
        batch_size=4,
        lr=2e-3,
        lr_schedule="onecycle",
        warmup=0.1,
        width=0.5,
        input_skip=True,
        style_size=256,
        log_every=10,
        checkpoint_every=50,
        snapshot_size=256,
        num_workers=1,
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
LR_SCHEDULES = ("constant", "cosine", "onecycle")


@dataclass
class TrainConfig:
    """Everything that defines a training run. Build with :meth:`from_preset`."""

    style: str | tuple = ""  # style image y_s, or several: one network for all (conditional norms)
    data: str = ""  # folder of training photos (searched recursively)
    out: str = "runs/run"  # run folder
    preset: str = "cpu"
    iterations: int = 2000
    image_size: int = 128  # square training crops
    batch_size: int = 4
    lr: float = 1e-3  # Adam (the peak, with a schedule)
    lr_schedule: str = "constant"  # "constant", "cosine", or "onecycle" (warm-up, then cosine to 0)
    warmup: float = 0.0  # onecycle: fraction of the iterations spent warming up
    adam_beta1: float = 0.9
    crop_schedule: tuple = ()  # progressive crops: ((fraction of iterations, size), ...)
    init: str | None = None  # start from this trained model.pth instead of random weights
    train_only: str = "all"  # "all" weights, or "norms": only the instance norms' scale and shift
    style_strength: float | None = None  # if set, lambda_s is the style's calibrated weight times this
    # Loss weights, chosen with the real VGG-16 on The Starry Night (128 px crops, 400 iterations,
    # held-out photos compared by eye): lambda_s / lambda_c = 10 or 3 paints the texture over the
    # photos (content loss rising as training goes on); 1 keeps the objects recognisable under
    # strong brushwork; 2 sits between. TV is kept small: at 1e-4 it is below 1% of the total and
    # only damps single-pixel noise.
    content_weight: float = 1.0  # lambda_c (eq. 5)
    style_weight: float = 2.0  # lambda_s (eq. 5)
    tv_weight: float = 1e-4  # lambda_TV (eq. 5); eq. 4 sums over pixels, so at 256 px crops the
    # same weight weighs 4x what it does at 128 px (not normalised)
    content_layer: str = "relu3_3"  # the report's choice; relu2_2 keeps more detail
    style_layers: tuple = STYLE_LAYERS
    style_size: int | None = 256  # longer side of the style image (None: as it is)
    width: float = 1.0  # 0.5: Johnson et al.'s half-width network
    norm: str = "instance"
    upsample: str = "resize"
    input_skip: bool = False  # see TransformerNet: identity at the start
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda, mps
    precision: str = "auto"  # auto, fp32, bf16, fp16
    num_workers: int = 1
    log_every: int = 10
    checkpoint_every: int = 100
    snapshots: str | None = None  # held-out photos for the Fig. 3 grids (default: data/test)
    snapshot_count: int = 4
    snapshot_size: int = 256
    snapshot_iterations: tuple | None = None  # default: 0, 50, 100, 200, 500, 1000, ... and the last
    keep_weights_every: int = 0  # also keep the network's weights every N iterations (weights/)

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


def build_model(config: TrainConfig | dict) -> TransformerNet:
    c = config if isinstance(config, dict) else asdict(config)
    styles = 1 if isinstance(c["style"], str) else len(c["style"])
    return TransformerNet(
        norm=c["norm"], upsample=c["upsample"], width=c["width"], input_skip=c["input_skip"], styles=styles
    )


def initial_model(config: TrainConfig) -> TransformerNet:
    """The network a run starts from: random weights, or the trained model ``config.init``. A
    multi-style model starts a one-style run as the mean of its styles (every style's scale and
    shift averaged), from which a new style is learnt."""
    if not config.init:
        return build_model(config)
    model = load_model(config.init)
    if model.styles > 1 and len(config.style_paths()) == 1:
        model = single_style(model, [1.0 / model.styles] * model.styles)
    elif model.styles != len(config.style_paths()):
        raise FaststError(
            f"--from {config.init} holds {model.styles} styles; this run trains {len(config.style_paths())}"
        )
    return model.train()


def effective_style_weight(config: TrainConfig, style: torch.Tensor) -> float:
    """lambda_s as trained: the raw ``style_weight``, or the calibrated weight at ``style_strength``."""
    if config.style_strength is None:
        return config.style_weight
    return calibrated_style_weight(style.cpu(), config.style_strength, config.style_layers)


def trained_parameters(model: TransformerNet, which: str = "all") -> list[torch.nn.Parameter]:
    """The parameters a run trains: all, or only the instance norms' scale and shift (Dumoulin et al.)."""
    if which == "all":
        return list(model.parameters())
    norms = [
        m for m in model.modules() if isinstance(m, (torch.nn.InstanceNorm2d, ConditionalInstanceNorm2d))
    ]
    return [p for m in norms for p in m.parameters()]


def load_styles(config: TrainConfig) -> list[torch.Tensor]:
    if not config.style:
        raise FaststError("no style image given (--style)")
    return [load_image(Path(p), config.style_size) for p in config.style_paths()]


def _snapshot_photos(config: TrainConfig) -> dict[str, torch.Tensor]:
    folder = Path(config.snapshots) if config.snapshots else data_dir() / TEST_DIR
    return test_photos(folder, config.snapshot_count, config.snapshot_size) if folder.is_dir() else {}


# ---------------------------------------------------------------- the run folder

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


# ---------------------------------------------------------------- training


@dataclass
class TrainResult:
    run: Path
    iterations: int
    losses: dict = field(default_factory=dict)  # the last logged row
    seconds_per_iteration: float | None = None


class _StopFlag:
    """SIGINT / SIGTERM ask the loop to stop after the current iteration and save a checkpoint."""

    def __init__(self):
        self.signal = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _distributed(device: torch.device) -> tuple[int, int, int, bool]:
    """(rank, local rank, world size, whether this call started the process group) under torchrun,
    else (0, 0, 1, False). The backend follows the training device: NCCL for CUDA, gloo otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    started = False
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
        started = True
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world, started


def train(
    config: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    callback: Callable[[int, dict], None] | None = None,
) -> TrainResult:
    """Train one style network; returns where the run is and its last logged losses.

    With ``resume`` the run continues from ``out/checkpoint.pth`` (model, optimiser, schedule and
    data order), and a finished run is returned as it is. ``callback(iteration, row)`` is called
    at every logged iteration.
    """
    config.validate()
    device = resolve_device(config.device)
    rank, local_rank, world, started = _distributed(device)
    try:
        with process_settings(device):
            return _train(config, resume, progress, callback, device, rank, local_rank, world)
    finally:
        if started:
            torch.distributed.destroy_process_group()


def _train(
    config: TrainConfig,
    resume: bool,
    progress: bool,
    callback,
    device: torch.device,
    rank: int,
    local_rank: int,
    world: int,
) -> TrainResult:
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    precision = resolve_precision(config.precision, device)
    run = RunFolder(config.out)
    main_process = rank == 0

    # ---- the run folder: new, or resumed
    state = None
    if run.checkpoint.exists():
        if not resume:
            raise FaststError(
                f"{run.root} already holds a run; pass --resume to continue it or choose another --out"
            )
        state = _load_checkpoint(run.checkpoint)
        _check_same_run(state["config"], config)
    elif run.model.exists() and resume:
        raise FaststError(f"{run.root} has a model but no checkpoint to resume from")
    if main_process:
        run.create()
    start = state["iteration"] if state else 0
    if (
        start >= config.iterations
    ):  # finished; a stop between its last checkpoint and model.pth is completed here
        if main_process and not run.model.exists():
            net = state.get("net") or build_model(config).config
            _write_model(
                run,
                state["model"],
                net,
                state["config"],
                state.get("style_weight", config.style_weight),
                start,
                state.get("environment", {}),
                config.style_names(),
            )
        return TrainResult(run.root, start, _last_row(run))

    paths = usable_images(config.data, warn=main_process)
    styles = [image.to(device) for image in load_styles(config)]
    names = config.style_names()
    multi = len(styles) > 1
    weights = [effective_style_weight(config, image) for image in styles]
    style_weight = weights if multi else weights[0]
    torch.manual_seed(config.seed)
    model = initial_model(config).to(device)
    vgg = loss_network(device=device, channels_last=device.type == "cuda")
    criteria = [
        PerceptualLoss(
            vgg,
            image,
            config.content_weight,
            weight,
            config.tv_weight,
            config.content_layer,
            config.style_layers,
        ).to(device)
        for image, weight in zip(styles, weights)
    ]
    trained = trained_parameters(model, config.train_only)
    if config.train_only != "all":  # no weight gradients for what stays fixed
        model.requires_grad_(False)
        for p in trained:
            p.requires_grad_(True)
    optimizer = torch.optim.Adam(trained, lr=config.lr, betas=(config.adam_beta1, 0.999))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config))
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    elapsed = 0.0
    if state:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        elapsed = state["elapsed"]
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )

    meta = {
        "config": asdict(config),
        "environment": environment(device, precision),
        "world_size": world,
        "photos": len(paths),
        "style_weight": style_weight,
        "net": model.config,
        "styles": names,
    }
    snapshots = _snapshot_photos(config) if main_process else {}
    if main_process:
        run.write_json(run.config, meta)
        run.truncate_losses(start)
        if start == 0:
            _write_snapshots(model, snapshots, run, 0, device, names)
            if config.keep_weights_every:
                _keep_weights(model, run, 0, 0.0, names)

    dataset = PhotoDataset(paths, config.image_size, config.seed, config.crop_steps(), config.batch_size)
    sampler = ResumableBatchSampler(
        len(paths), config.batch_size, config.seed, start, config.iterations, rank, world
    )
    workers = config.num_workers if device.type != "mps" else 0
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )

    def save_checkpoint(iteration: int) -> None:
        if main_process:
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                    "iteration": iteration,
                    "elapsed": elapsed,
                    "config": asdict(config),
                    "net": model.config,
                    "style_weight": style_weight,
                    "styles": names,
                    "environment": meta["environment"],
                },
                run.checkpoint,
            )

    terms_names = ("content", "style", "tv", "total")
    sums = torch.zeros(len(styles), len(terms_names), dtype=torch.float64)  # per style: sums of the terms
    counts = [0] * len(styles)
    window_start, row = time.perf_counter(), _last_row(run)
    iteration = start
    bar = tqdm(
        total=config.iterations,
        initial=start,
        desc=f"train {_run_title(config)}",
        unit="it",
        disable=not (progress and main_process),
        dynamic_ncols=True,
    )
    terminal_progress = bool(os.environ.get(TERMINAL_PROGRESS_ENV))
    t_start = time.perf_counter()
    with _StopFlag() as stop, bar:
        model.train()
        schedule = set(config.schedule())
        t0 = time.perf_counter()
        for batch in loader:
            batch = batch.to(device, non_blocking=True)
            if device.type == "cuda":
                batch = batch.contiguous(memory_format=torch.channels_last)
            k = iteration % len(styles)  # one style a step, in turn
            try:
                terms = train_step(
                    net, criteria[k], batch, optimizer, scaler, device, precision, k if multi else None
                )
            except NonFiniteLoss as e:
                raise FaststError(
                    f"the loss became {e} at iteration {iteration + 1}; the last checkpoint "
                    f"({run.checkpoint}) is intact. Lower --lr or the loss weights"
                ) from None
            scheduler.step()
            iteration += 1
            t1 = time.perf_counter()
            elapsed, t0 = elapsed + (t1 - t0), t1
            sums[k] += torch.tensor(
                [float(getattr(terms, key).detach()) for key in terms_names], dtype=torch.float64
            )
            counts[k] += 1
            if iteration % config.log_every == 0 or iteration == config.iterations:
                if world > 1:  # log the global batch's losses, not rank 0's share
                    values = sums.to(device)
                    torch.distributed.all_reduce(values)
                    sums = (values / world).cpu()
                now = time.perf_counter()
                images_per_s = sum(counts) * config.batch_size / max(now - window_start, 1e-9)
                for j in (
                    j for j in range(len(styles)) if counts[j]
                ):  # a row per style trained in the window
                    row = {
                        "iteration": iteration,
                        "style_name": names[j],
                        **{key: float(v) / counts[j] for key, v in zip(terms_names, sums[j])},
                        "lr": scheduler.get_last_lr()[0],
                        "images_per_s": images_per_s,
                        "elapsed_s": round(elapsed, 3),
                    }
                    if main_process:
                        run.append_loss(row)
                        if callback:
                            callback(iteration, row)
                if main_process:
                    bar.set_postfix(
                        content=f"{row['content']:.3g}",
                        style=f"{row['style']:.3g}",
                        tv=f"{row['tv']:.3g}",
                        img_s=f"{row['images_per_s']:.1f}",
                    )
                    if terminal_progress and (
                        iteration % (config.log_every * 10) == 0 or iteration == config.iterations
                    ):
                        _print_progress(config, iteration, row, start, t_start)
                sums.zero_()
                counts, window_start = [0] * len(styles), now
            if main_process and iteration in schedule:
                _write_snapshots(model, snapshots, run, iteration, device, names)
                release_freed_memory()  # the snapshots' shapes are not the training batch's
            if (
                main_process
                and config.keep_weights_every
                and (iteration % config.keep_weights_every == 0 or iteration == config.iterations)
            ):
                _keep_weights(model, run, iteration, elapsed, names)
            if iteration % config.checkpoint_every == 0 or iteration == config.iterations:
                save_checkpoint(iteration)
            bar.update(1)
            if _agreed_stop(stop.signal is not None, world) and iteration < config.iterations:
                # at the last one, finish instead
                save_checkpoint(iteration)
                bar.close()
                raise KeyboardInterrupt(
                    f"stopped at iteration {iteration}; checkpoint saved in {run.root}; "
                    "continue with --resume"
                )

    if main_process:
        _write_model(
            run,
            model.state_dict(),
            model.config,
            asdict(config),
            style_weight,
            iteration,
            meta["environment"],
            names,
        )
    if world > 1:
        torch.distributed.barrier()
    per_iteration = elapsed / iteration if iteration else None
    return TrainResult(run.root, iteration, row, per_iteration)


def lr_factor(config: TrainConfig, step: int) -> float:
    """The learning rate at ``step`` as a fraction of ``config.lr``."""
    n = config.iterations
    if config.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(step, n) / n))
    if config.lr_schedule == "onecycle":
        warm = max(1, int(config.warmup * n))
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(step - warm, n - warm) / max(1, n - warm)))
    return 1.0


class NonFiniteLoss(ArithmeticError):
    """The objective became infinite or NaN (its value is the message)."""


def train_step(
    net: torch.nn.Module,
    criterion: PerceptualLoss,
    batch: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
    precision: str,
    style: int | None = None,
):
    """One iteration of eq. 5's minimisation on a batch of photos; returns the weighted terms.
    The content target runs only as deep as its layer and without gradients. ``style`` is the
    style's index in a multi-style network (``criterion`` holds that style's targets)."""
    with autocast(device, precision):
        content_features = criterion.content_features(batch)
        y_hat = net(batch) if style is None else net(batch, style)
        terms = criterion(y_hat, content_features=content_features)
        total = terms.total
    finite = bool(torch.isfinite(total))
    if not _all_ranks(
        finite
    ):  # every rank raises together, or the others would wait in backward's all-reduce
        raise NonFiniteLoss(total.item() if not finite else "non-finite on another process")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.step(optimizer)
    scaler.update()
    return terms


def _all_ranks(ok: bool) -> bool:
    """Whether ``ok`` holds on every process of a distributed run (this one alone otherwise)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return ok
    backend = torch.distributed.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    flag = torch.tensor([1.0 if ok else 0.0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item())


def _agreed_stop(requested: bool, world: int) -> bool:
    """Whether to stop after this iteration: asked on this process, or on any other one of a
    distributed run, so that all stop at the same iteration (one checkpoint, nobody left waiting)."""
    return requested if world == 1 else not _all_ranks(not requested)


def _lr_lambda(config: TrainConfig):
    return functools.partial(lr_factor, config)


def _load_checkpoint(path: Path) -> dict:
    state = load_checkpoint(path)
    if not isinstance(state, dict) or not {"model", "optimizer", "iteration", "config"} <= set(state):
        raise FaststError(f"not a fastst training checkpoint: {path}")
    return state


def _check_same_run(saved: dict, config: TrainConfig) -> None:
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
        and _normalise(saved.get(k, defaults[k])) != _normalise(current[k])
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


def _normalise(value):
    return [_normalise(v) for v in value] if isinstance(value, (tuple, list)) else value


def _last_row(run: RunFolder) -> dict:
    if not run.losses.exists():
        return {}
    with open(run.losses, newline="") as f:
        rows = list(csv.DictReader(f))
    return (
        {k: (v if k == "style_name" else float(v)) for k, v in rows[-1].items() if v not in ("", None)}
        if rows
        else {}
    )


TERMINAL_PROGRESS_ENV = "FASTST_TERMINAL_PROGRESS"


def _print_progress(config: TrainConfig, iteration: int, row: dict, start: int, t_start: float) -> None:
    """One line on the process's own stderr (the terminal of ``make``, also from inside a notebook's
    kernel): iterations, loss, speed and the time left."""
    import sys

    done = iteration - start
    per_iteration = (time.perf_counter() - t_start) / max(done, 1)
    left = (config.iterations - iteration) * per_iteration
    print(
        f"  train {_run_title(config)}: {iteration}/{config.iterations} iterations, loss {row['total']:.4g}, "
        f"{per_iteration:.2f} s/it, {left / 60:.1f} min left",
        file=sys.__stderr__,
        flush=True,
    )


def _run_title(config: TrainConfig) -> str:
    names = config.style_names()
    return names[0] if len(names) == 1 else f"{len(names)} styles"


def _write_model(
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


def _keep_weights(
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
def _write_snapshots(
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


def runs_dir() -> Path:
    """``$FASTST_RUNS``, else ``runs/`` of the project checkout, else ``./runs``."""
    return project_folder("runs", "FASTST_RUNS")


def config_digest(config: TrainConfig) -> str:
    """Eight hex digits that change with every setting that changes the trained weights."""
    import hashlib

    settings = {k: _normalise(v) for k, v in asdict(config).items() if k not in TrainConfig.RESUMABLE_CHANGES}
    settings["style"] = (
        [Path(p).name for p in config.style_paths()]
        if len(config.style_paths()) > 1
        else Path(config.style).name
    )
    settings["data"] = Path(settings["data"]).name
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
