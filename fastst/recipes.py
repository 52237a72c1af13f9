"""Training recipes compared by time to quality (``python -m fastst time-to-quality``).

Each recipe trains the same style with its weights kept along the run; every kept set is scored
with the quality measure (fastst.quality); and the training step of every recipe, at each of its
crop sizes, is timed in one interleaved benchmark (fastst.step_timing.bench_recipes). A recipe's time at
iteration k is the sum of its step times up to k: times measured together in one run, so that their
ratios hold on any machine, where times logged by runs made at different moments would not.
"""

from __future__ import annotations

import bisect
import os
from pathlib import Path

from fastst import quality
from fastst.config import TrainConfig
from fastst.data import TRAIN_DIR, data_dir
from fastst.errors import FaststError
from fastst.plotting import plot_quality_curves, save_fig, show_images
from fastst.report import measured_on, minutes_cell, ratio_cell
from fastst.results import machine, write_result
from fastst.step_timing import bench_recipes
from fastst.stylize import load_model, stylize
from fastst.train import runs_dir, train

# The first columns of every table of training runs: what ran and where it ended.
RUN_COLUMNS = (
    "recipe",
    "iterations",
    "training time (step benchmark)",
    "training time (its log)",
    "optimality ratio (final)",
    "Fig. 5 iterations (final)",
)


def logged_cell(curve: list[dict]) -> str:
    """A run's training time by its own log (the last kept weights' ``elapsed_s``), in minutes."""
    elapsed = curve[-1].get("elapsed_s") if curve else None
    return "not logged" if elapsed is None else minutes_cell(elapsed)


