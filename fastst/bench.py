"""Measurements: inference timing (warm-up, then the median of repeats).

Longer than most modules: it is the whole benchmark suite (inference paths, training recipes,
memory), one function per part; the measuring primitives are in :mod:`fastst.measure`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from fastst.config import TrainConfig
from fastst.data import (
    STYLES,
    TEST_DIR,
    TRAIN_DIR,
    PhotoDataset,
    ResumableBatchSampler,
    test_photos,
    usable_images,
)
from fastst.data import data_dir as default_data
from fastst.inference import for_inference
from fastst.io import load_image
from fastst.losses import PerceptualLoss, content_loss, gram_matrix, style_loss, tv_loss
from fastst.measure import (
    CPU,
    interleaved_medians,
    matmul_gflops,
    peak_memory_mb,
    psnr,
    sync,
)
from fastst.results import matmul_rate
from fastst.runtime import (
    autocast,
    resolve_device,
    resolve_precision,
    reuse_freed_memory,
)
from fastst.runtimes import compile_model, exported_runtimes, fast_model
from fastst.stylize import load_model, stylize_paths, stylize_tiled
from fastst.train import TRAINING_LAYOUT, build_model, make_optimizer, train_step
from fastst.transformer import TransformerNet
from fastst.vgg import loss_network


@torch.inference_mode()
def inference_flops(model: TransformerNet, size: int) -> int:
    x = torch.rand(1, 3, size, size, device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops()


def bench_inference(
    model: TransformerNet,
    sizes=(256, 512, 1024),
    repeats: int = 5,
    compile: bool = False,
    photos: list[torch.Tensor] | None = None,
    matmul_n: int | None = None,
) -> list[dict]:
    """Plain (eager fp32, no_grad, contiguous, PyTorch's defaults) against fast (``fastst stylize``'s
    path, :func:`fastst.runtimes.fast_model`, under inference_mode), with ``compile`` its compiled path
    under ``torch.compile``, and onnxruntime on the exported model where the export extra is
    installed, for each size, timed in ``repeats`` interleaved rounds. Quality: PSNR against the plain
    fp32 output on each of ``photos`` (resized to the size; the lowest is reported) or, without photos,
    on noise. FLOPs are those of the plain network (the fast one does slightly more). With
    ``matmul_n``, a bf16 matrix product of that size is timed in the same interleaved rounds, so the
    fraction of the machine's limit compares two medians measured under the same conditions
    (``matmul_interleaved_gflops``)."""
    device = next(model.parameters()).device
    model.eval().to(memory_format=torch.contiguous_format)
    eager, precision, memory_format = fast_model(model)  # stylize's eager path
    if matmul_n:
        a, b = (torch.randn(matmul_n, matmul_n, device=device, dtype=torch.bfloat16) for _ in range(2))
    rows = []
    for size in tqdm(sizes, desc="inference", unit="size", leave=False):
        inputs = (
            [
                F.interpolate(p[None], size=(size, size), mode="bilinear", antialias=True).clamp(0, 1)
                for p in photos
            ]
            if photos
            else [torch.rand(1, 3, size, size)]
        )
        inputs = [x.to(device) for x in inputs]
        x = inputs[0]
        x_fast = x.contiguous(memory_format=memory_format)

        def plain(x=x):
            torch.backends.cudnn.benchmark = False  # PyTorch's defaults
            with torch.no_grad():
                return model(x)

        def fast(runner=eager, x=x_fast, precision=precision):
            torch.backends.cudnn.benchmark = True
            with torch.inference_mode(), autocast(device, precision):
                return runner(x)

        with _tf32(False):  # the reference, also where the baseline's defaults use TF32
            references = [plain(x) for x in inputs]

        def lowest_psnr(runner, precision, memory_format, inputs=inputs, references=references):
            return min(
                psnr(fast(runner, x.contiguous(memory_format=memory_format), precision).float(), reference)
                for x, reference in zip(inputs, references)
            )

        runners = {"plain": plain, "fast": fast}
        flops = inference_flops(model, size)
        row = {
            "size": size,
            "precision": precision,
            "channels_last": memory_format == torch.channels_last,
            "psnr_photos": len(photos) if photos else 0,
            "psnr_db": lowest_psnr(eager, precision, memory_format),
            "gflop": flops / 1e9,
        }
        if compile:
            # for this size, as for a folder of same-size photos
            compiled, compiled_precision, compiled_format = fast_model(model, compiled=True)
            compile_model(compiled, dynamic=False)
            x_compiled = x.contiguous(memory_format=compiled_format)
            t0 = time.perf_counter()
            fast(compiled, x_compiled, compiled_precision)  # the first call compiles
            row.update(
                compiled_precision=compiled_precision,
                compile_s=time.perf_counter() - t0,
                compiled_psnr_db=lowest_psnr(compiled, compiled_precision, compiled_format),
            )
            runners["compiled"] = lambda c=compiled, x=x_compiled, p=compiled_precision: fast(c, x, p)
        # what a user might pick instead: the exported model under other runtimes, graph optimisations on
        for name, (run, runtime_precision) in (
            exported_runtimes(model) if device.type == "cpu" else {}
        ).items():
            row[f"{name}_precision"] = runtime_precision
            row[f"{name}_psnr_db"] = min(
                psnr(torch.from_numpy(run(x.numpy())), reference) for x, reference in zip(inputs, references)
            )
            runners[name] = lambda run=run, x=x.cpu().numpy(): run(x)
        if matmul_n:
            runners["matmul"] = lambda: a @ b
        seconds = interleaved_medians(runners, repeats, device)
        if matmul_n:
            row["matmul_interleaved_gflops"] = 2 * matmul_n**3 / seconds.pop("matmul") / 1e9
        for name, t in seconds.items():
            row[f"{name}_s"] = t
            row[f"{name}_gflops"] = flops / t / 1e9
            if name != "plain":
                row[f"{name}_speedup"] = seconds["plain"] / t
        rows.append(row)
        torch._dynamo.reset()
    return rows


@contextlib.contextmanager
def _tf32(enabled: bool):
    """TF32 on or off in cuDNN convolutions and cuBLAS products (PyTorch's defaults: on for
    convolutions, off for products)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def bench_fp32_fast_inference(model: TransformerNet, size: int = 512, repeats: int = 5) -> dict:
    """Without reduced precision (``--precision fp32``, and the library's ``stylize`` default):
    the inference form in contiguous and in channels-last memory against the plain network."""
    device = next(model.parameters()).device
    x = torch.rand(1, 3, size, size, device=device)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    model.eval().to(memory_format=torch.contiguous_format)
    fast = for_inference(model)
    fast_cl = for_inference(model).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        t = interleaved_medians(
            {"plain": lambda: model(x), "form": lambda: fast(x), "form_cl": lambda: fast_cl(x_cl)},
            repeats,
            device,
        )
    return {
        "size": size,
        "plain_s": t["plain"],
        "inference_form_s": t["form"],
        "speedup": t["plain"] / t["form"],
        "channels_last_s": t["form_cl"],
        "channels_last_speedup": t["plain"] / t["form_cl"],
    }


