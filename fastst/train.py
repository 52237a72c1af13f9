"""Training the transformation network: eq. 5 minimised over a photo set, for one style or several.

One function (:func:`train`) that the command line and the notebooks share, configured by a
:class:`fastst.config.TrainConfig` and writing a run folder (:mod:`fastst.runs`); one training step
(:func:`train_step`) that the benchmarks time too. Longer than most modules: the loop keeps runs
resumable, stoppable by a signal on every rank, and safe against a loss that stops being finite.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import os
import signal
import sys
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
from fastst.stylize import load_model, parse_style
from fastst.transformer import ConditionalInstanceNorm2d, TransformerNet, single_style
from fastst.vgg import loss_network


def build_model(config: TrainConfig | dict) -> TransformerNet:
    c = config if isinstance(config, dict) else asdict(config)
    styles = 1 if isinstance(c["style"], str) else len(c["style"])
    return TransformerNet(
        norm=c["norm"], upsample=c["upsample"], width=c["width"], input_skip=c["input_skip"], styles=styles
    )


def initial_model(config: TrainConfig, objective: Callable | None = None) -> TransformerNet:
    """The network a run starts from: random weights, or the trained model ``config.init``. A
    multi-style model starts a one-style run from one of its styles or a mix of them
    (:func:`start_style`), from which the new style is learnt; ``objective`` scores a candidate
    start (a function of the multi-style network and a style) for ``init_style="closest"``."""
    if not config.init:
        return build_model(config)
    model = load_model(config.init)
    if model.styles == 1 and config.init_style != "mean":
        raise FaststError(f"--from-style needs a multi-style --from; {config.init} holds one style")
    if model.styles > 1 and len(config.style_paths()) == 1:
        model = single_style(model, start_style(model, config.init_style, objective))
    elif model.styles != len(config.style_paths()):
        raise FaststError(
            f"--from {config.init} holds {model.styles} styles; this run trains {len(config.style_paths())}"
        )
    return model.train()


def start_style(model: TransformerNet, spec: str, objective: Callable | None = None) -> int | list[float]:
    """Where a new style starts in a multi-style network: ``"mean"`` (every style's scale and shift
    averaged), a style or mix by name, or ``"closest"``: of the styles and their mean, the one whose
    outputs score lowest by ``objective(model, style)``."""
    mean = [1.0 / model.styles] * model.styles
    if spec == "mean":
        return mean
    if spec != "closest":
        return parse_style(spec, model.style_names)
    if objective is None:  # a resumed run: its checkpoint's weights replace the start
        return mean
    candidates = [*range(model.styles), mean]
    with torch.no_grad():
        scores = [float(objective(model, c)) for c in candidates]
    return candidates[min(range(len(candidates)), key=scores.__getitem__)]


def effective_style_weight(config: TrainConfig, style: torch.Tensor) -> float:
    """lambda_s as trained: the raw ``style_weight``, or the calibrated weight at ``style_strength``."""
    if config.style_strength is None:
        return config.style_weight
    return calibrated_style_weight(style.cpu(), config.style_strength, config.style_layers)


def _norm_parameters(model: TransformerNet) -> list[torch.nn.Parameter]:
    norms = (torch.nn.InstanceNorm2d, ConditionalInstanceNorm2d)
    return [p for m in model.modules() if isinstance(m, norms) for p in m.parameters()]


def trained_parameters(model: TransformerNet, which: str = "all") -> list[torch.nn.Parameter]:
    """The parameters a run trains: all, or only the instance norms' scale and shift (Dumoulin et al.).
    The others stop asking for gradients, so that the backward pass skips their weight gradients."""
    if which == "all":
        return list(model.parameters())
    trained = _norm_parameters(model)
    model.requires_grad_(False)
    for p in trained:
        p.requires_grad_(True)
    return trained


def parameter_groups(model: TransformerNet, config: TrainConfig) -> list[dict]:
    """The optimiser's parameter groups: the trained parameters at the run's rate, with the instance
    norms' scale and shift in a group of their own at ``config.norm_lr`` where that is set."""
    trained = trained_parameters(model, config.train_only)
    if not config.norm_lr:
        return [{"params": trained, "lr": config.lr}]
    norms = {id(p) for p in _norm_parameters(model)}
    groups = [
        {"params": [p for p in trained if id(p) not in norms], "lr": config.lr},
        {"params": [p for p in trained if id(p) in norms], "lr": config.norm_lr},
    ]
    return [group for group in groups if group["params"]]