def recipe_config(recipe: str, style: str, out: Path, init: str | None = None, **overrides) -> TrainConfig:
    """The TrainConfig of a named recipe (a preset) for ``style``, keeping its weights for scoring."""
    config = TrainConfig.from_preset(
        recipe, style=str(style), data=str(data_dir() / TRAIN_DIR), out=str(out), **overrides
    )
    config.init = init
    config.keep_weights_every = config.keep_weights_every or max(10, config.iterations // 12)
    return config


def step_clock(config: TrainConfig, seconds_at_size: dict[int, float]):
    """A function of the iteration count giving the training seconds spent to reach it."""
    steps = config.crop_steps() or ((0, config.image_size),)
    firsts = [first for first, _ in steps]

    def clock(iteration: int) -> float:
        total = 0.0
        for k, (first, size) in enumerate(steps):
            end = steps[k + 1][0] if k + 1 < len(steps) else config.iterations
            total += max(0, min(iteration, end) - first) * seconds_at_size[size]
        return total

    clock.firsts = firsts
    return clock


def crossing(rows: list[dict], target: float, key: str = "optimality_ratio") -> float | None:
    """The first time a curve reaches ``target`` (lower is better), interpolated between kept weights."""
    previous = None
    for row in rows:
        value = row[key]
        if value <= target:
            if previous is None:
                return row["seconds"]
            (t0, v0), t1 = previous, row["seconds"]
            return t0 + (t1 - t0) * (v0 - target) / (v0 - value) if v0 != value else t1
        previous = (row["seconds"], value)
    return None


def recipe_clock(config: TrainConfig, timing: list[dict], label: str):
    """``step_clock`` of ``config`` from its rows (``label``) of ``fastst.step_timing.bench_recipes``."""
    return step_clock(config, {row["size"]: row["seconds"] for row in timing if row["recipe"] == label})


def timed_curve(config: TrainConfig, timing: list[dict], label: str, ref, progress: bool = True) -> list:
    """``quality.curve`` of the run ``config.out`` against ``ref``, each kept weights with the training
    seconds it took to reach them (by ``recipe_clock``)."""
    clock = recipe_clock(config, timing, label)
    rows = quality.curve(config.out, ref, progress=progress)
    return [{**row, "seconds": clock(row["iteration"])} for row in rows]


def row_at(rows: list[dict], seconds: float) -> dict | None:
    """The row of the last kept weights at or before ``seconds``."""
    i = bisect.bisect_right([r["seconds"] for r in rows], seconds + 1e-9) - 1
    return rows[i] if i >= 0 else None


def at_time(rows: list[dict], seconds: float, key: str = "optimality_ratio") -> float | None:
    """The value of the last kept weights at or before ``seconds``."""
    row = row_at(rows, seconds)
    return row[key] if row is not None else None


def held_out_figure(
    name: str, result: dict, labels, seconds: float, photos: dict, runs: Path | None = None, size: float = 2
):
    """Held-out ``photos`` through each recipe's kept weights at or before ``seconds`` of training, a row a
    recipe, from the runs of ``time_to_quality`` (``runs``: runs/ttq); None, with a line saying so, where
    those runs are not on this machine."""
    runs = runs or runs_dir() / "ttq"
    images, titles = list(photos.values()), list(photos)
    for label in labels:
        row = row_at(result["curves"][label], seconds)
        weights = runs / f"{name}-{label}" / "weights" / f"{row['iteration']:06d}.pth"
        if not weights.exists():
            print(f"{name}: no weights of {label} here ({weights}); run fastst time-to-quality to see them")
            return None
        model = load_model(weights)
        images += [stylize(model, p) for p in photos.values()]
        # one title a row, over its first photo: the panels are narrower than the title
        titles += [f"{label}, {row['seconds'] / 60:.1f} min, ratio {row['optimality_ratio']:.2f}"]
        titles += [""] * (len(photos) - 1)
    return show_images(images, titles, ncols=len(photos), size=size)


def time_to_quality(
    style: str | os.PathLike,
    recipes: dict[str, dict],
    runs: Path,
    reference_recipe: str,
    photos_count: int | None = None,
    protocol_overrides: dict | None = None,
    name: str | None = None,
    progress: bool = True,
    train_only: bool = False,
) -> dict | None:
    """Train (or resume) each recipe on ``style``, score its kept weights, time its steps, and write
    ``results/time_to_quality_<name>.json`` and the figure ``quality_vs_time_<name>`` in ``runs`` (notebook 5
    draws the committed figures from the results).

    ``recipes`` maps a label to ``{"preset": ..., "from": model or None, **overrides}``; the targets are
    read against ``reference_recipe``'s final quality, scored on the first ``photos_count`` held-out photos
    (default: the whole test set). With ``train_only`` it stops after training
    (the step timing and scoring can then run later, alone on the machine)."""
    style = str(style)
    name = name or Path(style).stem
    configs = {}
    for label, spec in recipes.items():
        spec = dict(spec)
        preset, init = spec.pop("preset"), spec.pop("from", None)
        configs[label] = recipe_config(preset, style, runs / f"{name}-{label}", init, **spec)
    for label, config in configs.items():
        train(config, resume=True, progress=progress)
    if train_only:
        return None
    timing = bench_recipes(configs)
    protocol = quality.evaluation_protocol(style, **(protocol_overrides or {}))
    ref = quality.reference(protocol, count=photos_count, progress=progress)
    curves = {}
    for label, config in configs.items():
        curves[label] = timed_curve(config, timing, label, ref, progress)
    final = curves[reference_recipe][-1]
    summary = {}
    for label, rows in curves.items():
        reached = crossing(rows, final["optimality_ratio"])
        summary[label] = {
            "iterations": configs[label].iterations,
            "total_seconds": rows[-1]["seconds"],
            "final_optimality_ratio": rows[-1]["optimality_ratio"],
            "final_lbfgs_equivalent": rows[-1]["lbfgs_equivalent"],
            "seconds_to_reference_quality": reached,
            "fraction_of_reference_time": reached / final["seconds"] if reached is not None else None,
            "optimality_ratio_at_reference_time": at_time(rows, final["seconds"]),
            "settings": {k: v for k, v in vars(configs[label]).items() if k not in ("style", "data", "out")},
        }
    result = {
        "style": Path(style).name,
        "reference_recipe": reference_recipe,
        "protocol": {**protocol.__dict__, "style_layers": list(protocol.style_layers)},
        "photos": list(ref.photos),
        "step_timing": timing,
        "summary": summary,
        "curves": curves,
    }
    info = machine()
    path = write_result(f"time_to_quality_{name}", result, machine_info=info)
    fig = plot_quality_curves(
        {label: [{**r, "elapsed_s": r["seconds"]} for r in rows] for label, rows in curves.items()},
        title=f"{Path(style).stem.replace('_', ' ')}: quality against training time "
        f"({info['cpu']}, {info['threads']} threads, fp32 matmul "
        f"{info['matmul_fp32_gflops']:.0f} GFLOP/s)",
        reference=final["optimality_ratio"],
        reference_label=f"{reference_recipe}'s final quality",
    )
    save_fig(fig, f"quality_vs_time_{name}", {"result": str(path)}, folder=runs)
    return result


def time_to_quality_table(result: dict) -> list[dict]:
    """The tables of a time-to-quality result (for ``fastst report-tables``): each recipe against the
    reference recipe, then the benchmark of their training steps."""
    reference = result["reference_recipe"]
    reference_final = result["summary"][reference]["final_optimality_ratio"]
    rows = []
    for label, row in result["summary"].items():
        at_reference = row["optimality_ratio_at_reference_time"]  # its last kept weights by then
        change = (
            f" ({at_reference / reference_final - 1:+.0%})"
            if label != reference and at_reference is not None
            else ""
        )
        fraction = row["fraction_of_reference_time"]
        reached = minutes_cell(row["seconds_to_reference_quality"]) + (
            f" ({fraction:.0%})" if fraction is not None and label != reference else ""
        )
        equivalent = row["final_lbfgs_equivalent"]
        kept = row_at(result["curves"][reference], row["total_seconds"])  # its last kept weights by then
        same_time = (
            "no weights kept yet"
            if kept is None or kept["iteration"] == 0
            else ratio_cell(kept["optimality_ratio"])
        )
        rows.append(
            [
                f"`{label}`",
                f"{row['iterations']:,}",
                minutes_cell(row["total_seconds"]),
                logged_cell(result["curves"][label]),
                ratio_cell(row["final_optimality_ratio"]),
                "beyond the budget" if equivalent is None else f"{equivalent:g}",
                same_time,
                f"{ratio_cell(at_reference)}{change}",
                reached,
            ]
        )
    recipes = {
        "columns": [
            *RUN_COLUMNS,
            f"`{reference}` at the same time",
            f"at `{reference}`'s time",
            f"time to `{reference}`'s final ratio",
        ],
        "rows": rows,
    }
    protocol = result["protocol"]
    steps = {
        "columns": [
            "training step",
            "precision",
            "seconds",
            "GFLOP",
            "share of that precision's matmul rate",
        ],
        "rows": [
            [
                row["step"],
                row.get("precision", "fp32"),
                f"{row['seconds']:.3f}",
                f"{row['gflop']:.0f}",
                f"{row.get('fraction_of_matmul', row['fraction_of_fp32_matmul']):.0%}",
            ]
            for row in result["step_timing"]
        ],
        "note": f"Median over {len(result['photos'])} held-out photos at {protocol['photo_size']} px; L-BFGS "
        f"optimum after {protocol['iterations']} iterations, Fig. 5 from noise within "
        f"{protocol['noise_iterations']}; times from one interleaved step benchmark on {measured_on(result)} "
        f"(`results/{result['name']}.json`).",
    }
    return [recipes, steps]


def estimate_seconds(config: TrainConfig, steps: int = 2) -> float:
    """The training time of ``config`` on this machine, from a few steps timed now at each crop size."""
    return recipe_clock(config, bench_recipes({"run": config}, rounds=steps), "run")(config.iterations)


def check_recipes(recipes: dict, reference_recipe: str) -> None:
    if reference_recipe not in recipes:
        raise FaststError(f"the reference recipe {reference_recipe!r} is not among the recipes")
