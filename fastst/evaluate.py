"""The method against the baseline it replaced: speed (Johnson et al.'s Table 1) and quality
(their Fig. 5: the objective one forward pass reaches, in baseline iterations)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.figure
import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from fastst.gatys import gatys
from fastst.io import atomic_path, list_images, load_checkpoint, load_image
from fastst.losses import STYLE_LAYERS, PerceptualLoss
from fastst.measure import sync
from fastst.plotting import save_fig
from fastst.runtime import autocast, resolve_precision
from fastst.runtimes import fast_model
from fastst.stylize import load_model, stylize
from fastst.transformer import TransformerNet
from fastst.vgg import loss_network

if TYPE_CHECKING:
    import pandas as pd


def _weights(saved_config: dict) -> dict:
    """The loss settings a model was trained with, as keyword arguments of eq. 5."""
    keys = ("content_weight", "style_weight", "tv_weight", "content_layer")
    return {
        **{k: saved_config[k] for k in keys},
        "style_layers": tuple(saved_config.get("style_layers") or STYLE_LAYERS),
    }


def time_inference(
    model: TransformerNet,
    sizes=(256, 512, 1024),
    repeats: int = 5,
    warmup: int = 2,
    precision: str | None = None,
    fast: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Seconds per image for square inputs of each size on the model's device: ``warmup`` runs,
    then the median (and min, max) of ``repeats`` timed runs. With ``fast``, the path of
    ``fastst stylize`` (:func:`fastst.runtimes.fast_model`); the precision is by default that path's
    choice for the device ("auto") with ``fast``, fp32 without."""
    device = next(model.parameters()).device
    if precision is None:
        precision = "auto" if fast else "fp32"
    if fast:
        model, precision, memory_format = fast_model(model, precision)
    else:
        model, precision, memory_format = (
            model.eval(),
            resolve_precision(precision, device),
            torch.contiguous_format,
        )
    rows = []
    for size in tqdm(sizes, desc="timing", unit="size", disable=not progress, leave=False):
        x = torch.rand(1, 3, size, size, device=device).contiguous(memory_format=memory_format)
        times = []
        for i in range(warmup + repeats):
            sync(device)
            t0 = time.perf_counter()
            with torch.no_grad(), autocast(device, precision):  # as a user runs it: no autograd graph
                model(x)
            sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        rows.append(
            {
                "size": size,
                "median_s": statistics.median(times),
                "min_s": min(times),
                "max_s": max(times),
                "repeats": repeats,
                "device": str(device),
                "precision": precision,
                "path": "fast" if fast else "plain",
                "threads": torch.get_num_threads(),
            }
        )
    return rows


def speed_table(
    model: TransformerNet,
    style: torch.Tensor,
    config: dict,
    sizes=(256, 512, 1024),
    baseline_iterations=(100, 300, 500),
    measured: int = 5,
    full_seconds: float = 0.0,
    progress: bool = True,
) -> list[dict]:
    """Seconds per image: the baseline at 100/300/500 L-BFGS iterations and the network, per size.

    The baseline's per-iteration cost is measured over ``measured`` iterations (after one warm-up
    iteration). A cell whose estimate from that cost is within ``full_seconds`` is then run in full
    and timed; the others are the cost multiplied out, marked extrapolated. Both sides run in fp32.
    """
    network = {
        row["size"]: row["median_s"] for row in time_inference(model, sizes, repeats=3, progress=False)
    }
    rows = []
    for size in tqdm(sizes, desc="baseline timing", disable=not progress, leave=False):
        content = torch.rand(3, size, size)
        gatys(content, style, 1, "lbfgs", progress=False, **_weights(config))  # warm-up
        per_iteration = gatys(
            content, style, measured, "lbfgs", progress=False, **_weights(config)
        ).seconds_per_iteration  # the iterations alone
        row = {"size": size, "network_s": network[size], "baseline_s_per_iteration": per_iteration}
        for n in baseline_iterations:
            full = n > measured and per_iteration * n <= full_seconds
            if full:
                seconds = (
                    n
                    * gatys(
                        content, style, n, "lbfgs", progress=progress, **_weights(config)
                    ).seconds_per_iteration
                )
            else:
                seconds = per_iteration * n
            row[f"baseline_{n}_s"] = seconds
            row[f"baseline_{n}_extrapolated"] = n > measured and not full
            row[f"speedup_{n}"] = seconds / network[size]
        rows.append(row)
    return rows


def objective(model_output: torch.Tensor, content: torch.Tensor, criterion: PerceptualLoss) -> float:
    with torch.no_grad():
        return criterion(model_output[None], content[None]).total.item()