def _memory_job(net: dict, weights: dict, what: str, reuse: bool, device: str = "cpu") -> float:
    device = torch.device(device)
    if reuse:
        reuse_freed_memory()
    model = TransformerNet(**net)
    model.load_state_dict(weights)
    model.to(device).eval()
    if what == "tiled_4096":
        x = torch.rand(3, 4096, 4096)
        return peak_memory_mb(lambda: stylize_tiled(model, x), device)
    x = torch.rand(1, 3, 1024, 1024, device=device)
    if what == "plain_1024":
        with torch.inference_mode():
            return peak_memory_mb(lambda: model(x), device)
    fast, precision, memory_format = fast_model(model)
    x = x.contiguous(memory_format=memory_format)
    with torch.inference_mode(), autocast(device, precision):
        return peak_memory_mb(lambda: fast(x), device)


def memory_in_fresh_process(
    model: TransformerNet, what: str, reuse: bool = True, device: torch.device = CPU
) -> float:
    """Peak memory (MB) of ``what``: "plain_1024" (the network in fp32 on a 1024 px image),
    "fast_1024" (stylize's path) or "tiled_4096" (a 4096 px image in tiles, fp32), as the growth of the
    resident set of a fresh process. ``reuse`` as stylizing runs (``reuse_freed_memory``): freed
    blocks stay in the heap, where fragmentation can make the first image's peak larger. On a GPU,
    the CUDA allocator's peak (``reuse`` does not apply)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(
            _memory_job,
            model.config,
            {k: v.cpu() for k, v in model.state_dict().items()},
            what,
            reuse,
            str(device),
        ).result()


def _plain_step(model, vgg, style, batch, optimizer, config):
    """The plain training step: fp32, the content target through the full VGG forward, the Gram
    targets of the style recomputed every iteration."""
    y_hat = model(batch)
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
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def _fast_step(model, criterion, batch, optimizer, device, precision, clip=0.0):
    """``train``'s own step (fastst.train.train_step); a multi-style network trains its first style."""
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    style = 0 if model.styles > 1 else None
    return train_step(model, criterion, batch, optimizer, scaler, device, precision, style, clip).total.item()