def make_optimizer(model: TransformerNet, config: TrainConfig) -> torch.optim.Adam:
    """The run's Adam over ``parameter_groups``, fused: one kernel updates every parameter, where the
    default runs several passes over them per step."""
    return torch.optim.Adam(
        parameter_groups(model, config), betas=(config.adam_beta1, config.adam_beta2), fused=True
    )


def load_optimizer(optimizer: torch.optim.Adam, state: dict) -> None:
    """Load a checkpoint's optimiser ``state`` into ``make_optimizer``'s Adam. torch takes each group's
    settings from the state, so a checkpoint written before Adam was fused would resume unfused: the
    state's groups keep the optimiser's own implementation."""
    implementation = {k: optimizer.defaults[k] for k in ("fused", "foreach")}
    optimizer.load_state_dict(
        {**state, "param_groups": [{**group, **implementation} for group in state["param_groups"]]}
    )


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


@contextlib.contextmanager
def distributed(device: torch.device):
    """Yield (rank, local rank, world size) under torchrun, else (0, 0, 1). A process group this
    starts (NCCL for CUDA, gloo otherwise) is destroyed on the way out, whatever happens."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    started = world > 1 and not torch.distributed.is_initialized()
    if started:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        yield int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world
    finally:
        if started:
            torch.distributed.destroy_process_group()


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
    with distributed(device) as (rank, local_rank, world), process_settings(device):
        if device.type == "cuda" and world > 1:
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        run = RunFolder(config.out)
        state = _resumed_state(run, config, resume, rank == 0)
        start = state["iteration"] if state else 0
        if start >= config.iterations:  # finished; a stop before its model.pth is completed here
            if rank == 0 and not run.model.exists():
                _write_model_from(run, state, config)
            return TrainResult(run.root, start, last_row(run))
        return _train(_Training(config, run, state, device, rank, world), progress, callback)


def _resumed_state(run: RunFolder, config: TrainConfig, resume: bool, main: bool) -> dict | None:
    """The checkpoint to continue from (checked to be of this run), or None for a new run."""
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
    if main:
        run.create()
    return state


def _write_model_from(run: RunFolder, state: dict, config: TrainConfig) -> None:
    net = state.get("net") or build_model(config).config
    style_weight = state.get("style_weight", config.style_weight)
    environment_ = state.get("environment", {})
    write_model(
        run,
        state["model"],
        net,
        state["config"],
        style_weight,
        state["iteration"],
        environment_,
        config.style_names(),
    )


# Training's memory layout, on every device, for the network, its batches and the loss network:
# channels-last. It suits cuDNN on a GPU, and on the CPU the step ran faster in it than in contiguous
# memory at every preset timed (tools/step_layout.py, results/step_layout.json).
TRAINING_LAYOUT = torch.channels_last


class _Training:
    """Everything a run needs, built from its config (and its checkpoint when resumed): the network
    (wrapped for DDP), one loss per style, the optimiser and schedule, the data loader, the snapshot
    photos; and the checkpoint it writes."""

    def __init__(
        self, config: TrainConfig, run: RunFolder, state: dict | None, device, rank: int, world: int
    ):
        self.config, self.run, self.device, self.world = config, run, device, world
        self.main = rank == 0
        self.precision = resolve_precision(config.precision, device)
        self.start = state["iteration"] if state else 0
        paths = usable_images(config.data, warn=self.main)
        styles = [image.to(device) for image in load_styles(config)]
        self.names = config.style_names()
        weights = [effective_style_weight(config, image) for image in styles]
        self.style_weight = weights if len(styles) > 1 else weights[0]
        vgg = loss_network(device=device, memory_format=TRAINING_LAYOUT)
        self.criteria = [
            PerceptualLoss.for_config(vgg, image, config, weight).to(device)
            for image, weight in zip(styles, weights)
        ]
        dataset = PhotoDataset(paths, config.image_size, config.seed, config.crop_steps(), config.batch_size)

        starts = {}  # the candidate starts' objectives, for the run's config.json

        @functools.cache
        def first_photos() -> torch.Tensor:  # read once, whatever the number of candidate starts
            return torch.stack([dataset[(i, i)] for i in range(config.batch_size)]).to(device)

        def objective(net: TransformerNet, style) -> float:  # eq. 5 on the run's first photos
            batch = first_photos()
            with autocast(device, self.precision):
                starts[str(style)] = float(self.criteria[0](net.to(device)(batch, style), batch).total)
            return starts[str(style)]

        torch.manual_seed(config.seed)
        chosen = time.perf_counter()
        model = initial_model(config, objective if state is None else None).to(device)
        chosen = time.perf_counter() - chosen
        self.optimizer = make_optimizer(model, config)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_lambda(config))
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        model = model.to(memory_format=TRAINING_LAYOUT)
        self.elapsed = 0.0
        if state:
            model.load_state_dict(state["model"])
            load_optimizer(self.optimizer, state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            self.elapsed = state["elapsed"]
        self.model, self.net = model, model
        # the weights' moving average (config.average), which the run keeps, snapshots and saves
        self.averaged = copy.deepcopy(model).requires_grad_(False) if config.average else None
        if self.averaged is not None and state:
            self.averaged.load_state_dict(state["averaged"])
        if world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.meta = {
            "config": asdict(config),
            "environment": environment(device, self.precision),
            "world_size": world,
            "photos": len(paths),
            "style_weight": self.style_weight,
            "net": model.config,
            "styles": self.names,
        }
        if starts:
            self.meta["init_style"] = {"objective": starts, "seconds": chosen}
        self.snapshots = _snapshot_photos(config) if self.main else {}
        self.schedule = set(config.schedule())  # the iterations of the snapshots
        sampler = ResumableBatchSampler(
            len(paths), config.batch_size, config.seed, self.start, config.iterations, rank, world
        )
        workers = config.num_workers if device.type != "mps" else 0
        self.loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
        )

    def begin(self) -> None:
        """Write the run's config (and, for a new run, the snapshots and weights of iteration 0)."""
        if not self.main:
            return
        if self.start and self.run.config.exists():  # a resumed run keeps the record of its start
            started = json.loads(self.run.config.read_text()).get("init_style")
            self.meta.update({"init_style": started} if started else {})
        self.run.write_json(self.run.config, self.meta)
        self.run.truncate_losses(self.start)
        if self.start == 0:
            write_snapshots(self.kept, self.snapshots, self.run, 0, self.device, self.names)
            if self.config.keep_weights_every:
                keep_weights(self.kept, self.run, 0, 0.0, self.names)

    def step(self, batch: torch.Tensor, iteration: int):
        """One optimiser step on the style of this iteration (styles take turns)."""
        batch = batch.to(self.device, non_blocking=True).contiguous(memory_format=TRAINING_LAYOUT)
        k = iteration % len(self.criteria)
        multi = len(self.criteria) > 1
        try:
            terms = train_step(
                self.net,
                self.criteria[k],
                batch,
                self.optimizer,
                self.scaler,
                self.device,
                self.precision,
                k if multi else None,
                self.config.clip,
            )
        except NonFiniteLoss as e:
            raise FaststError(
                f"the loss became {e} at iteration {iteration + 1}; the last checkpoint "
                f"({self.run.checkpoint}) is intact. Lower --lr or the loss weights"
            ) from None
        self.scheduler.step()
        if self.averaged is not None:
            self._average(iteration + 1)
        return k, terms

    @property
    def kept(self) -> TransformerNet:
        """The network the run keeps: the weights' moving average, or the weights as trained."""
        return self.averaged if self.averaged is not None else self.model

    @torch.no_grad()
    def _average(self, steps: int) -> None:
        # the decay grows with the steps up to config.average, so that the average soon forgets the start
        decay = min(self.config.average, (1 + steps) / (10 + steps))
        for mine, trained in zip(self.averaged.state_dict().values(), self.model.state_dict().values()):
            if mine.is_floating_point():
                mine.lerp_(trained, 1 - decay)
            else:
                mine.copy_(trained)

    def after(self, iteration: int) -> None:
        """The snapshots, kept weights and checkpoint due at ``iteration``."""
        config = self.config
        if self.main and iteration in self.schedule:
            write_snapshots(self.kept, self.snapshots, self.run, iteration, self.device, self.names)
            release_freed_memory()  # the snapshots' shapes are not the training batch's
        last = iteration == config.iterations
        if self.main and config.keep_weights_every and (iteration % config.keep_weights_every == 0 or last):
            keep_weights(self.kept, self.run, iteration, self.elapsed, self.names)
        if iteration % config.checkpoint_every == 0 or last:
            self.save_checkpoint(iteration)

    def save_checkpoint(self, iteration: int) -> None:
        if self.main:
            atomic_torch_save(
                {
                    "model": self.model.state_dict(),
                    **({"averaged": self.averaged.state_dict()} if self.averaged is not None else {}),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "rng": torch.get_rng_state(),
                    "iteration": iteration,
                    "elapsed": self.elapsed,
                    "config": asdict(self.config),
                    "net": self.model.config,
                    "style_weight": self.style_weight,
                    "styles": self.names,
                    "environment": self.meta["environment"],
                },
                self.run.checkpoint,
            )

    def finish(self, iteration: int) -> None:
        if self.main:
            write_model(
                self.run,
                self.kept.state_dict(),
                self.model.config,
                asdict(self.config),
                self.style_weight,
                iteration,
                self.meta["environment"],
                self.names,
            )
        if self.world > 1:
            torch.distributed.barrier()


