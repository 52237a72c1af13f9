"""What the commands that train and use style networks do (and those that fetch data): one handler per
command, given the parsed options (:mod:`fastst.cli` parses them), each calling one function of the
package and printing its outcome. The commands that measure are in :mod:`fastst.measure_commands`; those
that draw figures or run the notebooks in :mod:`fastst.figure_commands`, so that stylizing never loads
the plotting code."""

from __future__ import annotations

import csv
import sys
from dataclasses import replace
from pathlib import Path

from fastst.anystyle import is_one_pass, read_one_pass
from fastst.anystyle_train import AnyStyleConfig, train_anystyle
from fastst.app import serve
from fastst.config import TrainConfig, option_fields
from fastst.data import EXTRA_DIR, PAINTINGS_DIR, data_dir
from fastst.download import fetch, fetch_coco, fetch_extra_styles
from fastst.errors import FaststError
from fastst.export import export_network
from fastst.files import StylizeOptions, prepare, stylize_paths, stylize_video_paths, video_inputs
from fastst.gatys import gatys
from fastst.host import cache_folder, one_pass_file
from fastst.images import outcome_line
from fastst.io import atomic_path, list_images, load_image, save_image
from fastst.presets import REFINE_START
from fastst.refine import refine_painting
from fastst.runtime import resolve_device
from fastst.runtimes import installed
from fastst.scale import working_size
from fastst.stylize import (
    PRETRAINED_DIR,
    load_model,
    model_styles,
    pretrained_path,
    pretrained_styles,
    resolve_shipped_style,
)
from fastst.train import train
from fastst.vgg import cache_dir, imagenet_state_dict


def _parsed(options, args) -> dict:
    """What ``args`` holds for the option fields of the dataclass ``options``."""
    return {f.name: getattr(args, f.name) for f in option_fields(options)}


def train_command(args) -> int:
    # the options given; the others keep the preset's value
    given = {k: v for k, v in _parsed(TrainConfig, args).items() if v is not None}
    given["style"] = given["style"][0] if len(given["style"]) == 1 else tuple(given["style"])
    if args.style_weight is None:  # the calibrated weight, unless raw weights are given
        given.setdefault("style_strength", 1.0)
    elif args.style_strength is not None:
        raise FaststError("give --style-weight (raw lambda_s) or --style-strength (calibrated), not both")
    config = TrainConfig.from_preset(given.pop("preset", "auto"), **given)
    result = train(config, resume=args.resume, progress=not args.quiet)
    last = result.losses
    summary = ", ".join(f"{k} {last[k]:.4g}" for k in ("content", "style", "tv", "total") if k in last)
    print(f"trained {result.iterations} iterations into {result.run}" + (f" ({summary})" if summary else ""))
    return 0


def train_anystyle_command(args) -> int:
    names = (
        "iterations",
        "batch_size",
        "image_size",
        "painting_size",
        "width",
        "residual_blocks",
        "device",
        "style_weight",
        "train_shared",
        "painting_crops",
        "painting_views",
        "made_styles",
        "made_kinds",
        "lr",
        "clip",
        "init",
        "body",
    )
    overrides = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    if overrides.get("init") == "none":
        overrides["init"] = None
    config = AnyStyleConfig(out=args.out, **overrides)
    path = train_anystyle(config, resume=args.resume, progress=not args.quiet)
    print(f"one-pass model in {path}; stylize with: fastst stylize --model {path} --style-image PAINTING ...")
    return 0


def stylize_command(args) -> int:
    if not args.model and not args.style and not args.painting:
        raise FaststError(
            "give --style (a shipped style or mix; see fastst styles), --style-image (any painting) "
            "or --model (a trained model.pth)"
        )
    if args.painting and args.style:
        raise FaststError("give --style (a shipped style) or --style-image (a painting), not both")
    model = args.model or (resolve_shipped_style(args.style) if args.style else None)
    options = StylizeOptions(**_parsed(StylizeOptions, args))
    if args.refine is not None:  # the painting's own network, trained first (or found), then as any model
        if not args.painting:
            raise FaststError("--refine trains a network for the painting of --style-image: give one")
        if args.palette is not None:
            raise FaststError("--palette sets the one pass's colours; --refine trains its own network")
        model = refine_painting(args.painting, args.refine, args.model or REFINE_START, progress=True)
        options = replace(options, painting=None)  # its style scale ("auto" by default) is kept
    counts = {}
    clips = video_inputs(args.input)
    if clips:
        counts["clip"] = stylize_video_paths(
            model, args.input, args.output, options, temporal=args.temporal, anchor=args.anchor
        )
    if not clips or (Path(args.input).is_dir() and set(list_images(args.input)) - set(clips)):
        counts["image"] = stylize_paths(model, args.input, args.output, options)
    for kind, (written, failures, skipped) in counts.items():
        print(outcome_line(kind, written, failures, skipped, args.output))
    return 1 if any(failures for _, failures, _ in counts.values()) else 0


def app_command(args) -> int:
    serve(
        host=args.host,
        port=args.port,
        device=args.device,
        precision=args.precision,
        compile=args.compile,
        open_browser=args.open,
        one_pass=args.one_pass,
    )
    return 0


def styles_command(args) -> int:
    if args.model:
        path = pretrained_path(args.model)
        if not path.is_file():
            raise FaststError(f"no such model file: {path}")
        names = model_styles(path)
        print(
            "\n".join(names)
            if names
            else f"{path.name} holds no styles: give it a painting with --style-image"
        )
        return 0
    shipped = pretrained_styles()
    if not shipped:
        print(f"no shipped styles in {PRETRAINED_DIR}")
    for name, path in shipped.items():
        print(f"{name}\t{path.name}")
    device = resolve_device("auto")
    here = one_pass_file(None)  # the one-pass model a painting takes
    others = sorted(p.stem for p in PRETRAINED_DIR.glob("*.pth") if is_one_pass(p) and p != here)
    if here.is_file():  # on stderr: stdout stays one style a line
        size = working_size(read_one_pass(here)["anystyle"], device)  # the "auto" style scale's here
        print(
            f"any painting: --style-image PAINTING (through {here.stem} on this machine, "
            f"working size {size} px"
            + (f"; or {', '.join(f'--model {n}' for n in others)}" if others else "")
            + ")",
            file=sys.stderr,
        )
    return 0


def prepare_command(args) -> int:
    if resolve_device("auto").type != "cpu":
        print("nothing to prepare: on a GPU, PyTorch runs the networks")
        return 0
    if installed() == ["torch"]:
        print(
            "nothing to prepare: PyTorch is the only runtime installed (the others: "
            'pip install "fastst[openvino]" or "fastst[export]")'
        )
        return 0
    done = prepare(args.style, one_pass=not args.no_one_pass)
    print(f"prepared on this machine: {', '.join(done)} (kept in {cache_folder()})")
    return 0


def export_command(args) -> int:
    print(f"wrote {export_network(load_model(args.model), args.onnx)}")
    return 0


def gatys_command(args) -> int:
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


def weights_fetch_command(args) -> int:
    state = imagenet_state_dict(progress=True)
    print(f"VGG-16 ImageNet weights ready ({len(state)} tensors, cached in {cache_dir()})")
    return 0


def data_fetch_command(args) -> int:
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