def recipe_steps(
    config: TrainConfig,
    device: torch.device,
    precision: str,
    layout: torch.memory_format = TRAINING_LAYOUT,
    compiled: bool = False,
    build=build_model,
    optimizer_for=make_optimizer,
) -> dict:
    """``train``'s step (fastst.train.train_step, with the run's optimiser groups and clip) of ``config`` on
    a random batch at each of its crop sizes, keyed by size; a multi-style run's first style (each style's
    step costs the same). ``layout``: the memory layout of the network, its batch and the loss network
    (train's own by default); ``compiled``: the network and the loss under ``torch.compile`` (which
    ``train`` does not do), compiled on the first calls; ``build(config)`` and ``optimizer_for(model,
    config)``: the network and its optimiser (train's own by default)."""
    vgg = loss_network(device=device, memory_format=layout)
    style = load_image(config.style_paths()[0], config.style_size).to(device)
    criterion = PerceptualLoss.for_config(vgg, style, config).to(device)
    torch.manual_seed(config.seed)
    model = build(config).to(device).train().to(memory_format=layout)
    optimizer = optimizer_for(model, config)
    net, loss = (torch.compile(model), torch.compile(criterion)) if compiled else (model, criterion)
    steps = {}
    for size in sorted({size for _, size in config.crop_steps()} or {config.image_size}):
        batch = torch.rand(config.batch_size, 3, size, size, device=device).contiguous(memory_format=layout)
        steps[size] = lambda b=batch: _fast_step(net, loss, b, optimizer, device, precision, config.clip)
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
    ``train``'s: autocast, train's memory layout (channels-last) and optimiser (fused Adam), with cuDNN's
    benchmark mode on a GPU; the plain step is a plain Adam in contiguous memory. Both networks are the
    package's, instance norms included."""

    config = TrainConfig.from_preset(preset, style=str(style_path), data=str(data_dir))
    precision = resolve_precision("auto", device)
    cuda = device.type == "cuda"
    paths = usable_images(data_dir, warn=False)
    dataset = PhotoDataset(paths, config.image_size, config.seed)
    n = max(iterations, loss_iterations) + 2
    sampler = lambda: ResumableBatchSampler(len(paths), config.batch_size, config.seed, 0, n)
    # data: decoding in the main process (plain) against worker processes that prefetch (fast)
    t0 = time.perf_counter()
    batches = [torch.stack([dataset[i] for i in b]) for b in list(sampler())[:iterations]]
    data_plain = (time.perf_counter() - t0) / iterations
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=sampler(),
        num_workers=config.num_workers,
        pin_memory=cuda,
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
    plain_batches = [b.to(device) for b in batches]
    fast_batches = [b.contiguous(memory_format=TRAINING_LAYOUT) for b in plain_batches]

    vgg = loss_network(device=device)
    style = load_image(style_path, config.style_size).to(device)

    def fresh(fast: bool):
        torch.manual_seed(config.seed)
        model = build_model(config).to(device)
        if fast:
            return model.to(memory_format=TRAINING_LAYOUT), make_optimizer(model, config)
        return model, torch.optim.Adam(model.parameters(), lr=config.lr)

    fast_criterion = PerceptualLoss.for_config(
        loss_network(device=device, memory_format=TRAINING_LAYOUT), style, config
    ).to(device)
    plain_model, plain_opt = fresh(False)
    model, opt = fresh(True)

    def plain(batch=plain_batches[0]):
        torch.backends.cudnn.benchmark = False
        return _plain_step(plain_model, vgg, style, batch, plain_opt, config)

    def fast(batch=fast_batches[0]):
        torch.backends.cudnn.benchmark = True
        return _fast_step(model, fast_criterion, batch, opt, device, precision)

    def net_only(batch=fast_batches[0]):
        torch.backends.cudnn.benchmark = True
        with autocast(device, precision):
            out = model(batch)
        out.float().mean().backward()

    t = interleaved_medians(
        {"plain": plain, "fast": fast, "net": net_only}, iterations, device, slice_s=0.25 if cuda else 0
    )
    plain_s, fast_s, t_net = t["plain"], t["fast"], t["net"]
    row = {
        "preset": preset,
        "image_size": config.image_size,
        "batch_size": config.batch_size,
        "precision": precision,
        "plain_s": plain_s + data_plain,
        "fast_s": fast_s + data_fast_wait,
        "speedup": (plain_s + data_plain) / (fast_s + data_fast_wait),
        "fast_iterations_per_s": 1 / (fast_s + data_fast_wait),
        "data_plain_s": data_plain,
        "data_fast_wait_s": data_fast_wait,
        "network_fwd_bwd_s": t_net,
        "vgg_and_rest_fast_s": fast_s - t_net,
    }
    if loss_iterations:
        plain_losses, fast_losses = [], []
        plain_model, plain_opt = fresh(False)
        for b in plain_batches[:loss_iterations]:
            plain_losses.append(plain(b))
        model, opt = fresh(True)
        for b in fast_batches[:loss_iterations]:
            fast_losses.append(fast(b))
        tail = max(1, loss_iterations // 5)
        a, b = statistics.mean(plain_losses[-tail:]), statistics.mean(fast_losses[-tail:])
        row.update(loss_plain=a, loss_fast=b, loss_rel_diff=abs(b - a) / a, loss_iterations=loss_iterations)
    return row


def run_suite(
    model_path=None,
    style_path=None,
    data_dir=None,
    quick: bool = False,
    compile: bool = False,
    device: str = "auto",
) -> dict:
    """The whole suite on ``device`` ("auto": a CUDA GPU where there is one); prints each table as it
    is measured and returns them all."""
    device = resolve_device(device)
    cuda = device.type == "cuda"
    root = default_data()
    style_path = style_path or root / STYLES["starry_night"]
    data_dir = data_dir or root / TRAIN_DIR
    torch.manual_seed(0)
    model = (load_model(model_path) if model_path else TransformerNet()).to(device)
    sizes = (256, 512) if quick else (256, 512, 1024)
    # process-wide, so the plain baseline gets it too: the ratios measure the code alone
    reused = reuse_freed_memory()
    machine = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
        "glibc_reuse_freed_memory": reused,
    }
    machine["matmul_fp32_gflops"] = matmul_gflops(torch.float32, device=device)
    machine["matmul_bf16_gflops"] = matmul_gflops(torch.bfloat16, device=device)
    if cuda:  # the rate of fp32 convolutions with cuDNN's TF32 (PyTorch's default)
        with _tf32(True):
            machine["matmul_tf32_gflops"] = matmul_gflops(torch.float32, device=device)
    results = {"machine": machine}
    photos = list(test_photos(limit=3 if quick else None).values()) if (root / TEST_DIR).is_dir() else None
    results["inference"] = bench_inference(
        model,
        sizes,
        repeats=3 if quick else 9,
        compile=compile,
        photos=photos,
        matmul_n=8192 if cuda else 2048,
    )
    results["inference_fp32_fast"] = bench_fp32_fast_inference(model)
    # the limit again, after the inference runs: a slow spell of a shared machine during the first
    # measurement would flatter the fractions below, so the higher of the two counts
    for dtype, key in ((torch.float32, "matmul_fp32_gflops"), (torch.bfloat16, "matmul_bf16_gflops")):
        machine[key] = max(machine[key], matmul_gflops(dtype, device=device))
    print("machine:", {k: round(v, 1) if isinstance(v, float) else v for k, v in machine.items()}, flush=True)
    fp32_peak = "matmul_tf32_gflops" if cuda and torch.backends.cudnn.allow_tf32 else "matmul_fp32_gflops"
    for row in results["inference"]:
        for path, key in (("fast", "precision"), ("compiled", "compiled_precision")):
            if f"{path}_gflops" not in row:
                continue
            bf16 = row[key] == "bf16"
            row[f"{path}_fraction_of_peak"] = (
                row[f"{path}_gflops"] / machine["matmul_bf16_gflops" if bf16 else fp32_peak]
            )
            if bf16:  # the interleaved matmul is bf16
                row[f"{path}_fraction_of_interleaved_matmul"] = (
                    row[f"{path}_gflops"] / row["matmul_interleaved_gflops"]
                )
    _print_table("inference", results["inference"])
    print(
        "fp32 at 512 px:",
        {k: round(v, 4) if isinstance(v, float) else v for k, v in results["inference_fp32_fast"].items()},
        flush=True,
    )
    results["throughput"] = bench_folder_throughput(model_path, root, device) if model_path else None
    if results["throughput"]:
        print("folder throughput:", results["throughput"], flush=True)
    # the cpu preset's losses are compared on every device; the report preset is the GPU's
    results["training"] = [
        bench_training(
            "cpu",
            style_path,
            data_dir,
            iterations=3 if quick else 8,
            loss_iterations=0 if quick else 50,
            device=device,
        )
    ]
    if not quick:
        results["training"].append(
            bench_training(
                "report", style_path, data_dir, iterations=3, loss_iterations=50 if cuda else 0, device=device
            )
        )
    _print_table("training", results["training"])
    variants = (True,) if cuda else (True, False)  # glibc's settings do not touch GPU memory
    results["memory"] = {
        f"{what}_mb{'' if reuse else '_glibc_default'}": memory_in_fresh_process(model, what, reuse, device)
        for what in ("plain_1024", "fast_1024")
        for reuse in variants
    }
    if not quick:
        for reuse in variants:
            t0 = time.perf_counter()
            results["memory"][f"tiled_4096_mb{'' if reuse else '_glibc_default'}"] = memory_in_fresh_process(
                model, "tiled_4096", reuse, device
            )
            results["memory"][f"tiled_4096_s{'' if reuse else '_glibc_default'}"] = time.perf_counter() - t0
    print("memory:", {k: round(v) for k, v in results["memory"].items()}, flush=True)
    return results


def _print_table(name: str, rows: list[dict]) -> None:
    import pandas as pd

    table = pd.DataFrame(rows).T.to_string(header=False, float_format=lambda v: f"{v:.4g}")
    print(f"\n{name}:\n{table}\n", flush=True)


def bench_folder_throughput(model_path, root, device: torch.device = CPU) -> dict:
    """Mixed-size held-out photos from disk to disk: images per second of ``stylize_paths``."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        written, _, _ = stylize_paths(
            model_path, str(root / TEST_DIR), out, progress=False, device=str(device)
        )
        seconds = time.perf_counter() - t0
    return {"images": written, "seconds": seconds, "images_per_s": written / seconds}