class _LossLog:
    """The losses of the steps since the last log line, per style; every ``log_every`` iterations a
    row per style trained goes to losses.csv (averaged over DDP ranks), the callback and the bar."""

    TERMS = ("content", "style", "tv", "total")

    def __init__(self, t: _Training, bar, callback, t_start: float):
        self.t, self.bar, self.callback, self.t_start = t, bar, callback, t_start
        self.sums = torch.zeros(len(t.criteria), len(self.TERMS), dtype=torch.float64)
        self.counts = [0] * len(t.criteria)
        self.window_start, self.row = time.perf_counter(), last_row(t.run)
        self.terminal = bool(os.environ.get(TERMINAL_PROGRESS_ENV))

    def add(self, k: int, terms, iteration: int) -> None:
        self.sums[k] += torch.tensor(
            [float(getattr(terms, key).detach()) for key in self.TERMS], dtype=torch.float64
        )
        self.counts[k] += 1
        config = self.t.config
        if iteration % config.log_every == 0 or iteration == config.iterations:
            self._write(iteration)

    def _write(self, iteration: int) -> None:
        t, config = self.t, self.t.config
        if t.world > 1:  # log the global batch's losses, not rank 0's share
            values = self.sums.to(t.device)
            torch.distributed.all_reduce(values)
            self.sums = (values / t.world).cpu()
        now = time.perf_counter()
        images_per_s = sum(self.counts) * config.batch_size / max(now - self.window_start, 1e-9)
        for j in (j for j in range(len(self.counts)) if self.counts[j]):  # a row per style trained
            self.row = {
                "iteration": iteration,
                "style_name": t.names[j],
                **{key: float(v) / self.counts[j] for key, v in zip(self.TERMS, self.sums[j])},
                "lr": t.scheduler.get_last_lr()[0],
                "images_per_s": images_per_s,
                "elapsed_s": round(t.elapsed, 3),
            }
            if t.main:
                t.run.append_loss(self.row)
                if self.callback:
                    self.callback(iteration, self.row)
        if t.main:
            row = self.row
            self.bar.set_postfix(
                content=f"{row['content']:.3g}",
                style=f"{row['style']:.3g}",
                tv=f"{row['tv']:.3g}",
                img_s=f"{row['images_per_s']:.1f}",
            )
            if self.terminal and (iteration % (config.log_every * 10) == 0 or iteration == config.iterations):
                _print_progress(config, iteration, row, t.start, self.t_start)
        self.sums.zero_()
        self.counts, self.window_start = [0] * len(self.counts), now


