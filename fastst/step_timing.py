"""Training steps timed: ``train``'s own step (:mod:`fastst.step`) of a recipe at each of its crop sizes,
timed in interleaved rounds with its FLOPs (:func:`bench_recipes`, the clock of time to quality and of
tools/step_*.py), and against a plain step with its data loading (:func:`bench_training`, for
``fastst bench``).
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from fastst.config import TrainConfig
from fastst.data import PhotoDataset, ResumableBatchSampler, usable_images
from fastst.io import load_image
from fastst.losses import content_loss, gram_matrix, style_loss, tv_loss
from fastst.measure import CPU, interleaved_medians, sync
from fastst.results import matmul_rate
from fastst.runtime import autocast, resolve_precision
from fastst.step import TRAINING_LAYOUT, TrainingStep, build_model, build_step, make_optimizer


def recipe_steps(
    config: TrainConfig,
    device: torch.device,
    precision: str,
    layout: torch.memory_format = TRAINING_LAYOUT,
    compiled: bool = False,
    build=build_model,
    optimizer_for=make_optimizer,
) -> dict:
    """``train``'s step (:func:`fastst.step.build_step`) of ``config`` on a random batch at each of its
    crop sizes, keyed by size; each returns the objective. ``layout``, ``build(config)`` and
    ``optimizer_for(model, config)``: as in ``build_step`` (train's own by default); ``compiled``: the
    network and the loss under ``torch.compile`` (which ``train`` does not do), compiled on the first
    calls."""
    step = build_step(config, device, precision, layout, build, optimizer_for)
    if compiled:
        step.net, step.criteria = torch.compile(step.model), [torch.compile(c) for c in step.criteria]
    steps = {}
    for size in sorted({size for _, size in config.crop_steps()} or {config.image_size}):
        batch = torch.rand(config.batch_size, 3, size, size, device=device).contiguous(memory_format=layout)
        steps[size] = lambda b=batch: step(b).total.item()
    return steps


# TrainConfig fields that do not change what one training step computes: where the run's files are,
# its schedule and length, its start, the loss weights (the same work at any weight) and the style target
# (computed once, before the steps). Every other field, including any added later, keeps steps apart.
STEP_COST_FREE = frozenset(
    {
        "style",
        "data",
        "out",
        "preset",
        "iterations",
        "image_size",
        "lr",
        "lr_schedule",
        "warmup",
        "adam_beta1",
        "adam_beta2",
        "crop_schedule",
        "init",
        "init_style",
        "style_strength",
        "content_weight",
        "style_weight",
        "style_size",
        "seed",
        "num_workers",
        "log_every",
        "checkpoint_every",
        "snapshots",
        "snapshot_count",
        "snapshot_size",
        "snapshot_iterations",
        "keep_weights_every",
    }
)


# TrainConfig fields whose value does not change the step's work, only whether they are set: the threshold
# of the gradient's cut, the decay of the weights' moving average, the norms' own rate.
STEP_COST_IF_SET = frozenset({"clip", "average", "norm_lr"})


def step_key(config: TrainConfig, size: int) -> tuple:
    """What decides the cost of ``config``'s training step on ``size`` px crops: recipes with the same key
    run the same step (the same work on the same shapes), timed once."""
    settings = {
        k: bool(v) if k in STEP_COST_IF_SET else v for k, v in vars(config).items() if k not in STEP_COST_FREE
    }
    return (size, len(config.style_paths()), *sorted((k, repr(v)) for k, v in settings.items()))


def bench_recipes(configs: dict, rounds: int = 15, device: torch.device = CPU) -> list[dict]:
    """Seconds per training step of each recipe at each of its crop sizes, timed in interleaved rounds
    (median) in one process, so that their ratios hold whatever the machine's load (with few rounds, a
    slow spell of a shared machine still moved the ratio of two steps by a tenth between runs); with the
    FLOPs of one step and their share of the matmul rate (fp32, and that of the steps' precision)
    measured in the same run. ``configs`` maps a name to a TrainConfig; the step is ``recipe_steps``'.
    Recipes whose steps are the same (``step_key``) share one timing, so that they are not told apart by
    noise."""
    precision = resolve_precision("auto", device)
    steps, flops, rows = {}, {}, []
    for name, config in configs.items():
        sizes = sorted({size for _, size in config.crop_steps()} or {config.image_size})
        keys = {size: step_key(config, size) for size in sizes}
        if any(key not in steps for key in keys.values()):
            built = recipe_steps(config, device, precision)
        for size, key in keys.items():
            if key not in steps:
                steps[key] = built[size]
                with FlopCounterMode(display=False) as counter:
                    steps[key]()
                flops[key] = counter.get_total_flops()
            rows.append((f"{name} @ {size} px", name, size, key))
    times = interleaved_medians(steps, rounds, device, slice_s=0)
    rate = matmul_rate(torch.float32) * 1e9
    # the steps run in ``precision`` (autocast): their share of that precision's matmul rate too
    own_rate = matmul_rate(torch.bfloat16) * 1e9 if precision == "bf16" else rate
    return [
        {
            "step": label,
            "recipe": name,
            "size": size,
            "precision": precision,
            "seconds": times[key],
            "gflop": flops[key] / 1e9,
            "fraction_of_fp32_matmul": flops[key] / times[key] / rate,
            "fraction_of_matmul": flops[key] / times[key] / own_rate,
        }
        for label, name, size, key in rows
    ]


def _plain_step(step: TrainingStep, style: torch.Tensor, batch: torch.Tensor) -> float:
    """The plain training step on ``step``'s network and optimiser: fp32, the content target through the
    full VGG forward, the Gram targets of the style recomputed every iteration."""
    config, vgg = step.config, step.criteria[0].vgg
    y_hat = step.model(batch)
    f_out = vgg(y_hat)
    f_content = vgg(batch)
    f_style = vgg(style[None])
    loss = (
        config.content_weight
        * content_loss(f_out[config.content_layer], f_content[config.content_layer].detach())
        + config.style_weight
        * style_loss(
            [gram_matrix(f_out[k]) for k in config.style_layers],
            [gram_matrix(f_style[k]).detach() for k in config.style_layers],
        )
        + config.tv_weight * tv_loss(y_hat)
    )
    step.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    step.optimizer.step()
    return loss.item()


def _plain_adam(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Adam:
    return torch.optim.Adam(model.parameters(), lr=config.lr)


def _photo_batches(config: TrainConfig, data_dir, iterations: int, loss_iterations: int, device) -> tuple:
    """The run's first batches (for the timing and the loss comparison), and the seconds a batch took to
    load: decoded in the main process (plain) and waited for from worker processes that prefetch (fast)."""
    paths = usable_images(data_dir, warn=False)
    dataset = PhotoDataset(paths, config.image_size, config.seed)
    n = max(iterations, loss_iterations) + 2
    sampler = lambda: ResumableBatchSampler(len(paths), config.batch_size, config.seed, 0, n)
    t0 = time.perf_counter()
    batches = [torch.stack([dataset[i] for i in b]) for b in list(sampler())[:iterations]]
    data_plain = (time.perf_counter() - t0) / iterations
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler(),
        num_workers=config.num_workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if config.num_workers else None,
    )
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    for _ in range(iterations):
        next(it).to(device, non_blocking=True)
    sync(device)
    data_fast_wait = (time.perf_counter() - t0) / iterations
    del it, loader
    if loss_iterations > len(batches):
        batches = [torch.stack([dataset[i] for i in b]) for b in list(sampler())[:loss_iterations]]
    return batches, data_plain, data_fast_wait


def bench_training(
    preset: str,
    style_path,
    data_dir,
    iterations: int = 10,
    loss_iterations: int = 0,
    device: torch.device = CPU,
) -> dict:
    """Seconds per training iteration at a preset's size: plain against fast, split into data
    loading, the transformation network and the VGG loss; with ``loss_iterations`` both run that
    many iterations from the same seed and batches and their losses are compared. The fast step is
    ``train``'s (:func:`fastst.step.build_step`): autocast, train's memory layout (channels-last) and
    optimiser (fused Adam), with cuDNN's benchmark mode on a GPU; the plain step is a plain Adam in
    contiguous memory. Both networks are the package's, instance norms included."""
    config = TrainConfig.from_preset(preset, style=str(style_path), data=str(data_dir))
    precision = resolve_precision("auto", device)
    batches, data_plain, data_fast_wait = _photo_batches(
        config, data_dir, iterations, loss_iterations, device
    )
    plain_batches = [b.to(device) for b in batches]
    fast_batches = [b.contiguous(memory_format=TRAINING_LAYOUT) for b in plain_batches]
    style = load_image(style_path, config.style_size).to(device)
    steps = {}

    def start() -> None:  # both networks from the same seed
        steps["plain"] = build_step(
            config, device, "fp32", torch.contiguous_format, optimizer_for=_plain_adam
        )
        steps["fast"] = build_step(config, device, precision)

    def plain(batch=plain_batches[0]):
        torch.backends.cudnn.benchmark = False
        return _plain_step(steps["plain"], style, batch)

    def fast(batch=fast_batches[0]):
        torch.backends.cudnn.benchmark = True
        return steps["fast"](batch).total.item()

    def net_only(batch=fast_batches[0]):
        torch.backends.cudnn.benchmark = True
        with autocast(device, precision):
            out = steps["fast"].model(batch)
        out.float().mean().backward()

    start()
    slice_s = 0.25 if device.type == "cuda" else 0
    t = interleaved_medians({"plain": plain, "fast": fast, "net": net_only}, iterations, device, slice_s)
    plain_s, fast_s = t["plain"] + data_plain, t["fast"] + data_fast_wait
    row = {
        "preset": preset,
        "image_size": config.image_size,
        "batch_size": config.batch_size,
        "precision": precision,
        "plain_s": plain_s,
        "fast_s": fast_s,
        "speedup": plain_s / fast_s,
        "fast_iterations_per_s": 1 / fast_s,
        "data_plain_s": data_plain,
        "data_fast_wait_s": data_fast_wait,
        "network_fwd_bwd_s": t["net"],
        "vgg_and_rest_fast_s": t["fast"] - t["net"],
    }
    if loss_iterations:
        start()
        plain_losses = [plain(b) for b in plain_batches[:loss_iterations]]
        fast_losses = [fast(b) for b in fast_batches[:loss_iterations]]
        tail = max(1, loss_iterations // 5)
        a, b = statistics.mean(plain_losses[-tail:]), statistics.mean(fast_losses[-tail:])
        row.update(loss_plain=a, loss_fast=b, loss_rel_diff=abs(b - a) / a, loss_iterations=loss_iterations)
    return row