def baseline_equivalence(
    model: TransformerNet,
    style: torch.Tensor,
    photos: dict[str, torch.Tensor],
    config: dict,
    iterations: int = 300,
    init: str = "noise",
    progress: bool = True,
) -> tuple[list[dict], dict[str, list[float]]]:
    """For each photo: eq. 5 of the network's single pass, the baseline's objective curve, and the
    first baseline iteration whose objective is at or below the network's ("baseline-equivalent
    iterations"; None if the baseline never gets there within ``iterations``). ``init`` "noise" starts
    as Johnson et al.'s ``slow_neural_style.lua`` does (their Fig. 5); "content" from the photo."""
    vgg = loss_network()
    w = _weights(config)
    criterion = PerceptualLoss(vgg, style, **w)
    rows, curves = [], {}
    for name, photo in tqdm(photos.items(), desc="baseline quality", disable=not progress, leave=False):
        net_obj = objective(stylize(model, photo, precision="fp32"), photo, criterion)
        result = gatys(photo, style, iterations, "lbfgs", init=init, progress=False, vgg=vgg, **w)
        curve = result.objective
        equivalent = next((i for i, v in enumerate(curve) if v <= net_obj), None)  # curve[i]: after i
        rows.append(
            {
                "photo": name,
                "network_objective": net_obj,
                "baseline_final_objective": curve[-1],
                "baseline_equivalent_iterations": equivalent,
                "baseline_iterations": iterations,
                "size": f"{photo.shape[-1]}x{photo.shape[-2]}",
            }
        )
        curves[name] = curve
    return rows, curves


def quality_figure(curves: dict, content_curves: dict, rows: list[dict]) -> matplotlib.figure.Figure:
    """Fig. 5: each photo's baseline objective against its iterations, from noise and from the photo,
    with the network's single pass as a dashed line."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for (name, curve), row in zip(curves.items(), rows):
        (line,) = ax.plot(range(len(curve)), curve, label=f"{name}: from noise (Johnson et al.)")
        ax.plot(
            range(len(content_curves[name])),
            content_curves[name],
            color=line.get_color(),
            linestyle=":",
            label=f"{name}: from the photo",
        )
        ax.axhline(row["network_objective"], color=line.get_color(), linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("baseline L-BFGS iteration")
    ax.set_ylabel("objective (eq. 5)")
    ax.set_title("Baseline objective, both starts; dashed: one forward pass of the network")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def speed_figure(speed: pd.DataFrame) -> matplotlib.figure.Figure:
    """Table 1 as a plot: seconds per image against size, the baseline's iterations against one pass."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for n in (100, 300, 500):
        ax.plot(speed["size"], speed[f"baseline_{n}_s"], "o-", label=f"baseline, {n} iterations")
    ax.plot(speed["size"], speed["network_s"], "s-", color="black", label="network (one pass)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("image size (px, square)")
    ax.set_ylabel("seconds per image")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def run_comparison(
    model_path,
    photos_dir,
    out,
    sizes=(256, 512, 1024),
    iterations: int = 300,
    photo_count: int = 3,
    photo_size: int = 256,
    measured: int = 5,
    figures: bool = True,
    figures_folder=None,
) -> dict:
    """Both measurements for a trained model, as CSV tables in ``out`` and figures (in ``figures_folder``,
    default the project's figures/: the notebooks' place)."""
    import pandas as pd  # only here: the command line starts without it

    model = load_model(model_path)
    saved = load_checkpoint(Path(model_path), "model")
    config = saved["config"]
    style = load_image(config["style"], config.get("style_size"))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    speed = pd.DataFrame(speed_table(model, style, config, sizes, measured=measured))
    photos = {p.stem: load_image(p, photo_size) for p in list_images(photos_dir)[:photo_count]}
    config = {**config, "style_weight": saved.get("style_weight", config["style_weight"])}  # as trained
    rows, curves = baseline_equivalence(model, style, photos, config, iterations, init="noise")
    content_rows, content_curves = baseline_equivalence(
        model, style, photos, config, iterations, init="content"
    )
    for row, other in zip(rows, content_rows):
        row["baseline_equivalent_iterations_from_content"] = other["baseline_equivalent_iterations"]
    quality = pd.DataFrame(rows)
    for name, df in (("speed", speed), ("quality", quality)):
        with atomic_path(out / f"{name}.csv") as tmp:
            df.to_csv(tmp, index=False)
    print("speed (seconds per image):\n" + speed.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(
        "\nquality against the baseline:\n"
        + quality.to_string(index=False, float_format=lambda v: f"{v:.4g}")
    )
    if figures:
        preset, stem = config.get("preset"), Path(config["style"]).stem
        save_fig(
            quality_figure(curves, content_curves, rows),
            f"05_baseline_quality_{stem}",
            {"preset": preset, "rows": rows},
            folder=figures_folder,
        )
        save_fig(
            speed_figure(speed),
            f"05_speed_{stem}",
            {"preset": preset, "rows": speed.to_dict("records")},
            folder=figures_folder,
        )
    return {"speed": speed, "quality": quality}
