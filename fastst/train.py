"""Training the transformation network: eq. 5 minimised over a photo set, for one style or several.

One function (:func:`train`) that the command line and the notebooks share, configured by a
:class:`fastst.config.TrainConfig` and writing a run folder (:mod:`fastst.runs`). It loops over the
training step of :mod:`fastst.step`, keeps runs resumable and stoppable by a signal on every rank
(:mod:`fastst.distributed`), and logs as it goes (:mod:`fastst.train_log`).
"""

from __future__ import annotations

import copy
import functools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

# the training API in one place for notebooks and scripts: the config and run-folder names re-exported
from fastst.anystyle import is_one_pass, load_anystyle, painting_network
from fastst.config import (  # noqa: F401
    LR_SCHEDULES,
    TrainConfig,
    config_digest,
    preset_digest,
    runs_dir,
    style_configs,
)
from fastst.data import TEST_DIR, PhotoDataset, ResumableBatchSampler, data_dir, test_photos, usable_images
from fastst.distributed import StopFlag, agreed_stop, distributed
from fastst.errors import FaststError
from fastst.io import atomic_torch_save, load_image
from fastst.runs import (  # noqa: F401
    CSV_FIELDS,
    RunFolder,
    check_same_run,
    keep_weights,
    last_row,
    load_losses,
    load_training_checkpoint,
    resumed_state,
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
from fastst.step import (
    TRAINING_LAYOUT,
    NonFiniteLoss,
    TrainingStep,
    build_model,
    effective_style_weight,
    load_optimizer,
    make_scheduler,
    style_losses,
)
from fastst.stylize import load_model, parse_style
from fastst.train_log import LossLog, run_title
from fastst.transformer import TransformerNet, single_style


def initial_model(config: TrainConfig, objective: Callable | None = None) -> TransformerNet:
    """The network a run starts from: random weights, or the trained model ``config.init``. A one-pass
    model starts a one-style run from its network for that style's painting. A multi-style model starts
    a one-style run from one of its styles or a mix of them (:func:`start_style`), from which the new
    style is learnt; ``objective`` scores a candidate start (a function of the multi-style network and a
    style) for ``init_style="closest"``."""
    if not config.init:
        return build_model(config)
    if is_one_pass(config.init):  # the one-pass model's network for the one painting this run trains
        if len(config.style_paths()) != 1:
            raise FaststError(f"--from {config.init}: a one-pass model starts a run of one style")
        net = painting_network(config.style_paths()[0], load_anystyle(config.init))
        net.one_pass = None  # its weights will be trained away from the painting's inputs
        return net.train()
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
        state = resumed_state(run, config, resume, rank == 0)
        start = state["iteration"] if state else 0
        if start >= config.iterations:  # finished; a stop before its model.pth is completed here
            if rank == 0 and not run.model.exists():
                _write_model_from(run, state, config)
            return TrainResult(run.root, start, last_row(run))
        return _train(_Training(config, run, state, device, rank, world), progress, callback)


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


def _loader(config: TrainConfig, dataset: PhotoDataset, start: int, rank: int, world: int, device):
    """The run's batches from iteration ``start`` on, this rank's share of each."""
    sampler = ResumableBatchSampler(
        len(dataset), config.batch_size, config.seed, start, config.iterations, rank, world
    )
    workers = config.num_workers if device.type != "mps" else 0
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )


class _Training:
    """Everything a run needs, built from its config (and its checkpoint when resumed): the training step
    (the network, wrapped for DDP, one loss per style, the optimiser), the schedule, the data loader, the
    snapshot photos; and the checkpoint it writes."""

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
        self.criteria = style_losses(config, styles, device, weights)
        dataset = PhotoDataset(paths, config.image_size, config.seed, config.crop_steps(), config.batch_size)
        started = self._start(dataset, resumed=state is not None)
        self.model, self.optimizer = self.training_step.model, self.training_step.optimizer
        self.scheduler = make_scheduler(self.optimizer, config)
        self.elapsed = state["elapsed"] if state else 0.0
        if state:
            self.model.load_state_dict(state["model"])
            load_optimizer(self.optimizer, state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
        # the weights' moving average (config.average), which the run keeps, snapshots and saves
        self.averaged = copy.deepcopy(self.model).requires_grad_(False) if config.average else None
        if self.averaged is not None and state:
            self.averaged.load_state_dict(state["averaged"])
        if world > 1:
            self.training_step.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.meta = {
            "config": asdict(config),
            "environment": environment(device, self.precision),
            "world_size": world,
            "photos": len(paths),
            "style_weight": self.style_weight,
            "net": self.model.config,
            "styles": self.names,
            **({"init_style": started} if started else {}),
        }
        self.snapshots = _snapshot_photos(config) if self.main else {}
        self.schedule = set(config.schedule())  # the iterations of the snapshots
        self.loader = _loader(config, dataset, self.start, rank, world, device)

    def _start(self, dataset: PhotoDataset, resumed: bool) -> dict | None:
        """Build the training step from the run's first network (``initial_model``); returns the
        candidate starts' objectives on the run's first photos and the seconds spent choosing, where
        there were candidates, for the run's config.json."""
        config, device = self.config, self.device
        starts = {}

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
        model = initial_model(config, None if resumed else objective).to(device)
        chosen = time.perf_counter() - chosen
        self.training_step = TrainingStep(config, model, self.criteria, device, self.precision)
        return {"objective": starts, "seconds": chosen} if starts else None

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
        try:
            terms = self.training_step(batch, k)
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


def _train(t: _Training, progress: bool, callback) -> TrainResult:
    config, iteration = t.config, t.start
    t.begin()
    bar = tqdm(
        total=config.iterations,
        initial=t.start,
        desc=f"train {run_title(config)}",
        unit="it",
        disable=not (progress and t.main),
        dynamic_ncols=True,
    )
    log = LossLog(t, bar, callback, time.perf_counter())
    with StopFlag() as stop, bar:
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
            if agreed_stop(stop.signal is not None, t.world) and iteration < config.iterations:
                t.save_checkpoint(iteration)  # at the last iteration, finish instead
                bar.close()
                raise KeyboardInterrupt(
                    f"stopped at iteration {iteration}; checkpoint saved in {t.run.root}; "
                    "continue with --resume"
                )
    t.finish(iteration)
    per_iteration = t.elapsed / iteration if iteration else None
    return TrainResult(t.run.root, iteration, log.row, per_iteration)