def _train(t: _Training, progress: bool, callback) -> TrainResult:
    config, iteration = t.config, t.start
    t.begin()
    bar = tqdm(
        total=config.iterations,
        initial=t.start,
        desc=f"train {_run_title(config)}",
        unit="it",
        disable=not (progress and t.main),
        dynamic_ncols=True,
    )
    log = _LossLog(t, bar, callback, time.perf_counter())
    with _StopFlag() as stop, bar:
        t.model.train()
        t0 = time.perf_counter()
        for batch in t.loader:
            k, terms = t.step(batch, iteration)
            iteration += 1
            t1 = time.perf_counter()
            t.elapsed, t0 = t.elapsed + (t1 - t0), t1
            log.add(k, terms, iteration)
            t.after(iteration)
            bar.update(1)
            if _agreed_stop(stop.signal is not None, t.world) and iteration < config.iterations:
                t.save_checkpoint(iteration)  # at the last iteration, finish instead
                bar.close()
                raise KeyboardInterrupt(
                    f"stopped at iteration {iteration}; checkpoint saved in {t.run.root}; "
                    "continue with --resume"
                )
    t.finish(iteration)
    per_iteration = t.elapsed / iteration if iteration else None
    return TrainResult(t.run.root, iteration, log.row, per_iteration)


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
    clip: float = 0.0,
):
    """One iteration of eq. 5's minimisation on a batch of photos; returns the weighted terms.
    The content target runs only as deep as its layer and without gradients. ``style`` is the
    style's index in a multi-style network (``criterion`` holds that style's targets); with ``clip``
    the gradient's norm is cut to at most that."""
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
    if clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], clip)
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
