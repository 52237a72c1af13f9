"""The benchmark suite (``fastst bench``): every inference path against the plain network, training's
step against a plain one (:mod:`fastst.step_timing`), and memory, one function per part; the measuring
primitives are in :mod:`fastst.measure`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from fastst.data import STYLES, TEST_DIR, TRAIN_DIR, test_photos
from fastst.data import data_dir as default_data
from fastst.files import StylizeOptions, stylize_paths
from fastst.inference import for_inference
from fastst.measure import CPU, interleaved_medians, matmul_gflops, peak_memory_mb, psnr
from fastst.runtime import autocast, resolve_device, reuse_freed_memory
from fastst.runtimes import compile_model, exported_runtimes, fast_model
from fastst.step_timing import bench_training
from fastst.stylize import load_model
from fastst.tiles import stylize_tiled
from fastst.transformer import TransformerNet


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
    eager = fast_model(model)  # stylize's eager path: the network, its precision and memory format
    matmul = None  # the product of two matrices of matmul_n, and its FLOPs
    if matmul_n:
        a, b = (torch.randn(matmul_n, matmul_n, device=device, dtype=torch.bfloat16) for _ in range(2))
        matmul = (lambda: a @ b, 2 * matmul_n**3)
    rows = []
    for size in tqdm(sizes, desc="inference", unit="size", leave=False):
        if photos:
            inputs = [
                F.interpolate(p[None], size=(size, size), mode="bilinear", antialias=True).clamp(0, 1)
                for p in photos
            ]
        else:
            inputs = [torch.rand(1, 3, size, size)]
        inputs = [x.to(device) for x in inputs]
        rows.append(_inference_row(model, eager, inputs, len(photos or ()), compile, repeats, matmul))
        torch._dynamo.reset()
    return rows


def _inference_row(
    model, eager: tuple, inputs: list, photos: int, compile: bool, repeats: int, matmul
) -> dict:
    """``bench_inference``'s row of one size: every path's PSNR against the plain network on ``inputs``
    (``photos`` of them photos), and its seconds on the first of them, timed in the same rounds as
    ``matmul`` (a function and its FLOPs) where given."""
    device, size = inputs[0].device, inputs[0].shape[-1]
    runner, precision, memory_format = eager
    x = inputs[0]

    def plain(x=x):
        torch.backends.cudnn.benchmark = False  # PyTorch's defaults
        with torch.no_grad():
            return model(x)

    def fast(runner=runner, x=x.contiguous(memory_format=memory_format), precision=precision):
        torch.backends.cudnn.benchmark = True
        with torch.inference_mode(), autocast(device, precision):
            return runner(x)

    with _tf32(False):  # the reference, also where the baseline's defaults use TF32
        references = [plain(x) for x in inputs]

    def lowest_psnr(runner, precision, memory_format):
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
        "psnr_photos": photos,
        "psnr_db": lowest_psnr(runner, precision, memory_format),
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
    for name, (run, runtime_precision) in (exported_runtimes(model) if device.type == "cpu" else {}).items():
        row[f"{name}_precision"] = runtime_precision
        row[f"{name}_psnr_db"] = min(
            psnr(torch.from_numpy(run(x.numpy())), reference) for x, reference in zip(inputs, references)
        )
        runners[name] = lambda run=run, x=x.cpu().numpy(): run(x)
    if matmul:
        runners["matmul"] = matmul[0]
    seconds = interleaved_medians(runners, repeats, device)
    if matmul:
        row["matmul_interleaved_gflops"] = matmul[1] / seconds.pop("matmul") / 1e9
    for name, t in seconds.items():
        row[f"{name}_s"] = t
        row[f"{name}_gflops"] = flops / t / 1e9
        if name != "plain":
            row[f"{name}_speedup"] = seconds["plain"] / t
    return row


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
    machine = _machine(device)
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
    _add_fractions_of_peak(results["inference"], machine, cuda)
    _print_table("inference", results["inference"])
    print(
        "fp32 at 512 px:",
        {k: round(v, 4) if isinstance(v, float) else v for k, v in results["inference_fp32_fast"].items()},
        flush=True,
    )
    results["throughput"] = bench_folder_throughput(model_path, root, device) if model_path else None
    if results["throughput"]:
        print("folder throughput:", results["throughput"], flush=True)
    results["training"] = _training_rows(style_path, data_dir, quick, device)
    _print_table("training", results["training"])
    results["memory"] = _memory_rows(model, quick, device)
    print("memory:", {k: round(v) for k, v in results["memory"].items()}, flush=True)
    return results


def _machine(device: torch.device) -> dict:
    """The machine the suite runs on, with its matmul rates (the limits its fractions of peak are of)."""
    cuda = device.type == "cuda"
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
    return machine


def _add_fractions_of_peak(rows: list[dict], machine: dict, cuda: bool) -> None:
    """Each inference path's rate as a fraction of the machine's matmul rate in its precision."""
    fp32_peak = "matmul_tf32_gflops" if cuda and torch.backends.cudnn.allow_tf32 else "matmul_fp32_gflops"
    for row in rows:
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


def _training_rows(style_path, data_dir, quick: bool, device: torch.device) -> list[dict]:
    """The training step against the plain one: the cpu preset's losses are compared on every device; the
    report preset is the GPU's."""
    cuda = device.type == "cuda"
    rows = [
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
        rows.append(
            bench_training(
                "report", style_path, data_dir, iterations=3, loss_iterations=50 if cuda else 0, device=device
            )
        )
    return rows


def _memory_rows(model: TransformerNet, quick: bool, device: torch.device) -> dict:
    """Peak memory of each path (``memory_in_fresh_process``), with glibc's default settings too on a CPU."""
    variants = (True,) if device.type == "cuda" else (True, False)  # glibc's settings do not touch GPU memory
    memory = {
        f"{what}_mb{'' if reuse else '_glibc_default'}": memory_in_fresh_process(model, what, reuse, device)
        for what in ("plain_1024", "fast_1024")
        for reuse in variants
    }
    if not quick:
        for reuse in variants:
            t0 = time.perf_counter()
            memory[f"tiled_4096_mb{'' if reuse else '_glibc_default'}"] = memory_in_fresh_process(
                model, "tiled_4096", reuse, device
            )
            memory[f"tiled_4096_s{'' if reuse else '_glibc_default'}"] = time.perf_counter() - t0
    return memory


def _print_table(name: str, rows: list[dict]) -> None:
    import pandas as pd

    table = pd.DataFrame(rows).T.to_string(header=False, float_format=lambda v: f"{v:.4g}")
    print(f"\n{name}:\n{table}\n", flush=True)


def bench_folder_throughput(model_path, root, device: torch.device = CPU) -> dict:
    """Mixed-size held-out photos from disk to disk: images per second of ``stylize_paths``."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        written, _, _ = stylize_paths(
            model_path, str(root / TEST_DIR), out, StylizeOptions(device=str(device)), progress=False
        )
        seconds = time.perf_counter() - t0
    return {"images": written, "seconds": seconds, "images_per_s": written / seconds}
