"""The shipped multi-style base, style by style: its quality (fastst.quality) on the held-out photos, and,
where a single-style run on the same style kept its weights (the cpu preset), that run's quality at its end
and, where it trained as many iterations as the base gives each style, after the same training time per
style (the base's time divided by its number of styles). The steps of the base and of each run (read from
its config.json) are timed in one interleaved benchmark. Writes results/base_quality.json.

    python tools/base_quality.py [--base MODEL] [--cpu-run STYLE=RUN ...] [--styles NAME ...]
"""

import argparse
import json
from pathlib import Path

from fastst import quality
from fastst.data import data_dir
from fastst.io import load_checkpoint
from fastst.recipes import recipe_clock, row_at, timed_curve
from fastst.report import measured_on, minutes_cell, ratio_cell
from fastst.results import write_result
from fastst.runs import RunFolder
from fastst.step_timing import bench_recipes
from fastst.stylize import load_model, pretrained_path
from fastst.train import TrainConfig, runs_dir
from fastst.transformer import single_style


def table(result: dict) -> dict:
    """The table of docs/many_styles.md made of this study's result."""
    alone = f"`{result['alone_preset']}`" if result.get("alone_preset") else "one style"
    rows = []
    for name, row in result["quality"].items():
        base, equal, final = row["base"], row.get("cpu_at_equal_time"), row.get("cpu_final")
        fig5 = base["lbfgs_equivalent"]
        rows.append(
            [
                name.replace("_", " "),
                ratio_cell(base["optimality_ratio"]),
                "beyond the budget" if fig5 is None else f"{fig5:g}",
                f"{ratio_cell(equal['optimality_ratio'])} (iteration {equal['iteration']:,})"
                if equal
                else ("its run is shorter" if final else "n/a"),
                f"{ratio_cell(final['optimality_ratio'])} ({final['iteration']:,} iterations, "
                f"{minutes_cell(final['seconds'])})"
                if final
                else "n/a",
            ]
        )
    return {
        "columns": [
            "style",
            "base: optimality ratio",
            "base: Fig. 5 iterations",
            f"{alone} alone after the same time a style",
            f"{alone} alone, end of its run",
        ],
        "rows": rows,
        "note": f"The base: {len(result['styles'])} styles, {result['iterations']:,} iterations, "
        f"{minutes_cell(result['base_seconds'])} by the step benchmark "
        f"({minutes_cell(result['seconds_per_style'])} a style)"
        + (
            f", trained in {minutes_cell(result['trained_seconds'])} by its own log on the same machine "
            "(`results/base_training/losses.csv`)"
            if result.get("trained_seconds")
            else ""
        )
        + f". Median over {len(result['photos'])} held-out photos; {measured_on(result)} "
        f"(`results/{result['name']}.json`).",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="base")
    parser.add_argument(
        "--cpu-run", nargs="*", default=[], help="STYLE=RUN: a single-style run that kept weights"
    )
    parser.add_argument("--styles", nargs="*", help="styles to score (default: those with a cpu run)")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument(
        "--run", default=str(runs_dir() / "base"), help="the base's run folder (its logged training time)"
    )
    args = parser.parse_args()

    saved = load_checkpoint(pretrained_path(args.base), "model")
    base = load_model(args.base)
    names = base.style_names
    config = TrainConfig.from_saved(
        saved["config"],
        style=tuple(str(data_dir() / "styles" / Path(p).name) for p in saved["config"]["style"]),
    )
    cpu_runs = dict(item.split("=", 1) for item in args.cpu_run)
    KEPT = ("iteration", "seconds", "optimality_ratio", "lbfgs_equivalent")  # what a row keeps of a curve
    configs = {"base": config}
    for name, run in cpu_runs.items():
        configs[f"alone {name}"] = TrainConfig.from_saved(
            json.loads(RunFolder(run).config.read_text())["config"], out=run
        )
    presets = sorted({configs[f"alone {name}"].preset for name in cpu_runs})
    if len(presets) > 1:
        raise SystemExit(
            f"the single-style runs come from several presets ({', '.join(presets)}): compare one"
        )
    timing = bench_recipes(configs)
    base_seconds = recipe_clock(config, timing, "base")(config.iterations)
    per_style = base_seconds / len(names)
    print(
        f"base: {config.iterations} iterations, {base_seconds / 60:.1f} min here, {per_style / 60:.1f} "
        "min a style"
    )

    rows = {}
    for name in args.styles or list(cpu_runs):
        protocol = quality.evaluation_protocol(
            data_dir() / "styles" / f"{name}.jpg", iterations=200, noise_iterations=200
        )
        ref = quality.reference(protocol, count=args.count)
        row = {"base": quality.score(single_style(base, names.index(name)), ref)}
        if name in cpu_runs:
            alone = configs[f"alone {name}"]
            curve = timed_curve(alone, timing, f"alone {name}", ref)
            # compared at the base's time a style only where the run trained as many iterations as the base
            # gives a style (a shorter run's end is not that time's quality)
            if alone.iterations >= config.iterations // len(names):
                at = row_at(curve, per_style)
                row["cpu_at_equal_time"] = {**{k: at[k] for k in KEPT}, "seconds": per_style}
            row["cpu_final"] = {k: curve[-1][k] for k in KEPT}
        rows[name] = row
        print(name, {k: {kk: vv for kk, vv in v.items() if kk != "photos"} for k, v in row.items()})

    losses = Path(args.run) / "losses.csv"
    trained = float(losses.read_text().strip().splitlines()[-1].split(",")[-1]) if losses.exists() else None
    write_result(
        "base_quality",
        {
            "base": str(pretrained_path(args.base)),
            "styles": names,
            "trained_seconds": trained,
            "iterations": config.iterations,
            "step_timing": timing,
            "base_seconds": base_seconds,
            "seconds_per_style": per_style,
            "alone_preset": presets[0] if presets else None,
            "photos": list(ref.photos),
            "quality": rows,
        },
    )


if __name__ == "__main__":
    main()
