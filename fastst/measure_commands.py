"""What the commands that measure networks and report the measurements do (``bench``, ``compare``,
``quality``, ``time-to-quality``, ``report-tables``): one handler each, given the options
:mod:`fastst.cli` parsed, calling one function of the package and printing its outcome."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fastst import quality
from fastst.bench import run_suite
from fastst.data import TEST_DIR, data_dir
from fastst.errors import FaststError
from fastst.evaluate import run_comparison
from fastst.io import atomic_path, load_checkpoint, project_folder
from fastst.recipes import check_recipes, time_to_quality
from fastst.report import markdown_files, update_tables
from fastst.results import write_result
from fastst.stylize import pretrained_path


def bench_command(args) -> int:
    results = run_suite(args.model, quick=args.quick, compile=args.compile, device=args.device)
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


def compare_command(args) -> int:
    photos = Path(args.photos) if args.photos else data_dir() / TEST_DIR
    run_comparison(
        args.model,
        photos,
        args.out,
        figures_folder=args.out,
        sizes=tuple(args.sizes),
        iterations=args.iterations,
        photo_count=args.photos_count,
        photo_size=args.photo_size,
    )
    return 0


def quality_command(args) -> int:
    if bool(args.model) == bool(args.run):
        raise FaststError("give --model (one network) or --run (the curve of one or more runs)")
    style = args.style or _trained_style(args.model or args.run[0], args.style_name)
    overrides = {
        k: getattr(args, k) for k in ("photo_size", "iterations", "noise_iterations") if getattr(args, k)
    }
    protocol = quality.evaluation_protocol(style, **overrides)
    ref = quality.reference(protocol, args.photos, args.count)
    settings = {
        "protocol": {**protocol.__dict__, "style_layers": list(protocol.style_layers)},
        "photos": list(ref.photos),
    }
    if args.model:
        result = {
            **settings,
            "model": str(args.model),
            "style_name": args.style_name,
            **quality.score_file(args.model, ref, args.style_name),
        }
        for row in result["photos"]:
            print(
                f"{row['photo']:>12}: objective {row['network_objective']:.4g}, L-BFGS best "
                f"{row['lbfgs_best']:.4g}, "
                f"ratio {row['optimality_ratio']:.3f}, Fig. 5 iterations {row['lbfgs_equivalent']}"
            )
    else:
        result = {
            **settings,
            "style_name": args.style_name,
            "runs": {str(run): quality.curve(run, ref, style=args.style_name) for run in args.run},
        }
        for run, rows in result["runs"].items():
            print(run)
            for row in rows:
                print(
                    f"  iteration {row['iteration']:>5} ({row['elapsed_s']:7.1f} s): ratio "
                    f"{row['optimality_ratio']:.3f}, "
                    f"Fig. 5 iterations {row['lbfgs_equivalent']}"
                )
    if args.model:
        print(
            f"median over {len(ref.photos)} photos: optimality ratio {result['optimality_ratio']:.3f}, "
            f"Fig. 5 iterations {result['lbfgs_equivalent']}"
        )
    if args.json:
        path = write_result(Path(args.json).stem, result, folder=Path(args.json).parent or ".")
        print(f"wrote {path}")
    return 0


def time_to_quality_command(args) -> int:
    weights = (
        {"style_weight": args.style_weight} if args.style_weight is not None else {"style_strength": 1.0}
    )
    recipes = {preset: {"preset": preset, **weights} for preset in args.recipes}
    for item in args.set or []:
        target, _, value = item.partition("=")
        recipe, _, field = target.partition(".")
        if recipe not in recipes or not field or not value:
            raise FaststError(f"--set takes RECIPE.FIELD=VALUE for a recipe being compared, not {item!r}")
        recipes[recipe][field] = int(value) if value.isdigit() else float(value)
    if args.init:
        recipes["finetune"] = {"preset": "finetune", "from": args.init, **weights}
    check_recipes(recipes, args.recipes[0])
    overrides = {k: getattr(args, k) for k in ("iterations", "noise_iterations") if getattr(args, k)}
    result = time_to_quality(
        args.style, recipes, Path(args.runs), args.recipes[0], args.count, overrides, name=args.name
    )
    for label, row in result["summary"].items():
        reached = row["seconds_to_reference_quality"]
        print(
            f"{label:>12}: final ratio {row['final_optimality_ratio']:.3f} after "
            f"{row['total_seconds'] / 60:.1f} min; "
            + (
                f"reaches {args.recipes[0]}'s final ratio at {reached / 60:.1f} min"
                if reached is not None
                else f"never reaches {args.recipes[0]}'s final ratio"
            )
        )
    return 0


def report_tables_command(args) -> int:
    if args.readme or os.environ.get("FASTST_README"):
        files = [Path(args.readme) if args.readme else project_folder("README.md", "FASTST_README")]
    else:
        files = markdown_files(project_folder("README.md", "FASTST_README").parent)
    changed = update_tables(files, check=args.check)
    if args.check and changed:
        raise FaststError(
            "tables disagree with results/: "
            + "; ".join(f"{file}: {', '.join(names)}" for file, names in changed.items())
            + " (run fastst report-tables)"
        )
    for file in files:
        names = changed.get(Path(file))
        print(
            f"{file}: "
            + (
                f"{'would update' if args.check else 'updated'} {', '.join(names)}"
                if names
                else "every table matches results/"
            )
        )
    return 0


def _trained_style(path: str, name: str | None = None) -> str:
    """The style image a model or a run folder was trained on (the one called ``name`` of several)."""
    path = pretrained_path(path)
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise FaststError(f"{path} is not a training run (no config.json); pass --style")
        style = json.loads(config.read_text())["config"]["style"]
    elif not path.is_file():
        raise FaststError(f"no such model file: {path}")
    else:
        saved = load_checkpoint(path, "model")
        style = saved.get("config", {}).get("style") if isinstance(saved, dict) else None
    if isinstance(style, list):  # several styles: the one named
        chosen = [s for s in style if Path(s).stem == name]
        if not chosen:
            raise FaststError(
                f"{path} holds several styles; choose one with --style-name "
                f"({', '.join(Path(s).stem for s in style)})"
            )
        style = chosen[0]
    if not style:
        raise FaststError(f"{path} does not say which style it was trained on; pass --style")
    if not Path(style).exists():  # a shipped model names its images only: look in the data folder
        style = str(next((p for p in data_dir().glob(f"styles*/{Path(style).name}")), style))
    return style
