"""Training the transformation network: eq. 5 minimised over a photo set, for one style or several.

One function (:func:`train`) that the command line and the notebooks share, configured by a
:class:`fastst.config.TrainConfig` and writing a run folder (:mod:`fastst.runs`); one training step
(:func:`train_step`) that the benchmarks time too. Longer than most modules: the loop keeps runs
resumable, stoppable by a signal on every rank, and safe against a loss that stops being finite.
"""

from __future__ import annotations

import functools
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

# the training API in one place for notebooks and scripts: the config and run-folder names re-exported
from fastst.config import (  # noqa: F401
    LR_SCHEDULES,
    PRESET_NAMES,
    PRESETS,
    TrainConfig,
    config_digest,
    runs_dir,
    style_configs,
)
from fastst.data import (
    TEST_DIR,
    PhotoDataset,
    ResumableBatchSampler,
    data_dir,
    test_photos,
    usable_images,
)
from fastst.errors import FaststError
from fastst.io import (
    atomic_torch_save,
    load_image,
)
from fastst.losses import PerceptualLoss
from fastst.runs import (  # noqa: F401
    CSV_FIELDS,
    RunFolder,
    check_same_run,
    keep_weights,
    last_row,
    load_losses,
    load_training_checkpoint,
    snapshot_table,
    write_model,
    write_snapshots,
)
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
from fastst.vgg import loss_network


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
    """The parameters a run trains: all, or only the instance norms' scale and shift (Dumoulin et al.).
    The others stop asking for gradients, so that the backward pass skips their weight gradients."""
    if which == "all":
        return list(model.parameters())
    norms = [
        m for m in model.modules() if isinstance(m, (torch.nn.InstanceNorm2d, ConditionalInstanceNorm2d))
    ]
    trained = [p for m in norms for p in m.parameters()]
    model.requires_grad_(False)
    for p in trained:
        p.requires_grad_(True)
    return trained


def load_styles(config: TrainConfig) -> list[torch.Tensor]:
    if not config.style:
        raise FaststError("no style image given (--style)")
    return [load_image(Path(p), config.style_size) for p in config.style_paths()]


def _snapshot_photos(config: TrainConfig) -> dict[str, torch.Tensor]:
    folder = Path(config.snapshots) if config.snapshots else data_dir() / TEST_DIR
    return test_photos(folder, config.snapshot_count, config.snapshot_size) if folder.is_dir() else {}


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
        state = load_training_checkpoint(run.checkpoint)
        check_same_run(state["config"], config)
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
            write_model(
                run,
                state["model"],
                net,
                state["config"],
                state.get("style_weight", config.style_weight),
                start,
                state.get("environment", {}),
                config.style_names(),
            )
        return TrainResult(run.root, start, last_row(run))

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
            write_snapshots(model, snapshots, run, 0, device, names)
            if config.keep_weights_every:
                keep_weights(model, run, 0, 0.0, names)

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
    window_start, row = time.perf_counter(), last_row(run)
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
                write_snapshots(model, snapshots, run, iteration, device, names)
                release_freed_memory()  # the snapshots' shapes are not the training batch's
            if (
                main_process
                and config.keep_weights_every
                and (iteration % config.keep_weights_every == 0 or iteration == config.iterations)
            ):
                keep_weights(model, run, iteration, elapsed, names)
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
        write_model(
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
